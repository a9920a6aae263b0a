//! The hot state of many nodes, in Redis: failure counters (one hash per key,
//! checked and counted by one Lua script, so the limits hold across nodes), the
//! revocation broadcast (pub/sub), and the stateful-mode sessions (one hash per
//! session, expiring by itself).
//!
//! Every key and the channel start with the configured prefix, so that several
//! deployments (or tests) can share one Redis. Times are the server's clock, passed
//! to the scripts, so a test that moves its clock moves them too; Redis' own expiry
//! only collects what the logic already treats as gone.
//!
//! Commands time out after [`COMMAND_TIMEOUT`]: a Redis that does not answer costs
//! a request that long once, then the node's [`super::Health`] routes around it
//! until it answers again.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};
use tokio::sync::mpsc;

use super::{Held, HotState, SUBSCRIBER_BACKLOG, Subscription, decode_batch, encode_batch};
use crate::ratelimit::LimitKey;
use crate::store::{
    Revoked, SESSION_TOUCH_EVERY, ServerSession, SessionStore, StoreError, StoreResult,
};

/// How long one command may take before it counts as a failure.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);

/// Checks every key, then counts on every key, or on none (see
/// [`HotState::reserve`]). KEYS: the counters; ARGV: now, window, then each key's
/// limit. Answers `{0, wait}` or `{1, start1, start2, ...}`.
const RESERVE: &str = r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local wait = 0
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 's', 'n')
  local s, n = tonumber(v[1]), tonumber(v[2])
  if s and n and s + window > now and n >= tonumber(ARGV[i + 2]) then
    wait = math.max(wait, s + window - now)
  end
end
if wait > 0 then return {0, wait} end
local out = {1}
for i, key in ipairs(KEYS) do
  local s = tonumber(redis.call('HGET', key, 's'))
  if s and s + window > now then
    redis.call('HINCRBY', key, 'n', 1)
  else
    s = now
    redis.call('HSET', key, 's', now, 'n', 1)
  end
  redis.call('EXPIRE', key, window + 60)
  out[#out + 1] = s
end
return out
";

/// Gives reservations back. KEYS: the counters; ARGV: the index of the key to
/// clear (0: none), then each key's window start.
const SETTLE: &str = r"
local clear = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if i == clear then
    redis.call('DEL', key)
  else
    local s = redis.call('HGET', key, 's')
    if s and s == ARGV[i + 1] then
      if redis.call('HINCRBY', key, 'n', -1) < 0 then redis.call('HSET', key, 'n', 0) end
    end
  end
end
return 1
";

/// Reads a live session and extends it when due. KEYS: the session; ARGV: now, ttl,
/// touch interval. Answers nil or {user_id, csrf_hash, created_at, last_used_at,
/// expires_at}.
const TOUCH: &str = r"
local v = redis.call('HMGET', KEYS[1], 'u', 'c', 'ca', 'lu', 'ex')
if not v[1] then return nil end
local now, ttl, every = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tonumber(v[5]) <= now then return nil end
if now - tonumber(v[4]) >= every then
  v[4] = tostring(now)
  v[5] = tostring(now + ttl)
  redis.call('HSET', KEYS[1], 'lu', v[4], 'ex', v[5])
  redis.call('EXPIRE', KEYS[1], ttl + 60)
end
return v
";

/// See the module docs.
#[derive(Clone)]
pub struct RedisHot {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    reserve: Script,
    settle: Script,
    touch: Script,
}

impl std::fmt::Debug for RedisHot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("RedisHot")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisHot {
    /// A client of the Redis at `url` (`redis://[USER:PASSWORD@]HOST:PORT[/DB]`, or
    /// `redis+unix:///PATH` for a socket; TLS is not built in), with every key and
    /// the channel under `prefix`. It connects on first use and reconnects by
    /// itself, so a node can start while Redis is down: only a URL that cannot be
    /// parsed is an error.
    pub fn new(url: &str, prefix: &str) -> StoreResult<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("invalid Redis URL: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(redis_error)?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_string(),
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
            touch: Script::new(TOUCH),
        })
    }

    fn counter(&self, key: &str) -> String {
        format!("{}rl:{key}", self.prefix)
    }

    fn session(&self, id_hash: &[u8]) -> String {
        let mut key = format!("{}sess:", self.prefix);
        for b in id_hash {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }

    fn channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }
}

fn redis_error(e: redis::RedisError) -> StoreError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped() {
        StoreError::Unavailable(format!("Redis: {e}"))
    } else {
        StoreError::Backend(format!("Redis: {e}"))
    }
}

#[async_trait]
impl HotState for RedisHot {
    async fn ping(&self) -> StoreResult<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn reserve(
        &self,
        keys: &[LimitKey],
        now: i64,
        window: i64,
    ) -> StoreResult<Result<Vec<Held>, i64>> {
        let keys: Vec<&LimitKey> = keys.iter().filter(|k| k.max() > 0).collect();
        if keys.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let mut inv = self.reserve.prepare_invoke();
        for k in &keys {
            inv.key(self.counter(k.name()));
        }
        inv.arg(now).arg(window);
        for k in &keys {
            inv.arg(k.max());
        }
        let mut c = self.conn.clone();
        let out: Vec<i64> = inv.invoke_async(&mut c).await.map_err(redis_error)?;
        match out.as_slice() {
            [0, wait] => Ok(Err(*wait)),
            [1, starts @ ..] if starts.len() == keys.len() => Ok(Ok(keys
                .iter()
                .zip(starts)
                .map(|(k, &start)| Held {
                    key: k.name().to_string(),
                    start,
                })
                .collect())),
            _ => Err(StoreError::Backend(
                "Redis: unexpected answer from the reserve script".into(),
            )),
        }
    }

    async fn settle(&self, held: &[Held], clear: Option<&str>) -> StoreResult<()> {
        if held.is_empty() {
            return Ok(());
        }
        let mut inv = self.settle.prepare_invoke();
        let clear_at = clear
            .and_then(|c| held.iter().position(|h| h.key == c))
            .map_or(0, |i| i + 1);
        for h in held {
            inv.key(self.counter(&h.key));
        }
        inv.arg(clear_at);
        for h in held {
            inv.arg(h.start);
        }
        let mut c = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut c).await.map_err(redis_error)?;
        Ok(())
    }

    async fn publish(&self, revoked: &[Revoked]) -> StoreResult<()> {
        if revoked.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: i64 = c
            .publish(self.channel(), encode_batch(revoked))
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn subscribe(&self) -> StoreResult<Subscription> {
        let mut pubsub = tokio::time::timeout(COMMAND_TIMEOUT * 3, self.client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unavailable("Redis did not answer in time".into()))?
            .map_err(redis_error)?;
        pubsub
            .subscribe(self.channel())
            .await
            .map_err(redis_error)?;
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BACKLOG);
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Ok(text) = msg.get_payload::<String>() else {
                    continue;
                };
                let Some(batch) = decode_batch(&text) else {
                    tracing::warn!("a revocation broadcast could not be read; skipped");
                    continue;
                };
                // Too far behind (or unsubscribed): drop the subscription; the
                // subscriber catches up from the store.
                if tx.try_send(batch).is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

#[async_trait]
impl SessionStore for RedisHot {
    async fn create_server_session(&self, s: &ServerSession) -> StoreResult<()> {
        let key = self.session(&s.id_hash);
        let ttl = (s.expires_at - s.last_used_at).max(1);
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("u", s.user_id.clone()),
                    ("c", hex(&s.csrf_hash)),
                    ("ca", s.created_at.to_string()),
                    ("lu", s.last_used_at.to_string()),
                    ("ex", s.expires_at.to_string()),
                ],
            )
            .ignore()
            .expire(&key, ttl + 60)
            .ignore()
            .query_async::<()>(&mut c)
            .await
            .map_err(redis_error)
    }

    async fn touch_server_session(
        &self,
        id_hash: &[u8],
        now: i64,
        ttl: i64,
    ) -> StoreResult<Option<ServerSession>> {
        let mut c = self.conn.clone();
        let v: Option<Vec<String>> = self
            .touch
            .key(self.session(id_hash))
            .arg(now)
            .arg(ttl)
            .arg(SESSION_TOUCH_EVERY)
            .invoke_async(&mut c)
            .await
            .map_err(redis_error)?;
        let Some(v) = v else { return Ok(None) };
        let bad = || StoreError::Backend("Redis: a session hash is malformed".into());
        let [user_id, csrf, created, last, expires] =
            <[String; 5]>::try_from(v).map_err(|_| bad())?;
        let int = |s: &str| s.parse::<i64>().map_err(|_| bad());
        Ok(Some(ServerSession {
            id_hash: id_hash.to_vec(),
            user_id,
            csrf_hash: unhex(&csrf).ok_or_else(bad)?,
            created_at: int(&created)?,
            last_used_at: int(&last)?,
            expires_at: int(&expires)?,
        }))
    }

    async fn delete_server_session(&self, id_hash: &[u8]) -> StoreResult<bool> {
        let mut c = self.conn.clone();
        let n: i64 = c.del(self.session(id_hash)).await.map_err(redis_error)?;
        Ok(n == 1)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

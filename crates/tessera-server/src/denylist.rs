//! The denylist of access tokens, in memory (checked on every authenticated
//! request, no I/O) and kept in step with the store by the node's revocation sync:
//! entries written here, broadcast by other nodes, and read back from the store in
//! cursor order.
//!
//! Each entry remembers its cursor (`seq`, see [`Revoked`]); [`Denylist::cursor`] is
//! the cursor up to which every stored entry has been read from the store, in
//! order. The revocation feed is built on that: its events are the entries as they
//! are read from the store ([`Denylist::feed`]), each with its cursor as the event
//! id, after a snapshot of what is in memory ([`Denylist::snapshot`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::broadcast;

use crate::store::{DenyEntry, DenyKind, Revoked};
use crate::tokens::AccessClaims;

/// How many entries the feed channel holds for a slow reader before it lags (and
/// its connection is closed, to resume from its last event id).
pub const FEED_BACKLOG: usize = 4096;

/// Revoked tokens, sessions, and per-user cutoffs.
#[derive(Debug)]
pub struct Denylist {
    inner: RwLock<Maps>,
    cursor: AtomicI64,
    feed: broadcast::Sender<Arc<Revoked>>,
}

impl Default for Denylist {
    fn default() -> Self {
        Self::new()
    }
}

/// expires_at and seq of a jti or sid entry (seq 0: written here, not yet stored).
type Mark = (i64, i64);

#[derive(Debug, Default)]
struct Maps {
    jti: HashMap<String, Mark>,
    sid: HashMap<String, Mark>,
    /// user id → (cutoff, expires_at, seq): tokens with iat < cutoff are denied.
    user: HashMap<String, (i64, i64, i64)>,
}

impl Denylist {
    /// An empty list.
    pub fn new() -> Self {
        Self {
            inner: RwLock::default(),
            cursor: AtomicI64::new(0),
            feed: broadcast::channel(FEED_BACKLOG).0,
        }
    }

    /// Adds entries that are not stored yet (a revocation of this node, effective
    /// here at once, before its write).
    pub fn insert(&self, entries: &[DenyEntry]) {
        let mut m = self.write();
        for e in entries {
            m.put(e, 0);
        }
    }

    /// Adds stored entries (written here, or broadcast by a node).
    pub fn apply(&self, revoked: &[Revoked]) {
        let mut m = self.write();
        for r in revoked {
            m.put(&r.entry, r.seq);
        }
    }

    /// Adds entries read from the store in cursor order, all of them up to
    /// `cursor`, and hands them to the feed.
    pub fn caught_up(&self, revoked: &[Revoked], cursor: i64) {
        self.apply(revoked);
        for r in revoked {
            // No receiver is not an error: nobody follows the feed.
            let _ = self.feed.send(Arc::new(r.clone()));
        }
        self.cursor.fetch_max(cursor, Ordering::SeqCst);
    }

    /// The cursor up to which every stored entry is here.
    pub fn cursor(&self) -> i64 {
        self.cursor.load(Ordering::SeqCst)
    }

    /// The entries read from the store from now on, in cursor order.
    pub fn feed(&self) -> broadcast::Receiver<Arc<Revoked>> {
        self.feed.subscribe()
    }

    /// Every entry in force at `now` whose cursor is past `after`, in cursor order.
    pub fn snapshot(&self, after: i64, now: i64) -> Vec<Revoked> {
        let m = self.read();
        let mut out: Vec<Revoked> = Vec::new();
        let mut push = |kind, value: &str, cutoff, expires_at, seq| {
            if seq > after && expires_at > now {
                out.push(Revoked {
                    seq,
                    entry: DenyEntry {
                        kind,
                        value: value.to_string(),
                        cutoff,
                        expires_at,
                    },
                });
            }
        };
        for (v, &(exp, seq)) in &m.jti {
            push(DenyKind::Jti, v, 0, exp, seq);
        }
        for (v, &(exp, seq)) in &m.sid {
            push(DenyKind::Sid, v, 0, exp, seq);
        }
        for (v, &(cutoff, exp, seq)) in &m.user {
            push(DenyKind::User, v, cutoff, exp, seq);
        }
        out.sort_by_key(|r| r.seq);
        out
    }

    /// Whether a token with these claims is revoked at `now`.
    pub fn is_denied(&self, c: &AccessClaims, now: i64) -> bool {
        self.is_denied_parts(
            Some(&c.jti),
            c.sid.as_deref(),
            Some(&c.sub),
            Some(c.iat),
            now,
        )
    }

    /// Whether a token with these identifiers is revoked at `now`.
    pub fn is_denied_parts(
        &self,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
        iat: Option<i64>,
        now: i64,
    ) -> bool {
        let m = self.read();
        if jti.is_some_and(|j| m.jti.get(j).is_some_and(|&(exp, _)| exp > now))
            || sid.is_some_and(|s| m.sid.get(s).is_some_and(|&(exp, _)| exp > now))
        {
            return true;
        }
        sub.and_then(|s| m.user.get(s))
            .is_some_and(|&(cutoff, exp, _)| exp > now && iat.is_none_or(|iat| iat < cutoff))
    }

    /// Forgets entries that deny nothing any more.
    pub fn purge(&self, now: i64) {
        let mut m = self.write();
        m.jti.retain(|_, (exp, _)| *exp > now);
        m.sid.retain(|_, (exp, _)| *exp > now);
        m.user.retain(|_, (_, exp, _)| *exp > now);
    }

    /// The number of entries (for metrics).
    pub fn len(&self) -> usize {
        let m = self.read();
        m.jti.len() + m.sid.len() + m.user.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> RwLockReadGuard<'_, Maps> {
        // A poisoned lock only means a writer panicked between whole updates.
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Maps {
    /// Adds an entry: the later expiry, the later cutoff and the later cursor win.
    fn put(&mut self, e: &DenyEntry, seq: i64) {
        let mark = |m: &mut HashMap<String, Mark>| {
            let v = m.entry(e.value.clone()).or_insert((e.expires_at, seq));
            *v = (v.0.max(e.expires_at), v.1.max(seq));
        };
        match e.kind {
            DenyKind::Jti => mark(&mut self.jti),
            DenyKind::Sid => mark(&mut self.sid),
            DenyKind::User => {
                let v = self
                    .user
                    .entry(e.value.clone())
                    .or_insert((e.cutoff, e.expires_at, seq));
                *v = (v.0.max(e.cutoff), v.1.max(e.expires_at), v.2.max(seq));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, sid: &str, sub: &str, iat: i64) -> AccessClaims {
        let issue = crate::tokens::Issue {
            iss: "i".into(),
            aud: "a".into(),
            iat,
            exp: iat + 900,
            jti: jti.into(),
        };
        AccessClaims::session(issue, sub, sid, "u", vec![], "")
    }

    fn entry(kind: DenyKind, value: &str, cutoff: i64, expires_at: i64) -> DenyEntry {
        DenyEntry {
            kind,
            value: value.into(),
            cutoff,
            expires_at,
        }
    }

    #[test]
    fn kinds_and_expiry() {
        let d = Denylist::new();
        d.insert(&[
            entry(DenyKind::Jti, "j1", 0, 200),
            entry(DenyKind::Sid, "s1", 0, 200),
            entry(DenyKind::User, "u1", 100, 200),
        ]);
        assert!(d.is_denied(&claims("j1", "s", "u", 50), 100));
        assert!(d.is_denied(&claims("j", "s1", "u", 50), 100));
        assert!(d.is_denied(&claims("j", "s", "u1", 99), 100));
        assert!(!d.is_denied(&claims("j", "s", "u1", 100), 100));
        assert!(!d.is_denied(&claims("j", "s", "u", 50), 100));
        assert!(!d.is_denied(&claims("j1", "s", "u", 50), 200));
        d.purge(200);
        assert!(d.is_empty());
    }

    #[test]
    fn the_snapshot_is_what_is_live_past_a_cursor_in_cursor_order() {
        let d = Denylist::new();
        let r = |seq, kind, value: &str, cutoff, exp| Revoked {
            seq,
            entry: entry(kind, value, cutoff, exp),
        };
        d.caught_up(
            &[
                r(3, DenyKind::Sid, "s1", 0, 500),
                r(5, DenyKind::Jti, "j1", 0, 50),
                r(7, DenyKind::User, "u1", 90, 500),
            ],
            7,
        );
        // Broadcast before the store is read that far: in force, in the snapshot.
        d.apply(&[r(9, DenyKind::Jti, "j2", 0, 500)]);
        assert_eq!(d.cursor(), 7);
        let seqs = |v: Vec<Revoked>| v.into_iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(d.snapshot(0, 100)), vec![3, 7, 9]);
        assert_eq!(seqs(d.snapshot(3, 10)), vec![5, 7, 9]);
        assert_eq!(seqs(d.snapshot(9, 10)), Vec::<i64>::new());
        // Extended later: the later cursor and expiry win.
        d.apply(&[r(12, DenyKind::Sid, "s1", 0, 900)]);
        assert_eq!(
            d.snapshot(10, 100),
            vec![r(12, DenyKind::Sid, "s1", 0, 900)]
        );
    }
}

//! Several real `tessera serve` processes over one PostgreSQL schema (and, as an
//! option, one Redis): the schema, the nodes, and a TCP proxy that can cut a node
//! off from its database without touching the shared server.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sqlx::Connection as _;

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");
/// The variable that names the PostgreSQL server of the tests.
pub(crate) const POSTGRES_VAR: &str = "TESSERA_TEST_POSTGRES";
/// The variable that names the Redis server of the tests.
pub(crate) const REDIS_VAR: &str = "TESSERA_TEST_REDIS";
/// 32 bytes, base64url: the key-encryption key every node must share.
const KEK: &str = "dGVzc2VyYS10ZXN0LWtleS1lbmNyeXB0aW9uLWtleTA";
/// The issuer every node is configured with (it must be the same on all of them).
pub(crate) const ISSUER: &str = "http://127.0.0.1";
/// How long a node may take to say where it listens (migrations and key generation
/// included, on a loaded machine).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// The stderr lines a node keeps for failure messages.
const TAIL_LINES: usize = 60;

// ----- the cluster: a schema (and a Redis prefix) of one test's own -------------------

/// What the nodes of one test share: a PostgreSQL schema of the test's own (random
/// name, dropped on drop) and, as an option, a Redis server with a key prefix of
/// the test's own. Declare it before its nodes, so that they are killed first.
pub(crate) struct Cluster {
    test: String,
    server: String,
    schema: String,
    url: String,
    redis: Option<Redis>,
    nodes: AtomicUsize,
}

/// The Redis of a cluster.
struct Redis {
    url: String,
    prefix: String,
}

impl Cluster {
    /// A fresh schema for `test`; `None` (SKIPPED on stderr) without
    /// `TESSERA_TEST_POSTGRES`. Redis is off.
    pub(crate) async fn new(test: &str) -> Option<Self> {
        let Some(server) = var(POSTGRES_VAR) else {
            skipped(test, POSTGRES_VAR);
            return None;
        };
        let schema = format!("tessera_nodes_{}_{:016x}", std::process::id(), random());
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_VAR}={server}: cannot connect: {e}"));
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let url = schema_url(&server, &schema);
        Some(Self {
            test: test.to_owned(),
            server,
            schema,
            url,
            redis: None,
            nodes: AtomicUsize::new(0),
        })
    }

    /// Like [`Cluster::new`], with Redis on every node (`--redis` and a key prefix of
    /// the test's own); `None` (SKIPPED) without `TESSERA_TEST_REDIS` as well.
    pub(crate) async fn with_redis(test: &str) -> Option<Self> {
        let Some(redis) = var(REDIS_VAR) else {
            skipped(test, REDIS_VAR);
            return None;
        };
        let mut cluster = Self::new(test).await?;
        cluster.redis = Some(Redis {
            url: redis,
            prefix: format!("{}:", cluster.schema),
        });
        Some(cluster)
    }

    /// Runs `tessera key rotate` against the cluster's database, as an operator would.
    pub(crate) fn rotate_keys(&self) -> std::process::Output {
        Command::new(TESSERA)
            .args(["key", "rotate", "--database", &self.url])
            .env("TESSERA_ISSUER", ISSUER)
            .env("TESSERA_KEY_ENCRYPTION_KEY", KEK)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {TESSERA}: {e}"))
    }

    /// The database URL the nodes are given: the server's, with the schema as the
    /// search path.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The database URL through a proxy at `proxy`: the same URL with its host and
    /// port replaced.
    pub(crate) fn url_via(&self, proxy: SocketAddr) -> String {
        let (start, end) = authority(&self.url);
        let host_port = &self.url[start..end];
        let userinfo = host_port.rfind('@').map_or(0, |i| i + 1);
        format!(
            "{}{proxy}{}",
            &self.url[..start + userinfo],
            &self.url[end..]
        )
    }

    /// The PostgreSQL server's address, for a proxy in front of it.
    pub(crate) fn database_addr(&self) -> SocketAddr {
        let (start, end) = authority(&self.server);
        let host_port = &self.server[start..end];
        let host_port = &host_port[host_port.rfind('@').map_or(0, |i| i + 1)..];
        let with_port = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        with_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("{POSTGRES_VAR}={}: no TCP address in it", self.server))
    }

    /// A connection to the schema, for assertions on what the nodes wrote.
    pub(crate) async fn db(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: drop the
        // schema from a thread with a runtime of its own. A lock timeout keeps a
        // connection left in a transaction from holding the test forever.
        let (server, schema) = (self.server.clone(), self.schema.clone());
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let mut conn = sqlx::PgConnection::connect(&server).await?;
                    sqlx::query("SET lock_timeout = '10s'")
                        .execute(&mut conn)
                        .await?;
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: nodes::{}: could not drop the test schema {}",
                self.test,
                self.schema
            );
        }
    }
}

/// Says on the process's own stderr that `test` did not run (the test harness
/// shows `eprintln!` only for failing tests; a skip must be visible in every run).
fn skipped(test: &str, var: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: nodes::{test} ({var} unset)");
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn random() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(N.fetch_add(1, Ordering::Relaxed))
}

fn schema_url(server: &str, schema: &str) -> String {
    let sep = if server.contains('?') { '&' } else { '?' };
    format!("{server}{sep}options=-csearch_path%3D{schema}")
}

/// The byte range of a URL's authority (`user@host:port`).
fn authority(url: &str) -> (usize, usize) {
    let start = url
        .find("://")
        .map(|i| i + 3)
        .unwrap_or_else(|| panic!("not a URL: {url}"));
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    (start, end)
}

// ----- a node: one `tessera serve` process ---------------------------------------------

/// A running `tessera serve`, killed (SIGKILL) on drop if it still runs. Every
/// method takes `&self`, so that tasks can share a node while another kills it.
pub(crate) struct Node {
    name: String,
    url: String,
    pid: u32,
    child: Mutex<Process>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// A node spawned but not yet known to listen: see [`Starting::ready`].
pub(crate) struct Starting {
    name: String,
    child: Process,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// A child process, killed (SIGKILL) and reaped on drop if it still runs.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Node {
    /// Starts a node of `cluster` on its database, with `env` over the common
    /// settings, and waits until it listens.
    pub(crate) fn start(cluster: &Cluster, env: &[(&str, &str)]) -> Self {
        Self::spawn(cluster, env).ready()
    }

    /// Spawns a node without waiting for it: start several at the same instant,
    /// then call [`Starting::ready`] on each.
    pub(crate) fn spawn(cluster: &Cluster, env: &[(&str, &str)]) -> Starting {
        Self::spawn_on(cluster, cluster.url(), env)
    }

    /// Starts a node of `cluster` whose `--database` is `database` (the cluster's
    /// URL through a [`Proxy`], say), and waits until it listens.
    pub(crate) fn start_on(cluster: &Cluster, database: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_on(cluster, database, env).ready()
    }

    /// Spawns a node of `cluster` on `database` without waiting for it.
    pub(crate) fn spawn_on(cluster: &Cluster, database: &str, env: &[(&str, &str)]) -> Starting {
        let name = format!("node{}", cluster.nodes.fetch_add(1, Ordering::Relaxed) + 1);
        let mut cmd = Command::new(TESSERA);
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--database", database])
            .env("TESSERA_ISSUER", ISSUER)
            .env("TESSERA_KEY_ENCRYPTION_KEY", KEK)
            .env("TESSERA_ARGON2_MEMORY_KIB", "256")
            .env("TESSERA_ARGON2_ITERATIONS", "1")
            .env("TESSERA_LOG_LEVEL", "warn")
            // Tests run side by side on one PostgreSQL (100 connections by default):
            // a few nodes each, a small pool each.
            .env("TESSERA_DATABASE_MAX_CONNECTIONS", "6")
            // Plain text in the stderr tails of failure messages.
            .env("NO_COLOR", "1");
        if let Some(redis) = &cluster.redis {
            cmd.args(["--redis", &redis.url])
                .env("TESSERA_REDIS_KEY_PREFIX", &redis.prefix);
        }
        let mut child = cmd
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {TESSERA}: {e}"));
        // Both pipes are drained for the process's whole life, so that it never
        // blocks on a full pipe: stdout line by line to whoever waits for the
        // address, stderr into a bounded tail for failure messages.
        let (tx, stdout) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // Nobody listens after the address: keep draining anyway.
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut t = lock(&tail);
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        Starting {
            name,
            child: Process(child),
            stdout,
            stderr,
        }
    }

    /// `node1`, `node2`... in the order the cluster started them.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `http://ADDR`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// SIGKILL, and reaps the process: a crash, nothing finished or flushed.
    pub(crate) fn kill_hard(&self) {
        let mut child = lock(&self.child);
        let _ = child.0.kill();
        let _ = child.0.wait();
    }

    /// SIGTERM (a graceful stop), then waits for the exit; a node still running
    /// after the deadline is killed and the test fails.
    pub(crate) fn stop(&self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(sent.success(), "kill -TERM {} failed: {sent}", self.pid);
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = lock(&self.child).0.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill_hard();
                panic!(
                    "{} still running {STOP_DEADLINE:?} after SIGTERM{}",
                    self.name,
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of its stderr, as a block for a failure message.
    pub(crate) fn tail(&self) -> String {
        format_tail(&self.name, &self.stderr)
    }
}

impl Starting {
    /// Waits until the node says where it listens; fails the test (with its stderr)
    /// if it exits or says nothing in time.
    pub(crate) fn ready(mut self) -> Node {
        const PREFIX: &str = "tessera listening on http://";
        let deadline = Instant::now() + START_DEADLINE;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .stdout
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(PREFIX) {
                        break addr
                            .parse::<SocketAddr>()
                            .unwrap_or_else(|e| panic!("{}: {line:?}: {e}", self.name));
                    }
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{} did not say where it listens within {START_DEADLINE:?}{}",
                        self.name,
                        format_tail(&self.name, &self.stderr)
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.0.wait().unwrap();
                    // Let the stderr thread read the last words.
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "{} exited before listening ({status}){}",
                        self.name,
                        format_tail(&self.name, &self.stderr)
                    );
                }
            }
        };
        Node {
            pid: self.child.0.id(),
            url: format!("http://{addr}"),
            name: self.name,
            child: Mutex::new(self.child),
            stderr: self.stderr,
        }
    }
}

/// The stderr tails of `nodes`, for a failure message.
pub(crate) fn tails(nodes: &[&Node]) -> String {
    nodes.iter().map(|n| n.tail()).collect()
}

fn format_tail(name: &str, stderr: &Mutex<VecDeque<String>>) -> String {
    let t = lock(stderr);
    if t.is_empty() {
        return format!("\n--- {name}: nothing on stderr");
    }
    let mut s = format!("\n--- {name}: the last {} lines of stderr:", t.len());
    for line in t.iter() {
        s.push_str("\n    ");
        s.push_str(line);
    }
    s
}

/// A lock that a panicking holder does not poison for the failure message.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ----- a TCP proxy that can be cut -----------------------------------------------------

/// Forwards TCP connections from its own address to a target. [`Proxy::cut`]
/// refuses new connections and kills live ones (the target looks gone, as when
/// the database's host goes down); [`Proxy::restore`] accepts again, on the same
/// address. Plain threads, so it does not depend on the test's runtime.
pub(crate) struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepter: Option<JoinHandle<()>>,
}

struct Shared {
    target: SocketAddr,
    stop: AtomicBool,
    state: Mutex<ProxyState>,
}

struct ProxyState {
    /// `None` while cut: connecting is refused.
    listener: Option<TcpListener>,
    /// Live connections, by number: both ends of each.
    conns: HashMap<u64, [TcpStream; 2]>,
    next: u64,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `target`.
    pub(crate) fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target,
            stop: AtomicBool::new(false),
            state: Mutex::new(ProxyState {
                listener: Some(listener),
                conns: HashMap::new(),
                next: 0,
            }),
        });
        let accepter = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(&shared))
        };
        Self {
            addr,
            shared,
            accepter: Some(accepter),
        }
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Refuses new connections and kills every live one.
    pub(crate) fn cut(&self) {
        let mut state = lock(&self.shared.state);
        state.listener = None;
        for [a, b] in state.conns.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        state.conns.clear();
    }

    /// Accepts connections again, on the same address.
    pub(crate) fn restore(&self) {
        let mut state = lock(&self.shared.state);
        if state.listener.is_some() {
            return;
        }
        let listener = TcpListener::bind(self.addr)
            .unwrap_or_else(|e| panic!("the proxy cannot listen on {} again: {e}", self.addr));
        listener.set_nonblocking(true).unwrap();
        state.listener = Some(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.cut();
        if let Some(t) = self.accepter.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let accepted = {
            let state = lock(&shared.state);
            state.listener.as_ref().map(TcpListener::accept)
        };
        match accepted {
            Some(Ok((client, _))) => forward(shared, client),
            // Nothing waiting (or cut, or a transient accept error): look again soon.
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Connects `client` to the target and copies both ways, each on a thread; when
/// either side ends, both do.
fn forward(shared: &Arc<Shared>, client: TcpStream) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(shared.target) else {
        return; // the client sees its connection closed
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    let id = {
        let mut state = lock(&shared.state);
        if state.listener.is_none() {
            return; // cut while connecting
        }
        let id = state.next;
        state.next += 1;
        state.conns.insert(id, [c3, s3]);
        id
    };
    for (mut from, mut to) in [(client, s2), (server, c2)] {
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            lock(&shared.state).conns.remove(&id);
        });
    }
}

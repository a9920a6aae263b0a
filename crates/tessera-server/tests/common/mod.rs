//! A fresh database for one test, on the backend the test target chooses: a SQLite
//! file in a temporary directory, or a PostgreSQL schema of its own (random name,
//! dropped at the end) in the database `TESSERA_TEST_POSTGRES` names, so that tests
//! run in parallel. Without that variable a PostgreSQL test says SKIPPED on stderr.

// Each test target uses part of this module.
#![allow(dead_code)]

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

/// The variable that names the PostgreSQL database of the tests.
pub(crate) const POSTGRES_VAR: &str = "TESSERA_TEST_POSTGRES";

/// A key-encryption key for tests that need one configured (PostgreSQL).
pub(crate) const TEST_KEK: &str = "dGVzc2VyYS10ZXN0LWtleS1lbmNyeXB0aW9uLWtleTA";

/// Where a test target's cases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A SQLite file per test.
    Sqlite,
    /// A PostgreSQL schema per test.
    Postgres,
}

/// One test's database; dropped (file or schema) with it.
pub(crate) struct TestDb {
    /// Its URL, for `Config::database` or `store::open`.
    pub(crate) url: String,
    guard: Guard,
}

enum Guard {
    Dir(tempfile::TempDir),
    Schema(PgSchema),
}

impl TestDb {
    /// A fresh database on `backend`; `None` after printing SKIPPED when the
    /// backend is PostgreSQL and `TESSERA_TEST_POSTGRES` is unset.
    pub(crate) async fn new(backend: Backend, test: &str) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("t.db").display());
                Some(Self {
                    url,
                    guard: Guard::Dir(dir),
                })
            }
            Backend::Postgres => {
                let Some(server) = postgres_url() else {
                    skipped(test);
                    return None;
                };
                let schema = PgSchema::create(&server).await;
                Some(Self {
                    url: schema.url.clone(),
                    guard: Guard::Schema(schema),
                })
            }
        }
    }

    /// Everything the database holds, as bytes a secret stored in plain would show
    /// up in: the SQLite file, or every row of every table of the schema as text
    /// (bytea in escape form, so printable bytes appear as they are).
    pub(crate) async fn raw_contents(&self) -> Vec<u8> {
        match &self.guard {
            Guard::Dir(d) => std::fs::read(d.path().join("t.db")).unwrap(),
            Guard::Schema(s) => {
                let mut conn = sqlx::PgConnection::connect(&s.server).await.unwrap();
                sqlx::query("SET bytea_output = 'escape'")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                )
                .bind(&s.name)
                .fetch_all(&mut conn)
                .await
                .unwrap();
                assert!(!tables.is_empty(), "no tables in {}", s.name);
                let mut out = Vec::new();
                for t in tables {
                    let rows: Vec<String> = sqlx::query_scalar(&format!(
                        "SELECT t::text FROM \"{}\".\"{t}\" t",
                        s.name
                    ))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    for r in rows {
                        out.extend_from_slice(r.as_bytes());
                        out.push(b'\n');
                    }
                }
                out
            }
        }
    }
}

/// Says on stderr that `test` did not run. Written to the process's stderr itself,
/// not with `eprintln!`, which the test harness captures and shows only for a
/// failing test: a skip must be visible in every run.
pub(crate) fn skipped(test: &str) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test} on PostgreSQL ({POSTGRES_VAR} unset)"
    );
}

/// The variable that names the Redis of the tests.
pub(crate) const REDIS_VAR: &str = "TESSERA_TEST_REDIS";

/// The Redis of the tests, if configured; SKIPPED on stderr for `test` otherwise.
pub(crate) fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var(REDIS_VAR).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test} on Redis ({REDIS_VAR} unset)"
        );
    }
    url
}

/// A key prefix of one test's own, so that tests share one Redis in parallel.
pub(crate) fn redis_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let random = RandomState::new().hash_one(N.fetch_add(1, Ordering::Relaxed));
    format!("tessera-test:{}:{random:016x}:", std::process::id())
}

/// Says on stderr that `test` did not run, and why.
pub(crate) fn skipped_because(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test} ({why})");
}

/// The PostgreSQL server of the tests, if configured.
pub(crate) fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_VAR).ok().filter(|u| !u.is_empty())
}

/// A schema of one test's own, dropped (with everything in it) on drop.
pub(crate) struct PgSchema {
    /// The server's URL, as `TESSERA_TEST_POSTGRES` gives it.
    pub(crate) server: String,
    /// The schema's name.
    pub(crate) name: String,
    /// The server's URL with the schema as the search path.
    pub(crate) url: String,
}

impl PgSchema {
    /// Creates a schema with a fresh random name.
    pub(crate) async fn create(server: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let random = RandomState::new().hash_one(N.fetch_add(1, Ordering::Relaxed));
        let name = format!("tessera_test_{}_{random:016x}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_VAR}={server}: cannot connect: {e}"));
        sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}options=-csearch_path%3D{name}");
        Self {
            server: server.to_string(),
            name,
            url,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: drop the
        // schema from a thread with a runtime of its own. A lock timeout keeps a
        // connection left in a transaction from holding the test forever.
        let (server, name) = (self.server.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&server).await?;
                sqlx::query("SET lock_timeout = '10s'")
                    .execute(&mut conn)
                    .await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("warning: could not drop the test schema {}", self.name);
        }
    }
}

/// Log lines, as the global subscriber of [`captured_logs`] writes them.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every test's log lines (TRACE, JSON), captured by one global subscriber that the
/// servers' harnesses install, so that a log test sees events from every task and
/// thread.
pub(crate) fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,hyper=info,h2=info,reqwest=info",
            ))
            .with_writer(move || sink.clone())
            .try_init();
        logs
    })
}

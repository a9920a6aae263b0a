//! Typed, layered configuration: defaults, then a TOML file, then `TESSERA_*`
//! environment variables, then command-line flags.
//!
//! Every key of the TOML file is a top-level key; the variable for `access_ttl` is
//! `TESSERA_ACCESS_TTL`. An unknown key is an error in both places: a misspelt
//! `TESSERA_ACESS_TTL` stops the start and is named, as a misspelt key of the file
//! is (only `TESSERA_TEST_*`, `TESSERA_BENCH_*` and `TESSERA_VECTORS`, the test
//! harnesses' own variables, are left alone). Lists (`cors_allow_origins`) are comma-separated in the
//! environment. Durations are seconds or a number with `s`, `m`, `h` or `d`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use tessera_jose::Algorithm;

/// Everything the server can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The listen address, HOST:PORT.
    pub addr: String,
    /// The database URL: `sqlite://PATH`, or `postgres://...` (also `postgresql://`)
    /// for many nodes, which then need `issuer` and `key_encryption_key` set.
    pub database: String,
    /// The issuer URL; by default `http://` + the listen address (with PostgreSQL
    /// it must be set, the same on every node).
    pub issuer: Option<String>,
    /// The audience of `/auth` access tokens; by default the issuer.
    pub audience: Option<String>,
    /// Lifetime of access tokens.
    #[serde(deserialize_with = "duration")]
    pub access_ttl: i64,
    /// A refresh family ends after this long without use.
    #[serde(deserialize_with = "duration")]
    pub refresh_idle_ttl: i64,
    /// A refresh family ends this long after login, used or not.
    #[serde(deserialize_with = "duration")]
    pub refresh_absolute_ttl: i64,
    /// Within this interval a spent refresh token answers its successor again.
    #[serde(deserialize_with = "duration")]
    pub refresh_reuse_interval: i64,
    /// Lifetime of a stateful-mode session (idle).
    #[serde(deserialize_with = "duration")]
    pub session_ttl: i64,
    /// `auto`, `true` or `false`: the Secure attribute and the `__Host-` prefix.
    pub cookie_secure: CookieSecure,
    /// Origins allowed by CORS; empty means CORS is off.
    #[serde(deserialize_with = "string_list")]
    pub cors_allow_origins: Vec<String>,
    /// Proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` headers
    /// name the client; empty means no such header is believed.
    #[serde(deserialize_with = "string_list")]
    pub trusted_proxies: Vec<String>,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id parallelism.
    pub argon2_parallelism: u32,
    /// `on` or `off`.
    pub rate_limits: Switch,
    /// Failed logins or refreshes per account within the window before 429.
    pub rate_limit_account_failures: u32,
    /// Failed logins or refreshes per client address within the window before 429.
    pub rate_limit_address_failures: u32,
    /// The window of the failure counters.
    #[serde(deserialize_with = "duration")]
    pub rate_limit_window: i64,
    /// Concurrent sessions (refresh families) per user; 0 means no limit.
    pub session_limit: u32,
    /// What happens at the limit.
    pub session_limit_policy: SessionLimitPolicy,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `tessera_server=debug`.
    pub log_level: String,
    /// The algorithm of new signing keys.
    pub signing_alg: String,
    /// The algorithm of new ID-token signing keys: `RS256` (the default, which
    /// OpenID Connect requires every provider to support) or `ES256`. ID tokens have
    /// a key set of their own, so access tokens keep `signing_alg`.
    pub id_token_signing_alg: String,
    /// The key that encrypts signing keys at rest: 32 bytes, base64url. With
    /// PostgreSQL it, or `key_encryption_key_file`, must be set, the same on every node.
    pub key_encryption_key: Option<SecretString>,
    /// A file holding that key; by default `DATABASE_PATH.key` (SQLite only).
    pub key_encryption_key_file: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The `scope` claim of `/auth` access tokens.
    pub scope: String,
    /// Scopes of the deployment's APIs that OAuth discovery names in
    /// `scopes_supported`, after `openid`, `profile` and `offline_access`
    /// (comma-separated in the environment). Clients may be registered with other
    /// scopes too: discovery need not name them all (RFC 8414 §2).
    #[serde(deserialize_with = "string_list")]
    pub oauth_scopes: Vec<String>,
    /// How often the server re-reads signing keys from the database (a rotation by
    /// the CLI takes effect within this interval).
    #[serde(deserialize_with = "duration")]
    pub key_reload_interval: i64,
    /// How long a client has to send a request's head, and then its body; also how
    /// long an idle keep-alive connection is kept. A slow or silent client is cut off.
    #[serde(deserialize_with = "duration")]
    pub http_read_timeout: i64,
    /// PostgreSQL: the most connections of this node's pool (every node has its own:
    /// nodes × this must stay under the server's `max_connections`).
    pub database_max_connections: u32,
    /// The Redis URL (`redis://[USER:PASSWORD@]HOST:PORT[/DB]`) of the hot state that
    /// nodes share: failure counters, the revocation broadcast, stateful sessions.
    /// None: this node keeps them itself (counters in memory, sessions in the database).
    pub redis: Option<SecretString>,
    /// The prefix of every Redis key and channel of this deployment.
    pub redis_key_prefix: String,
    /// The bearer tokens that may read `GET /auth/revocations` (comma-separated in
    /// the environment); none: the route is 404.
    #[serde(deserialize_with = "secret_list")]
    pub revocation_feed_tokens: Vec<SecretString>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            database: "sqlite://tessera.db".into(),
            issuer: None,
            audience: None,
            access_ttl: 15 * 60,
            refresh_idle_ttl: 14 * 86_400,
            refresh_absolute_ttl: 30 * 86_400,
            refresh_reuse_interval: 10,
            session_ttl: 8 * 3600,
            cookie_secure: CookieSecure::Auto,
            cors_allow_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            rate_limits: Switch::On,
            rate_limit_account_failures: 10,
            rate_limit_address_failures: 50,
            rate_limit_window: 15 * 60,
            session_limit: 0,
            session_limit_policy: SessionLimitPolicy::Refuse,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            signing_alg: "ES256".into(),
            id_token_signing_alg: "RS256".into(),
            key_encryption_key: None,
            key_encryption_key_file: None,
            max_body_bytes: 64 * 1024,
            scope: "api".into(),
            oauth_scopes: Vec::new(),
            key_reload_interval: 5,
            http_read_timeout: 30,
            database_max_connections: 16,
            redis: None,
            redis_key_prefix: "tessera:".into(),
            revocation_feed_tokens: Vec::new(),
        }
    }
}

/// The configuration could not be read.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("TESSERA_") else {
                continue;
            };
            let mut key = key.to_ascii_lowercase();
            // TESSERA_LOG is the short form of TESSERA_LOG_LEVEL (the latter wins).
            if key == "log" {
                if env.iter().any(|(n, _)| n == "TESSERA_LOG_LEVEL") {
                    continue;
                }
                key = "log_level".into();
            }
            if !KEYS.contains(&key.as_str()) {
                if NOT_CONFIG.iter().any(|p| name.starts_with(p)) {
                    continue;
                }
                return Err(ConfigError(format!(
                    "unknown configuration variable {name} (a TESSERA_* variable names a key of the configuration, e.g. TESSERA_ACCESS_TTL)"
                )));
            }
            table.insert(key.clone(), env_value(&key, value));
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(format!("invalid configuration: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the whole configuration (again, after command-line flags changed it).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.signing_algorithm()?;
        self.id_token_algorithm()?;
        crate::proxy::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ConfigError(format!("trusted_proxies: {e}")))?;
        self.database()?;
        for (name, v) in [
            ("access_ttl", self.access_ttl),
            ("refresh_idle_ttl", self.refresh_idle_ttl),
            ("refresh_absolute_ttl", self.refresh_absolute_ttl),
            ("session_ttl", self.session_ttl),
            ("rate_limit_window", self.rate_limit_window),
            ("key_reload_interval", self.key_reload_interval),
            ("http_read_timeout", self.http_read_timeout),
        ] {
            if v <= 0 {
                return Err(ConfigError(format!("{name} must be positive")));
            }
        }
        if let Some(url) = &self.redis {
            use secrecy::ExposeSecret as _;
            let url = url.expose_secret();
            if !["redis://", "redis+unix://", "unix://"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                return Err(ConfigError(
                    "redis must be a redis://HOST:PORT[/DB] or redis+unix:///PATH URL (TLS: a local stunnel or a sidecar)".into(),
                ));
            }
        }
        if !(1..=1000).contains(&self.database_max_connections) {
            return Err(ConfigError(
                "database_max_connections must be 1 to 1000".into(),
            ));
        }
        if self.redis_key_prefix.is_empty() || self.redis_key_prefix.len() > 64 {
            return Err(ConfigError(
                "redis_key_prefix must be 1 to 64 characters".into(),
            ));
        }
        {
            use secrecy::ExposeSecret as _;
            if self
                .revocation_feed_tokens
                .iter()
                .any(|t| t.expose_secret().len() < 16)
            {
                return Err(ConfigError(
                    "each of revocation_feed_tokens must be at least 16 characters (a random secret)"
                        .into(),
                ));
            }
        }
        for s in &self.oauth_scopes {
            crate::domain::ScopeToken::parse(s)
                .map_err(|e| ConfigError(format!("oauth_scopes: {e}")))?;
        }
        if self.refresh_reuse_interval < 0 {
            return Err(ConfigError(
                "refresh_reuse_interval must not be negative".into(),
            ));
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism.max(1)
            || self.argon2_iterations == 0
            || self.argon2_parallelism == 0
        {
            return Err(ConfigError("argon2 parameters are out of range".into()));
        }
        Ok(())
    }

    /// The listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.addr
            .parse()
            .map_err(|_| ConfigError(format!("addr {:?} is not HOST:PORT", self.addr)))
    }

    /// The algorithm of new signing keys: a JWS algorithm whose public key can be
    /// published (checked by name; no key is made to find out).
    pub fn signing_algorithm(&self) -> Result<Algorithm, ConfigError> {
        let alg: Algorithm = self.signing_alg.parse().map_err(|_| {
            ConfigError(format!(
                "signing_alg {:?} is not a JWS algorithm",
                self.signing_alg
            ))
        })?;
        crate::keys::signing_key_kind(alg).map_err(|e| ConfigError(format!("signing_alg: {e}")))?;
        Ok(alg)
    }

    /// The algorithm of new ID-token signing keys: RS256 or ES256 (the two that
    /// OpenID Connect relying parties are sure to support).
    pub fn id_token_algorithm(&self) -> Result<Algorithm, ConfigError> {
        match self.id_token_signing_alg.as_str() {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(ConfigError(format!(
                "id_token_signing_alg {other:?} must be RS256 or ES256"
            ))),
        }
    }

    /// The database `database` names. With PostgreSQL, an error unless `issuer` and
    /// a key-encryption key are set: their SQLite defaults (an issuer from the listen
    /// address, a key file beside the database) would differ from node to node.
    pub fn database(&self) -> Result<Database, ConfigError> {
        let db: Database = self.database.parse()?;
        if let Database::Postgres(_) = db {
            let mut missing = Vec::new();
            if self.issuer.is_none() {
                missing.push("issuer (TESSERA_ISSUER)");
            }
            if self.key_encryption_key.is_none() && self.key_encryption_key_file.is_none() {
                missing.push(
                    "key_encryption_key (TESSERA_KEY_ENCRYPTION_KEY) or key_encryption_key_file",
                );
            }
            if !missing.is_empty() {
                return Err(ConfigError(format!(
                    "with a PostgreSQL database every node must be configured alike (the SQLite \
                     defaults would differ per node): set {}",
                    missing.join(" and ")
                )));
            }
        }
        Ok(db)
    }

    /// The file path inside a `sqlite://` database URL.
    pub fn sqlite_path(&self) -> Result<String, ConfigError> {
        sqlite_path(&self.database)
    }
}

/// The database a `database` URL names.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Database {
    /// A SQLite file: `sqlite://PATH` or `sqlite:PATH`.
    Sqlite(PathBuf),
    /// A PostgreSQL database: the URL as given (`postgres://` or `postgresql://`).
    /// It may hold a password, so it never prints.
    Postgres(String),
}

impl std::str::FromStr for Database {
    type Err = ConfigError;

    fn from_str(url: &str) -> Result<Self, ConfigError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_string()));
        }
        if url.starts_with("sqlite:") {
            return Ok(Self::Sqlite(PathBuf::from(sqlite_path(url)?)));
        }
        Err(ConfigError(
            "database must be a sqlite://PATH or a postgres://USER@HOST/DB URL".into(),
        ))
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f
                .debug_tuple("Postgres")
                .field(&crate::redact::Redacted)
                .finish(),
        }
    }
}

/// The file path inside a `sqlite://PATH` (or `sqlite:PATH`) URL.
pub fn sqlite_path(url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| ConfigError(format!("database {url:?} is not a sqlite:// URL")))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(ConfigError(format!("database {url:?} names no file")));
    }
    Ok(path.to_string())
}

/// `cookie_secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum CookieSecure {
    /// Secure, except for an `http://` issuer on a loopback address.
    Auto,
    /// Always Secure with the `__Host-` prefix.
    Always,
    /// Never (development only).
    Never,
}

impl<'de> Deserialize<'de> for CookieSecure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            B(bool),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::B(true) => Ok(Self::Always),
            Raw::B(false) => Ok(Self::Never),
            Raw::S(s) => match s.as_str() {
                "auto" => Ok(Self::Auto),
                "true" => Ok(Self::Always),
                "false" => Ok(Self::Never),
                _ => Err(de::Error::custom(
                    "cookie_secure must be auto, true or false",
                )),
            },
        }
    }
}

/// `on` / `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// What a login does when the user is at the session limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionLimitPolicy {
    /// The new login is refused.
    Refuse,
    /// The oldest session ends.
    EvictOldest,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// `TESSERA_*` names that are not configuration: the test and benchmark
/// harnesses' own variables, which a server they start inherits.
const NOT_CONFIG: &[&str] = &["TESSERA_TEST_", "TESSERA_BENCH_", "TESSERA_VECTORS"];

const KEYS: &[&str] = &[
    "addr",
    "database",
    "issuer",
    "audience",
    "access_ttl",
    "refresh_idle_ttl",
    "refresh_absolute_ttl",
    "refresh_reuse_interval",
    "session_ttl",
    "cookie_secure",
    "cors_allow_origins",
    "trusted_proxies",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "rate_limits",
    "rate_limit_account_failures",
    "rate_limit_address_failures",
    "rate_limit_window",
    "session_limit",
    "session_limit_policy",
    "log_format",
    "log_level",
    "signing_alg",
    "id_token_signing_alg",
    "key_encryption_key",
    "key_encryption_key_file",
    "max_body_bytes",
    "scope",
    "oauth_scopes",
    "key_reload_interval",
    "http_read_timeout",
    "database_max_connections",
    "redis",
    "redis_key_prefix",
    "revocation_feed_tokens",
];

fn env_value(key: &str, value: &str) -> toml::Value {
    const NUMBERS: &[&str] = &[
        "argon2_memory_kib",
        "argon2_iterations",
        "argon2_parallelism",
        "rate_limit_account_failures",
        "rate_limit_address_failures",
        "session_limit",
        "max_body_bytes",
        "database_max_connections",
    ];
    if [
        "cors_allow_origins",
        "trusted_proxies",
        "revocation_feed_tokens",
        "oauth_scopes",
    ]
    .contains(&key)
    {
        return toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        );
    }
    if NUMBERS.contains(&key)
        && let Ok(n) = value.trim().parse::<i64>()
    {
        return toml::Value::Integer(n);
    }
    toml::Value::String(value.to_string())
}

/// Parses `15m`, `30s`, `2h`, `1d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let t = text.trim();
    let (num, mult) = match t.as_bytes().last()? {
        b's' => (&t[..t.len() - 1], 1),
        b'm' => (&t[..t.len() - 1], 60),
        b'h' => (&t[..t.len() - 1], 3600),
        b'd' => (&t[..t.len() - 1], 86_400),
        _ => (t, 1),
    };
    num.parse::<i64>().ok()?.checked_mul(mult)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(i64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => parse_duration(&s).ok_or_else(|| {
            de::Error::custom(format!("{s:?} is not a duration (e.g. 30s, 15m, 2h, 1d)"))
        }),
    }
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        L(Vec<String>),
        S(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::L(v) => v,
        Raw::S(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

fn secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(string_list(d)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(c.access_ttl, 900);
        assert_eq!(c.refresh_reuse_interval, 10);
        assert_eq!(
            (
                c.argon2_memory_kib,
                c.argon2_iterations,
                c.argon2_parallelism
            ),
            (19_456, 2, 1)
        );
        assert_eq!(c.cookie_secure, CookieSecure::Auto);
        assert_eq!(c.session_limit, 0);
        assert_eq!(c.database, "sqlite://tessera.db");
    }

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("tessera-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.toml");
        std::fs::write(
            &file,
            "access_ttl = \"5m\"\ncookie_secure = true\nsession_limit = 3\n",
        )
        .unwrap();
        let c = Config::load_from(
            Some(&file),
            &env(&[
                ("TESSERA_SESSION_LIMIT", "4"),
                ("TESSERA_RATE_LIMITS", "off"),
                (
                    "TESSERA_CORS_ALLOW_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("TESSERA_COOKIE_SECURE", "false"),
                ("TESSERA_LOG", "warn"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.access_ttl, 300);
        assert_eq!(c.session_limit, 4);
        assert_eq!(c.rate_limits, Switch::Off);
        assert_eq!(c.cookie_secure, CookieSecure::Never);
        assert_eq!(
            c.cors_allow_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::load_from(None, &env(&[("TESSERA_ACCESS_TTL", "soon")])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_COOKIE_SECURE", "maybe")])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_SIGNING_ALG", "none")])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_DATABASE", "mysql://x")])).is_err());
        assert!(Config::load_from(None, &env(&[("TESSERA_DATABASE", "tessera.db")])).is_err());
        for (var, value) in [
            ("TESSERA_DATABASE_MAX_CONNECTIONS", "0"),
            ("TESSERA_REDIS", "http://cache:6379"),
            ("TESSERA_REDIS_KEY_PREFIX", ""),
            ("TESSERA_REVOCATION_FEED_TOKENS", "short"),
        ] {
            assert!(
                Config::load_from(None, &env(&[(var, value)])).is_err(),
                "{var}={value}"
            );
        }
        let c = Config::load_from(
            None,
            &env(&[
                ("TESSERA_REDIS", "redis://127.0.0.1:6379/2"),
                (
                    "TESSERA_REVOCATION_FEED_TOKENS",
                    "0123456789abcdef0123, fedcba9876543210fedc",
                ),
                ("TESSERA_DATABASE_MAX_CONNECTIONS", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (c.revocation_feed_tokens.len(), c.database_max_connections),
            (2, 4)
        );
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
    }

    #[test]
    fn postgres_needs_the_issuer_and_the_key_encryption_key() {
        let message = |pairs: &[(&str, &str)]| match Config::load_from(None, &env(pairs)) {
            Ok(_) => String::new(),
            Err(e) => e.0,
        };
        let pg = ("TESSERA_DATABASE", "postgres://tessera@db.example/tessera");
        let issuer = ("TESSERA_ISSUER", "https://auth.example");
        let kek = (
            "TESSERA_KEY_ENCRYPTION_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        );
        let both = message(&[pg]);
        assert!(
            both.contains("issuer") && both.contains("key_encryption_key"),
            "{both}"
        );
        let no_kek = message(&[pg, issuer]);
        assert!(
            no_kek.contains("key_encryption_key") && !no_kek.contains("issuer"),
            "{no_kek}"
        );
        let no_issuer = message(&[pg, kek]);
        assert!(
            no_issuer.contains("issuer") && !no_issuer.contains("key_encryption_key"),
            "{no_issuer}"
        );
        let c = Config::load_from(None, &env(&[pg, issuer, kek])).unwrap();
        assert!(matches!(c.database().unwrap(), Database::Postgres(_)));
        let c = Config::load_from(
            None,
            &env(&[
                ("TESSERA_DATABASE", "postgresql://db/t"),
                issuer,
                ("TESSERA_KEY_ENCRYPTION_KEY_FILE", "/k"),
            ]),
        )
        .unwrap();
        assert!(matches!(c.database().unwrap(), Database::Postgres(_)));
        // SQLite keeps its defaults.
        assert_eq!(
            Config::load_from(None, &[]).unwrap().database().unwrap(),
            Database::Sqlite("tessera.db".into())
        );
        assert!(!format!("{:?}", Database::Postgres("postgres://u:pw@h/d".into())).contains("pw"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2"), Some(2));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration(""), None);
    }
}

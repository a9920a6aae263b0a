//! Entry points for the `tessera` binary: each builds its own runtime, so the
//! binary needs no async code. Each returns the process exit code.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::flows::{AuthError, ClientError, NewClient, add_user};
use crate::keys;
use crate::password::Hasher;
use crate::startup;
use crate::telemetry;

/// `tessera serve`: 0 after a graceful shutdown, 1 when startup fails, 2 for a
/// bad configuration.
pub fn serve(
    config_file: Option<PathBuf>,
    addr: Option<String>,
    database: Option<String>,
    redis: Option<String>,
    log_json: bool,
) -> i32 {
    let mut config = match Config::load(config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    if let Some(a) = addr {
        config.addr = a;
    }
    if let Some(d) = database {
        config.database = d;
    }
    if log_json {
        config.log_format = crate::config::LogFormat::Json;
    }
    if let Some(r) = redis {
        config.redis = Some(r.into());
    }
    if let Err(e) = config.validate() {
        return usage(&e.to_string());
    }
    telemetry::init(config.log_format, &config.log_level);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let prepared = match startup::prepare(&config, Arc::new(SystemClock)).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("tessera: {e}");
                return 1;
            }
        };
        let addr = prepared.local_addr();
        println!("tessera listening on http://{addr}");
        tracing::info!(%addr, issuer = %prepared.state().core.settings.issuer, "listening");
        match prepared.run(startup::shutdown_signal()).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("tessera: {e}");
                1
            }
        }
    })
}

/// `tessera user add USERNAME [--role R]...`: the password is the first line of
/// stdin. Prints `{"id", "username", "roles"}`. 1 when the username is taken or the
/// database fails, 2 for invalid input.
pub fn user_add(username: &str, roles: Vec<String>, database: Option<String>) -> i32 {
    let mut config = match Config::load(None) {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    if let Some(d) = database {
        config.database = d;
    }
    if let Err(e) = config.validate() {
        return usage(&e.to_string());
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        return usage(&format!("cannot read the password from stdin: {e}"));
    }
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line)
        .to_string();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store = match startup::open_store(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tessera: {e}");
                return 1;
            }
        };
        let hasher = match Hasher::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
        ) {
            Ok(h) => h,
            Err(e) => return usage(&e.to_string()),
        };
        let r = add_user(
            store.as_ref(),
            &hasher,
            SystemClock.now(),
            username,
            password,
            roles,
        )
        .await;
        store.close().await;
        match r {
            Ok(u) => {
                #[derive(serde::Serialize)]
                struct Out<'a> {
                    id: &'a str,
                    username: &'a str,
                    roles: &'a [String],
                }
                let out = Out {
                    id: &u.id,
                    username: &u.username,
                    roles: &u.roles,
                };
                println!("{}", serde_json::to_string(&out).unwrap_or_default());
                0
            }
            Err(AuthError::InvalidInput(m)) => usage(&m),
            Err(AuthError::UsernameTaken) => {
                eprintln!("tessera: the username is taken");
                1
            }
            Err(e) => {
                eprintln!("tessera: {e:?}");
                1
            }
        }
    })
}

/// `tessera client add`: registers an OAuth client and prints `{"client_id",
/// "client_secret" (a confidential client's, shown this once), "redirect_uris",
/// "scope"}`. 2 for a value that breaks a rule, 1 when the id is taken or the
/// database fails.
pub fn client_add(new: NewClient, config_file: Option<PathBuf>, database: Option<String>) -> i32 {
    let config = match database_config(config_file, database) {
        Ok(c) => c,
        Err(code) => return code,
    };
    with_store(&config, async |store| {
        match crate::flows::add_client(store, SystemClock.now(), new).await {
            Ok(r) => {
                #[derive(serde::Serialize)]
                struct Out<'a> {
                    client_id: &'a str,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    client_secret: Option<&'a str>,
                    redirect_uris: &'a [String],
                    scope: String,
                }
                let out = Out {
                    client_id: &r.client.id,
                    client_secret: r.secret.as_ref().map(|s| s.as_str()),
                    redirect_uris: &r.client.redirect_uris,
                    scope: r.client.scopes.join(" "),
                };
                println!("{}", serde_json::to_string(&out).unwrap_or_default());
                0
            }
            Err(e) => client_failure(e),
        }
    })
}

/// `tessera client list`: every client as a JSON array (never a secret).
pub fn client_list(config_file: Option<PathBuf>, database: Option<String>) -> i32 {
    let config = match database_config(config_file, database) {
        Ok(c) => c,
        Err(code) => return code,
    };
    with_store(&config, async |store| {
        match crate::flows::list_clients(store).await {
            Ok(clients) => {
                let out: Vec<serde_json::Value> = clients
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "client_id": c.id,
                            "token_endpoint_auth_method": if c.secret_hash.is_some() {
                                "client_secret_basic"
                            } else {
                                "none"
                            },
                            "redirect_uris": c.redirect_uris,
                            "post_logout_redirect_uris": c.post_logout_redirect_uris,
                            "grant_types": c.grants,
                            "scope": c.scopes.join(" "),
                            "client_id_issued_at": c.created_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(out));
                0
            }
            Err(e) => client_failure(e),
        }
    })
}

/// `tessera client remove ID`: removes the client and its refresh families. 1 when
/// there is no such client.
pub fn client_remove(id: &str, config_file: Option<PathBuf>, database: Option<String>) -> i32 {
    let config = match database_config(config_file, database) {
        Ok(c) => c,
        Err(code) => return code,
    };
    with_store(&config, async |store| {
        match crate::flows::remove_client(store, id).await {
            Ok(()) => {
                println!(
                    "{}",
                    serde_json::json!({ "client_id": id, "removed": true })
                );
                0
            }
            Err(e) => client_failure(e),
        }
    })
}

fn client_failure(e: ClientError) -> i32 {
    match e {
        ClientError::Invalid(m) => usage(&m),
        ClientError::Taken => {
            eprintln!("tessera: the client id is taken");
            1
        }
        ClientError::NotFound => {
            eprintln!("tessera: no such client");
            1
        }
        e => {
            eprintln!("tessera: {e}");
            1
        }
    }
}

/// The configuration of a command that opens the database: defaults, a file, the
/// environment, then `--database`; `Err(2)` when it is not valid.
fn database_config(config_file: Option<PathBuf>, database: Option<String>) -> Result<Config, i32> {
    let mut config = Config::load(config_file.as_deref()).map_err(|e| usage(&e.to_string()))?;
    if let Some(d) = database {
        config.database = d;
    }
    config.validate().map_err(|e| usage(&e.to_string()))?;
    Ok(config)
}

/// Runs `f` on the store of `config` (created and migrated if absent), then closes
/// it; 1 when the store cannot be opened.
fn with_store(config: &Config, f: impl AsyncFnOnce(&dyn crate::store::Store) -> i32) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store = match startup::open_store(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tessera: {e}");
                return 1;
            }
        };
        let code = f(store.as_ref()).await;
        store.close().await;
        code
    })
}

/// `tessera key rotate`: the next key becomes current, a new next key is
/// published, and the old current stays published until its tokens expire. A
/// running server picks the change up within `key_reload_interval`.
pub fn key_rotate(config_file: Option<PathBuf>, database: Option<String>) -> i32 {
    let mut config = match Config::load(config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    if let Some(d) = database {
        config.database = d;
    }
    if let Err(e) = config.validate() {
        return usage(&e.to_string());
    }
    let alg = match config.signing_algorithm() {
        Ok(a) => a,
        Err(e) => return usage(&e.to_string()),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store = match startup::open_store(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tessera: {e}");
                return 1;
            }
        };
        let r = rotate_with(&config, store.as_ref(), alg, SystemClock.now()).await;
        store.close().await;
        match r {
            Ok(out) => {
                println!("{out}");
                0
            }
            Err(e) => {
                eprintln!("tessera: {e}");
                1
            }
        }
    })
}

/// Rotates the keys of `store` under `config`; returns a JSON summary of the
/// published kids.
pub async fn rotate_with(
    config: &Config,
    store: &dyn crate::store::Store,
    alg: tessera_jose::Algorithm,
    now: i64,
) -> Result<String, keys::KeyError> {
    let kek = keys::load_kek(config)?;
    // The keys are read (and the current one opened) first, so that a wrong
    // key-encryption key is refused before a new key sealed under it is written.
    let id_token = config
        .id_token_algorithm()
        .map_err(|e| keys::KeyError(e.to_string()))?;
    let algs = keys::KeyAlgs {
        access: alg,
        id_token,
    };
    let ring = keys::KeyRing::load(store, kek, algs, now).await?;
    // The old key stays published while tokens it signed may live: their lifetime,
    // plus the time a running server may take to notice the rotation.
    let publish_for = config.access_ttl + config.key_reload_interval + 60;
    keys::rotate(store, ring.kek(), algs, now, publish_for).await?;
    ring.reload(store, now).await?;
    let k = ring.current();
    let kids = |set: &tessera_jose::JwkSet| {
        set.keys()
            .iter()
            .filter_map(|j| j.kid().map(str::to_string))
            .collect::<Vec<_>>()
    };
    Ok(serde_json::json!({
        "current": k.kid,
        "published": kids(&k.published),
        "id_token_current": k.id_kid,
        "id_token_published": kids(&k.id_published),
    })
    .to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("tessera: cannot start the async runtime: {e}");
            1
        })
}

fn usage(msg: &str) -> i32 {
    eprintln!("tessera: {msg}");
    2
}

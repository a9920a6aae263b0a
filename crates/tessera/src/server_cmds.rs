//! The commands that need the server and its database: `serve`, `user`, `client`,
//! `key rotate`. Owned by the server work; `main.rs` only dispatches here.

use clap::{Args, Subcommand};

/// `tessera serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// The listen address, HOST:PORT.
    #[arg(long)]
    pub addr: Option<String>,
    /// The database URL (default sqlite://tessera.db).
    #[arg(long)]
    pub database: Option<String>,
    /// The Redis URL (scale-out mode).
    #[arg(long)]
    pub redis: Option<String>,
    /// Log one JSON object per line (same as TESSERA_LOG_FORMAT=json).
    #[arg(long)]
    pub log_json: bool,
}

/// `tessera user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a user; the password is the first line of stdin.
    Add {
        /// The username.
        username: String,
        /// A role to grant (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// The database URL (default sqlite://tessera.db).
        #[arg(long)]
        database: Option<String>,
    },
}

/// `tessera client ...`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Registers an OAuth client; prints {"client_id", "client_secret" (shown once),
    /// "redirect_uris", "scope"}.
    Add {
        /// The client id: 1 to 64 of A-Z a-z 0-9 - . _ ~
        client_id: String,
        /// A redirect URI, matched exactly (repeatable; needed for the
        /// authorization_code grant): https, http on a loopback host, or a
        /// private-use scheme such as com.example.app:/cb.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may send the browser back to (repeatable).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// Make a confidential client with a generated secret (printed once);
        /// without it, a public client (PKCE, no client credentials).
        #[arg(long)]
        secret: bool,
        /// A scope the client may ask for (repeatable, or space-separated).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// A grant: authorization_code, refresh_token, client_credentials
        /// (repeatable; default: the first two, and client_credentials with --secret).
        #[arg(long = "grant", value_name = "G")]
        grants: Vec<String>,
        /// The database URL (default sqlite://tessera.db).
        #[arg(long)]
        database: Option<String>,
        /// A TOML configuration file.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
    /// Lists the OAuth clients as a JSON array (never their secrets).
    List {
        /// The database URL (default sqlite://tessera.db).
        #[arg(long)]
        database: Option<String>,
        /// A TOML configuration file.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
    /// Removes an OAuth client and ends its refresh tokens.
    Remove {
        /// The client id.
        client_id: String,
        /// The database URL (default sqlite://tessera.db).
        #[arg(long)]
        database: Option<String>,
        /// A TOML configuration file.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

/// `tessera key rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The database URL (default sqlite://tessera.db).
    #[arg(long)]
    pub database: Option<String>,
    /// A TOML configuration file.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

/// Runs `serve`; returns the process exit code.
pub fn serve(args: ServeArgs) -> i32 {
    tessera_server::cli::serve(
        args.config,
        args.addr,
        args.database,
        args.redis,
        args.log_json,
    )
}

/// Runs a `user` subcommand; returns the process exit code.
pub fn user(cmd: UserCommand) -> i32 {
    match cmd {
        UserCommand::Add {
            username,
            roles,
            database,
        } => tessera_server::cli::user_add(&username, roles, database),
    }
}

/// Runs a `client` subcommand; returns the process exit code.
pub fn client(cmd: ClientCommand) -> i32 {
    use tessera_server::flows::NewClient;
    match cmd {
        ClientCommand::Add {
            client_id,
            redirect_uris,
            post_logout_redirect_uris,
            secret,
            scopes,
            grants,
            database,
            config,
        } => tessera_server::cli::client_add(
            NewClient {
                id: client_id,
                confidential: secret,
                redirect_uris,
                post_logout_redirect_uris,
                scopes,
                grants,
            },
            config,
            database,
        ),
        ClientCommand::List { database, config } => {
            tessera_server::cli::client_list(config, database)
        }
        ClientCommand::Remove {
            client_id,
            database,
            config,
        } => tessera_server::cli::client_remove(&client_id, config, database),
    }
}

/// Runs `key rotate`; returns the process exit code.
pub fn key_rotate(args: RotateArgs) -> i32 {
    tessera_server::cli::key_rotate(args.config, args.database)
}

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
    /// Registers an OAuth client.
    Add {
        /// The client id.
        client_id: String,
        /// An allowed redirect URI (repeatable).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Make a confidential client with a generated secret.
        #[arg(long)]
        secret: bool,
        /// An allowed scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An allowed grant (repeatable).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// The database URL (default sqlite://tessera.db).
        #[arg(long)]
        database: Option<String>,
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
pub fn client(_cmd: ClientCommand) -> i32 {
    not_yet("client add (OAuth clients)")
}

/// Runs `key rotate`; returns the process exit code.
pub fn key_rotate(args: RotateArgs) -> i32 {
    tessera_server::cli::key_rotate(args.config, args.database)
}

fn not_yet(what: &str) -> i32 {
    eprintln!("tessera: `{what}` is not available in this build yet");
    2
}

//! The tessera binary: `serve`, `token`, `key`, `user`, `client`.
//!
//! A thin `main` over clap subcommands. The `key` and `token` commands live in
//! [`cli`]; the commands that need the server and its database live in
//! `server_cmds`. Every failure is one line on stderr starting with `tessera: `;
//! exit codes: 0 success, 1 a token or JWE refused, 2 bad usage or a key refused.
#![forbid(unsafe_code)]

mod cli;
// The seam owned by the server work: its items are `pub` for that side's
// convenience, though nothing outside this binary can reach them.
#[allow(unreachable_pub)]
mod server_cmds;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::key::KeyCommand;
use cli::token::TokenCommand;

/// Tessera: JWT authentication. Tokens, keys, users and OAuth clients.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the authentication server.
    Serve(server_cmds::ServeArgs),
    /// Signs, verifies, decodes, encrypts and decrypts tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Generates keys and prints public keys; rotates the server's keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manages users (in the server's database).
    #[command(subcommand)]
    User(server_cmds::UserCommand),
    /// Manages OAuth clients (in the server's database).
    #[command(subcommand)]
    Client(server_cmds::ClientCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = match cli.command {
        Command::Serve(args) => return exit_code(server_cmds::serve(args)),
        Command::User(cmd) => return exit_code(server_cmds::user(cmd)),
        Command::Client(cmd) => return exit_code(server_cmds::client(cmd)),
        Command::Key(KeyCommand::Rotate(args)) => return exit_code(server_cmds::key_rotate(args)),
        Command::Key(KeyCommand::Generate(args)) => cli::key::generate(&args),
        Command::Key(KeyCommand::Public(args)) => cli::key::public(&args),
        Command::Token(cmd) => cli::token::run(&cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("tessera: {failure}");
            ExitCode::from(failure.code())
        }
    }
}

/// Help and version go to stdout with exit 0; a usage error is one `tessera: ` line
/// (clap's message, its argument list folded in) and exit 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            exit_code(e.exit_code())
        }
        _ => {
            let rendered = e.render().to_string();
            let mut message = String::new();
            for line in rendered.lines() {
                let line = line.trim();
                if line.is_empty() {
                    break;
                }
                if !message.is_empty() {
                    message.push(' ');
                }
                message.push_str(line.strip_prefix("error: ").unwrap_or(line));
            }
            eprintln!("tessera: {message} (see --help)");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    // Codes outside 0..=255 cannot be exit statuses; report them as a failure.
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

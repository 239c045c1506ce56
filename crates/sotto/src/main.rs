//! `sotto`: the server, its admin commands and the terminal client.
//!
//! Exit codes: 0 success, 1 an operational error (one line on standard error,
//! `sotto: error: …`), 2 a usage error (from clap, or
//! `sotto chat` without a terminal).

mod cli;
mod client;

use anyhow::Context;
use clap::Parser;
use cli::{AdminCommand, Cli, Command, StorageArgs};
use sotto_server::service::{Actor, Services};
use sotto_server::store::Stores;
use sotto_server::{Config, serve};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<client::chat::NotATerminal>().is_some() => {
            eprintln!("sotto: error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            // Errors may quote the server or other people: made safe for the terminal.
            eprintln!("sotto: error: {}", client::output::sanitize(&describe(&e)));
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    // Usage errors exit with 2 inside `parse`.
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_logging(default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => {
            let config = Config {
                listen: args.listen,
                data_dir: args.storage.data_dir,
                database_url: args.storage.database_url,
                public_url: args.public_url,
            };
            runtime
                .block_on(serve(config))
                .context("running the server")?;
        }
        Command::Admin(AdminCommand::CreateUser(args)) => {
            let password = read_password_line(std::io::stdin().lock())?;
            runtime.block_on(create_user(&args.storage, args.to_request(password)))?;
        }
        command => runtime.block_on(client::run(command))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The context chain on one line. Some library errors repeat their cause in their own
/// message; a cause already said is not said again.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Logs go to stderr; `SOTTO_LOG` (a tracing filter such as `debug`) overrides the level.
fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOTTO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The first line of `input`, without its line ending.
fn read_password_line(mut input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password.to_owned())
}

async fn create_user(
    storage: &StorageArgs,
    request: sotto_api::CreateUserRequest,
) -> anyhow::Result<()> {
    let stores = Stores::open(&storage.data_dir, storage.database_url.as_deref())
        .await
        .context("opening storage")?;
    let services = Services::new(&stores);
    let username = request.username.clone();
    let result = services.admin.create_user(&Actor::Operator, request).await;
    stores.close().await;
    let user = result.with_context(|| format!("creating user {username}"))?;
    let role = if user.admin { "admin" } else { "user" };
    println!("created {role} {} (id {})", user.username, user.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_are_said_once() {
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(inner)
            .context("writing x: disk on fire")
            .context("saving");
        assert_eq!(super::describe(&e), "saving: writing x: disk on fire");
    }

    #[test]
    fn passwords_are_read_without_line_endings() {
        assert_eq!(super::read_password_line(&b"pw\r\nrest"[..]).unwrap(), "pw");
        assert_eq!(super::read_password_line(&b"pw"[..]).unwrap(), "pw");
        assert!(super::read_password_line(&b"\n"[..]).is_err());
    }
}

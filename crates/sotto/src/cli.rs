//! The command line, declared with clap. Every flag of `serve` also reads a `SOTTO_*`
//! environment variable.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Sotto: self-hosted team chat whose server cannot read encrypted rooms.
#[derive(Parser)]
#[command(name = "sotto", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Administer the workspace from the server's machine (works while the server runs).
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Where the data lives.
#[derive(Args)]
pub(crate) struct StorageArgs {
    /// Directory for the embedded SQLite database (created if missing).
    #[arg(long, env = "SOTTO_DATA_DIR", default_value = "./sotto-data")]
    pub(crate) data_dir: PathBuf,
    /// Use PostgreSQL instead, e.g. postgres://user@host/sotto.
    #[arg(long, env = "SOTTO_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "SOTTO_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Public base URL for links the server prints (default: http://<listen>).
    #[arg(long, env = "SOTTO_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Create a user; with --admin, an admin (this also closes the first-admin setup link).
    CreateUser(CreateUserArgs),
}

#[derive(Args)]
pub(crate) struct CreateUserArgs {
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Login name.
    #[arg(long)]
    pub(crate) username: String,
    /// Read the password from the first line of standard input (required: passwords
    /// never go on the command line, where other users could see them).
    #[arg(long, required = true)]
    pub(crate) password_stdin: bool,
    /// Name shown to others (default: the username).
    #[arg(long)]
    pub(crate) display_name: Option<String>,
    /// Make the user an admin.
    #[arg(long)]
    pub(crate) admin: bool,
}

impl CreateUserArgs {
    pub(crate) fn to_request(&self, password: String) -> sotto_api::CreateUserRequest {
        sotto_api::CreateUserRequest {
            username: self.username.clone(),
            password,
            display_name: self.display_name.clone(),
            admin: self.admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}

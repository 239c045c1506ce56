//! `sotto chat ROOM`: one live [`session`] with two front ends, the terminal interface
//! ([`tui`]) and the line protocol for scripts ([`plain`]). How room messages are shown
//! and sent lives in [`room`].

mod plain;
mod room;
mod session;
mod tui;

use crate::cli::ChatArgs;
use session::Session;
use sotto_client::Client;
use std::io::IsTerminal;

/// The terminal interface was asked for without a terminal: a usage error (exit 2).
#[derive(Debug)]
pub(crate) struct NotATerminal;

impl std::fmt::Display for NotATerminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output is not a terminal: use `sotto chat ROOM --plain`")
    }
}

impl std::error::Error for NotATerminal {}

/// Runs `sotto chat`.
pub(crate) async fn run(client: Client, args: &ChatArgs) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if !args.plain && !terminal {
        return Err(NotATerminal.into());
    }
    let room_id = crate::client::room::resolve_room(&client, &args.room).await?;
    let session = Session::open(client, &room_id).await?;
    if args.plain {
        plain::run(session, args.json).await
    } else {
        tui::run(session).await
    }
}

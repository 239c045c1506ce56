//! The client commands of `sotto`: a thin layer over `sotto-client` that reads secrets
//! safely, prints other people's text harmlessly and repeats key-change warnings.
//!
//! Modules: [`profile`] (which profile directory), [`prompt`] (secrets), [`output`]
//! (sanitizing, JSON, warnings), [`room`] (naming rooms on the command line), [`names`]
//! (names of user ids for messages), and one module per command group ([`chat`] is
//! the live session with its two front ends).

mod account;
mod admin;
pub(crate) mod chat;
mod e2e;
pub(crate) mod messages;
pub(crate) mod names;
pub(crate) mod output;
pub(crate) mod profile;
pub(crate) mod prompt;
pub(crate) mod room;
pub(crate) mod rooms;
mod search;
mod users;

use crate::cli::{
    AdminCommand, AdminRoomCommand, Command, E2eCommand, ProfileArgs, RoomCommand, SettingsCommand,
};
use sotto_client::Client;
use std::future::Future;

/// Runs a client command. `admin create-user` and `serve` are not client commands.
pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) | Command::Admin(AdminCommand::CreateUser(_)) => {
            anyhow::bail!("not a client command")
        }
        Command::Login(a) => account::login(&a).await,
        Command::Logout(a) => account::logout(&a).await,
        Command::Whoami(a) => with_client(&a.profile, |c| account::whoami(c, &a)).await,
        Command::E2e(E2eCommand::Status(a)) => {
            with_client(&a.profile, |c| e2e::status(c, &a)).await
        }
        Command::E2e(E2eCommand::Setup(a)) => with_client(&a, e2e::setup).await,
        Command::E2e(E2eCommand::Unlock(a)) => {
            with_client(&a.profile, |c| e2e::unlock(c, a.secret)).await
        }
        Command::E2e(E2eCommand::ChangePassword(a)) => {
            with_client(&a.profile, |c| e2e::change_password(c, a.secret)).await
        }
        Command::E2e(E2eCommand::Reset(a)) => {
            with_client(&a.profile, |c| e2e::reset(c, a.secret)).await
        }
        Command::Verify(a) => with_client(&a.read.profile, |c| e2e::verify(c, &a)).await,
        Command::Chat(a) => with_client(&a.profile, |c| chat::run(c, &a)).await,
        Command::Search(a) => with_client(&a.read.profile, |c| search::search(c, &a)).await,
        Command::Admin(AdminCommand::Settings(SettingsCommand::Get(a))) => {
            with_client(&a.read.profile, |c| admin::settings_get(c, &a)).await
        }
        Command::Admin(AdminCommand::Settings(SettingsCommand::Set(a))) => {
            with_client(&a.profile, |c| admin::settings_set(c, &a)).await
        }
        Command::Admin(AdminCommand::Users(a)) => {
            with_client(&a.profile, |c| admin::users(c, &a)).await
        }
        Command::Admin(AdminCommand::ResetE2e(a)) => {
            with_client(&a.profile, |c| admin::reset_e2e(c, &a)).await
        }
        Command::Admin(AdminCommand::Room(AdminRoomCommand::AddMember(a))) => {
            with_client(&a.profile, |c| admin::room_add_member(c, &a)).await
        }
        Command::Admin(AdminCommand::Room(AdminRoomCommand::RemoveMember(a))) => {
            with_client(&a.profile, |c| admin::room_remove_member(c, &a)).await
        }
        Command::Room(RoomCommand::Create(a)) => {
            with_client(&a.read.profile, |c| rooms::create(c, &a)).await
        }
        Command::Room(RoomCommand::Discussion(a)) => {
            with_client(&a.read.profile, |c| rooms::discussion(c, &a)).await
        }
        Command::Room(RoomCommand::List(a)) => {
            with_client(&a.profile, |c| rooms::list(c, &a)).await
        }
        Command::Room(RoomCommand::Members(a)) => {
            with_client(&a.read.profile, |c| rooms::members(c, &a)).await
        }
        Command::Room(RoomCommand::Invite(a)) => {
            with_client(&a.profile, |c| rooms::invite(c, &a)).await
        }
        Command::Room(RoomCommand::Remove(a)) => {
            with_client(&a.profile, |c| rooms::remove(c, &a)).await
        }
        Command::Room(RoomCommand::Leave(a)) => {
            with_client(&a.profile, |c| rooms::leave(c, &a)).await
        }
        Command::Room(RoomCommand::Encryption(a)) => {
            with_client(&a.profile, |c| rooms::encryption(c, &a)).await
        }
        Command::Room(RoomCommand::RotateKey(a)) => {
            with_client(&a.profile, |c| rooms::rotate_key(c, &a)).await
        }
        Command::Dm(a) => with_client(&a.read.profile, |c| rooms::dm(c, &a)).await,
        Command::Send(a) => with_client(&a.read.profile, |c| messages::send(c, &a)).await,
        Command::Read(a) => with_client(&a.read.profile, |c| messages::read(c, &a)).await,
        Command::Download(a) => with_client(&a.profile, |c| messages::download(c, &a)).await,
        Command::Export(a) => with_client(&a.profile, |c| messages::export(c, &a)).await,
    }
}

/// Runs `f` with the profile's client, then warns about changed keys, also when `f`
/// failed: the warning matters most when something looks wrong.
pub(crate) async fn with_client<F, Fut>(profile: &ProfileArgs, f: F) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let client = profile::open_client(profile)?;
    let result = f(client.clone()).await;
    output::warn_key_changes(&client);
    result
}

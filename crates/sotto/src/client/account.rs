//! `sotto login`, `logout`, `whoami`.

use super::output::{json_line, sanitize, warn_key_changes};
use super::profile::{open_client, open_profile};
use super::prompt::Secrets;
use crate::cli::{LoginArgs, ProfileArgs, ReadArgs};
use sotto_client::Client;

/// Logs in and keeps the session in the profile.
pub(crate) async fn login(args: &LoginArgs) -> anyhow::Result<()> {
    let profile = open_profile(&args.profile)?;
    let password = Secrets::new(args.secret.password_stdin).read("Login password: ")?;
    let client = Client::login(profile, &args.server, &args.username, &password).await?;
    println!(
        "logged in as {} on {}",
        sanitize(client.username()),
        sanitize(client.api().server())
    );
    if client.profile().keys()?.is_none() {
        println!(
            "encryption keys: run `sotto e2e status`, then `sotto e2e setup` or `sotto e2e unlock`"
        );
    }
    warn_key_changes(&client);
    Ok(())
}

/// Ends the session here and on the server.
pub(crate) async fn logout(args: &ProfileArgs) -> anyhow::Result<()> {
    let client = open_client(args)?;
    let name = sanitize(client.username());
    client.logout().await?;
    println!("logged out {name}");
    Ok(())
}

/// Who the server says this profile is.
pub(crate) async fn whoami(client: Client, args: &ReadArgs) -> anyhow::Result<()> {
    let me = client.whoami().await?;
    if args.json {
        return json_line(&serde_json::json!({
            "server": client.api().server(),
            "id": me.id,
            "username": me.username,
            "display_name": me.display_name,
            "admin": me.admin,
            "unlocked": client.is_unlocked(),
        }));
    }
    let role = if me.admin { ", admin" } else { "" };
    println!(
        "{} ({}{role}) on {}, id {}",
        sanitize(&me.username),
        sanitize(&me.display_name),
        sanitize(client.api().server()),
        sanitize(&me.id)
    );
    Ok(())
}

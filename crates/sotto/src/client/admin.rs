//! `sotto admin settings|users|reset-e2e|room`: workspace administration through the
//! API, as a logged-in admin (the server refuses others with `forbidden`).

use super::output::{json_line, sanitize};
use super::users::resolve_user;
use crate::cli::{AdminRoomMemberArgs, AdminUserArgs, ReadArgs, SettingsGetArgs, SettingsSetArgs};
use reqwest::Method;
use serde_json::{Map, Value};
use sotto_client::Client;
use sotto_client::api::seg;
use sotto_client::sotto_api::{AuditRoomList, UserList};
use sotto_client::sotto_crypto::{RoomId, UserId};

const SETTINGS: &str = "/api/v1/settings";

/// Every setting, or one.
pub(crate) async fn settings_get(client: Client, args: &SettingsGetArgs) -> anyhow::Result<()> {
    let all: Map<String, Value> = client.api().get(SETTINGS).await?;
    let shown = match &args.key {
        None => all,
        Some(key) => {
            let value = all
                .get(key)
                .ok_or_else(|| anyhow::anyhow!("no setting {}", sanitize(key)))?;
            Map::from_iter([(key.clone(), value.clone())])
        }
    };
    if args.read.json {
        return json_line(&shown);
    }
    for (key, value) in &shown {
        println!("{} = {}", sanitize(key), sanitize(&value.to_string()));
    }
    Ok(())
}

/// Changes one setting.
pub(crate) async fn settings_set(client: Client, args: &SettingsSetArgs) -> anyhow::Result<()> {
    let value = parse_value(&args.value);
    let patch = Map::from_iter([(args.key.clone(), value.clone())]);
    let _: Value = client
        .api()
        .send(Method::PATCH, SETTINGS, &Value::Object(patch))
        .await?;
    println!("{} = {}", sanitize(&args.key), sanitize(&value.to_string()));
    Ok(())
}

/// A value from the command line: a JSON boolean or number as such, anything else as a
/// string (so `sotto admin settings set x hello` needs no quotes).
fn parse_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
        _ => Value::String(text.to_owned()),
    }
}

/// Every user.
pub(crate) async fn users(client: Client, args: &ReadArgs) -> anyhow::Result<()> {
    let list: UserList = client.api().get("/api/v1/admin/users").await?;
    for u in &list.users {
        if args.json {
            json_line(u)?;
            continue;
        }
        let mut flags = Vec::new();
        if u.admin {
            flags.push("admin");
        }
        if u.deactivated {
            flags.push("deactivated");
        }
        println!(
            "{}\t{}\t{}\t{}",
            sanitize(&u.username),
            sanitize(&u.display_name),
            sanitize(&u.id),
            flags.join(",")
        );
    }
    Ok(())
}

/// Resets a user's encryption keys.
pub(crate) async fn reset_e2e(client: Client, args: &AdminUserArgs) -> anyhow::Result<()> {
    let user = resolve_user(&client, &args.user).await?;
    let path = format!("/api/v1/admin/users/{}/keys/reset", seg(user.id.as_str()));
    client
        .api()
        .send_empty::<()>(Method::POST, &path, None)
        .await?;
    println!(
        "reset the encryption keys of {}; their password logins ended: they log in again and \
         run `sotto e2e setup`",
        sanitize(&user.username)
    );
    Ok(())
}

/// A room by id, or by a name exactly one room has, among every room (the admin list).
async fn any_room(client: &Client, spec: &str) -> anyhow::Result<RoomId> {
    let all: AuditRoomList = client.api().get("/api/v1/admin/rooms").await?;
    if let Some(r) = all.rooms.iter().find(|r| r.id == spec) {
        return Ok(RoomId::new(r.id.as_str())?);
    }
    let named: Vec<_> = all
        .rooms
        .iter()
        .filter(|r| r.name.as_deref() == Some(spec))
        .collect();
    match named.as_slice() {
        [one] => Ok(RoomId::new(one.id.as_str())?),
        [] => anyhow::bail!("no room {}", sanitize(spec)),
        _ => anyhow::bail!(
            "{} rooms are named {}; give the room's id",
            named.len(),
            sanitize(spec)
        ),
    }
}

async fn room_and_user(
    client: &Client,
    args: &AdminRoomMemberArgs,
) -> anyhow::Result<(RoomId, UserId, String)> {
    let room = any_room(client, &args.room).await?;
    let user = resolve_user(client, &args.user).await?;
    Ok((room, user.id, user.username))
}

/// Adds a user to a room as an admin, without the room's say.
pub(crate) async fn room_add_member(
    client: Client,
    args: &AdminRoomMemberArgs,
) -> anyhow::Result<()> {
    let (room, user, name) = room_and_user(&client, args).await?;
    client.admin_add_member(&room, &user).await?;
    println!(
        "added {} to {}; in an encrypted room members see them as added by an \
         administrator, and they get no key",
        sanitize(&name),
        sanitize(room.as_str())
    );
    Ok(())
}

/// Removes a member from a room as an admin, without the room's say.
pub(crate) async fn room_remove_member(
    client: Client,
    args: &AdminRoomMemberArgs,
) -> anyhow::Result<()> {
    let (room, user, name) = room_and_user(&client, args).await?;
    client.admin_remove_member(&room, &user).await?;
    println!(
        "removed {} from {}; in an encrypted room they stay in its signed state until an \
         owner removes them there",
        sanitize(&name),
        sanitize(room.as_str())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_value;
    use serde_json::json;

    #[test]
    fn values_are_json_scalars_or_strings() {
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("1048576"), json!(1_048_576));
        assert_eq!(parse_value("hello"), json!("hello"));
        assert_eq!(parse_value("\"quoted\""), json!("\"quoted\""));
        assert_eq!(parse_value("[1]"), json!("[1]"));
    }
}

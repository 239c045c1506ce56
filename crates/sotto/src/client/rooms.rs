//! `sotto room …` and `sotto dm`: rooms and membership. In encrypted rooms each change
//! is a statement signed here (the library does it); the commands only name things and
//! print results.

use super::output::{json_line, sanitize};
use super::room::resolve_room;
use super::users::resolve_user;
use crate::cli::{
    DiscussionArgs, DmArgs, EncryptionArgs, OnOff, ReadArgs, RoomArgs, RoomCreateArgs,
    RoomReadArgs, RoomUserArgs,
};
use sotto_client::api::seg;
use sotto_client::sotto_api::{MemberList, Room, RoomKind, UNREAD_CAP};
use sotto_client::sotto_crypto::{RoomId, UserId};
use sotto_client::{Client, MemberNote, NewRoom, NewRoomKind};

/// The id of the room a ROOM argument names.
pub(crate) async fn room_id(client: &Client, spec: &str) -> anyhow::Result<RoomId> {
    let id = resolve_room(client, spec).await?;
    RoomId::new(id).map_err(|_| anyhow::anyhow!("the server gave an invalid room id"))
}

async fn user_ids(client: &Client, names: &[String]) -> anyhow::Result<Vec<UserId>> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        ids.push(resolve_user(client, name).await?.id);
    }
    Ok(ids)
}

pub(crate) async fn create(client: Client, args: &RoomCreateArgs) -> anyhow::Result<()> {
    let room = client
        .create_room(NewRoom {
            kind: if args.team {
                NewRoomKind::Team
            } else {
                NewRoomKind::Channel
            },
            name: args.name.clone(),
            private: args.private || args.encrypted,
            encrypted: args.encrypted,
            members: user_ids(&client, &args.members).await?,
        })
        .await?;
    print_room(&room, args.read.json)
}

pub(crate) async fn discussion(client: Client, args: &DiscussionArgs) -> anyhow::Result<()> {
    let parent = room_id(&client, &args.parent).await?;
    let room = client
        .create_discussion(&parent, &args.name, args.encrypted)
        .await?;
    print_room(&room, args.read.json)
}

pub(crate) async fn dm(client: Client, args: &DmArgs) -> anyhow::Result<()> {
    let people = user_ids(&client, &args.users).await?;
    let room = client.open_dm(&people, args.encrypted).await?;
    if args.encrypted && !room.encrypted {
        eprintln!(
            "note: this direct message exists already and is not encrypted; turn encryption on with `sotto room encryption {} on`",
            room.id
        );
    }
    print_room(&room, args.read.json)
}

pub(crate) async fn list(client: Client, args: &ReadArgs) -> anyhow::Result<()> {
    for room in client.rooms().await? {
        if args.json {
            json_line(&room)?;
        } else if room.kind == RoomKind::Direct {
            // A direct message has no name: name it by the other people in it.
            let path = format!("/api/v1/rooms/{}/members", seg(&room.id));
            let members: MemberList = client.api().get(&path).await?;
            let others: Vec<String> = members
                .members
                .iter()
                .filter(|m| m.user_id != client.user_id().as_str())
                .map(|m| sanitize(&m.username))
                .collect();
            println!(
                "{}with {}{}",
                room_line(&room),
                others.join(", "),
                unread_note(&room)
            );
        } else {
            println!("{}{}", room_line(&room), unread_note(&room));
        }
    }
    Ok(())
}

pub(crate) async fn members(client: Client, args: &RoomReadArgs) -> anyhow::Result<()> {
    let id = room_id(&client, &args.room).await?;
    let view = client.room(&id).await?;
    for m in &view.members {
        if args.read.json {
            json_line(&serde_json::json!({
                "user_id": m.user_id,
                "username": m.username,
                "owner": m.owner,
                "verified_by_room": m.verified_by_room,
                "listed_by_server": m.listed_by_server,
                "forced_by": m.forced_by,
            }))?;
            continue;
        }
        let name = sanitize(m.username.as_deref().unwrap_or(&m.user_id));
        let mut notes = Vec::new();
        if m.owner {
            notes.push("owner");
        }
        match m.note() {
            Some(MemberNote::AddedByAdministrator) => {
                notes.push("ADDED BY AN ADMINISTRATOR, NOT VERIFIED BY THE ROOM: gets no key")
            }
            Some(MemberNote::NotVerifiedByRoom) => {
                notes.push("NOT VERIFIED BY THE ROOM: gets no key")
            }
            Some(MemberNote::RemovedByAdministrator) => notes.push(
                "removed by an administrator, but still in the room's signed state until an owner removes them",
            ),
            None => {}
        }
        if notes.is_empty() {
            println!("{name}");
        } else {
            println!("{name} ({})", notes.join("; "));
        }
    }
    Ok(())
}

pub(crate) async fn invite(client: Client, args: &RoomUserArgs) -> anyhow::Result<()> {
    let (room, user) = room_and_user(&client, args).await?;
    client.invite(&room, &user).await?;
    Ok(())
}

pub(crate) async fn remove(client: Client, args: &RoomUserArgs) -> anyhow::Result<()> {
    let (room, user) = room_and_user(&client, args).await?;
    client.remove(&room, &user).await?;
    Ok(())
}

pub(crate) async fn leave(client: Client, args: &RoomArgs) -> anyhow::Result<()> {
    let room = room_id(&client, &args.room).await?;
    client.leave(&room).await?;
    Ok(())
}

pub(crate) async fn encryption(client: Client, args: &EncryptionArgs) -> anyhow::Result<()> {
    let room = room_id(&client, &args.room).await?;
    client
        .set_encryption(&room, matches!(args.state, OnOff::On))
        .await?;
    Ok(())
}

pub(crate) async fn rotate_key(client: Client, args: &RoomArgs) -> anyhow::Result<()> {
    let room = room_id(&client, &args.room).await?;
    let epoch = client.rotate_key(&room).await?;
    eprintln!("new room key {} sent to the members", epoch.to_hex());
    Ok(())
}

async fn room_and_user(client: &Client, args: &RoomUserArgs) -> anyhow::Result<(RoomId, UserId)> {
    let room = room_id(client, &args.room).await?;
    let user = resolve_user(client, &args.user).await?;
    Ok((room, user.id))
}

fn print_room(room: &Room, json: bool) -> anyhow::Result<()> {
    if json {
        json_line(room)
    } else {
        println!("{}", room_line(room));
        Ok(())
    }
}

/// `ID  KIND  NAME` with a key symbol for encrypted rooms.
/// "  (3 unread)"; the server counts up to a cap, so the cap reads "100+".
fn unread_note(room: &Room) -> String {
    match room.unread {
        Some(0) | None => String::new(),
        Some(n) if n >= UNREAD_CAP => format!("  ({UNREAD_CAP}+ unread)"),
        Some(n) => format!("  ({n} unread)"),
    }
}

fn room_line(room: &Room) -> String {
    let kind = match (room.kind, room.private) {
        (RoomKind::Channel, false) => "channel",
        (RoomKind::Channel, true) => "private channel",
        (RoomKind::Team, false) => "team",
        (RoomKind::Team, true) => "private team",
        (RoomKind::Discussion, _) => "discussion",
        (RoomKind::Direct, _) => "direct message",
    };
    let key = if room.encrypted { " 🔑" } else { "" };
    let name = room.name.as_deref().map(sanitize).unwrap_or_default();
    format!("{}  {kind}{key}  {name}", room.id)
}

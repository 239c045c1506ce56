//! `sotto search TEXT [--room ROOM]`: the server's full-text search over the plaintext
//! messages of the caller's rooms. Encrypted rooms hold only ciphertext on the server,
//! so they are never in the results.

use super::output::{json_line, sanitize, utc_minute};
use super::room::resolve_room;
use crate::cli::SearchArgs;
use sotto_client::Client;
use sotto_client::api::seg;
use sotto_client::sotto_api::{MemberList, Message, RoomList, SearchPage};
use std::collections::BTreeMap;

/// Prints the newest matches: one per line, or one JSON object per line with `--json`
/// (the API's message, plus `room_name` and `sender_username` when known).
pub(crate) async fn search(client: Client, args: &SearchArgs) -> anyhow::Result<()> {
    let room_id = match &args.room {
        Some(spec) => Some(resolve_room(&client, spec).await?),
        None => None,
    };
    let mut query = vec![("q", args.text.clone()), ("limit", args.limit.to_string())];
    if let Some(id) = &room_id {
        query.push(("room_id", id.clone()));
    }
    let page: SearchPage = client.api().get_query("/api/v1/search", &query).await?;
    let names = Names::of(&client, &page.messages).await?;
    for m in &page.messages {
        let room = names.rooms.get(&m.room_id).map(String::as_str);
        let sender = names.users.get(&m.sender_id).map(String::as_str);
        if args.read.json {
            let mut v = serde_json::to_value(m)?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert("room_name".into(), room.into());
                obj.insert("sender_username".into(), sender.into());
            }
            json_line(&v)?;
        } else {
            let text: Vec<String> = m
                .text
                .as_deref()
                .unwrap_or("")
                .lines()
                .map(sanitize)
                .collect();
            println!(
                "{} #{} {}: {}",
                utc_minute(m.created_at),
                sanitize(room.unwrap_or(&m.room_id)),
                sanitize(sender.unwrap_or(&m.sender_id)),
                text.join(" ⏎ ")
            );
        }
    }
    if page.messages.is_empty() && !args.read.json {
        eprintln!("no messages found");
    }
    Ok(())
}

/// Room and user names for the results: rooms from the caller's room list, users from
/// the member lists of the rooms that matched.
struct Names {
    rooms: BTreeMap<String, String>,
    users: BTreeMap<String, String>,
}

impl Names {
    async fn of(client: &Client, messages: &[Message]) -> anyhow::Result<Self> {
        let mut names = Self {
            rooms: BTreeMap::new(),
            users: BTreeMap::new(),
        };
        if messages.is_empty() {
            return Ok(names);
        }
        let mine: RoomList = client.api().get("/api/v1/rooms").await?;
        for room in mine.rooms {
            if let Some(name) = room.name {
                names.rooms.insert(room.id, name);
            }
        }
        let mut rooms: Vec<&str> = messages.iter().map(|m| m.room_id.as_str()).collect();
        rooms.sort_unstable();
        rooms.dedup();
        for room in rooms {
            let members: MemberList = client
                .api()
                .get(&format!("/api/v1/rooms/{}/members", seg(room)))
                .await?;
            for m in members.members {
                names.users.insert(m.user_id, m.username);
            }
        }
        Ok(names)
    }
}

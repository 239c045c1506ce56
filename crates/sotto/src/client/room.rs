//! Naming rooms on the command line, for every command that takes a ROOM: a room id, a
//! room name (`general` or `#general`), or `@user` for the two-person direct message
//! with that user. The caller's rooms are searched first, then public rooms they have
//! not joined. A name several rooms share is an error that lists their ids.

use super::output::sanitize;
use super::users::resolve_user;
use sotto_client::Client;
use sotto_client::api::seg;
use sotto_client::sotto_api::{MemberList, Room, RoomKind, RoomList};

/// The id of the room `spec` names.
pub(crate) async fn resolve_room(client: &Client, spec: &str) -> anyhow::Result<String> {
    if spec.starts_with('@') {
        return direct_with(client, spec).await;
    }
    let mine: RoomList = client.api().get("/api/v1/rooms").await?;
    if let Some(id) = pick(&mine.rooms, spec)? {
        return Ok(id);
    }
    let public: RoomList = client.api().get("/api/v1/rooms/public").await?;
    pick(&public.rooms, spec)?
        .ok_or_else(|| anyhow::anyhow!("no room named or with the id {}", sanitize(spec)))
}

/// The room among `rooms` whose id is `spec`, else the one named `spec` (without a
/// leading `#`); `None` when there is none.
fn pick(rooms: &[Room], spec: &str) -> anyhow::Result<Option<String>> {
    if let Some(room) = rooms.iter().find(|r| r.id == spec) {
        return Ok(Some(room.id.clone()));
    }
    let name = spec.strip_prefix('#').unwrap_or(spec);
    let named: Vec<&Room> = rooms
        .iter()
        .filter(|r| r.name.as_deref() == Some(name))
        .collect();
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.id.clone())),
        many => {
            let ids: Vec<String> = many.iter().map(|r| sanitize(&r.id)).collect();
            anyhow::bail!(
                "{} rooms are named {}: name one by its id: {}",
                many.len(),
                sanitize(name),
                ids.join(", ")
            )
        }
    }
}

/// The two-person direct message between the caller and `@user` (a note to oneself
/// when `user` is the caller).
async fn direct_with(client: &Client, spec: &str) -> anyhow::Result<String> {
    let other = resolve_user(client, spec).await?;
    let me = client.user_id().as_str();
    let mut want = vec![me, other.id.as_str()];
    want.sort_unstable();
    want.dedup();
    let mine: RoomList = client.api().get("/api/v1/rooms").await?;
    for room in mine.rooms.iter().filter(|r| r.kind == RoomKind::Direct) {
        let members: MemberList = client
            .api()
            .get(&format!("/api/v1/rooms/{}/members", seg(&room.id)))
            .await?;
        let mut have: Vec<&str> = members.members.iter().map(|m| m.user_id.as_str()).collect();
        have.sort_unstable();
        if have == want {
            return Ok(room.id.clone());
        }
    }
    anyhow::bail!("no direct message with {} yet", sanitize(&other.username))
}

#[cfg(test)]
mod tests {
    use super::resolve_room;
    use serde_json::json;
    use sotto_client::{Client, Profile};
    use sotto_server::testing::TestServer;

    #[tokio::test]
    async fn rooms_are_found_by_id_name_and_person() {
        for server in TestServer::every_backend().await {
            names_ids_and_direct_messages(&server).await;
            server.finish().await;
        }
    }

    async fn names_ids_and_direct_messages(server: &TestServer) {
        let dir = tempfile::tempdir().unwrap();
        server.create_user("ana", "ana's long password").await;
        let bo = server.create_user("bob", "bob's long password").await;
        let profile = Profile::open(dir.path().join("ana")).unwrap();
        let ana = Client::login(profile, &server.url(), "ana", "ana's long password")
            .await
            .unwrap();
        let general = create(&ana, json!({"kind": "channel", "name": "general"})).await;
        let dm = create(&ana, json!({"kind": "direct", "members": [bo]})).await;
        assert_eq!(resolve_room(&ana, "general").await.unwrap(), general);
        assert_eq!(resolve_room(&ana, "#general").await.unwrap(), general);
        assert_eq!(resolve_room(&ana, &general).await.unwrap(), general);
        assert_eq!(resolve_room(&ana, "@bob").await.unwrap(), dm);
        assert_eq!(resolve_room(&ana, "@BOB").await.unwrap(), dm);
        let e = resolve_room(&ana, "@admin").await.unwrap_err().to_string();
        assert!(e.contains("no direct message with admin"), "{e}");
        let e = resolve_room(&ana, "@nobody").await.unwrap_err().to_string();
        assert!(e.contains("no user named nobody"), "{e}");
        let e = resolve_room(&ana, "random").await.unwrap_err().to_string();
        assert!(e.contains("no room"), "{e}");

        // A second "general" (private, so only ana sees it): ambiguous, ids listed.
        let again = create(
            &ana,
            json!({"kind": "channel", "name": "general", "private": true}),
        )
        .await;
        let e = resolve_room(&ana, "general").await.unwrap_err().to_string();
        assert!(e.contains(&general) && e.contains(&again), "{e}");
        assert_eq!(resolve_room(&ana, &again).await.unwrap(), again);

        // A public room ana is not in is found too.
        let news = server
            .admin_call(
                "POST",
                "/api/v1/rooms",
                Some(json!({"kind": "channel", "name": "news"})),
            )
            .await;
        assert_eq!(
            resolve_room(&ana, "news").await.unwrap(),
            news["id"].as_str().unwrap()
        );
    }

    /// Creates a room as `client`; its id.
    async fn create(client: &Client, body: serde_json::Value) -> String {
        let room: serde_json::Value = client
            .api()
            .send(reqwest::Method::POST, "/api/v1/rooms", &body)
            .await
            .unwrap();
        room["id"].as_str().unwrap().to_owned()
    }
}

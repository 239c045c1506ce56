//! Membership an administrator forces in an encrypted room, as members' clients see it:
//! a member forced in is flagged as added by an administrator and never gets a key; a
//! member forced out is reported as still in the room's signed state.

use sotto_client::sotto_api::rooms::Room;
use sotto_client::sotto_crypto::{RoomId, UserId};
use sotto_client::{MemberNote, NewRoom, NewRoomKind};
use sotto_server::testing::{TEST_ADMIN, TestServer};

mod common;

use common::person::{Person as User, login};

/// A user with keys, logged in on a fresh profile.
async fn user(server: &TestServer, name: &str) -> User {
    common::person::person(server, name, true).await
}

fn note_of(view: &sotto_client::RoomView, who: &UserId) -> Option<MemberNote> {
    view.members
        .iter()
        .find(|m| m.user_id == who.as_str())
        .unwrap_or_else(|| panic!("{who} is not shown"))
        .note()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_an_administrator_forces_in_is_flagged_and_gets_no_key() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = user(&server, "alice").await;
        let bob = user(&server, "bob").await;
        let carol = user(&server, "carol").await;
        let eve = user(&server, "eve").await;
        let admin_dir = tempfile::tempdir().unwrap();
        let admin = login(&server, admin_dir.path(), TEST_ADMIN.0, TEST_ADMIN.1).await;
        let room = alice
            .client
            .create_room(NewRoom {
                kind: NewRoomKind::Channel,
                name: "board".into(),
                private: true,
                encrypted: true,
                members: vec![bob.id.clone()],
            })
            .await
            .unwrap();
        let room = RoomId::new(room.id.as_str()).unwrap();
        alice.client.send_text(&room, "before carol").await.unwrap();

        // Forced in by the administrator; and Eve slipped in with no reason given.
        let members = admin.admin_add_member(&room, &carol.id).await.unwrap();
        let listed = members
            .members
            .iter()
            .find(|m| m.user_id == carol.id.as_str())
            .unwrap();
        assert!(listed.forced_by.is_some(), "{}", server.backend());
        server
            .add_member_behind_the_rooms_back(room.as_str(), eve.id.as_str())
            .await;
        let view = alice.client.room(&room).await.unwrap();
        let carol_view = view
            .members
            .iter()
            .find(|m| m.user_id == carol.id.as_str())
            .unwrap();
        assert!(!carol_view.verified_by_room && carol_view.listed_by_server);
        assert_eq!(
            note_of(&view, &carol.id),
            Some(MemberNote::AddedByAdministrator)
        );
        assert_eq!(
            MemberNote::AddedByAdministrator.label(),
            "Added by an administrator — not verified by the room"
        );
        assert_eq!(note_of(&view, &eve.id), Some(MemberNote::NotVerifiedByRoom));
        assert_eq!(note_of(&view, &bob.id), None);
        assert_eq!(note_of(&view, &alice.id), None);

        // No key for her: not when keys are handed on, not after new messages or a
        // rotation. She sees only what she cannot open, and nothing is sealed to her.
        alice.client.distribute_room_keys(&room).await.unwrap();
        alice.client.send_text(&room, "after carol").await.unwrap();
        alice.client.rotate_key(&room).await.unwrap();
        alice.client.send_text(&room, "rotated").await.unwrap();
        let seen = carol.client.history(&room, None, None).await.unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen.iter()
                .all(|m| m.problem.is_some() && m.text.is_empty())
        );
        let keys: serde_json::Value = carol
            .client
            .api()
            .get(&format!("/api/v1/rooms/{}/keys", room.as_str()))
            .await
            .unwrap();
        assert_eq!(keys["keys"], serde_json::json!([]), "{keys}");
        let bob_reads: Vec<String> = bob
            .client
            .history(&room, None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(bob_reads, ["before carol", "after carol", "rotated"]);

        // Bob forced out: the chain still lists him, and Alice is told so.
        admin.admin_remove_member(&room, &bob.id).await.unwrap();
        let view = alice.client.room(&room).await.unwrap();
        let bob_view = view
            .members
            .iter()
            .find(|m| m.user_id == bob.id.as_str())
            .unwrap();
        assert!(bob_view.verified_by_room && !bob_view.listed_by_server);
        assert_eq!(
            note_of(&view, &bob.id),
            Some(MemberNote::RemovedByAdministrator)
        );
        let gone: Result<Room, _> = bob
            .client
            .api()
            .get(&format!("/api/v1/rooms/{}", room.as_str()))
            .await;
        assert_eq!(gone.unwrap_err().code(), Some("not_found"));

        // Not an admin: refused.
        let refused = alice.client.admin_add_member(&room, &eve.id).await;
        assert_eq!(refused.unwrap_err().code(), Some("forbidden"));
        server.finish().await;
    }
}

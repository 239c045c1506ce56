//! Encrypted rooms end to end against a real server, with real keys: DMs, private
//! channels, teams and discussions; a second profile reading old messages; late joiners
//! getting keys from a holder's answer to the server's key request; removal rotating the
//! key; a key reset surfacing as a key change and history recovered from other members.

use sotto_client::sotto_crypto::RoomId;
use sotto_client::{Client, Error, NewRoom, NewRoomKind, Profile, Undecryptable};
use sotto_server::testing::{self, TestServer};

mod common;

use common::person::{PASSWORD, Person as User, person as user};

fn room_id(room: &sotto_client::sotto_api::rooms::Room) -> RoomId {
    RoomId::new(room.id.as_str()).unwrap()
}

/// The texts of a room's history as `who` reads it; panics on a message that did not open.
async fn texts(who: &Client, room: &RoomId) -> Vec<String> {
    who.history(room, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            assert_eq!(m.problem, None, "message {} did not open", m.id);
            assert!(m.encrypted);
            m.text
        })
        .collect()
}

/// Alice and Bob with keys, an encrypted DM between them, and one message from Alice
/// that Bob has read.
async fn dm_with_one_message(server: &TestServer, text: &str) -> (User, User, RoomId) {
    server.enable_encryption().await;
    let alice = user(server, "alice", true).await;
    let bob = user(server, "bob", true).await;
    let dm = alice
        .client
        .open_dm(std::slice::from_ref(&bob.id), true)
        .await
        .unwrap();
    let room = room_id(&dm);
    alice.client.send_text(&room, text).await.unwrap();
    assert_eq!(texts(&bob.client, &room).await, [text]);
    (alice, bob, room)
}

/// An admin resets `who`'s keys (which ends their sessions); they log in again on the
/// same profile and set up new keys. Their new client.
async fn reset_and_set_up_again(server: &TestServer, who: &User) -> Client {
    let path = format!("/api/v1/admin/users/{}/keys/reset", who.id.as_str());
    server.admin_call("POST", &path, None).await;
    let again = Client::login(
        who.client.profile().clone(),
        &server.url(),
        &who.name,
        PASSWORD,
    )
    .await
    .unwrap();
    again.e2e_setup().await.unwrap();
    again
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_dm_round_trip_on_every_backend() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = user(&server, "alice", true).await;
        let bob = user(&server, "bob", true).await;
        let dm = alice
            .client
            .open_dm(std::slice::from_ref(&bob.id), true)
            .await
            .unwrap();
        let room = room_id(&dm);
        let sent = alice.client.send_text(&room, "hello bob").await.unwrap();
        assert!(sent.encrypted && sent.verified && sent.problem.is_none());

        let read = bob.client.history(&room, None, None).await.unwrap();
        assert_eq!(read.len(), 1, "{}", server.backend());
        let m = &read[0];
        assert_eq!(
            (m.text.as_str(), m.sender_id.as_str()),
            ("hello bob", alice.id.as_str())
        );
        assert_eq!(m.sender_name.as_deref(), Some(alice.name.as_str()));
        assert!(m.encrypted && !m.verified && m.problem.is_none());

        bob.client.send_text(&room, "hi alice").await.unwrap();
        assert_eq!(texts(&alice.client, &room).await, ["hello bob", "hi alice"]);
        // Reading again, and after a restart of the client, is not a replay.
        assert_eq!(texts(&alice.client, &room).await, ["hello bob", "hi alice"]);
        let again = Client::open(alice.client.profile().clone()).unwrap();
        assert_eq!(texts(&again, &room).await, ["hello bob", "hi alice"]);

        // An edit replaces the text for both.
        let edited = alice
            .client
            .edit_text(&room, &sent.id, "hello, bob")
            .await
            .unwrap();
        assert_eq!(edited.text, "hello, bob");
        assert_eq!(texts(&bob.client, &room).await, ["hello, bob", "hi alice"]);

        // A second profile of bob unlocks with the encryption password and reads it all.
        let dir = tempfile::tempdir().unwrap();
        let second = Client::login(
            Profile::open(dir.path()).unwrap(),
            &server.url(),
            &bob.name,
            PASSWORD,
        )
        .await
        .unwrap();
        let locked = second.history(&room, None, None).await.unwrap();
        assert_eq!(locked[0].problem, Some(Undecryptable::Locked));
        second.e2e_unlock(&bob.encryption_password).await.unwrap();
        assert_eq!(texts(&second, &room).await, ["hello, bob", "hi alice"]);

        // The room's members are the chain's.
        let view = bob.client.room(&room).await.unwrap();
        assert!(view.encrypted && view.has_chain);
        assert_eq!(view.members.len(), 2);
        assert!(view.members.iter().all(|m| m.verified_by_room));

        // Deleting leaves a tombstone.
        alice.client.delete(&room, &sent.id).await.unwrap();
        let after = bob.client.history(&room, None, None).await.unwrap();
        assert!(after[0].deleted && after[0].text.is_empty() && after[0].problem.is_none());
        server.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn private_channel_late_joiner_and_removal() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", true).await;
    let bob = user(&server, "bob", true).await;
    let carol = user(&server, "carol", false).await;
    let channel = alice
        .client
        .create_room(NewRoom {
            kind: NewRoomKind::Channel,
            name: "plans".into(),
            private: true,
            encrypted: true,
            members: vec![bob.id.clone()],
        })
        .await
        .unwrap();
    let room = room_id(&channel);
    assert!(channel.private && channel.encrypted);
    alice.client.send_text(&room, "first").await.unwrap();
    assert_eq!(texts(&bob.client, &room).await, ["first"]);

    // Carol is invited before she has keys; once she sets them up, the server asks the
    // holders (online ones) to hand the key on, and alice's client answers.
    alice.client.invite(&room, &carol.id).await.unwrap();
    let mut socket = testing::connect(server.addr(), &alice.token()).await;
    let view = alice.client.room(&room).await.unwrap();
    assert!(view.members.iter().all(|m| m.verified_by_room));
    carol.client.e2e_setup().await.unwrap();
    let mut carol_socket = testing::connect(server.addr(), &carol.token()).await;
    let request = loop {
        let frame = testing::next_frame(&mut socket).await;
        if frame["type"] == "room_key_request" && frame["room_id"] == room.as_str() {
            break frame;
        }
    };
    let users: Vec<String> = request["user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, [carol.id.to_string()]);
    let stored = alice
        .client
        .handle_key_request(room.as_str(), request["epoch_id"].as_str().unwrap(), &users)
        .await
        .unwrap();
    assert!(stored >= 1);
    // The box reaches carol's socket as a `room_key` notice; her client takes it.
    let notice = loop {
        let frame = testing::next_frame(&mut carol_socket).await;
        if frame["type"] == "room_key" && frame["room_id"] == room.as_str() {
            break frame;
        }
    };
    let epoch = carol
        .client
        .accept_room_key(
            room.as_str(),
            &base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                notice["box"].as_str().unwrap(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(epoch.to_hex(), notice["epoch_id"].as_str().unwrap());
    assert_eq!(texts(&carol.client, &room).await, ["first"]);

    // Removing bob rotates the key at the next message; bob cannot fetch the new key
    // nor open the new message.
    alice.client.remove(&room, &bob.id).await.unwrap();
    let before = alice.client.room_keys(&room).await.unwrap();
    assert!(before.rotation_due);
    let second = alice.client.send_text(&room, "second").await.unwrap();
    let after = alice.client.room_keys(&room).await.unwrap();
    assert!(!after.rotation_due);
    assert_ne!(before.current_epoch, after.current_epoch);
    assert_eq!(texts(&carol.client, &room).await, ["first", "second"]);
    let denied = bob.client.room_keys(&room).await.unwrap_err();
    assert_eq!(denied.code(), Some("not_found"), "{denied}");
    let raw: sotto_client::sotto_api::rooms::MessagePage = alice
        .client
        .api()
        .get(&format!("/api/v1/rooms/{}/messages", room.as_str()))
        .await
        .unwrap();
    let newest = raw.messages.iter().find(|m| m.id == second.id).unwrap();
    let opened = bob.client.open_message(newest).await.unwrap();
    assert!(opened.problem.is_some() && opened.text.is_empty());
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn team_and_discussion_round_trip() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", true).await;
    let bob = user(&server, "bob", true).await;
    let carol = user(&server, "carol", true).await;
    let team = alice
        .client
        .create_room(NewRoom {
            kind: NewRoomKind::Team,
            name: "core".into(),
            private: true,
            encrypted: true,
            members: vec![bob.id.clone(), carol.id.clone()],
        })
        .await
        .unwrap();
    let team = room_id(&team);
    alice.client.send_text(&team, "team news").await.unwrap();
    bob.client.send_text(&team, "noted").await.unwrap();
    assert_eq!(texts(&carol.client, &team).await, ["team news", "noted"]);

    let discussion = bob
        .client
        .create_discussion(&team, "side topic", true)
        .await
        .unwrap();
    let discussion = room_id(&discussion);
    bob.client.invite(&discussion, &carol.id).await.unwrap();
    bob.client.send_text(&discussion, "just us").await.unwrap();
    assert_eq!(texts(&carol.client, &discussion).await, ["just us"]);
    // Alice is not in the discussion: it does not exist for her.
    let hidden = alice
        .client
        .history(&discussion, None, None)
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Some("not_found"));
    // Carol leaves: the key rotates and she cannot fetch keys any more.
    carol.client.leave(&discussion).await.unwrap();
    bob.client
        .send_text(&discussion, "after carol")
        .await
        .unwrap();
    let keys = carol.client.room_keys(&discussion).await.unwrap_err();
    assert_eq!(keys.code(), Some("not_found"));
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_reset_surfaces_as_key_change_and_history_comes_back() {
    let server = TestServer::sqlite().await;
    let (alice, bob, room) = dm_with_one_message(&server, "before the reset").await;

    // The reset ends bob's sessions: he logs in again on the same profile (a fresh
    // client, nothing of the old keys in memory) and sets up new keys.
    let bob_again = reset_and_set_up_again(&server, &bob).await;

    // Alice's client does not take bob's new key silently.
    let changed = alice.client.contact(&bob.id).await.unwrap_err();
    assert!(matches!(changed, Error::KeyChanged { ref user } if user == bob.id.as_str()));
    assert_eq!(
        alice.client.pending_key_changes(),
        std::slice::from_ref(&bob.id)
    );
    // The reset made a new epoch due; the new key goes to nobody with a changed key.
    alice
        .client
        .send_text(&room, "after the reset")
        .await
        .unwrap();
    let waiting = bob_again.room_keys(&room).await.unwrap();
    assert!(waiting.waiting && waiting.held.is_empty());

    // Once alice accepts the change, her client hands bob every epoch she holds.
    alice.client.accept_key_change(&bob.id).unwrap();
    assert!(alice.client.distribute_room_keys(&room).await.unwrap() >= 2);
    assert_eq!(
        texts(&bob_again, &room).await,
        ["before the reset", "after the reset"]
    );

    // A statement signed with a key that is not the pinned one is a key change too:
    // bob's keys are reset again and he declares an epoch with his third key.
    server
        .admin_call(
            "POST",
            &format!("/api/v1/admin/users/{}/keys/reset", bob.id.as_str()),
            None,
        )
        .await;
    let bob_third = Client::login(
        bob.client.profile().clone(),
        &server.url(),
        &bob.name,
        PASSWORD,
    )
    .await
    .unwrap();
    bob_third.e2e_setup().await.unwrap();
    bob_third.rotate_key(&room).await.unwrap();
    let refused = alice.client.room(&room).await.unwrap_err();
    assert!(matches!(refused, Error::KeyChanged { ref user } if user == bob.id.as_str()));
    let refused = alice.client.send_text(&room, "not sent").await.unwrap_err();
    assert!(matches!(refused, Error::KeyChanged { .. }));
    alice.client.accept_key_change(&bob.id).unwrap();
    alice.client.send_text(&room, "third key").await.unwrap();
    let last = bob_third.history(&room, None, None).await.unwrap();
    assert_eq!(last.last().unwrap().text, "third key");
    drop(bob.dir);
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_rooms_and_turning_encryption_off_and_on() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", true).await;
    let bob = user(&server, "bob", true).await;

    // A public channel: plain text, no chain, everyone verified by the room.
    let public = alice
        .client
        .create_room(NewRoom {
            kind: NewRoomKind::Channel,
            name: "lobby".into(),
            private: false,
            encrypted: false,
            members: vec![bob.id.clone()],
        })
        .await
        .unwrap();
    let public = room_id(&public);
    alice
        .client
        .send_text(&public, "plain hello")
        .await
        .unwrap();
    let read = bob.client.history(&public, None, None).await.unwrap();
    assert_eq!(read[0].text, "plain hello");
    assert!(!read[0].encrypted && !read[0].verified && read[0].problem.is_none());
    let view = bob.client.room(&public).await.unwrap();
    assert!(!view.encrypted && !view.has_chain);
    assert!(view.members.iter().all(|m| m.verified_by_room));
    let reply = sotto_client::Draft {
        text: "x".into(),
        reply_to: Some(read[0].id.clone()),
        ..Default::default()
    };
    assert!(matches!(
        alice.client.send_message(&public, reply).await,
        Err(Error::Invalid(_))
    ));

    // An encrypted DM turned off by a signed statement takes text; turned on again,
    // envelopes.
    let dm = alice
        .client
        .open_dm(std::slice::from_ref(&bob.id), true)
        .await
        .unwrap();
    let dm = room_id(&dm);
    alice.client.send_text(&dm, "sealed").await.unwrap();
    bob.client.set_encryption(&dm, false).await.unwrap();
    let plain = alice.client.send_text(&dm, "open").await.unwrap();
    assert!(!plain.encrypted);
    alice.client.set_encryption(&dm, true).await.unwrap();
    let sealed = bob.client.send_text(&dm, "sealed again").await.unwrap();
    assert!(sealed.encrypted);
    let all = alice.client.history(&dm, None, None).await.unwrap();
    let texts: Vec<(&str, bool)> = all.iter().map(|m| (m.text.as_str(), m.encrypted)).collect();
    assert_eq!(
        texts,
        [("sealed", true), ("open", false), ("sealed again", true)]
    );
    assert!(all.iter().all(|m| m.problem.is_none()));
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_creator_key_reset_keeps_the_room_readable_after_the_change_is_accepted() {
    let server = TestServer::sqlite().await;
    let (alice, bob, room) = dm_with_one_message(&server, "from the old key").await;

    // Alice, who signed the room's creation and first epoch, has her keys reset.
    let alice_again = reset_and_set_up_again(&server, &alice).await;

    // Bob sees the change, accepts it, and the chain, his box from alice and her old
    // message still verify under the key he had pinned before.
    let changed = bob.client.contact(&alice.id).await.unwrap_err();
    assert!(matches!(changed, Error::KeyChanged { .. }));
    bob.client.accept_key_change(&alice.id).unwrap();
    let bob_again = Client::open(bob.client.profile().clone()).unwrap();
    assert!(bob_again.room(&room).await.unwrap().has_chain);
    let old = bob_again.history(&room, None, None).await.unwrap();
    assert_eq!(old[0].text, "from the old key");
    assert!(old[0].problem.is_none() && !old[0].verified);

    // Alice gets the old epoch back from bob and reads her own old message.
    assert!(bob_again.distribute_room_keys(&room).await.unwrap() >= 1);
    assert_eq!(texts(&alice_again, &room).await, ["from the old key"]);
    // New messages rotate the key and verify under the new pins.
    alice_again
        .send_text(&room, "from the new key")
        .await
        .unwrap();
    let new = bob_again.history(&room, None, None).await.unwrap();
    assert_eq!(new[1].text, "from the new key");
    assert!(new[1].problem.is_none());
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_the_server_adds_on_its_own_gets_no_key() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = user(&server, "alice", true).await;
        let bob = user(&server, "bob", true).await;
        let eve = user(&server, "eve", true).await;
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
        let room = room_id(&room);
        alice.client.send_text(&room, "before eve").await.unwrap();

        // The server (or whoever controls its database) slips Eve in, unsigned.
        server
            .add_member_behind_the_rooms_back(room.as_str(), eve.id.as_str())
            .await;
        let view = alice.client.room(&room).await.unwrap();
        let flagged: Vec<&str> = view
            .not_verified_by_room()
            .map(|m| m.user_id.as_str())
            .collect();
        assert_eq!(flagged, vec![eve.id.as_str()], "{}", server.backend());
        assert!(view.encrypted);

        // Keys go only to members the chain vouches for: Eve sees ciphertext she cannot
        // open, now and after a new message and a rotation.
        alice.client.distribute_room_keys(&room).await.unwrap();
        alice.client.send_text(&room, "after eve").await.unwrap();
        alice.client.rotate_key(&room).await.unwrap();
        alice
            .client
            .send_text(&room, "after rotation")
            .await
            .unwrap();
        let seen = eve.client.history(&room, None, None).await.unwrap();
        assert_eq!(seen.len(), 3);
        for m in &seen {
            assert!(m.problem.is_some(), "eve opened {}", m.id);
            assert!(m.text.is_empty());
        }
        assert_eq!(
            texts(&bob.client, &room).await,
            vec!["before eve", "after eve", "after rotation"]
        );
        server.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_plaintext_goes_into_a_room_the_chain_says_is_encrypted() {
    let server = TestServer::sqlite().await;
    let (alice, bob, room) = dm_with_one_message(&server, "sealed").await;
    // The server claims the room is no longer encrypted; no member signed that.
    server
        .set_encrypted_behind_the_rooms_back(room.as_str(), false)
        .await;
    let view = alice.client.room(&room).await.unwrap();
    assert!(
        !view.room.encrypted && view.encrypted,
        "the chain's flag wins"
    );
    // The client still seals (and this server, believing its own flag, refuses the
    // ciphertext): either way the text never reaches the server in clear.
    match alice.client.send_text(&room, "never in clear").await {
        Ok(sent) => assert!(sent.encrypted),
        Err(e) => assert_eq!(e.code(), Some("invalid_input"), "{e}"),
    }
    let history = bob.client.history(&room, None, None).await.unwrap();
    assert!(history.iter().all(|m| m.encrypted));
    let stored = std::fs::read_dir(server.data_dir())
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
        .flatten()
        .collect::<Vec<u8>>();
    assert!(
        !stored.windows(14).any(|w| w == b"never in clear"),
        "the text reached the server"
    );
    server.finish().await;
}

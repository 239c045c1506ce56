//! A member's key reset in an encrypted room, end to end against a real server: the
//! reset user's `KeyChange` lets a device that never pinned the old key verify the
//! room's chain and read what was signed under it (never as verified), and the server's
//! per-epoch key requests give the reset user back every earlier epoch, not only the
//! current one (docs/protocol.md §5.5, §6.2).

use sotto_client::sotto_crypto::chain::Action;
use sotto_client::sotto_crypto::{EpochId, RoomId, UserId};
use sotto_client::{Client, NewRoom, NewRoomKind};
use sotto_server::testing::{self, TestServer};
use std::collections::BTreeSet;

mod common;

use common::person::{PASSWORD, Person as User, token};

/// A user with keys set up on a fresh profile.
async fn user(server: &TestServer, name: &str) -> User {
    common::person::person(server, name, true).await
}

/// `(sender, text, verified)` of every message as `who` reads it; panics on one that did
/// not open.
async fn read(who: &Client, room: &RoomId) -> Vec<(String, String, bool)> {
    who.history(room, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            assert_eq!(m.problem, None, "message {:?} did not open", m.text);
            (m.sender_id, m.text, m.verified)
        })
        .collect()
}

/// Answers the key requests `holder`'s socket receives for `room` until each of `epochs`
/// was asked for `user`. Bounded: the socket read times out, and at most 200 frames.
async fn answer_requests(
    socket: &mut testing::Socket,
    holder: &Client,
    room: &RoomId,
    user: &UserId,
    epochs: &BTreeSet<EpochId>,
) {
    let mut asked = BTreeSet::new();
    for _ in 0..200 {
        if asked.len() == epochs.len() {
            return;
        }
        let frame = testing::next_frame(socket).await;
        if frame["type"] != "room_key_request" || frame["room_id"] != room.as_str() {
            continue;
        }
        let users: Vec<String> = frame["user_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect();
        let epoch = frame["epoch_id"].as_str().unwrap();
        holder
            .handle_key_request(room.as_str(), epoch, &users)
            .await
            .unwrap();
        let epoch = EpochId::from_hex(epoch).unwrap();
        if users.iter().any(|u| u == user.as_str()) && epochs.contains(&epoch) {
            asked.insert(epoch);
        }
    }
    panic!(
        "holders were asked for {} of {} epochs",
        asked.len(),
        epochs.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_reset_new_devices_verify_the_old_key_and_the_reset_user_regains_every_epoch() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice").await;
    let bob = user(&server, "bob").await;
    let carol = user(&server, "carol").await;
    let dave = user(&server, "dave").await;
    let channel = alice
        .client
        .create_room(NewRoom {
            kind: NewRoomKind::Channel,
            name: "plans".into(),
            private: true,
            encrypted: true,
            members: vec![bob.id.clone(), carol.id.clone()],
        })
        .await
        .unwrap();
    let room = RoomId::new(channel.id.as_str()).unwrap();

    // Two epochs of talk; bob declares the second under his first key. Carol's first
    // device reads nothing, so her box of the second epoch stays the one bob signed.
    alice.client.send_text(&room, "alice 1").await.unwrap();
    bob.client.send_text(&room, "bob 1").await.unwrap();
    bob.client.rotate_key(&room).await.unwrap();
    bob.client.send_text(&room, "bob 2").await.unwrap();
    alice.client.send_text(&room, "alice 2").await.unwrap();
    let before: BTreeSet<EpochId> = alice
        .client
        .room_chain(&room)
        .await
        .unwrap()
        .unwrap()
        .state()
        .epochs()
        .iter()
        .copied()
        .collect();
    assert_eq!(before.len(), 2);

    // An admin resets bob's keys; he logs in again on the same profile and sets up new
    // keys: his client declares the old key in the room's chain.
    let path = format!("/api/v1/admin/users/{}/keys/reset", bob.id.as_str());
    server.admin_call("POST", &path, None).await;
    let bob_again = Client::login(
        bob.client.profile().clone(),
        &server.url(),
        &bob.name,
        PASSWORD,
    )
    .await
    .unwrap();
    bob_again.e2e_setup().await.unwrap();
    let chain = bob_again.room_chain(&room).await.unwrap().unwrap();
    let head = chain.head();
    assert_eq!(head.actor(), &bob.id);
    assert!(matches!(head.action(), Action::KeyChange(_)));

    // Alice's client still reads the room while bob's change is pending, then accepts
    // it; the next message starts a new epoch that reaches bob at once.
    assert!(alice.client.room(&room).await.unwrap().has_chain);
    alice.client.accept_key_change(&bob.id).unwrap();
    let mut alice_socket = testing::connect(server.addr(), &token(&alice.client)).await;
    alice
        .client
        .send_text(&room, "after the reset")
        .await
        .unwrap();

    // Bob holds the current epoch; reading his keys asks the holders for each earlier
    // one, and alice's client answers every request.
    let keys = bob_again.room_keys(&room).await.unwrap();
    assert!(!keys.waiting);
    answer_requests(&mut alice_socket, &alice.client, &room, &bob.id, &before).await;
    let keys = bob_again.room_keys(&room).await.unwrap();
    assert_eq!(keys.held.len(), 3, "bob regained every epoch");
    let bobs = read(&bob_again, &room).await;
    let texts: Vec<&str> = bobs.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["alice 1", "bob 1", "bob 2", "alice 2", "after the reset"]
    );
    // His own messages under the old key open, but are not shown as verified.
    assert!(
        bobs.iter()
            .filter(|(s, _, _)| s == bob.id.as_str())
            .all(|(_, _, verified)| !verified)
    );

    // Carol's new device never pinned bob's old key: it verifies the chain through
    // bob's key change, opens the box bob signed under the old key, and reads his old
    // messages, not as verified.
    let carol_dir = tempfile::tempdir().unwrap();
    let carol_new = common::person::login(&server, carol_dir.path(), &carol.name, PASSWORD).await;
    carol_new
        .e2e_unlock(&carol.encryption_password)
        .await
        .unwrap();
    assert!(carol_new.room(&room).await.unwrap().has_chain);
    let carols = read(&carol_new, &room).await;
    assert_eq!(carols.len(), 5);
    let old_from_bob: Vec<&(String, String, bool)> = carols
        .iter()
        .filter(|(s, t, _)| s == bob.id.as_str() && t.starts_with("bob"))
        .collect();
    assert_eq!(old_from_bob.len(), 2);
    assert!(old_from_bob.iter().all(|(_, _, verified)| !verified));

    // Dave, invited after the reset into a room that shares history, gets every epoch
    // from alice and verifies the old key the same way.
    alice.client.invite(&room, &dave.id).await.unwrap();
    let all: BTreeSet<EpochId> = alice
        .client
        .room_chain(&room)
        .await
        .unwrap()
        .unwrap()
        .state()
        .epochs()
        .iter()
        .copied()
        .collect();
    dave.client.room_keys(&room).await.unwrap();
    answer_requests(&mut alice_socket, &alice.client, &room, &dave.id, &all).await;
    let daves = read(&dave.client, &room).await;
    assert_eq!(daves.len(), 5);
    assert!(
        daves
            .iter()
            .filter(|(s, _, _)| s == bob.id.as_str())
            .all(|(_, _, verified)| !verified)
    );
    server.finish().await;
}

//! A real client against a real server that plays a compromised one (docs/security.md):
//! the key directory, the room's chain, room-key boxes and key backups served or pushed
//! as an attacker who runs the server would. Each test asserts what the user is told,
//! that nothing is shown as a normal message, and that no room key reaches the attacker.

mod common;

use common::hostile::{
    Person, attacker_got_a_key, boxes_to, encrypted_channel, encrypted_dm, open_box, person,
};
use common::{WAIT, follow, update_where};
use sotto_client::sotto_api::Notice;
use sotto_client::sotto_api::rooms::MessagePage;
use sotto_client::sotto_crypto::envelope;
use sotto_client::sotto_crypto::roomkey::{RoomKeyBox, RoomKeyError};
use sotto_client::sotto_crypto::{
    BackupError, EncryptionPassword, EnvelopeHeader, EpochKey, IdentityKeys, KdfParams, KeyBackup,
    MessageBody, MessageId, RoomId, os_rng,
};
use sotto_client::{ClientEvent, Error, OtrBroken, OtrEvent, Undecryptable, Update};
use sotto_server::store::RoomKeyRecord;
use sotto_server::testing::TestServer;
use std::collections::BTreeSet;

fn b64(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

/// The raw history page of a room as `who` fetches it.
async fn raw_page(who: &Person, room: &RoomId) -> MessagePage {
    who.client
        .api()
        .get(&format!("/api/v1/rooms/{}/messages", room.as_str()))
        .await
        .unwrap()
}

/// The texts and problems of a room's history as `who` reads it.
async fn read(who: &sotto_client::Client, room: &RoomId) -> Vec<(String, Option<Undecryptable>)> {
    who.history(room, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.text, m.problem))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swapped_key_bundle_is_an_identity_change_and_gets_no_room_key() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = person(&server, "alice").await;
        let bob = person(&server, "bob").await;
        let room = encrypted_channel(&alice, "plans", &[&bob]).await;
        alice.client.send_text(&room, "before").await.unwrap();

        // The server serves a bundle for bob that it made itself: valid, self-signed,
        // bound to bob's id, but the attacker holds its private keys.
        let attacker = IdentityKeys::generate(&mut os_rng());
        server
            .replace_bundle_behind_the_users_back(
                bob.id.as_str(),
                &attacker.bundle(&bob.id).encode(),
            )
            .await;

        let changed = alice.client.contact(&bob.id).await.unwrap_err();
        assert!(
            matches!(changed, Error::KeyChanged { ref user } if user == bob.id.as_str()),
            "{changed}"
        );
        assert_eq!(
            alice.client.pending_key_changes(),
            std::slice::from_ref(&bob.id)
        );

        // A new epoch and a hand-out: nothing is sealed to the attacker's key.
        let epoch = alice.client.rotate_key(&room).await.unwrap();
        alice.client.distribute_room_keys(&room).await.unwrap();
        alice.client.send_text(&room, "after").await.unwrap();
        let chain = alice.client.room_chain(&room).await.unwrap().unwrap();
        let new_boxes: Vec<RoomKeyRecord> = boxes_to(&server, &room, &bob.id)
            .await
            .into_iter()
            .filter(|b| b.epoch_id == epoch.to_hex())
            .collect();
        assert!(
            new_boxes.is_empty(),
            "{}: bob got the new epoch",
            server.backend()
        );
        assert!(
            !attacker_got_a_key(&server, &room, &bob.id, &attacker, chain.state(), &[&alice]).await
        );
        // The warning stays until the change is accepted, also after a restart.
        assert_eq!(
            alice.restarted().pending_key_changes(),
            std::slice::from_ref(&bob.id)
        );

        // Accepting the change (without comparing safety numbers: out of scope) is what
        // hands the key on; the check above would have seen it.
        alice.client.accept_key_change(&bob.id).unwrap();
        alice.client.distribute_room_keys(&room).await.unwrap();
        assert!(
            attacker_got_a_key(&server, &room, &bob.id, &attacker, chain.state(), &[&alice]).await
        );
        server.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ghost_member_is_not_vouched_for_and_gets_no_key() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = person(&server, "alice").await;
        let bob = person(&server, "bob").await;
        let ghost = person(&server, "ghost").await;
        let room = encrypted_channel(&alice, "board", &[&bob]).await;
        alice.client.send_text(&room, "before").await.unwrap();

        // Membership without any signed Invite.
        server
            .add_member_behind_the_rooms_back(room.as_str(), ghost.id.as_str())
            .await;
        let view = alice.client.room(&room).await.unwrap();
        let ghost_view = view
            .members
            .iter()
            .find(|m| m.user_id == ghost.id.as_str())
            .expect("the server lists the ghost");
        assert!(!ghost_view.verified_by_room && ghost_view.listed_by_server);
        assert!(view.members.iter().filter(|m| m.verified_by_room).count() == 2);

        alice.client.distribute_room_keys(&room).await.unwrap();
        alice.client.rotate_key(&room).await.unwrap();
        alice.client.send_text(&room, "after").await.unwrap();
        assert!(
            boxes_to(&server, &room, &ghost.id).await.is_empty(),
            "{}",
            server.backend()
        );
        let seen = read(&ghost.client, &room).await;
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|(text, p)| text.is_empty() && p.is_some()));
        server.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_room_key_request_gets_no_box() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = person(&server, "alice").await;
    let bob = person(&server, "bob").await;
    let ghost = person(&server, "ghost").await;
    let outsider = person(&server, "outsider").await;
    let room = encrypted_channel(&alice, "plans", &[&bob]).await;
    alice.client.send_text(&room, "secret").await.unwrap();
    server
        .add_member_behind_the_rooms_back(room.as_str(), ghost.id.as_str())
        .await;
    let epoch = alice
        .client
        .room_keys(&room)
        .await
        .unwrap()
        .current_epoch
        .unwrap();

    // The server asks alice's live client to hand the key to the ghost (listed, not
    // vouched for by the chain) and to someone not in the room at all.
    let mut follower = follow(&alice.client).await;
    let asked = vec![ghost.id.to_string(), outsider.id.to_string()];
    server.push_notice(
        &[alice.id.as_str()],
        Notice::RoomKeyRequest {
            room_id: room.to_string(),
            epoch_id: epoch.to_hex(),
            user_ids: asked.clone(),
        },
    );
    let Update::Event(request) = update_where(&mut follower, |u| {
        matches!(u, Update::Event(ClientEvent::RoomKeyRequest { .. }))
    })
    .await
    else {
        unreachable!()
    };
    alice.client.keep_keys(&request).await.unwrap();
    let stored = alice
        .client
        .handle_key_request(room.as_str(), &epoch.to_hex(), &asked)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    assert!(boxes_to(&server, &room, &ghost.id).await.is_empty());
    assert!(boxes_to(&server, &room, &outsider.id).await.is_empty());
    server.finish().await;
}

/// Alice, bob and carol in an encrypted channel; carol is removed and alice starts a new
/// epoch. Bob's box of it is then lost on the server, so he waits for it. Returns the
/// room, the new epoch and bob's genuine box of it.
async fn bob_waits_for_a_new_epoch(
    server: &TestServer,
) -> (Person, Person, Person, RoomId, EpochKey, RoomKeyRecord) {
    server.enable_encryption().await;
    let alice = person(server, "alice").await;
    let bob = person(server, "bob").await;
    let carol = person(server, "carol").await;
    let room = encrypted_channel(&alice, "plans", &[&bob, &carol]).await;
    alice.client.send_text(&room, "old epoch").await.unwrap();
    assert_eq!(read(&carol.client, &room).await[0].1, None);
    alice.client.remove(&room, &carol.id).await.unwrap();
    alice.client.send_text(&room, "new epoch").await.unwrap();
    let chain = alice.client.room_chain(&room).await.unwrap().unwrap();
    let epoch = chain.state().current_epoch().unwrap();
    let genuine = boxes_to(server, &room, &bob.id)
        .await
        .into_iter()
        .find(|b| b.epoch_id == epoch.to_hex())
        .expect("bob's box of the new epoch");
    let key = open_box(
        &genuine.sealed,
        &bob.id,
        &bob.keys(),
        chain.state(),
        alice.keys().identity_public(),
    )
    .unwrap();
    server
        .sql(
            "DELETE FROM room_keys WHERE room_id = $1 AND recipient_id = $2 AND epoch_id = $3",
            &[
                sotto_server::testing::SqlValue::Text(room.as_str()),
                sotto_server::testing::SqlValue::Text(bob.id.as_str()),
                sotto_server::testing::SqlValue::Text(&epoch.to_hex()),
            ],
        )
        .await;
    (alice, bob, carol, room, key, genuine)
}

#[tokio::test(flavor = "multi_thread")]
async fn room_key_boxes_signed_by_the_server_an_ex_member_or_nobody_are_refused() {
    for server in TestServer::every_backend().await {
        let (alice, bob, carol, room, key, _) = bob_waits_for_a_new_epoch(&server).await;
        let epoch = key.epoch();
        // The server's own key for the epoch, which it would love bob to use.
        let planted = EpochKey::from_parts(epoch, [7; 32]);
        let server_keys = IdentityKeys::generate(&mut os_rng());
        let mut rng = os_rng();
        let claimed_from_alice = RoomKeyBox::seal(
            &planted,
            &room,
            &server_keys,
            &alice.id,
            &bob.bundle(),
            &mut rng,
        )
        .unwrap()
        .encode();
        let from_carol = RoomKeyBox::seal(
            &planted,
            &room,
            &carol.keys(),
            &carol.id,
            &bob.bundle(),
            &mut rng,
        )
        .unwrap()
        .encode();
        let mut unsigned = claimed_from_alice.clone();
        let n = unsigned.len();
        unsigned[n - 64..].copy_from_slice(&[0x5a; 64]);
        let cases = [
            (claimed_from_alice, &alice, RoomKeyError::BadSignature),
            (from_carol, &carol, RoomKeyError::DistributorNotAuthorized),
            (unsigned, &alice, RoomKeyError::BadSignature),
        ];

        let mut follower = follow(&bob.client).await;
        for (sealed, distributor, reason) in cases {
            // Stored for bob behind the room's back…
            server
                .put_room_key_behind_the_rooms_back(&RoomKeyRecord {
                    room_id: room.to_string(),
                    epoch_id: epoch.to_hex(),
                    recipient_id: bob.id.to_string(),
                    distributor_id: distributor.id.to_string(),
                    sealed: sealed.clone(),
                    created_at: 1,
                })
                .await;
            let fresh = bob.restarted();
            let keys = fresh.room_keys(&room).await.unwrap();
            assert!(keys.waiting && !keys.held.contains(&epoch), "{reason:?}");
            let history = read(&fresh, &room).await;
            assert_eq!(
                history[1],
                (String::new(), Some(Undecryptable::WaitingForKey))
            );

            // …and pushed to his live socket as a `room_key` notice.
            server.push_notice(
                &[bob.id.as_str()],
                Notice::RoomKey {
                    room_id: room.to_string(),
                    epoch_id: epoch.to_hex(),
                    distributor_id: distributor.id.to_string(),
                    sealed: b64(&sealed),
                },
            );
            let Update::Event(notice) = update_where(&mut follower, |u| {
                matches!(u, Update::Event(ClientEvent::RoomKey { .. }))
            })
            .await
            else {
                unreachable!()
            };
            let refused = bob.client.keep_keys(&notice).await.unwrap_err();
            assert!(
                matches!(refused, Error::RoomKey(ref r) if *r == reason),
                "{}: {refused}",
                server.backend()
            );
            assert!(
                !bob.client
                    .room_keys(&room)
                    .await
                    .unwrap()
                    .held
                    .contains(&epoch)
            );
        }
        server.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_room_key_box_inside_a_message_or_an_otr_frame_installs_no_key() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = person(&server, "alice").await;
    let bob = person(&server, "bob").await;
    let room = encrypted_dm(&alice, &bob).await;
    alice.client.send_text(&room, "first").await.unwrap();
    // A new epoch whose genuine box to bob the server keeps to itself.
    let epoch = alice.client.rotate_key(&room).await.unwrap();
    alice.client.send_text(&room, "second").await.unwrap();
    let genuine = boxes_to(&server, &room, &bob.id)
        .await
        .into_iter()
        .find(|b| b.epoch_id == epoch.to_hex())
        .unwrap();
    server
        .drop_room_keys_behind_the_rooms_back(room.as_str(), bob.id.as_str())
        .await;
    let bob_now = bob.restarted();
    let mut follower = follow(&bob_now).await;

    // As a message's ciphertext, and as a message's text, "from alice".
    let id = MessageId::random(&mut os_rng()).to_hex();
    server
        .insert_message_behind_the_rooms_back(
            room.as_str(),
            alice.id.as_str(),
            None,
            Some(&b64(&genuine.sealed)),
            &id,
        )
        .await;
    let id2 = MessageId::random(&mut os_rng()).to_hex();
    server
        .insert_message_behind_the_rooms_back(
            room.as_str(),
            alice.id.as_str(),
            Some(&b64(&genuine.sealed)),
            None,
            &id2,
        )
        .await;
    // As an OTR frame from alice.
    server.push_notice(
        &[bob.id.as_str()],
        Notice::Otr {
            room_id: room.to_string(),
            sender_id: alice.id.to_string(),
            frame: b64(&genuine.sealed),
        },
    );
    let broken = update_where(&mut follower, |u| matches!(u, Update::Otr(_))).await;
    assert!(
        matches!(
            broken,
            Update::Otr(OtrEvent::Broken {
                reason: OtrBroken::Frame(_),
                ..
            })
        ),
        "{broken:?}"
    );

    let history = bob_now.history(&room, None, None).await.unwrap();
    let as_envelope = history.iter().find(|m| m.id == id).unwrap();
    assert!(matches!(
        as_envelope.problem,
        Some(Undecryptable::Malformed(_))
    ));
    let as_text = history.iter().find(|m| m.id == id2).unwrap();
    assert_eq!(
        as_text.problem,
        Some(Undecryptable::PlaintextInEncryptedRoom)
    );
    assert!(as_text.text.is_empty());
    let keys = bob_now.room_keys(&room).await.unwrap();
    assert!(keys.waiting && !keys.held.contains(&epoch));
    // The message of the new epoch stays unread: no key came in by the side channels.
    assert_eq!(history[1].problem, Some(Undecryptable::WaitingForKey));

    // The same box through the room-key channel is taken: the test could see a key.
    assert_eq!(
        bob_now
            .accept_room_key(room.as_str(), &genuine.sealed)
            .await
            .unwrap(),
        epoch
    );
    drop(follower);
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_chain_or_an_old_box_for_a_new_epoch_keeps_the_newer_state() {
    for server in TestServer::every_backend().await {
        let (alice, bob, carol, room, key, _) = bob_waits_for_a_new_epoch(&server).await;
        let epoch = key.epoch();

        // An old box (of the first epoch) served in the new epoch's place.
        let old = boxes_to(&server, &room, &bob.id)
            .await
            .into_iter()
            .find(|b| b.epoch_id != epoch.to_hex())
            .unwrap();
        server
            .put_room_key_behind_the_rooms_back(&RoomKeyRecord {
                epoch_id: epoch.to_hex(),
                created_at: 2,
                ..old.clone()
            })
            .await;
        let fresh = bob.restarted();
        let keys = fresh.room_keys(&room).await.unwrap();
        assert_eq!(keys.current_epoch, Some(epoch));
        assert!(keys.waiting && !keys.held.contains(&epoch));
        assert_eq!(
            read(&fresh, &room).await[1].1,
            Some(Undecryptable::WaitingForKey)
        );

        // The chain without carol's removal and the new epoch.
        let verified = server.stored_statements(room.as_str()).await.len() as u64;
        let before_removal = verified - 2;
        server
            .truncate_chain_behind_the_rooms_back(room.as_str(), before_removal)
            .await;
        for client in [alice.client.clone(), alice.restarted()] {
            let refused = client.room_chain(&room).await.unwrap_err();
            assert!(
                matches!(
                    refused,
                    Error::ChainRolledBack { verified: v, served: s, .. }
                        if v == verified && s == before_removal
                ),
                "{}: {refused}",
                server.backend()
            );
            // Nothing is sent or handed on under the older state.
            assert!(matches!(
                client.send_text(&room, "into the past").await,
                Err(Error::ChainRolledBack { .. })
            ));
            assert!(client.distribute_room_keys(&room).await.is_err());
        }
        assert!(
            boxes_to(&server, &room, &carol.id)
                .await
                .iter()
                .all(|b| b.epoch_id != epoch.to_hex())
        );
        // What was read under the newer state still reads.
        assert_eq!(
            alice.client.history(&room, None, None).await.unwrap()[1].text,
            "new epoch"
        );
        server.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_plaintext_is_an_error_and_no_plaintext_is_sent_unsigned() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = person(&server, "alice").await;
        let bob = person(&server, "bob").await;
        let room = encrypted_dm(&alice, &bob).await;
        alice.client.send_text(&room, "sealed").await.unwrap();

        // Plaintext "from bob", stored and pushed live.
        let mut follower = follow(&alice.client).await;
        let id = MessageId::random(&mut os_rng()).to_hex();
        server
            .insert_message_behind_the_rooms_back(
                room.as_str(),
                bob.id.as_str(),
                Some("send the code to this number"),
                None,
                &id,
            )
            .await;
        let Update::Event(ClientEvent::Room(event)) = update_where(&mut follower, |u| {
            matches!(u, Update::Event(ClientEvent::Room(e)) if matches!(
                e.kind, sotto_client::sotto_api::EventKind::MessageCreated { .. }))
        })
        .await
        else {
            unreachable!()
        };
        let sotto_client::sotto_api::EventKind::MessageCreated { message } = event.kind else {
            unreachable!()
        };
        let live = alice.client.open_message(&message).await.unwrap();
        assert_eq!(live.problem, Some(Undecryptable::PlaintextInEncryptedRoom));
        assert!(live.text.is_empty());
        let history = read(&alice.client, &room).await;
        assert_eq!(
            history,
            [
                ("sealed".to_owned(), None),
                (String::new(), Some(Undecryptable::PlaintextInEncryptedRoom))
            ],
            "{}",
            server.backend()
        );

        // The room flipped to unencrypted with no signed statement: the client seals
        // anyway, and this server, going by its flag, refuses the envelope.
        server
            .set_encrypted_behind_the_rooms_back(room.as_str(), false)
            .await;
        match alice.client.send_text(&room, "never in clear").await {
            Ok(sent) => assert!(sent.encrypted),
            Err(e) => assert_eq!(e.code(), Some("invalid_input"), "{e}"),
        }
        let page = raw_page(&alice, &room).await;
        assert!(
            page.messages
                .iter()
                .all(|m| m.text.as_deref() != Some("never in clear"))
        );
        drop(follower);
        server.finish().await;
    }
}

/// `backup` with its KDF parameters replaced (the associated data then no longer
/// matches, but a client must refuse before deriving anything).
fn with_params(backup: &[u8], params: KdfParams) -> Vec<u8> {
    let mut out = backup.to_vec();
    out[1..5].copy_from_slice(&params.m_kib.to_be_bytes());
    out[5..9].copy_from_slice(&params.t.to_be_bytes());
    out[9..13].copy_from_slice(&params.p.to_be_bytes());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn weak_kdf_parameters_and_someone_elses_backup_are_refused() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let bob = person(&server, "bob").await;
    let carol = person(&server, "carol").await;
    let genuine = server.stored_backup(bob.id.as_str()).await;

    // m = 8 KiB, t = 1: refused on a new device before anything is derived.
    let weak = with_params(
        &genuine,
        KdfParams {
            m_kib: 8,
            t: 1,
            p: 1,
        },
    );
    server
        .replace_backup_behind_the_users_back(bob.id.as_str(), &weak)
        .await;
    let (device, _dir) = bob.new_device(&server).await;
    let started = std::time::Instant::now();
    let refused = device
        .e2e_unlock(&bob.encryption_password)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Backup(BackupError::ParamsBelowFloor)),
        "{refused}"
    );
    assert!(started.elapsed() < WAIT);
    assert!(!device.e2e_status().await.unwrap().unlocked);

    // Carol's backup served as bob's: it opens under neither password.
    let carols = server.stored_backup(carol.id.as_str()).await;
    server
        .replace_backup_behind_the_users_back(bob.id.as_str(), &carols)
        .await;
    for password in [&bob.encryption_password, &carol.encryption_password] {
        let refused = device.e2e_unlock(password).await.unwrap_err();
        assert!(matches!(refused, Error::WrongPassword), "{refused}");
    }

    // A backup of other keys sealed for bob under his own password (what a server
    // could keep from before a key reset): it opens, but does not match his bundle.
    let stale = IdentityKeys::generate(&mut os_rng());
    let password = EncryptionPassword::from_user(&bob.encryption_password).unwrap();
    let other =
        KeyBackup::create(&stale, &bob.id, &password, KdfParams::FLOOR, &mut os_rng()).unwrap();
    server
        .replace_backup_behind_the_users_back(bob.id.as_str(), &other.encode())
        .await;
    let refused = device
        .e2e_unlock(&bob.encryption_password)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Backup(BackupError::KeysDoNotMatchBundle)),
        "{refused}"
    );
    assert!(!device.e2e_status().await.unwrap().unlocked);

    // The genuine backup still unlocks: the refusals above were the attack's.
    server
        .replace_backup_behind_the_users_back(bob.id.as_str(), &genuine)
        .await;
    device.e2e_unlock(&bob.encryption_password).await.unwrap();
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_members_message_under_the_old_epoch_is_flagged() {
    for server in TestServer::every_backend().await {
        let (alice, bob, carol, room, key, genuine) = bob_waits_for_a_new_epoch(&server).await;
        // Bob gets the new epoch back.
        server.put_room_key_behind_the_rooms_back(&genuine).await;
        let chain = alice.client.room_chain(&room).await.unwrap().unwrap();
        let old_epoch = chain.state().epochs()[0];
        assert_ne!(old_epoch, key.epoch());

        // Carol still holds the old epoch's key (her own box of it).
        let carols = boxes_to(&server, &room, &carol.id)
            .await
            .into_iter()
            .find(|b| b.epoch_id == old_epoch.to_hex())
            .unwrap();
        let distributor = if carols.distributor_id == carol.id.as_str() {
            carol.keys().identity_public()
        } else {
            alice.keys().identity_public()
        };
        let old_key = open_box(
            &carols.sealed,
            &carol.id,
            &carol.keys(),
            chain.state(),
            distributor,
        )
        .unwrap();
        let mut rng = os_rng();
        let header = EnvelopeHeader::new(room.clone(), old_epoch, carol.id.clone(), &mut rng);
        let body = MessageBody {
            room: room.clone(),
            sender: carol.id.clone(),
            text: "meet me outside".into(),
            reply_to: None,
            edit_of: None,
            mentions: BTreeSet::new(),
            attachments: Vec::new(),
        };
        let sealed = envelope::seal(&body, &header, &old_key, &carol.keys(), &mut rng).unwrap();
        let mut follower = follow(&bob.client).await;
        server
            .insert_message_behind_the_rooms_back(
                room.as_str(),
                carol.id.as_str(),
                None,
                Some(&b64(&sealed)),
                &header.message.to_hex(),
            )
            .await;

        // Live and in history: flagged, never the text.
        let Update::Event(ClientEvent::Room(event)) = update_where(&mut follower, |u| {
            matches!(u, Update::Event(ClientEvent::Room(e)) if matches!(
                e.kind, sotto_client::sotto_api::EventKind::MessageCreated { .. }))
        })
        .await
        else {
            unreachable!()
        };
        let sotto_client::sotto_api::EventKind::MessageCreated { message } = event.kind else {
            unreachable!()
        };
        let live = bob.client.open_message(&message).await.unwrap();
        assert_eq!(live.problem, Some(Undecryptable::SupersededEpoch));
        assert!(live.text.is_empty());
        let history = read(&bob.restarted(), &room).await;
        assert_eq!(
            history,
            [
                ("old epoch".to_owned(), None),
                ("new epoch".to_owned(), None),
                (String::new(), Some(Undecryptable::SupersededEpoch)),
            ],
            "{}",
            server.backend()
        );
        drop(follower);
        server.finish().await;
    }
}

//! Off-the-record conversations between two in-process clients on a real server.

mod common;

use common::*;
use reqwest::Method;
use sotto_client::sotto_api::otr::OtrErrorCode;
use sotto_client::sotto_api::realtime::EventKind;
use sotto_client::sotto_api::rooms::{EditMessageRequest, RoomKind};
use sotto_client::sotto_crypto::OtrError;
use sotto_client::sotto_crypto::otr::{Body, SessionState};
use sotto_client::{ClientEvent, Follower, OtrBroken, OtrEvent, Update, refuse_otr_message_id};
use sotto_server::testing::TestServer;
use std::time::Duration;

fn otr(u: &Update) -> Option<&OtrEvent> {
    match u {
        Update::Otr(e) => Some(e),
        Update::Event(_) => None,
    }
}

async fn otr_where(f: &mut Follower, want: impl Fn(&OtrEvent) -> bool) -> OtrEvent {
    let u = update_where(f, |u| otr(u).is_some_and(&want)).await;
    otr(&u).cloned().unwrap()
}

fn text_of(e: &OtrEvent) -> Option<&str> {
    match e {
        OtrEvent::Message(m) => match &m.body {
            Body::Text(t) => Some(t),
            Body::File { .. } => None,
        },
        _ => None,
    }
}

/// Alice offers, Bob accepts; both followers are polled until both are established.
async fn establish(fa: &mut Follower, fb: &mut Follower, room: &str) {
    fa.otr().start(room).await.unwrap();
    let offered = otr_where(fb, |e| matches!(e, OtrEvent::Offered { .. })).await;
    assert!(matches!(&offered, OtrEvent::Offered { room_id, .. } if room_id == room));
    assert!(fb.otr().has_offer(room));
    fb.otr().accept(room).await.unwrap();
    let (a, b) = tokio::join!(
        otr_where(fa, |e| matches!(e, OtrEvent::Established { .. })),
        otr_where(fb, |e| matches!(e, OtrEvent::Established { .. })),
    );
    assert_eq!(
        a,
        OtrEvent::Established {
            room_id: room.into()
        }
    );
    assert_eq!(
        b,
        OtrEvent::Established {
            room_id: room.into()
        }
    );
}

#[tokio::test]
async fn full_life_cycle_leaves_nothing_on_the_server() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = user(&server, "alice", true).await;
        let bob = user(&server, "bob", true).await;
        let room = dm(&alice.client, &bob.id).await;
        let mut fa = follow(&alice.client).await;
        let mut fb = follow(&bob.client).await;
        establish(&mut fa, &mut fb, &room).await;
        assert_eq!(fa.otr().state(&room), Some(SessionState::Established));

        // Messages both ways.
        let sent = fa
            .otr()
            .send_text(&room, "otr-secret-from-alice-7731")
            .await
            .unwrap();
        assert!(sent.outgoing);
        let got = otr_where(&mut fb, |e| text_of(e).is_some()).await;
        assert_eq!(text_of(&got), Some("otr-secret-from-alice-7731"));
        let OtrEvent::Message(m) = &got else {
            unreachable!()
        };
        assert_eq!(m.sender_id, alice.id);
        assert!(!m.outgoing);
        fb.otr()
            .send_text(&room, "otr-secret-from-bob-5519")
            .await
            .unwrap();
        let got = otr_where(&mut fa, |e| text_of(e).is_some()).await;
        assert_eq!(text_of(&got), Some("otr-secret-from-bob-5519"));

        // A file goes through the session (O9), never through the files endpoint.
        let content = b"otr-file-content-4417 and more bytes".to_vec();
        fa.otr()
            .send_file(&room, "otr-file-name-8812.txt", "text/plain", &content)
            .await
            .unwrap();
        let got = otr_where(&mut fb, |e| matches!(e, OtrEvent::Message(_))).await;
        let OtrEvent::Message(m) = got else {
            unreachable!()
        };
        assert_eq!(
            m.body,
            Body::File {
                name: "otr-file-name-8812.txt".into(),
                media_type: "text/plain".into(),
                bytes: content.clone()
            }
        );

        // An OTR message id is never a server message id (O8).
        let id = sent.id.to_string();
        assert_eq!(
            refuse_otr_message_id(&id).unwrap_err().code(),
            Some("otr_message")
        );
        let edit = EditMessageRequest {
            text: Some("leaked".into()),
            ciphertext: None,
        };
        let path = format!(
            "/api/v1/rooms/{room}/messages/{}",
            sotto_client::api::seg(&id)
        );
        let refused = alice
            .client
            .api()
            .send_empty(Method::PATCH, &path, Some(&edit))
            .await;
        assert!(
            refused.is_err(),
            "the server must not take an OTR id as a message id"
        );

        // Refresh: new keys, messages still flow.
        fa.otr().refresh(&room).await.unwrap();
        let (a, b) = tokio::join!(
            otr_where(&mut fa, |e| matches!(e, OtrEvent::Refreshed { .. })),
            otr_where(&mut fb, |e| matches!(e, OtrEvent::Refreshed { .. })),
        );
        assert_eq!(
            a,
            OtrEvent::Refreshed {
                room_id: room.clone()
            }
        );
        assert_eq!(
            b,
            OtrEvent::Refreshed {
                room_id: room.clone()
            }
        );
        fb.otr()
            .send_text(&room, "otr-after-refresh-2290")
            .await
            .unwrap();
        let got = otr_where(&mut fa, |e| text_of(e).is_some()).await;
        assert_eq!(text_of(&got), Some("otr-after-refresh-2290"));
        assert_eq!(
            fa.otr().messages(&room).len(),
            4,
            "kept in memory while it runs"
        );

        // End, for both sides; messages are gone.
        fa.otr().end(&room).await.unwrap();
        let mine = otr_where(&mut fa, |e| matches!(e, OtrEvent::Ended { .. })).await;
        assert_eq!(
            mine,
            OtrEvent::Ended {
                room_id: room.clone(),
                by_peer: false
            }
        );
        let theirs = otr_where(&mut fb, |e| matches!(e, OtrEvent::Ended { .. })).await;
        assert_eq!(
            theirs,
            OtrEvent::Ended {
                room_id: room.clone(),
                by_peer: true
            }
        );
        assert!(fa.otr().messages(&room).is_empty());
        assert_eq!(fb.otr().state(&room), None);
        let after = fa
            .otr()
            .send_text(&room, "not off the record")
            .await
            .unwrap_err();
        assert_eq!(after.code(), Some("no_session"));

        // The normal room path works again and is stored.
        post(&alice.client, &room, "back on the record").await;
        let u = update_where(&mut fb, |u| {
            matches!(u, Update::Event(ClientEvent::Room(e)) if matches!(&e.kind, EventKind::MessageCreated { .. }))
        })
        .await;
        let Update::Event(ClientEvent::Room(e)) = u else {
            unreachable!()
        };
        let EventKind::MessageCreated { message } = e.kind else {
            unreachable!()
        };
        assert_eq!(message.text.as_deref(), Some("back on the record"));

        if server.backend() == "sqlite" {
            let bytes = all_bytes(&server.data_dir());
            assert!(
                contains(&bytes, b"back on the record"),
                "the check reads the database"
            );
            for secret in [
                &b"otr-secret-from-alice-7731"[..],
                b"otr-secret-from-bob-5519",
                b"otr-after-refresh-2290",
                b"otr-file-content-4417",
                b"otr-file-name-8812",
            ] {
                assert!(
                    !contains(&bytes, secret),
                    "OTR content reached the server's storage"
                );
            }
        }
        drop((fa, fb));
        server.finish().await;
    }
}

#[tokio::test]
async fn a_declined_offer_ends_the_session() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", true).await;
    let bob = user(&server, "bob", true).await;
    let room = dm(&alice.client, &bob.id).await;
    let mut fa = follow(&alice.client).await;
    let mut fb = follow(&bob.client).await;
    fa.otr().start(&room).await.unwrap();
    assert_eq!(fa.otr().state(&room), Some(SessionState::AwaitingAccept));
    otr_where(&mut fb, |e| matches!(e, OtrEvent::Offered { .. })).await;
    fb.otr().decline(&room).await.unwrap();
    let e = otr_where(&mut fa, |e| matches!(e, OtrEvent::Declined { .. })).await;
    assert_eq!(
        e,
        OtrEvent::Declined {
            room_id: room.clone()
        }
    );
    assert_eq!(fa.otr().state(&room), None);
    assert_eq!(
        fb.otr().accept(&room).await.unwrap_err().code(),
        Some("no_offer")
    );
    server.finish().await;
}

#[tokio::test]
async fn an_unanswered_offer_times_out() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", true).await;
    let bob = user(&server, "bob", true).await;
    let room = dm(&alice.client, &bob.id).await;
    let mut fa = follow(&alice.client).await;
    let mut fb = follow(&bob.client).await;
    fa.otr().set_offer_timeout(Duration::from_millis(800));
    fa.otr().start(&room).await.unwrap();
    let started = std::time::Instant::now();
    // Bob's client is connected but never answers.
    let e = otr_where(&mut fa, |e| matches!(e, OtrEvent::Timeout { .. })).await;
    assert_eq!(
        e,
        OtrEvent::Timeout {
            room_id: room.clone()
        }
    );
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(fa.otr().state(&room), None);
    // Bob saw the invitation, then its withdrawal.
    otr_where(&mut fb, |e| matches!(e, OtrEvent::Offered { .. })).await;
    let e = otr_where(&mut fb, |e| matches!(e, OtrEvent::Ended { .. })).await;
    assert_eq!(
        e,
        OtrEvent::Ended {
            room_id: room.clone(),
            by_peer: true
        }
    );
    assert!(!fb.otr().has_offer(&room));
    server.finish().await;
}

#[tokio::test]
async fn refresh_re_establishes_after_one_side_lost_its_session() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", true).await;
    let bob = user(&server, "bob", true).await;
    let room = dm(&alice.client, &bob.id).await;
    let mut fa = follow(&alice.client).await;
    let mut fb = follow(&bob.client).await;
    establish(&mut fa, &mut fb, &room).await;

    // Bob's client restarts: same profile, no session.
    drop(fb);
    let bob2 = reopen(&bob);
    let mut fb = follow(&bob2).await;
    // Alice's messages now break visibly on Bob's side (O7).
    fa.otr().send_text(&room, "lost").await.unwrap();
    let e = otr_where(&mut fb, |e| matches!(e, OtrEvent::Broken { .. })).await;
    assert_eq!(
        e,
        OtrEvent::Broken {
            room_id: room.clone(),
            reason: OtrBroken::Frame(OtrError::UnknownSession)
        }
    );

    fa.otr().refresh(&room).await.unwrap();
    let (a, b) = tokio::join!(
        otr_where(&mut fa, |e| matches!(e, OtrEvent::Refreshed { .. })),
        otr_where(&mut fb, |e| matches!(e, OtrEvent::Established { .. })),
    );
    assert_eq!(
        a,
        OtrEvent::Refreshed {
            room_id: room.clone()
        }
    );
    assert_eq!(
        b,
        OtrEvent::Established {
            room_id: room.clone()
        }
    );
    fa.otr().send_text(&room, "found again").await.unwrap();
    let got = otr_where(&mut fb, |e| text_of(e).is_some()).await;
    assert_eq!(text_of(&got), Some("found again"));
    fb.otr().send_text(&room, "and back").await.unwrap();
    let got = otr_where(&mut fa, |e| text_of(e).is_some()).await;
    assert_eq!(text_of(&got), Some("and back"));
    server.finish().await;
}

#[tokio::test]
async fn preconditions_are_reported_clearly() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", true).await;
    let nokeys = user(&server, "carol", false).await;
    let offline = user(&server, "dave", true).await;
    let bob = user(&server, "bob", true).await;
    let fa = follow(&alice.client).await;

    let channel = create_room(
        &alice.client,
        RoomKind::Channel,
        Some("general"),
        &[&bob.id],
    )
    .await;
    let e = fa.otr().start(&channel).await.unwrap_err();
    assert_eq!(e.code(), Some("not_direct"), "{e}");

    let group = create_room(
        &alice.client,
        RoomKind::Direct,
        None,
        &[&bob.id, &offline.id],
    )
    .await;
    let e = fa.otr().start(&group).await.unwrap_err();
    assert_eq!(e.code(), Some("not_two_people"), "{e}");

    let room = dm(&alice.client, &nokeys.id).await;
    let _fc = follow(&nokeys.client).await;
    let e = fa.otr().start(&room).await.unwrap_err();
    assert_eq!(e.code(), Some("peer_no_keys"), "{e}");

    let room = dm(&alice.client, &offline.id).await;
    let e = fa.otr().start(&room).await.unwrap_err();
    assert_eq!(e.code(), Some("peer_offline"), "{e}");
    assert_eq!(fa.otr().state(&room), None);

    // Keys not unlocked here: a second profile of Bob's that never unlocked.
    let bob_elsewhere = {
        let dir = tempfile::tempdir().unwrap();
        let profile = sotto_client::Profile::open(dir.path().join("p")).unwrap();
        let c =
            sotto_client::Client::login(profile, &server.url(), "bob", "bob password long enough")
                .await
                .unwrap();
        (c, dir)
    };
    let room = dm(&alice.client, &bob.id).await;
    let fb = follow(&bob_elsewhere.0).await;
    let e = fb.otr().start(&room).await.unwrap_err();
    assert_eq!(e.code(), Some("keys_locked"), "{e}");

    // The server's switch is off: the offer is refused with its code.
    let _fb = follow(&bob.client).await;
    server
        .admin_call(
            "PATCH",
            "/api/v1/settings",
            Some(serde_json::json!({"otr.enabled": false})),
        )
        .await;
    let mut fa = fa;
    fa.otr().start(&room).await.unwrap();
    let e = otr_where(&mut fa, |e| matches!(e, OtrEvent::Refused { .. })).await;
    let OtrEvent::Refused { code, ended, .. } = e else {
        unreachable!()
    };
    assert_eq!(code, OtrErrorCode::OtrDisabled);
    assert!(ended);
    assert_eq!(fa.otr().state(&room), None);
    server.finish().await;
}

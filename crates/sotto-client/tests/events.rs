//! The realtime stream against a real server: order, notices, and resuming after a drop.

mod common;

use common::*;
use sotto_client::ClientEvent;
use sotto_client::sotto_api::realtime::EventKind;
use sotto_client::sotto_api::rooms::RoomKind;
use sotto_server::testing::TestServer;

fn message_text(e: &ClientEvent) -> Option<String> {
    match e {
        ClientEvent::Room(ev) => match &ev.kind {
            EventKind::MessageCreated { message } => message.text.clone(),
            _ => None,
        },
        _ => None,
    }
}

async fn connected(events: &mut sotto_client::EventStream) {
    event_where(events, |e| matches!(e, ClientEvent::Connected)).await;
}

#[tokio::test]
async fn room_events_arrive_once_and_in_order() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = user(&server, "alice", false).await;
        let bob = user(&server, "bob", false).await;
        let room = dm(&alice.client, &bob.id).await;
        let mut events = bob.client.events();
        connected(&mut events).await;
        for i in 0..6 {
            post(&alice.client, &room, &format!("message {i}")).await;
        }
        let mut last_seq = 0;
        for i in 0..6 {
            let e = event_where(&mut events, |e| message_text(e).is_some()).await;
            assert_eq!(
                message_text(&e).unwrap(),
                format!("message {i}"),
                "{}",
                server.backend()
            );
            let ClientEvent::Room(ev) = e else {
                unreachable!()
            };
            assert!(ev.seq > last_seq);
            last_seq = ev.seq;
            assert_eq!(events.positions()[&room], ev.seq);
        }
        drop(events);
        server.finish().await;
    }
}

#[tokio::test]
async fn presence_and_key_changes_come_through() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", false).await;
    let bob = user(&server, "bob", false).await;
    dm(&alice.client, &bob.id).await;
    let mut alice_events = alice.client.events();
    connected(&mut alice_events).await;

    let mut bob_events = bob.client.events();
    connected(&mut bob_events).await;
    let bob_id = bob.id.clone();
    event_where(
        &mut alice_events,
        |e| matches!(e, ClientEvent::Presence { user_id, online: true } if *user_id == bob_id),
    )
    .await;

    bob.client.e2e_setup().await.unwrap();
    event_where(
        &mut alice_events,
        |e| matches!(e, ClientEvent::KeysChanged { user_id } if *user_id == bob_id),
    )
    .await;

    drop(bob_events);
    event_where(
        &mut alice_events,
        |e| matches!(e, ClientEvent::Presence { user_id, online: false } if *user_id == bob_id),
    )
    .await;
    server.finish().await;
}

#[tokio::test]
async fn a_new_stream_resumes_without_losing_or_repeating() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = user(&server, "alice", false).await;
        let bob = user(&server, "bob", false).await;
        let room = dm(&alice.client, &bob.id).await;
        let mut events = bob.client.events();
        connected(&mut events).await;
        post(&alice.client, &room, "before the drop").await;
        let e = event_where(&mut events, |e| message_text(e).is_some()).await;
        assert_eq!(message_text(&e).unwrap(), "before the drop");
        let positions = events.positions();
        drop(events);

        // While no stream is open: messages in the known room, and a room joined meanwhile.
        for i in 0..3 {
            post(&alice.client, &room, &format!("while away {i}")).await;
        }
        let channel =
            create_room(&alice.client, RoomKind::Channel, Some("later"), &[&bob.id]).await;
        post(&alice.client, &channel, "in the new room").await;

        let mut events = bob.client.events_from(positions);
        let mut texts = Vec::new();
        tokio::time::timeout(WAIT, async {
            loop {
                match events.next().await.unwrap() {
                    ClientEvent::Connected => break,
                    e => texts.extend(message_text(&e)),
                }
            }
        })
        .await
        .expect("caught up in time");
        let mut expected: Vec<String> = (0..3).map(|i| format!("while away {i}")).collect();
        let in_room: Vec<&String> = texts
            .iter()
            .filter(|t| t.starts_with("while away"))
            .collect();
        assert_eq!(
            in_room,
            expected.iter().collect::<Vec<_>>(),
            "in order within the room"
        );
        expected.push("in the new room".into());
        texts.sort();
        expected.sort();
        assert_eq!(texts, expected, "{}", server.backend());

        // Live again afterwards.
        post(&alice.client, &room, "live").await;
        let e = event_where(&mut events, |e| message_text(e).is_some()).await;
        assert_eq!(message_text(&e).unwrap(), "live");
        drop(events);
        server.finish().await;
    }
}

#[tokio::test]
async fn reconnects_and_resumes_after_the_server_drops_the_socket() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let alice = user(&server, "alice", false).await;
    let bob = user(&server, "bob", false).await;
    let room = dm(&alice.client, &bob.id).await;
    let mut events = bob.client.events();
    connected(&mut events).await;
    post(&alice.client, &room, "before").await;
    let e = event_where(&mut events, |e| message_text(e).is_some()).await;
    assert_eq!(message_text(&e).unwrap(), "before");

    // A message over the socket's limit makes the server end the connection.
    let outbox = events.outbox();
    let huge = vec![0u8; 6 * 1024 * 1024];
    let _ = outbox.send_otr(&outbox.frame_id(), &room, &huge).await;
    let e = event_where(&mut events, |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;
    let ClientEvent::Reconnecting { attempt, .. } = e else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    // Sent while reconnecting: caught up by the resume (or live), once each, in order.
    for i in 0..3 {
        post(&alice.client, &room, &format!("meanwhile {i}")).await;
    }
    let mut texts = Vec::new();
    tokio::time::timeout(WAIT, async {
        while texts.len() < 3 {
            let e = events.next().await.unwrap();
            texts.extend(message_text(&e));
        }
    })
    .await
    .expect("the messages in time");
    let expected: Vec<String> = (0..3).map(|i| format!("meanwhile {i}")).collect();
    assert_eq!(texts, expected);
    post(&alice.client, &room, "after").await;
    let e = event_where(&mut events, |e| message_text(e).is_some()).await;
    assert_eq!(
        message_text(&e).unwrap(),
        "after",
        "nothing delivered twice"
    );
    drop(events);
    server.finish().await;
}

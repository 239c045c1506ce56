//! A compromised server against real clients: messages, files and off-the-record
//! frames. The server (or a member it helps) changes what it stores or relays; each
//! test checks that the client reports the attack by its kind, never shows the message
//! as a normal one, and keeps its state.
//!
//! The server is played through a second handle on its storage
//! ([`TestServer::stores`]) and, for OTR, through raw sockets of the two people: the
//! server relays whatever a connection sends, so a frame captured on one and sent again
//! on another is exactly what a replaying server delivers.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use futures_util::SinkExt;
use sha2::{Digest, Sha256};
use sotto_client::sotto_crypto::chain::RoomChain;
use sotto_client::sotto_crypto::envelope;
use sotto_client::sotto_crypto::otr::{Body, Frame, SessionState};
use sotto_client::sotto_crypto::roomkey::RoomKeyBox;
use sotto_client::sotto_crypto::{
    Attachment, EnvelopeHeader, EpochId, EpochKey, IdentityPublicKey, MessageBody, OtrError,
    RoomId, UserId, os_rng,
};
use sotto_client::{
    Client, ClientEvent, Draft, Error, EventStream, MessageView, NewRoom, NewRoomKind, OtrBroken,
    OtrEvent, Undecryptable, Update,
};
use sotto_server::store::{FileRecord, Inserted, MessageRecord};
use sotto_server::testing::{self, TestServer};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------
// Playing the server

/// Stores `envelope` as a message of `room` with record id `id` and sender `sender`,
/// as a compromised server writes whatever it likes into its database.
async fn inject(server: &TestServer, room: &RoomId, id: &str, sender: &str, envelope: &[u8]) {
    let record = MessageRecord {
        room_id: room.to_string(),
        id: id.to_owned(),
        seq: 0,
        version_seq: 0,
        sender_id: sender.to_owned(),
        text: None,
        ciphertext: Some(B64.encode(envelope)),
        mentions: Vec::new(),
        content_hash: hex::encode(Sha256::digest(envelope)),
        created_at: 1_700_000_000_000,
        edited_at: None,
        deleted: false,
    };
    let stores = server.stores().await;
    let inserted = stores.messages.insert_message(&record).await.unwrap();
    stores.close().await;
    assert!(
        matches!(inserted, Inserted::New(_)),
        "{id} was already there"
    );
}

/// The envelope the server stores for message `id` of `room`.
async fn stored_envelope(server: &TestServer, room: &RoomId, id: &str) -> Vec<u8> {
    let stores = server.stores().await;
    let record = stores.messages.message(room.as_str(), id).await.unwrap();
    stores.close().await;
    let text = record.unwrap().ciphertext.expect("an envelope");
    B64.decode(text).unwrap()
}

/// `envelope` with its cleartext header changed by `change` and everything after the
/// header (nonce, ciphertext, signature) kept: what a server can do without keys.
fn rewrite_header(envelope: &[u8], change: impl FnOnce(&mut EnvelopeHeader)) -> Vec<u8> {
    let mut header = EnvelopeHeader::peek(envelope).unwrap();
    let rest = &envelope[header.encode().len()..];
    change(&mut header);
    let mut out = header.encode();
    out.extend_from_slice(rest);
    out
}

/// Replaces the stored bytes of file `id` (and its recorded size, so the server's
/// answer is consistent) with `bytes`.
async fn replace_blob(server: &TestServer, id: &str, bytes: Vec<u8>) {
    let stores = server.stores().await;
    let mut record: FileRecord = stores.files.file(id).await.unwrap().unwrap();
    assert!(stores.blobs.delete(id).await.unwrap());
    let len = bytes.len() as u64;
    let data = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
    let stored = stores.blobs.put(id, Box::pin(data), len + 1).await.unwrap();
    assert_eq!(stored, len);
    record.size = len as i64;
    assert!(stores.files.delete_file(id).await.unwrap());
    stores.files.insert_file(&record).await.unwrap();
    stores.close().await;
}

/// The stored bytes of file `id`.
async fn blob(client: &Client, id: &str) -> Vec<u8> {
    let answer = client
        .api()
        .request(reqwest::Method::GET, &format!("/api/v1/files/{id}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.bytes().await.unwrap().to_vec()
}

// ---------------------------------------------------------------------------------
// A member with the server: Mallory seals what she likes with the keys she holds

/// Alice, Bob and Mallory with keys, and two encrypted private channels that Alice
/// made with the other two in them.
struct Workspace {
    alice: User,
    bob: User,
    mallory: User,
    room_a: RoomId,
    room_b: RoomId,
}

async fn workspace(server: &TestServer) -> Workspace {
    server.enable_encryption().await;
    let alice = user(server, "alice", true).await;
    let bob = user(server, "bob", true).await;
    let mallory = user(server, "mallory", true).await;
    let members = vec![uid(&bob), uid(&mallory)];
    let mut rooms = Vec::new();
    for name in ["room-a", "room-b"] {
        let room = alice
            .client
            .create_room(NewRoom {
                kind: NewRoomKind::Channel,
                name: name.into(),
                private: true,
                encrypted: true,
                members: members.clone(),
            })
            .await
            .unwrap();
        rooms.push(RoomId::new(room.id).unwrap());
    }
    let room_b = rooms.pop().unwrap();
    let room_a = rooms.pop().unwrap();
    Workspace {
        alice,
        bob,
        mallory,
        room_a,
        room_b,
    }
}

fn uid(u: &User) -> UserId {
    UserId::new(u.id.as_str()).unwrap()
}

fn identity(u: &User) -> IdentityPublicKey {
    u.client.keys().unwrap().identity_public()
}

async fn chain(who: &Client, room: &RoomId) -> RoomChain {
    who.room_chain(room).await.unwrap().expect("a chain")
}

/// The key of `epoch` (the room's current one when `None`) as `who` opens it from the
/// box the server holds for them: what a member holds in memory.
async fn epoch_key(
    server: &TestServer,
    w: &Workspace,
    who: &User,
    room: &RoomId,
    epoch: Option<EpochId>,
) -> EpochKey {
    let chain = chain(&who.client, room).await;
    let epoch = epoch.unwrap_or_else(|| chain.state().current_epoch().unwrap());
    let stores = server.stores().await;
    let boxes = stores.e2ee.room_keys(room.as_str(), &who.id).await.unwrap();
    stores.close().await;
    let people = [&w.alice, &w.bob, &w.mallory].map(|u| (uid(u), identity(u)));
    let record = boxes
        .iter()
        .find(|b| b.epoch_id == epoch.to_hex())
        .expect("a box of the epoch");
    RoomKeyBox::decode(&record.sealed)
        .unwrap()
        .open(&uid(who), &who.client.keys().unwrap(), chain.state(), |u| {
            people.iter().find(|(id, _)| id == u).map(|(_, k)| *k)
        })
        .unwrap()
}

/// An envelope sealed and signed by `by` with `key`, whose header (and body) names
/// `claimed` as the sender; its message id.
fn seal_as(
    by: &User,
    claimed: &UserId,
    room: &RoomId,
    key: &EpochKey,
    text: &str,
) -> (Vec<u8>, String) {
    let mut rng = os_rng();
    let header = EnvelopeHeader::new(room.clone(), key.epoch(), claimed.clone(), &mut rng);
    let body = MessageBody {
        room: room.clone(),
        sender: claimed.clone(),
        text: text.to_owned(),
        reply_to: None,
        edit_of: None,
        mentions: BTreeSet::new(),
        attachments: Vec::new(),
    };
    let sealed = envelope::seal(&body, &header, key, &by.client.keys().unwrap(), &mut rng);
    (sealed.unwrap(), header.message.to_hex())
}

/// The view of message `id` in `who`'s history of `room`.
async fn view_of(who: &Client, room: &RoomId, id: &str) -> MessageView {
    let all = who.history(room, None, None).await.unwrap();
    all.into_iter().find(|m| m.id == id).expect("the message")
}

/// Shown as "could not be opened" with `problem`: no text, not verified.
fn refused_as(v: &MessageView, problem: Undecryptable) {
    assert_eq!(v.problem, Some(problem), "{v:?}");
    assert!(v.text.is_empty() && !v.verified, "{v:?}");
    assert!(v.attachments.is_empty(), "{v:?}");
}

// ---------------------------------------------------------------------------------
// 1. A forged sender

#[tokio::test(flavor = "multi_thread")]
async fn a_member_forging_another_senders_name_is_an_invalid_sender() {
    for server in TestServer::every_backend().await {
        let w = workspace(&server).await;
        let room = &w.room_a;
        let key = epoch_key(&server, &w, &w.mallory, room, None).await;
        // Bob has spoken in the room, so his key is known to everyone.
        w.bob
            .client
            .send_text(room, "bob's own words")
            .await
            .unwrap();

        // Mallory's own envelope, filed by the server under Bob's name.
        let (sealed, id) = seal_as(&w.mallory, &uid(&w.mallory), room, &key, "pay mallory");
        inject(&server, room, &id, &w.bob.id, &sealed).await;
        let v = view_of(&w.alice.client, room, &id).await;
        assert_eq!(v.sender_id, w.bob.id);
        refused_as(&v, Undecryptable::InvalidSender);

        // An envelope whose header and body say Bob, signed by Mallory.
        let (sealed, id) = seal_as(&w.mallory, &uid(&w.bob), room, &key, "pay mallory");
        inject(&server, room, &id, &w.bob.id, &sealed).await;
        refused_as(
            &view_of(&w.alice.client, room, &id).await,
            Undecryptable::BadSignature,
        );

        // Mallory's envelope with only the cleartext header's sender changed to Bob.
        let (sealed, _) = seal_as(&w.mallory, &uid(&w.mallory), room, &key, "pay mallory");
        let forged = rewrite_header(&sealed, |h| {
            h.sender = uid(&w.bob);
            h.message = sotto_client::sotto_crypto::MessageId::random(&mut os_rng());
        });
        let id = EnvelopeHeader::peek(&forged).unwrap().message.to_hex();
        inject(&server, room, &id, &w.bob.id, &forged).await;
        refused_as(
            &view_of(&w.alice.client, room, &id).await,
            Undecryptable::BadSignature,
        );

        // Only Bob's own message is shown as his, also after a restart of the reader.
        let again = reopen(&w.alice);
        for reader in [&w.alice.client, &again] {
            let all = reader.history(room, None, None).await.unwrap();
            let as_bob: Vec<&MessageView> = all
                .iter()
                .filter(|m| m.sender_id == w.bob.id && m.problem.is_none())
                .collect();
            assert_eq!(as_bob.len(), 1, "{all:?}");
            assert_eq!(as_bob[0].text, "bob's own words");
        }
        // Mallory's envelope under her own name opens: the refusals were the forgery.
        let (sealed, id) = seal_as(&w.mallory, &uid(&w.mallory), room, &key, "hi, it's me");
        inject(&server, room, &id, &w.mallory.id, &sealed).await;
        let v = view_of(&w.alice.client, room, &id).await;
        assert_eq!((v.problem.clone(), v.text.as_str()), (None, "hi, it's me"));
        server.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 2. A ciphertext moved to another room or epoch

#[tokio::test(flavor = "multi_thread")]
async fn a_ciphertext_moved_to_another_room_or_epoch_is_rejected() {
    for server in TestServer::every_backend().await {
        let w = workspace(&server).await;
        let (a, b) = (&w.room_a, &w.room_b);
        let first = epoch_key(&server, &w, &w.mallory, a, None).await;
        let me = uid(&w.mallory);
        let (sealed, id) = seal_as(&w.mallory, &me, a, &first, "for room a only");

        // Filed in room B as it is.
        inject(&server, b, &id, &w.mallory.id, &sealed).await;
        refused_as(
            &view_of(&w.bob.client, b, &id).await,
            Undecryptable::WrongRoom,
        );

        // Filed in room B with its header saying B: B never had that epoch.
        let (sealed2, id2) = seal_as(&w.mallory, &me, a, &first, "for room a only");
        let moved = rewrite_header(&sealed2, |h| h.room = b.clone());
        inject(&server, b, &id2, &w.mallory.id, &moved).await;
        refused_as(
            &view_of(&w.bob.client, b, &id2).await,
            Undecryptable::WrongEpoch,
        );

        // Moved to the room's next epoch (its header relabelled): the signature binds it.
        let second = w.alice.client.rotate_key(a).await.unwrap();
        assert_ne!(second, first.epoch());
        assert!(
            w.bob
                .client
                .room_keys(a)
                .await
                .unwrap()
                .held
                .contains(&second)
        );
        let (sealed3, id3) = seal_as(&w.mallory, &me, a, &first, "from the first epoch");
        let relabelled = rewrite_header(&sealed3, |h| h.epoch = second);
        inject(&server, a, &id3, &w.mallory.id, &relabelled).await;
        refused_as(
            &view_of(&w.bob.client, a, &id3).await,
            Undecryptable::BadSignature,
        );

        // Nothing of it reached room B's or room A's readable history, also after a
        // restart; the unmoved envelope opens where it belongs.
        let again = reopen(&w.bob);
        for reader in [&w.bob.client, &again] {
            for room in [a, b] {
                let all = reader.history(room, None, None).await.unwrap();
                assert!(all.iter().all(|m| m.problem.is_some()), "{all:?}");
            }
        }
        inject(&server, a, &id, &w.mallory.id, &sealed).await;
        let v = view_of(&again, a, &id).await;
        assert_eq!(
            (v.problem.clone(), v.text.as_str()),
            (None, "for room a only")
        );
        server.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 3. A message delivered again

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_message_is_shown_once_also_after_a_restart() {
    for server in TestServer::every_backend().await {
        let w = workspace(&server).await;
        let room = &w.room_a;
        let mut follower = follow(&w.bob.client).await;
        let sent = w.alice.client.send_text(room, "hello once").await.unwrap();
        let original = stored_envelope(&server, room, &sent.id).await;
        let edited = w
            .alice
            .client
            .edit_text(room, &sent.id, "hello, once")
            .await
            .unwrap();
        assert_eq!(edited.id, sent.id);
        let edit = stored_envelope(&server, room, &sent.id).await;
        let edit_id = EnvelopeHeader::peek(&edit).unwrap().message.to_hex();
        assert_ne!(edit_id, sent.id);

        // Bob reads it live (both events) and in history.
        for _ in 0..2 {
            let e = event_where_update(&mut follower, &sent.id).await;
            let v = w.bob.client.open_message(&e).await.unwrap();
            assert_eq!(v.id, sent.id);
            assert!(v.problem.is_none());
        }
        assert_eq!(
            shown(&w.bob.client, room).await,
            [(sent.id.clone(), "hello, once".into())]
        );

        // The server files the same envelopes again as messages of their own: the
        // original under a new id, the edit under its own header id.
        let fresh = sotto_client::sotto_crypto::MessageId::random(&mut os_rng()).to_hex();
        inject(&server, room, &fresh, &w.alice.id, &original).await;
        inject(&server, room, &edit_id, &w.alice.id, &edit).await;
        // The same stored envelope once more under its own record (a new seq): an event
        // for the message Bob has, which replaces it rather than adding one.
        let stores = server.stores().await;
        let redone = stores
            .messages
            .edit_message(
                room.as_str(),
                &sent.id,
                None,
                Some(&B64.encode(&edit)),
                &[],
                1_700_000_000_000,
            )
            .await
            .unwrap();
        stores.close().await;
        assert!(redone.is_some());

        // Bob, now and after a restart resumed from where his stream stopped (so the
        // redeliveries arrive as events), sees the message once.
        let positions = follower.positions();
        drop(follower);
        let again = reopen(&w.bob);
        for reader in [&w.bob.client, &again] {
            assert_eq!(
                shown(reader, room).await,
                [(sent.id.clone(), "hello, once".into())]
            );
            let all = reader.history(room, None, None).await.unwrap();
            for v in all.iter().filter(|m| m.id != sent.id) {
                refused_as(
                    v,
                    Undecryptable::Malformed(
                        "the envelope is not this message or an edit of it".into(),
                    ),
                );
            }
        }
        let mut resumed = again.follow_from(positions);
        let mut live = std::collections::BTreeMap::new();
        for _ in 0..3 {
            let e = next_message_event(&mut resumed).await;
            let v = again.open_message(&e).await.unwrap();
            if v.problem.is_none() {
                live.insert(v.id.clone(), v.text.clone());
            }
        }
        assert_eq!(
            live.into_iter().collect::<Vec<_>>(),
            [(sent.id.clone(), "hello, once".to_owned())]
        );
        server.finish().await;
    }
}

/// A server that sends every room event twice on the realtime socket: a relay on
/// loopback in front of the real one that passes REST through and repeats each text
/// frame carrying a `seq`. Its URL, and how many frames it repeated.
async fn repeating_server(real: SocketAddr) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let repeated = Arc::new(AtomicUsize::new(0));
    let count = repeated.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay_connection(client, real, count.clone()));
        }
    });
    (url, repeated)
}

async fn relay_connection(
    mut client: TcpStream,
    real: SocketAddr,
    repeated: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut upstream = TcpStream::connect(real).await?;
    let head = read_head(&mut client).await?;
    upstream.write_all(&head).await?;
    if !head.starts_with(b"GET /api/v1/ws") {
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    let answer = read_head(&mut upstream).await?;
    client.write_all(&answer).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = upstream.into_split();
    tokio::spawn(async move { tokio::io::copy(&mut from_client, &mut to_server).await });
    loop {
        let (frame, room_event) = read_ws_frame(&mut from_server).await?;
        to_client.write_all(&frame).await?;
        if room_event {
            to_client.write_all(&frame).await?;
            repeated.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An HTTP head, up to and including its blank line (at most 64 KiB).
async fn read_head(from: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("head too long"));
        }
        head.push(from.read_u8().await?);
    }
    Ok(head)
}

/// One WebSocket frame from the server (RFC 6455 §5.2) as raw bytes, and whether it is
/// a whole text frame holding a room event.
async fn read_ws_frame(from: &mut OwnedReadHalf) -> std::io::Result<(Vec<u8>, bool)> {
    let mut frame = vec![from.read_u8().await?, from.read_u8().await?];
    let len = match frame[1] & 0x7f {
        126 => {
            let n = from.read_u16().await?;
            frame.extend_from_slice(&n.to_be_bytes());
            u64::from(n)
        }
        127 => {
            let n = from.read_u64().await?;
            frame.extend_from_slice(&n.to_be_bytes());
            n
        }
        n => u64::from(n),
    };
    if len > 16 << 20 {
        return Err(std::io::Error::other("frame too long"));
    }
    if frame[1] & 0x80 != 0 {
        let mut mask = [0u8; 4];
        from.read_exact(&mut mask).await?;
        frame.extend_from_slice(&mask);
    }
    let start = frame.len();
    frame.resize(start + len as usize, 0);
    from.read_exact(&mut frame[start..]).await?;
    let room_event = frame[0] == 0x81
        && frame[1] & 0x80 == 0
        && frame[start..].windows(6).any(|w| w == b"\"seq\":");
    Ok((frame, room_event))
}

/// Ids of the messages of the next message events of `events` up to and including
/// `last`, in the order delivered.
async fn message_ids_until(events: &mut EventStream, last: &str) -> Vec<String> {
    use sotto_client::sotto_api::realtime::EventKind;
    let mut ids = Vec::new();
    while ids.last().map(String::as_str) != Some(last) {
        let e = event_where(events, |e| {
            matches!(e, ClientEvent::Room(r) if matches!(r.kind, EventKind::MessageCreated { .. }))
        })
        .await;
        let ClientEvent::Room(r) = e else {
            unreachable!()
        };
        let EventKind::MessageCreated { message } = r.kind else {
            unreachable!()
        };
        ids.push(message.id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_room_event_sent_twice_on_the_socket_is_delivered_once_also_after_a_restart() {
    for server in TestServer::every_backend().await {
        let w = workspace(&server).await;
        let room = &w.room_a;
        let (hostile, repeated) = repeating_server(server.addr()).await;
        let token = w.bob.client.profile().login().unwrap().unwrap().token;
        // Bob's client, on his profile, talking to the repeating server.
        let bob = Client::with_token(w.bob.client.profile().clone(), &hostile, &token)
            .await
            .unwrap();
        let mut events = bob.events();
        event_where(&mut events, |e| matches!(e, ClientEvent::Connected)).await;
        let mut sent = Vec::new();
        for text in ["one", "two", "three"] {
            sent.push(w.alice.client.send_text(room, text).await.unwrap().id);
        }
        assert_eq!(message_ids_until(&mut events, &sent[2]).await, sent);
        // A last message: any repeat of the third would have come before it.
        let marker = w.alice.client.send_text(room, "four").await.unwrap().id;
        assert_eq!(
            message_ids_until(&mut events, &marker).await,
            std::slice::from_ref(&marker)
        );
        assert!(
            repeated.load(Ordering::Relaxed) >= 4,
            "the server repeated events"
        );

        // Bob's client stops; two messages come meanwhile; a restart resumes.
        let positions = events.positions();
        drop(events);
        drop(bob);
        let mut later = Vec::new();
        for text in ["five", "six"] {
            later.push(w.alice.client.send_text(room, text).await.unwrap().id);
        }
        let again = reopen(&w.bob);
        assert_eq!(again.api().server(), hostile);
        // What was missed comes in the catch-up, before `Connected`; then live again.
        let mut events = again.events_from(positions);
        assert_eq!(message_ids_until(&mut events, &later[1]).await, later);
        event_where(&mut events, |e| matches!(e, ClientEvent::Connected)).await;
        let seven = w.alice.client.send_text(room, "seven").await.unwrap().id;
        assert_eq!(
            message_ids_until(&mut events, &seven).await,
            std::slice::from_ref(&seven)
        );
        let marker = w.alice.client.send_text(room, "eight").await.unwrap().id;
        assert_eq!(
            message_ids_until(&mut events, &marker).await,
            std::slice::from_ref(&marker)
        );
        assert!(
            repeated.load(Ordering::Relaxed) >= 8,
            "the server repeated events"
        );

        // And the room shows each message once.
        let texts: Vec<String> = shown(&again, room)
            .await
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let want = [
            "one", "two", "three", "four", "five", "six", "seven", "eight",
        ];
        assert_eq!(texts, want);
        server.finish().await;
    }
}

/// The messages of `room` as `who` shows them: id and text of each that opened.
async fn shown(who: &Client, room: &RoomId) -> Vec<(String, String)> {
    who.history(room, None, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.problem.is_none())
        .map(|m| (m.id, m.text))
        .collect()
}

/// The message of the next message event (created or edited) about `id`.
async fn event_where_update(
    f: &mut sotto_client::Follower,
    id: &str,
) -> sotto_client::sotto_api::rooms::Message {
    loop {
        let m = next_message_event(f).await;
        if m.id == id {
            return m;
        }
    }
}

/// The message of the next message event.
async fn next_message_event(
    f: &mut sotto_client::Follower,
) -> sotto_client::sotto_api::rooms::Message {
    use sotto_client::sotto_api::realtime::EventKind;
    let u = update_where(f, |u| {
        matches!(
            u,
            Update::Event(sotto_client::ClientEvent::Room(e))
                if matches!(e.kind, EventKind::MessageCreated { .. } | EventKind::MessageEdited { .. })
        )
    })
    .await;
    let Update::Event(sotto_client::ClientEvent::Room(e)) = u else {
        unreachable!()
    };
    match e.kind {
        EventKind::MessageCreated { message } | EventKind::MessageEdited { message } => message,
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------
// 4. An attachment's blob swapped or cut short

#[tokio::test(flavor = "multi_thread")]
async fn a_swapped_or_truncated_attachment_is_corrupted_and_never_written() {
    for server in TestServer::every_backend().await {
        let w = workspace(&server).await;
        let room = &w.room_a;
        let dir = tempfile::tempdir().unwrap();
        let mut atts = Vec::new();
        for (name, len) in [("report.pdf", 200_000usize), ("other.pdf", 200_000)] {
            let path = dir.path().join(name);
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + name.len()) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            let att = w
                .alice
                .client
                .upload_encrypted(room.as_str(), &path, |_, _| {})
                .await
                .unwrap();
            atts.push((att, bytes));
        }
        let draft = Draft {
            text: "the report".into(),
            attachments: vec![atts[0].0.clone()],
            ..Draft::default()
        };
        let sent = w.alice.client.send_message(room, draft).await.unwrap();
        let v = view_of(&w.bob.client, room, &sent.id).await;
        let att: Attachment = v.attachments[0].attachment.clone();
        let (report, report_bytes) = (&atts[0].0, &atts[0].1);
        assert_eq!(att.file_id, report.file_id);
        let original = blob(&w.bob.client, &att.file_id).await;
        let other = blob(&w.bob.client, &atts[1].0.file_id).await;
        assert_eq!(original.len(), other.len());

        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("report.pdf");
        let cut_at_chunk = original.len() - (original.len() - 12) % (65536 + 16);
        let attacks: [(&str, Vec<u8>); 4] = [
            ("swapped for another file's blob", other.clone()),
            (
                "cut short inside a chunk",
                original[..original.len() - 100].to_vec(),
            ),
            ("cut at a chunk boundary", original[..cut_at_chunk].to_vec()),
            ("one byte flipped", {
                let mut b = original.clone();
                b[70_000] ^= 1;
                b
            }),
        ];
        for (what, bytes) in attacks {
            replace_blob(&server, &att.file_id, bytes).await;
            let e = w
                .bob
                .client
                .download_encrypted(&att, &out, |_, _| {})
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Corrupted(_)), "{what}: {e}");
            assert_eq!(
                std::fs::read_dir(out_dir.path()).unwrap().count(),
                0,
                "{what}"
            );
            // A file already at the destination stays as it was.
            std::fs::write(&out, b"kept").unwrap();
            let e = w
                .bob
                .client
                .download_encrypted(&att, &out, |_, _| {})
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Corrupted(_)), "{what}: {e}");
            assert_eq!(std::fs::read(&out).unwrap(), b"kept", "{what}");
            std::fs::remove_file(&out).unwrap();
        }

        // The genuine blob back: the same attachment downloads whole.
        replace_blob(&server, &att.file_id, original).await;
        w.bob
            .client
            .download_encrypted(&att, &out, |_, _| {})
            .await
            .unwrap();
        assert_eq!(&std::fs::read(&out).unwrap(), report_bytes);
        server.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 5. Off the record: replayed handshake frames and a huge ratchet counter

fn otr_event(u: &Update) -> Option<&OtrEvent> {
    match u {
        Update::Otr(e) => Some(e),
        Update::Event(_) => None,
    }
}

async fn otr_where(f: &mut sotto_client::Follower, want: impl Fn(&OtrEvent) -> bool) -> OtrEvent {
    let u = update_where(f, |u| otr_event(u).is_some_and(&want)).await;
    otr_event(&u).cloned().unwrap()
}

/// The next OTR frame of `kind` (1 offer, 2 accept, 5 data) relayed to a raw socket.
async fn captured(socket: &mut testing::Socket, kind: u8) -> Vec<u8> {
    loop {
        let frame = testing::next_frame(socket).await;
        if frame["type"] == "otr" {
            let bytes = B64.decode(frame["frame"].as_str().unwrap()).unwrap();
            if bytes[1] == kind {
                return bytes;
            }
        }
    }
}

/// Sends `frame` for `room` on a raw socket: the server relays it to the other person.
async fn relay(socket: &mut testing::Socket, room: &str, frame: &[u8]) {
    let json = serde_json::json!({"type": "otr", "id": "replay", "room_id": room,
        "frame": B64.encode(frame)});
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            json.to_string(),
        ))
        .await
        .unwrap();
}

fn broken_by(e: &OtrEvent) -> Option<&OtrError> {
    match e {
        OtrEvent::Broken {
            reason: OtrBroken::Frame(err),
            ..
        } => Some(err),
        _ => None,
    }
}

fn text(e: &OtrEvent) -> Option<&str> {
    match e {
        OtrEvent::Message(m) => match &m.body {
            Body::Text(t) => Some(t),
            Body::File { .. } => None,
        },
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replayed_otr_handshakes_and_a_huge_ratchet_counter_change_nothing() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let alice = user(&server, "alice", true).await;
        let bob = user(&server, "bob", true).await;
        let room = dm(&alice.client, &bob.id).await;
        let token = |u: &User| u.client.profile().login().unwrap().unwrap().token;
        // What the server sees of each side: a socket of Bob's gets Alice's frames, one
        // of Alice's gets Bob's, and whatever either sends is relayed as theirs.
        let mut as_alice = testing::connect(server.addr(), &token(&alice)).await;
        let mut as_bob = testing::connect(server.addr(), &token(&bob)).await;
        let mut fa = follow(&alice.client).await;
        let mut fb = follow(&bob.client).await;

        fa.otr().start(&room).await.unwrap();
        otr_where(&mut fb, |e| matches!(e, OtrEvent::Offered { .. })).await;
        let offer = captured(&mut as_bob, 1).await;
        fb.otr().accept(&room).await.unwrap();
        let accept = captured(&mut as_alice, 2).await;
        otr_where(&mut fa, |e| matches!(e, OtrEvent::Established { .. })).await;
        otr_where(&mut fb, |e| matches!(e, OtrEvent::Established { .. })).await;

        // The offer again, to Bob: refused, the session as it was.
        relay(&mut as_alice, &room, &offer).await;
        let e = otr_where(&mut fb, |e| broken_by(e).is_some()).await;
        assert_eq!(broken_by(&e), Some(&OtrError::UnexpectedFrame));
        assert!(!fb.otr().has_offer(&room));
        assert_eq!(fb.otr().state(&room), Some(SessionState::Established));
        // The accept again, to Alice: the same.
        relay(&mut as_bob, &room, &accept).await;
        let e = otr_where(&mut fa, |e| broken_by(e).is_some()).await;
        assert_eq!(broken_by(&e), Some(&OtrError::UnexpectedFrame));
        assert_eq!(fa.otr().state(&room), Some(SessionState::Established));

        // A data frame whose counter says 2^31: a bounded, typed refusal.
        fa.otr().send_text(&room, "first").await.unwrap();
        let first = captured(&mut as_bob, 5).await;
        assert_eq!(
            text(&otr_where(&mut fb, |e| text(e).is_some()).await),
            Some("first")
        );
        let Frame::Data(mut data) = Frame::decode(&first).unwrap() else {
            panic!("a data frame")
        };
        data.header.number = 1 << 31;
        let started = std::time::Instant::now();
        relay(&mut as_alice, &room, &Frame::Data(data.clone()).encode()).await;
        let e = otr_where(&mut fb, |e| broken_by(e).is_some()).await;
        assert_eq!(broken_by(&e), Some(&OtrError::TooManySkipped));
        assert!(started.elapsed() < WAIT);
        // The same with a new ratchet key and 2^31 messages in the previous chain.
        data.header.number = 0;
        data.header.previous_chain_len = 1 << 31;
        data.header.ratchet_key = [9; 32];
        relay(&mut as_alice, &room, &Frame::Data(data).encode()).await;
        let e = otr_where(&mut fb, |e| broken_by(e).is_some()).await;
        assert_eq!(broken_by(&e), Some(&OtrError::TooManySkipped));
        // And the genuine frame replayed: its key is gone.
        relay(&mut as_alice, &room, &first).await;
        let e = otr_where(&mut fb, |e| broken_by(e).is_some()).await;
        assert_eq!(broken_by(&e), Some(&OtrError::KeyUnavailable));

        // Unchanged: the next genuine messages open, both ways, each once.
        fa.otr().send_text(&room, "second").await.unwrap();
        assert_eq!(
            text(&otr_where(&mut fb, |e| text(e).is_some()).await),
            Some("second")
        );
        fb.otr().send_text(&room, "back").await.unwrap();
        assert_eq!(
            text(&otr_where(&mut fa, |e| text(e).is_some()).await),
            Some("back")
        );
        let got: Vec<Body> = fb
            .otr()
            .messages(&room)
            .into_iter()
            .filter(|m| !m.outgoing)
            .map(|m| m.body)
            .collect();
        assert_eq!(
            got,
            [Body::Text("first".into()), Body::Text("second".into())]
        );

        // Once the session has ended, the old offer is still no invitation.
        fa.otr().end(&room).await.unwrap();
        otr_where(&mut fb, |e| matches!(e, OtrEvent::Ended { .. })).await;
        relay(&mut as_alice, &room, &offer).await;
        let e = otr_where(&mut fb, |e| {
            broken_by(e).is_some() || matches!(e, OtrEvent::Offered { .. })
        })
        .await;
        assert_eq!(broken_by(&e), Some(&OtrError::UnexpectedFrame), "{e:?}");
        assert!(!fb.otr().has_offer(&room));
        assert_eq!(fb.otr().state(&room), None);
        // A genuine new offer still is one.
        fa.otr().start(&room).await.unwrap();
        otr_where(&mut fb, |e| matches!(e, OtrEvent::Offered { .. })).await;
        assert!(fb.otr().has_offer(&room));
        drop((as_alice, as_bob));
        server.finish().await;
    }
}

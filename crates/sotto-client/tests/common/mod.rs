//! Shared set-up for the realtime and OTR tests: users on a real server, logged in on
//! their own profiles, and a direct message between two of them.
#![allow(dead_code)]

pub(crate) mod hostile;
pub(crate) mod person;

use reqwest::Method;
use sotto_client::sotto_api::rooms::{
    CreateRoomRequest, Message, Room, RoomKind, SendMessageRequest,
};
use sotto_client::{Client, ClientEvent, EventStream, Follower, Profile, Update};
use sotto_server::testing::TestServer;
use std::time::Duration;

/// How long a test waits for one expected update.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// A user logged in on a fresh profile (kept alive with the client).
pub(crate) struct User {
    pub(crate) client: Client,
    pub(crate) profile_dir: tempfile::TempDir,
    pub(crate) id: String,
}

pub(crate) async fn user(server: &TestServer, name: &str, keys: bool) -> User {
    let password = format!("{name} password long enough");
    let id = server.create_user(name, &password).await;
    let profile_dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(profile_dir.path().join("p")).unwrap();
    let client = Client::login(profile, &server.url(), name, &password)
        .await
        .unwrap();
    if keys {
        client.e2e_setup().await.unwrap();
    }
    User {
        client,
        profile_dir,
        id,
    }
}

/// A second client on the same profile, as after a restart.
pub(crate) fn reopen(u: &User) -> Client {
    Client::open(Profile::open(u.profile_dir.path().join("p")).unwrap()).unwrap()
}

pub(crate) async fn create_room(
    by: &Client,
    kind: RoomKind,
    name: Option<&str>,
    members: &[&str],
) -> String {
    let req = CreateRoomRequest {
        kind,
        name: name.map(str::to_owned),
        topic: None,
        private: None,
        parent_id: None,
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        encrypted: None,
    };
    let room: Room = by
        .api()
        .send(Method::POST, "/api/v1/rooms", &req)
        .await
        .unwrap();
    room.id
}

pub(crate) async fn dm(by: &Client, with: &str) -> String {
    create_room(by, RoomKind::Direct, None, &[with]).await
}

/// Sends a plaintext message through the normal room path.
pub(crate) async fn post(by: &Client, room: &str, text: &str) -> Message {
    let mut id = [0u8; 16];
    getrandom_fill(&mut id);
    let req = SendMessageRequest {
        id: hex::encode(id),
        text: Some(text.to_owned()),
        ciphertext: None,
    };
    by.api()
        .send(
            Method::POST,
            &format!("/api/v1/rooms/{room}/messages"),
            &req,
        )
        .await
        .unwrap()
}

fn getrandom_fill(out: &mut [u8; 16]) {
    let id =
        sotto_client::sotto_crypto::OtrSessionId::random(&mut sotto_client::sotto_crypto::os_rng());
    out.copy_from_slice(id.as_bytes());
}

/// The next event matching `want`, skipping others; fails after [`WAIT`].
pub(crate) async fn event_where(
    events: &mut EventStream,
    want: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = events.next().await.unwrap();
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("the expected event in time")
}

/// The next update matching `want`, skipping others; fails after [`WAIT`].
pub(crate) async fn update_where(f: &mut Follower, want: impl Fn(&Update) -> bool) -> Update {
    tokio::time::timeout(WAIT, async {
        loop {
            let u = f.next().await.unwrap();
            if want(&u) {
                return u;
            }
        }
    })
    .await
    .expect("the expected update in time")
}

/// Follows `client` and waits until the socket is open and caught up.
pub(crate) async fn follow(client: &Client) -> Follower {
    let mut f = client.follow();
    update_where(&mut f, |u| {
        matches!(u, Update::Event(ClientEvent::Connected))
    })
    .await;
    f
}

/// Every byte of every file under `dir` (database, its journal, blobs).
pub(crate) fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.extend_from_slice(&bytes);
            }
        }
    }
    out
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

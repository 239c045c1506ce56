//! Set-up for the tests that play a compromised server: people with keys (and the
//! encryption password they were shown), encrypted rooms between them, and what the
//! attacker does with the boxes and keys it holds.

use sotto_client::sotto_crypto::chain::RoomState;
use sotto_client::sotto_crypto::roomkey::{RoomKeyBox, RoomKeyError};
use sotto_client::sotto_crypto::{IdentityKeys, IdentityPublicKey, PublicBundle, RoomId, UserId};
use sotto_client::{Client, NewRoom, NewRoomKind, Profile};
use sotto_server::store::RoomKeyRecord;
use sotto_server::testing::TestServer;

pub(crate) const LOGIN_PASSWORD: &str = "a login password long enough";

/// A user logged in on a fresh profile, with keys set up.
pub(crate) struct Person {
    pub(crate) client: Client,
    pub(crate) id: UserId,
    pub(crate) name: String,
    /// The encryption password `e2e setup` showed.
    pub(crate) encryption_password: String,
    pub(crate) dir: tempfile::TempDir,
}

impl Person {
    /// Their private keys, as this profile keeps them.
    pub(crate) fn keys(&self) -> IdentityKeys {
        self.client.profile().keys().unwrap().expect("keys here")
    }

    /// Their public bundle.
    pub(crate) fn bundle(&self) -> PublicBundle {
        self.keys().bundle(&self.id)
    }

    /// A second client on the same profile, as after a restart (nothing in memory).
    pub(crate) fn restarted(&self) -> Client {
        Client::open(Profile::open(self.dir.path().join("p")).unwrap()).unwrap()
    }

    /// A new device: a fresh profile logged in as this person, keys locked.
    pub(crate) async fn new_device(&self, server: &TestServer) -> (Client, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::open(dir.path().join("p")).unwrap();
        let client = Client::login(profile, &server.url(), &self.name, LOGIN_PASSWORD)
            .await
            .unwrap();
        (client, dir)
    }
}

pub(crate) async fn person(server: &TestServer, name: &str) -> Person {
    let id = server.create_user(name, LOGIN_PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(dir.path().join("p")).unwrap();
    let client = Client::login(profile, &server.url(), name, LOGIN_PASSWORD)
        .await
        .unwrap();
    let encryption_password = client.e2e_setup().await.unwrap().as_str().to_owned();
    Person {
        client,
        id: UserId::new(id).unwrap(),
        name: name.to_owned(),
        encryption_password,
        dir,
    }
}

/// A private encrypted channel made by `by` with `members`.
pub(crate) async fn encrypted_channel(by: &Person, name: &str, members: &[&Person]) -> RoomId {
    let room = by
        .client
        .create_room(NewRoom {
            kind: NewRoomKind::Channel,
            name: name.into(),
            private: true,
            encrypted: true,
            members: members.iter().map(|p| p.id.clone()).collect(),
        })
        .await
        .unwrap();
    RoomId::new(room.id).unwrap()
}

/// An encrypted direct message between `a` and `b`.
pub(crate) async fn encrypted_dm(a: &Person, b: &Person) -> RoomId {
    let room = a
        .client
        .open_dm(std::slice::from_ref(&b.id), true)
        .await
        .unwrap();
    RoomId::new(room.id).unwrap()
}

/// What opening `sealed` with `keys` as `recipient` gives, with `distributor_key` as the
/// key the opener trusts for the box's distributor.
pub(crate) fn open_box(
    sealed: &[u8],
    recipient: &UserId,
    keys: &IdentityKeys,
    state: &RoomState,
    distributor_key: IdentityPublicKey,
) -> Result<sotto_client::sotto_crypto::EpochKey, RoomKeyError> {
    RoomKeyBox::decode(sealed)?.open(recipient, keys, state, |_| Some(distributor_key))
}

/// The stored boxes of the room sealed to `recipient`.
pub(crate) async fn boxes_to(
    server: &TestServer,
    room: &RoomId,
    recipient: &UserId,
) -> Vec<RoomKeyRecord> {
    server
        .stored_room_keys(room.as_str())
        .await
        .into_iter()
        .filter(|k| k.recipient_id == recipient.as_str())
        .collect()
}

/// Whether any box stored in the room opens with the attacker's `keys` for `as_user`:
/// whether a room key reached the attacker. The signature is taken as the box claims
/// (the attacker does not care who signed), so only the sealing decides.
pub(crate) async fn attacker_got_a_key(
    server: &TestServer,
    room: &RoomId,
    as_user: &UserId,
    keys: &IdentityKeys,
    state: &RoomState,
    members: &[&Person],
) -> bool {
    for b in boxes_to(server, room, as_user).await {
        let distributor = members
            .iter()
            .find(|p| p.id.as_str() == b.distributor_id)
            .map(|p| p.keys().identity_public());
        let Some(distributor) = distributor else {
            continue;
        };
        if open_box(&b.sealed, as_user, keys, state, distributor).is_ok() {
            return true;
        }
    }
    false
}

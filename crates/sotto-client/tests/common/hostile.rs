//! Set-up for the tests that play a compromised server: people with keys (and the
//! encryption password they were shown), encrypted rooms between them, and what the
//! attacker does with the boxes and keys it holds.

use sotto_client::sotto_crypto::chain::RoomState;
use sotto_client::sotto_crypto::roomkey::{RoomKeyBox, RoomKeyError};
use sotto_client::sotto_crypto::{IdentityKeys, IdentityPublicKey, RoomId, UserId};
use sotto_client::{NewRoom, NewRoomKind};
use sotto_server::store::RoomKeyRecord;
use sotto_server::testing::TestServer;

pub(crate) use super::person::Person;

/// A user logged in on a fresh profile, with keys set up.
pub(crate) async fn person(server: &TestServer, name: &str) -> Person {
    super::person::person(server, name, true).await
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

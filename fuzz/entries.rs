//! The entry point of every fuzz target: hostile bytes in, `true` if they were accepted.
//!
//! Included by each target in `fuzz_targets/` and by the corpus replay test
//! (`crates/sotto-crypto/tests/fuzz_corpus.rs`), so both exercise exactly the same code.
//! Decryption targets use fixed keys: the fuzzer then reaches every check before the
//! authentication tag or signature, which is where hostile structure is parsed.

#![allow(dead_code)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sotto_crypto::otr::Frame;
use sotto_crypto::{
    EpochId, EpochKey, FileKey, IdentityKeys, OtrSession, PublicBundle, RoomId, UserId,
};
use std::collections::BTreeSet;

/// Every target, by name.
pub const TARGETS: &[(&str, fn(&[u8]) -> bool)] = &[
    ("backup_decode", backup_decode),
    ("bundle_decode", bundle_decode),
    ("envelope_open", envelope_open),
    ("envelope_peek", envelope_peek),
    ("file_decrypt", file_decrypt),
    ("message_body_decode", message_body_decode),
    ("otr_frame_decode", otr_frame_decode),
    ("otr_handle", otr_handle),
    ("pin_store_decode", pin_store_decode),
    ("private_keys_decode", private_keys_decode),
    ("room_key_box_decode", room_key_box_decode),
    ("seen_messages_decode", seen_messages_decode),
    ("statement_decode", statement_decode),
    ("unpad", unpad),
];

pub fn backup_decode(d: &[u8]) -> bool {
    sotto_crypto::KeyBackup::decode(d).is_ok()
}

pub fn bundle_decode(d: &[u8]) -> bool {
    PublicBundle::decode(d).is_ok()
}

pub fn private_keys_decode(d: &[u8]) -> bool {
    IdentityKeys::from_bytes(d).is_ok()
}

pub fn pin_store_decode(d: &[u8]) -> bool {
    sotto_crypto::PinStore::decode(d).is_ok()
}

pub fn statement_decode(d: &[u8]) -> bool {
    sotto_crypto::chain::Statement::decode(d).is_ok()
}

pub fn room_key_box_decode(d: &[u8]) -> bool {
    sotto_crypto::roomkey::RoomKeyBox::decode(d).is_ok()
}

pub fn envelope_peek(d: &[u8]) -> bool {
    sotto_crypto::EnvelopeHeader::peek(d).is_ok()
}

pub fn message_body_decode(d: &[u8]) -> bool {
    sotto_crypto::MessageBody::decode(d).is_ok()
}

pub fn unpad(d: &[u8]) -> bool {
    sotto_crypto::padding::unpad(d).is_ok()
}

pub fn seen_messages_decode(d: &[u8]) -> bool {
    sotto_crypto::SeenMessages::decode(d).is_ok()
}

pub fn otr_frame_decode(d: &[u8]) -> bool {
    Frame::decode(d).is_ok()
}

/// Fixed keys for the decryption targets and for making their `valid` seeds.
pub struct Fixture {
    pub room: RoomId,
    pub alice: UserId,
    pub alice_keys: IdentityKeys,
    pub bob: UserId,
    pub bob_keys: IdentityKeys,
    pub epoch_key: EpochKey,
    pub file_key: FileKey,
}

pub fn fixture() -> Fixture {
    let keys = |b: u8| {
        let mut raw = vec![1u8];
        raw.extend_from_slice(&[b; 64]);
        IdentityKeys::from_bytes(&raw).expect("fixed keys decode")
    };
    Fixture {
        room: RoomId::new("r.fuzz").expect("valid id"),
        alice: UserId::new("u.alice").expect("valid id"),
        alice_keys: keys(0x11),
        bob: UserId::new("u.bob").expect("valid id"),
        bob_keys: keys(0x22),
        epoch_key: EpochKey::from_parts(EpochId([0x33; 16]), [0x44; 32]),
        file_key: FileKey::from_bytes([0x55; 32]),
    }
}

/// The generator behind Alice's OTR offer: fixed, so her session id is too.
pub fn otr_rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(7)
}

pub fn envelope_open(d: &[u8]) -> bool {
    let f = fixture();
    let members = BTreeSet::from([f.alice.clone()]);
    let sender = f.alice_keys.identity_public();
    sotto_crypto::envelope::open(d, &f.room, &f.epoch_key, &sender, &members).is_ok()
}

pub fn file_decrypt(d: &[u8]) -> bool {
    use std::io::Write;
    let mut w = sotto_crypto::DecryptWriter::new(Vec::new(), &fixture().file_key);
    w.write_all(d).is_ok() && w.finish().is_ok()
}

/// Alice has offered OTR to Bob; the bytes arrive as Bob's answer.
pub fn otr_handle(d: &[u8]) -> bool {
    let f = fixture();
    let mut rng = otr_rng();
    let bob_bundle = f.bob_keys.bundle(&f.bob);
    let Ok((mut session, _offer)) =
        OtrSession::offer(&f.alice_keys, &f.alice, &bob_bundle, &f.room, &mut rng)
    else {
        return false;
    };
    match Frame::decode(d) {
        Ok(frame) => session.handle(&frame, &mut rng).is_ok(),
        Err(_) => false,
    }
}

//! Message envelopes and encrypted file streams.

use super::{UNKNOWN, Vector, ensure, hex, rng, text, unhex};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use serde_json::{Value, json};
use sotto_crypto::body::Attachment;
use sotto_crypto::envelope::{self, EnvelopeHeader, MESSAGE_LABEL};
use sotto_crypto::file::{
    self, EncryptWriter, FileKey, MIN_CHUNK_SIZE, STREAM_HEADER_LEN, TAG_LEN,
};
use sotto_crypto::{
    DecryptWriter, EpochId, EpochKey, IdentityKeys, IdentityPublicKey, MessageBody, MessageId,
    RoomId, UserId, padding,
};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::Write;

const ENVELOPE: &str = "envelope.json";
const FILE_CHUNKS: &str = "file_chunks.json";

pub fn generate() -> Vec<Vector> {
    vec![envelope_vector(), file_vector()]
}

pub fn check(file: &str, v: &Value) -> Result<(), String> {
    match file {
        ENVELOPE => check_envelope(v),
        FILE_CHUNKS => check_file(v),
        _ => Err(UNKNOWN.into()),
    }
}

/// A generator that hands out recorded bytes, so a check can redo a randomized
/// operation with the randomness a vector recorded.
struct Replay(Vec<u8>);

impl rand_core::TryRng for Replay {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(self.0.len() >= dst.len(), "replay generator ran dry");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Replay {}

fn arr<const N: usize>(v: &Value, field: &str) -> Result<[u8; N], String> {
    unhex(v, field)?
        .try_into()
        .map_err(|_| format!("field {field}: wrong length"))
}

fn envelope_vector() -> Vector {
    let mut rng = rng("sotto vectors: envelope");
    let keys = IdentityKeys::generate(&mut rng);
    let epoch_key = EpochKey::generate(&mut rng);
    let room = RoomId::new("r.design").expect("valid id");
    let sender = UserId::new("u.alice").expect("valid id");
    let header = EnvelopeHeader::new(room.clone(), epoch_key.epoch(), sender.clone(), &mut rng);
    let mut body = MessageBody::text(
        room.clone(),
        sender.clone(),
        "Draft attached — comments by Friday?",
    );
    body.reply_to = Some(MessageId::random(&mut rng));
    body.mentions
        .insert(UserId::new("u.bob").expect("valid id"));
    body.mentions
        .insert(UserId::new("u.carol").expect("valid id"));
    body.attachments.push(Attachment {
        file_id: "f.0193".into(),
        file_key: FileKey::generate(&mut rng),
        name: "plan-v2.pdf".into(),
        media_type: "application/pdf".into(),
        size: 48_213,
        blob_sha256: [0x5a; 32],
        chunk_size: file::DEFAULT_CHUNK_SIZE,
    });
    let bytes = envelope::seal(&body, &header, &epoch_key, &keys, &mut rng).expect("seals");
    let header_bytes = header.encode();
    let h = header_bytes.len();
    let body_bytes = body.encode().expect("valid body");
    let mut padded = body_bytes.clone();
    padding::pad(&mut padded).expect("pads");
    let sig_at = bytes.len() - 64;
    Vector {
        file: ENVELOPE,
        json: json!({
            "description": "A message envelope (protocol.md §7): the sender's private keys (§2 encoding), the epoch key, the header, the encoded body, the padded plaintext, the AES-256-GCM nonce and ciphertext, the Ed25519 signature, and the whole envelope. Opening it with the room id, the epoch key, the sender's identity key and the member set gives the body; sealing again with the same nonce gives the same bytes.",
            "room_id": room.as_str(),
            "sender_id": sender.as_str(),
            "authorized_members": ["u.alice", "u.bob", "u.carol"],
            "sender_private_keys": hex(keys.to_bytes().as_slice()),
            "sender_identity_public": hex(keys.identity_public().to_bytes()),
            "epoch_id": hex(epoch_key.epoch().as_bytes()),
            "epoch_key": hex(epoch_key.key_bytes()),
            "message_id": hex(header.message.as_bytes()),
            "text": body.text,
            "header": hex(&header_bytes),
            "body": hex(&body_bytes),
            "padded_plaintext": hex(&padded),
            "nonce": hex(&bytes[h..h + 12]),
            "ciphertext": hex(&bytes[h + 12..sig_at]),
            "signature": hex(&bytes[sig_at..]),
            "envelope": hex(&bytes),
        }),
    }
}

fn check_envelope(v: &Value) -> Result<(), String> {
    let keys =
        IdentityKeys::from_bytes(&unhex(v, "sender_private_keys")?).map_err(|e| e.to_string())?;
    let identity = IdentityPublicKey::from_bytes(&arr(v, "sender_identity_public")?)
        .map_err(|e| e.to_string())?;
    ensure(
        keys.identity_public() == identity,
        "private keys match the identity key",
    )?;
    let epoch_key = EpochKey::from_parts(EpochId(arr(v, "epoch_id")?), arr(v, "epoch_key")?);
    let room = RoomId::new(text(v, "room_id")?).map_err(|e| e.to_string())?;
    let sender = UserId::new(text(v, "sender_id")?).map_err(|e| e.to_string())?;
    let members: BTreeSet<UserId> = v["authorized_members"]
        .as_array()
        .ok_or("missing authorized_members")?
        .iter()
        .map(|m| UserId::new(m.as_str().unwrap_or_default()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let header = unhex(v, "header")?;
    let nonce: [u8; 12] = arr(v, "nonce")?;
    let ciphertext = unhex(v, "ciphertext")?;
    let signature: [u8; 64] = arr(v, "signature")?;
    let envelope_bytes = unhex(v, "envelope")?;

    // Layout: header ‖ nonce ‖ ciphertext ‖ signature.
    let mut joined = header.clone();
    joined.extend_from_slice(&nonce);
    joined.extend_from_slice(&ciphertext);
    let signed = joined.clone();
    joined.extend_from_slice(&signature);
    ensure(
        joined == envelope_bytes,
        "envelope is header ‖ nonce ‖ ciphertext ‖ signature",
    )?;

    // Header fields, as the server reads them.
    let peeked = EnvelopeHeader::peek(&envelope_bytes).map_err(|e| e.to_string())?;
    ensure(peeked.encode() == header, "header re-encodes")?;
    ensure(
        peeked.room == room && peeked.sender == sender,
        "header room and sender",
    )?;
    ensure(peeked.epoch == epoch_key.epoch(), "header epoch")?;
    ensure(
        peeked.message.as_bytes().to_vec() == unhex(v, "message_id")?,
        "header message id",
    )?;

    // The primitives directly, the way another implementation would.
    let mut msg = vec![MESSAGE_LABEL.len() as u8];
    msg.extend_from_slice(MESSAGE_LABEL);
    msg.extend_from_slice(&signed);
    let vk =
        ed25519_dalek::VerifyingKey::from_bytes(&identity.to_bytes()).map_err(|e| e.to_string())?;
    vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| "signature over bytes8(label) ‖ header ‖ nonce ‖ ciphertext")?;
    let padded = Aes256Gcm::new(epoch_key.key_bytes().into())
        .decrypt(
            &nonce.into(),
            Payload {
                msg: &ciphertext,
                aad: &header,
            },
        )
        .map_err(|_| "AES-256-GCM with the header as associated data")?;
    ensure(padded == unhex(v, "padded_plaintext")?, "padded plaintext")?;
    let body_bytes = unhex(v, "body")?;
    ensure(
        padding::unpad(&padded) == Ok(&body_bytes[..]),
        "padding strips to the body",
    )?;

    // The crate's own path.
    let body = envelope::open(&envelope_bytes, &room, &epoch_key, &identity, &members)
        .map_err(|e| e.to_string())?;
    ensure(
        body.encode().map_err(|e| e.to_string())? == body_bytes,
        "body re-encodes",
    )?;
    ensure(body.text == text(v, "text")?, "body text")?;
    let resealed = envelope::seal(
        &body,
        &peeked,
        &epoch_key,
        &keys,
        &mut Replay(nonce.to_vec()),
    )
    .map_err(|e| e.to_string())?;
    ensure(
        resealed == envelope_bytes,
        "sealing again with the same nonce gives the same bytes",
    )
}

const FILE_TEXT: &[u8] = b"Sotto encrypts every file in fixed-size chunks. This vector uses the smallest \
chunk size the protocol allows, 64 bytes, so that a short text spans several chunks and a final short one.";

fn file_vector() -> Vector {
    let mut rng = rng("sotto vectors: file chunks");
    let key = FileKey::generate(&mut rng);
    let mut w = EncryptWriter::new(Vec::new(), &key, MIN_CHUNK_SIZE, &mut rng).expect("starts");
    w.write_all(FILE_TEXT).expect("writes to a Vec");
    let (blob, summary) = w.finish().expect("finishes");
    let header = &blob[..STREAM_HEADER_LEN];
    let full = MIN_CHUNK_SIZE as usize + TAG_LEN;
    let parts: Vec<&[u8]> = blob[STREAM_HEADER_LEN..].chunks(full).collect();
    let chunks: Vec<Value> = parts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let last = i + 1 == parts.len();
            let mut nonce = header[5..12].to_vec();
            nonce.extend_from_slice(&(i as u32).to_be_bytes());
            nonce.push(u8::from(last));
            json!({ "index": i, "last": last, "nonce": hex(&nonce), "ciphertext": hex(c) })
        })
        .collect();
    Vector {
        file: FILE_CHUNKS,
        json: json!({
            "description": "An encrypted file stream (protocol.md §8) with the minimum chunk size of 64 bytes: the file key, the stream header (version, chunk size, nonce prefix), the plaintext, each chunk's nonce (prefix ‖ u32 index ‖ last flag) and ciphertext (AES-256-GCM, the header as associated data), the whole blob and its SHA-256.",
            "file_key": hex(key.as_bytes()),
            "chunk_size": MIN_CHUNK_SIZE,
            "nonce_prefix": hex(&header[5..12]),
            "header": hex(header),
            "plaintext": hex(FILE_TEXT),
            "chunks": chunks,
            "blob": hex(&blob),
            "blob_sha256": hex(summary.blob_sha256),
        }),
    }
}

fn check_file(v: &Value) -> Result<(), String> {
    let key_bytes: [u8; 32] = arr(v, "file_key")?;
    let header = unhex(v, "header")?;
    let prefix: [u8; 7] = arr(v, "nonce_prefix")?;
    let chunk_size = v["chunk_size"].as_u64().ok_or("missing chunk_size")?;
    let plaintext = unhex(v, "plaintext")?;
    let blob = unhex(v, "blob")?;
    let mut expected_header = vec![1];
    expected_header.extend_from_slice(&(chunk_size as u32).to_be_bytes());
    expected_header.extend_from_slice(&prefix);
    ensure(
        header == expected_header,
        "header is 0x01 ‖ u32 chunk_size ‖ nonce_prefix",
    )?;

    // Each chunk with the primitive directly.
    let cipher = Aes256Gcm::new((&key_bytes).into());
    let chunks = v["chunks"].as_array().ok_or("missing chunks")?;
    let mut rebuilt = header.clone();
    let mut opened = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        ensure(c["last"].as_bool() == Some(last), "last flag")?;
        let mut nonce = prefix.to_vec();
        nonce.extend_from_slice(&(i as u32).to_be_bytes());
        nonce.push(u8::from(last));
        ensure(unhex(c, "nonce")? == nonce, "chunk nonce")?;
        let ct = unhex(c, "ciphertext")?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| "nonce length")?;
        let pt = cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &ct,
                    aad: &header,
                },
            )
            .map_err(|_| format!("chunk {i} does not open"))?;
        ensure(
            last || pt.len() == chunk_size as usize,
            "non-final chunks are full",
        )?;
        opened.extend_from_slice(&pt);
        rebuilt.extend_from_slice(&ct);
    }
    ensure(opened == plaintext, "chunks decrypt to the plaintext")?;
    ensure(rebuilt == blob, "blob is header ‖ chunks")?;
    ensure(
        file::blob_sha256(&blob).to_vec() == unhex(v, "blob_sha256")?,
        "blob SHA-256",
    )?;

    // The crate's streaming adapters, both ways.
    let key = FileKey::from_bytes(key_bytes);
    let mut d = DecryptWriter::new(Vec::new(), &key);
    d.write_all(&blob).map_err(|e| e.to_string())?;
    let (out, summary) = d.finish().map_err(|e| e.to_string())?;
    ensure(out == plaintext, "stream decrypts")?;
    ensure(
        summary.blob_sha256.to_vec() == unhex(v, "blob_sha256")?,
        "summary hash",
    )?;
    let mut w = EncryptWriter::new(
        Vec::new(),
        &key,
        chunk_size as u32,
        &mut Replay(prefix.to_vec()),
    )
    .map_err(|e| e.to_string())?;
    w.write_all(&plaintext).map_err(|e| e.to_string())?;
    let (again, _) = w.finish().map_err(|e| e.to_string())?;
    ensure(
        again == blob,
        "encrypting again with the same prefix gives the same blob",
    )
}

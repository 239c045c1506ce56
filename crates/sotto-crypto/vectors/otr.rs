//! Off-the-record: the handshake, and a ratchet transcript with out-of-order delivery.
//!
//! The two sessions take their randomness from recording generators; the vector lists
//! every random value each side drew, in order, so a checker can replay the exact same
//! run (new ephemeral and ratchet keys included) and compare every frame byte for byte.

use super::{UNKNOWN, Vector, ensure, hex, rng, text, unhex};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{TryCryptoRng, TryRng};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sotto_crypto::otr::{Body, Event, Frame};
use sotto_crypto::{IdentityKeys, OtrSession, PublicBundle, RoomId, UserId};
use std::collections::VecDeque;
use std::convert::Infallible;
use x25519_dalek::{PublicKey, StaticSecret};

const HANDSHAKE: &str = "otr_handshake.json";
const RATCHET: &str = "otr_ratchet.json";

/// A generator that either records what an inner generator yields or replays a
/// recorded list of values.
enum Tape {
    Record(Box<rand_chacha::ChaCha20Rng>, Vec<Vec<u8>>),
    Replay(VecDeque<Vec<u8>>),
}

impl TryRng for Tape {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        match self {
            Tape::Record(inner, log) => {
                rand_core::Rng::fill_bytes(inner, dst);
                log.push(dst.to_vec());
            }
            Tape::Replay(values) => {
                let v = values
                    .pop_front()
                    .expect("the run draws no more random values than recorded");
                assert_eq!(v.len(), dst.len(), "random value of the recorded length");
                dst.copy_from_slice(&v);
            }
        }
        Ok(())
    }
}

impl TryCryptoRng for Tape {}

impl Tape {
    fn log(&self) -> Value {
        match self {
            Tape::Record(_, log) => Value::Array(log.iter().map(hex).collect()),
            Tape::Replay(_) => Value::Null,
        }
    }

    fn replay(v: &Value, field: &str) -> Result<Self, String> {
        let list = v[field]
            .as_array()
            .ok_or_else(|| format!("missing field {field}"))?;
        let values = list
            .iter()
            .map(|x| hex::decode(x.as_str().unwrap_or("?")).map_err(|e| format!("{field}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Tape::Replay(values))
    }
}

struct Party {
    keys: IdentityKeys,
    user: UserId,
}

impl Party {
    fn bundle(&self) -> PublicBundle {
        self.keys.bundle(&self.user)
    }
}

fn parties() -> (Party, Party, RoomId) {
    let alice = Party {
        keys: IdentityKeys::generate(&mut rng("sotto vectors: otr alice keys")),
        user: UserId::new("u.alice").expect("valid id"),
    };
    let bob = Party {
        keys: IdentityKeys::generate(&mut rng("sotto vectors: otr bob keys")),
        user: UserId::new("u.bob").expect("valid id"),
    };
    (alice, bob, RoomId::new("dm.alice.bob").expect("valid id"))
}

fn parties_from(v: &Value) -> Result<(Party, Party, RoomId), String> {
    let party = |keys: &str, user: &str| -> Result<Party, String> {
        Ok(Party {
            keys: IdentityKeys::from_bytes(&unhex(v, keys)?).map_err(|e| e.to_string())?,
            user: UserId::new(text(v, user)?).map_err(|e| e.to_string())?,
        })
    };
    let room = RoomId::new(text(v, "room_id")?).map_err(|e| e.to_string())?;
    Ok((
        party("alice_private_keys", "alice_user_id")?,
        party("bob_private_keys", "bob_user_id")?,
        room,
    ))
}

fn party_fields(alice: &Party, bob: &Party, room: &RoomId) -> Value {
    json!({
        "alice_user_id": alice.user.as_str(),
        "alice_private_keys": hex(alice.keys.to_bytes().as_slice()),
        "alice_agreement_public": hex(alice.keys.agreement_public()),
        "bob_user_id": bob.user.as_str(),
        "bob_private_keys": hex(bob.keys.to_bytes().as_slice()),
        "bob_agreement_public": hex(bob.keys.agreement_public()),
        "room_id": room.as_str(),
    })
}

/// The three handshake frames of one run (Alice initiates).
struct Handshake {
    a: OtrSession,
    b: OtrSession,
    offer: Frame,
    accept: Frame,
    confirm: Frame,
}

fn run_handshake(
    alice: &Party,
    bob: &Party,
    room: &RoomId,
    ra: &mut Tape,
    rb: &mut Tape,
) -> Result<Handshake, String> {
    let e = |e: sotto_crypto::OtrError| e.to_string();
    let (mut a, offer) =
        OtrSession::offer(&alice.keys, &alice.user, &bob.bundle(), room, ra).map_err(e)?;
    let (mut b, accept) =
        OtrSession::accept(&offer, &bob.keys, &bob.user, &alice.bundle(), room, rb).map_err(e)?;
    let Event::Established {
        reply: Some(confirm),
    } = a.handle(&accept, ra).map_err(e)?
    else {
        return Err("initiator did not confirm".into());
    };
    ensure(
        b.handle(&confirm, rb).map_err(e)? == Event::Established { reply: None },
        "responder established",
    )?;
    Ok(Handshake {
        a,
        b,
        offer,
        accept,
        confirm,
    })
}

/// The handshake's derived values, computed straight from the primitives as a
/// second implementation would: transcript hash, root key, the two MACs.
struct Derived {
    transcript: [u8; 32],
    root: [u8; 32],
    accept_mac: [u8; 32],
    confirm_mac: [u8; 32],
}

fn b8(w: &mut Vec<u8>, s: &[u8]) {
    w.push(s.len() as u8);
    w.extend_from_slice(s);
}

fn x25519(secret: &[u8; 32], public: &[u8]) -> [u8; 32] {
    let p: [u8; 32] = public.try_into().expect("32-byte key");
    StaticSecret::from(*secret)
        .diffie_hellman(&PublicKey::from(p))
        .to_bytes()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

#[allow(clippy::too_many_arguments)]
fn derive(
    session: &[u8],
    room: &str,
    initiator: &str,
    responder: &str,
    ik_a: &[u8; 32],
    ik_b_pub: &[u8],
    ek_a: &[u8; 32],
    ek_b_pub: &[u8],
    ratchet_a_pub: &[u8],
) -> Derived {
    let pub_of = |s: &[u8; 32]| PublicKey::from(&StaticSecret::from(*s)).to_bytes();
    let mut t = Vec::new();
    b8(&mut t, b"sotto/v1/otr/transcript");
    t.push(1);
    t.extend_from_slice(session);
    b8(&mut t, room.as_bytes());
    b8(&mut t, initiator.as_bytes());
    b8(&mut t, responder.as_bytes());
    t.extend_from_slice(&pub_of(ik_a));
    t.extend_from_slice(ik_b_pub);
    t.extend_from_slice(&pub_of(ek_a));
    t.extend_from_slice(ek_b_pub);
    let transcript: [u8; 32] = Sha256::digest(&t).into();
    let ikm = [
        x25519(ik_a, ek_b_pub),
        x25519(ek_a, ik_b_pub),
        x25519(ek_a, ek_b_pub),
    ]
    .concat();
    let mut okm = [0u8; 96];
    Hkdf::<Sha256>::new(Some(&transcript), &ikm)
        .expand(b"sotto/v1/otr/handshake", &mut okm)
        .expect("96 bytes");
    let mut accept_label = Vec::new();
    b8(&mut accept_label, b"sotto/v1/otr/accept");
    let mut confirm_label = Vec::new();
    b8(&mut confirm_label, b"sotto/v1/otr/confirm");
    Derived {
        transcript,
        root: okm[..32].try_into().expect("32"),
        accept_mac: hmac(&okm[32..64], &[&accept_label, &transcript]),
        confirm_mac: hmac(&okm[64..], &[&confirm_label, &transcript, ratchet_a_pub]),
    }
}

/// Alice's recorded draws: session id, ephemeral, first ratchet key; Bob's: ephemeral.
fn derive_from(
    v: &Value,
    alice_draws: &[Value],
    bob_draws: &[Value],
) -> Result<(Derived, [u8; 32], [u8; 32]), String> {
    let draw = |d: &[Value], i: usize| -> Result<Vec<u8>, String> {
        hex::decode(d.get(i).and_then(Value::as_str).ok_or("missing draw")?)
            .map_err(|e| e.to_string())
    };
    let arr = |b: Vec<u8>| -> Result<[u8; 32], String> {
        b.try_into().map_err(|_| "32 bytes".to_string())
    };
    let ik_a = arr(unhex(v, "alice_private_keys")?[33..65].to_vec())?;
    let ek_a = arr(draw(alice_draws, 1)?)?;
    let ratchet_a = arr(draw(alice_draws, 2)?)?;
    let ek_b = arr(draw(bob_draws, 0)?)?;
    let pub_of = |s: &[u8; 32]| PublicKey::from(&StaticSecret::from(*s)).to_bytes();
    let d = derive(
        &draw(alice_draws, 0)?,
        text(v, "room_id")?,
        text(v, "alice_user_id")?,
        text(v, "bob_user_id")?,
        &ik_a,
        &unhex(v, "bob_agreement_public")?,
        &ek_a,
        &pub_of(&ek_b),
        &pub_of(&ratchet_a),
    );
    Ok((d, ratchet_a, ek_b))
}

fn handshake_json(alice: &Party, bob: &Party, room: &RoomId) -> Value {
    let mut ra = Tape::Record(
        Box::new(rng("sotto vectors: otr handshake alice")),
        Vec::new(),
    );
    let mut rb = Tape::Record(
        Box::new(rng("sotto vectors: otr handshake bob")),
        Vec::new(),
    );
    let h = run_handshake(alice, bob, room, &mut ra, &mut rb).expect("handshake runs");
    let (alice_draws, bob_draws) = (ra.log(), rb.log());
    let mut v = party_fields(alice, bob, room);
    v["alice_random"] = alice_draws.clone();
    v["bob_random"] = bob_draws.clone();
    let (d, _, _) = derive_from(
        &v,
        alice_draws.as_array().expect("list"),
        bob_draws.as_array().expect("list"),
    )
    .expect("derivable");
    v["description"] = json!(
        "OTR handshake (protocol.md §9): Alice offers, Bob accepts, Alice confirms. alice_random lists Alice's \
         random draws in order (session id, ephemeral secret, first ratchet secret), bob_random Bob's \
         (ephemeral secret, first ratchet secret)."
    );
    v["session_id"] = hex(h.a.id().as_bytes());
    v["transcript_hash"] = hex(d.transcript);
    v["root_key"] = hex(d.root);
    v["accept_mac"] = hex(d.accept_mac);
    v["confirm_mac"] = hex(d.confirm_mac);
    v["offer_frame"] = hex(h.offer.encode());
    v["accept_frame"] = hex(h.accept.encode());
    v["confirm_frame"] = hex(h.confirm.encode());
    v
}

fn check_handshake(v: &Value) -> Result<(), String> {
    let (alice, bob, room) = parties_from(v)?;
    ensure(
        alice.keys.agreement_public().to_vec() == unhex(v, "alice_agreement_public")?,
        "alice key",
    )?;
    ensure(
        bob.keys.agreement_public().to_vec() == unhex(v, "bob_agreement_public")?,
        "bob key",
    )?;
    let draws = |f: &str| {
        v[f].as_array()
            .cloned()
            .ok_or_else(|| format!("missing {f}"))
    };
    let (d, _, _) = derive_from(v, &draws("alice_random")?, &draws("bob_random")?)?;
    ensure(
        d.transcript.to_vec() == unhex(v, "transcript_hash")?,
        "transcript hash",
    )?;
    ensure(d.root.to_vec() == unhex(v, "root_key")?, "root key")?;
    ensure(
        d.accept_mac.to_vec() == unhex(v, "accept_mac")?,
        "accept mac",
    )?;
    ensure(
        d.confirm_mac.to_vec() == unhex(v, "confirm_mac")?,
        "confirm mac",
    )?;
    // The MACs sit at the end of the accept and confirm frames.
    ensure(
        unhex(v, "accept_frame")?.ends_with(&d.accept_mac),
        "accept frame carries the mac",
    )?;
    ensure(
        unhex(v, "confirm_frame")?.ends_with(&d.confirm_mac),
        "confirm frame carries the mac",
    )?;
    // Replaying the recorded randomness gives the same frames.
    let mut ra = Tape::replay(v, "alice_random")?;
    let mut rb = Tape::replay(v, "bob_random")?;
    let h = run_handshake(&alice, &bob, &room, &mut ra, &mut rb)?;
    ensure(
        h.a.id().as_bytes().to_vec() == unhex(v, "session_id")?,
        "session id",
    )?;
    ensure(h.offer.encode() == unhex(v, "offer_frame")?, "offer frame")?;
    ensure(
        h.accept.encode() == unhex(v, "accept_frame")?,
        "accept frame",
    )?;
    ensure(
        h.confirm.encode() == unhex(v, "confirm_frame")?,
        "confirm frame",
    )
}

/// The conversation: who sends what, and the order frames are delivered in
/// (Bob gets Alice's second message last; Alice gets Bob's two in reverse).
enum Step {
    Send(&'static str, usize, &'static str),
    SendFile(&'static str, usize),
    Deliver(usize),
}

const FILE_NAME: &str = "note.txt";
const FILE_TYPE: &str = "text/plain";
const FILE_BYTES: &[u8] = b"off the record file content\n";

fn script() -> Vec<Step> {
    use Step::*;
    vec![
        Send("alice", 0, "hello Bob"),
        Send("alice", 1, "this one arrives late"),
        Send("alice", 2, "third"),
        Deliver(0),
        Deliver(2),
        Deliver(1),
        Send("bob", 3, "hi Alice"),
        SendFile("bob", 4),
        Deliver(4),
        Deliver(3),
        Send("alice", 5, "new chain after a DH ratchet step"),
        Deliver(5),
        Send("bob", 6, "bye"),
        Deliver(6),
    ]
}

fn body_json(b: &Body) -> Value {
    match b {
        Body::Text(t) => json!({ "text": t }),
        Body::File {
            name,
            media_type,
            bytes,
        } => json!({ "file_name": name, "media_type": media_type, "file": hex(bytes) }),
    }
}

fn file_body() -> Body {
    Body::File {
        name: FILE_NAME.into(),
        media_type: FILE_TYPE.into(),
        bytes: FILE_BYTES.to_vec(),
    }
}

/// Runs the script on established sessions; returns the log of steps.
fn run_script(h: &mut Handshake, ra: &mut Tape, rb: &mut Tape) -> Result<Vec<Value>, String> {
    let e = |e: sotto_crypto::OtrError| e.to_string();
    let mut sent: Vec<Option<(&'static str, Frame, Body)>> = vec![None; 7];
    let mut log = Vec::new();
    for step in script() {
        let (from, i, body) = match step {
            Step::Send(from, i, msg) => (from, i, Body::Text(msg.into())),
            Step::SendFile(from, i) => (from, i, file_body()),
            Step::Deliver(i) => {
                let (from, f, body) = sent[i].clone().ok_or("deliver before send")?;
                let (to, s, r) = if from == "alice" {
                    ("bob", &mut h.b, &mut *rb)
                } else {
                    ("alice", &mut h.a, &mut *ra)
                };
                ensure(
                    s.handle(&f, r).map_err(e)? == Event::Message(body),
                    "delivered body",
                )?;
                log.push(json!({ "deliver": i, "to": to }));
                continue;
            }
        };
        let s = if from == "alice" { &mut h.a } else { &mut h.b };
        let f = s.send(&body).map_err(e)?;
        log.push(
            json!({ "send": i, "from": from, "body": body_json(&body), "frame": hex(f.encode()) }),
        );
        sent[i] = Some((from, f, body));
    }
    Ok(log)
}

fn body_from(v: &Value) -> Result<Body, String> {
    if let Some(t) = v["text"].as_str() {
        return Ok(Body::Text(t.into()));
    }
    Ok(Body::File {
        name: text(v, "file_name")?.into(),
        media_type: text(v, "media_type")?.into(),
        bytes: unhex(v, "file")?,
    })
}

/// Follows the recorded steps: every send must give the recorded frame bytes, and
/// every delivery of recorded bytes must give the recorded body.
fn replay_steps(
    h: &mut Handshake,
    ra: &mut Tape,
    rb: &mut Tape,
    steps: &[Value],
) -> Result<(), String> {
    let e = |e: sotto_crypto::OtrError| e.to_string();
    let mut sent = std::collections::HashMap::new();
    for step in steps {
        if let Some(i) = step["send"].as_u64() {
            let body = body_from(&step["body"])?;
            let s = if text(step, "from")? == "alice" {
                &mut h.a
            } else {
                &mut h.b
            };
            let frame = unhex(step, "frame")?;
            ensure(
                s.send(&body).map_err(e)?.encode() == frame,
                "sent frame bytes",
            )?;
            sent.insert(i, (frame, body));
        } else {
            let i = step["deliver"]
                .as_u64()
                .ok_or("step is neither send nor deliver")?;
            let (frame, body) = sent.get(&i).cloned().ok_or("deliver before send")?;
            let f = Frame::decode(&frame).map_err(|x| x.to_string())?;
            let (s, r) = if text(step, "to")? == "alice" {
                (&mut h.a, &mut *ra)
            } else {
                (&mut h.b, &mut *rb)
            };
            ensure(
                s.handle(&f, r).map_err(e)? == Event::Message(body),
                "delivered body",
            )?;
        }
    }
    Ok(())
}

/// Opens Alice's first message straight from the primitives: the root chain step,
/// the chain step, the message key's AES key and nonce, the associated data.
fn open_first_message(
    root: &[u8; 32],
    ratchet_a: &[u8; 32],
    ek_b: &[u8; 32],
    frame: &[u8],
) -> Result<Vec<u8>, String> {
    let ek_b_pub = PublicKey::from(&StaticSecret::from(*ek_b)).to_bytes();
    let mut okm = [0u8; 64];
    Hkdf::<Sha256>::new(Some(root), &x25519(ratchet_a, &ek_b_pub))
        .expand(b"sotto/v1/otr/root", &mut okm)
        .map_err(|x| x.to_string())?;
    let mk = hmac(&okm[32..], &[&[1]]);
    let mut kn = [0u8; 44];
    Hkdf::<Sha256>::new(None, &mk)
        .expand(b"sotto/v1/otr/message", &mut kn)
        .map_err(|x| x.to_string())?;
    // Data frame: version, kind, session (16), header (40), ciphertext length (4), ciphertext.
    let (head, rest) = frame.split_at(58);
    let mut aad = Vec::new();
    b8(&mut aad, b"sotto/v1/otr/data");
    aad.push(1);
    aad.extend_from_slice(&head[2..58]);
    let cipher = Aes256Gcm::new_from_slice(&kn[..32]).map_err(|x| x.to_string())?;
    let nonce: [u8; 12] = kn[32..].try_into().map_err(|_| "nonce")?;
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &rest[4..],
                aad: &aad,
            },
        )
        .map_err(|_| "first message does not open".into())
}

fn ratchet_json(alice: &Party, bob: &Party, room: &RoomId) -> Value {
    let mut ra = Tape::Record(
        Box::new(rng("sotto vectors: otr ratchet alice")),
        Vec::new(),
    );
    let mut rb = Tape::Record(Box::new(rng("sotto vectors: otr ratchet bob")), Vec::new());
    let mut h = run_handshake(alice, bob, room, &mut ra, &mut rb).expect("handshake runs");
    let steps = run_script(&mut h, &mut ra, &mut rb).expect("script runs");
    let mut v = party_fields(alice, bob, room);
    v["description"] = json!(
        "OTR ratchet transcript (protocol.md §10): the handshake of §9, then messages both ways with \
         out-of-order delivery (Bob receives 0, 2, 1; Alice receives 4 before 3) and DH ratchet steps. \
         alice_random and bob_random list every random value each side drew, in order; replaying them \
         reproduces every frame. steps: send (frame bytes) and deliver (to whom) in the order they happened."
    );
    v["alice_random"] = ra.log();
    v["bob_random"] = rb.log();
    v["offer_frame"] = hex(h.offer.encode());
    v["accept_frame"] = hex(h.accept.encode());
    v["confirm_frame"] = hex(h.confirm.encode());
    v["steps"] = Value::Array(steps);
    v
}

fn check_ratchet(v: &Value) -> Result<(), String> {
    let (alice, bob, room) = parties_from(v)?;
    let mut ra = Tape::replay(v, "alice_random")?;
    let mut rb = Tape::replay(v, "bob_random")?;
    let mut h = run_handshake(&alice, &bob, &room, &mut ra, &mut rb)?;
    ensure(h.offer.encode() == unhex(v, "offer_frame")?, "offer frame")?;
    ensure(
        h.accept.encode() == unhex(v, "accept_frame")?,
        "accept frame",
    )?;
    ensure(
        h.confirm.encode() == unhex(v, "confirm_frame")?,
        "confirm frame",
    )?;
    let steps = v["steps"].as_array().ok_or("missing steps")?;
    // Independently of the crate's ratchet, the first message opens from the primitives.
    let draws = |f: &str| {
        v[f].as_array()
            .cloned()
            .ok_or_else(|| format!("missing {f}"))
    };
    let (d, ratchet_a, ek_b) = derive_from(v, &draws("alice_random")?, &draws("bob_random")?)?;
    let padded = open_first_message(&d.root, &ratchet_a, &ek_b, &unhex(&steps[0], "frame")?)?;
    let first = steps[0]["body"]["text"]
        .as_str()
        .ok_or("first message is text")?;
    ensure(padded.len() == 256, "padded to 256 bytes")?;
    ensure(padded[..2] == [1, 1], "text body")?;
    ensure(
        padded[2..6] == (first.len() as u32).to_be_bytes(),
        "text length",
    )?;
    ensure(
        &padded[6..6 + first.len()] == first.as_bytes(),
        "first message text",
    )?;
    ensure(
        padded[6 + first.len()..].iter().all(|&b| b == 0),
        "zero padding",
    )?;
    replay_steps(&mut h, &mut ra, &mut rb, steps)?;
    ensure(
        matches!(ra, Tape::Replay(ref q) if q.is_empty()),
        "alice drew every recorded value",
    )?;
    ensure(
        matches!(rb, Tape::Replay(ref q) if q.is_empty()),
        "bob drew every recorded value",
    )
}

pub fn generate() -> Vec<Vector> {
    let (alice, bob, room) = parties();
    vec![
        Vector {
            file: HANDSHAKE,
            json: handshake_json(&alice, &bob, &room),
        },
        Vector {
            file: RATCHET,
            json: ratchet_json(&alice, &bob, &room),
        },
    ]
}

pub fn check(file: &str, v: &Value) -> Result<(), String> {
    match file {
        HANDSHAKE => check_handshake(v),
        RATCHET => check_ratchet(v),
        _ => Err(UNKNOWN.into()),
    }
}

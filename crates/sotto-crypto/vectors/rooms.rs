//! The room state chain and room-key boxes.

use super::{UNKNOWN, Vector, ensure, hex, rng, text, unhex};
use hpke::{Deserializable, OpModeR};
use serde_json::{Value, json};
use sotto_crypto::chain::{
    Action, ChainError, Create, KeyHistory, RoomChain, RoomKind, RoomState, Statement,
};
use sotto_crypto::identity::IdentityPublicKey;
use sotto_crypto::roomkey::{ROOM_KEY_INFO_LABEL, ROOM_KEY_LABEL, RoomKeyBox, hpke_info};
use sotto_crypto::{EpochId, EpochKey, IdentityKeys, PublicBundle, RoomId, UserId};

const CHAIN_FILE: &str = "room_chain.json";
const BOX_FILE: &str = "room_key_box.json";

fn id(s: &str) -> UserId {
    UserId::new(s).expect("valid id")
}

fn keys_of(name: &str) -> IdentityKeys {
    IdentityKeys::generate(&mut rng(&format!("sotto vectors: rooms {name}")))
}

fn people_json(names: &[&str]) -> Value {
    names
        .iter()
        .map(|n| {
            let k = keys_of(n);
            json!({
                "user_id": format!("u.{n}"),
                "private_keys": hex(k.to_bytes().as_slice()),
                "identity_public": hex(k.identity_public().to_bytes()),
                "bundle": hex(k.bundle(&id(&format!("u.{n}"))).encode()),
            })
        })
        .collect()
}

fn state_json(s: &RoomState) -> Value {
    json!({
        "members": s.members().iter().map(UserId::as_str).collect::<Vec<_>>(),
        "owners": s.owners().iter().map(UserId::as_str).collect::<Vec<_>>(),
        "encrypted": s.encrypted(),
        "current_epoch": s.current_epoch().map(|e| e.to_hex()),
        "rotation_due": s.rotation_due(),
        "members_at_epoch": s
            .epochs()
            .iter()
            .map(|e| {
                let set = s.members_at_epoch(e).into_iter().flatten().map(UserId::as_str);
                (e.to_hex(), json!(set.collect::<Vec<_>>()))
            })
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// A neutral text form of an action, for readers of the file.
fn action_text(a: &Action) -> String {
    match a {
        Action::Create(c) => {
            let members: Vec<&str> = c.members.iter().map(UserId::as_str).collect();
            format!(
                "create kind={:?} members={} encrypted={} history_shared={}",
                c.kind,
                members.join(","),
                c.encrypted,
                c.history_shared
            )
        }
        Action::Invite(u) => format!("invite {u}"),
        Action::Remove(u) => format!("remove {u}"),
        Action::Leave => "leave".into(),
        Action::AddOwner(u) => format!("add_owner {u}"),
        Action::RemoveOwner(u) => format!("remove_owner {u}"),
        Action::SetEncryption(on) => format!("set_encryption {on}"),
        Action::NewEpoch(e) => format!("new_epoch {}", e.to_hex()),
        Action::KeyChange(k) => format!("key_change former={}", hex::encode(k.to_bytes())),
    }
}

fn error_name(e: &ChainError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

pub fn generate() -> Vec<Vector> {
    vec![chain_vector(), box_vector()]
}

fn chain_vector() -> Vector {
    let room = RoomId::new("r.general").expect("valid id");
    let (alice, bob, carol) = (id("u.alice"), id("u.bob"), id("u.carol"));
    let (ka, kb, kc) = (keys_of("alice"), keys_of("bob"), keys_of("carol"));
    let mut epochs = rng("sotto vectors: room chain epochs");
    let e1 = EpochId::random(&mut epochs);
    let e2 = EpochId::random(&mut epochs);
    let create = Create {
        kind: RoomKind::PrivateChannel,
        members: [alice.clone(), bob.clone()].into(),
        encrypted: true,
        history_shared: true,
    };
    let mut stmts = vec![Statement::create(&room, create, &alice, &ka).expect("two members")];
    let steps: [(Action, &UserId, &IdentityKeys); 5] = [
        (Action::NewEpoch(e1), &alice, &ka),
        (Action::Invite(carol.clone()), &alice, &ka),
        (Action::AddOwner(bob.clone()), &alice, &ka),
        (Action::Remove(carol.clone()), &bob, &kb),
        (Action::NewEpoch(e2), &bob, &kb),
    ];
    for (action, actor, keys) in steps {
        let head = stmts.last().expect("a head");
        stmts.push(Statement::next(head, action, actor, keys).expect("fits"));
    }
    let resolve = |u: &UserId| {
        [(&alice, &ka), (&bob, &kb), (&carol, &kc)]
            .into_iter()
            .find(|(n, _)| *n == u)
            .map(|(_, k)| k.identity_public())
    };
    let chain = RoomChain::verify(&room, stmts.clone(), resolve).expect("valid chain");
    let head = chain.head().clone();
    let refused = [
        (
            "carol, removed, declares an epoch",
            Statement::next(&head, Action::NewEpoch(e1), &carol, &kc).expect("fits"),
        ),
        (
            "bob signs in alice's name",
            Statement::next(&head, Action::Leave, &alice, &kb).expect("fits"),
        ),
        (
            "a statement that skips the head",
            Statement::next(&stmts[4], Action::Leave, &bob, &kb).expect("fits"),
        ),
    ];
    let refused: Vec<Value> = refused
        .into_iter()
        .map(|(what, s)| {
            let err = chain
                .clone()
                .append(s.clone(), resolve)
                .expect_err("refused");
            json!({ "description": what, "statement": hex(s.encode()), "error": error_name(&err) })
        })
        .collect();
    let statements: Vec<Value> = stmts
        .iter()
        .map(|s| {
            json!({
                "seq": s.seq(),
                "actor": s.actor().as_str(),
                "action": action_text(s.action()),
                "statement": hex(s.encode()),
                "hash": hex(s.hash()),
                "state_after": state_json(&chain.state_at(s.seq()).expect("in chain")),
            })
        })
        .collect();
    Vector {
        file: CHAIN_FILE,
        json: json!({
            "description": "A private channel's signed state chain, the state derived after each statement, and statements a client refuses, with the error (protocol.md, Room state chain).",
            "room_id": room.as_str(),
            "users": people_json(&["alice", "bob", "carol"]),
            "statements": statements,
            "refused": refused,
            "key_change": key_change_json(&room),
        }),
    }
}

/// The key-change state: each `KeyChange` so far, and for each epoch the former keys
/// declared after it (what messages and boxes of that epoch may be signed under).
fn key_change_state_json(s: &RoomState) -> Value {
    let changes: Vec<Value> = s
        .key_changes()
        .iter()
        .map(|k| json!({ "seq": k.seq, "user_id": k.user.as_str(), "former": hex(k.former.to_bytes()) }))
        .collect();
    let users: std::collections::BTreeSet<&UserId> =
        s.key_changes().iter().map(|k| &k.user).collect();
    let since: serde_json::Map<String, Value> = s
        .epochs()
        .iter()
        .map(|e| {
            let per_user: serde_json::Map<String, Value> = users
                .iter()
                .map(|u| {
                    let keys: Vec<Value> = s
                        .former_keys_since_epoch(u, e)
                        .iter()
                        .map(|k| hex(k.to_bytes()))
                        .collect();
                    (u.as_str().to_owned(), json!(keys))
                })
                .collect();
            (e.to_hex(), Value::Object(per_user))
        })
        .collect();
    json!({ "state": state_json(s), "key_changes": changes, "former_keys_since_epoch": since })
}

/// Bob's key is reset after he signed under it: his `KeyChange` under the new key
/// declares the old one, so a verifier that pinned only the new key checks the chain.
fn key_change_json(room: &RoomId) -> Value {
    let (alice, bob) = (id("u.alice"), id("u.bob"));
    let (ka, kb, kc) = (keys_of("alice"), keys_of("bob"), keys_of("carol"));
    let kb2 = keys_of("bob after reset");
    let mut epochs = rng("sotto vectors: key change epochs");
    let (e1, e2, e3, e4) = (
        EpochId::random(&mut epochs),
        EpochId::random(&mut epochs),
        EpochId::random(&mut epochs),
        EpochId::random(&mut epochs),
    );
    let create = Create {
        kind: RoomKind::PrivateChannel,
        members: [alice.clone(), bob.clone()].into(),
        encrypted: true,
        history_shared: true,
    };
    let first = Statement::create(room, create, &alice, &ka).expect("two members");
    let mut stmts = vec![first];
    let steps: [(Action, &UserId, &IdentityKeys); 4] = [
        (Action::NewEpoch(e1), &alice, &ka),
        (Action::NewEpoch(e2), &bob, &kb),
        (Action::KeyChange(kb.identity_public()), &bob, &kb2),
        (Action::NewEpoch(e3), &bob, &kb2),
    ];
    for (action, actor, keys) in steps {
        let head = stmts.last().expect("a head");
        stmts.push(Statement::next(head, action, actor, keys).expect("fits"));
    }
    let pinned = |u: &UserId| {
        if *u == alice {
            Some(ka.identity_public())
        } else {
            (*u == bob).then(|| kb2.identity_public())
        }
    };
    let chain = RoomChain::verify(room, stmts.clone(), pinned).expect("valid chain");
    let head = chain.head().clone();
    let refused: Vec<Value> = [
        (
            "bob's former key signs after his key change",
            Statement::next(&head, Action::NewEpoch(e4), &bob, &kb).expect("fits"),
        ),
        (
            "bob declares the same former key a second time",
            Statement::next(&head, Action::KeyChange(kb.identity_public()), &bob, &kb2)
                .expect("fits"),
        ),
        (
            "a key change that declares the key signing it",
            Statement::next(&head, Action::KeyChange(kb2.identity_public()), &bob, &kb2)
                .expect("fits"),
        ),
    ]
    .into_iter()
    .map(|(what, s)| {
        let err = chain
            .clone()
            .append(s.clone(), pinned)
            .expect_err("refused");
        json!({ "description": what, "statement": hex(s.encode()), "error": error_name(&err) })
    })
    .collect();
    // The server (or anyone holding bob's new key) declaring another former key.
    let mut forged = stmts[..3].to_vec();
    forged.push(
        Statement::next(
            &forged[2],
            Action::KeyChange(kc.identity_public()),
            &bob,
            &kb2,
        )
        .expect("fits"),
    );
    let mut kept = serde_json::Map::new();
    kept.insert(
        bob.as_str().to_owned(),
        json!([hex(kb.identity_public().to_bytes())]),
    );
    let refused_chains: Vec<Value> = [
        (
            "a key change declaring a key other than the one this verifier kept as bob's former key",
            kept,
        ),
        (
            "the same chain checked by a verifier that kept no former key: bob's statement before it fails",
            serde_json::Map::new(),
        ),
    ]
    .into_iter()
    .map(|(what, former)| {
        let kept_keys = |u: &UserId| -> Vec<IdentityPublicKey> {
            former
                .get(u.as_str())
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|h| {
                    let b: [u8; 32] = hex::decode(h.as_str()?).ok()?.try_into().ok()?;
                    IdentityPublicKey::from_bytes(&b).ok()
                })
                .collect()
        };
        let err = RoomChain::verify_with_history(room, forged.clone(), pinned, |u| KeyHistory {
            former: kept_keys(u),
            pending: None,
        })
            .expect_err("refused");
        json!({
            "description": what,
            "statements": forged.iter().map(|s| hex(s.encode())).collect::<Vec<_>>(),
            "former_keys": former,
            "error": error_name(&err),
        })
    })
    .collect();
    // Bob reset a second time and has not declared it yet: a verifier that pinned his
    // third key and kept the first two checks his last KeyChange, signed by the second,
    // like his other statements under a kept former key.
    let kb3 = keys_of("bob after a second reset");
    let third = |u: &UserId| {
        if *u == bob {
            Some(kb3.identity_public())
        } else {
            pinned(u)
        }
    };
    let kept_both = vec![kb.identity_public(), kb2.identity_public()];
    let accepted = RoomChain::verify_with_history(room, stmts.clone(), third, |u| KeyHistory {
        former: if *u == bob {
            kept_both.clone()
        } else {
            Vec::new()
        },
        pending: None,
    })
    .expect("accepted");
    let accepted_chains = vec![json!({
        "description": "bob's keys reset a second time, the change not declared yet: a verifier that pinned his third key and kept both former ones accepts the chain",
        "pinned": { bob.as_str(): hex(kb3.identity_public().to_bytes()) },
        "former_keys": { bob.as_str(): kept_both.iter().map(|k| hex(k.to_bytes())).collect::<Vec<_>>() },
        "head_hash": hex(accepted.head().hash()),
    })];
    let statements: Vec<Value> = stmts
        .iter()
        .map(|s| {
            let state = chain.state_at(s.seq()).expect("in chain");
            json!({
                "seq": s.seq(),
                "actor": s.actor().as_str(),
                "action": action_text(s.action()),
                "statement": hex(s.encode()),
                "hash": hex(s.hash()),
                "state_after": key_change_state_json(&state),
            })
        })
        .collect();
    json!({
        "description": "Bob signs a statement, his key is reset, and his KeyChange (signed with the new key) declares the old one: a verifier that pinned only bob's new key checks each statement under the key in effect (the former key of the actor's next KeyChange, else the pinned key). Then statements refused on that chain, and a chain whose KeyChange declares another key, refused with the former keys the verifier kept (protocol.md, Room state chain).",
        "bob_after_reset": {
            "user_id": bob.as_str(),
            "private_keys": hex(kb2.to_bytes().as_slice()),
            "identity_public": hex(kb2.identity_public().to_bytes()),
        },
        "pinned": { alice.as_str(): hex(ka.identity_public().to_bytes()), bob.as_str(): hex(kb2.identity_public().to_bytes()) },
        "statements": statements,
        "refused": refused,
        "refused_chains": refused_chains,
        "accepted_chains": accepted_chains,
    })
}

fn box_vector() -> Vector {
    let room = RoomId::new("r.general").expect("valid id");
    let (alice, bob) = (id("u.alice"), id("u.bob"));
    let (ka, kb) = (keys_of("alice"), keys_of("bob"));
    let epoch_key = EpochKey::generate(&mut rng("sotto vectors: room key"));
    let create = Create {
        kind: RoomKind::PrivateChannel,
        members: [alice.clone(), bob.clone()].into(),
        encrypted: true,
        history_shared: true,
    };
    let first = Statement::create(&room, create, &alice, &ka).expect("two members");
    let second =
        Statement::next(&first, Action::NewEpoch(epoch_key.epoch()), &alice, &ka).expect("fits");
    let b = RoomKeyBox::seal(
        &epoch_key,
        &room,
        &ka,
        &alice,
        &kb.bundle(&bob),
        &mut rng("sotto vectors: room key box"),
    )
    .expect("seals");
    Vector {
        file: BOX_FILE,
        json: json!({
            "description": "An epoch key sealed by alice (distributor) to bob (recipient) with HPKE base mode (X25519, HKDF-SHA256, AES-256-GCM; empty aad) and signed by alice; the chain declares the epoch (protocol.md, Room keys). The HPKE ephemeral key comes from the seeded generator.",
            "room_id": room.as_str(),
            "chain": [hex(first.encode()), hex(second.encode())],
            "distributor": { "user_id": alice.as_str(), "private_keys": hex(ka.to_bytes().as_slice()), "identity_public": hex(ka.identity_public().to_bytes()) },
            "recipient": { "user_id": bob.as_str(), "private_keys": hex(kb.to_bytes().as_slice()), "bundle": hex(kb.bundle(&bob).encode()) },
            "epoch_id": epoch_key.epoch().to_hex(),
            "epoch_key": hex(epoch_key.key_bytes()),
            "info": hex(b.info()),
            "enc": hex(b.enc()),
            "ciphertext": hex(b.sealed_key()),
            "signature": hex(b.signature()),
            "box": hex(b.encode()),
        }),
    }
}

pub fn check(file: &str, v: &Value) -> Result<(), String> {
    match file {
        CHAIN_FILE => check_chain(v),
        BOX_FILE => check_box(v),
        _ => Err(UNKNOWN.into()),
    }
}

fn key_table(users: &Value) -> Result<Vec<(UserId, IdentityKeys)>, String> {
    users
        .as_array()
        .ok_or("missing users")?
        .iter()
        .map(|u| {
            let user = UserId::new(text(u, "user_id")?).map_err(|e| e.to_string())?;
            let keys =
                IdentityKeys::from_bytes(&unhex(u, "private_keys")?).map_err(|e| e.to_string())?;
            ensure(
                keys.identity_public().to_bytes().to_vec() == unhex(u, "identity_public")?,
                "identity key",
            )?;
            Ok((user, keys))
        })
        .collect()
}

fn check_chain(v: &Value) -> Result<(), String> {
    let room = RoomId::new(text(v, "room_id")?).map_err(|e| e.to_string())?;
    let table = key_table(&v["users"])?;
    let resolve = |u: &UserId| {
        table
            .iter()
            .find(|(n, _)| n == u)
            .map(|(_, k)| k.identity_public())
    };
    let entries = v["statements"].as_array().ok_or("missing statements")?;
    let mut encoded = Vec::new();
    for e in entries {
        let bytes = unhex(e, "statement")?;
        let s = Statement::decode(&bytes).map_err(|e| e.to_string())?;
        ensure(s.hash().to_vec() == unhex(e, "hash")?, "statement hash")?;
        ensure(Some(s.seq()) == e["seq"].as_u64(), "sequence number")?;
        // Ed25519 is deterministic: the actor signing the same body gives the same bytes.
        let (_, k) = table
            .iter()
            .find(|(n, _)| n == s.actor())
            .ok_or("unknown actor")?;
        let again = Statement::sign(
            s.room(),
            s.seq(),
            *s.prev(),
            s.action().clone(),
            s.actor(),
            k,
        )
        .map_err(|e| e.to_string())?;
        ensure(again.encode() == bytes, "statement re-signs byte for byte")?;
        encoded.push(bytes);
    }
    let chain =
        RoomChain::decode_and_verify(&room, &encoded, resolve).map_err(|e| e.to_string())?;
    for e in entries {
        let seq = e["seq"].as_u64().ok_or("seq")?;
        let state = chain.state_at(seq).ok_or("state")?;
        ensure(state_json(&state) == e["state_after"], "derived state")?;
    }
    for r in v["refused"].as_array().ok_or("missing refused")? {
        let s = Statement::decode(&unhex(r, "statement")?).map_err(|e| e.to_string())?;
        let err = chain
            .clone()
            .append(s, resolve)
            .err()
            .ok_or("refused statement accepted")?;
        ensure(error_name(&err) == text(r, "error")?, "refusal error")?;
    }
    check_key_change(&room, &v["key_change"])
}

fn key_from_hex(h: &Value) -> Result<IdentityPublicKey, String> {
    let bytes: [u8; 32] = hex::decode(h.as_str().ok_or("key hex")?)
        .map_err(|_| "key hex")?
        .try_into()
        .map_err(|_| "key length")?;
    IdentityPublicKey::from_bytes(&bytes).map_err(|e| e.to_string())
}

fn check_key_change(room: &RoomId, v: &Value) -> Result<(), String> {
    let pinned: Vec<(UserId, IdentityPublicKey)> = v["pinned"]
        .as_object()
        .ok_or("missing pinned")?
        .iter()
        .map(|(u, k)| Ok((UserId::new(u).map_err(|e| e.to_string())?, key_from_hex(k)?)))
        .collect::<Result<_, String>>()?;
    let resolve = |u: &UserId| pinned.iter().find(|(n, _)| n == u).map(|(_, k)| *k);
    let bob_new = IdentityKeys::from_bytes(&unhex(&v["bob_after_reset"], "private_keys")?)
        .map_err(|e| e.to_string())?;
    let entries = v["statements"].as_array().ok_or("missing statements")?;
    let mut statements = Vec::new();
    for e in entries {
        let bytes = unhex(e, "statement")?;
        let s = Statement::decode(&bytes).map_err(|e| e.to_string())?;
        ensure(s.hash().to_vec() == unhex(e, "hash")?, "statement hash")?;
        if let Action::KeyChange(_) = s.action() {
            let again = Statement::sign(
                s.room(),
                s.seq(),
                *s.prev(),
                s.action().clone(),
                s.actor(),
                &bob_new,
            )
            .map_err(|e| e.to_string())?;
            ensure(again.encode() == bytes, "key change re-signs byte for byte")?;
        }
        statements.push(s);
    }
    let chain = RoomChain::verify(room, statements, resolve).map_err(|e| e.to_string())?;
    for e in entries {
        let state = chain
            .state_at(e["seq"].as_u64().ok_or("seq")?)
            .ok_or("state")?;
        ensure(
            key_change_state_json(&state) == e["state_after"],
            "key change state",
        )?;
    }
    for r in v["refused"].as_array().ok_or("missing refused")? {
        let s = Statement::decode(&unhex(r, "statement")?).map_err(|e| e.to_string())?;
        let err = chain
            .clone()
            .append(s, resolve)
            .err()
            .ok_or("refused statement accepted")?;
        ensure(error_name(&err) == text(r, "error")?, "refusal error")?;
    }
    for r in v["refused_chains"]
        .as_array()
        .ok_or("missing refused chains")?
    {
        let statements = r["statements"]
            .as_array()
            .ok_or("statements")?
            .iter()
            .map(|h| {
                let b = hex::decode(h.as_str().ok_or("hex")?).map_err(|_| "hex")?;
                Statement::decode(&b).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let former = r["former_keys"].as_object().ok_or("former keys")?;
        let kept = |u: &UserId| -> Vec<IdentityPublicKey> {
            former
                .get(u.as_str())
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|k| key_from_hex(k).ok())
                .collect()
        };
        let err = RoomChain::verify_with_history(room, statements, resolve, |u| KeyHistory {
            former: kept(u),
            pending: None,
        })
        .err()
        .ok_or("refused chain accepted")?;
        ensure(error_name(&err) == text(r, "error")?, "chain refusal error")?;
    }
    let statements = v["statements"]
        .as_array()
        .ok_or("statements")?
        .iter()
        .map(|e| Statement::decode(&unhex(e, "statement")?).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, String>>()?;
    for a in v["accepted_chains"]
        .as_array()
        .ok_or("missing accepted chains")?
    {
        let keys = |u: &UserId| {
            key_from_hex(&a["pinned"][u.as_str()])
                .ok()
                .or_else(|| resolve(u))
        };
        let kept = |u: &UserId| -> Vec<IdentityPublicKey> {
            a["former_keys"][u.as_str()]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| key_from_hex(k).ok())
                .collect()
        };
        let chain =
            RoomChain::verify_with_history(room, statements.clone(), keys, |u| KeyHistory {
                former: kept(u),
                pending: None,
            })
            .map_err(|e| format!("accepted chain refused: {e}"))?;
        ensure(
            hex(chain.head().hash()) == text(a, "head_hash")?,
            "accepted head",
        )?;
    }
    Ok(())
}

fn check_box(v: &Value) -> Result<(), String> {
    let room = RoomId::new(text(v, "room_id")?).map_err(|e| e.to_string())?;
    let dist = &v["distributor"];
    let rcpt = &v["recipient"];
    let dist_id = UserId::new(text(dist, "user_id")?).map_err(|e| e.to_string())?;
    let rcpt_id = UserId::new(text(rcpt, "user_id")?).map_err(|e| e.to_string())?;
    let dist_keys =
        IdentityKeys::from_bytes(&unhex(dist, "private_keys")?).map_err(|e| e.to_string())?;
    let rcpt_keys =
        IdentityKeys::from_bytes(&unhex(rcpt, "private_keys")?).map_err(|e| e.to_string())?;
    let dist_pub: [u8; 32] = unhex(dist, "identity_public")?
        .try_into()
        .map_err(|_| "identity key length")?;
    let dist_pub = IdentityPublicKey::from_bytes(&dist_pub).map_err(|e| e.to_string())?;
    ensure(dist_keys.identity_public() == dist_pub, "distributor key")?;
    let bundle = PublicBundle::decode(&unhex(rcpt, "bundle")?).map_err(|e| e.to_string())?;
    ensure(
        rcpt_keys.matches(&bundle) && bundle.user() == &rcpt_id,
        "recipient bundle",
    )?;
    let epoch = EpochId::from_hex(text(v, "epoch_id")?).map_err(|e| e.to_string())?;
    let bytes = unhex(v, "box")?;

    // The HPKE layer on its own, as a second implementation would check it; the X25519
    // secret is bytes 33..65 of the private keys (protocol.md §2).
    let info = hpke_info(&room, &epoch, &rcpt_id, &dist_id);
    ensure(info == unhex(v, "info")?, "info bytes")?;
    type Kem = hpke::kem::X25519HkdfSha256;
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&rcpt_keys.to_bytes()[33..65])
        .map_err(|e| e.to_string())?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&unhex(v, "enc")?)
        .map_err(|e| e.to_string())?;
    let plain = hpke::single_shot_open::<hpke::aead::AesGcm256, hpke::kdf::HkdfSha256, Kem>(
        &OpModeR::Base,
        &sk,
        &enc,
        &info,
        &unhex(v, "ciphertext")?,
        b"",
    )
    .map_err(|e| e.to_string())?;
    ensure(
        plain == unhex(v, "epoch_key")?,
        "HPKE plaintext is the epoch key",
    )?;
    let sig: [u8; 64] = unhex(v, "signature")?
        .try_into()
        .map_err(|_| "signature length")?;
    let body = &bytes[..bytes.len().saturating_sub(64)];
    dist_pub
        .verify(ROOM_KEY_LABEL, &[body], &sig)
        .map_err(|e| e.to_string())?;
    let mut expected = info[1 + ROOM_KEY_INFO_LABEL.len()..].to_vec();
    expected.extend(unhex(v, "enc")?);
    expected.extend(unhex(v, "ciphertext")?);
    ensure(
        body == expected.as_slice(),
        "box body is header ‖ enc ‖ ciphertext",
    )?;

    // The whole box through the crate, against the chain.
    let chain_hex = v["chain"].as_array().ok_or("missing chain")?;
    let chain_bytes = chain_hex
        .iter()
        .map(|h| {
            h.as_str()
                .ok_or("chain entry")
                .and_then(|s| hex::decode(s).map_err(|_| "chain hex"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let resolve = |u: &UserId| (u == &dist_id).then_some(dist_pub);
    let chain =
        RoomChain::decode_and_verify(&room, &chain_bytes, resolve).map_err(|e| e.to_string())?;
    let b = RoomKeyBox::decode(&bytes).map_err(|e| e.to_string())?;
    let key = b
        .open(&rcpt_id, &rcpt_keys, chain.state(), resolve)
        .map_err(|e| e.to_string())?;
    ensure(
        key.epoch() == epoch && key.key_bytes().to_vec() == unhex(v, "epoch_key")?,
        "opened key",
    )?;
    ensure(b.encode() == bytes, "box re-encodes")
}

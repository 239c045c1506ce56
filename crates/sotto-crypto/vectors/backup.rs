//! The key backup, and safety numbers.

use super::{UNKNOWN, Vector, ensure, hex, rng, text, unhex};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use sotto_crypto::backup::BackupError;
use sotto_crypto::safety::fingerprint_digits;
use sotto_crypto::{
    EncryptionPassword, IdentityKeys, IdentityPublicKey, KdfParams, KeyBackup, PublicBundle,
    SafetyNumber, UserId,
};

const BACKUP_FILE: &str = "backup.json";
const SAFETY_FILE: &str = "safety_number.json";
const REPLACE_FILE: &str = "backup_replace.json";

pub fn generate() -> Vec<Vector> {
    vec![backup_vector(), replace_vector(), safety_vector()]
}

pub fn check(file: &str, v: &Value) -> Result<(), String> {
    match file {
        BACKUP_FILE => check_backup(v),
        REPLACE_FILE => check_replace(v),
        SAFETY_FILE => check_safety(v),
        _ => Err(UNKNOWN.into()),
    }
}

fn backup_vector() -> Vector {
    let mut rng = rng("sotto vectors: backup");
    let keys = IdentityKeys::generate(&mut rng);
    let user = UserId::new("u.alice").expect("valid id");
    let generated = EncryptionPassword::generate(&mut rng);
    let words = bip39::Language::English.word_list();
    let indices: Vec<usize> = generated
        .as_str()
        .split(' ')
        .map(|w| words.iter().position(|x| *x == w).expect("a list word"))
        .collect();
    // A password of the user's own, typed in decomposed form (NFD) on their device.
    let typed = "Cre\u{300}me bru\u{302}le\u{301}e \u{3c9}\u{3bc}\u{3b5}\u{301}\u{3b3}\u{3b1} \u{5bc6}\u{7801} \u{1f511}";
    let own = EncryptionPassword::from_user(typed).expect("not empty");

    let mut case = |description: &str, as_typed: &str, password: &EncryptionPassword| {
        let backup = KeyBackup::create(&keys, &user, password, KdfParams::FLOOR, &mut rng)
            .expect("floor params");
        let kek = backup
            .params()
            .derive_kek(password, backup.salt())
            .expect("floor params");
        json!({
            "description": description,
            "password_as_typed": as_typed,
            "password_as_typed_utf8": hex(as_typed.as_bytes()),
            "password_nfc_utf8": hex(password.kdf_input()),
            "params": { "m_kib": backup.params().m_kib, "t": backup.params().t, "p": backup.params().p },
            "salt": hex(backup.salt()),
            "nonce": hex(backup.nonce()),
            "kek": hex(kek.as_slice()),
            "associated_data": hex(backup.associated_data(&user)),
            "ciphertext": hex(backup.ciphertext()),
            "backup": hex(backup.encode()),
        })
    };
    let mut first = case(
        "A generated 12-word password.",
        generated.as_str(),
        &generated,
    );
    first["word_indices"] = json!(indices);
    let second = case(
        "A password of the user's own in several scripts, typed decomposed (NFD); the KDF takes its NFC form.",
        typed,
        &own,
    );
    Vector {
        file: BACKUP_FILE,
        json: json!({
            "description": "Key backups of one user's private keys at the floor parameters (protocol.md, Encryption password and key backup). Each case draws the salt then the nonce from the generator.",
            "user_id": user.as_str(),
            "private_keys": hex(keys.to_bytes().as_slice()),
            "bundle": hex(keys.bundle(&user).encode()),
            "cases": [first, second],
            "wrong_password": "not the password",
        }),
    }
}

/// Replays fixed bytes as randomness, so `KeyBackup::create` can be run again with the
/// vector's salt and nonce.
struct Replay(Vec<u8>);

impl rand_core::TryRng for Replay {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let n = dst.len().min(self.0.len());
        dst[..n].copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
        dst[n..].fill(0);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Replay {}

fn number(v: &Value, field: &str) -> Result<u32, String> {
    v[field]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("missing field {field}"))
}

fn check_backup(v: &Value) -> Result<(), String> {
    let user = UserId::new(text(v, "user_id")?).map_err(|e| e.to_string())?;
    let private = unhex(v, "private_keys")?;
    let bundle = PublicBundle::decode(&unhex(v, "bundle")?).map_err(|e| e.to_string())?;
    ensure(bundle.user() == &user, "bundle user")?;
    let cases = v["cases"].as_array().ok_or("missing cases")?;
    ensure(cases.len() == 2, "two cases")?;
    for c in cases {
        let typed = text(c, "password_as_typed")?;
        ensure(
            typed.as_bytes() == unhex(c, "password_as_typed_utf8")?,
            "typed bytes",
        )?;
        let password = EncryptionPassword::from_user(typed).map_err(|e| e.to_string())?;
        let nfc = unhex(c, "password_nfc_utf8")?;
        ensure(password.kdf_input() == nfc, "NFC form")?;
        if let Some(indices) = c["word_indices"].as_array() {
            let words = bip39::Language::English.word_list();
            let joined: Option<Vec<&str>> = indices
                .iter()
                .map(|i| i.as_u64().and_then(|i| words.get(i as usize).copied()))
                .collect();
            ensure(
                joined.ok_or("word index")?.join(" ") == typed,
                "words from the list",
            )?;
        }
        let p = &c["params"];
        let params = KdfParams {
            m_kib: number(p, "m_kib")?,
            t: number(p, "t")?,
            p: number(p, "p")?,
        };
        let salt = unhex(c, "salt")?;
        let nonce = unhex(c, "nonce")?;

        // Each step the way a second implementation computes it.
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
                .map_err(|e| e.to_string())?,
        );
        let mut kek = [0u8; 32];
        argon
            .hash_password_into(&nfc, &salt, &mut kek)
            .map_err(|e| e.to_string())?;
        ensure(kek.to_vec() == unhex(c, "kek")?, "kek")?;
        let mut ad = vec![15u8];
        ad.extend_from_slice(b"sotto/v1/backup");
        ad.push(1);
        ad.push(user.as_str().len() as u8);
        ad.extend_from_slice(user.as_str().as_bytes());
        for n in [params.m_kib, params.t, params.p] {
            ad.extend_from_slice(&n.to_be_bytes());
        }
        ad.extend_from_slice(&salt);
        ensure(ad == unhex(c, "associated_data")?, "associated data")?;
        let nonce12: [u8; 12] = nonce.as_slice().try_into().map_err(|_| "nonce length")?;
        let ct = Aes256Gcm::new(<&Key<Aes256Gcm>>::from(&kek))
            .encrypt(
                (&nonce12).into(),
                Payload {
                    msg: &private,
                    aad: &ad,
                },
            )
            .map_err(|e| e.to_string())?;
        ensure(ct == unhex(c, "ciphertext")?, "ciphertext")?;
        let mut encoded = vec![1u8];
        for n in [params.m_kib, params.t, params.p] {
            encoded.extend_from_slice(&n.to_be_bytes());
        }
        encoded.extend_from_slice(&salt);
        encoded.extend_from_slice(&nonce);
        encoded.extend_from_slice(&ct);
        let bytes = unhex(c, "backup")?;
        ensure(encoded == bytes, "backup encoding")?;

        // Then through the crate: open, refuse a wrong password, and seal again.
        let backup = KeyBackup::decode(&bytes).map_err(|e| e.to_string())?;
        let keys = backup
            .open(&password, &user, &bundle)
            .map_err(|e| e.to_string())?;
        ensure(
            keys.to_bytes().as_slice() == private.as_slice(),
            "opened keys",
        )?;
        let wrong =
            EncryptionPassword::from_user(text(v, "wrong_password")?).map_err(|e| e.to_string())?;
        ensure(
            backup.open(&wrong, &user, &bundle).err() == Some(BackupError::WrongPassword),
            "wrong password refused",
        )?;
        let mut replay = Replay([salt.as_slice(), &nonce].concat());
        let again = KeyBackup::create(&keys, &user, &password, params, &mut replay)
            .map_err(|e| e.to_string())?;
        ensure(again.encode() == bytes, "create reproduces the backup")?;
    }
    Ok(())
}

fn replace_vector() -> Vector {
    let mut rng = rng("sotto vectors: backup replace");
    let keys = IdentityKeys::generate(&mut rng);
    let user = UserId::new("u.alice").expect("valid id");
    // The first backup, then two changes of password in a row.
    let backups: Vec<KeyBackup> = ["first password", "second password", "third password"]
        .iter()
        .map(|p| {
            let password = EncryptionPassword::from_user(p).expect("not empty");
            KeyBackup::create(&keys, &user, &password, KdfParams::FLOOR, &mut rng)
                .expect("floor params")
        })
        .collect();
    let cases: Vec<Value> = backups
        .windows(2)
        .map(|pair| {
            let (current, new) = (pair[0].encode(), &pair[1]);
            json!({
                "current_backup": hex(&current),
                "current_sha256": hex(Sha256::digest(&current)),
                "new_backup": hex(new.encode()),
                "signing_input": hex(new.replacement_input(&user, &current)),
                "signature": hex(new.sign_replacement(&keys, &user, &current)),
            })
        })
        .collect();
    Vector {
        file: REPLACE_FILE,
        json: json!({
            "description": "The identity key's signature that lets a new key backup replace the stored one (protocol.md, Changing the password): two replacements in a row. The first case's signature must not verify for the second case's current backup (a replay).",
            "user_id": user.as_str(),
            "private_keys": hex(keys.to_bytes().as_slice()),
            "bundle": hex(keys.bundle(&user).encode()),
            "cases": cases,
        }),
    }
}

fn check_replace(v: &Value) -> Result<(), String> {
    let user = text(v, "user_id")?;
    let keys = IdentityKeys::from_bytes(&unhex(v, "private_keys")?).map_err(|e| e.to_string())?;
    let bundle = PublicBundle::decode(&unhex(v, "bundle")?).map_err(|e| e.to_string())?;
    ensure(bundle.user().as_str() == user, "bundle user")?;
    ensure(keys.matches(&bundle), "private keys match the bundle")?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&bundle.identity().to_bytes())
        .map_err(|e| e.to_string())?;
    let cases = v["cases"].as_array().ok_or("missing cases")?;
    ensure(cases.len() == 2, "two cases")?;
    let mut signatures = Vec::new();
    for c in cases {
        let current = unhex(c, "current_backup")?;
        let new = unhex(c, "new_backup")?;
        let hash = Sha256::digest(&current);
        ensure(
            hash.as_slice() == unhex(c, "current_sha256")?,
            "current hash",
        )?;

        // The signed bytes the way a second implementation builds them.
        let label = b"sotto/v1/backup-replace";
        let mut input = vec![label.len() as u8];
        input.extend_from_slice(label);
        input.push(1);
        input.push(user.len() as u8);
        input.extend_from_slice(user.as_bytes());
        input.extend_from_slice(&hash);
        input.extend_from_slice(&new);
        ensure(input == unhex(c, "signing_input")?, "signing input")?;
        let sig: [u8; 64] = unhex(c, "signature")?
            .try_into()
            .map_err(|_| "signature length")?;
        vk.verify_strict(&input, &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|e| e.to_string())?;

        // Then through the crate: the same bytes, signature and verification.
        let backup = KeyBackup::decode(&new).map_err(|e| e.to_string())?;
        let user_id = bundle.user();
        ensure(
            backup.replacement_input(user_id, &current) == input,
            "crate signing input",
        )?;
        ensure(
            backup.sign_replacement(&keys, user_id, &current) == sig,
            "crate signature",
        )?;
        ensure(
            backup.verify_replacement(&bundle, &current, &sig).is_ok(),
            "crate verifies",
        )?;
        signatures.push((backup, current, sig));
    }
    // Each new backup is the next case's current one.
    ensure(
        signatures[0].0.encode() == signatures[1].1,
        "the cases are consecutive",
    )?;
    // The first replacement replayed once the backup has moved on: refused.
    let (first, _, first_sig) = &signatures[0];
    let (_, now_stored, _) = &signatures[1];
    ensure(
        first
            .verify_replacement(&bundle, now_stored, first_sig)
            .is_err(),
        "a replayed replacement is refused",
    )
}

fn safety_vector() -> Vector {
    let mut rng = rng("sotto vectors: safety number");
    let alice = (
        UserId::new("u.alice").expect("valid id"),
        IdentityKeys::generate(&mut rng).identity_public(),
    );
    let bob = (
        UserId::new("u.bob").expect("valid id"),
        IdentityKeys::generate(&mut rng).identity_public(),
    );
    let number = SafetyNumber::compute((&alice.0, &alice.1), (&bob.0, &bob.1));
    Vector {
        file: SAFETY_FILE,
        json: json!({
            "description": "The safety number of two users (protocol.md, Safety numbers and pinned identities).",
            "iterations": sotto_crypto::safety::ITERATIONS,
            "user_a": alice.0.as_str(),
            "identity_public_a": hex(alice.1.to_bytes()),
            "fingerprint_a": fingerprint_digits(&alice.0, &alice.1),
            "user_b": bob.0.as_str(),
            "identity_public_b": hex(bob.1.to_bytes()),
            "fingerprint_b": fingerprint_digits(&bob.0, &bob.1),
            "safety_number": number.digits(),
            "display": number.to_string(),
        }),
    }
}

/// One user's half, computed from the spec text alone.
fn half(user: &str, key: &[u8]) -> String {
    let label = b"sotto/v1/safety-number";
    let mut d = Sha512::new();
    d.update([label.len() as u8]);
    d.update(label);
    d.update(key);
    d.update([user.len() as u8]);
    d.update(user.as_bytes());
    let mut digest = d.finalize();
    for _ in 1..5200 {
        let mut h = Sha512::new();
        h.update(digest);
        h.update(key);
        digest = h.finalize();
    }
    digest[..30]
        .chunks(5)
        .map(|c| {
            format!(
                "{:05}",
                c.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)) % 100_000
            )
        })
        .collect()
}

fn check_safety(v: &Value) -> Result<(), String> {
    let (ua, ub) = (text(v, "user_a")?, text(v, "user_b")?);
    let (ka, kb) = (
        unhex(v, "identity_public_a")?,
        unhex(v, "identity_public_b")?,
    );
    let (ha, hb) = (half(ua, &ka), half(ub, &kb));
    ensure(ha == text(v, "fingerprint_a")?, "fingerprint a")?;
    ensure(hb == text(v, "fingerprint_b")?, "fingerprint b")?;
    let digits = if ha <= hb { ha + &hb } else { hb + &ha };
    ensure(digits == text(v, "safety_number")?, "safety number")?;
    let display: Vec<&str> = (0..12).map(|i| &digits[5 * i..5 * i + 5]).collect();
    ensure(display.join(" ") == text(v, "display")?, "display")?;

    let key = |k: &[u8]| -> Result<IdentityPublicKey, String> {
        IdentityPublicKey::from_bytes(k.try_into().map_err(|_| "key length")?)
            .map_err(|e| e.to_string())
    };
    let a = (UserId::new(ua).map_err(|e| e.to_string())?, key(&ka)?);
    let b = (UserId::new(ub).map_err(|e| e.to_string())?, key(&kb)?);
    let ab = SafetyNumber::compute((&a.0, &a.1), (&b.0, &b.1));
    let ba = SafetyNumber::compute((&b.0, &b.1), (&a.0, &a.1));
    ensure(
        ab == ba && ab.digits() == digits,
        "crate agrees, in both orders",
    )
}

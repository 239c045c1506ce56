//! Known-answer tests from the standards, run through the same crates sotto-crypto
//! builds on. The values live in `testdata/vectors/external/*.json`, each file naming
//! the exact document and section they were copied from.

use serde_json::Value;
use std::path::PathBuf;

fn load(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/vectors/external")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    assert!(
        json["source"].as_str().is_some_and(|s| !s.is_empty()),
        "{file} names no source"
    );
    json
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing hex field {field}"));
    hex::decode(s).unwrap_or_else(|e| panic!("field {field}: {e}"))
}

fn array32(v: &Value, field: &str) -> [u8; 32] {
    bytes(v, field)
        .try_into()
        .unwrap_or_else(|_| panic!("field {field} is not 32 bytes"))
}

fn number(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("missing number field {field}"))
}

fn list<'a>(v: &'a Value, field: &str) -> &'a Vec<Value> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("missing array field {field}"))
}

mod x25519 {
    use super::*;
    use x25519_dalek::{PublicKey, StaticSecret, x25519};

    const FILE: &str = "rfc7748-x25519.json";

    #[test]
    fn scalar_multiplication() {
        let v = load(FILE);
        let cases = list(&v, "scalar_mult");
        assert_eq!(cases.len(), 2);
        for case in cases {
            let out = x25519(array32(case, "scalar"), array32(case, "u"));
            assert_eq!(out, array32(case, "output"));
        }
    }

    /// Runs the §5.2 iteration `rounds` times from the base point.
    fn iterate(start: [u8; 32], rounds: u64) -> [u8; 32] {
        let (mut k, mut u) = (start, start);
        for _ in 0..rounds {
            let next = x25519(k, u);
            u = k;
            k = next;
        }
        k
    }

    fn expected_after(v: &Value, rounds: u64) -> [u8; 32] {
        let after = list(&v["iterated"], "after");
        let entry = after
            .iter()
            .find(|e| number(e, "iterations") == rounds)
            .unwrap();
        array32(entry, "k")
    }

    #[test]
    fn iterated_once_and_a_thousand_times() {
        let v = load(FILE);
        let start = array32(&v["iterated"], "start");
        let once = iterate(start, 1);
        assert_eq!(once, expected_after(&v, 1));
        assert_eq!(iterate(start, 1000), expected_after(&v, 1000));
    }

    /// The million-round value is in the file, but a million scalar multiplications take
    /// about two minutes on the development machine; run it on demand with `--ignored`.
    #[test]
    #[ignore = "a million X25519 operations; run with --ignored"]
    fn iterated_a_million_times() {
        let v = load(FILE);
        let start = array32(&v["iterated"], "start");
        assert_eq!(iterate(start, 1_000_000), expected_after(&v, 1_000_000));
    }

    #[test]
    fn diffie_hellman() {
        let v = &load(FILE)["diffie_hellman"];
        let alice = StaticSecret::from(array32(v, "alice_private"));
        let bob = StaticSecret::from(array32(v, "bob_private"));
        let alice_public = PublicKey::from(&alice);
        let bob_public = PublicKey::from(&bob);
        assert_eq!(alice_public.to_bytes(), array32(v, "alice_public"));
        assert_eq!(bob_public.to_bytes(), array32(v, "bob_public"));
        let shared = array32(v, "shared_secret");
        assert_eq!(alice.diffie_hellman(&bob_public).to_bytes(), shared);
        assert_eq!(bob.diffie_hellman(&alice_public).to_bytes(), shared);
    }
}

mod ed25519 {
    use super::*;
    use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

    #[test]
    fn rfc8032_section_7_1() {
        let v = load("rfc8032-ed25519.json");
        let tests = list(&v, "tests");
        let names: Vec<&str> = tests.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["TEST 1", "TEST 2", "TEST 3", "TEST 1024", "TEST SHA(abc)"]
        );
        for t in tests {
            let name = t["name"].as_str().unwrap();
            let key = SigningKey::from_bytes(&array32(t, "secret_key"));
            let public = key.verifying_key();
            assert_eq!(
                public.to_bytes(),
                array32(t, "public_key"),
                "{name}: public key"
            );
            // The published public key parses on its own, too.
            let parsed = VerifyingKey::from_bytes(&array32(t, "public_key")).unwrap();
            assert_eq!(parsed, public, "{name}");

            let message = bytes(t, "message");
            let expected: [u8; 64] = bytes(t, "signature").try_into().unwrap();
            let signature = key.sign(&message);
            assert_eq!(signature.to_bytes(), expected, "{name}: signature");
            parsed
                .verify_strict(&message, &Signature::from_bytes(&expected))
                .unwrap();

            // A changed message, or a changed signature (in R and in S), is refused.
            let mut other = message.clone();
            match other.first_mut() {
                Some(b) => *b ^= 0x01,
                None => other.push(0x00),
            }
            assert!(
                parsed.verify_strict(&other, &signature).is_err(),
                "{name}: other message"
            );
            for i in [0, 32, 63] {
                let mut bad = expected;
                bad[i] ^= 0x01;
                assert!(
                    parsed
                        .verify_strict(&message, &Signature::from_bytes(&bad))
                        .is_err(),
                    "{name}: flipped signature byte {i}"
                );
            }
        }
    }
}

mod hkdf_sha256 {
    use super::*;
    use hkdf::Hkdf;
    use sha2::Sha256;

    #[test]
    fn rfc5869_appendix_a() {
        let v = load("rfc5869-hkdf-sha256.json");
        let tests = list(&v, "tests");
        assert_eq!(tests.len(), 3);
        for t in tests {
            let name = t["name"].as_str().unwrap();
            let (ikm, salt, info) = (bytes(t, "ikm"), bytes(t, "salt"), bytes(t, "info"));
            let (prk, hk) = Hkdf::<Sha256>::extract(Some(&salt), &ikm);
            assert_eq!(prk.as_slice(), bytes(t, "prk").as_slice(), "{name}: PRK");
            let mut okm = vec![0u8; usize::try_from(number(t, "length")).unwrap()];
            hk.expand(&info, &mut okm).unwrap();
            assert_eq!(okm, bytes(t, "okm"), "{name}: OKM");
            // Expanding from the published PRK gives the same OKM.
            let mut again = vec![0u8; okm.len()];
            Hkdf::<Sha256>::from_prk(&bytes(t, "prk"))
                .unwrap()
                .expand(&info, &mut again)
                .unwrap();
            assert_eq!(again, okm, "{name}: OKM from PRK");
        }
    }
}

mod argon2id {
    use super::*;
    use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};

    #[test]
    fn rfc9106_section_5_3() {
        let v = load("rfc9106-argon2id.json");
        assert_eq!(number(&v, "version"), 0x13);
        let cost = |f| u32::try_from(number(&v, f)).unwrap();
        let tag_len = usize::try_from(number(&v, "tag_length")).unwrap();
        let secret = bytes(&v, "secret");
        let params = ParamsBuilder::new()
            .m_cost(cost("m_cost"))
            .t_cost(cost("t_cost"))
            .p_cost(cost("p_cost"))
            .output_len(tag_len)
            .data(AssociatedData::new(&bytes(&v, "associated_data")).unwrap())
            .build()
            .unwrap();
        let argon =
            Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params).unwrap();
        let mut tag = vec![0u8; tag_len];
        argon
            .hash_password_into(&bytes(&v, "password"), &bytes(&v, "salt"), &mut tag)
            .unwrap();
        assert_eq!(tag, bytes(&v, "tag"));
    }
}

mod hpke_base {
    use super::*;
    use hpke::aead::AesGcm256;
    use hpke::kdf::HkdfSha256;
    use hpke::kem::X25519HkdfSha256;
    use hpke::rand_core::{Infallible, TryCryptoRng, TryRng};
    use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};

    const FILE: &str = "rfc9180-hpke-x25519-sha256-aes256gcm.json";

    /// Hands out fixed bytes, once. `gen_keypair_with_rng` draws exactly Nsk = 32 bytes
    /// and runs DeriveKeyPair on them, so feeding ikmE reproduces the vector's ephemeral.
    struct Fixed(Vec<u8>);

    impl TryRng for Fixed {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            unreachable!("only fill_bytes is used")
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            unreachable!("only fill_bytes is used")
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            assert!(
                dst.len() <= self.0.len(),
                "asked for more bytes than the vector holds"
            );
            let rest = self.0.split_off(dst.len());
            dst.copy_from_slice(&self.0);
            self.0 = rest;
            Ok(())
        }
    }

    impl TryCryptoRng for Fixed {}

    #[test]
    fn suite_is_the_one_sotto_uses() {
        let v = load(FILE);
        assert_eq!(number(&v, "mode"), 0);
        assert_eq!(number(&v, "kem_id"), u64::from(X25519HkdfSha256::KEM_ID));
        assert_eq!(
            number(&v, "kdf_id"),
            u64::from(<HkdfSha256 as hpke::kdf::Kdf>::KDF_ID)
        );
        assert_eq!(
            number(&v, "aead_id"),
            u64::from(<AesGcm256 as hpke::aead::Aead>::AEAD_ID)
        );
        assert_eq!(X25519HkdfSha256::KEM_ID, 0x0020);
    }

    /// RFC 7748 §5 clamping. The vectors print X25519 private keys unclamped; the hpke
    /// crate serializes them clamped. Both are the same key (X25519 clamps before use).
    fn clamped(mut sk: [u8; 32]) -> [u8; 32] {
        sk[0] &= 248;
        sk[31] &= 127;
        sk[31] |= 64;
        sk
    }

    #[test]
    fn keys_derive_from_ikm() {
        let v = load(FILE);
        for (ikm, sk, pk) in [("ikmR", "skRm", "pkRm"), ("ikmE", "skEm", "pkEm")] {
            let (derived_sk, derived_pk) = X25519HkdfSha256::derive_keypair(&bytes(&v, ikm));
            assert_eq!(
                derived_sk.to_bytes().as_slice(),
                clamped(array32(&v, sk)).as_slice(),
                "{sk}"
            );
            assert_eq!(
                derived_pk.to_bytes().as_slice(),
                bytes(&v, pk).as_slice(),
                "{pk}"
            );
            // The printed (unclamped) private key is accepted and gives the printed public key.
            let parsed = <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(&bytes(&v, sk)).unwrap();
            let public = X25519HkdfSha256::sk_to_pk(&parsed);
            assert_eq!(
                public.to_bytes().as_slice(),
                bytes(&v, pk).as_slice(),
                "{pk} from {sk}"
            );
        }
        assert_eq!(bytes(&v, "enc"), bytes(&v, "pkEm"));
    }

    #[test]
    fn sender_and_receiver_reproduce_every_encryption_and_export() {
        let v = load(FILE);
        let info = bytes(&v, "info");
        let (sk_r, pk_r) = X25519HkdfSha256::derive_keypair(&bytes(&v, "ikmR"));

        let mut rng = Fixed(bytes(&v, "ikmE"));
        let (enc, mut sender) = hpke::setup_sender_with_rng::<
            AesGcm256,
            HkdfSha256,
            X25519HkdfSha256,
        >(&OpModeS::Base, &pk_r, &info, &mut rng)
        .unwrap();
        assert!(rng.0.is_empty(), "the sender drew exactly ikmE");
        assert_eq!(enc.to_bytes().as_slice(), bytes(&v, "enc").as_slice());

        let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&bytes(&v, "enc")).unwrap();
        let mut receiver = hpke::setup_receiver::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &sk_r,
            &enc,
            &info,
        )
        .unwrap();

        let encryptions = list(&v, "encryptions");
        assert_eq!(encryptions.len(), 257);
        for (i, e) in encryptions.iter().enumerate() {
            assert_eq!(
                number(e, "seq"),
                i as u64,
                "encryptions are listed in sequence order"
            );
            let (pt, aad, ct) = (bytes(e, "pt"), bytes(e, "aad"), bytes(e, "ct"));
            assert_eq!(sender.seal(&pt, &aad).unwrap(), ct, "seal at seq {i}");
            // A tampered ciphertext is refused without advancing the sequence number.
            let mut bad = ct.clone();
            bad[0] ^= 0x01;
            assert!(receiver.open(&bad, &aad).is_err(), "tampered ct at seq {i}");
            assert_eq!(receiver.open(&ct, &aad).unwrap(), pt, "open at seq {i}");
        }

        let exports = list(&v, "exports");
        assert_eq!(exports.len(), 3);
        for x in exports {
            let context = bytes(x, "exporter_context");
            let expected = bytes(x, "exported_value");
            assert_eq!(number(x, "L"), expected.len() as u64);
            let mut from_sender = vec![0u8; expected.len()];
            sender.export(&context, &mut from_sender).unwrap();
            let mut from_receiver = vec![0u8; expected.len()];
            receiver.export(&context, &mut from_receiver).unwrap();
            assert_eq!(from_sender, expected);
            assert_eq!(from_receiver, expected);
        }
    }
}

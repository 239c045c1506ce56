//! The user key bundle.

use super::{Vector, UNKNOWN, ensure, hex, rng, text, unhex};
use serde_json::{Value, json};
use sotto_crypto::{IdentityKeys, PublicBundle, UserId};

const FILE: &str = "bundle.json";

pub fn generate() -> Vec<Vector> {
    let keys = IdentityKeys::generate(&mut rng("sotto vectors: bundle"));
    let user = UserId::new("u.alice").expect("valid id");
    let bundle = keys.bundle(&user);
    vec![Vector {
        file: FILE,
        json: json!({
            "description": "A user's private keys and the signed public bundle they make (protocol.md, User keys).",
            "user_id": user.as_str(),
            "private_keys": hex(keys.to_bytes().as_slice()),
            "identity_public": hex(keys.identity_public().to_bytes()),
            "agreement_public": hex(keys.agreement_public()),
            "bundle": hex(bundle.encode()),
        }),
    }]
}

pub fn check(file: &str, v: &Value) -> Result<(), String> {
    if file != FILE {
        return Err(UNKNOWN.into());
    }
    let keys = IdentityKeys::from_bytes(&unhex(v, "private_keys")?).map_err(|e| e.to_string())?;
    let bundle = PublicBundle::decode(&unhex(v, "bundle")?).map_err(|e| e.to_string())?;
    ensure(bundle.user().as_str() == text(v, "user_id")?, "bundle user id")?;
    ensure(keys.matches(&bundle), "private keys match the bundle")?;
    ensure(bundle.identity().to_bytes().to_vec() == unhex(v, "identity_public")?, "identity key")?;
    ensure(bundle.agreement().to_vec() == unhex(v, "agreement_public")?, "agreement key")?;
    // Ed25519 signatures are deterministic, so signing again gives the same bytes.
    ensure(keys.bundle(bundle.user()).encode() == unhex(v, "bundle")?, "bundle re-encodes")
}

//! Bearer tokens and ids. A token is 32 bytes from the OS, base64url without padding;
//! the server keeps only its SHA-256, so a database leak does not leak live tokens.

use super::ServiceError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A new token and the hash to store.
pub fn new_token() -> Result<(String, String), ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServiceError::Internal(format!("OS random: {e}")))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    Ok((token, hash))
}

/// Hex SHA-256 of a presented token.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A random id: 16 bytes as 32 lowercase hex digits, inside the protocol's id alphabet.
pub fn new_id() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ServiceError::Internal(format!("OS random: {e}")))?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_base64url_and_hash_to_sha256_hex() {
        let (t1, h1) = new_token().unwrap();
        let (t2, _) = new_token().unwrap();
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 43);
        assert!(
            t1.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(h1, hash_token(&t1));
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ids_are_valid_protocol_user_ids() {
        let id = new_id().unwrap();
        assert!(sotto_crypto::ids::UserId::new(id.clone()).is_ok(), "{id}");
        assert_ne!(id, new_id().unwrap());
    }
}

//! E2EE user keys: the key directory (public bundles), key backups and key resets. Keys
//! travel as standard base64 (with padding) of their encodings in docs/protocol.md §2
//! and §3.3.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Most users one `GET /api/v1/keys` may name.
pub const KEYS_MAX_USERS: usize = 100;

/// `POST /api/v1/me/keys`: publish one's keys (first time, or after a reset).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishKeysRequest {
    /// The public bundle (protocol §2), self-signed, for the caller's user id.
    pub bundle: String,
    /// The key backup (protocol §3.3), KDF parameters within the floor and ceiling.
    pub backup: String,
}

/// `PUT /api/v1/me/keys/backup`: replace one's backup (a change of encryption
/// password); the keys stay the same. A bearer token alone is not enough: the identity
/// key must sign the replacement.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceBackupRequest {
    /// The caller's current public bundle, exactly as published: the backup is replaced
    /// only while it is still the published one.
    pub bundle: String,
    /// The new key backup.
    pub backup: String,
    /// The identity key's Ed25519 signature (protocol §3.5) over the new backup and the
    /// SHA-256 of the stored backup it replaces, base64 of 64 bytes. It verifies only
    /// while that backup is still the stored one, so it cannot be replayed.
    pub signature: String,
}

/// `POST /api/v1/me/keys/reset`: remove one's own keys.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetOwnKeysRequest {
    /// The caller's login password (not the encryption password).
    pub password: String,
}

/// A user's published public bundle.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct KeyBundle {
    /// The owner.
    pub user_id: String,
    /// The bundle (protocol §2), base64. Clients verify it and compare its identity key
    /// with the one they pinned.
    pub bundle: String,
    /// When it was published.
    pub published_at: i64,
}

/// `GET /api/v1/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeysQuery {
    /// Comma-separated user ids, 1 to 100.
    pub user_ids: String,
}

/// The bundles of those of the asked users who have published one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct KeyBundleList {
    /// One per user with keys, in the order asked; users without keys are left out.
    pub bundles: Vec<KeyBundle>,
}

/// `GET /api/v1/me/keys/backup`: the caller's key backup.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct StoredKeyBackup {
    /// The backup (protocol §3.3), base64.
    pub backup: String,
    /// When it was last stored.
    pub updated_at: i64,
}

/// `GET /api/v1/me/keys`: whether the caller has keys, so a client knows whether to set
/// them up or unlock them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct MyKeys {
    /// The caller has a published bundle (and a backup).
    pub published: bool,
    /// The bundle, when published.
    pub bundle: Option<KeyBundle>,
}

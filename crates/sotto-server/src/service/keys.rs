//! E2EE user keys (E1, E2, E10, E11): the key directory, key backups and key resets.
//!
//! The server only checks what is public: a bundle must decode, carry a valid identity
//! key and self-signature, and name the caller; a backup must decode and carry KDF
//! parameters within the protocol's floor and ceiling (docs/protocol.md §2, §3). It
//! cannot open a backup, and never sees a private key or an encryption password.
//! Every change of a user's keys is told to the user and to everyone who shares a room
//! with them, so their clients fetch the new bundle and check it against their pins.

use super::rate_limit::RateLimiter;
use super::rooms::RoomService;
use super::settings::SettingsService;
use super::{Actor, Principal, ServiceError, now_ms, password};
use crate::bus::{Bus, BusEvent, KeysChange};
use crate::store::{KeyRecord, KeyStore, SessionKind, SessionStore, UserStore};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sotto_api::{
    KEYS_MAX_USERS, KeyBundle, KeyBundleList, MyKeys, PublishKeysRequest, ReplaceBackupRequest,
    StoredKeyBackup,
};
use sotto_crypto::identity::SIGNATURE_LEN;
use sotto_crypto::{BackupError, BundleError, KeyBackup, PublicBundle};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest base64 field accepted: both encodings are well under 256 bytes.
const MAX_KEY_FIELD: usize = 1024;

/// Keys of users, over the key, user, session and room stores.
pub struct KeyService {
    keys: Arc<dyn KeyStore>,
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    /// The room side of key changes (room keys, rotation, key requests), and room peers.
    room_keys: Arc<RoomService>,
    settings: Arc<SettingsService>,
    bus: Arc<dyn Bus>,
    /// Wrong login passwords on an own reset, per user: a stolen token must not become
    /// a way to guess the password.
    reset_attempts: RateLimiter,
}

/// Who resets a user's keys.
enum Resetter {
    /// The user, having given their login password.
    Own,
    /// An admin (or the operator): the user's login sessions end as well.
    Admin,
}

impl KeyService {
    /// Over the stores, the settings (for `e2e.enabled`) and the bus (for notices).
    pub fn new(
        keys: Arc<dyn KeyStore>,
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        room_keys: Arc<RoomService>,
        settings: Arc<SettingsService>,
        bus: Arc<dyn Bus>,
    ) -> Self {
        Self {
            keys,
            users,
            sessions,
            room_keys,
            settings,
            bus,
            reset_attempts: RateLimiter::new(10, Duration::from_secs(30), 100_000),
        }
    }

    /// Publishes the caller's first keys (or their first after a reset): the bundle and
    /// its backup, together.
    pub async fn publish(
        &self,
        actor: &Actor,
        req: PublishKeysRequest,
    ) -> Result<KeyBundle, ServiceError> {
        let p = user(actor)?;
        if !self.settings.get(actor).await?.e2e_enabled {
            return Err(ServiceError::Forbidden(
                "end-to-end encryption is turned off in this workspace (setting e2e.enabled)",
            ));
        }
        let bundle = checked_bundle(&req.bundle, &p.user.id)?;
        let (backup, _) = checked_backup(&req.backup)?;
        let at = now_ms();
        if !self
            .keys
            .publish_keys(&p.user.id, &bundle, &backup, at)
            .await?
        {
            return Err(ServiceError::Conflict(
                "you have published keys already; reset them first to publish new ones".into(),
            ));
        }
        tracing::info!(user_id = %p.user.id, "keys published");
        self.tell_keys_changed(&p.user.id).await;
        // The keys are stored: a failure to ask for room keys now is logged, and the user's
        // clients ask again when they read their room keys.
        if let Err(e) = self.room_keys.keys_published(&p.user.id).await {
            tracing::warn!(error = %e, "asking for the new member's room keys failed");
        }
        Ok(KeyBundle {
            user_id: p.user.id.clone(),
            bundle: STANDARD.encode(&bundle),
            published_at: at,
        })
    }

    /// Whether the caller has keys, with their bundle.
    pub async fn mine(&self, actor: &Actor) -> Result<MyKeys, ServiceError> {
        let p = user(actor)?;
        let bundle = self.keys.bundle(&p.user.id).await?.map(bundle_view);
        Ok(MyKeys {
            published: bundle.is_some(),
            bundle,
        })
    }

    /// A user's bundle; `not_found` when they have none (or do not exist).
    pub async fn bundle(&self, actor: &Actor, user_id: &str) -> Result<KeyBundle, ServiceError> {
        user(actor)?;
        self.keys
            .bundle(user_id)
            .await?
            .map(bundle_view)
            .ok_or(ServiceError::NotFound("key bundle"))
    }

    /// The bundles of several users (comma-separated ids, 1 to [`KEYS_MAX_USERS`]).
    pub async fn bundles(
        &self,
        actor: &Actor,
        user_ids: &str,
    ) -> Result<KeyBundleList, ServiceError> {
        user(actor)?;
        let mut seen = BTreeSet::new();
        let ids: Vec<String> = user_ids
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .filter(|id| seen.insert(*id))
            .map(str::to_owned)
            .collect();
        if ids.is_empty() || ids.len() > KEYS_MAX_USERS {
            return Err(ServiceError::InvalidInput(format!(
                "user_ids: 1 to {KEYS_MAX_USERS} comma-separated user ids"
            )));
        }
        if ids.iter().any(|id| id.len() > 64) {
            return Err(ServiceError::InvalidInput(
                "user_ids: an id is longer than 64 bytes".into(),
            ));
        }
        Ok(KeyBundleList {
            bundles: self
                .keys
                .bundles(&ids)
                .await?
                .into_iter()
                .map(bundle_view)
                .collect(),
        })
    }

    /// The caller's own backup; nobody else's is ever served.
    pub async fn backup(&self, actor: &Actor) -> Result<StoredKeyBackup, ServiceError> {
        let p = user(actor)?;
        let r = self
            .keys
            .backup(&p.user.id)
            .await?
            .ok_or(ServiceError::NotFound("key backup"))?;
        Ok(StoredKeyBackup {
            backup: STANDARD.encode(&r.bytes),
            updated_at: r.at,
        })
    }

    /// Replaces the caller's backup (E10, a new encryption password), only with the
    /// identity key's signature over the new backup and the stored one it replaces
    /// (protocol §3.5), only while `req.bundle` is still their published bundle and that
    /// backup still the stored one, and never with weaker KDF parameters. A bearer token
    /// alone (a bot's, a stolen one) cannot replace a backup.
    pub async fn replace_backup(
        &self,
        actor: &Actor,
        req: ReplaceBackupRequest,
    ) -> Result<StoredKeyBackup, ServiceError> {
        let p = user(actor)?;
        let bundle_bytes = decode_field("bundle", &req.bundle)?;
        let (backup_bytes, backup) = checked_backup(&req.backup)?;
        let signature = decode_signature(&req.signature)?;
        let published = self
            .keys
            .bundle(&p.user.id)
            .await?
            .ok_or(ServiceError::NotFound("key backup"))?;
        if published.bytes != bundle_bytes {
            return Err(bundle_not_published());
        }
        // Checked when it was published.
        let bundle = PublicBundle::decode(&published.bytes)
            .map_err(|e| ServiceError::Internal(format!("stored key bundle: {e}")))?;
        let current = self
            .keys
            .backup(&p.user.id)
            .await?
            .ok_or(ServiceError::NotFound("key backup"))?;
        // Stored backups were checked on the way in; one that no longer decodes (a
        // newer format) sets no floor.
        if let Ok(old) = KeyBackup::decode(&current.bytes)
            && !backup.params().at_least(&old.params())
        {
            return Err(ServiceError::InvalidInput(
                "backup: KDF parameters weaker than those of the current backup".into(),
            ));
        }
        if backup
            .verify_replacement(&bundle, &current.bytes, &signature)
            .is_err()
        {
            return Err(ServiceError::InvalidSignature(
                "signature: not your identity key's signature over this backup replacing \
                 the stored one (a backup that has changed since cannot be replaced with it)",
            ));
        }
        let at = now_ms();
        // The signature was checked against this bundle and this current backup; the
        // store writes only while both are still what is stored.
        if !self
            .keys
            .replace_backup(&p.user.id, &bundle_bytes, &current.bytes, &backup_bytes, at)
            .await?
        {
            return Err(ServiceError::Conflict(
                "the keys or the key backup changed meanwhile; fetch them and sign again".into(),
            ));
        }
        tracing::info!(user_id = %p.user.id, "key backup replaced");
        Ok(StoredKeyBackup {
            backup: STANDARD.encode(&backup_bytes),
            updated_at: at,
        })
    }

    /// E10/E11: the caller resets their own keys, proving it with their login password.
    /// The caller's sessions stay; they may publish new keys right away.
    pub async fn reset_own(
        &self,
        actor: &Actor,
        login_password: String,
    ) -> Result<(), ServiceError> {
        let p = user(actor)?;
        self.reset_attempts
            .check(&p.user.id, Instant::now())
            .map_err(|wait| ServiceError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            })?;
        let matches = login_password.len() <= *super::validate::PASSWORD_LEN.end()
            && password::verify(login_password, p.user.password_hash.clone()).await?;
        if !matches {
            self.reset_attempts.consume(&p.user.id, Instant::now());
            return Err(ServiceError::InvalidCredentials);
        }
        self.reset_keys(&p.user.id, Resetter::Own).await?;
        Ok(())
    }

    /// E11: an admin resets a user's keys (the user lost their encryption password); the
    /// user's login sessions end, so every client of theirs starts over with new keys.
    pub async fn reset_by_admin(&self, actor: &Actor, user_id: &str) -> Result<(), ServiceError> {
        actor.require_admin()?;
        if self.users.user_by_id(user_id).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        self.reset_keys(user_id, Resetter::Admin).await?;
        Ok(())
    }

    /// The one reset of what this service owns: removes the user's bundle and backup,
    /// ends their login sessions on an admin reset, and tells the user and their room
    /// peers. Idempotent: a user without keys is reset again harmlessly. Answers whether
    /// there were keys to remove.
    ///
    /// The room side of a reset (dropping the user's sealed room keys, marking their
    /// encrypted rooms for rotation, queueing them for keys) belongs right after the
    /// removal, before the notice.
    async fn reset_keys(&self, user_id: &str, by: Resetter) -> Result<bool, ServiceError> {
        let removed = self.keys.remove_keys(user_id).await?;
        if removed {
            // Their sealed room keys go too, and their encrypted rooms need a new epoch.
            self.room_keys.reset_user_room_keys(user_id).await?;
        }
        if let Resetter::Admin = by {
            self.sessions
                .delete_sessions_of_user(user_id, Some(SessionKind::Login))
                .await?;
        }
        let by = match by {
            Resetter::Own => "own",
            Resetter::Admin => "admin",
        };
        tracing::info!(user_id, by, removed, "keys reset");
        if removed {
            self.tell_keys_changed(user_id).await;
        }
        Ok(removed)
    }

    /// Publishes a `keys_changed` notice for the user and their current room peers. A
    /// failure to compute the audience is logged, not returned: the change is committed,
    /// and clients also check bundles against their pins when they fetch them.
    async fn tell_keys_changed(&self, user_id: &str) {
        match self.room_keys.store().room_peers(user_id).await {
            Ok(peers) => {
                let mut audience: BTreeSet<String> = peers.into_iter().collect();
                audience.insert(user_id.to_owned());
                self.bus.publish(BusEvent::KeysChanged(KeysChange {
                    user_id: user_id.to_owned(),
                    audience: Arc::new(audience),
                }));
            }
            Err(e) => tracing::warn!(error = %e, "key change audience query failed"),
        }
    }
}

fn user(actor: &Actor) -> Result<&Principal, ServiceError> {
    match actor {
        Actor::User(p) => Ok(p),
        Actor::Operator => Err(ServiceError::Forbidden("keys belong to users")),
    }
}

fn bundle_view(r: KeyRecord) -> KeyBundle {
    KeyBundle {
        user_id: r.user_id,
        bundle: STANDARD.encode(&r.bytes),
        published_at: r.at,
    }
}

fn decode_field(name: &str, text: &str) -> Result<Vec<u8>, ServiceError> {
    if text.len() > MAX_KEY_FIELD {
        return Err(ServiceError::InvalidInput(format!(
            "{name}: longer than {MAX_KEY_FIELD} bytes of base64"
        )));
    }
    STANDARD
        .decode(text)
        .map_err(|_| ServiceError::InvalidInput(format!("{name}: not standard base64")))
}

fn bundle_not_published() -> ServiceError {
    ServiceError::Conflict(
        "bundle: not your published bundle; your keys were reset or replaced".into(),
    )
}

/// The 64 bytes of an Ed25519 signature field.
fn decode_signature(text: &str) -> Result<[u8; SIGNATURE_LEN], ServiceError> {
    decode_field("signature", text)?
        .try_into()
        .map_err(|_| ServiceError::InvalidInput("signature: not 64 bytes".into()))
}

/// The bundle's bytes, if it is well-formed, self-signed and the caller's.
fn checked_bundle(text: &str, user_id: &str) -> Result<Vec<u8>, ServiceError> {
    let bytes = decode_field("bundle", text)?;
    let bundle = PublicBundle::decode(&bytes).map_err(|e| {
        ServiceError::InvalidInput(match e {
            BundleError::Decode(_) => "bundle: not a well-formed key bundle".into(),
            BundleError::InvalidIdentityKey => "bundle: invalid identity key".into(),
            BundleError::BadSignature => "bundle: the signature is not valid".into(),
        })
    })?;
    if bundle.user().as_str() != user_id {
        return Err(ServiceError::InvalidInput(
            "bundle: made for another user id than yours".into(),
        ));
    }
    Ok(bytes)
}

/// The backup's bytes and the backup, if it is well-formed with KDF parameters within
/// floor and ceiling.
fn checked_backup(text: &str) -> Result<(Vec<u8>, KeyBackup), ServiceError> {
    let bytes = decode_field("backup", text)?;
    let backup = KeyBackup::decode(&bytes)
        .map_err(|_| ServiceError::InvalidInput("backup: not a well-formed key backup".into()))?;
    backup.params().check().map_err(|e| {
        ServiceError::InvalidInput(match e {
            BackupError::ParamsAboveCeiling => {
                "backup: KDF parameters above the maximum (protocol §3.2)".into()
            }
            _ => "backup: KDF parameters below the minimum (protocol §3.2)".into(),
        })
    })?;
    Ok((bytes, backup))
}

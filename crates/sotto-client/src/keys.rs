//! The user's encryption keys (E2, E3, E10, E11) and contacts' keys (B4): setting up,
//! unlocking, changing the encryption password, resetting; fetching others' bundles and
//! checking them against the pinned identity keys; safety numbers.

use crate::api::seg;
use crate::client::{Client, base64, decode_bundle, unbase64};
use crate::error::{Error, Result};
use reqwest::Method;
use sotto_api::keys::{
    KeyBundle, KeyBundleList, MyKeys, PublishKeysRequest, ReplaceBackupRequest,
    ResetOwnKeysRequest, StoredKeyBackup,
};
use sotto_crypto::{
    EncryptionPassword, IdentityKeys, KdfParams, KeyBackup, Observation, PinState, PublicBundle,
    SafetyNumber, UserId, os_rng,
};
use std::sync::Arc;

/// Where the user's keys stand (`sotto e2e status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The server has a bundle for the user.
    pub published: bool,
    /// This profile holds the unlocked private keys.
    pub unlocked: bool,
    /// The unlocked keys are not the published ones (reset elsewhere): set up again.
    pub stale: bool,
    /// The user's own safety fingerprint digits, when published.
    pub fingerprint: Option<String>,
}

/// A contact's bundle that matched their pinned identity key.
#[derive(Debug, Clone)]
pub struct Contact {
    /// The checked bundle.
    pub bundle: PublicBundle,
    /// Whether the users compared safety numbers over this key.
    pub verified: bool,
}

/// What `sotto verify USER` shows.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The safety number of this user and the contact, over the pinned key.
    pub safety_number: SafetyNumber,
    /// Whether the pinned key is marked verified.
    pub verified: bool,
    /// A changed key waiting to be accepted, with the safety number it would give.
    pub pending_change: Option<SafetyNumber>,
}

impl Client {
    /// Whether keys are published and unlocked here.
    pub async fn e2e_status(&self) -> Result<KeyStatus> {
        let mine: MyKeys = self.api().get("/api/v1/me/keys").await?;
        let published = match &mine.bundle {
            Some(b) => Some(decode_bundle(self.user_id(), &b.bundle)?),
            None => None,
        };
        let keys = self.state().keys.clone();
        Ok(KeyStatus {
            published: published.is_some(),
            unlocked: keys.is_some(),
            stale: matches!((&keys, &published), (Some(k), Some(b)) if !k.matches(b))
                || (keys.is_some() && published.is_none()),
            fingerprint: published
                .map(|b| sotto_crypto::safety::fingerprint_digits(self.user_id(), b.identity())),
        })
    }

    /// Makes the user's keys and a random encryption password, publishes the bundle and
    /// the backup sealed under the password, and keeps the keys unlocked here. The
    /// password is returned once, to be shown to the user; it is stored nowhere.
    pub async fn e2e_setup(&self) -> Result<EncryptionPassword> {
        let mine: MyKeys = self.api().get("/api/v1/me/keys").await?;
        if mine.published {
            return Err(Error::Invalid(
                "encryption keys exist already: unlock them with `sotto e2e unlock`, or reset them with `sotto e2e reset`".into(),
            ));
        }
        let user = self.user_id().clone();
        let (keys, password, backup) = tokio::task::spawn_blocking(move || {
            let mut rng = os_rng();
            let keys = IdentityKeys::generate(&mut rng);
            let password = EncryptionPassword::generate(&mut rng);
            let backup = KeyBackup::create(&keys, &user, &password, KdfParams::DEFAULT, &mut rng);
            backup.map(|b| (keys, password, b))
        })
        .await
        .map_err(|e| Error::Invalid(format!("key generation failed: {e}")))??;
        let bundle = keys.bundle(self.user_id());
        // The key this profile pinned for its own user before a reset, if any.
        let former = self
            .pinned_key(self.user_id())
            .filter(|k| *k != keys.identity_public());
        let req = PublishKeysRequest {
            bundle: base64(&bundle.encode()),
            backup: base64(&backup.encode()),
        };
        let _: KeyBundle = self
            .api()
            .send(Method::POST, "/api/v1/me/keys", &req)
            .await?;
        self.adopt(keys, &bundle, backup.params())?;
        if let Some(former) = former {
            // Devices that never pinned the former key verify what it signed through
            // this declaration (docs/protocol.md §3.5). The keys are set up whatever
            // happens here, and the password must still reach the user.
            let _ = self.declare_key_change(former).await;
        }
        Ok(password)
    }

    /// Unlocks the published keys with the encryption password on this profile.
    pub async fn e2e_unlock(&self, password: &str) -> Result<()> {
        let password = EncryptionPassword::from_user(password)
            .map_err(|_| Error::Invalid("the encryption password is empty".into()))?;
        let bundle = self.own_bundle().await?;
        let stored: StoredKeyBackup = self.api().get("/api/v1/me/keys/backup").await?;
        let backup = KeyBackup::decode(&unbase64("backup", &stored.backup)?)?;
        if let Some(accepted) = self.login_params()? {
            backup.params().ensure_at_least(&accepted)?;
        }
        let (user, expected, params) = (self.user_id().clone(), bundle.clone(), backup.params());
        let keys = tokio::task::spawn_blocking(move || backup.open(&password, &user, &expected))
            .await
            .map_err(|e| Error::Invalid(format!("unlocking failed: {e}")))??;
        self.adopt(keys, &bundle, params)
    }

    /// Changes the encryption password: the old one must open the current backup, which
    /// is then sealed again under the new one. Other devices keep working; they need the
    /// new password only to unlock again.
    pub async fn e2e_change_password(&self, old: &str, new: &str) -> Result<()> {
        let keys = self.keys()?;
        let old = EncryptionPassword::from_user(old)
            .map_err(|_| Error::Invalid("the current encryption password is empty".into()))?;
        let new = EncryptionPassword::from_user(new)
            .map_err(|_| Error::Invalid("the new encryption password is empty".into()))?;
        let bundle = self.own_bundle().await?;
        if !keys.matches(&bundle) {
            return Err(Error::Invalid(
                "the keys unlocked here are no longer the published ones: unlock again".into(),
            ));
        }
        let stored: StoredKeyBackup = self.api().get("/api/v1/me/keys/backup").await?;
        let current = unbase64("backup", &stored.backup)?;
        let backup = KeyBackup::decode(&current)?;
        let user = self.user_id().clone();
        let expected = bundle.clone();
        let params = backup.params().max_with(KdfParams::DEFAULT);
        let fresh = tokio::task::spawn_blocking(move || {
            let keys = backup.open(&old, &user, &expected)?;
            backup.rewrap(&keys, &user, &new, params, &mut os_rng())
        })
        .await
        .map_err(|e| Error::Invalid(format!("re-sealing failed: {e}")))??;
        // The identity key vouches for the new backup over the one it replaces
        // (protocol §3.5); the server refuses a replacement without it.
        let signature = fresh.sign_replacement(&keys, self.user_id(), &current);
        let req = ReplaceBackupRequest {
            bundle: base64(&bundle.encode()),
            backup: base64(&fresh.encode()),
            signature: base64(&signature),
        };
        self.api()
            .send_empty(Method::PUT, "/api/v1/me/keys/backup", Some(&req))
            .await?;
        self.remember_params(fresh.params())
    }

    /// Resets the user's own keys (E10) with the login password: the server forgets the
    /// bundle and backup, the keys are forgotten here, and rooms rotate their keys. Set
    /// up new keys afterwards.
    pub async fn e2e_reset(&self, login_password: &str) -> Result<()> {
        let req = ResetOwnKeysRequest {
            password: login_password.to_owned(),
        };
        self.api()
            .send_empty(Method::POST, "/api/v1/me/keys/reset", Some(&req))
            .await?;
        self.state().keys = None;
        self.profile().clear_keys()
    }

    /// `user`'s published bundle, checked against their pinned identity key (pinned now
    /// on first use). A changed key is [`Error::KeyChanged`] until accepted.
    pub async fn contact(&self, user: &UserId) -> Result<Contact> {
        let answer: KeyBundle = self
            .api()
            .get(&format!("/api/v1/users/{}/keys", seg(user.as_str())))
            .await?;
        self.check_contact(&answer)
    }

    /// The checked bundles of several users (up to 100; users without keys are left
    /// out). A changed key fails the whole call with [`Error::KeyChanged`].
    pub async fn contacts(&self, users: &[UserId]) -> Result<Vec<Contact>> {
        let users: Vec<&UserId> = users.iter().collect();
        self.published_bundles(&users)
            .await?
            .iter()
            .map(|b| self.check_contact(b))
            .collect()
    }

    /// The published bundles of `users` as the directory serves them (users without
    /// keys are left out), unchecked, in requests of at most 100 users.
    pub(crate) async fn published_bundles(&self, users: &[&UserId]) -> Result<Vec<KeyBundle>> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(sotto_api::keys::KEYS_MAX_USERS) {
            let ids: Vec<&str> = chunk.iter().map(|u| u.as_str()).collect();
            let list: KeyBundleList = self
                .api()
                .get_query("/api/v1/keys", &[("user_ids", ids.join(","))])
                .await?;
            if let Some(extra) = list
                .bundles
                .iter()
                .find(|b| !chunk.iter().any(|u| u.as_str() == b.user_id))
            {
                return Err(Error::protocol(format!(
                    "the server sent a bundle nobody asked for ({})",
                    extra.user_id
                )));
            }
            out.extend(list.bundles);
        }
        Ok(out)
    }

    pub(crate) fn check_contact(&self, answer: &KeyBundle) -> Result<Contact> {
        let user = UserId::new(answer.user_id.clone())
            .map_err(|_| Error::protocol("the server gave an invalid user id"))?;
        let bundle = decode_bundle(&user, &answer.bundle)?;
        match self.with_pins(|pins| pins.observe(&user, bundle.identity()))? {
            Observation::FirstUse => Ok(Contact {
                bundle,
                verified: false,
            }),
            Observation::Known { verified } => Ok(Contact { bundle, verified }),
            Observation::Changed { .. } => Err(Error::KeyChanged {
                user: user.to_string(),
            }),
        }
    }

    /// The users whose key changed and waits to be accepted; front ends show these on
    /// every command until accepted.
    pub fn pending_key_changes(&self) -> Vec<UserId> {
        let state = self.state();
        state
            .pins
            .iter()
            .filter(|(_, pin)| pin.pending.is_some())
            .map(|(user, _)| user.clone())
            .collect()
    }

    /// The safety number with `user` over their pinned key (fetched and pinned first if
    /// new), and any changed key waiting.
    pub async fn verification(&self, user: &UserId) -> Result<Verification> {
        match self.contact(user).await {
            Ok(_) | Err(Error::KeyChanged { .. }) => {}
            Err(e) => return Err(e),
        }
        let mine = self.keys()?.identity_public();
        let state = self.state();
        let pin = state
            .pins
            .get(user)
            .ok_or_else(|| Error::Invalid(format!("no key known for {user}")))?;
        let number = |key| SafetyNumber::compute((self.user_id(), &mine), (user, key));
        Ok(Verification {
            safety_number: number(&pin.key),
            verified: pin.state == PinState::Verified,
            pending_change: pin.pending.as_ref().map(number),
        })
    }

    /// Marks `user`'s pinned key verified, after the users compared safety numbers.
    pub async fn confirm_verified(&self, user: &UserId) -> Result<()> {
        let contact = self.contact(user).await?;
        self.with_pins(|pins| pins.mark_verified(user, contact.bundle.identity()))??;
        Ok(())
    }

    /// Accepts `user`'s changed key (the one shown by [`Client::verification`]); it is
    /// pinned, unverified.
    pub fn accept_key_change(&self, user: &UserId) -> Result<()> {
        self.with_pins(|pins| {
            let pending = pins
                .get(user)
                .and_then(|p| p.pending)
                .ok_or(sotto_crypto::PinError::NoPendingChange)?;
            pins.accept_change(user, &pending).map(drop)
        })?
        .map_err(Error::from)
    }

    /// The user's own published bundle, checked against the own pin.
    async fn own_bundle(&self) -> Result<PublicBundle> {
        let mine: MyKeys = self.api().get("/api/v1/me/keys").await?;
        let published = mine.bundle.ok_or(Error::NoKeys)?;
        Ok(self.check_contact(&published)?.bundle)
    }

    /// Keeps unlocked `keys` here: in memory, in the profile (mode 0600), their identity
    /// key pinned for the user, and the backup parameters as the accepted minimum.
    fn adopt(&self, keys: IdentityKeys, bundle: &PublicBundle, params: KdfParams) -> Result<()> {
        let user = self.user_id().clone();
        self.with_pins(|pins| {
            if let Observation::Changed { .. } = pins.observe(&user, bundle.identity()) {
                // The user made or unlocked these keys themselves: they replace the pin.
                let _ = pins.accept_change(&user, bundle.identity());
            }
        })?;
        self.profile().save_keys(&keys)?;
        self.state().keys = Some(Arc::new(keys));
        self.remember_params(params)
    }

    fn login_params(&self) -> Result<Option<KdfParams>> {
        Ok(self.profile().login()?.and_then(|l| l.accepted_params()))
    }

    fn remember_params(&self, params: KdfParams) -> Result<()> {
        let mut login = self.profile().login()?.ok_or(Error::NotLoggedIn)?;
        let strongest = match login.accepted_params() {
            Some(old) => old.max_with(params),
            None => params,
        };
        login.accepted_kdf = Some([strongest.m_kib, strongest.t, strongest.p]);
        self.profile().save_login(&login)
    }
}

/// Field-wise maximum of two parameter sets, so remembered parameters only go up.
trait MaxWith {
    fn max_with(self, other: Self) -> Self;
}

impl MaxWith for KdfParams {
    fn max_with(self, other: Self) -> Self {
        KdfParams {
            m_kib: self.m_kib.max(other.m_kib),
            t: self.t.max(other.t),
            p: self.p.max(other.p),
        }
    }
}

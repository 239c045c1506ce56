//! [`Client`]: one logged-in user on one profile. Cheap to clone; clones share the
//! state (unlocked keys, pins, seen message ids, room keys), so a background task that
//! follows the event stream and a front end can use the same client.

use crate::api::Api;
use crate::error::{Error, Result};
use crate::profile::{Login, Profile};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::Method;
use sotto_api::accounts::{LoginRequest, LoginResponse, User};
use sotto_crypto::{IdentityKeys, PinStore, PublicBundle, SeenMessages, UserId};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A logged-in user.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api,
    profile: Profile,
    user_id: UserId,
    username: String,
    state: Mutex<State>,
}

/// What the client keeps in memory; persisted parts are saved to the profile as they
/// change. Locked only for short, synchronous sections, never across an `await`.
pub(crate) struct State {
    /// The unlocked private keys, once `e2e setup` or `e2e unlock` ran on this profile.
    pub(crate) keys: Option<Arc<IdentityKeys>>,
    /// Contacts' pinned identity keys.
    pub(crate) pins: PinStore,
    /// Accepted message ids per room.
    pub(crate) seen: SeenMessages,
    /// A digest of each accepted envelope, so re-reading history is not a replay.
    pub(crate) accepted: crate::messages::Accepted,
    /// Room state chains verified so far (extended, not re-verified, as they grow).
    pub(crate) chains:
        std::collections::HashMap<sotto_crypto::RoomId, sotto_crypto::chain::RoomChain>,
    /// Opened room keys, per room and epoch; never written to disk.
    pub(crate) epoch_keys: std::collections::HashMap<
        sotto_crypto::RoomId,
        std::collections::HashMap<sotto_crypto::EpochId, sotto_crypto::EpochKey>,
    >,
    /// Contacts' identity keys that were pinned once and replaced by an accepted change.
    pub(crate) former: crate::chain::FormerKeys,
    /// User names seen in member lists, for showing senders.
    pub(crate) names: std::collections::HashMap<String, String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.api.server())
            .field("user_id", &self.inner.user_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Logs in with a password and stores the session in `profile`.
    pub async fn login(
        profile: Profile,
        server: &str,
        username: &str,
        password: &str,
    ) -> Result<Self> {
        let anonymous = Api::new(server)?;
        let req = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            session_name: Some(session_name()),
        };
        let answer: LoginResponse = anonymous.send(Method::POST, "/api/v1/login", &req).await?;
        let login = Login {
            server: anonymous.server().to_owned(),
            user_id: answer.user.id.clone(),
            username: answer.user.username.clone(),
            token: answer.token.clone(),
            accepted_kdf: previous_params(&profile, &answer.user.id)?,
        };
        // Another user's unlocked keys must not survive into this login.
        profile.clear_keys()?;
        profile.save_login(&login)?;
        Self::from_login(profile, login)
    }

    /// Uses an existing token (a personal access token of a bot, say) and stores it in
    /// `profile`.
    pub async fn with_token(profile: Profile, server: &str, token: &str) -> Result<Self> {
        let api = Api::new(server)?.with_token(token);
        let me: User = api.get("/api/v1/me").await?;
        let login = Login {
            server: api.server().to_owned(),
            user_id: me.id.clone(),
            username: me.username,
            token: token.to_owned(),
            accepted_kdf: previous_params(&profile, &me.id)?,
        };
        if profile.login()?.is_none_or(|old| old.user_id != me.id) {
            profile.clear_keys()?;
        }
        profile.save_login(&login)?;
        Self::from_login(profile, login)
    }

    /// The client of the login stored in `profile`.
    pub fn open(profile: Profile) -> Result<Self> {
        let login = profile.login()?.ok_or(Error::NotLoggedIn)?;
        Self::from_login(profile, login)
    }

    fn from_login(profile: Profile, login: Login) -> Result<Self> {
        let api = Api::new(&login.server)?.with_token(&login.token);
        let user_id = UserId::new(login.user_id.clone())
            .map_err(|_| Error::protocol("the server gave an invalid user id"))?;
        let state = State {
            keys: profile.keys()?.map(Arc::new),
            pins: profile.pins()?,
            seen: profile.seen()?,
            accepted: crate::messages::Accepted::load(&profile)?,
            chains: Default::default(),
            former: crate::chain::FormerKeys::load(&profile)?,
            epoch_keys: Default::default(),
            names: Default::default(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                api,
                profile,
                user_id,
                username: login.username,
                state: Mutex::new(state),
            }),
        })
    }

    /// Ends the session on the server and forgets it (and the unlocked keys) locally.
    /// The local part happens even when the server cannot be reached.
    pub async fn logout(self) -> Result<()> {
        let remote = self
            .api()
            .send_empty::<()>(Method::POST, "/api/v1/logout", None)
            .await;
        self.inner.profile.clear_login()?;
        match remote {
            Err(Error::Api { status: 401, .. }) => Ok(()),
            other => other,
        }
    }

    /// The REST API as this user.
    pub fn api(&self) -> &Api {
        &self.inner.api
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// This user's id.
    pub fn user_id(&self) -> &UserId {
        &self.inner.user_id
    }

    /// This user's name.
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// The user as the server sees them now.
    pub async fn whoami(&self) -> Result<User> {
        self.api().get("/api/v1/me").await
    }

    /// The unlocked private keys, or why there are none.
    pub fn keys(&self) -> Result<Arc<IdentityKeys>> {
        self.state().keys.clone().ok_or(Error::Locked)
    }

    /// Whether keys are unlocked on this profile.
    pub fn is_unlocked(&self) -> bool {
        self.state().keys.is_some()
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the pins and saves them if it changed them.
    pub(crate) fn with_pins<T>(&self, f: impl FnOnce(&mut PinStore) -> T) -> Result<T> {
        let mut state = self.state();
        let before = state.pins.clone();
        let out = f(&mut state.pins);
        if state.pins != before {
            self.inner.profile.save_pins(&state.pins)?;
            // Keys replaced by an accepted change still sign what their owner made
            // before the change (statements, boxes, messages): keep them.
            let mut replaced = false;
            for (user, old) in before.iter() {
                if state.pins.get(user).is_none_or(|new| new.key != old.key) {
                    replaced |= state.former.add(user, old.key);
                }
            }
            if replaced {
                state.former.save(&self.inner.profile)?;
            }
        }
        Ok(out)
    }

    /// Runs `f` on the seen message ids and saves them.
    pub(crate) fn with_seen<T>(&self, f: impl FnOnce(&mut SeenMessages) -> T) -> Result<T> {
        let mut state = self.state();
        let out = f(&mut state.seen);
        self.inner.profile.save_seen(&state.seen)?;
        Ok(out)
    }
}

/// Decodes a base64 field of an answer.
pub(crate) fn unbase64(field: &str, text: &str) -> Result<Vec<u8>> {
    B64.decode(text)
        .map_err(|_| Error::protocol(format!("{field} is not base64")))
}

/// Base64 for a request field.
pub(crate) fn base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes and checks a bundle the server served as `user`'s.
pub(crate) fn decode_bundle(user: &UserId, text: &str) -> Result<PublicBundle> {
    let bundle = PublicBundle::decode(&unbase64("bundle", text)?)
        .map_err(|e| Error::protocol(format!("key bundle of {user}: {e}")))?;
    if bundle.user() != user {
        return Err(Error::protocol(format!(
            "the server served another user's key bundle as {user}'s"
        )));
    }
    Ok(bundle)
}

/// A session name that tells the user's session list which machine this is.
fn session_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(40)
        .collect();
    if host.is_empty() {
        "sotto client".to_owned()
    } else {
        format!("sotto client on {host}")
    }
}

/// The key-backup parameters this profile accepted for `user_id` before, kept across
/// logins so a later backup can never be weaker.
fn previous_params(profile: &Profile, user_id: &str) -> Result<Option<[u32; 3]>> {
    Ok(profile
        .login()?
        .filter(|old| old.user_id == user_id)
        .and_then(|old| old.accepted_kdf))
}

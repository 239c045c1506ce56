//! Room state chains (B11, B12; docs/protocol.md §5): fetching a room's chain and
//! verifying it from the creation statement with each actor's pinned identity key, and
//! adding signed statements on top of the verified head.

use crate::api::seg;
use crate::client::{Client, base64, unbase64};
use crate::error::{Error, Result};
use crate::profile::Profile;
use reqwest::Method;
use sotto_api::e2ee::{StatementList, StatementRequest};
use sotto_crypto::chain::{Action, ChainError, KeyHistory, RoomChain, RoomState, Statement};
use sotto_crypto::{EpochId, IdentityPublicKey, RoomId, UserId};
use std::collections::{BTreeMap, BTreeSet};

/// How often a statement is rebuilt on a fresh head when another member's statement won
/// the race for the same place.
const STATEMENT_ATTEMPTS: usize = 4;

impl Client {
    /// The room's state chain, fetched and verified from its creation statement with each
    /// actor's pinned identity key (actors seen for the first time are pinned now). `None`
    /// when the room has no chain (a public room, or one whose creator has not stored the
    /// creation statement yet). A statement signed by a key that differs from the pinned
    /// one is [`Error::KeyChanged`]; any other failure is [`Error::Protocol`].
    pub async fn room_chain(&self, room: &RoomId) -> Result<Option<RoomChain>> {
        let list: StatementList = self
            .api()
            .get(&format!("/api/v1/rooms/{}/statements", seg(room.as_str())))
            .await?;
        let statements = list
            .statements
            .iter()
            .map(|s| {
                Statement::decode(&unbase64("statement", s)?)
                    .map_err(|e| Error::protocol(format!("room chain: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.refuse_rollback(room, &statements)?;
        if statements.is_empty() {
            self.state().chains.remove(room);
            return Ok(None);
        }
        let cached = self.state().chains.get(room).cloned();
        // A cached chain that is a prefix of the served one needs only the new statements
        // checked; anything else (the server rewrote history) is verified from scratch.
        let (base, new) = match cached {
            Some(chain)
                if chain.len() <= statements.len()
                    && chain.statements().zip(&statements).all(|(a, b)| a == b) =>
            {
                let skip = chain.len();
                (Some(chain), statements.into_iter().skip(skip).collect())
            }
            _ => (None, statements),
        };
        let actors: BTreeSet<UserId> = new.iter().map(|s| s.actor().clone()).collect();
        self.observe_keys(&actors).await?;
        // Each statement under its actor's key in effect: the one declared by the actor's
        // next KeyChange, else the pinned key (then a kept former key, while the actor
        // has not declared its change yet); docs/protocol.md §5.5.
        let pinned = |u: &UserId| self.pinned_key(u);
        let history = |u: &UserId| KeyHistory {
            former: self.former_keys(u),
            pending: self.state().pins.get(u).and_then(|p| p.pending),
        };
        let outcome = match base {
            Some(mut chain) => chain.extend(new, pinned, history).map(|()| chain),
            None => RoomChain::verify_with_history(room, new, pinned, history),
        };
        let chain = outcome.map_err(|e| self.chain_error(&actors, e))?;
        self.state().chains.insert(room.clone(), chain.clone());
        Ok(Some(chain))
    }

    /// Appends this user's `KeyChange` (docs/protocol.md §3.5) to every encrypted room
    /// whose chain counts it as a member, declaring `former` (its identity key before a
    /// reset). Rooms whose chain fails, that already declare it, or where storing fails
    /// are skipped; returns how many statements were stored.
    pub(crate) async fn declare_key_change(&self, former: IdentityPublicKey) -> Result<u32> {
        let me = self.user_id().clone();
        let mut declared = 0;
        for room in self.rooms().await? {
            let Ok(id) = RoomId::new(room.id.as_str()) else {
                continue;
            };
            let Ok(Some(chain)) = self.room_chain(&id).await else {
                continue;
            };
            let done = |s: &RoomState| {
                s.key_changes()
                    .iter()
                    .any(|k| k.user == me && k.former == former)
            };
            if done(chain.state()) || !chain.state().is_member(&me) {
                continue;
            }
            // Checked again on the fresh head of every attempt: declaring twice would
            // move the first declaration under the former key (DuplicateKeyChange).
            let stored = self
                .add_statement(&id, |s| {
                    if done(s) {
                        Err(Error::Invalid("the key change is declared already".into()))
                    } else {
                        Ok(Action::KeyChange(former))
                    }
                })
                .await;
            if stored.is_ok() {
                declared += 1;
            }
        }
        Ok(declared)
    }

    /// The room's verified chain; an error when it has none.
    pub(crate) async fn required_chain(&self, room: &RoomId) -> Result<RoomChain> {
        self.room_chain(room).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "room {room} has no state chain yet: its creator has not signed its creation"
            ))
        })
    }

    /// The cached verified chain, if any.
    pub(crate) fn cached_chain(&self, room: &RoomId) -> Option<RoomChain> {
        self.state().chains.get(room).cloned()
    }

    /// Signs the statement `action` makes of the verified state, on the verified head,
    /// and stores it. Another member's statement taking the same place (`conflict`)
    /// makes it fetch the chain and try again, a few times. The action is checked
    /// against the room rules here first, so a refused change says why.
    pub(crate) async fn add_statement(
        &self,
        room: &RoomId,
        action: impl Fn(&RoomState) -> Result<Action>,
    ) -> Result<RoomChain> {
        let keys = self.keys()?;
        let me = self.user_id().clone();
        let mut last = None;
        for _ in 0..STATEMENT_ATTEMPTS {
            let mut chain = self.required_chain(room).await?;
            let act = action(chain.state())?;
            let stmt = Statement::next(chain.head(), act, &me, &keys)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let mine = keys.identity_public();
            chain
                .append(stmt.clone(), |u| (u == &me).then_some(mine))
                .map_err(|e| Error::Invalid(format!("the room refuses this change: {e}")))?;
            match self.post_statement(room, &stmt).await {
                Ok(()) => {
                    self.state().chains.insert(room.clone(), chain.clone());
                    return Ok(chain);
                }
                Err(e) if e.code() == Some("conflict") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Invalid("the room's chain kept changing".into())))
    }

    /// Stores a statement (`POST /rooms/{id}/statements`).
    pub(crate) async fn post_statement(&self, room: &RoomId, stmt: &Statement) -> Result<()> {
        let req = StatementRequest {
            statement: base64(&stmt.encode()),
        };
        self.api()
            .send_empty(
                Method::POST,
                &format!("/api/v1/rooms/{}/statements", seg(room.as_str())),
                Some(&req),
            )
            .await
    }

    /// Identity keys once pinned for `user` and replaced by an accepted change.
    pub(crate) fn former_keys(&self, user: &UserId) -> Vec<IdentityPublicKey> {
        self.state().former.of(user)
    }

    /// The keys besides the pinned one that may have signed `user`'s messages and boxes
    /// of `epoch` (docs/protocol.md §6.3, §7.6): those the room's chain declares in
    /// `user`'s key changes after the epoch, then those this profile kept.
    pub(crate) fn former_keys_for(
        &self,
        chain: &RoomChain,
        user: &UserId,
        epoch: &EpochId,
    ) -> Vec<IdentityPublicKey> {
        let mut keys = chain.state().former_keys_since_epoch(user, epoch);
        keys.extend(self.former_keys(user));
        keys
    }

    /// The identity key pinned for `user`.
    pub(crate) fn pinned_key(&self, user: &UserId) -> Option<sotto_crypto::IdentityPublicKey> {
        self.state().pins.get(user).map(|p| p.key)
    }

    /// Fetches the bundles of `users` and observes each against the pins: new users are
    /// pinned, changed keys become pending changes. Returns the bundles that match their
    /// pin; users without keys and users whose key changed are left out.
    pub(crate) async fn observe_keys(
        &self,
        users: &BTreeSet<UserId>,
    ) -> Result<BTreeMap<UserId, crate::Contact>> {
        let users: Vec<&UserId> = users.iter().collect();
        let mut out = BTreeMap::new();
        for b in &self.published_bundles(&users).await? {
            match self.check_contact(b) {
                Ok(contact) => {
                    out.insert(contact.bundle.user().clone(), contact);
                }
                Err(Error::KeyChanged { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// What a refused chain means for the user: a key change when one of its actors'
    /// keys changed and is not accepted yet, else a protocol failure.
    fn chain_error(&self, actors: &BTreeSet<UserId>, e: ChainError) -> Error {
        let changed = actors.iter().find(|a| {
            self.state()
                .pins
                .get(a)
                .is_some_and(|p| p.pending.is_some())
        });
        match (e, changed) {
            (ChainError::BadSignature | ChainError::UnknownSigner, Some(actor)) => {
                Error::KeyChanged {
                    user: actor.to_string(),
                }
            }
            (other, _) => Error::protocol(format!("room chain: {other}")),
        }
    }
}

/// The profile file of the newest chain heads this device verified, per room.
const CHAIN_HEADS_FILE: &str = "chain-heads.json";

impl Client {
    /// Refuses a served chain shorter than one this device verified (§5.5 checkpoint),
    /// in this session or before a restart: an older prefix would bring back a removed
    /// member, an abandoned epoch or encryption turned off. The newer verified state is
    /// kept. The checkpoint is raised here to the last verified chain, so it survives a
    /// restart.
    fn refuse_rollback(&self, room: &RoomId, served: &[Statement]) -> Result<()> {
        let mut heads: BTreeMap<String, u64> = match self.profile().read(CHAIN_HEADS_FILE)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Storage {
                what: format!("reading {CHAIN_HEADS_FILE}"),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            })?,
            None => BTreeMap::new(),
        };
        let known = heads.get(room.as_str()).copied().unwrap_or(0);
        let cached = self.cached_chain(room).map_or(0, |c| c.len() as u64);
        if cached > known {
            heads.insert(room.to_string(), cached);
            let json = serde_json::to_vec(&heads).map_err(|e| Error::Storage {
                what: format!("writing {CHAIN_HEADS_FILE}"),
                source: std::io::Error::other(e.to_string()),
            })?;
            self.profile().write(CHAIN_HEADS_FILE, &json)?;
        }
        let verified = known.max(cached);
        let served = served.len() as u64;
        if served < verified {
            return Err(Error::ChainRolledBack {
                room: room.to_string(),
                verified,
                served,
            });
        }
        Ok(())
    }
}

/// The profile file of replaced identity keys.
const FORMER_KEYS_FILE: &str = "former-keys.json";

/// Identity keys this profile pinned once and that their owner replaced (a key reset,
/// accepted by the user). What the owner signed before the change keeps verifying: a
/// room's older statements, boxes it handed on, its older messages. A key is only ever
/// added here after it was the pinned one.
#[derive(Debug, Default)]
pub(crate) struct FormerKeys {
    keys: BTreeMap<String, Vec<String>>,
}

impl FormerKeys {
    pub(crate) fn load(profile: &Profile) -> Result<Self> {
        let Some(bytes) = profile.read(FORMER_KEYS_FILE)? else {
            return Ok(Self::default());
        };
        let keys = serde_json::from_slice(&bytes).map_err(|e| Error::Storage {
            what: format!("reading {FORMER_KEYS_FILE}"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
        Ok(Self { keys })
    }

    pub(crate) fn save(&self, profile: &Profile) -> Result<()> {
        let json = serde_json::to_vec(&self.keys).map_err(|e| Error::Storage {
            what: format!("writing {FORMER_KEYS_FILE}"),
            source: std::io::Error::other(e.to_string()),
        })?;
        profile.write(FORMER_KEYS_FILE, &json)
    }

    /// Adds a replaced key; whether it was new.
    pub(crate) fn add(&mut self, user: &UserId, key: IdentityPublicKey) -> bool {
        let hex = hex::encode(key.to_bytes());
        let list = self.keys.entry(user.to_string()).or_default();
        if list.contains(&hex) {
            return false;
        }
        list.push(hex);
        true
    }

    /// The replaced keys of `user`, newest last; entries that do not decode are skipped.
    pub(crate) fn of(&self, user: &UserId) -> Vec<IdentityPublicKey> {
        self.keys
            .get(user.as_str())
            .into_iter()
            .flatten()
            .filter_map(|h| {
                let bytes: [u8; 32] = hex::decode(h).ok()?.try_into().ok()?;
                IdentityPublicKey::from_bytes(&bytes).ok()
            })
            .collect()
    }
}

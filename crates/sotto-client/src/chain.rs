//! Room state chains (B11, B12; docs/protocol.md §5): fetching a room's chain and
//! verifying it from the creation statement with each actor's pinned identity key, and
//! adding signed statements on top of the verified head.

use crate::api::seg;
use crate::client::{Client, base64, unbase64};
use crate::error::{Error, Result};
use crate::profile::Profile;
use reqwest::Method;
use sotto_api::e2ee::{StatementList, StatementRequest};
use sotto_crypto::chain::{Action, ChainError, RoomChain, RoomState, Statement};
use sotto_crypto::{IdentityPublicKey, RoomId, UserId};
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
        let mut chain = base;
        // Actors seen signing with their pinned key: from then on, only that key counts.
        let mut on_current_key = BTreeSet::new();
        for stmt in new {
            let actor = stmt.actor().clone();
            let mut outcome = extend(room, &mut chain, &stmt, self.pinned_key(&actor));
            if outcome.is_ok() {
                on_current_key.insert(actor.clone());
            } else if matches!(outcome, Err(ChainError::BadSignature))
                && !on_current_key.contains(&actor)
            {
                // Made before an accepted key change, under the key pinned then.
                for key in self.former_keys(&actor) {
                    outcome = extend(room, &mut chain, &stmt, Some(key));
                    if outcome.is_ok() {
                        break;
                    }
                }
            }
            outcome.map_err(|e| self.chain_error(&actor, e))?;
        }
        if let Some(c) = &chain {
            self.state().chains.insert(room.clone(), c.clone());
        }
        Ok(chain)
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

    /// What a refused statement means for the user: a key change when the actor's key
    /// changed, else a protocol failure.
    fn chain_error(&self, actor: &UserId, e: ChainError) -> Error {
        let changed = self
            .state()
            .pins
            .get(actor)
            .is_some_and(|p| p.pending.is_some());
        match e {
            ChainError::BadSignature | ChainError::UnknownSigner if changed => Error::KeyChanged {
                user: actor.to_string(),
            },
            other => Error::protocol(format!("room chain: {other}")),
        }
    }
}

/// `stmt` verified as the next link of `chain` (or as the first statement) with `key`
/// as its actor's identity key.
/// On failure the chain is unchanged.
fn extend(
    room: &RoomId,
    chain: &mut Option<RoomChain>,
    stmt: &Statement,
    key: Option<IdentityPublicKey>,
) -> std::result::Result<(), ChainError> {
    match chain {
        None => {
            *chain = Some(RoomChain::verify(room, [stmt.clone()], |_| key)?);
            Ok(())
        }
        Some(c) => c.append(stmt.clone(), |_| key),
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

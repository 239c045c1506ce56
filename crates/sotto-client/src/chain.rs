//! Room state chains (B11, B12; docs/protocol.md §5): fetching a room's chain and
//! verifying it from the creation statement with each actor's pinned identity key, and
//! adding signed statements on top of the verified head.

use crate::api::seg;
use crate::client::{Client, base64, unbase64};
use crate::error::{Error, Result};
use reqwest::Method;
use sotto_api::e2ee::{StatementList, StatementRequest};
use sotto_api::keys::KeyBundleList;
use sotto_crypto::chain::{Action, ChainError, RoomChain, RoomState, Statement};
use sotto_crypto::{RoomId, UserId};
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
        for stmt in new {
            let actor = stmt.actor().clone();
            let outcome = match chain.take() {
                None => RoomChain::verify(room, [stmt], |u| self.pinned_key(u)),
                Some(mut c) => c.append(stmt, |u| self.pinned_key(u)).map(|()| c),
            };
            chain = Some(outcome.map_err(|e| self.chain_error(&actor, e))?);
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
        for chunk in users.chunks(sotto_api::keys::KEYS_MAX_USERS) {
            let ids: Vec<&str> = chunk.iter().map(|u| u.as_str()).collect();
            let list: KeyBundleList = self
                .api()
                .get_query("/api/v1/keys", &[("user_ids", ids.join(","))])
                .await?;
            for b in &list.bundles {
                if !chunk.iter().any(|u| u.as_str() == b.user_id) {
                    return Err(Error::protocol("the server sent a bundle nobody asked for"));
                }
                match self.check_contact(b) {
                    Ok(contact) => {
                        out.insert(contact.bundle.user().clone(), contact);
                    }
                    Err(Error::KeyChanged { .. }) => {}
                    Err(e) => return Err(e),
                }
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

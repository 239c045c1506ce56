//! The signed room state chain: who may hold a room's keys and whether the room is
//! encrypted is decided by members' signed statements, not by the server.
//!
//! The server uses [`check_extends`] (no private keys) to accept a statement only if it
//! validly extends the current head, rules included. Clients verify the whole chain with [`RoomChain`], which
//! also applies the room rules and derives the [`RoomState`].

mod rules;
mod state;
mod statement;

pub use state::{KeyChangeRecord, MemberComparison, RoomState};
pub use statement::{
    Action, Create, GENESIS_PREV, MAX_CREATE_MEMBERS, RoomKind, STATEMENT_LABEL, Statement,
    TooManyMembers,
};

use crate::encoding::DecodeError;
use crate::identity::IdentityPublicKey;
use crate::ids::{RoomId, UserId};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Why a statement does not extend a chain, or a chain is not valid. Each variant names
/// the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    /// The statement's bytes are malformed.
    #[error("malformed statement: {0}")]
    Decode(#[from] DecodeError),
    /// A chain needs at least its creation statement.
    #[error("the chain is empty")]
    EmptyChain,
    /// The statement belongs to another room.
    #[error("statement is for another room")]
    WrongRoom,
    /// The sequence number is not the head's plus one (0 for the first).
    #[error("expected sequence number {expected}, found {found}")]
    BadSequence {
        /// The sequence number that would extend the head.
        expected: u64,
        /// The statement's sequence number.
        found: u64,
    },
    /// `prev` is not the hash of the head (zeros for the first statement).
    #[error("statement does not follow the current head")]
    BadPrevHash,
    /// The first statement is not a creation.
    #[error("the first statement must create the room")]
    MissingCreate,
    /// A creation statement appears after the first.
    #[error("only the first statement may create the room")]
    CreateNotFirst,
    /// No identity key is known (pinned) for the actor.
    #[error("no identity key known for the statement's actor")]
    UnknownSigner,
    /// The actor's signature does not verify.
    #[error("statement signature is not valid")]
    BadSignature,
    /// The creator is not among the first members.
    #[error("the creator is not among the first members")]
    CreatorNotAMember,
    /// A direct message is created with other than two members.
    #[error("a direct message has exactly two members")]
    DirectMessageNeedsTwo,
    /// The actor is not a member.
    #[error("the actor is not a member of the room")]
    NotAMember,
    /// The change needs an owner and the actor is not one.
    #[error("the actor is not an owner of the room")]
    NotAnOwner,
    /// Direct messages keep their two members: no invite, removal, leave or owner change.
    #[error("not allowed in a direct message")]
    NotAllowedInDirectMessage,
    /// The invited user is already a member.
    #[error("the user is already a member")]
    AlreadyMember,
    /// The subject of a removal or owner change is not a member.
    #[error("the user is not a member")]
    SubjectNotAMember,
    /// The user made owner already is one.
    #[error("the user is already an owner")]
    AlreadyOwner,
    /// The subject of an owner removal is not an owner.
    #[error("the user is not an owner")]
    SubjectNotAnOwner,
    /// The change would leave members without any owner.
    #[error("the room's last owner cannot leave or stop being owner while others remain")]
    LastOwner,
    /// An actor removes itself; leaving is done with `Leave`.
    #[error("use Leave to leave a room")]
    RemoveSelf,
    /// Encryption is set to the value it already has.
    #[error("encryption already has that setting")]
    Unchanged,
    /// A new epoch is declared while encryption is off.
    #[error("new epochs need encryption to be on")]
    EncryptionOff,
    /// The epoch id was declared before.
    #[error("the epoch was declared before")]
    DuplicateEpoch,
    /// A key change declares as former the very key that signs it.
    #[error("a key change must declare a key other than the one signing it")]
    KeyUnchanged,
    /// The actor declared this former key before: a second declaration would move the
    /// first one under the former key it replaced.
    #[error("the actor declared this former key before")]
    DuplicateKeyChange,
    /// The chain's key changes of a user do not include the key this verifier kept as
    /// that user's former key.
    #[error("the room's key change does not match the former key known for its actor")]
    FormerKeyMismatch,
}

/// Checks that `stmt` is the link after `head` (or the first link): room, sequence
/// number, previous hash, and that exactly the first statement creates the room.
fn check_link(
    room: &RoomId,
    head: Option<(u64, &[u8; 32])>,
    stmt: &Statement,
) -> Result<(), ChainError> {
    if stmt.room() != room {
        return Err(ChainError::WrongRoom);
    }
    let (expected, prev) = match head {
        None => (0, &GENESIS_PREV),
        Some((seq, hash)) => (seq.saturating_add(1), hash),
    };
    if stmt.seq() != expected {
        return Err(ChainError::BadSequence {
            expected,
            found: stmt.seq(),
        });
    }
    if stmt.prev() != prev {
        return Err(ChainError::BadPrevHash);
    }
    match (head.is_none(), matches!(stmt.action(), Action::Create(_))) {
        (true, false) => Err(ChainError::MissingCreate),
        (false, true) => Err(ChainError::CreateNotFirst),
        _ => Ok(()),
    }
}

fn check_signature(
    stmt: &Statement,
    keys: &impl Fn(&UserId) -> Option<IdentityPublicKey>,
) -> Result<(), ChainError> {
    let key = keys(stmt.actor()).ok_or(ChainError::UnknownSigner)?;
    check_signed_by(stmt, &key)
}

/// The signature under `key`, and that a key change does not declare `key` itself.
fn check_signed_by(stmt: &Statement, key: &IdentityPublicKey) -> Result<(), ChainError> {
    stmt.verify_signature(key)
        .map_err(|_| ChainError::BadSignature)?;
    match stmt.action() {
        Action::KeyChange(former) if former == key => Err(ChainError::KeyUnchanged),
        _ => Ok(()),
    }
}

/// What a verifying client knows of a user's identity keys besides the pinned one
/// (§4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyHistory {
    /// Keys it pinned before and replaced by accepting a change, oldest first.
    pub former: Vec<IdentityPublicKey>,
    /// A changed key it has seen and not accepted yet.
    pub pending: Option<IdentityPublicKey>,
}

/// The key a statement must be signed under.
#[derive(Debug, Clone, Copy)]
enum Signer {
    /// The actor's pinned key (`None`: none pinned): no later key change of the actor.
    Pinned(Option<IdentityPublicKey>),
    /// Declared by the actor's next key change after the statement.
    Declared(IdentityPublicKey),
}

/// For each statement, the key in effect for its actor (§5.5): the former key of the
/// actor's first `KeyChange` after it, else the pinned key. Also checks each actor
/// whose last key change is signed by the pinned key against the former keys this
/// verifier kept: the newest of them must be one the chain declares. (A last key change
/// signed by another key is one from before the actor's current change, which is not in
/// the chain yet: it is checked under the kept former keys like the actor's other
/// statements.)
fn signers(
    statements: &[Statement],
    keys: &impl Fn(&UserId) -> Option<IdentityPublicKey>,
    history: &impl Fn(&UserId) -> KeyHistory,
) -> Result<Vec<Signer>, ChainError> {
    let mut in_effect: BTreeMap<&UserId, Signer> = BTreeMap::new();
    let mut declared: BTreeMap<&UserId, BTreeSet<[u8; 32]>> = BTreeMap::new();
    let mut last_by_pinned: BTreeSet<&UserId> = BTreeSet::new();
    let mut out = Vec::with_capacity(statements.len());
    for stmt in statements.iter().rev() {
        let actor = stmt.actor();
        let signer = *in_effect
            .entry(actor)
            .or_insert_with(|| Signer::Pinned(keys(actor)));
        out.push(signer);
        if let Action::KeyChange(key) = stmt.action() {
            let first_seen = !declared.contains_key(actor);
            if first_seen
                && let Signer::Pinned(Some(pinned)) = signer
                && stmt.verify_signature(&pinned).is_ok()
            {
                last_by_pinned.insert(actor);
            }
            declared.entry(actor).or_default().insert(key.to_bytes());
            in_effect.insert(actor, Signer::Declared(*key));
        }
    }
    out.reverse();
    for actor in last_by_pinned {
        if let Some(newest) = history(actor).former.last()
            && !declared[actor].contains(&newest.to_bytes())
        {
            return Err(ChainError::FormerKeyMismatch);
        }
    }
    Ok(out)
}

/// Checks signatures with the keys in effect, remembering the actors seen signing
/// under their pinned key: a statement of theirs that the pinned key does not verify
/// may otherwise be verified under a former key this verifier kept (§4.2), for chains
/// whose actor has not declared its change yet.
struct SignatureCheck<'a, F> {
    history: &'a F,
    on_current_key: &'a mut BTreeSet<UserId>,
}

impl<F: Fn(&UserId) -> KeyHistory> SignatureCheck<'_, F> {
    fn check(&mut self, stmt: &Statement, signer: Signer) -> Result<(), ChainError> {
        let actor = stmt.actor();
        match signer {
            Signer::Declared(key) => check_signed_by(stmt, &key),
            Signer::Pinned(None) => Err(ChainError::UnknownSigner),
            Signer::Pinned(Some(key)) => match check_signed_by(stmt, &key) {
                Ok(()) => {
                    self.on_current_key.insert(actor.clone());
                    Ok(())
                }
                Err(ChainError::BadSignature) => {
                    let history = (self.history)(actor);
                    // A key change under the pending key that declares the pinned one
                    // gives the pending key nothing: the room stays usable until the
                    // change is accepted, and the actor's later statements are refused.
                    let declares_pinned =
                        matches!(stmt.action(), Action::KeyChange(f) if *f == key);
                    if declares_pinned
                        && history
                            .pending
                            .is_some_and(|p| stmt.verify_signature(&p).is_ok())
                    {
                        return Ok(());
                    }
                    if self.on_current_key.contains(actor) {
                        return Err(ChainError::BadSignature);
                    }
                    history
                        .former
                        .iter()
                        .rev()
                        .find_map(|k| check_signed_by(stmt, k).ok())
                        .ok_or(ChainError::BadSignature)
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// The server's check before storing a statement (compare-and-set on the head).
///
/// Decodes `candidate` and checks it exactly as a client would: that it extends
/// `chain` (`None` for a room with no chain yet) in `room`, its signature under the
/// actor's published identity key from `keys`, and the room rules against the chain's
/// current state. A statement that breaks a rule is refused here, so no one can wedge
/// a room by storing a head that every later statement would have to extend. The
/// caller stores the statement only if its head is still `chain`'s.
pub fn check_extends(
    room: &RoomId,
    chain: Option<&RoomChain>,
    candidate: &[u8],
    keys: impl Fn(&UserId) -> Option<IdentityPublicKey>,
) -> Result<Statement, ChainError> {
    let stmt = Statement::decode(candidate)?;
    match chain {
        None => {
            check_first(room, &stmt, &mut |s| check_signature(s, &keys))?;
        }
        Some(c) if c.state.room != *room => return Err(ChainError::WrongRoom),
        Some(c) => c.check_next(&stmt, &mut |s| check_signature(s, &keys))?,
    }
    Ok(stmt)
}

/// Checks the creation statement: link, signature, creation rules.
fn check_first<'a>(
    room: &RoomId,
    first: &'a Statement,
    signature: &mut impl FnMut(&Statement) -> Result<(), ChainError>,
) -> Result<&'a Create, ChainError> {
    check_link(room, None, first)?;
    signature(first)?;
    let Action::Create(create) = first.action() else {
        return Err(ChainError::MissingCreate);
    };
    rules::check_create(first.actor(), create)?;
    Ok(create)
}

/// A room's chain, verified from the creator's first statement, and the state it
/// derives.
#[derive(Debug, Clone)]
pub struct RoomChain {
    first: Statement,
    rest: Vec<Statement>,
    state: RoomState,
    /// Actors seen signing under their pinned key: no kept former key counts for them.
    on_current_key: BTreeSet<UserId>,
}

impl RoomChain {
    /// Verifies a whole chain for `room`, first statement first. `keys` gives each
    /// actor's pinned identity key; a statement followed by a `KeyChange` of its actor
    /// is checked under the key that change declares (§5.5).
    ///
    /// Each statement is checked in this order: link ([`ChainError::WrongRoom`],
    /// [`ChainError::BadSequence`], [`ChainError::BadPrevHash`],
    /// [`ChainError::MissingCreate`] / [`ChainError::CreateNotFirst`]), signature
    /// ([`ChainError::UnknownSigner`], [`ChainError::BadSignature`],
    /// [`ChainError::KeyUnchanged`]), then the room rules.
    pub fn verify(
        room: &RoomId,
        statements: impl IntoIterator<Item = Statement>,
        keys: impl Fn(&UserId) -> Option<IdentityPublicKey>,
    ) -> Result<Self, ChainError> {
        Self::verify_with_history(room, statements, keys, |_| KeyHistory::default())
    }

    /// [`RoomChain::verify`] by a verifier that knows more of each user's keys
    /// (`history`, §4.2). The kept former keys are checked against the chain's key
    /// changes ([`ChainError::FormerKeyMismatch`], before any signature), and verify an
    /// actor's statements that no key change covers until the actor signs under its
    /// pinned key. A key change that declares the pinned key may be signed by the
    /// pending key (§5.5).
    pub fn verify_with_history(
        room: &RoomId,
        statements: impl IntoIterator<Item = Statement>,
        keys: impl Fn(&UserId) -> Option<IdentityPublicKey>,
        history: impl Fn(&UserId) -> KeyHistory,
    ) -> Result<Self, ChainError> {
        let list: Vec<Statement> = statements.into_iter().collect();
        let signers = signers(&list, &keys, &history)?;
        let mut on_current_key = BTreeSet::new();
        let mut check = SignatureCheck {
            history: &history,
            on_current_key: &mut on_current_key,
        };
        let mut signers = signers.into_iter();
        let mut chain = Self::build(room, list, &mut |s| {
            check.check(s, signers.next().unwrap_or(Signer::Pinned(None)))
        })?;
        chain.on_current_key = on_current_key;
        Ok(chain)
    }

    /// Verifies `statements`, the links after the head, as [`RoomChain::verify_with_history`]
    /// does (key changes among them decide the keys of the statements before them). On
    /// error the chain is unchanged.
    pub fn extend(
        &mut self,
        statements: impl IntoIterator<Item = Statement>,
        keys: impl Fn(&UserId) -> Option<IdentityPublicKey>,
        history: impl Fn(&UserId) -> KeyHistory,
    ) -> Result<(), ChainError> {
        let list: Vec<Statement> = statements.into_iter().collect();
        let signers = signers(&list, &keys, &history)?;
        let mut next = self.clone();
        let mut check = SignatureCheck {
            history: &history,
            on_current_key: &mut next.on_current_key,
        };
        let mut added = Vec::with_capacity(list.len());
        for (stmt, signer) in list.into_iter().zip(signers) {
            let head = (next.state.seq, &next.state.head_hash);
            check_link(&next.state.room, Some(head), &stmt)?;
            check.check(&stmt, signer)?;
            rules::check(&next.state, &stmt)?;
            let hash = stmt.hash();
            rules::apply(&mut next.state, &stmt, hash);
            added.push(stmt);
        }
        next.rest.extend(added);
        *self = next;
        Ok(())
    }

    /// Rebuilds the chain from statements the server accepted earlier with
    /// [`check_extends`]: links and room rules are checked again, signatures are not,
    /// since they were checked on arrival under the keys published then (a user's key
    /// may have been reset since). Only the server uses this; clients call
    /// [`RoomChain::verify`].
    pub fn from_stored(
        room: &RoomId,
        statements: impl IntoIterator<Item = Statement>,
    ) -> Result<Self, ChainError> {
        Self::build(room, statements, &mut |_| Ok(()))
    }

    fn build(
        room: &RoomId,
        statements: impl IntoIterator<Item = Statement>,
        signature: &mut impl FnMut(&Statement) -> Result<(), ChainError>,
    ) -> Result<Self, ChainError> {
        let mut it = statements.into_iter();
        let first = it.next().ok_or(ChainError::EmptyChain)?;
        let create = check_first(room, &first, signature)?;
        let state = RoomState::genesis(room, first.actor(), create, first.hash());
        let mut chain = Self {
            first,
            rest: Vec::new(),
            state,
            on_current_key: BTreeSet::new(),
        };
        for stmt in it {
            chain.check_next(&stmt, signature)?;
            chain.apply(stmt);
        }
        Ok(chain)
    }

    /// Decodes and verifies a chain given as encoded statements.
    pub fn decode_and_verify<B: AsRef<[u8]>>(
        room: &RoomId,
        encoded: &[B],
        keys: impl Fn(&UserId) -> Option<IdentityPublicKey>,
    ) -> Result<Self, ChainError> {
        let statements = encoded
            .iter()
            .map(|b| Statement::decode(b.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::verify(room, statements, keys)
    }

    /// Verifies `stmt` as the next link and applies it. On error the chain is unchanged.
    /// Its signer is the actor's key from `keys` (nothing comes after it).
    pub fn append(
        &mut self,
        stmt: Statement,
        keys: impl Fn(&UserId) -> Option<IdentityPublicKey>,
    ) -> Result<(), ChainError> {
        self.check_next(&stmt, &mut |s| check_signature(s, &keys))?;
        self.apply(stmt);
        Ok(())
    }

    /// Link, signature, then the room rules against the current state.
    fn check_next(
        &self,
        stmt: &Statement,
        signature: &mut impl FnMut(&Statement) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        let head = (self.state.seq, &self.state.head_hash);
        check_link(&self.state.room, Some(head), stmt)?;
        signature(stmt)?;
        rules::check(&self.state, stmt)
    }

    fn apply(&mut self, stmt: Statement) {
        let hash = stmt.hash();
        rules::apply(&mut self.state, &stmt, hash);
        self.rest.push(stmt);
    }

    /// The state at the head.
    pub fn state(&self) -> &RoomState {
        &self.state
    }

    /// The last statement.
    pub fn head(&self) -> &Statement {
        self.rest.last().unwrap_or(&self.first)
    }

    /// Every statement, first to last.
    pub fn statements(&self) -> impl Iterator<Item = &Statement> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    /// The number of statements.
    pub fn len(&self) -> usize {
        self.rest.len() + 1
    }

    /// Always `false`: a chain holds at least its creation statement.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The state right after statement `seq`, or `None` past the head.
    pub fn state_at(&self, seq: u64) -> Option<RoomState> {
        let upto = usize::try_from(seq).ok()?;
        if upto > self.rest.len() {
            return None;
        }
        let first = &self.first;
        let Action::Create(create) = first.action() else {
            return None;
        };
        let mut state = RoomState::genesis(&self.state.room, first.actor(), create, first.hash());
        for stmt in self.rest.iter().take(upto) {
            rules::apply(&mut state, stmt, stmt.hash());
        }
        Some(state)
    }
}

#[cfg(test)]
mod tests;

//! Off-the-record one-to-one sessions: a deniable triple Diffie-Hellman handshake
//! between two users' agreement keys, then a Double Ratchet for the messages.
//!
//! Nothing here is signed: either side could have produced every frame the other
//! receives, which is what makes the conversation deniable. Authenticity comes from
//! the identity agreement keys inside the handshake and its confirmation MACs;
//! forward secrecy comes from deleting each message key as soon as it is used.
//!
//! The server relays [`Frame`]s by their [`OtrSessionId`](crate::OtrSessionId) and
//! never sees keys or content. [`OtrSession`] is the state of one side; it does no
//! I/O and keeps no clock, so timeouts are the caller's.

mod frame;
mod handshake;
mod ratchet;
mod session;

pub use frame::{
    Accept, Body, Confirm, Data, Frame, Header, MAX_BODY_LEN, MAX_FILE_NAME_LEN, Offer,
};
pub use ratchet::{MAX_SKIP_PER_STEP, MAX_SKIPPED_KEYS};
pub use session::{Event, OtrSession, SessionState};

use crate::encoding::DecodeError;
use thiserror::Error;

/// Labels of the OTR part of the protocol (§9, §10).
pub(crate) mod label {
    /// Domain separation for the handshake transcript hash.
    pub(crate) const TRANSCRIPT: &[u8] = b"sotto/v1/otr/transcript";
    /// HKDF info for the handshake's root key and confirmation keys.
    pub(crate) const HANDSHAKE: &[u8] = b"sotto/v1/otr/handshake";
    /// The responder's confirmation MAC input.
    pub(crate) const ACCEPT: &[u8] = b"sotto/v1/otr/accept";
    /// The initiator's confirmation MAC input.
    pub(crate) const CONFIRM: &[u8] = b"sotto/v1/otr/confirm";
    /// HKDF info of the root chain.
    pub(crate) const ROOT: &[u8] = b"sotto/v1/otr/root";
    /// HKDF info that turns a message key into an AES key and nonce.
    pub(crate) const MESSAGE: &[u8] = b"sotto/v1/otr/message";
    /// Domain separation of a data frame's associated data.
    pub(crate) const DATA: &[u8] = b"sotto/v1/otr/data";
}

/// Why an OTR frame was refused or an OTR operation could not run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OtrError {
    /// The frame's bytes are malformed.
    #[error("malformed OTR frame: {0}")]
    Decode(#[from] DecodeError),
    /// The frame names a session id this session is not.
    #[error("frame is for an unknown OTR session")]
    UnknownSession,
    /// The session has ended (or was declined); nothing more can be sent or received.
    #[error("the OTR session has ended")]
    Ended,
    /// The frame is not one this session expects in its current state.
    #[error("unexpected OTR frame for the session's state")]
    UnexpectedFrame,
    /// Messages cannot be sent before the handshake completes.
    #[error("the OTR session is not established yet")]
    NotEstablished,
    /// The offer is not between the expected two users.
    #[error("OTR offer is not between the expected users")]
    WrongParticipants,
    /// The offer is for another room than the direct-message room expected.
    #[error("OTR offer is for another room")]
    WrongRoom,
    /// A Diffie-Hellman result was all zero: the peer sent a low-order key.
    #[error("peer sent a weak key")]
    WeakKey,
    /// A handshake confirmation MAC did not verify: wrong keys or an attacker.
    #[error("OTR handshake confirmation failed")]
    BadConfirmation,
    /// The message claims to skip more messages than the ratchet allows.
    #[error("too many skipped OTR messages")]
    TooManySkipped,
    /// The message's key is gone: it was already used (a replay) or dropped from the
    /// bounded store of skipped keys (a message too old).
    #[error("OTR message key already used or expired")]
    KeyUnavailable,
    /// The message did not decrypt: tampered, or sealed under other keys.
    #[error("OTR message failed to decrypt")]
    DecryptFailed,
    /// The decrypted body is malformed.
    #[error("malformed OTR message body: {0}")]
    Body(DecodeError),
    /// The body is larger than an OTR message may carry.
    #[error("OTR message body is too large")]
    BodyTooLarge,
    /// A sending chain reached the largest message number.
    #[error("OTR sending chain exhausted; refresh keys")]
    ChainExhausted,
}

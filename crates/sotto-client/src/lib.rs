//! The Sotto client library: what the `sotto` command and bots use to take part in a
//! Sotto workspace, end-to-end encrypted rooms and off-the-record conversations
//! included.
//!
//! A [`Client`] is one logged-in user on one [`Profile`] (a directory holding the
//! session, pinned keys, seen message ids and, once unlocked, the private keys). All
//! encryption happens here, with `sotto-crypto`; the server only stores and relays what
//! the client gives it. The REST API and the realtime socket are described in
//! `docs/api.md`, the protocol in `docs/protocol.md`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
mod chain;
mod client;
pub mod error;
mod events;
pub mod export;
pub mod files;
mod keys;
mod messages;
mod otr;
pub mod profile;
mod roomkeys;
mod rooms;
mod users;

pub use api::Api;
pub use client::Client;
pub use error::{Error, Result};
pub use events::{ClientEvent, EventStream, Outbox, Positions};
pub use export::{ExportMessage, Transcript, export_json, export_pdf};
pub use files::{file_message, file_reference};
pub use keys::{Contact, KeyStatus, Verification};
pub use messages::{AttachmentView, Draft, MessageView, Undecryptable};
pub use otr::{
    Follower, MAX_OTR_FILE_BYTES, OTR_OFFER_TIMEOUT, Otr, OtrBroken, OtrCode, OtrEvent, OtrMessage,
    OtrMessageId, Update, is_otr_message_id, refuse_otr_message_id,
};
pub use profile::Profile;
pub use roomkeys::RoomKeys;
pub use rooms::{MemberNote, MemberView, NewRoom, NewRoomKind, RoomView};
pub use sotto_api;
pub use sotto_crypto;

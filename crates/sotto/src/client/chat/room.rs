//! Room messages as the chat shows and sends them: the one place that knows how a room
//! message becomes text and how text becomes a room message and where room-key requests are
//! answered.

use crate::client::messages::{FileSummary, file_summaries};
use sotto_client::Client;
use sotto_client::sotto_api::rooms::Message;
use sotto_client::sotto_crypto::RoomId;

/// A message as the chat shows it, whichever way it travelled.
#[derive(Debug, Clone)]
pub(crate) struct ChatMessage {
    /// The server's message id, or the local id of an OTR message.
    pub(crate) id: String,
    /// Who wrote it.
    pub(crate) sender_id: String,
    /// The text (empty for a message that could not be read; see `problem`).
    pub(crate) text: String,
    /// Sent end-to-end encrypted.
    pub(crate) encrypted: bool,
    /// Sent off the record (never stored by the server).
    pub(crate) otr: bool,
    /// The sender's key is verified.
    pub(crate) verified: bool,
    /// Unix milliseconds (when it was shown, for OTR messages).
    pub(crate) time: i64,
    /// Why the message cannot be read, if it cannot.
    pub(crate) problem: Option<String>,
    /// Attached files.
    pub(crate) attachments: Vec<FileSummary>,
}

/// `message` ready to show: opened and checked by the library (decrypted and verified
/// in an encrypted room); one that cannot be opened carries the reason, never text.
pub(crate) async fn show(client: &Client, message: &Message) -> ChatMessage {
    match client.open_message(message).await {
        Ok(view) => ChatMessage {
            attachments: file_summaries(&view),
            id: view.id,
            sender_id: view.sender_id,
            text: view.text,
            encrypted: view.encrypted,
            otr: false,
            verified: view.verified,
            time: view.created_at,
            problem: view.problem.map(|p| p.to_string()),
        },
        Err(e) => ChatMessage {
            id: message.id.clone(),
            sender_id: message.sender_id.clone(),
            text: String::new(),
            encrypted: message.ciphertext.is_some(),
            otr: false,
            verified: false,
            time: message.created_at,
            problem: Some(e.to_string()),
            attachments: Vec::new(),
        },
    }
}

/// Sends `text` into the room (encrypted and signed when the room's chain says so); its
/// event comes back through the follower.
pub(crate) async fn send(client: &Client, room_id: &str, text: &str) -> sotto_client::Result<()> {
    let room =
        RoomId::new(room_id).map_err(|_| sotto_client::Error::Invalid("invalid room id".into()))?;
    client.send_text(&room, text).await.map(drop)
}

/// Answers a room-key request (E13) and takes a room-key box addressed to this user.
/// Best effort: another member may answer the same request.
pub(crate) async fn on_room_key_event(client: &Client, event: &sotto_client::ClientEvent) {
    let _ = client.keep_keys(event).await;
}

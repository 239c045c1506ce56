//! Room messages as the chat shows and sends them: the one place that knows how a room
//! message becomes text and how text becomes a room message (plaintext through the REST
//! API for now), and where room-key requests are answered.

use sotto_client::Client;
use sotto_client::api::seg;
use sotto_client::sotto_api::rooms::{Message, SendMessageRequest};
use sotto_client::sotto_crypto::{MessageId, os_rng};

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
}

/// `message` ready to show.
pub(crate) async fn show(_client: &Client, message: &Message) -> ChatMessage {
    // INTEGRATION: replace with client.open_message(message) (decrypts and verifies).
    let encrypted = message.ciphertext.is_some();
    ChatMessage {
        id: message.id.clone(),
        sender_id: message.sender_id.clone(),
        text: message.text.clone().unwrap_or_default(),
        encrypted,
        otr: false,
        verified: false,
        time: message.created_at,
        problem: encrypted.then(|| "encrypted messages cannot be read yet".to_owned()),
    }
}

/// Sends `text` into the room; its event comes back through the follower.
pub(crate) async fn send(client: &Client, room_id: &str, text: &str) -> sotto_client::Result<()> {
    // INTEGRATION: replace with client.send_text(room_id, text) (encrypts when the room is).
    let request = SendMessageRequest {
        id: MessageId::random(&mut os_rng()).to_hex(),
        text: Some(text.to_owned()),
        ciphertext: None,
    };
    let path = format!("/api/v1/rooms/{}/messages", seg(room_id));
    let _: Message = client
        .api()
        .send(reqwest::Method::POST, &path, &request)
        .await?;
    Ok(())
}

/// Answers a room-key request (E13) and takes a room-key box addressed to this user.
pub(crate) async fn on_room_key_event(_client: &Client, _event: &sotto_client::ClientEvent) {
    // INTEGRATION: RoomKeyRequest → client.handle_key_request(room_id, epoch_id, &user_ids); RoomKey → client.accept_room_key(room_id, box_b64).
}

//! An echo bot that works in encrypted rooms: it answers every message sent to a room
//! it is in with `echo: <text>`, encrypting and signing its answer where the room is
//! encrypted, and hands room keys on to members who lack them (E13), as every client
//! that holds keys should.
//!
//! Set the bot's account up once with the `sotto` command, in a profile of its own:
//!
//! ```text
//! sotto login --server https://chat.example --username echo-bot --profile ./bot
//! sotto e2e setup --profile ./bot
//! ```
//!
//! then run `cargo run -p sotto-client --example echo_bot -- ./bot`. Invite the bot to a
//! room (or open a direct message with it) and write something.

use sotto_client::sotto_api::realtime::EventKind;
use sotto_client::sotto_crypto::RoomId;
use sotto_client::{Client, ClientEvent, Profile, Update};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: echo_bot PROFILE_DIR (a profile where `sotto login` and `sotto e2e setup` or `unlock` ran)")?;
    let client = Client::open(Profile::open(dir)?)?;
    client.keys()?; // Refuse to start without keys: encrypted rooms would be unreadable.
    eprintln!("echo bot running as {}", client.username());
    run(client, usize::MAX).await?;
    Ok(())
}

/// Follows the bot's rooms and answers `limit` messages (forever with `usize::MAX`).
pub async fn run(client: Client, limit: usize) -> sotto_client::Result<()> {
    let mut follower = client.follow();
    let mut answered = 0;
    while answered < limit {
        let Update::Event(event) = follower.next().await? else {
            continue; // OTR offers are not for bots: they time out on the other side.
        };
        match event {
            ClientEvent::Room(event) => {
                let EventKind::MessageCreated { message } = &event.kind else {
                    continue;
                };
                if message.sender_id == client.user_id().as_str() {
                    continue;
                }
                let view = client.open_message(message).await?;
                // A message the bot cannot open (no key yet, bad signature, …) gets no
                // answer: echoing a failure would leak nothing useful and help no one.
                if view.problem.is_some() || view.text.is_empty() {
                    continue;
                }
                let room = RoomId::new(view.room_id.clone())
                    .map_err(|_| sotto_client::Error::Invalid("bad room id".into()))?;
                client
                    .send_text(&room, &format!("echo: {}", view.text))
                    .await?;
                answered += 1;
            }
            other => {
                // Hand keys on and take keys handed to the bot; best effort, as another
                // member may answer a request too.
                let _ = client.keep_keys(&other).await;
            }
        }
    }
    Ok(())
}

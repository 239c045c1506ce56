//! The example echo bot answers in an encrypted direct message, through a real server.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/echo_bot.rs"]
mod echo_bot;

use sotto_client::sotto_api::realtime::PresenceList;
use sotto_client::sotto_crypto::{RoomId, UserId};
use sotto_client::{Client, Profile};
use sotto_server::testing::TestServer;
use std::time::{Duration, Instant};

const PW: &str = "a login password";

#[tokio::test(flavor = "multi_thread")]
async fn the_echo_bot_answers_in_an_encrypted_room() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let dir = tempfile::tempdir().unwrap();
    let mut clients = Vec::new();
    for name in ["ana", "echo-bot"] {
        server.create_user(name, PW).await;
        let profile = Profile::open(dir.path().join(name)).unwrap();
        let client = Client::login(profile, &server.url(), name, PW)
            .await
            .unwrap();
        client.e2e_setup().await.unwrap();
        clients.push(client);
    }
    let (ana, bot) = (clients.remove(0), clients.remove(0));
    let bot_id: UserId = bot.user_id().clone();
    let dm = ana
        .open_dm(std::slice::from_ref(&bot_id), true)
        .await
        .unwrap();
    let room = RoomId::new(dm.id).unwrap();

    let running = tokio::spawn(echo_bot::run(bot, 1));
    // Write once the bot is connected, so its socket sees the message.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let online: PresenceList = ana.api().get("/api/v1/presence").await.unwrap();
        if online.online.iter().any(|u| u == bot_id.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "the bot never came online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ana.send_text(&room, "ping, secretly").await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the bot answers in time")
        .unwrap()
        .unwrap();

    let history = ana.history(&room, None, None).await.unwrap();
    let answer = history.last().unwrap();
    assert_eq!(answer.sender_id, bot_id.as_str());
    assert_eq!(answer.text, "echo: ping, secretly");
    assert!(answer.encrypted && answer.problem.is_none(), "{answer:?}");
    server.finish().await;
}

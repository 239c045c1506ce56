//! The real server on a real socket: start on port 0, create the admin through the
//! printed setup link's token, log in, and shut down gracefully.

use futures_util::StreamExt;
use serde_json::{Value, json};
use sotto_server::{Config, Server};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;

/// One HTTP/1.1 request; returns status and JSON body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let a = sotto_server::testing::request(addr, method, path, token, body.as_ref()).await;
    (a.status, a.body)
}

#[tokio::test]
async fn serves_over_a_socket_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        database_url: None,
        public_url: None,
    };
    let server = Server::bind(&config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let link = server.setup_link().unwrap().to_owned();
    let prefix = format!("http://{addr}/setup#");
    assert!(link.starts_with(&prefix), "{link}");
    let setup_token = link[prefix.len()..].to_owned();
    assert!(dir.path().join("data/sotto.db").exists());

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let (status, body) = request(
        addr,
        "POST",
        "/api/v1/setup",
        None,
        Some(json!({"setup_token": setup_token, "username": "admin", "password": "correct horse"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = request(
        addr,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"username": "admin", "password": "correct horse"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, me) = request(addr, "GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!((status, me["username"].clone()), (200, json!("admin")));
    let mut socket = sotto_server::testing::connect(addr, &token).await;

    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .expect("graceful shutdown finished")
        .unwrap()
        .unwrap();
    // The realtime socket was told, not cut.
    let close = loop {
        let frame = tokio::time::timeout(sotto_server::testing::WAIT, socket.next())
            .await
            .expect("a close frame in time");
        match frame {
            Some(Ok(Ws::Close(frame))) => break frame.expect("a close code"),
            Some(Ok(_)) => {}
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1001);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );

    // Restarting over the same data: the admin exists, so no new setup link.
    let again = Server::bind(&Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .await
    .unwrap();
    assert_eq!(again.setup_link(), None);
}

#[tokio::test]
async fn in_flight_requests_finish_during_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        database_url: None,
        public_url: Some("https://chat.example.org/".into()),
    };
    let server = Server::bind(&config).await.unwrap();
    assert!(
        server
            .setup_link()
            .unwrap()
            .starts_with("https://chat.example.org/setup#")
    );
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    // Make sure the connection is accepted (one keep-alive exchange), then start a login,
    // which hashes a password for tens of milliseconds, and stop the server meanwhile.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let get = format!("GET /api/v1/setup HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(get.as_bytes()).await.unwrap();
    let (status, _) = read_response(&mut stream).await;
    assert_eq!(status, 200);
    let body = json!({"username": "nobody", "password": "some password"}).to_string();
    let post = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(post.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    stop.send(()).unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_credentials");
    running.await.unwrap().unwrap();
}

/// Reads one response with a Content-Length body from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "connection closed early"
        );
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

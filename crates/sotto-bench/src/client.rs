//! The bench's side of the wire: a pool of keep-alive HTTP/1.1 connections for the REST
//! API, and realtime sockets.

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// No single request of the bench waits longer than this; a slower answer is an error.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        if !(200..300).contains(&self.status) {
            bail!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            );
        }
        serde_json::from_slice(&self.body).context("unexpected answer body")
    }
}

/// Keep-alive connections to one server, reused by whoever asks next. The pool grows to
/// the number of requests in flight at once.
pub(crate) struct Http {
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Http {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One request with an optional JSON body, on a pooled connection.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        let mut conn = match self.take_idle() {
            Some(c) => c,
            None => handshake(TcpStream::connect(self.addr).await?).await?,
        };
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            send(&mut conn, self.addr, method, path, token, body),
        )
        .await
        .context("no answer in time")??;
        if !conn.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
        Ok(answer)
    }

    /// One request on a fresh connection from the local address `from` (any 127.x.y.z
    /// works on loopback), for calls the server limits per client address.
    pub(crate) async fn call_from(
        &self,
        from: IpAddr,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(from, 0))
            .with_context(|| format!("binding to {from}"))?;
        let mut conn = handshake(socket.connect(self.addr).await?).await?;
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            send(&mut conn, self.addr, method, path, None, Some(body)),
        )
        .await
        .context("no answer in time")?
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(conn) = idle.pop() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }
}

async fn handshake(stream: TcpStream) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the server or the pool drops it; nothing to report.
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    conn: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Answer> {
    conn.ready().await?;
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let res = conn.send_request(req).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok(Answer { status, body })
}

/// A realtime socket.
pub(crate) type Socket = WebSocketStream<TcpStream>;

/// Opens the realtime socket. Buffers are kept small: the bench holds thousands of
/// sockets, and event frames are small.
pub(crate) async fn connect_ws(addr: SocketAddr, token: &str) -> anyhow::Result<Socket> {
    let mut req = format!("ws://{addr}/api/v1/ws").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    let (socket, _) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio_tungstenite::client_async_with_config(req, stream, Some(config)),
    )
    .await
    .context("no upgrade in time")??;
    Ok(socket)
}

/// One socket per user, in the users' order, `parallel` upgrades at a time.
pub(crate) async fn connect_all(
    addr: SocketAddr,
    users: &[crate::setup::BenchUser],
    parallel: usize,
) -> anyhow::Result<Vec<Socket>> {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut opening = Vec::with_capacity(users.len());
    for u in users {
        let (gate, token) = (gate.clone(), u.token.clone());
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            connect_ws(addr, &token).await
        }));
    }
    let mut sockets = Vec::with_capacity(opening.len());
    for (i, o) in opening.into_iter().enumerate() {
        sockets.push(
            o.await?
                .with_context(|| format!("opening realtime socket {i}"))?,
        );
    }
    Ok(sockets)
}

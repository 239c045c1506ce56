//! Serving connections: an accept loop over hyper that bounds how long a client may take
//! to send a request, so that clients dribbling bytes (slow-loris) cannot pile up.
//!
//! - The request head must arrive whole within `header_timeout`; the same bound closes a
//!   keep-alive connection left idle between requests.
//! - A body must keep coming: it may take `body_timeout`, plus one second for every
//!   `body_min_rate` bytes it brings, counting only the time spent waiting for the
//!   client. An upload that progresses is never cut; one that stalls or crawls is
//!   answered `request_timeout` and its connection closed.
//!
//! A waiting client holds a socket and a small task, never a thread.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Sleep;

/// How long a client may take over a request.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// The request head must arrive within this; also how long a keep-alive connection
    /// may sit idle.
    pub header_timeout: Duration,
    /// A request body may take this long ...
    pub body_timeout: Duration,
    /// ... and one second more for every this many bytes it brings.
    pub body_min_rate: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(20),
            body_min_rate: 500,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting and waits
/// for the requests in flight (upgraded WebSockets are ended by their own code).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    // Each connection holds a receiver; it is told to stop by a change, and the loop
    // knows all are done when every receiver is gone.
    let (stop, stopping) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(connection(
            stream,
            remote,
            app.clone(),
            limits,
            stopping.clone(),
        ));
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(());
    stop.closed().await;
}

/// Serves one connection until it ends, or, once told to stop, until its request in
/// flight is answered.
async fn connection(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<()>,
) {
    // Answers and socket pushes are small writes that must leave at once: with Nagle's
    // algorithm they wait for the peer's delayed ACK (measured: capacity 224 → 506 msg/s).
    let _ = stream.set_nodelay(true);
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        app.call(req.map(|body| TimedBody::new(body, limits)))
    });
    let mut conn = pin!(
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
    );
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        // Timeouts and clients that go away end here; nothing the operator must act on.
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Errors of one client's connection are its own; anything else (such as running out of
/// file descriptors) passes with time, so wait a moment instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::error!(error = %e, "accepting a connection failed");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A request body that came too slowly.
#[derive(Debug, thiserror::Error)]
#[error("the request body came too slowly")]
pub struct BodyTimeout;

/// A request body that fails with [`BodyTimeout`] when the client falls behind.
struct TimedBody {
    inner: Incoming,
    limits: ConnectionLimits,
    /// Bytes received so far.
    received: u64,
    /// Time spent waiting for the client before the current wait.
    waited: Duration,
    /// When the current wait began.
    waiting_since: Option<Instant>,
    /// Made at the first wait: most bodies arrive whole.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            limits,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            deadline: None,
        }
    }

    /// The time the client has earned so far.
    fn allowed(&self) -> Duration {
        let earned = self.received as f64 / f64::from(self.limits.body_min_rate.max(1));
        self.limits.body_timeout + Duration::from_secs_f64(earned.min(1e9))
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                    this.received += data.len() as u64;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let since = *this.waiting_since.get_or_insert_with(Instant::now);
                let at = since + this.allowed().saturating_sub(this.waited);
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
                deadline.as_mut().reset(at.into());
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

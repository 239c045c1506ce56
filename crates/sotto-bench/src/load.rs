//! Pieces the scenarios share: socket readers that time deliveries, open-loop senders,
//! and the printed server figures.

use crate::client::{Http, Socket, connect_all};
use crate::procfs::{ProcSample, mib};
use crate::report::SharedLatencies;
use crate::schedule::{due_of, find_message_id};
use crate::setup::BenchUser;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

/// What the socket readers saw.
#[derive(Default)]
pub(crate) struct Deliveries {
    /// Due time → arrival of each of this run's messages, on every socket.
    pub(crate) latency: SharedLatencies,
    pub(crate) count: AtomicU64,
    /// Sockets that closed or failed while they should have stayed open.
    pub(crate) closed: AtomicU64,
    /// Microseconds after the epoch of the latest delivery.
    pub(crate) last_micros: AtomicU64,
}

/// Socket readers for a run: each reads its socket until told to stop.
pub(crate) struct Readers {
    pub(crate) seen: Arc<Deliveries>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Readers {
    /// Opens one socket per user (`parallel` handshakes at a time) and starts reading.
    pub(crate) async fn connect(
        addr: SocketAddr,
        users: &[BenchUser],
        tag: &str,
        epoch: Instant,
        parallel: usize,
    ) -> anyhow::Result<Self> {
        let seen = Arc::new(Deliveries::default());
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::with_capacity(users.len());
        for socket in connect_all(addr, users, parallel).await? {
            tasks.push(tokio::spawn(read(
                socket,
                tag.to_owned(),
                epoch,
                seen.clone(),
                stop_rx.clone(),
            )));
        }
        Ok(Self { seen, stop, tasks })
    }

    /// Readers made elsewhere (a peer's own way of receiving): `tasks` record into
    /// `seen` and end when `stop` says so.
    pub(crate) fn from_tasks(
        seen: Arc<Deliveries>,
        stop: watch::Sender<bool>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    ) -> Self {
        Self { seen, stop, tasks }
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn read(
    mut socket: Socket,
    tag: String,
    epoch: Instant,
    seen: Arc<Deliveries>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            f = socket.next() => f,
            _ = stop.changed() => break,
        };
        match frame {
            Some(Ok(Ws::Text(text))) => {
                let now = Instant::now();
                let Some(due) = find_message_id(&tag, &text).and_then(|id| due_of(&tag, id)) else {
                    continue;
                };
                // Only new messages count: their id appears once per socket.
                if !text.contains("\"message_created\"") {
                    continue;
                }
                seen.latency
                    .record(now.saturating_duration_since(epoch + due));
                seen.count.fetch_add(1, Ordering::Relaxed);
                let micros = now.saturating_duration_since(epoch).as_micros() as u64;
                seen.last_micros.fetch_max(micros, Ordering::Relaxed);
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                seen.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    let _ = socket.close(None).await;
}

/// Outcome counters of open-loop requests.
#[derive(Default)]
pub(crate) struct Requests {
    /// Due time → complete answer, for answers with the expected status.
    pub(crate) latency: SharedLatencies,
    pub(crate) ok: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Microseconds after the epoch of the latest answer.
    pub(crate) last_micros: AtomicU64,
}

/// One request and what counts as its success.
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) path: String,
    pub(crate) token: String,
    pub(crate) body: Option<Vec<u8>>,
    /// The status of a success.
    pub(crate) expect: u16,
    /// A further check of a successful answer's body.
    pub(crate) check: Option<fn(&[u8]) -> bool>,
}

/// At most this many requests are in flight; later ones wait for a slot, and the wait
/// counts in their latency (it is measured from the due time).
pub(crate) const MAX_IN_FLIGHT: usize = 512;

/// Starts requests at their due times and waits for all of them.
pub(crate) struct Sender {
    pub(crate) http: Arc<Http>,
    pub(crate) done: Arc<Requests>,
    gate: Arc<Semaphore>,
    in_flight: Arc<AtomicU64>,
}

impl Sender {
    pub(crate) fn new(http: Arc<Http>) -> Self {
        Self {
            http,
            done: Arc::new(Requests::default()),
            gate: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            in_flight: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Spawns one request due at `due`.
    pub(crate) fn fire(&self, epoch: Instant, due: Instant, req: Req) {
        let Req {
            method,
            path,
            token,
            body,
            expect,
            check,
        } = req;
        let (http, done, gate) = (self.http.clone(), self.done.clone(), self.gate.clone());
        let in_flight = self.in_flight.clone();
        in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let Ok(_permit) = gate.acquire_owned().await else {
                return;
            };
            let answer = http.call(method, &path, Some(&token), body).await;
            let now = Instant::now();
            let good = match &answer {
                Ok(a) => a.status == expect && check.is_none_or(|c| c(&a.body)),
                Err(_) => false,
            };
            if good {
                done.latency.record(now.saturating_duration_since(due));
                done.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                done.errors.fetch_add(1, Ordering::Relaxed);
                if done.errors.load(Ordering::Relaxed) <= 3 {
                    match answer {
                        Ok(a) => eprintln!(
                            "  error: {method} {path}: HTTP {} {}",
                            a.status,
                            String::from_utf8_lossy(&a.body[..a.body.len().min(200)])
                        ),
                        Err(e) => eprintln!("  error: {method} {path}: {e:#}"),
                    }
                }
            }
            let micros = now.saturating_duration_since(epoch).as_micros() as u64;
            done.last_micros.fetch_max(micros, Ordering::Relaxed);
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Waits until every started request has finished.
    pub(crate) async fn drain(&self) {
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits until `count` reaches `want` or `limit` passes; the count reached.
pub(crate) async fn wait_for(count: &AtomicU64, want: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let n = count.load(Ordering::Relaxed);
        if n >= want || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server's CPU use and memory between two samples.
pub(crate) fn print_server(before: ProcSample, after: ProcSample, elapsed: Duration) {
    let cpu = after.cpu.saturating_sub(before.cpu);
    println!(
        "  server: {:.2} CPU-seconds in {:.1} s ({:.0} % of one core), RSS {} now, peak RSS {}",
        cpu.as_secs_f64(),
        elapsed.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64().max(1e-9),
        mib(after.rss),
        mib(after.peak_rss)
    );
}

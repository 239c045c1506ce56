//! The peer for the side-by-side comparison: a Synapse homeserver driven through the
//! Matrix client-server API (register, create and join rooms, send, receive by `/sync`
//! long-polling), for scenarios 1 and 2.

use crate::client::Http;
use crate::load::{Deliveries, Readers, Req};
use crate::procfs::ProcSample;
use crate::scenarios::Chat;
use crate::schedule::due_of;
use crate::setup::BenchUser;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// Only room timelines, large enough that a busy interval is not cut short.
const FILTER: &str = r#"{"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]},"room":{"timeline":{"limit":1000},"state":{"lazy_load_members":true},"ephemeral":{"not_types":["*"]},"account_data":{"not_types":["*"]}}}"#;

pub(crate) struct Synapse {
    http: Arc<Http>,
    pid: u32,
    tag: String,
}

impl Synapse {
    pub(crate) fn new(addr: SocketAddr, pid: u32) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("the bench only drives a server on loopback, not {addr}");
        }
        ProcSample::read(pid)?;
        Ok(Self {
            http: Arc::new(Http::new(addr)),
            pid,
            tag: crate::target::random_hex(4)?,
        })
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every message id of this run in a raw `/sync` answer, in order.
pub(crate) fn message_ids<'a>(tag: &str, body: &'a str) -> Vec<&'a str> {
    let needle = format!("\"{tag}-");
    let mut ids = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find(&needle) {
        let start = at + 1;
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        ids.push(&rest[start..start + len]);
        rest = &rest[start + len..];
    }
    ids
}

/// The `next_batch` token of a raw `/sync` answer.
fn next_batch(body: &str) -> Option<String> {
    let at = body.find("\"next_batch\":\"")? + "\"next_batch\":\"".len();
    let len = body[at..].find('"')?;
    Some(body[at..at + len].to_owned())
}

impl Chat for Synapse {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    fn sample(&self) -> anyhow::Result<ProcSample> {
        ProcSample::read(self.pid)
    }

    async fn users(&self, n: usize) -> anyhow::Result<Vec<BenchUser>> {
        let gate = Arc::new(Semaphore::new(4));
        let started = std::time::Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let (http, gate) = (self.http.clone(), gate.clone());
            let username = format!("u{}-{i}", self.tag);
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                let body = json!({
                    "username": username,
                    "password": format!("bench-pw-{username}"),
                    "auth": {"type": "m.login.dummy"},
                    "inhibit_login": false,
                });
                let v: Value = http
                    .call(
                        "POST",
                        "/_matrix/client/v3/register",
                        None,
                        Some(serde_json::to_vec(&body)?),
                    )
                    .await?
                    .json()
                    .with_context(|| format!("registering {username}"))?;
                anyhow::Ok(BenchUser {
                    id: v["user_id"].as_str().context("no user_id")?.to_owned(),
                    token: v["access_token"]
                        .as_str()
                        .context("no access_token")?
                        .to_owned(),
                })
            }));
        }
        let mut users = Vec::with_capacity(n);
        for t in tasks {
            users.push(t.await??);
        }
        eprintln!(
            "registered {n} users in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(users)
    }

    async fn room(
        &self,
        owner: &BenchUser,
        members: &[BenchUser],
        name: &str,
    ) -> anyhow::Result<String> {
        let body = json!({"preset": "public_chat", "name": name});
        let v: Value = self
            .http
            .call(
                "POST",
                "/_matrix/client/v3/createRoom",
                Some(&owner.token),
                Some(serde_json::to_vec(&body)?),
            )
            .await?
            .json()
            .context("creating a room")?;
        let room = v["room_id"].as_str().context("no room_id")?.to_owned();
        let path = format!("/_matrix/client/v3/join/{}", encode(&room));
        // Joins to one room are serialised by Synapse anyway; a few at once keep it busy.
        let gate = Arc::new(Semaphore::new(4));
        let mut joins = Vec::new();
        for m in members {
            let (http, gate, path, token) = (
                self.http.clone(),
                gate.clone(),
                path.clone(),
                m.token.clone(),
            );
            joins.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                http.call("POST", &path, Some(&token), Some(b"{}".to_vec()))
                    .await?
                    .json::<Value>()
                    .context("joining")?;
                anyhow::Ok(())
            }));
        }
        for j in joins {
            j.await??;
        }
        Ok(room)
    }

    fn send(&self, room: &str, user: &BenchUser, id: &str) -> Req {
        Req {
            method: "PUT",
            // The transaction id differs from the message id, so the sender's own echo
            // (which carries it) holds this run's id once.
            path: format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/t{id}",
                encode(room)
            ),
            token: user.token.clone(),
            body: Some(
                serde_json::to_vec(&json!({"msgtype": "m.text", "body": id})).expect("JSON"),
            ),
            expect: 200,
            check: None,
        }
    }

    async fn listen(&self, users: &[BenchUser], epoch: Instant) -> anyhow::Result<Readers> {
        let seen = Arc::new(Deliveries::default());
        let (stop, stop_rx) = watch::channel(false);
        let filter = encode(FILTER);
        let mut tasks = Vec::with_capacity(users.len());
        for u in users {
            // The initial sync: where this user's stream starts.
            let http = Arc::new(Http::new(self.http.addr()));
            let path = format!("/_matrix/client/v3/sync?timeout=0&filter={filter}");
            let a = http.call("GET", &path, Some(&u.token), None).await?;
            let body = String::from_utf8_lossy(&a.body).into_owned();
            let since =
                next_batch(&body).with_context(|| format!("initial sync: HTTP {}", a.status))?;
            tasks.push(tokio::spawn(sync_loop(
                http,
                u.token.clone(),
                since,
                filter.clone(),
                self.tag.clone(),
                epoch,
                seen.clone(),
                stop_rx.clone(),
            )));
        }
        Ok(Readers::from_tasks(seen, stop, tasks))
    }
}

#[allow(clippy::too_many_arguments)]
async fn sync_loop(
    http: Arc<Http>,
    token: String,
    mut since: String,
    filter: String,
    tag: String,
    epoch: Instant,
    seen: Arc<Deliveries>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let path = format!(
            "/_matrix/client/v3/sync?timeout=10000&filter={filter}&since={}",
            encode(&since)
        );
        let answer = tokio::select! {
            a = http.call("GET", &path, Some(&token), None) => a,
            _ = stop.changed() => return,
        };
        let now = Instant::now();
        let body = match answer {
            Ok(a) if a.status == 200 => String::from_utf8_lossy(&a.body).into_owned(),
            _ => {
                seen.closed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for id in message_ids(&tag, &body) {
            if let Some(due) = due_of(&tag, id) {
                seen.latency
                    .record(now.saturating_duration_since(epoch + due));
                seen.count.fetch_add(1, Ordering::Relaxed);
                let micros = now.saturating_duration_since(epoch).as_micros() as u64;
                seen.last_micros.fetch_max(micros, Ordering::Relaxed);
            }
        }
        if let Some(next) = next_batch(&body) {
            since = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_answers_are_scanned_for_this_runs_ids() {
        let body = r#"{"next_batch":"s72_1","rooms":{"join":{"!r:localhost":{"timeline":{"events":[
            {"content":{"body":"ab12-1000-1","msgtype":"m.text"},"unsigned":{"transaction_id":"tab12-1000-1"}},
            {"content":{"body":"ab12-2000-2","msgtype":"m.text"}},
            {"content":{"body":"zz99-3000-3","msgtype":"m.text"}}]}}}}}"#;
        assert_eq!(message_ids("ab12", body), ["ab12-1000-1", "ab12-2000-2"]);
        assert_eq!(next_batch(body).as_deref(), Some("s72_1"));
        assert!(message_ids("ab12", r#"{"next_batch":"x"}"#).is_empty());
    }

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(encode("!abc:localhost"), "%21abc%3Alocalhost");
        assert_eq!(encode("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(encode("{\"x\":1}"), "%7B%22x%22%3A1%7D");
    }
}

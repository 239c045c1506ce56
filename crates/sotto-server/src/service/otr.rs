//! O1–O4, O7, O8: the off-the-record relay.
//!
//! An OTR frame goes from one realtime connection straight into the in-memory queues of
//! the peer's live connections, and from there onto their sockets. Nothing about it is
//! written anywhere: not the database, the blob store, the log or the bus (whose
//! broadcast ring keeps recent events). A frame nobody can take now is refused to the
//! sender at once instead of being kept for later.
//!
//! The frame is opaque beyond its head (protocol §9.1: version byte, kind, session id):
//! the peers' clients check everything else. Memory is bounded per connection: one
//! frame in flight on the sending side (the socket's message limit), a token bucket
//! of frames and of bytes per sending connection, and a bounded queue, in frames and
//! in bytes, per receiving connection.

use super::ServiceError;
use super::settings::SettingsService;
use crate::store::{KeyStore, RoomStore, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sotto_api::{Notice, OTR_MAX_FRAME_BYTES, OtrErrorCode, RoomKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The version byte every OTR frame starts with (protocol §1).
const FRAME_VERSION: u8 = 1;
/// Frame kinds 1 (Offer) to 7 (End) (protocol §9.1).
const FRAME_KINDS: std::ops::RangeInclusive<u8> = 1..=7;
/// Version, kind and the 16-byte session id.
const FRAME_HEAD_LEN: usize = 2 + 16;
/// Longest room id (protocol §1.3); anything longer names no room.
const ROOM_ID_MAX: usize = 64;

/// Per-connection limits of the relay.
#[derive(Clone, Copy, Debug)]
pub struct OtrLimits {
    /// Largest frame, in bytes before base64.
    pub max_frame_bytes: usize,
    /// Frames a connection may send at once ...
    pub burst_frames: u32,
    /// ... and then one more every this long.
    pub frame_every: Duration,
    /// Base64 bytes a connection may send at once (at least one largest frame) ...
    pub burst_bytes: usize,
    /// ... and then this many per second.
    pub bytes_per_sec: usize,
    /// Undelivered frames queued for one receiving connection, at most ...
    pub queue_frames: usize,
    /// ... and undelivered base64 bytes.
    pub queue_bytes: usize,
}

impl Default for OtrLimits {
    fn default() -> Self {
        let largest = base64_len(OTR_MAX_FRAME_BYTES);
        Self {
            max_frame_bytes: OTR_MAX_FRAME_BYTES,
            burst_frames: 30,
            frame_every: Duration::from_millis(100),
            burst_bytes: 2 * largest,
            bytes_per_sec: 1024 * 1024,
            queue_frames: 64,
            queue_bytes: 2 * largest,
        }
    }
}

impl OtrLimits {
    /// The longest base64 text of an accepted frame.
    pub fn max_frame_text(&self) -> usize {
        base64_len(self.max_frame_bytes)
    }
}

/// Length of the padded standard base64 of `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// The length `text` decodes to if it is padded base64 (decoding checks the rest).
fn decoded_len(text: &str) -> usize {
    let padding = text.bytes().rev().take(2).filter(|&b| b == b'=').count();
    (text.len() / 4 * 3).saturating_sub(padding)
}

/// Why a frame was not relayed; sent back to its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtrRefusal {
    /// What went wrong.
    pub code: OtrErrorCode,
    /// For people; never contains the frame.
    pub message: String,
    /// With `RateLimited`: whole seconds until the connection may send again.
    pub retry_after_secs: Option<u64>,
}

impl OtrRefusal {
    fn new(code: OtrErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

/// A relay attempt that failed.
#[derive(Debug)]
pub enum RelayError {
    /// Refused for a reason the sender is told.
    Refused(OtrRefusal),
    /// Reading the room, keys or settings failed.
    Internal(ServiceError),
}

impl From<OtrRefusal> for RelayError {
    fn from(r: OtrRefusal) -> Self {
        Self::Refused(r)
    }
}

impl From<ServiceError> for RelayError {
    fn from(e: ServiceError) -> Self {
        Self::Internal(e)
    }
}

impl From<StoreError> for RelayError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.into())
    }
}

/// The queue of one live connection, as seen by senders.
struct Inbox {
    id: u64,
    tx: mpsc::Sender<Arc<str>>,
    queued_bytes: Arc<AtomicUsize>,
    /// The most bytes that may wait in this queue.
    max_bytes: usize,
}

/// The relay: live connections per user, and the checks a frame must pass.
pub struct OtrService {
    rooms: Arc<dyn RoomStore>,
    keys: Arc<dyn KeyStore>,
    settings: Arc<SettingsService>,
    inboxes: Mutex<HashMap<String, Vec<Inbox>>>,
    next_id: AtomicU64,
}

impl OtrService {
    /// Over the room and key stores and the settings.
    pub fn new(
        rooms: Arc<dyn RoomStore>,
        keys: Arc<dyn KeyStore>,
        settings: Arc<SettingsService>,
    ) -> Self {
        Self {
            rooms,
            keys,
            settings,
            inboxes: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Inbox>>> {
        // Every change to the map is one step, so it stays consistent after a panic.
        self.inboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a live connection of `user_id`: it receives OTR frames addressed to the
    /// user until the link is dropped, and sends through it under `limits`.
    pub fn link(self: &Arc<Self>, user_id: &str, limits: OtrLimits) -> OtrLink {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(limits.queue_frames.max(1));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        self.lock()
            .entry(user_id.to_owned())
            .or_default()
            .push(Inbox {
                id,
                tx,
                queued_bytes: queued_bytes.clone(),
                max_bytes: limits.queue_bytes,
            });
        let now = Instant::now();
        OtrLink {
            service: self.clone(),
            user_id: user_id.to_owned(),
            id,
            rx,
            queued_bytes,
            limits,
            frames: Bucket::new(
                f64::from(limits.burst_frames),
                1.0 / limits.frame_every.as_secs_f64().max(1e-9),
                now,
            ),
            bytes: Bucket::new(limits.burst_bytes as f64, limits.bytes_per_sec as f64, now),
            passed: HashMap::new(),
        }
    }

    /// Whether `user_id` has a live connection on this node.
    pub fn is_connected(&self, user_id: &str) -> bool {
        self.lock().get(user_id).is_some_and(|v| !v.is_empty())
    }

    /// Puts `text` into every queue of `user_id` that has room; how many took it, and
    /// how many queues there were.
    fn deliver(&self, user_id: &str, text: &Arc<str>) -> (usize, usize) {
        let inboxes = self.lock();
        let Some(list) = inboxes.get(user_id) else {
            return (0, 0);
        };
        let len = text.len();
        let mut taken = 0;
        for inbox in list {
            let before = inbox.queued_bytes.fetch_add(len, Ordering::AcqRel);
            if before + len > inbox.max_bytes || inbox.tx.try_send(text.clone()).is_err() {
                inbox.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            } else {
                taken += 1;
            }
        }
        (taken, list.len())
    }

    fn unlink(&self, user_id: &str, id: u64) {
        let mut inboxes = self.lock();
        if let Some(list) = inboxes.get_mut(user_id) {
            list.retain(|i| i.id != id);
            if list.is_empty() {
                inboxes.remove(user_id);
            }
        }
    }
}

/// One live connection's end of the relay: its inbox, and its sending limits. Dropping
/// it unregisters the connection; whatever was still queued for it is gone.
pub struct OtrLink {
    service: Arc<OtrService>,
    user_id: String,
    id: u64,
    rx: mpsc::Receiver<Arc<str>>,
    queued_bytes: Arc<AtomicUsize>,
    limits: OtrLimits,
    frames: Bucket,
    bytes: Bucket,
    /// Rooms whose checks passed (the user and one other person in a direct message,
    /// both with keys) → that person; kept until [`OtrLink::forget_room`] or
    /// [`OtrLink::forget_user`] says something changed, so a frame needs no query.
    passed: HashMap<String, String>,
}

/// Most rooms an [`OtrLink`] remembers as checked; past it, it starts afresh.
const PASSED_ROOMS_MAX: usize = 64;

impl Drop for OtrLink {
    fn drop(&mut self) {
        self.service.unlink(&self.user_id, self.id);
    }
}

impl OtrLink {
    /// The next frame for this connection: the JSON text of an `otr` notice. Waits
    /// forever when there is none.
    pub async fn next(&mut self) -> Arc<str> {
        match self.rx.recv().await {
            Some(text) => {
                self.queued_bytes.fetch_sub(text.len(), Ordering::AcqRel);
                text
            }
            // The sending half lives in the service until this link drops.
            None => std::future::pending().await,
        }
    }

    /// Relays `frame` (base64) from this connection's user to the other person of the
    /// direct message `room_id`, checking everything the sender must be told about.
    pub async fn relay(&mut self, room_id: &str, frame: &str) -> Result<(), RelayError> {
        self.relay_at(room_id, frame, Instant::now()).await
    }

    async fn relay_at(
        &mut self,
        room_id: &str,
        frame: &str,
        now: Instant,
    ) -> Result<(), RelayError> {
        let max = self.limits.max_frame_bytes;
        let too_large = move || {
            OtrRefusal::new(
                OtrErrorCode::FrameTooLarge,
                format!("an OTR frame is at most {max} bytes"),
            )
        };
        if frame.len() > self.limits.max_frame_text() || decoded_len(frame) > max {
            return Err(too_large().into());
        }
        self.take_allowance(frame.len(), now)?;
        if !self.service.settings.current().await?.otr_enabled {
            return Err(OtrRefusal::new(
                OtrErrorCode::OtrDisabled,
                "off-the-record conversations are turned off in this workspace",
            )
            .into());
        }
        let bytes = STANDARD.decode(frame).map_err(|_| {
            OtrRefusal::new(OtrErrorCode::InvalidFrame, "frame: not standard base64")
        })?;
        if bytes.len() > self.limits.max_frame_bytes {
            return Err(too_large().into());
        }
        if bytes.len() < FRAME_HEAD_LEN
            || bytes[0] != FRAME_VERSION
            || !FRAME_KINDS.contains(&bytes[1])
        {
            return Err(OtrRefusal::new(
                OtrErrorCode::InvalidFrame,
                "frame: not an OTR frame of protocol version 1",
            )
            .into());
        }
        let peer = match self.passed.get(room_id) {
            Some(peer) => peer.clone(),
            None => self.check_room(room_id).await?,
        };
        let text: Arc<str> = serde_json::to_string(&Notice::Otr {
            room_id: room_id.to_owned(),
            sender_id: self.user_id.clone(),
            frame: frame.to_owned(),
        })
        .map_err(|e| ServiceError::Internal(format!("otr notice: {e}")))?
        .into();
        match self.service.deliver(&peer, &text) {
            (0, 0) => Err(OtrRefusal::new(
                OtrErrorCode::PeerOffline,
                "the other person is not online",
            )
            .into()),
            (0, _) => Err(OtrRefusal::new(
                OtrErrorCode::PeerBusy,
                "the other person's connections are not keeping up; retry shortly",
            )
            .into()),
            _ => Ok(()),
        }
    }

    /// Something changed in `room_id` (its membership): check it again before the next
    /// frame.
    pub fn forget_room(&mut self, room_id: &str) {
        self.passed.remove(room_id);
    }

    /// `user_id`'s keys changed: check again every room with them in it.
    pub fn forget_user(&mut self, user_id: &str) {
        if user_id == self.user_id {
            self.passed.clear();
        } else {
            self.passed.retain(|_, peer| peer != user_id);
        }
    }

    /// The room and key checks of a frame to `room_id`: the other person, remembered.
    async fn check_room(&mut self, room_id: &str) -> Result<String, RelayError> {
        let peer = self.peer_in(room_id).await?;
        let bundles = self
            .service
            .keys
            .bundles(&[self.user_id.clone(), peer.clone()])
            .await?;
        let has = |u: &str| bundles.iter().any(|b| b.user_id == u);
        if !has(&self.user_id) {
            return Err(OtrRefusal::new(
                OtrErrorCode::KeysMissing,
                "you have not set up your encryption keys",
            )
            .into());
        }
        if !has(&peer) {
            return Err(OtrRefusal::new(
                OtrErrorCode::KeysMissing,
                "the other person has not set up their encryption keys",
            )
            .into());
        }
        if self.passed.len() >= PASSED_ROOMS_MAX {
            self.passed.clear();
        }
        self.passed.insert(room_id.to_owned(), peer.clone());
        Ok(peer)
    }

    /// Uses one frame and `len` bytes of this connection's allowance, or says how long
    /// to wait; a refused frame uses nothing.
    fn take_allowance(&mut self, len: usize, now: Instant) -> Result<(), OtrRefusal> {
        // Never more than the burst, so a frame the size limit allows can always pass.
        let len = len.min(self.limits.burst_bytes) as f64;
        let wait = match (self.frames.wait(1.0, now), self.bytes.wait(len, now)) {
            (None, None) => {
                self.frames.take(1.0);
                self.bytes.take(len);
                return Ok(());
            }
            (a, b) => a.unwrap_or_default().max(b.unwrap_or_default()),
        };
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(OtrRefusal {
            code: OtrErrorCode::RateLimited,
            message: format!("too many OTR frames; retry in {secs} s"),
            retry_after_secs: Some(secs.max(1)),
        })
    }

    /// The other person of the two-person direct message `room_id` the user is in.
    async fn peer_in(&self, room_id: &str) -> Result<String, RelayError> {
        let not_found = || {
            OtrRefusal::new(
                OtrErrorCode::RoomNotFound,
                "room not found (or you are not in it)",
            )
        };
        if room_id.is_empty() || room_id.len() > ROOM_ID_MAX {
            return Err(not_found().into());
        }
        let Some(room) = self.service.rooms.room_by_id(room_id).await? else {
            return Err(not_found().into());
        };
        let members = self.service.rooms.members(room_id).await?;
        if !members.iter().any(|m| m.user_id == self.user_id) {
            return Err(not_found().into());
        }
        let mut others = members.iter().filter(|m| m.user_id != self.user_id);
        match (room.kind, others.next(), others.next()) {
            (RoomKind::Direct, Some(peer), None) => Ok(peer.user_id.clone()),
            _ => Err(OtrRefusal::new(
                OtrErrorCode::NotDirect,
                "off the record is only for a direct message with exactly one other person",
            )
            .into()),
        }
    }
}

/// A token bucket of one connection (no lock: the connection owns it).
struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    updated: Instant,
}

impl Bucket {
    fn new(burst: f64, per_sec: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            burst,
            per_sec: per_sec.max(f64::MIN_POSITIVE),
            updated: now,
        }
    }

    /// Refills up to `now`; `None` if `n` tokens are there, else how long until they are.
    fn wait(&mut self, n: f64, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.updated = now.max(self.updated);
        if self.tokens >= n {
            None
        } else {
            Some(Duration::from_secs_f64(
                ((n.min(self.burst) - self.tokens) / self.per_sec).min(86_400.0),
            ))
        }
    }

    fn take(&mut self, n: f64) {
        self.tokens -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemberRecord, RoomRecord, Stores, UserRecord};
    use crate::test_support::sqlite_stores;

    /// Users a and b with key bundles, their DM "dm", and OTR on.
    async fn relay() -> (tempfile::TempDir, Stores, Arc<OtrService>) {
        let (dir, s) = sqlite_stores().await;
        for id in ["a", "b"] {
            s.users
                .insert_user(&UserRecord {
                    id: id.into(),
                    username: id.into(),
                    display_name: id.into(),
                    password_hash: "x".into(),
                    admin: false,
                    deactivated: false,
                    created_at: 1,
                })
                .await
                .unwrap();
            assert!(
                s.keys
                    .publish_keys(id, b"bundle", b"backup", 1)
                    .await
                    .unwrap()
            );
        }
        let member = |id: &str| MemberRecord {
            user_id: id.into(),
            username: String::new(),
            owner: false,
            joined_at: 1,
        };
        s.rooms
            .insert_room(
                &RoomRecord {
                    id: "dm".into(),
                    kind: RoomKind::Direct,
                    private: true,
                    name: None,
                    topic: String::new(),
                    parent_id: None,
                    encrypted: false,
                    created_by: "a".into(),
                    created_at: 1,
                    seq: 1,
                    dm_key: Some("a,b".into()),
                },
                &[member("a"), member("b")],
            )
            .await
            .unwrap();
        s.settings
            .save_settings(&[("otr.enabled".into(), "true".into())])
            .await
            .unwrap();
        let settings = Arc::new(SettingsService::new(s.settings.clone()));
        let service = Arc::new(OtrService::new(s.rooms.clone(), s.keys.clone(), settings));
        (dir, s, service)
    }

    fn end_frame(n: u8) -> String {
        let mut f = vec![FRAME_VERSION, 7];
        f.extend([n; 16]);
        STANDARD.encode(f)
    }

    fn code(r: Result<(), RelayError>) -> Option<OtrErrorCode> {
        match r {
            Ok(()) => None,
            Err(RelayError::Refused(r)) => Some(r.code),
            Err(RelayError::Internal(e)) => panic!("{e}"),
        }
    }

    /// A connection that does not take its frames holds at most its queue; then the
    /// sender hears `peer_busy`, and a closed connection leaves nothing behind.
    #[tokio::test]
    async fn queues_are_bounded_and_go_with_their_connection() {
        let (_dir, _s, service) = relay().await;
        let limits = OtrLimits {
            queue_frames: 2,
            ..OtrLimits::default()
        };
        let mut a = service.link("a", limits);
        let mut b = service.link("b", limits);
        assert_eq!(code(a.relay("dm", &end_frame(1)).await), None);
        assert_eq!(code(a.relay("dm", &end_frame(2)).await), None);
        assert_eq!(
            code(a.relay("dm", &end_frame(3)).await),
            Some(OtrErrorCode::PeerBusy)
        );
        let first = b.next().await;
        assert!(first.contains(&end_frame(1)), "{first}");
        assert_eq!(code(a.relay("dm", &end_frame(4)).await), None);
        assert!(b.next().await.contains(&end_frame(2)));
        assert!(b.next().await.contains(&end_frame(4)));
        assert_eq!(b.queued_bytes.load(Ordering::Acquire), 0);

        // Bytes bound the queue too: room for one frame's notice only.
        let one = first.len();
        let mut b2 = service.link(
            "b",
            OtrLimits {
                queue_bytes: one + 10,
                ..OtrLimits::default()
            },
        );
        assert_eq!(code(a.relay("dm", &end_frame(5)).await), None);
        assert_eq!(code(a.relay("dm", &end_frame(6)).await), None);
        // b took both, b2 only the first.
        assert!(b.next().await.contains(&end_frame(5)));
        assert!(b.next().await.contains(&end_frame(6)));
        assert!(b2.next().await.contains(&end_frame(5)));
        assert_eq!(b2.queued_bytes.load(Ordering::Acquire), 0);

        drop(b);
        drop(b2);
        assert!(!service.is_connected("b"));
        assert!(!service.lock().contains_key("b"), "no entry left behind");
        assert_eq!(
            code(a.relay("dm", &end_frame(7)).await),
            Some(OtrErrorCode::PeerOffline)
        );
        drop(a);
        assert!(service.lock().is_empty());
    }

    /// Checks that passed are not made again for every frame, but a change the
    /// connection is told about (keys reset, membership) is checked at the next frame.
    #[tokio::test]
    async fn passed_checks_are_remembered_until_something_changes() {
        let (_dir, s, service) = relay().await;
        let mut a = service.link("a", OtrLimits::default());
        let _b = service.link("b", OtrLimits::default());
        assert_eq!(code(a.relay("dm", &end_frame(1)).await), None);
        assert!(s.keys.remove_keys("b").await.unwrap());
        // Not told yet: the remembered check stands.
        assert_eq!(code(a.relay("dm", &end_frame(2)).await), None);
        a.forget_user("someone else");
        assert_eq!(code(a.relay("dm", &end_frame(3)).await), None);
        a.forget_user("b");
        assert_eq!(
            code(a.relay("dm", &end_frame(4)).await),
            Some(OtrErrorCode::KeysMissing)
        );
        assert!(
            s.keys
                .publish_keys("b", b"bundle", b"backup", 2)
                .await
                .unwrap()
        );
        assert_eq!(code(a.relay("dm", &end_frame(5)).await), None);
        s.rooms.remove_member("dm", "a").await.unwrap().unwrap();
        a.forget_room("dm");
        assert_eq!(
            code(a.relay("dm", &end_frame(6)).await),
            Some(OtrErrorCode::RoomNotFound)
        );
    }

    #[test]
    fn bucket_allows_a_burst_then_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3.0, 2.0, t0);
        for _ in 0..3 {
            assert_eq!(b.wait(1.0, t0), None);
            b.take(1.0);
        }
        assert_eq!(b.wait(1.0, t0), Some(Duration::from_millis(500)));
        assert_eq!(b.wait(1.0, t0 + Duration::from_millis(500)), None);
        // Never more than the burst, however long the pause.
        assert_eq!(b.wait(3.0, t0 + Duration::from_secs(3600)), None);
        assert!(b.wait(3.5, t0 + Duration::from_secs(3600)).is_some());
    }

    #[test]
    fn default_limits_fit_the_largest_frame() {
        let l = OtrLimits::default();
        assert!(l.burst_bytes >= l.max_frame_text());
        assert!(l.queue_bytes >= l.max_frame_text());
        assert_eq!(base64_len(0), 0);
        assert_eq!(base64_len(1), 4);
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
        for n in 0..10 {
            assert_eq!(decoded_len(&STANDARD.encode(vec![7u8; n])), n);
        }
        assert_eq!(
            STANDARD.encode(vec![0u8; OTR_MAX_FRAME_BYTES]).len(),
            l.max_frame_text()
        );
    }
}

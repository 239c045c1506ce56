//! Scenarios 1–3 of issue 6 (scenario 4 is in `history.rs`).

use crate::client::{Http, connect_ws};
use crate::load::{Readers, Req, Sender, print_server, wait_for};
use crate::procfs::{mib, require_open_files};
use crate::report::{Latencies, per_second};
use crate::schedule::{Schedule, message_id};
use crate::setup::{BenchUser, create_room, create_users, room_sizes};
use crate::target::Target;
use anyhow::bail;
use clap::Args;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

pub(crate) fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0 && v.is_finite())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("not a positive number of seconds: {s}"))
}

pub(crate) fn send_body(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "text": "benchmark message"})).expect("JSON")
}

/// A server the chat scenarios (1 and 2) can drive: Sotto, or a peer to compare with.
pub(crate) trait Chat {
    /// This run's random tag, in names and message ids.
    fn tag(&self) -> &str;
    fn addr(&self) -> std::net::SocketAddr;
    fn sample(&self) -> anyhow::Result<crate::procfs::ProcSample>;
    /// `n` users, each with a token.
    async fn users(&self, n: usize) -> anyhow::Result<Vec<BenchUser>>;
    /// A room of `owner` and `members`; its id.
    async fn room(
        &self,
        owner: &BenchUser,
        members: &[BenchUser],
        name: &str,
    ) -> anyhow::Result<String>;
    /// The request that sends message `id` from `user` to `room`.
    fn send(&self, room: &str, user: &BenchUser, id: &str) -> Req;
    /// Starts receiving every user's messages.
    async fn listen(&self, users: &[BenchUser], epoch: Instant) -> anyhow::Result<Readers>;
}

impl Chat for Target {
    fn tag(&self) -> &str {
        &self.tag
    }
    fn addr(&self) -> std::net::SocketAddr {
        self.http.addr()
    }
    fn sample(&self) -> anyhow::Result<crate::procfs::ProcSample> {
        Target::sample(self)
    }
    async fn users(&self, n: usize) -> anyhow::Result<Vec<BenchUser>> {
        create_users(self, n).await
    }
    async fn room(
        &self,
        owner: &BenchUser,
        members: &[BenchUser],
        name: &str,
    ) -> anyhow::Result<String> {
        create_room(&self.http, owner, members, name).await
    }
    fn send(&self, room: &str, user: &BenchUser, id: &str) -> Req {
        send_req(room, user, id)
    }
    async fn listen(&self, users: &[BenchUser], epoch: Instant) -> anyhow::Result<Readers> {
        Readers::connect(self.http.addr(), users, &self.tag, epoch, 64).await
    }
}

fn send_req(room: &str, user: &BenchUser, id: &str) -> Req {
    Req {
        method: "POST",
        path: format!("/api/v1/rooms/{room}/messages"),
        token: user.token.clone(),
        body: Some(send_body(id)),
        expect: 201,
        check: None,
    }
}

#[derive(Args, Debug)]
pub(crate) struct FanoutArgs {
    /// Members of the room, each with one open socket.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Messages per second sent via REST.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value = "60", value_parser = secs)]
    duration: Duration,
    /// How many of the members take turns sending.
    #[arg(long, default_value_t = 10)]
    senders: usize,
}

/// Scenario 1: one room of N online members, R messages/s via REST.
pub(crate) async fn fanout(target: &impl Chat, args: &FanoutArgs) -> anyhow::Result<()> {
    if args.members < 2 || args.senders == 0 {
        bail!("need at least 2 members and 1 sender");
    }
    let users = target.users(args.members).await?;
    let http = Arc::new(Http::new(target.addr()));
    let room = target.room(&users[0], &users[1..], "fan-out").await?;
    let epoch = Instant::now();
    let readers = target.listen(&users, epoch).await?;
    // Everyone coming online sends presence to everyone else; let that settle first.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let schedule = Schedule::for_duration(args.rate, args.duration);
    let sender = Sender::new(http.clone());
    let before = target.sample()?;
    let start = Instant::now() + Duration::from_millis(50);
    let began = start - epoch;
    schedule
        .run(start, |i, due| {
            let user = &users[i as usize % args.senders.min(users.len())];
            let id = message_id(target.tag(), due - epoch, i);
            sender.fire(epoch, due, target.send(&room, user, &id));
        })
        .await;
    sender.drain().await;
    let ok = sender.done.ok.load(Ordering::Relaxed);
    let want = ok * args.members as u64;
    let got = wait_for(&readers.seen.count, want, Duration::from_secs(10)).await;
    let after = target.sample()?;
    let end = Duration::from_micros(
        readers
            .seen
            .last_micros
            .load(Ordering::Relaxed)
            .max(sender.done.last_micros.load(Ordering::Relaxed)),
    );
    let window = end.saturating_sub(began);
    let rest = sender.done.latency.take();
    let delivered = readers.seen.latency.take();
    let errors = sender.done.errors.load(Ordering::Relaxed);
    println!(
        "fan-out: {} members, {} msg/s offered for {:.0} s ({} messages), {} senders",
        args.members,
        args.rate,
        args.duration.as_secs_f64(),
        schedule.count,
        args.senders
    );
    println!("  REST send (due → answer):     {}", rest.summary());
    println!("  send → receive, every member: {}", delivered.summary());
    println!(
        "  throughput: {:.1} persisted msg/s, {:.0} deliveries/s over {:.1} s",
        per_second(ok, window),
        per_second(got, window),
        window.as_secs_f64()
    );
    println!(
        "  errors: {errors} sends failed, {} deliveries missing, {} sockets closed",
        want.saturating_sub(got),
        readers.seen.closed.load(Ordering::Relaxed)
    );
    print_server(before, after, window);
    readers.stop().await;
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct CapacityArgs {
    #[command(flatten)]
    rooms: RoomArgs,
    /// Messages per second of the first step.
    #[arg(long, default_value_t = 250.0)]
    start_rate: f64,
    /// Each step's rate is the previous one's times this.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Seconds per step.
    #[arg(long, default_value = "10", value_parser = secs)]
    step: Duration,
    /// Stop after the step whose REST p99 passes this many milliseconds.
    #[arg(long, default_value_t = 200.0)]
    p99_limit_ms: f64,
    /// Never offer more than this many messages per second.
    #[arg(long, default_value_t = 50_000.0)]
    max_rate: f64,
}

/// Scenario 2: many users in small rooms; the send rate rises step by step until REST
/// p99 passes the limit (or sends fail).
pub(crate) async fn capacity(target: &impl Chat, args: &CapacityArgs) -> anyhow::Result<()> {
    if args.factor <= 1.0 {
        bail!("--factor must be above 1");
    }
    let load = SmallRooms::open(target, &args.rooms).await?;
    println!(
        "capacity: {} users in {} rooms of {}–{}, {} s steps, stop at REST p99 > {} ms",
        load.users.len(),
        load.rooms,
        args.rooms.room_min,
        args.rooms.room_max,
        args.step.as_secs_f64(),
        args.p99_limit_ms
    );
    println!("  {}", StepRow::HEADER);
    let mut rate = args.start_rate;
    let mut best: Option<(f64, f64)> = None;
    loop {
        let row = load.step(target, rate, args.step).await?;
        println!("  {row}");
        let over = row.rest_ms[1] > args.p99_limit_ms;
        let failing = row.failed_sends * 100 > row.sends;
        if !over && !failing {
            best = Some((row.persisted, row.deliveries));
        }
        if over || failing || rate * args.factor > args.max_rate {
            if failing {
                println!("  stopped: more than 1 % of sends failed");
            }
            break;
        }
        rate *= args.factor;
    }
    match best {
        Some((p, d)) => println!(
            "  capacity (last step within the limit): {p:.0} persisted msg/s, {d:.0} deliveries/s"
        ),
        None => println!("  no step stayed within the limit"),
    }
    load.finish(target).await
}

#[derive(Args, Debug)]
pub(crate) struct SoakArgs {
    #[command(flatten)]
    rooms: RoomArgs,
    /// Messages per second, held for the whole run (half the measured capacity).
    #[arg(long)]
    rate: f64,
    /// Minutes of load; one row per minute.
    #[arg(long, default_value_t = 30)]
    minutes: u32,
}

/// The soak: scenario 2's users and rooms at one fixed rate for many minutes, one row
/// (with the server's resident memory) per minute, so growth over time shows.
pub(crate) async fn soak(target: &impl Chat, args: &SoakArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate.is_finite()) || args.minutes == 0 {
        bail!("need a positive --rate and --minutes");
    }
    let load = SmallRooms::open(target, &args.rooms).await?;
    println!(
        "soak: {} users in {} rooms of {}–{}, {} msg/s for {} min",
        load.users.len(),
        load.rooms,
        args.rooms.room_min,
        args.rooms.room_max,
        args.rate,
        args.minutes
    );
    println!("  min | {} | server RSS", StepRow::HEADER);
    let mut failed = 0;
    for minute in 1..=args.minutes {
        let row = load
            .step(target, args.rate, Duration::from_secs(60))
            .await?;
        failed += row.failed_sends + row.missing;
        println!("  {minute:>3} | {row} | {}", mib(target.sample()?.rss));
    }
    println!("  errors over the whole run: {failed}");
    load.finish(target).await
}

#[derive(Args, Debug)]
pub(crate) struct RoomArgs {
    /// Users, each online with one socket and in one room.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Smallest room.
    #[arg(long, default_value_t = 4)]
    room_min: usize,
    /// Largest room.
    #[arg(long, default_value_t = 10)]
    room_max: usize,
}

/// Scenario 2's population: every user online in one small room, and the message
/// counter shared by the steps run over it.
struct SmallRooms {
    users: Vec<BenchUser>,
    /// Each user's room and its member count.
    room_of: Vec<(String, u64)>,
    rooms: usize,
    http: Arc<Http>,
    readers: Readers,
    epoch: Instant,
    sent: AtomicU64,
}

impl SmallRooms {
    async fn open(target: &impl Chat, args: &RoomArgs) -> anyhow::Result<Self> {
        if args.room_min < 2 || args.room_min > args.room_max || args.users < args.room_min {
            bail!("need 2 <= room-min <= room-max <= users");
        }
        let users = target.users(args.users).await?;
        let mut room_of: Vec<(String, u64)> = Vec::with_capacity(users.len());
        let mut next = 0;
        let sizes = room_sizes(users.len(), args.room_min, args.room_max, 0x5077_0b3e);
        for (k, &size) in sizes.iter().enumerate() {
            let group = &users[next..next + size];
            let room = target
                .room(&group[0], &group[1..], &format!("room-{k}"))
                .await?;
            room_of.extend(std::iter::repeat_n((room, size as u64), size));
            next += size;
        }
        eprintln!("created {} rooms", sizes.len());
        let epoch = Instant::now();
        let readers = target.listen(&users, epoch).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(Self {
            http: Arc::new(Http::new(target.addr())),
            users,
            room_of,
            rooms: sizes.len(),
            readers,
            epoch,
            sent: AtomicU64::new(0),
        })
    }

    /// Sends at `rate` for `duration`, users taking turns, and waits for the deliveries.
    async fn step(
        &self,
        target: &impl Chat,
        rate: f64,
        duration: Duration,
    ) -> anyhow::Result<StepRow> {
        let (epoch, readers) = (self.epoch, &self.readers);
        let sender = Sender::new(self.http.clone());
        let delivered_before = readers.seen.count.load(Ordering::Relaxed);
        readers.seen.latency.take();
        let schedule = Schedule::for_duration(rate, duration);
        let before = target.sample()?;
        let start = Instant::now() + Duration::from_millis(50);
        let mut want = 0u64;
        schedule
            .run(start, |_, due| {
                let n = self.sent.fetch_add(1, Ordering::Relaxed);
                let k = n as usize % self.users.len();
                let (room, size) = &self.room_of[k];
                let id = message_id(target.tag(), due - epoch, n);
                want += size;
                sender.fire(epoch, due, target.send(room, &self.users[k], &id));
            })
            .await;
        sender.drain().await;
        let ok = sender.done.ok.load(Ordering::Relaxed);
        let errors = sender.done.errors.load(Ordering::Relaxed);
        // Failed sends deliver nothing; expect deliveries for the successful share.
        let want = want * ok / (ok + errors).max(1);
        let got = wait_for(
            &readers.seen.count,
            delivered_before + want,
            Duration::from_secs(10),
        )
        .await
            - delivered_before;
        let after = target.sample()?;
        let end = Duration::from_micros(
            readers
                .seen
                .last_micros
                .load(Ordering::Relaxed)
                .max(sender.done.last_micros.load(Ordering::Relaxed)),
        );
        let window = end.saturating_sub(start - epoch);
        let rest = sender.done.latency.take().summary();
        let delivery = readers.seen.latency.take().summary();
        let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Ok(StepRow {
            offered: rate,
            persisted: per_second(ok, window),
            deliveries: per_second(got, window),
            rest_ms: [ms(rest.p50), ms(rest.p99), ms(rest.p999), ms(rest.max)],
            delivery_ms: [ms(delivery.p50), ms(delivery.p99), ms(delivery.max)],
            sends: ok + errors,
            failed_sends: errors,
            missing: want.saturating_sub(got),
            cpu_percent: 100.0 * cpu / window.as_secs_f64().max(1e-9),
        })
    }

    async fn finish(self, target: &impl Chat) -> anyhow::Result<()> {
        println!(
            "  sockets closed during the run: {}; server peak RSS {}",
            self.readers.seen.closed.load(Ordering::Relaxed),
            mib(target.sample()?.peak_rss)
        );
        self.readers.stop().await;
        Ok(())
    }
}

/// One step of a run over [`SmallRooms`], printed as a table row.
struct StepRow {
    offered: f64,
    persisted: f64,
    deliveries: f64,
    /// REST p50, p99, p99.9, max.
    rest_ms: [f64; 4],
    /// Send → receive p50, p99, max.
    delivery_ms: [f64; 3],
    sends: u64,
    failed_sends: u64,
    missing: u64,
    cpu_percent: f64,
}

impl StepRow {
    const HEADER: &str = "offered msg/s | persisted msg/s | deliveries/s | REST p50 / p99 / p99.9 / max (ms) | delivery p50 / p99 / max (ms) | errors | server CPU %";
}

impl std::fmt::Display for StepRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [r50, r99, r999, rmax] = self.rest_ms;
        let [d50, d99, dmax] = self.delivery_ms;
        write!(
            f,
            "{:>13.0} | {:>15.0} | {:>12.0} | {r50:.1} / {r99:.1} / {r999:.1} / {rmax:.1} | {d50:.1} / {d99:.1} / {dmax:.1} | {} | {:.0}",
            self.offered,
            self.persisted,
            self.deliveries,
            self.failed_sends + self.missing,
            self.cpu_percent,
        )
    }
}

#[derive(Args, Debug)]
pub(crate) struct IdleArgs {
    /// Open sockets.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Users they belong to (connections are spread evenly over them).
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Seconds to hold them idle (the server pings every 30 s: hold longer than that to
    /// see heartbeats answered).
    #[arg(long, default_value = "40", value_parser = secs)]
    hold: Duration,
    /// Clients in the reconnect storm (0: none).
    #[arg(long, default_value_t = 5000)]
    storm: usize,
    /// Seconds the storm's reconnects are spread over.
    #[arg(long, default_value = "10", value_parser = secs)]
    storm_window: Duration,
}

/// Scenario 3: idle authenticated sockets (server memory per connection), then a
/// reconnect storm.
pub(crate) async fn idle(target: &Target, args: &IdleArgs) -> anyhow::Result<()> {
    let need = (args.connections + args.storm + 200) as u64;
    require_open_files(need)?;
    if args.users == 0 || args.storm > args.connections {
        bail!("need at least 1 user, and a storm no larger than the connections");
    }
    let users = create_users(target, args.users).await?;
    let addr = target.http.addr();
    let epoch = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = target.sample()?;

    let tokens: Vec<BenchUser> = (0..args.connections)
        .map(|i| users[i % users.len()].clone())
        .collect();
    let opened = Instant::now();
    let readers = Readers::connect(addr, &tokens, &target.tag, epoch, 256).await?;
    let open_time = opened.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = target.sample()?;
    tokio::time::sleep(args.hold).await;
    let held = target.sample()?;
    let closed = readers.seen.closed.load(Ordering::Relaxed);
    let per = |s: u64| (s.saturating_sub(before.rss)) as f64 / args.connections as f64 / 1024.0;
    println!(
        "idle sockets: {} connections of {} users, opened in {:.1} s, held {:.0} s",
        args.connections,
        users.len(),
        open_time.as_secs_f64(),
        args.hold.as_secs_f64()
    );
    println!(
        "  server RSS: {} before, {} with all open ({:.1} KiB per connection), {} after the hold ({:.1} KiB per connection)",
        mib(before.rss),
        mib(connected.rss),
        per(connected.rss),
        mib(held.rss),
        per(held.rss)
    );
    println!("  sockets closed by the server or failing during the hold: {closed}");
    print_server(before, held, opened.elapsed());
    readers.stop().await;

    if args.storm > 0 {
        // The storm: `storm` clients reconnect, due evenly over the window; latency is due
        // time → upgrade complete.
        let schedule = Schedule::for_duration(
            args.storm as f64 / args.storm_window.as_secs_f64(),
            args.storm_window,
        );
        let latency = Arc::new(crate::report::SharedLatencies::default());
        let errors = Arc::new(AtomicU64::new(0));
        let mut sockets = Vec::with_capacity(args.storm);
        let before = target.sample()?;
        let start = Instant::now() + Duration::from_millis(50);
        schedule
            .run(start, |i, due| {
                let token = tokens[i as usize % tokens.len()].token.clone();
                let (latency, errors) = (latency.clone(), errors.clone());
                sockets.push(tokio::spawn(async move {
                    match connect_ws(addr, &token).await {
                        Ok(s) => {
                            latency.record(Instant::now().saturating_duration_since(due));
                            Some(s)
                        }
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("  reconnect failed: {e:#}");
                            }
                            None
                        }
                    }
                }));
            })
            .await;
        let mut open = Vec::with_capacity(sockets.len());
        for s in sockets {
            if let Ok(Some(s)) = s.await {
                open.push(s);
            }
        }
        let window = start.elapsed();
        let after = target.sample()?;
        let storm: Latencies = latency.take();
        println!(
            "  reconnect storm: {} clients over {:.0} s: {} connected, {} errors; due → upgraded {}",
            args.storm,
            args.storm_window.as_secs_f64(),
            open.len(),
            errors.load(Ordering::Relaxed),
            storm.summary()
        );
        print_server(before, after, window);
        for mut s in open {
            let _ = s.close(None).await;
            // Drain the close handshake without waiting on each one.
            let _ = tokio::time::timeout(Duration::from_millis(1), s.next()).await;
        }
    }
    Ok(())
}

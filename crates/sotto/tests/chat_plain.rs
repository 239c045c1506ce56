//! `sotto chat ROOM --plain --json` between two real processes of the built binary and a
//! real server: room messages, the whole off-the-record life cycle (offer, accept,
//! messages both ways, one side killed and restarted, refresh, end), decline, an offer
//! nobody answers, and no trace of off-the-record texts in the server's database.

use serde_json::{Value, json};
use sotto_client::sotto_crypto::UserId;
use sotto_client::{Client, Profile};
use sotto_server::testing::TestServer;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any single expected event may take.
const WAIT: Duration = Duration::from_secs(20);
const ANA_PW: &str = "ana's login password";
const BO_PW: &str = "bo's login password";

/// One running `sotto chat … --plain [--json]`; without `--json` each output line is
/// given as `{"type": "text", "line": …}`.
struct Chat {
    who: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    /// Everything received so far, for failure messages.
    log: Vec<Value>,
}

impl Chat {
    /// Starts the chat of `profile` in `room` and waits for it to be connected.
    fn start(
        who: &'static str,
        home: &Path,
        profile: &Path,
        room: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_as(who, home, profile, room, env, true)
    }

    fn start_as(
        who: &'static str,
        home: &Path,
        profile: &Path,
        room: &str,
        env: &[(&str, &str)],
        json: bool,
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
        cmd.args(["chat", room, "--plain", "--profile"])
            .arg(profile)
            .env("HOME", home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SOTTO_PROFILE")
            .env_remove("SOTTO_OTR_OFFER_TIMEOUT_MS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if json {
            cmd.arg("--json");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run sotto chat");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !json {
                    let _ = tx.send(json!({"type": "text", "line": line}));
                    continue;
                }
                let value = serde_json::from_str(&line).unwrap_or_else(
                    |e| json!({"type": "NOT JSON", "line": line, "error": e.to_string()}),
                );
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut chat = Self {
            who,
            child,
            stdin,
            events,
            log: Vec::new(),
        };
        chat.expect("ready", |e| {
            e["type"] == "ready" || e["line"] == "* connected"
        });
        chat
    }

    /// Writes one input line.
    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to chat");
        stdin.flush().unwrap();
    }

    /// Waits (bounded) for the first event matching `want`, skipping others; it.
    fn expect(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    assert_ne!(event["type"], "NOT JSON", "{}: {event}", self.who);
                    self.log.push(event.clone());
                    if want(&event) {
                        return event;
                    }
                }
                Err(_) => panic!(
                    "{}: no {what} within {WAIT:?}; got: {:#?}",
                    self.who, self.log
                ),
            }
        }
    }

    /// Waits for a message with `text`; it.
    fn message(&mut self, text: &str) -> Value {
        self.expect(&format!("message {text:?}"), |e| {
            e["type"] == "message" && e["text"] == text
        })
    }

    /// Waits for the OTR state `state`; the event.
    fn otr(&mut self, state: &str) -> Value {
        self.expect(&format!("otr {state}"), |e| {
            e["type"] == "otr" && e["state"] == state
        })
    }

    /// Closes standard input (end of input quits) and waits, bounded, for exit 0.
    fn quit(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{}: {status}", self.who);
                return;
            }
            assert!(Instant::now() < deadline, "{}: did not quit", self.who);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (no goodbye to anyone).
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two users with keys and a direct message between them.
struct Pair {
    home: tempfile::TempDir,
    dm: String,
}

impl Pair {
    /// A plaintext direct message (so the database scan below has a positive control).
    async fn new(server: &TestServer) -> Self {
        Self::with_dm(server, false).await
    }

    async fn with_dm(server: &TestServer, encrypted: bool) -> Self {
        server.enable_encryption().await;
        server.create_user("ana", ANA_PW).await;
        let bo = server.create_user("bob", BO_PW).await;
        let home = tempfile::tempdir().unwrap();
        let pair = Self {
            home,
            dm: String::new(),
        };
        let ana = Client::login(
            Profile::open(pair.profile("ana")).unwrap(),
            &server.url(),
            "ana",
            ANA_PW,
        )
        .await
        .unwrap();
        Client::login(
            Profile::open(pair.profile("bob")).unwrap(),
            &server.url(),
            "bob",
            BO_PW,
        )
        .await
        .unwrap();
        pair.setup("ana").await;
        pair.setup("bob").await;
        let bo = UserId::new(bo).unwrap();
        // Reopened: the keys were set up by the binary, on the same profile.
        let ana = Client::open(ana.profile().clone()).unwrap();
        let room = ana.open_dm(&[bo], encrypted).await.unwrap();
        Self {
            dm: room.id,
            ..pair
        }
    }

    fn profile(&self, who: &str) -> PathBuf {
        self.home.path().join("profiles").join(who)
    }

    /// `sotto e2e setup` through the binary.
    async fn setup(&self, who: &str) {
        self.sotto(who, &["e2e", "setup"]).await;
    }

    /// `sotto ARGS --profile <who's profile>`, which must succeed.
    async fn sotto(&self, who: &str, args: &[&str]) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
        cmd.args(args)
            .arg("--profile")
            .arg(self.profile(who))
            .env("HOME", self.home.path())
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The chat of `who`: ana names the room by its id, bob as `@ana`.
    fn chat(&self, who: &'static str, env: &[(&str, &str)]) -> Chat {
        let room = if who == "ana" {
            self.dm.as_str()
        } else {
            "@ana"
        };
        Chat::start(who, self.home.path(), &self.profile(who), room, env)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_messages_and_the_otr_life_cycle() {
    for server in TestServer::every_backend().await {
        life_cycle(&server).await;
        server.finish().await;
    }
}

async fn life_cycle(server: &TestServer) {
    let pair = Pair::new(server).await;
    // Ana compared safety numbers with bob; bob did not with her.
    pair.sotto("ana", &["verify", "bob", "--confirm"]).await;
    let mut ana = pair.chat("ana", &[]);
    let mut bob = pair.chat("bob", &[]);

    // Room messages both ways; one's own come back as events too.
    ana.say("hello bob, in the room");
    for side in [&mut ana, &mut bob] {
        let m = side.message("hello bob, in the room");
        assert_eq!(m["sender"], "ana", "{m}");
        assert_eq!(m["otr"], false, "{m}");
        assert_eq!(m["encrypted"], false, "{m}");
        assert!(
            m["id"].is_string() && m["sender_id"].is_string() && m["time"].is_i64(),
            "{m}"
        );
    }
    bob.say("hi ana, in the room");
    for side in [&mut ana, &mut bob] {
        assert_eq!(side.message("hi ana, in the room")["sender"], "bob");
    }

    // An unknown slash command is a usage error; the session goes on.
    ana.say("/dance");
    assert_eq!(
        ana.expect("usage error", |e| e["type"] == "error")["code"],
        "usage"
    );

    // Offer, accept, established on both.
    ana.say("/otr start");
    bob.otr("offered");
    bob.say("/otr accept");
    ana.otr("established");
    bob.otr("established");

    // Off-the-record messages both ways, marked as such.
    ana.say("off the record one");
    for side in [&mut ana, &mut bob] {
        let m = side.message("off the record one");
        assert_eq!(m["otr"], true, "{m}");
        assert_eq!(m["sender"], "ana", "{m}");
    }
    bob.say("off the record two");
    for side in [&mut ana, &mut bob] {
        let m = side.message("off the record two");
        assert_eq!(m["otr"], true, "{m}");
        assert_eq!(m["sender"], "bob", "{m}");
        // Ana verified bob's key; one's own messages count as verified.
        assert_eq!(m["verified"], true, "{m}");
    }
    // Bob never verified ana's key.
    assert_eq!(
        bob.log
            .iter()
            .find(|e| e["text"] == "off the record one")
            .unwrap()["verified"],
        false
    );

    // Bob's process dies: ana's session is broken; bob comes back and ana refreshes.
    bob.kill();
    let broken = ana.otr("broken");
    assert_eq!(broken["reason"], "peer_offline", "{broken}");
    let mut bob = pair.chat("bob", &[]);
    ana.say("/otr refresh");
    let settled = |e: &Value| {
        e["type"] == "otr" && (e["state"] == "established" || e["state"] == "refreshed")
    };
    ana.expect("refreshed", settled);
    bob.expect("established again", settled);
    ana.say("off the record three");
    assert_eq!(bob.message("off the record three")["otr"], true);
    bob.say("off the record four");
    assert_eq!(ana.message("off the record four")["otr"], true);

    // End: ended on both; the next message is a room message again.
    bob.say("/otr end");
    assert_eq!(bob.otr("ended")["by_peer"], false);
    assert_eq!(ana.otr("ended")["by_peer"], true);
    ana.say("back in the room");
    for side in [&mut ana, &mut bob] {
        assert_eq!(side.message("back in the room")["otr"], false);
    }
    ana.quit();
    bob.quit();

    // The server kept the room messages and nothing of the off-the-record ones.
    if server.backend() == "sqlite" {
        let stored = all_bytes(&server.data_dir());
        assert!(
            contains(&stored, "hello bob, in the room"),
            "the check must see stored text"
        );
        for text in [
            "off the record one",
            "off the record two",
            "off the record three",
            "off the record four",
        ] {
            assert!(
                !contains(&stored, text),
                "{text:?} is in the server's files"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_direct_message_in_chat() {
    let server = TestServer::sqlite().await;
    let pair = Pair::with_dm(&server, true).await;
    pair.sotto("ana", &["verify", "bob", "--confirm"]).await;
    let mut ana = pair.chat("ana", &[]);
    let mut bob = pair.chat("bob", &[]);
    // One after the other: waiting for a message skips the events before it.
    for (text, sender) in [("sealed for bob", "ana"), ("sealed for ana", "bob")] {
        if sender == "ana" {
            ana.say(text);
        } else {
            bob.say(text);
        }
        let seen_by_ana = ana.message(text);
        let seen_by_bob = bob.message(text);
        for m in [&seen_by_ana, &seen_by_bob] {
            // The same fields as `sotto read --json` (tests/rooms.rs).
            assert_eq!(m.as_object().unwrap().len(), 11, "{m}");
            assert_eq!(m["encrypted"], true, "{m}");
            assert_eq!(m["otr"], false, "{m}");
            assert!(m["problem"].is_null(), "{m}");
        }
        // Ana verified Bob's key; Bob did not verify hers.
        if text == "sealed for ana" {
            assert_eq!(seen_by_ana["verified"], true, "{seen_by_ana}");
        } else {
            assert_eq!(seen_by_bob["verified"], false, "{seen_by_bob}");
        }
    }
    ana.quit();
    bob.quit();
    // The server holds ciphertext only.
    let stored = all_bytes(&server.data_dir());
    assert!(!contains(&stored, "sealed for bob") && !contains(&stored, "sealed for ana"));
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_unanswered_and_impossible_offers() {
    let server = TestServer::sqlite().await;
    let pair = Pair::new(&server).await;
    // Ana's offers wait 1.5 s for an answer.
    let mut ana = pair.chat("ana", &[("SOTTO_OTR_OFFER_TIMEOUT_MS", "1500")]);
    let mut bob = pair.chat("bob", &[]);

    // Declined.
    ana.say("/otr start");
    assert_eq!(ana.otr("offering")["by_peer"], false);
    bob.otr("offered");
    bob.say("/otr decline");
    bob.otr("declined");
    assert_eq!(ana.otr("declined")["by_peer"], true);
    ana.say("after the decline");
    assert_eq!(bob.message("after the decline")["otr"], false);

    // Bob's chat runs but nobody answers: a timeout, and bob's invitation is withdrawn.
    ana.say("/otr start");
    bob.otr("offered");
    ana.otr("timeout");
    bob.otr("ended");
    ana.say("after the timeout");
    assert_eq!(bob.message("after the timeout")["otr"], false);

    // Bob is gone: the offer is refused at once.
    bob.quit();
    let deadline = Instant::now() + WAIT;
    loop {
        ana.say("/otr start");
        let e = ana.expect("an answer to the offer", |e| {
            e["type"] == "error" || (e["type"] == "otr" && e["state"] == "offering")
        });
        if e["code"] == "peer_offline" {
            break;
        }
        // The server may not have noticed yet that bob left: let this offer end, retry.
        assert!(Instant::now() < deadline, "bob never went offline: {e}");
        ana.expect("the offer's end", |e| {
            e["type"] == "otr" && (e["state"] == "timeout" || e["state"] == "ended")
        });
    }
    ana.quit();

    // Without a terminal, the interface asks for --plain (exit 2).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
    cmd.args(["chat", "@bob", "--profile"])
        .arg(pair.profile("ana"))
        .env("HOME", pair.home.path())
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--plain"));
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readable_lines_are_sanitized_and_mark_otr() {
    let server = TestServer::sqlite().await;
    let pair = Pair::new(&server).await;
    let mut ana = Chat::start_as(
        "ana",
        pair.home.path(),
        &pair.profile("ana"),
        "@bob",
        &[],
        false,
    );
    let mut bob = pair.chat("bob", &[]);
    let line = |chat: &mut Chat, want: &str| {
        chat.expect(&format!("line {want:?}"), |e| e["line"] == want);
    };

    // Another person's escape sequence cannot reach ana's terminal.
    bob.say("look \u{1b}[2J here");
    line(&mut ana, "bob: look \u{FFFD}[2J here");
    ana.say("/otr start");
    bob.otr("offered");
    bob.say("/otr accept");
    line(&mut ana, "* [OTR] established");
    bob.otr("established");
    bob.say("psst");
    line(&mut ana, "[OTR] bob: psst");
    // Quitting ends the session for the other person too (not merely broken).
    ana.quit();
    assert_eq!(bob.otr("ended")["by_peer"], true);
    bob.quit();
    server.finish().await;
}

/// Every file under `dir`, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

//! C9 search over the router, on SQLite and PostgreSQL: words are found in the rooms one
//! can read and nowhere else, edits and deletes are followed, pages hold each hit once,
//! and no query text is syntax.

mod common;

use axum::http::Method;
use common::{PASSWORD, TestApp};
use serde_json::{Value, json};

/// Percent-encodes everything but unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Chat {
    t: TestApp,
    alice: String,
    bob: String,
    carol: String,
    general: String,
    secret: String,
}

impl Chat {
    /// Alice and Bob share a public channel and a private one; Carol is in neither.
    async fn new(t: TestApp) -> Self {
        for name in ["alice", "bob", "carol"] {
            t.create_user(name, false).await;
        }
        let alice = t.login("alice", PASSWORD).await;
        let bob = t.login("bob", PASSWORD).await;
        let carol = t.login("carol", PASSWORD).await;
        let bob_id = t.get("/api/v1/me", Some(&bob)).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut ids = Vec::new();
        for (name, private) in [("general", false), ("secret", true)] {
            let a = t
                .post(
                    "/api/v1/rooms",
                    Some(&alice),
                    json!({"kind": "channel", "name": name, "private": private, "members": [bob_id]}),
                )
                .await;
            assert_eq!(a.status, 201, "{}", a.body);
            ids.push(a.body["id"].as_str().unwrap().to_owned());
        }
        let secret = ids.pop().unwrap();
        let general = ids.pop().unwrap();
        Self {
            t,
            alice,
            bob,
            carol,
            general,
            secret,
        }
    }

    async fn say(&self, who: &str, room: &str, id: &str, text: &str) {
        let a = self
            .t
            .post(
                &format!("/api/v1/rooms/{room}/messages"),
                Some(who),
                json!({"id": id, "text": text}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        // Distinct send times, so "newest first" is the sending order.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }

    async fn search(&self, who: &str, query: &str) -> common::Answer {
        self.t
            .get(&format!("/api/v1/search?{query}"), Some(who))
            .await
    }

    /// The ids of the messages found for `q`, newest first.
    async fn found(&self, who: &str, q: &str) -> Vec<String> {
        let a = self.search(who, &format!("q={}", enc(q))).await;
        assert_eq!(a.status, 200, "{}: {q:?}: {}", self.t.backend(), a.body);
        ids(&a.body)
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn finds_words_only_in_rooms_one_can_read() {
    for t in TestApp::every_backend().await {
        let c = Chat::new(t).await;
        c.say(&c.alice, &c.general, "g1", "The deploy is green")
            .await;
        c.say(&c.bob, &c.secret, "s1", "deploy codes: hunter2")
            .await;
        c.say(&c.bob, &c.general, "g2", "lunch?").await;

        let a = c.search(&c.alice, "q=deploy").await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(ids(&a.body), ["s1", "g1"]);
        assert_eq!(a.body["messages"][1]["text"], "The deploy is green");
        assert_eq!(a.body["messages"][1]["room_id"], c.general.as_str());
        assert!(a.body["next_cursor"].is_null());
        assert_eq!(c.found(&c.bob, "DEPLOY").await, ["s1", "g1"]);
        assert_eq!(c.found(&c.bob, "deploy green").await, ["g1"]);
        // A private room's messages never show for a non-member, nor a public room's
        // before joining (history is for members).
        assert!(c.found(&c.carol, "deploy").await.is_empty());
        assert!(c.found(&c.carol, "hunter2").await.is_empty());

        // The room filter follows the history rules.
        let only = c
            .search(&c.alice, &format!("q=deploy&room_id={}", c.general))
            .await;
        assert_eq!(ids(&only.body), ["g1"]);
        c.search(&c.carol, &format!("q=deploy&room_id={}", c.secret))
            .await
            .expect_error(404, "not_found");
        c.search(&c.carol, &format!("q=deploy&room_id={}", c.general))
            .await
            .expect_error(403, "forbidden");
        c.search(&c.carol, "q=deploy&room_id=no-such-room")
            .await
            .expect_error(404, "not_found");

        // Joining makes the public room searchable; leaving the private one hides it.
        let j =
            c.t.call(
                Method::POST,
                &format!("/api/v1/rooms/{}/join", c.general),
                Some(&c.carol),
                None,
            )
            .await;
        assert_eq!(j.status, 200, "{}", j.body);
        assert_eq!(c.found(&c.carol, "deploy").await, ["g1"]);
        let l =
            c.t.call(
                Method::POST,
                &format!("/api/v1/rooms/{}/leave", c.secret),
                Some(&c.bob),
                None,
            )
            .await;
        assert_eq!(l.status, 204, "{}", l.body);
        assert_eq!(c.found(&c.bob, "deploy").await, ["g1"]);
        c.t.finish().await;
    }
}

#[tokio::test]
async fn edits_and_deletes_are_followed() {
    for t in TestApp::every_backend().await {
        let c = Chat::new(t).await;
        c.say(&c.alice, &c.general, "e1", "meeting at noon").await;
        c.say(&c.alice, &c.general, "d1", "meeting notes attached")
            .await;
        let e =
            c.t.call(
                Method::PATCH,
                &format!("/api/v1/rooms/{}/messages/e1", c.general),
                Some(&c.alice),
                Some(json!({"text": "standup moved to three"})),
            )
            .await;
        assert_eq!(e.status, 200, "{}", e.body);
        assert!(c.found(&c.bob, "noon").await.is_empty());
        assert_eq!(c.found(&c.bob, "standup").await, ["e1"]);
        let a = c.search(&c.bob, "q=three").await;
        assert_eq!(a.body["messages"][0]["text"], "standup moved to three");
        assert_eq!(c.found(&c.bob, "meeting").await, ["d1"]);

        let d =
            c.t.call(
                Method::DELETE,
                &format!("/api/v1/rooms/{}/messages/d1", c.general),
                Some(&c.alice),
                None,
            )
            .await;
        assert_eq!(d.status, 200, "{}", d.body);
        assert!(c.found(&c.bob, "meeting").await.is_empty());
        assert!(c.found(&c.bob, "notes").await.is_empty());
        c.t.finish().await;
    }
}

#[tokio::test]
async fn pages_return_each_hit_exactly_once() {
    for t in TestApp::every_backend().await {
        let c = Chat::new(t).await;
        let mut sent = Vec::new();
        for i in 0..11 {
            let room = if i % 3 == 0 { &c.secret } else { &c.general };
            let id = format!("m{i}");
            c.say(&c.alice, room, &id, &format!("release candidate {i}"))
                .await;
            sent.push(id);
        }
        c.say(&c.alice, &c.general, "other", "unrelated").await;
        let mut seen = Vec::new();
        let mut query = "q=release&limit=4".to_owned();
        let mut pages = 0;
        loop {
            let a = c.search(&c.bob, &query).await;
            assert_eq!(a.status, 200, "{}", a.body);
            let got = ids(&a.body);
            assert!(got.len() <= 4);
            seen.extend(got);
            pages += 1;
            match a.body["next_cursor"].as_str() {
                Some(cursor) => query = format!("q=release&limit=4&cursor={}", enc(cursor)),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        // Newest first: the reverse of the sending order, each once.
        sent.reverse();
        assert_eq!(seen, sent, "{}", c.t.backend());
        // A page after new messages arrived still continues where it was.
        let first = c.search(&c.bob, "q=release&limit=4").await;
        c.say(&c.alice, &c.general, "late", "release late").await;
        let cursor = first.body["next_cursor"].as_str().unwrap();
        let next = c
            .search(&c.bob, &format!("q=release&limit=4&cursor={}", enc(cursor)))
            .await;
        assert_eq!(ids(&next.body), sent[4..8]);
        c.t.finish().await;
    }
}

#[tokio::test]
async fn hostile_queries_find_words_or_nothing() {
    for t in TestApp::every_backend().await {
        let c = Chat::new(t).await;
        c.say(
            &c.alice,
            &c.general,
            "h1",
            "alpha beta \"quoted\" gamma-delta naïve 日本語",
        )
        .await;
        for q in [
            "\"",
            "\"\"",
            "\"alpha",
            "*",
            "alpha*",
            "*alpha",
            "NEAR(alpha beta)",
            "alpha NEAR beta",
            "NEAR",
            "text:alpha",
            "body:alpha",
            ":",
            "-",
            "-alpha",
            "alpha -beta",
            "alpha OR",
            "OR",
            "AND",
            "NOT alpha",
            "(",
            "alpha)",
            "^alpha",
            "'",
            "''; DROP TABLE messages; --",
            "a & b | !c",
            "alpha:*",
            "\\",
            "\u{0}",
            "alpha\u{0}beta",
            "\u{202e}",
            "😀",
            "{}",
            "%",
            "_",
            "\u{feff}",
            "\u{7f}",
            "ß",
            "İ",
            "\u{301}",
        ] {
            let a = c.search(&c.bob, &format!("q={}", enc(q))).await;
            assert_eq!(a.status, 200, "{}: {q:?}: {}", c.t.backend(), a.body);
            assert!(a.body["messages"].is_array());
        }
        for q in [
            "alpha",
            "\"alpha\"",
            "alpha*",
            "-alpha",
            "alpha\u{0}beta",
            "quoted",
            "日本語",
            "naïve",
            "GAMMA-DELTA",
        ] {
            assert_eq!(c.found(&c.bob, q).await, ["h1"], "{}: {q:?}", c.t.backend());
        }
        assert!(c.found(&c.bob, "*").await.is_empty());
        assert!(c.found(&c.bob, "alpha omega").await.is_empty());
        c.t.finish().await;
    }
}

#[tokio::test]
async fn bad_parameters_are_invalid_input() {
    for t in TestApp::every_backend().await {
        let c = Chat::new(t).await;
        let long = "a".repeat(257);
        for query in [
            String::new(),
            "q=".into(),
            "q=%20%20".into(),
            format!("q={long}"),
            "q=x&limit=0".into(),
            "q=x&limit=101".into(),
            "q=x&limit=-1".into(),
            "q=x&cursor=garbage!".into(),
            "q=x&cursor=".into(),
        ] {
            c.search(&c.alice, &query)
                .await
                .expect_error(400, "invalid_input");
        }
        assert_eq!(
            c.search(&c.alice, &format!("q={}", "a".repeat(256)))
                .await
                .status,
            200
        );
        c.t.get("/api/v1/search?q=x", None)
            .await
            .expect_error(401, "unauthorized");
        c.t.finish().await;
    }
}

//! A send reads the session, the user and the room access from caches. These tests hold
//! them to what a user relies on: while sends keep arriving, a logout, a revoked token, a
//! deactivation, a removal or a leave is refused to every request that starts after the
//! change was answered, on both backends.

mod common;

use axum::http::Method;
use common::{PASSWORD, TestApp};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Concurrent senders, and sends per sender: below the per-user send burst, so only the
/// change under test refuses anything.
const SENDERS: usize = 4;
const SENDS: usize = 60;

/// A user sending to a private channel they share with its owner.
#[derive(Clone)]
struct Scene {
    owner: String,
    sender_id: String,
    sender: String,
    room: String,
}

async fn scene(t: &TestApp, name: &str) -> Scene {
    let owner_name = format!("{name}-owner");
    t.create_user(&owner_name, false).await;
    let sender_id = t.create_user(name, false).await;
    let owner = t.login(&owner_name, PASSWORD).await;
    let sender = t.login(name, PASSWORD).await;
    let room = t
        .post(
            "/api/v1/rooms",
            Some(&owner),
            json!({"kind": "channel", "name": name, "private": true, "members": [sender_id]}),
        )
        .await;
    assert_eq!(room.status, 201, "{}", room.body);
    Scene {
        owner,
        sender_id,
        room: room.body["id"].as_str().unwrap().to_owned(),
        sender,
    }
}

/// Runs `change` while the sender's sends are under way, and returns the statuses of the
/// sends that started after the change was answered (there are always some: a last
/// send is made after the load).
async fn sends_after<F: Future<Output = ()>>(t: &Arc<TestApp>, s: &Scene, change: F) -> Vec<u16> {
    let changed = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (t, room, token) = (t.clone(), s.room.clone(), s.sender.clone());
    let send = move |i: String| {
        let (t, room, token) = (t.clone(), room.clone(), token.clone());
        async move {
            let path = format!("/api/v1/rooms/{room}/messages");
            let body = json!({"id": i, "text": "under load"});
            t.post(&path, Some(&token), body).await.status.as_u16()
        }
    };
    let senders: Vec<_> = (0..SENDERS)
        .map(|task| {
            let (changed, accepted, send) = (changed.clone(), accepted.clone(), send.clone());
            tokio::spawn(async move {
                let mut after = Vec::new();
                for n in 0..SENDS {
                    let started_after = changed.load(Ordering::SeqCst);
                    let status = send(format!("m{task}x{n}")).await;
                    if started_after {
                        after.push(status);
                    } else if status == 201 {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                }
                after
            })
        })
        .collect();
    // Let the load run (and the caches fill) before the change.
    tokio::time::timeout(Duration::from_secs(30), async {
        while accepted.load(Ordering::SeqCst) < SENDERS * 5 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the sends before the change did not go through");
    change.await;
    changed.store(true, Ordering::SeqCst);
    let mut after = Vec::new();
    for s in senders {
        after.extend(s.await.unwrap());
    }
    after.push(send("last".into()).await);
    after
}

fn assert_all(statuses: &[u16], expected: u16, case: &str, backend: &str) {
    let mut counts = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(*s).or_insert(0) += 1;
    }
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        [&expected],
        "{backend}, {case}: the sends after the change were answered {counts:?} (status: count)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ended_sessions_and_deactivated_users_are_refused_at_once_under_load() {
    for t in TestApp::every_backend().await {
        let t = Arc::new(t);
        let backend = t.backend();

        let s = scene(&t, "logs-out").await;
        let statuses = sends_after(&t, &s, async {
            let a = t.call(Method::POST, "/api/v1/logout", Some(&s.sender), None);
            assert_eq!(a.await.status, 204);
        })
        .await;
        assert_all(&statuses, 401, "logout", backend);

        // A personal access token revoked from another session.
        let s = scene(&t, "revokes").await;
        let made = t
            .post("/api/v1/me/tokens", Some(&s.sender), json!({"name": "bot"}))
            .await;
        assert_eq!(made.status, 201, "{}", made.body);
        let bot = Scene {
            sender: made.body["token"].as_str().unwrap().to_owned(),
            ..s.clone()
        };
        let id = made.body["session"]["id"].as_str().unwrap().to_owned();
        let statuses = sends_after(&t, &bot, async {
            let path = format!("/api/v1/me/tokens/{id}");
            let a = t.call(Method::DELETE, &path, Some(&s.sender), None).await;
            assert_eq!(a.status, 204, "{}", a.body);
        })
        .await;
        assert_all(&statuses, 401, "revoked token", backend);

        t.create_user("admin", true).await;
        let admin = t.login("admin", PASSWORD).await;
        let s = scene(&t, "deactivated").await;
        let statuses = sends_after(&t, &s, async {
            let path = format!("/api/v1/admin/users/{}/deactivate", s.sender_id);
            let a = t.call(Method::POST, &path, Some(&admin), None).await;
            assert_eq!(a.status, 200, "{}", a.body);
        })
        .await;
        // Deactivation ends the sessions too, so the token is unknown at once.
        assert_all(&statuses, 401, "deactivation", backend);

        Arc::into_inner(t).unwrap().finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_members_are_refused_at_once_under_load() {
    for t in TestApp::every_backend().await {
        let t = Arc::new(t);
        let backend = t.backend();
        t.create_user("admin", true).await;
        let admin = t.login("admin", PASSWORD).await;

        let s = scene(&t, "removed").await;
        let statuses = sends_after(&t, &s, async {
            let path = format!("/api/v1/rooms/{}/members/{}", s.room, s.sender_id);
            let a = t.call(Method::DELETE, &path, Some(&s.owner), None).await;
            assert_eq!(a.status, 204, "{}", a.body);
        })
        .await;
        // A private room someone is not in does not exist for them.
        assert_all(&statuses, 404, "removal by the owner", backend);

        let s = scene(&t, "leaves").await;
        let other = t.login("leaves", PASSWORD).await;
        let statuses = sends_after(&t, &s, async {
            let path = format!("/api/v1/rooms/{}/leave", s.room);
            let a = t.call(Method::POST, &path, Some(&other), None).await;
            assert_eq!(a.status, 204, "{}", a.body);
        })
        .await;
        assert_all(&statuses, 404, "leave", backend);

        let s = scene(&t, "forced-out").await;
        let statuses = sends_after(&t, &s, async {
            let path = format!("/api/v1/admin/rooms/{}/members/{}", s.room, s.sender_id);
            let a = t.call(Method::DELETE, &path, Some(&admin), None).await;
            assert_eq!(a.status, 204, "{}", a.body);
        })
        .await;
        assert_all(&statuses, 404, "removal by an administrator", backend);

        Arc::into_inner(t).unwrap().finish().await;
    }
}

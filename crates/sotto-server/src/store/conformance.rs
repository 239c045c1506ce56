//! One behaviour, two backends: every test here runs against SQLite and PostgreSQL.

use super::{
    ByteStream, FileRecord, Inserted, MemberRecord, MessageRecord, PG_CHUNK, PutError, RoomRecord,
    SearchCursor, SessionKind, SessionRecord, StoreError, Stores, UserRecord,
};
use crate::test_support::{PgTestDb, sqlite_stores};
use axum::body::Bytes;
use futures_util::StreamExt;
use sotto_api::RoomKind;

fn user(id: &str, username: &str, admin: bool) -> UserRecord {
    UserRecord {
        id: id.into(),
        username: username.into(),
        display_name: format!("{username} display"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        admin,
        deactivated: false,
        created_at: 1_000 + id.len() as i64,
    }
}

fn session(id: &str, user_id: &str, kind: SessionKind, created_at: i64) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: user_id.into(),
        kind,
        name: Some(format!("{id} name")),
        token_hash: format!("hash-{id}"),
        created_at,
        last_used_at: created_at,
        expires_at: (kind == SessionKind::Login).then_some(created_at + 10_000),
    }
}

/// The whole suite against one backend.
pub(crate) async fn run(stores: &Stores) {
    users(stores).await;
    sessions(stores).await;
    setup_tokens(stores).await;
    settings(stores).await;
    rooms_and_messages(stores).await;
    files(stores).await;
    blobs(stores).await;
    search(stores).await;
    audit(stores).await;
    keys(stores).await;
    owners(stores).await;
    signed_step_downs(stores).await;
    forced_members(stores).await;
    room_access(stores).await;
    concurrent_sends(stores).await;
    encryption(stores).await;
    chains_and_room_keys(stores).await;
    read_markers(stores).await;
    batched_sends(stores).await;
    failing_sends_among_others(stores).await;
}

async fn users(s: &Stores) {
    let users = &s.users;
    assert!(!users.has_admin().await.unwrap());
    let alice = user("u1", "Alice", false);
    users.insert_user(&alice).await.unwrap();
    assert_eq!(users.user_by_id("u1").await.unwrap(), Some(alice.clone()));
    assert_eq!(
        users.user_by_username("aLICE").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(users.user_by_username("bob").await.unwrap(), None);
    assert_eq!(users.user_by_id("nope").await.unwrap(), None);
    // Usernames are unique regardless of case; ids are unique.
    assert!(matches!(
        users.insert_user(&user("u2", "ALICE", false)).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        users.insert_user(&user("u1", "carol", false)).await,
        Err(StoreError::Conflict)
    ));

    // The first admin is inserted once only, even when several race for it.
    assert!(!users.has_admin().await.unwrap());
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let users = users.clone();
            tokio::spawn(async move {
                let candidate = user(&format!("u3{i}"), &format!("root{i}"), true);
                users
                    .insert_first_admin(&candidate)
                    .await
                    .unwrap()
                    .then_some(candidate.id)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "exactly one first admin: {winners:?}");
    let admin_id = winners.remove(0);
    assert!(users.has_admin().await.unwrap());
    assert!(
        !users
            .insert_first_admin(&user("u4", "late", true))
            .await
            .unwrap()
    );
    assert_eq!(users.user_by_id("u4").await.unwrap(), None);
    assert!(users.user_by_id(&admin_id).await.unwrap().unwrap().admin);

    let list = users.list_users().await.unwrap();
    let ids: Vec<_> = list.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["u1", admin_id.as_str()], "creation order");

    assert!(users.set_deactivated("u1", true).await.unwrap());
    assert!(users.user_by_id("u1").await.unwrap().unwrap().deactivated);
    assert!(users.set_deactivated("u1", false).await.unwrap());
    assert!(!users.user_by_id("u1").await.unwrap().unwrap().deactivated);
    assert!(!users.set_deactivated("missing", true).await.unwrap());

    assert!(users.set_password_hash("u1", "new-hash").await.unwrap());
    assert_eq!(
        users.user_by_id("u1").await.unwrap().unwrap().password_hash,
        "new-hash"
    );
    assert!(!users.set_password_hash("missing", "x").await.unwrap());
}

async fn sessions(s: &Stores) {
    let sessions = &s.sessions;
    let a = session("s1", "u1", SessionKind::Login, 100);
    let b = session("s2", "u1", SessionKind::Login, 200);
    let t = session("t1", "u1", SessionKind::PersonalAccess, 150);
    s.users
        .insert_user(&user("u3", "other", false))
        .await
        .unwrap();
    let other = session("s3", "u3", SessionKind::Login, 300);
    for x in [&a, &b, &t, &other] {
        sessions.insert_session(x).await.unwrap();
    }
    // Token hashes are unique; sessions need an existing user.
    let mut dup = session("s9", "u1", SessionKind::Login, 1);
    dup.token_hash = a.token_hash.clone();
    assert!(matches!(
        sessions.insert_session(&dup).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        sessions
            .insert_session(&session("s8", "ghost", SessionKind::Login, 1))
            .await
            .is_err()
    );

    assert_eq!(
        sessions.session_by_token_hash("hash-s1").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        sessions.session_by_token_hash("hash-none").await.unwrap(),
        None
    );
    let logins = sessions
        .sessions_of_user("u1", SessionKind::Login)
        .await
        .unwrap();
    assert_eq!(logins, vec![b.clone(), a.clone()], "newest first");
    let pats = sessions
        .sessions_of_user("u1", SessionKind::PersonalAccess)
        .await
        .unwrap();
    assert_eq!(pats, vec![t.clone()]);

    // Reads below are served from the store's cache after the first, so every change
    // after a read checks that the cached copy changed with it.
    sessions.touch_session("hash-s1", 555).await.unwrap();
    let touched = sessions
        .session_by_token_hash("hash-s1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(touched.last_used_at, 555);

    // Deleting is scoped to owner and kind.
    assert!(
        !sessions
            .delete_session("u3", "s1", SessionKind::Login)
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .delete_session("u1", "s1", SessionKind::PersonalAccess)
            .await
            .unwrap()
    );
    assert!(
        sessions
            .delete_session("u1", "s1", SessionKind::Login)
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .delete_session("u1", "s1", SessionKind::Login)
            .await
            .unwrap()
    );
    assert_eq!(
        sessions.session_by_token_hash("hash-s1").await.unwrap(),
        None,
        "a deleted session is still found"
    );

    // Expiry: s2 expires at 10_200, s3 at 10_300; the token never.
    assert!(
        sessions
            .session_by_token_hash("hash-s2")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(sessions.delete_expired_sessions(10_250).await.unwrap(), 1);
    assert_eq!(
        sessions.session_by_token_hash("hash-s2").await.unwrap(),
        None
    );
    assert!(
        sessions
            .session_by_token_hash("hash-t1")
            .await
            .unwrap()
            .is_some()
    );

    sessions
        .insert_session(&session("s4", "u1", SessionKind::Login, 400))
        .await
        .unwrap();
    assert!(
        sessions
            .session_by_token_hash("hash-s4")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        sessions
            .delete_sessions_of_user("u1", Some(SessionKind::Login))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sessions.session_by_token_hash("hash-s4").await.unwrap(),
        None
    );
    assert!(
        sessions
            .session_by_token_hash("hash-t1")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        sessions.delete_sessions_of_user("u1", None).await.unwrap(),
        1
    );
    assert_eq!(
        sessions.session_by_token_hash("hash-t1").await.unwrap(),
        None
    );
    assert!(
        sessions
            .sessions_of_user("u1", SessionKind::PersonalAccess)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        sessions
            .session_by_token_hash("hash-s3")
            .await
            .unwrap()
            .is_some()
    );
}

async fn setup_tokens(s: &Stores) {
    let sessions = &s.sessions;
    assert!(!sessions.setup_token_valid("h1", 0).await.unwrap());
    sessions.replace_setup_token("h1", 1_000).await.unwrap();
    assert!(sessions.setup_token_valid("h1", 999).await.unwrap());
    assert!(
        !sessions.setup_token_valid("h1", 1_000).await.unwrap(),
        "expired"
    );
    assert!(!sessions.setup_token_valid("h2", 0).await.unwrap());
    sessions.replace_setup_token("h2", 2_000).await.unwrap();
    assert!(
        !sessions.setup_token_valid("h1", 0).await.unwrap(),
        "replaced"
    );
    assert!(sessions.setup_token_valid("h2", 0).await.unwrap());
    sessions.clear_setup_tokens().await.unwrap();
    assert!(!sessions.setup_token_valid("h2", 0).await.unwrap());
}

async fn settings(s: &Stores) {
    let settings = &s.settings;
    assert!(settings.load_settings().await.unwrap().is_empty());
    let entries = vec![
        ("a.b".to_string(), "true".to_string()),
        ("c".into(), "42".into()),
    ];
    settings.save_settings(&entries).await.unwrap();
    settings
        .save_settings(&[("c".into(), "43".into())])
        .await
        .unwrap();
    let mut loaded = settings.load_settings().await.unwrap();
    loaded.sort();
    assert_eq!(
        loaded,
        vec![("a.b".into(), "true".into()), ("c".into(), "43".into())]
    );
}

#[tokio::test]
async fn sqlite_backend_conforms() {
    let (dir, stores) = sqlite_stores().await;
    run(&stores).await;
    // Failed uploads left no files behind: only the stored blobs are there.
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["exact", "odd", "over", "small", "zero"]);
    stores.close().await;
}

#[tokio::test]
async fn postgres_backend_conforms() {
    let Some(db) = PgTestDb::create().await else {
        return;
    };
    let stores = Stores::open_postgres(db.url()).await.unwrap();
    run(&stores).await;
    // Failed uploads left no rows behind.
    let super::Pool::Postgres(pool) = &stores.pool else {
        unreachable!()
    };
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM blobs WHERE NOT complete OR id IN ('fail', 'gone')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM blob_chunks WHERE blob_id NOT IN (SELECT id FROM blobs)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    writer_reconnects(&stores, pool).await;
    // Migrating an already migrated database is a no-op.
    let again = Stores::open_postgres(db.url()).await.unwrap();
    again.close().await;
    stores.close().await;
    db.drop().await;
}

#[tokio::test]
async fn sqlite_reopens_a_migrated_file_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::open_sqlite(dir.path()).await.unwrap();
    stores
        .users
        .insert_user(&user("u1", "alice", false))
        .await
        .unwrap();
    stores.close().await;
    let stores = Stores::open_sqlite(dir.path()).await.unwrap();
    assert!(
        stores
            .users
            .user_by_username("alice")
            .await
            .unwrap()
            .is_some()
    );
    stores.close().await;
}

fn room(id: &str, kind: RoomKind, private: bool, dm_key: Option<&str>) -> RoomRecord {
    RoomRecord {
        id: id.into(),
        kind,
        private,
        name: (kind != RoomKind::Direct).then(|| format!("{id} name")),
        topic: String::new(),
        parent_id: None,
        encrypted: false,
        created_by: "ra".into(),
        created_at: 5_000,
        seq: 1,
        dm_key: dm_key.map(Into::into),
    }
}

fn member(user_id: &str, owner: bool) -> MemberRecord {
    MemberRecord {
        user_id: user_id.into(),
        username: String::new(),
        owner,
        joined_at: 6_000,
    }
}

fn message(room_id: &str, id: &str, text: &str) -> MessageRecord {
    MessageRecord {
        room_id: room_id.into(),
        id: id.into(),
        seq: 0,
        version_seq: 0,
        sender_id: "ra".into(),
        text: Some(text.into()),
        ciphertext: None,
        mentions: vec!["rb".into()],
        content_hash: format!("h-{text}"),
        created_at: 7_000,
        edited_at: None,
        deleted: false,
    }
}

async fn rooms_and_messages(s: &Stores) {
    let (rooms, msgs) = (&s.rooms, &s.messages);
    for (id, name) in [("ra", "roomie-a"), ("rb", "roomie-b")] {
        s.users.insert_user(&user(id, name, false)).await.unwrap();
    }
    let chan = room("c1", RoomKind::Channel, false, None);
    rooms
        .insert_room(&chan, &[member("ra", true)])
        .await
        .unwrap();
    let dm = room("d1", RoomKind::Direct, true, Some("ra,rb"));
    rooms
        .insert_room(&dm, &[member("ra", false), member("rb", false)])
        .await
        .unwrap();
    let private = room("p1", RoomKind::Team, true, None);
    rooms
        .insert_room(&private, &[member("rb", true)])
        .await
        .unwrap();
    // One DM per set of people; ids are unique.
    assert!(matches!(
        rooms
            .insert_room(&room("d2", RoomKind::Direct, true, Some("ra,rb")), &[])
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        rooms
            .insert_room(&room("c1", RoomKind::Channel, false, None), &[])
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(rooms.room_by_id("c1").await.unwrap(), Some(chan.clone()));
    assert_eq!(
        rooms.room_by_dm_key("ra,rb").await.unwrap(),
        Some(dm.clone())
    );
    assert_eq!(rooms.room_by_id("nope").await.unwrap(), None);
    let ids = |v: Vec<RoomRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(rooms.rooms_of_user("ra").await.unwrap()), ["c1", "d1"]);
    assert_eq!(ids(rooms.public_rooms().await.unwrap()), ["c1"]);

    // Membership changes take the next room seq; repeats change nothing.
    let seq = |e: Option<sotto_api::Event>| e.map(|e| e.seq);
    assert_eq!(
        seq(rooms.add_member("c1", &member("rb", false)).await.unwrap()),
        Some(2)
    );
    assert_eq!(
        rooms.add_member("c1", &member("rb", false)).await.unwrap(),
        None
    );
    assert_eq!(
        rooms
            .add_member("nope", &member("rb", false))
            .await
            .unwrap(),
        None
    );
    let m = rooms.member("c1", "rb").await.unwrap().unwrap();
    assert_eq!((m.username.as_str(), m.owner), ("roomie-b", false));
    assert_eq!(
        seq(rooms.set_owner("c1", "rb", true).await.unwrap()),
        Some(3)
    );
    assert!(rooms.member("c1", "rb").await.unwrap().unwrap().owner);
    assert_eq!(rooms.set_owner("c1", "zz", true).await.unwrap(), None);
    let members = rooms.members("c1").await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(seq(rooms.remove_member("c1", "rb").await.unwrap()), Some(4));
    assert_eq!(rooms.remove_member("c1", "rb").await.unwrap(), None);
    assert_eq!(rooms.member("c1", "rb").await.unwrap(), None);
    assert_eq!(
        seq(rooms
            .update_room("c1", Some("renamed"), None)
            .await
            .unwrap()),
        Some(5)
    );
    let c1 = rooms.room_by_id("c1").await.unwrap().unwrap();
    assert_eq!(
        (c1.name.as_deref(), c1.topic.as_str(), c1.seq),
        (Some("renamed"), "", 5)
    );
    rooms.update_room("c1", None, Some("t")).await.unwrap();
    let c1 = rooms.room_by_id("c1").await.unwrap().unwrap();
    assert_eq!(
        (c1.name.as_deref(), c1.topic.as_str()),
        (Some("renamed"), "t")
    );
    assert_eq!(
        rooms.update_room("nope", None, Some("t")).await.unwrap(),
        None
    );

    // Messages take the next room seq; the same id returns the stored one.
    let Inserted::New(m1) = msgs
        .insert_message(&message("c1", "m1", "one"))
        .await
        .unwrap()
    else {
        panic!("not new")
    };
    assert_eq!(
        (m1.seq, m1.version_seq, m1.mentions.clone()),
        (7, 7, vec!["rb".to_owned()])
    );
    assert_eq!(
        msgs.insert_message(&message("c1", "m1", "other"))
            .await
            .unwrap(),
        Inserted::Existing(m1.clone())
    );
    // The refused retry did not consume a seq.
    assert_eq!(rooms.room_by_id("c1").await.unwrap().unwrap().seq, 7);
    // Ids are per room.
    assert!(matches!(
        msgs.insert_message(&message("d1", "m1", "dm"))
            .await
            .unwrap(),
        Inserted::New(_)
    ));
    // Concurrent sends of one id store one message.
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let msgs = msgs.clone();
            tokio::spawn(async move { msgs.insert_message(&message("c1", "race", "r")).await })
        })
        .collect();
    let mut new = 0;
    for r in racers {
        if matches!(r.await.unwrap().unwrap(), Inserted::New(_)) {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    for i in 0..5 {
        msgs.insert_message(&message("c1", &format!("p{i}"), "x"))
            .await
            .unwrap();
    }
    let seqs = |v: Vec<MessageRecord>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(msgs.messages("c1", None, None, 3).await.unwrap()),
        [11, 12, 13]
    );
    assert_eq!(
        seqs(msgs.messages("c1", Some(10), None, 2).await.unwrap()),
        [8, 9]
    );
    assert_eq!(
        seqs(msgs.messages("c1", None, Some(7), 2).await.unwrap()),
        [8, 9]
    );
    assert!(
        msgs.messages("c1", None, Some(13), 5)
            .await
            .unwrap()
            .is_empty()
    );

    let edited = msgs
        .edit_message("c1", "m1", Some("uno"), None, &[], 9_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            edited.text.as_deref(),
            edited.seq,
            edited.version_seq,
            edited.edited_at
        ),
        (Some("uno"), 7, 14, Some(9_000))
    );
    assert_eq!(edited.content_hash, m1.content_hash);
    let gone = msgs.delete_message("c1", "m1").await.unwrap().unwrap();
    assert!(gone.deleted && gone.text.is_none() && gone.mentions.is_empty());
    assert_eq!((gone.seq, gone.version_seq), (7, 15));
    assert_eq!(msgs.delete_message("c1", "m1").await.unwrap(), None);
    assert_eq!(
        msgs.edit_message("c1", "m1", Some("x"), None, &[], 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(msgs.message("c1", "m1").await.unwrap(), Some(gone));
    assert_eq!(msgs.message("c1", "zz").await.unwrap(), None);
    changes(s).await;
}

/// The change log: room and membership events as logged, messages at their latest
/// version, merged in seq order; deleted messages keep no content.
async fn changes(s: &Stores) {
    use sotto_api::EventKind as K;
    let (rooms, msgs) = (&s.rooms, &s.messages);
    let ty = |e: &sotto_api::Event| serde_json::to_value(e).unwrap()["type"].clone();
    let all = rooms.changes_since("c1", 0, 100).await.unwrap();
    // c1: created 1, rb added 2, owner 3, removed 4, renamed 5, topic 6, m1 7 (edited
    // 14, deleted 15), race 8, p0..p4 9..13. m1's earlier versions are gone.
    let got: Vec<(i64, String)> = all
        .iter()
        .map(|e| (e.seq, ty(e).as_str().unwrap().to_owned()))
        .collect();
    let want = [
        (1, "room_created"),
        (2, "member_added"),
        (3, "owner_changed"),
        (4, "member_removed"),
        (5, "room_updated"),
        (6, "room_updated"),
        (8, "message_created"),
        (9, "message_created"),
        (10, "message_created"),
        (11, "message_created"),
        (12, "message_created"),
        (13, "message_created"),
        (15, "message_deleted"),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(s, t)| (*s, (*t).to_owned()))
            .collect::<Vec<_>>()
    );
    assert!(all.iter().all(|e| e.room_id == "c1"));
    let K::RoomCreated { room, member_ids } = &all[0].kind else {
        panic!("{:?}", all[0])
    };
    assert_eq!(
        (room.id.as_str(), room.seq, member_ids.clone()),
        ("c1", 1, vec!["ra".to_owned()])
    );
    let K::MemberAdded { member: added } = &all[1].kind else {
        panic!()
    };
    assert_eq!(
        (added.user_id.as_str(), added.username.as_str()),
        ("rb", "roomie-b")
    );
    assert_eq!(
        all[2].kind,
        K::OwnerChanged {
            user_id: "rb".into(),
            owner: true
        }
    );
    assert_eq!(
        all[3].kind,
        K::MemberRemoved {
            user_id: "rb".into(),
            forced_by: None,
        }
    );
    let K::RoomUpdated { room } = &all[5].kind else {
        panic!()
    };
    assert_eq!(
        (room.name.as_deref(), room.topic.as_str()),
        (Some("renamed"), "t")
    );
    let K::MessageDeleted { message } = &all[12].kind else {
        panic!()
    };
    assert!(message.deleted && message.text.is_none() && message.ciphertext.is_none());
    assert_eq!((message.id.as_str(), message.seq), ("m1", 7));

    // Paging and the point of view: after 9, p1.. are new; limit applies to the merge.
    let page = rooms.changes_since("c1", 9, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [10, 11]);
    // An edit seen from after the message was sent is an edit, from before it a create.
    let p2 = msgs
        .edit_message("c1", "p2", Some("changed"), None, &[], 9_500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p2.version_seq, 16);
    let from = |after| async move {
        let mut v = rooms.changes_since("c1", after, 100).await.unwrap();
        v.pop().unwrap()
    };
    let late = from(12).await;
    assert_eq!(late.seq, 16);
    let K::MessageEdited { message } = &late.kind else {
        panic!("{late:?}")
    };
    assert_eq!(message.text.as_deref(), Some("changed"));
    assert!(matches!(from(10).await.kind, K::MessageCreated { .. }));
    assert!(rooms.changes_since("c1", 16, 100).await.unwrap().is_empty());
    assert!(
        rooms
            .changes_since("nope", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // A removal after a point is found; before it, or of someone else, not.
    let removal = rooms.last_removal("c1", "rb", 3).await.unwrap().unwrap();
    assert_eq!(
        (removal.seq, removal.kind),
        (
            4,
            K::MemberRemoved {
                user_id: "rb".into(),
                forced_by: None,
            }
        )
    );
    assert_eq!(rooms.last_removal("c1", "rb", 4).await.unwrap(), None);
    assert_eq!(rooms.last_removal("c1", "ra", 0).await.unwrap(), None);

    // Peers: everyone sharing a room, once, without oneself.
    assert_eq!(rooms.room_peers("ra").await.unwrap(), ["rb"]);
    assert_eq!(rooms.room_peers("rb").await.unwrap(), ["ra"]);
    rooms.add_member("c1", &member("rb", false)).await.unwrap();
    assert_eq!(rooms.room_peers("rb").await.unwrap(), ["ra"]);
    assert!(rooms.room_peers("nobody").await.unwrap().is_empty());
}

fn file(id: &str, room_id: &str) -> FileRecord {
    FileRecord {
        id: id.into(),
        room_id: room_id.into(),
        uploader_id: "ra".into(),
        name: Some(format!("{id}.txt")),
        content_type: "text/plain".into(),
        size: 1234,
        created_at: 8_000,
    }
}

async fn files(s: &Stores) {
    let files = &s.files;
    let f1 = file("f1", "c1");
    files.insert_file(&f1).await.unwrap();
    let mut nameless = file("f2", "d1");
    nameless.name = None;
    files.insert_file(&nameless).await.unwrap();
    assert_eq!(files.file("f1").await.unwrap(), Some(f1.clone()));
    assert_eq!(files.file("f2").await.unwrap(), Some(nameless));
    assert_eq!(files.file("nope").await.unwrap(), None);
    assert!(matches!(
        files.insert_file(&file("f1", "d1")).await,
        Err(StoreError::Conflict)
    ));
    // A file belongs to an existing room.
    assert!(files.insert_file(&file("f3", "no-room")).await.is_err());
    assert!(files.delete_file("f1").await.unwrap());
    assert!(!files.delete_file("f1").await.unwrap());
    assert_eq!(files.file("f1").await.unwrap(), None);
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// `data` as a stream of `piece`-byte pieces.
fn pieces(data: &[u8], piece: usize) -> ByteStream {
    let v: Vec<std::io::Result<Bytes>> = data
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(v))
}

async fn read_all(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

async fn blobs(s: &Stores) {
    let blobs = &s.blobs;
    // Empty, small, an exact number of PostgreSQL chunks, and pieces straddling chunks.
    let cases = [
        ("zero", 0, 1),
        ("small", 1000, 7),
        ("exact", 2 * PG_CHUNK, 65_536),
        ("odd", 2 * PG_CHUNK + 17, 7_001),
    ];
    for (id, len, piece) in cases {
        let data = pattern(len);
        // A blob of exactly the cap is accepted.
        let size = blobs
            .put(id, pieces(&data, piece), len as u64)
            .await
            .unwrap();
        assert_eq!(size, len as u64, "{id}");
        let back = read_all(blobs.open(id).await.unwrap().unwrap()).await;
        assert!(back == data, "{id}: {} bytes back", back.len());
    }

    // Over the cap: refused, and nothing of it remains.
    let data = pattern(PG_CHUNK + 10);
    assert!(matches!(
        blobs.put("over", pieces(&data, 4096), PG_CHUNK as u64).await,
        Err(PutError::TooLarge(n)) if n == PG_CHUNK as u64
    ));
    assert!(blobs.open("over").await.unwrap().is_none());
    // A source that fails midway: the same.
    let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from(pattern(PG_CHUNK + 5))),
        Err(std::io::Error::other("client went away")),
    ]));
    assert!(matches!(
        blobs.put("fail", failing, u64::MAX).await,
        Err(PutError::Source(_))
    ));
    assert!(blobs.open("fail").await.unwrap().is_none());
    // The id is free again after a failure.
    blobs
        .put("over", pieces(&data, 4096), u64::MAX)
        .await
        .unwrap();
    assert!(read_all(blobs.open("over").await.unwrap().unwrap()).await == data);

    assert!(blobs.open("nope").await.unwrap().is_none());
    // Ids that could name a path are never used as one.
    assert!(blobs.open("../sotto.db").await.unwrap().is_none());
    assert!(!blobs.delete("../sotto.db").await.unwrap());
    assert!(blobs.put("a/b", pieces(b"x", 1), 10).await.is_err());

    blobs.put("gone", pieces(b"bye", 1), 10).await.unwrap();
    assert!(blobs.delete("gone").await.unwrap());
    assert!(!blobs.delete("gone").await.unwrap());
    assert!(blobs.open("gone").await.unwrap().is_none());
}

/// A message in a search room, sent by `sa` at `at`.
fn said(room_id: &str, id: &str, text: &str, at: i64) -> MessageRecord {
    MessageRecord {
        sender_id: "sa".into(),
        mentions: Vec::new(),
        created_at: at,
        ..message(room_id, id, text)
    }
}

async fn search(s: &Stores) {
    let (rooms, msgs, search) = (&s.rooms, &s.messages, &s.search);
    for (id, name) in [("sa", "searcher-a"), ("sb", "searcher-b")] {
        s.users.insert_user(&user(id, name, false)).await.unwrap();
    }
    let shared = room("s1", RoomKind::Channel, false, None);
    rooms
        .insert_room(&shared, &[member("sa", true), member("sb", false)])
        .await
        .unwrap();
    let other = room("s2", RoomKind::Team, true, None);
    rooms
        .insert_room(&other, &[member("sb", true), member("sa", false)])
        .await
        .unwrap();
    let secret = room("s3", RoomKind::Channel, true, None);
    rooms
        .insert_room(&secret, &[member("sb", true)])
        .await
        .unwrap();
    let encrypted = RoomRecord {
        encrypted: true,
        ..room("s4", RoomKind::Team, true, None)
    };
    rooms
        .insert_room(&encrypted, &[member("sa", true)])
        .await
        .unwrap();
    for m in [
        said("s1", "apple", "An Apple a day", 10),
        said("s1", "both", "apple and banana", 11),
        said("s2", "team", "apple pie for the team", 12),
        said("s3", "hidden", "secret apple plans", 13),
        said("s1", "edit", "old wording here", 14),
        said("s1", "gone", "apple to delete", 15),
        said("s1", "uni", "naïve café 日本語 Ünïcode", 16),
    ] {
        msgs.insert_message(&m).await.unwrap();
    }
    msgs.insert_message(&MessageRecord {
        text: None,
        ciphertext: Some("YXBwbGU=".into()),
        ..said("s4", "cipher", "", 17)
    })
    .await
    .unwrap();
    let ids = |v: Vec<MessageRecord>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let find = |user: &'static str, room: Option<&'static str>, q: &'static str| async move {
        ids(search
            .search_messages(user, room, q, None, 50)
            .await
            .unwrap_or_else(|e| panic!("{q:?}: {e}")))
    };

    // Whole words, any case, every word required, newest first; only one's own rooms.
    assert_eq!(
        find("sa", None, "apple").await,
        ["gone", "team", "both", "apple"]
    );
    assert_eq!(
        find("sa", None, "APPLE").await,
        ["gone", "team", "both", "apple"]
    );
    assert_eq!(find("sa", None, "banana apple").await, ["both"]);
    assert!(find("sa", None, "app").await.is_empty());
    assert_eq!(
        find("sb", None, "apple").await,
        ["gone", "hidden", "team", "both", "apple"]
    );
    assert_eq!(find("sa", Some("s2"), "apple").await, ["team"]);
    assert!(find("sa", Some("s3"), "apple").await.is_empty());
    assert_eq!(find("sa", None, "日本語").await, ["uni"]);
    assert_eq!(find("sa", None, "naïve ünïcode").await, ["uni"]);
    // Ciphertext is never searched.
    assert!(find("sa", None, "YXBwbGU").await.is_empty());

    // Edits replace the indexed words; deletes remove them.
    msgs.edit_message("s1", "edit", Some("new phrasing now"), None, &[], 20)
        .await
        .unwrap()
        .unwrap();
    assert!(find("sa", None, "wording").await.is_empty());
    assert_eq!(find("sa", None, "phrasing").await, ["edit"]);
    msgs.delete_message("s1", "gone").await.unwrap().unwrap();
    assert_eq!(find("sa", None, "apple").await, ["team", "both", "apple"]);
    assert!(find("sa", None, "delete").await.is_empty());

    // Leaving a room takes its messages out of one's results.
    rooms.remove_member("s2", "sa").await.unwrap().unwrap();
    assert_eq!(find("sa", None, "apple").await, ["both", "apple"]);

    // Nothing in the query is syntax: hostile input finds words or nothing, never fails.
    for q in [
        "\"",
        "\"\"",
        "*",
        "apple*",
        "NEAR(apple banana)",
        "apple NEAR banana",
        "body:apple",
        "-apple",
        "apple -banana",
        "apple OR banana",
        "NOT",
        "AND",
        "(",
        ")",
        "^apple",
        "'",
        "''; DROP TABLE messages; --",
        "a & b | !c",
        "apple:*",
        "\\",
        "\0",
        "apple\0banana",
        "\u{202e}",
        "😀",
        "{",
        "a+b",
        "%",
        "_",
        "\u{feff}",
    ] {
        search
            .search_messages("sa", None, q, None, 10)
            .await
            .unwrap_or_else(|e| panic!("{q:?}: {e}"));
    }
    assert_eq!(find("sa", None, "\"apple\" banana").await, ["both"]);
    assert_eq!(find("sa", None, "banana*").await, ["both"]);
    assert_eq!(find("sa", None, "apple\0banana").await, ["both"]);
    assert!(find("sa", None, "*").await.is_empty());

    // Paging: messages with equal times in two rooms, each returned exactly once.
    let plain = room("s5", RoomKind::Channel, false, None);
    rooms
        .insert_room(&plain, &[member("sa", true)])
        .await
        .unwrap();
    let wanted = [
        ("s1", "p1", 100),
        ("s5", "p2", 100),
        ("s1", "p3", 101),
        ("s1", "p4", 101),
        ("s5", "p5", 102),
        ("s1", "p6", 103),
        ("s5", "p7", 103),
    ];
    for (r, id, at) in wanted {
        msgs.insert_message(&said(r, id, "paged words", at))
            .await
            .unwrap();
    }
    let all = search
        .search_messages("sa", None, "paged", None, 50)
        .await
        .unwrap();
    assert_eq!(all.len(), wanted.len());
    let key = |m: &MessageRecord| (m.created_at, m.room_id.clone(), m.seq);
    assert!(
        all.windows(2).all(|w| key(&w[0]) > key(&w[1])),
        "newest first"
    );
    let mut paged = Vec::new();
    let mut cursor: Option<SearchCursor> = None;
    loop {
        let page = search
            .search_messages("sa", None, "paged", cursor.as_ref(), 3)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(SearchCursor::after);
        paged.extend(page);
    }
    assert_eq!(paged, all);
}

async fn audit(s: &Stores) {
    let all = s.audit.all_rooms().await.unwrap();
    let summary: Vec<(String, i64)> = all.iter().map(|(r, n)| (r.id.clone(), *n)).collect();
    // Every room, private ones and DMs included, oldest first, with its member count now.
    let mut expected = Vec::new();
    for id in ["c1", "d1", "p1", "s1", "s2", "s3", "s4", "s5"] {
        let r = s.rooms.room_by_id(id).await.unwrap().unwrap();
        let n = s.rooms.members(id).await.unwrap().len() as i64;
        expected.push((r.created_at, r.id, n));
    }
    expected.sort();
    assert_eq!(
        summary,
        expected
            .into_iter()
            .map(|(_, id, n)| (id, n))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        summary.iter().find(|(id, _)| id == "s1"),
        Some(&("s1".to_owned(), 2))
    );
    let (c1, _) = all.iter().find(|(r, _)| r.id == "c1").unwrap();
    assert_eq!(Some(c1), s.rooms.room_by_id("c1").await.unwrap().as_ref());
}

async fn keys(s: &Stores) {
    s.users
        .insert_user(&user("k1", "keyholder", false))
        .await
        .unwrap();
    s.users
        .insert_user(&user("k2", "keyless", false))
        .await
        .unwrap();
    let k = &s.keys;
    assert_eq!(k.bundle("k1").await.unwrap(), None);
    assert_eq!(k.backup("k1").await.unwrap(), None);

    // The first publication stores both; a second one changes nothing.
    assert!(
        k.publish_keys("k1", b"bundle-1", b"backup-1", 10)
            .await
            .unwrap()
    );
    assert!(
        !k.publish_keys("k1", b"bundle-2", b"backup-2", 11)
            .await
            .unwrap()
    );
    let bundle = k.bundle("k1").await.unwrap().unwrap();
    assert_eq!((bundle.bytes.as_slice(), bundle.at), (&b"bundle-1"[..], 10));
    assert_eq!(k.backup("k1").await.unwrap().unwrap().bytes, b"backup-1");
    let ids = ["k1".to_owned(), "k2".to_owned(), "nobody".to_owned()];
    let found = k.bundles(&ids).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].user_id, "k1");

    // A new backup only over the same bundle and the same current backup.
    assert!(
        !k.replace_backup("k1", b"bundle-2", b"backup-1", b"backup-x", 12)
            .await
            .unwrap()
    );
    assert!(
        !k.replace_backup("k1", b"bundle-1", b"backup-0", b"backup-x", 12)
            .await
            .unwrap()
    );
    assert!(
        k.replace_backup("k1", b"bundle-1", b"backup-1", b"backup-3", 13)
            .await
            .unwrap()
    );
    let backup = k.backup("k1").await.unwrap().unwrap();
    assert_eq!((backup.bytes.as_slice(), backup.at), (&b"backup-3"[..], 13));
    // Done once: the same compare-and-set again finds the backup changed.
    assert!(
        !k.replace_backup("k1", b"bundle-1", b"backup-1", b"backup-3", 14)
            .await
            .unwrap()
    );
    assert!(
        !k.replace_backup("k2", b"bundle-1", b"backup-1", b"backup-x", 14)
            .await
            .unwrap()
    );

    // A reset removes both; then new keys may be published.
    assert!(k.remove_keys("k1").await.unwrap());
    assert!(!k.remove_keys("k1").await.unwrap());
    assert_eq!(k.bundle("k1").await.unwrap(), None);
    assert_eq!(k.backup("k1").await.unwrap(), None);
    assert!(
        k.publish_keys("k1", b"bundle-4", b"backup-4", 15)
            .await
            .unwrap()
    );
    assert_eq!(k.bundle("k1").await.unwrap().unwrap().bytes, b"bundle-4");
}

async fn owners(s: &Stores) {
    for (id, name) in [
        ("o1", "owner-one"),
        ("o2", "owner-two"),
        ("o3", "plain-member"),
    ] {
        s.users.insert_user(&user(id, name, false)).await.unwrap();
    }
    let r = &s.rooms;
    let team = room("ot", RoomKind::Team, true, None);
    let members = [member("o1", true), member("o2", true), member("o3", false)];
    r.insert_room(&team, &members).await.unwrap();

    // Two owners stepping down at once: exactly one succeeds, and an owner remains.
    let (a, b) = tokio::join!(
        r.set_owner("ot", "o1", false),
        r.set_owner("ot", "o2", false)
    );
    let refused = [&a, &b]
        .iter()
        .filter(|x| matches!(x, Err(StoreError::LastOwner)))
        .count();
    assert_eq!(refused, 1, "{a:?} {b:?}");
    let owners = r.members("ot").await.unwrap();
    assert_eq!(owners.iter().filter(|m| m.owner).count(), 1);
    let last = owners.iter().find(|m| m.owner).unwrap().user_id.clone();

    // The last owner can neither leave nor step down while others remain; a refusal
    // takes no seq and logs nothing.
    let seq = r.room_by_id("ot").await.unwrap().unwrap().seq;
    assert!(matches!(
        r.remove_member("ot", &last).await,
        Err(StoreError::LastOwner)
    ));
    assert_eq!(r.room_by_id("ot").await.unwrap().unwrap().seq, seq);
    assert_eq!(r.changes_since("ot", seq, 10).await.unwrap(), vec![]);

    // Once alone, they may leave.
    for other in ["o1", "o2", "o3"].into_iter().filter(|u| *u != last) {
        r.remove_member("ot", other).await.unwrap().unwrap();
    }
    r.remove_member("ot", &last).await.unwrap().unwrap();
}

/// The last-owner rule holds on the signed path too: two owners' step-downs stored at
/// once (each a statement of its own, so the chain's compare-and-set does not order them)
/// leave exactly one owner, and the refused one stores neither its statement nor a seq.
async fn signed_step_downs(s: &Stores) {
    use super::{NewStatement, SignedChange};
    for (id, name) in [
        ("so1", "signed-one"),
        ("so2", "signed-two"),
        ("so3", "signed-three"),
    ] {
        s.users.insert_user(&user(id, name, false)).await.unwrap();
    }
    let team = room("sot", RoomKind::Team, true, None);
    let members = [
        member("so1", true),
        member("so2", true),
        member("so3", false),
    ];
    s.rooms.insert_room(&team, &members).await.unwrap();
    let step_down = |seq: u64, who: &'static str| async move {
        s.e2ee
            .append_statement(
                "sot",
                NewStatement {
                    seq,
                    actor: who,
                    bytes: who.as_bytes(),
                    new_epoch: false,
                    at: 5,
                },
                &SignedChange::SetOwner(who.into(), false),
            )
            .await
    };
    let (a, b) = tokio::join!(step_down(0, "so1"), step_down(1, "so2"));
    let refused = [&a, &b]
        .iter()
        .filter(|x| matches!(x, Err(StoreError::LastOwner)))
        .count();
    assert_eq!(refused, 1, "{a:?} {b:?}");
    let owners = s.rooms.members("sot").await.unwrap();
    assert_eq!(owners.iter().filter(|m| m.owner).count(), 1);
    assert_eq!(s.e2ee.statements("sot").await.unwrap().len(), 1);
    // Statement and change are two seqs; the refused one took none.
    assert_eq!(s.rooms.room_by_id("sot").await.unwrap().unwrap().seq, 3);

    // Leaving signed is held to the same rule.
    let last = owners.iter().find(|m| m.owner).unwrap().user_id.clone();
    let leave = s
        .e2ee
        .append_statement(
            "sot",
            NewStatement {
                seq: 2,
                actor: &last,
                bytes: b"leave",
                new_epoch: false,
                at: 6,
            },
            &SignedChange::RemoveMember(last.clone()),
        )
        .await;
    assert!(matches!(leave, Err(StoreError::LastOwner)), "{leave:?}");
}

/// Membership an administrator forced: kept on the membership and in the logged events,
/// under the same last-owner rule as any removal.
async fn forced_members(s: &Stores) {
    use sotto_api::EventKind as K;
    for (id, name) in [("fo", "forced-owner"), ("fm", "forced-member")] {
        s.users.insert_user(&user(id, name, false)).await.unwrap();
    }
    let r = &s.rooms;
    r.insert_room(
        &room("fr", RoomKind::Channel, true, None),
        &[member("fo", true)],
    )
    .await
    .unwrap();
    let added = r
        .force_add_member("fr", &member("fm", false), "admin-1")
        .await
        .unwrap()
        .unwrap();
    let K::MemberAdded { member: m } = &added.kind else {
        panic!("{added:?}")
    };
    assert_eq!(
        (m.user_id.as_str(), m.forced_by.as_deref()),
        ("fm", Some("admin-1"))
    );
    assert_eq!(
        r.forced_members("fr").await.unwrap(),
        [("fm".to_owned(), "admin-1".to_owned())]
    );
    // Already a member: nothing.
    assert_eq!(
        r.force_add_member("fr", &member("fm", false), "admin-1")
            .await
            .unwrap(),
        None
    );
    // The logged event is the one published.
    assert_eq!(r.changes_since("fr", 1, 10).await.unwrap(), [added]);

    // The last owner is not forced out while others remain.
    assert!(matches!(
        r.force_remove_member("fr", "fo", "admin-1").await,
        Err(StoreError::LastOwner)
    ));
    let removed = r
        .force_remove_member("fr", "fm", "admin-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        removed.kind,
        K::MemberRemoved {
            user_id: "fm".into(),
            forced_by: Some("admin-1".into())
        }
    );
    assert_eq!(r.changes_since("fr", 2, 10).await.unwrap(), [removed]);
    assert!(r.forced_members("fr").await.unwrap().is_empty());
    assert_eq!(
        r.force_remove_member("fr", "fm", "admin-1").await.unwrap(),
        None
    );
    // A plain invitation afterwards is not marked.
    r.add_member("fr", &member("fm", false))
        .await
        .unwrap()
        .unwrap();
    assert!(r.forced_members("fr").await.unwrap().is_empty());
}

/// Many sends at once (on SQLite they share commits): each is stored once, a repeated id
/// once, and every room's seqs stay contiguous.
/// `access` follows every change of a membership or of the encryption flag, however it
/// is made. Each change comes right after a read, so a cached copy that outlived its
/// change fails here.
async fn room_access(s: &Stores) {
    use super::{NewStatement, SignedChange};
    for (id, name) in [("xa", "access-a"), ("xb", "access-b")] {
        s.users.insert_user(&user(id, name, false)).await.unwrap();
    }
    let (r, e) = (&s.rooms, &s.e2ee);
    r.insert_room(
        &room("xr", RoomKind::Team, true, None),
        &[member("xa", true)],
    )
    .await
    .unwrap();
    let access = |user: &'static str| async move { r.access("xr", user).await.unwrap() };
    let is_member = |user: &'static str| async move {
        access(user)
            .await
            .unwrap()
            .member
            .map(|m| (m.username, m.owner))
    };
    assert_eq!(r.access("nope", "xa").await.unwrap(), None);
    let a = access("xa").await.unwrap();
    assert_eq!(
        (a.kind, a.private, a.encrypted),
        (RoomKind::Team, true, false)
    );
    assert_eq!(is_member("xa").await, Some(("access-a".into(), true)));
    assert_eq!(is_member("xb").await, None);

    r.add_member("xr", &member("xb", false)).await.unwrap();
    assert_eq!(is_member("xb").await, Some(("access-b".into(), false)));
    r.set_owner("xr", "xb", true).await.unwrap();
    assert_eq!(is_member("xb").await, Some(("access-b".into(), true)));
    r.remove_member("xr", "xb").await.unwrap();
    assert_eq!(is_member("xb").await, None);
    r.force_add_member("xr", &member("xb", false), "admin")
        .await
        .unwrap();
    assert!(is_member("xb").await.is_some());
    r.force_remove_member("xr", "xb", "admin").await.unwrap();
    assert_eq!(is_member("xb").await, None);
    r.set_encrypted("xr", true, "xa").await.unwrap();
    assert!(access("xa").await.unwrap().encrypted);

    // Signed changes through the room's chain.
    let statement = |seq: u64, change: SignedChange| async move {
        e.append_statement(
            "xr",
            NewStatement {
                seq,
                actor: "xa",
                bytes: b"statement",
                new_epoch: false,
                at: 9,
            },
            &change,
        )
        .await
        .unwrap()
    };
    let mut bob = member("xb", false);
    bob.username = "access-b".into();
    statement(0, SignedChange::AddMember(bob)).await;
    assert!(is_member("xb").await.is_some());
    statement(1, SignedChange::SetOwner("xb".into(), true)).await;
    assert_eq!(is_member("xb").await, Some(("access-b".into(), true)));
    statement(2, SignedChange::RemoveMember("xb".into())).await;
    assert_eq!(is_member("xb").await, None);
    statement(3, SignedChange::SetEncrypted(false)).await;
    assert!(!access("xa").await.unwrap().encrypted);
}

async fn concurrent_sends(s: &Stores) {
    s.users
        .insert_user(&user("cs", "concurrent-sender", false))
        .await
        .unwrap();
    for id in ["g1", "g2"] {
        let mut r = room(id, RoomKind::Channel, false, None);
        r.created_by = "cs".into();
        s.rooms
            .insert_room(&r, &[member("cs", true)])
            .await
            .unwrap();
    }
    let sends = (0..200).map(|i| {
        let mut m = message(if i % 2 == 0 { "g1" } else { "g2" }, &format!("m{i}"), "hi");
        m.sender_id = "cs".into();
        // Every tenth send is the same message sent again.
        if i % 10 == 0 {
            m.room_id = "g1".into();
            m.id = "again".into();
        }
        let messages = s.messages.clone();
        async move { messages.insert_message(&m).await.unwrap() }
    });
    let results = futures_util::future::join_all(sends).await;
    let new = results
        .iter()
        .filter(|r| matches!(r, Inserted::New(_)))
        .count();
    assert_eq!(new, 181, "180 distinct sends and one of the 20 repeats");
    for (room_id, count) in [("g1", 81), ("g2", 100)] {
        let stored = s.messages.messages(room_id, None, None, 200).await.unwrap();
        assert_eq!(stored.len(), count);
        let room = s.rooms.room_by_id(room_id).await.unwrap().unwrap();
        let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
        let expected: Vec<i64> = (room.seq - count as i64 + 1..=room.seq).collect();
        assert_eq!(seqs, expected, "{room_id}: contiguous seqs");
    }
}

async fn encryption(s: &Stores) {
    let rooms = &s.rooms;
    s.users
        .insert_user(&user("ea", "encrypter", false))
        .await
        .unwrap();
    let mut r = room("e1", RoomKind::Channel, true, None);
    r.created_by = "ea".into();
    rooms.insert_room(&r, &[member("ea", true)]).await.unwrap();
    // Each real change takes the next seq and is logged; a repeat changes nothing.
    let on = rooms
        .set_encrypted("e1", true, "ea")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on.seq, 2);
    assert_eq!(
        on.kind,
        sotto_api::EventKind::EncryptionChanged {
            encrypted: true,
            by: "ea".into()
        }
    );
    assert_eq!(rooms.set_encrypted("e1", true, "ea").await.unwrap(), None);
    assert!(rooms.room_by_id("e1").await.unwrap().unwrap().encrypted);
    let off = rooms
        .set_encrypted("e1", false, "ea")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(off.seq, 3);
    let r = rooms.room_by_id("e1").await.unwrap().unwrap();
    assert!(!r.encrypted);
    assert_eq!(r.seq, 3);
    assert_eq!(rooms.set_encrypted("zz", true, "ea").await.unwrap(), None);
    let logged = rooms.changes_since("e1", 1, 10).await.unwrap();
    assert_eq!(logged, vec![on, off]);
}

async fn chains_and_room_keys(s: &Stores) {
    use super::{NewStatement, RoomKeyRecord, SignedChange};
    let e = &s.e2ee;
    for (id, name) in [("ca", "chainer-a"), ("cb", "chainer-b")] {
        s.users.insert_user(&user(id, name, false)).await.unwrap();
    }
    let mut r = room("ch", RoomKind::Team, true, None);
    r.created_by = "ca".into();
    s.rooms
        .insert_room(&r, &[member("ca", true)])
        .await
        .unwrap();
    assert!(e.statements("ch").await.unwrap().is_empty());

    // Each statement takes a room seq, then its change takes the next.
    let events = e
        .append_statement(
            "ch",
            NewStatement {
                seq: 0,
                actor: "ca",
                bytes: b"first",
                new_epoch: false,
                at: 7,
            },
            &SignedChange::SetEncrypted(true),
        )
        .await
        .unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(s.rooms.room_by_id("ch").await.unwrap().unwrap().encrypted);
    // The compare-and-set: statement 0 exists, so another one is refused, and its
    // change and seq are rolled back with it.
    let mut bob = member("cb", false);
    bob.username = "chainer-b".into();
    assert!(matches!(
        e.append_statement(
            "ch",
            NewStatement {
                seq: 0,
                actor: "ca",
                bytes: b"other",
                new_epoch: false,
                at: 8
            },
            &SignedChange::AddMember(bob.clone())
        )
        .await,
        Err(StoreError::Conflict)
    ));
    assert!(s.rooms.member("ch", "cb").await.unwrap().is_none());
    assert_eq!(s.rooms.room_by_id("ch").await.unwrap().unwrap().seq, 3);
    let events = e
        .append_statement(
            "ch",
            NewStatement {
                seq: 1,
                actor: "ca",
                bytes: b"invite",
                new_epoch: false,
                at: 9,
            },
            &SignedChange::AddMember(bob),
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(s.rooms.member("ch", "cb").await.unwrap().is_some());
    assert_eq!(
        e.statements("ch").await.unwrap(),
        vec![b"first".to_vec(), b"invite".to_vec()]
    );
    assert!(
        e.append_statement(
            "none",
            NewStatement {
                seq: 0,
                actor: "ca",
                bytes: b"x",
                new_epoch: false,
                at: 9
            },
            &SignedChange::None
        )
        .await
        .unwrap()
        .is_empty()
    );

    // Room keys: one per recipient and epoch; a new epoch clears the rotation mark.
    let key = |epoch: &str, to: &str| RoomKeyRecord {
        room_id: "ch".into(),
        epoch_id: epoch.into(),
        recipient_id: to.into(),
        distributor_id: "ca".into(),
        sealed: format!("{epoch}-{to}").into_bytes(),
        created_at: 10,
    };
    assert_eq!(e.put_room_keys(&[key("e1", "ca")]).await.unwrap(), [true]);
    // A box a recipient already has is kept, also when it comes twice in one batch.
    assert_eq!(
        e.put_room_keys(&[key("e1", "ca"), key("e1", "cb"), key("e1", "cb")])
            .await
            .unwrap(),
        [false, true, false]
    );
    assert_eq!(
        e.room_keys("ch", "cb").await.unwrap(),
        vec![key("e1", "cb")]
    );
    assert_eq!(e.epoch_holders("ch", "e1").await.unwrap(), ["ca", "cb"]);
    // The recipient's own copy replaces a box handed on by someone else, once.
    let own = RoomKeyRecord {
        distributor_id: "cb".into(),
        sealed: b"own copy".to_vec(),
        ..key("e1", "cb")
    };
    assert_eq!(
        e.put_room_keys(std::slice::from_ref(&own)).await.unwrap(),
        [true]
    );
    assert_eq!(
        e.put_room_keys(&[key("e1", "cb"), own.clone()])
            .await
            .unwrap(),
        [false, false]
    );
    assert_eq!(e.room_keys("ch", "cb").await.unwrap(), vec![own]);
    assert!(!e.rotation_marked("ch").await.unwrap());
    e.mark_rotation("ch").await.unwrap();
    e.mark_rotation("ch").await.unwrap();
    e.mark_rotation("none").await.unwrap();
    assert!(e.rotation_marked("ch").await.unwrap());
    assert_eq!(e.drop_room_keys("cb").await.unwrap(), ["ch"]);
    assert!(e.room_keys("ch", "cb").await.unwrap().is_empty());
    assert_eq!(e.epoch_holders("ch", "e1").await.unwrap(), ["ca"]);
    e.append_statement(
        "ch",
        NewStatement {
            seq: 2,
            actor: "ca",
            bytes: b"epoch",
            new_epoch: true,
            at: 11,
        },
        &SignedChange::None,
    )
    .await
    .unwrap();
    assert!(!e.rotation_marked("ch").await.unwrap());
}

/// Read markers move forward only; unread counts skip one's own and deleted messages and
/// stop at the cap.
async fn read_markers(s: &Stores) {
    for (id, name) in [
        ("rm1", "marker-one"),
        ("rm2", "marker-two"),
        ("rm3", "marker-3"),
    ] {
        s.users.insert_user(&user(id, name, false)).await.unwrap();
    }
    let (r, m) = (&s.rooms, &s.messages);
    let mut chan = room("rmc", RoomKind::Channel, false, None);
    chan.created_by = "rm1".into();
    chan.created_at = 9_000_000;
    r.insert_room(&chan, &[member("rm1", true), member("rm2", false)])
        .await
        .unwrap();
    let mut quiet = room("rmq", RoomKind::Team, true, None);
    quiet.created_by = "rm1".into();
    quiet.created_at = 9_000_001;
    r.insert_room(&quiet, &[member("rm1", true)]).await.unwrap();
    let send = |id: &str, from: &str| {
        let mut msg = message("rmc", id, id);
        msg.sender_id = from.into();
        msg.mentions = vec![];
        async move {
            match m.insert_message(&msg).await.unwrap() {
                Inserted::New(x) => x.seq,
                other => panic!("{other:?}"),
            }
        }
    };
    let unread_of = |user: &'static str, cap: u32| async move {
        r.rooms_with_unread(user, cap)
            .await
            .unwrap()
            .into_iter()
            .map(|x| (x.room.id, x.last_read_seq, x.unread))
            .collect::<Vec<_>>()
    };
    // A new room starts read.
    assert_eq!(
        unread_of("rm1", 1000).await,
        [("rmc".into(), 1, 0), ("rmq".into(), 1, 0)]
    );

    let a1 = send("a1", "rm1").await;
    let b1 = send("b1", "rm2").await;
    send("b2", "rm2").await;
    let b3 = send("b3", "rm2").await;
    // rm1 sent a1 (read by sending it); three from rm2 are unread.
    assert_eq!(unread_of("rm1", 1000).await[0], ("rmc".into(), a1, 3));
    // rm2 wrote last, so has read everything; rm1's a1 is before their marker.
    assert_eq!(unread_of("rm2", 1000).await, [("rmc".into(), b3, 0)]);
    // The cap counts no further.
    assert_eq!(unread_of("rm1", 2).await[0].2, 2);
    // Deleted messages are not unread.
    m.delete_message("rmc", "b2").await.unwrap().unwrap();
    assert_eq!(unread_of("rm1", 1000).await[0].2, 2);

    // Forward only; a seq beyond the room's is taken as the room's.
    assert_eq!(r.mark_read("rmc", "rm1", b1).await.unwrap(), Some(b1));
    assert_eq!(unread_of("rm1", 1000).await[0], ("rmc".into(), b1, 1));
    assert_eq!(r.mark_read("rmc", "rm1", a1).await.unwrap(), Some(b1));
    let room_seq = r.room_by_id("rmc").await.unwrap().unwrap().seq;
    assert_eq!(
        r.mark_read("rmc", "rm1", i64::MAX).await.unwrap(),
        Some(room_seq)
    );
    assert_eq!(unread_of("rm1", 1000).await[0], ("rmc".into(), room_seq, 0));
    // Marking takes no seq.
    assert_eq!(r.room_by_id("rmc").await.unwrap().unwrap().seq, room_seq);

    // Non-members and missing rooms have no marker.
    assert_eq!(r.mark_read("rmc", "rm3", 1).await.unwrap(), None);
    assert_eq!(r.mark_read("nope", "rm1", 1).await.unwrap(), None);
    // A member added later starts with what came before them read.
    r.add_member("rmc", &member("rm3", false))
        .await
        .unwrap()
        .unwrap();
    let joined = unread_of("rm3", 1000).await;
    assert_eq!(joined, [("rmc".into(), room_seq + 1, 0)]);
    let b4 = send("b4", "rm2").await;
    assert_eq!(
        unread_of("rm3", 1000).await,
        [("rmc".into(), room_seq + 1, 1)]
    );
    assert!(b4 > room_seq + 1);

    // A bulk import stores what sends would, under consecutive seqs, and moves the
    // sender's marker; a reused id stores nothing of its batch.
    let batch: Vec<_> = (0..30)
        .map(|i| {
            let mut msg = message("rmc", &format!("imp{i}"), "imported");
            msg.sender_id = "rm2".into();
            msg
        })
        .collect();
    let stored = m.import_messages(&batch).await.unwrap();
    let seqs: Vec<i64> = stored.iter().map(|x| x.seq).collect();
    assert_eq!(seqs, (b4 + 1..=b4 + 30).collect::<Vec<_>>());
    assert_eq!(m.message("rmc", "imp7").await.unwrap().unwrap(), stored[7]);
    assert_eq!(unread_of("rm3", 1000).await[0].2, 31);
    assert_eq!(unread_of("rm3", 10).await[0].2, 10);
    assert_eq!(unread_of("rm2", 1000).await[0], ("rmc".into(), b4 + 30, 0));
    let again = [message("rmc", "fresh", "x"), message("rmc", "imp0", "x")];
    assert!(matches!(
        m.import_messages(&again).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(m.message("rmc", "fresh").await.unwrap(), None);
    assert_eq!(r.room_by_id("rmc").await.unwrap().unwrap().seq, b4 + 30);
}

/// Many senders at once across rooms, with one message sent by all of them at the same
/// time: every send is answered, each id is stored once under the next seq of its room
/// (no gaps, in each sender's order), a repeat is answered with the stored message, and
/// each sender has read up to their last message.
async fn batched_sends(s: &Stores) {
    use std::collections::{HashMap, HashSet};
    const SENDERS: [&str; 4] = ["bs1", "bs2", "bs3", "bs4"];
    const ROOMS: [&str; 3] = ["bk1", "bk2", "bk3"];
    for (i, id) in SENDERS.iter().enumerate() {
        s.users
            .insert_user(&user(id, &format!("batch-sender-{i}"), false))
            .await
            .unwrap();
    }
    for id in ROOMS {
        let mut r = room(id, RoomKind::Channel, false, None);
        r.created_by = "bs1".into();
        let members: Vec<_> = SENDERS.iter().map(|u| member(u, *u == "bs1")).collect();
        s.rooms.insert_room(&r, &members).await.unwrap();
    }
    // Task t sends 50 messages one after the other, to the rooms in turn; every fifth is
    // the same message (id and content) sent by every task.
    let tasks: Vec<_> = (0..8usize)
        .map(|t| {
            let messages = s.messages.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..50usize {
                    let m = if i % 5 == 0 {
                        let mut m = message(ROOMS[i % 3], &format!("all{i}"), "for all");
                        m.sender_id = "bs1".into();
                        m
                    } else {
                        let mut m = message(ROOMS[(t + i) % 3], &format!("t{t}-{i}"), "own");
                        m.sender_id = SENDERS[t % 4].into();
                        m.mentions = vec![format!("m{t}-{i}")];
                        m
                    };
                    let answer = messages.insert_message(&m).await.unwrap();
                    answers.push((m, answer));
                }
                answers
            })
        })
        .collect();
    let mut new: HashMap<(String, String), MessageRecord> = HashMap::new();
    let mut repeats = Vec::new();
    for task in tasks {
        // A task's sends wait for each other, so its new messages in a room ascend.
        let mut last_seq: HashMap<String, i64> = HashMap::new();
        for (sent, answer) in task.await.unwrap() {
            match answer {
                Inserted::New(m) => {
                    let expected = MessageRecord {
                        seq: m.seq,
                        version_seq: m.seq,
                        ..sent.clone()
                    };
                    assert_eq!(m, expected, "stored as sent");
                    let previous = last_seq.insert(m.room_id.clone(), m.seq).unwrap_or(0);
                    assert!(previous < m.seq, "{}: in send order", m.id);
                    let key = (m.room_id.clone(), m.id.clone());
                    assert!(new.insert(key, m).is_none(), "{}: stored twice", sent.id);
                }
                Inserted::Existing(m) => repeats.push((sent, m)),
            }
        }
    }
    assert_eq!(
        new.len(),
        8 * 40 + 10,
        "every own message and each shared one"
    );
    assert_eq!(
        repeats.len(),
        10 * 7,
        "the other sends of the shared messages"
    );
    for (sent, stored) in &repeats {
        assert!(sent.id.starts_with("all"), "{} repeated", sent.id);
        assert_eq!(&new[&(sent.room_id.clone(), sent.id.clone())], stored);
    }
    // Sends queued at once share a batch: two senders, many messages each, one room.
    let burst = (0..30).map(|i| {
        let mut m = message("bk1", &format!("burst{i}"), "burst");
        m.sender_id = SENDERS[1 + i % 2].into();
        let messages = s.messages.clone();
        async move { messages.insert_message(&m).await.unwrap() }
    });
    // Queued in this order (each send is queued when first polled), so numbered in it.
    let mut previous = 0;
    for answer in futures_util::future::join_all(burst).await {
        let Inserted::New(m) = answer else {
            panic!("{answer:?}")
        };
        assert!(m.seq > previous, "{}: in queue order", m.id);
        previous = m.seq;
        new.insert((m.room_id.clone(), m.id.clone()), m);
    }
    for room_id in ROOMS {
        let stored = s
            .messages
            .messages(room_id, None, None, 1000)
            .await
            .unwrap();
        let ids: HashSet<&str> = stored.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids.len(), stored.len(), "{room_id}: ids once");
        let count = new.keys().filter(|(r, _)| r == room_id).count();
        assert_eq!(stored.len(), count, "{room_id}: every new message");
        // The room took seq 1 when created; its messages took every seq after it.
        let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (2..=1 + count as i64).collect::<Vec<_>>(),
            "{room_id}"
        );
        let room = s.rooms.room_by_id(room_id).await.unwrap().unwrap();
        assert_eq!(room.seq, 1 + count as i64);
        for m in &stored {
            assert_eq!(m, &new[&(m.room_id.clone(), m.id.clone())]);
        }
    }
    for sender in SENDERS {
        let markers = s.rooms.rooms_with_unread(sender, 1000).await.unwrap();
        for room_id in ROOMS {
            let last_sent = new
                .values()
                .filter(|m| m.room_id == room_id && m.sender_id == sender)
                .map(|m| m.seq)
                .max()
                .unwrap_or(1);
            let marker = markers.iter().find(|x| x.room.id == room_id).unwrap();
            assert_eq!(marker.last_read_seq, last_sent, "{sender} in {room_id}");
        }
    }
}

/// Sends that fail, sent at the same time as others: each fails alone.
async fn failing_sends_among_others(s: &Stores) {
    let mut r = room("bf1", RoomKind::Channel, false, None);
    r.created_by = "bs1".into();
    s.rooms
        .insert_room(&r, &[member("bs1", true)])
        .await
        .unwrap();
    let sends = (0..40).map(|i| {
        let mut m = message("bf1", &format!("f{i}"), "fine");
        m.sender_id = "bs1".into();
        match i {
            10 => m.room_id = "no-such-room".into(),
            // Refused by the sender's reference, after the room's seq was taken.
            20 => m.sender_id = "no-such-user".into(),
            _ => {}
        }
        let messages = s.messages.clone();
        async move { messages.insert_message(&m).await }
    });
    let results = futures_util::future::join_all(sends).await;
    for (i, result) in results.iter().enumerate() {
        match (i, result) {
            (10, Err(StoreError::Corrupt(e))) => assert_eq!(e, "no room no-such-room"),
            (20, Err(_)) => {}
            (10 | 20, other) => panic!("send {i}: {other:?}"),
            (_, Ok(Inserted::New(m))) => assert_eq!(m.id, format!("f{i}")),
            (_, other) => panic!("send {i}: {other:?}"),
        }
    }
    let stored = s.messages.messages("bf1", None, None, 100).await.unwrap();
    let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (2..=39).collect::<Vec<_>>(),
        "no seq taken by a failure"
    );
    assert_eq!(s.messages.message("bf1", "f20").await.unwrap(), None);
    assert_eq!(s.rooms.room_by_id("bf1").await.unwrap().unwrap().seq, 39);
}

/// PostgreSQL: when the message writer's connection is killed, sends still succeed
/// and the writer connects again.
async fn writer_reconnects(s: &Stores, pool: &sqlx::PgPool) {
    let writers = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
        )
        .bind(super::pg_batch::APPLICATION_NAME)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let send = |id: &str| {
        let mut m = message("bf1", id, "after");
        m.sender_id = "bs1".into();
        async move { s.messages.insert_message(&m).await.unwrap() }
    };
    assert!(matches!(send("w0").await, Inserted::New(_)));
    assert_eq!(writers().await, 1);
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(super::pg_batch::APPLICATION_NAME)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(killed, [true]);
    for id in ["w1", "w2", "w3"] {
        assert!(matches!(send(id).await, Inserted::New(_)));
    }
    assert_eq!(writers().await, 1);
    let seqs: Vec<i64> = s
        .messages
        .messages("bf1", None, Some(39), 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [40, 41, 42, 43]);
}

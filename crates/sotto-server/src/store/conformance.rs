//! One behaviour, two backends: every test here runs against SQLite and PostgreSQL.

use super::{
    Inserted, MemberRecord, MessageRecord, RoomRecord, SearchCursor, SessionKind, SessionRecord,
    StoreError, Stores, UserRecord,
};
use crate::test_support::{PgTestDb, sqlite_stores};
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
    search(stores).await;
    audit(stores).await;
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

    sessions.touch_session("s1", 555).await.unwrap();
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

    // Expiry: s2 expires at 10_200, s3 at 10_300; the token never.
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
    assert_eq!(
        sessions
            .delete_sessions_of_user("u1", Some(SessionKind::Login))
            .await
            .unwrap(),
        1
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
    let (_dir, stores) = sqlite_stores().await;
    run(&stores).await;
    stores.close().await;
}

#[tokio::test]
async fn postgres_backend_conforms() {
    let Some(db) = PgTestDb::create().await else {
        return;
    };
    let stores = Stores::open_postgres(db.url()).await.unwrap();
    run(&stores).await;
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
    assert_eq!(
        rooms.add_member("c1", &member("rb", false)).await.unwrap(),
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
    assert_eq!(rooms.set_owner("c1", "rb", true).await.unwrap(), Some(3));
    assert!(rooms.member("c1", "rb").await.unwrap().unwrap().owner);
    assert_eq!(rooms.set_owner("c1", "zz", true).await.unwrap(), None);
    let members = rooms.members("c1").await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(rooms.remove_member("c1", "rb").await.unwrap(), Some(4));
    assert_eq!(rooms.remove_member("c1", "rb").await.unwrap(), None);
    assert_eq!(rooms.member("c1", "rb").await.unwrap(), None);
    assert_eq!(
        rooms
            .update_room("c1", Some("renamed"), None)
            .await
            .unwrap(),
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

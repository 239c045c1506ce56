//! Rooms and messages through the built `sotto` binary against a real server: encrypted
//! channels and direct messages, a late joiner, a removal, a file round trip, export.

mod common;
use common::Sandbox;
use serde_json::Value;
use sotto_server::testing::{TEST_ADMIN, TestServer};

const PW: &str = "a login password";

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_rooms_from_the_command_line() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let s = Sandbox::new();
    for name in ["ana", "bob", "cyd"] {
        server.create_user(name, PW).await;
        s.login(&server, name, name, PW).await;
        s.setup(name).await;
    }

    // An encrypted private channel with Bo; both read the message, marked encrypted.
    let room = s
        .run(
            "ana",
            &[
                "room",
                "create",
                "plans",
                "--encrypted",
                "--members",
                "bob",
                "--json",
            ],
            "",
        )
        .await
        .ok()
        .json();
    assert_eq!(room["encrypted"], true);
    assert_eq!(room["private"], true);
    s.run("ana", &["send", "plans", "the plan is secret"], "")
        .await
        .ok();
    s.run("bob", &["send", "plans"], "a reply from stdin\n")
        .await
        .ok();
    let read = s.run("bob", &["read", "plans", "--json"], "").await.ok();
    let msgs = lines(&read.stdout);
    assert_eq!(msgs.len(), 2, "{}", read.stdout);
    assert_eq!(msgs[0]["text"], "the plan is secret");
    assert_eq!(msgs[0]["sender"], "ana");
    assert_eq!(msgs[1]["text"], "a reply from stdin");
    // The same fields as a `message` of `sotto chat --json`.
    let mut keys: Vec<&str> = msgs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "attachments",
            "encrypted",
            "id",
            "otr",
            "problem",
            "sender",
            "sender_id",
            "text",
            "time",
            "type",
            "verified"
        ]
    );
    for m in &msgs {
        assert_eq!(m["encrypted"], true);
        assert_eq!(m["otr"], false);
        assert!(m["problem"].is_null(), "{m}");
    }
    let human = s.run("ana", &["read", "plans"], "").await.ok();
    assert!(
        human.stdout.contains("ana 🔑✓: the plan is secret"),
        "{}",
        human.stdout
    );
    let list = s.run("bob", &["room", "list"], "").await.ok();
    assert!(
        list.stdout.contains("private channel 🔑  plans"),
        "{}",
        list.stdout
    );

    // Cy joins later and reads the history: the inviter handed the keys on.
    s.run("ana", &["room", "invite", "plans", "cyd"], "")
        .await
        .ok();
    let read = s.run("cyd", &["read", "plans", "--json"], "").await.ok();
    let msgs = lines(&read.stdout);
    assert_eq!(msgs[0]["text"], "the plan is secret", "{}", read.stdout);
    let members = s
        .run("cyd", &["room", "members", "plans", "--json"], "")
        .await
        .ok();
    let members = lines(&members.stdout);
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["verified_by_room"] == true));

    // A member the server adds on its own is flagged and gets no key (B11).
    let eve = server.create_user("eve", PW).await;
    server
        .add_member_behind_the_rooms_back(room["id"].as_str().unwrap(), &eve)
        .await;
    let members = s.run("ana", &["room", "members", "plans"], "").await.ok();
    assert!(
        members
            .stdout
            .contains("eve (NOT VERIFIED BY THE ROOM: gets no key)"),
        "{}",
        members.stdout
    );

    // An encrypted file: the server stores ciphertext; Cy gets the original back.
    let file = s.dir.path().join("report.bin");
    let bytes: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let sent = s
        .run(
            "ana",
            &["send", "plans", "--file", file.to_str().unwrap(), "--json"],
            "",
        )
        .await
        .ok()
        .json();
    assert_eq!(sent["attachments"][0]["name"], "report.bin");
    let out = s.dir.path().join("got.bin");
    s.run(
        "cyd",
        &[
            "download",
            "plans",
            sent["id"].as_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        "",
    )
    .await
    .ok();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    // Export, decrypted here: JSON with the texts, and a PDF.
    let json_out = s.dir.path().join("plans.json");
    s.run(
        "cyd",
        &[
            "export",
            "plans",
            "--format",
            "json",
            "--output",
            json_out.to_str().unwrap(),
        ],
        "",
    )
    .await
    .ok();
    let exported: Value = serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
    let texts: Vec<&str> = exported["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"the plan is secret"), "{exported}");
    let pdf_out = s.dir.path().join("plans.pdf");
    s.run(
        "cyd",
        &[
            "export",
            "plans",
            "--format",
            "pdf",
            "--output",
            pdf_out.to_str().unwrap(),
        ],
        "",
    )
    .await
    .ok();
    assert!(std::fs::read(&pdf_out).unwrap().starts_with(b"%PDF-"));

    // Bo is removed: the key rotates, and Bo cannot read what comes after.
    s.run("ana", &["room", "remove", "plans", "bob"], "")
        .await
        .ok();
    s.run("ana", &["send", "plans", "after bo left"], "")
        .await
        .ok();
    let read = s.run("cyd", &["read", "plans", "--json"], "").await.ok();
    let last = lines(&read.stdout).pop().unwrap();
    assert_eq!(last["text"], "after bo left");
    let id = room["id"].as_str().unwrap();
    s.run("bob", &["read", id], "").await.fails_with("no room");

    // An encrypted direct message, named by @user.
    let dm = s
        .run("ana", &["dm", "bob", "--encrypted", "--json"], "")
        .await
        .ok()
        .json();
    assert_eq!(dm["encrypted"], true);
    s.run("ana", &["send", "@bob", "just us"], "").await.ok();
    let list = s.run("bob", &["room", "list"], "").await.ok();
    assert!(
        list.stdout.contains("direct message 🔑  with ana"),
        "{}",
        list.stdout
    );
    let read = s.run("bob", &["read", "@ana", "--json"], "").await.ok();
    assert_eq!(lines(&read.stdout)[0]["text"], "just us");

    // A plaintext channel: text, a file by reference, and no key symbol.
    s.run("ana", &["room", "create", "lobby", "--members", "bob"], "")
        .await
        .ok();
    s.run("ana", &["send", "lobby", "hello all"], "").await.ok();
    let sent = s
        .run(
            "ana",
            &["send", "lobby", "--file", file.to_str().unwrap(), "--json"],
            "",
        )
        .await
        .ok()
        .json();
    let plain_out = s.dir.path().join("plain.bin");
    s.run(
        "bob",
        &[
            "download",
            "lobby",
            sent["id"].as_str().unwrap(),
            "-o",
            plain_out.to_str().unwrap(),
        ],
        "",
    )
    .await
    .ok();
    assert_eq!(std::fs::read(&plain_out).unwrap(), bytes);
    // Two messages from Ana are unread until Bo reads the room.
    let list = s.run("bob", &["room", "list"], "").await.ok();
    assert!(
        list.stdout.contains("channel  lobby  (2 unread)"),
        "{}",
        list.stdout
    );
    let human = s.run("bob", &["read", "lobby"], "").await.ok();
    assert!(human.stdout.contains("ana: hello all"), "{}", human.stdout);
    let list = s.run("bob", &["room", "list"], "").await.ok();
    assert!(
        list.stdout.lines().any(|l| l.ends_with("channel  lobby")),
        "{}",
        list.stdout
    );
    // Ana's own message is not unread for her.
    let list = s.run("ana", &["room", "list", "--json"], "").await.ok();
    let lobby = lines(&list.stdout)
        .into_iter()
        .find(|r| r["name"] == "lobby")
        .unwrap();
    assert_eq!(lobby["unread"], 0, "{lobby}");
    s.run("bob", &["room", "encryption", "lobby", "on"], "")
        .await
        .fails_with("");
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_force_membership_from_the_command_line() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let s = Sandbox::new();
    for name in ["ana", "bob", "cyd"] {
        server.create_user(name, PW).await;
        s.login(&server, name, name, PW).await;
        s.setup(name).await;
    }
    s.login(&server, "admin", TEST_ADMIN.0, TEST_ADMIN.1).await;
    s.run(
        "ana",
        &["room", "create", "plans", "--encrypted", "--members", "bob"],
        "",
    )
    .await
    .ok();
    s.run("ana", &["send", "plans", "for signed members"], "")
        .await
        .ok();

    // The admin, not a member, names the room; Cyd is in, flagged, and reads nothing.
    let added = s
        .run(
            "admin",
            &["admin", "room", "add-member", "plans", "cyd"],
            "",
        )
        .await
        .ok();
    assert!(added.stdout.contains("added cyd"), "{}", added.stdout);
    let members = s.run("ana", &["room", "members", "plans"], "").await.ok();
    assert!(
        members
            .stdout
            .contains("cyd (ADDED BY AN ADMINISTRATOR, NOT VERIFIED BY THE ROOM: gets no key)"),
        "{}",
        members.stdout
    );
    let json = s
        .run("ana", &["room", "members", "plans", "--json"], "")
        .await
        .ok();
    let listed = lines(&json.stdout);
    let cyd = listed.iter().find(|m| m["username"] == "cyd").unwrap();
    let bob = listed.iter().find(|m| m["username"] == "bob").unwrap();
    let bob_id = bob["user_id"].as_str().unwrap().to_owned();
    assert_eq!(cyd["verified_by_room"], false);
    assert!(cyd["forced_by"].is_string(), "{cyd}");
    s.run("ana", &["send", "plans", "still for signed members"], "")
        .await
        .ok();
    let read = s.run("cyd", &["read", "plans", "--json"], "").await.ok();
    assert!(
        !read.stdout.contains("for signed members"),
        "{}",
        read.stdout
    );

    // Bob forced out: the signed state still lists him (by id: the server no longer
    // names him in this room), and Ana is told so.
    s.run(
        "admin",
        &["admin", "room", "remove-member", "plans", "bob"],
        "",
    )
    .await
    .ok();
    let members = s.run("ana", &["room", "members", "plans"], "").await.ok();
    let expected =
        format!("{bob_id} (removed by an administrator, but still in the room's signed state");
    assert!(members.stdout.contains(&expected), "{}", members.stdout);

    // Only admins; and a room that is not there is said so.
    s.run("ana", &["admin", "room", "add-member", "plans", "bob"], "")
        .await
        .fails_with("forbidden");
    s.run(
        "admin",
        &["admin", "room", "add-member", "nowhere", "bob"],
        "",
    )
    .await
    .fails_with("no room nowhere");
    server.finish().await;
}

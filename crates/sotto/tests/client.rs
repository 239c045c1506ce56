//! The client commands of the built `sotto` binary against a real server: login, keys,
//! safety numbers and key changes, admin commands, search, exit codes and profile files.

use serde_json::{Value, json};
use sotto_server::testing::{TEST_ADMIN, TestServer};
use std::path::Path;

const ANA_PW: &str = "ana's login password";
const BO_PW: &str = "bo's login password";

mod common;
use common::Sandbox;

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn login_keys_and_passwords() {
    for server in TestServer::every_backend().await {
        keys_on_several_profiles(&server).await;
        server.finish().await;
    }
}

async fn keys_on_several_profiles(server: &TestServer) {
    let backend = server.backend();
    server.enable_encryption().await;
    server.create_user("ana", ANA_PW).await;
    let s = Sandbox::new();

    let run = s.login(server, "a1", "ana", ANA_PW).await;
    assert!(
        run.stdout.contains("logged in as ana"),
        "{backend}: {}",
        run.stdout
    );
    let me = s.run("a1", &["whoami", "--json"], "").await.ok().json();
    assert_eq!(me["username"], "ana");
    assert_eq!(me["server"], server.url());
    assert_eq!(me["unlocked"], false);
    let status = s
        .run("a1", &["e2e", "status", "--json"], "")
        .await
        .ok()
        .json();
    assert_eq!(status["published"], false);

    let password = s.setup("a1").await;
    let status = s
        .run("a1", &["e2e", "status", "--json"], "")
        .await
        .ok()
        .json();
    assert_eq!(
        (&status["published"], &status["unlocked"]),
        (&json!(true), &json!(true))
    );
    s.run("a1", &["e2e", "setup"], "")
        .await
        .fails_with("encryption keys exist already");

    // A second device: locked until the right password is given.
    s.login(server, "a2", "ana", ANA_PW).await;
    s.run(
        "a2",
        &["e2e", "unlock", "--password-stdin"],
        "not the password\n",
    )
    .await
    .fails_with("wrong encryption password");
    s.run(
        "a2",
        &["e2e", "unlock", "--password-stdin"],
        &format!("{password}\n"),
    )
    .await
    .ok();
    #[cfg(unix)]
    {
        let dir = s.profile("a2");
        assert_eq!(mode(&dir), 0o700);
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        assert!(dir.join("keys").exists() && dir.join("profile.json").exists());
    }

    // Changing the password: the old one no longer unlocks, the new one does.
    let new = "a new encryption password";
    s.run(
        "a2",
        &["e2e", "change-password", "--password-stdin"],
        &format!("{password}\n{new}\n"),
    )
    .await
    .ok();
    s.login(server, "a3", "ana", ANA_PW).await;
    s.run(
        "a3",
        &["e2e", "unlock", "--password-stdin"],
        &format!("{password}\n"),
    )
    .await
    .fails_with("wrong encryption password");
    s.run(
        "a3",
        &["e2e", "unlock", "--password-stdin"],
        &format!("{new}\n"),
    )
    .await
    .ok();

    // Reset asks for the login password, not the encryption password.
    s.run(
        "a3",
        &["e2e", "reset", "--password-stdin"],
        &format!("{new}\n"),
    )
    .await
    .fails_with("");
    s.run(
        "a3",
        &["e2e", "reset", "--password-stdin"],
        &format!("{ANA_PW}\n"),
    )
    .await
    .ok();
    let status = s
        .run("a3", &["e2e", "status", "--json"], "")
        .await
        .ok()
        .json();
    assert_eq!(
        (&status["published"], &status["unlocked"]),
        (&json!(false), &json!(false))
    );

    // Logging out forgets the session here.
    s.run("a3", &["logout"], "").await.ok();
    s.run("a3", &["whoami"], "")
        .await
        .fails_with("not logged in");
}

#[tokio::test(flavor = "multi_thread")]
async fn safety_numbers_and_key_changes() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    server.create_user("ana", ANA_PW).await;
    server.create_user("bob", BO_PW).await;
    let s = Sandbox::new();
    s.login(&server, "ana", "ana", ANA_PW).await;
    s.login(&server, "bob", "bob", BO_PW).await;
    s.setup("ana").await;
    s.setup("bob").await;

    let ana_view = s
        .run("ana", &["verify", "bob", "--json"], "")
        .await
        .ok()
        .json();
    let bo_view = s
        .run("bob", &["verify", "@ana", "--json"], "")
        .await
        .ok()
        .json();
    let number = ana_view["safety_number"].as_str().unwrap().to_owned();
    assert_eq!(number.split(' ').count(), 12);
    assert!(
        number
            .split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
    );
    assert_eq!(bo_view["safety_number"], number);
    assert_eq!(ana_view["verified"], false);
    let human = s.run("ana", &["verify", "bob"], "").await.ok();
    let groups: Vec<&str> = number.split(' ').collect();
    assert!(
        human.stdout.contains(&groups[..4].join(" ")),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("NOT verified"), "{}", human.stdout);
    let confirmed = s
        .run("ana", &["verify", "bob", "--confirm", "--json"], "")
        .await
        .ok();
    assert_eq!(confirmed.json()["verified"], true);

    // An admin resets bo's keys; bo logs in again and makes new ones.
    s.login(&server, "admin", TEST_ADMIN.0, TEST_ADMIN.1).await;
    s.run("admin", &["admin", "reset-e2e", "bob"], "")
        .await
        .ok();
    s.run("bob", &["whoami"], "")
        .await
        .fails_with("unauthorized");
    s.login(&server, "bob", "bob", BO_PW).await;
    s.setup("bob").await;

    // Ana is warned on every command until she accepts the change.
    let changed = s.run("ana", &["verify", "bob", "--json"], "").await.ok();
    let view = changed.json();
    assert_eq!(
        view["safety_number"], number,
        "the pinned key stays until accepted"
    );
    let pending = view["pending_change"].as_str().unwrap().to_owned();
    assert_ne!(pending, number);
    assert!(
        changed
            .stderr
            .contains("WARNING: the identity key of bob CHANGED"),
        "{}",
        changed.stderr
    );
    let other = s.run("ana", &["whoami"], "").await.ok();
    assert!(
        other.stderr.contains("identity key of bob CHANGED"),
        "{}",
        other.stderr
    );
    s.run("ana", &["verify", "bob", "--confirm"], "")
        .await
        .fails_with("changed");
    let accepted = s
        .run("ana", &["verify", "bob", "--accept-change", "--json"], "")
        .await
        .ok();
    assert!(!accepted.stderr.contains("WARNING"), "{}", accepted.stderr);
    let view = accepted.json();
    assert_eq!(view["safety_number"], pending);
    assert_eq!(view["verified"], false);
    assert_eq!(view["pending_change"], Value::Null);
    let quiet = s.run("ana", &["whoami"], "").await.ok();
    assert!(!quiet.stderr.contains("WARNING"), "{}", quiet.stderr);
    let bo_view = s
        .run("bob", &["verify", "ana", "--json"], "")
        .await
        .ok()
        .json();
    assert_eq!(bo_view["safety_number"], pending);

    s.run("ana", &["verify", "nobody"], "")
        .await
        .fails_with("no user named nobody");
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_commands_and_search() {
    let server = TestServer::sqlite().await;
    server.create_user("ana", ANA_PW).await;
    let s = Sandbox::new();
    s.login(&server, "admin", TEST_ADMIN.0, TEST_ADMIN.1).await;
    s.login(&server, "ana", "ana", ANA_PW).await;

    let set = s
        .run(
            "admin",
            &["admin", "settings", "set", "otr.enabled", "true"],
            "",
        )
        .await
        .ok();
    assert!(set.stdout.contains("otr.enabled = true"), "{}", set.stdout);
    s.run(
        "admin",
        &[
            "admin",
            "settings",
            "set",
            "files.max_size_bytes",
            "1048576",
        ],
        "",
    )
    .await
    .ok();
    let one = s
        .run(
            "admin",
            &["admin", "settings", "get", "otr.enabled", "--json"],
            "",
        )
        .await
        .ok();
    assert_eq!(one.json(), json!({"otr.enabled": true}));
    let all = s
        .run("admin", &["admin", "settings", "get", "--json"], "")
        .await
        .ok()
        .json();
    assert_eq!(all["files.max_size_bytes"], 1_048_576);
    assert_eq!(all["e2e.enabled"], false);
    s.run("admin", &["admin", "settings", "set", "no.such", "1"], "")
        .await
        .fails_with("");
    s.run("admin", &["admin", "settings", "get", "no.such"], "")
        .await
        .fails_with("no setting no.such");
    s.run(
        "ana",
        &["admin", "settings", "set", "otr.enabled", "false"],
        "",
    )
    .await
    .fails_with("forbidden");

    let users = s.run("admin", &["admin", "users", "--json"], "").await.ok();
    let names: Vec<String> = users
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["username"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["admin", "ana"]);

    // Search, with a room named on the command line, and hostile text made harmless.
    let room = server
        .admin_call(
            "POST",
            "/api/v1/rooms",
            Some(json!({"kind": "channel", "name": "general"})),
        )
        .await;
    let room_id = room["id"].as_str().unwrap();
    let text = "needle \u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}txt.exe";
    server
        .admin_call(
            "POST",
            &format!("/api/v1/rooms/{room_id}/messages"),
            Some(json!({"id": "m1", "text": text})),
        )
        .await;
    let found = s
        .run(
            "admin",
            &["search", "needle", "--room", "general", "--json"],
            "",
        )
        .await
        .ok();
    let hit = found.json();
    assert_eq!(hit["text"], text, "JSON keeps the text exactly");
    assert_eq!(
        (&hit["room_name"], &hit["sender_username"]),
        (&json!("general"), &json!("admin"))
    );
    let human = s.run("admin", &["search", "needle"], "").await.ok();
    assert!(
        human.stdout.contains("#general admin: needle"),
        "{}",
        human.stdout
    );
    assert!(!human.stdout.contains('\u{1b}') && !human.stdout.contains('\u{7}'));
    assert!(!human.stdout.contains('\u{202e}'));
    s.run("admin", &["search", "needle", "--room", "nowhere"], "")
        .await
        .fails_with("no room");
    // Ana is not in the room: nothing found for her.
    let none = s.run("ana", &["search", "needle", "--json"], "").await.ok();
    assert_eq!(none.stdout, "");
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_profiles_and_no_secrets_in_argv() {
    let server = TestServer::sqlite().await;
    server.create_user("ana", ANA_PW).await;
    let s = Sandbox::new();
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let url = server.url();

    // No flag takes a password: each of these is a usage error (exit 2).
    for bad in [
        &[
            "login",
            "--server",
            &url,
            "--username",
            "ana",
            "--password",
            "x",
        ][..],
        &["e2e", "unlock", "--password", "x"],
        &["e2e", "reset", "--password", "x"],
        &["whoami", "--bogus"],
        &["verify"],
        &["admin", "settings", "set", "only-a-key"],
        &["search", "x", "--limit", "0"],
        &[],
    ] {
        let run = s.raw(&args(bad), "", &[]).await;
        assert_eq!(run.code, Some(2), "{bad:?}: {}", run.stderr);
    }

    // Without a terminal and without --password-stdin, no password can be asked for.
    s.raw(
        &args(&["login", "--server", &url, "--username", "ana"]),
        "",
        &[],
    )
    .await
    .fails_with("--password-stdin");
    s.raw(
        &args(&[
            "login",
            "--server",
            &url,
            "--username",
            "ana",
            "--password-stdin",
        ]),
        "wrong password\n",
        &[],
    )
    .await
    .fails_with("invalid_credentials");

    // The default profile lives under XDG_CONFIG_HOME, or ~/.config; SOTTO_PROFILE wins.
    let login = args(&[
        "login",
        "--server",
        &url,
        "--username",
        "ana",
        "--password-stdin",
    ]);
    let xdg = s.dir.path().join("xdg");
    s.raw(&login, &format!("{ANA_PW}\n"), &[("XDG_CONFIG_HOME", &xdg)])
        .await
        .ok();
    assert!(xdg.join("sotto/default/profile.json").exists());
    s.raw(&login, &format!("{ANA_PW}\n"), &[]).await.ok();
    let home_profile = s.dir.path().join(".config/sotto/default");
    assert!(home_profile.join("profile.json").exists());
    let chosen = s.dir.path().join("chosen");
    s.raw(
        &login,
        &format!("{ANA_PW}\n"),
        &[("SOTTO_PROFILE", &chosen)],
    )
    .await
    .ok();
    assert!(chosen.join("profile.json").exists());
    #[cfg(unix)]
    assert_eq!(mode(&chosen.join("profile.json")), 0o600);
    let me = s
        .raw(
            &args(&["whoami", "--json"]),
            "",
            &[("SOTTO_PROFILE", &chosen)],
        )
        .await
        .ok()
        .json();
    assert_eq!(me["username"], "ana");

    // Never logged in: one clear line, exit 1.
    s.run("empty", &["whoami"], "")
        .await
        .fails_with("not logged in: run `sotto login`");
    // A server that is not there.
    s.run(
        "down",
        &[
            "login",
            "--server",
            "http://127.0.0.1:9",
            "--username",
            "ana",
            "--password-stdin",
        ],
        "pw\n",
    )
    .await
    .fails_with("talking to the server");
    server.finish().await;
}

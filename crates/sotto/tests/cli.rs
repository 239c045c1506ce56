//! The built `sotto` binary: `admin create-user` against a data directory, also while a
//! server holds the same database open.

use sotto_server::service::Services;
use sotto_server::store::Stores;
use sotto_server::{Config, Server};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sotto(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(args)
        .env_remove("SOTTO_DATABASE_URL")
        .env_remove("SOTTO_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sotto");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn create_user(dir: &Path, username: &str, stdin: &str, admin: bool) -> Output {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        "admin",
        "create-user",
        "--data-dir",
        dir,
        "--username",
        username,
        "--password-stdin",
    ];
    if admin {
        args.push("--admin");
    }
    sotto(&args, stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn can_log_in(dir: &Path, username: &str, password: &str) -> bool {
    let stores = Stores::open_sqlite(dir).await.unwrap();
    let services = Services::new(&stores);
    let req =
        serde_json::from_value(serde_json::json!({"username": username, "password": password}))
            .unwrap();
    let ok = services.accounts.login(req, None).await.is_ok();
    stores.close().await;
    ok
}

#[tokio::test]
async fn creates_an_admin_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = create_user(&data, "root", "a good long password\r\n", true);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("created admin root (id "), "{stdout}");
    assert!(!stdout.contains("a good long password") && !text(&out.stderr).contains("a good long"));
    assert!(data.join("sotto.db").exists());
    assert!(
        can_log_in(&data, "root", "a good long password").await,
        "line ending stripped"
    );

    let stores = Stores::open_sqlite(&data).await.unwrap();
    let user = stores
        .users
        .user_by_username("root")
        .await
        .unwrap()
        .unwrap();
    assert!(user.admin);
    assert!(stores.users.has_admin().await.unwrap());
    stores.close().await;
}

#[test]
fn refusals_are_reported_once_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        create_user(dir.path(), "alice", "first password\n", false)
            .status
            .code(),
        Some(0)
    );
    let dup = create_user(dir.path(), "ALICE", "second password\n", false);
    assert_eq!(dup.status.code(), Some(1));
    let err = text(&dup.stderr);
    assert!(
        err.contains("creating user ALICE: this username is taken"),
        "{err}"
    );
    assert_eq!(err.matches("username is taken").count(), 1, "{err}");

    let short = create_user(dir.path(), "bob", "short\n", false);
    assert_eq!(short.status.code(), Some(1));
    assert!(
        text(&short.stderr).contains("password: 8–1024 bytes"),
        "{}",
        text(&short.stderr)
    );
    let empty = create_user(dir.path(), "bob", "", false);
    assert_eq!(empty.status.code(), Some(1));
    assert!(text(&empty.stderr).contains("no password on standard input"));
    let bad_name = create_user(dir.path(), "no spaces", "long enough password\n", false);
    assert_eq!(bad_name.status.code(), Some(1));
    assert!(text(&bad_name.stderr).contains("username:"));
}

#[test]
fn storage_failures_name_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = create_user(&file.join("data"), "alice", "long enough password\n", false);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("sotto: error: opening storage: creating "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let no_stdin_flag = sotto(
        &["admin", "create-user", "--data-dir", d, "--username", "x"],
        "",
    );
    assert_eq!(no_stdin_flag.status.code(), Some(2));
    assert_eq!(
        sotto(&["serve", "--listen", "not-an-address"], "")
            .status
            .code(),
        Some(2)
    );
    assert_eq!(sotto(&["frobnicate"], "").status.code(), Some(2));
    let help = sotto(&["serve", "--help"], "");
    assert_eq!(help.status.code(), Some(0));
    for var in ["SOTTO_LISTEN", "SOTTO_DATA_DIR", "SOTTO_DATABASE_URL"] {
        assert!(text(&help.stdout).contains(var), "{var} missing from help");
    }
}

#[tokio::test]
async fn works_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        database_url: None,
        public_url: None,
    };
    let server = Server::bind(&config).await.unwrap();
    assert!(server.setup_link().is_some());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let data = dir.path().to_path_buf();
    let out =
        tokio::task::spawn_blocking(move || create_user(&data, "ops", "while running ok\n", true))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(can_log_in(dir.path(), "ops", "while running ok").await);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    // The admin exists: a restart prints no setup link.
    let again = Server::bind(&config).await.unwrap();
    assert_eq!(again.setup_link(), None);
}

//! Running the built `sotto` binary in tests: a sandbox with its own HOME and profiles.
#![allow(dead_code, unreachable_pub)]

use serde_json::Value;
use sotto_server::testing::TestServer;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of the binary did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success; the run, for chaining.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts an operational error (exit 1) with one `sotto: error: …` line containing
    /// `what`.
    pub fn fails_with(self, what: &str) -> Self {
        assert_eq!(
            self.code,
            Some(1),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("sotto: error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{}", self.stderr);
        assert!(errors[0].contains(what), "{}", self.stderr);
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not one JSON value ({e}): {}", self.stdout))
    }
}

/// A sandbox for the binary: its own HOME, so nothing reaches the real configuration.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn profile(&self, name: &str) -> PathBuf {
        self.dir.path().join("profiles").join(name)
    }

    /// `sotto --profile <name's profile> args…` with `stdin`.
    pub async fn run(&self, profile: &str, args: &[&str], stdin: &str) -> Run {
        let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        // `--profile` goes after the subcommands, where clap declares it.
        full.push("--profile".into());
        full.push(self.profile(profile).display().to_string());
        self.raw(&full, stdin, &[]).await
    }

    /// The binary with exactly `args` and extra environment variables.
    pub async fn raw(&self, args: &[String], stdin: &str, env: &[(&str, &Path)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
        cmd.args(args)
            .env("HOME", self.dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SOTTO_PROFILE")
            .env_remove("SOTTO_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let stdin = stdin.to_owned();
        // The server runs on this test's runtime: wait for the child off its threads.
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("run sotto");
            // A command that reads no input may exit before this is written.
            let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
            let out = child.wait_with_output().unwrap();
            Run {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }

    pub async fn login(&self, server: &TestServer, profile: &str, user: &str, pw: &str) -> Run {
        let url = server.url();
        self.run(
            profile,
            &[
                "login",
                "--server",
                &url,
                "--username",
                user,
                "--password-stdin",
            ],
            &format!("{pw}\n"),
        )
        .await
        .ok()
    }

    /// `e2e setup`; the encryption password it printed.
    pub async fn setup(&self, profile: &str) -> String {
        let run = self.run(profile, &["e2e", "setup"], "").await.ok();
        let password = run.stdout.trim().to_owned();
        assert_eq!(password.split(' ').count(), 12, "{}", run.stdout);
        assert_eq!(run.stdout.lines().count(), 1, "only the password on stdout");
        assert!(run.stderr.contains("ONLY NOW"), "{}", run.stderr);
        password
    }
}

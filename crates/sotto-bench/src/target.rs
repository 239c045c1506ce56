//! The server under test: one already running (its address and pid), or one the bench
//! starts itself from the `sotto` binary with a fresh data directory.

use crate::client::Http;
use crate::procfs::ProcSample;
use anyhow::{Context, bail};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

#[derive(Args, Clone, Debug)]
pub(crate) struct TargetArgs {
    /// Drive a server already running at this loopback address instead of starting one.
    /// Needs --server-pid and an admin token in SOTTO_BENCH_ADMIN_TOKEN.
    #[arg(long, requires = "server_pid")]
    pub(crate) addr: Option<SocketAddr>,
    /// The pid of the server at --addr, for its CPU time and memory.
    #[arg(long, requires = "addr")]
    pub(crate) server_pid: Option<u32>,
    /// An admin's bearer token for the server at --addr.
    #[arg(long, env = "SOTTO_BENCH_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// The `sotto` binary to start (default: the one next to this binary).
    #[arg(long)]
    pub(crate) sotto_bin: Option<PathBuf>,
    /// Start the server on PostgreSQL (an empty database) instead of SQLite in a
    /// temporary data directory.
    #[arg(long, hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// The server at --addr is a Synapse homeserver, driven through the Matrix client
    /// API (fanout and capacity only), for the side-by-side comparison.
    #[arg(long, requires = "addr")]
    pub(crate) synapse: bool,
    /// Pin the started server to these CPUs (`taskset -c` list, e.g. `1`).
    #[arg(long)]
    pub(crate) server_cpus: Option<String>,
}

/// A server to drive.
pub(crate) struct Target {
    pub(crate) http: Http,
    pub(crate) pid: u32,
    pub(crate) admin_token: String,
    /// A random tag for this run's names and message ids.
    pub(crate) tag: String,
    /// Where a server the bench started keeps its data: the data directory and, on
    /// PostgreSQL, the database URL.
    pub(crate) data: Option<(PathBuf, Option<String>)>,
    started: Option<(Child, tempfile::TempDir)>,
}

impl Target {
    pub(crate) async fn open(args: &TargetArgs) -> anyhow::Result<Self> {
        let tag = random_hex(4)?;
        if let (Some(addr), Some(pid)) = (args.addr, args.server_pid) {
            if !addr.ip().is_loopback() {
                bail!("the bench only drives a server on loopback, not {addr}");
            }
            let admin_token = args
                .admin_token
                .clone()
                .context("--addr needs an admin token in SOTTO_BENCH_ADMIN_TOKEN")?;
            ProcSample::read(pid)?;
            return Ok(Self {
                http: Http::new(addr),
                pid,
                admin_token,
                tag,
                data: None,
                started: None,
            });
        }
        start(args, tag).await
    }

    pub(crate) fn sample(&self) -> anyhow::Result<ProcSample> {
        ProcSample::read(self.pid)
    }

    /// Stops a server the bench started (SIGTERM, then waits); a server it was given is
    /// left running.
    pub(crate) async fn finish(self) -> anyhow::Result<()> {
        if let Some((mut child, dir)) = self.started {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                child.kill().await.ok();
            }
            drop(dir);
        }
        Ok(())
    }
}

async fn start(args: &TargetArgs, tag: String) -> anyhow::Result<Target> {
    let bin = match &args.sotto_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory for this binary")?
            .join("sotto"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p sotto) or pass --sotto-bin",
            bin.display()
        );
    }
    let dir = tempfile::Builder::new().prefix("sotto-bench-").tempdir()?;
    let data_dir = dir.path().join("data");
    let port = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        l.local_addr()?.port()
    };
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);

    let admin = format!("bench-admin-{tag}");
    let password = random_hex(16)?;
    let mut create = Command::new(&bin);
    create
        .args([
            "admin",
            "create-user",
            "--username",
            &admin,
            "--password-stdin",
            "--admin",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(url) = &args.database_url {
        create.env("SOTTO_DATABASE_URL", url);
    }
    let mut child = create.spawn().context("running sotto admin create-user")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(format!("{password}\n").as_bytes()).await?;
    drop(stdin);
    if !child.wait().await?.success() {
        bail!("sotto admin create-user failed");
    }

    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut serve = match &args.server_cpus {
        Some(cpus) => {
            // taskset execs the server, so the child's pid is the server's.
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    serve
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Some(url) = &args.database_url {
        serve.env("SOTTO_DATABASE_URL", url);
    }
    let child = serve.spawn().context("starting sotto serve")?;
    let pid = child.id().context("server pid")?;
    eprintln!(
        "started sotto serve (pid {pid}) on {addr}, data in {}",
        dir.path().display()
    );

    let http = Http::new(addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match http.call("GET", "/api/v1/setup", None, None).await {
            Ok(a) if a.status == 200 => break,
            _ if tokio::time::Instant::now() > deadline => {
                bail!(
                    "the server did not answer within 60 s; see its log in {}",
                    dir.path().display()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let body = serde_json::to_vec(&serde_json::json!({"username": admin, "password": password}))?;
    let login: sotto_api::LoginResponse = http
        .call_from(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "POST",
            "/api/v1/login",
            body,
        )
        .await?
        .json()
        .context("admin login")?;
    Ok(Target {
        http,
        pid,
        admin_token: login.token,
        tag,
        data: Some((data_dir, args.database_url.clone())),
        started: Some((child, dir)),
    })
}

/// `n` random bytes from the OS, as hex.
pub(crate) fn random_hex(n: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

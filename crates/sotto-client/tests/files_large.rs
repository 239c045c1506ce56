//! A 200 MiB encrypted file through a real server in constant memory. In its own test
//! binary because it measures the whole process's peak resident memory (the server runs
//! in this process too, so its side is measured as well).

use reqwest::Method;
use serde_json::json;
use sotto_client::{Client, Profile};
use sotto_server::testing::TestServer;
use std::io::{Read, Write};
use std::path::Path;

const PASSWORD: &str = "a long enough password";
const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 200 * MIB;

async fn user(server: &TestServer, dir: &Path, name: &str) -> Client {
    server.create_user(name, PASSWORD).await;
    let profile = Profile::open(dir.join(name)).unwrap();
    Client::login(profile, &server.url(), name, PASSWORD)
        .await
        .unwrap()
}

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Fills `buf` with bytes that differ per position and seed.
fn fill(buf: &mut [u8], state: &mut u64) {
    for b in buf {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *b = (*state >> 24) as u8;
    }
}

fn same_files(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]).unwrap() {
            0 => break,
            n => got += n,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_encrypted_file_streams_in_constant_memory() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    server
        .admin_call(
            "PATCH",
            "/api/v1/settings",
            Some(json!({"files.max_size_bytes": SIZE + 10 * MIB})),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let alice = user(&server, dir.path(), "alice").await;
    let bob = user(&server, dir.path(), "bob").await;
    let room: serde_json::Value = alice
        .api()
        .send(
            Method::POST,
            "/api/v1/rooms",
            &json!({"kind": "channel", "name": "big", "private": true, "encrypted": true}),
        )
        .await
        .unwrap();
    let room_id = room["id"].as_str().unwrap();
    let _: serde_json::Value = alice
        .api()
        .send(
            Method::POST,
            &format!("/api/v1/rooms/{room_id}/members"),
            &json!({"user_id": bob.user_id().as_str()}),
        )
        .await
        .unwrap();

    let src = dir.path().join("big.bin");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut piece = vec![0u8; MIB as usize];
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..SIZE / MIB {
            fill(&mut piece, &mut state);
            file.write_all(&piece).unwrap();
        }
        file.flush().unwrap();
    }

    let before = peak_rss();
    let mut calls = 0u32;
    let att = alice
        .upload_encrypted(room_id, &src, |_, _| calls += 1)
        .await
        .unwrap();
    assert_eq!(att.size, SIZE);
    assert!(calls > 100, "progress was reported {calls} times");

    let out = dir.path().join("copy.bin");
    let mut last = (0, 0);
    bob.download_encrypted(&att, &out, |done, total| last = (done, total))
        .await
        .unwrap();
    assert_eq!(last, (SIZE, SIZE));
    let grew = peak_rss().saturating_sub(before);
    eprintln!("peak memory grew by {} MiB", grew / MIB);
    assert!(
        grew < 64 * MIB,
        "peak memory grew by {} MiB for a {} MiB file",
        grew / MIB,
        SIZE / MIB
    );
    assert!(
        same_files(&src, &out),
        "the download differs from the upload"
    );
    server.finish().await;
}

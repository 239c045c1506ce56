//! Files through a real server: encrypted uploads that the server cannot read and that
//! decrypt only whole and untampered, and plain uploads announced by a text message.

use reqwest::Method;
use serde_json::json;
use sotto_client::files::{OCTET_STREAM, blob_len};
use sotto_client::sotto_crypto::FileKey;
use sotto_client::sotto_crypto::file::blob_sha256;
use sotto_client::{Client, Error, Profile, file_message, file_reference};
use sotto_server::testing::TestServer;
use std::path::Path;

const PASSWORD: &str = "a long enough password";

async fn user(server: &TestServer, dir: &Path, name: &str) -> Client {
    server.create_user(name, PASSWORD).await;
    let profile = Profile::open(dir.join(name)).unwrap();
    Client::login(profile, &server.url(), name, PASSWORD)
        .await
        .unwrap()
}

/// A room created by `owner` with `member` added; its id.
async fn room(owner: &Client, member: &Client, body: serde_json::Value) -> String {
    let room: serde_json::Value = owner
        .api()
        .send(Method::POST, "/api/v1/rooms", &body)
        .await
        .unwrap();
    let id = room["id"].as_str().unwrap().to_owned();
    let _: serde_json::Value = owner
        .api()
        .send(
            Method::POST,
            &format!("/api/v1/rooms/{id}/members"),
            &json!({"user_id": member.user_id().as_str()}),
        )
        .await
        .unwrap();
    id
}

/// Bytes that look random, so no slice of them occurs in a blob by chance.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The raw bytes the server stores for a file.
async fn raw_blob(client: &Client, file_id: &str) -> Vec<u8> {
    let path = format!("/api/v1/files/{file_id}/content");
    let answer = client
        .api()
        .request(Method::GET, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.bytes().await.unwrap().to_vec()
}

/// Uploads raw bytes as a file of `room`, as a client that does not encrypt would.
async fn upload_raw(client: &Client, room: &str, bytes: Vec<u8>) -> String {
    let path = format!("/api/v1/rooms/{room}/files");
    let answer = client
        .api()
        .request(Method::POST, &path)
        .header("content-type", OCTET_STREAM)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let info: serde_json::Value = answer.json().await.unwrap();
    info["id"].as_str().unwrap().to_owned()
}

/// Nothing but `expected` in `dir`: no output and no leftover partial download.
fn only(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn encrypted_files_round_trip_and_refuse_tampering() {
    for server in TestServer::every_backend().await {
        let backend = server.backend();
        server.enable_encryption().await;
        let dir = tempfile::tempdir().unwrap();
        let alice = user(&server, dir.path(), "alice").await;
        let bob = user(&server, dir.path(), "bob").await;
        let carol = user(&server, dir.path(), "carol").await;
        let room_id = room(
            &alice,
            &bob,
            json!({"kind": "channel", "name": "secret", "private": true, "encrypted": true}),
        )
        .await;

        let plain = content(1024 * 1024, 7);
        let src = dir.path().join("holiday photo.png");
        std::fs::write(&src, &plain).unwrap();
        let mut seen = Vec::new();
        let att = alice
            .upload_encrypted(&room_id, &src, |done, total| seen.push((done, total)))
            .await
            .unwrap();
        assert_eq!(att.name, "holiday photo.png");
        assert_eq!(att.media_type, "image/png");
        assert_eq!(att.size, plain.len() as u64);
        assert_eq!(att.chunk_size, 65536);
        assert_eq!(seen.first(), Some(&(0, att.size)), "{backend}");
        assert_eq!(seen.last(), Some(&(att.size, att.size)), "{backend}");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{backend}");

        // The server learns neither name nor type, and holds only ciphertext.
        let info = bob.file_info(&att.file_id).await.unwrap();
        assert_eq!(info.name, None, "{backend}");
        assert_eq!(info.content_type, OCTET_STREAM, "{backend}");
        let blob = raw_blob(&bob, &att.file_id).await;
        assert_eq!(
            blob.len() as u64,
            blob_len(att.size, att.chunk_size).unwrap()
        );
        assert_eq!(blob_sha256(&blob), att.blob_sha256, "{backend}");
        for at in [0, 4096, 500_000, plain.len() - 32] {
            let needle = &plain[at..at + 32];
            assert!(
                !blob.windows(32).any(|w| w == needle),
                "{backend}: plaintext at {at} is in the blob"
            );
        }

        // A member decrypts it, with progress in plaintext bytes.
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("photo.png");
        let mut last = (0, 0);
        bob.download_encrypted(&att, &out, |done, total| last = (done, total))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), plain, "{backend}");
        assert_eq!(last, (att.size, att.size), "{backend}");
        std::fs::remove_file(&out).unwrap();

        // Another key fails on the first chunk and leaves nothing behind.
        let mut other_key = att.clone();
        other_key.file_key = FileKey::from_bytes([9; 32]);
        let e = bob
            .download_encrypted(&other_key, &out, |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Corrupted(_)), "{backend}: {e}");
        only(out_dir.path(), &[]);

        // A blob altered on the server fails too, without an output file.
        let mut altered = blob.clone();
        altered[700_000] ^= 1;
        let tampered = sotto_crypto_attachment(&att, upload_raw(&alice, &room_id, altered).await);
        let e = bob
            .download_encrypted(&tampered, &out, |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Corrupted(_)), "{backend}: {e}");
        only(out_dir.path(), &[]);

        // A blob cut short at a chunk boundary is refused.
        let cut = blob[..blob.len() - (65536 + 16)].to_vec();
        let short = sotto_crypto_attachment(&att, upload_raw(&alice, &room_id, cut).await);
        let e = bob
            .download_encrypted(&short, &out, |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Corrupted(_)), "{backend}: {e}");
        only(out_dir.path(), &[]);

        // An attachment whose hash does not match the blob is refused.
        let mut wrong_hash = att.clone();
        wrong_hash.blob_sha256[0] ^= 1;
        let e = bob
            .download_encrypted(&wrong_hash, &out, |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Corrupted(_)), "{backend}: {e}");
        only(out_dir.path(), &[]);

        // An existing file at the target stays as it was when a download fails.
        std::fs::write(&out, b"keep me").unwrap();
        let _ = bob.download_encrypted(&tampered, &out, |_, _| {}).await;
        assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
        bob.download_encrypted(&att, &out, |_, _| {}).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), plain, "{backend}");

        // Outsiders get nothing.
        let e = carol
            .download_encrypted(&att, &out_dir.path().join("x"), |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("not_found"), "{backend}");
        only(out_dir.path(), &["photo.png"]);

        // Plaintext may not go into the encrypted room.
        let e = alice
            .upload_plain(&room_id, &src, |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{backend}: {e}");

        // An empty file is one empty chunk.
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, b"").unwrap();
        let att = alice
            .upload_encrypted(&room_id, &empty, |_, _| {})
            .await
            .unwrap();
        assert_eq!((att.size, att.media_type.as_str()), (0, "text/plain"));
        let out = out_dir.path().join("empty.txt");
        bob.download_encrypted(&att, &out, |_, _| {}).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"");
        server.finish().await;
    }
}

/// `att` with its blob replaced by the file `file_id`.
fn sotto_crypto_attachment(
    att: &sotto_client::sotto_crypto::Attachment,
    file_id: String,
) -> sotto_client::sotto_crypto::Attachment {
    let mut other = att.clone();
    other.file_id = file_id;
    other
}

#[tokio::test]
async fn plain_files_are_announced_by_a_reference() {
    for server in TestServer::every_backend().await {
        let backend = server.backend();
        let dir = tempfile::tempdir().unwrap();
        let alice = user(&server, dir.path(), "alice").await;
        let bob = user(&server, dir.path(), "bob").await;
        let room_id = room(&alice, &bob, json!({"kind": "channel", "name": "general"})).await;

        let plain = content(300_000, 3);
        let src = dir.path().join("notes.txt");
        std::fs::write(&src, &plain).unwrap();
        let mut last = (0, 0);
        let info = alice
            .upload_plain(&room_id, &src, |done, total| last = (done, total))
            .await
            .unwrap();
        assert_eq!(last, (300_000, 300_000), "{backend}");
        assert_eq!(info.name.as_deref(), Some("notes.txt"), "{backend}");
        assert_eq!(info.content_type, "text/plain", "{backend}");
        assert_eq!(info.size, 300_000, "{backend}");

        // The announcing message, as another member reads it back.
        let text = file_message(&info);
        let sent: serde_json::Value = alice
            .api()
            .send(
                Method::POST,
                &format!("/api/v1/rooms/{room_id}/messages"),
                &json!({"id": "m1", "text": text}),
            )
            .await
            .unwrap();
        let read = sent["text"].as_str().unwrap();
        let file_id = file_reference(read).unwrap();
        assert_eq!(file_id, info.id, "{backend}");

        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("notes.txt");
        let mut last = (0, 0);
        let size = bob
            .download_plain(file_id, &out, |done, total| last = (done, total))
            .await
            .unwrap();
        assert_eq!(size, 300_000, "{backend}");
        assert_eq!(last, (300_000, 300_000), "{backend}");
        assert_eq!(std::fs::read(&out).unwrap(), plain, "{backend}");

        // A long target name still gets its temporary file beside it.
        let long = format!("{}.txt", "n".repeat(240));
        bob.download_plain(file_id, &out_dir.path().join(&long), |_, _| {})
            .await
            .unwrap();
        std::fs::remove_file(out_dir.path().join(&long)).unwrap();

        // An unknown file leaves nothing behind.
        let e = bob
            .download_plain("nope", &out_dir.path().join("x"), |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("not_found"), "{backend}");
        only(out_dir.path(), &["notes.txt"]);

        // Over the size limit: refused, nothing stored.
        server
            .admin_call(
                "PATCH",
                "/api/v1/settings",
                Some(json!({"files.max_size_bytes": 1000})),
            )
            .await;
        let e = alice
            .upload_plain(&room_id, &src, |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("payload_too_large"), "{backend}: {e}");
        server.finish().await;
    }
}

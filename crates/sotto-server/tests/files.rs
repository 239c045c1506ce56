//! Files over the router, on SQLite and on PostgreSQL: a multi-chunk round trip with the
//! bytes compared, the size cap (and nothing left behind), who may read and delete, and
//! the checks on names and media types.

mod common;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use common::{PASSWORD, TestApp};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Runs a scenario on SQLite and, when configured, on PostgreSQL.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                let t = super::TestApp::new().await;
                super::$scenario(&t).await;
                t.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(t) = super::TestApp::postgres().await else {
                    return;
                };
                super::$scenario(&t).await;
                t.finish().await;
            }
        }
    )*};
}

on_both_backends!(round_trip, size_cap, access, delete_rules, validation);

struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn expect_error(&self, status: u16, code: &str) {
        let body = self.json();
        assert_eq!(self.status.as_u16(), status, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
}

async fn raw(t: &TestApp, req: Request<Body>) -> Raw {
    let res = t.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Raw {
        status,
        headers,
        body,
    }
}

/// Deterministic bytes that differ at every offset of a period, so a moved, lost or
/// repeated piece shows.
fn bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

struct Up<'a> {
    name: Option<&'a str>,
    content_type: Option<&'a str>,
    /// Send `Content-Length`; otherwise the body streams in 50,000-byte pieces.
    declared: bool,
}

const PLAIN: Up<'static> = Up {
    name: Some("data.bin"),
    content_type: None,
    declared: false,
};

async fn upload(t: &TestApp, token: Option<&str>, room: &str, data: &[u8], up: Up<'_>) -> Raw {
    let mut uri = format!("/api/v1/rooms/{room}/files");
    if let Some(n) = up.name {
        uri.push_str("?name=");
        for b in n.bytes() {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    let mut req = Request::builder().method(Method::POST).uri(uri);
    if let Some(tok) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {tok}"));
    }
    if let Some(ct) = up.content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let body = if up.declared {
        req = req.header(header::CONTENT_LENGTH, data.len());
        Body::from(data.to_vec())
    } else {
        let pieces: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(50_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures_util::stream::iter(pieces))
    };
    raw(t, req.body(body).unwrap()).await
}

async fn call(t: &TestApp, method: Method, uri: &str, token: Option<&str>) -> Raw {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(tok) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {tok}"));
    }
    raw(t, req.body(Body::empty()).unwrap()).await
}

/// How many blobs the backend holds, complete or not.
async fn stored_blobs(t: &TestApp) -> usize {
    match t.pg_url() {
        Some(url) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let blobs: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let orphans: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM blob_chunks WHERE blob_id NOT IN (SELECT id FROM blobs)",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(orphans, 0);
            usize::try_from(blobs).unwrap()
        }
        None => std::fs::read_dir(t.data_dir().join("blobs"))
            .unwrap()
            .count(),
    }
}

/// An owner, a member, an outsider and an admin (not in any room), with tokens.
struct People {
    owner: String,
    member: String,
    outsider: String,
    admin: String,
    member_id: String,
}

async fn people(t: &TestApp) -> People {
    let mut tokens = Vec::new();
    let mut member_id = String::new();
    for (name, admin) in [
        ("owner", false),
        ("member", false),
        ("outsider", false),
        ("admin", true),
    ] {
        let id = t.create_user(name, admin).await;
        if name == "member" {
            member_id = id;
        }
        tokens.push(t.login(name, PASSWORD).await);
    }
    let mut it = tokens.into_iter();
    People {
        owner: it.next().unwrap(),
        member: it.next().unwrap(),
        outsider: it.next().unwrap(),
        admin: it.next().unwrap(),
        member_id,
    }
}

async fn room(t: &TestApp, p: &People, private: bool) -> String {
    let a = t
        .post(
            "/api/v1/rooms",
            Some(&p.owner),
            json!({"kind": "channel", "name": "files", "private": private, "members": [p.member_id]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn round_trip(t: &TestApp) {
    let p = people(t).await;
    let room = room(t, &p, true).await;
    // Several PostgreSQL chunks and many request pieces, far over the JSON body limit.
    let data = bytes(3 * 1024 * 1024 + 12_345);
    let up = upload(
        t,
        Some(&p.member),
        &room,
        &data,
        Up {
            name: Some("Zoë's photo.png"),
            content_type: Some("image/png"),
            declared: false,
        },
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.json());
    let info = up.json();
    assert_eq!(info["name"], "Zoë's photo.png");
    assert_eq!(info["content_type"], "image/png");
    assert_eq!(info["size"], data.len() as u64);
    assert_eq!(info["room_id"], room.as_str());
    assert_eq!(info["uploader_id"], p.member_id.as_str());
    let id = info["id"].as_str().unwrap();

    // Every member reads the metadata and the bytes.
    for tok in [&p.member, &p.owner] {
        let meta = call(t, Method::GET, &format!("/api/v1/files/{id}"), Some(tok)).await;
        assert_eq!(meta.status, 200);
        assert_eq!(meta.json(), info);
        let got = call(
            t,
            Method::GET,
            &format!("/api/v1/files/{id}/content"),
            Some(tok),
        )
        .await;
        assert_eq!(got.status, 200);
        let h = |name| got.headers[name].to_str().unwrap().to_owned();
        assert_eq!(h(header::CONTENT_LENGTH), data.len().to_string());
        assert_eq!(h(header::CONTENT_TYPE), "image/png");
        assert_eq!(h(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(
            h(header::CONTENT_DISPOSITION),
            "attachment; filename=\"Zo_'s photo.png\"; filename*=UTF-8''Zo%C3%AB%27s%20photo.png"
        );
        assert!(got.body == data, "{} bytes differ", got.body.len());
    }

    // With a declared length, without a name or a type: stored as given, empty included.
    for data in [bytes(70_000), Vec::new()] {
        let up = upload(
            t,
            Some(&p.owner),
            &room,
            &data,
            Up {
                name: None,
                content_type: None,
                declared: true,
            },
        )
        .await;
        assert_eq!(up.status, 201, "{}", up.json());
        let info = up.json();
        assert_eq!(info["name"], Value::Null);
        assert_eq!(info["content_type"], "application/octet-stream");
        let got = call(
            t,
            Method::GET,
            &format!("/api/v1/files/{}/content", info["id"].as_str().unwrap()),
            Some(&p.member),
        )
        .await;
        assert_eq!(got.headers[header::CONTENT_DISPOSITION], "attachment");
        assert!(got.body == data);
    }
    assert_eq!(stored_blobs(t).await, 3);
}

async fn size_cap(t: &TestApp) {
    let p = people(t).await;
    let room = room(t, &p, false).await;
    let cap = 1024 * 1024;
    let set = t
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&p.admin),
            Some(json!({"files.max_size_bytes": cap})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);

    let exact = upload(t, Some(&p.member), &room, &bytes(cap), PLAIN).await;
    assert_eq!(exact.status, 201, "{}", exact.json());
    assert_eq!(stored_blobs(t).await, 1);

    // One byte over: refused while streaming, and the partial data is gone.
    let over = bytes(cap + 1);
    upload(t, Some(&p.member), &room, &over, PLAIN)
        .await
        .expect_error(413, "payload_too_large");
    // Announced too large: refused before reading.
    let declared = Up {
        declared: true,
        ..PLAIN
    };
    upload(t, Some(&p.member), &room, &over, declared)
        .await
        .expect_error(413, "payload_too_large");
    assert_eq!(
        stored_blobs(t).await,
        1,
        "a refused upload left data behind"
    );

    // Raising the cap lets the same file in.
    t.call(
        Method::PATCH,
        "/api/v1/settings",
        Some(&p.admin),
        Some(json!({"files.max_size_bytes": cap + 1})),
    )
    .await;
    let ok = upload(t, Some(&p.member), &room, &over, PLAIN).await;
    assert_eq!(ok.status, 201, "{}", ok.json());
    assert_eq!(stored_blobs(t).await, 2);
}

async fn access(t: &TestApp) {
    let p = people(t).await;
    let private = room(t, &p, true).await;
    let public = room(t, &p, false).await;
    let data = bytes(1000);

    // Anonymous: 401 everywhere, before anything else.
    upload(t, None, &private, &data, PLAIN)
        .await
        .expect_error(401, "unauthorized");

    let mut files = Vec::new();
    for room in [&private, &public] {
        let up = upload(t, Some(&p.member), room, &data, PLAIN).await;
        assert_eq!(up.status, 201);
        files.push(up.json()["id"].as_str().unwrap().to_owned());
    }
    let (in_private, in_public) = (&files[0], &files[1]);
    for id in [in_private, in_public] {
        for path in [
            format!("/api/v1/files/{id}"),
            format!("/api/v1/files/{id}/content"),
        ] {
            call(t, Method::GET, &path, None)
                .await
                .expect_error(401, "unauthorized");
        }
        call(t, Method::DELETE, &format!("/api/v1/files/{id}"), None)
            .await
            .expect_error(401, "unauthorized");
    }

    // Outsiders and admins outside the room: a private room's files do not exist...
    for tok in [&p.outsider, &p.admin] {
        upload(t, Some(tok), &private, &data, PLAIN)
            .await
            .expect_error(404, "not_found");
        for path in [
            format!("/api/v1/files/{in_private}"),
            format!("/api/v1/files/{in_private}/content"),
        ] {
            call(t, Method::GET, &path, Some(tok))
                .await
                .expect_error(404, "not_found");
        }
        call(
            t,
            Method::DELETE,
            &format!("/api/v1/files/{in_private}"),
            Some(tok),
        )
        .await
        .expect_error(404, "not_found");
        // ...and a public room's are for members, like its history.
        upload(t, Some(tok), &public, &data, PLAIN)
            .await
            .expect_error(403, "forbidden");
        call(
            t,
            Method::GET,
            &format!("/api/v1/files/{in_public}/content"),
            Some(tok),
        )
        .await
        .expect_error(403, "forbidden");
    }
    call(
        t,
        Method::GET,
        "/api/v1/files/no-such-file",
        Some(&p.member),
    )
    .await
    .expect_error(404, "not_found");
    upload(t, Some(&p.member), "no-such-room", &data, PLAIN)
        .await
        .expect_error(404, "not_found");

    // Joining a public room opens its files; leaving a room closes them, also to the uploader.
    let join = t
        .call(
            Method::POST,
            &format!("/api/v1/rooms/{public}/join"),
            Some(&p.outsider),
            None,
        )
        .await;
    assert_eq!(join.status, 200);
    let got = call(
        t,
        Method::GET,
        &format!("/api/v1/files/{in_public}/content"),
        Some(&p.outsider),
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got.body == data);
    let left = t
        .call(
            Method::POST,
            &format!("/api/v1/rooms/{private}/leave"),
            Some(&p.member),
            None,
        )
        .await;
    assert_eq!(left.status, 204, "{}", left.body);
    call(
        t,
        Method::GET,
        &format!("/api/v1/files/{in_private}/content"),
        Some(&p.member),
    )
    .await
    .expect_error(404, "not_found");
}

async fn delete_rules(t: &TestApp) {
    let p = people(t).await;
    let room = room(t, &p, true).await;
    let data = bytes(300_000);
    let by_owner = upload(t, Some(&p.owner), &room, &data, PLAIN).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut by_member = Vec::new();
    for _ in 0..2 {
        by_member.push(
            upload(t, Some(&p.member), &room, &data, PLAIN).await.json()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(stored_blobs(t).await, 3);

    // A member who is neither uploader nor owner may not delete.
    call(
        t,
        Method::DELETE,
        &format!("/api/v1/files/{by_owner}"),
        Some(&p.member),
    )
    .await
    .expect_error(403, "forbidden");
    // The uploader may, and so may an owner; afterwards the file and its bytes are gone.
    for (id, tok) in [(&by_member[0], &p.member), (&by_member[1], &p.owner)] {
        let del = call(t, Method::DELETE, &format!("/api/v1/files/{id}"), Some(tok)).await;
        assert_eq!(del.status, 204);
        for path in [
            format!("/api/v1/files/{id}"),
            format!("/api/v1/files/{id}/content"),
        ] {
            call(t, Method::GET, &path, Some(&p.owner))
                .await
                .expect_error(404, "not_found");
        }
        call(t, Method::DELETE, &format!("/api/v1/files/{id}"), Some(tok))
            .await
            .expect_error(404, "not_found");
    }
    assert_eq!(stored_blobs(t).await, 1);
    let still = call(
        t,
        Method::GET,
        &format!("/api/v1/files/{by_owner}/content"),
        Some(&p.member),
    )
    .await;
    assert!(still.body == data);
}

async fn validation(t: &TestApp) {
    let p = people(t).await;
    let room = room(t, &p, true).await;
    let data = bytes(10);
    for name in ["", "a/b", "..", "..\\evil", "line\nbreak", &"x".repeat(256)] {
        let up = Up {
            name: Some(name),
            ..PLAIN
        };
        upload(t, Some(&p.member), &room, &data, up)
            .await
            .expect_error(400, "invalid_input");
        // Access comes first: an outsider learns nothing, not even that the name is bad.
        upload(
            t,
            Some(&p.outsider),
            &room,
            &data,
            Up {
                name: Some(name),
                ..PLAIN
            },
        )
        .await
        .expect_error(404, "not_found");
    }
    for ct in ["text", "text/", "a b/c", "x/y\tz"] {
        let up = Up {
            content_type: Some(ct),
            ..PLAIN
        };
        upload(t, Some(&p.member), &room, &data, up)
            .await
            .expect_error(400, "invalid_input");
    }
    assert_eq!(stored_blobs(t).await, 0);
}

/// Over a real socket: a chunked upload streams in, and the download is sent with its
/// `Content-Length` rather than chunked.
#[tokio::test]
async fn streams_over_a_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestApp::new().await;
    let p = people(&t).await;
    let room = room(&t, &p, true).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, t.router.clone()).into_future());

    let data = bytes(200_000);
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/rooms/{room}/files?name=a.bin HTTP/1.1\r\nHost: {addr}\r\n\
         Connection: close\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        p.member
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    for piece in data.chunks(30_000) {
        conn.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await
            .unwrap();
        conn.write_all(piece).await.unwrap();
        conn.write_all(b"\r\n").await.unwrap();
    }
    conn.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let info: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    let id = info["id"].as_str().unwrap();

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /api/v1/files/{id}/content HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\n\r\n",
        p.owner
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 200000"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(answer[split + 4..] == data[..]);
    server.abort();
    t.finish().await;
}

//! Walks every endpoint as anonymous, normal user and admin and checks each answer; and
//! checks that the endpoints walked are exactly the ones in the OpenAPI document.

mod common;

use axum::http::Method;
use common::{PASSWORD, TestApp};
use serde_json::{Value, json};
use std::collections::BTreeSet;

struct Endpoint {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    /// Expected status as anonymous, normal user, admin.
    expect: [u16; 3],
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method: Method, path, body, expect| Endpoint {
        method,
        path,
        body,
        expect,
    };
    // Settings writes keep every feature on, so later endpoints answer for what they do.
    let settings = serde_json::to_value(sotto_api::Settings {
        e2e_enabled: true,
        otr_enabled: true,
        ..Default::default()
    })
    .unwrap();
    vec![
        e(Method::GET, "/api/v1/setup", None, [200, 200, 200]),
        e(
            Method::POST,
            "/api/v1/setup",
            Some(json!({"setup_token": "x", "username": "someone", "password": PASSWORD})),
            [409, 409, 409],
        ),
        e(
            Method::POST,
            "/api/v1/login",
            Some(json!({"username": "user", "password": PASSWORD})),
            [200, 200, 200],
        ),
        e(Method::POST, "/api/v1/logout", None, [401, 204, 204]),
        e(Method::GET, "/api/v1/me", None, [401, 200, 200]),
        e(Method::GET, "/api/v1/me/sessions", None, [401, 200, 200]),
        e(
            Method::DELETE,
            "/api/v1/me/sessions/{id}",
            None,
            [401, 404, 404],
        ),
        e(Method::GET, "/api/v1/me/tokens", None, [401, 200, 200]),
        e(
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "bot"})),
            [401, 201, 201],
        ),
        e(
            Method::DELETE,
            "/api/v1/me/tokens/{id}",
            None,
            [401, 404, 404],
        ),
        e(Method::GET, "/api/v1/admin/users", None, [401, 403, 200]),
        e(
            Method::POST,
            "/api/v1/admin/users",
            Some(json!({"username": "newbie", "password": PASSWORD})),
            [401, 403, 201],
        ),
        e(
            Method::POST,
            "/api/v1/admin/users/{id}/deactivate",
            None,
            [401, 403, 200],
        ),
        e(
            Method::POST,
            "/api/v1/admin/users/{id}/reactivate",
            None,
            [401, 403, 200],
        ),
        e(
            Method::PUT,
            "/api/v1/admin/users/{id}/password",
            Some(json!({"password": "another password"})),
            [401, 403, 204],
        ),
        e(Method::GET, "/api/v1/admin/rooms", None, [401, 403, 200]),
        e(
            Method::GET,
            "/api/v1/admin/rooms/{id}/messages",
            None,
            [401, 403, 404],
        ),
        e(
            Method::GET,
            "/api/v1/admin/rooms/{id}/members",
            None,
            [401, 403, 404],
        ),
        e(
            Method::POST,
            "/api/v1/admin/rooms/{id}/members",
            Some(json!({"user_id": "no-such-id"})),
            [401, 403, 404],
        ),
        e(
            Method::DELETE,
            "/api/v1/admin/rooms/{id}/members/{user_id}",
            None,
            [401, 403, 404],
        ),
        e(Method::GET, "/api/v1/settings", None, [401, 200, 200]),
        e(
            Method::PUT,
            "/api/v1/settings",
            Some(settings),
            [401, 403, 200],
        ),
        e(
            Method::PATCH,
            "/api/v1/settings",
            Some(json!({"otr.enabled": true})),
            [401, 403, 200],
        ),
        e(Method::GET, "/api/v1/ws", None, [401, 400, 400]),
        e(Method::GET, "/api/v1/presence", None, [401, 200, 200]),
        e(Method::GET, "/api/v1/rooms", None, [401, 200, 200]),
        e(
            Method::POST,
            "/api/v1/rooms",
            Some(json!({"kind": "channel", "name": "general"})),
            [401, 201, 201],
        ),
        e(Method::GET, "/api/v1/rooms/public", None, [401, 200, 200]),
        e(Method::GET, "/api/v1/rooms/{id}", None, [401, 404, 404]),
        e(
            Method::PATCH,
            "/api/v1/rooms/{id}",
            Some(json!({"topic": "t"})),
            [401, 404, 404],
        ),
        e(
            Method::GET,
            "/api/v1/rooms/{id}/statements",
            None,
            [401, 404, 404],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/statements",
            Some(json!({"statement": "AAAA"})),
            [401, 404, 404],
        ),
        e(
            Method::GET,
            "/api/v1/rooms/{id}/keys",
            None,
            [401, 404, 404],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/keys",
            Some(json!({"boxes": ["AAAA"]})),
            [401, 404, 404],
        ),
        e(
            Method::PUT,
            "/api/v1/rooms/{id}/encryption",
            Some(json!({"on": true})),
            [401, 404, 404],
        ),
        e(
            Method::GET,
            "/api/v1/rooms/{id}/members",
            None,
            [401, 404, 404],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/members",
            Some(json!({"user_id": "x"})),
            [401, 404, 404],
        ),
        e(
            Method::DELETE,
            "/api/v1/rooms/{id}/members/{user_id}",
            None,
            [401, 404, 404],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/join",
            None,
            [401, 404, 404],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/leave",
            None,
            [401, 404, 404],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/read",
            Some(json!({"seq": 1})),
            [401, 404, 404],
        ),
        e(
            Method::PUT,
            "/api/v1/rooms/{id}/owners/{user_id}",
            None,
            [401, 404, 404],
        ),
        e(
            Method::DELETE,
            "/api/v1/rooms/{id}/owners/{user_id}",
            None,
            [401, 404, 404],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/messages",
            Some(json!({"id": "m1", "text": "hi"})),
            [401, 404, 404],
        ),
        e(
            Method::GET,
            "/api/v1/rooms/{id}/messages",
            None,
            [401, 404, 404],
        ),
        e(
            Method::PATCH,
            "/api/v1/rooms/{id}/messages/{message_id}",
            Some(json!({"text": "hi"})),
            [401, 404, 404],
        ),
        e(
            Method::DELETE,
            "/api/v1/rooms/{id}/messages/{message_id}",
            None,
            [401, 404, 404],
        ),
        // Any body is a file; this one is never read, as the room does not exist.
        e(
            Method::POST,
            "/api/v1/rooms/{id}/files",
            Some(json!({"not": "read"})),
            [401, 404, 404],
        ),
        e(Method::GET, "/api/v1/files/{id}", None, [401, 404, 404]),
        e(
            Method::GET,
            "/api/v1/files/{id}/content",
            None,
            [401, 404, 404],
        ),
        e(Method::DELETE, "/api/v1/files/{id}", None, [401, 404, 404]),
        // Without `q`: the parameter is required.
        e(Method::GET, "/api/v1/search", None, [401, 400, 400]),
        e(Method::GET, "/api/v1/me/keys", None, [401, 200, 200]),
        e(
            Method::POST,
            "/api/v1/me/keys",
            Some(json!({"bundle": "", "backup": ""})),
            [401, 400, 400],
        ),
        e(Method::GET, "/api/v1/me/keys/backup", None, [401, 404, 404]),
        e(
            Method::PUT,
            "/api/v1/me/keys/backup",
            Some(json!({"bundle": "", "backup": ""})),
            [401, 400, 400],
        ),
        e(
            Method::POST,
            "/api/v1/me/keys/reset",
            Some(json!({"password": PASSWORD})),
            [401, 204, 204],
        ),
        e(
            Method::GET,
            "/api/v1/users/{id}/keys",
            None,
            [401, 404, 404],
        ),
        // `{username}` is the bystander: any signed-in user may look anyone up.
        e(
            Method::GET,
            "/api/v1/users/by-name/{username}",
            None,
            [401, 200, 200],
        ),
        // Without `user_ids`: the parameter is required.
        e(Method::GET, "/api/v1/keys", None, [401, 400, 400]),
        e(
            Method::POST,
            "/api/v1/admin/users/{id}/keys/reset",
            None,
            [401, 403, 204],
        ),
        e(Method::GET, "/api/v1/openapi.json", None, [200, 200, 200]),
    ]
}

#[tokio::test]
async fn every_endpoint_as_every_role() {
    for t in TestApp::every_backend().await {
        walk_every_endpoint(&t).await;
        t.finish().await;
    }
}

async fn walk_every_endpoint(t: &TestApp) {
    // With every feature on, so each endpoint answers for what it does.
    t.enable_encryption().await;
    t.create_user("admin", true).await;
    t.create_user("user", false).await;
    // Admin routes act on a bystander; session and token routes on an unknown id.
    let target = t.create_user("target", false).await;

    for ep in endpoints() {
        for (role, expected) in ["anonymous", "user", "admin"].into_iter().zip(ep.expect) {
            // A fresh login per call, so logout or a password reset cannot spoil the next.
            let token = match role {
                "anonymous" => None,
                name => Some(t.login(name, PASSWORD).await),
            };
            let id = if ep.path.contains("/admin/") {
                target.as_str()
            } else {
                "no-such-id"
            };
            let path = ep
                .path
                .replace("{id}", id)
                .replace("{user_id}", "no-such-id")
                .replace("{message_id}", "no-such-id")
                .replace("{username}", "target");
            let a = t
                .call(ep.method.clone(), &path, token.as_deref(), ep.body.clone())
                .await;
            assert_eq!(
                a.status.as_u16(),
                expected,
                "{} {} as {role}: {}",
                ep.method,
                ep.path,
                a.body
            );
            if expected >= 400 {
                assert!(
                    a.body["error"]["code"].is_string(),
                    "{} {}: {}",
                    ep.method,
                    ep.path,
                    a.body
                );
                assert_ne!(
                    a.body["error"]["message"], "no such endpoint",
                    "{} {} is not routed",
                    ep.method, ep.path
                );
            }
        }
    }
}

#[tokio::test]
async fn openapi_document_lists_exactly_the_routed_endpoints() {
    let t = TestApp::new().await;
    let doc = t.get("/api/v1/openapi.json", None).await.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            documented.insert((method.to_uppercase(), path.clone()));
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            if op.get("security").is_some() {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} lacks its 401"
                );
            }
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &r["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let walked: BTreeSet<_> = endpoints()
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    assert_eq!(documented, walked, "the walk and the document disagree");
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    assert_eq!(
        codes.as_array().unwrap().len(),
        sotto_api::ErrorCode::ALL.len()
    );
}

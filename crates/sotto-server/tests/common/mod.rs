//! Calling the router without a socket.
#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sotto_server::service::Actor;
use sotto_server::service::accounts::NewAccount;
use sotto_server::store::Stores;
use sotto_server::testing::PgTestDb;
use sotto_server::{AppState, app};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery";

/// A fresh app over SQLite in a temp dir, or over a fresh PostgreSQL database.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub stores: Stores,
    _dir: tempfile::TempDir,
    pg: Option<PgTestDb>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error: {}", self.body))
    }

    /// Asserts status and error code, and that the body has exactly the error shape.
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.code(), code);
        assert!(self.body["error"]["message"].is_string());
        assert_eq!(self.body.as_object().unwrap().len(), 1);
        assert_eq!(self.body["error"].as_object().unwrap().len(), 2);
    }
}

impl TestApp {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores::open_sqlite(dir.path()).await.unwrap();
        Self::over(stores, dir, None)
    }

    fn over(stores: Stores, dir: tempfile::TempDir, pg: Option<PgTestDb>) -> Self {
        let state = AppState::new(&stores);
        Self {
            router: app(state.clone()),
            state,
            stores,
            _dir: dir,
            pg,
        }
    }

    /// A fresh app over a new PostgreSQL database; `None` when `SOTTO_TEST_DATABASE_URL`
    /// is unset on a developer machine (under CI that fails instead). Call
    /// [`TestApp::finish`] to drop the database.
    pub async fn postgres() -> Option<Self> {
        let pg = PgTestDb::create().await?;
        let stores = Stores::open_postgres(pg.url()).await.unwrap();
        Some(Self::over(stores, tempfile::tempdir().unwrap(), Some(pg)))
    }

    /// Turns the workspace's `e2e.enabled` and `otr.enabled` settings on (both are off by
    /// default), as the operator.
    pub async fn enable_encryption(&self) {
        let patch =
            serde_json::from_value(json!({"e2e.enabled": true, "otr.enabled": true})).unwrap();
        self.state
            .services
            .settings
            .update(&Actor::Operator, patch)
            .await
            .unwrap();
    }

    /// The data directory (SQLite and its blobs).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The PostgreSQL database's URL, when the app runs on one.
    pub fn pg_url(&self) -> Option<&str> {
        self.pg.as_ref().map(PgTestDb::url)
    }

    /// SQLite always, and PostgreSQL when it is configured.
    pub async fn every_backend() -> Vec<Self> {
        let mut apps = vec![Self::new().await];
        apps.extend(Self::postgres().await);
        apps
    }

    /// Which backend, for assertion messages.
    pub fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Closes the stores and drops a PostgreSQL database.
    pub async fn finish(self) {
        self.stores.close().await;
        if let Some(pg) = self.pg {
            pg.drop().await;
        }
    }

    /// Sends a request; `body` of `None` sends none.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Creates a user directly through the service, as the operator.
    pub async fn create_user(&self, username: &str, admin: bool) -> String {
        let user = self
            .state
            .services
            .accounts
            .create_account(NewAccount {
                username: username.into(),
                password: PASSWORD.into(),
                display_name: None,
                admin,
            })
            .await
            .unwrap();
        user.id
    }

    /// Logs in over the router and returns the token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let a = self
            .post(
                "/api/v1/login",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body["token"].as_str().unwrap().to_owned()
    }
}

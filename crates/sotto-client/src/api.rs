//! The REST API over HTTP(S): one [`Api`] per server and token. Requests and answers are
//! the `sotto-api` types; an error answer becomes [`Error::Api`] with its stable code.
//! Paths are built with [`seg`], so no id can change which endpoint is called.

use crate::error::{Error, Result};
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long one REST call may take before it fails (file transfers excepted).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one server, as one user (or anonymous, before login).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    base: String,
    token: Option<Arc<Zeroizing<String>>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Api {
    /// An anonymous connection to `server` (`http://` or `https://`, no path).
    pub fn new(server: &str) -> Result<Self> {
        let base = server.trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "server URL must start with https:// or http://: {base}"
                ))
            })?;
        if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
            return Err(Error::Invalid(format!(
                "server URL must be scheme://host[:port] only: {base}"
            )));
        }
        let tls = Arc::new(tls_config()?);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .user_agent(concat!("sotto-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(Error::from)?;
        Ok(Self {
            http,
            tls,
            base,
            token: None,
        })
    }

    /// The same server with a bearer token.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(Arc::new(Zeroizing::new(token.to_owned()))),
            ..self.clone()
        }
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// The realtime socket's URL (`ws://` or `wss://`).
    pub fn ws_url(&self) -> String {
        let rest = self.base.strip_prefix("http").unwrap_or(&self.base);
        format!("ws{rest}/api/v1/ws")
    }

    /// The TLS settings used for HTTPS, for the realtime socket.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The bearer token, for the realtime socket's upgrade request.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref().map(|t| t.as_str())
    }

    /// A request to `path` (which starts with `/api/v1/`), authenticated if there is a
    /// token, without a timeout: file transfers use it directly.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match self.token() {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// `GET path`, decoding the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(self.request(Method::GET, path)).await
    }

    /// `GET path` with query parameters.
    pub async fn get_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T> {
        self.call(self.request(Method::GET, path).query(query))
            .await
    }

    /// A JSON request with a JSON answer.
    pub async fn send<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.call(self.request(method, path).json(body)).await
    }

    /// A request whose answer has no body worth reading (204, or one that is ignored).
    pub async fn send_empty<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<()> {
        let mut req = self.request(method, path).timeout(CALL_TIMEOUT);
        if let Some(body) = body {
            req = req.json(body);
        }
        check(req.send().await?).await.map(drop)
    }

    async fn call<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let answer = check(req.timeout(CALL_TIMEOUT).send().await?).await?;
        answer.json().await.map_err(Error::from)
    }
}

/// The answer if it is a success, else its error as [`Error::Api`].
pub async fn check(answer: Response) -> Result<Response> {
    let status = answer.status();
    if status.is_success() {
        return Ok(answer);
    }
    let bytes = answer.bytes().await?;
    // Codes are read as text: a newer server may answer with codes this build lacks.
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    Err(match serde_json::from_slice::<Body>(&bytes) {
        Ok(Body { error }) => Error::Api {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        },
        Err(_) => Error::Transport(format!("HTTP {status} without an error body")),
    })
}

/// One path segment: characters outside the id alphabet are percent-encoded, so a
/// hostile or mistyped id can never reach another endpoint.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out == "." || out == ".." {
        return out.replace('.', "%2E");
    }
    out
}

/// TLS with the `ring` provider and the Web PKI roots (the same for REST and realtime).
fn tls_config() -> Result<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Transport(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_escape_their_place() {
        assert_eq!(seg("r_1-a.b:c"), "r_1-a.b:c");
        assert_eq!(seg("../admin"), "..%2Fadmin");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg("a?b#c d"), "a%3Fb%23c%20d");
    }

    #[test]
    fn server_urls_are_checked() {
        assert!(Api::new("http://127.0.0.1:8080").is_ok());
        assert_eq!(
            Api::new("https://chat.example/").unwrap().ws_url(),
            "wss://chat.example/api/v1/ws"
        );
        assert!(Api::new("ftp://x").is_err());
        assert!(Api::new("http://x/path").is_err());
        assert!(Api::new("http://").is_err());
    }
}

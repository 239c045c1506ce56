//! Starting and stopping: open storage, bind, announce the setup link, serve until a
//! shutdown signal, drain in-flight requests, close the pool.

use crate::http::serve::ConnectionLimits;
use crate::service::rate_limit::Slots;
use crate::store::{StoreError, Stores};
use crate::{AppState, app};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database (and, later, blobs).
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of SQLite.
    pub database_url: Option<String>,
    /// Base URL people reach the server at, for the setup link; defaults to `http://<listen>`.
    pub public_url: Option<String>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Storage could not be opened or migrated.
    #[error("opening storage")]
    Store(#[from] StoreError),
    /// The setup token could not be issued.
    #[error("preparing first-admin setup: {0}")]
    Setup(String),
    /// Binding or serving failed.
    #[error("listening on {addr}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A bound, ready server.
pub struct Server {
    listener: TcpListener,
    stores: Stores,
    state: AppState,
    setup_link: Option<String>,
    limits: ConnectionLimits,
}

impl Server {
    /// Opens storage (running migrations), binds the listener and, when no admin exists,
    /// issues a fresh one-time setup token.
    pub async fn bind(config: &Config) -> Result<Self, ServerError> {
        let stores = Stores::open(&config.data_dir, config.database_url.as_deref()).await?;
        let state = AppState::new(&stores);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Io {
                    addr: config.listen,
                    source,
                })?;
        let local = listener.local_addr().map_err(|source| ServerError::Io {
            addr: config.listen,
            source,
        })?;
        let token = state
            .services
            .accounts
            .issue_setup_token()
            .await
            .map_err(|e| ServerError::Setup(e.to_string()))?;
        let base = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local}"));
        let setup_link = token.map(|t| format!("{}/setup#{t}", base.trim_end_matches('/')));
        Ok(Self {
            listener,
            stores,
            state,
            setup_link,
            limits: ConnectionLimits::default(),
        })
    }

    /// Pings realtime clients this often (default 30 s); mainly for tests.
    pub fn with_heartbeat(mut self, heartbeat: std::time::Duration) -> Self {
        self.state.realtime.heartbeat = heartbeat;
        self
    }

    /// Closes realtime clients that take longer than this to accept one frame (default
    /// 30 s); mainly for tests.
    pub fn with_send_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.state.realtime.send_timeout = timeout;
        self
    }

    /// Limits of the OTR relay per connection; mainly for tests.
    pub fn with_otr_limits(mut self, limits: crate::service::otr::OtrLimits) -> Self {
        self.state.realtime.otr = limits;
        self
    }

    /// The event bus, for tests that play a compromised server and push what it never
    /// would (feature `testing`).
    #[cfg(feature = "testing")]
    pub(crate) fn bus(&self) -> std::sync::Arc<dyn crate::bus::Bus> {
        self.state.services.bus.clone()
    }

    /// How long a client may take over a request's head and body; mainly for tests.
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Realtime connections allowed per user and in total; mainly for tests.
    pub fn with_realtime_connections(mut self, per_user: usize, total: usize) -> Self {
        self.state.realtime.connections = std::sync::Arc::new(Slots::new(per_user, total));
        self
    }

    /// Messages a user may send at once, and then one more every `every`; mainly for
    /// tests.
    pub fn with_send_rate(self, burst: u32, every: std::time::Duration) -> Self {
        self.state.services.rooms.send_rate().set_rate(burst, every);
        self
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The one-time link that creates the first admin, when there is none yet.
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish and closes the database pool.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let addr = self.local_addr().map_err(|source| ServerError::Io {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        tracing::info!(%addr, "listening");
        let sweeper = tokio::spawn(sweep_sessions(self.state.clone()));
        let bus = self.state.services.bus.clone();
        // On shutdown, closing the bus ends every realtime socket with a close frame
        // while HTTP requests in flight finish.
        let shutdown = async move {
            shutdown.await;
            bus.close();
        };
        crate::http::serve::serve(self.listener, app(self.state), self.limits, shutdown).await;
        sweeper.abort();
        tracing::info!("stopped accepting; closing storage");
        self.stores.close().await;
        Ok(())
    }
}

/// Deletes expired sessions at start and then hourly, until aborted.
async fn sweep_sessions(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60 * 60));
    loop {
        every.tick().await;
        match state.services.accounts.sweep_expired_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired sessions failed"),
        }
    }
}

/// `sotto serve`: runs until SIGINT or SIGTERM. The setup link, if any, is printed to
/// stdout — the only secret the server ever prints, on purpose, once per start.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    let server = Server::bind(&config).await?;
    if let Some(link) = server.setup_link() {
        println!("No admin yet. Open this one-time link to create the first admin:\n{link}");
    }
    server.run(shutdown_signal()).await
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}

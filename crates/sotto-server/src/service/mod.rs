//! The domain rules. Services know nothing of HTTP: they take plain values and an
//! [`Actor`], and answer with wire types or a [`ServiceError`].

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod files;
pub mod keys;
pub mod otr;
pub mod password;
pub mod presence;
pub mod rate_limit;
pub mod realtime;
pub mod rooms;
pub mod search;
pub mod settings;
pub mod tokens;
pub mod validate;

use crate::bus::fanout::Fanout;
use crate::bus::{Bus, LocalBus};
use crate::store::{SessionKind, StoreError, Stores, UserRecord};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use accounts::AccountService;
pub use admin::AdminService;
pub use audit::AuditService;
pub use files::FileService;
pub use keys::KeyService;
pub use otr::OtrService;
pub use presence::PresenceService;
pub use rooms::RoomService;
pub use search::SearchService;
pub use settings::SettingsService;

/// Errors of the service layer; each maps to one API error code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field is invalid; the message names it and says what is accepted.
    #[error("{0}")]
    InvalidInput(String),
    /// No valid token.
    #[error("authentication required")]
    Unauthorized,
    /// Wrong username or password.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The account is deactivated.
    #[error("this account is deactivated")]
    AccountDeactivated,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A signature in the request does not verify with the caller's published identity
    /// key over what is stored now.
    #[error("{0}")]
    InvalidSignature(&'static str),
    /// No such thing (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Username taken.
    #[error("this username is taken")]
    UsernameTaken,
    /// An admin exists already.
    #[error("the workspace already has an admin")]
    AlreadySetUp,
    /// Setup token wrong, used or expired.
    #[error("the setup token is invalid or expired; restart the server for a new link")]
    InvalidSetupToken,
    /// The request conflicts with stored state.
    #[error("{0}")]
    Conflict(String),
    /// A field exceeds its size limit; the message names it and the limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until an attempt is allowed again.
        retry_after_secs: u64,
    },
    /// Something failed inside; logged, answered generically.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LastOwner => Self::InvalidInput(
                "the room would have no owner; make another member owner first".into(),
            ),
            e => Self::Internal(e.to_string()),
        }
    }
}

/// Who is asking.
#[derive(Clone, Debug)]
pub enum Actor {
    /// A logged-in user (by session or personal access token).
    User(Principal),
    /// The local operator, through `sotto admin` on the server's machine.
    Operator,
}

impl Actor {
    /// Fails unless the actor may administer the workspace.
    pub fn require_admin(&self) -> Result<(), ServiceError> {
        match self {
            Actor::Operator => Ok(()),
            Actor::User(p) if p.user.admin => Ok(()),
            Actor::User(_) => Err(ServiceError::Forbidden("only admins may do this")),
        }
    }
}

/// An authenticated user and the session that authenticated them.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The user, active at authentication time.
    pub user: UserRecord,
    /// The session or token id.
    pub session_id: String,
    /// Login session or personal access token.
    pub kind: SessionKind,
}

/// Every service, built once from the stores and shared by the HTTP layer and the CLI.
#[derive(Clone)]
pub struct Services {
    /// Login, sessions, tokens, setup.
    pub accounts: Arc<AccountService>,
    /// User management.
    pub admin: Arc<AdminService>,
    /// Workspace settings.
    pub settings: Arc<SettingsService>,
    /// Rooms, membership and messages.
    pub rooms: Arc<RoomService>,
    /// Files posted in rooms.
    pub files: Arc<FileService>,
    /// Who is online.
    pub presence: Arc<PresenceService>,
    /// E2EE user keys: directory, backups, resets.
    pub keys: Arc<KeyService>,
    /// The off-the-record relay between live connections.
    pub otr: Arc<OtrService>,
    /// Message search.
    pub search: Arc<SearchService>,
    /// The admin audit.
    pub audit: Arc<AuditService>,
    /// Where the services publish room events and presence changes.
    pub bus: Arc<dyn Bus>,
    /// Routes what the bus carries to this node's realtime connections.
    pub fanout: Arc<Fanout>,
}

impl Services {
    /// Wires the services to `stores`.
    pub fn new(stores: &Stores) -> Self {
        let accounts = Arc::new(AccountService::new(
            stores.users.clone(),
            stores.sessions.clone(),
        ));
        let settings = Arc::new(SettingsService::new(stores.settings.clone()));
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::default());
        let rooms = Arc::new(RoomService::new(stores, settings.clone(), bus.clone()));
        let files = Arc::new(FileService::new(
            rooms.clone(),
            stores.files.clone(),
            stores.blobs.clone(),
            settings.clone(),
        ));
        let presence = Arc::new(PresenceService::new(stores.rooms.clone(), bus.clone()));
        let keys = Arc::new(KeyService::new(
            stores.keys.clone(),
            stores.users.clone(),
            stores.sessions.clone(),
            rooms.clone(),
            settings.clone(),
            bus.clone(),
        ));
        let otr = Arc::new(OtrService::new(
            stores.rooms.clone(),
            stores.keys.clone(),
            settings.clone(),
        ));
        Self {
            search: Arc::new(SearchService::new(rooms.clone(), stores.search.clone())),
            audit: Arc::new(AuditService::new(
                rooms.clone(),
                stores.rooms.clone(),
                stores.audit.clone(),
            )),
            admin: Arc::new(AdminService::new(
                accounts.clone(),
                rooms.clone(),
                stores.users.clone(),
                stores.sessions.clone(),
            )),
            rooms,
            presence,
            keys,
            otr,
            files,
            fanout: Arc::new(Fanout::new(bus.clone())),
            bus,
            settings,
            accounts,
        }
    }
}

/// Wall-clock time in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The wire form of a stored user.
pub(crate) fn user_view(u: &UserRecord) -> sotto_api::User {
    sotto_api::User {
        id: u.id.clone(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        admin: u.admin,
        deactivated: u.deactivated,
        created_at: u.created_at,
    }
}

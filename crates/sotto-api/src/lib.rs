//! Wire types of the Sotto REST API, shared by the server and its clients.
//!
//! Every body here derives `utoipa::ToSchema`, so the server's OpenAPI document is
//! generated from the same types that go over the wire. Times are Unix milliseconds.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod e2ee;
pub mod error;
pub mod files;
pub mod keys;
pub mod otr;
pub mod realtime;
pub mod rooms;
pub mod search;
pub mod settings;

pub use accounts::*;
pub use admin::*;
pub use audit::*;
pub use e2ee::*;
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use files::{FileInfo, UploadQuery};
pub use keys::*;
pub use otr::{OTR_FRAME_ID_MAX, OTR_MAX_FRAME_BYTES, OtrErrorCode};
pub use realtime::{ClientFrame, Event, EventKind, Notice, PresenceList, RESUME_MAX_ROOMS};
pub use rooms::*;
pub use search::{SearchPage, SearchQuery};
pub use settings::{Settings, SettingsPatch};

//! The one error type of the client library. Messages are for people and never carry a
//! token, password, key or message text.

use sotto_crypto::roomkey::RoomKeyError;
use sotto_crypto::{BackupError, PinError};

/// What went wrong in a client call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error (`code` is the stable API error code).
    #[error("{message} ({code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code, such as `not_found`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server could not be reached, or its answer was not what the API promises.
    #[error("talking to the server: {0}")]
    Transport(String),
    /// Local storage (the profile directory) failed.
    #[error("{what}: {source}")]
    Storage {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No login on this profile.
    #[error("not logged in: run `sotto login`")]
    NotLoggedIn,
    /// The user has no encryption keys yet.
    #[error("no encryption keys yet: run `sotto e2e setup`")]
    NoKeys,
    /// The user's keys are not unlocked on this device.
    #[error("encryption keys are locked on this device: run `sotto e2e unlock`")]
    Locked,
    /// The encryption password did not open the key backup.
    #[error("wrong encryption password")]
    WrongPassword,
    /// The key backup was refused (weaker parameters, keys not matching, …).
    #[error("key backup refused: {0}")]
    Backup(BackupError),
    /// A contact's identity key differs from the one pinned for them.
    #[error(
        "the identity key of {user} changed: check it with `sotto verify {user}`, then accept it with `sotto verify {user} --accept-change`"
    )]
    KeyChanged {
        /// The user whose key changed.
        user: String,
    },
    /// A room-key box was refused (docs/protocol.md §6.3): it was not used, no key was
    /// installed.
    #[error("room-key box refused: {0}")]
    RoomKey(RoomKeyError),
    /// The server served an older state of the room's chain than this device verified
    /// (statements it had shown before are missing, such as a removal or a new epoch):
    /// the newer state is kept, and nothing that needs the chain is done until the server
    /// serves it again.
    #[error(
        "the server rolled back the state of room {room}: it serves {served} statements, this device verified {verified}; the newer state is kept"
    )]
    ChainRolledBack {
        /// The room.
        room: String,
        /// Statements this device verified.
        verified: u64,
        /// Statements the server served.
        served: u64,
    },
    /// A pin could not be changed as asked.
    #[error("{0}")]
    Pin(PinError),
    /// Something the server sent failed a protocol check (a bad signature, a broken
    /// room chain, …); it was not used.
    #[error("refused what the server sent: {0}")]
    Protocol(String),
    /// A downloaded file failed its integrity checks (altered, swapped, cut short or
    /// extended on the server, or a wrong key): nothing of it was kept.
    #[error("the file is corrupted: {0}")]
    Corrupted(String),
    /// The request cannot be done as asked (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// An off-the-record conversation cannot do what was asked; `code` says why.
    #[error("{message}")]
    Otr {
        /// Why, as a stable code.
        code: crate::otr::OtrCode,
        /// Explanation for people.
        message: String,
    },
}

impl Error {
    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            Self::Otr { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }

    pub(crate) fn storage(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Storage { what, source }
    }

    pub(crate) fn protocol(what: impl std::fmt::Display) -> Self {
        Self::Protocol(what.to_string())
    }
}

impl From<BackupError> for Error {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::WrongPassword => Self::WrongPassword,
            other => Self::Backup(other),
        }
    }
}

impl From<PinError> for Error {
    fn from(e: PinError) -> Self {
        Self::Pin(e)
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        // `without_url`: a URL may carry a query (search terms) that must not reach a log.
        Self::Transport(e.without_url().to_string())
    }
}

/// A result of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

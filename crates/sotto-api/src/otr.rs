//! Off-the-record relay (O1–O4, O7, O8): the limits and refusal codes of the `otr`
//! frames on the realtime socket. The frames themselves are in [`crate::realtime`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest OTR frame the relay carries, in bytes before base64: the largest valid
/// sotto-crypto frame, a Data frame with a 4 MiB body (protocol §9.1).
pub const OTR_MAX_FRAME_BYTES: usize = 2 + 16 + 40 + 4 + 4 * 1024 * 1024 + 16;

/// Longest client frame id of an `otr` frame, in characters.
pub const OTR_FRAME_ID_MAX: usize = 64;

/// Why the server did not relay an OTR frame. Each case has its own code so a client
/// can tell the user exactly what is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtrErrorCode {
    /// The `otr.enabled` setting is off.
    OtrDisabled,
    /// The frame is not base64, or does not start with a known OTR frame head.
    InvalidFrame,
    /// The frame is larger than the relay carries.
    FrameTooLarge,
    /// This connection sent too many frames or bytes; retry after `retry_after_secs`.
    RateLimited,
    /// No such room, or the sender is not in it.
    RoomNotFound,
    /// The room is not a direct message of exactly two people.
    NotDirect,
    /// The sender or the peer has not published an E2EE key bundle.
    KeysMissing,
    /// The peer has no live connection.
    PeerOffline,
    /// Every live connection of the peer has too much undelivered OTR traffic queued.
    PeerBusy,
}

impl OtrErrorCode {
    /// Every code, in declaration order (for documentation and tests).
    pub const ALL: [OtrErrorCode; 9] = [
        Self::OtrDisabled,
        Self::InvalidFrame,
        Self::FrameTooLarge,
        Self::RateLimited,
        Self::RoomNotFound,
        Self::NotDirect,
        Self::KeysMissing,
        Self::PeerOffline,
        Self::PeerBusy,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case() {
        assert_eq!(
            serde_json::to_value(OtrErrorCode::PeerOffline).unwrap(),
            "peer_offline"
        );
        let all: std::collections::HashSet<_> = OtrErrorCode::ALL.iter().collect();
        assert_eq!(all.len(), OtrErrorCode::ALL.len());
    }

    #[test]
    fn every_code_is_in_the_api_docs() {
        let doc = include_str!("../../../docs/api.md");
        let (_, section) = doc
            .split_once("### Off the record")
            .expect("the OTR section");
        for code in OtrErrorCode::ALL {
            let name = serde_json::to_value(code).unwrap();
            let row = format!("| `{}` | ", name.as_str().unwrap());
            assert!(section.contains(&row), "docs/api.md lacks the row {row}");
        }
    }
}

//! Files (C8): uploaded as a raw request body, stored under an id, readable by the
//! members of the room they were posted in.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A stored file's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileInfo {
    /// Random id in the protocol id alphabet; messages refer to the file by it.
    pub id: String,
    /// The room it was posted in; only its members can read it.
    pub room_id: String,
    /// Who uploaded it.
    pub uploader_id: String,
    /// File name as given on upload; absent when none was given (encrypted rooms keep
    /// the name inside the encrypted message).
    pub name: Option<String>,
    /// Media type from the upload's `Content-Type`; `application/octet-stream` if none.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// `POST /api/v1/rooms/{id}/files` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// File name: 1–255 characters, no control characters, no `/` or `\`, not `.` or
    /// `..`. Optional; clients of encrypted rooms leave it out.
    pub name: Option<String>,
}

//! User management by admins.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/admin/users`.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Login name: 3–32 characters of ASCII letters, digits, `.`, `_` or `-`, starting
    /// with a letter or digit.
    pub username: String,
    /// Login password: 8–1024 bytes.
    pub password: String,
    /// Name shown to others (1–64 characters, no control characters); defaults to the username.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Make the user an admin.
    #[serde(default)]
    pub admin: bool,
}

/// `PUT /api/v1/admin/users/{id}/password`: set a new login password; ends the user's sessions.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The new login password: 8–1024 bytes.
    pub password: String,
}

/// `GET /api/v1/admin/users`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct UserList {
    /// Every user, in creation order.
    pub users: Vec<crate::User>,
}

/// `GET /api/v1/me/sessions` and `GET /api/v1/me/tokens`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<crate::Session>,
}

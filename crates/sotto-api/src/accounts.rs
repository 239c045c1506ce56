//! Login, sessions, personal access tokens, the current user and first-admin setup.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Stable id: 1–64 bytes of `[A-Za-z0-9._:-]`, usable as a protocol user id.
    pub id: String,
    /// Unique (regardless of case) login name.
    pub username: String,
    /// Name shown to other people.
    pub display_name: String,
    /// Whether the user administers the workspace.
    pub admin: bool,
    /// Deactivated users cannot log in and their tokens do not work.
    pub deactivated: bool,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// `POST /api/v1/login`.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name (any case).
    pub username: String,
    /// Login password.
    pub password: String,
    /// Optional label for this session, shown in the session list (for example a device).
    #[serde(default)]
    pub session_name: Option<String>,
}

/// A new bearer token, shown exactly once.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The session this token belongs to.
    pub session: Session,
    /// The logged-in user.
    pub user: User,
}

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Created by logging in with a password; expires.
    Login,
    /// A personal access token for scripts and bots; lives until revoked.
    PersonalAccess,
}

/// A login session or a personal access token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// Id used to revoke it.
    pub id: String,
    /// Login session or personal access token.
    pub kind: TokenKind,
    /// Label given at creation.
    pub name: Option<String>,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last time the token was used (to the minute), Unix milliseconds.
    pub last_used_at: i64,
    /// Expiry, Unix milliseconds; `null` for personal access tokens.
    pub expires_at: Option<i64>,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// `POST /api/v1/me/tokens`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A name to recognise the token by (1–64 characters).
    pub name: String,
}

/// A new personal access token, shown exactly once.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
pub struct CreatedToken {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Its metadata, as listed later.
    pub session: Session,
}

/// `POST /api/v1/setup`: create the first admin with the one-time setup token.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The token from the setup link the server printed on first start.
    pub setup_token: String,
    /// The admin's login name.
    pub username: String,
    /// The admin's login password.
    pub password: String,
    /// Name shown to others; defaults to the username.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `GET /api/v1/setup`: whether the first admin still has to be created.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct SetupStatus {
    /// True once an admin exists; the setup endpoint is then closed.
    pub complete: bool,
}

/// `GET /api/v1/users/by-name/{username}`: another user as any signed-in user may look
/// them up (to start a direct message, invite them or check their key). No admin flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserSummary {
    /// Stable id.
    pub id: String,
    /// Login name, as the user registered it.
    pub username: String,
    /// Name shown to other people.
    pub display_name: String,
}

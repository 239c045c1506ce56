//! C1 accounts: login, bearer-token authentication, sessions, personal access tokens,
//! and creating the first admin.

use super::rate_limit::RateLimiter;
use super::tokens::{hash_token, new_id, new_token};
use super::{Principal, ServiceError, now_ms, password, user_view, validate};
use crate::store::{SessionKind, SessionRecord, SessionStore, StoreError, UserRecord, UserStore};
use sotto_api::{
    CreatedToken, LoginRequest, LoginResponse, Session, SessionList, SetupRequest, SetupStatus,
    TokenKind, User, UserSummary,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a password login lasts.
pub const LOGIN_LIFETIME_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// How long the first-admin setup link works.
pub const SETUP_TOKEN_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;
/// `last_used_at` is written at most this often per session, to spare the database.
const TOUCH_EVERY_MS: i64 = 60 * 1000;
/// Longest bearer token looked at; ours are 43 characters.
const MAX_TOKEN_LEN: usize = 256;

/// A new account, from an admin or the operator.
pub struct NewAccount {
    /// Login name.
    pub username: String,
    /// Login password.
    pub password: String,
    /// Shown name; the username when `None`.
    pub display_name: Option<String>,
    /// Workspace admin.
    pub admin: bool,
}

/// Accounts and their sessions.
pub struct AccountService {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    per_account: RateLimiter,
    per_address: RateLimiter,
    /// Verified against when the username does not exist, so both cases take as long.
    dummy_hash: Option<String>,
}

impl AccountService {
    /// Accounts over these stores, with the default login limits: per account 10 failed
    /// attempts, then one per 30 s; per client address 30 attempts, then one per 2 s.
    pub fn new(users: Arc<dyn UserStore>, sessions: Arc<dyn SessionStore>) -> Self {
        Self {
            users,
            sessions,
            per_account: RateLimiter::new(10, Duration::from_secs(30), 100_000),
            per_address: RateLimiter::new(30, Duration::from_secs(2), 100_000),
            dummy_hash: password::hash_blocking("no such user, no such password").ok(),
        }
    }

    /// Logs in with username and password; `addr` is the client's address, if known.
    pub async fn login(
        &self,
        req: LoginRequest,
        addr: Option<IpAddr>,
    ) -> Result<LoginResponse, ServiceError> {
        if let Some(addr) = addr {
            self.per_address
                .attempt(&address_key(addr), Instant::now())
                .map_err(limited)?;
        }
        let session_name = req
            .session_name
            .as_deref()
            .map(|n| validate::name("session_name", n))
            .transpose()?;
        // Names longer than any username match no account and are not tracked, so the
        // limiter's memory is bounded in bytes as well as in keys.
        let plausible = req.username.len() <= *validate::USERNAME_LEN.end()
            && req.password.len() <= *validate::PASSWORD_LEN.end();
        let account_key = plausible.then(|| req.username.to_lowercase());
        if let Some(key) = &account_key {
            self.per_account
                .check(key, Instant::now())
                .map_err(limited)?;
        }

        let user = match plausible {
            true => self.users.user_by_username(&req.username).await?,
            false => None,
        };
        let matches = match (&user, &self.dummy_hash) {
            (Some(u), _) => password::verify(req.password, u.password_hash.clone()).await?,
            (None, Some(dummy)) if plausible => {
                password::verify(req.password, dummy.clone()).await?;
                false
            }
            (None, _) => false,
        };
        let Some(user) = user.filter(|_| matches) else {
            if let Some(key) = &account_key {
                self.per_account.consume(key, Instant::now());
            }
            return Err(ServiceError::InvalidCredentials);
        };
        if user.deactivated {
            return Err(ServiceError::AccountDeactivated);
        }
        let (token, session) = self
            .start_session(&user, SessionKind::Login, session_name)
            .await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "login");
        Ok(LoginResponse {
            token,
            session: session_view(&session, true),
            user: user_view(&user),
        })
    }

    /// The user and session behind a bearer token. Expired tokens are deleted on sight.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ServiceError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(ServiceError::Unauthorized);
        }
        let token_hash = hash_token(token);
        let session = self
            .sessions
            .session_by_token_hash(&token_hash)
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        let now = now_ms();
        if session.expires_at.is_some_and(|at| at <= now) {
            self.sessions
                .delete_session(&session.user_id, &session.id, session.kind)
                .await?;
            return Err(ServiceError::Unauthorized);
        }
        let user = self
            .users
            .user_by_id(&session.user_id)
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        if user.deactivated {
            return Err(ServiceError::AccountDeactivated);
        }
        if now - session.last_used_at >= TOUCH_EVERY_MS {
            self.sessions.touch_session(&token_hash, now).await?;
        }
        Ok(Principal {
            user,
            session_id: session.id,
            kind: session.kind,
        })
    }

    /// The caller's own account.
    pub fn me(&self, who: &Principal) -> User {
        user_view(&who.user)
    }

    /// Another user by login name (any case), for any signed-in user: what a client needs
    /// to address them. Deactivated users are `not_found`, as nobody can reach them.
    pub async fn find_by_username(
        &self,
        _who: &Principal,
        username: &str,
    ) -> Result<UserSummary, ServiceError> {
        // Anything that cannot be a username is simply not one: no store call.
        if validate::username(username).is_err() {
            return Err(ServiceError::NotFound("user"));
        }
        match self.users.user_by_username(username).await? {
            Some(u) if !u.deactivated => Ok(UserSummary {
                id: u.id,
                username: u.username,
                display_name: u.display_name,
            }),
            _ => Err(ServiceError::NotFound("user")),
        }
    }

    /// Ends the session (or revokes the token) the caller is using.
    pub async fn logout(&self, who: &Principal) -> Result<(), ServiceError> {
        self.sessions
            .delete_session(&who.user.id, &who.session_id, who.kind)
            .await?;
        Ok(())
    }

    /// The caller's login sessions or personal access tokens.
    pub async fn list(
        &self,
        who: &Principal,
        kind: TokenKind,
    ) -> Result<SessionList, ServiceError> {
        let rows = self
            .sessions
            .sessions_of_user(&who.user.id, store_kind(kind))
            .await?;
        let now = now_ms();
        let sessions = rows
            .iter()
            .filter(|s| s.expires_at.is_none_or(|at| at > now))
            .map(|s| session_view(s, s.id == who.session_id))
            .collect();
        Ok(SessionList { sessions })
    }

    /// Ends one of the caller's sessions or tokens.
    pub async fn revoke(
        &self,
        who: &Principal,
        id: &str,
        kind: TokenKind,
    ) -> Result<(), ServiceError> {
        let noun = match kind {
            TokenKind::Login => "session",
            TokenKind::PersonalAccess => "token",
        };
        match self
            .sessions
            .delete_session(&who.user.id, id, store_kind(kind))
            .await?
        {
            true => Ok(()),
            false => Err(ServiceError::NotFound(noun)),
        }
    }

    /// A new personal access token. Only a password login may create one, so a leaked
    /// token cannot mint more of itself.
    pub async fn create_token(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<CreatedToken, ServiceError> {
        if who.kind != SessionKind::Login {
            return Err(ServiceError::Forbidden(
                "personal access tokens are created from a password login",
            ));
        }
        let name = validate::name("name", name)?;
        let (token, session) = self
            .start_session(&who.user, SessionKind::PersonalAccess, Some(name))
            .await?;
        tracing::info!(user_id = %who.user.id, token_id = %session.id, "personal access token created");
        Ok(CreatedToken {
            token,
            session: session_view(&session, false),
        })
    }

    /// Creates an account (the admin service and the operator decide who may).
    pub async fn create_account(&self, new: NewAccount) -> Result<User, ServiceError> {
        validate::username(&new.username)?;
        validate::password(&new.password)?;
        let display_name = validate::name(
            "display_name",
            new.display_name.as_deref().unwrap_or(&new.username),
        )?;
        let user = UserRecord {
            id: new_id()?,
            username: new.username,
            display_name,
            password_hash: password::hash(new.password).await?,
            admin: new.admin,
            deactivated: false,
            created_at: now_ms(),
        };
        match self.users.insert_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(ServiceError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        if user.admin {
            // An admin exists now: any pending setup link is dead.
            self.sessions.clear_setup_tokens().await?;
        }
        tracing::info!(user_id = %user.id, admin = user.admin, "user created");
        Ok(user_view(&user))
    }

    /// Deletes expired login sessions; returns how many. Expired tokens are refused
    /// anyway; this only keeps the table from growing.
    pub async fn sweep_expired_sessions(&self) -> Result<u64, ServiceError> {
        Ok(self.sessions.delete_expired_sessions(now_ms()).await?)
    }

    /// Whether the first admin still has to be created.
    pub async fn setup_status(&self) -> Result<SetupStatus, ServiceError> {
        Ok(SetupStatus {
            complete: self.users.has_admin().await?,
        })
    }

    /// When there is no admin, a new one-time setup token (replacing any older one);
    /// `None` when an admin exists.
    pub async fn issue_setup_token(&self) -> Result<Option<String>, ServiceError> {
        if self.users.has_admin().await? {
            return Ok(None);
        }
        let (token, hash) = new_token()?;
        self.sessions
            .replace_setup_token(&hash, now_ms() + SETUP_TOKEN_LIFETIME_MS)
            .await?;
        Ok(Some(token))
    }

    /// Creates the first admin with the setup token and logs them in.
    pub async fn setup(
        &self,
        req: SetupRequest,
        addr: Option<IpAddr>,
    ) -> Result<LoginResponse, ServiceError> {
        if let Some(addr) = addr {
            self.per_address
                .attempt(&address_key(addr), Instant::now())
                .map_err(limited)?;
        }
        if self.users.has_admin().await? {
            return Err(ServiceError::AlreadySetUp);
        }
        let valid = req.setup_token.len() <= MAX_TOKEN_LEN
            && self
                .sessions
                .setup_token_valid(&hash_token(&req.setup_token), now_ms())
                .await?;
        if !valid {
            return Err(ServiceError::InvalidSetupToken);
        }
        validate::username(&req.username)?;
        validate::password(&req.password)?;
        let display_name = validate::name(
            "display_name",
            req.display_name.as_deref().unwrap_or(&req.username),
        )?;
        let user = UserRecord {
            id: new_id()?,
            username: req.username,
            display_name,
            password_hash: password::hash(req.password).await?,
            admin: true,
            deactivated: false,
            created_at: now_ms(),
        };
        match self.users.insert_first_admin(&user).await {
            Ok(true) => {}
            Ok(false) => return Err(ServiceError::AlreadySetUp),
            Err(StoreError::Conflict) => return Err(ServiceError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        self.sessions.clear_setup_tokens().await?;
        tracing::info!(user_id = %user.id, "first admin created");
        let (token, session) = self.start_session(&user, SessionKind::Login, None).await?;
        Ok(LoginResponse {
            token,
            session: session_view(&session, true),
            user: user_view(&user),
        })
    }

    async fn start_session(
        &self,
        user: &UserRecord,
        kind: SessionKind,
        name: Option<String>,
    ) -> Result<(String, SessionRecord), ServiceError> {
        let (token, token_hash) = new_token()?;
        let now = now_ms();
        let session = SessionRecord {
            id: new_id()?,
            user_id: user.id.clone(),
            kind,
            name,
            token_hash,
            created_at: now,
            last_used_at: now,
            expires_at: (kind == SessionKind::Login).then_some(now + LOGIN_LIFETIME_MS),
        };
        self.sessions.insert_session(&session).await?;
        Ok((token, session))
    }
}

fn limited(wait: Duration) -> ServiceError {
    ServiceError::RateLimited {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// IPv6 clients usually hold a whole /64, so they are limited per /64.
fn address_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn store_kind(kind: TokenKind) -> SessionKind {
    match kind {
        TokenKind::Login => SessionKind::Login,
        TokenKind::PersonalAccess => SessionKind::PersonalAccess,
    }
}

fn session_view(s: &SessionRecord, current: bool) -> Session {
    Session {
        id: s.id.clone(),
        kind: match s.kind {
            SessionKind::Login => TokenKind::Login,
            SessionKind::PersonalAccess => TokenKind::PersonalAccess,
        },
        name: s.name.clone(),
        created_at: s.created_at,
        last_used_at: s.last_used_at,
        expires_at: s.expires_at,
        current,
    }
}

#[cfg(test)]
mod tests {
    use super::address_key;

    #[test]
    fn addresses_are_grouped_sensibly() {
        assert_eq!(address_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(
            address_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7"
        );
        assert_eq!(
            address_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            address_key("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
    }
}

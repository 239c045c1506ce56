//! C2 user management, and membership forced by an admin. Every method checks that the
//! actor is an admin (or the local operator) here, not in the HTTP layer, so no other
//! entry point can skip it.

use super::accounts::{AccountService, NewAccount};
use super::rooms::RoomService;
use super::{Actor, ServiceError, password, user_view, validate};
use crate::store::{SessionKind, SessionStore, UserStore};
use sotto_api::{CreateUserRequest, MemberList, User, UserList};
use std::sync::Arc;

/// User management and forced membership for admins.
pub struct AdminService {
    accounts: Arc<AccountService>,
    rooms: Arc<RoomService>,
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
}

/// Who forced a change: the admin's user id, or `operator` for the local CLI.
fn who(actor: &Actor) -> &str {
    match actor {
        Actor::User(p) => &p.user.id,
        Actor::Operator => "operator",
    }
}

impl AdminService {
    /// Over the account service (for creating users), the room service (for forced
    /// membership) and the stores.
    pub fn new(
        accounts: Arc<AccountService>,
        rooms: Arc<RoomService>,
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
    ) -> Self {
        Self {
            accounts,
            rooms,
            users,
            sessions,
        }
    }

    /// Any room's members, private rooms and DMs included, each with who forced them in.
    pub async fn room_members(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> Result<MemberList, ServiceError> {
        actor.require_admin()?;
        if self.rooms.store().room_by_id(room_id).await?.is_none() {
            return Err(ServiceError::NotFound("room"));
        }
        tracing::info!(admin = who(actor), room_id, "admin: room members listed");
        self.rooms.member_list(room_id).await
    }

    /// Adds a user to any room but a DM, without the room's say (an encrypted room's
    /// signed chain is left as it is, so clients show the member as not vouched for).
    pub async fn add_room_member(
        &self,
        actor: &Actor,
        room_id: &str,
        user_id: &str,
    ) -> Result<MemberList, ServiceError> {
        actor.require_admin()?;
        let members = self.rooms.force_add(who(actor), room_id, user_id).await?;
        tracing::info!(
            admin = who(actor),
            room_id,
            user_id,
            "admin: member forced in"
        );
        Ok(members)
    }

    /// Removes a member from any room but a DM, without the room's say; not the last
    /// owner while others remain.
    pub async fn remove_room_member(
        &self,
        actor: &Actor,
        room_id: &str,
        user_id: &str,
    ) -> Result<(), ServiceError> {
        actor.require_admin()?;
        self.rooms
            .force_remove(who(actor), room_id, user_id)
            .await?;
        tracing::info!(
            admin = who(actor),
            room_id,
            user_id,
            "admin: member forced out"
        );
        Ok(())
    }

    /// Every user.
    pub async fn list_users(&self, actor: &Actor) -> Result<UserList, ServiceError> {
        actor.require_admin()?;
        let users = self.users.list_users().await?;
        Ok(UserList {
            users: users.iter().map(user_view).collect(),
        })
    }

    /// Creates a user.
    pub async fn create_user(
        &self,
        actor: &Actor,
        req: CreateUserRequest,
    ) -> Result<User, ServiceError> {
        actor.require_admin()?;
        self.accounts
            .create_account(NewAccount {
                username: req.username,
                password: req.password,
                display_name: req.display_name,
                admin: req.admin,
            })
            .await
    }

    /// Deactivates (ending every session and token) or reactivates a user.
    /// Admins cannot deactivate themselves, so a workspace always keeps an active admin.
    pub async fn set_deactivated(
        &self,
        actor: &Actor,
        user_id: &str,
        deactivated: bool,
    ) -> Result<User, ServiceError> {
        actor.require_admin()?;
        if let Actor::User(p) = actor
            && deactivated
            && p.user.id == user_id
        {
            return Err(ServiceError::InvalidInput(
                "you cannot deactivate your own account".into(),
            ));
        }
        if !self.users.set_deactivated(user_id, deactivated).await? {
            return Err(ServiceError::NotFound("user"));
        }
        if deactivated {
            self.sessions.delete_sessions_of_user(user_id, None).await?;
        }
        tracing::info!(user_id, deactivated, "user activation changed");
        let user = self
            .users
            .user_by_id(user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        Ok(user_view(&user))
    }

    /// Sets a new login password and ends the user's password logins. Personal access
    /// tokens stay, so bots keep working; the user can revoke them.
    pub async fn reset_password(
        &self,
        actor: &Actor,
        user_id: &str,
        new_password: String,
    ) -> Result<(), ServiceError> {
        actor.require_admin()?;
        validate::password(&new_password)?;
        if self.users.user_by_id(user_id).await?.is_none() {
            return Err(ServiceError::NotFound("user"));
        }
        let hash = password::hash(new_password).await?;
        if !self.users.set_password_hash(user_id, &hash).await? {
            return Err(ServiceError::NotFound("user"));
        }
        self.sessions
            .delete_sessions_of_user(user_id, Some(SessionKind::Login))
            .await?;
        tracing::info!(user_id, "login password reset");
        Ok(())
    }
}

//! Other users by name: what a front end needs to address someone it knows only by their
//! login name (`@user`, `--members a,b`, `verify USER`).

use crate::api::seg;
use crate::client::Client;
use crate::error::{Error, Result};
use sotto_api::accounts::UserSummary;

impl Client {
    /// The user called `username` (any case). [`Error::Api`] with code `not_found` when
    /// there is none, or they are deactivated.
    pub async fn find_user(&self, username: &str) -> Result<UserSummary> {
        let name = username.strip_prefix('@').unwrap_or(username);
        if name.is_empty() {
            return Err(Error::Invalid("empty username".into()));
        }
        let found: UserSummary = self
            .api()
            .get(&format!("/api/v1/users/by-name/{}", seg(name)))
            .await?;
        if !found.username.eq_ignore_ascii_case(name) {
            return Err(Error::protocol("the server answered with another user"));
        }
        Ok(found)
    }
}

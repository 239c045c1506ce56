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

#[cfg(test)]
mod tests {
    use crate::{Client, Profile};
    use sotto_server::testing::TestServer;

    #[tokio::test]
    async fn users_are_found_by_name_in_any_case() {
        for server in TestServer::every_backend().await {
            let dir = tempfile::tempdir().unwrap();
            let ana = server.create_user("ana", "ana's long password").await;
            let bob = server.create_user("bob", "bob's long password").await;
            let profile = Profile::open(dir.path()).unwrap();
            let client = Client::login(profile, &server.url(), "bob", "bob's long password")
                .await
                .unwrap();
            let found = client.find_user("@ANA").await.unwrap();
            assert_eq!(
                (found.id.as_str(), found.username.as_str()),
                (ana.as_str(), "ana")
            );
            assert_eq!(client.find_user("bob").await.unwrap().id, bob);
            let missing = client.find_user("nobody").await.unwrap_err();
            assert_eq!(missing.code(), Some("not_found"), "{}", server.backend());
            assert!(client.find_user("@").await.is_err());
            server.finish().await;
        }
    }
}

//! A user of the end-to-end tests: created on the server, logged in on a fresh profile,
//! keys set up when asked, with what later steps of a test need (typed id, name, the
//! generated encryption password, the profile directory).

use sotto_client::sotto_crypto::{IdentityKeys, PublicBundle, UserId};
use sotto_client::{Client, Profile};
use sotto_server::testing::TestServer;
use std::path::Path;
use tempfile::TempDir;

/// Every such user's login password.
pub(crate) const PASSWORD: &str = "a login password long enough";

pub(crate) struct Person {
    pub(crate) client: Client,
    pub(crate) id: UserId,
    pub(crate) name: String,
    /// Empty without keys.
    pub(crate) encryption_password: String,
    pub(crate) dir: TempDir,
}

impl Person {
    /// The bearer token of the profile's session.
    pub(crate) fn token(&self) -> String {
        token(&self.client)
    }

    /// Their private keys, as this profile keeps them.
    pub(crate) fn keys(&self) -> IdentityKeys {
        self.client.profile().keys().unwrap().expect("keys here")
    }

    /// Their public bundle.
    pub(crate) fn bundle(&self) -> PublicBundle {
        self.keys().bundle(&self.id)
    }

    /// A second client on the same profile, as after a restart (nothing in memory).
    pub(crate) fn restarted(&self) -> Client {
        Client::open(Profile::open(self.dir.path().join("p")).unwrap()).unwrap()
    }

    /// A new device: a fresh profile logged in as this person, keys locked.
    pub(crate) async fn new_device(&self, server: &TestServer) -> (Client, TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let client = login(server, dir.path(), &self.name, PASSWORD).await;
        (client, dir)
    }
}

/// The bearer token of `client`'s session.
pub(crate) fn token(client: &Client) -> String {
    client.profile().login().unwrap().unwrap().token
}

/// Logs `name` in on the profile in `dir` (created if new).
pub(crate) async fn login(server: &TestServer, dir: &Path, name: &str, password: &str) -> Client {
    let profile = Profile::open(dir.join("p")).unwrap();
    Client::login(profile, &server.url(), name, password)
        .await
        .unwrap()
}

/// Creates `name` and logs them in on a fresh profile, with keys set up when `keys`.
pub(crate) async fn person(server: &TestServer, name: &str, keys: bool) -> Person {
    let id = server.create_user(name, PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    let client = login(server, dir.path(), name, PASSWORD).await;
    let encryption_password = if keys {
        client.e2e_setup().await.unwrap().as_str().to_owned()
    } else {
        String::new()
    };
    Person {
        client,
        id: UserId::new(id).unwrap(),
        name: name.to_owned(),
        encryption_password,
        dir,
    }
}

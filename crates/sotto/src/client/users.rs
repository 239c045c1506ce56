//! Naming users on the command line: a login name (`ana` or `@ana`), or the id of a user
//! whose key this profile has pinned (warnings show ids when no name is known).

use super::names::Names;
use sotto_client::Client;
use sotto_client::sotto_crypto::UserId;

/// A user named on the command line, found on the server.
pub(crate) struct Named {
    /// Their id.
    pub(crate) id: UserId,
    /// Their login name (the id when only the id is known).
    pub(crate) username: String,
}

/// The user `spec` names.
pub(crate) async fn resolve_user(client: &Client, spec: &str) -> anyhow::Result<Named> {
    let name = spec.strip_prefix('@').unwrap_or(spec);
    match client.find_user(name).await {
        Ok(found) => {
            Names::remember(client.profile(), &found.id, &found.username);
            let id = UserId::new(found.id)
                .map_err(|_| anyhow::anyhow!("the server gave an invalid user id"))?;
            Ok(Named {
                id,
                username: found.username,
            })
        }
        Err(e) if e.code() == Some("not_found") => {
            // A pinned contact's id, as a key-change warning may have shown it.
            if let Ok(id) = UserId::new(name.to_owned())
                && client.profile().pins()?.get(&id).is_some()
            {
                let username = Names::load(client.profile())
                    .name_of(name)
                    .unwrap_or(name)
                    .to_owned();
                return Ok(Named { id, username });
            }
            Err(anyhow::anyhow!(
                "no user named {}",
                super::output::sanitize(name)
            ))
        }
        Err(e) => Err(e.into()),
    }
}

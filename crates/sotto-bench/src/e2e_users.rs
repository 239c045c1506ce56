//! End-to-end encryption keys for bench users: real identity keys and a real key backup
//! from `sotto-crypto`, published through `POST /api/v1/me/keys` (docs/api.md, "End-to-end
//! encryption keys"). The private keys stay in the bench's memory, for opening what the
//! scenario delivers.

use crate::client::Http;
use crate::setup::{BenchUser, turn_on};
use crate::target::Target;
use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sotto_crypto::{EncryptionPassword, IdentityKeys, KdfParams, KeyBackup, PublicBundle, UserId};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// The backup's Argon2 parameters: the protocol's floor, the cheapest the server accepts
/// (it refuses anything below, docs/protocol.md §3.2). The default costs about ten times
/// as much per user and only slows setting up; no scenario measures unlocking.
pub(crate) const BACKUP_PARAMS: KdfParams = KdfParams::FLOOR;

/// A bench user's published keys and the private keys behind them.
#[derive(Clone)]
pub(crate) struct E2eUser {
    pub(crate) user: UserId,
    pub(crate) keys: Arc<IdentityKeys>,
    pub(crate) bundle: PublicBundle,
}

/// Turns end-to-end encryption on, then makes and publishes keys for every one of
/// `users` (in the same order), key generation and backup sealing spread over the
/// cores. Prints how long it took.
pub(crate) async fn publish_keys(
    target: &Target,
    users: &[BenchUser],
) -> anyhow::Result<Vec<E2eUser>> {
    // Publishing keys and encrypted rooms need it.
    turn_on(target, "e2e.enabled").await?;
    let started = Instant::now();
    let http = Arc::new(Http::new(target.http.addr()));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let gate = Arc::new(Semaphore::new(cores));
    let mut tasks = Vec::with_capacity(users.len());
    for u in users {
        let (http, gate) = (http.clone(), gate.clone());
        let (id, token) = (u.id.clone(), u.token.clone());
        tasks.push(tokio::spawn(async move {
            let user = UserId::new(id.clone()).with_context(|| format!("user id {id}"))?;
            let permit = gate.acquire_owned().await?;
            let made = {
                let user = user.clone();
                tokio::task::spawn_blocking(move || make_keys(&user)).await??
            };
            drop(permit);
            let (keys, bundle, backup) = made;
            let body = serde_json::to_vec(&sotto_api::keys::PublishKeysRequest {
                bundle: B64.encode(bundle.encode()),
                backup: B64.encode(backup.encode()),
            })?;
            let answer = http
                .call("POST", "/api/v1/me/keys", Some(&token), Some(body))
                .await?;
            if answer.status != 201 {
                anyhow::bail!(
                    "publishing keys of {user}: HTTP {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
                );
            }
            anyhow::Ok(E2eUser {
                user,
                keys: Arc::new(keys),
                bundle,
            })
        }));
    }
    let mut out = Vec::with_capacity(users.len());
    for (i, t) in tasks.into_iter().enumerate() {
        out.push(t.await??);
        if (i + 1) % 500 == 0 {
            eprintln!("  {} users have keys", i + 1);
        }
    }
    eprintln!(
        "made and published keys of {} users in {:.1} s (backup Argon2 m={} KiB t={} p={})",
        users.len(),
        started.elapsed().as_secs_f64(),
        BACKUP_PARAMS.m_kib,
        BACKUP_PARAMS.t,
        BACKUP_PARAMS.p
    );
    Ok(out)
}

/// Identity keys, their bundle, and a backup sealed under a random encryption password
/// that is then forgotten (the bench never unlocks a backup).
fn make_keys(user: &UserId) -> anyhow::Result<(IdentityKeys, PublicBundle, KeyBackup)> {
    let mut rng = sotto_crypto::os_rng();
    let keys = IdentityKeys::generate(&mut rng);
    let password = EncryptionPassword::generate(&mut rng);
    let backup = KeyBackup::create(&keys, user, &password, BACKUP_PARAMS, &mut rng)
        .context("sealing the key backup")?;
    let bundle = keys.bundle(user);
    Ok((keys, bundle, backup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_keys_publish_a_valid_bundle_and_an_acceptable_backup() {
        let user = UserId::new("u-test").unwrap();
        let (keys, bundle, backup) = make_keys(&user).unwrap();
        assert!(keys.matches(&bundle));
        let decoded = PublicBundle::decode(&bundle.encode()).unwrap();
        assert_eq!(decoded.user(), &user);
        let backup = KeyBackup::decode(&backup.encode()).unwrap();
        // The server refuses parameters outside the floor and ceiling.
        backup.params().check().unwrap();
        assert_eq!(backup.params(), BACKUP_PARAMS);
    }
}

//! Argon2id login-password hashing, always off the async runtime: one hash costs tens
//! of milliseconds of CPU and 19 MiB of memory.
//!
//! At most one hash per core runs at a time; the others wait their turn. Unbounded, a
//! burst of logins or account creations would start a blocking thread and take 19 MiB
//! each (hundreds of threads and gigabytes for a burst of hundreds), without finishing
//! any sooner, as the cores are the limit either way.

use super::ServiceError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::LazyLock;
use tokio::sync::Semaphore;

static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Runs `work` on the blocking pool once a core is free for it.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let _turn = HASHING
        .acquire()
        .await
        .map_err(|e| ServiceError::Internal(format!("hashing queue closed: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServiceError::Internal(format!("hashing task failed: {e}")))?
}

/// Hashes `password` into a PHC string with a fresh random salt.
pub async fn hash(password: String) -> Result<String, ServiceError> {
    off_runtime(move || hash_blocking(&password)).await
}

/// Whether `password` matches the PHC string `phc`. A malformed stored hash is an
/// internal error, not a wrong password.
pub async fn verify(password: String, phc: String) -> Result<bool, ServiceError> {
    off_runtime(move || {
        match Argon2::default().verify_password(password.as_bytes(), phc.as_str()) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(ServiceError::Internal(format!(
                "stored password hash unusable: {e}"
            ))),
        }
    })
    .await
}

pub(crate) fn hash_blocking(password: &str) -> Result<String, ServiceError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ServiceError::Internal(format!("OS random: {e}")))?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let a = super::hash("correct horse".into()).await.unwrap();
        let b = super::hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(
            super::verify("correct horse".into(), a.clone())
                .await
                .unwrap()
        );
        assert!(!super::verify("wrong horse".into(), a).await.unwrap());
        assert!(
            super::verify("x".into(), "not a hash".into())
                .await
                .is_err()
        );
    }
}

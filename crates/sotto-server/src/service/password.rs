//! Argon2id login-password hashing, always off the async runtime: one hash costs tens
//! of milliseconds of CPU and 19 MiB of memory.
//!
//! At most one hash per core runs at a time; the others wait their turn. Unbounded, a
//! burst of logins or account creations would start a blocking thread and take 19 MiB
//! each (hundreds of threads and gigabytes for a burst of hundreds), without finishing
//! any sooner, as the cores are the limit either way.

use super::ServiceError;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{LazyLock, Mutex, PoisonError};
use tokio::sync::Semaphore;

static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Argon2 working memory, kept for the next hash: one per hash running, so at most one
/// per core. Allocated afresh for every hash, 19 MiB at a time, it is not given back: the
/// C allocator raises its threshold for returning large blocks after the first, and the
/// server grew by hundreds of MiB after a few dozen logins.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

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

/// Argon2 of `password` into `out`, in kept memory, wiped afterwards.
fn argon2(
    argon: &Argon2<'_>,
    params: &Params,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), ServiceError> {
    let lock = || MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    let mut memory = lock().pop().unwrap_or_default();
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::new());
    }
    let done = argon.hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        out,
        &mut memory[..params.block_count()],
    );
    memory.fill(Block::new());
    lock().push(memory);
    done.map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
}

/// Hashes `password` into a PHC string with a fresh random salt.
pub async fn hash(password: String) -> Result<String, ServiceError> {
    off_runtime(move || hash_blocking(&password)).await
}

/// Whether `password` matches the PHC string `phc`. A malformed stored hash is an
/// internal error, not a wrong password.
pub async fn verify(password: String, phc: String) -> Result<bool, ServiceError> {
    off_runtime(move || verify_blocking(&password, &phc)).await
}

pub(crate) fn hash_blocking(password: &str) -> Result<String, ServiceError> {
    let internal = |e: &dyn std::fmt::Display| ServiceError::Internal(format!("argon2: {e}"));
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ServiceError::Internal(format!("OS random: {e}")))?;
    let params = Params::DEFAULT;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2(&argon, &params, password, &salt, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| internal(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| internal(&e))?),
        hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
    };
    Ok(phc.to_string())
}

fn verify_blocking(password: &str, phc: &str) -> Result<bool, ServiceError> {
    let unusable = |e: &dyn std::fmt::Display| {
        ServiceError::Internal(format!("stored password hash unusable: {e}"))
    };
    let stored = PasswordHash::new(phc).map_err(|e| unusable(&e))?;
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).map_err(|e| unusable(&e))?;
    let version = match stored.version {
        Some(v) => Version::try_from(v).map_err(|e| unusable(&e))?,
        None => Version::default(),
    };
    let params = Params::try_from(&stored).map_err(|e| unusable(&e))?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(unusable(&"no salt or no hash"));
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    argon2(&argon, &params, password, salt, &mut out)?;
    // Output compares in constant time.
    Ok(Output::new(&out).map_err(|e| unusable(&e))? == *expected)
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

    /// Hashes stored before the working memory was kept (made by the library's own
    /// hasher) still verify, and new ones are what that hasher makes and checks.
    #[tokio::test]
    async fn hashes_are_the_standard_phc_argon2id() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = [7u8; 16];
        let old = argon2::Argon2::default()
            .hash_password_with_salt(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(
            super::verify("correct horse".into(), old.clone())
                .await
                .unwrap()
        );
        assert!(!super::verify("correct horsf".into(), old).await.unwrap());
        let new = super::hash("correct horse".into()).await.unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"correct horse", new.as_str())
                .is_ok()
        );
        assert!(new.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{new}");
    }
}

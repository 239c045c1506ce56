//! A profile: one user's client state on one machine, in one directory (mode 0700):
//!
//! | File | What | Secret |
//! |---|---|---|
//! | `profile.json` | server URL, user id and name, session token, accepted key-backup parameters | token |
//! | `keys` | the unlocked private keys (docs/protocol.md §2), only after unlocking | yes |
//! | `pins` | pinned identity keys of contacts (§4.3) | no |
//! | `seen` | accepted message ids per room (§7.7) | no |
//!
//! Every file is written whole to a temporary file (mode 0600), synced and renamed over
//! the old one, so a crash leaves the old or the new version, never a mix.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sotto_crypto::{DecodeError, IdentityKeys, KdfParams, PinStore, SeenMessages};
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What `profile.json` holds.
#[derive(Clone, Serialize, Deserialize)]
pub struct Login {
    /// The server's base URL.
    pub server: String,
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub username: String,
    /// The session token.
    pub token: String,
    /// The strongest key-backup parameters this profile accepted (no downgrade, §3.2):
    /// `[m_kib, t, p]`.
    #[serde(default)]
    pub accepted_kdf: Option<[u32; 3]>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("server", &self.server)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// The accepted parameters, if any.
    pub fn accepted_params(&self) -> Option<KdfParams> {
        self.accepted_kdf
            .map(|[m_kib, t, p]| KdfParams { m_kib, t, p })
    }
}

/// One profile directory.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
}

impl Profile {
    /// The profile in `dir`, created (mode 0700) if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        create_private_dir(&dir).map_err(Error::storage(format!(
            "creating profile {}",
            dir.display()
        )))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stored login, or `None` when logged out.
    pub fn login(&self) -> Result<Option<Login>> {
        let Some(bytes) = self.read("profile.json")? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.corrupt("profile.json", e))
    }

    /// Stores the login.
    pub fn save_login(&self, login: &Login) -> Result<()> {
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(login).map_err(|e| self.corrupt("profile.json", e))?,
        );
        self.write("profile.json", &json)
    }

    /// The unlocked private keys, if this device unlocked them.
    pub fn keys(&self) -> Result<Option<IdentityKeys>> {
        let Some(bytes) = self.read("keys")? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        IdentityKeys::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| self.corrupt("keys", e))
    }

    /// Stores the unlocked private keys (mode 0600).
    pub fn save_keys(&self, keys: &IdentityKeys) -> Result<()> {
        self.write("keys", &keys.to_bytes())
    }

    /// The pinned keys (empty when none yet).
    pub fn pins(&self) -> Result<PinStore> {
        match self.read("pins")? {
            None => Ok(PinStore::new()),
            Some(bytes) => PinStore::decode(&bytes).map_err(|e| self.corrupt("pins", e)),
        }
    }

    /// Stores the pinned keys.
    pub fn save_pins(&self, pins: &PinStore) -> Result<()> {
        self.write("pins", &pins.encode())
    }

    /// The accepted message ids (empty when none yet).
    pub fn seen(&self) -> Result<SeenMessages> {
        match self.read("seen")? {
            None => Ok(SeenMessages::new()),
            Some(bytes) => SeenMessages::decode(&bytes).map_err(|e| self.corrupt("seen", e)),
        }
    }

    /// Stores the accepted message ids.
    pub fn save_seen(&self, seen: &SeenMessages) -> Result<()> {
        self.write("seen", &seen.encode())
    }

    /// Forgets the login and the unlocked keys (`sotto logout`); pins and seen ids stay,
    /// so a later login still notices changed keys and replayed messages.
    pub fn clear_login(&self) -> Result<()> {
        self.remove("keys")?;
        self.remove("profile.json")
    }

    /// Forgets the unlocked keys only (after a key reset).
    pub fn clear_keys(&self) -> Result<()> {
        self.remove("keys")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::storage(format!(
                "reading {}",
                self.path(name).display()
            ))(e)),
        }
    }

    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(name);
        write_private(&self.dir, &path, bytes)
            .map_err(Error::storage(format!("writing {}", path.display())))
    }

    fn remove(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::storage(format!("removing {}", path.display()))(e)),
        }
    }

    fn corrupt(&self, name: &str, e: impl std::fmt::Display) -> Error {
        Error::Storage {
            what: format!("reading {}", self.path(name).display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        }
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::protocol(e)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to `path` atomically, readable by the owner only.
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_and_keys_round_trip_in_owner_only_files() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::open(dir.path().join("p")).unwrap();
        assert!(profile.login().unwrap().is_none());
        assert!(profile.keys().unwrap().is_none());
        let login = Login {
            server: "http://127.0.0.1:1".into(),
            user_id: "u1".into(),
            username: "ana".into(),
            token: "secret-token".into(),
            accepted_kdf: Some([65536, 3, 1]),
        };
        profile.save_login(&login).unwrap();
        let keys = IdentityKeys::generate(&mut sotto_crypto::os_rng());
        profile.save_keys(&keys).unwrap();
        let back = profile.login().unwrap().unwrap();
        assert_eq!(back.token, "secret-token");
        assert_eq!(back.accepted_params(), Some(KdfParams::DEFAULT));
        assert_eq!(
            profile.keys().unwrap().unwrap().identity_public(),
            keys.identity_public()
        );
        assert!(!format!("{back:?}").contains("secret-token"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for name in ["profile.json", "keys"] {
                let mode = std::fs::metadata(profile.path(name))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
            let mode = std::fs::metadata(profile.dir())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        profile.clear_login().unwrap();
        assert!(profile.login().unwrap().is_none());
        assert!(profile.keys().unwrap().is_none());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::open(dir.path()).unwrap();
        std::fs::write(profile.path("pins"), b"\x01\xff").unwrap();
        std::fs::write(profile.path("keys"), b"short").unwrap();
        std::fs::write(profile.path("profile.json"), b"{").unwrap();
        assert!(matches!(profile.pins(), Err(Error::Storage { .. })));
        assert!(matches!(profile.keys(), Err(Error::Storage { .. })));
        assert!(matches!(profile.login(), Err(Error::Storage { .. })));
    }
}

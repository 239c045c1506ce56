//! The login names of user ids this profile has looked up, so warnings can name people
//! (the server offers lookups by name only). A cache, not a source of truth: a missing
//! or damaged file just means ids are shown instead of names.

use sotto_client::Profile;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

const FILE: &str = "names.json";

/// User id → login name.
pub(crate) struct Names {
    path: PathBuf,
    map: BTreeMap<String, String>,
}

impl Names {
    /// The names known to `profile` (none if the file is missing or unreadable).
    pub(crate) fn load(profile: &Profile) -> Self {
        let path = profile.dir().join(FILE);
        let map = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self { path, map }
    }

    /// The name of `user_id`, if known.
    pub(crate) fn name_of(&self, user_id: &str) -> Option<&str> {
        self.map.get(user_id).map(String::as_str)
    }

    /// Remembers a name; the file is rewritten only when something changed.
    pub(crate) fn remember(profile: &Profile, user_id: &str, username: &str) {
        let mut names = Self::load(profile);
        if names.name_of(user_id) == Some(username) {
            return;
        }
        names.map.insert(user_id.to_owned(), username.to_owned());
        // A cache: failing to write it must not fail the command.
        let _ = names.save();
    }

    fn save(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&self.map)?;
        let tmp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

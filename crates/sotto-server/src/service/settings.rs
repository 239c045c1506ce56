//! C2 workspace settings: typed keys with defaults and per-key validation. Stored as
//! key → JSON so adding a key needs no migration; only keys that were set are stored.

use super::{Actor, ServiceError};
use crate::store::SettingsStore;
use serde_json::{Map, Value};
use sotto_api::{Settings, SettingsPatch};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long the services' own checks may use settings read earlier: a change reaches
/// every check, on every node, within this time.
pub const SETTINGS_CACHE: Duration = Duration::from_secs(1);

/// Largest accepted `files.max_size_bytes`: 10 GiB.
pub const MAX_FILE_SIZE_LIMIT: u64 = 10 * 1024 * 1024 * 1024;
/// Accepted `rooms.max_group_dm_members`.
pub const GROUP_DM_MEMBERS: std::ops::RangeInclusive<u32> = 3..=100;

/// Reads and changes workspace settings.
pub struct SettingsService {
    store: Arc<dyn SettingsStore>,
    /// The settings last read, and when: checks made per OTR frame need no query.
    cached: Mutex<Option<(Instant, Settings)>>,
}

impl SettingsService {
    /// Over `store`.
    pub fn new(store: Arc<dyn SettingsStore>) -> Self {
        Self {
            store,
            cached: Mutex::new(None),
        }
    }

    /// The current settings; any authenticated actor may read them.
    pub async fn get(&self, _actor: &Actor) -> Result<Settings, ServiceError> {
        self.load().await
    }

    /// Replaces every setting (admins only).
    pub async fn replace(&self, actor: &Actor, all: Settings) -> Result<Settings, ServiceError> {
        self.update(actor, all.into()).await
    }

    /// Changes the given settings (admins only); nothing changes if any value is invalid.
    pub async fn update(
        &self,
        actor: &Actor,
        patch: SettingsPatch,
    ) -> Result<Settings, ServiceError> {
        actor.require_admin()?;
        validate(&patch)?;
        let Value::Object(fields) = to_json(&patch)? else {
            return Err(ServiceError::Internal(
                "settings patch is not an object".into(),
            ));
        };
        let entries: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        self.store.save_settings(&entries).await?;
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        tracing::info!(?keys, "settings changed");
        self.load().await
    }

    /// The settings for the services' own checks: read at most [`SETTINGS_CACHE`] ago.
    pub(crate) async fn current(&self) -> Result<Settings, ServiceError> {
        let cached = self.cache().clone();
        match cached {
            Some((at, settings)) if at.elapsed() < SETTINGS_CACHE => Ok(settings),
            _ => self.load().await,
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Settings)>> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the settings from the store, and remembers them.
    async fn load(&self) -> Result<Settings, ServiceError> {
        let read_at = Instant::now();
        let Value::Object(mut all) = to_json(&Settings::default())? else {
            return Err(ServiceError::Internal("settings are not an object".into()));
        };
        for (key, raw) in self.store.load_settings().await? {
            // Keys from a newer or older version are ignored rather than failing reads.
            if let Some(slot) = all.get_mut(&key) {
                *slot = serde_json::from_str(&raw)
                    .map_err(|e| ServiceError::Internal(format!("stored setting {key}: {e}")))?;
            }
        }
        let settings: Settings =
            serde_json::from_value(Value::Object(all as Map<String, Value>))
                .map_err(|e| ServiceError::Internal(format!("stored settings: {e}")))?;
        *self.cache() = Some((read_at, settings.clone()));
        Ok(settings)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, ServiceError> {
    serde_json::to_value(v).map_err(|e| ServiceError::Internal(format!("settings: {e}")))
}

fn validate(p: &SettingsPatch) -> Result<(), ServiceError> {
    if let Some(size) = p.files_max_size_bytes
        && (size == 0 || size > MAX_FILE_SIZE_LIMIT)
    {
        return Err(ServiceError::InvalidInput(format!(
            "files.max_size_bytes: 1 to {MAX_FILE_SIZE_LIMIT}"
        )));
    }
    if let Some(n) = p.rooms_max_group_dm_members
        && !GROUP_DM_MEMBERS.contains(&n)
    {
        return Err(ServiceError::InvalidInput(format!(
            "rooms.max_group_dm_members: {} to {}",
            GROUP_DM_MEMBERS.start(),
            GROUP_DM_MEMBERS.end()
        )));
    }
    Ok(())
}

//! Workspace settings: a fixed, typed set of keys. Every logged-in client can read them
//! (clients need them to offer the right options); only admins change them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// All workspace settings. `PUT /api/v1/settings` takes every key; `PATCH` takes some.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// End-to-end encryption is available in this workspace. Default `false`: an admin
    /// turns it on.
    #[serde(rename = "e2e.enabled")]
    pub e2e_enabled: bool,
    /// New direct messages are encrypted by default. Default `true`.
    #[serde(rename = "e2e.default_direct")]
    pub e2e_default_direct: bool,
    /// New private rooms are encrypted by default. Default `true`.
    #[serde(rename = "e2e.default_private")]
    pub e2e_default_private: bool,
    /// Files in encrypted rooms are encrypted too. Default `true`.
    #[serde(rename = "e2e.encrypt_files")]
    pub e2e_encrypt_files: bool,
    /// Off-the-record conversations are offered. Default `false`: an admin turns it on.
    #[serde(rename = "otr.enabled")]
    pub otr_enabled: bool,
    /// Largest file upload in bytes, 1 byte to 10 GiB. Default 100 MiB.
    #[serde(rename = "files.max_size_bytes")]
    pub files_max_size_bytes: u64,
    /// Most people in a multi-person direct message, 3–100. Default 30.
    #[serde(rename = "rooms.max_group_dm_members")]
    pub rooms_max_group_dm_members: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            e2e_enabled: false,
            e2e_default_direct: true,
            e2e_default_private: true,
            e2e_encrypt_files: true,
            otr_enabled: false,
            files_max_size_bytes: 100 * 1024 * 1024,
            rooms_max_group_dm_members: 30,
        }
    }
}

/// Some workspace settings; absent keys keep their value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// See [`Settings::e2e_enabled`].
    #[serde(
        rename = "e2e.enabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub e2e_enabled: Option<bool>,
    /// See [`Settings::e2e_default_direct`].
    #[serde(
        rename = "e2e.default_direct",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub e2e_default_direct: Option<bool>,
    /// See [`Settings::e2e_default_private`].
    #[serde(
        rename = "e2e.default_private",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub e2e_default_private: Option<bool>,
    /// See [`Settings::e2e_encrypt_files`].
    #[serde(
        rename = "e2e.encrypt_files",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub e2e_encrypt_files: Option<bool>,
    /// See [`Settings::otr_enabled`].
    #[serde(
        rename = "otr.enabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub otr_enabled: Option<bool>,
    /// See [`Settings::files_max_size_bytes`].
    #[serde(
        rename = "files.max_size_bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub files_max_size_bytes: Option<u64>,
    /// See [`Settings::rooms_max_group_dm_members`].
    #[serde(
        rename = "rooms.max_group_dm_members",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rooms_max_group_dm_members: Option<u32>,
}

impl From<Settings> for SettingsPatch {
    fn from(s: Settings) -> Self {
        Self {
            e2e_enabled: Some(s.e2e_enabled),
            e2e_default_direct: Some(s.e2e_default_direct),
            e2e_default_private: Some(s.e2e_default_private),
            e2e_encrypt_files: Some(s.e2e_encrypt_files),
            otr_enabled: Some(s.otr_enabled),
            files_max_size_bytes: Some(s.files_max_size_bytes),
            rooms_max_group_dm_members: Some(s.rooms_max_group_dm_members),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_use_dotted_keys_and_refuse_unknown_ones() {
        let json = serde_json::to_value(Settings::default()).unwrap();
        assert_eq!(json["e2e.enabled"], false);
        assert_eq!(json["rooms.max_group_dm_members"], 30);
        let patch: SettingsPatch = serde_json::from_str(r#"{"otr.enabled": false}"#).unwrap();
        assert_eq!(patch.otr_enabled, Some(false));
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"otr.enable": false}"#).is_err());
        let all: SettingsPatch = Settings::default().into();
        assert_eq!(serde_json::to_value(all).unwrap(), json);
    }
}

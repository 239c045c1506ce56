//! Which profile directory a command uses: `--profile DIR`, else `SOTTO_PROFILE`, else
//! `default` under `$XDG_CONFIG_HOME/sotto` (or `~/.config/sotto`).

use crate::cli::ProfileArgs;
use anyhow::Context;
use sotto_client::{Client, Profile};
use std::path::{Path, PathBuf};

/// The profile directory for these arguments (clap has already read `SOTTO_PROFILE`).
pub(crate) fn profile_dir(args: &ProfileArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.profile {
        return Ok(dir.clone());
    }
    default_dir(
        std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// `default` under the configuration directory. An empty or relative `XDG_CONFIG_HOME`
/// is ignored, as the XDG spec says.
fn default_dir(xdg: Option<PathBuf>, home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let config = match xdg.filter(|p| p.is_absolute()) {
        Some(dir) => dir,
        None => home
            .filter(|p| !p.as_os_str().is_empty())
            .map(|h| h.join(".config"))
            .context("no profile directory: set --profile, SOTTO_PROFILE or HOME")?,
    };
    Ok(config.join("sotto").join("default"))
}

/// The profile (created if missing).
pub(crate) fn open_profile(args: &ProfileArgs) -> anyhow::Result<Profile> {
    let dir = profile_dir(args)?;
    Profile::open(&dir).with_context(|| format!("opening profile {}", show(&dir)))
}

/// The logged-in client of the profile.
pub(crate) fn open_client(args: &ProfileArgs) -> anyhow::Result<Client> {
    Ok(Client::open(open_profile(args)?)?)
}

fn show(dir: &Path) -> String {
    crate::client::output::sanitize(&dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::default_dir;
    use std::path::PathBuf;

    #[test]
    fn default_follows_xdg_then_home() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            default_dir(p("/x/cfg"), p("/home/a")).unwrap(),
            PathBuf::from("/x/cfg/sotto/default")
        );
        assert_eq!(
            default_dir(p("relative"), p("/home/a")).unwrap(),
            PathBuf::from("/home/a/.config/sotto/default")
        );
        assert_eq!(
            default_dir(None, p("/home/a")).unwrap(),
            PathBuf::from("/home/a/.config/sotto/default")
        );
        assert!(default_dir(None, None).is_err());
    }
}

//! The load pipeline: read the file (trusted, bounded, UTF-8), parse it as
//! TOML into the typed settings, overlay the module arguments, and check the
//! rules that span several keys.

use std::path::Path;

use serde::Deserialize;
use toml::de::DeTable;

use super::args::Override;
use super::error::ConfigError;
use super::locate::{self, position};
use super::settings::Config;
#[cfg(doc)]
use super::{parse_module_args, ARGS_ORIGIN};
use crate::fsutil::{self, Access, FileTrust};

/// The largest configuration file accepted; the annotated default is a few KiB.
pub const MAX_CONFIG_SIZE: u64 = 64 * 1024;

impl Config {
    /// Reads the configuration at `path` and overlays `overrides` (the
    /// settings of the module arguments, as [`parse_module_args`] returns
    /// them).
    ///
    /// The file must be a regular file owned by the trusted uid, writable by
    /// nobody else, in a directory nobody else can write, at most
    /// [`MAX_CONFIG_SIZE`] bytes. A missing file is an error: the shells
    /// decide what that means, and the module fails closed.
    ///
    /// # Errors
    /// [`ConfigError::File`] if the file is missing or refused;
    /// [`ConfigError::Invalid`] for anything it or the overrides say wrongly.
    pub fn load(
        path: &Path,
        trust: FileTrust,
        overrides: &[Override],
    ) -> Result<Config, ConfigError> {
        let bytes = fsutil::read_trusted(path, trust, Access::WorldReadable, MAX_CONFIG_SIZE)?;
        let origin = path.display().to_string();
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let (line, column) = position(&String::from_utf8_lossy(&bytes), e.valid_up_to());
            ConfigError::Invalid {
                origin: origin.clone(),
                line: Some(line),
                column: Some(column),
                key: None,
                message: "the file is not valid UTF-8; save it as UTF-8".to_owned(),
            }
        })?;
        Self::parse_with_overrides(text, &origin, overrides)
    }

    /// Parses configuration text; `origin` names it in errors. No filesystem.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the line, column and key at fault.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::parse_with_overrides(text, origin, &[])
    }

    /// Parses configuration text and overlays module-argument `overrides`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with `origin` for problems in the text, or
    /// [`ARGS_ORIGIN`] for a rule across keys that an override breaks.
    pub fn parse_with_overrides(
        text: &str,
        origin: &str,
        overrides: &[Override],
    ) -> Result<Config, ConfigError> {
        let document = DeTable::parse(text).map_err(|e| locate::syntax_error(text, origin, &e))?;
        let mut config = Config::deserialize(toml::de::Deserializer::from(document))
            .map_err(|e| locate::setting_error(text, origin, &e))?;
        // The overrides were typed when the arguments were parsed; each
        // replaces one field.
        for o in overrides {
            o.apply(&mut config);
        }
        config.check_consistency().map_err(|problem| {
            if let Some(key) = problem
                .keys
                .iter()
                .find(|k| overrides.iter().any(|o| o.key() == **k))
            {
                return ConfigError::args(Some((*key).to_owned()), problem.message);
            }
            let key = problem.keys[0];
            let (line, column) = locate::key_position(text, key).unzip();
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                key: Some(key.to_owned()),
                message: problem.message,
            }
        })?;
        Ok(config)
    }

    /// Rules that span several keys, checked after the overlay.
    fn check_consistency(&self) -> Result<(), Problem> {
        let t = &self.throttle;
        if t.backoff_max_seconds < t.backoff_seconds {
            return Err(Problem {
                keys: &["throttle.backoff_max_seconds", "throttle.backoff_seconds"],
                message: format!(
                    "{} is below throttle.backoff_seconds ({}); the ceiling must be at least the first delay",
                    t.backoff_max_seconds, t.backoff_seconds
                ),
            });
        }
        if t.lockout_after <= t.backoff_after {
            return Err(Problem {
                keys: &["throttle.lockout_after", "throttle.backoff_after"],
                message: format!(
                    "{} must be greater than throttle.backoff_after ({}), or back-off would never come before the lockout",
                    t.lockout_after, t.backoff_after
                ),
            });
        }
        if let Some(group) = self
            .groups
            .exempt
            .iter()
            .find(|g| self.groups.require.contains(g))
        {
            return Err(Problem {
                keys: &["groups.exempt", "groups.require"],
                message: format!(
                    "group `{group}` is also in groups.require; a group cannot be both required and exempt, remove it from one list"
                ),
            });
        }
        Ok(())
    }
}

/// A rule across keys was broken; `keys[0]` is the one to blame by default.
struct Problem {
    keys: &'static [&'static str],
    message: String,
}

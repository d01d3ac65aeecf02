//! What goes wrong with a configuration, said for the administrator.

use std::fmt;

use super::ARGS_ORIGIN;
use crate::fsutil::FileError;

/// The configuration could not be used. The `Display` text is written for
/// the administrator who has to fix it.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read, or failed its owner, mode or size checks.
    File(FileError),
    /// The file or the module arguments say something invalid.
    Invalid {
        /// The file path, or [`ARGS_ORIGIN`].
        origin: String,
        /// 1-based line, when the problem sits on one line of the file.
        line: Option<usize>,
        /// 1-based column in characters, with `line`.
        column: Option<usize>,
        /// The dotted key, e.g. `policy.not_configured`, when known.
        key: Option<String>,
        /// What is wrong, and what to do about it.
        message: String,
    },
}

impl ConfigError {
    pub(super) fn invalid(origin: &str, key: Option<String>, message: String) -> Self {
        ConfigError::Invalid {
            origin: origin.to_owned(),
            line: None,
            column: None,
            key,
            message,
        }
    }

    pub(super) fn args(key: Option<String>, message: String) -> Self {
        Self::invalid(ARGS_ORIGIN, key, message)
    }

    /// The dotted key the error is about, if known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => key.as_deref(),
            ConfigError::File(_) => None,
        }
    }

    /// The 1-based line in the file, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::File(_) => None,
        }
    }

    /// The file path or [`ARGS_ORIGIN`] for an invalid setting.
    pub fn origin(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { origin, .. } => Some(origin),
            ConfigError::File(_) => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::File(e) if e.is_missing() => write!(
                f,
                "{e}; pam_mfa cannot work without its configuration file: install it (an empty file selects every default)"
            ),
            ConfigError::File(e) => write!(f, "pam_mfa configuration refused: {e}"),
            ConfigError::Invalid {
                origin,
                line,
                column,
                key,
                message,
            } => {
                f.write_str(origin)?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                    if let Some(column) = column {
                        write!(f, ":{column}")?;
                    }
                }
                if let Some(key) = key {
                    write!(f, ": {key}")?;
                }
                write!(f, ": {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::File(e) => Some(e),
            ConfigError::Invalid { .. } => None,
        }
    }
}

impl From<FileError> for ConfigError {
    fn from(e: FileError) -> Self {
        ConfigError::File(e)
    }
}

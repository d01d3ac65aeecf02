//! What can go wrong, and the exit status each failure gives.

use std::fmt;
use std::io;

use mfa_core::admin::AdminError;
use mfa_core::config::ConfigError;
use mfa_core::keys::KeyError;
use mfa_core::store::StoreError;

/// The operation failed: configuration, master key, record store or I/O.
pub const EXIT_FAILED: u8 = 1;
/// Bad arguments or an unknown user (clap uses 2 for its own usage errors).
pub const EXIT_USAGE: u8 = 2;
/// The command must run as root.
pub const EXIT_NOT_PERMITTED: u8 = 3;
/// Refused: already exists, already (or not) enrolled, wrong code.
pub const EXIT_REFUSED: u8 = 4;

/// A command failed. `Display` is what the administrator reads.
#[derive(Debug)]
pub enum CliError {
    /// The command needs root.
    NotRoot {
        /// The command, as typed.
        command: &'static str,
    },
    /// The configuration file is missing or invalid.
    Config(ConfigError),
    /// The master key is missing or unusable.
    Key(KeyError),
    /// The user's record could not be opened.
    Store(StoreError),
    /// The operation was refused or failed in mfa-core.
    Admin(AdminError),
    /// `--user` names nobody.
    UnknownUser(String),
    /// `--uid` belongs to no account, and the command needs one.
    UnknownUid(u32),
    /// The name service failed.
    UserLookup {
        /// The name or uid asked for.
        user: String,
        /// The error.
        err: nix::errno::Errno,
    },
    /// The host name could not be read.
    Hostname(nix::errno::Errno),
    /// Reading the verification code failed.
    Input(io::Error),
    /// Writing to standard output failed before anything changed.
    Output(io::Error),
    /// Writing to standard output failed after the user was enrolled, so the
    /// secret or the recovery codes were never seen.
    OutputAfterEnroll {
        /// The user.
        uid: u32,
        /// The error.
        err: io::Error,
    },
}

impl CliError {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NotRoot { .. } => EXIT_NOT_PERMITTED,
            CliError::UnknownUser(_) | CliError::UnknownUid(_) => EXIT_USAGE,
            CliError::Key(KeyError::AlreadyExists(_))
            | CliError::Admin(
                AdminError::Key(KeyError::AlreadyExists(_))
                | AdminError::AlreadyEnrolled { .. }
                | AdminError::NotEnrolled { .. }
                | AdminError::InvalidCode { .. }
                | AdminError::WrongCode,
            ) => EXIT_REFUSED,
            CliError::Config(_)
            | CliError::Key(_)
            | CliError::Store(_)
            | CliError::Admin(_)
            | CliError::UserLookup { .. }
            | CliError::Hostname(_)
            | CliError::Input(_)
            | CliError::Output(_)
            | CliError::OutputAfterEnroll { .. } => EXIT_FAILED,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::NotRoot { command } => write!(
                f,
                "`mfa-enroll {command}` must run as root: the master key and the user records are root's alone; run it with sudo"
            ),
            CliError::Config(e) => write!(f, "{e}"),
            CliError::Key(e) => write!(f, "{e}"),
            CliError::Store(e) => write!(f, "{e}"),
            CliError::Admin(e) => write!(f, "{e}"),
            CliError::UnknownUser(name) => write!(
                f,
                "there is no user named `{name}`; check the name with `getent passwd {name}`, or give --uid"
            ),
            CliError::UnknownUid(uid) => write!(
                f,
                "no account has uid {uid}; create the account first (enrolling needs its name for the authenticator app)"
            ),
            CliError::UserLookup { user, err } => write!(
                f,
                "cannot look up user {user}: {err}; check that the name service (NSS, LDAP, SSSD) answers, or give --uid"
            ),
            CliError::Hostname(err) => write!(
                f,
                "cannot read the host name ({err}); set one with hostnamectl, or set totp.issuer in the configuration"
            ),
            CliError::Input(err) => write!(
                f,
                "cannot read the verification code from standard input ({err}); nothing was stored"
            ),
            CliError::Output(err) => write!(f, "cannot write to standard output: {err}"),
            CliError::OutputAfterEnroll { uid, err } => write!(
                f,
                "uid {uid} is enrolled, but its secret and recovery codes could not be written to standard output ({err}); run `mfa-enroll reset --uid {uid}` and enroll again"
            ),
        }
    }
}

impl std::error::Error for CliError {}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Config(e)
    }
}

impl From<KeyError> for CliError {
    fn from(e: KeyError) -> Self {
        CliError::Key(e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::Store(e)
    }
}

impl From<AdminError> for CliError {
    fn from(e: AdminError) -> Self {
        CliError::Admin(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_failures_have_distinct_exit_codes() {
        assert_eq!(
            CliError::NotRoot { command: "status" }.exit_code(),
            EXIT_NOT_PERMITTED
        );
        assert_eq!(CliError::UnknownUser("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(
            CliError::Admin(AdminError::WrongCode).exit_code(),
            EXIT_REFUSED
        );
        assert_eq!(
            CliError::Admin(AdminError::AlreadyEnrolled { uid: 1 }).exit_code(),
            EXIT_REFUSED
        );
        assert_eq!(
            CliError::Admin(AdminError::Key(KeyError::AlreadyExists("k".into()))).exit_code(),
            EXIT_REFUSED
        );
        assert_eq!(
            CliError::Store(StoreError::Poisoned).exit_code(),
            EXIT_FAILED
        );
    }

    #[test]
    fn the_not_root_message_says_what_to_do() {
        let text = CliError::NotRoot { command: "unlock" }.to_string();
        assert!(text.contains("mfa-enroll unlock"));
        assert!(text.contains("sudo"));
    }
}

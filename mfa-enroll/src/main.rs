//! `mfa-enroll`: enroll and administer pam_mfa users.
//!
//! A thin shell over `mfa_core::admin`: this crate parses arguments, looks
//! up user names, prints text or JSON and writes audit lines. Every decision
//! about a user's record is made in mfa-core.
//!
//! Exit status: 0 success; 1 the operation failed (configuration, master
//! key, record store or I/O); 2 usage error (bad arguments, unknown user);
//! 3 not permitted (must run as root); 4 refused (the key already exists,
//! the user is already enrolled or not enrolled, or the verification code
//! was wrong).
#![forbid(unsafe_code)]

mod commands;
mod error;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mfa_core::config::DEFAULT_CONFIG_PATH;

use crate::error::CliError;

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the operation failed: configuration, master key, record store or I/O
  2  usage error: bad arguments, unknown user
  3  not permitted: the command must run as root
  4  refused: the master key already exists, the user is already enrolled
     (or not enrolled), or the verification code was wrong

Secrets are never taken from the command line or the environment, and never
written to the audit log (syslog, facility authpriv, ident mfa-enroll).";

/// Enroll and administer pam_mfa users.
#[derive(Debug, Parser)]
#[command(
    name = "mfa-enroll",
    version,
    about = "Enroll and administer pam_mfa users",
    long_about = "Enroll and administer pam_mfa users: create the host's master key, give a user \
                  a TOTP device and recovery codes, show a user's state, clear a lockout, or \
                  delete a user's record. Every command here runs as root.",
    after_long_help = EXIT_STATUS_HELP
)]
pub struct Cli {
    /// The pam_mfa configuration file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = DEFAULT_CONFIG_PATH
    )]
    pub config: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the host's master key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Give a user a new TOTP device and recovery codes.
    ///
    /// Without --json the QR code and the secret are shown, a code from the
    /// app is read from standard input (one line) and checked, and only then
    /// is the device stored and the recovery codes shown. With --json nothing
    /// is asked: one JSON object with the secret, the otpauth URI and the
    /// recovery codes is printed, for provisioning scripts.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Enroll(EnrollArgs),
    /// Show a user's MFA state: devices, recovery codes left, failures,
    /// lockout, key generation, last success.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Status(StatusArgs),
    /// Delete a user's MFA record, readable or not. The lock file stays.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Reset(Target),
    /// Clear a user's failed attempts, back-off and lockout.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Unlock(Target),
}

/// `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create the master key and the enrollment public key, and the state
    /// directory if it is missing. Refuses to overwrite an existing key.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Init,
}

/// Which user a command is about.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The user's login name.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The user's numeric uid (needs no name-service lookup).
    #[arg(long, value_name = "N")]
    pub uid: Option<u32>,
}

/// `enroll` arguments.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The user.
    #[command(flatten)]
    pub target: Target,
    /// A name for the device, as the user will see it in `status`.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub device: String,
    /// Print one JSON object (secret, otpauth URI, recovery codes) and ask
    /// nothing.
    #[arg(long)]
    pub json: bool,
    /// Replace the user's existing record: its devices, recovery codes and
    /// failures.
    #[arg(long)]
    pub force: bool,
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The user.
    #[command(flatten)]
    pub target: Target,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

fn report(e: &CliError) {
    use std::io::Write as _;
    // Nothing sensible is left to do if stderr is gone.
    let _ = writeln!(std::io::stderr(), "mfa-enroll: {e}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn user_and_uid_exclude_each_other() {
        let err =
            Cli::try_parse_from(["mfa-enroll", "status", "--user", "a", "--uid", "1"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err = Cli::try_parse_from(["mfa-enroll", "reset"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn the_config_defaults_to_the_system_file_and_may_follow_the_command() {
        let cli = Cli::try_parse_from(["mfa-enroll", "unlock", "--uid", "7"]).unwrap();
        assert_eq!(cli.config, PathBuf::from(DEFAULT_CONFIG_PATH));
        let cli =
            Cli::try_parse_from(["mfa-enroll", "unlock", "--uid", "7", "--config", "/x.toml"])
                .unwrap();
        assert_eq!(cli.config, PathBuf::from("/x.toml"));
    }

    #[test]
    fn enroll_defaults_to_the_device_named_default() {
        let cli = Cli::try_parse_from(["mfa-enroll", "enroll", "--user", "bob"]).unwrap();
        let Command::Enroll(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.device, "default");
        assert!(!args.json && !args.force);
    }

    #[test]
    fn the_long_help_documents_the_exit_status() {
        let help = Cli::command().render_long_help().to_string();
        for line in [
            "0  success",
            "2  usage error",
            "3  not permitted",
            "4  refused",
        ] {
            assert!(help.contains(line), "{line}");
        }
    }
}

//! The command line: every command, argument and help text `mfa-enroll`
//! accepts, as clap parses them. Nothing here runs a command; `main`
//! dispatches the parsed [`Cli`] to the command modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mfa_core::config::DEFAULT_CONFIG_PATH;

/// The exit status section of the long help and of the manual page.
pub(crate) const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the operation failed: configuration, master key, record store or I/O
  2  usage error: bad arguments, unknown user
  3  not permitted: the command must run as root
  4  refused: the master key already exists, the user is already enrolled
     (or not enrolled), the verification code was wrong, the last device or
     a key generation still in use would be removed, or a file to import
     holds no usable time-based device

Secrets are never taken from the command line or the environment, and never
written to the audit log (syslog, facility authpriv, ident mfa-enroll).";

/// Enroll and administer pam_mfa users.
#[derive(Debug, Parser)]
#[command(
    name = "mfa-enroll",
    version,
    about = "Enroll and administer pam_mfa users",
    long_about = "Enroll and administer pam_mfa users. Run by a user with no arguments (or as \
                  `mfa-enroll enroll`), it enrolls a device for that user: the result is sealed \
                  for the host and takes effect at the user's next login, with no setuid bit. \
                  Run as root, it administers everyone: create, rotate and retire the master \
                  key, give a user a device and recovery codes, list users and devices, show a \
                  user's state, clear a lockout, delete a record, approve a self-service \
                  enrollment, take over secrets from google-authenticator and pam_oath, \
                  check the host's setup (doctor), and set up the PostgreSQL store that a fleet \
                  of hosts shares.",
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

    /// What to do. Without a command, a user enrolls a device for
    /// themselves (as `enroll` without --user does).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the host's master key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Set up the shared PostgreSQL record store and move this host's
    /// records into it.
    ///
    /// With `[store] backend = "postgres"` every other command works on
    /// the records in the database, keyed by login name (uids differ
    /// between hosts), as it would on the state directory.
    #[command(subcommand)]
    Store(StoreCommand),
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
    /// List every enrolled user: devices, recovery codes left, failures,
    /// lockout, key generations, last success and pending self-enrollment.
    ///
    /// A record that does not open is listed with its error, and makes the
    /// exit status 1.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    List(JsonArg),
    /// Show a user's devices: name, algorithm, digits, period, when added
    /// and when last used.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Devices(StatusArgs),
    /// Remove one of a user's devices.
    ///
    /// The last device is kept unless --force is given; then the whole
    /// record is removed, as `reset` does, and the user is no longer
    /// enrolled.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    RemoveDevice(RemoveDeviceArgs),
    /// Show how many recovery codes a user has left, or replace them all.
    ///
    /// With --regenerate a new set replaces the old one in one atomic write
    /// (the old codes stop working) and the new codes are printed, once.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    RecoveryCodes(RecoveryCodesArgs),
    /// Take over a user's secret from another TOTP module, so that the
    /// authenticator app keeps working.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Apply a user's pending self-service enrollment: how a first device
    /// gets in under the deny policy.
    ///
    /// Shows what the request would apply (device name, algorithm, digits,
    /// period, when it was made, a fingerprint of the secret) and asks
    /// before applying it, unless --yes. A user with several requests has
    /// them listed; name one with --request. A request that breaks the
    /// host's settings is refused and removed.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Approve(ApproveArgs),
    /// Check the configuration, keys, store, PAM stacks, `sshd_config` and
    /// sudo's timestamp; print each finding with its fix.
    ///
    /// Exits 1 if any finding is an error.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Doctor(JsonArg),
    /// Write the manual page and shell completions (for packaging).
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
}

/// `approve` arguments.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The user.
    #[command(flatten)]
    pub target: Target,
    /// Which request, when the user has made several: the name `approve`
    /// lists (the spool file's name after the uid).
    #[arg(long, value_name = "ID")]
    pub request: Option<String>,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
}

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `remove-device` arguments.
#[derive(Debug, Args)]
pub struct RemoveDeviceArgs {
    /// The user.
    #[command(flatten)]
    pub target: Target,
    /// The device's name, as `devices` shows it.
    #[arg(long, value_name = "NAME")]
    pub device: String,
    /// Remove even the last device, and with it the whole record.
    #[arg(long)]
    pub force: bool,
}

/// `recovery-codes` arguments.
#[derive(Debug, Args)]
pub struct RecoveryCodesArgs {
    /// The user (root). Without one, a user asks for new codes for
    /// themselves, which take effect at their next login.
    #[command(flatten)]
    pub target: MaybeTarget,
    /// Replace the user's recovery codes with a new set and print it.
    #[arg(long)]
    pub regenerate: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `import` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a user's `~/.google_authenticator` (google-authenticator-libpam).
    ///
    /// The file's base32 secret becomes a pam_mfa device with the same
    /// codes (SHA1, 6 digits, its `STEP_SIZE` or 30 s); time steps the file
    /// marks as used stay used; its scratch codes become the user's recovery
    /// codes, each working once (or, with --new-recovery-codes, a new set is
    /// printed instead). Counter-based (HOTP) files and secrets under 128
    /// bits are refused. Without --apply nothing is written: the command
    /// prints what it found and what would change. The file itself is never
    /// modified.
    #[command(after_long_help = IMPORT_GA_HELP)]
    GoogleAuthenticator(GoogleAuthenticatorArgs),
    /// Import the time-based tokens of a `pam_oath` users file.
    ///
    /// Lines `HOTP/T30[/6|7|8] USER PIN HEXSECRET [COUNTER [LASTOTP [TIME]]]`
    /// (and HOTP/T60) become pam_mfa devices with the same codes, for users
    /// the name service knows. Counter-based lines (HOTP, HOTP/E) and lines
    /// with a PIN are reported and skipped. Without --apply nothing is
    /// written. The users file is never modified.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Oath(OathArgs),
}

/// The long help of `import google-authenticator`: what becomes of the
/// scratch codes, and the exit status.
const IMPORT_GA_HELP: &str = concat!(
    "Scratch codes are carried over: each becomes a pam_mfa recovery code that\n",
    "works once, typed at the same prompt as before, so users keep the codes they\n",
    "hold and nothing has to be handed out. They are stored as Argon2id hashes like\n",
    "every recovery code, and status and list count them. They stay 8 digits (about\n",
    "27 bits, where pam_mfa's own codes carry 60); the failure counter and lockout\n",
    "bound guessing at the prompt. A file with no scratch codes left gives a user\n",
    "with no recovery codes (recovery-codes --user NAME --regenerate makes a set).\n\n",
    "--new-recovery-codes prints a new set instead (shown once; hand it to the\n",
    "user): use it when the file may have been copied (backups, a shared home), and\n",
    "for a file with scratch codes google-authenticator never writes (not 8 digits,\n",
    "or a leading 0), which is otherwise refused. While pam_google_authenticator.so\n",
    "is still in the PAM stack each scratch code works once with each module: take\n",
    "it out when importing.\n\n",
    "Exit status:\n",
    "  0  success (or a dry run)\n",
    "  1  the operation failed: configuration, master key, record store or I/O,\n",
    "     or the file is unreadable or damaged\n",
    "  2  usage error: bad arguments, unknown user\n",
    "  3  not permitted: the command must run as root\n",
    "  4  refused: the user is already enrolled (add --force), the file holds no\n",
    "     usable time-based device (counter-based, or a secret under 128 bits), or\n",
    "     its scratch codes cannot be carried over (add --new-recovery-codes)"
);

/// `import google-authenticator` arguments.
#[derive(Debug, Args)]
pub struct GoogleAuthenticatorArgs {
    /// The user.
    #[command(flatten)]
    pub target: Target,
    /// The file to read instead of `~NAME/.google_authenticator` (home
    /// directory from the password database).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The name of the new device.
    #[arg(long, value_name = "NAME", default_value = "google-authenticator")]
    pub device: String,
    /// Write the record; without it nothing changes.
    #[arg(long)]
    pub apply: bool,
    /// With --apply, replace the user's existing record.
    #[arg(long)]
    pub force: bool,
    /// Give the user a new set of recovery codes, printed once, instead of
    /// carrying the file's scratch codes over.
    #[arg(long)]
    pub new_recovery_codes: bool,
}

/// `import oath` arguments.
#[derive(Debug, Args)]
pub struct OathArgs {
    /// The `pam_oath` users file (`usersfile=` in its PAM line).
    #[arg(long, value_name = "PATH")]
    pub usersfile: PathBuf,
    /// The name of each new device.
    #[arg(long, value_name = "NAME", default_value = "oath")]
    pub device: String,
    /// Write the records; without it nothing changes.
    #[arg(long)]
    pub apply: bool,
    /// With --apply, replace users' existing records.
    #[arg(long)]
    pub force: bool,
}

/// `generate-docs` arguments.
#[derive(Debug, Args)]
pub struct GenerateDocsArgs {
    /// The directory to write mfa-enroll.1 and the bash, zsh and fish
    /// completions into; created if missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create the master key and the enrollment public key, and the state
    /// directory if it is missing. Refuses to overwrite an existing key.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Init,
    /// Add a key generation and make it active; rewrite the enrollment
    /// public key. Records under older generations keep working until
    /// `key migrate` re-seals them.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Rotate,
    /// List the key generations: which is active, when each was created,
    /// and how many records each seals.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    List(JsonArg),
    /// Re-seal every record under the active generation.
    ///
    /// Each record is rewritten on its own and atomically, so an
    /// interrupted migration is finished by running it again. A record that
    /// does not open is reported and left alone; the others are migrated
    /// and the exit status is 1.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Migrate,
    /// Remove a key generation from the key file. Refused for the active
    /// generation, and while any record still uses it (both halves of every
    /// record are checked) or does not open.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Retire(RetireArgs),
}

/// `store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the table of records in the PostgreSQL database, and print
    /// the GRANT statements for the roles the hosts log in as.
    ///
    /// Connects with `connection_file` of [store], or with --connection-file
    /// (an administrator's connection, whose role may create tables in the
    /// database), and creates the table `pam_mfa_records` unless it exists:
    /// running it again changes nothing, and rows already there are never
    /// touched. Then it prints SQL for the table's owner to run (comments
    /// and statements, so it can be piped into psql): the hosts' role
    /// (--host-role, else the user of the configured connection file) may
    /// only read and update records, which is all a login does; the role
    /// named by --enroll-role may also insert and delete them, which
    /// enroll, reset, remove-device --force, import, approve, store migrate
    /// and users enrolling a first device at login need. Needs root and
    /// `[store] backend = "postgres"`.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Init(StoreInitArgs),
    /// Copy every record of the state directory into PostgreSQL.
    ///
    /// Each record goes to the row of the login name its uid has on this
    /// host; a uid without a name here is skipped. A row already in the
    /// database is never overwritten, also when another host creates it
    /// during the copy. Without --apply nothing is written: the command
    /// says what it would do. The local records stay where they are:
    /// remove them once `mfa-enroll list` shows the users (this host no
    /// longer reads them). Needs root and `[store] backend = "postgres"`.
    /// Exits 1 if any record was not copied for a reason other than
    /// already being there.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Migrate(StoreMigrateArgs),
}

/// `store init` arguments.
#[derive(Debug, Args)]
pub struct StoreInitArgs {
    /// The role the hosts log in as (default: the user of the configured
    /// connection file): granted SELECT and UPDATE only.
    #[arg(long, value_name = "NAME")]
    pub host_role: Option<String>,
    /// A role that may also create and delete records (SELECT, INSERT,
    /// UPDATE, DELETE): where users enroll at login or administrators
    /// enroll and reset users.
    #[arg(long, value_name = "NAME")]
    pub enroll_role: Option<String>,
    /// The connection file to create the table with, for a role that may
    /// (root-owned, mode 0600; default: `connection_file` of [store]).
    #[arg(long, value_name = "PATH")]
    pub connection_file: Option<PathBuf>,
}

/// `store migrate` arguments.
#[derive(Debug, Args)]
pub struct StoreMigrateArgs {
    /// Copy the records; without it nothing is written.
    #[arg(long)]
    pub apply: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `key retire` arguments.
#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The generation to remove, as `key list` shows it.
    #[arg(value_name = "GEN")]
    pub generation: u32,
}

/// Which user a command is about, for commands a user may also run on
/// themselves (then neither is given).
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct MaybeTarget {
    /// The user's login name (root only).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The user's numeric uid (root only; needs no name-service lookup).
    #[arg(long, value_name = "N")]
    pub uid: Option<u32>,
}

impl MaybeTarget {
    /// The named user, if one was named.
    pub fn target(&self) -> Option<Target> {
        (self.user.is_some() || self.uid.is_some()).then(|| Target {
            user: self.user.clone(),
            uid: self.uid,
        })
    }
}

/// How to draw the QR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QrArg {
    /// UTF-8 half blocks (compact).
    Utf8,
    /// `#` and spaces, for terminals without UTF-8.
    Ascii,
    /// No QR code: type the secret.
    None,
}

impl From<QrArg> for mfa_core::config::QrStyle {
    fn from(q: QrArg) -> Self {
        match q {
            QrArg::Utf8 => Self::Utf8,
            QrArg::Ascii => Self::Ascii,
            QrArg::None => Self::None,
        }
    }
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
    /// The user (root). Without one, the user running the command enrolls
    /// a device for themselves.
    #[command(flatten)]
    pub target: MaybeTarget,
    /// A name for the device, as `devices` shows it (root default:
    /// "default"; a user is asked).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// How to draw the QR code (default: `enrollment.qr` of the config;
    /// utf8 becomes ascii unless the locale is UTF-8).
    ///
    /// Without --qr the style is `enrollment.qr` of the config (utf8
    /// unless set), except that utf8 becomes ascii when the terminal's
    /// character set is not UTF-8: the first of `LC_ALL`, `LC_CTYPE` and
    /// `LANG` that is set and not empty must end in .UTF-8 or .utf8 (any
    /// case; an @modifier may follow). C, POSIX, no locale at all and any
    /// other character set get ascii, since such a terminal shows the
    /// UTF-8 blocks as garbage. A configured none stays none.
    #[arg(long, value_enum, value_name = "STYLE")]
    pub qr: Option<QrArg>,
    /// Print one JSON object (secret, otpauth URI, recovery codes) and ask
    /// nothing.
    #[arg(long)]
    pub json: bool,
    /// Replace the user's existing record: its devices, recovery codes and
    /// failures.
    #[arg(long)]
    pub force: bool,
    /// Enroll every user FILE names, on all cores (root; needs --json; `-`
    /// reads standard input).
    ///
    /// One JSON object per line: {"user": "NAME"} or {"uid": N}, and
    /// optionally "device": "NAME" (else --device, else "default"). Blank
    /// lines and lines starting with # are skipped. Each other line gives
    /// one line of output, in input order: the object `enroll --json`
    /// prints, or {"line": N, "user"/"uid": ..., "error": "..."}. A failed
    /// line never stops the others. A summary ends the run on standard
    /// error; the exit status is 0 only if every line was enrolled, 1 if
    /// any failed.
    #[arg(
        long,
        value_name = "FILE",
        requires = "json",
        conflicts_with_all = ["user", "uid", "qr"]
    )]
    pub users_from: Option<PathBuf>,
}

impl EnrollArgs {
    /// The device name an administrator's enrollment uses.
    pub fn device_or_default(&self) -> &str {
        self.device.as_deref().unwrap_or("default")
    }
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
        let Some(Command::Enroll(args)) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.device_or_default(), "default");
        assert!(!args.json && !args.force);
    }

    #[test]
    fn without_a_command_or_a_user_it_is_self_service() {
        let cli = Cli::try_parse_from(["mfa-enroll"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["mfa-enroll", "enroll", "--qr", "ascii"]).unwrap();
        let Some(Command::Enroll(args)) = cli.command else {
            panic!("parsed as another command");
        };
        assert!(args.target.target().is_none());
        assert_eq!(args.qr, Some(QrArg::Ascii));
    }

    #[test]
    fn store_migrate_is_a_dry_run_unless_told_to_apply() {
        let cli = Cli::try_parse_from(["mfa-enroll", "store", "migrate"]).unwrap();
        let Some(Command::Store(StoreCommand::Migrate(args))) = cli.command else {
            panic!("parsed as another command");
        };
        assert!(!args.apply && !args.json);
        let cli = Cli::try_parse_from([
            "mfa-enroll",
            "store",
            "init",
            "--host-role",
            "pam_host",
            "--connection-file",
            "/root/admin.conf",
        ])
        .unwrap();
        let Some(Command::Store(StoreCommand::Init(args))) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.host_role.as_deref(), Some("pam_host"));
        assert_eq!(args.enroll_role, None);
        assert_eq!(
            args.connection_file,
            Some(PathBuf::from("/root/admin.conf"))
        );
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

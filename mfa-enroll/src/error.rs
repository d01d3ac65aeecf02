//! What can go wrong, and the exit status each failure gives.

use std::fmt;
use std::io;

use std::path::PathBuf;

use mfa_core::admin::AdminError;
use mfa_core::config::ConfigError;
use mfa_core::enrollment::EnrollmentError;
use mfa_core::import::ImportError;
use mfa_core::keys::KeyError;
use mfa_core::store::migrate::MigrateError;
use mfa_core::store::postgres::PgError;
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
    /// A `store` command needs `[store] backend = "postgres"`.
    NotPostgres {
        /// The command, as typed.
        command: &'static str,
    },
    /// `store init` could not reach the database or create the table.
    Postgres(PgError),
    /// The role `store init` connected as may not create the table.
    StoreInitRefused {
        /// The role.
        role: String,
        /// The server's message.
        detail: String,
    },
    /// `store migrate` could not run.
    Migrate(MigrateError),
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
    /// A file to import could not be read.
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why not.
        problem: ReadProblem,
    },
    /// A file to import is not valid or holds nothing importable.
    Import {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        err: ImportError,
    },
    /// The password database gives the user no home directory to find
    /// `.google_authenticator` in.
    NoHome(String),
    /// Some records or lines could not be handled; each was reported above.
    Incomplete {
        /// What went wrong, counted (`2 records could not be opened`).
        summary: String,
        /// The exit status: [`EXIT_FAILED`] or [`EXIT_REFUSED`].
        code: u8,
    },
    /// Writing a generated manual page or completion file failed.
    WriteDocs {
        /// The file.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
    /// A root command was given no user, or a user command was run as root
    /// without one.
    NeedsUser {
        /// The command root should have typed, with `--user NAME`.
        root_command: &'static str,
        /// What a user can run instead.
        user_command: &'static str,
    },
    /// The self-service spool or enrollment key is not usable.
    Spool(String),
    /// No pending self-service enrollment to approve.
    NothingPending {
        /// The user.
        uid: u32,
    },
    /// The user has several requests and `--request` named none of them.
    WhichRequest {
        /// The user.
        uid: u32,
        /// What `--request` said, if anything.
        named: Option<String>,
    },
    /// The administrator answered no (or nothing) to the confirmation.
    NotApproved,
    /// The request breaks the host's settings or its codes do not hold.
    RequestRefused(mfa_core::pending::Refusal),
    /// `doctor` found errors; they were printed.
    DoctorFound(usize),
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
            CliError::UnknownUser(_)
            | CliError::NeedsUser { .. }
            | CliError::UnknownUid(_)
            | CliError::NoHome(_)
            | CliError::WhichRequest { .. }
            | CliError::Store(
                StoreError::NameRequired { .. } | StoreError::NoLocalAccount { .. },
            )
            | CliError::Admin(
                AdminError::Store(
                    StoreError::NameRequired { .. } | StoreError::NoLocalAccount { .. },
                )
                | AdminError::UnknownDevice { .. }
                | AdminError::Key(KeyError::UnknownGeneration(_))
                | AdminError::Enrollment(EnrollmentError::BadDeviceName),
            ) => EXIT_USAGE,
            CliError::Key(KeyError::AlreadyExists(_))
            | CliError::Admin(
                AdminError::Key(KeyError::AlreadyExists(_) | KeyError::RetireActive(_))
                | AdminError::AlreadyEnrolled { .. }
                | AdminError::NotEnrolled { .. }
                | AdminError::InvalidCode { .. }
                | AdminError::WrongCode
                | AdminError::LastDevice { .. }
                | AdminError::GenerationInUse { .. }
                | AdminError::UnreadableRecords { .. },
            )
            | CliError::Import {
                err:
                    ImportError::CounterBased
                    | ImportError::NotTimeBased
                    | ImportError::UnusableScratchCode { .. }
                    | ImportError::TooManyScratchCodes { .. }
                    | ImportError::Secret(mfa_core::totp::SecretError::TooShort { .. }),
                ..
            }
            | CliError::NothingPending { .. }
            | CliError::NotApproved
            | CliError::RequestRefused(_) => EXIT_REFUSED,
            CliError::Incomplete { code, .. } => *code,
            CliError::Spool(_)
            | CliError::DoctorFound(_)
            | CliError::Config(_)
            | CliError::Key(_)
            | CliError::Store(_)
            | CliError::NotPostgres { .. }
            | CliError::Postgres(_)
            | CliError::StoreInitRefused { .. }
            | CliError::Migrate(_)
            | CliError::Admin(_)
            | CliError::UserLookup { .. }
            | CliError::Hostname(_)
            | CliError::Input(_)
            | CliError::Output(_)
            | CliError::OutputAfterEnroll { .. }
            | CliError::ReadFile { .. }
            | CliError::Import { .. }
            | CliError::WriteDocs { .. } => EXIT_FAILED,
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
            CliError::NotPostgres { command } => not_postgres(f, command),
            CliError::Postgres(e) => write!(f, "{e}"),
            CliError::StoreInitRefused { role, detail } => init_refused(f, role, detail),
            CliError::Migrate(e) => write!(f, "{e}"),
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
            CliError::ReadFile { path, problem } => write!(f, "{}: {problem}", path.display()),
            CliError::Import { path, err } => {
                write!(f, "{}: {err}. Nothing was imported", path.display())
            }
            CliError::NoHome(user) => write!(
                f,
                "the password database gives `{user}` no home directory; give the file with --file"
            ),
            CliError::Incomplete { summary, .. } => {
                write!(f, "{summary}; see the messages above")
            }
            CliError::WriteDocs { path, err } => write!(
                f,
                "cannot write {}: {err}; check that the --out directory is writable",
                path.display()
            ),
            CliError::NeedsUser {
                root_command,
                user_command,
            } => {
                if nix::unistd::geteuid().is_root() {
                    write!(
                        f,
                        "as root, say whose: `mfa-enroll {root_command}` (a user runs `mfa-enroll {user_command}` without sudo)"
                    )
                } else {
                    write!(f, "to do this for yourself, run `mfa-enroll {user_command}`")
                }
            }
            CliError::Spool(why) => write!(
                f,
                "self-service enrollment is not available: {why}. Ask an administrator to enroll you"
            ),
            CliError::NothingPending { uid } => write!(
                f,
                "uid {uid} has no valid pending self-service enrollment; the user runs `mfa-enroll` first (see `mfa-enroll list` and the auth log for ignored ones)"
            ),
            CliError::WhichRequest { uid, named: None } => write!(
                f,
                "uid {uid} has several pending requests (listed above); name one with --request"
            ),
            CliError::WhichRequest {
                uid,
                named: Some(n),
            } => write!(
                f,
                "uid {uid} has no pending request {}; run `mfa-enroll approve` without --request to list them",
                mfa_core::text::escape(n)
            ),
            CliError::NotApproved => {
                f.write_str("nothing was applied; answer y, or pass --yes, to approve")
            }
            CliError::RequestRefused(r) => write!(
                f,
                "the request is refused and was removed: {r}"
            ),
            CliError::DoctorFound(n) => write!(
                f,
                "{n} problem{} found; see the fixes above",
                if *n == 1 { "" } else { "s" }
            ),
            CliError::OutputAfterEnroll { uid, err } => write!(
                f,
                "uid {uid} is enrolled, but its secret and recovery codes could not be written to standard output ({err}); run `mfa-enroll reset --uid {uid}` and enroll again"
            ),
        }
    }
}

impl std::error::Error for CliError {}

fn not_postgres(f: &mut fmt::Formatter<'_>, command: &str) -> fmt::Result {
    write!(
        f,
        "`mfa-enroll {command}` works on the shared PostgreSQL store, and the configured record store is the files store; set `backend = \"postgres\"` and `connection_file` in [store] of the configuration, then run it again"
    )
}

fn init_refused(f: &mut fmt::Formatter<'_>, role: &str, detail: &str) -> fmt::Result {
    write!(
        f,
        "the role {role} may not create the table: {detail}; run `mfa-enroll store init --connection-file PATH` with a connection file (root, 0600) of a role that may, such as the database's owner"
    )
}

/// Why a file to import could not be read.
#[derive(Debug)]
pub enum ReadProblem {
    /// Nothing is there.
    Missing,
    /// It is a symbolic link, which is never followed.
    Symlink,
    /// It is not a regular file.
    NotRegular,
    /// Neither the expected user nor root owns it.
    WrongOwner {
        /// The owner found.
        found: u32,
        /// The uid that should own it (or root).
        expected: u32,
    },
    /// It is larger than any valid file of its kind.
    TooLarge {
        /// The bound in bytes.
        max: usize,
    },
    /// The OS refused.
    Io(io::Error),
}

impl fmt::Display for ReadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadProblem::Missing => {
                f.write_str("does not exist; check the path, or give the file with --file")
            }
            ReadProblem::Symlink => f.write_str(
                "is a symbolic link, which is never followed; give the path of the real file",
            ),
            ReadProblem::NotRegular => {
                f.write_str("is not a regular file; give the path of the real file")
            }
            ReadProblem::WrongOwner { found, expected } => write!(
                f,
                "is owned by uid {found}, not by uid {expected} or root; check that it is the right file, or copy it somewhere only root can write and give that path"
            ),
            ReadProblem::TooLarge { max } => write!(
                f,
                "is larger than the {max} bytes a valid file can be; check that it is the right file"
            ),
            ReadProblem::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

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

impl From<MigrateError> for CliError {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::NotShared => CliError::NotPostgres {
                command: "store migrate",
            },
            other => CliError::Migrate(other),
        }
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
    fn the_shared_store_failures_exit_1_and_a_missing_name_is_a_usage_error() {
        let owner = mfa_core::store::Owner::named("alice");
        for e in [
            StoreError::Unavailable("PostgreSQL store: cannot connect to db:5432".into()),
            StoreError::Conflict {
                owner: owner.clone(),
            },
            StoreError::Contended { owner, attempts: 4 },
        ] {
            let message = e.to_string();
            let err = CliError::Store(e);
            assert_eq!(err.exit_code(), EXIT_FAILED, "{message}");
            assert_eq!(err.to_string(), message);
        }
        let name = CliError::Store(StoreError::NameRequired { uid: 4000 });
        assert_eq!(name.exit_code(), EXIT_USAGE);
        assert!(name.to_string().contains("--user"));
        let name = CliError::Admin(AdminError::Store(StoreError::NameRequired { uid: 4000 }));
        assert_eq!(name.exit_code(), EXIT_USAGE);
        let files = CliError::Store(StoreError::NoLocalAccount {
            name: "carol".into(),
        });
        assert_eq!(files.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn a_store_command_on_the_files_store_says_how_to_configure_postgres() {
        let err = CliError::from(MigrateError::NotShared);
        assert_eq!(err.exit_code(), EXIT_FAILED);
        let text = err.to_string();
        assert!(text.contains("mfa-enroll store migrate"), "{text}");
        assert!(text.contains("backend = \"postgres\""), "{text}");
    }

    #[test]
    fn the_not_root_message_says_what_to_do() {
        let text = CliError::NotRoot { command: "unlock" }.to_string();
        assert!(text.contains("mfa-enroll unlock"));
        assert!(text.contains("sudo"));
    }
}

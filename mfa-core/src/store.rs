//! The record store: one sealed [`Record`] per user, behind one interface
//! with two backends.
//!
//! - **files** (the default, [`files`]): one file per uid in the state
//!   directory, two sealed slots, a login commits one slot in place.
//! - **postgres** ([`postgres`]): one row per login name in a PostgreSQL
//!   database that a fleet of hosts shares, committed with
//!   `UPDATE ... WHERE name = $1 AND version = $2`.
//!
//! Both seal a record the same way ([`seal`]: AES-256-GCM under the master
//! key, the AAD binding the owner and the sequence number or row version),
//! so the database, like the disk, only ever holds ciphertext.
//!
//! Two ways in:
//! - [`Store::open_user`] for commands: the files backend holds the user's
//!   lock until the [`UserState`] is dropped; the PostgreSQL backend
//!   remembers the row version it read and refuses a write over a newer one
//!   ([`StoreError::Conflict`]).
//! - [`Store::read`] and [`Store::transact`] for a login, which must not hold
//!   anything while the user types: read a [`Snapshot`], decide, and commit
//!   only if the record is unchanged (compare-and-set); when another login
//!   won meanwhile, read again and decide again, a few times at most.

mod files;
pub mod migrate;
pub mod postgres;
mod rows;
mod seal;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use files::decode_record_file;
use files::{FileState, FileStore};
use rows::{RowState, RowStore};

use crate::config::{Config, StoreBackend};
use crate::fsutil::{FileError, FileTrust, RenameStep};
use crate::keys::{Generation, MasterKey};
use crate::random::RandomUnavailable;
use crate::record::{Record, RecordTooLarge};

/// First bytes of every sealed slot.
pub const RECORD_MAGIC: [u8; 8] = *b"PAM_MFA\0";
/// The record format this build writes (it also reads the formats in
/// [`crate::record::READ_VERSIONS`]; an older record is rewritten in this
/// one at its next commit).
pub const RECORD_VERSION: u16 = crate::record::WRITE_VERSION;
/// Length of a slot's header.
pub const HEADER_LEN: usize = 46;
pub(crate) const TAG_LEN: usize = 16;
/// Slot sizes are multiples of this, so a slot never straddles more sectors
/// than it must.
pub const SLOT_ALIGN: usize = 512;
/// The largest slot; no legitimate record comes close.
pub const MAX_SLOT: usize = 64 * 1024;
/// The largest record file.
pub const MAX_RECORD_FILE: u64 = 2 * MAX_SLOT as u64;
/// How long to wait for another login of the same user to finish.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one slot of a record file was not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotFault {
    /// Bytes do not form a valid sealed slot, or fail authentication.
    Corrupt(&'static str),
    /// A format version this build does not understand.
    UnknownVersion(u16),
    /// Sealed under a key generation the key file does not hold.
    UnknownGeneration(Generation),
    /// Sealed under a different key with the same generation number.
    WrongKey(Generation),
}

impl fmt::Display for SlotFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotFault::Corrupt(why) => write!(f, "corrupt ({why})"),
            SlotFault::UnknownVersion(v) => write!(f, "format version {v}"),
            SlotFault::UnknownGeneration(g) => write!(f, "key generation {g} not held"),
            SlotFault::WrongKey(g) => write!(f, "sealed under another key (generation {g})"),
        }
    }
}

/// The key a sealed slot's header names ([`Store::sealed_under`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSeal {
    /// The key generation the slot is sealed under.
    pub generation: Generation,
    /// The key check written beside it; compare with
    /// [`crate::keys::StoreKey::check`] to tell the key file's generation of
    /// this number from another key's.
    pub key_check: [u8; 8],
    /// The slot's sequence number: the higher one holds the newer state.
    pub seq: u64,
}

impl SlotSeal {
    /// Whether `keys` holds the key this slot is sealed under.
    pub fn opens_with(&self, keys: &MasterKey) -> bool {
        keys.store_key(self.generation)
            .is_some_and(|k| k.check() == self.key_check)
    }
}

/// Everything that can go wrong reading or writing a user's state. Each
/// failure is distinct, and none of them reads as "not enrolled".
#[derive(Debug)]
pub enum StoreError {
    /// An administrative operation needs a record and there is none.
    NotEnrolled {
        /// The user.
        uid: u32,
    },
    /// The state directory is missing or unsafe.
    Directory(FileError),
    /// The record file exists but failed its type/owner/mode/size checks.
    Unreadable(FileError),
    /// The record is damaged or was copied from another user.
    Corrupt {
        /// The user.
        uid: u32,
        /// What was found.
        reason: String,
    },
    /// The record was sealed under a key this host does not hold.
    WrongKey {
        /// The user.
        uid: u32,
        /// The generation named in the record.
        generation: Generation,
        /// Whether the generation is missing altogether (vs. held with other bytes).
        missing: bool,
    },
    /// The record was written by a newer pam_mfa.
    UnknownVersion {
        /// The user.
        uid: u32,
        /// The version found.
        version: u16,
    },
    /// Another process held the user's lock for too long.
    LockTimeout {
        /// The user.
        uid: u32,
        /// How long we waited.
        waited: Duration,
    },
    /// The operating system failed a read, write or sync.
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
    /// The new state breaks a format bound and was not written.
    TooLarge(RecordTooLarge),
    /// The kernel could not provide a nonce.
    Random(RandomUnavailable),
    /// An earlier commit in this session failed, so its state is unknown.
    Poisoned,
    /// The PostgreSQL store keys records by login name, and this uid has
    /// none on this host.
    NameRequired {
        /// The uid asked for.
        uid: u32,
    },
    /// The files store keys records by uid, and this name has no account
    /// on this host.
    NoLocalAccount {
        /// The name asked for.
        name: String,
    },
    /// A PostgreSQL row holds no usable record.
    Row {
        /// The login name the row belongs to.
        name: String,
        /// What is wrong with it.
        reason: String,
        /// The key generation its seal names, when that is the problem.
        generation: Option<Generation>,
    },
    /// The shared store could not be reached, did not answer in time, or
    /// refused the operation.
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// The record changed (another host, another session) between reading
    /// it and writing it; nothing was written.
    Conflict {
        /// Whose record.
        owner: Owner,
    },
    /// The record kept changing while a login tried to commit.
    Contended {
        /// Whose record.
        owner: Owner,
        /// How many times it was read and decided again.
        attempts: u32,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotEnrolled { uid } => write!(f, "uid {uid} is not enrolled"),
            StoreError::Directory(e) => write!(f, "state directory unusable: {e}"),
            StoreError::Unreadable(e) => write!(f, "record refused: {e}"),
            StoreError::Corrupt { uid, reason } => write!(
                f,
                "record of uid {uid} is corrupt ({reason}); restore it from backup or re-enroll the user with `mfa-enroll reset`"
            ),
            StoreError::WrongKey {
                uid,
                generation,
                missing: true,
            } => write!(
                f,
                "record of uid {uid} is sealed under key generation {generation}, which the master key file does not hold; restore the key file that has it"
            ),
            StoreError::WrongKey {
                uid, generation, ..
            } => write!(
                f,
                "record of uid {uid} is sealed under a different master key (generation {generation}); restore the matching key file"
            ),
            StoreError::UnknownVersion { uid, version } => write!(
                f,
                "record of uid {uid} has format version {version}, newer than this pam_mfa understands; upgrade pam_mfa"
            ),
            StoreError::LockTimeout { uid, waited } => write!(
                f,
                "another login of uid {uid} held its lock for {}s; if nothing is stuck, try again",
                waited.as_secs()
            ),
            StoreError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            StoreError::TooLarge(e) => write!(f, "{e}"),
            StoreError::Random(e) => write!(f, "{e}"),
            StoreError::Poisoned => {
                f.write_str("an earlier write in this session failed; start over")
            }
            StoreError::NameRequired { uid } => write!(
                f,
                "uid {uid} has no login name on this host, and the PostgreSQL store keys records by name; give the user's name with --user"
            ),
            StoreError::NoLocalAccount { name } => write!(
                f,
                "{name} has no account on this host, and the files store keys records by uid"
            ),
            StoreError::Row {
                name,
                reason,
                generation: _,
            } => write!(
                f,
                "record of {name} in the PostgreSQL store is unusable ({reason}); restore it from a backup of the database or re-enroll the user with `mfa-enroll reset`"
            ),
            StoreError::Unavailable(e) => write!(f, "{e}"),
            StoreError::Conflict { owner } => write!(
                f,
                "the record of {owner} changed while this ran (another login or host); nothing was written: run the command again"
            ),
            StoreError::Contended { owner, attempts } => write!(
                f,
                "the record of {owner} changed under each of {attempts} attempts to commit; nothing was written"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// The steps of a commit, named so tests can fail or kill the process at each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStep {
    /// In-place commit: the slot is sealed, nothing written yet.
    BeforeSlotWrite,
    /// In-place commit: the slot is written, `fdatasync` is next.
    SlotWritten,
    /// In-place commit: the slot is durable.
    SlotSynced,
    /// Rename protocol: the given step.
    Rename(RenameStep),
}

/// How a commit reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    /// The older slot was overwritten in place: one write, one `fdatasync`.
    InPlace,
    /// A new file was written and renamed over the old one.
    Rewritten,
    /// A PostgreSQL row was replaced by a version-checked update.
    Replaced,
}

/// Whose record: a uid (the files backend's key), a login name (the
/// PostgreSQL backend's key), or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    uid: Option<u32>,
    name: Option<String>,
}

impl Owner {
    /// A local account, known by both.
    pub fn new(uid: u32, name: impl Into<String>) -> Owner {
        Owner {
            uid: Some(uid),
            name: Some(name.into()),
        }
    }

    /// A login name with no account on this host (a row of the shared store).
    pub fn named(name: impl Into<String>) -> Owner {
        Owner {
            uid: None,
            name: Some(name.into()),
        }
    }

    /// A uid whose name this host does not know.
    pub fn by_uid(uid: u32) -> Owner {
        Owner {
            uid: Some(uid),
            name: None,
        }
    }

    /// The uid, if the account exists here.
    pub fn uid(&self) -> Option<u32> {
        self.uid
    }

    /// The login name, if known.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl From<u32> for Owner {
    fn from(uid: u32) -> Owner {
        Owner::by_uid(uid)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.uid, &self.name) {
            (Some(uid), _) => write!(f, "uid {uid}"),
            (None, Some(name)) => write!(f, "user {name}"),
            (None, None) => f.write_str("an unnamed user"),
        }
    }
}

/// The uid reported for a name with no account on this host: `(uid_t)-1`,
/// which POSIX reserves and no account has.
pub const NO_UID: u32 = u32::MAX;

/// How many times a login on the PostgreSQL store reads and decides again
/// after losing a compare-and-set before it gives up (and denies).
pub const MAX_ATTEMPTS: u32 = 4;

/// Where the records are, and how they are reached.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Files(FileStore),
    Rows(RowStore),
}

/// What version of a record a [`Snapshot`] or [`UserState`] saw, so that a
/// write can insist nothing changed since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Version {
    /// No record.
    Absent,
    /// A record file: the sequence number and nonce of the slot in use.
    /// The nonce is random for every seal, so a record enrolled afresh
    /// (whose sequence starts over, perhaps in a file with a reused inode
    /// number) never looks like the one read.
    File {
        /// Sequence number of the slot in use.
        seq: u64,
        /// Nonce of the slot in use.
        nonce: [u8; 12],
    },
    /// A PostgreSQL row's version.
    Row(i64),
}

/// A user's record as read at one moment, holding nothing (no lock, no
/// connection): what a login decides on while the user types.
#[derive(Debug, Clone)]
pub struct Snapshot {
    owner: Owner,
    record: Option<Record>,
    version: Version,
    discarded: Option<SlotFault>,
}

impl Snapshot {
    /// Whose record.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The record, or `None` if the user is not enrolled.
    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref()
    }

    /// If one half of a record file was unusable while the other held the
    /// state, why ([`UserState::discarded_slot`]).
    pub fn discarded_slot(&self) -> Option<&SlotFault> {
        self.discarded.as_ref()
    }
}

/// What a login decided on a [`Snapshot`].
// A decision lives for one step of a login and is never stored or copied;
// boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision<T> {
    /// Nothing to write; the answer stands.
    Keep(T),
    /// Write this record; the answer stands only if the write commits.
    Write(Record, T),
}

impl Store {
    /// The files store in `dir`, trusting files owned by `trust`'s uid.
    pub fn new(dir: impl Into<PathBuf>, trust: FileTrust) -> Self {
        Store {
            backend: Backend::Files(FileStore::new(dir, trust)),
        }
    }

    /// The PostgreSQL store reached through `client`. `state_dir` is still
    /// named (`store migrate` reads the local records from it), and
    /// `hostname` is written beside every change.
    pub fn postgres(
        client: postgres::Client,
        state_dir: impl Into<PathBuf>,
        hostname: &str,
    ) -> Self {
        Store {
            backend: Backend::Rows(RowStore::new(Box::new(client), state_dir.into(), hostname)),
        }
    }

    /// The store the configuration names (`[store] backend`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the connection file is missing,
    /// unsafe or unreadable.
    pub fn from_config(
        config: &Config,
        trust: FileTrust,
        hostname: &str,
    ) -> Result<Self, StoreError> {
        let store = &config.store;
        match store.backend {
            StoreBackend::Files => Ok(Store::new(&config.paths.state_dir, trust)),
            StoreBackend::Postgres => {
                let timeout = Duration::from_millis(u64::from(store.timeout_ms));
                let settings = postgres::Settings::load(&store.connection_file, trust, timeout)
                    .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
                Ok(Store::postgres(
                    postgres::Client::new(settings),
                    &config.paths.state_dir,
                    hostname,
                ))
            }
        }
    }

    /// Changes how long the files backend waits for a user's lock.
    #[must_use]
    pub fn with_lock_timeout(self, timeout: Duration) -> Self {
        match self.backend {
            Backend::Files(f) => Store {
                backend: Backend::Files(f.with_lock_timeout(timeout)),
            },
            rows @ Backend::Rows(_) => Store { backend: rows },
        }
    }

    /// Calls `hook` at every [`CommitStep`] of the files backend; an error
    /// it returns makes the commit fail right there, as a failing disk
    /// would. For fault-injection tests; the shells never install one.
    #[must_use]
    pub fn with_fault_injection(
        self,
        hook: impl Fn(CommitStep) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        match self.backend {
            Backend::Files(f) => Store {
                backend: Backend::Files(f.with_fault_injection(hook)),
            },
            rows @ Backend::Rows(_) => Store { backend: rows },
        }
    }

    /// The state directory (for the PostgreSQL backend: where local records
    /// would be, which `store migrate` reads).
    pub fn dir(&self) -> &Path {
        match &self.backend {
            Backend::Files(f) => f.dir(),
            Backend::Rows(r) => r.state_dir(),
        }
    }

    /// True when records live in a database that other hosts share.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Rows(_))
    }

    /// Where the records are, for messages: a directory or the servers.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Files(f) => f.dir().display().to_string(),
            Backend::Rows(r) => r.describe(),
        }
    }

    /// Checks what can be checked without touching a record: the files
    /// backend's state directory (a real directory, owned by the trusted
    /// uid, mode 0700 or stricter, on a local filesystem). The PostgreSQL
    /// backend is checked by its first operation, under its deadline.
    ///
    /// # Errors
    /// [`StoreError::Directory`].
    pub fn check_dir(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Files(f) => f.check_dir(),
            Backend::Rows(_) => Ok(()),
        }
    }

    /// Opens `owner`'s state for a command: read, decide, commit. The files
    /// backend holds the user's lock until the returned [`UserState`] is
    /// dropped; the PostgreSQL backend refuses to commit over a newer row.
    ///
    /// # Errors
    /// Any [`StoreError`] except `NotEnrolled` (an absent record is
    /// `record() == None`).
    pub fn open_user(
        &self,
        owner: impl Into<Owner>,
        keys: &MasterKey,
    ) -> Result<UserState<'_>, StoreError> {
        let owner = owner.into();
        let inner = match &self.backend {
            Backend::Files(f) => Inner::Files(f.open_user(files_key(&owner)?, keys)?),
            Backend::Rows(r) => Inner::Rows(r.open(rows_key(&owner)?, keys)?),
        };
        Ok(UserState { owner, inner })
    }

    /// Deletes `owner`'s record without opening it, whatever state it is
    /// in: the way out for a corrupt, foreign or unreadable record
    /// (`mfa-enroll reset`).
    ///
    /// # Errors
    /// The backend's [`StoreError`].
    pub fn remove_user(&self, owner: impl Into<Owner>) -> Result<(), StoreError> {
        let owner = owner.into();
        match &self.backend {
            Backend::Files(f) => f.remove_user(files_key(&owner)?),
            Backend::Rows(r) => r.remove(&rows_key(&owner)?),
        }
    }

    /// Which key each sealed copy of `uid`'s record file names, read from
    /// the headers alone (see [`files`]). The files backend only: the
    /// shared store reports nothing here.
    ///
    /// # Errors
    /// As the files backend reports.
    pub fn sealed_under(&self, uid: u32) -> Result<Vec<SlotSeal>, StoreError> {
        match &self.backend {
            Backend::Files(f) => f.sealed_under(uid),
            Backend::Rows(_) => Ok(Vec::new()),
        }
    }

    /// The uids that have a record file, in ascending order (the files
    /// backend; the PostgreSQL backend lists [`Store::owners`]).
    ///
    /// # Errors
    /// [`StoreError::Directory`] or [`StoreError::Io`].
    pub fn uids(&self) -> Result<Vec<u32>, StoreError> {
        match &self.backend {
            Backend::Files(f) => f.uids(),
            Backend::Rows(_) => Ok(self.owners()?.iter().filter_map(Owner::uid).collect()),
        }
    }

    /// Everyone with a record: by uid for files (ascending), by name for
    /// PostgreSQL (sorted), each with the other half when this host knows it.
    ///
    /// # Errors
    /// The backend's [`StoreError`].
    pub fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        match &self.backend {
            Backend::Files(f) => Ok(f.uids()?.into_iter().map(local_by_uid).collect()),
            Backend::Rows(r) => Ok(r.names()?.into_iter().map(local_by_name).collect()),
        }
    }

    /// Reads `owner`'s record and lets go at once (no lock, no connection
    /// kept busy): the state a login decides on while the user types.
    ///
    /// # Errors
    /// Any [`StoreError`] except `NotEnrolled`. A store that cannot be read
    /// is an error, never "not enrolled".
    pub fn read(&self, owner: impl Into<Owner>, keys: &MasterKey) -> Result<Snapshot, StoreError> {
        let state = self.open_user(owner, keys)?;
        Ok(state.snapshot())
    }

    /// A login's transaction: `decide` looks at the snapshot and says what
    /// to write; the write commits only over the record `decide` saw.
    ///
    /// - Files: the commit takes the user's lock and reads the file again.
    ///   If another login committed since the snapshot, `decide` runs again
    ///   on the record just read, still under the lock, where nothing else
    ///   can commit: at most two decisions, never a lost commit.
    /// - PostgreSQL: the server compares the version. When another login
    ///   (on any host) won, the row is read again and `decide` runs again
    ///   on it, up to [`MAX_ATTEMPTS`] times.
    ///
    /// The answer is returned only once its write is durable.
    ///
    /// # Errors
    /// Any [`StoreError`] of the read or the write, or
    /// [`StoreError::Contended`] when every attempt on PostgreSQL lost.
    pub fn transact<T>(
        &self,
        snapshot: Snapshot,
        keys: &MasterKey,
        mut decide: impl FnMut(&Snapshot) -> Decision<T>,
    ) -> Result<T, StoreError> {
        let mut snapshot = snapshot;
        for _ in 0..MAX_ATTEMPTS {
            let (record, answer) = match decide(&snapshot) {
                Decision::Keep(answer) => return Ok(answer),
                Decision::Write(record, answer) => (record, answer),
            };
            let owner = &snapshot.owner;
            let mut state = match &self.backend {
                Backend::Files(f) => {
                    let mut state = UserState {
                        owner: owner.clone(),
                        inner: Inner::Files(f.open_user(files_key(owner)?, keys)?),
                    };
                    if state.version() == snapshot.version {
                        state.commit(&record, keys)?;
                        return Ok(answer);
                    }
                    return match decide(&state.snapshot()) {
                        Decision::Keep(answer) => Ok(answer),
                        Decision::Write(record, answer) => {
                            state.commit(&record, keys)?;
                            Ok(answer)
                        }
                    };
                }
                // One version-checked statement; a read only when the
                // server finds the row changed.
                Backend::Rows(r) => {
                    let version = match snapshot.version {
                        Version::Row(v) => Some(v),
                        _ => None,
                    };
                    UserState {
                        owner: owner.clone(),
                        inner: Inner::Rows(r.at_version(
                            rows_key(owner)?,
                            version,
                            snapshot.record.clone(),
                        )),
                    }
                }
            };
            match state.commit(&record, keys) {
                Ok(_) => return Ok(answer),
                Err(StoreError::Conflict { .. }) => {
                    snapshot = self.read(snapshot.owner.clone(), keys)?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Contended {
            owner: snapshot.owner,
            attempts: MAX_ATTEMPTS,
        })
    }
}

fn files_key(owner: &Owner) -> Result<u32, StoreError> {
    owner.uid.ok_or_else(|| StoreError::NoLocalAccount {
        name: owner.name.clone().unwrap_or_default(),
    })
}

fn rows_key(owner: &Owner) -> Result<String, StoreError> {
    match (&owner.name, owner.uid) {
        (Some(name), _) => Ok(name.clone()),
        // A uid alone (`--uid`): the row is the account's name, if it has one.
        (None, Some(uid)) => match nix::unistd::User::from_uid(uid.into()) {
            Ok(Some(u)) => Ok(u.name),
            _ => Err(StoreError::NameRequired { uid }),
        },
        (None, None) => Err(StoreError::NameRequired { uid: NO_UID }),
    }
}

fn local_by_uid(uid: u32) -> Owner {
    match nix::unistd::User::from_uid(uid.into()) {
        Ok(Some(u)) => Owner::new(uid, u.name),
        _ => Owner::by_uid(uid),
    }
}

fn local_by_name(name: String) -> Owner {
    match nix::unistd::User::from_name(&name) {
        Ok(Some(u)) => Owner::new(u.uid.as_raw(), name),
        _ => Owner::named(name),
    }
}

/// A user's state as a command sees it: under the user's lock (files), or
/// with the row version it was read at (PostgreSQL).
pub struct UserState<'s> {
    owner: Owner,
    inner: Inner<'s>,
}

enum Inner<'s> {
    Files(FileState<'s>),
    Rows(RowState<'s>),
}

impl fmt::Debug for UserState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserState")
            .field("owner", &self.owner)
            .field("enrolled", &self.record().is_some())
            .finish_non_exhaustive()
    }
}

impl UserState<'_> {
    /// Whose record.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The user's uid on this host, or [`NO_UID`] for a row of the shared
    /// store whose name has no account here.
    pub fn uid(&self) -> u32 {
        self.owner.uid.unwrap_or(NO_UID)
    }

    /// The record, or `None` if the user is not enrolled.
    pub fn record(&self) -> Option<&Record> {
        match &self.inner {
            Inner::Files(s) => s.record(),
            Inner::Rows(s) => s.record(),
        }
    }

    /// The record, or [`StoreError::NotEnrolled`] for commands that need one.
    ///
    /// # Errors
    /// `NotEnrolled`.
    pub fn require_record(&self) -> Result<&Record, StoreError> {
        self.record()
            .ok_or(StoreError::NotEnrolled { uid: self.uid() })
    }

    /// Key generations the record is sealed under (both halves of a
    /// record file; the one seal of a row).
    pub fn generations(&self) -> &[Generation] {
        match &self.inner {
            Inner::Files(s) => s.generations(),
            Inner::Rows(s) => s.generations(),
        }
    }

    /// If one half of a record file was unusable while the other held the
    /// state, why. Either a commit was interrupted (the state in use is the
    /// one before it) or the file was damaged; the shells log this at alert
    /// level. The next commit overwrites the bad half.
    pub fn discarded_slot(&self) -> Option<&SlotFault> {
        match &self.inner {
            Inner::Files(s) => s.discarded_slot(),
            Inner::Rows(_) => None,
        }
    }

    fn version(&self) -> Version {
        match &self.inner {
            Inner::Files(s) => s.version(),
            Inner::Rows(s) => s.version(),
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            owner: self.owner.clone(),
            record: self.record().cloned(),
            version: self.version(),
            discarded: self.discarded_slot().cloned(),
        }
    }

    /// Makes `record` the user's durable state before returning (files: in
    /// place when it fits, else by the rename protocol; PostgreSQL: one
    /// version-checked update, acknowledged by the server).
    ///
    /// # Errors
    /// Any write failure, or [`StoreError::Conflict`] if the row changed
    /// since it was read; the stored state is then the old one or the new
    /// one, never a mix, and this `UserState` refuses further commits.
    pub fn commit(&mut self, record: &Record, keys: &MasterKey) -> Result<CommitKind, StoreError> {
        match &mut self.inner {
            Inner::Files(s) => s.commit(record, keys),
            Inner::Rows(s) => s
                .write(&self.owner, record, keys)
                .map(|()| CommitKind::Replaced),
        }
    }

    /// Writes `record` sealed afresh under the active key, whatever the
    /// stored copy holds: for enrollment changes and key migration.
    ///
    /// # Errors
    /// Any write failure; the old record is then untouched.
    pub fn rewrite(&mut self, record: &Record, keys: &MasterKey) -> Result<(), StoreError> {
        match &mut self.inner {
            Inner::Files(s) => s.rewrite(record, keys),
            Inner::Rows(s) => s.write(&self.owner, record, keys),
        }
    }

    /// Deletes the user's record. Afterwards the user is not enrolled.
    ///
    /// # Errors
    /// The backend's error, or [`StoreError::Conflict`] if the row changed
    /// since it was read.
    pub fn remove(&mut self) -> Result<(), StoreError> {
        match &mut self.inner {
            Inner::Files(s) => s.remove(),
            Inner::Rows(s) => s.remove(&self.owner),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::postgres::Row;
    use super::rows::{RowClient, RowStore};
    use super::*;

    type BackendError = Box<dyn std::error::Error + Send + Sync>;

    /// One row that another host always changes first: every
    /// version-checked update finds no row at the version read.
    #[derive(Default)]
    struct AlwaysBeaten(Mutex<Option<Row>>);

    impl RowClient for AlwaysBeaten {
        fn read(&self, _name: &str) -> Result<Option<Row>, BackendError> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn replace(&self, _: &str, _: i64, _: &Row, _: &str) -> Result<bool, BackendError> {
            Ok(false)
        }
        fn create(&self, _name: &str, new: &Row, _by: &str) -> Result<bool, BackendError> {
            *self.0.lock().unwrap() = Some(new.clone());
            Ok(true)
        }
        fn delete(&self, _: &str, _: Option<i64>) -> Result<bool, BackendError> {
            Ok(false)
        }
        fn names(&self) -> Result<Vec<String>, BackendError> {
            Ok(vec!["alice".to_owned()])
        }
        fn describe(&self) -> String {
            "db.example:5432".to_owned()
        }
    }

    #[test]
    fn a_row_that_keeps_changing_is_given_up_after_the_last_attempt() {
        let keys = MasterKey::generate(1_700_000_000).unwrap();
        let store = Store {
            backend: Backend::Rows(RowStore::new(
                Box::new(AlwaysBeaten::default()),
                PathBuf::from("/nonexistent"),
                "host-a",
            )),
        };
        let alice = Owner::named("alice");
        let mut state = store.open_user(alice.clone(), &keys).unwrap();
        state
            .rewrite(&Record::new("alice", 1_700_000_000), &keys)
            .unwrap();
        let snapshot = store.read(alice, &keys).unwrap();
        let mut decisions = 0;
        let err = store
            .transact(snapshot, &keys, |snap| {
                decisions += 1;
                Decision::Write(snap.record().unwrap().clone(), ())
            })
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Contended { attempts, .. } if attempts == MAX_ATTEMPTS),
            "{err}"
        );
        assert_eq!(decisions, MAX_ATTEMPTS);
        assert!(err.to_string().contains("nothing was written"), "{err}");
    }
}

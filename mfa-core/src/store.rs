//! The encrypted per-user record store.
//!
//! One file per uid in the state directory (root, 0700), named by the
//! decimal uid. The file holds two fixed-size *slots*; each slot is a complete
//! sealed copy of the user's [`Record`]:
//!
//! ```text
//! offset size
//!  0      8   magic "PAM_MFA\0"
//!  8      2   format version (2; 1 is still read), big-endian
//! 10      4   key generation
//! 14      8   key check (derived from the generation's secret)
//! 22      8   sequence number
//! 30     12   AES-GCM nonce (random per write)
//! 42      4   ciphertext length n
//! 46      n   AES-256-GCM ciphertext of the encoded record, tag included
//! 46+n        zero padding to the slot size
//! ```
//!
//! The AAD is the 46-byte header followed by the uid (4 bytes, big-endian),
//! so a record copied to another user's path, a changed sequence number or a
//! changed generation fails to authenticate. The slot size is half the file
//! size.
//!
//! A login commits by sealing the new state into the *older* slot in place
//! and calling `fdatasync` once: a torn or interrupted write damages only the
//! slot being written, and the reader then takes the other, which holds the
//! state before the unfinished commit. Changes that do not fit the slot
//! (enrollment, a new device) and key migration use the rename protocol: a
//! new file (slot A sealed, slot B empty) is written beside the old one,
//! fsynced, renamed over it, and the directory fsynced.
//!
//! Every access happens under the user's lock, `<uid>.lock` in the same
//! directory, taken with `flock` and never unlinked (unlinking a lock file
//! lets two processes hold "the" lock on different inodes).

pub mod postgres;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use nix::fcntl::{Flock, FlockArg};
use nix::libc;
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::fsutil::{self, Access, FileError, FileTrust, RenameStep};
use crate::keys::{Generation, MasterKey, StoreKey};
use crate::random::{self, RandomUnavailable};
use crate::record::{Record, RecordTooLarge};

/// First bytes of every sealed slot.
pub const RECORD_MAGIC: [u8; 8] = *b"PAM_MFA\0";
/// The record format this build writes (it also reads the formats in
/// [`crate::record::READ_VERSIONS`]; an older record is rewritten in this
/// one at its next commit).
pub const RECORD_VERSION: u16 = crate::record::WRITE_VERSION;
/// Length of a slot's header.
pub const HEADER_LEN: usize = 46;
const TAG_LEN: usize = 16;
/// Slot sizes are multiples of this, so a slot never straddles more sectors
/// than it must.
pub const SLOT_ALIGN: usize = 512;
/// Free room left in a slot so that ordinary logins (a longer rhost, one
/// recovery code fewer or more) never need a new file.
const SLOT_SLACK: usize = 256;
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
}

type FaultHook = Arc<dyn Fn(CommitStep) -> io::Result<()> + Send + Sync>;

/// The directory of user records.
#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    trust: FileTrust,
    lock_timeout: Duration,
    fault: Option<FaultHook>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("trust", &self.trust)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

enum Slot {
    Empty,
    Valid {
        seq: u64,
        generation: Generation,
        version: u16,
        plaintext: Zeroizing<Vec<u8>>,
    },
    Invalid(SlotFault),
}

fn seal_slot(
    key: &StoreKey,
    uid: u32,
    seq: u64,
    plaintext: &[u8],
    slot_size: usize,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let nonce = random::bytes::<12>().map_err(StoreError::Random)?;
    let ct_len = plaintext.len() + TAG_LEN;
    let mut w = Writer::with_capacity(HEADER_LEN);
    w.raw(&RECORD_MAGIC);
    w.u16(RECORD_VERSION);
    w.u32(key.generation());
    w.raw(&key.check());
    w.u64(seq);
    w.raw(&nonce);
    // Bounded by MAX_SLOT, far below u32::MAX.
    w.u32(u32::try_from(ct_len).unwrap_or(u32::MAX));
    let header = w.finish();
    let mut aad = header.to_vec();
    aad.extend_from_slice(&uid.to_be_bytes());
    let cipher = Aes256Gcm::new(key.bytes().into());
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| StoreError::Corrupt {
            uid,
            reason: "encryption failed".into(),
        })?;
    let mut slot = Zeroizing::new(Vec::with_capacity(slot_size));
    slot.extend_from_slice(&header);
    slot.extend_from_slice(&ct);
    slot.resize(slot_size, 0);
    Ok(slot)
}

fn open_slot(bytes: &[u8], uid: u32, keys: &MasterKey) -> Slot {
    use SlotFault::{Corrupt, UnknownGeneration, UnknownVersion, WrongKey};
    if bytes.iter().all(|&b| b == 0) {
        return Slot::Empty;
    }
    let Some((header, rest)) = bytes.split_at_checked(HEADER_LEN) else {
        return Slot::Invalid(Corrupt("slot shorter than its header"));
    };
    let mut r = Reader::new(header);
    // The header is exactly HEADER_LEN bytes, so these reads cannot fail.
    let (Ok(magic), Ok(version), Ok(generation), Ok(check), Ok(seq), Ok(nonce), Ok(ct_len)) = (
        r.array::<8>(),
        r.u16(),
        r.u32(),
        r.array::<8>(),
        r.u64(),
        r.array::<12>(),
        r.u32(),
    ) else {
        return Slot::Invalid(Corrupt("short header"));
    };
    if magic != RECORD_MAGIC {
        return Slot::Invalid(Corrupt("bad magic"));
    }
    if !crate::record::READ_VERSIONS.contains(&version) {
        return Slot::Invalid(UnknownVersion(version));
    }
    let ct_len = ct_len as usize;
    if ct_len < TAG_LEN || ct_len > rest.len() {
        return Slot::Invalid(Corrupt("bad length"));
    }
    let (ct, padding) = rest.split_at(ct_len);
    // The padding is outside the AEAD; insist it is untouched.
    if padding.iter().any(|&b| b != 0) {
        return Slot::Invalid(Corrupt("padding altered"));
    }
    let Some(key) = keys.store_key(generation) else {
        return Slot::Invalid(UnknownGeneration(generation));
    };
    if key.check() != check {
        return Slot::Invalid(WrongKey(generation));
    }
    let mut aad = header.to_vec();
    aad.extend_from_slice(&uid.to_be_bytes());
    let cipher = Aes256Gcm::new(key.bytes().into());
    match cipher.decrypt(Nonce::from_slice(&nonce), Payload { msg: ct, aad: &aad }) {
        Ok(pt) => Slot::Valid {
            seq,
            generation,
            version,
            plaintext: Zeroizing::new(pt),
        },
        Err(_) => Slot::Invalid(Corrupt("does not authenticate")),
    }
}

/// What a reader makes of a record file's bytes.
struct Opened {
    record: Record,
    slot: usize,
    seq: u64,
    slot_size: usize,
    generations: Vec<Generation>,
    discarded: Option<SlotFault>,
}

fn fault_to_error(uid: u32, fault: &SlotFault) -> StoreError {
    match *fault {
        SlotFault::Corrupt(why) => StoreError::Corrupt {
            uid,
            reason: why.into(),
        },
        SlotFault::UnknownVersion(version) => StoreError::UnknownVersion { uid, version },
        SlotFault::UnknownGeneration(generation) => StoreError::WrongKey {
            uid,
            generation,
            missing: true,
        },
        SlotFault::WrongKey(generation) => StoreError::WrongKey {
            uid,
            generation,
            missing: false,
        },
    }
}

/// Picks the state a record file holds, or says why it holds none.
fn open_file_bytes(bytes: &[u8], uid: u32, keys: &MasterKey) -> Result<Opened, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        uid,
        reason: reason.into(),
    };
    if bytes.is_empty() {
        return Err(corrupt("empty file"));
    }
    let slot_size = bytes.len() / 2;
    if bytes.len() % 2 != 0
        || slot_size % SLOT_ALIGN != 0
        || !(HEADER_LEN + TAG_LEN..=MAX_SLOT).contains(&slot_size)
    {
        return Err(corrupt(
            "file size is not two whole slots (truncated or extended)",
        ));
    }
    let slots = [
        open_slot(&bytes[..slot_size], uid, keys),
        open_slot(&bytes[slot_size..], uid, keys),
    ];
    let mut valid = Vec::new();
    let mut faults = Vec::new();
    let mut generations = Vec::new();
    for (i, slot) in slots.into_iter().enumerate() {
        match slot {
            Slot::Valid {
                seq,
                generation,
                version,
                plaintext,
            } => {
                generations.push(generation);
                valid.push((i, seq, version, plaintext));
            }
            Slot::Invalid(f) => faults.push(f),
            Slot::Empty => {}
        }
    }
    let (slot, seq, version, plaintext) = match valid.len() {
        2 if valid[0].1 == valid[1].1 => return Err(corrupt("both slots claim one sequence")),
        2 => {
            let newer = usize::from(valid[1].1 > valid[0].1);
            valid.swap_remove(newer)
        }
        1 => valid.pop().unwrap_or_else(|| unreachable!()),
        _ => {
            // No usable state. Report the most telling fault: a newer format
            // or another key says more than "corrupt".
            faults.sort_by_key(|f| match f {
                SlotFault::UnknownVersion(_) => 0,
                SlotFault::UnknownGeneration(_) => 1,
                SlotFault::WrongKey(_) => 2,
                SlotFault::Corrupt(_) => 3,
            });
            return Err(match faults.into_iter().next() {
                Some(f) => fault_to_error(uid, &f),
                None => corrupt("no sealed state in either slot"),
            });
        }
    };
    let record = Record::decode(&plaintext, version).map_err(|e| StoreError::Corrupt {
        uid,
        reason: format!("authenticated but undecodable: {e}"),
    })?;
    Ok(Opened {
        record,
        slot,
        seq,
        slot_size,
        generations,
        discarded: faults.into_iter().next(),
    })
}

fn slot_size_for(plaintext_len: usize) -> usize {
    let needed = HEADER_LEN + plaintext_len + TAG_LEN + SLOT_SLACK;
    needed.div_ceil(SLOT_ALIGN) * SLOT_ALIGN
}

/// The open record file of a locked user.
struct OpenRecord {
    file: File,
    slot: usize,
    seq: u64,
    slot_size: usize,
}

/// A user's state, held under their lock until dropped.
pub struct UserState<'s> {
    store: &'s Store,
    uid: u32,
    _lock: Flock<File>,
    file: Option<OpenRecord>,
    record: Option<Record>,
    generations: Vec<Generation>,
    discarded: Option<SlotFault>,
    poisoned: bool,
}

impl fmt::Debug for UserState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserState")
            .field("uid", &self.uid)
            .field("enrolled", &self.record.is_some())
            .field("generations", &self.generations)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The store in `dir`, trusting files owned by `trust`'s uid.
    pub fn new(dir: impl Into<PathBuf>, trust: FileTrust) -> Self {
        Store {
            dir: dir.into(),
            trust,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            fault: None,
        }
    }

    /// Changes how long to wait for a user's lock.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Calls `hook` at every [`CommitStep`]; an error it returns makes the
    /// commit fail right there, as a failing disk would. For fault-injection
    /// tests; the shells never install one.
    #[must_use]
    pub fn with_fault_injection(
        mut self,
        hook: impl Fn(CommitStep) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.fault = Some(Arc::new(hook));
        self
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn fault(&self, step: CommitStep) -> io::Result<()> {
        self.fault.as_ref().map_or(Ok(()), |f| f(step))
    }

    /// Checks the state directory: a real directory, owned by the trusted
    /// uid, mode 0700 or stricter, on a local filesystem.
    ///
    /// # Errors
    /// [`StoreError::Directory`].
    pub fn check_dir(&self) -> Result<(), StoreError> {
        fsutil::check_dir(&self.dir, self.trust, Access::OwnerOnly)
            .map_err(StoreError::Directory)?;
        fsutil::check_local(&self.dir).map_err(StoreError::Directory)
    }

    fn record_path(&self, uid: u32) -> PathBuf {
        self.dir.join(uid.to_string())
    }

    fn lock(&self, uid: u32) -> Result<Flock<File>, StoreError> {
        let path = self.dir.join(format!("{uid}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| StoreError::Unreadable(FileError::io(&path, e)))?;
        fsutil::check_open_file(&path, &file, self.trust, Access::OwnerOnly, 0)
            .map_err(StoreError::Unreadable)?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    let waited = start.elapsed();
                    if waited >= self.lock_timeout {
                        return Err(StoreError::LockTimeout { uid, waited });
                    }
                    std::thread::sleep(pause.min(self.lock_timeout.saturating_sub(waited)));
                    pause = (pause * 2).min(Duration::from_millis(50));
                    file = f;
                }
                Err((_, errno)) => {
                    return Err(StoreError::Io {
                        path,
                        err: io::Error::from(errno),
                    })
                }
            }
        }
    }

    /// Locks `uid` and reads their record. The lock is held until the
    /// returned [`UserState`] is dropped: read, decide, commit, unlock.
    ///
    /// # Errors
    /// Any [`StoreError`] except `NotEnrolled` (an absent record is
    /// `record() == None`).
    pub fn open_user(&self, uid: u32, keys: &MasterKey) -> Result<UserState<'_>, StoreError> {
        self.check_dir()?;
        let lock = self.lock(uid)?;
        let path = self.record_path(uid);
        let mut state = UserState {
            store: self,
            uid,
            _lock: lock,
            file: None,
            record: None,
            generations: Vec::new(),
            discarded: None,
            poisoned: false,
        };
        let file = match fsutil::open_nofollow(&path, true) {
            Ok(f) => f,
            Err(e) if e.is_missing() => return Ok(state),
            Err(e) => return Err(StoreError::Unreadable(e)),
        };
        let meta =
            fsutil::check_open_file(&path, &file, self.trust, Access::OwnerOnly, MAX_RECORD_FILE)
                .map_err(StoreError::Unreadable)?;
        let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        file.read_exact_at(&mut bytes, 0)
            .map_err(|err| StoreError::Io {
                path: path.clone(),
                err,
            })?;
        let opened = open_file_bytes(&bytes, uid, keys)?;
        state.file = Some(OpenRecord {
            file,
            slot: opened.slot,
            seq: opened.seq,
            slot_size: opened.slot_size,
        });
        state.record = Some(opened.record);
        state.generations = opened.generations;
        state.discarded = opened.discarded;
        Ok(state)
    }

    /// Deletes `uid`'s record under their lock without opening it, whatever
    /// state it is in: the way out for a corrupt, foreign or unreadable
    /// record (`mfa-enroll reset`). The lock file stays.
    ///
    /// # Errors
    /// [`StoreError::Directory`], [`StoreError::LockTimeout`] or [`StoreError::Io`].
    pub fn remove_user(&self, uid: u32) -> Result<(), StoreError> {
        self.check_dir()?;
        let _lock = self.lock(uid)?;
        self.unlink_record(uid)
    }

    fn unlink_record(&self, uid: u32) -> Result<(), StoreError> {
        let path = self.record_path(uid);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(StoreError::Io { path, err }),
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|err| StoreError::Io {
                path: self.dir.clone(),
                err,
            })
    }

    /// Which key each sealed slot of `uid`'s record file names, read from the
    /// slot headers alone: no key is needed and nothing is decrypted, so
    /// `doctor` can tell which generations the records need even when the
    /// key file is missing. Empty slots and slots whose header is not a
    /// sealed header of this format are left out. Read without the user's
    /// lock (a diagnostic): a slot being rewritten at that moment may be
    /// left out or show its new state.
    ///
    /// # Errors
    /// [`StoreError::Unreadable`] if the file fails its checks or is
    /// missing, [`StoreError::Corrupt`] if its size is not two whole slots,
    /// [`StoreError::Io`] if it cannot be read.
    pub fn sealed_under(&self, uid: u32) -> Result<Vec<SlotSeal>, StoreError> {
        let path = self.record_path(uid);
        let file = fsutil::open_nofollow(&path, true).map_err(StoreError::Unreadable)?;
        let meta =
            fsutil::check_open_file(&path, &file, self.trust, Access::OwnerOnly, MAX_RECORD_FILE)
                .map_err(StoreError::Unreadable)?;
        let slot_size = usize::try_from(meta.len() / 2).unwrap_or(usize::MAX);
        if meta.len() % 2 != 0
            || slot_size % SLOT_ALIGN != 0
            || !(HEADER_LEN + TAG_LEN..=MAX_SLOT).contains(&slot_size)
        {
            return Err(StoreError::Corrupt {
                uid,
                reason: "file size is not two whole slots (truncated or extended)".into(),
            });
        }
        let mut seals = Vec::new();
        for slot in 0..2 {
            let mut header = [0u8; HEADER_LEN];
            file.read_exact_at(&mut header, (slot * slot_size) as u64)
                .map_err(|err| StoreError::Io {
                    path: path.clone(),
                    err,
                })?;
            let mut r = Reader::new(&header);
            // Every format so far shares this header; a newer one is left out.
            if let (
                Ok(RECORD_MAGIC),
                Ok(1..=RECORD_VERSION),
                Ok(generation),
                Ok(key_check),
                Ok(seq),
            ) = (r.array::<8>(), r.u16(), r.u32(), r.array::<8>(), r.u64())
            {
                seals.push(SlotSeal {
                    generation,
                    key_check,
                    seq,
                });
            }
        }
        Ok(seals)
    }

    /// The uids that have a record file, in ascending order.
    ///
    /// # Errors
    /// [`StoreError::Directory`] or [`StoreError::Io`].
    pub fn uids(&self) -> Result<Vec<u32>, StoreError> {
        self.check_dir()?;
        let entries = std::fs::read_dir(&self.dir).map_err(|err| StoreError::Io {
            path: self.dir.clone(),
            err,
        })?;
        let mut uids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| StoreError::Io {
                path: self.dir.clone(),
                err,
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Canonical decimal only: "007" or "+7" is not a record name.
            if let Ok(uid) = name.parse::<u32>() {
                if uid.to_string() == name {
                    uids.push(uid);
                }
            }
        }
        uids.sort_unstable();
        Ok(uids)
    }
}

impl UserState<'_> {
    /// The user.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The record, or `None` if the user is not enrolled.
    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref()
    }

    /// The record, or [`StoreError::NotEnrolled`] for commands that need one.
    ///
    /// # Errors
    /// `NotEnrolled`.
    pub fn require_record(&self) -> Result<&Record, StoreError> {
        self.record
            .as_ref()
            .ok_or(StoreError::NotEnrolled { uid: self.uid })
    }

    /// Key generations the record file's valid slots are sealed under.
    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// If one slot was unusable while the other held the state, why. Either
    /// a commit was interrupted (the state in use is the one before it) or
    /// the file was damaged; the shells log this at alert level. The next
    /// commit overwrites the bad slot.
    pub fn discarded_slot(&self) -> Option<&SlotFault> {
        self.discarded.as_ref()
    }

    /// Makes `record` the user's durable state before returning: in place
    /// (one write, one `fdatasync`) when it fits the existing file, otherwise
    /// by the rename protocol.
    ///
    /// # Errors
    /// Any write failure; the state on disk is then the old one or the new
    /// one, never a mix, and this `UserState` refuses further commits.
    pub fn commit(&mut self, record: &Record, keys: &MasterKey) -> Result<CommitKind, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let plaintext = record.encode().map_err(StoreError::TooLarge)?;
        let fits = self
            .file
            .as_ref()
            .is_some_and(|f| HEADER_LEN + plaintext.len() + TAG_LEN <= f.slot_size);
        let result = if fits {
            self.commit_in_place(&plaintext, keys)
                .map(|()| CommitKind::InPlace)
        } else {
            self.rewrite_with(&plaintext, keys)
                .map(|()| CommitKind::Rewritten)
        };
        match result {
            Ok(kind) => {
                self.record = Some(record.clone());
                Ok(kind)
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Writes `record` as a fresh file by the rename protocol, whatever the
    /// current file holds: for enrollment changes and key migration, which
    /// re-seal both slots under the active key.
    ///
    /// # Errors
    /// Any write failure; the old file is then untouched.
    pub fn rewrite(&mut self, record: &Record, keys: &MasterKey) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let plaintext = record.encode().map_err(StoreError::TooLarge)?;
        match self.rewrite_with(&plaintext, keys) {
            Ok(()) => {
                self.record = Some(record.clone());
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    fn commit_in_place(&mut self, plaintext: &[u8], keys: &MasterKey) -> Result<(), StoreError> {
        let store = self.store;
        let path = store.record_path(self.uid);
        let io_err = |err| StoreError::Io {
            path: path.clone(),
            err,
        };
        let Some(f) = self.file.as_mut() else {
            return Err(StoreError::Poisoned);
        };
        let key = keys.active_store_key();
        let target = 1 - f.slot;
        let seq = f.seq + 1;
        let slot = seal_slot(key, self.uid, seq, plaintext, f.slot_size)?;
        store.fault(CommitStep::BeforeSlotWrite).map_err(io_err)?;
        f.file
            .write_all_at(&slot, (target * f.slot_size) as u64)
            .map_err(io_err)?;
        store.fault(CommitStep::SlotWritten).map_err(io_err)?;
        f.file.sync_data().map_err(io_err)?;
        store.fault(CommitStep::SlotSynced).map_err(io_err)?;
        f.slot = target;
        f.seq = seq;
        self.discarded = None;
        self.generations.retain(|g| *g != key.generation());
        self.generations.push(key.generation());
        Ok(())
    }

    fn rewrite_with(&mut self, plaintext: &[u8], keys: &MasterKey) -> Result<(), StoreError> {
        let store = self.store;
        let path = store.record_path(self.uid);
        let key = keys.active_store_key();
        let slot_size = slot_size_for(plaintext.len());
        if slot_size > MAX_SLOT {
            return Err(StoreError::TooLarge(RecordTooLarge(
                "sealed record exceeds the slot limit",
            )));
        }
        let seq = self.file.as_ref().map_or(1, |f| f.seq + 1);
        let mut contents = seal_slot(key, self.uid, seq, plaintext, slot_size)?;
        contents.resize(2 * slot_size, 0);
        if let Err(err) = fsutil::write_atomic_with(&path, &contents, 0o600, true, &mut |step| {
            store.fault(CommitStep::Rename(step))
        }) {
            self.undo_rename(&path, &contents, keys);
            return Err(StoreError::Io { path, err });
        }
        let file = fsutil::open_nofollow(&path, true).map_err(StoreError::Unreadable)?;
        self.file = Some(OpenRecord {
            file,
            slot: 0,
            seq,
            slot_size,
        });
        self.generations = vec![key.generation()];
        self.discarded = None;
        Ok(())
    }

    /// After a rename commit failed, possibly after the rename itself (the
    /// directory sync failed): if the new file is in place, put the old state
    /// back, so a commit reported as failed never leaves its state behind.
    /// Best effort: the disk is already failing.
    fn undo_rename(&self, path: &Path, new_contents: &[u8], keys: &MasterKey) {
        let in_place = std::fs::read(path).is_ok_and(|on_disk| on_disk == new_contents);
        if !in_place {
            return;
        }
        match (&self.record, &self.file) {
            (Some(old), Some(f)) => {
                let Ok(plaintext) = old.encode() else { return };
                let key = keys.active_store_key();
                // The old state under the next sequence number, so that no
                // copy of the failed state can win over it.
                if let Ok(mut restored) = seal_slot(
                    key,
                    self.uid,
                    f.seq + 2,
                    &plaintext,
                    f.slot_size.max(slot_size_for(plaintext.len())),
                ) {
                    let size = restored.len();
                    restored.resize(2 * size, 0);
                    let _ = fsutil::write_atomic(path, &restored, 0o600, true);
                }
            }
            _ => {
                let _ = self.store.unlink_record(self.uid);
            }
        }
    }

    /// Deletes the user's record (the lock file stays). Afterwards the user
    /// is not enrolled.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the file cannot be removed or the directory synced.
    pub fn remove(&mut self) -> Result<(), StoreError> {
        self.store.unlink_record(self.uid)?;
        self.file = None;
        self.record = None;
        self.generations.clear();
        self.discarded = None;
        Ok(())
    }
}

/// Reads the state a record file's bytes hold, exactly as the store would,
/// without touching the filesystem: for inspection tools and fuzzing.
///
/// # Errors
/// The [`StoreError`] the store would report.
pub fn decode_record_file(
    bytes: &[u8],
    uid: u32,
    keys: &MasterKey,
) -> Result<(Record, Option<SlotFault>), StoreError> {
    open_file_bytes(bytes, uid, keys).map(|o| (o.record, o.discarded))
}

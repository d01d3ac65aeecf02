//! The files backend: one record file per uid.
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

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::libc;
use zeroize::Zeroizing;

use super::seal::{self, Binding, Slot};
use super::{
    CommitKind, CommitStep, SlotFault, SlotSeal, StoreError, Version, HEADER_LEN, MAX_RECORD_FILE,
    MAX_SLOT, RECORD_MAGIC, RECORD_VERSION, SLOT_ALIGN, TAG_LEN,
};
use crate::codec::Reader;
use crate::fsutil::{self, Access, FileError, FileTrust};
use crate::keys::{Generation, MasterKey};
use crate::record::{Record, RecordTooLarge};

/// Free room left in a slot so that ordinary logins (a longer rhost, one
/// recovery code fewer or more) never need a new file.
const SLOT_SLACK: usize = 256;

type FaultHook = Arc<dyn Fn(CommitStep) -> io::Result<()> + Send + Sync>;

/// The directory of user records.
#[derive(Clone)]
pub(super) struct FileStore {
    dir: PathBuf,
    trust: FileTrust,
    lock_timeout: Duration,
    fault: Option<FaultHook>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("trust", &self.trust)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

/// What a reader makes of a record file's bytes.
struct Opened {
    record: Record,
    slot: usize,
    seq: u64,
    nonce: [u8; 12],
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
        seal::open(&bytes[..slot_size], Binding::Uid(uid), keys),
        seal::open(&bytes[slot_size..], Binding::Uid(uid), keys),
    ];
    let mut valid = Vec::new();
    let mut faults = Vec::new();
    let mut generations = Vec::new();
    for (i, slot) in slots.into_iter().enumerate() {
        match slot {
            Slot::Valid {
                seq,
                nonce,
                generation,
                version,
                plaintext,
            } => {
                generations.push(generation);
                valid.push((i, seq, nonce, version, plaintext));
            }
            Slot::Invalid(f) => faults.push(f),
            Slot::Empty => {}
        }
    }
    let (slot, seq, nonce, version, plaintext) = match valid.len() {
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
        nonce,
        slot_size,
        generations,
        discarded: faults.into_iter().next(),
    })
}

/// The nonce of a slot just sealed.
fn nonce_of(sealed: &[u8]) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce.copy_from_slice(&sealed[seal::NONCE_AT]);
    nonce
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
    /// The nonce of the slot in use: the record's version, with `seq`.
    nonce: [u8; 12],
    slot_size: usize,
}

/// A user's state, held under their lock until dropped.
pub(super) struct FileState<'s> {
    store: &'s FileStore,
    uid: u32,
    _lock: Flock<File>,
    file: Option<OpenRecord>,
    record: Option<Record>,
    generations: Vec<Generation>,
    discarded: Option<SlotFault>,
    poisoned: bool,
}

impl fmt::Debug for FileState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileState")
            .field("uid", &self.uid)
            .field("enrolled", &self.record.is_some())
            .field("generations", &self.generations)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// The store in `dir`, trusting files owned by `trust`'s uid.
    pub fn new(dir: impl Into<PathBuf>, trust: FileTrust) -> Self {
        FileStore {
            dir: dir.into(),
            trust,
            lock_timeout: super::DEFAULT_LOCK_TIMEOUT,
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
    /// returned [`FileState`] is dropped: read, decide, commit, unlock.
    ///
    /// # Errors
    /// Any [`StoreError`] except `NotEnrolled` (an absent record is
    /// `record() == None`).
    pub fn open_user(&self, uid: u32, keys: &MasterKey) -> Result<FileState<'_>, StoreError> {
        self.check_dir()?;
        let lock = self.lock(uid)?;
        let path = self.record_path(uid);
        let mut state = FileState {
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
            nonce: opened.nonce,
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

impl FileState<'_> {
    /// The sequence number and nonce of the slot the state was read from.
    pub(super) fn version(&self) -> Version {
        self.file
            .as_ref()
            .map_or(Version::Absent, |f| Version::File {
                seq: f.seq,
                nonce: f.nonce,
            })
    }

    /// The record, or `None` if the user is not enrolled.
    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref()
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
    /// one, never a mix, and this `FileState` refuses further commits.
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
        let slot = seal::seal(key, Binding::Uid(self.uid), seq, plaintext, f.slot_size)?;
        store.fault(CommitStep::BeforeSlotWrite).map_err(io_err)?;
        f.file
            .write_all_at(&slot, (target * f.slot_size) as u64)
            .map_err(io_err)?;
        store.fault(CommitStep::SlotWritten).map_err(io_err)?;
        f.file.sync_data().map_err(io_err)?;
        store.fault(CommitStep::SlotSynced).map_err(io_err)?;
        f.slot = target;
        f.seq = seq;
        f.nonce = nonce_of(&slot);
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
        let mut contents = seal::seal(key, Binding::Uid(self.uid), seq, plaintext, slot_size)?;
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
            nonce: nonce_of(&contents),
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
                if let Ok(mut restored) = seal::seal(
                    key,
                    Binding::Uid(self.uid),
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

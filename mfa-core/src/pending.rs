//! Self-service enrollments waiting in the spool.
//!
//! A user runs `mfa-enroll` without privileges. It seals what it made (a new
//! device and a new set of recovery codes, or only new recovery codes) with
//! HPKE to the host's enrollment public key and writes it into the spool
//! directory (root, mode 1733: anyone may create a file, nobody may list or
//! remove another's) as `<uid>.<random>`, a file the user owns. Only root can
//! open it, and only as that uid's enrollment.
//!
//! At the user's next authentication the module looks for files named
//! `<uid>.*`, and takes the newest one that
//!
//! * is a regular file owned by that uid, not writable by others, within
//!   [`MAX_PENDING_FILE`] bytes,
//! * opens under the master key as that uid's enrollment, and
//! * is younger than `enrollment.pending_max_age`.
//!
//! Anything else is ignored and logged; files owned by the uid that fail
//! the checks are deleted so they do not pile up. A file someone else
//! created under the user's prefix is owned by someone else, so it can
//! neither block nor replace the user's own enrollment.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;
use zeroize::Zeroizing;

use crate::codec::{hex_encode, DecodeError, Reader, Writer};
use crate::fsutil::{self, FileTrust};
use crate::keys::{EnrollmentPublicKey, MasterKey, SealedError};
use crate::random;
use crate::record::{decode_device, decode_recovery, encode_device, encode_recovery, Device};
use crate::recovery::RecoveryHashes;

/// No pending enrollment is larger.
pub const MAX_PENDING_FILE: u64 = 16 * 1024;
/// How far in the future a pending enrollment's creation time may lie
/// (clock skew between the user's command and the login).
const FUTURE_SLACK: u64 = 300;

/// What a pending enrollment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Add this device and replace the recovery codes with this set.
    Device {
        /// The device, verified once by the user when it was made.
        device: Device,
        /// The recovery codes the user was shown, hashed.
        recovery: RecoveryHashes,
    },
    /// Replace the recovery codes with this set.
    RecoveryCodes {
        /// The new codes, hashed.
        recovery: RecoveryHashes,
    },
}

/// A self-service enrollment as sealed into the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// When the user made it (Unix seconds).
    pub created: u64,
    /// What it asks for.
    pub request: Request,
}

const TAG_DEVICE: u8 = 1;
const TAG_RECOVERY: u8 = 2;

impl Pending {
    /// Encodes the plaintext that gets sealed.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u64(self.created);
        match &self.request {
            Request::Device { device, recovery } => {
                w.u8(TAG_DEVICE);
                encode_device(&mut w, device);
                encode_recovery(&mut w, recovery);
            }
            Request::RecoveryCodes { recovery } => {
                w.u8(TAG_RECOVERY);
                encode_recovery(&mut w, recovery);
            }
        }
        w.finish()
    }

    /// Decodes a plaintext, refusing anything malformed.
    ///
    /// # Errors
    /// [`DecodeError`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let created = r.u64()?;
        let request = match r.u8()? {
            TAG_DEVICE => Request::Device {
                device: decode_device(&mut r)?,
                recovery: decode_recovery(&mut r)?,
            },
            TAG_RECOVERY => Request::RecoveryCodes {
                recovery: decode_recovery(&mut r)?,
            },
            _ => return Err(DecodeError("unknown pending request")),
        };
        r.finish()?;
        Ok(Pending { created, request })
    }

    /// Seals this enrollment for `uid` to the host's public key.
    ///
    /// # Errors
    /// [`SealedError::SealFailed`].
    pub fn seal(&self, key: &EnrollmentPublicKey, uid: u32) -> Result<Vec<u8>, SealedError> {
        key.seal(uid, &self.encode())
    }
}

/// Writes a sealed enrollment into the spool as a new file `<uid>.<random>`
/// owned by the caller, mode 0600, synced before returning.
///
/// # Errors
/// The I/O error (for example a spool directory that does not exist).
pub fn write_to_spool(spool: &Path, uid: u32, sealed: &[u8]) -> io::Result<PathBuf> {
    let suffix = random::bytes::<8>().map_err(|e| io::Error::other(e.to_string()))?;
    let path = spool.join(format!("{uid}.{}", hex_encode(&suffix).as_str()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)?;
    let result = file.write_all(sealed).and_then(|()| file.sync_all());
    if let Err(e) = result {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// A pending enrollment that passed every check.
#[derive(Debug)]
pub struct Found {
    /// Its file, to delete once it has been applied.
    pub path: PathBuf,
    /// What it asks for.
    pub pending: Pending,
}

/// A file under the user's prefix that was not used, and why.
#[derive(Debug)]
pub struct Ignored {
    /// The file.
    pub path: PathBuf,
    /// Why, for the log.
    pub reason: String,
}

/// Why the spool itself could not be searched.
#[derive(Debug)]
pub struct SpoolError(pub String);

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; pending self-service enrollments are ignored until this is fixed (mode 1733, owner root)", self.0)
    }
}

impl std::error::Error for SpoolError {}

/// The result of looking for `uid`'s pending enrollment.
#[derive(Debug, Default)]
pub struct Search {
    /// The newest valid one, if any.
    pub found: Option<Found>,
    /// Files that were passed over.
    pub ignored: Vec<Ignored>,
}

/// Checks the spool directory: owned by the trusted uid, sticky, and not
/// listable or writable by group/others except through the sticky bit.
///
/// # Errors
/// [`SpoolError`] saying what is wrong.
pub fn check_spool(spool: &Path, trust: FileTrust) -> Result<(), SpoolError> {
    let meta =
        fs::symlink_metadata(spool).map_err(|e| SpoolError(format!("{}: {e}", spool.display())))?;
    if !meta.is_dir() {
        return Err(SpoolError(format!(
            "{} is not a directory",
            spool.display()
        )));
    }
    if meta.uid() != trust.owner() {
        return Err(SpoolError(format!(
            "{} is owned by uid {}",
            spool.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o044 != 0 {
        return Err(SpoolError(format!(
            "{} can be listed by others, who would see who has a pending enrollment",
            spool.display()
        )));
    }
    if meta.mode() & 0o1000 == 0 {
        return Err(SpoolError(format!(
            "{} lacks the sticky bit, so users could remove each other's files",
            spool.display()
        )));
    }
    Ok(())
}

/// Looks for `uid`'s pending enrollment. Files owned by `uid` that fail a
/// check are deleted; files owned by anyone else are only reported.
///
/// # Errors
/// [`SpoolError`] if the spool is unusable (a missing spool means "none").
pub fn find(
    spool: &Path,
    uid: u32,
    keys: &MasterKey,
    trust: FileTrust,
    max_age: u64,
    now: u64,
) -> Result<Search, SpoolError> {
    let mut search = Search::default();
    match fs::symlink_metadata(spool) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(search),
        _ => check_spool(spool, trust)?,
    }
    let prefix = format!("{uid}.");
    let entries =
        fs::read_dir(spool).map_err(|e| SpoolError(format!("{}: {e}", spool.display())))?;
    let mut candidates: Vec<Found> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(&prefix) {
            continue;
        }
        let path = entry.path();
        match open_one(&path, uid, keys, max_age, now) {
            Ok(pending) => candidates.push(Found { path, pending }),
            Err((reason, owned)) => {
                if owned {
                    let _ = fs::remove_file(&path);
                }
                search.ignored.push(Ignored { path, reason });
            }
        }
    }
    candidates.sort_by_key(|f| f.pending.created);
    if let Some(newest) = candidates.pop() {
        for older in candidates {
            let _ = fs::remove_file(&older.path);
            search.ignored.push(Ignored {
                path: older.path,
                reason: "superseded by a newer enrollment".into(),
            });
        }
        search.found = Some(newest);
    }
    Ok(search)
}

/// Opens and checks one file. On refusal, says why and whether the file
/// belongs to `uid` (and may therefore be deleted).
fn open_one(
    path: &Path,
    uid: u32,
    keys: &MasterKey,
    max_age: u64,
    now: u64,
) -> Result<Pending, (String, bool)> {
    let mut file: File = fsutil::open_nofollow(path, false).map_err(|e| (e.to_string(), false))?;
    let meta = file.metadata().map_err(|e| (e.to_string(), false))?;
    if meta.uid() != uid {
        return Err((format!("owned by uid {}, not {uid}", meta.uid()), false));
    }
    if !meta.file_type().is_file() {
        return Err(("not a regular file".into(), true));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(("writable by others".into(), true));
    }
    if meta.len() > MAX_PENDING_FILE {
        return Err((
            format!("{} bytes, more than {MAX_PENDING_FILE}", meta.len()),
            true,
        ));
    }
    let mut sealed = Vec::new();
    (&mut file)
        .take(MAX_PENDING_FILE + 1)
        .read_to_end(&mut sealed)
        .map_err(|e| (e.to_string(), true))?;
    let plaintext = keys
        .open_enrollment(&sealed, uid)
        .map_err(|e| (e.to_string(), true))?;
    let pending = Pending::decode(&plaintext).map_err(|e| (format!("malformed: {e}"), true))?;
    if pending.created > now.saturating_add(FUTURE_SLACK) {
        return Err(("created in the future".into(), true));
    }
    if now.saturating_sub(pending.created) > max_age {
        return Err(("older than enrollment.pending_max_age".into(), true));
    }
    Ok(pending)
}

/// The uids with at least one file in the spool, ascending, judged by name
/// only (`<uid>.*`): for listings; nothing is opened or checked.
pub fn waiting_uids(spool: &Path) -> Vec<u32> {
    let mut uids: Vec<u32> = fs::read_dir(spool)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let (uid, _) = name.to_str()?.split_once('.')?;
                    uid.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// Deletes an applied pending enrollment.
///
/// # Errors
/// The I/O error; a file already gone is fine.
pub fn remove(found: &Found) -> io::Result<()> {
    match fs::remove_file(&found.path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What an administrator's approval changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approved {
    /// The device was added (the user's first, or another one).
    Device(String),
    /// The recovery codes were replaced.
    RecoveryCodes,
}

/// Applies `found` to `uid`'s record on an administrator's say-so
/// (`mfa-enroll approve`): the way a first device gets in under the `deny`
/// policy. `username` names a record that does not exist yet. The spool file
/// is removed once the record is durable.
///
/// # Errors
/// A store error; or [`StoreError::NotEnrolled`] for new recovery codes of a
/// user with no record.
pub fn approve(
    store: &crate::store::Store,
    keys: &MasterKey,
    uid: u32,
    username: &str,
    found: &Found,
    now: u64,
) -> Result<Approved, crate::store::StoreError> {
    let mut state = store.open_user(uid, keys)?;
    let (mut record, approved) = match &found.pending.request {
        Request::Device { device, recovery } => {
            let mut record = state
                .record()
                .cloned()
                .unwrap_or_else(|| crate::record::Record::new(username, now));
            record.devices.retain(|d| d.name != device.name);
            record.devices.push(device.clone());
            record.recovery = Some(recovery.clone());
            (record, Approved::Device(device.name.clone()))
        }
        Request::RecoveryCodes { recovery } => {
            let mut record = state.require_record()?.clone();
            record.recovery = Some(recovery.clone());
            (record, Approved::RecoveryCodes)
        }
    };
    record
        .validate()
        .map_err(crate::store::StoreError::TooLarge)?;
    // An approved device starts with a clean slate of failures.
    crate::throttle::clear(&mut record);
    state.rewrite(&record, keys)?;
    drop(state);
    // Durable now; a file that lingers is offered again and only re-adds it.
    let _ = remove(found);
    Ok(approved)
}

//! The spool: the directory where self-service requests wait.
//!
//! `mfa-enroll` writes a sealed [`Pending`] request into the spool
//! directory (root, mode 1733: anyone may create a file, nobody may list or
//! remove another's) as `<uid>.<random>`, a file the user owns.
//!
//! At the user's next authentication the module looks for files named
//! `<uid>.*`, and takes the newest one that
//!
//! * is a regular file owned by that uid, not writable by others, within
//!   [`MAX_PENDING_FILE`] bytes,
//! * opens under the master key as that uid's enrollment, and
//! * is younger than `enrollment.pending_max_age`.
//!
//! Anything else is ignored and logged; entries owned by the uid that fail
//! the checks are deleted so they do not pile up (a symbolic link, FIFO or
//! other non-regular entry is removed without being opened or followed). A
//! file someone else created under the user's prefix is owned by someone
//! else, so it can neither block nor replace the user's own enrollment.
//!
//! The same scan removes the requests of every other user that have
//! expired, so that requests of users who never log in, and entries planted
//! under someone else's prefix, do not stay for ever: any entry with a
//! request name (`<uid>.<suffix>`, the uid in canonical decimal) other than
//! a directory, whatever its owner, whose inode last changed more than
//! `enrollment.pending_max_age` ago. The inode change time is what the
//! owner cannot set back (`touch` can move the modification time, but
//! moves the change time to now), and a request sealed inside is never
//! younger than it. Entries are examined with `fstatat` and removed with
//! `unlinkat` relative to the spool directory as it was opened and checked,
//! never through a path that is resolved again and never following a link.
//! Entries under the user's prefix are examined at every scan; of the other
//! users' requests, a large spool has a random share examined at each scan
//! (the first 16 listed, then one in 16), so that fresh requests waiting in
//! numbers do not make every login pay for examining each of them.

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::AtFlags;
use nix::libc;
use nix::sys::stat::{fstatat, FileStat, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::codec::hex_encode;
use crate::fsutil::{self, FileTrust};
use crate::keys::MasterKey;
use crate::pending::Pending;
use crate::random;

/// No pending enrollment is larger.
pub const MAX_PENDING_FILE: u64 = 16 * 1024;
/// How far in the future a pending enrollment's creation time may lie
/// (clock skew between the user's command and the login).
const FUTURE_SLACK: u64 = 300;

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
    /// Files under the user's prefix that were passed over (and, if the
    /// user's own, removed: the reason says so).
    pub ignored: Vec<Ignored>,
    /// Expired requests of other users, removed during the scan.
    pub expired: Expired,
}

/// Requests of other users found expired during a scan of the spool.
#[derive(Debug, Default)]
pub struct Expired {
    /// Removed.
    pub removed: Vec<PathBuf>,
    /// Expired but not removed, and why.
    pub failed: Vec<Ignored>,
}

/// How many paths one summary line names before it only counts.
const SUMMARY_PATHS: usize = 10;

impl Expired {
    /// True if the scan found no expired request of another user.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.failed.is_empty()
    }

    /// One line for the auth log saying what was removed (and what could
    /// not be), however many files it was; `None` if nothing was expired.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.removed.is_empty() {
            parts.push(listing(
                &format!(
                    "removed {} of other users (unchanged for longer than enrollment.pending_max_age)",
                    requests(self.removed.len())
                ),
                self.removed.iter().map(|p| p.display().to_string()),
            ));
        }
        if !self.failed.is_empty() {
            parts.push(listing(
                &format!("could not remove {}", requests(self.failed.len())),
                self.failed
                    .iter()
                    .map(|f| format!("{}: {}", f.path.display(), f.reason)),
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn requests(n: usize) -> String {
    format!("{n} expired request{}", if n == 1 { "" } else { "s" })
}

/// `head: a, b, c and 4 more`.
fn listing(head: &str, items: impl ExactSizeIterator<Item = String>) -> String {
    let n = items.len();
    let shown: Vec<String> = items.take(SUMMARY_PATHS).collect();
    let more = if n > SUMMARY_PATHS {
        format!(" and {} more", n - SUMMARY_PATHS)
    } else {
        String::new()
    };
    format!("{head}: {}{more}", shown.join(", "))
}

/// Checks the spool directory: owned by the trusted uid, sticky, and not
/// listable or writable by group/others except through the sticky bit.
///
/// # Errors
/// [`SpoolError`] saying what is wrong.
pub fn check_spool(spool: &Path, trust: FileTrust) -> Result<(), SpoolError> {
    let meta =
        fs::symlink_metadata(spool).map_err(|e| SpoolError(format!("{}: {e}", spool.display())))?;
    check_spool_meta(spool, &meta, trust)
}

fn check_spool_meta(spool: &Path, meta: &Metadata, trust: FileTrust) -> Result<(), SpoolError> {
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

/// Opens the spool directory without following a symlink and checks the
/// directory it opened. `None` if there is no spool.
fn open_spool(spool: &Path, trust: FileTrust) -> Result<Option<Dir>, SpoolError> {
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(spool)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // A symlink or a file in its place: say which, as the path check does.
            check_spool(spool, trust)?;
            return Err(SpoolError(format!("{}: {e}", spool.display())));
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| SpoolError(format!("{}: {e}", spool.display())))?;
    check_spool_meta(spool, &meta, trust)?;
    Dir::from(file)
        .map(Some)
        .map_err(|e| SpoolError(format!("{}: {e}", spool.display())))
}

/// Whether `name` is a request name, `<uid>.<suffix>` with the uid in
/// canonical decimal (what [`write_to_spool`] makes, and the names the
/// module looks at); returns the uid.
pub fn request_name_uid(name: &str) -> Option<u32> {
    let (uid, suffix) = name.split_once('.')?;
    // Canonical: digits only ("+7" parses), no leading zero ("007").
    let canonical =
        uid.bytes().all(|b| b.is_ascii_digit()) && (uid == "0" || !uid.starts_with('0'));
    if !canonical || suffix.is_empty() {
        return None;
    }
    uid.parse().ok()
}

/// What kind of entry an `lstat` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Directory,
    Symlink,
    Other,
}

impl Kind {
    fn of(st: &FileStat) -> Self {
        match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFREG => Kind::Regular,
            SFlag::S_IFDIR => Kind::Directory,
            SFlag::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Kind::Symlink => "a symbolic link (never followed)",
            Kind::Directory => "a directory, not a regular file",
            Kind::Regular | Kind::Other => "not a regular file",
        }
    }
}

/// Every scan examines the first this many requests of other users it
/// lists (all of them, in a small spool)...
const SWEEP_ALWAYS: usize = 16;
/// ...and of the rest one in this many, a different random share at every
/// scan: listing a name costs a third of a microsecond, examining it
/// (`fstatat`) three times that, so a login in a spool full of fresh
/// requests costs little more than listing it, and an expired request is
/// still removed within a few logins (after 100, with a chance below 0.2 %
/// of having been missed every time).
const SWEEP_SHARE: u64 = 16;

/// Decides which requests of other users a scan examines for expiry.
struct Sweep {
    seen: usize,
    share: Option<u64>,
}

impl Sweep {
    fn new() -> Self {
        Sweep {
            seen: 0,
            share: None,
        }
    }

    /// Whether to examine the next request of another user, named `name`.
    fn examines(&mut self, name: &str) -> bool {
        self.seen += 1;
        if self.seen <= SWEEP_ALWAYS {
            return true;
        }
        // Without randomness, examine everything: slower, never wrong.
        let share = *self.share.get_or_insert_with(|| {
            random::bytes::<8>().map_or(u64::MAX, |b| u64::from_le_bytes(b) % SWEEP_SHARE)
        });
        share == u64::MAX || fnv1a(name.as_bytes()) % SWEEP_SHARE == share
    }
}

/// FNV-1a: spreads names over the shares; not a defence against anything.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// True if the entry has not changed for longer than `max_age` seconds.
fn expired(st: &FileStat, max_age: u64, now: u64) -> bool {
    u64::try_from(st.st_ctime).is_ok_and(|changed| now.saturating_sub(changed) > max_age)
}

/// Removes `name` from the directory `dir` itself; never follows a link.
/// An entry already gone counts as removed.
fn unlink_entry(dir: RawFd, name: &str, kind: Kind) -> Result<(), nix::errno::Errno> {
    let flag = if kind == Kind::Directory {
        // Only an empty one goes.
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    match unlinkat(Some(dir), name, flag) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes one of the user's own entries that failed a check, and says so
/// in `reason`.
fn remove_own(dir: RawFd, name: &str, kind: Kind, reason: &str) -> String {
    match unlink_entry(dir, name, kind) {
        Ok(()) => format!("{reason}; removed"),
        Err(e) => format!("{reason}; could not be removed: {e}"),
    }
}

/// Looks for `uid`'s pending enrollment among the files named `<uid>.*`.
/// Entries owned by `uid` that fail a check are deleted; entries owned by
/// anyone else are only reported. Along the way, expired requests of every
/// other user are deleted (see the module documentation).
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
    let Some(mut dir) = open_spool(spool, trust)? else {
        return Ok(search);
    };
    // Owned by `dir`, which outlives every use below.
    let fd = dir.as_raw_fd();
    let prefix = format!("{uid}.");
    let mut candidates: Vec<(Found, String)> = Vec::new();
    let mut sweep = Sweep::new();
    for entry in dir.iter().flatten() {
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        let mine = name.starts_with(&prefix);
        let request = request_name_uid(name).is_some();
        let examine = mine || (request && sweep.examines(name));
        if !examine {
            continue;
        }
        // lstat semantics: the entry itself, never what a link points to.
        let Ok(st) = fstatat(Some(fd), entry.file_name(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            // Gone since the listing.
            continue;
        };
        let kind = Kind::of(&st);
        let expired = request && kind != Kind::Directory && expired(&st, max_age, now);
        if !mine && !expired {
            // A request of someone else that is still fresh.
            continue;
        }
        let path = spool.join(name);
        if mine && st.st_uid == uid {
            if kind != Kind::Regular {
                let reason = remove_own(fd, name, kind, kind.refusal());
                search.ignored.push(Ignored { path, reason });
                continue;
            }
            match open_one(&path, uid, keys, max_age, now) {
                Ok(pending) => candidates.push((Found { path, pending }, name.to_owned())),
                Err((reason, owned)) => {
                    let reason = if owned {
                        remove_own(fd, name, Kind::Regular, &reason)
                    } else {
                        reason
                    };
                    search.ignored.push(Ignored { path, reason });
                }
            }
        } else if expired {
            match unlink_entry(fd, name, kind) {
                Ok(()) => search.expired.removed.push(path),
                Err(e) => search.expired.failed.push(Ignored {
                    path,
                    reason: e.to_string(),
                }),
            }
        } else if mine {
            let what = if kind == Kind::Regular {
                String::new()
            } else {
                format!("{}, ", kind.refusal())
            };
            search.ignored.push(Ignored {
                path,
                reason: format!("{what}owned by uid {}, not {uid}", st.st_uid),
            });
        }
    }
    candidates.sort_by_key(|(f, _)| f.pending.created);
    if let Some((newest, _)) = candidates.pop() {
        for (older, name) in candidates {
            let reason = remove_own(fd, &name, Kind::Regular, "superseded by a newer enrollment");
            search.ignored.push(Ignored {
                path: older.path,
                reason,
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

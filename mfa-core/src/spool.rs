//! The spool: the directory where self-service requests wait.
//!
//! `mfa-enroll` writes a sealed [`Pending`] request into the spool
//! directory (root, mode 1733: anyone may create a file, nobody may list or
//! remove another's) as `<uid>.<random>`, a file the user owns.
//!
//! Anyone can create anything in the spool, under any name: files named
//! after someone else's uid, directories, links, names that are no
//! request's. So that none of it can be used against another user, every
//! scan ([`find`], at each authentication and in `mfa-enroll approve`)
//! removes what it meets that cannot be a request, and does a bounded
//! amount of work however full the spool is.
//!
//! # What a request is
//!
//! A request is a regular file named `<uid>.<suffix>` (the uid in canonical
//! decimal, see [`request_name_uid`]), owned by that uid, not writable by
//! group or others, at most [`MAX_PENDING_FILE`] bytes, and younger than
//! `enrollment.pending_max_age`. Its age is that of the oldest of its
//! modification time, its inode change time and (once opened) the creation
//! time sealed inside: `touch` can set the modification time back but moves
//! the change time to now, `chmod` moves only the change time, and nothing
//! makes a sealed request younger than it was made.
//!
//! # What a scan removes
//!
//! Every entry it examines that is not a request: a name that is not a
//! request name, a directory (if empty: `unlinkat(AT_REMOVEDIR)`), a
//! symbolic link (the link itself, never what it points to), FIFO, socket
//! or device, a file not owned by the uid in its name (root may remove
//! anyone's file from a sticky directory), a file writable by others or
//! too large, an expired request, and of one uid's requests those beyond
//! the [`MAX_REQUESTS_PER_UID`] newest. The user's own requests that do not
//! open, or open as something else, are removed too (the user is logging
//! in; a request they can use is never removed unless a newer one
//! supersedes it).
//!
//! A directory that is not empty is left where it is and reported: root
//! does not walk down a tree its maker controls and can change while it
//! is walked, which is how cleaners running as root come to delete what
//! they should not. An administrator looks at it and removes it by hand
//! (`rm -r`); until then each scan that meets it spends one `fstatat` on it.
//!
//! # Bounded work
//!
//! A scan lists the whole directory (a name costs a third of a
//! microsecond; nothing is examined while listing; a second listing only
//! gathers the names of uids with more than [`MAX_REQUESTS_PER_UID`]
//! entries, when there are such uids). Then it examines at most
//! [`MAX_EXAMINED`] entries, one `fstatat` each and for each at most one
//! `unlinkat`; of those it removes at most [`MAX_DIRECTORIES_REMOVED`]
//! directories, which cost far more than files; and it opens (and
//! unseals) at most [`MAX_REQUESTS_PER_UID`] files, all of them the user's
//! own. What it examines comes in this order, each group in a random order
//! of its own so that nobody can place entries to be met first:
//!
//! 1. entries named after the user's uid that may be regular files (the
//!    type `readdir` reports), where the user's own request is;
//! 2. other entries named after the user's uid (directories, links);
//! 3. names that are not request names, and other users' entries that
//!    `readdir` reports as not regular files;
//! 4. requests of uids with more than [`MAX_REQUESTS_PER_UID`] names in the
//!    spool (a second listing, only when there are such uids);
//! 5. other users' requests, a share of them at each scan: the first 16
//!    listed, then one in 16, a different random share each time.
//!
//! What is left at a limit waits for the next scan, which begins again
//! with the first group. Entries planted under a user's uid therefore go
//! at that user's logins, [`MAX_EXAMINED`] (and [`MAX_DIRECTORIES_REMOVED`]
//! directories) at a time, before anything else; while more than
//! [`MAX_EXAMINED`] files of someone else sit under the user's uid, the
//! user's own request is among those examined at a login with a matching
//! chance (256 of 3000: about one in twelve), and certainly once they are
//! gone. The summary line names their owner at every such login, and
//! `mfa-enroll approve` ([`requests_of`]) examines every entry under the
//! user's uid, without these limits, so a flood can delay a request but
//! not hide it.
//!
//! Everything removed or left is reported in one line per scan
//! ([`Cleanup::summary`]: counts, the owners, a few names escaped), not one
//! line per entry. The user's own entries that were passed over are the one
//! exception: each is reported on its own ([`Search::ignored`], at most
//! [`MAX_IGNORED`] per scan, the rest counted in the summary), because it
//! tells the user why their request was not used, and each is removed once
//! reported.
//!
//! Entries are examined with `fstatat(AT_SYMLINK_NOFOLLOW)` and removed
//! with `unlinkat` relative to the spool directory as it was opened and
//! checked, never through a path resolved again and never following a
//! link; a file is opened without following a link and used only if it is
//! the inode that was examined.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fmt::{self, Write as _};
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
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

/// The most spool entries one scan examines: one `fstatat` each and at
/// most one `unlinkat` (see the module documentation).
pub const MAX_EXAMINED: usize = 256;

/// The most directories one scan removes. Removing a directory costs far
/// more than removing a file (the directory's own block and inode are
/// freed: from 50 µs to 3 ms each on the disks measured, against 10 to 20
/// µs for a file), so a spool full of empty directories is emptied a few
/// at each scan instead of making one login wait for all of them.
pub const MAX_DIRECTORIES_REMOVED: usize = 4;

/// The most requests of one uid the spool keeps: a scan removes the oldest
/// beyond, and opens at most this many of the user's own (the newest by
/// their file times).
pub const MAX_REQUESTS_PER_UID: usize = 4;

/// The most of the user's own unusable entries one scan reports one by
/// one in [`Search::ignored`]; the rest are counted in the summary line.
pub const MAX_IGNORED: usize = 8;

/// Writes a sealed request as `<uid>.<16 random hex digits>` in `spool`,
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

/// One of the user's own entries that was not used, and why.
#[derive(Debug)]
pub struct Ignored {
    /// The entry (its name escaped if it has bytes a terminal or a log
    /// could take for something else).
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
    /// The user's own entries (owned by the uid logging in) that were
    /// passed over, each with its reason (saying whether it was removed);
    /// at most [`MAX_IGNORED`], the rest counted in `expired`.
    pub ignored: Vec<Ignored>,
    /// Everything else the scan removed or left: other users' expired
    /// requests, entries not owned by the uid in their name, directories,
    /// names that are not requests, and so on. One line for the log, from
    /// [`Cleanup::summary`]. (The field is named after what it first held.)
    pub expired: Cleanup,
}

/// Why an entry of the spool cannot be a request (and was removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// A request of another user older than `enrollment.pending_max_age`.
    Expired,
    /// A name that is not `<uid>.<suffix>`.
    NotRequestName,
    /// A directory.
    Directory,
    /// Not owned by the uid in its name.
    WrongOwner,
    /// A symbolic link, FIFO, socket or device.
    NotRegular,
    /// Writable by group or others, or larger than [`MAX_PENDING_FILE`].
    Unsafe,
    /// One of more than [`MAX_REQUESTS_PER_UID`] requests of one uid, not
    /// among the newest.
    Surplus,
}

impl Unusable {
    /// The order of the summary line (expired requests first, as before
    /// the other reasons existed).
    const ALL: [Unusable; 7] = [
        Unusable::Expired,
        Unusable::WrongOwner,
        Unusable::Directory,
        Unusable::NotRegular,
        Unusable::NotRequestName,
        Unusable::Unsafe,
        Unusable::Surplus,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|&u| u == self).unwrap_or(0)
    }

    /// `n` entries of this kind, for the summary line.
    fn describe(self, n: usize) -> String {
        let one = n == 1;
        let (entry, its) = if one {
            ("entry", "its")
        } else {
            ("entries", "their")
        };
        match self {
            Unusable::Expired => format!(
                "{n} expired request{} of other users (older than enrollment.pending_max_age)",
                if one { "" } else { "s" }
            ),
            Unusable::WrongOwner => {
                format!("{n} {entry} not owned by the uid in {its} name")
            }
            Unusable::Directory => {
                format!("{n} empty director{}", if one { "y" } else { "ies" })
            }
            Unusable::NotRegular => format!(
                "{n} symbolic link{s}, FIFO{s} or other {entry} that {is} not a regular file",
                s = if one { "" } else { "s" },
                is = if one { "is" } else { "are" }
            ),
            Unusable::NotRequestName => {
                format!("{n} {entry} whose name is not a request's (<uid>.<suffix>)")
            }
            Unusable::Unsafe => format!(
                "{n} file{} writable by others or larger than {MAX_PENDING_FILE} bytes",
                if one { "" } else { "s" }
            ),
            Unusable::Surplus => format!(
                "{n} request{} beyond the {MAX_REQUESTS_PER_UID} newest of one uid",
                if one { "" } else { "s" }
            ),
        }
    }
}

/// How many names a part of the summary line shows before it only counts.
const SUMMARY_NAMES: usize = 3;
/// How many owners a part of the summary line names.
const SUMMARY_OWNERS: usize = 3;
/// How many bytes of a name the summary shows.
const SUMMARY_NAME_BYTES: usize = 64;

/// Entries of one kind: how many, a few of their paths, their owners.
#[derive(Debug, Default, Clone)]
struct Tally {
    count: usize,
    paths: Vec<String>,
    owners: Vec<u32>,
    more_owners: bool,
    /// For failures: the first error.
    error: Option<String>,
}

impl Tally {
    /// Counts one more; `path` makes its shown path, only while a few
    /// are shown (a flood of thousands formats three).
    fn add(&mut self, path: impl FnOnce() -> String, owner: Option<u32>) {
        self.count += 1;
        if self.paths.len() < SUMMARY_NAMES {
            self.paths.push(path());
        }
        if let Some(owner) = owner {
            if !self.owners.contains(&owner) {
                if self.owners.len() < SUMMARY_OWNERS {
                    self.owners.push(owner);
                } else {
                    self.more_owners = true;
                }
            }
        }
    }

    /// `head (owned by uid 1002): a, b, c and 17 more`.
    fn describe(&self, head: &str) -> String {
        let mut s = head.to_owned();
        if !self.owners.is_empty() {
            let owners: Vec<String> = self.owners.iter().map(u32::to_string).collect();
            let _ = write!(
                s,
                " (owned by uid {}{})",
                owners.join(", "),
                if self.more_owners { " and others" } else { "" }
            );
        }
        if !self.paths.is_empty() {
            let _ = write!(s, ": {}", self.paths.join(", "));
            if self.count > self.paths.len() {
                let _ = write!(s, " and {} more", self.count - self.paths.len());
            }
        }
        if let Some(e) = &self.error {
            let _ = write!(s, " (first error: {e})");
        }
        s
    }
}

/// What a scan removed or left that is not reported one by one: summed up
/// in one line by [`Cleanup::summary`].
#[derive(Debug, Default, Clone)]
pub struct Cleanup {
    removed: [Tally; Unusable::ALL.len()],
    /// Non-empty directories, left.
    left: Tally,
    /// Entries that should have gone but could not be removed.
    failed: Tally,
    /// The user's own unusable entries beyond [`MAX_IGNORED`] (removed).
    own_more: usize,
    /// Entries examined (one `fstatat` each), at most [`MAX_EXAMINED`].
    pub examined: usize,
    /// Entries the scan would have examined first (under the user's uid,
    /// names that are not requests, non-regular entries, crowded uids)
    /// but left for a later scan because it had examined [`MAX_EXAMINED`]
    /// entries or removed [`MAX_DIRECTORIES_REMOVED`] directories.
    pub deferred: usize,
}

impl Cleanup {
    /// How many entries were removed for `why`.
    pub fn removed(&self, why: Unusable) -> usize {
        self.removed[why.index()].count
    }

    /// How many entries were removed in all (the user's own unusable
    /// entries beyond [`MAX_IGNORED`] included).
    pub fn removed_total(&self) -> usize {
        self.removed.iter().map(|t| t.count).sum::<usize>() + self.own_more
    }

    /// How many non-empty directories were met and left.
    pub fn left_non_empty(&self) -> usize {
        self.left.count
    }

    /// How many entries should have been removed but could not be.
    pub fn failed(&self) -> usize {
        self.failed.count
    }

    /// True if the scan found nothing to report.
    pub fn is_empty(&self) -> bool {
        self.removed_total() == 0
            && self.left.count == 0
            && self.failed.count == 0
            && self.deferred == 0
    }

    /// One line for the auth log saying what was removed, what was left
    /// and whether the scan stopped at its limit, however many entries it
    /// was; `None` if there is nothing to say. Names are escaped (see
    /// [`escape_name`]) and shortened; at most a few of each kind.
    pub fn summary(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        for why in Unusable::ALL {
            let t = &self.removed[why.index()];
            if t.count > 0 {
                parts.push(t.describe(&format!("removed {}", why.describe(t.count))));
            }
        }
        if self.own_more > 0 {
            parts.push(format!(
                "removed {} more unusable entries of the user logging in (the first {MAX_IGNORED} are logged one by one)",
                self.own_more
            ));
        }
        if self.left.count > 0 {
            let n = self.left.count;
            parts.push(self.left.describe(&format!(
                "left {n} non-empty director{} (not walked as root: look, then remove by hand)",
                if n == 1 { "y" } else { "ies" }
            )));
        }
        if self.failed.count > 0 {
            parts.push(
                self.failed
                    .describe(&format!("could not remove {}", self.failed.count)),
            );
        }
        if self.deferred > 0 {
            parts.push(format!(
                "examined {} entries; {} left for the next scan (one examines at most {MAX_EXAMINED} entries and removes at most {MAX_DIRECTORIES_REMOVED} directories)",
                self.examined, self.deferred
            ));
        } else {
            parts.push(format!("examined {} entries", self.examined));
        }
        Some(parts.join("; "))
    }
}

/// A file name as it may be shown in a log or on a terminal: printable
/// ASCII as it is (a backslash doubled), every other byte as `\xNN`, and
/// at most [`SUMMARY_NAME_BYTES`] bytes of the name (then `...`).
pub fn escape_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len().min(SUMMARY_NAME_BYTES) + 3);
    for &b in name.iter().take(SUMMARY_NAME_BYTES) {
        match b {
            b'\\' => out.push_str("\\\\"),
            _ if b.is_ascii_graphic() => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if name.len() > SUMMARY_NAME_BYTES {
        out.push_str("...");
    }
    out
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

/// A small fast generator for the order of examination and the sweep's
/// share, seeded from the kernel (splitmix64): it only has to be
/// unpredictable to whoever plants entries, not a key.
struct Rng {
    state: u64,
    /// False if the kernel gave no seed: the order is then the listing's
    /// and the sweep examines everything it can.
    seeded: bool,
}

impl Rng {
    fn new() -> Self {
        match random::bytes::<8>() {
            Ok(b) => Rng {
                state: u64::from_le_bytes(b),
                seeded: true,
            },
            Err(_) => Rng {
                state: 0,
                seeded: false,
            },
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0); the modulo bias is irrelevant here.
    fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next() % n64).unwrap_or(0)
    }
}

/// A listed entry waiting to be examined.
struct Listed {
    name: CString,
    /// The uid its name carries, if it is a request name.
    named: Option<u32>,
    /// `readdir` says it is a directory.
    dir: bool,
}

/// A uniformly random choice of at most `cap` of the entries offered
/// (reservoir sampling), and how many were offered: memory stays bounded
/// however many entries the spool holds.
struct Sample {
    cap: usize,
    seen: usize,
    items: Vec<Listed>,
}

impl Sample {
    fn new(cap: usize) -> Self {
        Sample {
            cap,
            seen: 0,
            items: Vec::new(),
        }
    }

    fn offer(&mut self, item: Listed, rng: &mut Rng) {
        self.seen += 1;
        if self.items.len() < self.cap {
            self.items.push(item);
        } else if rng.seeded {
            let j = rng.below(self.seen);
            if j < self.cap {
                self.items[j] = item;
            }
        }
    }

    /// The entries kept, in a random order.
    fn shuffled(mut self, rng: &mut Rng) -> (Vec<Listed>, usize) {
        if rng.seeded {
            for i in (1..self.items.len()).rev() {
                let j = rng.below(i + 1);
                self.items.swap(i, j);
            }
        }
        (self.items, self.seen)
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

/// Decides which requests of other users a scan examines.
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
    fn examines(&mut self, name: &[u8], rng: &mut Rng) -> bool {
        self.seen += 1;
        if self.seen <= SWEEP_ALWAYS {
            return true;
        }
        // Without randomness, examine everything (within the limit).
        let share = *self.share.get_or_insert_with(|| {
            if rng.seeded {
                rng.next() % SWEEP_SHARE
            } else {
                u64::MAX
            }
        });
        share == u64::MAX || fnv1a(name) % SWEEP_SHARE == share
    }
}

/// FNV-1a: spreads names over the shares; not a defence against anything.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The older of an entry's modification and change times: a request is
/// as old as the oldest of its times.
fn file_time(st: &FileStat) -> i64 {
    st.st_mtime.min(st.st_ctime)
}

/// True if `time` (Unix seconds) lies more than `max_age` seconds before
/// `now`; a time in the future is not old.
fn too_old(time: i64, max_age: u64, now: u64) -> bool {
    u64::try_from(time).map_or(true, |t| now.saturating_sub(t) > max_age)
}

/// Whether the entry the name `named` and the `lstat` result `st` describe
/// can be a request; if not, why.
fn judge(named: Option<u32>, st: &FileStat, max_age: u64, now: u64) -> Result<(), Unusable> {
    let Some(uid) = named else {
        return Err(Unusable::NotRequestName);
    };
    match Kind::of(st) {
        Kind::Directory => return Err(Unusable::Directory),
        _ if st.st_uid != uid => return Err(Unusable::WrongOwner),
        Kind::Symlink | Kind::Other => return Err(Unusable::NotRegular),
        Kind::Regular => {}
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if st.st_mode & 0o022 != 0 || size > MAX_PENDING_FILE {
        return Err(Unusable::Unsafe);
    }
    if too_old(file_time(st), max_age, now) {
        return Err(Unusable::Expired);
    }
    Ok(())
}

/// Why one of the user's own entries (owned by the uid) cannot be theirs
/// to use, as the log says it.
fn own_refusal(why: Unusable, st: &FileStat) -> String {
    match why {
        Unusable::Directory => Kind::Directory.refusal().to_owned(),
        Unusable::NotRegular => Kind::of(st).refusal().to_owned(),
        Unusable::Unsafe if st.st_mode & 0o022 != 0 => "writable by others".to_owned(),
        Unusable::Unsafe => format!("{} bytes, more than {MAX_PENDING_FILE}", st.st_size),
        Unusable::Expired => "older than enrollment.pending_max_age".to_owned(),
        Unusable::Surplus => format!(
            "superseded: more than {MAX_REQUESTS_PER_UID} requests waiting, and the newest were examined"
        ),
        // Not reached for the user's own entries; said plainly all the same.
        Unusable::NotRequestName | Unusable::WrongOwner => "not a request".to_owned(),
    }
}

/// What removing an entry came to.
enum Removal {
    Removed,
    /// A directory with something in it: left (see the module documentation).
    NotEmpty,
    Failed(Errno),
}

/// Removes `name` from the directory `dir` itself, a directory only if it
/// is empty; never follows a link. An entry already gone counts as
/// removed.
fn unlink_entry(dir: RawFd, name: &CStr, kind: Kind) -> Removal {
    let flag = if kind == Kind::Directory {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    match unlinkat(Some(dir), name, flag) {
        Ok(()) | Err(Errno::ENOENT) => Removal::Removed,
        Err(Errno::ENOTEMPTY | Errno::EEXIST) if kind == Kind::Directory => Removal::NotEmpty,
        Err(e) => Removal::Failed(e),
    }
}

/// One scan of the spool directory `fd` (shown as `spool`) for `uid`.
struct Scan<'a> {
    fd: RawFd,
    spool: &'a Path,
    uid: u32,
    max_age: u64,
    now: u64,
    budget: usize,
    /// How many more directories this scan may remove.
    dirs_left: usize,
    /// Entries removed so far, by the uid in their name.
    removed_per_uid: HashMap<u32, usize>,
    search: Search,
}

impl Scan<'_> {
    fn path(&self, name: &CStr) -> String {
        format!("{}/{}", self.spool.display(), escape_name(name.to_bytes()))
    }

    /// `fstatat` without following a link, counted against the budget;
    /// `None` if the entry is gone.
    fn examine(&mut self, name: &CStr) -> Option<FileStat> {
        self.budget -= 1;
        self.search.expired.examined += 1;
        fstatat(Some(self.fd), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
    }

    /// Removes an entry that is not the user's own business, and tallies it.
    fn remove(&mut self, name: &CStr, named: Option<u32>, st: &FileStat, why: Unusable) {
        let path = || format!("{}/{}", self.spool.display(), escape_name(name.to_bytes()));
        let cleanup = &mut self.search.expired;
        match unlink_entry(self.fd, name, Kind::of(st)) {
            Removal::Removed => {
                if Kind::of(st) == Kind::Directory {
                    self.dirs_left = self.dirs_left.saturating_sub(1);
                }
                cleanup.removed[why.index()].add(path, Some(st.st_uid));
                if let Some(n) = named {
                    *self.removed_per_uid.entry(n).or_default() += 1;
                }
            }
            Removal::NotEmpty => cleanup.left.add(path, Some(st.st_uid)),
            Removal::Failed(e) => {
                cleanup.failed.add(path, Some(st.st_uid));
                cleanup.failed.error.get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// Reports one of the user's own entries, removing it first if `remove`.
    fn ignore_own(&mut self, name: &CStr, kind: Kind, reason: &str, remove: bool) {
        let reason = if remove {
            match unlink_entry(self.fd, name, kind) {
                Removal::Removed => {
                    if kind == Kind::Directory {
                        self.dirs_left = self.dirs_left.saturating_sub(1);
                    }
                    format!("{reason}; removed")
                }
                Removal::NotEmpty => format!("{reason}; not empty, left (remove it by hand)"),
                Removal::Failed(e) => format!("{reason}; could not be removed: {e}"),
            }
        } else {
            reason.to_owned()
        };
        if self.search.ignored.len() < MAX_IGNORED {
            let path = PathBuf::from(self.path(name));
            self.search.ignored.push(Ignored { path, reason });
        } else {
            self.search.expired.own_more += 1;
        }
    }

    /// Examines the entries of `list` (of `seen` listed) while the budget
    /// lasts; returns the plausible requests of other users met, with their
    /// `lstat`, and the user's own (owned by the uid) plausible requests.
    fn examine_all(&mut self, list: Vec<Listed>, seen: usize, deferrable: bool) -> Kept {
        let mut kept = Kept::default();
        let mut done = 0;
        for item in list {
            if self.budget == 0 {
                break;
            }
            if item.dir && self.dirs_left == 0 {
                // Waits for a later scan, unexamined.
                continue;
            }
            let Some(st) = self.examine(&item.name) else {
                done += 1;
                continue;
            };
            if Kind::of(&st) == Kind::Directory && self.dirs_left == 0 {
                continue;
            }
            done += 1;
            let verdict = judge(item.named, &st, self.max_age, self.now);
            let own = item.named == Some(self.uid) && st.st_uid == self.uid;
            match (verdict, own) {
                (Ok(()), true) => kept.own.push((item.name, st)),
                (Ok(()), false) => kept.others.push((item, st)),
                (Err(why), true) => {
                    let reason = own_refusal(why, &st);
                    self.ignore_own(&item.name, Kind::of(&st), &reason, true);
                }
                (Err(why), false) => self.remove(&item.name, item.named, &st, why),
            }
        }
        if deferrable {
            self.search.expired.deferred += seen - done;
        }
        kept
    }
}

/// Plausible requests met while examining.
#[derive(Default)]
struct Kept {
    /// The user's own, to open.
    own: Vec<(CString, FileStat)>,
    /// Other users', kept (unless one uid has too many).
    others: Vec<(Listed, FileStat)>,
}

/// Looks for `uid`'s pending enrollment among the files named `<uid>.*`
/// and cleans the spool on the way, within a bounded amount of work (see
/// the module documentation). The newest usable request is the result;
/// the user's older ones and their unusable entries are removed and
/// reported in [`Search::ignored`]; everything else removed or left is
/// summed up in [`Search::expired`].
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
    let Some((mut requests, mut search)) =
        scan_spool(spool, uid, keys, trust, max_age, now, Reach::WholeSpool)?
    else {
        return Ok(Search::default());
    };
    if !requests.is_empty() {
        let newest = requests.remove(0);
        for older in requests {
            let reason = match remove(&older) {
                Ok(()) => "superseded by a newer enrollment; removed".to_owned(),
                Err(e) => format!("superseded by a newer enrollment; could not be removed: {e}"),
            };
            if search.ignored.len() < MAX_IGNORED {
                search.ignored.push(Ignored {
                    path: older.path,
                    reason,
                });
            } else {
                search.expired.own_more += 1;
            }
        }
        search.found = Some(newest);
    }
    Ok(search)
}

/// Every usable request of `uid`, newest first (by the creation time
/// sealed inside), for an administrator to choose from; nothing usable is
/// removed. Only entries named after `uid` are examined, but all of them,
/// without the limits of a login's scan (so that no flood of planted files
/// can hide a request from the administrator): the user's own unusable
/// ones are removed and reported one by one, and what else was removed
/// under the user's uid (entries of other owners, directories) is reported
/// as one more entry whose path is the spool itself.
///
/// # Errors
/// [`SpoolError`] if the spool is unusable (a missing spool means "none").
pub fn requests_of(
    spool: &Path,
    uid: u32,
    keys: &MasterKey,
    trust: FileTrust,
    max_age: u64,
    now: u64,
) -> Result<(Vec<Found>, Vec<Ignored>), SpoolError> {
    let Some((requests, search)) =
        scan_spool(spool, uid, keys, trust, max_age, now, Reach::UsersOwn)?
    else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut ignored = search.ignored;
    if let Some(summary) = search.expired.summary() {
        ignored.push(Ignored {
            path: spool.to_path_buf(),
            reason: summary,
        });
    }
    Ok((requests, ignored))
}

/// How much of the spool a scan looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The entries named after the user's uid, then the rest of the spool.
    WholeSpool,
    /// Only the entries named after the user's uid.
    UsersOwn,
}

/// The scan behind [`find`] and [`requests_of`]: the user's usable
/// requests, newest first, and what was passed over, removed or left.
/// `None` if there is no spool.
fn scan_spool(
    spool: &Path,
    uid: u32,
    keys: &MasterKey,
    trust: FileTrust,
    max_age: u64,
    now: u64,
    reach: Reach,
) -> Result<Option<(Vec<Found>, Search)>, SpoolError> {
    let Some(mut dir) = open_spool(spool, trust)? else {
        return Ok(None);
    };
    let mut rng = Rng::new();
    // Owned by `dir`, which outlives every use below.
    let fd = dir.as_raw_fd();
    // An administrator's `approve` waits for as long as it takes: it
    // examines every entry under the user's uid, so that a flood of
    // planted files can delay a request at logins but never hide it.
    let (budget, dirs) = match reach {
        Reach::WholeSpool => (MAX_EXAMINED, MAX_DIRECTORIES_REMOVED),
        Reach::UsersOwn => (usize::MAX, usize::MAX),
    };
    let mut scan = Scan {
        fd,
        spool,
        uid,
        max_age,
        now,
        budget,
        dirs_left: dirs,
        removed_per_uid: HashMap::new(),
        search: Search::default(),
    };

    let Listing {
        own_files,
        own_other,
        junk,
        others,
        mut names_per_uid,
    } = list(&mut dir, uid, budget, &mut rng);

    // 1 and 2: under the user's uid.
    let (list, seen) = own_files.shuffled(&mut rng);
    let mut kept = scan.examine_all(list, seen, true);
    let (list, seen) = own_other.shuffled(&mut rng);
    kept.own.extend(scan.examine_all(list, seen, true).own);
    if reach == Reach::UsersOwn {
        let requests = open_own(&mut scan, keys, kept.own);
        return Ok(Some((requests, scan.search)));
    }
    // 3: certainly not requests.
    let (list, seen) = junk.shuffled(&mut rng);
    scan.examine_all(list, seen, true);
    // 4: uids with more names than requests they may keep.
    names_per_uid.retain(|_, n| *n > MAX_REQUESTS_PER_UID);
    if !names_per_uid.is_empty() && scan.budget > 0 {
        let crowded = list_crowded(&mut dir, &names_per_uid, scan.budget, &mut rng);
        let (list, seen) = crowded.shuffled(&mut rng);
        let kept = scan.examine_all(list, seen, true);
        remove_surplus(&mut scan, kept.others, &names_per_uid);
    }
    // 5: a share of the other users' requests.
    let (list, seen) = others.shuffled(&mut rng);
    let list: Vec<Listed> = list
        .into_iter()
        .filter(|item| !item.named.is_some_and(|n| names_per_uid.contains_key(&n)))
        .collect();
    scan.examine_all(list, seen, false);

    let requests = open_own(&mut scan, keys, kept.own);
    drop(dir);
    Ok(Some((requests, scan.search)))
}

/// What one listing of the spool gathered, by the order of examination.
struct Listing {
    /// Named after the user's uid, maybe regular files.
    own_files: Sample,
    /// Named after the user's uid, something else.
    own_other: Sample,
    /// Names that are not request names, and other uids' entries that are
    /// not regular files.
    junk: Sample,
    /// Other users' requests in this scan's share.
    others: Sample,
    /// How many names each other uid has in the spool.
    names_per_uid: HashMap<u32, usize>,
}

/// Lists the spool for `uid`'s scan; nothing is examined while it runs.
/// The user's own entries are sampled up to `own_cap`, the rest up to
/// [`MAX_EXAMINED`].
fn list(dir: &mut Dir, uid: u32, own_cap: usize, rng: &mut Rng) -> Listing {
    let mut l = Listing {
        own_files: Sample::new(own_cap),
        own_other: Sample::new(own_cap),
        junk: Sample::new(MAX_EXAMINED),
        others: Sample::new(MAX_EXAMINED),
        names_per_uid: HashMap::new(),
    };
    let mut sweep = Sweep::new();
    for entry in dir.iter().map_while(Result::ok) {
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let named = std::str::from_utf8(bytes).ok().and_then(request_name_uid);
        // What readdir says the entry is: only to choose the order.
        let maybe_file = matches!(entry.file_type(), None | Some(Type::File));
        let item = Listed {
            name: name.to_owned(),
            named,
            dir: entry.file_type() == Some(Type::Directory),
        };
        match named {
            Some(n) if n == uid => {
                if maybe_file {
                    l.own_files.offer(item, rng);
                } else {
                    l.own_other.offer(item, rng);
                }
            }
            Some(n) => {
                // Bounded: a uid not yet counted once the map is full is
                // simply not recognised as crowded.
                if l.names_per_uid.len() < 4 * MAX_EXAMINED || l.names_per_uid.contains_key(&n) {
                    *l.names_per_uid.entry(n).or_default() += 1;
                }
                if !maybe_file {
                    l.junk.offer(item, rng);
                } else if sweep.examines(bytes, rng) {
                    l.others.offer(item, rng);
                }
            }
            None => l.junk.offer(item, rng),
        }
    }
    l
}

/// Lists the spool again for the entries of `crowded` uids that may be
/// regular files, at most `cap` of them.
fn list_crowded(dir: &mut Dir, crowded: &HashMap<u32, usize>, cap: usize, rng: &mut Rng) -> Sample {
    let mut sample = Sample::new(cap);
    for entry in dir.iter().map_while(Result::ok) {
        let name = entry.file_name();
        let named = std::str::from_utf8(name.to_bytes())
            .ok()
            .and_then(request_name_uid);
        let maybe_file = matches!(entry.file_type(), None | Some(Type::File));
        if maybe_file && named.is_some_and(|n| crowded.contains_key(&n)) {
            let item = Listed {
                name: name.to_owned(),
                named,
                dir: false,
            };
            sample.offer(item, rng);
        }
    }
    sample
}

/// Of crowded uids' plausible requests met (`kept`), removes the oldest
/// while the uid still has more than [`MAX_REQUESTS_PER_UID`] names in the
/// spool; a uid's newest request met is never removed.
fn remove_surplus(
    scan: &mut Scan<'_>,
    mut kept: Vec<(Listed, FileStat)>,
    names: &HashMap<u32, usize>,
) {
    kept.sort_by_key(|(_, st)| std::cmp::Reverse(file_time(st)));
    let mut kept_per_uid: HashMap<u32, usize> = HashMap::new();
    for (item, st) in kept {
        let Some(n) = item.named else { continue };
        let newer = kept_per_uid.entry(n).or_default();
        *newer += 1;
        let gone = scan.removed_per_uid.get(&n).copied().unwrap_or(0);
        let left = names.get(&n).copied().unwrap_or(0).saturating_sub(gone);
        if *newer > MAX_REQUESTS_PER_UID && left > MAX_REQUESTS_PER_UID {
            scan.remove(&item.name, item.named, &st, Unusable::Surplus);
        }
    }
}

/// Opens the user's plausible requests, newest first by their file times
/// and at most [`MAX_REQUESTS_PER_UID`] of them (older ones beyond are
/// removed unopened); returns those that are usable, newest first by the
/// creation time sealed inside.
fn open_own(
    scan: &mut Scan<'_>,
    keys: &MasterKey,
    mut own: Vec<(CString, FileStat)>,
) -> Vec<Found> {
    own.sort_by_key(|(_, st)| std::cmp::Reverse(file_time(st)));
    let mut usable: Vec<Found> = Vec::new();
    for (i, (name, st)) in own.into_iter().enumerate() {
        if i >= MAX_REQUESTS_PER_UID {
            let reason = own_refusal(Unusable::Surplus, &st);
            scan.ignore_own(&name, Kind::Regular, &reason, true);
            continue;
        }
        // A request name is UTF-8 (it parsed as one).
        let path = scan.spool.join(name.to_string_lossy().as_ref());
        match open_one(&path, &st, scan.uid, keys, scan.max_age, scan.now) {
            Ok(pending) => usable.push(Found { path, pending }),
            Err((reason, owned)) => scan.ignore_own(&name, Kind::Regular, &reason, owned),
        }
    }
    usable.sort_by_key(|f| std::cmp::Reverse(f.pending.created));
    usable
}

/// Opens and checks one file, which must be the inode `examined` (what
/// `fstatat` saw in the spool). On refusal, says why and whether the file
/// belongs to `uid` (and may therefore be deleted).
fn open_one(
    path: &Path,
    examined: &FileStat,
    uid: u32,
    keys: &MasterKey,
    max_age: u64,
    now: u64,
) -> Result<Pending, (String, bool)> {
    let mut file: File = fsutil::open_nofollow(path, false).map_err(|e| (e.to_string(), false))?;
    let meta = file.metadata().map_err(|e| (e.to_string(), false))?;
    if meta.dev() != examined.st_dev || meta.ino() != examined.st_ino {
        return Err(("replaced while it was examined".into(), false));
    }
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
    if too_old(meta.mtime().min(meta.ctime()), max_age, now) {
        return Err(("older than enrollment.pending_max_age".into(), true));
    }
    let mut sealed = Vec::new();
    (&mut file)
        .take(MAX_PENDING_FILE + 1)
        .read_to_end(&mut sealed)
        .map_err(|e| (e.to_string(), true))?;
    let (version, plaintext) = keys
        .open_request(&sealed, uid)
        .map_err(|e| (e.to_string(), true))?;
    let pending =
        Pending::decode(&plaintext, version).map_err(|e| (format!("malformed: {e}"), true))?;
    if pending.created > now.saturating_add(FUTURE_SLACK) {
        return Err(("created in the future".into(), true));
    }
    if now.saturating_sub(pending.created) > max_age {
        return Err(("older than enrollment.pending_max_age".into(), true));
    }
    Ok(pending)
}

/// The uids with at least one entry in the spool with a request name,
/// ascending, judged by name only: for listings; nothing is opened or
/// checked.
pub fn waiting_uids(spool: &Path) -> Vec<u32> {
    let mut uids: Vec<u32> = fs::read_dir(spool)
        .map(|d| {
            d.flatten()
                .filter_map(|e| request_name_uid(e.file_name().to_str()?))
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

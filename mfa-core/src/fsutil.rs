//! Opening files that decide who gets in.
//!
//! Every file root reads on behalf of a login (the config, the master key, a
//! user's record, a pending enrollment) is opened without following symlinks,
//! without blocking on FIFOs, and checked with `fstat` on the open descriptor
//! (type, owner, mode, size) before a single byte is trusted. The directory it
//! lives in is checked too, because a writable directory lets anyone swap the
//! file between two logins.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;
use zeroize::Zeroizing;

/// Which uid must own the files pam_mfa trusts.
///
/// In production this is always root. Test suites that cannot run as root
/// opt out explicitly with [`FileTrust::insecure_owner_for_tests`]; neither
/// shell exposes that switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTrust {
    owner: u32,
}

impl FileTrust {
    /// Files must be owned by root.
    pub const ROOT: FileTrust = FileTrust { owner: 0 };

    /// Trust files owned by `uid` instead of root. Only for test suites that
    /// do not run as root: a module built this way would trust a user's files.
    pub fn insecure_owner_for_tests(uid: u32) -> Self {
        FileTrust { owner: uid }
    }

    /// The uid that must own trusted files.
    pub fn owner(self) -> u32 {
        self.owner
    }
}

impl Default for FileTrust {
    fn default() -> Self {
        Self::ROOT
    }
}

/// Who may read a trusted file besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone may read it, nobody but the owner may write it (config, public key).
    WorldReadable,
    /// Only the owner may read or write it (master key, records).
    OwnerOnly,
}

impl Access {
    fn forbidden_bits(self) -> u32 {
        match self {
            Access::WorldReadable => 0o022,
            Access::OwnerOnly => 0o077,
        }
    }
}

/// Why a trusted file or directory was refused.
#[derive(Debug)]
pub enum FileProblem {
    /// There is nothing at the path.
    Missing,
    /// The path is a symbolic link; they are never followed.
    Symlink,
    /// The path is not the expected kind of file (FIFO, device, directory...).
    WrongType(&'static str),
    /// The owner is not the trusted uid.
    WrongOwner {
        /// The uid that owns the file.
        found: u32,
        /// The uid that should.
        expected: u32,
    },
    /// Group or other permission bits are set that must not be.
    WrongMode {
        /// The file's permission bits.
        mode: u32,
        /// The largest mode that would be accepted.
        allowed: u32,
    },
    /// The file is larger than any legitimate one.
    TooLarge {
        /// Its size in bytes.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The directory is on a network or user-space filesystem, whose locks
    /// and syncs the store cannot rely on.
    RemoteFilesystem(&'static str),
    /// The operating system refused the operation.
    Io(io::Error),
}

/// A trusted file or directory failed its checks.
#[derive(Debug)]
pub struct FileError {
    /// The path that was refused.
    pub path: PathBuf,
    /// What was wrong with it.
    pub problem: FileProblem,
}

impl FileError {
    pub(crate) fn new(path: &Path, problem: FileProblem) -> Self {
        FileError {
            path: path.to_path_buf(),
            problem,
        }
    }

    pub(crate) fn io(path: &Path, err: io::Error) -> Self {
        let problem = match err.raw_os_error() {
            Some(libc::ENOENT) => FileProblem::Missing,
            // O_NOFOLLOW on a symlink fails with ELOOP.
            Some(libc::ELOOP) => FileProblem::Symlink,
            Some(libc::EISDIR) => FileProblem::WrongType("directory"),
            Some(libc::ENXIO) => FileProblem::WrongType("special file"),
            _ => FileProblem::Io(err),
        };
        Self::new(path, problem)
    }

    /// True if the file simply does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self.problem, FileProblem::Missing)
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.problem {
            FileProblem::Missing => write!(f, "{p} does not exist"),
            FileProblem::Symlink => write!(
                f,
                "{p} is a symbolic link; replace it with the real file (links are never followed)"
            ),
            FileProblem::WrongType(kind) => {
                write!(f, "{p} is a {kind}, not what was expected; remove it")
            }
            FileProblem::WrongOwner { found, expected } => write!(
                f,
                "{p} is owned by uid {found}, not {expected}; run: chown {expected} {p}"
            ),
            FileProblem::WrongMode { mode, allowed } => write!(
                f,
                "{p} has mode {mode:04o}, which lets others change or read it; run: chmod {allowed:04o} {p}"
            ),
            FileProblem::TooLarge { size, max } => write!(
                f,
                "{p} is {size} bytes, more than the {max} a valid file can be; it is not a pam_mfa file"
            ),
            FileProblem::RemoteFilesystem(kind) => write!(
                f,
                "{p} is on {kind}, where file locks and fdatasync do not give the guarantees the store needs (one login at a time, nothing lost); keep it on a local filesystem"
            ),
            FileProblem::Io(e) => write!(f, "{p}: {e}"),
        }
    }
}

impl std::error::Error for FileError {}

fn kind_name(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "regular file"
    }
}

fn check_owner_mode(
    path: &Path,
    meta: &Metadata,
    trust: FileTrust,
    access: Access,
) -> Result<(), FileError> {
    if meta.uid() != trust.owner() {
        return Err(FileError::new(
            path,
            FileProblem::WrongOwner {
                found: meta.uid(),
                expected: trust.owner(),
            },
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & access.forbidden_bits() != 0 {
        return Err(FileError::new(
            path,
            FileProblem::WrongMode {
                mode,
                allowed: (mode & 0o777) & !access.forbidden_bits(),
            },
        ));
    }
    Ok(())
}

/// Checks that `dir` is a real directory owned by the trusted uid that nobody
/// else can write to.
///
/// # Errors
/// A [`FileError`] naming the directory and what is wrong with it.
pub fn check_dir(dir: &Path, trust: FileTrust, access: Access) -> Result<(), FileError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| FileError::io(dir, e))?;
    if meta.file_type().is_symlink() {
        return Err(FileError::new(dir, FileProblem::Symlink));
    }
    if !meta.is_dir() {
        return Err(FileError::new(
            dir,
            FileProblem::WrongType(kind_name(&meta)),
        ));
    }
    check_owner_mode(dir, &meta, trust, access)
}

/// Filesystems whose `flock` and `fdatasync` do not mean what the store
/// relies on, or that a second host may serve: by `statfs` `f_type`.
const REMOTE_FILESYSTEMS: [(i64, &str); 8] = [
    (0x6969, "NFS"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x517B, "SMB"),
    (0x6573_5546, "FUSE"),
    (0x00C3_6400, "Ceph"),
    (0x0102_1997, "9P"),
    (0x5346_414F, "AFS"),
];

/// Refuses a directory on a network or user-space filesystem.
///
/// # Errors
/// [`FileProblem::RemoteFilesystem`], or the `statfs` error.
pub fn check_local(dir: &Path) -> Result<(), FileError> {
    let fs = nix::sys::statfs::statfs(dir).map_err(|e| FileError::io(dir, io::Error::from(e)))?;
    #[allow(
        clippy::cast_sign_loss,
        clippy::cast_possible_wrap,
        clippy::useless_conversion
    )]
    let kind = i64::from(fs.filesystem_type().0) & 0xFFFF_FFFF;
    match REMOTE_FILESYSTEMS.iter().find(|(magic, _)| *magic == kind) {
        Some((_, name)) => Err(FileError::new(dir, FileProblem::RemoteFilesystem(name))),
        None => Ok(()),
    }
}

/// Checks the directory that contains `path` (see [`check_dir`]); anyone may
/// read it, nobody but the trusted owner may write it.
///
/// # Errors
/// A [`FileError`] naming the directory.
pub fn check_parent(path: &Path, trust: FileTrust) -> Result<(), FileError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_dir(parent, trust, Access::WorldReadable)
}

/// Opens `path` read-only without following a symlink or blocking on a FIFO.
pub(crate) fn open_nofollow(path: &Path, write: bool) -> Result<File, FileError> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| FileError::io(path, e))
}

/// Checks an open file: a regular file, owned by the trusted uid, no
/// forbidden permission bits, at most `max_size` bytes. Returns its metadata.
pub(crate) fn check_open_file(
    path: &Path,
    file: &File,
    trust: FileTrust,
    access: Access,
    max_size: u64,
) -> Result<Metadata, FileError> {
    let meta = file.metadata().map_err(|e| FileError::io(path, e))?;
    if !meta.file_type().is_file() {
        return Err(FileError::new(
            path,
            FileProblem::WrongType(kind_name(&meta)),
        ));
    }
    check_owner_mode(path, &meta, trust, access)?;
    if meta.len() > max_size {
        return Err(FileError::new(
            path,
            FileProblem::TooLarge {
                size: meta.len(),
                max: max_size,
            },
        ));
    }
    Ok(meta)
}

/// Reads a whole trusted file after checking it and its directory. The
/// buffer is wiped when dropped, since these files hold secrets.
///
/// # Errors
/// A [`FileError`] for the file or its directory.
pub fn read_trusted(
    path: &Path,
    trust: FileTrust,
    access: Access,
    max_size: u64,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    check_parent(path, trust)?;
    let mut file = open_nofollow(path, false)?;
    let meta = check_open_file(path, &file, trust, access, max_size)?;
    // Read one byte past the bound so a file that grew after fstat is still caught.
    let cap = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let mut buf = Zeroizing::new(Vec::with_capacity(cap.saturating_add(1)));
    (&mut file)
        .take(max_size.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| FileError::io(path, e))?;
    if buf.len() as u64 > max_size {
        return Err(FileError::new(
            path,
            FileProblem::TooLarge {
                size: buf.len() as u64,
                max: max_size,
            },
        ));
    }
    Ok(buf)
}

/// Writes `contents` to `path` atomically and durably: a new file created
/// with `O_EXCL` and `mode` beside it, written, fsynced, renamed over `path`,
/// and the directory fsynced. The temporary file is removed on any error.
/// With `replace == false` an existing `path` is an error (`AlreadyExists`).
///
/// # Errors
/// The I/O error, with the old file (if any) untouched.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32, replace: bool) -> io::Result<()> {
    write_atomic_with(path, contents, mode, replace, &mut |_| Ok(()))
}

/// The steps of [`write_atomic`], named so tests can fail or stop at each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameStep {
    /// The temporary file has been created, nothing written yet.
    TempCreated,
    /// The contents are written but not yet synced.
    TempWritten,
    /// The temporary file is durable; the rename is next.
    TempSynced,
    /// The rename is done; the directory is not yet synced.
    Renamed,
}

/// [`write_atomic`] with a hook called at each [`RenameStep`]; an error
/// from the hook aborts the write there, as a failing disk would.
///
/// # Errors
/// The I/O error or the hook's error.
pub fn write_atomic_with(
    path: &Path,
    contents: &[u8],
    mode: u32,
    replace: bool,
    fault: &mut dyn FnMut(RenameStep) -> io::Result<()>,
) -> io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    if !replace && std::fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", path.display()),
        ));
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let result = (|| {
        fault(RenameStep::TempCreated)?;
        // The mode given to open() is filtered by the umask; set it exactly.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.write_all(contents)?;
        fault(RenameStep::TempWritten)?;
        file.sync_all()?;
        fault(RenameStep::TempSynced)?;
        if replace {
            std::fs::rename(&tmp, path)?;
        } else {
            // link() fails if the target appeared meanwhile: never clobber.
            std::fs::hard_link(&tmp, path)?;
            std::fs::remove_file(&tmp)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    fault(RenameStep::Renamed)?;
    File::open(dir)?.sync_all()
}

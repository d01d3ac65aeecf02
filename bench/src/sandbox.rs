//! The private world the benchmark runs in: a mount namespace of its own in
//! which `/etc/pam.d`, `/etc/passwd` and `/etc/group` are the benchmark's
//! files and `/dev/log` is the benchmark's syslog socket. The workers are
//! child processes and inherit it; nothing outside the namespace changes.
//!
//! `/dev` is done as in the end-to-end harness's `pam-sandbox`: `/dev/log`
//! usually does not exist on the host and a bind mount needs an existing
//! target, so `/dev` becomes a tmpfs mirroring the host's entries (bind
//! mounts and symlinks) plus `log`.
//!
//! `/etc` cannot take a bind mount on `/etc/passwd`: `useradd`, `passwd`
//! and friends on the host replace that file by renaming a new one over it,
//! and since Linux 3.18 that silently detaches the mount in every other
//! namespace. So `/etc` becomes a tmpfs of symbolic links: to the
//! benchmark's files for the three names above, and for everything else to
//! the host's `/etc`, which stays reachable through a bind mount of the
//! directory (renames inside a directory do not disturb a mount of it).
//!
//! nscd's socket directory, if the host has one, becomes an empty tmpfs, so
//! that a host nscd (which would know nothing of the benchmark's users)
//! never answers the workers' lookups; the scenario with nscd runs its own
//! daemon there (see `nscd.rs`).

use std::fs::{self};
use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::{mount, umount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use pam_mfa_e2e::namespace::{bind, io_context, private_dev};

/// Replaces `/etc` by a tmpfs of symbolic links: `own` names to the given
/// paths, every other entry to the host's `/etc`, bound on `host_etc`.
fn private_etc(host_etc: &Path, own: &[(&str, &Path)]) -> Result<(), String> {
    bind(Path::new("/etc"), host_etc, true)?;
    mount(
        Some("tmpfs"),
        "/etc",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(|e| format!("cannot mount a tmpfs on /etc: {e}"))?;
    let etc = Path::new("/etc");
    for entry in fs::read_dir(host_etc).map_err(io_context("cannot list", host_etc))? {
        let entry = entry.map_err(io_context("cannot list", host_etc))?;
        let name = entry.file_name();
        if own.iter().any(|(n, _)| name == *n) {
            continue;
        }
        let link = etc.join(&name);
        // A relative link in the host's /etc (os-release -> ../usr/lib/...)
        // is copied so that it resolves from /etc as it does on the host.
        let target = match fs::read_link(entry.path()) {
            Ok(t) if t.is_relative() => etc.join(t),
            Ok(t) => t,
            Err(_) => entry.path(),
        };
        symlink(&target, &link).map_err(io_context("cannot create", &link))?;
    }
    for (name, target) in own {
        let link = etc.join(name);
        symlink(target, &link).map_err(io_context("cannot create", &link))?;
    }
    Ok(())
}

/// Mounts an empty tmpfs (root's, mode 0755) on the existing directory
/// `dir`, hiding what it holds until [`unmount`].
///
/// # Errors
/// If the mount fails.
pub fn private_tmpfs(dir: &Path) -> Result<(), String> {
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(|e| format!("cannot mount a tmpfs on {}: {e}", dir.display()))
}

/// Removes the mount on `dir`.
///
/// # Errors
/// If it is busy or not a mount point.
pub fn unmount(dir: &Path) -> Result<(), String> {
    umount(dir).map_err(|e| format!("cannot unmount {}: {e}", dir.display()))
}

/// What to put where in the namespace.
pub struct Mounts<'a> {
    /// An empty directory to reach the host's `/etc` through.
    pub host_etc: &'a Path,
    /// Seen as `/etc/pam.d`.
    pub pam_d: &'a Path,
    /// Seen as `/etc/passwd`.
    pub passwd: &'a Path,
    /// Seen as `/etc/group`.
    pub group: &'a Path,
    /// Seen as `/dev/log`.
    pub dev_log: &'a Path,
}

/// Moves this process into a new private mount namespace and mounts
/// `mounts` there. Must run before any thread is started (a threaded
/// process cannot unshare its mount namespace). Needs root.
///
/// # Errors
/// Any mount that fails.
pub fn enter(mounts: &Mounts<'_>) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot make a mount namespace (run as root): {e}"))?;
    // Nothing mounted from here on may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make / private: {e}"))?;
    private_etc(
        mounts.host_etc,
        &[
            ("pam.d", mounts.pam_d),
            ("passwd", mounts.passwd),
            ("group", mounts.group),
        ],
    )?;
    private_dev(mounts.dev_log)?;
    if let Some(dir) = crate::nscd::socket_dir() {
        private_tmpfs(&dir)?;
    }
    Ok(())
}

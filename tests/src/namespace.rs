//! Mount-namespace pieces shared by `pam-sandbox` and the benchmark driver:
//! bind mounts, and a private `/dev` whose `log` is a socket of our own.
//! `/dev/log` usually does not exist on the host and a bind mount needs an
//! existing target, so `/dev` becomes a tmpfs mirroring the host's entries.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

/// Bind-mounts `src` on `dst` (with its submounts if `recursive`).
///
/// # Errors
/// The mount error, naming both paths.
pub fn bind(src: &Path, dst: &Path, recursive: bool) -> Result<(), String> {
    let flags = if recursive {
        MsFlags::MS_BIND | MsFlags::MS_REC
    } else {
        MsFlags::MS_BIND
    };
    mount(Some(src), dst, None::<&str>, flags, None::<&str>).map_err(|e| {
        format!(
            "cannot bind-mount {} on {}: {e}",
            src.display(),
            dst.display()
        )
    })
}

/// Turns an I/O error into a message naming what failed and where.
pub fn io_context<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> String + 'a {
    move |e| format!("{what} {}: {e}", path.display())
}

/// Makes `dst` in the new `/dev` what `src` is in the host's.
fn mirror(src: &Path, dst: &Path) -> Result<(), String> {
    // A bound copy of the host's /dev/ptmx node cannot allocate ptys in the
    // new /dev (open fails with ENOENT); the devpts multiplexer can.
    if src.file_name().is_some_and(|n| n == "ptmx") {
        return symlink("pts/ptmx", dst).map_err(io_context("cannot create", dst));
    }
    let kind = fs::symlink_metadata(src)
        .map_err(io_context("cannot stat", src))?
        .file_type();
    if kind.is_symlink() {
        let target = fs::read_link(src).map_err(io_context("cannot read", src))?;
        symlink(&target, dst).map_err(io_context("cannot create", dst))
    } else if kind.is_dir() {
        fs::create_dir(dst).map_err(io_context("cannot create", dst))?;
        bind(src, dst, true)
    } else {
        File::create(dst).map_err(io_context("cannot create", dst))?;
        bind(src, dst, false)
    }
}

/// Replaces `/dev` in this namespace by a tmpfs holding the host's entries
/// (devices and directories bind-mounted, symlinks copied) and `log` bound
/// to `socket`.
///
/// # Errors
/// If the tmpfs cannot be mounted or `log` not bound; a host entry that
/// cannot be mirrored is only warned about.
pub fn private_dev(socket: &Path) -> Result<(), String> {
    // Opened before the tmpfs hides it; reached through /proc afterwards.
    let host = File::open("/dev").map_err(io_context("cannot open", Path::new("/dev")))?;
    let host_dir = PathBuf::from(format!("/proc/self/fd/{}", host.as_raw_fd()));
    mount(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )
    .map_err(|e| format!("cannot mount a tmpfs on /dev: {e}"))?;
    let dev = Path::new("/dev");
    let entries = fs::read_dir(&host_dir).map_err(io_context("cannot list", &host_dir))?;
    for entry in entries {
        let entry = entry.map_err(io_context("cannot list", &host_dir))?;
        let name = entry.file_name();
        if name == "log" {
            continue;
        }
        // One odd device the host has must not stop every test: say so
        // (it shows in the test's transcript) and go on.
        if let Err(e) = mirror(&entry.path(), &dev.join(&name)) {
            eprintln!("warning: {e}");
        }
    }
    let log = dev.join("log");
    File::create(&log).map_err(io_context("cannot create", &log))?;
    bind(socket, &log, false)
}

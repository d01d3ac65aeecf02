//! nscd, glibc's name-service cache daemon, for the scenario in which
//! pam_mfa's `getpwnam_r` is answered from a cache instead of a scan of
//! `/etc/passwd`: the usual setup of a host with many local users.
//!
//! The daemon runs inside the benchmark's mount namespace only: its socket
//! directory and its cache directory become private tmpfs mounts, it runs
//! in the foreground as a child of the orchestrator (`nscd -F`, with the
//! host's `/etc/nscd.conf`), and it reads the benchmark's `/etc/passwd`.
//! Nothing on the host changes, and a process outside the namespace never
//! sees it. It is started afresh for each population size and stopped,
//! with both mounts removed, before the other scenarios go on.

use std::fs::File;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::prctl;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::sandbox;

/// Where glibc's clients find the daemon (`_PATH_NSCDSOCKET`).
const SOCKET: &str = "/var/run/nscd/socket";
/// Where it keeps its persistent databases on Debian.
const CACHE_DIR: &str = "/var/cache/nscd";
/// Where Debian installs it.
const PROGRAMS: [&str; 2] = ["/usr/sbin/nscd", "/sbin/nscd"];
/// How long it may take to start and to stop.
const PATIENCE: Duration = Duration::from_secs(10);

/// The directory of the socket, resolved (`/var/run` is a link to `/run`),
/// if it exists.
pub fn socket_dir() -> Option<PathBuf> {
    Path::new(SOCKET)
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .filter(|d| d.is_dir())
}

/// An installed nscd: its program and the two directories it needs.
#[derive(Debug, Clone)]
pub struct Installed {
    program: PathBuf,
    socket_dir: PathBuf,
    cache_dir: PathBuf,
}

/// Finds nscd, or says why the scenario with it cannot run.
///
/// # Errors
/// The reason, for the report.
pub fn find() -> Result<Installed, String> {
    let program = PROGRAMS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("nscd is not installed (apt-get install nscd)")?;
    let socket_dir = socket_dir().ok_or(
        "nscd's socket directory /run/nscd does not exist \
         (systemd-tmpfiles --create /usr/lib/tmpfiles.d/nscd.conf makes it)",
    )?;
    let cache_dir = Path::new(CACHE_DIR)
        .canonicalize()
        .ok()
        .filter(|d| d.is_dir())
        .ok_or("nscd's cache directory /var/cache/nscd does not exist (reinstall nscd)")?;
    Ok(Installed {
        program,
        socket_dir,
        cache_dir,
    })
}

/// A running daemon; dropping it stops it and removes its mounts.
pub struct Daemon {
    child: Option<Child>,
    /// The private mounts, in the order they were made.
    mounts: Vec<PathBuf>,
    log: PathBuf,
}

impl Daemon {
    /// Mounts the private directories, starts the daemon with its output
    /// in `log`, and waits until its socket takes connections.
    ///
    /// # Errors
    /// A mount that fails, or a daemon that does not start.
    pub fn start(nscd: &Installed, log: &Path) -> Result<Daemon, String> {
        let mut daemon = Daemon {
            child: None,
            mounts: Vec::new(),
            log: log.to_path_buf(),
        };
        for dir in [&nscd.socket_dir, &nscd.cache_dir] {
            sandbox::private_tmpfs(dir)?;
            daemon.mounts.push(dir.clone());
        }
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = Command::new(&nscd.program);
        command
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes the prctl system call, which is async-signal-safe.
        unsafe {
            // If the orchestrator dies, so does its daemon.
            command
                .pre_exec(|| prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from));
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", nscd.program.display()))?;
        daemon.child = Some(child);
        daemon.wait_for_socket(&nscd.socket_dir.join("socket"))?;
        Ok(daemon)
    }

    fn wait_for_socket(&mut self, socket: &Path) -> Result<(), String> {
        let begin = Instant::now();
        loop {
            if UnixStream::connect(socket).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("nscd ended at start ({status}); {}", self.said()));
                }
            }
            if begin.elapsed() > PATIENCE {
                return Err(format!(
                    "nscd did not open {} within {} s; {}",
                    socket.display(),
                    PATIENCE.as_secs(),
                    self.said()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the daemon printed, for error messages.
    fn said(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if text.trim().is_empty() {
            format!("it printed nothing into {}", self.log.display())
        } else {
            format!("it said: {}", text.trim())
        }
    }

    /// Stops the daemon (SIGTERM, then SIGKILL if it lingers) and removes
    /// the mounts.
    ///
    /// # Errors
    /// If it cannot be stopped or a mount cannot be removed.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).map_err(|e| e.to_string())?);
            let _ = kill(pid, Signal::SIGTERM);
            let begin = Instant::now();
            while child.try_wait().map_err(|e| e.to_string())?.is_none() {
                if begin.elapsed() > PATIENCE {
                    eprintln!("  nscd did not stop on SIGTERM; killing it");
                    let _ = child.kill();
                    child.wait().map_err(|e| e.to_string())?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        while let Some(dir) = self.mounts.pop() {
            sandbox::unmount(&dir)?;
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("pam-mfa-bench: stopping nscd: {e}");
        }
    }
}

//! Debian's `pamtester`, a second libpam application, run in a sandbox.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin};
use std::thread;
use std::time::{Duration, Instant};

use nix::libc;

use crate::process::{self, Run};
use crate::sandbox::Sandbox;

/// Bytes written to `pipe` that the reader has not taken yet.
fn unread(pipe: &ChildStdin) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores one int through the pointer, which points to
    // a live c_int; the descriptor is the open write end of our pipe.
    let rc = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Waits until the child has read everything written to `pipe`, has
/// exited, or `limit` has passed.
fn wait_until_read(pipe: &ChildStdin, child: &mut Child, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let drained = unread(pipe).map_or(true, |n| n == 0);
        let exited = child.try_wait().map_or(true, |s| s.is_some());
        if drained || exited {
            return;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

impl Sandbox {
    /// Runs `pamtester -v SERVICE USER OPS...` in the namespace. Each of
    /// `answers` is written to its stdin only after the previous one was
    /// read: pamtester's conversation (`libpam_misc`) reads a whole pipe
    /// buffer per prompt, so two answers written at once would become one.
    /// `ops` are pamtester's: `authenticate`, `acct_mgmt`, `open_session`,
    /// `close_session`, `chauthtok`, optionally with flags such as
    /// `authenticate(PAM_SILENT)`.
    pub fn pamtester(&self, service: &str, user: &str, ops: &[&str], answers: &[&str]) -> Run {
        self.pamtester_via("pamtester", service, user, ops, answers)
    }

    /// [`Sandbox::pamtester`] through `program`, a wrapper that ends by
    /// running pamtester with its arguments (e.g. after setting
    /// `LD_PRELOAD`).
    pub fn pamtester_via(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        service: &str,
        user: &str,
        ops: &[&str],
        answers: &[&str],
    ) -> Run {
        let mut cmd = self.command(program);
        cmd.arg("-v").arg(service).arg(user).args(ops);
        let command = process::render(&cmd);
        let mut child = process::spawn_piped(&mut cmd)
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let stdout = process::drain(child.stdout.take().expect("stdout is piped"));
        let stderr = process::drain(child.stderr.take().expect("stderr is piped"));
        let mut pipe = child.stdin.take().expect("stdin is piped");
        for answer in answers {
            let written = pipe
                .write_all(answer.as_bytes())
                .and_then(|()| pipe.write_all(b"\n"))
                .and_then(|()| pipe.flush());
            if written.is_err() {
                break; // it exited; the transcript says why
            }
            wait_until_read(&pipe, &mut child, Duration::from_secs(30));
        }
        drop(pipe);
        let stdout = stdout.join().unwrap_or_default();
        process::finish(command, child, stdout, stderr)
    }
}

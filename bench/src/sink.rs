//! What the modules do besides answering: the syslog lines they send to
//! `/dev/log`, and how often they open `/etc/passwd` and `/etc/group`
//! (each `getpwnam`/`getpwuid`/group lookup through the files backend opens
//! one of them).

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// Counts per syslog tag (without the pid), e.g. `pam_mfa` or
/// `bench-ga(pam_google_authenticator)`.
pub type TagCounts = BTreeMap<String, u64>;

/// A syslog daemon that only counts: a datagram socket read by a thread,
/// so that no module ever blocks on a full socket.
pub struct SyslogSink {
    counts: Arc<Mutex<TagCounts>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The tag of a BSD syslog datagram: `<PRI>[Mmm dd hh:mm:ss ]TAG[PID]: MSG`.
pub fn tag_of(datagram: &str) -> String {
    let rest = datagram
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .map_or(datagram, |(_, r)| r);
    // glibc's syslog(3) puts a timestamp first ("Nov 26 12:53:00 "); pam_mfa does not.
    let rest = match rest.as_bytes() {
        [_, _, _, b' ', _, _, b' ', _, _, b':', _, _, b':', _, _, b' ', ..] => &rest[16..],
        _ => rest,
    };
    let head = rest.split(": ").next().unwrap_or_default();
    head.split('[').next().unwrap_or_default().to_owned()
}

impl SyslogSink {
    /// Starts reading `sock`, bound at `path`, which is made mode 0666 so
    /// that any module can send.
    ///
    /// # Errors
    /// If the socket cannot be set up.
    pub fn start(sock: UnixDatagram, path: &Path) -> Result<SyslogSink, String> {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let counts = Arc::new(Mutex::new(TagCounts::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let counts = Arc::clone(&counts);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let tag = tag_of(&String::from_utf8_lossy(&buf[..n]));
                        *counts
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .entry(tag)
                            .or_default() += 1;
                    }
                }
            })
        };
        Ok(SyslogSink {
            counts,
            stop,
            thread: Some(thread),
        })
    }

    /// Lines received so far, per tag. Waits a moment first, so that lines
    /// sent just before are counted.
    pub fn snapshot(&self) -> TagCounts {
        thread::sleep(Duration::from_millis(30));
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Lines per tag added between two snapshots.
pub fn difference(before: &TagCounts, after: &TagCounts) -> TagCounts {
    after
        .iter()
        .map(|(tag, n)| (tag.clone(), n - before.get(tag).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Counts opens of the name-service files through inotify (the watch is on
/// the inode, so opens through the bind mounts count).
pub struct OpenCounter {
    inotify: Inotify,
    passwd: WatchDescriptor,
    group: WatchDescriptor,
    counts: (u64, u64),
}

impl OpenCounter {
    /// Watches `passwd` and `group`.
    ///
    /// # Errors
    /// If inotify is unavailable.
    pub fn watch(passwd: &Path, group: &Path) -> Result<OpenCounter, String> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| format!("inotify: {e}"))?;
        // Closes are watched too only so that two opens never queue as two
        // identical events in a row, which inotify merges into one.
        let flags = AddWatchFlags::IN_OPEN | AddWatchFlags::IN_CLOSE_NOWRITE;
        let passwd = inotify
            .add_watch(passwd, flags)
            .map_err(|e| format!("inotify {}: {e}", passwd.display()))?;
        let group = inotify
            .add_watch(group, flags)
            .map_err(|e| format!("inotify {}: {e}", group.display()))?;
        Ok(OpenCounter {
            inotify,
            passwd,
            group,
            counts: (0, 0),
        })
    }

    /// Opens of (passwd, group) so far.
    pub fn snapshot(&mut self) -> (u64, u64) {
        loop {
            match self.inotify.read_events() {
                Ok(events) => {
                    for e in events
                        .iter()
                        .filter(|e| e.mask.contains(AddWatchFlags::IN_OPEN))
                    {
                        if e.wd == self.passwd {
                            self.counts.0 += 1;
                        } else if e.wd == self.group {
                            self.counts.1 += 1;
                        }
                    }
                }
                // EAGAIN: nothing more queued.
                Err(_) => return self.counts,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_without_pid_or_timestamp() {
        assert_eq!(tag_of("<86>pam_mfa[42]: event=auth_success"), "pam_mfa");
        assert_eq!(
            tag_of("<86>Nov 26 12:53:00 bench-ga(pam_google_authenticator)[7]: Accepted"),
            "bench-ga(pam_google_authenticator)"
        );
        assert_eq!(tag_of("<38>Jan  1 00:00:00 pam_oath: x"), "pam_oath");
    }

    #[test]
    fn differences_keep_only_new_lines() {
        let before = TagCounts::from([("a".into(), 2), ("b".into(), 1)]);
        let after = TagCounts::from([("a".into(), 5), ("b".into(), 1), ("c".into(), 1)]);
        assert_eq!(
            difference(&before, &after),
            TagCounts::from([("a".into(), 3), ("c".into(), 1)])
        );
    }
}

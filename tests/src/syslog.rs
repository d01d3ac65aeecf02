//! A private syslog: a Unix datagram socket that a sandbox mounts on
//! `/dev/log`, and the lines that arrived on it.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// One syslog datagram, split into its parts where it follows the BSD
/// format that glibc's `syslog(3)`, `logger` and pam_mfa send:
/// `<PRI>[Mmm dd hh:mm:ss ][host ]TAG[PID]: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The datagram as received, without a trailing NUL or newline.
    pub raw: String,
    /// `PRI`: facility * 8 + severity.
    pub priority: Option<u8>,
    /// The tag (program name), e.g. `pam_mfa` or `pam-converse`.
    pub tag: String,
    /// The pid in brackets after the tag.
    pub pid: Option<u32>,
    /// What follows `TAG[PID]: `; the whole text if there is no tag.
    pub message: String,
}

/// `facility` numbers (RFC 5424 section 6.2.1).
pub const AUTHPRIV: u8 = 10;

impl LogLine {
    /// Splits a datagram into its parts.
    pub fn parse(datagram: &[u8]) -> LogLine {
        let raw = String::from_utf8_lossy(datagram)
            .trim_end_matches(['\0', '\n'])
            .to_owned();
        let (priority, rest) = split_priority(&raw);
        let rest = skip_timestamp(rest);
        let (tag, pid, message) = match rest.find(": ") {
            // A tag has no spaces, except that a hostname may come before it.
            Some(colon) if !rest[..colon].trim().is_empty() => {
                let head = rest[..colon].rsplit(' ').next().unwrap_or_default();
                let (tag, pid) = match head.strip_suffix(']').and_then(|h| h.split_once('[')) {
                    Some((tag, pid)) => (tag, pid.parse().ok()),
                    None => (head, None),
                };
                (tag.to_owned(), pid, rest[colon + 2..].to_owned())
            }
            _ => (String::new(), None, rest.to_owned()),
        };
        LogLine {
            raw,
            priority,
            tag,
            pid,
            message,
        }
    }

    /// The facility, e.g. [`AUTHPRIV`].
    pub fn facility(&self) -> Option<u8> {
        self.priority.map(|p| p >> 3)
    }

    /// The severity: 0 emergency ... 6 info, 7 debug.
    pub fn severity(&self) -> Option<u8> {
        self.priority.map(|p| p & 7)
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn split_priority(raw: &str) -> (Option<u8>, &str) {
    raw.strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .and_then(|(pri, rest)| Some((Some(pri.parse().ok()?), rest)))
        .unwrap_or((None, raw))
}

/// Skips an RFC 3164 timestamp (`Nov 26 11:52:55 `) if there is one.
fn skip_timestamp(text: &str) -> &str {
    let b = text.as_bytes();
    let looks_like = b.len() > 16
        && b[..16].is_ascii()
        && b[..3].iter().all(u8::is_ascii_alphabetic)
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
        && b[15] == b' ';
    if looks_like {
        &text[16..]
    } else {
        text
    }
}

struct Shared {
    lines: Mutex<Vec<LogLine>>,
    arrived: Condvar,
}

impl Shared {
    fn lines(&self) -> MutexGuard<'_, Vec<LogLine>> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a sink received; cheap to clone, and clones see the same lines.
#[derive(Clone)]
pub struct SyslogSink {
    shared: Arc<Shared>,
    path: PathBuf,
}

/// [`SyslogSink::wait_for`] saw no matching line in time. Its `Debug`
/// (what `unwrap` and `expect` print) lists every line that did arrive.
pub struct NotSeen {
    waited: Duration,
    lines: Vec<LogLine>,
}

impl fmt::Debug for NotSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "no matching syslog line within {:?}; {} line(s) arrived:",
            self.waited,
            self.lines.len()
        )?;
        for line in &self.lines {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

impl SyslogSink {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every line received so far, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        self.shared.lines().clone()
    }

    /// How many lines have arrived so far.
    pub fn count(&self) -> usize {
        self.shared.lines().len()
    }

    /// The lines after the first `start`, oldest first.
    pub fn lines_since(&self, start: usize) -> Vec<LogLine> {
        self.shared.lines().iter().skip(start).cloned().collect()
    }

    /// Waits until a line for which `matches` is true has arrived (looking
    /// at old lines too), and returns the first such line.
    ///
    /// # Errors
    /// [`NotSeen`], listing all lines, if none matched within `timeout`.
    pub fn wait_for(
        &self,
        matches: impl FnMut(&LogLine) -> bool,
        timeout: Duration,
    ) -> Result<LogLine, NotSeen> {
        self.wait_for_since(0, matches, timeout)
    }

    /// Like [`SyslogSink::wait_for`], but looks only at the lines after the
    /// first `start` (as counted by [`SyslogSink::count`] earlier).
    ///
    /// # Errors
    /// [`NotSeen`], listing all lines, if none matched within `timeout`.
    pub fn wait_for_since(
        &self,
        start: usize,
        mut matches: impl FnMut(&LogLine) -> bool,
        timeout: Duration,
    ) -> Result<LogLine, NotSeen> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.shared.lines();
        loop {
            if let Some(line) = lines.iter().skip(start).find(|l| matches(l)) {
                return Ok(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NotSeen {
                    waited: timeout,
                    lines: lines.clone(),
                });
            }
            lines = self
                .shared
                .arrived
                .wait_timeout(lines, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The receiving end: owns the socket's reader thread and stops it when
/// dropped.
pub struct SinkReceiver {
    sink: SyslogSink,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl SinkReceiver {
    /// Binds a datagram socket at `path` that anyone may write to (a module
    /// running in a user's process logs too) and starts collecting.
    ///
    /// # Errors
    /// If the socket cannot be bound or its mode set.
    pub fn bind(path: &Path) -> io::Result<SinkReceiver> {
        let socket = UnixDatagram::bind(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o666))?;
        // The stop flag is checked at least this often, even if the wake-up
        // datagram sent on drop is lost.
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let shared = Arc::new(Shared {
            lines: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Acquire) {
                    match socket.recv(&mut buf) {
                        Ok(n) if n > 0 => {
                            shared.lines().push(LogLine::parse(&buf[..n]));
                            shared.arrived.notify_all();
                        }
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => break,
                    }
                }
            })
        };
        Ok(SinkReceiver {
            sink: SyslogSink {
                shared,
                path: path.to_owned(),
            },
            stop,
            reader: Some(reader),
        })
    }

    /// The lines, to read or wait for.
    pub fn sink(&self) -> &SyslogSink {
        &self.sink
    }
}

impl Drop for SinkReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // An empty datagram wakes the reader at once.
        if let Ok(s) = UnixDatagram::unbound() {
            let _ = s.send_to(&[], &self.sink.path);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_glibc_syslog_sends() {
        let l = LogLine::parse(
            b"<85>Nov 26 11:52:55 pam-converse: pam_unix(t:auth): authentication failure",
        );
        assert_eq!(l.priority, Some(85));
        assert_eq!(l.facility(), Some(AUTHPRIV));
        assert_eq!(l.severity(), Some(5));
        assert_eq!(l.tag, "pam-converse");
        assert_eq!(l.pid, None);
        assert_eq!(l.message, "pam_unix(t:auth): authentication failure");
    }

    #[test]
    fn parses_what_pam_mfa_sends() {
        let l = LogLine::parse(b"<86>pam_mfa[42]: event=auth_success user=alice\0");
        assert_eq!(l.raw, "<86>pam_mfa[42]: event=auth_success user=alice");
        assert_eq!(l.tag, "pam_mfa");
        assert_eq!(l.pid, Some(42));
        assert_eq!(l.message, "event=auth_success user=alice");
    }

    #[test]
    fn a_hostname_before_the_tag_is_skipped() {
        let l = LogLine::parse(b"<13>Nov  6 01:02:03 host probe[7]: hello: world\n");
        assert_eq!(l.tag, "probe");
        assert_eq!(l.pid, Some(7));
        assert_eq!(l.message, "hello: world");
    }

    #[test]
    fn text_without_a_tag_is_all_message() {
        let l = LogLine::parse(b"no priority, no tag");
        assert_eq!(l.priority, None);
        assert_eq!(l.tag, "");
        assert_eq!(l.message, "no priority, no tag");
    }

    #[test]
    fn collects_datagrams_and_waits_for_a_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let receiver = SinkReceiver::bind(&path).unwrap();
        let sink = receiver.sink().clone();
        let sender = UnixDatagram::unbound().unwrap();
        sender.send_to(b"<14>a[1]: first", &path).unwrap();
        sender.send_to(b"<14>b[2]: second", &path).unwrap();
        let got = sink
            .wait_for(|l| l.tag == "b", Duration::from_secs(5))
            .unwrap();
        assert_eq!(got.message, "second");
        assert_eq!(sink.count(), 2);
        let since: Vec<_> = sink.lines_since(1).into_iter().map(|l| l.tag).collect();
        assert_eq!(since, ["b"]);
        let missing = sink
            .wait_for(|l| l.tag == "c", Duration::from_millis(50))
            .unwrap_err();
        let shown = format!("{missing:?}");
        assert!(shown.contains("2 line(s) arrived"), "{shown}");
        assert!(shown.contains("<14>a[1]: first"), "{shown}");
        drop(receiver);
        assert_eq!(sink.lines().len(), 2, "lines outlive the receiver");
    }
}

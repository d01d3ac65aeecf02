//! Audit events as typed values.
//!
//! mfa-core decides and reports what it decided as an [`Event`]; the shells
//! write each one as a single syslog line (facility authpriv, ident
//! `pam_mfa` or `mfa-enroll`) in `key=value` form. An event never carries a
//! code, a secret or a recovery code: there is no field that could hold one.

use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};

use syslog::{Facility, LogFormat, Logger};

/// How urgent an event is, mapped by the shells to syslog levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Routine: a success, an administrative change.
    Info,
    /// Worth a look: a failed code, a denied user.
    Notice,
    /// Something an administrator should fix: a lockout, bad input.
    Warning,
    /// Integrity problems: corrupt or tampered records, unsafe files.
    Alert,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A second factor was verified and the new state committed.
    AuthSuccess,
    /// A wrong or malformed code.
    AuthFailure,
    /// A correct code from a step already used.
    AuthReplay,
    /// The attempt was refused without evaluation: back-off in force.
    AuthThrottled,
    /// The attempt was refused: the user reached the hard cap.
    AuthLocked,
    /// The user was not asked (remembered, exempt, or not enrolled under skip).
    AuthSkipped,
    /// The user was denied by policy (not enrolled under deny, unknown user).
    AuthDenied,
    /// A console login stepped aside without a code: its service sets
    /// `break_glass`. Logged at alert level every time.
    BreakGlass,
    /// No conversation was available (for example `sudo -n`).
    AuthNoConversation,
    /// A recovery code was consumed.
    RecoveryCodeUsed,
    /// A device was enrolled or activated.
    DeviceEnrolled,
    /// A device was removed.
    DeviceRemoved,
    /// A user's recovery codes were replaced.
    RecoveryCodesRegenerated,
    /// A user's record was deleted.
    UserReset,
    /// A user's failure counter was cleared.
    UserUnlocked,
    /// One of the user's own spool entries was passed over (and removed).
    PendingIgnored,
    /// A spool scan removed (or left) entries that were not the user's own
    /// requests: expired requests, entries not owned by the uid in their
    /// name, directories, junk names (one event per scan, however many).
    PendingExpired,
    /// One slot of a record was unusable and the other was used.
    RecordSlotDiscarded,
    /// A record could not be read or written.
    StoreFailure,
    /// The configuration or module arguments were refused.
    ConfigFailure,
    /// The master key could not be used.
    KeyFailure,
    /// A master key was created.
    KeyCreated,
    /// A key generation was added.
    KeyRotated,
    /// A key generation was removed.
    KeyRetired,
    /// A record was re-sealed under the active key.
    RecordMigrated,
    /// An internal error (including a caught panic).
    InternalError,
    /// A line of the `debug` module option's output.
    Debug,
}

impl EventKind {
    /// The `event=` value.
    pub fn name(self) -> &'static str {
        use EventKind::{
            AuthDenied, AuthFailure, AuthLocked, AuthNoConversation, AuthReplay, AuthSkipped,
            AuthSuccess, AuthThrottled, BreakGlass, ConfigFailure, Debug, DeviceEnrolled,
            DeviceRemoved, InternalError, KeyCreated, KeyFailure, KeyRetired, KeyRotated,
            PendingExpired, PendingIgnored, RecordMigrated, RecordSlotDiscarded, RecoveryCodeUsed,
            RecoveryCodesRegenerated, StoreFailure, UserReset, UserUnlocked,
        };
        match self {
            AuthSuccess => "auth_success",
            AuthFailure => "auth_failure",
            AuthReplay => "auth_replay",
            AuthThrottled => "auth_throttled",
            AuthLocked => "auth_locked",
            AuthSkipped => "auth_skipped",
            AuthDenied => "auth_denied",
            BreakGlass => "break_glass",
            AuthNoConversation => "auth_no_conversation",
            RecoveryCodeUsed => "recovery_code_used",
            DeviceEnrolled => "device_enrolled",
            DeviceRemoved => "device_removed",
            RecoveryCodesRegenerated => "recovery_codes_regenerated",
            UserReset => "user_reset",
            UserUnlocked => "user_unlocked",
            PendingIgnored => "pending_ignored",
            PendingExpired => "pending_expired",
            RecordSlotDiscarded => "record_slot_discarded",
            StoreFailure => "store_failure",
            ConfigFailure => "config_failure",
            KeyFailure => "key_failure",
            KeyCreated => "key_created",
            KeyRotated => "key_rotated",
            KeyRetired => "key_retired",
            RecordMigrated => "record_migrated",
            InternalError => "internal_error",
            Debug => "debug",
        }
    }

    /// How urgent it is.
    pub fn severity(self) -> Severity {
        use EventKind::{
            AuthDenied, AuthFailure, AuthLocked, AuthNoConversation, AuthReplay, AuthSkipped,
            AuthSuccess, AuthThrottled, BreakGlass, ConfigFailure, Debug, DeviceEnrolled,
            DeviceRemoved, InternalError, KeyCreated, KeyFailure, KeyRetired, KeyRotated,
            PendingExpired, PendingIgnored, RecordMigrated, RecordSlotDiscarded, RecoveryCodeUsed,
            RecoveryCodesRegenerated, StoreFailure, UserReset, UserUnlocked,
        };
        match self {
            AuthSuccess | AuthSkipped | RecoveryCodeUsed | UserReset | UserUnlocked
            | KeyCreated | KeyRotated | KeyRetired | RecordMigrated | PendingExpired | Debug => {
                Severity::Info
            }
            // A change of a user's factors is what an intruder with the user's
            // shell would try for; administrators watch for these lines.
            AuthFailure
            | AuthDenied
            | AuthNoConversation
            | AuthThrottled
            | DeviceEnrolled
            | DeviceRemoved
            | RecoveryCodesRegenerated => Severity::Notice,
            AuthReplay | AuthLocked | PendingIgnored | ConfigFailure | KeyFailure
            | InternalError => Severity::Warning,
            // Every way around the second factor is an administrator's to know of.
            RecordSlotDiscarded | StoreFailure | BreakGlass => Severity::Alert,
        }
    }
}

/// How the user authenticated, or tried to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A TOTP code.
    Totp,
    /// A recovery code.
    Recovery,
    /// Enrollment inside the login conversation.
    Enrollment,
    /// Remembered from a recent success.
    Remembered,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Recovery => "recovery",
            Method::Enrollment => "enrollment",
            Method::Remembered => "remembered",
        }
    }
}

/// One audit event. Build it with [`Event::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The user name as given (untrusted; escaped when written).
    pub user: Option<String>,
    /// The numeric uid, when known.
    pub uid: Option<u32>,
    /// The PAM service.
    pub service: Option<String>,
    /// The remote host PAM reported (untrusted).
    pub rhost: Option<String>,
    /// The method.
    pub method: Option<Method>,
    /// The device name.
    pub device: Option<String>,
    /// Why, in words for an administrator.
    pub reason: Option<String>,
    /// Recovery codes left, after one was used.
    pub remaining: Option<usize>,
}

impl Event {
    /// An event with only its kind set.
    pub fn new(kind: EventKind) -> Self {
        Event {
            kind,
            user: None,
            uid: None,
            service: None,
            rhost: None,
            method: None,
            device: None,
            reason: None,
            remaining: None,
        }
    }

    /// Sets the user name.
    #[must_use]
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    /// Sets the uid.
    #[must_use]
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Sets the service.
    #[must_use]
    pub fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_owned());
        self
    }

    /// Sets the remote host.
    #[must_use]
    pub fn rhost(mut self, rhost: &str) -> Self {
        self.rhost = Some(rhost.to_owned());
        self
    }

    /// Sets the method.
    #[must_use]
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Sets the device name.
    #[must_use]
    pub fn device(mut self, device: &str) -> Self {
        self.device = Some(device.to_owned());
        self
    }

    /// Sets the reason.
    #[must_use]
    pub fn reason(mut self, reason: impl fmt::Display) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    /// Sets the number of recovery codes left.
    #[must_use]
    pub fn remaining(mut self, n: usize) -> Self {
        self.remaining = Some(n);
        self
    }

    /// How urgent it is.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

/// Writes `value` so that it reads as one token and cannot forge another
/// field or line: bare if it is plain, otherwise double-quoted with `"` and
/// `\` escaped and every control or non-ASCII byte as `\xNN`.
fn write_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'=');
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for b in value.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' ' => out.push(' '),
            _ if b.is_ascii_graphic() => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(128);
        out.push_str("event=");
        out.push_str(self.kind.name());
        let mut field = |key: &str, value: &str| {
            out.push(' ');
            out.push_str(key);
            out.push('=');
            write_value(&mut out, value);
        };
        if let Some(v) = &self.user {
            field("user", v);
        }
        if let Some(v) = self.uid {
            field("uid", &v.to_string());
        }
        if let Some(v) = &self.service {
            field("service", v);
        }
        if let Some(v) = &self.rhost {
            field("rhost", v);
        }
        if let Some(v) = self.method {
            field("method", v.name());
        }
        if let Some(v) = &self.device {
            field("device", v);
        }
        if let Some(v) = self.remaining {
            field("remaining", &v.to_string());
        }
        if let Some(v) = &self.reason {
            field("reason", v);
        }
        f.write_str(&out)
    }
}

impl Severity {
    /// The syslog level: info, notice, warning, alert.
    fn syslog_level(self) -> syslog::Severity {
        match self {
            Severity::Info => syslog::Severity::LOG_INFO,
            Severity::Notice => syslog::Severity::LOG_NOTICE,
            Severity::Warning => syslog::Severity::LOG_WARNING,
            Severity::Alert => syslog::Severity::LOG_ALERT,
        }
    }
}

/// The head of every line, `<PRI>ident[pid]: `, with facility authpriv,
/// where sshd and sudo log.
///
/// The `syslog` crate's `Formatter3164` also writes a timestamp, in UTC and
/// with a zero-padded day (`Dec 05 00:35:48`), where glibc's `syslog(3)` in
/// sshd and sudo writes local time (`Dec  5 01:35:48` in a UTC+1 zone). A
/// daemon that keeps the timestamps it receives (syslog-ng does by default)
/// would file our lines hours away from the sshd and sudo lines of the same
/// login. Without a timestamp the daemon stamps each line on receipt, as it
/// stamps theirs; and, as with `hostname: None`, no hostname field.
#[derive(Debug, Clone, Copy)]
struct Header<'a> {
    ident: &'a str,
    pid: u32,
}

impl LogFormat<&Event> for Header<'_> {
    fn format<W: io::Write>(
        &self,
        w: &mut W,
        severity: syslog::Severity,
        event: &Event,
    ) -> syslog::Result<()> {
        let pri = Facility::LOG_AUTHPRIV as u8 | severity as u8;
        // One write_fmt call: the crate's socket backend sends what one call
        // formats as one datagram (or one NUL-terminated record on a stream).
        write!(w, "<{pri}>{}[{}]: {event}", self.ident, self.pid).map_err(syslog::Error::Write)
    }
}

/// Writes `event` through `logger` at the event's level.
fn write_event<W: io::Write>(
    logger: &mut Logger<W, Header<'_>>,
    event: &Event,
) -> syslog::Result<()> {
    logger
        .formatter
        .format(&mut logger.backend, event.severity().syslog_level(), event)
}

/// The datagram for `event`, as `<PRI>ident[pid]: event=...`. Without a
/// timestamp the syslog daemon stamps it on receipt.
pub fn syslog_datagram(ident: &str, pid: u32, event: &Event) -> String {
    let mut logger = Logger::new(Vec::with_capacity(160), Header { ident, pid });
    // Formatting into memory cannot fail: Event's Display only writes.
    let _ = write_event(&mut logger, event);
    String::from_utf8_lossy(&logger.backend).into_owned()
}

/// An audit line could not be handed to the syslog daemon.
#[derive(Debug)]
pub struct SendError {
    socket: PathBuf,
    cause: syslog::Error,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot send an audit line to {}: {}; check that the syslog daemon \
             (systemd-journald or rsyslog) is running and listens there",
            self.socket.display(),
            self.cause
        )
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// Sends `event` to the syslog socket at `socket` (normally `/dev/log`),
/// facility authpriv, ident `ident`, this process's pid, at the event's
/// level.
///
/// The `syslog` crate connects a socket of this call's own (datagram, or
/// stream where the daemon listens on one) and writes the line itself. It
/// never calls `openlog` or `syslog(3)`, which would change the host
/// program's syslog identity (sshd's, sudo's), and nothing outlives the
/// call: no logger is installed and no connection is kept, so nothing is
/// left in the application's process between logins.
///
/// # Errors
/// If there is no syslog daemon listening; the caller decides whether that
/// matters (it does not change any decision).
pub fn send_to(socket: &Path, ident: &str, event: &Event) -> Result<(), SendError> {
    let header = Header {
        ident,
        pid: std::process::id(),
    };
    syslog::unix_custom(header, socket)
        .and_then(|mut logger| write_event(&mut logger, event))
        .map_err(|cause| SendError {
            socket: socket.to_owned(),
            cause,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::{UnixDatagram, UnixListener};

    #[test]
    fn formats_one_key_value_line() {
        let e = Event::new(EventKind::AuthSuccess)
            .user("alice")
            .uid(1000)
            .service("sshd")
            .rhost("192.0.2.7")
            .method(Method::Totp)
            .device("phone");
        assert_eq!(
            e.to_string(),
            "event=auth_success user=alice uid=1000 service=sshd rhost=192.0.2.7 method=totp device=phone"
        );
    }

    #[test]
    fn hostile_values_cannot_forge_fields_or_lines() {
        let e = Event::new(EventKind::AuthFailure)
            .user("x\nevent=auth_success uid=0")
            .reason("wrong code");
        let line = e.to_string();
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            r#"event=auth_failure user="x\x0aevent=auth_success uid=0" reason="wrong code""#
        );
        let quoted = Event::new(EventKind::AuthFailure)
            .user("a\"b\\c")
            .to_string();
        assert_eq!(quoted, r#"event=auth_failure user="a\"b\\c""#);
        let empty = Event::new(EventKind::AuthDenied).user("").to_string();
        assert_eq!(empty, r#"event=auth_denied user="""#);
    }

    #[test]
    fn datagrams_carry_authpriv_and_the_severity() {
        let e = Event::new(EventKind::AuthSuccess).user("alice");
        assert_eq!(
            syslog_datagram("pam_mfa", 42, &e),
            "<86>pam_mfa[42]: event=auth_success user=alice"
        );
        let e = Event::new(EventKind::StoreFailure);
        assert!(syslog_datagram("pam_mfa", 1, &e).starts_with("<81>"));
    }

    #[test]
    fn events_reach_a_listening_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let sink = UnixDatagram::bind(&path).unwrap();
        send_to(
            &path,
            "mfa-enroll",
            &Event::new(EventKind::UserUnlocked).uid(7),
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let n = sink.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.ends_with("]: event=user_unlocked uid=7"), "{got}");
        assert!(got.starts_with("<86>mfa-enroll["), "{got}");
    }

    #[test]
    fn each_severity_has_its_level_under_authpriv() {
        // authpriv is facility 10: PRI = 80 + level.
        for (kind, pri) in [
            (EventKind::AuthSuccess, "<86>"),
            (EventKind::AuthFailure, "<85>"),
            (EventKind::AuthLocked, "<84>"),
            (EventKind::StoreFailure, "<81>"),
        ] {
            let line = syslog_datagram("pam_mfa", 9, &Event::new(kind));
            assert_eq!(line, format!("{pri}pam_mfa[9]: event={}", kind.name()));
        }
    }

    #[test]
    fn no_daemon_is_an_error_naming_the_socket_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let err = send_to(&path, "pam_mfa", &Event::new(EventKind::AuthSuccess)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("syslog daemon"), "{text}");
        // A socket nobody reads any more (the daemon stopped).
        let gone = dir.path().join("gone");
        drop(UnixDatagram::bind(&gone).unwrap());
        assert!(send_to(&gone, "pam_mfa", &Event::new(EventKind::AuthSuccess)).is_err());
    }

    #[test]
    fn a_stream_socket_gets_one_nul_terminated_line() {
        // Some syslog daemons listen on /dev/log as a stream socket; glibc's
        // syslog(3) then ends each line with a NUL, and so does the crate.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let listener = UnixListener::bind(&path).unwrap();
        send_to(
            &path,
            "mfa-enroll",
            &Event::new(EventKind::UserReset).uid(3),
        )
        .unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        let got = String::from_utf8(got).unwrap();
        let pid = std::process::id();
        assert_eq!(
            got,
            format!("<86>mfa-enroll[{pid}]: event=user_reset uid=3\0")
        );
    }

    #[test]
    fn integrity_problems_are_alerts() {
        assert_eq!(EventKind::RecordSlotDiscarded.severity(), Severity::Alert);
        assert_eq!(EventKind::StoreFailure.severity(), Severity::Alert);
        assert_eq!(EventKind::BreakGlass.severity(), Severity::Alert);
        assert_eq!(EventKind::BreakGlass.name(), "break_glass");
        assert_eq!(EventKind::AuthSuccess.severity(), Severity::Info);
    }
}

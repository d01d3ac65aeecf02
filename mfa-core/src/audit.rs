//! Audit events as typed values.
//!
//! mfa-core decides and reports what it decided as an [`Event`]; the shells
//! write each one as a single syslog line (facility authpriv, ident
//! `pam_mfa` or `mfa-enroll`) in `key=value` form. An event never carries a
//! code, a secret or a recovery code: there is no field that could hold one.

use std::fmt::{self, Write as _};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

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

/// The syslog facility of every event: authpriv, where sshd and sudo log.
const LOG_AUTHPRIV: u8 = 10 << 3;

impl Severity {
    fn syslog_level(self) -> u8 {
        match self {
            Severity::Info => 6,
            Severity::Notice => 5,
            Severity::Warning => 4,
            Severity::Alert => 1,
        }
    }
}

/// The datagram for `event`, as `<PRI>ident[pid]: event=...`. Without a
/// timestamp the syslog daemon stamps it on receipt.
pub fn syslog_datagram(ident: &str, pid: u32, event: &Event) -> String {
    let pri = LOG_AUTHPRIV | event.severity().syslog_level();
    format!("<{pri}>{ident}[{pid}]: {event}")
}

/// Sends `event` to the syslog socket at `socket` (normally `/dev/log`).
///
/// This talks to the socket directly instead of calling `openlog`, which
/// would change the host program's syslog identity (sshd's, sudo's).
///
/// # Errors
/// If there is no syslog daemon listening; the caller decides whether that
/// matters (it does not change any decision).
pub fn send_to(socket: &Path, ident: &str, event: &Event) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.send_to(
        syslog_datagram(ident, std::process::id(), event).as_bytes(),
        socket,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn integrity_problems_are_alerts() {
        assert_eq!(EventKind::RecordSlotDiscarded.severity(), Severity::Alert);
        assert_eq!(EventKind::StoreFailure.severity(), Severity::Alert);
        assert_eq!(EventKind::BreakGlass.severity(), Severity::Alert);
        assert_eq!(EventKind::BreakGlass.name(), "break_glass");
        assert_eq!(EventKind::AuthSuccess.severity(), Severity::Info);
    }
}

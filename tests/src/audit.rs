//! pam_mfa's audit lines (`event=... user=... key="quoted value"`) as the
//! tests look for them in a sandbox's syslog.

use std::fmt::Write as _;
use std::time::Duration;

use crate::syslog::{LogLine, SyslogSink, AUTHPRIV};

/// How long an expected audit line may take to arrive.
pub const AUDIT_WAIT: Duration = Duration::from_secs(10);

/// One audit line of pam_mfa, split into its fields: `event=...` and the
/// rest in order. The one parser of audit lines in the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    /// The `event=` value.
    pub event: String,
    /// Every other field, in the order written.
    pub fields: Vec<(String, String)>,
}

impl AuditLine {
    /// Parses `key=value key="quoted value" ...` as pam_mfa writes it
    /// (quoted values escape `"` and `\` with a backslash and every
    /// control or non-ASCII byte as `\xNN`); `None` if it is not an audit
    /// line.
    pub fn parse(message: &str) -> Option<AuditLine> {
        let mut fields = Vec::new();
        let mut rest = message;
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            let (key, after) = rest.split_once('=')?;
            if key.is_empty() || key.contains(' ') {
                return None;
            }
            let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
                unquote(quoted)?
            } else {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            };
            fields.push((key.to_owned(), value));
            rest = after;
        }
        let at = fields.iter().position(|(k, _)| k == "event")?;
        let (_, event) = fields.remove(at);
        Some(AuditLine { event, fields })
    }

    /// The value of `key` (`event` included), if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        if key == "event" {
            return Some(&self.event);
        }
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a quoted value up to its closing quote; returns it unescaped and
/// what follows.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut value = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some((String::from_utf8_lossy(&value).into_owned(), &text[i + 1..])),
            b'\\' => {
                match bytes.get(i + 1)? {
                    b'x' => {
                        let hex = text.get(i + 2..i + 4)?;
                        value.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    other => value.push(*other),
                }
                i += 2;
            }
            b => {
                value.push(b);
                i += 1;
            }
        }
    }
    None
}

/// The value of `key` in an audit message (see [`AuditLine::parse`]).
pub fn field(message: &str, key: &str) -> Option<String> {
    AuditLine::parse(message).and_then(|a| a.get(key).map(str::to_owned))
}

/// Whether `line` is a pam_mfa audit line (ident `pam_mfa`, facility
/// authpriv) whose fields include every `(key, value)` of `want`.
pub fn matches(line: &LogLine, ident: &str, want: &[(&str, &str)]) -> bool {
    line.tag == ident
        && line.facility() == Some(AUTHPRIV)
        && want
            .iter()
            .all(|(k, v)| field(&line.message, k).as_deref() == Some(*v))
}

/// Waits for a `pam_mfa` line with `event=EVENT` and the `want` fields
/// and returns it; fails listing every line that arrived.
pub fn expect_event(syslog: &SyslogSink, event: &str, want: &[(&str, &str)]) -> LogLine {
    let mut all = vec![("event", event)];
    all.extend_from_slice(want);
    syslog
        .wait_for(|l| matches(l, "pam_mfa", &all), AUDIT_WAIT)
        .unwrap_or_else(|e| panic!("expected a pam_mfa line with {all:?}:\n{e:?}"))
}

/// The `pam_mfa` lines received so far, for assertions about what did
/// *not* happen.
pub fn pam_mfa_lines(syslog: &SyslogSink) -> Vec<LogLine> {
    syslog
        .lines()
        .into_iter()
        .filter(|l| l.tag == "pam_mfa")
        .collect()
}

/// How many `pam_mfa` lines with `event=EVENT` and the `want` fields there
/// are so far.
pub fn count_events(syslog: &SyslogSink, event: &str, want: &[(&str, &str)]) -> usize {
    let mut all = vec![("event", event)];
    all.extend_from_slice(want);
    syslog
        .lines()
        .iter()
        .filter(|l| matches(l, "pam_mfa", &all))
        .count()
}

/// Every line of the sink, one per line, for failure reports.
pub fn render_syslog(syslog: &SyslogSink) -> String {
    syslog.lines().iter().fold(String::new(), |mut s, l| {
        let _ = writeln!(s, "{l}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted_values_are_split_and_unescaped() {
        let line = AuditLine::parse(
            r#"event=auth_failure user=alice uid=1000 reason="wrong code" note="say \"hi\"" device="\x1b]0;x\x07""#,
        )
        .unwrap();
        assert_eq!(line.event, "auth_failure");
        let want: Vec<(String, String)> = [
            ("user", "alice"),
            ("uid", "1000"),
            ("reason", "wrong code"),
            ("note", "say \"hi\""),
            ("device", "\u{1b}]0;x\u{7}"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(line.fields, want);
        assert_eq!(
            field("event=x rhost=127.0.0.1", "rhost").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(field("event=x", "user"), None);
        assert_eq!(AuditLine::parse("no fields here"), None);
    }

    #[test]
    fn lines_match_on_ident_facility_and_fields() {
        let l = LogLine::parse(b"<86>pam_mfa[7]: event=auth_success user=bob method=totp");
        assert!(matches(
            &l,
            "pam_mfa",
            &[("event", "auth_success"), ("user", "bob")]
        ));
        assert!(!matches(&l, "pam_mfa", &[("method", "recovery")]));
        assert!(!matches(&l, "sudo", &[]));
        let user_facility = LogLine::parse(b"<14>pam_mfa[7]: event=auth_success");
        assert!(!matches(&user_facility, "pam_mfa", &[]));
    }
}

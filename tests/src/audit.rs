//! pam_mfa's audit lines (`event=... user=... key="quoted value"`) as the
//! tests look for them in a sandbox's syslog.

use std::fmt::Write as _;
use std::time::Duration;

use crate::syslog::{LogLine, SyslogSink, AUTHPRIV};

/// How long an expected audit line may take to arrive.
pub const AUDIT_WAIT: Duration = Duration::from_secs(10);

/// The `key=value` fields of an audit message, in order. Values may be
/// double-quoted, with `\"` and `\\` escapes.
pub fn fields(message: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = message.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    _ => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
    out
}

/// The value of `key` in an audit message.
pub fn field(message: &str, key: &str) -> Option<String> {
    fields(message)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
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
    fn plain_and_quoted_values_are_split() {
        let got = fields(
            r#"event=auth_failure user=alice uid=1000 reason="wrong code" note="say \"hi\"""#,
        );
        let want: Vec<(String, String)> = [
            ("event", "auth_failure"),
            ("user", "alice"),
            ("uid", "1000"),
            ("reason", "wrong code"),
            ("note", "say \"hi\""),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            field("event=x rhost=127.0.0.1", "rhost").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(field("event=x", "user"), None);
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

//! Device names are checked where they enter and escaped where they are
//! shown (SECURITY.md 31): no control character from a user reaches a
//! terminal or forges a log line.

use mfa_core::admin::{self, AdminError, EnrollRequest};
use mfa_core::audit::{Event, EventKind};
use mfa_core::config::Config;
use mfa_core::enrollment::{check_device_name, EnrollmentError};
use mfa_core::text::escape;

/// Terminal escapes (OSC title ended by BEL, clear screen, bell, C1 CSI,
/// DEL, NUL, newline) and characters that make a name read as another
/// (bidirectional override and isolate, zero-width space, BOM, a tag
/// character, the line separator).
const HOSTILE: [&str; 14] = [
    "\x1b]0;pwned\x07",
    "\x1b[2J",
    "\x07",
    "csi\u{9b}31m",
    "del\x7f",
    "nul\0",
    "two\nlines",
    "\u{202e}",
    "phone\u{202e}enohp",
    "x\u{2066}y\u{2069}",
    "zero\u{200b}width",
    "\u{feff}bom",
    "tag\u{e0041}",
    "line\u{2028}sep",
];

#[test]
fn names_with_escapes_or_invisible_characters_are_refused() {
    for name in HOSTILE {
        assert!(
            matches!(check_device_name(name), Err(EnrollmentError::BadDeviceName)),
            "{name:?} accepted"
        );
    }
}

#[test]
fn empty_long_or_space_padded_names_are_refused() {
    for name in ["", " ", "phone ", " phone", "phone\t", "\u{a0}phone"] {
        assert!(check_device_name(name).is_err(), "{name:?} accepted");
    }
    assert!(check_device_name(&"a".repeat(65)).is_err());
    // 64 bytes in 32 characters: the bound is in bytes.
    assert!(check_device_name(&"é".repeat(33)).is_err());
    assert!(check_device_name(&"é".repeat(32)).is_ok());
}

#[test]
fn ordinary_names_in_any_script_are_accepted() {
    for name in [
        "phone",
        "default",
        "my phone",
        "Téléphone de Zoé",
        "電話",
        "YubiKey 5 (NFC)",
        "📱",
        r"back\slash",
        &"a".repeat(64),
    ] {
        assert!(check_device_name(name).is_ok(), "{name:?} refused");
    }
}

#[test]
fn the_refusal_says_what_a_name_may_be() {
    let text = EnrollmentError::BadDeviceName.to_string();
    assert!(text.contains("64 bytes"), "{text}");
    assert!(text.contains("control characters"), "{text}");
    assert!(text.contains("choose another name"), "{text}");
}

#[test]
fn an_administrators_enrollment_checks_the_name_before_making_a_secret() {
    for name in HOSTILE {
        let request = EnrollRequest {
            username: "alice",
            device: name,
            issuer: "host",
            account: "alice@host",
            replace: false,
        };
        let err = admin::provision(&Config::default(), &request, 1_700_000_000).unwrap_err();
        assert!(
            matches!(err, AdminError::Enrollment(EnrollmentError::BadDeviceName)),
            "{name:?}: {err}"
        );
    }
}

#[test]
fn escaped_names_show_every_character_that_is_not_printable() {
    for name in HOSTILE {
        let shown = escape(name);
        assert!(
            shown.chars().all(|c| !c.is_control()
                && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{e0000}'..='\u{e007f}')),
            "{name:?} shown as {shown:?}"
        );
    }
    assert_eq!(escape("\x1b]0;pwned\x07"), r"\x1b]0;pwned\x07");
    assert_eq!(escape("phone\u{202e}enohp"), r"phone\u{202e}enohp");
    assert_eq!(escape("phone"), "phone");
}

#[test]
fn audit_lines_quote_hostile_names_byte_by_byte() {
    for name in HOSTILE {
        let line = Event::new(EventKind::DeviceEnrolled)
            .user(name)
            .device(name)
            .reason(name)
            .to_string();
        assert!(
            line.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
            "{name:?} reaches the log as {line:?}"
        );
    }
    let line = Event::new(EventKind::DeviceEnrolled)
        .device("\x1b]0;pwned\x07\u{202e}")
        .to_string();
    assert_eq!(
        line,
        r#"event=device_enrolled device="\x1b]0;pwned\x07\xe2\x80\xae""#
    );
}

//! How results look: text for people, JSON for scripts, audit events for
//! the log. Nothing here decides anything.

use std::fmt::Write as _;
use std::io;

use mfa_core::admin::{Provision, UserStatus};
use mfa_core::audit::{Event, EventKind};
use mfa_core::recovery::RecoveryCode;
use mfa_core::text::{self, escape};
use serde::Serialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::context::Who;

pub use mfa_core::clock::utc;

/// Room for everything an enrollment prints (the UTF-8 QR code is the
/// largest part, about 5 KiB), reserved up front so that the buffers holding
/// the secret never reallocate and leave copies behind.
const SECRET_TEXT_CAPACITY: usize = 32 * 1024;

/// JSON whose strings carry no character a terminal would act on.
/// `serde_json` escapes the C0 controls itself; this also writes DEL, the
/// C1 controls, bidirectional overrides and every other character that is
/// not [`text::is_printable`] as `\uXXXX`, so that `--json` output read on
/// a terminal is as safe as the text output. A JSON reader gets the exact
/// value back.
struct PrintableJson;

impl serde_json::ser::Formatter for PrintableJson {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut rest = fragment;
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| !text::is_printable(c)) {
            writer.write_all(&rest.as_bytes()[..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

/// Writes `value` as compact JSON into `buf`, the way every `--json`
/// output is written. Nothing is allocated beyond `buf`'s growth, so a
/// buffer reserved up front for secrets never reallocates.
pub fn write_json(buf: &mut Vec<u8>, value: &impl Serialize) {
    let mut serializer = serde_json::Serializer::with_formatter(buf, PrintableJson);
    // Plain strings, numbers and maps into a Vec: this cannot fail.
    let _ = value.serialize(&mut serializer);
}

/// `value` as one line of JSON, newline included (see [`write_json`]).
pub fn json_line(value: &impl Serialize) -> String {
    let mut buf = Vec::new();
    write_json(&mut buf, value);
    buf.push(b'\n');
    // serde_json writes UTF-8 only.
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// What `enroll --json` prints, in this order.
#[derive(Serialize)]
struct EnrollOutput<'a> {
    user: Option<&'a str>,
    uid: u32,
    device: &'a str,
    otpauth_uri: &'a str,
    secret: &'a str,
    recovery_codes: Vec<&'a str>,
    key_generation: u32,
}

/// The JSON object `enroll --json` prints, with a newline, in a buffer that
/// is wiped when dropped.
pub fn enroll_json(who: &Who, p: &Provision, generation: u32) -> Zeroizing<Vec<u8>> {
    let output = EnrollOutput {
        user: who.name.as_deref(),
        uid: who.uid,
        device: p.device_name(),
        otpauth_uri: p.uri(),
        secret: p.secret_base32(),
        recovery_codes: p
            .recovery_codes()
            .iter()
            .map(RecoveryCode::display)
            .collect(),
        key_generation: generation,
    };
    let mut buf = Zeroizing::new(Vec::with_capacity(SECRET_TEXT_CAPACITY));
    write_json(&mut buf, &output);
    buf.push(b'\n');
    buf
}

/// The lines that let the user add the device to an app.
pub fn enroll_instructions(who: &Who, p: &Provision, qr: &[String]) -> Zeroizing<String> {
    let params = p.params();
    let mut s = Zeroizing::new(String::with_capacity(SECRET_TEXT_CAPACITY));
    let _ = writeln!(
        s,
        "Enrolling device \"{}\" for {}.\n",
        escape(p.device_name()),
        who.describe()
    );
    if !qr.is_empty() {
        s.push_str("Scan this QR code with the authenticator app:\n\n");
        for line in qr {
            s.push_str(line);
            s.push('\n');
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "Or type this secret into the app (time-based, {}, {} digits, every {} seconds):\n\n    {}\n",
        params.algorithm.as_str(),
        params.digits,
        params.period,
        p.secret_grouped()
    );
    let _ = writeln!(s, "otpauth URI: {}\n", p.uri());
    s
}

/// The prompt for the code, printed without a newline.
pub const CODE_PROMPT: &str = "Verification code from the app: ";

/// What is shown once the device is stored.
pub fn enroll_done(who: &Who, p: &Provision, replaced: bool) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(SECRET_TEXT_CAPACITY));
    let _ = writeln!(
        s,
        "\nDevice \"{}\" is enrolled for {}.",
        escape(p.device_name()),
        who.describe()
    );
    if replaced {
        s.push_str("The previous devices and recovery codes no longer work.\n");
    }
    s.push_str(
        "\nRecovery codes: each works once, in place of a code from the app. They are\n\
         shown only now; keep them somewhere safe, away from the phone.\n\n",
    );
    for code in p.recovery_codes() {
        let _ = writeln!(s, "    {}", code.display());
    }
    s
}

/// The JSON object `status --json` prints. The keys are the same whether or
/// not the user is enrolled.
pub fn status_json(who: &Who, s: &UserStatus) -> Value {
    let devices: Vec<Value> = s
        .devices
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "algorithm": d.params.algorithm.as_str(),
                "digits": d.params.digits,
                "period": d.params.period,
                "created": d.created,
                "last_used_step": d.last_used_step,
            })
        })
        .collect();
    json!({
        "user": who.name,
        "uid": who.local_uid(),
        "enrolled": s.enrolled,
        "enrolled_as": s.enrolled_as,
        "created": s.created,
        "devices": devices,
        "recovery_codes_left": s.recovery_codes_left,
        "failures": s.failures,
        "last_failure": s.last_failure,
        "locked": s.locked,
        "backoff_until": s.backoff_until,
        "key_generation": s.key_generations,
        "last_success": s.last_success.as_ref().map(|l| json!({
            "time": l.time,
            "service": l.service,
            "rhost": l.rhost,
        })),
        "slot_discarded": s.slot_discarded.as_ref().map(ToString::to_string),
    })
}

/// `status` for people.
pub fn status_text(who: &Who, s: &UserStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "user:                {}", who.describe());
    if !s.enrolled {
        out.push_str("enrolled:            no\n");
        return out;
    }
    let since = s.created.map(utc).unwrap_or_default();
    let _ = writeln!(out, "enrolled:            yes, since {since}");
    if let Some(name) = &s.enrolled_as {
        if who.name.as_deref() != Some(name.as_str()) {
            let _ = writeln!(out, "enrolled as:         {}", escape(name));
        }
    }
    if s.devices.is_empty() {
        out.push_str("devices:             none\n");
    }
    for (i, d) in s.devices.iter().enumerate() {
        let label = if i == 0 { "devices:" } else { "" };
        let _ = writeln!(
            out,
            "{label:<21}{} ({}, {} digits, {} s, added {})",
            escape(&d.name),
            d.params.algorithm.as_str(),
            d.params.digits,
            d.params.period,
            utc(d.created)
        );
    }
    let _ = writeln!(out, "recovery codes left: {}", s.recovery_codes_left);
    let _ = write!(out, "failed attempts:     {}", s.failures);
    if let Some(t) = s.last_failure {
        let _ = write!(out, " (last {})", utc(t));
    }
    out.push('\n');
    if s.locked {
        out.push_str("locked:              yes; `mfa-enroll unlock` lets the user in again\n");
    } else if let Some(until) = s.backoff_until {
        let _ = writeln!(
            out,
            "locked:              no; attempts refused until {}",
            utc(until)
        );
    } else {
        out.push_str("locked:              no\n");
    }
    let generations: Vec<String> = s.key_generations.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "key generation:      {}", generations.join(", "));
    match &s.last_success {
        Some(l) => {
            let _ = write!(
                out,
                "last success:        {} via {}",
                utc(l.time),
                escape(&l.service)
            );
            if !l.rhost.is_empty() {
                let _ = write!(out, " from {}", escape(&l.rhost));
            }
            out.push('\n');
        }
        None => out.push_str("last success:        never\n"),
    }
    if let Some(fault) = &s.slot_discarded {
        let _ = writeln!(
            out,
            "warning: one half of the record was unusable ({fault}); the state in use is the one \
             before its last update. The next login or change rewrites it; if this repeats, \
             check the disk."
        );
    }
    out
}

/// The audit line for an enrollment. It names the device, never the secret.
pub fn enrolled_event(who: &Who, device: &str, replaced: bool) -> Event {
    let reason = if replaced {
        "enrolled by an administrator, replacing the previous record"
    } else {
        "enrolled by an administrator"
    };
    who.event(EventKind::DeviceEnrolled)
        .device(device)
        .reason(reason)
}

/// The audit line for a reset.
pub fn reset_event(who: &Who, unreadable: Option<&str>) -> Event {
    let event = who.event(EventKind::UserReset);
    match unreadable {
        Some(why) => event.reason(format!("removed an unreadable record: {why}")),
        None => event.reason("record removed by an administrator"),
    }
}

/// The audit line for an unlock.
pub fn unlocked_event(who: &Who, cleared: u32) -> Event {
    who.event(EventKind::UserUnlocked).reason(format!(
        "{cleared} failed attempts cleared by an administrator"
    ))
}

/// The audit line for a new master key.
pub fn key_created_event(generation: u32) -> Event {
    Event::new(EventKind::KeyCreated).reason(format!("generation {generation} created"))
}

/// The audit line for a removed device; `record_removed` when it was the
/// last one and the whole record went with it.
pub fn device_removed_event(who: &Who, device: &str, record_removed: bool) -> Event {
    let reason = if record_removed {
        "removed by an administrator; it was the last device, so the record was removed"
    } else {
        "removed by an administrator"
    };
    who.event(EventKind::DeviceRemoved)
        .device(device)
        .reason(reason)
}

/// The audit line for a new set of recovery codes. It counts them, never
/// shows them.
pub fn recovery_regenerated_event(who: &Who, count: usize) -> Event {
    who.event(EventKind::RecoveryCodesRegenerated)
        .remaining(count)
        .reason("regenerated by an administrator; the previous codes no longer work")
}

/// The audit line for a new active key generation.
pub fn key_rotated_event(generation: u32) -> Event {
    Event::new(EventKind::KeyRotated).reason(format!("generation {generation} created and active"))
}

/// The audit line for a removed key generation.
pub fn key_retired_event(generation: u32) -> Event {
    Event::new(EventKind::KeyRetired).reason(format!("generation {generation} removed"))
}

/// The audit line for a record re-sealed under the active generation.
pub fn migrated_event(who: &Who, from: &[u32], to: u32) -> Event {
    let from: Vec<String> = from.iter().map(ToString::to_string).collect();
    who.event(EventKind::RecordMigrated).reason(format!(
        "re-sealed from generation {} to {to}",
        from.join(",")
    ))
}

/// The audit line for a device taken over from another module.
pub fn imported_event(who: &Who, device: &str, source: &str, replaced: bool) -> Event {
    let mut reason = format!("imported from {source} by an administrator");
    if replaced {
        reason.push_str(", replacing the previous record");
    }
    who.event(EventKind::DeviceEnrolled)
        .device(device)
        .reason(reason)
}

/// The audit line for a record half that was found unusable.
pub fn slot_discarded_event(who: &Who, why: &str) -> Event {
    who.event(EventKind::RecordSlotDiscarded).reason(why)
}

/// `1 record`, `2 records`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Left-aligned columns, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `yes` or `no`, as the tables show a flag.
pub fn yes_no(b: bool) -> String {
    (if b { "yes" } else { "no" }).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_core::admin::{self, EnrollRequest};
    use mfa_core::config::Config;

    fn who() -> Who {
        Who {
            uid: 1000,
            name: Some("alice".into()),
        }
    }

    fn provision() -> Provision {
        let mut config = Config::default();
        config.recovery.count = 2;
        let req = EnrollRequest {
            username: "alice",
            device: "phone",
            issuer: "host",
            account: "alice@host",
            replace: false,
        };
        admin::provision(&config, &req, 1_764_150_000).unwrap()
    }

    #[test]
    fn json_escapes_what_a_terminal_acts_on_and_reads_back_exactly() {
        let value = json!({"name": "\x1b]0;x\x07 \u{7f}\u{9b}\u{202e}\u{e0041} é 電 \\ \""});
        let line = json_line(&value);
        assert!(
            line.trim_end_matches('\n').chars().all(text::is_printable),
            "{line}"
        );
        assert!(
            line.contains(r#"\u001b]0;x\u0007 \u007f\u009b\u202e\udb40\udc41 é 電 \\ \""#),
            "{line}"
        );
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(2_147_483_647), "2038-01-19 03:14:07 UTC");
        assert_eq!(utc(20_000_000_000), "2603-10-11 11:33:20 UTC");
    }

    #[test]
    fn enroll_json_has_exactly_the_documented_fields() {
        let p = provision();
        let v: Value = serde_json::from_slice(&enroll_json(&who(), &p, 1)).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "device",
                "key_generation",
                "otpauth_uri",
                "recovery_codes",
                "secret",
                "uid",
                "user"
            ]
        );
        assert_eq!(v["secret"], p.secret_base32());
        assert_eq!(v["recovery_codes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn audit_events_never_carry_the_secret_or_the_codes() {
        let p = provision();
        let lines = [
            enrolled_event(&who(), p.device_name(), true).to_string(),
            reset_event(&who(), Some("corrupt")).to_string(),
            unlocked_event(&who(), 3).to_string(),
        ];
        assert!(lines[0].contains("device=phone"));
        assert!(lines[0].contains("user=alice uid=1000"));
        for line in &lines {
            assert!(!line.contains(p.secret_base32()));
            for code in p.recovery_codes() {
                assert!(!line.contains(code.display()));
            }
        }
    }

    #[test]
    fn status_text_of_a_user_without_a_record_says_so() {
        let s = UserStatus {
            uid: 1000,
            enrolled: false,
            enrolled_as: None,
            created: None,
            devices: Vec::new(),
            recovery_codes_left: 0,
            failures: 0,
            last_failure: None,
            locked: false,
            backoff_until: None,
            key_generations: Vec::new(),
            last_success: None,
            slot_discarded: None,
        };
        let text = status_text(&who(), &s);
        assert!(text.contains("alice (uid 1000)"));
        assert!(text.contains("enrolled:            no"));
        let v = status_json(&who(), &s);
        assert_eq!(v["enrolled"], false);
        assert_eq!(v["last_success"], Value::Null);
        assert_eq!(v["devices"], json!([]));
    }
}

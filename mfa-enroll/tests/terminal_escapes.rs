//! No terminal escape from a name reaches the administrator's terminal
//! (SECURITY.md 31), through the real binary.
//!
//! Device names are refused at every entry (`enroll --device`, a user's own
//! enrollment, both imports, `approve` of a user's request) unless they are
//! printable; names that are already stored (written by an older release,
//! or through the library, as here) and spool file names that any user can
//! choose are printed escaped by every command that shows them, and the
//! JSON output keeps their exact value. Needs root, util-linux's `setpriv`
//! and oathtool, like the other tests of this crate.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{oathtool, set_mode, stderr, stdout, write, Host, UID, USER};
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::pending::{Pending, Request};
use mfa_core::store::Store;
use serde_json::Value;

/// Names that would act on a terminal: an OSC title change ended by BEL,
/// clear screen, a bare bell, a right-to-left override that makes a name
/// read backwards, a C1 CSI (the 8-bit form of ESC `[`), an isolate, DEL.
const HOSTILE: [&str; 8] = [
    "\x1b]0;pwned\x07",
    "\x1b[2J",
    "\x07",
    "\u{202e}",
    "phone\u{202e}enohp",
    "a\u{9b}31mb",
    "x\u{2066}y",
    "del\x7f",
];

/// How each of [`HOSTILE`] must look when printed for people.
const ESCAPED: [&str; 8] = [
    r"\x1b]0;pwned\x07",
    r"\x1b[2J",
    r"\x07",
    r"\u{202e}",
    r"phone\u{202e}enohp",
    r"a\u{9b}31mb",
    r"x\u{2066}y",
    r"del\x7f",
];

/// Panics if `out` printed a control character (other than newline) or a
/// character that reorders or hides text.
fn assert_no_raw_escapes(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let bad: Vec<char> = text
            .chars()
            .filter(|&c| {
                (c.is_control() && c != '\n')
                    || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{what}: {stream} carries raw {bad:?}:\n{}",
            text.escape_debug()
        );
    }
}

fn uid_file(host: &Host) -> PathBuf {
    host.state_dir().join(UID.to_string())
}

fn keys(host: &Host) -> MasterKey {
    MasterKey::load(&host.dir.path().join("keys/master.key"), FileTrust::ROOT).unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mfa-core/tests/fixtures")
}

/// Checks the refusal of a bad device name: usage error, a message about
/// the device name, nothing raw echoed.
fn assert_refused(what: &str, out: &Output) {
    assert_no_raw_escapes(what, out);
    assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(out));
    assert!(
        stderr(out).contains("device name"),
        "{what}: {}",
        stderr(out)
    );
}

// ---------------------------------------------------------------------------
// refused at entry

#[test]
fn an_administrators_enrollment_refuses_a_device_name_with_escapes() {
    let host = Host::new();
    for name in HOSTILE {
        let out = host.run(&["enroll", "--user", USER, "--device", name, "--json"]);
        assert_refused(&format!("enroll --device {name:?}"), &out);
        assert!(!uid_file(&host).exists(), "{name:?} was enrolled");
    }
}

#[test]
fn a_device_name_over_64_bytes_is_refused() {
    let host = Host::new();
    let long = "é".repeat(33);
    let out = host.run(&["enroll", "--user", USER, "--device", &long, "--json"]);
    assert_refused("66-byte name", &out);
    assert!(stderr(&out).contains("64 bytes"), "{}", stderr(&out));
    let just = "é".repeat(32);
    host.ok(&["enroll", "--user", USER, "--device", &just, "--json"]);
}

#[test]
fn a_device_name_with_spaces_around_it_is_refused() {
    let host = Host::new();
    for name in [" phone", "phone ", "phone\u{a0}"] {
        let out = host.run(&["enroll", "--user", USER, "--device", name, "--json"]);
        assert_refused(&format!("{name:?}"), &out);
    }
    host.ok(&["enroll", "--user", USER, "--device", "my phone", "--json"]);
}

#[test]
fn a_users_own_enrollment_refuses_a_device_name_with_escapes_given_or_typed() {
    let host = Host::new();
    host.make_spool();
    for name in HOSTILE {
        let out = host
            .user_command(&["enroll", "--device", name])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_refused(&format!("user's enroll --device {name:?}"), &out);
        assert!(
            !stdout(&out).contains("otpauth"),
            "{name:?}: a secret was shown before the name was checked"
        );

        // Typed at the name prompt; a code follows in case it is asked.
        let mut child = host
            .user_command(&["enroll"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The process may have exited already: a refused name ends it.
        let _ = write!(stdin, "{name}\n000000\n");
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert_refused(&format!("typed name {name:?}"), &out);
    }
    assert!(
        host.spool_files().is_empty(),
        "a request was written: {:?}",
        host.spool_files()
    );
}

#[test]
fn imports_refuse_a_device_name_with_escapes() {
    let host = Host::new();
    let usersfile = host.dir.path().join("users.oath");
    write(
        &usersfile,
        &format!("HOTP/T30 {USER} - 3132333435363738393031323334353637383930\n"),
    );
    let ga = fixtures().join("ga-totp").display().to_string();
    for name in HOSTILE {
        let out = host.run(&[
            "import",
            "google-authenticator",
            "--user",
            USER,
            "--file",
            &ga,
            "--device",
            name,
            "--apply",
        ]);
        assert_refused(&format!("import google-authenticator {name:?}"), &out);
        let out = host.run(&[
            "import",
            "oath",
            "--usersfile",
            &usersfile.display().to_string(),
            "--device",
            name,
            "--apply",
        ]);
        assert_refused(&format!("import oath {name:?}"), &out);
        assert!(!uid_file(&host).exists(), "{name:?} was imported");
    }
}

// ---------------------------------------------------------------------------
// printed escaped

/// `nobody` enrolled by root with a device "phone", then, through the
/// library as an older release could have left it, one more device per
/// hostile name (the record holds 8: "phone" and the first 7) and a
/// hostile user name.
fn host_with_hostile_record() -> Host {
    let host = Host::new();
    host.ok(&["enroll", "--user", USER, "--device", "phone", "--json"]);
    let keys = keys(&host);
    let store = Store::new(host.state_dir(), FileTrust::ROOT);
    let mut state = store.open_user(UID, &keys).unwrap();
    let mut record = state.record().unwrap().clone();
    for name in &HOSTILE[..7] {
        let mut device = record.devices[0].clone();
        (*name).clone_into(&mut device.name);
        record.devices.push(device);
    }
    "\x1b]0;root\x07nobody".clone_into(&mut record.username);
    state.rewrite(&record, &keys).unwrap();
    host
}

/// Every hostile name in a record is printed escaped (the 8th is not in the record).
fn assert_names_escaped(what: &str, out: &Output) {
    assert_no_raw_escapes(what, out);
    let text = stdout(out);
    for escaped in &ESCAPED[..7] {
        assert!(text.contains(escaped), "{what}: no {escaped} in\n{text}");
    }
}

/// The JSON output keeps each name exactly, escaped the JSON way.
fn assert_json_names_exact(what: &str, out: &Output, devices: &Value) {
    assert_no_raw_escapes(what, out);
    let names: Vec<&str> = devices
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no device list in {}", stdout(out)))
        .iter()
        .map(|d| d.as_str().or_else(|| d["name"].as_str()).unwrap())
        .collect();
    let mut want = vec!["phone"];
    want.extend(&HOSTILE[..7]);
    assert_eq!(names, want, "{what}");
}

#[test]
fn list_devices_and_status_print_stored_names_escaped() {
    let host = host_with_hostile_record();
    for command in ["list", "devices", "status"] {
        let args: Vec<&str> = if command == "list" {
            vec![command]
        } else {
            vec![command, "--uid", "65534"]
        };
        let out = host.ok(&args);
        assert_names_escaped(command, &out);
    }
    let status = host.ok(&["status", "--uid", "65534"]);
    assert!(
        stdout(&status).contains(r"\x1b]0;root\x07nobody"),
        "the stored user name: {}",
        stdout(&status)
    );
}

#[test]
fn json_output_keeps_stored_names_exact() {
    let host = host_with_hostile_record();
    let out = host.ok(&["list", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_json_names_exact("list --json", &out, &json["users"][0]["devices"]);
    assert_eq!(json["users"][0]["enrolled_as"], "\x1b]0;root\x07nobody");
    for command in ["devices", "status"] {
        let out = host.ok(&[command, "--uid", "65534", "--json"]);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_json_names_exact(command, &out, &json["devices"]);
    }
}

#[test]
fn messages_that_echo_a_name_escape_it() {
    let host = host_with_hostile_record();
    // The error lists the user's devices.
    let out = host.run(&["remove-device", "--uid", "65534", "--device", "tablet"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_no_raw_escapes("remove-device of an unknown device", &out);
    assert!(
        stderr(&out).contains(r"\x1b]0;pwned\x07"),
        "{}",
        stderr(&out)
    );
    // The success message names the device removed.
    let out = host.ok(&[
        "remove-device",
        "--uid",
        "65534",
        "--device",
        "\x1b]0;pwned\x07",
    ]);
    assert_no_raw_escapes("remove-device", &out);
    assert!(
        stdout(&out).contains(r#"Removed device "\x1b]0;pwned\x07""#),
        "{}",
        stdout(&out)
    );
    // An unknown user name is echoed.
    let out = host.run(&["status", "--user", "\x1b[2Jnosuchuser"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_no_raw_escapes("status of an unknown user", &out);
    assert!(
        stderr(&out).contains(r"\x1b[2Jnosuchuser"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn approve_prints_spool_file_names_escaped() {
    // Anyone may create files in the spool, with any name under anyone's
    // uid; approve reports the ones it passes over.
    let host = Host::new();
    host.make_spool();
    let planted = host.spool().join("65534.\x1b]0;pwned\x07\u{202e}");
    std::fs::write(&planted, b"junk").unwrap();
    set_mode(&planted, 0o600);
    let out = host.run(&["approve", "--uid", "65534"]);
    assert_no_raw_escapes("approve", &out);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    // Whether it is reported, and how the override is written, is the
    // spool's business; that it is not raw is checked above.
    if all.contains("65534.") {
        assert!(all.contains(r"65534.\x1b]0;pwned\x07"), "{all}");
    }
}

#[test]
fn approve_refuses_a_request_whose_device_name_has_escapes() {
    // A request made with the library, past the command's check (or by an
    // older release): `approve` is where it would enter the record.
    let host = Host::new();
    host.make_spool();
    let (_, done) = host.user_enrolls(&["enroll", "--device", "phone"], "phone", oathtool);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let files = host.spool_files();
    let [file] = files.as_slice() else {
        panic!("one request: {files:?}");
    };
    let keys = keys(&host);
    let sealed = std::fs::read(file).unwrap();
    let (format, plaintext) = keys.open_request(&sealed, UID).unwrap();
    let mut pending = Pending::decode(&plaintext, format).unwrap();
    let Request::Device { device, .. } = &mut pending.request else {
        panic!("a device request");
    };
    "\x1b]0;pwned\x07".clone_into(&mut device.name);
    let resealed = pending.seal(&keys.enrollment_public_key(), UID).unwrap();
    // Rewritten in place: the file keeps its owner, the user.
    std::fs::write(file, resealed).unwrap();

    let out = host.run(&["approve", "--uid", "65534", "--yes"]);
    assert_no_raw_escapes("approve", &out);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stderr(&out).contains("device name"), "{}", stderr(&out));
    assert!(!uid_file(&host).exists(), "the request was applied");
}

#[test]
fn doctor_prints_paths_escaped() {
    let host = Host::new();
    // A spool path with an escape, as a configuration could name it.
    let d = host.dir.path().display();
    write(
        &host.config,
        &format!(
            "[paths]\n\
             state_dir = \"{d}/state/users\"\n\
             key_file = \"{d}/keys/master.key\"\n\
             enroll_public_key = \"{d}/keys/enroll.pub\"\n\
             spool_dir = \"{d}/spool\\u001b]0;pwned\\u0007\\u202e\"\n"
        ),
    );
    let out = host.run(&["doctor"]);
    assert_no_raw_escapes("doctor", &out);
    assert!(
        stdout(&out).contains(r"spool\x1b]0;pwned\x07\u{202e}"),
        "{}",
        stdout(&out)
    );
    let out = host.run(&["doctor", "--json"]);
    assert_no_raw_escapes("doctor --json", &out);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let spool = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["area"] == "spool")
        .unwrap_or_else(|| panic!("a spool finding in {json}"));
    assert!(
        spool["message"]
            .as_str()
            .unwrap()
            .contains("spool\x1b]0;pwned\x07\u{202e}"),
        "the JSON keeps the exact path: {spool}"
    );
}

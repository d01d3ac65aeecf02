//! The administrator's tools through the real binary: list, devices,
//! remove-device, recovery-codes, key rotate/list/migrate/retire, the
//! imports and generate-docs. Output is pinned by snapshot files, one per
//! scenario, under tests/snapshots/ (times, codes, uids and temporary paths
//! normalized); `UPDATE_SNAPSHOTS=1 cargo test` rewrites them.
//!
//! Like tests/cli.rs these need root (CI runs as root). The users are
//! Debian's static system accounts (base-passwd): www-data, backup, list,
//! irc and nobody.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{assert_snapshot, transcript};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::codec::hex_encode;
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::record::Record;
use mfa_core::recovery::{normalize, CodeFormat};
use mfa_core::store::Store;
use mfa_core::totp::{base32_encode, code_at_step, time_step, TotpParams};
use nix::unistd::User;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mfa-enroll");
const USERS: [&str; 5] = ["www-data", "backup", "list", "irc", "nobody"];

fn uid_of(name: &str) -> u32 {
    User::from_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("Debian has the account {name}"))
        .uid
        .as_raw()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mfa-core/tests/fixtures")
}

struct Host {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Host {
    fn with_key() -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests must run as root (CI does)"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let config = dir.path().join("pam_mfa.toml");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "[recovery]\ncount = 3\n\n[paths]\n\
                 state_dir = \"{d}/state/users\"\n\
                 key_file = \"{d}/keys/master.key\"\n\
                 enroll_public_key = \"{d}/keys/enroll.pub\"\n\
                 spool_dir = \"{d}/spool\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let host = Host { dir, config };
        host.ok(&["key", "init"]);
        host
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mfa-enroll")
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        out
    }

    fn enroll(&self, user: &str, device: &str) {
        self.ok(&[
            "enroll", "--user", user, "--json", "--device", device, "--force",
        ]);
    }

    fn record_path(&self, user: &str) -> PathBuf {
        self.dir
            .path()
            .join("state/users")
            .join(uid_of(user).to_string())
    }

    fn keys(&self) -> MasterKey {
        MasterKey::load(&self.dir.path().join("keys/master.key"), FileTrust::ROOT).unwrap()
    }

    fn record(&self, user: &str) -> Option<Record> {
        let store = Store::new(self.dir.path().join("state/users"), FileTrust::ROOT);
        let keys = self.keys();
        let state = store.open_user(uid_of(user), &keys).unwrap();
        state.record().cloned()
    }

    fn corrupt(&self, user: &str) {
        let path = self.record_path(user);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[60] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// snapshots

fn matches_at(bytes: &[u8], i: usize, pattern: &str) -> bool {
    let p = pattern.as_bytes();
    i + p.len() <= bytes.len()
        && p.iter().zip(&bytes[i..]).all(|(&want, &got)| match want {
            b'9' => got.is_ascii_digit(),
            b'x' => got.is_ascii_digit() || got.is_ascii_lowercase(),
            _ => got == want,
        })
}

/// Replaces every match of `pattern` (9 = a digit, x = a digit or
/// lower-case letter, anything else literal) that stands alone with `with`.
fn replace_pattern(text: &str, pattern: &str, with: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let alone_before = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let end = i + pattern.len();
        let alone_after = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if alone_before && matches_at(bytes, i, pattern) && alone_after {
            out.push_str(with);
            i = end;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    out
}

/// Replaces whole decimal numbers: those equal to a known uid by
/// `<uid:NAME>`, and those of 9 or more digits (Unix times) by `<time>`.
fn replace_numbers(text: &str) -> String {
    let uids: Vec<(String, &str)> = USERS.iter().map(|u| (uid_of(u).to_string(), *u)).collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let number: String = chars[start..i].iter().collect();
        let alone = (start == 0 || !word(chars.get(start - 1))) && !word(chars.get(i));
        match uids.iter().find(|(u, _)| *u == number) {
            Some((_, name)) if alone => {
                out.push_str("<uid:");
                out.push_str(name);
                out.push('>');
            }
            _ if alone && number.len() >= 9 => out.push_str("<time>"),
            _ => out.push_str(&number),
        }
    }
    out
}

/// Makes output comparable across runs and machines.
fn normalize_output(host: &Host, text: &str) -> String {
    let text = text.replace(&host.dir.path().display().to_string(), "<dir>");
    let text = text.replace(
        &fixtures().canonicalize().unwrap().display().to_string(),
        "<fixtures>",
    );
    let text = text.replace(&fixtures().display().to_string(), "<fixtures>");
    let text = replace_pattern(&text, "9999-99-99 99:99:99 UTC", "<date>");
    let text = replace_pattern(&text, "xxxx-xxxx-xxxx", "<recovery-code>");
    let text = replace_numbers(&text);
    // Column widths follow the normalized-away values; keep the columns,
    // not the exact padding.
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut spaces = 0;
        for c in line.chars() {
            if c == ' ' {
                spaces += 1;
                continue;
            }
            out.push_str(if spaces >= 2 { "  " } else { &" "[..spaces] });
            spaces = 0;
            out.push(c);
        }
        out.push('\n');
    }
    out
}

/// Runs `args` and compares the normalized transcript with
/// tests/snapshots/`name`.txt.
fn snapshot(host: &Host, name: &str, args: &[&str]) -> Output {
    let out = host.run(args);
    let transcript = transcript("", args, &out, |text| normalize_output(host, text));
    assert_snapshot(name, &transcript);
    out
}

#[test]
fn normalizing_keeps_what_matters_and_hides_what_varies() {
    let host = Host::with_key();
    let nobody = uid_of("nobody");
    let text = format!(
        "uid {nobody} at 2026-11-26 12:31:14 UTC, code 7kq2-m9xd-4hfr, \"created\":1795696274, \
         {} 3 codes  left\n",
        host.dir.path().display()
    );
    assert_eq!(
        normalize_output(&host, &text),
        "uid <uid:nobody> at <date>, code <recovery-code>, \"created\":<time>, <dir> 3 codes  left\n"
    );
}

// ---------------------------------------------------------------------------
// list, devices

/// www-data with two devices, backup corrupt, list with a pending
/// self-enrollment, irc locked out.
fn populated_host() -> Host {
    let host = Host::with_key();
    host.enroll("www-data", "phone");
    host.ok(&[
        "import",
        "google-authenticator",
        "--user",
        "list",
        "--file",
        &fixtures().join("ga-totp").display().to_string(),
        "--apply",
    ]);
    host.enroll("backup", "phone");
    host.corrupt("backup");
    host.enroll("irc", "default");
    // A second device for www-data, added through mfa-core as a
    // self-enrollment would add it.
    let store = Store::new(host.dir.path().join("state/users"), FileTrust::ROOT);
    let keys = host.keys();
    {
        let mut state = store.open_user(uid_of("www-data"), &keys).unwrap();
        let mut record = state.record().unwrap().clone();
        let mut second = record.devices[0].clone();
        second.name = "laptop".into();
        record.devices.push(second);
        for _ in 0..20 {
            mfa_core::throttle::record_failure(&mut record, SystemClock.now());
        }
        state.rewrite(&record, &keys).unwrap();
    }
    let spool = host.dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::write(
        spool.join(format!("{}.0123456789abcdef", uid_of("list"))),
        b"sealed",
    )
    .unwrap();
    host
}

#[test]
fn list_shows_every_user_and_the_record_that_does_not_open() {
    let host = populated_host();
    let out = snapshot(&host, "list", &["list"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn list_json_has_the_same_keys_for_every_user() {
    let host = populated_host();
    let out = snapshot(&host, "list-json", &["list", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), 4);
    let keys = |u: &Value| {
        let mut k: Vec<String> = u.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    for u in users {
        assert_eq!(keys(u), keys(&users[0]));
    }
    let backup = users.iter().find(|u| u["user"] == "backup").unwrap();
    assert!(backup["error"].as_str().unwrap().contains("corrupt"));
    let list = users.iter().find(|u| u["user"] == "list").unwrap();
    assert_eq!(list["pending"], true);
    assert_eq!(list["devices"], serde_json::json!(["google-authenticator"]));
}

#[test]
fn list_of_an_empty_store_says_so() {
    let host = Host::with_key();
    snapshot(&host, "list-empty", &["list"]);
}

#[test]
fn devices_lists_names_and_parameters() {
    let host = populated_host();
    snapshot(&host, "devices", &["devices", "--user", "www-data"]);
    let out = snapshot(
        &host,
        "devices-json",
        &[
            "devices",
            "--uid",
            &uid_of("www-data").to_string(),
            "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["devices"][1]["name"], "laptop");
    snapshot(
        &host,
        "devices-not-enrolled",
        &["devices", "--user", "nobody"],
    );
}

// ---------------------------------------------------------------------------
// remove-device, recovery-codes

#[test]
fn removing_the_last_device_is_refused_without_force() {
    let host = Host::with_key();
    host.enroll("nobody", "phone");
    let before = std::fs::read(host.record_path("nobody")).unwrap();
    let out = snapshot(
        &host,
        "remove-last-device-refused",
        &["remove-device", "--user", "nobody", "--device", "phone"],
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(std::fs::read(host.record_path("nobody")).unwrap(), before);
    let out = snapshot(
        &host,
        "remove-unknown-device",
        &["remove-device", "--user", "nobody", "--device", "tablet"],
    );
    assert_eq!(out.status.code(), Some(2));
    host.ok(&[
        "remove-device",
        "--user",
        "nobody",
        "--device",
        "phone",
        "--force",
    ]);
    assert!(!host.record_path("nobody").exists());
}

#[test]
fn removing_one_of_two_devices_keeps_the_other() {
    let host = populated_host();
    let out = snapshot(
        &host,
        "remove-device",
        &["remove-device", "--user", "www-data", "--device", "phone"],
    );
    assert_eq!(out.status.code(), Some(0));
    let record = host.record("www-data").unwrap();
    assert_eq!(record.devices.len(), 1);
    assert_eq!(record.devices[0].name, "laptop");
    // Failures are the user's, not the device's: they stay.
    assert_eq!(record.failures, 20);
}

#[test]
fn regenerated_recovery_codes_are_printed_once_and_replace_the_old_set() {
    let host = Host::with_key();
    host.enroll("nobody", "phone");
    snapshot(
        &host,
        "recovery-codes-count",
        &["recovery-codes", "--user", "nobody"],
    );
    let out = snapshot(
        &host,
        "recovery-codes-regenerate",
        &["recovery-codes", "--user", "nobody", "--regenerate"],
    );
    let shown: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("    "))
        .map(|l| l.trim().to_owned())
        .collect();
    assert_eq!(shown.len(), 3);
    let json = host.ok(&[
        "recovery-codes",
        "--user",
        "nobody",
        "--regenerate",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    let codes: Vec<&str> = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let hashes = host.record("nobody").unwrap().recovery.unwrap();
    for code in &codes {
        assert!(hashes
            .find(&normalize(code.as_bytes(), 12).unwrap())
            .unwrap()
            .is_some());
    }
    for code in &shown {
        assert_eq!(
            hashes
                .find(&normalize(code.as_bytes(), 12).unwrap())
                .unwrap(),
            None
        );
    }
}

// ---------------------------------------------------------------------------
// keys

#[test]
fn key_rotate_migrate_retire_through_the_cli() {
    let host = Host::with_key();
    host.enroll("www-data", "phone");
    host.enroll("backup", "phone");
    snapshot(&host, "key-rotate", &["key", "rotate"]);
    host.enroll("irc", "phone");
    snapshot(&host, "key-list-two-generations", &["key", "list"]);
    let out = snapshot(&host, "key-list-json", &["key", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["active"], 2);
    assert_eq!(v["generations"][0]["records"], 2);
    assert_eq!(v["generations"][1]["records"], 1);

    let before = std::fs::read(host.dir.path().join("keys/master.key")).unwrap();
    let out = snapshot(&host, "key-retire-in-use", &["key", "retire", "1"]);
    assert_eq!(out.status.code(), Some(4));
    let out = snapshot(&host, "key-retire-active", &["key", "retire", "2"]);
    assert_eq!(out.status.code(), Some(4));
    let out = snapshot(&host, "key-retire-unknown", &["key", "retire", "7"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read(host.dir.path().join("keys/master.key")).unwrap(),
        before
    );

    snapshot(&host, "key-migrate", &["key", "migrate"]);
    snapshot(&host, "key-migrate-again", &["key", "migrate"]);
    snapshot(&host, "key-retire", &["key", "retire", "1"]);
    let keys = host.keys();
    assert_eq!(keys.list().len(), 1);
    for user in ["www-data", "backup", "irc"] {
        assert_eq!(host.record(user).unwrap().devices[0].name, "phone");
    }
}

#[test]
fn key_migrate_reports_a_record_that_does_not_open_and_migrates_the_rest() {
    let host = Host::with_key();
    host.enroll("www-data", "phone");
    host.enroll("backup", "phone");
    host.ok(&["key", "rotate"]);
    host.corrupt("backup");
    let out = snapshot(
        &host,
        "key-migrate-with-corrupt-record",
        &["key", "migrate"],
    );
    assert_eq!(out.status.code(), Some(1));
    let store = Store::new(host.dir.path().join("state/users"), FileTrust::ROOT);
    let keys = host.keys();
    let state = store.open_user(uid_of("www-data"), &keys).unwrap();
    assert_eq!(state.generations(), [2]);
    drop(state);
    let out = snapshot(&host, "key-retire-unreadable", &["key", "retire", "1"]);
    assert_eq!(out.status.code(), Some(4));
}

// ---------------------------------------------------------------------------
// import google-authenticator

fn file_state(path: &Path) -> (Vec<u8>, i64, i64) {
    let meta = std::fs::metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

fn fixture_arg(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

#[test]
fn import_dry_runs_describe_the_file_and_change_nothing() {
    let host = Host::with_key();
    let file = fixture_arg("ga-after-logins");
    let out = snapshot(
        &host,
        "import-ga-dry-run",
        &[
            "import",
            "google-authenticator",
            "--user",
            "nobody",
            "--file",
            &file,
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(!host.record_path("nobody").exists());
    host.enroll("nobody", "phone");
    let before = std::fs::read(host.record_path("nobody")).unwrap();
    snapshot(
        &host,
        "import-ga-dry-run-enrolled",
        &[
            "import",
            "google-authenticator",
            "--user",
            "nobody",
            "--file",
            &file,
        ],
    );
    assert_eq!(std::fs::read(host.record_path("nobody")).unwrap(), before);
}

#[test]
fn import_refusals_say_why_and_what_to_do() {
    let host = Host::with_key();
    let dir = host.dir.path();
    let link = dir.join("link");
    std::os::unix::fs::symlink(fixtures().join("ga-totp"), &link).unwrap();
    let big = dir.join("big");
    std::fs::write(&big, vec![b'A'; 5000]).unwrap();
    // A user cannot have root import someone else's file.
    let foreign = dir.join("foreign");
    std::fs::copy(fixtures().join("ga-totp"), &foreign).unwrap();
    nix::unistd::chown(
        &foreign,
        Some(nix::unistd::Uid::from_raw(uid_of("irc"))),
        None,
    )
    .unwrap();
    let cases: [(&str, Vec<String>, i32); 7] = [
        (
            "import-ga-foreign-owner",
            vec!["--file".into(), foreign.display().to_string()],
            1,
        ),
        (
            "import-ga-hotp",
            vec!["--file".into(), fixture_arg("ga-hotp")],
            4,
        ),
        (
            "import-ga-short-secret",
            vec!["--file".into(), fixture_arg("ga-short-secret")],
            4,
        ),
        (
            "import-ga-symlink",
            vec!["--file".into(), link.display().to_string()],
            1,
        ),
        (
            "import-ga-too-large",
            vec!["--file".into(), big.display().to_string()],
            1,
        ),
        ("import-ga-default-file-missing", vec![], 1),
        (
            "import-ga-bad-device-name",
            vec![
                "--file".into(),
                fixture_arg("ga-totp"),
                "--device".into(),
                String::new(),
            ],
            2,
        ),
    ];
    for (name, extra, code) in cases {
        let mut args = vec![
            "import",
            "google-authenticator",
            "--user",
            "nobody",
            "--apply",
        ];
        args.extend(extra.iter().map(String::as_str));
        let out = snapshot(&host, name, &args);
        assert_eq!(out.status.code(), Some(code), "{name}");
        assert!(!host.record_path("nobody").exists(), "{name}");
    }
}

/// The current code for `secret`, from oathtool.
fn oathtool(secret: &str, hex: bool, params: TotpParams, unix: u64) -> String {
    let mut cmd = Command::new("oathtool");
    cmd.arg("--totp");
    if !hex {
        cmd.arg("--base32");
    }
    let out = cmd
        .args([
            "-d",
            &params.digits.to_string(),
            "-s",
            &format!("{}s", params.period),
            "-N",
            &format!("@{unix}"),
            secret,
        ])
        .output()
        .expect("oathtool is installed (.ci/run installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// A `.google_authenticator` file written by the real tool in `host`'s
/// directory: time-based, no reuse, 3 logins per 30 s, 5 scratch codes.
fn real_google_authenticator_file(host: &Host) -> PathBuf {
    let file = host.dir.path().join("google_authenticator");
    let made = Command::new("google-authenticator")
        .args([
            "--time-based",
            "--disallow-reuse",
            "--force",
            "--rate-limit=3",
            "--rate-time=30",
            "--window-size=3",
            "--no-confirm",
            "--quiet",
            "--step-size=30",
        ])
        .arg(format!("--secret={}", file.display()))
        .stdin(Stdio::null())
        .output()
        .expect(
            "google-authenticator is installed (apt-get install libpam-google-authenticator; \
             .ci/run does)",
        );
    assert!(made.status.success(), "{}", stderr(&made));
    file
}

#[test]
fn a_file_fresh_from_the_real_tool_imports_with_the_same_codes_and_stays_untouched() {
    let host = Host::with_key();
    let file = real_google_authenticator_file(&host);
    let content = std::fs::read_to_string(&file).unwrap();
    let secret_b32 = content.lines().next().unwrap().to_owned();
    let scratch: Vec<&str> = content
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(scratch.len(), 5, "{content}");
    let before = file_state(&file);

    let file_arg = file.display().to_string();
    let dry = host.ok(&[
        "import",
        "google-authenticator",
        "--user",
        "nobody",
        "--file",
        &file_arg,
    ]);
    assert!(
        stdout(&dry).contains("scratch codes:   5, carried over as recovery codes"),
        "{}",
        stdout(&dry)
    );
    let out = host.ok(&[
        "import",
        "google-authenticator",
        "--user",
        "nobody",
        "--file",
        &file_arg,
        "--apply",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("5 scratch codes: each now works once as a pam_mfa recovery code"),
        "{text}"
    );
    for code in &scratch {
        assert!(
            !text.contains(code),
            "scratch codes are not printed: {text}"
        );
    }
    assert!(text.contains("was not modified"), "{text}");
    assert_eq!(file_state(&file), before, "the imported file was changed");

    let record = host.record("nobody").unwrap();
    // The scratch codes are the user's recovery codes now, and only they.
    let set = record.recovery.as_ref().unwrap();
    assert_eq!(set.format(), CodeFormat::Digits(8));
    assert_eq!(record.recovery_codes_left(), 5);
    for code in &scratch {
        let candidate = set.candidate(code.as_bytes()).unwrap();
        assert!(set.find(&candidate).unwrap().is_some(), "{code}");
    }
    let status = host.ok(&["status", "--user", "nobody"]);
    assert!(
        stdout(&status).contains("recovery codes left: 5"),
        "{}",
        stdout(&status)
    );
    let device = &record.devices[0];
    assert_eq!(device.name, "google-authenticator");
    assert_eq!(base32_encode(&device.secret).as_str(), secret_b32);
    let now = SystemClock.now();
    for unix in [now, now + 30, 2_000_000_000] {
        assert_eq!(
            code_at_step(
                &device.secret,
                device.params,
                time_step(unix, device.params.period)
            )
            .as_str(),
            oathtool(&secret_b32, false, device.params, unix)
        );
    }
    // Imported twice: refused without --force, the record untouched.
    let again = host.run(&[
        "import",
        "google-authenticator",
        "--user",
        "nobody",
        "--file",
        &file_arg,
        "--apply",
    ]);
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(file_state(&file), before);
}

#[test]
fn import_apply_carries_the_scratch_codes_over_and_says_so() {
    let host = Host::with_key();
    let out = snapshot(
        &host,
        "import-ga-apply",
        &[
            "import",
            "google-authenticator",
            "--user",
            "nobody",
            "--file",
            &fixture_arg("ga-after-logins"),
            "--apply",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(host.record("nobody").unwrap().recovery_codes_left(), 5);
}

#[test]
fn import_with_new_recovery_codes_prints_a_new_set_and_drops_the_scratch_codes() {
    let host = Host::with_key();
    let file = fixture_arg("ga-totp");
    let dry = snapshot(
        &host,
        "import-ga-dry-run-new-recovery-codes",
        &[
            "import",
            "google-authenticator",
            "--user",
            "nobody",
            "--file",
            &file,
            "--new-recovery-codes",
        ],
    );
    assert_eq!(dry.status.code(), Some(0));
    let out = snapshot(
        &host,
        "import-ga-apply-new-recovery-codes",
        &[
            "import",
            "google-authenticator",
            "--user",
            "nobody",
            "--file",
            &file,
            "--new-recovery-codes",
            "--apply",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let shown: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("    ") && l.trim().len() == "xxxx-xxxx-xxxx".len())
        .map(|l| l.trim().to_owned())
        .collect();
    assert_eq!(shown.len(), 3, "{}", stdout(&out));
    let record = host.record("nobody").unwrap();
    let set = record.recovery.as_ref().unwrap();
    assert_eq!(set.format(), CodeFormat::Base32);
    assert_eq!(set.remaining(), 3);
    for code in &shown {
        let candidate = normalize(code.as_bytes(), 12).unwrap();
        assert!(set.find(&candidate).unwrap().is_some(), "{code}");
    }
    let scratch = std::fs::read_to_string(fixtures().join("ga-totp")).unwrap();
    for code in scratch
        .lines()
        .filter(|l| l.len() == 8 && !l.starts_with('"'))
    {
        assert!(set.candidate(code.as_bytes()).is_none(), "{code}");
    }
}

#[test]
fn a_file_without_scratch_codes_imports_without_recovery_codes() {
    let host = Host::with_key();
    let out = snapshot(
        &host,
        "import-ga-apply-no-scratch-codes",
        &[
            "import",
            "google-authenticator",
            "--user",
            "nobody",
            "--file",
            &fixture_arg("ga-totp-step60"),
            "--apply",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let record = host.record("nobody").unwrap();
    assert!(record.recovery.is_none());
}

#[test]
fn scratch_codes_the_old_module_never_accepted_are_refused_unless_a_new_set_is_asked_for() {
    let host = Host::with_key();
    let file = host.dir.path().join("odd-scratch-code");
    let mut bytes = std::fs::read(fixtures().join("ga-totp")).unwrap();
    bytes.extend_from_slice(b"1234567\n");
    std::fs::write(&file, &bytes).unwrap();
    let file = file.display().to_string();
    let args = [
        "import",
        "google-authenticator",
        "--user",
        "nobody",
        "--file",
        &file,
    ];
    let dry = snapshot(&host, "import-ga-odd-scratch-code-dry-run", &args);
    assert_eq!(dry.status.code(), Some(4));
    let mut apply = args.to_vec();
    apply.push("--apply");
    let refused = snapshot(&host, "import-ga-odd-scratch-code", &apply);
    assert_eq!(refused.status.code(), Some(4));
    assert!(
        !stderr(&refused).contains("1234567"),
        "{}",
        stderr(&refused)
    );
    assert!(!host.record_path("nobody").exists());
    apply.push("--new-recovery-codes");
    host.ok(&apply);
    assert_eq!(host.record("nobody").unwrap().recovery_codes_left(), 3);
}

// ---------------------------------------------------------------------------
// import oath

fn users_file(host: &Host, secrets: &[[u8; 20]; 3]) -> PathBuf {
    let path = host.dir.path().join("users.oath");
    std::fs::write(
        &path,
        format!(
            "# pam_oath users file\n\
             HOTP/T30\twww-data\t-\t{}\n\
             HOTP/T60/8 backup + {}\n\
             HOTP/T30/6 list - {} 0 123456 2025-11-26T12:00:00L\n\
             HOTP irc - {}\n\
             HOTP/T30 no-such-user-pam-mfa - {}\n\
             HOTP/T30 nobody 1234 {}\n",
            hex_encode(&secrets[0]).as_str(),
            hex_encode(&secrets[1]).as_str(),
            hex_encode(&secrets[2]).as_str(),
            hex_encode(&secrets[0]).as_str(),
            hex_encode(&secrets[0]).as_str(),
            hex_encode(&secrets[0]).as_str(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn import_oath_dry_run_reports_every_line() {
    let host = Host::with_key();
    host.enroll("list", "phone");
    let path = users_file(&host, &[[1; 20], [2; 20], [3; 20]]);
    let out = snapshot(
        &host,
        "import-oath-dry-run",
        &["import", "oath", "--usersfile", &path.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(host.record("www-data").is_none());
}

#[test]
fn import_oath_apply_gives_the_codes_oathtool_gives_for_the_hex_secrets() {
    let host = Host::with_key();
    let secrets = [[0x11; 20], [0x22; 20], [0x33; 20]];
    let path = users_file(&host, &secrets);
    let before = file_state(&path);
    let out = host.run(&[
        "import",
        "oath",
        "--usersfile",
        &path.display().to_string(),
        "--apply",
    ]);
    // The unknown user's line is refused (the counter-based and PIN lines
    // are only skipped), so the status says not everything was imported.
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(file_state(&path), before);
    let now = SystemClock.now();
    for (user, secret) in [
        ("www-data", secrets[0]),
        ("backup", secrets[1]),
        ("list", secrets[2]),
    ] {
        let record = host
            .record(user)
            .unwrap_or_else(|| panic!("{user} imported"));
        let device = &record.devices[0];
        assert_eq!(device.name, "oath");
        assert_eq!(*device.secret, secret);
        assert_eq!(
            code_at_step(
                &device.secret,
                device.params,
                time_step(now, device.params.period)
            )
            .as_str(),
            oathtool(hex_encode(&secret).as_str(), true, device.params, now),
            "{user}"
        );
    }
    assert_eq!(host.record("backup").unwrap().devices[0].params.digits, 8);
    assert!(host.record("irc").is_none());
    assert!(host.record("nobody").is_none());
}

#[test]
fn a_damaged_users_file_imports_nothing() {
    let host = Host::with_key();
    let path = host.dir.path().join("users.oath");
    std::fs::write(
        &path,
        "HOTP/T30 www-data - 3132333435363738393031323334353637383930\nTOTP/30 backup - 00\n",
    )
    .unwrap();
    let out = snapshot(
        &host,
        "import-oath-damaged",
        &[
            "import",
            "oath",
            "--usersfile",
            &path.display().to_string(),
            "--apply",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(host.record("www-data").is_none());
}

// ---------------------------------------------------------------------------
// docs, root

#[test]
fn generate_docs_writes_the_man_page_and_completions() {
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("docs");
    let out = Command::new(BIN)
        .args(["generate-docs", "--out"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = std::fs::read_to_string(target.join("mfa-enroll.1")).unwrap();
    assert!(page.contains("\n.TH mfa-enroll 1 "), "{}", &page[..200]);
    assert_eq!(page.matches(".ds Aq").count(), 2, "one roff preamble");
    for command in [
        "key init",
        "key rotate",
        "key list",
        "key migrate",
        "key retire",
        "enroll",
        "status",
        "reset",
        "unlock",
        "list",
        "devices",
        "remove\\-device",
        "recovery\\-codes",
        "import google\\-authenticator",
        "import oath",
        "store init",
        "store migrate",
    ] {
        assert!(
            page.contains(&format!("mfa\\-enroll {command}")),
            "the man page lacks {command}"
        );
    }
    assert!(!page.contains("generate\\-docs"));
    assert!(page.contains("Scratch codes are carried over"));
    assert!(page.contains("\\-\\-new\\-recovery\\-codes"));
    let bash = std::fs::read_to_string(target.join("mfa-enroll.bash")).unwrap();
    assert!(bash.contains("remove-device") && bash.contains("complete"));
    let zsh = std::fs::read_to_string(target.join("_mfa-enroll")).unwrap();
    assert!(zsh.starts_with("#compdef mfa-enroll"));
    let fish = std::fs::read_to_string(target.join("mfa-enroll.fish")).unwrap();
    assert!(fish.contains("recovery-codes"));
}

#[test]
fn the_new_commands_refuse_to_run_without_root() {
    let host = Host::with_key();
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("mfa-enroll");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ga = fixture_arg("ga-totp");
    let commands: [&[&str]; 12] = [
        &["list"],
        &["devices", "--user", "nobody"],
        &["remove-device", "--user", "nobody", "--device", "x"],
        &["recovery-codes", "--user", "nobody", "--regenerate"],
        &["key", "rotate"],
        &["key", "list"],
        &["key", "migrate"],
        &["key", "retire", "1"],
        &[
            "import",
            "google-authenticator",
            "--user",
            "nobody",
            "--file",
            &ga,
        ],
        &["import", "oath", "--usersfile", &ga],
        &["store", "init"],
        &["store", "migrate", "--apply"],
    ];
    for args in commands {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("--config")
            .arg(&host.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("setpriv (util-linux) is installed");
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("must run as root"), "{args:?}");
    }
}

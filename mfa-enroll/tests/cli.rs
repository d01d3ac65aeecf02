//! The real `mfa-enroll` binary against a throwaway configuration whose
//! paths point into a temporary directory. These tests need root (CI runs
//! as root): the binary refuses to work otherwise, and trusts only
//! root-owned files.

use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mfa_core::clock::{Clock, SystemClock};
use mfa_core::fsutil::FileTrust;
use mfa_core::input::parse_totp;
use mfa_core::keys::MasterKey;
use mfa_core::record::Record;
use mfa_core::store::Store;
use mfa_core::throttle;
use mfa_core::totp::{verify, Verdict};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mfa-enroll");
/// An account every Debian system has.
const USER: &str = "nobody";
const UID: u32 = 65534;
const PROMPT: &str = "Verification code from the app: ";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the mfa-enroll CLI tests must run as root (CI does): the binary refuses to work \
         otherwise and trusts only root-owned files"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// A host in a temporary directory: a root-owned 0644 configuration whose
/// `[paths]` all point inside the directory.
struct Host {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Host {
    fn new() -> Self {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let config = dir.path().join("pam_mfa.toml");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "[paths]\n\
                 state_dir = \"{d}/state/users\"\n\
                 key_file = \"{d}/keys/master.key\"\n\
                 enroll_public_key = \"{d}/keys/enroll.pub\"\n\
                 spool_dir = \"{d}/spool\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        Host { dir, config }
    }

    /// A host whose master key exists.
    fn with_key() -> Self {
        let host = Self::new();
        let out = host.run(&["key", "init"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        host
    }

    /// A host where `USER` is enrolled with `--json`; returns the JSON.
    fn with_enrolled_user() -> (Self, Value) {
        let host = Self::with_key();
        let out = host.run(&["enroll", "--user", USER, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let json = serde_json::from_slice(&out.stdout).unwrap();
        (host, json)
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("keys/master.key")
    }

    fn public_key_file(&self) -> PathBuf {
        self.dir.path().join("keys/enroll.pub")
    }

    fn record_path(&self) -> PathBuf {
        self.dir.path().join("state/users").join(UID.to_string())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&self.config).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mfa-enroll")
    }

    fn keys(&self) -> MasterKey {
        MasterKey::load(&self.key_file(), FileTrust::ROOT).unwrap()
    }

    fn store(&self) -> Store {
        Store::new(self.dir.path().join("state/users"), FileTrust::ROOT)
    }

    fn record(&self) -> Option<Record> {
        let store = self.store();
        let keys = self.keys();
        let state = store.open_user(UID, &keys).unwrap();
        state.record().cloned()
    }

    fn status_json(&self) -> Value {
        let out = self.run(&["status", "--user", USER, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Adds `n` failures to the record through mfa-core, as failed logins would.
    fn add_failures(&self, n: u32) {
        let store = self.store();
        let keys = self.keys();
        let mut state = store.open_user(UID, &keys).unwrap();
        let mut record = state.record().unwrap().clone();
        for _ in 0..n {
            throttle::record_failure(&mut record, SystemClock.now());
        }
        state.commit(&record, &keys).unwrap();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The current code for a base32 secret, from oathtool.
fn oathtool(secret: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool is installed (apt-get install oathtool; .ci/run does)");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn secret_in_uri(uri: &str) -> String {
    let start = uri.find("secret=").expect("secret in URI") + "secret=".len();
    uri[start..]
        .split('&')
        .next()
        .expect("secret value")
        .to_owned()
}

/// Runs an interactive enrollment of `USER`, answering the prompt with
/// `answer(secret)`. Returns what was printed before the prompt and the
/// finished process's output.
fn enroll_interactively(
    host: &Host,
    extra: &[&str],
    answer: impl FnOnce(&str) -> String,
) -> (String, Output) {
    let mut args = vec!["enroll", "--user", USER];
    args.extend_from_slice(extra);
    let mut child = host
        .command(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mfa-enroll");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut before = Vec::new();
    let mut byte = [0u8; 1];
    while !before.ends_with(PROMPT.as_bytes()) {
        if stdout.read(&mut byte).unwrap() == 0 {
            let out = child.wait_with_output().unwrap();
            panic!(
                "mfa-enroll ended before asking for a code:\n{}\n{}",
                String::from_utf8_lossy(&before),
                stderr(&out)
            );
        }
        before.push(byte[0]);
    }
    let before = String::from_utf8(before).unwrap();
    let uri_line = before
        .lines()
        .find(|l| l.starts_with("otpauth URI: "))
        .expect("the URI is shown");
    let secret = secret_in_uri(uri_line);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", answer(&secret)).unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stdout = rest;
    (before, out)
}

#[test]
fn key_init_creates_a_private_key_and_a_public_enrollment_key() {
    let host = Host::new();
    let out = host.run(&["key", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mode(&host.key_file()), 0o600);
    assert_eq!(mode(&host.public_key_file()), 0o644);
    assert_eq!(mode(&host.dir.path().join("state/users")), 0o700);
    let keys = host.keys();
    let public =
        mfa_core::keys::EnrollmentPublicKey::load(&host.public_key_file(), FileTrust::ROOT)
            .unwrap();
    assert_eq!(public, keys.enrollment_public_key());
    assert!(stdout(&out).contains("Back up"));
}

#[test]
fn key_init_refuses_to_overwrite_an_existing_key() {
    let host = Host::with_key();
    let before = std::fs::read(host.key_file()).unwrap();
    let out = host.run(&["key", "init"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(host.key_file()).unwrap(), before);
}

#[test]
fn enroll_json_prints_every_documented_field() {
    let (host, json) = Host::with_enrolled_user();
    assert_eq!(json["user"], USER);
    assert_eq!(json["uid"], UID);
    assert_eq!(json["device"], "default");
    assert_eq!(json["key_generation"], 1);
    let secret = json["secret"].as_str().unwrap();
    assert!(!secret.contains(' ') && !secret.contains('='));
    let uri = json["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"));
    assert_eq!(secret_in_uri(uri), secret);
    let codes = json["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert!(codes
        .iter()
        .all(|c| c.as_str().unwrap().len() == "xxxx-xxxx-xxxx".len()));
    assert_eq!(mode(&host.record_path()), 0o600);
}

#[test]
fn the_printed_secret_gives_oathtool_codes_the_stored_record_accepts() {
    let (host, json) = Host::with_enrolled_user();
    let code = oathtool(json["secret"].as_str().unwrap());
    let record = host.record().expect("enrolled");
    let device = &record.devices[0];
    assert_eq!(device.last_used_step, None);
    let verdict = verify(
        &device.secret,
        device.params,
        1,
        SystemClock.now(),
        device.last_used_step,
        &parse_totp(code.as_bytes(), device.params.digits).unwrap(),
    );
    assert!(matches!(verdict, Verdict::Accepted { .. }), "{verdict:?}");
}

#[test]
fn interactive_enroll_stores_the_device_after_a_correct_code() {
    let host = Host::with_key();
    let (before, out) = enroll_interactively(&host, &["--device", "phone"], oathtool);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(before.contains("Scan this QR code"));
    let after = stdout(&out);
    assert!(after.contains("Device \"phone\" is enrolled"), "{after}");
    let shown_codes = after
        .lines()
        .filter(|l| l.starts_with("    ") && l.trim().len() == "xxxx-xxxx-xxxx".len())
        .count();
    assert_eq!(shown_codes, 10, "{after}");
    let record = host.record().expect("enrolled");
    assert_eq!(record.devices[0].name, "phone");
    // The code typed at enrollment is spent.
    assert!(record.devices[0].last_used_step.is_some());
    assert_eq!(record.recovery_codes_left(), 10);
}

#[test]
fn interactive_enroll_with_a_wrong_code_stores_nothing() {
    let host = Host::with_key();
    let (_, out) = enroll_interactively(&host, &[], |secret| {
        let right: u32 = oathtool(secret).parse().unwrap();
        format!("{:06}", (right + 500_000) % 1_000_000)
    });
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was stored"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("Recovery codes"));
    assert!(!host.record_path().exists());
    assert_eq!(host.status_json()["enrolled"], false);
}

#[test]
fn interactive_enroll_with_no_answer_stores_nothing() {
    let host = Host::with_key();
    let out = host.run(&["enroll", "--user", USER]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!host.record_path().exists());
}

#[test]
fn enrolling_an_enrolled_user_is_refused_without_force() {
    let (host, _) = Host::with_enrolled_user();
    let before = std::fs::read(host.record_path()).unwrap();
    let out = host.run(&["enroll", "--user", USER, "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("reset"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read(host.record_path()).unwrap(), before);
}

#[test]
fn enroll_force_replaces_the_existing_device() {
    let (host, first) = Host::with_enrolled_user();
    host.add_failures(2);
    let out = host.run(&[
        "enroll", "--user", USER, "--json", "--force", "--device", "laptop",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(first["secret"], second["secret"]);
    let status = host.status_json();
    assert_eq!(status["devices"][0]["name"], "laptop");
    assert_eq!(status["devices"].as_array().unwrap().len(), 1);
    assert_eq!(status["failures"], 0);
}

#[test]
fn status_of_a_user_without_a_record_says_not_enrolled() {
    let host = Host::with_key();
    let json = host.status_json();
    assert_eq!(json["enrolled"], false);
    assert_eq!(json["uid"], UID);
    assert_eq!(json["user"], USER);
    assert_eq!(json["devices"], serde_json::json!([]));
    assert_eq!(json["last_success"], Value::Null);
    let text = host.run(&["status", "--user", USER]);
    assert_eq!(text.status.code(), Some(0));
    assert!(stdout(&text).contains("enrolled:            no"));
}

#[test]
fn status_after_enrollment_shows_the_device_codes_and_key_generation() {
    let (host, _) = Host::with_enrolled_user();
    let json = host.status_json();
    assert_eq!(json["enrolled"], true);
    assert_eq!(json["enrolled_as"], USER);
    let device = &json["devices"][0];
    assert_eq!(device["name"], "default");
    assert_eq!(device["algorithm"], "SHA1");
    assert_eq!(device["digits"], 6);
    assert_eq!(device["period"], 30);
    assert!(device["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(json["recovery_codes_left"], 10);
    assert_eq!(json["failures"], 0);
    assert_eq!(json["locked"], false);
    assert_eq!(json["key_generation"], serde_json::json!([1]));
    assert_eq!(json["last_success"], Value::Null);
    assert_eq!(json["slot_discarded"], Value::Null);
}

#[test]
fn status_by_uid_works_for_a_uid_without_an_account() {
    let host = Host::with_key();
    // Far above any uid a test machine hands out.
    let out = host.run(&["status", "--uid", "3999999999", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["user"], Value::Null);
    assert_eq!(json["enrolled"], false);
}

#[test]
fn status_of_a_corrupt_record_fails_and_names_the_problem() {
    let (host, _) = Host::with_enrolled_user();
    let path = host.record_path();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[60] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let out = host.run(&["status", "--user", USER, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn status_under_another_master_key_fails_and_names_the_key() {
    let (host, _) = Host::with_enrolled_user();
    std::fs::remove_file(host.key_file()).unwrap();
    MasterKey::generate(SystemClock.now())
        .unwrap()
        .create(&host.key_file())
        .unwrap();
    let out = host.run(&["status", "--user", USER]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("different master key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unlock_clears_the_failures_of_a_locked_out_user() {
    let (host, _) = Host::with_enrolled_user();
    host.add_failures(20);
    let before = host.status_json();
    assert_eq!(before["failures"], 20);
    assert_eq!(before["locked"], true);
    let out = host.run(&["unlock", "--user", USER]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Cleared 20 failed attempts"));
    let after = host.status_json();
    assert_eq!(after["failures"], 0);
    assert_eq!(after["locked"], false);
    assert_eq!(after["recovery_codes_left"], 10);
}

#[test]
fn unlock_of_a_user_without_a_record_is_refused() {
    let host = Host::with_key();
    let out = host.run(&["unlock", "--uid", &UID.to_string()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("not enrolled"), "{}", stderr(&out));
}

#[test]
fn reset_removes_the_record() {
    let (host, _) = Host::with_enrolled_user();
    let out = host.run(&["reset", "--user", USER]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!host.record_path().exists());
    assert_eq!(host.status_json()["enrolled"], false);
    // The user can now be enrolled again.
    let again = host.run(&["enroll", "--user", USER, "--json"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
}

#[test]
fn reset_removes_a_record_that_no_longer_opens() {
    let (host, _) = Host::with_enrolled_user();
    std::fs::write(host.record_path(), vec![0u8; 1024]).unwrap();
    let out = host.run(&["reset", "--uid", &UID.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("unreadable"), "{}", stdout(&out));
    assert!(!host.record_path().exists());
}

#[test]
fn a_missing_master_key_tells_the_administrator_to_run_key_init() {
    let host = Host::new();
    let out = host.run(&["status", "--user", USER]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("mfa-enroll key init"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_configuration_writable_by_others_is_refused() {
    let host = Host::with_key();
    std::fs::set_permissions(&host.config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = host.run(&["status", "--user", USER]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("chmod"), "{}", stderr(&out));
}

#[test]
fn an_unknown_user_name_is_a_usage_error() {
    let host = Host::with_key();
    let out = host.run(&["status", "--user", "no-such-user-pam-mfa-test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no user named"), "{}", stderr(&out));
}

#[test]
fn naming_the_user_twice_is_a_usage_error() {
    let host = Host::with_key();
    let out = host.run(&["reset", "--user", USER, "--uid", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A copy of the binary that an unprivileged user can execute, whatever the
/// permissions of the build directory.
fn world_executable_copy(dir: &Path) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("mfa-enroll");
    std::fs::copy(BIN, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

#[test]
fn every_command_refuses_to_run_without_root() {
    let host = Host::with_key();
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = world_executable_copy(bin_dir.path());
    let commands: [&[&str]; 5] = [
        &["key", "init"],
        &["enroll", "--user", USER, "--json"],
        &["status", "--user", USER],
        &["reset", "--user", USER],
        &["unlock", "--user", USER],
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
        assert!(
            stderr(&out).contains("must run as root"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!host.record_path().exists());
}

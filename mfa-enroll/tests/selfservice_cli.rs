//! Self-service through the real binary: `mfa-enroll` run by an
//! unprivileged user (Debian's `nobody`, through `setpriv`) against a
//! throwaway host in a temporary directory, and root running the user's
//! commands by mistake. What it refuses, and what it leaves in the spool.
//!
//! The tests run as root (CI does): they set up root-owned files and then
//! drop to `nobody` for the user's side. Error output is pinned by snapshot
//! files under tests/snapshots/ (temporary paths normalized);
//! `UPDATE_SNAPSHOTS=1 cargo test` rewrites them.

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Output, Stdio};

use mfa_core::clock::{Clock, SystemClock};
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::pending::{check_new_device_code, Pending, Proof, Request};
use mfa_core::recovery::normalize;
use mfa_core::spool::MAX_PENDING_FILE;
use mfa_core::totp::time_step;
use zeroize::Zeroizing;

use common::{
    assert_snapshot, oathtool, stderr, stdout, transcript, Host, CODE_PROMPT, NAME_PROMPT, UID,
};

/// A host ready for self-service: with the spool.
fn ready() -> Host {
    let host = Host::new();
    host.make_spool();
    host
}

impl Host {
    fn public_key_file(&self) -> PathBuf {
        self.dir.path().join("keys/enroll.pub")
    }

    fn keys(&self) -> MasterKey {
        MasterKey::load(&self.dir.path().join("keys/master.key"), FileTrust::ROOT).unwrap()
    }

    /// `mfa-enroll ARGS` as `nobody` with `input` on stdin.
    fn as_user(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .user_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv (util-linux) is installed");
        // It may exit before reading everything.
        let _ = child.stdin.take().unwrap().write_all(input);
        child.wait_with_output().unwrap()
    }

    /// `mfa-enroll enroll` as `nobody` at the keyboard; see
    /// [`Host::user_enrolls`].
    fn enroll_as_user(&self, name: &str, answer: impl FnOnce(&str) -> String) -> (String, Output) {
        self.user_enrolls(&["enroll"], name, answer)
    }
}

/// The indented recovery codes in `text`.
fn codes_in(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("    "))
        .map(str::trim)
        .filter(|l| {
            l.len() == "xxxx-xxxx-xxxx".len()
                && l.split('-').count() == 3
                && l.bytes()
                    .all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_lowercase())
        })
        .map(str::to_owned)
        .collect()
}

/// A transcript of a run with the host's directory replaced by `<dir>`,
/// compared with tests/snapshots/`name`.txt.
fn snapshot(host: &Host, name: &str, who: &str, args: &[&str], out: &Output) {
    let dir = host.dir.path().display().to_string();
    assert_snapshot(
        name,
        &transcript(who, args, out, |t| t.replace(&dir, "<dir>")),
    );
}

#[test]
fn without_a_spool_a_user_is_refused_before_being_asked_anything() {
    let host = Host::new();
    let out = host.as_user(&[], b"phone\n123456\n");
    snapshot(&host, "selfservice-no-spool", "(nobody) ", &[], &out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stdout(&out).contains(NAME_PROMPT), "{}", stdout(&out));
    assert!(!host.spool().exists(), "the user cannot make one");
}

#[test]
fn without_the_enrollment_public_key_a_user_is_refused_and_sent_to_an_administrator() {
    let host = ready();
    std::fs::remove_file(host.public_key_file()).unwrap();
    let out = host.as_user(&["enroll"], b"phone\n123456\n");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!stdout(&out).contains(NAME_PROMPT), "{}", stdout(&out));
    assert!(host.spool_files().is_empty());
    assert!(
        err.contains(&host.public_key_file().display().to_string()),
        "names the file: {err}"
    );
    // The user can do nothing about it but ask; and `key init` would not
    // help anyway, since the master key exists (it refuses to overwrite).
    assert!(
        err.contains("self-service enrollment is not available"),
        "says self-service is unavailable, as for a missing spool: {err}"
    );
    assert!(err.contains("Ask an administrator"), "{err}");
    assert!(
        !err.contains("mfa-enroll key init"),
        "tells a user to run a root command that would refuse: {err}"
    );
}

#[test]
fn a_spool_without_the_sticky_bit_is_refused() {
    let host = ready();
    std::fs::set_permissions(host.spool(), std::fs::Permissions::from_mode(0o733)).unwrap();
    let out = host.as_user(&["enroll"], b"phone\n123456\n");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lacks the sticky bit"), "{err}");
    assert!(err.contains("Ask an administrator"), "{err}");
    assert!(host.spool_files().is_empty());
}

#[test]
fn root_running_mfa_enroll_without_a_user_gets_a_usage_error() {
    let host = ready();
    let out = host.run(&[]);
    snapshot(&host, "selfservice-root-without-user", "(root) ", &[], &out);
    assert_eq!(out.status.code(), Some(2));
    for args in [&["enroll"][..], &["recovery-codes", "--regenerate"]] {
        let out = host.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--user NAME"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing generated");
    }
    assert!(host.spool_files().is_empty(), "root writes no request");
}

#[test]
fn a_wrong_code_writes_nothing_to_the_spool() {
    let host = ready();
    let (before, out) = host.enroll_as_user("phone", |secret| {
        let right: u32 = oathtool(secret).parse().unwrap();
        format!("{:06}", (right + 500_000) % 1_000_000)
    });
    assert!(before.contains("Scan this QR code"), "{before}");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was stored"),
        "{}",
        stderr(&out)
    );
    assert!(
        codes_in(&stdout(&out)).is_empty(),
        "no recovery codes shown"
    );
    assert!(host.spool_files().is_empty());
}

#[test]
fn no_answer_at_all_writes_nothing_to_the_spool() {
    let host = ready();
    let out = host.as_user(&["enroll", "--device", "phone"], b"");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(host.spool_files().is_empty());
}

#[test]
fn a_bad_device_name_is_a_usage_error_and_writes_nothing() {
    let host = ready();
    let long = "x".repeat(65);
    let out = host.as_user(&["enroll", "--device", &long], b"123456\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("device name"), "{}", stderr(&out));
    assert!(!stdout(&out).contains(CODE_PROMPT));
    assert!(host.spool_files().is_empty());
}

#[test]
fn a_right_code_leaves_one_sealed_request_the_user_owns_for_that_uid_only() {
    let host = ready();
    let (_, out) = host.enroll_as_user("work phone", oathtool);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = codes_in(&stdout(&out));
    assert_eq!(shown.len(), 10, "{}", stdout(&out));

    let files = host.spool_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let suffix = name.strip_prefix("65534.").expect("named <uid>.<hex>");
    assert!(
        suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    let meta = std::fs::symlink_metadata(&files[0]).unwrap();
    assert!(meta.is_file());
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (UID, 0o600), "{name}");
    assert!(meta.len() <= MAX_PENDING_FILE);

    // Only the master key opens it, and only as this uid's.
    let sealed = std::fs::read(&files[0]).unwrap();
    let keys = host.keys();
    assert!(keys.open_enrollment(&sealed, UID - 1).is_err());
    let (version, plaintext) = keys.open_request(&sealed, UID).unwrap();
    let pending = Pending::decode(&plaintext, version).unwrap();
    let now = SystemClock.now();
    assert!(pending.created <= now && now - pending.created < 120);
    // No existing device was named: a first device, proven at the login.
    assert_eq!(pending.proof, None);
    let Request::Device {
        device,
        recovery,
        code,
    } = pending.request.clone()
    else {
        panic!("a device request: {pending:?}");
    };
    assert_eq!(device.name, "work phone");
    // The code typed at enrollment travels with the request; the module
    // checks it again and uses its step up.
    assert_eq!(device.last_used_step, None);
    assert!(code.is_some());
    let step = check_new_device_code(&pending, 1)
        .unwrap()
        .expect("the code is checked at the request's time");
    assert!(step + 2 >= time_step(now, device.params.period), "{step}");
    assert_eq!(recovery.remaining(), 10);
    for code in &shown {
        let candidate = normalize(code.as_bytes(), 12).expect("a recovery code");
        assert!(recovery.find(&candidate).unwrap().is_some(), "{code}");
    }
    // Nothing is active until the module (or approve) applies it.
    assert!(!host.dir.path().join("state/users/65534").exists());
}

#[test]
fn new_recovery_codes_asked_for_by_a_user_are_sealed_to_the_spool_not_applied() {
    let host = ready();
    // The CLI cannot check the code of the current device (only root can
    // read the record): it seals it for the module to check.
    let out = host.as_user(&["recovery-codes", "--regenerate"], b"123456\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = codes_in(&stdout(&out));
    assert_eq!(shown.len(), 10, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("at your next login"),
        "{}",
        stdout(&out)
    );

    let files = host.spool_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::symlink_metadata(&files[0]).unwrap().uid(),
        UID,
        "the user's own file"
    );
    let sealed = std::fs::read(&files[0]).unwrap();
    let (version, plaintext) = host.keys().open_request(&sealed, UID).unwrap();
    let pending = Pending::decode(&plaintext, version).unwrap();
    assert_eq!(
        pending.proof,
        Some(Proof::Totp(Zeroizing::new("123456".into())))
    );
    let Request::RecoveryCodes { recovery } = pending.request else {
        panic!("a recovery-codes request: {pending:?}");
    };
    for code in &shown {
        let candidate = normalize(code.as_bytes(), 12).expect("a recovery code");
        assert!(recovery.find(&candidate).unwrap().is_some(), "{code}");
    }
}

#[test]
fn new_recovery_codes_without_a_code_of_the_current_device_are_refused() {
    let host = ready();
    let out = host.as_user(&["recovery-codes", "--regenerate"], b"\n");
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("need a code from your device"),
        "{}",
        stderr(&out)
    );
    assert!(host.spool_files().is_empty());
}

#[test]
fn the_usage_errors_of_recovery_codes_name_the_command_that_works() {
    let host = ready();
    // Root forgot --user: the command suggested must still regenerate.
    let out = host.run(&["recovery-codes", "--regenerate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--regenerate"),
        "root is told to run a command that only counts the codes: {}",
        stderr(&out)
    );
    // A user forgot --regenerate: they are not root, and --regenerate is
    // what they can run.
    let out = host.as_user(&["recovery-codes"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("as root"),
        "a user is addressed as root: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("recovery-codes --regenerate"),
        "{}",
        stderr(&out)
    );
    assert!(host.spool_files().is_empty());
}

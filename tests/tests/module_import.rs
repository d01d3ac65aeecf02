//! Moving users from google-authenticator-libpam, end to end: a
//! `~/.google_authenticator` written by the real `google-authenticator`
//! command (run as the user, as the user would), imported with the real
//! `mfa-enroll`, then logins through the real libpam with pamtester. The
//! user keeps both what the app shows and the scratch codes on paper.
//! Needs root, and `cargo build --workspace` for mfa-enroll.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{code_now, mfa_alone, mfa_enroll, read, FAST};
use pam_mfa_e2e::{sandbox, Sandbox, TestUser};
use serde_json::Value;

/// Runs the real `google-authenticator` as `user`, non-interactively
/// (time-based, no reuse, 3 logins per 30 s, window 3, `scratch` scratch
/// codes), writing `~user/.google_authenticator`. Returns the file.
fn google_authenticator(user: &TestUser, scratch: u8) -> PathBuf {
    let file = user.home().join(".google_authenticator");
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
            "--qr-mode=none",
        ])
        .arg(format!("--emergency-codes={scratch}"))
        .arg(format!("--secret={}", file.display()))
        .env("HOME", user.home())
        .uid(user.uid())
        .gid(user.gid())
        .stdin(Stdio::null())
        .output()
        .expect(
            "google-authenticator is installed (apt-get install libpam-google-authenticator; \
             .ci/run does)",
        );
    assert!(
        made.status.success(),
        "google-authenticator: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    file
}

/// The secret (first line) and the scratch codes (the 8-digit lines) of a
/// `.google_authenticator` file.
fn secret_and_scratch_codes(file: &Path) -> (String, Vec<String>) {
    let text = String::from_utf8(read(file)).expect("the file is ASCII");
    let mut lines = text.lines();
    let secret = lines.next().expect("a secret line").to_owned();
    let codes = lines
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
        .collect();
    (secret, codes)
}

fn status_json(sb: &Sandbox, user: &TestUser) -> Value {
    let run = mfa_enroll(sb, &["status", "--user", user.name(), "--json"]);
    run.assert_success();
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{run}"))
}

#[test]
fn an_imported_user_logs_in_with_a_scratch_code_once_and_with_the_app() {
    let sb = sandbox!();
    sb.write_config(FAST);
    let user = TestUser::create("impgasc");
    mfa_enroll(&sb, &["key", "init"]).assert_success();
    let file = google_authenticator(&user, 5);
    let (secret, scratch) = secret_and_scratch_codes(&file);
    assert_eq!(scratch.len(), 5, "the tool wrote 5 scratch codes");
    let before = read(&file);

    // The default file: ~NAME/.google_authenticator from the password
    // database.
    let imported = mfa_enroll(
        &sb,
        &[
            "import",
            "google-authenticator",
            "--user",
            user.name(),
            "--apply",
        ],
    );
    imported.assert_success();
    for code in &scratch {
        assert!(
            !imported.stdout.contains(code.as_str()),
            "the scratch codes are not printed again:\n{imported}"
        );
    }
    assert_eq!(read(&file), before, "the imported file was changed");

    mfa_alone(&sb, "sshd", "");
    let first = sb.pamtester("sshd", user.name(), &["authenticate"], &[&scratch[2]]);
    first.assert_success();
    assert!(first.stdout.contains("4 recovery codes left"), "{first}");
    assert_eq!(status_json(&sb, &user)["recovery_codes_left"], 4);
    let again = sb.pamtester("sshd", user.name(), &["authenticate"], &[&scratch[2]]);
    again.assert_failure();
    let status = status_json(&sb, &user);
    assert_eq!(status["recovery_codes_left"], 4, "{status}");
    assert_eq!(status["failures"], 1, "the second use counts\n{status}");

    // The app keeps working: a TOTP code from oathtool for the file's secret.
    let totp = sb.pamtester(
        "sshd",
        user.name(),
        &["authenticate"],
        &[&code_now(&secret)],
    );
    totp.assert_success();
    // Another scratch code still works after that.
    let other = sb.pamtester("sshd", user.name(), &["authenticate"], &[&scratch[0]]);
    other.assert_success();
    assert!(other.stdout.contains("3 recovery codes left"), "{other}");

    let mut secrets = scratch.clone();
    secrets.push(secret);
    common::assert_logs_never_contain(&sb, &secrets);
}

#[test]
fn a_scratch_code_the_old_module_already_used_is_not_carried_over() {
    let sb = sandbox!();
    sb.write_config(FAST);
    let user = TestUser::create("impgaold");
    mfa_enroll(&sb, &["key", "init"]).assert_success();
    let file = google_authenticator(&user, 3);
    let (_, scratch) = secret_and_scratch_codes(&file);
    assert_eq!(scratch.len(), 3);

    // The user logs in once more with google-authenticator's own PAM
    // module, using a scratch code; the module removes it from the file.
    sb.service("old", "auth required pam_google_authenticator.so\n");
    let old = sb.pamtester("old", user.name(), &["authenticate"], &[&scratch[0]]);
    old.assert_success();
    let (_, left) = secret_and_scratch_codes(&file);
    assert_eq!(left, scratch[1..], "the old module used up the first code");

    mfa_enroll(
        &sb,
        &[
            "import",
            "google-authenticator",
            "--user",
            user.name(),
            "--apply",
        ],
    )
    .assert_success();
    assert_eq!(status_json(&sb, &user)["recovery_codes_left"], 2);

    mfa_alone(&sb, "sshd", "");
    let reused = sb.pamtester("sshd", user.name(), &["authenticate"], &[&scratch[0]]);
    reused.assert_failure();
    let next = sb.pamtester("sshd", user.name(), &["authenticate"], &[&scratch[1]]);
    next.assert_success();
    assert!(next.stdout.contains("1 recovery code left"), "{next}");
}

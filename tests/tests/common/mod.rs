//! Fixtures shared by the pam_mfa end-to-end tests: a sandbox with a master
//! key, users enrolled through mfa-core's administrative API, PAM stacks,
//! and reading pam_mfa's audit lines.
//!
//! Codes always come from oathtool, never from mfa-core's TOTP. mfa-core is
//! used only to lay out what an administrator would have set up (the key,
//! an enrollment) and to look at a user's record afterwards.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mfa_core::admin::{self, EnrollRequest, UserStatus};
use mfa_core::config::Config;
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::store::Store;
pub use pam_mfa_e2e::audit::AuditLine;
#[allow(unused_imports)] // each test file uses part of this module
pub use pam_mfa_e2e::converse::{password_and, PASSWORD_PROMPT};
use pam_mfa_e2e::syslog::AUTHPRIV;
use pam_mfa_e2e::{
    oathtool_code, sandbox, unix_now, LogLine, Sandbox, Style, TestUser, Transcript,
};

/// How long to wait for a syslog line.
pub const WAIT: Duration = Duration::from_secs(10);

/// pam_mfa's prompt for a code.
pub const CODE_PROMPT: &str = "Verification code: ";
/// pam_mfa's prompt for the first code of a device enrolled at login.
pub const NEW_DEVICE_PROMPT: &str = "Verification code from the new app: ";

/// Throttle settings that keep tests fast: no failure delay, and room for
/// a few wrong answers before back-off starts.
pub const FAST: &str = "[throttle]\nfail_delay_ms = 0\n";

/// A sandbox whose config is `settings` (TOML without `[paths]`), with a
/// master key and state directory made as `mfa-enroll key init` makes them.
pub fn sandbox_with(settings: &str) -> Sandbox {
    let sb = sandbox!();
    sb.write_config(settings);
    init_key(&sb);
    sb
}

/// A sandbox with the default settings except for the failure delay.
pub fn fast_sandbox() -> Sandbox {
    sandbox_with(FAST)
}

/// `[policy] not_configured = POLICY` with no failure delay.
pub fn policy(policy: &str) -> String {
    format!("[policy]\nnot_configured = \"{policy}\"\n\n{FAST}")
}

/// The sandbox's config as pam_mfa reads it.
pub fn config(sb: &Sandbox) -> Config {
    Config::load(&sb.config_path(), FileTrust::ROOT, &[]).expect("the sandbox config loads")
}

/// Creates the master key and the enrollment public key.
pub fn init_key(sb: &Sandbox) {
    admin::init_key(&config(sb).paths, FileTrust::ROOT, unix_now()).expect("key init");
}

/// The master key.
pub fn keys(sb: &Sandbox) -> MasterKey {
    MasterKey::load(&sb.key_file(), FileTrust::ROOT).expect("the master key loads")
}

/// The record store.
pub fn store(sb: &Sandbox) -> Store {
    Store::new(sb.state_dir(), FileTrust::ROOT)
}

/// The record file of `uid`.
pub fn record_path(sb: &Sandbox, uid: u32) -> PathBuf {
    sb.state_dir().join(uid.to_string())
}

/// What an administrator's enrollment handed out.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The uid enrolled.
    pub uid: u32,
    /// The TOTP secret in base32, as an app would be given it.
    pub secret: String,
    /// The recovery codes as shown (`xxxx-xxxx-xxxx`).
    pub recovery_codes: Vec<String>,
}

/// Enrolls `name`/`uid` with one device named `phone`, as
/// `mfa-enroll enroll` does.
pub fn enroll_uid(sb: &Sandbox, name: &str, uid: u32) -> Enrolled {
    let config = config(sb);
    let keys = keys(sb);
    let request = EnrollRequest {
        username: name,
        device: "phone",
        issuer: "e2e",
        account: &format!("{name}@e2e"),
        replace: false,
    };
    let provision = admin::provision(&config, &request, unix_now()).expect("provision");
    let store = store(sb);
    let mut state = store.open_user(uid, &keys).expect("open the user's state");
    provision
        .store(&mut state, &keys)
        .expect("store the record");
    Enrolled {
        uid,
        secret: provision.secret_base32().to_owned(),
        recovery_codes: provision
            .recovery_codes()
            .iter()
            .map(|c| c.display().to_owned())
            .collect(),
    }
}

/// Enrolls a test user.
pub fn enroll(sb: &Sandbox, user: &TestUser) -> Enrolled {
    enroll_uid(sb, user.name(), user.uid())
}

/// The user's state as `mfa-enroll status` reports it.
pub fn status(sb: &Sandbox, uid: u32) -> UserStatus {
    let config = config(sb);
    let keys = keys(sb);
    let store = store(sb);
    let state = store.open_user(uid, &keys).expect("open the user's state");
    admin::status(&state, &config, unix_now())
}

/// Changes the user's record with `change`, committed as a login would.
pub fn edit_record(sb: &Sandbox, uid: u32, change: impl FnOnce(&mut mfa_core::record::Record)) {
    let keys = keys(sb);
    let store = store(sb);
    let mut state = store.open_user(uid, &keys).expect("open the user's state");
    let mut record = state.record().expect("the user is enrolled").clone();
    change(&mut record);
    state.commit(&record, &keys).expect("commit");
}

/// Forgets which time step the user's devices last accepted, so that the
/// current code is fresh again (instead of waiting for the next step).
pub fn forget_last_step(sb: &Sandbox, uid: u32) {
    edit_record(sb, uid, |r| {
        for d in &mut r.devices {
            d.last_used_step = None;
        }
    });
}

/// The code an app shows now.
pub fn code_now(secret: &str) -> String {
    oathtool_code(secret, None)
}

/// The code an app will show in the next time step: still inside the
/// default window of one step, and newer than the step now, so a second
/// login in the same test need not wait 30 s.
pub fn code_next(secret: &str) -> String {
    oathtool_code(secret, Some(unix_now() + 30))
}

/// A code that is certainly not the current one (nor within the window).
pub fn wrong_code(secret: &str) -> String {
    let now = unix_now();
    let valid: Vec<String> = [now - 30, now, now + 30, now + 60]
        .iter()
        .map(|t| oathtool_code(secret, Some(*t)))
        .collect();
    (0..1000)
        .map(|n: u32| format!("{:06}", (n * 137_777) % 1_000_000))
        .find(|c| !valid.contains(c))
        .expect("some six digits are not a valid code")
}

/// `auth required pam_mfa` alone: what the module returns is what
/// `pam_authenticate` returns (except for `PAM_IGNORE`, which libpam turns
/// into `PAM_PERM_DENIED`).
pub fn mfa_alone(sb: &Sandbox, service: &str, args: &str) {
    sb.service(service, &sb.pam_mfa_line("auth required", args));
}

/// The key-only sshd pattern: pam_mfa decides, except that `PAM_IGNORE`
/// falls through to `pam_permit`.
pub fn ignore_falls_through(sb: &Sandbox, service: &str) {
    sb.service(
        service,
        &format!(
            "{}auth required pam_permit.so\n",
            sb.pam_mfa_line("auth [success=done ignore=ignore default=die]", "")
        ),
    );
}

/// `pam_unix` with `control` (requisite or required), then pam_mfa, for
/// auth and account.
pub fn password_then_code(sb: &Sandbox, service: &str, control: &str) {
    sb.service(
        service,
        &format!(
            "auth {control} pam_unix.so nodelay\n{}account required pam_unix.so\n{}",
            sb.pam_mfa_line("auth required", ""),
            sb.pam_mfa_line("account required", ""),
        ),
    );
}

/// The text of every message of `style` in the transcript.
pub fn texts(t: &Transcript, style: Style) -> Vec<String> {
    t.messages()
        .into_iter()
        .filter(|m| m.style == style)
        .map(|m| m.msg)
        .collect()
}

/// The syslog level each event is documented with (`docs/pam_mfa.md`).
pub fn documented_severity(event: &str) -> u8 {
    match event {
        "auth_success" | "auth_skipped" | "recovery_code_used" | "pending_expired" | "debug" => 6,
        "auth_failure"
        | "auth_denied"
        | "auth_throttled"
        | "auth_no_conversation"
        | "device_enrolled"
        | "device_removed"
        | "recovery_codes_regenerated" => 5,
        "auth_replay" | "auth_locked" | "config_failure" | "key_failure" | "internal_error"
        | "pending_ignored" => 4,
        "record_slot_discarded" | "store_failure" | "break_glass" => 1,
        other => panic!("no documented level for event {other}"),
    }
}

/// pam_mfa's audit lines since the run started, parsed.
pub fn audit_lines(t: &Transcript) -> Vec<AuditLine> {
    t.logs()
        .iter()
        .filter(|l| l.tag == "pam_mfa")
        .filter_map(|l| AuditLine::parse(&l.message))
        .collect()
}

/// Waits for pam_mfa's `event` line with these fields since the run
/// started; checks its ident, facility and level; returns it.
pub fn expect_event(t: &Transcript, event: &str, fields: &[(&str, &str)]) -> AuditLine {
    let matches = |l: &LogLine| {
        l.tag == "pam_mfa"
            && AuditLine::parse(&l.message).is_some_and(|a| {
                a.event == event && fields.iter().all(|(k, v)| a.get(k) == Some(*v))
            })
    };
    let Ok(line) = t.wait_for_log(matches, WAIT) else {
        panic!("no pam_mfa line event={event} with {fields:?}\n{t}");
    };
    assert_eq!(line.facility(), Some(AUTHPRIV), "facility authpriv: {line}");
    assert_eq!(
        line.severity(),
        Some(documented_severity(event)),
        "the documented level for {event}: {line}"
    );
    assert!(line.pid.is_some(), "ident pam_mfa[pid]: {line}");
    AuditLine::parse(&line.message).expect("parsed above")
}

/// Fails unless no pam_mfa line of this run is `event`. Call it after
/// waiting for a line the same run logs later.
pub fn assert_no_event(t: &Transcript, event: &str) {
    assert!(
        audit_lines(t).iter().all(|a| a.event != event),
        "unexpected event={event}\n{t}"
    );
}

/// Fails if any syslog line of the sandbox contains one of `secrets`
/// (compared without case, and also without spaces and dashes).
pub fn assert_logs_never_contain(sb: &Sandbox, secrets: &[String]) {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase()
    };
    for line in sb.syslog().lines() {
        let raw = line.raw.to_ascii_lowercase();
        let squashed = squash(&line.raw);
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(
                !raw.contains(&secret.to_ascii_lowercase()) && !squashed.contains(&squash(secret)),
                "a syslog line reveals {secret:?}: {line}"
            );
        }
    }
}

/// The `mfa-enroll` binary of this build: `target/<profile>/mfa-enroll`,
/// next to the `deps/` directory this test binary lives in.
pub fn mfa_enroll_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join("mfa-enroll");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` before `cargo test -p pam-mfa-e2e` (`cargo test --workspace` builds it too)",
        path.display()
    );
    path
}

/// Runs `mfa-enroll --config <sandbox config> ARGS` inside the sandbox,
/// so that its audit lines reach the sandbox's syslog.
pub fn mfa_enroll(sb: &Sandbox, args: &[&str]) -> pam_mfa_e2e::Run {
    let binary = mfa_enroll_binary();
    let config = sb.config_path();
    let mut all = vec!["--config", config.to_str().expect("UTF-8 path")];
    all.extend_from_slice(args);
    sb.run(binary.to_str().expect("UTF-8 path"), &all)
}

/// Bytes of `path`.
pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Waits until the Unix time is at least `t`.
pub fn sleep_until_unix(t: u64) {
    while unix_now() < t {
        std::thread::sleep(Duration::from_millis(50));
    }
}

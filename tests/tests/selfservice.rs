//! Self-service enrollment end to end: a throwaway user runs the
//! workspace's `mfa-enroll` with no privileges (no setuid bit, no sudo),
//! which seals the new device into the spool; the user's next login
//! through the real sudo, OpenSSH or libpam activates it. Codes come from
//! oathtool with the secret the command printed; the administrator's side
//! (`key init`, `enroll`, `approve`) is the `mfa-enroll` binary as root.
//! Needs root, and the whole workspace built (`cargo test --workspace`).
//!
//! A failing test prints the terminal transcript or the run, and the
//! sandbox's syslog.

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mfa_core::codec::hex_encode;
use mfa_core::config::Config;
use mfa_core::enrollment;
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::{EnrollmentPublicKey, MasterKey};
use mfa_core::pending::{Pending, Proof, Request};
use mfa_core::spool;
use mfa_core::totp;
use pam_mfa_e2e::audit::{count_events, expect_event, field, matches, AUDIT_WAIT};
use pam_mfa_e2e::qr::decode_utf8_qr;
use pam_mfa_e2e::selfservice::{
    fingerprint_shown, recovery_codes_shown, secret_of, UserMfaEnroll, APP_CODE_PROMPT,
    CODES_SHOWN, NAME_PROMPT, PROOF_PROMPT, REGENERATE_PROMPT,
};
use pam_mfa_e2e::sudo::{password_prompt, AS_ROOT, TRY_AGAIN, WHOAMI};
use pam_mfa_e2e::{
    sandbox, unix_now, AuthenticatorApp, Converse, LogLine, MfaEnroll, Op, PtySession, Sandbox,
    Sshd, TestUser,
};

/// pam_mfa's prompt for a code from an enrolled device.
const CODE_PROMPT: &str = "Verification code: ";
/// No failure delay: wrong answers are part of these scenarios.
const FAST: &str = "[throttle]\nfail_delay_ms = 0\n";

/// pam_mfa's prompt for the first code of a self-enrolled device.
fn new_device_prompt(name: &str) -> String {
    format!("Verification code from your new device \"{name}\": ")
}

/// The sandbox's config text: `not_configured = POLICY`, no failure delay,
/// then `more` (whole tables).
fn settings(policy: &str, more: &str) -> String {
    format!("[policy]\nnot_configured = \"{policy}\"\n\n{FAST}\n{more}")
}

/// Checks what self-service needs and an administrator sets up: the spool
/// root's and 1733, `enroll.pub` root's and 0644, the config readable by
/// users, the sandbox reachable by them.
fn assert_self_service_ready(sb: &Sandbox) {
    let spool = fs::symlink_metadata(sb.spool_dir()).expect("the spool exists");
    assert!(spool.is_dir());
    assert_eq!(
        (spool.uid(), spool.mode() & 0o7777),
        (0, 0o1733),
        "spool root 1733"
    );
    let public = fs::symlink_metadata(sb.enroll_public_key())
        .expect("`mfa-enroll key init` writes enroll.pub");
    assert!(public.is_file());
    assert_eq!(
        (public.uid(), public.mode() & 0o7777),
        (0, 0o644),
        "enroll.pub root 0644"
    );
    let config = fs::symlink_metadata(sb.config_path()).expect("the config exists");
    assert_eq!(config.mode() & 0o7777, 0o644, "users read the config");
    let root = fs::symlink_metadata(sb.root()).expect("the sandbox exists");
    assert_eq!(root.mode() & 0o7777, 0o755, "users reach the spool");
}

/// A sandbox with `settings`, a master key made by `mfa-enroll key init`,
/// and the spool ready for users.
fn host(settings: &str) -> Sandbox {
    let sb = sandbox!().with_deadline(Duration::from_secs(300));
    sb.write_config(settings);
    MfaEnroll::new(&sb).key_init();
    assert_self_service_ready(&sb);
    sb
}

/// A host with the shipped `pam.d/sudo` and a sudoers letting `users` run
/// anything after authenticating, asking every time, with `defaults`.
fn sudo_host(settings: &str, defaults: &[&str], users: &[&TestUser]) -> Sandbox {
    let sb = sandbox!()
        .with_deadline(Duration::from_secs(300))
        .with_sudo();
    sb.write_config(settings);
    MfaEnroll::new(&sb).key_init();
    assert_self_service_ready(&sb);
    sb.install_shipped_stack("sudo", "sudo");
    let mut all = vec!["timestamp_timeout=0"];
    all.extend_from_slice(defaults);
    sb.write_sudoers(&all, users);
    sb
}

/// A libpam service `mfa` with pam_mfa as in the shipped sshd stack
/// (`success=done ignore=ignore default=die`, then `pam_permit`) and
/// pam_mfa's account line.
fn mfa_service(sb: &Sandbox) {
    sb.service(
        "mfa",
        &format!(
            "{}auth required pam_permit.so\n{}",
            sb.pam_mfa_line("auth [success=done ignore=ignore default=die]", ""),
            sb.pam_mfa_line("account required", ""),
        ),
    );
}

/// The audit line pam_mfa sent for `user` over sudo.
fn expect_sudo_event(sb: &Sandbox, event: &str, user: &TestUser, more: &[(&str, &str)]) -> LogLine {
    let mut want = vec![("user", user.name()), ("service", "sudo")];
    want.extend_from_slice(more);
    expect_event(sb.syslog(), event, &want)
}

/// Waits for a `pending_ignored` line for `uid` whose reason names `path`
/// and contains `why`.
fn expect_ignored(sb: &Sandbox, uid: u32, path: &Path, why: &str) -> LogLine {
    let uid = uid.to_string();
    let path = path.display().to_string();
    sb.syslog()
        .wait_for(
            |l| {
                matches(l, "pam_mfa", &[("event", "pending_ignored"), ("uid", &uid)])
                    && field(&l.message, "reason")
                        .is_some_and(|r| r.contains(&path) && r.contains(why))
            },
            AUDIT_WAIT,
        )
        .unwrap_or_else(|e| panic!("expected pending_ignored for {path} because {why:?}:\n{e:?}"))
}

/// The names of the user's devices, from `mfa-enroll status --json`.
fn device_names(sb: &Sandbox, user: &TestUser) -> Vec<String> {
    let status = MfaEnroll::new(sb).status(user);
    status["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("no devices array: {status}"))
        .iter()
        .map(|d| d["name"].as_str().expect("a device name").to_owned())
        .collect()
}

/// Types the password at sudo's prompt.
fn password(sudo: &mut PtySession, user: &TestUser) {
    sudo.answer(&password_prompt(user), user.password());
}

// ---------------------------------------------------------------------------
// Spool files made the way a user (or an attacker) could make them

/// 16 random hex digits, as `mfa-enroll` names its spool files.
fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom is readable");
    hex_encode(&bytes).as_str().to_owned()
}

fn config(sb: &Sandbox) -> Config {
    Config::load(&sb.config_path(), FileTrust::ROOT, &[]).expect("the sandbox config loads")
}

/// The host's enrollment public key, which anyone can read.
fn host_public_key(sb: &Sandbox) -> EnrollmentPublicKey {
    EnrollmentPublicKey::load(&sb.enroll_public_key(), FileTrust::ROOT).expect("enroll.pub loads")
}

/// A new device named `name` and a recovery set, made `created` and sealed
/// for `uid` to `key`: what `mfa-enroll` writes, or what anyone holding
/// the public key can make. Returns the sealed bytes and the base32 secret.
fn sealed_device(
    sb: &Sandbox,
    key: &EnrollmentPublicKey,
    uid: u32,
    name: &str,
    created: u64,
) -> (Vec<u8>, String) {
    let config = config(sb);
    let new =
        enrollment::new_device(&config, name, "e2e", "planted@e2e", created).expect("a new device");
    let (_, recovery) = enrollment::new_recovery_codes(&config).expect("recovery codes");
    let secret = totp::base32_encode(&new.device.secret).to_string();
    let pending = Pending {
        id: Pending::new_id().expect("random bytes"),
        created,
        request: Request::Device {
            device: new.device,
            recovery,
            code: None,
        },
        proof: None,
    };
    (pending.seal(key, uid).expect("sealing works"), secret)
}

/// What an up-to-date `mfa-enroll` seals for a user who already has a
/// device: a new device named `name` made now, with the code its app shows
/// now, and `proof` (a code of the user's device) for `uid`. Returns the
/// sealed bytes and the new device's app, which has spent that code.
fn sealed_proven_device(
    sb: &Sandbox,
    key: &EnrollmentPublicKey,
    uid: u32,
    name: &str,
    proof: &str,
) -> (Vec<u8>, AuthenticatorApp) {
    let config = config(sb);
    let created = unix_now();
    let new =
        enrollment::new_device(&config, name, "e2e", "planted@e2e", created).expect("a new device");
    let (_, recovery) = enrollment::new_recovery_codes(&config).expect("recovery codes");
    let mut app = AuthenticatorApp::new(totp::base32_encode(&new.device.secret).as_str());
    let pending = Pending {
        id: Pending::new_id().expect("random bytes"),
        created,
        request: Request::Device {
            device: new.device,
            recovery,
            code: Some(zeroize::Zeroizing::new(app.next_code())),
        },
        proof: Some(Proof::Totp(zeroize::Zeroizing::new(proof.to_owned()))),
    };
    (pending.seal(key, uid).expect("sealing works"), app)
}

/// Writes `bytes` to `path` as `user` (who then owns it), mode 0600.
fn write_as(sb: &Sandbox, user: &TestUser, path: &Path, bytes: &[u8]) {
    let path = path.to_str().expect("sandbox paths are UTF-8");
    sb.run_as(
        user,
        "sh",
        &["-c", "umask 077 && cat > \"$1\"", "sh", path],
        bytes,
    )
    .assert_success();
}

/// Runs a shell command as `user` with `$1` set to `arg`.
fn shell_as(sb: &Sandbox, user: &TestUser, script: &str, arg: &Path) {
    let arg = arg.to_str().expect("sandbox paths are UTF-8");
    sb.run_as(user, "sh", &["-c", script, "sh", arg], b"")
        .assert_success();
}

/// The spool path `<uid>.<random>`.
fn spool_path(sb: &Sandbox, uid: u32) -> PathBuf {
    sb.spool_dir().join(format!("{uid}.{}", random_suffix()))
}

fn owner_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .uid()
}

// ---------------------------------------------------------------------------
// The scenarios

#[test]
fn mfa_enroll_has_no_setuid_or_setgid_bit() {
    let sb = sandbox!();
    let binary = sb.tools().artifact("mfa-enroll");
    let meta = fs::metadata(&binary)
        .unwrap_or_else(|e| panic!("{}: {e}; build the workspace first", binary.display()));
    assert_eq!(
        meta.mode() & 0o6000,
        0,
        "{} has mode {:o}: self-service needs no privileges",
        binary.display(),
        meta.mode()
    );
}

#[test]
fn a_user_enrolls_through_pipes_and_the_next_sudo_activates_the_device() {
    let user = TestUser::create("ssepipe");
    let sb = sudo_host(&settings("skip", ""), &[], &[&user]);

    // `mfa-enroll` with no arguments, the device name and the code on stdin.
    let (enrolled, mut app) = UserMfaEnroll::new(&sb, &user).enroll(&[], "phone");
    let out = &enrolled.run.stdout;
    assert!(out.contains(NAME_PROMPT), "{}", enrolled.run);
    assert!(
        enrolled.uri.starts_with("otpauth://totp/"),
        "{}",
        enrolled.run
    );
    assert!(
        out.contains("at your next login"),
        "it says what happens next:\n{}",
        enrolled.run
    );

    // The request waits in the spool: one file `<uid>.<16 hex>`, the
    // user's own, 0600. Nothing is active yet.
    let files = sb.spool_files(user.uid());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    let suffix = name
        .strip_prefix(&format!("{}.", user.uid()))
        .expect("named after the uid");
    assert!(
        suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    let meta = fs::symlink_metadata(&files[0]).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        (meta.uid(), meta.mode() & 0o7777),
        (user.uid(), 0o600),
        "{name}"
    );
    assert!(!MfaEnroll::new(&sb).enrolled(&user));

    // sudo: the password, then a code from the new device.
    let mut sudo = sb.sudo_as(&user, &WHOAMI);
    password(&mut sudo, &user);
    sudo.answer(&new_device_prompt("phone"), &app.next_code());
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);
    sudo.assert_not_printed(CODE_PROMPT);

    assert!(
        sb.spool_files(user.uid()).is_empty(),
        "the applied request is removed"
    );
    expect_sudo_event(
        &sb,
        "auth_success",
        &user,
        &[("method", "enrollment"), ("device", "phone")],
    );
    expect_sudo_event(
        &sb,
        "device_enrolled",
        &user,
        &[("method", "enrollment"), ("device", "phone")],
    );
    let status = MfaEnroll::new(&sb).status(&user);
    assert_eq!(status["enrolled"], true, "{status}");
    assert_eq!(status["recovery_codes_left"], 10, "{status}");
    assert_eq!(device_names(&sb, &user), ["phone"]);

    // From now on sudo asks for a code, and the recovery codes the command
    // showed are the ones that work.
    let sudo = sb.sudo_with_codes(&user, &[&enrolled.recovery_codes[0]]);
    sudo.assert_not_printed(&new_device_prompt("phone"));
    expect_sudo_event(&sb, "recovery_code_used", &user, &[("remaining", "9")]);
}

#[test]
fn a_user_enrolls_in_a_terminal_and_the_qr_code_reads_as_the_printed_uri() {
    let user = TestUser::create("ssepty");
    let sb = sudo_host(&settings("skip", ""), &[], &[&user]);

    let mut term = UserMfaEnroll::new(&sb, &user).terminal(&["enroll", "--qr", "utf8"]);
    term.answer(NAME_PROMPT, "tablet");
    let shown = term.expect(APP_CODE_PROMPT);
    let uri = shown
        .lines()
        .find_map(|l| l.strip_prefix("otpauth URI: "))
        .map_or_else(
            || term.fail("no `otpauth URI:` line before the prompt"),
            str::to_owned,
        );
    let decoded = decode_utf8_qr(&shown)
        .unwrap_or_else(|e| term.fail(&format!("the QR code cannot be read: {e}")));
    term.check(
        decoded == uri,
        &format!("the QR code says {decoded:?}, the URI line {uri:?}"),
    );
    let secret = secret_of(&decoded)
        .unwrap_or_else(|| term.fail("no secret in the URI"))
        .to_owned();
    let typed = shown
        .lines()
        .map(str::trim)
        .any(|l| l.replace(' ', "") == secret);
    term.check(typed, "the secret is also shown for typing");

    let mut app = AuthenticatorApp::new(&secret);
    term.send_line(&app.next_code());
    // A first device: Enter at the question for an existing factor.
    term.answer(&PROOF_PROMPT.replace('\n', "\r\n"), "");
    let shown = term.expect(CODES_SHOWN);
    term.check(
        fingerprint_shown(&shown).is_some(),
        "the secret's fingerprint is shown",
    );
    term.assert_exit(0);
    let codes = recovery_codes_shown(&term.output());
    term.check(codes.len() == 10, "ten recovery codes are shown");
    assert_eq!(sb.spool_files(user.uid()).len(), 1);

    let mut sudo = sb.sudo_as(&user, &WHOAMI);
    password(&mut sudo, &user);
    sudo.answer(&new_device_prompt("tablet"), &app.next_code());
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);
    expect_sudo_event(
        &sb,
        "device_enrolled",
        &user,
        &[("method", "enrollment"), ("device", "tablet")],
    );
    assert!(sb.spool_files(user.uid()).is_empty());
    assert_eq!(device_names(&sb, &user), ["tablet"]);
}

#[test]
fn a_second_device_proven_with_the_old_devices_code_is_added_at_the_next_login() {
    let user = TestUser::create("ssesecond");
    let sb = sudo_host(&settings("skip", ""), &[], &[&user]);
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut old = AuthenticatorApp::new(&first.secret);

    // mfa-enroll takes the new device's code, then one from the device the
    // user already has: a stolen shell has no such code.
    let (enrolled, mut new) =
        UserMfaEnroll::new(&sb, &user).enroll_proving(&["enroll"], "laptop", || old.next_code());
    assert_eq!(device_names(&sb, &user), ["default"], "nothing changes yet");

    // The next login asks for one code, as any login does, and applies the
    // request in the same commit: no second prompt.
    let sudo = sb.sudo_with_codes(&user, &[&old.next_code()]);
    sudo.assert_not_printed("new device");

    expect_sudo_event(
        &sb,
        "auth_success",
        &user,
        &[("method", "totp"), ("device", "default")],
    );
    let added = expect_sudo_event(
        &sb,
        "device_enrolled",
        &user,
        &[
            ("method", "enrollment"),
            ("device", "laptop"),
            (
                "reason",
                "self-service request: device \"laptop\" added; proven with a code of an existing device",
            ),
        ],
    );
    assert_eq!(
        added.severity(),
        Some(5),
        "a factor change is a notice: {added}"
    );
    assert_eq!(device_names(&sb, &user), ["default", "laptop"]);
    assert!(sb.spool_files(user.uid()).is_empty());

    // Both devices log in, each on its own.
    let sudo = sb.sudo_with_codes(&user, &[&old.next_code()]);
    sudo.assert_not_printed("new device");
    // The new device's code typed into mfa-enroll is used up: this one is
    // of a later time step, as a person would type it.
    sb.sudo_with_codes(&user, &[&new.next_code()]);
    expect_sudo_event(
        &sb,
        "auth_success",
        &user,
        &[("method", "totp"), ("device", "laptop")],
    );

    // The recovery codes shown by the self-enrollment replaced the
    // administrator's: an old one is refused, a new one works.
    let mut sudo = sb.sudo_as(&user, &WHOAMI);
    password(&mut sudo, &user);
    sudo.answer(CODE_PROMPT, &first.recovery_codes[0]);
    sudo.expect(TRY_AGAIN);
    password(&mut sudo, &user);
    sudo.answer(CODE_PROMPT, &enrolled.recovery_codes[0]);
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);
    expect_sudo_event(
        &sb,
        "auth_failure",
        &user,
        &[("method", "recovery"), ("reason", "wrong code")],
    );
    expect_sudo_event(&sb, "recovery_code_used", &user, &[("remaining", "9")]);
    assert_eq!(count_events(sb.syslog(), "device_enrolled", &[]), 1);
}

#[test]
fn a_wrong_code_of_either_device_adds_nothing_and_the_login_goes_on() {
    let user = TestUser::create("ssewrong");
    let sb = sudo_host(&settings("skip", ""), &[], &[&user]);
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut old = AuthenticatorApp::new(&first.secret);
    let me = UserMfaEnroll::new(&sb, &user);

    // mfa-enroll checks the new device's code itself: a wrong one seals
    // nothing, and it asks nothing more.
    let refused = me.enroll_answering(
        &["enroll"],
        "tablet",
        |secret| AuthenticatorApp::new(secret).wrong_code(),
        || panic!("asked for an existing factor after a wrong code"),
    );
    refused.run.assert_failure();
    assert!(!refused.asked_proof, "{}", refused.run);
    assert!(sb.spool_files(user.uid()).is_empty(), "{}", refused.run);

    // It cannot check the existing device's code (only the module can read
    // the record): a wrong one is sealed, and refused at the next login.
    me.enroll_proving(&["enroll"], "tablet", || old.wrong_code());
    let request = sb.spool_files(user.uid());
    assert_eq!(request.len(), 1);
    let sudo = sb.sudo_with_codes(&user, &[&old.next_code()]);
    // The user proved the existing factor: the login goes on.
    sudo.assert_not_printed(TRY_AGAIN);
    expect_sudo_event(
        &sb,
        "auth_success",
        &user,
        &[("method", "totp"), ("device", "default")],
    );
    let refusal = format!(
        "self-service request {} refused and removed: the code of an existing device or recovery code it carries is wrong or was already used",
        request[0].display()
    );
    expect_sudo_event(
        &sb,
        "auth_failure",
        &user,
        &[("method", "enrollment"), ("reason", &refusal)],
    );
    assert_eq!(device_names(&sb, &user), ["default"], "not added");
    // Not pending any more: a guess is not offered again.
    assert!(sb.spool_files(user.uid()).is_empty());
    assert_eq!(count_events(sb.syslog(), "device_enrolled", &[]), 0);
    assert_eq!(
        MfaEnroll::new(&sb).failures(&user),
        1,
        "a wrong code counts"
    );

    // Made again with the right code, the device is added at the next login.
    let (_, mut new) = me.enroll_proving(&["enroll"], "tablet", || old.next_code());
    sb.sudo_with_codes(&user, &[&old.next_code()]);
    expect_sudo_event(&sb, "device_enrolled", &user, &[("device", "tablet")]);
    assert_eq!(device_names(&sb, &user), ["default", "tablet"]);
    assert!(sb.spool_files(user.uid()).is_empty());
    assert_eq!(MfaEnroll::new(&sb).failures(&user), 0);
    sb.sudo_with_codes(&user, &[&new.next_code()]);
}

#[test]
fn under_deny_a_self_enrolled_first_device_waits_for_approve() {
    let user = TestUser::create("ssedeny");
    let sb = sudo_host(&settings("deny", ""), &["passwd_tries=1"], &[&user]);
    let (enrolled, mut app) = UserMfaEnroll::new(&sb, &user).enroll(&["enroll"], "phone");
    assert!(
        enrolled
            .run
            .stdout
            .contains(&format!("mfa-enroll approve --uid {}", user.uid())),
        "the user is told what to ask for:\n{}",
        enrolled.run
    );

    // Refused after the password, without asking for a code.
    let mut sudo = sb.sudo_as(&user, &WHOAMI);
    password(&mut sudo, &user);
    sudo.expect("sudo: 1 incorrect password attempt");
    sudo.assert_exit(1);
    sudo.assert_not_printed("Verification code");
    sudo.assert_not_printed(AS_ROOT);
    expect_sudo_event(
        &sb,
        "auth_denied",
        &user,
        &[
            ("device", "phone"),
            (
                "reason",
                "self-service enrollment awaits approval; policy deny",
            ),
        ],
    );
    assert!(!MfaEnroll::new(&sb).enrolled(&user));
    assert_eq!(sb.spool_files(user.uid()).len(), 1, "still waiting");

    // The administrator approves (`--yes`: without asking), after seeing
    // the fingerprint the user was shown.
    let approve = MfaEnroll::new(&sb).run(&["approve", "--user", user.name(), "--yes"]);
    approve.assert_success();
    let fingerprint = enrolled.fingerprint.as_deref().expect("shown to the user");
    assert!(
        approve
            .stdout
            .contains(&format!("secret fingerprint {fingerprint}")),
        "{approve}"
    );
    assert!(!approve.stdout.contains("[y/N]"), "{approve}");
    assert!(
        approve.stdout.contains(&format!(
            "Approved: device \"phone\" of {} (uid {}) is active",
            user.name(),
            user.uid()
        )),
        "{approve}"
    );
    let uid = user.uid().to_string();
    sb.syslog()
        .wait_for(
            |l| {
                matches(
                    l,
                    "mfa-enroll",
                    &[
                        ("event", "device_enrolled"),
                        ("uid", &uid),
                        ("device", "phone"),
                        ("reason", "self-service enrollment approved"),
                    ],
                )
            },
            AUDIT_WAIT,
        )
        .unwrap_or_else(|e| panic!("approve is audited:\n{e:?}"));
    assert!(sb.spool_files(user.uid()).is_empty());
    assert_eq!(device_names(&sb, &user), ["phone"]);

    // Now the device logs in like any other.
    sb.sudo_with_codes(&user, &[&app.next_code()]);
    expect_sudo_event(
        &sb,
        "auth_success",
        &user,
        &[("method", "totp"), ("device", "phone")],
    );
    // And the recovery codes the user was shown are the ones stored.
    sb.sudo_with_codes(&user, &[&enrolled.recovery_codes[9]]);
    expect_sudo_event(&sb, "recovery_code_used", &user, &[("remaining", "9")]);
}

#[test]
fn regenerated_recovery_codes_replace_the_old_ones_at_the_next_login_with_a_code() {
    let user = TestUser::create("ssecodes");
    let sb = sudo_host(&settings("skip", ""), &[], &[&user]);
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&first.secret);
    let me = UserMfaEnroll::new(&sb, &user);

    // Without a code of the device (Enter), nothing is made.
    let refused = me.regenerate("");
    refused.assert_failure();
    assert!(refused.stdout.contains(REGENERATE_PROMPT), "{refused}");
    assert!(
        recovery_codes_shown(&refused.stdout).is_empty(),
        "{refused}"
    );
    assert!(sb.spool_files(user.uid()).is_empty(), "{refused}");

    let run = me.regenerate(&app.next_code());
    run.assert_success();
    let fresh = recovery_codes_shown(&run.stdout);
    assert_eq!(fresh.len(), 10, "{run}");
    assert!(
        fresh.iter().all(|c| !first.recovery_codes.contains(c)),
        "{run}"
    );
    assert_eq!(sb.spool_files(user.uid()).len(), 1);
    assert_eq!(MfaEnroll::new(&sb).status(&user)["recovery_codes_left"], 10);

    // The next login with a code from the device applies them, asking
    // nothing more.
    let sudo = sb.sudo_with_codes(&user, &[&app.next_code()]);
    sudo.assert_not_printed("new device");
    expect_sudo_event(
        &sb,
        "recovery_codes_regenerated",
        &user,
        &[
            ("method", "enrollment"),
            (
                "reason",
                "self-service request: recovery codes replaced; proven with a code of an existing device",
            ),
        ],
    );
    assert!(sb.spool_files(user.uid()).is_empty());

    // From then on an old code is refused and a new one works.
    let mut sudo = sb.sudo_as(&user, &WHOAMI);
    password(&mut sudo, &user);
    sudo.answer(CODE_PROMPT, &first.recovery_codes[1]);
    sudo.expect(TRY_AGAIN);
    password(&mut sudo, &user);
    sudo.answer(CODE_PROMPT, &fresh[1]);
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);
    expect_sudo_event(
        &sb,
        "auth_failure",
        &user,
        &[("method", "recovery"), ("reason", "wrong code")],
    );
    expect_sudo_event(&sb, "recovery_code_used", &user, &[("remaining", "9")]);
}

#[test]
fn another_users_file_under_the_victims_uid_neither_blocks_nor_replaces_the_victims_enrollment() {
    let sb = host(&settings("skip", ""));
    mfa_service(&sb);
    let victim = TestUser::create("ssevictim");
    let mallory = TestUser::create("ssemallory");

    // Mallory plants files under the victim's prefix: a well-formed
    // enrollment sealed for the victim's uid (the public key is public),
    // for a device only she has, newer than anything the victim makes;
    // and garbage.
    let (sealed, _) = sealed_device(
        &sb,
        &host_public_key(&sb),
        victim.uid(),
        "mallory",
        unix_now() + 120,
    );
    let planted = spool_path(&sb, victim.uid());
    write_as(&sb, &mallory, &planted, &sealed);
    let junk = spool_path(&sb, victim.uid());
    write_as(&sb, &mallory, &junk, b"not an enrollment");
    assert_eq!(owner_of(&planted), mallory.uid());

    // They do not block the victim: with nothing of their own pending, the
    // policy (skip) decides, without a prompt.
    let t = sb.converse(
        Converse::new("mfa", victim.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(|_| None),
    );
    t.assert_success().assert_prompts(&[]);
    // They are not the victim's: removed at the victim's login, in one line
    // that names their owner and is not pinned on the victim.
    for gone in [&planted, &junk] {
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{} is removed",
            gone.display()
        );
    }
    let cleanup = expect_event(sb.syslog(), "pending_expired", &[("user", victim.name())]);
    let reason = field(&cleanup.message, "reason").expect("a reason");
    assert!(
        reason.starts_with(&format!(
            "removed 2 entries not owned by the uid in their name (owned by uid {})",
            mallory.uid()
        )),
        "{reason}"
    );
    assert_eq!(count_events(sb.syslog(), "pending_ignored", &[]), 0);

    // Nor do they replace the victim's own enrollment: the login asks for
    // the victim's device, and adds only it.
    let (enrolled, mut app) = UserMfaEnroll::new(&sb, &victim).enroll(&["enroll"], "phone");
    let t = sb.converse(
        Converse::new("mfa", victim.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(|_| Some(app.next_code())),
    );
    t.assert_success()
        .assert_prompts(&[&new_device_prompt("phone")]);
    expect_event(
        sb.syslog(),
        "device_enrolled",
        &[("user", victim.name()), ("device", "phone")],
    );
    assert_eq!(device_names(&sb, &victim), ["phone"]);
    assert!(sb.spool_files(victim.uid()).is_empty());
    assert_eq!(count_events(sb.syslog(), "device_enrolled", &[]), 1);

    // And at the next login they still count for nothing.
    let t = sb.converse(
        Converse::new("mfa", victim.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer(&enrolled.recovery_codes[0]),
    );
    t.assert_success().assert_prompts(&[CODE_PROMPT]);
    assert_eq!(device_names(&sb, &victim), ["phone"]);
}

#[test]
fn oversized_fifo_symlinked_and_world_writable_spool_files_are_ignored_and_logged() {
    let sb = host(&settings("skip", ""));
    mfa_service(&sb);
    let user = TestUser::create("sseunsafe");
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&first.secret);
    let key = host_public_key(&sb);

    let oversized = spool_path(&sb, user.uid());
    shell_as(
        &sb,
        &user,
        "head -c 20000 /dev/zero > \"$1\" && chmod 0600 \"$1\"",
        &oversized,
    );
    let fifo = spool_path(&sb, user.uid());
    shell_as(&sb, &user, "mkfifo -m 0600 \"$1\"", &fifo);
    // A link to a valid enrollment of the user's own: never followed.
    let (linked, _) = sealed_device(&sb, &key, user.uid(), "linked", unix_now());
    let target = user.home().join("enrollment");
    write_as(&sb, &user, &target, &linked);
    let link = spool_path(&sb, user.uid());
    sb.run_as(
        &user,
        "ln",
        &["-s", target.to_str().unwrap(), link.to_str().unwrap()],
        b"",
    )
    .assert_success();
    // A valid enrollment anyone could have rewritten.
    let (valid, _) = sealed_device(&sb, &key, user.uid(), "writable", unix_now());
    let writable = spool_path(&sb, user.uid());
    write_as(&sb, &user, &writable, &valid);
    shell_as(&sb, &user, "chmod 0666 \"$1\"", &writable);

    // The login is what it is with nothing pending: one code.
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(|_| Some(app.next_code())),
    );
    t.assert_success().assert_prompts(&[CODE_PROMPT]);
    assert_eq!(device_names(&sb, &user), ["default"]);
    assert_eq!(count_events(sb.syslog(), "device_enrolled", &[]), 0);

    expect_ignored(&sb, user.uid(), &oversized, "20000 bytes, more than 16384");
    expect_ignored(&sb, user.uid(), &fifo, "not a regular file; removed");
    expect_ignored(
        &sb,
        user.uid(),
        &link,
        "symbolic link (never followed); removed",
    );
    expect_ignored(&sb, user.uid(), &writable, "writable by others");
    // The user's own unusable entries are cleared away, the link too; what
    // it points to was never touched.
    for gone in [&oversized, &fifo, &link, &writable] {
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{} is removed",
            gone.display()
        );
    }
    assert_eq!(fs::read(&target).unwrap(), linked);
}

#[test]
fn stale_future_foreign_uid_and_foreign_host_enrollments_are_ignored_and_logged() {
    // The shortest request lifetime the config allows.
    let sb = host(&settings("skip", "[enrollment]\npending_max_age = 60\n"));
    mfa_service(&sb);
    let user = TestUser::create("ssesealed");
    let other = TestUser::create("sseother");
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&first.secret);
    let key = host_public_key(&sb);
    let now = unix_now();

    let plant = |sealed: &[u8]| {
        let path = spool_path(&sb, user.uid());
        write_as(&sb, &user, &path, sealed);
        path
    };
    let stale = plant(&sealed_device(&sb, &key, user.uid(), "stale", now - 3600).0);
    let future = plant(&sealed_device(&sb, &key, user.uid(), "future", now + 3600).0);
    let other_uid = plant(&sealed_device(&sb, &key, other.uid(), "other", now).0);
    let elsewhere = MasterKey::generate(now)
        .expect("a key")
        .enrollment_public_key();
    let other_host = plant(&sealed_device(&sb, &elsewhere, user.uid(), "elsewhere", now).0);

    let t = sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(|_| Some(app.next_code())),
    );
    t.assert_success().assert_prompts(&[CODE_PROMPT]);
    assert_eq!(device_names(&sb, &user), ["default"]);
    expect_ignored(
        &sb,
        user.uid(),
        &stale,
        "older than enrollment.pending_max_age",
    );
    expect_ignored(&sb, user.uid(), &future, "created in the future");
    expect_ignored(&sb, user.uid(), &other_uid, "sealed for a different user");
    expect_ignored(
        &sb,
        user.uid(),
        &other_host,
        "does not open under this host's key",
    );
    assert!(
        sb.spool_files(user.uid()).is_empty(),
        "the user's own unusable files are removed"
    );

    // The same recipe, made now for this user and this host, with the
    // codes an up-to-date mfa-enroll seals, is taken: the files above were
    // refused for what was wrong with each.
    let (valid, mut control) =
        sealed_proven_device(&sb, &key, user.uid(), "control", &app.next_code());
    plant(&valid);
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(|_| Some(app.next_code())),
    );
    t.assert_success().assert_prompts(&[CODE_PROMPT]);
    assert_eq!(device_names(&sb, &user), ["default", "control"]);
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer(&control.next_code()),
    );
    t.assert_success().assert_prompts(&[CODE_PROMPT]);
}

#[test]
fn expired_requests_of_every_user_are_removed_at_anyones_login_and_fresh_ones_kept() {
    // The shortest request lifetime the config allows; the test waits it out.
    let sb = host(&settings("skip", "[enrollment]\npending_max_age = 60\n"));
    mfa_service(&sb);
    let user = TestUser::create("ssesweeper");
    let absent = TestUser::create("sseabsent");
    let mallory = TestUser::create("sseplanter");
    let key = host_public_key(&sb);

    // A user who enrolls themselves and never logs in.
    UserMfaEnroll::new(&sb, &absent).enroll(&["enroll"], "phone");
    let abandoned = sb.spool_files(absent.uid());
    assert_eq!(abandoned.len(), 1);
    // Mallory plants a request under the user's prefix, and a link named
    // like a request of hers to a file of the user's.
    let (sealed, _) = sealed_device(&sb, &key, user.uid(), "planted", unix_now());
    let planted = spool_path(&sb, user.uid());
    write_as(&sb, &mallory, &planted, &sealed);
    let target = user.home().join("precious");
    write_as(&sb, &user, &target, b"the user's own file");
    let link = spool_path(&sb, mallory.uid());
    sb.run_as(
        &mallory,
        "ln",
        &["-s", target.to_str().unwrap(), link.to_str().unwrap()],
        b"",
    )
    .assert_success();
    // And a file whose name is no request's.
    let notes = sb.spool_dir().join("notes");
    write_as(&sb, &mallory, &notes, b"not a request");
    let expired_at = unix_now() + 62;

    std::thread::sleep(Duration::from_secs(expired_at.saturating_sub(unix_now())));
    // A request made now is fresh.
    let (sealed, _) = sealed_device(&sb, &key, mallory.uid(), "fresh", unix_now());
    let fresh = spool_path(&sb, mallory.uid());
    write_as(&sb, &mallory, &fresh, &sealed);

    // Any login does the cleaning: here the user's, who has nothing pending
    // and no device, under skip.
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(|_| None),
    );
    t.assert_success().assert_prompts(&[]);
    // The expired request, and what can be no request at any age: a file
    // not owned by the uid in its name, a link, a name no request has.
    let removed = [&abandoned[0], &planted, &link, &notes];
    for gone in removed {
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{} is removed",
            gone.display()
        );
    }
    assert!(fresh.exists(), "{} is kept", fresh.display());
    assert_eq!(fs::read(&target).unwrap(), b"the user's own file");
    // One line for all of them, not pinned on the user's uid.
    let cleanup = expect_event(sb.syslog(), "pending_expired", &[("user", user.name())]);
    let reason = field(&cleanup.message, "reason").expect("a reason");
    assert!(
        reason.starts_with("removed 1 expired request of other users"),
        "{reason}"
    );
    for gone in removed {
        assert!(reason.contains(&gone.display().to_string()), "{reason}");
    }
    assert!(field(&cleanup.message, "uid").is_none(), "{cleanup}");
    assert_eq!(count_events(sb.syslog(), "pending_expired", &[]), 1);
    assert_eq!(count_events(sb.syslog(), "pending_ignored", &[]), 0);
}

/// Plants, as `planter`, `files` empty files named after `uid` (as
/// requests of `uid` would be), `dirs` directories named likewise, and
/// `junk` names that are no request's, one of them with terminal escapes;
/// then touches the files again, as someone keeping them fresh would.
fn flood_spool(sb: &Sandbox, planter: &TestUser, uid: u32, files: usize, dirs: usize, junk: usize) {
    let script = r#"set -e
cd "$1"
seq 1 "$3" | sed "s/^/$2./" | xargs -r touch
seq 1 "$4" | sed "s/^/$2.d/" | xargs -r mkdir
seq 2 "$5" | sed "s/^/junk-/" | xargs -r touch
: > "$(printf 'evil-\033]0;owned\007')"
seq 1 "$3" | sed "s/^/$2./" | xargs -r touch
"#;
    let spool = sb.spool_dir();
    let (uid, files, dirs, junk) = (
        uid.to_string(),
        files.to_string(),
        dirs.to_string(),
        junk.to_string(),
    );
    let args = [
        "-c",
        script,
        "sh",
        spool.to_str().expect("sandbox paths are UTF-8"),
        &uid,
        &files,
        &dirs,
        &junk,
    ];
    sb.run_as(planter, "sh", &args, b"").assert_success();
}

/// Every entry in the spool.
fn spool_entries(sb: &Sandbox) -> Vec<PathBuf> {
    fs::read_dir(sb.spool_dir())
        .expect("the spool lists")
        .map(|e| e.expect("a spool entry").path())
        .collect()
}

/// `user`'s login through the `mfa` service answering `code`; returns how
/// long it took (the whole pam-converse run, as a user waits for it) and
/// the audit lines it sent.
fn timed_login(sb: &Sandbox, user: &TestUser, code: &str) -> (Duration, Vec<LogLine>) {
    let start = std::time::Instant::now();
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer(code),
    );
    let took = start.elapsed();
    t.assert_success().assert_prompts(&[CODE_PROMPT]);
    // The success line comes after any spool line of the same login.
    t.wait_for_log(
        |l| {
            matches(
                l,
                "pam_mfa",
                &[("event", "auth_success"), ("user", user.name())],
            )
        },
        AUDIT_WAIT,
    )
    .unwrap_or_else(|e| panic!("no auth_success for {}:\n{e:?}\n{t}", user.name()));
    let lines = t
        .logs()
        .into_iter()
        .filter(|l| l.tag == "pam_mfa")
        .collect();
    (took, lines)
}

/// The reason of the one `pending_expired` line among `lines`; checks
/// that there is exactly one, that it is not pinned on a uid, and that no
/// entry was reported on a line of its own.
fn cleanup_line(lines: &[LogLine]) -> String {
    let event = |l: &&LogLine| field(&l.message, "event");
    let cleanups: Vec<&LogLine> = lines
        .iter()
        .filter(|l| event(l).as_deref() == Some("pending_expired"))
        .collect();
    assert_eq!(cleanups.len(), 1, "one cleanup line: {lines:#?}");
    assert!(
        !lines
            .iter()
            .any(|l| event(&l).as_deref() == Some("pending_ignored")),
        "{lines:#?}"
    );
    let line = cleanups[0];
    assert!(field(&line.message, "uid").is_none(), "{line}");
    // Names are shown escaped, never as terminal control sequences.
    assert!(
        !line.message.contains('\x1b') && !line.message.contains('\x07'),
        "{line}"
    );
    field(&line.message, "reason").expect("a reason")
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// What one login's scan does with what was planted, by the order and the
/// limits `spool`'s documentation gives: first the files named after the
/// user's uid, then the directories named likewise, then the junk names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flood {
    files: usize,
    dirs: usize,
    junk: usize,
}

impl Flood {
    fn total(self) -> usize {
        self.files + self.dirs + self.junk
    }

    /// What one scan removes of it, and what it leaves.
    fn scan(self) -> (Flood, Flood) {
        let mut budget = spool::MAX_EXAMINED;
        let files = self.files.min(budget);
        budget -= files;
        let dirs = self.dirs.min(budget).min(spool::MAX_DIRECTORIES_REMOVED);
        budget -= dirs;
        let junk = self.junk.min(budget);
        let removed = Flood { files, dirs, junk };
        let left = Flood {
            files: self.files - files,
            dirs: self.dirs - dirs,
            junk: self.junk - junk,
        };
        (removed, left)
    }

    /// The cleanup line of the scan that removed `self` and left `left`,
    /// all of it planted by `owner`.
    fn check_line(self, left: Flood, owner: u32, reason: &str) {
        let parts = [
            (self.files, "entries not owned by the uid in their name"),
            (self.dirs, "empty directories"),
            (
                self.junk,
                "entries whose name is not a request's (<uid>.<suffix>)",
            ),
        ];
        let mut want = Vec::new();
        for (n, what) in parts {
            if n > 0 {
                want.push(format!("removed {n} {what} (owned by uid {owner}): "));
            }
        }
        let mut at = 0;
        for part in &want {
            let found = reason[at..].find(part.as_str());
            assert!(found.is_some(), "{part:?} in order in {reason}");
            at += found.unwrap_or(0) + part.len();
        }
        let ending = if left.total() == 0 {
            format!("; examined {} entries", self.total())
        } else {
            format!(
                "; examined {} entries; {} left for the next scan (one examines at most {} entries and removes at most {} directories)",
                self.total(),
                left.total(),
                spool::MAX_EXAMINED,
                spool::MAX_DIRECTORIES_REMOVED
            )
        };
        assert!(reason.ends_with(&ending), "{ending:?} ends {reason}");
        for other in ["expired", "non-empty", "could not", "more unusable"] {
            assert!(!reason.contains(other), "{other:?} in {reason}");
        }
    }
}

#[test]
fn thousands_of_entries_planted_against_a_user_are_gone_after_the_users_logins() {
    const PLANTED: Flood = Flood {
        files: 1200,
        dirs: 3 * spool::MAX_DIRECTORIES_REMOVED,
        junk: 800,
    };
    // Each round a user of their own, whose app gives two codes without
    // waiting for the clock: one before the flood and one after it (the
    // timed logins); the cleanup logins after that use recovery codes.
    const ROUNDS: usize = 3;
    let sb = host(&settings("skip", ""));
    mfa_service(&sb);
    let mallory = TestUser::create("sseflood");
    // All alive till the end: a uid freed would come back with the
    // previous round's record.
    let victims: Vec<TestUser> = (0..ROUNDS)
        .map(|round| TestUser::create(&format!("ssetarget{round}")))
        .collect();
    let mut empty = Vec::new();
    let mut flooded = Vec::new();
    let mut logins = 0;
    for victim in &victims {
        let enrolled = MfaEnroll::new(&sb).enroll(victim);
        let mut app = AuthenticatorApp::new(&enrolled.secret);
        let mut recovery = enrolled.recovery_codes.iter();

        let (took, lines) = timed_login(&sb, victim, &app.next_code());
        assert!(
            !lines
                .iter()
                .any(|l| field(&l.message, "event").as_deref() == Some("pending_expired")),
            "{lines:#?}"
        );
        empty.push(took);

        flood_spool(
            &sb,
            &mallory,
            victim.uid(),
            PLANTED.files,
            PLANTED.dirs,
            PLANTED.junk,
        );
        assert_eq!(spool_entries(&sb).len(), PLANTED.total());

        // The victim's logins, until nothing is left. Each examines the
        // most one scan examines, what is named after the victim first, and
        // says so in one line.
        let mut left = PLANTED;
        logins = 0;
        while left.total() > 0 {
            let (removed, after) = left.scan();
            let (took, lines) = if logins == 0 {
                timed_login(&sb, victim, &app.next_code())
            } else {
                let code = recovery.next().expect("a recovery code left");
                timed_login(&sb, victim, code)
            };
            if logins == 0 {
                flooded.push(took);
            }
            logins += 1;
            removed.check_line(after, mallory.uid(), &cleanup_line(&lines));
            assert_eq!(
                sb.spool_files(victim.uid()).len(),
                after.files + after.dirs,
                "after login {logins}"
            );
            assert_eq!(spool_entries(&sb).len(), after.total());
            left = after;
        }
        let left = spool_entries(&sb);
        assert!(left.is_empty(), "{} entries left: {left:?}", left.len());
    }
    let (empty_ms, flooded_ms) = (median(&mut empty), median(&mut flooded));
    println!(
        "login latency through pam-converse, median of {ROUNDS}: empty spool {empty_ms:?}; \
         {} entries planted, the first of the {logins} logins that remove them {flooded_ms:?} \
         ({:.2}x); empty {empty:?}, planted {flooded:?}",
        PLANTED.total(),
        flooded_ms.as_secs_f64() / empty_ms.as_secs_f64()
    );
}

#[test]
fn among_thousands_planted_in_the_spool_those_under_the_users_uid_are_gone_after_one_login() {
    // Thousands of entries, of which as many are named after the victim's
    // uid as one login's scan examines: that login removes all of them
    // (what is named after the user comes first) and says so in one line.
    const PLANTED: Flood = Flood {
        files: spool::MAX_EXAMINED - spool::MAX_DIRECTORIES_REMOVED,
        dirs: spool::MAX_DIRECTORIES_REMOVED,
        junk: 2500,
    };
    let sb = host(&settings("skip", ""));
    mfa_service(&sb);
    let mallory = TestUser::create("sseflood1");
    let victim = TestUser::create("ssetarget1");
    let enrolled = MfaEnroll::new(&sb).enroll(&victim);
    let mut app = AuthenticatorApp::new(&enrolled.secret);
    let (empty, _) = timed_login(&sb, &victim, &app.next_code());
    flood_spool(
        &sb,
        &mallory,
        victim.uid(),
        PLANTED.files,
        PLANTED.dirs,
        PLANTED.junk,
    );
    assert_eq!(
        sb.spool_files(victim.uid()).len(),
        PLANTED.files + PLANTED.dirs
    );
    let (removed, after) = PLANTED.scan();
    assert_eq!((after.files, after.dirs), (0, 0));
    let (flooded, lines) = timed_login(&sb, &victim, &app.next_code());
    removed.check_line(after, mallory.uid(), &cleanup_line(&lines));
    assert!(sb.spool_files(victim.uid()).is_empty());
    assert_eq!(spool_entries(&sb).len(), after.total());
    println!(
        "login latency through pam-converse: empty spool {empty:?}; {} entries planted, {} \
         of them under the user's uid: {flooded:?} ({:.2}x)",
        PLANTED.total(),
        PLANTED.files + PLANTED.dirs,
        flooded.as_secs_f64() / empty.as_secs_f64()
    );
}

#[test]
fn sshd_activates_a_self_enrolled_device_in_its_pam_child() {
    let sb = sandbox!().with_deadline(Duration::from_secs(600));
    sb.write_config(&settings("skip", ""));
    MfaEnroll::new(&sb).key_init();
    assert_self_service_ready(&sb);
    sb.install_shipped_stack("sshd", "sshd");
    let sshd = Sshd::start(&sb, "");
    let user = TestUser::create("ssessh");
    sshd.authorize(&user);
    let logged_in = format!("LOGGED-IN-{}", user.name());

    let (enrolled, mut app) = UserMfaEnroll::new(&sb, &user).enroll(&["enroll"], "phone");

    // Key, then the new device's code in keyboard-interactive.
    let mut ssh = sshd.login(&user).spawn();
    ssh.answer(&new_device_prompt("phone"), &app.next_code());
    ssh.expect(&logged_in);
    ssh.assert_exit(0);
    ssh.assert_printed(&format!(
        "({}@127.0.0.1) {}",
        user.name(),
        new_device_prompt("phone")
    ));
    sshd.expect_log(&format!(
        "Accepted keyboard-interactive/pam for {} from 127.0.0.1",
        user.name()
    ));
    let at_sshd = [
        ("user", user.name()),
        ("service", "sshd"),
        ("rhost", "127.0.0.1"),
        ("device", "phone"),
    ];
    expect_event(sb.syslog(), "device_enrolled", &at_sshd);
    // OpenSSH ran the account phase in its PAM child: the record reached
    // the disk all the same, and the request is gone.
    assert_eq!(device_names(&sb, &user), ["phone"]);
    assert!(sb.spool_files(user.uid()).is_empty());

    // The next login asks for a code; a recovery code shown by mfa-enroll
    // is one.
    let mut ssh = sshd.login(&user).spawn();
    ssh.answer(CODE_PROMPT, &enrolled.recovery_codes[0]);
    ssh.expect(&logged_in);
    ssh.assert_exit(0);
    ssh.assert_not_printed("new device");
    expect_event(
        sb.syslog(),
        "recovery_code_used",
        &[("user", user.name()), ("remaining", "9")],
    );
}

//! A stolen shell cannot change the second factor (SECURITY.md items 26
//! and 27), end to end: the throwaway user runs the workspace's
//! `mfa-enroll` with no privileges, or seals a request by hand with the
//! world-readable public key, as someone with the user's shell but not the
//! user's authenticator can; the user's next ordinary login through the real
//! sudo decides. A request that changes an enrolled user's factors carries a
//! code of an existing factor, checked at that login; it applies once, is
//! announced at the next login that may print, and `mfa-enroll approve`
//! shows what it applies and asks first.
//!
//! Debian 12's sudo (1.9.13) always calls `pam_authenticate` with
//! `PAM_SILENT` (the `pam_silent` sudoers option is newer), so nothing
//! pam_mfa says reaches a sudo user. A login that may print is the same
//! stack (the shipped `pam.d/sudo`: password, then pam_mfa) under the name
//! `login`, driven through libpam by pam-converse without `PAM_SILENT`, as
//! sshd, login and su call it.
//!
//! Codes come from oathtool. Needs root, and the whole workspace built
//! (`cargo test --workspace`).

use std::ops::RangeInclusive;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mfa_core::config::Config;
use mfa_core::enrollment;
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::EnrollmentPublicKey;
use mfa_core::pending::{Pending, Proof, Request};
use mfa_core::totp;
use pam_mfa_e2e::audit::{count_events, expect_event};
use pam_mfa_e2e::converse::PASSWORD_PROMPT;
use pam_mfa_e2e::process::{self, Run};
use pam_mfa_e2e::selfservice::{recovery_codes_shown, UserMfaEnroll, REGENERATE_PROMPT};
use pam_mfa_e2e::{
    sandbox, unix_now, AuthenticatorApp, Converse, LogLine, MfaEnroll, Op, Sandbox, TestUser,
    Transcript,
};
use zeroize::Zeroizing;

/// pam_mfa's prompt for a code.
const CODE_PROMPT: &str = "Verification code: ";
/// What the user is told after new recovery codes were applied.
const CODES_REPLACED: &str = "your recovery codes were replaced by a new set; the old ones no longer work. If that was not you, tell an administrator now.";
/// The start of what the user is told about a refused request (after
/// "On <time> UTC, ").
const REFUSED: &str = "a request to change your second factor was refused: ";
/// Why a request with a wrong code of an existing factor is refused.
const WRONG_PROOF: &str =
    "the code of an existing device or recovery code it carries is wrong or was already used";
/// Why a request with no code of an existing factor is refused.
const NO_PROOF: &str =
    "it carries no code of an existing device (made by an older mfa-enroll?); run mfa-enroll again";
/// Why a copy of an applied request is refused.
const APPLIED_ALREADY: &str = "it was applied already (a copy)";
/// The audit reason of a request applied with a device's code.
const APPLIED_CODES: &str =
    "self-service request: recovery codes replaced; proven with a code of an existing device";

/// What the user is told after the device `name` was added.
fn device_added(name: &str) -> String {
    format!("the device \"{name}\" was added to your second factor. If that was not you, tell an administrator now.")
}

/// What the user is told about a refused request, and why.
fn refused(why: &str) -> String {
    format!("{REFUSED}{why}. If that was not you, tell an administrator now.")
}

/// The audit reason of a refused request.
fn refusal(path: &Path, why: &str) -> String {
    format!(
        "self-service request {} refused and removed: {why}",
        path.display()
    )
}

/// The service of a login that may print (see the module documentation).
const LOUD: &str = "login";

/// A host with policy `policy`, no failure delay, a master key from
/// `mfa-enroll key init`, the shipped `pam.d/sudo` as `sudo` and as
/// [`LOUD`], and a sudoers letting `users` run anything after
/// authenticating, asking every time.
fn sudo_host(policy: &str, users: &[&TestUser]) -> Sandbox {
    let sb = sandbox!()
        .with_deadline(Duration::from_secs(300))
        .with_sudo();
    sb.write_config(&format!(
        "[policy]\nnot_configured = \"{policy}\"\n\n[throttle]\nfail_delay_ms = 0\n"
    ));
    MfaEnroll::new(&sb).key_init();
    sb.install_shipped_stack("sudo", "sudo");
    sb.install_shipped_stack(LOUD, "sudo");
    sb.write_sudoers(&["timestamp_timeout=0"], users);
    sb
}

/// A login of `user` on [`LOUD`] (no `PAM_SILENT`) with the password and
/// `code` at the one code prompt; fails the test unless it succeeds.
fn loud_login(sb: &Sandbox, user: &TestUser, code: &str) -> Transcript {
    let t = sb.login(LOUD, user.name(), user.password(), || code.to_owned());
    t.assert_success()
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    t
}

/// Everything a login showed that was not a prompt, one message a line.
fn told(t: &Transcript) -> String {
    t.messages()
        .into_iter()
        .filter(|m| !m.style.is_prompt())
        .map(|m| m.msg + "\n")
        .collect()
}

/// The audit line pam_mfa sent for `user` over sudo.
fn expect_sudo_event(sb: &Sandbox, event: &str, user: &TestUser, more: &[(&str, &str)]) -> LogLine {
    let mut want = vec![("user", user.name()), ("service", "sudo")];
    want.extend_from_slice(more);
    expect_event(sb.syslog(), event, &want)
}

/// `mfa-enroll status --json` of `user`.
fn status(sb: &Sandbox, user: &TestUser) -> serde_json::Value {
    MfaEnroll::new(sb).status(user)
}

/// The names of the user's devices.
fn device_names(sb: &Sandbox, user: &TestUser) -> Vec<String> {
    let status = status(sb, user);
    status["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("no devices array: {status}"))
        .iter()
        .map(|d| d["name"].as_str().expect("a device name").to_owned())
        .collect()
}

/// `date -u` of Unix time `t`, as pam_mfa and mfa-enroll print times.
fn utc(t: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%d %H:%M:%S"])
        .output()
        .expect("date runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("date prints ASCII")
        .trim()
        .to_owned()
}

/// Checks that `text` holds `before` followed by a time in `range` and
/// `after` (e.g. `On ` ... ` UTC, ...`); returns the time shown.
fn assert_time_between(
    text: &str,
    before: &str,
    after: &str,
    range: RangeInclusive<u64>,
) -> String {
    let shown = range
        .clone()
        .map(utc)
        .find(|t| text.contains(&format!("{before}{t}{after}")));
    shown.unwrap_or_else(|| {
        panic!(
            "no {before:?}<a time from {} to {}>{after:?} in:\n{text}",
            utc(*range.start()),
            utc(*range.end())
        )
    })
}

/// The first 48 bits of the SHA-256 of a base32 secret, computed with
/// coreutils (`base32 -d | sha256sum`), grouped as mfa-enroll shows them.
fn fingerprint_of(secret_b32: &str) -> String {
    let mut padded = secret_b32.to_owned();
    while padded.len() % 8 != 0 {
        padded.push('=');
    }
    let out = Command::new("sh")
        .args([
            "-c",
            "printf %s \"$1\" | base32 -d | sha256sum",
            "sh",
            &padded,
        ])
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{out:?}");
    let hex = String::from_utf8(out.stdout).expect("sha256sum prints ASCII");
    format!("{}:{}:{}", &hex[0..4], &hex[4..8], &hex[8..12])
}

fn config(sb: &Sandbox) -> Config {
    Config::load(&sb.config_path(), FileTrust::ROOT, &[]).expect("the sandbox config loads")
}

/// The host's enrollment public key, which anyone can read.
fn host_public_key(sb: &Sandbox) -> EnrollmentPublicKey {
    EnrollmentPublicKey::load(&sb.enroll_public_key(), FileTrust::ROOT).expect("enroll.pub loads")
}

/// New recovery codes, as shown, and their hashes.
fn new_codes(sb: &Sandbox) -> (Vec<String>, mfa_core::recovery::RecoveryHashes) {
    let (codes, hashes) = enrollment::new_recovery_codes(&config(sb)).expect("recovery codes");
    (
        codes.iter().map(|c| c.display().to_owned()).collect(),
        hashes,
    )
}

/// Seals `request` made now with `proof` for `uid`, as anyone holding the
/// public key can, and puts it into the spool as `user` would.
fn plant_as(
    sb: &Sandbox,
    user: &TestUser,
    request: Request,
    proof: Option<Proof>,
) -> std::path::PathBuf {
    let pending = Pending {
        id: Pending::new_id().expect("random bytes"),
        created: unix_now(),
        request,
        proof,
    };
    let sealed = pending
        .seal(&host_public_key(sb), user.uid())
        .expect("sealing works");
    let path = sb.new_spool_path(user.uid());
    sb.write_as(user, &path, &sealed);
    path
}

/// `mfa-enroll approve ARGS` as root with `stdin` as the administrator's
/// answers.
fn approve(sb: &Sandbox, args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = sb.command(sb.tools().artifact("mfa-enroll"));
    cmd.arg("--config")
        .arg(sb.config_path())
        .arg("approve")
        .args(args);
    process::run(cmd, stdin)
}

// ---------------------------------------------------------------------------
// Someone with the user's shell, without the user's device

#[test]
fn a_guessed_code_in_regenerate_changes_nothing_and_counts_as_a_failed_attempt() {
    let user = TestUser::create("ssbguess");
    let sb = sudo_host("skip", &[&user]);
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&first.secret);
    let shell = UserMfaEnroll::new(&sb, &user);

    // With the user's shell and not the user's phone: mfa-enroll asks for a
    // code of the device, and takes a guess (it cannot check it: the record
    // is root's).
    let attempt = shell.regenerate(&app.wrong_code());
    attempt.assert_success();
    assert!(attempt.stdout.contains(REGENERATE_PROMPT), "{attempt}");
    let attackers = recovery_codes_shown(&attempt.stdout);
    assert_eq!(attackers.len(), 10, "{attempt}");
    let request = sb.spool_files(user.uid());
    assert_eq!(request.len(), 1);

    // The user's next ordinary sudo: one code, and it succeeds; the request
    // is refused, removed and counted as a failed attempt.
    sb.sudo_with_codes(&user, &[&app.next_code()]);
    expect_sudo_event(
        &sb,
        "auth_success",
        &user,
        &[("method", "totp"), ("device", "default")],
    );
    expect_sudo_event(
        &sb,
        "auth_failure",
        &user,
        &[
            ("method", "enrollment"),
            ("reason", &refusal(&request[0], WRONG_PROOF)),
        ],
    );
    assert!(sb.spool_files(user.uid()).is_empty());
    let st = status(&sb, &user);
    assert_eq!(st["recovery_codes_left"], 10, "{st}");
    assert_eq!(st["failures"], 1, "a wrong code is a failed attempt: {st}");

    // Again, guessing one of the user's recovery codes this time; the
    // user's next login may print, and tells the user.
    let attempt = shell.regenerate("abcd-efgh-2345");
    attempt.assert_success();
    let attackers2 = recovery_codes_shown(&attempt.stdout);
    let request = sb.spool_files(user.uid());
    let t = loud_login(&sb, &user, &app.next_code());
    // Both refusals are told: the one at the silent sudo, kept for this
    // login, and this login's own.
    let said = told(&t);
    assert_eq!(said.matches(&refused(WRONG_PROOF)).count(), 2, "{t}");
    assert_eq!(said.lines().count(), 2, "{t}");
    assert!(said.lines().all(|l| l.starts_with("On ")), "{t}");
    expect_event(
        sb.syslog(),
        "auth_failure",
        &[
            ("user", user.name()),
            ("service", LOUD),
            ("method", "enrollment"),
            ("reason", &refusal(&request[0], WRONG_PROOF)),
        ],
    );
    assert_eq!(
        count_events(sb.syslog(), "recovery_codes_regenerated", &[]),
        0
    );
    assert_eq!(status(&sb, &user)["recovery_codes_left"], 10);

    // The attacker's codes do not work; the user's own still do (one
    // wrong code a login: two more failures would start the back-off).
    sb.sudo_with_codes(&user, &[&attackers[0], &first.recovery_codes[0]]);
    sb.sudo_with_codes(&user, &[&attackers2[0], &first.recovery_codes[1]]);
    expect_sudo_event(
        &sb,
        "auth_failure",
        &user,
        &[("method", "recovery"), ("reason", "wrong code")],
    );
    expect_sudo_event(&sb, "recovery_code_used", &user, &[("remaining", "8")]);
}

#[test]
fn requests_sealed_by_hand_without_a_code_change_nothing() {
    let user = TestUser::create("ssbhand");
    let sb = sudo_host("skip", &[&user]);
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&first.secret);

    // New recovery codes of the attacker's, sealed for the user with the
    // world-readable public key, with no code of the user's device; the
    // user's next login is an ordinary sudo, which passes PAM_SILENT.
    let (attackers, hashes) = new_codes(&sb);
    let planted = plant_as(
        &sb,
        &user,
        Request::RecoveryCodes { recovery: hashes },
        None,
    );
    sb.sudo_with_codes(&user, &[&app.next_code()]);
    expect_event(
        sb.syslog(),
        "pending_ignored",
        &[
            ("user", user.name()),
            ("reason", &refusal(&planted, NO_PROOF)),
        ],
    );
    assert!(sb.spool_files(user.uid()).is_empty());
    let st = status(&sb, &user);
    assert_eq!(st["recovery_codes_left"], 10, "{st}");
    assert_eq!(st["failures"], 0, "no code, no guess: {st}");

    // A device of the attacker's, the same way, with its own valid code;
    // the user's next login may print, and tells the user.
    let config = config(&sb);
    let new =
        enrollment::new_device(&config, "spare", "e2e", "x@e2e", unix_now()).expect("a new device");
    let mut attackers_app = AuthenticatorApp::new(totp::base32_encode(&new.device.secret).as_str());
    let (_, hashes) = new_codes(&sb);
    let planted = plant_as(
        &sb,
        &user,
        Request::Device {
            device: new.device,
            recovery: hashes,
            code: Some(Zeroizing::new(attackers_app.next_code())),
        },
        None,
    );
    let t = loud_login(&sb, &user, &app.next_code());
    // The refusal at the silent sudo before, and this one.
    let said = told(&t);
    assert_eq!(said.matches(&refused(NO_PROOF)).count(), 2, "{t}");
    assert_eq!(said.lines().count(), 2, "{t}");
    expect_event(
        sb.syslog(),
        "pending_ignored",
        &[
            ("user", user.name()),
            ("reason", &refusal(&planted, NO_PROOF)),
        ],
    );
    assert_eq!(device_names(&sb, &user), ["default"]);
    assert_eq!(count_events(sb.syslog(), "device_enrolled", &[]), 0);
    assert_eq!(
        count_events(sb.syslog(), "recovery_codes_regenerated", &[]),
        0
    );

    // Neither the attacker's device nor the attacker's codes log in; the
    // user's own recovery code does.
    sb.sudo_with_codes(
        &user,
        &[
            &attackers_app.next_code(),
            &attackers[0],
            &first.recovery_codes[0],
        ],
    );
    expect_sudo_event(&sb, "recovery_code_used", &user, &[("remaining", "9")]);
}

// ---------------------------------------------------------------------------
// The user's own changes

#[test]
fn the_users_own_new_codes_apply_at_the_next_sudo_and_are_announced_at_the_next_login_that_may_print(
) {
    let user = TestUser::create("ssbown");
    let sb = sudo_host("skip", &[&user]);
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&first.secret);

    let run = UserMfaEnroll::new(&sb, &user).regenerate(&app.next_code());
    run.assert_success();
    let fresh = recovery_codes_shown(&run.stdout);
    assert_eq!(fresh.len(), 10, "{run}");

    // One code at sudo's prompt applies them, at notice level in the log;
    // sudo is silent, so the user is told nothing yet.
    let start = unix_now();
    sb.sudo_with_codes(&user, &[&app.next_code()])
        .assert_not_printed("were replaced");
    let end = unix_now();
    let line = expect_sudo_event(
        &sb,
        "recovery_codes_regenerated",
        &user,
        &[("method", "enrollment"), ("reason", APPLIED_CODES)],
    );
    assert_eq!(line.severity(), Some(5), "logged at notice: {line}");
    // The new codes are the ones that work; still silent.
    sb.sudo_with_codes(&user, &[&first.recovery_codes[0], &fresh[0]])
        .assert_not_printed("were replaced");
    assert_eq!(status(&sb, &user)["recovery_codes_left"], 9);

    // The next login that may print tells it, with when it happened; once.
    let t = loud_login(&sb, &user, &app.next_code());
    let shown = assert_time_between(
        &told(&t),
        "On ",
        &format!(" UTC, {CODES_REPLACED}"),
        start..=end,
    );
    assert_eq!(
        told(&t),
        format!("On {shown} UTC, {CODES_REPLACED}\n"),
        "{t}"
    );
    let t = loud_login(&sb, &user, &fresh[1]);
    assert!(!told(&t).contains("were replaced"), "{t}");
}

#[test]
fn a_change_is_told_at_the_first_login_that_may_print_even_the_one_that_applies_it() {
    let user = TestUser::create("ssbloud");
    let sb = sudo_host("skip", &[&user]);
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut old = AuthenticatorApp::new(&first.secret);

    // A recovery code stands in for the device's code.
    let proof = first.recovery_codes[0].clone();
    let (_, mut laptop) =
        UserMfaEnroll::new(&sb, &user).enroll_proving(&["enroll"], "laptop", || proof);

    // A login with PAM_SILENT (pam-converse --silent, the same stack)
    // applies it and says nothing.
    let start = unix_now();
    let code = old.next_code();
    let t = sb.converse(
        Converse::new(LOUD, user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .silent()
            .answer_with(|p| {
                Some(if p.msg == "Password: " {
                    user.password().to_owned()
                } else {
                    code.clone()
                })
            }),
    );
    let end = unix_now();
    t.assert_success()
        .assert_prompts(&["Password: ", CODE_PROMPT]);
    assert_eq!(told(&t), "", "{t}");
    expect_event(
        sb.syslog(),
        "device_enrolled",
        &[
            ("user", user.name()),
            ("device", "laptop"),
            (
                "reason",
                "self-service request: device \"laptop\" added; proven with a recovery code (now used up)",
            ),
        ],
    );
    assert_eq!(device_names(&sb, &user), ["default", "laptop"]);

    // The next login that may print, with the new device, tells it.
    let t = loud_login(&sb, &user, &laptop.next_code());
    let what = device_added("laptop");
    let shown = assert_time_between(&told(&t), "On ", &format!(" UTC, {what}"), start..=end);
    assert_eq!(told(&t), format!("On {shown} UTC, {what}\n"), "{t}");
    let t = loud_login(&sb, &user, &old.next_code());
    assert_eq!(told(&t), "", "told once: {t}");

    // And a change applied in a login that may print is told in it.
    let run = UserMfaEnroll::new(&sb, &user).regenerate(&laptop.next_code());
    run.assert_success();
    let start = unix_now();
    let t = loud_login(&sb, &user, &old.next_code());
    let end = unix_now();
    let shown = assert_time_between(
        &told(&t),
        "On ",
        &format!(" UTC, {CODES_REPLACED}"),
        start..=end,
    );
    assert_eq!(
        told(&t),
        format!("On {shown} UTC, {CODES_REPLACED}\n"),
        "{t}"
    );
}

#[test]
fn a_copy_of_an_applied_request_does_not_apply_again() {
    let user = TestUser::create("ssbcopy");
    let sb = sudo_host("skip", &[&user]);
    let first = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&first.secret);

    let run = UserMfaEnroll::new(&sb, &user).regenerate(&app.next_code());
    run.assert_success();
    let fresh = recovery_codes_shown(&run.stdout);
    // Whoever has the user's shell keeps a copy of the request file.
    let request = sb.spool_files(user.uid());
    assert_eq!(request.len(), 1);
    let kept = user.home().join("request-copy");
    sb.copy_as(&user, &request[0], &kept);

    sb.sudo_with_codes(&user, &[&app.next_code()]);
    expect_sudo_event(
        &sb,
        "recovery_codes_regenerated",
        &user,
        &[("reason", APPLIED_CODES)],
    );
    sb.sudo_with_codes(&user, &[&fresh[0]]);
    assert_eq!(status(&sb, &user)["recovery_codes_left"], 9);

    // Put back, the copy would bring back the used code if it applied.
    let again = sb.new_spool_path(user.uid());
    sb.copy_as(&user, &kept, &again);
    let t = loud_login(&sb, &user, &app.next_code());
    let said = told(&t);
    assert!(said.contains(&refused(APPLIED_ALREADY)), "{t}");
    // The first application, made under silent sudo, is told now; the
    // copy is no change of its own.
    assert_eq!(said.matches(CODES_REPLACED).count(), 1, "{t}");
    expect_event(
        sb.syslog(),
        "pending_ignored",
        &[
            ("user", user.name()),
            ("reason", &refusal(&again, APPLIED_ALREADY)),
        ],
    );
    assert!(sb.spool_files(user.uid()).is_empty());
    assert_eq!(
        count_events(sb.syslog(), "recovery_codes_regenerated", &[]),
        1
    );
    let st = status(&sb, &user);
    assert_eq!(st["recovery_codes_left"], 9, "{st}");
    assert_eq!(st["failures"], 0, "a copy is no guess: {st}");
    // The used code stays used.
    sb.sudo_with_codes(&user, &[&fresh[0], &fresh[1]]);
    assert_eq!(status(&sb, &user)["recovery_codes_left"], 8);
}

// ---------------------------------------------------------------------------
// approve

/// The id `approve` lists for the request of device `name`: the word after
/// `Request ` on the header above its `new device "NAME"` line.
fn listed_id(listing: &str, name: &str) -> String {
    let mut id = None;
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("Request ") {
            id = rest.split_whitespace().next();
        }
        if line.contains(&format!("new device \"{name}\":")) {
            return id
                .unwrap_or_else(|| panic!("no header above {name}:\n{listing}"))
                .to_owned();
        }
    }
    panic!("no request for {name} listed:\n{listing}")
}

#[test]
fn approve_shows_each_request_asks_before_applying_and_takes_the_one_named() {
    let user = TestUser::create("ssbappr");
    let sb = sudo_host("deny", &[&user]);
    let me = UserMfaEnroll::new(&sb, &user);
    let start = unix_now();
    let (phone, mut phone_app) = me.enroll(&["enroll"], "phone");
    let (tablet, mut tablet_app) = me.enroll(&["enroll"], "tablet");
    let end = unix_now();
    // The fingerprint the user was shown is the secret's.
    for enrolled in [&phone, &tablet] {
        assert_eq!(
            enrolled.fingerprint.as_deref(),
            Some(fingerprint_of(&enrolled.secret).as_str()),
            "{}",
            enrolled.run
        );
    }
    assert_eq!(sb.spool_files(user.uid()).len(), 2);
    let name = user.name();
    let who = format!("{name} (uid {})", user.uid());
    let shown = |device: &str, enrolled: &pam_mfa_e2e::selfservice::SelfEnrolled| {
        format!(
            "  new device \"{device}\": SHA1, 6 digits, 30 s period, secret fingerprint {}",
            enrolled.fingerprint.as_deref().expect("shown")
        )
    };

    // Two requests: both listed, with what each would apply; none applied.
    let listing = approve(&sb, &["--user", name], b"y\n");
    assert_eq!(listing.code(), Some(2), "{listing}");
    assert!(
        listing
            .stderr
            .contains("has several pending requests (listed above); name one with --request"),
        "{listing}"
    );
    for (device, enrolled) in [("phone", &phone), ("tablet", &tablet)] {
        assert!(
            listing.stdout.contains(&shown(device, enrolled)),
            "{listing}"
        );
    }
    assert_eq!(listing.stdout.matches("Request ").count(), 2, "{listing}");
    assert_time_between(&listing.stdout, "(made ", " UTC)", start..=end);
    assert!(!listing.stdout.contains("[y/N]"), "{listing}");
    assert!(!MfaEnroll::new(&sb).enrolled(&user));
    let phone_id = listed_id(&listing.stdout, "phone");

    // The one named, answered no (Enter is no): shown, asked, not applied.
    for answer in [&b"n\n"[..], b"\n"] {
        let no = approve(&sb, &["--user", name, "--request", &phone_id], answer);
        assert_eq!(no.code(), Some(4), "{no}");
        assert!(no.stdout.contains(&shown("phone", &phone)), "{no}");
        assert!(!no.stdout.contains("\"tablet\""), "{no}");
        assert!(
            no.stdout.contains(&format!("Apply it to {who}? [y/N] ")),
            "{no}"
        );
        assert!(no.stderr.contains("nothing was applied"), "{no}");
    }
    assert!(!MfaEnroll::new(&sb).enrolled(&user));
    assert_eq!(sb.spool_files(user.uid()).len(), 2);

    // Yes: that one is applied, the other left waiting.
    let yes = approve(&sb, &["--user", name, "--request", &phone_id], b"y\n");
    yes.assert_success();
    assert!(
        yes.stdout
            .contains(&format!("Approved: device \"phone\" of {who} is active")),
        "{yes}"
    );
    assert_eq!(device_names(&sb, &user), ["phone"]);
    assert_eq!(sb.spool_files(user.uid()).len(), 1);

    // --yes: shown and applied without a question.
    let unasked = approve(&sb, &["--user", name, "--yes"], b"");
    unasked.assert_success();
    assert!(
        unasked.stdout.contains(&shown("tablet", &tablet)),
        "{unasked}"
    );
    assert!(!unasked.stdout.contains("[y/N]"), "{unasked}");
    assert_eq!(device_names(&sb, &user), ["phone", "tablet"]);
    assert!(sb.spool_files(user.uid()).is_empty());

    // Both devices log in.
    sb.sudo_with_codes(&user, &[&phone_app.next_code()]);
    sb.sudo_with_codes(&user, &[&tablet_app.next_code()]);
    expect_sudo_event(
        &sb,
        "auth_success",
        &user,
        &[("method", "totp"), ("device", "tablet")],
    );
}

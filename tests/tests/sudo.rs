//! pam_mfa behind the real sudo, with the shipped `config/pam.d/sudo`, run
//! by a throwaway user in a pseudo-terminal that is sudo's controlling
//! terminal: sudo prints its own prompts and messages and reads the
//! password and the code from the terminal, as for a person. Codes come
//! from oathtool; the administrator's side is the `mfa-enroll` binary.
//! Needs root, and the whole workspace built (`cargo test --workspace`).
//!
//! A failing test prints the terminal transcript and the sandbox's syslog.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use pam_mfa_e2e::audit::{count_events, expect_event, pam_mfa_lines};
use pam_mfa_e2e::qr::decode_utf8_qr;
use pam_mfa_e2e::shipped::{rewrite_pam_mfa, shipped_text};
use pam_mfa_e2e::sudo::{password_prompt, TRY_AGAIN};
use pam_mfa_e2e::{sandbox, AuthenticatorApp, MfaEnroll, PtySession, Sandbox, TestUser};

/// pam_mfa's prompt for a code.
const CODE_PROMPT: &str = "Verification code: ";
/// pam_mfa's prompt for the first code of a device enrolled at login.
const NEW_DEVICE_PROMPT: &str = "Verification code from the new app: ";
/// What pam_mfa tells an unenrolled user under `deny`.
const DENY_MESSAGE: &str =
    "A second factor is required, but none is set up for this account. Ask an administrator.";
/// What the commands below print once they run as root.
const AS_ROOT: &str = "RUNNING-AS-root";

/// The command sudo is asked to run: proves it ran, and as whom.
const COMMAND: [&str; 3] = ["/bin/sh", "-c", "echo RUNNING-AS-$(id -un)"];

/// A host with pam_mfa in front of sudo: the shipped `pam.d/sudo`, a key,
/// the policy, and a sudoers letting `users` run anything after
/// authenticating, with `defaults`.
fn sudo_host(policy: &str, defaults: &[&str], users: &[&TestUser]) -> Sandbox {
    let sb = sandbox!()
        .with_deadline(Duration::from_secs(300))
        .with_sudo();
    sb.write_config(&format!("[policy]\nnot_configured = \"{policy}\"\n"));
    MfaEnroll::new(&sb).key_init();
    sb.install_shipped_stack("sudo", "sudo");
    sb.write_sudoers(defaults, users);
    sb
}

/// What pam_mfa logged for `user` over sudo.
fn expect_sudo_event(sb: &Sandbox, event: &str, user: &TestUser, more: &[(&str, &str)]) {
    let mut want = vec![("user", user.name()), ("service", "sudo")];
    want.extend_from_slice(more);
    expect_event(sb.syslog(), event, &want);
}

/// Types the password and a code at sudo's prompts.
fn authenticate(sudo: &mut PtySession, user: &TestUser, code: &str) {
    sudo.answer(&password_prompt(user), user.password());
    sudo.answer(CODE_PROMPT, code);
}

/// Waits for sudo's own line in the syslog that it ran (or refused) a
/// command for `user`, and returns its message.
fn sudo_log_line(sb: &Sandbox, user: &TestUser, text: &str) -> String {
    sb.syslog()
        .wait_for(
            |l| l.tag == "sudo" && l.message.contains(user.name()) && l.message.contains(text),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("expected sudo to log {text:?} for {}:\n{e:?}", user.name()))
        .message
}

#[test]
fn password_and_code_run_the_command() {
    let user = TestUser::create("sudook");
    let sb = sudo_host("skip", &["timestamp_timeout=0"], &[&user]);
    let enrolled = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&enrolled.secret);

    let mut sudo = sb.sudo_as(&user, &COMMAND);
    authenticate(&mut sudo, &user, &app.next_code());
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);

    expect_sudo_event(&sb, "auth_success", &user, &[("method", "totp")]);
    sudo_log_line(&sb, &user, "COMMAND=/bin/sh -c 'echo RUNNING-AS-$(id -un)'");
    let status = MfaEnroll::new(&sb).status(&user);
    assert_eq!(status["last_success"]["service"], "sudo", "{status}");
}

#[test]
fn a_wrong_code_gets_sudos_try_again_and_the_next_try_works() {
    let user = TestUser::create("sudoretry");
    let sb = sudo_host("skip", &["timestamp_timeout=0"], &[&user]);
    let enrolled = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&enrolled.secret);

    let mut sudo = sb.sudo_as(&user, &COMMAND);
    authenticate(&mut sudo, &user, &app.wrong_code());
    sudo.expect(TRY_AGAIN);
    // sudo starts over: password, then code.
    authenticate(&mut sudo, &user, &app.next_code());
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);

    expect_sudo_event(
        &sb,
        "auth_failure",
        &user,
        &[("method", "totp"), ("reason", "wrong code")],
    );
    expect_sudo_event(&sb, "auth_success", &user, &[("method", "totp")]);
    assert_eq!(
        MfaEnroll::new(&sb).failures(&user),
        0,
        "a correct code clears the count"
    );
}

#[test]
fn three_wrong_codes_end_in_sudos_incorrect_attempts_message() {
    let user = TestUser::create("sudobad");
    let sb = sudo_host("skip", &["timestamp_timeout=0"], &[&user]);
    let enrolled = MfaEnroll::new(&sb).enroll(&user);
    let app = AuthenticatorApp::new(&enrolled.secret);

    let mut sudo = sb.sudo_as(&user, &COMMAND);
    for attempt in 1..=3 {
        authenticate(&mut sudo, &user, &app.wrong_code());
        if attempt < 3 {
            sudo.expect(TRY_AGAIN);
        }
    }
    sudo.expect("sudo: 3 incorrect password attempts");
    sudo.assert_exit(1);
    sudo.assert_not_printed(AS_ROOT);

    assert_eq!(
        count_events(sb.syslog(), "auth_failure", &[("user", user.name())]),
        3
    );
    assert_eq!(MfaEnroll::new(&sb).failures(&user), 3);
    sudo_log_line(&sb, &user, "3 incorrect password attempts");
}

#[test]
fn sudo_n_fails_without_counting_a_failure() {
    let user = TestUser::create("sudonon");
    let sb = sudo_host("skip", &["timestamp_timeout=0"], &[&user]);
    MfaEnroll::new(&sb).enroll(&user);

    // By default sudo -n does not even start PAM when a password is needed.
    let mut sudo = sb.sudo_as(&user, &["-n", "true"]);
    sudo.expect("sudo: a password is required");
    sudo.assert_exit(1);
    sudo_log_line(&sb, &user, "a password is required");

    // With noninteractive_auth it runs the stack with a conversation that
    // cannot ask: pam_unix, first in the shipped stack, fails and pam_mfa
    // is never reached.
    sb.write_sudoers(&["timestamp_timeout=0", "noninteractive_auth"], &[&user]);
    let mut sudo = sb.sudo_as(&user, &["-n", "true"]);
    sudo.expect("sudo: a password is required");
    sudo.assert_exit(1);
    sb.syslog()
        .wait_for(
            |l| l.message == "pam_unix(sudo:auth): conversation failed",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("sudo ran the PAM stack:\n{e:?}"));

    assert_eq!(MfaEnroll::new(&sb).failures(&user), 0, "nothing counted");
    assert!(
        pam_mfa_lines(sb.syslog()).is_empty(),
        "pam_mfa was never asked: {:?}",
        pam_mfa_lines(sb.syslog())
    );
}

#[test]
fn timestamp_timeout_0_asks_for_password_and_code_every_time() {
    let user = TestUser::create("sudotwice");
    let sb = sudo_host("skip", &["timestamp_timeout=0"], &[&user]);
    let enrolled = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&enrolled.secret);

    // Two sudo runs on one terminal, one right after the other.
    let mut shell = sb.terminal_as(
        &user,
        &[
            "sh",
            "-c",
            "sudo /bin/sh -c 'echo FIRST-AS-$(id -un)' && sudo /bin/sh -c 'echo SECOND-AS-$(id -un)'",
        ],
    );
    authenticate(&mut shell, &user, &app.next_code());
    shell.expect("FIRST-AS-root");
    authenticate(&mut shell, &user, &app.next_code());
    shell.expect("SECOND-AS-root");
    shell.assert_exit(0);

    expect_sudo_event(&sb, "auth_success", &user, &[("method", "totp")]);
    assert_eq!(
        count_events(sb.syslog(), "auth_success", &[("user", user.name())]),
        2
    );
}

#[test]
fn a_cached_sudo_timestamp_skips_pam_and_the_code() {
    // The contrast to timestamp_timeout=0: within the timeout sudo does
    // not run PAM at all, so pam_mfa cannot ask.
    let user = TestUser::create("sudocache");
    let sb = sudo_host("skip", &["timestamp_timeout=5"], &[&user]);
    let enrolled = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&enrolled.secret);

    let mut shell = sb.terminal_as(
        &user,
        &[
            "sh",
            "-c",
            "sudo /bin/sh -c 'echo FIRST-AS-$(id -un)' && sudo /bin/sh -c 'echo SECOND-AS-$(id -un)'",
        ],
    );
    authenticate(&mut shell, &user, &app.next_code());
    shell.expect("FIRST-AS-root");
    let between = shell.expect("SECOND-AS-root");
    shell.assert_exit(0);
    shell.check(
        !between.contains("password for") && !between.contains(CODE_PROMPT),
        "the second sudo asked nothing",
    );
    expect_sudo_event(&sb, "auth_success", &user, &[("method", "totp")]);
    assert_eq!(
        count_events(sb.syslog(), "auth_success", &[("user", user.name())]),
        1
    );
}

#[test]
fn skip_lets_an_unenrolled_user_in_with_the_password_alone() {
    let user = TestUser::create("sudoskip");
    let sb = sudo_host("skip", &["timestamp_timeout=0"], &[&user]);

    let mut sudo = sb.sudo_as(&user, &COMMAND);
    sudo.answer(&password_prompt(&user), user.password());
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);
    sudo.assert_not_printed("Verification code");
    expect_sudo_event(
        &sb,
        "auth_skipped",
        &user,
        &[("reason", "not enrolled; policy skip")],
    );
}

#[test]
fn deny_refuses_an_unenrolled_user_after_the_password() {
    let user = TestUser::create("sudodeny");
    // One try, so that sudo gives up after the first refusal.
    let sb = sudo_host("deny", &["timestamp_timeout=0", "passwd_tries=1"], &[&user]);

    let mut sudo = sb.sudo_as(&user, &COMMAND);
    sudo.answer(&password_prompt(&user), user.password());
    // Asked for a code like anyone (an unknown user looks the same).
    sudo.answer(CODE_PROMPT, "123456");
    sudo.expect("sudo: 1 incorrect password attempt");
    sudo.assert_exit(1);
    sudo.assert_not_printed(AS_ROOT);
    // sudo (1.9.13) calls pam_authenticate with PAM_SILENT, which keeps
    // pam_mfa's explanation off the terminal: only the log says why.
    sudo.assert_not_printed(DENY_MESSAGE);
    expect_sudo_event(
        &sb,
        "auth_denied",
        &user,
        &[("reason", "not enrolled; policy deny")],
    );
    assert!(!MfaEnroll::new(&sb).enrolled(&user));
}

#[test]
fn a_wrong_password_never_reaches_the_code_prompt_or_enrollment() {
    let user = TestUser::create("sudopw");
    let sb = sudo_host(
        "configure",
        &["timestamp_timeout=0", "passwd_tries=1"],
        &[&user],
    );

    let mut sudo = sb.sudo_as(&user, &COMMAND);
    sudo.answer(&password_prompt(&user), "not the password");
    sudo.expect("sudo: 1 incorrect password attempt");
    sudo.assert_exit(1);
    for never in ["Verification code", "second factor", "Secret: ", "URI: "] {
        sudo.assert_not_printed(never);
    }
    assert!(!MfaEnroll::new(&sb).enrolled(&user));
    assert!(
        pam_mfa_lines(sb.syslog()).is_empty(),
        "pam_mfa was never asked: {:?}",
        pam_mfa_lines(sb.syslog())
    );
}

#[test]
fn a_new_user_enrolls_at_the_sudo_prompt() {
    let user = TestUser::create("sudonew");
    let sb = sudo_host("configure", &["timestamp_timeout=0"], &[&user]);

    let mut sudo = sb.sudo_as(&user, &COMMAND);
    sudo.answer(&password_prompt(&user), user.password());
    let shown = sudo.expect(NEW_DEVICE_PROMPT);
    let uri = shown
        .lines()
        .find_map(|l| l.strip_prefix("URI: "))
        .map_or_else(
            || sudo.fail("no `URI: otpauth://...` line before the prompt"),
            str::to_owned,
        );
    let decoded = decode_utf8_qr(&shown)
        .unwrap_or_else(|e| sudo.fail(&format!("the QR code cannot be read: {e}")));
    sudo.check(
        decoded == uri,
        &format!("the QR code says {decoded:?}, the URI line {uri:?}"),
    );
    let secret = decoded
        .split_once("secret=")
        .and_then(|(_, rest)| rest.split('&').next())
        .map_or_else(|| sudo.fail("no secret in the URI"), str::to_owned);
    let mut app = AuthenticatorApp::new(&secret);
    sudo.send_line(&app.next_code());
    sudo.expect("they will not be shown again:");
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);

    expect_sudo_event(&sb, "auth_success", &user, &[("method", "enrollment")]);
    expect_sudo_event(&sb, "device_enrolled", &user, &[("device", "default")]);
    let status = MfaEnroll::new(&sb).status(&user);
    assert_eq!(status["enrolled"], true, "{status}");
    assert_eq!(status["recovery_codes_left"], 10, "{status}");

    // The next sudo asks for a code from the new device.
    let mut sudo = sb.sudo_as(&user, &COMMAND);
    authenticate(&mut sudo, &user, &app.next_code());
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);
    sudo.assert_not_printed("URI: ");
    expect_sudo_event(&sb, "auth_success", &user, &[("method", "totp")]);
}

// ---------------------------------------------------------------------------
// sudo -i: Debian's sudo runs the PAM service sudo-i for it, which includes
// common-auth directly and never reads /etc/pam.d/sudo.

/// The sudo-i stack as Debian's sudo package installs it.
fn debian_sudo_i() -> String {
    std::fs::read_to_string("/etc/pam.d/sudo-i")
        .unwrap_or_else(|e| panic!("/etc/pam.d/sudo-i (Debian's sudo package) cannot be read: {e}"))
}

/// The module copied into the sandbox as `lib/security/pam_mfa.so`: the
/// stacks then name a file called `pam_mfa.so`, as on a host, which is how
/// `mfa-enroll doctor` recognises it.
fn install_module_as_on_a_host(sb: &Sandbox) -> PathBuf {
    let dir = sb.path("lib/security");
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("pam_mfa.so");
    std::fs::copy(sb.pam_mfa_module(), &module).unwrap();
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o644)).unwrap();
    module
}

/// A stack edited as docs/guide-sshd-sudo.md says for sudo-i, su and
/// login: the code right after `@include common-auth`, the account line
/// after `@include common-account`.
fn add_pam_mfa_as_the_guide_says(stack: &str) -> String {
    let mut out = String::new();
    for line in stack.lines() {
        out.push_str(line);
        out.push('\n');
        match line.trim() {
            "@include common-auth" => out.push_str("auth       required   pam_mfa.so\n"),
            "@include common-account" => out.push_str("account    required   pam_mfa.so\n"),
            _ => {}
        }
    }
    out
}

/// A script that says whom it runs as; `sudo -i` hands its command to
/// root's login shell with everything but letters escaped, so the command
/// is a path rather than a shell snippet.
fn whoami_script(sb: &Sandbox) -> String {
    let path = sb.path("whoami.sh");
    std::fs::write(&path, "#!/bin/sh\necho RUNNING-AS-$(id -un)\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn sudo_i_asks_for_the_code_once_sudo_i_is_set_up_as_doctor_and_the_guide_say() {
    let user = TestUser::create("sudoi");
    let sb = sandbox!()
        .with_deadline(Duration::from_secs(300))
        .with_sudo();
    sb.write_config("[policy]\nnot_configured = \"skip\"\n");
    MfaEnroll::new(&sb).key_init();
    let module = install_module_as_on_a_host(&sb);
    sb.install_common_includes();
    // The per-service setup: /etc/pam.d/sudo replaced by the shipped one,
    // sudo-i as Debian has it.
    sb.service(
        "sudo",
        &rewrite_pam_mfa(&shipped_text("pam.d/sudo"), &module, &sb.config_path()),
    );
    sb.service("sudo-i", &debian_sudo_i());
    sb.write_sudoers(&["timestamp_timeout=0", "passwd_tries=1"], &[&user]);
    let enrolled = MfaEnroll::new(&sb).enroll(&user);
    let mut app = AuthenticatorApp::new(&enrolled.secret);
    let whoami = whoami_script(&sb);

    // The hole: `sudo -i` takes the password alone.
    let mut sudo = sb.sudo_as(&user, &["-i", &whoami]);
    sudo.answer(&password_prompt(&user), user.password());
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);
    sudo.assert_not_printed(CODE_PROMPT);

    // doctor names the service and the line to add.
    let doctor = MfaEnroll::new(&sb).run(&["doctor"]);
    assert!(!doctor.success(), "doctor reports an error:\n{doctor}");
    assert!(
        doctor.stdout.contains("[error] pam.d/sudo-i: `sudo -i`")
            && doctor.stdout.contains(
                "fix: /etc/pam.d/sudo-i: add \"auth required pam_mfa.so\" after \"@include common-auth\" (line 6)"
            ),
        "{doctor}"
    );

    // sudo-i edited as the guide says.
    sb.service(
        "sudo-i",
        &rewrite_pam_mfa(
            &add_pam_mfa_as_the_guide_says(&debian_sudo_i()),
            &module,
            &sb.config_path(),
        ),
    );
    let doctor = MfaEnroll::new(&sb).run(&["doctor"]);
    assert!(
        !doctor.stdout.contains("pam.d/sudo-i")
            && doctor.stdout.contains(
                "[info] pam.d: services that ask enrolled users for a code: sudo and sudo-i"
            ),
        "{doctor}"
    );

    // A wrong code does not get in.
    let mut sudo = sb.sudo_as(&user, &["-i", &whoami]);
    authenticate(&mut sudo, &user, &app.wrong_code());
    sudo.expect("sudo: 1 incorrect password attempt");
    sudo.assert_exit(1);
    sudo.assert_not_printed(AS_ROOT);
    expect_event(
        sb.syslog(),
        "auth_failure",
        &[
            ("user", user.name()),
            ("service", "sudo-i"),
            ("reason", "wrong code"),
        ],
    );

    // The right one does.
    let mut sudo = sb.sudo_as(&user, &["-i", &whoami]);
    authenticate(&mut sudo, &user, &app.next_code());
    sudo.expect(AS_ROOT);
    sudo.assert_exit(0);
    expect_event(
        sb.syslog(),
        "auth_success",
        &[
            ("user", user.name()),
            ("service", "sudo-i"),
            ("method", "totp"),
        ],
    );
    assert_eq!(
        MfaEnroll::new(&sb).failures(&user),
        0,
        "a right code clears the count"
    );
}

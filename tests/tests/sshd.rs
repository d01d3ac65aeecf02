//! pam_mfa behind a real OpenSSH server, logged into with the real OpenSSH
//! client in a pseudo-terminal, as a person would: the server uses the
//! shipped `config/pam.d/sshd` (or `sshd.password-and-code`) and
//! `config/sshd_config.d/00-pam_mfa.conf`; codes come from oathtool; the
//! administrator's side is the `mfa-enroll` binary. Needs root, and the
//! whole workspace built (`cargo test --workspace`).
//!
//! A failing test prints the client's terminal transcript, the server's
//! log and the sandbox's syslog.

use std::time::Duration;

use pam_mfa_e2e::audit::{count_events, expect_event, pam_mfa_lines};
use pam_mfa_e2e::qr::decode_utf8_qr;
use pam_mfa_e2e::{sandbox, AuthenticatorApp, MfaEnroll, PtySession, Sandbox, Sshd, TestUser};

/// pam_mfa's prompt for a code.
const CODE_PROMPT: &str = "Verification code: ";
/// pam_mfa's prompt for the first code of a device enrolled at login.
const NEW_DEVICE_PROMPT: &str = "Verification code from the new app: ";
/// The ssh client's last words when the server refuses.
const DENIED: &str = "Permission denied (keyboard-interactive)";
/// What pam_mfa tells an unenrolled user under `deny`.
const DENY_MESSAGE: &str =
    "A second factor is required, but none is set up for this account. Ask an administrator.";

/// A host with pam_mfa in front of sshd: its sandbox, key, config and a
/// running server. The server stops before the sandbox goes.
struct Server {
    sshd: Sshd,
    sb: Sandbox,
}

impl Server {
    /// `AuthenticationMethods publickey,keyboard-interactive` from the
    /// shipped drop-in, with the shipped `pam.d/sshd`.
    fn key_and_code(policy: &str) -> Server {
        Server::start(policy, "sshd", "")
    }

    /// The shipped `pam.d/sshd.password-and-code`, with the drop-in's
    /// `AuthenticationMethods` changed to `keyboard-interactive`.
    fn password_and_code(policy: &str) -> Server {
        Server::start(
            policy,
            "sshd.password-and-code",
            "AuthenticationMethods keyboard-interactive\n",
        )
    }

    fn start(policy: &str, stack: &str, settings: &str) -> Server {
        // The server lives as long as the test; its commands' deadline
        // must cover a wait for the next TOTP step, and more.
        let sb = sandbox!().with_deadline(Duration::from_secs(600));
        sb.write_config(&format!("[policy]\nnot_configured = \"{policy}\"\n"));
        MfaEnroll::new(&sb).key_init();
        sb.install_shipped_stack("sshd", stack);
        let sshd = Sshd::start(&sb, settings);
        Server { sshd, sb }
    }

    fn mfa(&self) -> MfaEnroll<'_> {
        MfaEnroll::new(&self.sb)
    }

    /// A new account whose authorized key is the client's.
    fn user(&self, prefix: &str) -> TestUser {
        let user = TestUser::create(prefix);
        self.sshd.authorize(&user);
        user
    }

    /// The audit line pam_mfa must have sent for `user` over sshd.
    fn expect_event(&self, event: &str, user: &TestUser, more: &[(&str, &str)]) {
        let mut want = vec![
            ("user", user.name()),
            ("service", "sshd"),
            ("rhost", "127.0.0.1"),
        ];
        want.extend_from_slice(more);
        expect_event(self.sb.syslog(), event, &want);
    }

    fn count(&self, event: &str, user: &TestUser) -> usize {
        count_events(self.sb.syslog(), event, &[("user", user.name())])
    }
}

fn logged_in(user: &TestUser) -> String {
    format!("LOGGED-IN-{}", user.name())
}

/// Logs `user` in with the key and a code, and proves it.
fn log_in_with_code(server: &Server, user: &TestUser, code: &str) -> PtySession {
    let mut ssh = server.sshd.login(user).spawn();
    ssh.answer(CODE_PROMPT, code);
    ssh.expect(&logged_in(user));
    ssh.assert_exit(0);
    ssh
}

/// Answers the code prompt with `code` and expects the login to fail.
fn refused_with_code(server: &Server, user: &TestUser, code: &str) -> PtySession {
    let mut ssh = server.sshd.login(user).spawn();
    ssh.answer(CODE_PROMPT, code);
    ssh.expect(DENIED);
    ssh.assert_exit(255);
    ssh.assert_not_printed(&logged_in(user));
    ssh
}

/// The recovery codes printed after pam_mfa's "will not be shown again:".
fn recovery_codes_shown(text: &str) -> Vec<String> {
    let Some((_, after)) = text.split_once("they will not be shown again:") else {
        return Vec::new();
    };
    after
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| {
            l.contains('-')
                && l.chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase())
        })
        .map(str::to_owned)
        .collect()
}

/// The `secret` parameter of an `otpauth://` URI.
fn secret_of(uri: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .map(str::to_owned)
}

#[test]
fn key_and_code_log_in() {
    let server = Server::key_and_code("skip");
    let user = server.user("sshok");
    let enrolled = server.mfa().enroll(&user);
    let mut app = AuthenticatorApp::new(&enrolled.secret);

    let ssh = log_in_with_code(&server, &user, &app.next_code());
    ssh.assert_printed(&format!("({}@127.0.0.1) {CODE_PROMPT}", user.name()));

    server.expect_event(
        "auth_success",
        &user,
        &[("method", "totp"), ("device", "default")],
    );
    server.sshd.expect_log(&format!(
        "Partial publickey for {} from 127.0.0.1",
        user.name()
    ));
    server.sshd.expect_log(&format!(
        "Accepted keyboard-interactive/pam for {} from 127.0.0.1",
        user.name()
    ));
    let status = server.mfa().status(&user);
    assert_eq!(status["failures"], 0, "{status}");
    assert_eq!(status["last_success"]["service"], "sshd", "{status}");
    assert_eq!(status["last_success"]["rhost"], "127.0.0.1", "{status}");
}

#[test]
fn key_and_a_wrong_code_are_refused() {
    let server = Server::key_and_code("skip");
    let user = server.user("sshbad");
    let enrolled = server.mfa().enroll(&user);
    let app = AuthenticatorApp::new(&enrolled.secret);

    refused_with_code(&server, &user, &app.wrong_code());

    server.expect_event(
        "auth_failure",
        &user,
        &[("method", "totp"), ("reason", "wrong code")],
    );
    server.sshd.expect_log(&format!(
        "Failed keyboard-interactive/pam for {} from 127.0.0.1",
        user.name()
    ));
    assert_eq!(server.mfa().failures(&user), 1);
    assert_eq!(server.count("auth_success", &user), 0);
}

#[test]
fn key_and_a_replayed_code_are_refused() {
    let server = Server::key_and_code("skip");
    let user = server.user("sshreplay");
    let enrolled = server.mfa().enroll(&user);
    let mut app = AuthenticatorApp::new(&enrolled.secret);

    log_in_with_code(&server, &user, &app.next_code());
    server.expect_event("auth_success", &user, &[("method", "totp")]);

    // The same code again, as someone who watched it being typed would.
    refused_with_code(&server, &user, &app.last_code());
    server.expect_event(
        "auth_replay",
        &user,
        &[
            ("method", "totp"),
            ("device", "default"),
            ("reason", "code already used"),
        ],
    );
    assert_eq!(
        server.mfa().failures(&user),
        1,
        "a replay counts as a failure"
    );

    // The next code from the app still works, and clears the failure.
    log_in_with_code(&server, &user, &app.next_code());
    assert_eq!(server.count("auth_success", &user), 2);
    assert_eq!(server.mfa().failures(&user), 0);
}

#[test]
fn a_key_alone_is_not_enough() {
    let server = Server::key_and_code("skip");
    let user = server.user("sshkeyonly");
    server.mfa().enroll(&user);

    // A client that only offers its key never gets to keyboard-interactive.
    let mut ssh = server.sshd.login(&user).methods("publickey").spawn();
    ssh.expect(DENIED);
    ssh.assert_exit(255);
    ssh.assert_not_printed(&logged_in(&user));
    server.sshd.expect_log(&format!(
        "Partial publickey for {} from 127.0.0.1",
        user.name()
    ));
    assert!(
        pam_mfa_lines(server.sb.syslog()).is_empty(),
        "pam_mfa was never asked\n{ssh}"
    );
}

#[test]
fn password_and_code_log_in() {
    let server = Server::password_and_code("skip");
    let user = TestUser::create("sshpw");
    let enrolled = server.mfa().enroll(&user);
    let mut app = AuthenticatorApp::new(&enrolled.secret);

    let mut ssh = server
        .sshd
        .login(&user)
        .methods("keyboard-interactive")
        .spawn();
    ssh.answer("Password: ", user.password());
    ssh.answer(CODE_PROMPT, &app.next_code());
    ssh.expect(&logged_in(&user));
    ssh.assert_exit(0);

    server.expect_event("auth_success", &user, &[("method", "totp")]);
    server.sshd.expect_log(&format!(
        "Accepted keyboard-interactive/pam for {} from 127.0.0.1",
        user.name()
    ));
}

#[test]
fn a_wrong_password_never_reaches_the_code_prompt_or_enrollment() {
    // Under "configure" an unenrolled user would be shown a QR code: not
    // before the password is right.
    let server = Server::password_and_code("configure");
    let enrolled_user = TestUser::create("sshpwenr");
    server.mfa().enroll(&enrolled_user);
    let new_user = TestUser::create("sshpwnew");

    for user in [&enrolled_user, &new_user] {
        let mut ssh = server
            .sshd
            .login(user)
            .methods("keyboard-interactive")
            .spawn();
        ssh.answer("Password: ", "not the password");
        ssh.expect(DENIED);
        ssh.assert_exit(255);
        for never in ["Verification code", "second factor", "Secret: ", "URI: "] {
            ssh.assert_not_printed(never);
        }
        server.sshd.expect_log(&format!(
            "Failed keyboard-interactive/pam for {} from 127.0.0.1",
            user.name()
        ));
    }

    assert_eq!(server.mfa().failures(&enrolled_user), 0);
    assert!(!server.mfa().enrolled(&new_user), "nothing was enrolled");
    assert!(
        pam_mfa_lines(server.sb.syslog()).is_empty(),
        "pam_mfa was never asked: {:?}",
        pam_mfa_lines(server.sb.syslog())
    );
    server
        .sb
        .syslog()
        .wait_for(
            |l| {
                l.message
                    .starts_with("pam_unix(sshd:auth): authentication failure")
                    && l.message.ends_with(&format!("user={}", new_user.name()))
            },
            Duration::from_secs(10),
        )
        .expect("pam_unix refused the password");
}

#[test]
fn a_new_user_enrolls_in_the_login_prompt() {
    let server = Server::key_and_code("configure");
    let user = server.user("sshnew");

    let mut ssh = server.sshd.login(&user).spawn();
    let shown = ssh.expect(NEW_DEVICE_PROMPT);
    let uri = shown
        .lines()
        .find_map(|l| l.strip_prefix("URI: "))
        .map_or_else(
            || ssh.fail("no `URI: otpauth://...` line before the prompt"),
            str::to_owned,
        );
    let decoded = decode_utf8_qr(&shown)
        .unwrap_or_else(|e| ssh.fail(&format!("the QR code cannot be read: {e}")));
    ssh.check(
        decoded == uri,
        &format!("the QR code says {decoded:?}, the URI line {uri:?}"),
    );
    ssh.check(
        uri.starts_with("otpauth://totp/"),
        &format!("not a TOTP URI: {uri}"),
    );
    let secret = secret_of(&decoded).unwrap_or_else(|| ssh.fail("no secret in the URI"));
    let grouped = shown
        .lines()
        .find_map(|l| l.strip_prefix("Secret: "))
        .unwrap_or_default()
        .replace(' ', "");
    ssh.check(grouped == secret, "the `Secret:` line is the URI's secret");

    // The phone scanned the code; type what it shows.
    let mut app = AuthenticatorApp::new(&secret);
    ssh.send_line(&app.next_code());
    ssh.expect(&logged_in(&user));
    ssh.assert_exit(0);
    let codes = recovery_codes_shown(&ssh.output());
    ssh.check(codes.len() == 10, "ten recovery codes are shown");

    server.expect_event(
        "auth_success",
        &user,
        &[("method", "enrollment"), ("device", "default")],
    );
    server.expect_event(
        "device_enrolled",
        &user,
        &[("method", "enrollment"), ("device", "default")],
    );
    // OpenSSH runs pam_authenticate and pam_acct_mgmt in a child process:
    // the record must have reached the disk all the same.
    let status = server.mfa().status(&user);
    assert_eq!(status["enrolled"], true, "{status}");
    assert_eq!(status["recovery_codes_left"], 10, "{status}");
    assert_eq!(
        status["devices"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );

    // The next login asks for a code, and no QR code.
    let mut ssh = server.sshd.login(&user).spawn();
    let (which, _) = ssh
        .expect_any_within(&[CODE_PROMPT, NEW_DEVICE_PROMPT], Duration::from_secs(30))
        .unwrap_or_else(|| ssh.fail("no prompt"));
    ssh.check(which == 0, "the second login asks for a code");
    ssh.send_line(&app.next_code());
    ssh.expect(&logged_in(&user));
    ssh.assert_exit(0);
    ssh.assert_not_printed("URI: ");
    server.expect_event("auth_success", &user, &[("method", "totp")]);

    // And the recovery codes shown are real.
    let ssh = log_in_with_code(&server, &user, &codes[3]);
    ssh.assert_printed("Recovery code accepted. 9 recovery codes left.");
    server.expect_event("recovery_code_used", &user, &[("remaining", "9")]);
    assert_eq!(server.count("device_enrolled", &user), 1);
}

#[test]
fn skip_lets_an_unenrolled_user_in_with_the_key_alone() {
    let server = Server::key_and_code("skip");
    let user = server.user("sshskip");

    let mut ssh = server.sshd.login(&user).spawn();
    ssh.expect(&logged_in(&user));
    ssh.assert_exit(0);
    ssh.assert_not_printed("Verification code");
    server.expect_event(
        "auth_skipped",
        &user,
        &[("reason", "not enrolled; policy skip")],
    );
    assert!(!server.mfa().enrolled(&user));
}

#[test]
fn skip_lets_an_unenrolled_user_in_with_the_password_alone() {
    let server = Server::password_and_code("skip");
    let user = TestUser::create("sshpwskip");

    let mut ssh = server
        .sshd
        .login(&user)
        .methods("keyboard-interactive")
        .spawn();
    ssh.answer("Password: ", user.password());
    ssh.expect(&logged_in(&user));
    ssh.assert_exit(0);
    ssh.assert_not_printed("Verification code");
    server.expect_event(
        "auth_skipped",
        &user,
        &[("reason", "not enrolled; policy skip")],
    );
}

#[test]
fn deny_refuses_an_unenrolled_user_with_a_key() {
    let server = Server::key_and_code("deny");
    let user = server.user("sshdeny");

    let mut ssh = server.sshd.login(&user).spawn();
    // Asked like anyone (an unknown user looks the same), then told why.
    ssh.answer("Verification code: ", "123456");
    ssh.expect(DENY_MESSAGE);
    ssh.expect(DENIED);
    ssh.assert_exit(255);
    ssh.assert_not_printed(&logged_in(&user));
    server.expect_event(
        "auth_denied",
        &user,
        &[("reason", "not enrolled; policy deny")],
    );
    assert!(!server.mfa().enrolled(&user), "deny enrolls nobody");
}

#[test]
fn deny_refuses_an_unenrolled_user_with_the_right_password() {
    let server = Server::password_and_code("deny");
    let user = TestUser::create("sshpwdeny");

    let mut ssh = server
        .sshd
        .login(&user)
        .methods("keyboard-interactive")
        .spawn();
    ssh.answer("Password: ", user.password());
    ssh.answer("Verification code: ", "123456");
    ssh.expect(DENY_MESSAGE);
    ssh.expect(DENIED);
    ssh.assert_exit(255);
    ssh.assert_not_printed(&logged_in(&user));
    server.expect_event(
        "auth_denied",
        &user,
        &[("reason", "not enrolled; policy deny")],
    );
}

#[test]
fn a_recovery_code_logs_in_once() {
    let server = Server::key_and_code("skip");
    let user = server.user("sshrecov");
    let enrolled = server.mfa().enroll(&user);
    let code = &enrolled.recovery_codes[0];

    let ssh = log_in_with_code(&server, &user, code);
    ssh.assert_printed("Recovery code accepted. 9 recovery codes left.");
    server.expect_event("recovery_code_used", &user, &[("remaining", "9")]);
    server.expect_event("auth_success", &user, &[("method", "recovery")]);

    refused_with_code(&server, &user, code);
    server.expect_event(
        "auth_failure",
        &user,
        &[("method", "recovery"), ("reason", "wrong code")],
    );
    let status = server.mfa().status(&user);
    assert_eq!(status["recovery_codes_left"], 9, "{status}");
    assert_eq!(status["failures"], 1, "{status}");
    assert_eq!(server.count("recovery_code_used", &user), 1);
}

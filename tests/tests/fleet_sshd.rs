//! The real OpenSSH server and client on two hosts of a fleet whose records
//! are in `PostgreSQL`: a password and an oathtool code log in through sshd
//! on host A, and the same code is then refused through sshd on host B.
//! The hosts use the shipped `pam.d/sshd.password-and-code` and sshd
//! drop-in. Needs root, Debian's `postgresql` package, and the whole
//! workspace built (`mfa-enroll` sets the fleet up).

mod common;

use std::time::Duration;

use common::code_now;
use pam_mfa_e2e::audit::{count_events, expect_event};
use pam_mfa_e2e::fleet::Fleet;
use pam_mfa_e2e::{tools, MfaEnroll, PtySession, Sandbox, Sshd, TestUser};

/// pam_mfa's prompt for a code.
const CODE_PROMPT: &str = "Verification code: ";
/// The ssh client's last words when the server refuses.
const DENIED: &str = "Permission denied (keyboard-interactive)";

/// Starts sshd on `host` with the shipped password-and-code stack.
fn sshd(host: &Sandbox) -> Sshd {
    host.install_shipped_stack("sshd", "sshd.password-and-code");
    Sshd::start(host, "AuthenticationMethods keyboard-interactive\n")
}

/// Starts `ssh` to `sshd` as `user`, answering the password and `code`.
fn ssh_with_code(sshd: &Sshd, user: &TestUser, code: &str) -> PtySession {
    let mut ssh = sshd.login(user).methods("keyboard-interactive").spawn();
    ssh.answer("Password: ", user.password());
    ssh.answer(CODE_PROMPT, code);
    ssh
}

#[test]
fn a_code_used_through_sshd_on_one_host_is_refused_through_sshd_on_another() {
    // The servers live as long as the test.
    let fleet = Fleet::start(&tools!(), 2, "[policy]\nnot_configured = \"deny\"\n")
        .with_deadline(Duration::from_secs(300));
    let (a, b) = (fleet.host(0), fleet.host(1));
    let (sshd_a, sshd_b) = (sshd(a), sshd(b));
    let user = TestUser::create("flssh");
    let secret = MfaEnroll::new(a).enroll(&user).secret;
    let code = code_now(&secret);
    let logged_in = format!("LOGGED-IN-{}", user.name());
    let event = |sb: &Sandbox, event: &str| {
        expect_event(
            sb.syslog(),
            event,
            &[
                ("user", user.name()),
                ("service", "sshd"),
                ("rhost", "127.0.0.1"),
            ],
        );
    };

    let mut ssh = ssh_with_code(&sshd_a, &user, &code);
    ssh.expect(&logged_in);
    ssh.assert_exit(0);
    event(a, "auth_success");
    sshd_a.expect_log(&format!(
        "Accepted keyboard-interactive/pam for {} from 127.0.0.1",
        user.name()
    ));

    let mut ssh = ssh_with_code(&sshd_b, &user, &code);
    ssh.expect(DENIED);
    ssh.assert_exit(255);
    ssh.assert_not_printed(&logged_in);
    event(b, "auth_replay");
    for sb in [a, b] {
        assert_eq!(
            count_events(sb.syslog(), "store_failure", &[]),
            0,
            "the store worked on every host"
        );
    }
    assert_eq!(
        count_events(b.syslog(), "auth_success", &[]),
        0,
        "host B let no one in"
    );
}

//! The example stacks in config/pam.d (sudo, sshd, sshd.password-and-code)
//! with the host's Debian `common-*` files, and the administrator's path
//! end to end: `mfa-enroll key init`, `enroll --json`, `status`, then
//! pamtester. Needs root, and `cargo build --workspace` for mfa-enroll.

mod common;

use std::fs;
use std::path::Path;

use common::{
    code_next, code_now, enroll, expect_event, fast_sandbox, mfa_alone, mfa_enroll, policy,
    record_path, sandbox_with, status, wrong_code, CODE_PROMPT, FAST, NEW_DEVICE_PROMPT,
    PASSWORD_PROMPT,
};
use pam_mfa_e2e::{sandbox, Converse, Op, PamCode, Sandbox, Style, TestUser};
use serde_json::Value;

/// Installs `config/pam.d/<name>` of this repository as the sandbox's
/// service `<name>`, with `pam_mfa.so` replaced by the built module and the
/// sandbox's config, and the host's `common-*` files it includes.
fn install_example(sb: &Sandbox, name: &str) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/pam.d")
        .join(name);
    let text = fs::read_to_string(&example)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", example.display()));
    let module = format!(
        "{} config={}",
        sb.pam_mfa_module().display(),
        sb.config_path().display()
    );
    let mut stack = String::new();
    let mut replaced = 0;
    for line in text.lines() {
        let comment = line.trim_start().starts_with('#');
        if !comment && line.split_whitespace().any(|w| w == "pam_mfa.so") {
            stack.push_str(&line.replace("pam_mfa.so", &module));
            replaced += 1;
        } else {
            stack.push_str(line);
        }
        stack.push('\n');
        if let Some(include) = line.strip_prefix("@include ") {
            let include = include.trim();
            let host = Path::new("/etc/pam.d").join(include);
            let body = fs::read_to_string(&host)
                .unwrap_or_else(|e| panic!("{name} includes {}: {e}", host.display()));
            sb.service(include, &body);
        }
    }
    assert!(
        replaced >= 2,
        "{name} has an auth and an account line for pam_mfa"
    );
    sb.service(name, &stack);
}

// ---------------------------------------------------------------------------
// config/pam.d/sudo: common-auth (the password), then the code

#[test]
fn the_sudo_example_wants_the_password_then_the_code() {
    let sb = fast_sandbox();
    let user = TestUser::create("stksudo");
    let device = enroll(&sb, &user);
    install_example(&sb, "sudo");
    let t = sb.login("sudo", user.name(), user.password(), || {
        code_now(&device.secret)
    });
    t.assert_success()
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    expect_event(
        &t,
        "auth_success",
        &[("service", "sudo"), ("method", "totp")],
    );
}

#[test]
fn the_sudo_example_refuses_a_wrong_code() {
    let sb = fast_sandbox();
    let user = TestUser::create("stksudow");
    let device = enroll(&sb, &user);
    install_example(&sb, "sudo");
    let wrong = wrong_code(&device.secret);
    let t = sb.login("sudo", user.name(), user.password(), || wrong.clone());
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    expect_event(&t, "auth_failure", &[("service", "sudo")]);
}

#[test]
fn the_sudo_example_never_asks_for_the_code_after_a_wrong_password() {
    let sb = fast_sandbox();
    let user = TestUser::create("stksudop");
    let device = enroll(&sb, &user);
    install_example(&sb, "sudo");
    let t = sb.login("sudo", user.name(), "not the password", || {
        code_now(&device.secret)
    });
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[PASSWORD_PROMPT]);
    assert!(t.logs().iter().all(|l| l.tag != "pam_mfa"), "{t}");
}

#[test]
fn the_sudo_example_under_skip_lets_an_unenrolled_user_in_on_the_password() {
    let sb = fast_sandbox();
    let user = TestUser::create("stksudos");
    install_example(&sb, "sudo");
    let t = sb.login("sudo", user.name(), user.password(), String::new);
    t.assert_success().assert_prompts(&[PASSWORD_PROMPT]);
    expect_event(&t, "auth_skipped", &[("service", "sudo")]);
}

#[test]
fn the_sudo_example_under_configure_enrolls_and_commits_in_its_account_line() {
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("stksudoc");
    install_example(&sb, "sudo");
    let mut secret = None;
    let t = sb.converse(
        Converse::new("sudo", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_seeing(|seen, p| {
                if p.msg == PASSWORD_PROMPT {
                    return Some(user.password().to_owned());
                }
                secret = seen
                    .iter()
                    .filter(|m| m.style == Style::TextInfo)
                    .find_map(|m| m.msg.strip_prefix("Secret: "))
                    .map(|s| s.replace(' ', ""));
                secret.as_deref().map(code_now)
            }),
    );
    t.assert_success()
        .assert_prompts(&[PASSWORD_PROMPT, NEW_DEVICE_PROMPT]);
    expect_event(&t, "device_enrolled", &[("service", "sudo")]);
    assert!(status(&sb, user.uid()).enrolled);
    let secret = secret.expect("a secret was shown");
    let next = sb.login("sudo", user.name(), user.password(), || code_next(&secret));
    next.assert_success()
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
}

// ---------------------------------------------------------------------------
// config/pam.d/sshd: the SSH key was the first factor; only the code

#[test]
fn the_sshd_key_only_example_asks_only_for_the_code() {
    let sb = fast_sandbox();
    let user = TestUser::create("stksshd");
    let device = enroll(&sb, &user);
    install_example(&sb, "sshd");
    let t = sb.converse(
        Converse::new("sshd", user.name())
            .rhost("192.0.2.7")
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_success().assert_prompts(&[CODE_PROMPT]);
    expect_event(
        &t,
        "auth_success",
        &[
            ("service", "sshd"),
            ("rhost", "192.0.2.7"),
            ("method", "totp"),
        ],
    );
}

#[test]
fn the_sshd_key_only_example_refuses_a_wrong_code() {
    let sb = fast_sandbox();
    let user = TestUser::create("stksshdw");
    let device = enroll(&sb, &user);
    install_example(&sb, "sshd");
    let t = sb.converse(
        Converse::new("sshd", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer(&wrong_code(&device.secret)),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert_eq!(t.rc(Op::AcctMgmt), None, "{t}");
    expect_event(&t, "auth_failure", &[("service", "sshd")]);
}

#[test]
fn the_sshd_key_only_example_lets_an_unenrolled_user_in_under_skip() {
    let sb = fast_sandbox();
    let user = TestUser::create("stksshds");
    install_example(&sb, "sshd");
    let t = sb.converse(Converse::new("sshd", user.name()).ops(&[Op::Authenticate, Op::AcctMgmt]));
    // pam_mfa: PAM_IGNORE, so pam_permit decides.
    t.assert_success();
    assert!(t.messages().is_empty(), "{t}");
    expect_event(&t, "auth_skipped", &[("service", "sshd")]);
}

#[test]
fn the_sshd_key_only_example_refuses_an_unenrolled_user_under_deny() {
    let sb = sandbox_with(&policy("deny"));
    let user = TestUser::create("stksshdd");
    install_example(&sb, "sshd");
    let t = sb.converse(
        Converse::new("sshd", user.name())
            .answer("123456")
            .ops(&[Op::Authenticate]),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_denied", &[("service", "sshd")]);
}

#[test]
fn the_sshd_key_only_example_fails_closed_on_a_broken_config() {
    let sb = fast_sandbox();
    let user = TestUser::create("stksshdb");
    install_example(&sb, "sshd");
    sb.write_config("[policy]\nnot_configured = \"sometimes\"\n");
    let t = sb.converse(Converse::new("sshd", user.name()));
    // default=die: not PAM_IGNORE, so pam_permit is never reached.
    t.assert_rc(Op::Authenticate, PamCode::SERVICE_ERR);
}

// ---------------------------------------------------------------------------
// config/pam.d/sshd.password-and-code

#[test]
fn the_sshd_password_and_code_example_wants_both() {
    let sb = fast_sandbox();
    let user = TestUser::create("stkpwc");
    let device = enroll(&sb, &user);
    install_example(&sb, "sshd.password-and-code");
    let t = sb.login(
        "sshd.password-and-code",
        user.name(),
        user.password(),
        || code_now(&device.secret),
    );
    t.assert_success()
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    expect_event(&t, "auth_success", &[("method", "totp")]);
}

#[test]
fn the_sshd_password_and_code_example_refuses_a_wrong_code() {
    let sb = fast_sandbox();
    let user = TestUser::create("stkpwcw");
    let device = enroll(&sb, &user);
    install_example(&sb, "sshd.password-and-code");
    let wrong = wrong_code(&device.secret);
    let t = sb.login(
        "sshd.password-and-code",
        user.name(),
        user.password(),
        || wrong.clone(),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_failure", &[("user", user.name())]);
}

#[test]
fn the_sshd_password_and_code_example_never_asks_for_the_code_after_a_wrong_password() {
    let sb = fast_sandbox();
    let user = TestUser::create("stkpwcp");
    let device = enroll(&sb, &user);
    install_example(&sb, "sshd.password-and-code");
    let t = sb.login(
        "sshd.password-and-code",
        user.name(),
        "not the password",
        || code_now(&device.secret),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[PASSWORD_PROMPT]);
}

// ---------------------------------------------------------------------------
// The administrator's path, with the real mfa-enroll and pamtester

fn json(run: &pam_mfa_e2e::Run) -> Value {
    run.assert_success();
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{run}"))
}

#[test]
fn mfa_enroll_then_pamtester_logs_in_once_and_refuses_the_replay() {
    let sb = sandbox!();
    sb.write_config(FAST);
    let user = TestUser::create("stkpamt");

    let init = mfa_enroll(&sb, &["key", "init"]);
    init.assert_success();
    assert!(sb.key_file().is_file(), "{init}");
    assert!(sb.enroll_public_key().is_file(), "{init}");

    let enrolled = json(&mfa_enroll(
        &sb,
        &["enroll", "--user", user.name(), "--json"],
    ));
    assert_eq!(enrolled["user"], user.name());
    assert_eq!(enrolled["uid"], user.uid());
    assert_eq!(enrolled["device"], "default");
    let secret = enrolled["secret"].as_str().expect("a secret").to_owned();
    let uri = enrolled["otpauth_uri"].as_str().expect("a URI");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let recovery: Vec<String> = enrolled["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("a string").to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert!(enrolled["key_generation"].is_u64(), "{enrolled}");
    assert!(record_path(&sb, user.uid()).is_file());

    let before = json(&mfa_enroll(
        &sb,
        &["status", "--user", user.name(), "--json"],
    ));
    assert_eq!(before["enrolled"], true, "{before}");
    assert_eq!(before["recovery_codes_left"], 10, "{before}");
    assert_eq!(before["failures"], 0, "{before}");
    assert_eq!(
        before["devices"][0]["last_used_step"],
        Value::Null,
        "{before}"
    );

    mfa_alone(&sb, "sshd", "");
    let code = code_now(&secret);
    let first = sb.pamtester("sshd", user.name(), &["authenticate"], &[&code]);
    first.assert_success();
    assert!(
        first.stdout.contains("successfully authenticated"),
        "{first}"
    );
    sb.syslog()
        .wait_for(
            |l| l.tag == "pam_mfa" && l.message.starts_with("event=auth_success"),
            common::WAIT,
        )
        .expect("the success is logged");

    let replay = sb.pamtester("sshd", user.name(), &["authenticate"], &[&code]);
    replay.assert_failure();
    assert!(replay.stderr.contains("Authentication failure"), "{replay}");
    sb.syslog()
        .wait_for(
            |l| l.tag == "pam_mfa" && l.message.starts_with("event=auth_replay"),
            common::WAIT,
        )
        .expect("the replay is logged");

    let after = json(&mfa_enroll(
        &sb,
        &["status", "--user", user.name(), "--json"],
    ));
    assert_eq!(after["failures"], 1, "the replay counts\n{after}");
    assert!(after["devices"][0]["last_used_step"].is_u64(), "{after}");
    assert_eq!(after["last_success"]["service"], "sshd", "{after}");
    common::assert_logs_never_contain(&sb, &[secret, code]);
}

#[test]
fn pamtester_with_a_recovery_code_from_mfa_enroll() {
    let sb = sandbox!();
    sb.write_config(FAST);
    let user = TestUser::create("stkpamr");
    mfa_enroll(&sb, &["key", "init"]).assert_success();
    let enrolled = json(&mfa_enroll(
        &sb,
        &["enroll", "--user", user.name(), "--json"],
    ));
    let code = enrolled["recovery_codes"][0]
        .as_str()
        .expect("a recovery code")
        .to_owned();
    mfa_alone(&sb, "sudo", "");
    let run = sb.pamtester("sudo", user.name(), &["authenticate"], &[&code]);
    run.assert_success();
    assert!(run.stdout.contains("9 recovery codes left"), "{run}");
    let again = sb.pamtester("sudo", user.name(), &["authenticate"], &[&code]);
    again.assert_failure();
    let after = json(&mfa_enroll(
        &sb,
        &["status", "--user", user.name(), "--json"],
    ));
    assert_eq!(after["recovery_codes_left"], 9, "{after}");
}

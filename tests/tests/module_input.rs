//! Bad input at the pam_mfa prompt (SECURITY.md item 5) and hostile
//! `PAM_USER` values, through the real libpam; and `PAM_SILENT`.
//! Needs root.

mod common;

use std::fs;

use common::{
    code_now, enroll, expect_event, fast_sandbox, mfa_alone, sandbox_with, status, texts,
    CODE_PROMPT,
};
use pam_mfa_e2e::{Converse, Op, PamCode, Sandbox, Style, TestUser, Transcript};

// ---------------------------------------------------------------------------
// Responses that are not exactly six ASCII digits

/// Answers an enrolled user's prompt with `mangle(current code)`, which
/// must fail as a wrong code; then checks that the plain current code
/// still works (the mangled one did not use up its time step).
fn refused(prefix: &str, mangle: impl Fn(&str) -> String) {
    let sb = fast_sandbox();
    let user = TestUser::create(prefix);
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let code = code_now(&device.secret);
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&mangle(&code)));
    check_refused(&sb, &user, &t);
    sb.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

fn check_refused(sb: &Sandbox, user: &TestUser, t: &Transcript) {
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    expect_event(t, "auth_failure", &[("user", user.name())]);
    let s = status(sb, user.uid());
    assert_eq!(s.failures, 1, "counted as a wrong code\n{t}");
    assert_eq!(s.devices[0].last_used_step, None, "{t}");
}

#[test]
fn a_code_with_a_plus_sign_is_refused() {
    refused("inplus", |c| format!("+{c}"));
}

#[test]
fn a_code_with_a_leading_space_is_refused() {
    refused("inspace", |c| format!(" {c}"));
}

#[test]
fn a_code_with_a_trailing_space_is_refused() {
    refused("intrail", |c| format!("{c} "));
}

#[test]
fn a_code_with_a_trailing_newline_is_refused() {
    // The newline is part of the response the conversation returns.
    refused("innewline", |c| format!("{c}\n"));
}

#[test]
fn a_code_with_a_tab_is_refused() {
    refused("intab", |c| format!("{}\t{}", &c[..3], &c[3..]));
}

#[test]
fn a_hexadecimal_number_is_refused() {
    refused("inhex", |c| {
        let n: u32 = c.parse().unwrap();
        format!("0x{n:x}")
    });
    refused("inhex", |_| "0x1234".to_owned());
}

#[test]
fn fullwidth_digits_are_refused() {
    refused("infull", |c| {
        c.chars()
            .map(|d| char::from_u32(u32::from(d) - u32::from('0') + 0xFF10).unwrap())
            .collect()
    });
}

#[test]
fn arabic_indic_digits_are_refused() {
    refused("inarab", |c| {
        c.chars()
            .map(|d| char::from_u32(u32::from(d) - u32::from('0') + 0x0660).unwrap())
            .collect()
    });
}

#[test]
fn a_code_with_a_digit_missing_is_refused() {
    refused("inshort", |c| c[..5].to_owned());
}

#[test]
fn a_code_with_a_digit_too_many_is_refused() {
    refused("inlong", |c| format!("{c}0"));
    refused("inlong", |c| format!("0{c}"));
}

#[test]
fn an_empty_response_is_refused() {
    refused("inempty", |_| String::new());
}

#[test]
fn a_response_of_one_megabyte_is_refused() {
    let sb = fast_sandbox();
    let user = TestUser::create("inmega");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    // Too long for a command-line argument: sent on stdin. It starts with
    // the right code, in case a reader stops at six digits.
    let t = sb.converse(Converse::new("mfa", user.name()).answer_with(|_| {
        let mut big = code_now(&device.secret);
        big.push_str(&"7".repeat(1 << 20));
        Some(big)
    }));
    check_refused(&sb, &user, &t);
}

// ---------------------------------------------------------------------------
// Hostile PAM_USER values: the prompt, then failure

fn hostile_user(name: &str) {
    let sb = fast_sandbox();
    // A real, enrolled user, whose valid code is the answer given.
    let real = TestUser::create("inreal");
    let device = enroll(&sb, &real);
    mfa_alone(&sb, "mfa", "");
    common::ignore_falls_through(&sb, "keyonly");
    for service in ["mfa", "keyonly"] {
        let t = sb
            .converse(Converse::new(service, name).answer_with(|_| Some(code_now(&device.secret))));
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
            .assert_prompts(&[CODE_PROMPT]);
        let line = expect_event(&t, "auth_denied", &[("service", service)]);
        assert_eq!(
            line.get("user"),
            Some(name),
            "the name, escaped, not cut\n{t}"
        );
        assert_eq!(line.get("reason"), Some("unknown user"));
        for log in t.logs() {
            assert!(!log.raw.contains('\n'), "one line per event: {log}");
        }
    }
    let entries: Vec<_> = fs::read_dir(sb.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let uid = real.uid().to_string();
    assert!(
        entries
            .iter()
            .all(|e| *e == uid || *e == format!("{uid}.lock")),
        "nothing written for a name: {entries:?}"
    );
    assert!(!sb.root().join("x").exists());
    assert_eq!(status(&sb, real.uid()).devices[0].last_used_step, None);
}

#[test]
fn an_empty_user_name_is_prompted_then_refused() {
    hostile_user("");
}

#[test]
fn a_user_name_with_a_path_is_prompted_then_refused() {
    hostile_user("../x");
}

#[test]
fn a_user_name_of_300_characters_is_prompted_then_refused() {
    hostile_user(&"a".repeat(300));
}

#[test]
fn a_user_name_with_a_newline_is_prompted_then_refused() {
    hostile_user("root\nevent=auth_success user=root");
}

#[test]
fn a_real_user_name_with_a_trailing_newline_is_not_that_user() {
    let sb = fast_sandbox();
    let user = TestUser::create("innl");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let name = format!("{}\n", user.name());
    let t =
        sb.converse(Converse::new("mfa", &name).answer_with(|_| Some(code_now(&device.secret))));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_denied", &[("reason", "unknown user")]);
    assert_eq!(status(&sb, user.uid()).devices[0].last_used_step, None);
}

// ---------------------------------------------------------------------------
// PAM_SILENT

#[test]
fn silent_keeps_the_prompt_but_not_the_recovery_code_message() {
    let sb = fast_sandbox();
    let user = TestUser::create("insil");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .silent()
            .answer(&device.recovery_codes[0]),
    );
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
        .assert_prompts(&[CODE_PROMPT]);
    assert_eq!(t.messages().len(), 1, "only the prompt\n{t}");
    expect_event(&t, "recovery_code_used", &[("remaining", "9")]);
}

#[test]
fn silent_hides_the_deny_message() {
    let sb = sandbox_with(&common::policy("deny"));
    let user = TestUser::create("insild");
    mfa_alone(&sb, "mfa", "");
    // Prompted like anyone under deny (so unknown users look the same),
    // then denied without the message.
    let t = sb.converse(Converse::new("mfa", user.name()).answer("123456").silent());
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    t.assert_prompts(&["Verification code: "]);
    assert_eq!(t.messages().len(), 1, "only the prompt: {t}");
    expect_event(&t, "auth_denied", &[("user", user.name())]);
}

#[test]
fn silent_hides_the_back_off_message() {
    let sb = sandbox_with(
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 1\nbackoff_seconds = 3600\nbackoff_max_seconds = 3600\n",
    );
    let user = TestUser::create("insilb");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let wrong = common::wrong_code(&device.secret);
    let first = sb.converse(Converse::new("mfa", user.name()).silent().answer(&wrong));
    first
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    assert_eq!(first.messages().len(), 1, "{first}");
    let t = sb.converse(Converse::new("mfa", user.name()).silent().answer(&wrong));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert!(texts(&t, Style::ErrorMsg).is_empty(), "{t}");
    assert!(t.messages().is_empty(), "{t}");
    expect_event(&t, "auth_throttled", &[("user", user.name())]);
}

#[test]
fn silent_hides_the_lockout_message() {
    let sb = sandbox_with("[throttle]\nfail_delay_ms = 0\nlockout_after = 5\n");
    let user = TestUser::create("insill");
    enroll(&sb, &user);
    common::edit_record(&sb, user.uid(), |r| {
        r.failures = 5;
        r.last_failure = Some(1);
    });
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", user.name()).silent().answer("123456"));
    t.assert_rc(Op::Authenticate, PamCode::MAXTRIES);
    assert!(t.messages().is_empty(), "{t}");
}

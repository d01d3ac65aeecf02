//! Recovery codes at the pam_mfa prompt: single use, counted down, read
//! without regard to case and dashes, and sharing the failure counter with
//! TOTP codes. Needs root.

mod common;

use common::{
    assert_logs_never_contain, enroll, expect_event, fast_sandbox, mfa_alone, status, texts,
    CODE_PROMPT,
};
use pam_mfa_e2e::{Converse, Op, PamCode, Style, TestUser};

#[test]
fn a_recovery_code_works_once_and_the_user_is_told_how_many_are_left() {
    let sb = fast_sandbox();
    let user = TestUser::create("recone");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let code = &device.recovery_codes[3];
    let t = sb.converse(Converse::new("mfa", user.name()).answer(code));
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
        .assert_prompts(&[CODE_PROMPT]);
    assert_eq!(
        texts(&t, Style::TextInfo),
        ["Recovery code accepted. 9 recovery codes left."],
        "{t}"
    );
    let uid = user.uid().to_string();
    expect_event(
        &t,
        "recovery_code_used",
        &[("user", user.name()), ("uid", &uid), ("remaining", "9")],
    );
    expect_event(
        &t,
        "auth_success",
        &[("user", user.name()), ("method", "recovery")],
    );
    assert_eq!(status(&sb, user.uid()).recovery_codes_left, 9);

    let again = sb.converse(Converse::new("mfa", user.name()).answer(code));
    again.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert!(texts(&again, Style::TextInfo).is_empty(), "{again}");
    expect_event(
        &again,
        "auth_failure",
        &[("user", user.name()), ("method", "recovery")],
    );
    let s = status(&sb, user.uid());
    assert_eq!((s.recovery_codes_left, s.failures), (9, 1));
    assert_logs_never_contain(&sb, &device.recovery_codes);
}

#[test]
fn every_recovery_code_works_once_down_to_the_last() {
    let sb = fast_sandbox();
    let user = TestUser::create("recall");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    for (i, code) in device.recovery_codes.iter().enumerate() {
        let left = 9 - i;
        let t = sb.converse(Converse::new("mfa", user.name()).answer(code));
        t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
        let info = texts(&t, Style::TextInfo);
        let plural = if left == 1 { "" } else { "s" };
        let expected = format!("Recovery code accepted. {left} recovery code{plural} left.");
        assert!(
            info.len() == 1 && info[0].starts_with(&expected),
            "expected {expected:?}\n{t}"
        );
        assert_eq!(
            info[0].contains("Ask for new ones soon"),
            left <= 2,
            "the user is warned when few are left\n{t}"
        );
        let remaining = left.to_string();
        expect_event(&t, "recovery_code_used", &[("remaining", &remaining)]);
    }
    assert_eq!(status(&sb, user.uid()).recovery_codes_left, 0);
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&device.recovery_codes[0]));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
}

#[test]
fn recovery_codes_are_read_without_regard_to_case_and_dashes() {
    let sb = fast_sandbox();
    let user = TestUser::create("recnorm");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let upper = device.recovery_codes[0].to_uppercase();
    sb.converse(Converse::new("mfa", user.name()).answer(&upper))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    let bare = device.recovery_codes[1].replace('-', "");
    sb.converse(Converse::new("mfa", user.name()).answer(&bare))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    let spaced = device.recovery_codes[2].replace('-', " ");
    sb.converse(Converse::new("mfa", user.name()).answer(&spaced))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    assert_eq!(status(&sb, user.uid()).recovery_codes_left, 7);
}

#[test]
fn another_users_recovery_code_does_not_work() {
    let sb = fast_sandbox();
    let alice = TestUser::create("recalice");
    let bob = TestUser::create("recbob");
    enroll(&sb, &alice);
    let bobs = enroll(&sb, &bob);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", alice.name()).answer(&bobs.recovery_codes[0]));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_failure", &[("user", alice.name())]);
    assert_eq!(status(&sb, alice.uid()).recovery_codes_left, 10);
    assert_eq!(status(&sb, bob.uid()).recovery_codes_left, 10);
}

#[test]
fn a_wrong_recovery_code_counts_as_a_failure_like_a_wrong_totp_code() {
    let sb = fast_sandbox();
    let user = TestUser::create("recwrong");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    // Same shape, different characters.
    let wrong: String = device.recovery_codes[0]
        .chars()
        .map(|c| match c {
            '-' => '-',
            '0' => '1',
            _ => '0',
        })
        .collect();
    assert!(!device.recovery_codes.contains(&wrong));
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&wrong));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_failure", &[("method", "recovery")]);
    let s = status(&sb, user.uid());
    assert_eq!((s.failures, s.recovery_codes_left), (1, 10));
}

#[test]
fn a_recovery_code_is_refused_during_back_off() {
    let sb = common::sandbox_with(
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 1\nbackoff_seconds = 3600\nbackoff_max_seconds = 3600\n",
    );
    let user = TestUser::create("recback");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    sb.converse(Converse::new("mfa", user.name()).answer(&common::wrong_code(&device.secret)))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&device.recovery_codes[0]));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_throttled", &[("user", user.name())]);
    assert_eq!(
        status(&sb, user.uid()).recovery_codes_left,
        10,
        "the code is not used up by a refused attempt"
    );
}

//! Replay protection, the per-uid failure counter, back-off, lockout and
//! the failure delay, through the real libpam. Needs root.

mod common;

use std::thread;
use std::time::Duration;

use common::{
    code_next, code_now, enroll, expect_event, fast_sandbox, forget_last_step, mfa_alone,
    mfa_enroll, sandbox_with, sleep_until_unix, status, texts, wrong_code, CODE_PROMPT,
};
use pam_mfa_e2e::protocol::Event;
use pam_mfa_e2e::{Converse, Op, PamCode, Style, TestUser};

/// Settings under which nothing throttles: for tests of the counter itself.
const NO_BACKOFF: &str = "[throttle]\nfail_delay_ms = 0\nbackoff_after = 20\nlockout_after = 100\n";

// ---------------------------------------------------------------------------
// Replay

#[test]
fn the_same_code_twice_fails_the_second_time_as_a_replay() {
    let sb = fast_sandbox();
    let user = TestUser::create("thrrep");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let mut given = None;
    let first = sb.converse(Converse::new("mfa", user.name()).answer_with(|_| {
        given = Some(code_now(&device.secret));
        given.clone()
    }));
    first.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    let given = given.expect("a code was given");
    let second = sb.converse(Converse::new("mfa", user.name()).answer(&given));
    second
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    let line = expect_event(
        &second,
        "auth_replay",
        &[
            ("user", user.name()),
            ("method", "totp"),
            ("device", "phone"),
        ],
    );
    assert_eq!(line.get("reason"), Some("code already used"));
    common::assert_no_event(&second, "auth_success");
}

#[test]
fn an_older_code_after_a_newer_one_is_a_replay() {
    let sb = fast_sandbox();
    let user = TestUser::create("throld");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    sb.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_next(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    // The current step is inside the window but older than the one just used.
    let t = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_replay", &[("user", user.name())]);
}

#[test]
fn a_replayed_code_counts_as_a_failure() {
    let sb = sandbox_with(NO_BACKOFF);
    let user = TestUser::create("thrrepf");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let code = code_now(&device.secret);
    sb.converse(Converse::new("mfa", user.name()).answer(&code))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    assert_eq!(status(&sb, user.uid()).failures, 0);
    for n in 1..=2 {
        let t = sb.converse(Converse::new("mfa", user.name()).answer(&code));
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
        expect_event(&t, "auth_replay", &[("user", user.name())]);
        assert_eq!(status(&sb, user.uid()).failures, n, "{t}");
    }
}

#[test]
fn of_two_parallel_logins_with_the_same_fresh_code_exactly_one_succeeds() {
    let sb = sandbox_with(NO_BACKOFF);
    let user = TestUser::create("thrrace");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    for round in 0..20 {
        // A fresh code for this round: the step used by the last round is
        // forgotten instead of waiting 30 s for the next one.
        forget_last_step(&sb, user.uid());
        let code = code_now(&device.secret);
        let t = sb.converse(Converse::new("mfa", user.name()).answer(&code).threads(2));
        let mut codes = t.codes(Op::Authenticate);
        codes.sort_by_key(|c| c.0);
        assert_eq!(
            codes,
            [PamCode::SUCCESS, PamCode::AUTH_ERR],
            "round {round}: exactly one of two wins\n{t}"
        );
        expect_event(&t, "auth_success", &[("user", user.name())]);
        expect_event(&t, "auth_replay", &[("user", user.name())]);
    }
}

// ---------------------------------------------------------------------------
// One counter per uid, across services

#[test]
fn failures_on_sudo_count_for_sshd() {
    let sb = sandbox_with(
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 2\nbackoff_seconds = 3600\nbackoff_max_seconds = 3600\n",
    );
    let user = TestUser::create("thrsvc");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "sudo", "");
    mfa_alone(&sb, "sshd", "");
    let wrong = wrong_code(&device.secret);
    for n in 1..=2 {
        let t = sb.converse(Converse::new("sudo", user.name()).answer(&wrong));
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
        expect_event(&t, "auth_failure", &[("service", "sudo")]);
        assert_eq!(status(&sb, user.uid()).failures, n);
    }
    let t = sb.converse(
        Converse::new("sshd", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(
        &t,
        "auth_throttled",
        &[("user", user.name()), ("service", "sshd")],
    );
}

#[test]
fn a_success_resets_the_counter_for_every_service() {
    let sb = sandbox_with(NO_BACKOFF);
    let user = TestUser::create("thrreset");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "sudo", "");
    mfa_alone(&sb, "sshd", "");
    let wrong = wrong_code(&device.secret);
    sb.converse(Converse::new("sudo", user.name()).answer(&wrong))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    sb.converse(Converse::new("sudo", user.name()).answer(&wrong))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert_eq!(status(&sb, user.uid()).failures, 2);
    sb.converse(Converse::new("sshd", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    let s = status(&sb, user.uid());
    assert_eq!((s.failures, s.last_failure), (0, None));
}

#[test]
fn back_off_refuses_even_the_right_code_and_says_how_long() {
    let sb = sandbox_with(
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 1\nbackoff_seconds = 600\nbackoff_max_seconds = 900\n",
    );
    let user = TestUser::create("thrback");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    sb.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let t = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert!(t.prompts().is_empty(), "not even asked\n{t}");
    let errors = texts(&t, Style::ErrorMsg);
    let seconds: u64 = errors
        .first()
        .and_then(|e| e.strip_prefix("Too many failed attempts: try again in "))
        .and_then(|e| e.strip_suffix(" seconds."))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the wait is stated\n{t}"));
    assert!((590..=600).contains(&seconds), "{t}");
    let line = expect_event(&t, "auth_throttled", &[("user", user.name())]);
    assert_eq!(line.get("reason"), Some("back-off in force"));
    assert_eq!(
        status(&sb, user.uid()).failures,
        1,
        "a refusal is not a failure"
    );
}

#[test]
fn back_off_ends_after_its_delay() {
    let sb = sandbox_with(
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 1\nbackoff_seconds = 1\nbackoff_max_seconds = 1\n",
    );
    let user = TestUser::create("thrbend");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    sb.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let last = status(&sb, user.uid())
        .last_failure
        .expect("a failure time");
    sleep_until_unix(last + 1);
    let t = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

// ---------------------------------------------------------------------------
// Lockout

/// Back-off of one second after the second failure, lockout at the third.
const QUICK_LOCKOUT: &str = "[throttle]\nfail_delay_ms = 0\nbackoff_after = 2\nbackoff_seconds = 1\nbackoff_max_seconds = 1\nlockout_after = 3\n";

/// Fails `user` up to the cap with wrong codes, waiting out the back-off.
fn fail_until_locked(sb: &pam_mfa_e2e::Sandbox, user: &TestUser, secret: &str) {
    let wrong = wrong_code(secret);
    for n in 1..=3 {
        if n == 3 {
            let last = status(sb, user.uid()).last_failure.expect("a failure time");
            sleep_until_unix(last + 1);
        }
        let t = sb.converse(Converse::new("mfa", user.name()).answer(&wrong));
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
            .assert_prompts(&[CODE_PROMPT]);
        assert_eq!(status(sb, user.uid()).failures, n, "{t}");
    }
    assert!(status(sb, user.uid()).locked);
}

#[test]
fn reaching_the_cap_locks_the_user_with_maxtries_whatever_the_code() {
    let sb = sandbox_with(QUICK_LOCKOUT);
    let user = TestUser::create("thrlock");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    fail_until_locked(&sb, &user, &device.secret);
    // Longer than any back-off: waiting does not lift the cap.
    thread::sleep(Duration::from_millis(2100));
    let t = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::MAXTRIES);
    assert!(t.prompts().is_empty(), "{t}");
    expect_event(&t, "auth_locked", &[("user", user.name())]);
    assert_eq!(
        status(&sb, user.uid()).failures,
        3,
        "a refusal is not a failure"
    );
}

#[test]
fn mfa_enroll_unlock_lifts_the_lockout() {
    let sb = sandbox_with(QUICK_LOCKOUT);
    let user = TestUser::create("thrunlk");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    fail_until_locked(&sb, &user, &device.secret);
    let run = mfa_enroll(&sb, &["unlock", "--user", user.name()]);
    run.assert_success();
    assert!(run.stdout.contains("was locked out"), "{run}");
    sb.syslog()
        .wait_for(
            |l| l.tag == "mfa-enroll" && l.message.starts_with("event=user_unlocked"),
            common::WAIT,
        )
        .expect("the unlock is audited");
    let s = status(&sb, user.uid());
    assert!(!s.locked && s.failures == 0);
    let t = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

#[test]
fn the_admin_unlock_of_mfa_core_lifts_the_lockout() {
    let sb = sandbox_with(QUICK_LOCKOUT);
    let user = TestUser::create("thrunlc");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    fail_until_locked(&sb, &user, &device.secret);
    {
        let config = common::config(&sb);
        let keys = common::keys(&sb);
        let store = common::store(&sb);
        let mut state = store.open_user(user.uid(), &keys).unwrap();
        let unlocked = mfa_core::admin::unlock(&mut state, &config, &keys).unwrap();
        assert!(unlocked.was_locked);
        assert_eq!(unlocked.cleared, 3);
    }
    sb.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

#[test]
fn no_conversation_never_counts_as_a_failure() {
    let sb = sandbox_with(QUICK_LOCKOUT);
    let user = TestUser::create("thrnoconv");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    for _ in 0..5 {
        let t = sb.converse(Converse::new("mfa", user.name()).no_conv());
        t.assert_rc(Op::Authenticate, PamCode::CONV_ERR);
        expect_event(&t, "auth_no_conversation", &[("user", user.name())]);
    }
    let s = status(&sb, user.uid());
    assert_eq!((s.failures, s.locked), (0, false));
    sb.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

#[test]
fn parallel_wrong_codes_are_each_counted_exactly_once() {
    let sb = sandbox_with(NO_BACKOFF);
    let user = TestUser::create("thrpar");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let wrong = wrong_code(&device.secret);
    // As many as may be evaluated before back-off starts (20 at most).
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&wrong).threads(20));
    assert_eq!(t.codes(Op::Authenticate), [PamCode::AUTH_ERR; 20], "{t}");
    expect_event(&t, "auth_failure", &[("user", user.name())]);
    assert_eq!(status(&sb, user.uid()).failures, 20, "no update lost\n{t}");
    let evaluated = common::audit_lines(&t)
        .iter()
        .filter(|a| a.event == "auth_failure")
        .count();
    assert_eq!(evaluated, 20, "{t}");
}

#[test]
fn a_hundred_parallel_wrong_codes_are_evaluated_only_up_to_the_back_off() {
    let sb = sandbox_with(
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 5\nbackoff_seconds = 3600\nbackoff_max_seconds = 3600\n",
    );
    let user = TestUser::create("thrpar");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let wrong = wrong_code(&device.secret);
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .answer(&wrong)
            .threads(25)
            .repeat(4),
    );
    assert_eq!(t.codes(Op::Authenticate), [PamCode::AUTH_ERR; 100], "{t}");
    expect_event(&t, "auth_throttled", &[("user", user.name())]);
    assert_eq!(status(&sb, user.uid()).failures, 5, "{t}");
    let lines = common::audit_lines(&t);
    let count = |event: &str| lines.iter().filter(|a| a.event == event).count();
    assert_eq!(
        (count("auth_failure"), count("auth_throttled")),
        (5, 95),
        "{t}"
    );
}

// ---------------------------------------------------------------------------
// The failure delay

#[test]
fn a_failure_asks_libpam_for_the_configured_delay() {
    let sb = sandbox_with("[throttle]\nfail_delay_ms = 1500\n");
    let user = TestUser::create("thrdelay");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let delays: Vec<u64> = t
        .other_events()
        .iter()
        .filter_map(|e| match e {
            Event::FailDelay { usec, rc: 7 } => Some(*usec),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 1, "{t}");
    // libpam randomises the delay around what was asked for.
    assert!(
        (750_000..=2_250_000).contains(&delays[0]),
        "about 1.5 s requested\n{t}"
    );
    let ok = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    ok.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    // libpam hands an application's delay function every outcome; the
    // application waits only for a failure, and there is none here.
    assert!(
        ok.other_events()
            .iter()
            .all(|e| matches!(e, Event::FailDelay { rc: 0, .. })),
        "no delay after a success\n{ok}"
    );
}

#[test]
fn without_a_configured_delay_none_is_asked_for() {
    let sb = fast_sandbox();
    let user = TestUser::create("thrnodel");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert!(
        !t.other_events()
            .iter()
            .any(|e| matches!(e, Event::FailDelay { .. })),
        "{t}"
    );
}

#[test]
fn the_fail_delay_module_argument_overrides_the_config() {
    let sb = fast_sandbox();
    let user = TestUser::create("thrdelarg");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "fail_delay_ms=3000");
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let delay = t.other_events().iter().find_map(|e| match e {
        Event::FailDelay { usec, .. } => Some(*usec),
        _ => None,
    });
    assert!(
        delay.is_some_and(|d| (1_500_000..=4_500_000).contains(&d)),
        "about 3 s requested\n{t}"
    );
}

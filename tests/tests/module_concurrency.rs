//! Many logins at once through the real module: the failure counter under
//! parallel guesses at the cap, and many threads with separate PAM handles
//! in one process. Needs root.
//!
//! Already covered elsewhere, and not repeated here: two logins racing
//! with the same fresh code, 20 rounds, exactly one wins
//! (`module_throttling.rs`,
//! `of_two_parallel_logins_with_the_same_fresh_code_exactly_one_succeeds`);
//! 20 parallel wrong codes counted exactly once each, and 100 parallel
//! ones evaluated only up to the back-off (same file).
//!
//! Valgrind's race detectors were tried on the threaded runs and are no
//! gate here: they cannot see Rust's futex-based locks and atomics, and
//! report only those (docs/hardening.md).

mod common;

use common::{
    audit_lines, code_now, edit_record, enroll, forget_last_step, mfa_alone, sandbox_with, status,
    wrong_code,
};
use pam_mfa_e2e::{Converse, Op, PamCode, TestUser, Transcript};

/// The cap at its maximum (100), with a back-off long enough that nothing
/// throttled during a run is evaluated later in it.
const CAP_100: &str = "[throttle]\nfail_delay_ms = 0\nbackoff_after = 20\nbackoff_seconds = 3600\nbackoff_max_seconds = 3600\nlockout_after = 100\n";

fn count(t: &Transcript, event: &str) -> usize {
    audit_lines(t).iter().filter(|a| a.event == event).count()
}

/// Waits until the run's audit lines have all arrived (one per transaction).
fn settle(t: &Transcript, transactions: usize) {
    let decided = [
        "auth_success",
        "auth_failure",
        "auth_replay",
        "auth_throttled",
        "auth_locked",
    ];
    let deadline = std::time::Instant::now() + common::WAIT;
    while std::time::Instant::now() < deadline {
        let n: usize = decided.iter().map(|e| count(t, e)).sum();
        if n >= transactions {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("not every transaction was logged\n{t}");
}

#[test]
fn a_hundred_parallel_wrong_guesses_count_exactly_up_to_the_back_off() {
    // backoff_after is at most 20 and back-off at least a second, so no
    // configuration lets 100 parallel guesses all be evaluated: exactly the
    // free ones are, the rest are refused unevaluated and not counted.
    let sb = sandbox_with(CAP_100);
    let user = TestUser::create("ccfree");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .answer(&wrong_code(&device.secret))
            .threads(100),
    );
    assert_eq!(t.codes(Op::Authenticate), [PamCode::AUTH_ERR; 100], "{t}");
    settle(&t, 100);
    assert_eq!(
        (count(&t, "auth_failure"), count(&t, "auth_throttled")),
        (20, 80),
        "{t}"
    );
    let s = status(&sb, user.uid());
    assert_eq!((s.failures, s.locked), (20, false), "{t}");
}

#[test]
fn at_the_cap_a_hundred_and_ten_parallel_guesses_evaluate_exactly_one() {
    let sb = sandbox_with(CAP_100);
    let user = TestUser::create("cccap");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    // 99 failures long ago: the back-off has passed, one more locks.
    edit_record(&sb, user.uid(), |r| {
        r.failures = 99;
        r.last_failure = Some(1_000_000);
    });
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .answer(&wrong_code(&device.secret))
            .threads(22)
            .repeat(5),
    );
    let mut codes = t.codes(Op::Authenticate);
    assert_eq!(codes.len(), 110, "{t}");
    codes.sort_by_key(|c| c.0);
    codes.dedup();
    assert_eq!(codes, [PamCode::AUTH_ERR, PamCode::MAXTRIES], "{t}");
    let refused = t
        .codes(Op::Authenticate)
        .iter()
        .filter(|c| **c == PamCode::MAXTRIES)
        .count();
    assert_eq!(refused, 109, "{t}");
    settle(&t, 110);
    assert_eq!(
        (count(&t, "auth_failure"), count(&t, "auth_locked")),
        (1, 109),
        "{t}"
    );
    let s = status(&sb, user.uid());
    assert_eq!((s.failures, s.locked), (100, true), "exactly the cap\n{t}");
}

#[test]
fn eight_threads_of_twenty_logins_with_one_code_grant_it_exactly_once() {
    let sb = sandbox_with(CAP_100);
    let user = TestUser::create("ccthreads");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    forget_last_step(&sb, user.uid());
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .answer(&code_now(&device.secret))
            .threads(8)
            .repeat(20),
    );
    let codes = t.codes(Op::Authenticate);
    assert_eq!(codes.len(), 160, "every transaction reported\n{t}");
    let granted = codes.iter().filter(|c| **c == PamCode::SUCCESS).count();
    let refused = codes.iter().filter(|c| **c == PamCode::AUTH_ERR).count();
    assert_eq!((granted, refused), (1, 159), "{t}");
    settle(&t, 160);
    // The first evaluation wins; each later one is a replay until the
    // back-off closes the gate, and the counter matches the log.
    assert_eq!(
        (
            count(&t, "auth_success"),
            count(&t, "auth_replay"),
            count(&t, "auth_throttled")
        ),
        (1, 20, 139),
        "{t}"
    );
    let s = status(&sb, user.uid());
    assert_eq!(s.failures, 20, "{t}");
    assert!(s.last_success.is_some());
}

//! What an unknown user, an unenrolled user and an enrolled user with a
//! wrong or a right code can tell apart (SECURITY 18).
//!
//! The tests compare behaviour only: prompts, messages and return codes.
//! Speed is measured, never asserted: `make timing` runs the ignored
//! `measure_the_failure_paths`, which prints medians for each path, through
//! pam-converse and in-process through `mfa_core::flow`; the figures and the
//! bound they support are in docs/hardening.md. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::{
    code_now, edit_record, enroll, forget_last_step, mfa_alone, policy, sandbox_with, texts,
    wrong_code, CODE_PROMPT,
};
use mfa_core::clock::SystemClock;
use mfa_core::flow::{self, Account, ConversationFailed, Directory, Host, Prompter, Request};
use mfa_core::fsutil::FileTrust;
use pam_mfa_e2e::protocol::Event;
use pam_mfa_e2e::{Converse, Op, PamCode, Sandbox, Style, TestUser, Transcript};
use zeroize::Zeroizing;

/// What a person at the prompt sees of a failed login: the prompts, the
/// other messages, and what `pam_authenticate` returned.
fn seen(t: &Transcript) -> (Vec<String>, Vec<String>, Vec<String>, Option<PamCode>) {
    (
        t.prompts(),
        texts(t, Style::TextInfo),
        texts(t, Style::ErrorMsg),
        t.rc(Op::Authenticate),
    )
}

fn unknown_name() -> String {
    format!("nosuch{}", std::process::id())
}

#[test]
fn an_unknown_user_looks_like_an_enrolled_user_with_a_wrong_code() {
    // Under deny an unknown user hears the deny message, as an unenrolled
    // one does (next test); under the other policies nothing at all.
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("tmwrong");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let wrong = wrong_code(&device.secret);
    let unknown = sb.converse(Converse::new("mfa", &unknown_name()).answer(&wrong));
    let enrolled = sb.converse(Converse::new("mfa", user.name()).answer(&wrong));
    assert_eq!(seen(&unknown), seen(&enrolled), "{unknown}\n{enrolled}");
    assert_eq!(
        seen(&unknown),
        (
            vec![CODE_PROMPT.to_owned()],
            vec![],
            vec![],
            Some(PamCode::AUTH_ERR)
        )
    );
}

/// SECURITY 18: unknown and unenrolled users see the same prompt. Under
/// `deny` an unenrolled user is told at once that no second factor is set
/// up (no prompt, an error message), while an unknown user is prompted:
/// whoever reaches pam_mfa can tell which accounts exist.
#[test]
fn an_unknown_user_looks_like_an_unenrolled_user_under_deny() {
    let sb = sandbox_with(&policy("deny"));
    let user = TestUser::create("tmunenr");
    mfa_alone(&sb, "mfa", "");
    let unknown = sb.converse(Converse::new("mfa", &unknown_name()).answer("123456"));
    let unenrolled = sb.converse(Converse::new("mfa", user.name()).answer("123456"));
    assert_eq!(
        unknown.rc(Op::Authenticate),
        unenrolled.rc(Op::Authenticate),
        "{unknown}\n{unenrolled}"
    );
    assert_eq!(seen(&unknown), seen(&unenrolled), "{unknown}\n{unenrolled}");
}

#[test]
fn every_failure_path_asks_libpam_for_the_same_delay() {
    let sb =
        sandbox_with("[policy]\nnot_configured = \"deny\"\n[throttle]\nfail_delay_ms = 1000\n");
    let enrolled = TestUser::create("tmdelaye");
    let unenrolled = TestUser::create("tmdelayu");
    let device = enroll(&sb, &enrolled);
    mfa_alone(&sb, "mfa", "");
    let wrong = wrong_code(&device.secret);
    let runs = [
        sb.converse(Converse::new("mfa", &unknown_name()).answer(&wrong)),
        sb.converse(Converse::new("mfa", unenrolled.name()).answer(&wrong)),
        sb.converse(Converse::new("mfa", enrolled.name()).answer(&wrong)),
    ];
    for t in &runs {
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
        let delays: Vec<u64> = t
            .other_events()
            .iter()
            .filter_map(|e| match e {
                Event::FailDelay { usec, .. } => Some(*usec),
                _ => None,
            })
            .collect();
        // libpam randomises the delay around the 1 s asked for.
        assert!(
            delays.len() == 1 && (500_000..=1_500_000).contains(&delays[0]),
            "{t}"
        );
    }
}

// ---------------------------------------------------------------------------
// Measurement (make timing)

/// Medians and spread of a sample, in microseconds.
fn summary(mut samples: Vec<Duration>) -> (u128, u128, u128) {
    samples.sort();
    let at = |q: usize| samples[(samples.len() - 1) * q / 100].as_micros();
    (at(10), at(50), at(90))
}

struct Answer(Vec<u8>);

impl Prompter for Answer {
    fn prompt(&mut self, _: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed> {
        Ok(Zeroizing::new(self.0.clone()))
    }
    fn info(&mut self, _: &str) -> Result<(), ConversationFailed> {
        Ok(())
    }
    fn error(&mut self, _: &str) -> Result<(), ConversationFailed> {
        Ok(())
    }
}

/// Two accounts, as the name service would answer.
struct Accounts {
    enrolled: (String, u32),
    unenrolled: (String, u32),
}

impl Directory for Accounts {
    fn account(&self, user: &str) -> Result<Option<Account>, String> {
        Ok([&self.enrolled, &self.unenrolled]
            .into_iter()
            .find(|(name, _)| name == user)
            .map(|(_, uid)| Account {
                uid: *uid,
                gid: *uid,
            }))
    }
    fn groups(&self, _: &str, _: Account) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

const CASES: [&str; 4] = [
    "unknown user",
    "unenrolled user (deny)",
    "enrolled, wrong code",
    "enrolled, right code",
];

/// Puts the enrolled user back as before a login: no failures, the
/// current code unused.
fn reset(sb: &Sandbox, uid: u32) {
    edit_record(sb, uid, |r| {
        r.failures = 0;
        r.last_failure = None;
    });
    forget_last_step(sb, uid);
}

#[test]
#[ignore = "measurement, not a test: make timing"]
fn measure_the_failure_paths() {
    let runs: usize = std::env::var("TIMING_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let sb = sandbox_with(
        "[policy]\nnot_configured = \"deny\"\n[throttle]\nfail_delay_ms = 0\nbackoff_after = 20\nlockout_after = 100\n",
    );
    let enrolled = TestUser::create("tmmeasure");
    let unenrolled = TestUser::create("tmmeasureu");
    let device = enroll(&sb, &enrolled);
    mfa_alone(&sb, "mfa", "");
    let unknown = unknown_name();
    let users = [
        unknown.as_str(),
        unenrolled.name(),
        enrolled.name(),
        enrolled.name(),
    ];

    // Through libpam: a whole pam-converse process per login, cases
    // interleaved so that drift in the machine hits them alike.
    let mut e2e: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    for _ in 0..runs {
        for (case, user) in users.iter().enumerate() {
            reset(&sb, enrolled.uid());
            let answer = if case == 3 {
                code_now(&device.secret)
            } else {
                wrong_code(&device.secret)
            };
            let start = Instant::now();
            let t = sb.converse(Converse::new("mfa", user).answer(&answer));
            e2e[case].push(start.elapsed());
            let want = if case == 3 {
                PamCode::SUCCESS
            } else {
                PamCode::AUTH_ERR
            };
            t.assert_rc(Op::Authenticate, want);
        }
    }

    // In-process: the decision alone, as pam_mfa makes it, with the real
    // store, key and clock.
    let config = common::config(&sb);
    let host = Host::open(config, FileTrust::ROOT, "timing").expect("host");
    let accounts = Accounts {
        enrolled: (enrolled.name().to_owned(), enrolled.uid()),
        unenrolled: (unenrolled.name().to_owned(), unenrolled.uid()),
    };
    let mut core: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    for _ in 0..runs {
        for (case, user) in users.iter().enumerate() {
            reset(&sb, enrolled.uid());
            let mut answer = Answer(
                if case == 3 {
                    code_now(&device.secret)
                } else {
                    wrong_code(&device.secret)
                }
                .into_bytes(),
            );
            let req = Request {
                user,
                service: "mfa",
                rhost: None,
                tty: None,
                silent: false,
            };
            let start = Instant::now();
            let report = flow::authenticate(&host, req, Some(&mut answer), &accounts, &SystemClock);
            core[case].push(start.elapsed());
            assert_eq!(
                matches!(report.outcome, flow::Outcome::Success),
                case == 3,
                "{:?}",
                report.outcome
            );
        }
    }

    println!("\n{runs} runs per path, fail_delay_ms = 0, debug build of the workspace\n");
    println!(
        "| path | pam-converse p10 / median / p90 (us) | mfa_core::flow p10 / median / p90 (us) |"
    );
    println!("|---|---|---|");
    for (case, name) in CASES.iter().enumerate() {
        let (a10, a50, a90) = summary(e2e[case].clone());
        let (b10, b50, b90) = summary(core[case].clone());
        println!("| {name} | {a10} / {a50} / {a90} | {b10} / {b50} / {b90} |");
    }
    println!("\n{}", libpam_delay_spread(&sb, &unknown, runs));
}

/// What libpam makes of the default failure delay (2 s), as pam-converse
/// records it (not slept), over `runs` failures.
fn libpam_delay_spread(sb: &Sandbox, user: &str, runs: usize) -> String {
    sb.write_config(
        "[policy]\nnot_configured = \"deny\"\n[throttle]\nfail_delay_ms = 2000\nbackoff_after = 20\nlockout_after = 100\n",
    );
    let mut delays: Vec<u32> = Vec::new();
    for _ in 0..runs {
        let t = sb.converse(Converse::new("mfa", user).answer("123456"));
        delays.extend(t.other_events().iter().filter_map(|e| match e {
            Event::FailDelay { usec, .. } => u32::try_from(*usec).ok(),
            _ => None,
        }));
    }
    delays.sort_unstable();
    let n = f64::from(u32::try_from(delays.len()).expect("a few hundred"));
    let mean = delays.iter().copied().map(f64::from).sum::<f64>() / n;
    let sd = (delays
        .iter()
        .map(|d| (f64::from(*d) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let at = |q: usize| delays[(delays.len() - 1) * q / 100];
    format!(
        "libpam's delay for fail_delay_ms = 2000 over {} failures (us): min {}, p10 {}, median {}, p90 {}, max {}, standard deviation {sd:.0}",
        delays.len(),
        at(0),
        at(10),
        at(50),
        at(90),
        at(100),
    )
}

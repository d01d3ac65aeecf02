//! A fleet of hosts sharing one enrollment in `PostgreSQL`, through the real
//! libpam and the real `pam_mfa.so`: one server, N sandboxes with their own
//! config, state directories and connection file, the same master key.
//! A code used on one host is used on all; failures add up across hosts;
//! a store that fails refuses the login within its deadline; a failover to
//! a synchronous standby brings no used code back. Codes come from
//! oathtool. Needs root and Debian's `postgresql` package.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    code_next, code_now, expect_event, ignore_falls_through, mfa_alone, sleep_until_unix,
    wrong_code, AuditLine, CODE_PROMPT, PASSWORD_PROMPT,
};
use mfa_core::admin::{self, UserStatus};
use mfa_core::record::Record;
use mfa_core::store::postgres::{Client, Settings};
use mfa_core::store::{Owner, Store};
use pam_mfa_e2e::fleet::{Fleet, HOST_PASSWORD};
use pam_mfa_e2e::postgres::BlackHole;
use pam_mfa_e2e::{
    tools, unix_now, Converse, MfaEnroll, Op, PamCode, Sandbox, TestUser, Transcript,
};

/// No failure delay, so that refusals do not slow the tests down.
const FAST: &str = "[throttle]\nfail_delay_ms = 0\n";

/// The deadline of the administrator's own client (enrolling, reading a
/// user's status): generous, it is not under test.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A fleet of `hosts` with `settings`, set up with `mfa-enroll` on host 0
/// (`key init`, `store init`): host 0's role may enroll, the others' may
/// read and update only.
fn fleet(hosts: usize, settings: &str) -> Fleet {
    Fleet::start(&tools!(), hosts, settings)
}

fn admin_client(fleet: &Fleet) -> Client {
    Client::new(
        Settings::parse(&fleet.owner_conninfo(), ADMIN_TIMEOUT)
            .expect("the harness's connection string parses"),
    )
}

/// The records as the administrator reaches them (the database owner).
fn admin_store(fleet: &Fleet) -> Store {
    Store::postgres(
        admin_client(fleet),
        fleet.host(0).state_dir(),
        "fleet-admin",
    )
}

/// Enrolls `user` with `mfa-enroll enroll --user NAME` on host 0, the
/// administrator's; returns the base32 secret.
fn enroll(fleet: &Fleet, user: &TestUser) -> String {
    MfaEnroll::new(fleet.host(0)).enroll(user).secret
}

/// The user's state in the shared store, as `mfa-enroll status` reports it.
fn status(fleet: &Fleet, user: &TestUser) -> UserStatus {
    let store = admin_store(fleet);
    let keys = common::keys(fleet.host(0));
    let state = store
        .open_user(Owner::new(user.uid(), user.name()), &keys)
        .expect("open the user's row");
    admin::status(&state, &common::config(fleet.host(0)), unix_now())
}

/// Changes the user's record in the shared store.
fn edit_record(fleet: &Fleet, user: &TestUser, change: impl FnOnce(&mut Record)) {
    let store = admin_store(fleet);
    let keys = common::keys(fleet.host(0));
    let mut state = store
        .open_user(Owner::new(user.uid(), user.name()), &keys)
        .expect("open the user's row");
    let mut record = state.record().expect("the user is enrolled").clone();
    change(&mut record);
    state.commit(&record, &keys).expect("commit");
}

/// Forgets the time step last used, so that the current code is fresh.
fn forget_last_step(fleet: &Fleet, user: &TestUser) {
    edit_record(fleet, user, |r| {
        for d in &mut r.devices {
            d.last_used_step = None;
        }
    });
}

/// pam_mfa alone as `mfa` on every host.
fn mfa_alone_everywhere(fleet: &Fleet) {
    for host in fleet.hosts() {
        mfa_alone(host, "mfa", "");
    }
}

/// A login of `user` with `code` on `sb`'s `mfa` service.
fn login(sb: &Sandbox, user: &TestUser, code: &str) -> Transcript {
    sb.converse(Converse::new("mfa", user.name()).answer(code))
}

/// Fails if any pam_mfa line of the run is a store failure.
fn assert_store_worked(t: &Transcript) {
    assert!(
        common::audit_lines(t)
            .iter()
            .all(|a| a.event != "store_failure"),
        "the store failed\n{t}"
    );
}

/// The files a host keeps in its own state directory: with the records in
/// PostgreSQL, none.
fn local_records(sb: &Sandbox) -> Vec<String> {
    fs::read_dir(sb.state_dir())
        .expect("the state directory exists")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ---------------------------------------------------------------------------
// One enrollment, every host

#[test]
fn enrolled_on_one_host_logs_in_on_another() {
    let fleet = fleet(2, FAST);
    mfa_alone_everywhere(&fleet);
    let user = TestUser::create("flone");
    let secret = enroll(&fleet, &user);
    let (a, b) = (fleet.host(0), fleet.host(1));

    let started = Instant::now();
    let t = login(b, &user, &code_now(&secret));
    let took = started.elapsed();
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
        .assert_prompts(&[CODE_PROMPT]);
    expect_event(
        &t,
        "auth_success",
        &[("user", user.name()), ("method", "totp")],
    );
    eprintln!(
        "login on host B against PostgreSQL, the whole pam-converse run: {} ms",
        ms(took)
    );

    // The record lives in the database, not on either host.
    assert_eq!(local_records(a), Vec::<String>::new());
    assert_eq!(local_records(b), Vec::<String>::new());
    let s = status(&fleet, &user);
    assert!(s.enrolled);
    assert!(
        s.devices.iter().all(|d| d.last_used_step.is_some()),
        "host B's login was written to the shared row: {s:?}"
    );
}

#[test]
fn a_code_used_on_one_host_is_a_replay_on_another() {
    let fleet = fleet(2, FAST);
    mfa_alone_everywhere(&fleet);
    let user = TestUser::create("flrep");
    let secret = enroll(&fleet, &user);
    let code = code_now(&secret);

    login(fleet.host(1), &user, &code).assert_rc(Op::Authenticate, PamCode::SUCCESS);
    let t = login(fleet.host(0), &user, &code);
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    let line = expect_event(
        &t,
        "auth_replay",
        &[("user", user.name()), ("method", "totp")],
    );
    assert_eq!(line.get("reason"), Some("code already used"));
    common::assert_no_event(&t, "auth_success");
    assert_store_worked(&t);
}

/// Lets `n` threads through only together, or after `wait` if one never
/// comes (a login that failed before its prompt must not hang the test;
/// the round's assertions then fail it).
struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
    n: usize,
    wait: Duration,
}

impl Rendezvous {
    fn new(n: usize, wait: Duration) -> Rendezvous {
        Rendezvous {
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
            n,
            wait,
        }
    }

    fn arrive(&self) {
        let mut arrived = self.arrived.lock().expect("no panic while held");
        *arrived += 1;
        self.all_here.notify_all();
        let deadline = Instant::now() + self.wait;
        while *arrived < self.n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            arrived = self
                .all_here
                .wait_timeout(arrived, left)
                .expect("no panic while held")
                .0;
        }
    }
}

#[test]
fn the_same_fresh_code_on_two_hosts_at_once_has_exactly_one_winner() {
    let fleet = fleet(
        2,
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 20\nlockout_after = 100\n",
    );
    mfa_alone_everywhere(&fleet);
    let user = TestUser::create("flrace");
    let secret = enroll(&fleet, &user);
    for round in 0..20 {
        // A fresh code each round: the step the last round used is
        // forgotten instead of waiting for the next one.
        forget_last_step(&fleet, &user);
        let code = code_now(&secret);
        // Both logins have read the row (before their prompt) when either
        // answers: both decide on the same version, both try to commit,
        // and the compare-and-set lets one through.
        let together = Rendezvous::new(2, Duration::from_secs(20));
        let transcripts: Vec<Transcript> = thread::scope(|s| {
            let runs: Vec<_> = fleet
                .hosts()
                .iter()
                .map(|host| {
                    let (together, code, user) = (&together, &code, &user);
                    s.spawn(move || {
                        host.converse(Converse::new("mfa", user.name()).answer_with(|_| {
                            together.arrive();
                            Some(code.clone())
                        }))
                    })
                })
                .collect();
            runs.into_iter()
                .map(|r| r.join().expect("the login thread"))
                .collect()
        });
        let both = format!("{}\n{}", transcripts[0], transcripts[1]);
        let mut codes: Vec<PamCode> = transcripts
            .iter()
            .flat_map(|t| t.codes(Op::Authenticate))
            .collect();
        codes.sort_by_key(|c| c.0);
        assert_eq!(
            codes,
            [PamCode::SUCCESS, PamCode::AUTH_ERR],
            "round {round}: exactly one of two hosts wins\n{both}"
        );
        for t in &transcripts {
            t.assert_prompts(&[CODE_PROMPT]);
            assert_store_worked(t);
            if t.rc(Op::Authenticate) == Some(PamCode::SUCCESS) {
                expect_event(t, "auth_success", &[("user", user.name())]);
            } else {
                let line = expect_event(t, "auth_replay", &[("user", user.name())]);
                assert_eq!(line.get("reason"), Some("code already used"), "{both}");
            }
        }
    }
    // Each round's success reset the counter and its loser's replay
    // counted after it: what is left is the last round's one failure.
    assert_eq!(status(&fleet, &user).failures, 1);
}

// ---------------------------------------------------------------------------
// One failure counter for the fleet

/// Back-off of one second after the second failure, lockout at the third.
const QUICK_LOCKOUT: &str = "[throttle]\nfail_delay_ms = 0\nbackoff_after = 2\nbackoff_seconds = 1\nbackoff_max_seconds = 1\nlockout_after = 3\n";

#[test]
fn wrong_codes_on_two_hosts_add_up_to_one_lockout() {
    let fleet = fleet(2, QUICK_LOCKOUT);
    mfa_alone_everywhere(&fleet);
    let user = TestUser::create("fllock");
    let secret = enroll(&fleet, &user);
    let (a, b) = (fleet.host(0), fleet.host(1));
    let wrong = wrong_code(&secret);

    for n in 1..=2 {
        let t = login(a, &user, &wrong);
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
            .assert_prompts(&[CODE_PROMPT]);
        expect_event(&t, "auth_failure", &[("user", user.name())]);
        assert_eq!(status(&fleet, &user).failures, n, "{t}");
    }
    // Past the back-off the two failures on A started, so that B evaluates
    // the third wrong code instead of refusing it unread.
    let last = status(&fleet, &user).last_failure.expect("a failure time");
    sleep_until_unix(last + 1);
    let t = login(b, &user, &wrong);
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    expect_event(&t, "auth_failure", &[("user", user.name())]);
    let s = status(&fleet, &user);
    assert_eq!((s.failures, s.locked), (3, true), "{t}");

    // Longer than any back-off: only the cap can refuse now.
    thread::sleep(Duration::from_millis(1100));
    let t = login(a, &user, &code_now(&secret));
    t.assert_rc(Op::Authenticate, PamCode::MAXTRIES);
    assert!(t.prompts().is_empty(), "not even asked\n{t}");
    expect_event(&t, "auth_locked", &[("user", user.name())]);
}

/// Logins at once on each host in the parallel test.
const THREADS: u32 = 8;

/// Waits until each of `t`'s `transactions` has its audit line, then
/// returns the run's pam_mfa lines.
fn settled(t: &Transcript, transactions: usize) -> Vec<AuditLine> {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let lines = common::audit_lines(t);
        if lines.len() >= transactions {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "not every transaction was logged\n{t}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn parallel_wrong_codes_on_two_hosts_are_each_counted_or_refused_never_lost() {
    // Room for every guess below the back-off: each is evaluated.
    let fleet = fleet(
        2,
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 20\nlockout_after = 100\n",
    );
    mfa_alone_everywhere(&fleet);
    let user = TestUser::create("flpar");
    let secret = enroll(&fleet, &user);
    let wrong = wrong_code(&secret);
    let transcripts: Vec<Transcript> = thread::scope(|s| {
        let runs: Vec<_> = fleet
            .hosts()
            .iter()
            .map(|host| {
                let (wrong, user) = (&wrong, &user);
                s.spawn(move || {
                    host.converse(
                        Converse::new("mfa", user.name())
                            .answer(wrong)
                            .threads(THREADS),
                    )
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("the login thread"))
            .collect()
    });
    let mut counted = 0;
    for t in &transcripts {
        let lines = settled(t, THREADS as usize);
        let failures = lines.iter().filter(|a| a.event == "auth_failure").count();
        let contended: Vec<&AuditLine> = lines
            .iter()
            .filter(|a| a.event == "store_failure")
            .collect();
        assert_eq!(failures + contended.len(), lines.len(), "{t}");
        // A guess whose failure could not be written within the attempts
        // is refused like an unreachable store, never let through.
        for line in &contended {
            let reason = line.get("reason").unwrap_or_default();
            assert!(reason.contains("attempts to commit"), "{line:?}\n{t}");
        }
        let mut codes = t.codes(Op::Authenticate);
        codes.sort_by_key(|c| c.0);
        let mut want = vec![PamCode::AUTH_ERR; failures];
        want.extend(vec![PamCode::AUTHINFO_UNAVAIL; contended.len()]);
        assert_eq!(codes, want, "{t}");
        counted += failures;
    }
    eprintln!(
        "{} parallel wrong codes on two hosts: {counted} counted, the rest refused as contended",
        2 * THREADS
    );
    assert_eq!(
        status(&fleet, &user).failures,
        u32::try_from(counted).expect("a small number"),
        "every failure logged is in the row: no update was lost"
    );
}

// ---------------------------------------------------------------------------
// A store that fails refuses, within its deadline

/// `store.timeout_ms` in the failure tests.
const TIMEOUT_MS: u32 = 1000;
/// `throttle.fail_delay_ms` in the failure tests, slept for real.
const FAIL_DELAY_MS: u32 = 500;
/// What a refusal may take beyond the deadline and the delay: starting
/// the namespace and pam-converse, loading the module, a busy machine.
const MARGIN: Duration = Duration::from_secs(2);

fn failing_settings(policy: &str) -> String {
    format!(
        "[policy]\nnot_configured = \"{policy}\"\n\n[throttle]\nfail_delay_ms = {FAIL_DELAY_MS}\n"
    )
}

/// Host B, configured with the failure tests' deadline and delay, tries
/// `user` with `code`: the login must be refused with
/// `PAM_AUTHINFO_UNAVAIL` and a `store_failure` line, before the deadline
/// plus the delay plus [`MARGIN`]. Returns the line and the time taken.
fn refused_by_the_store(
    fleet: &Fleet,
    stack: &str,
    user: &TestUser,
    code: &str,
) -> (AuditLine, Duration) {
    let b = fleet.host(1);
    let started = Instant::now();
    let t = b.converse(
        Converse::new(stack, user.name())
            .answer(code)
            .real_fail_delay(),
    );
    let took = started.elapsed();
    t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
    let line = expect_event(&t, "store_failure", &[("user", user.name())]);
    for event in [
        "auth_success",
        "auth_skipped",
        "auth_failure",
        "auth_replay",
    ] {
        common::assert_no_event(&t, event);
    }
    let limit = Duration::from_millis(u64::from(TIMEOUT_MS + FAIL_DELAY_MS)) + MARGIN;
    assert!(
        took < limit,
        "refused after {} ms, more than the deadline and the delay allow ({} ms)\n{t}",
        ms(took),
        ms(limit)
    );
    (line, took)
}

/// A fleet of two whose host B has the failure tests' settings, an
/// enrolled user, and `mfa` on B as pam_mfa alone.
fn failure_fleet(prefix: &str) -> (Fleet, TestUser, String) {
    let fleet = fleet(2, FAST);
    fleet.configure(1, &failing_settings("deny"), TIMEOUT_MS);
    mfa_alone_everywhere(&fleet);
    let user = TestUser::create(prefix);
    let secret = enroll(&fleet, &user);
    (fleet, user, secret)
}

#[test]
fn a_stopped_server_refuses_the_login_within_the_deadline() {
    let (fleet, user, secret) = failure_fleet("flstop");
    fleet.primary().stop();
    let (line, took) = refused_by_the_store(&fleet, "mfa", &user, &code_now(&secret));
    eprintln!("server stopped: refused after {} ms ({line:?})", ms(took));
}

#[test]
fn a_server_that_never_answers_refuses_the_login_at_the_deadline() {
    let (fleet, user, secret) = failure_fleet("flhole");
    let hole = BlackHole::start();
    let conninfo = fleet.conninfo(1).replacen(
        &format!("port={} ", fleet.primary().port()),
        &format!("port={} ", hole.port()),
        1,
    );
    assert!(
        conninfo.contains(&format!("port={} ", hole.port())),
        "{conninfo}"
    );
    fleet.write_connection(1, &conninfo);
    let (line, took) = refused_by_the_store(&fleet, "mfa", &user, &code_now(&secret));
    eprintln!(
        "server never answers: refused after {} ms ({line:?})",
        ms(took)
    );
    // It did wait for the server: the refusal is the deadline's.
    assert!(
        took >= Duration::from_millis(u64::from(TIMEOUT_MS)),
        "refused after {} ms, before the deadline of {TIMEOUT_MS} ms",
        ms(took)
    );
}

#[test]
fn a_wrong_database_password_refuses_the_login() {
    let (fleet, user, secret) = failure_fleet("flpass");
    let conninfo = fleet.conninfo(1).replace(HOST_PASSWORD, "not-the-password");
    fleet.write_connection(1, &conninfo);
    let (line, took) = refused_by_the_store(&fleet, "mfa", &user, &code_now(&secret));
    eprintln!("wrong password: refused after {} ms ({line:?})", ms(took));
    let reason = line.get("reason").unwrap_or_default();
    assert!(
        !reason.contains("not-the-password"),
        "the audit line shows the password: {reason}"
    );
}

#[test]
fn a_server_certificate_from_another_ca_refuses_the_login() {
    let (fleet, user, secret) = failure_fleet("flcert");
    let pg = fleet.primary();
    let (ca, other) = (path_text(pg.ca_file()), path_text(&pg.other_ca_file()));
    let conninfo = fleet.conninfo(1).replace(&ca, &other);
    assert!(conninfo.contains(&other), "{conninfo}");
    fleet.write_connection(1, &conninfo);
    let (line, took) = refused_by_the_store(&fleet, "mfa", &user, &code_now(&secret));
    eprintln!(
        "certificate from another CA: refused after {} ms ({line:?})",
        ms(took)
    );
}

#[test]
fn an_unsafe_or_missing_connection_file_refuses_the_login_with_a_store_failure_line() {
    let (fleet, user, secret) = failure_fleet("flconn");
    let file = fleet.connection_file(1);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644))
        .expect("chmod the connection file");
    let (line, took) = refused_by_the_store(&fleet, "mfa", &user, &code_now(&secret));
    eprintln!(
        "connection file mode 0644: refused after {} ms ({line:?})",
        ms(took)
    );
    fs::remove_file(&file).expect("remove the connection file");
    let (line, took) = refused_by_the_store(&fleet, "mfa", &user, &code_now(&secret));
    eprintln!(
        "connection file missing: refused after {} ms ({line:?})",
        ms(took)
    );
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}

#[test]
fn under_skip_a_user_the_store_cannot_read_is_not_let_through() {
    let fleet = fleet(2, FAST);
    fleet.configure(1, &failing_settings("skip"), TIMEOUT_MS);
    // PAM_IGNORE would fall through to pam_permit: the sshd key-only
    // pattern, where "not enrolled" means "in".
    ignore_falls_through(fleet.host(1), "sshd");
    let enrolled = TestUser::create("flskipe");
    let secret = enroll(&fleet, &enrolled);
    let unenrolled = TestUser::create("flskipn");
    // With the store up, the unenrolled user is skipped, as configured.
    let t = fleet
        .host(1)
        .converse(Converse::new("sshd", unenrolled.name()));
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    expect_event(&t, "auth_skipped", &[("user", unenrolled.name())]);

    fleet.primary().stop();
    let (line, took) = refused_by_the_store(&fleet, "sshd", &unenrolled, "000000");
    eprintln!(
        "skip, store down, unenrolled user: refused after {} ms ({line:?})",
        ms(took)
    );
    let (_, took) = refused_by_the_store(&fleet, "sshd", &enrolled, &code_now(&secret));
    eprintln!(
        "skip, store down, enrolled user: refused after {} ms",
        ms(took)
    );
}

#[test]
fn a_server_that_stops_while_the_user_types_refuses_the_login_and_uses_no_code() {
    let (fleet, user, secret) = failure_fleet("flmid");
    let code = code_now(&secret);
    let b = fleet.host(1);
    // The row was read before the prompt; the server goes before the
    // answer, so the update that would use the code cannot be made.
    let t = b.converse(Converse::new("mfa", user.name()).answer_with(|_| {
        fleet.primary().stop();
        Some(code.clone())
    }));
    t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL)
        .assert_prompts(&[CODE_PROMPT]);
    expect_event(&t, "store_failure", &[("user", user.name())]);
    for event in ["auth_success", "auth_failure", "auth_replay"] {
        common::assert_no_event(&t, event);
    }

    fleet.primary().start_again();
    let s = status(&fleet, &user);
    assert_eq!(s.failures, 0, "nothing was counted");
    assert!(
        s.devices.iter().all(|d| d.last_used_step.is_none()),
        "no code was used: {s:?}"
    );
    let t = login(b, &user, &code);
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    expect_event(&t, "auth_success", &[("user", user.name())]);
}

// ---------------------------------------------------------------------------
// Failover

#[test]
fn after_a_failover_to_the_synchronous_standby_a_used_code_stays_used() {
    let mut fleet = fleet(2, FAST);
    fleet.add_standby("fleet_standby");
    mfa_alone_everywhere(&fleet);
    let user = TestUser::create("flfail");
    let secret = enroll(&fleet, &user);
    let code = code_now(&secret);

    let t = login(fleet.host(0), &user, &code);
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    expect_event(&t, "auth_success", &[("user", user.name())]);

    fleet.primary().stop();
    // Between the primary's end and the promotion only a read-only server
    // is up, which target_session_attrs=read-write refuses: no login.
    let t = login(fleet.host(1), &user, &code_next(&secret));
    t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
    expect_event(&t, "store_failure", &[("user", user.name())]);
    fleet.standby().expect("the standby was added").promote();

    let t = login(fleet.host(1), &user, &code);
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let line = expect_event(&t, "auth_replay", &[("user", user.name())]);
    assert_eq!(line.get("reason"), Some("code already used"));
    assert_store_worked(&t);

    let t = fleet
        .host(1)
        .converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_next(&secret))));
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    expect_event(&t, "auth_success", &[("user", user.name())]);
}

// ---------------------------------------------------------------------------
// The application keeps no thread of pam_mfa's

/// How many threads the running `pam-converse` logging `user` in has, from
/// `/proc/<pid>/task`. The process is found by its command line, which
/// names the user (unique to the test).
fn converse_threads(user: &str) -> usize {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc is mounted").flatten() {
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_converse = args.first().is_some_and(|a| a.ends_with(b"pam-converse"));
        let for_user = args
            .windows(2)
            .any(|w| w[0] == b"--user" && w[1] == user.as_bytes());
        if is_converse && for_user {
            found.push(entry.path());
        }
    }
    assert_eq!(found.len(), 1, "one pam-converse for {user}: {found:?}");
    fs::read_dir(found[0].join("task"))
        .expect("the process is alive at its prompt")
        .count()
}

#[test]
fn no_thread_of_the_store_outlives_pam_authenticate() {
    let fleet = fleet(1, FAST);
    let host = fleet.host(0);
    let user = TestUser::create("flthr");
    let secret = enroll(&fleet, &user);
    // Two transactions in one process, each pam_unix then pam_mfa: the
    // first password prompt comes before pam_mfa ever ran, the code prompt
    // while its connection is open, and the second password prompt after
    // the first pam_authenticate returned and its handle ended.
    host.service(
        "mfa",
        &format!(
            "auth requisite pam_unix.so nodelay\n{}",
            host.pam_mfa_line("auth required", "")
        ),
    );
    let mut counts = Vec::new();
    let mut codes = vec![code_next(&secret), code_now(&secret)];
    let t = host.converse(
        Converse::new("mfa", user.name())
            .repeat(2)
            .answer_with(|p| {
                counts.push((p.msg.clone(), converse_threads(user.name())));
                if p.msg == PASSWORD_PROMPT {
                    Some(user.password().to_owned())
                } else {
                    // The newer step last: each code is fresh when given.
                    codes.pop()
                }
            }),
    );
    assert_eq!(
        t.codes(Op::Authenticate),
        [PamCode::SUCCESS, PamCode::SUCCESS],
        "{t}"
    );
    t.assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT, PASSWORD_PROMPT, CODE_PROMPT]);
    assert_store_worked(&t);
    eprintln!("threads of pam-converse at each prompt: {counts:?}");
    let before = counts[0].1;
    assert!(
        counts.iter().all(|(_, n)| *n == before),
        "the store's client starts no thread and leaves none behind: {counts:?}\n{t}"
    );
}

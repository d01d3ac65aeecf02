//! The login flow with a scripted conversation, a fake name service and a
//! fixed clock: every policy and path, without PAM.

mod common;

use std::cell::Cell;
use std::collections::VecDeque;

use common::{trust, Fixture, SECRET};
use mfa_core::audit::EventKind;
use mfa_core::clock::FixedClock;
use mfa_core::config::{Config, NotConfigured};
use mfa_core::flow::{
    self, Account, ConversationFailed, Directory, Host, Outcome, Prompter, Report, Request,
    CODE_PROMPT,
};
use mfa_core::keys::MasterKey;
use mfa_core::pending::{Pending, Proof};
use mfa_core::record::Record;
use mfa_core::recovery::KdfParams;
use mfa_core::totp::{base32_decode, code_at_step, time_step, TotpParams};
use zeroize::Zeroizing;

const UID: u32 = 1000;
const NOW: u64 = 1_764_150_000;

#[derive(Default)]
struct Script {
    answers: VecDeque<Option<Vec<u8>>>,
    transcript: Vec<String>,
}

impl Script {
    fn answering(answers: &[&[u8]]) -> Self {
        Script {
            answers: answers.iter().map(|a| Some(a.to_vec())).collect(),
            transcript: Vec::new(),
        }
    }
    fn prompts(&self) -> usize {
        self.transcript
            .iter()
            .filter(|l| l.starts_with("prompt:"))
            .count()
    }
    fn infos(&self) -> Vec<&str> {
        self.transcript
            .iter()
            .filter_map(|l| l.strip_prefix("info:"))
            .collect()
    }
}

impl Prompter for Script {
    fn prompt(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed> {
        self.transcript.push(format!("prompt:{prompt}"));
        self.answers
            .pop_front()
            .flatten()
            .map(Zeroizing::new)
            .ok_or(ConversationFailed)
    }
    fn info(&mut self, text: &str) -> Result<(), ConversationFailed> {
        self.transcript.push(format!("info:{text}"));
        Ok(())
    }
    fn error(&mut self, text: &str) -> Result<(), ConversationFailed> {
        self.transcript.push(format!("error:{text}"));
        Ok(())
    }
}

struct Users {
    groups: Vec<String>,
    group_lookups: Cell<u32>,
}

impl Users {
    fn new(groups: &[&str]) -> Self {
        Users {
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            group_lookups: Cell::new(0),
        }
    }
}

impl Directory for Users {
    fn account(&self, user: &str) -> Result<Option<Account>, String> {
        Ok(match user {
            "alice" => Some(Account { uid: UID, gid: UID }),
            "broken" => return Err("LDAP unreachable".into()),
            _ => None,
        })
    }
    fn groups(&self, _user: &str, _account: Account) -> Result<Vec<String>, String> {
        self.group_lookups.set(self.group_lookups.get() + 1);
        Ok(self.groups.clone())
    }
}

struct World {
    fixture: Fixture,
    host: Host,
}

impl World {
    fn new(edit: impl FnOnce(&mut Config)) -> Self {
        let fixture = Fixture::new();
        let mut config = Config::default();
        config.paths.state_dir = fixture.root().join("users");
        config.paths.key_file = fixture.root().join("master.key");
        config.paths.spool_dir = fixture.root().join("spool");
        edit(&mut config);
        let host = Host::open(config, trust(), "testhost").unwrap();
        World { fixture, host }
    }

    fn enrolled(edit: impl FnOnce(&mut Config)) -> Self {
        let w = Self::new(edit);
        w.fixture.enroll(UID);
        w
    }

    fn record(&self) -> Option<Record> {
        let store = self.fixture.store();
        let user = store.open_user(UID, &self.fixture.keys).unwrap();
        user.record().cloned()
    }

    fn save(&self, record: &Record) {
        let store = self.fixture.store();
        let mut user = store.open_user(UID, &self.fixture.keys).unwrap();
        user.rewrite(record, &self.fixture.keys).unwrap();
    }

    fn login(&self, user: &str, script: &mut Script, now: u64) -> (Outcome, Vec<EventKind>) {
        self.login_with(user, "sshd", Some(script), &Users::new(&[]), now, false)
    }

    fn login_with(
        &self,
        user: &str,
        service: &str,
        script: Option<&mut Script>,
        users: &Users,
        now: u64,
        silent: bool,
    ) -> (Outcome, Vec<EventKind>) {
        outcome_and_kinds(self.report_with(user, service, script, users, now, silent))
    }

    fn report_with<P: Prompter>(
        &self,
        user: &str,
        service: &str,
        prompter: Option<&mut P>,
        users: &Users,
        now: u64,
        silent: bool,
    ) -> Report {
        let req = Request {
            user,
            service,
            rhost: Some("192.0.2.9"),
            tty: Some("pts/3"),
            silent,
        };
        flow::authenticate(&self.host, req, prompter, users, &FixedClock(now))
    }
}

fn outcome_and_kinds(report: Report) -> (Outcome, Vec<EventKind>) {
    (
        report.outcome,
        report.events.iter().map(|e| e.kind).collect(),
    )
}

fn code(now: u64) -> Vec<u8> {
    code_at_step(SECRET, TotpParams::default(), time_step(now, 30))
        .as_bytes()
        .to_vec()
}

#[test]
fn an_enrolled_user_with_the_right_code_succeeds_and_the_step_is_committed() {
    let w = World::enrolled(|_| {});
    let mut s = Script::answering(&[&code(NOW)]);
    let (outcome, events) = w.login("alice", &mut s, NOW);
    assert!(matches!(outcome, Outcome::Success), "{outcome:?}");
    assert_eq!(events, [EventKind::AuthSuccess]);
    assert_eq!(s.transcript, [format!("prompt:{CODE_PROMPT}")]);
    let r = w.record().unwrap();
    assert_eq!(r.devices[0].last_used_step, Some(time_step(NOW, 30)));
    assert_eq!(r.last_success.unwrap().service, "sshd");
}

#[test]
fn a_replayed_code_fails_and_counts() {
    let w = World::enrolled(|_| {});
    w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    let (outcome, events) = w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW + 5);
    assert!(matches!(outcome, Outcome::WrongCode));
    assert_eq!(events, [EventKind::AuthReplay]);
    assert_eq!(w.record().unwrap().failures, 1);
}

#[test]
fn an_older_code_after_a_newer_one_is_a_replay_even_when_the_clock_steps_back() {
    let w = World::enrolled(|_| {});
    w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    let earlier = NOW - 30;
    let (outcome, events) = w.login("alice", &mut Script::answering(&[&code(earlier)]), earlier);
    assert!(matches!(outcome, Outcome::WrongCode));
    assert_eq!(events, [EventKind::AuthReplay]);
}

#[test]
fn a_wrong_code_fails_and_counts() {
    let w = World::enrolled(|_| {});
    let (outcome, events) = w.login("alice", &mut Script::answering(&[b"000000"]), NOW);
    assert!(matches!(outcome, Outcome::WrongCode));
    assert_eq!(events, [EventKind::AuthFailure]);
    assert_eq!(w.record().unwrap().failures, 1);
}

#[test]
fn malformed_input_is_refused_and_counted_as_a_guess() {
    let w = World::enrolled(|c| {
        c.throttle.backoff_after = 20;
        c.throttle.lockout_after = 50;
    });
    let right = code(NOW);
    let mut plus = b"+".to_vec();
    plus.extend_from_slice(&right[1..]);
    let mut newline = right.clone();
    newline.push(b'\n');
    let mut space = b" ".to_vec();
    space.extend_from_slice(&right);
    let mut nul = right.clone();
    nul.insert(3, 0);
    let huge = vec![b'1'; 1 << 20];
    let fullwidth = "１２３４５６".as_bytes().to_vec();
    let inputs: Vec<Vec<u8>> = vec![
        plus,
        newline,
        space,
        nul,
        huge,
        fullwidth,
        b"0x1234".to_vec(),
        Vec::new(),
    ];
    for (n, input) in inputs.iter().enumerate() {
        let (outcome, _) = w.login("alice", &mut Script::answering(&[input]), NOW);
        assert!(
            matches!(outcome, Outcome::WrongCode),
            "input {n}: {outcome:?}"
        );
    }
    let failures = w.record().unwrap().failures;
    assert_eq!(failures, u32::try_from(inputs.len()).unwrap());
}

#[test]
fn a_recovery_code_works_once_and_says_how_many_are_left() {
    let w = World::enrolled(|_| {});
    let (codes, hashes) = mfa_core::recovery::generate(
        3,
        12,
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
    )
    .unwrap();
    let mut r = w.record().unwrap();
    r.recovery = Some(hashes);
    w.save(&r);
    let typed = codes[1].display().to_uppercase();
    let mut s = Script::answering(&[typed.as_bytes()]);
    let (outcome, events) = w.login("alice", &mut s, NOW);
    assert!(matches!(outcome, Outcome::Success), "{outcome:?}");
    assert_eq!(
        events,
        [EventKind::RecoveryCodeUsed, EventKind::AuthSuccess]
    );
    assert!(
        s.infos()
            .iter()
            .any(|i| i.contains("2 recovery codes left")),
        "{:?}",
        s.transcript
    );
    assert_eq!(w.record().unwrap().recovery_codes_left(), 2);
    let (outcome, _) = w.login(
        "alice",
        &mut Script::answering(&[typed.as_bytes()]),
        NOW + 60,
    );
    assert!(matches!(outcome, Outcome::WrongCode));
}

#[test]
fn no_conversation_denies_without_counting() {
    let w = World::enrolled(|_| {});
    let (outcome, events) = w.login_with("alice", "sudo", None, &Users::new(&[]), NOW, false);
    assert!(matches!(outcome, Outcome::NoConversation));
    assert_eq!(events, [EventKind::AuthNoConversation]);
    assert_eq!(w.record().unwrap().failures, 0);
}

#[test]
fn a_conversation_that_returns_nothing_fails_without_counting() {
    let w = World::enrolled(|_| {});
    let mut s = Script::default();
    let (outcome, _) = w.login("alice", &mut s, NOW);
    assert!(matches!(outcome, Outcome::ConversationFailed));
    assert_eq!(w.record().unwrap().failures, 0);
}

#[test]
fn an_unknown_user_is_prompted_then_denied() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Skip);
    for user in ["mallory", "", "../x", &"u".repeat(300), "al\nice"] {
        let mut s = Script::answering(&[b"123456"]);
        let (outcome, events) = w.login(user, &mut s, NOW);
        assert!(matches!(outcome, Outcome::Denied), "{user:?}: {outcome:?}");
        assert_eq!(events, [EventKind::AuthDenied]);
        assert_eq!(s.transcript, [format!("prompt:{CODE_PROMPT}")], "{user:?}");
    }
}

#[test]
fn a_failing_name_service_fails_closed() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Skip);
    let (outcome, _) = w.login("broken", &mut Script::answering(&[b"123456"]), NOW);
    assert!(matches!(outcome, Outcome::DirectoryUnavailable));
}

#[test]
fn not_enrolled_under_skip_is_ignored_without_a_prompt() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Skip);
    let mut s = Script::default();
    let (outcome, events) = w.login("alice", &mut s, NOW);
    assert!(matches!(outcome, Outcome::Ignore));
    assert_eq!(events, [EventKind::AuthSkipped]);
    assert!(s.transcript.is_empty());
}

#[test]
fn not_enrolled_under_deny_is_prompted_like_anyone_then_denied_with_a_message() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Deny);
    let mut s = Script::answering(&[b"123456"]);
    let (outcome, events) = w.login("alice", &mut s, NOW);
    assert!(matches!(outcome, Outcome::Denied));
    assert_eq!(events, [EventKind::AuthDenied]);
    assert_eq!(s.transcript[0], format!("prompt:{CODE_PROMPT}"));
    assert!(s.transcript[1].starts_with("error:"));
    // An unknown user sees exactly the same.
    let mut unknown = Script::answering(&[b"123456"]);
    let (outcome, _) = w.login("mallory", &mut unknown, NOW);
    assert!(matches!(outcome, Outcome::Denied));
    assert_eq!(unknown.transcript, s.transcript);
}

#[test]
fn a_corrupt_record_is_never_skipped() {
    let w = World::enrolled(|c| c.policy.not_configured = NotConfigured::Skip);
    std::fs::write(w.fixture.record_path(UID), vec![7u8; 1024]).unwrap();
    let (outcome, events) = w.login("alice", &mut Script::answering(&[b"123456"]), NOW);
    assert!(matches!(outcome, Outcome::StoreUnavailable), "{outcome:?}");
    assert_eq!(events, [EventKind::StoreFailure]);
}

#[test]
fn a_per_service_override_changes_the_policy_for_that_service_only() {
    let w = World::new(|c| {
        c.policy.not_configured = NotConfigured::Skip;
        c.service.insert(
            "sudo".into(),
            mfa_core::config::ServiceOverride {
                not_configured: Some(NotConfigured::Deny),
                ..Default::default()
            },
        );
    });
    let users = Users::new(&[]);
    let (ssh, _) = w.login_with(
        "alice",
        "sshd",
        Some(&mut Script::default()),
        &users,
        NOW,
        false,
    );
    let (sudo, _) = w.login_with(
        "alice",
        "sudo",
        Some(&mut Script::answering(&[b"123456"])),
        &users,
        NOW,
        false,
    );
    assert!(matches!(ssh, Outcome::Ignore));
    assert!(matches!(sudo, Outcome::Denied));
}

#[test]
fn a_required_group_overrides_skip_and_an_exempt_group_skips_everything() {
    let w = World::new(|c| {
        c.policy.not_configured = NotConfigured::Skip;
        c.groups.require = vec!["admins".into()];
        c.groups.require_policy = NotConfigured::Deny;
        c.groups.exempt = vec!["robots".into()];
    });
    let admin = Users::new(&["admins"]);
    let (o, _) = w.login_with(
        "alice",
        "sshd",
        Some(&mut Script::answering(&[b"123456"])),
        &admin,
        NOW,
        false,
    );
    assert!(matches!(o, Outcome::Denied));
    w.fixture.enroll(UID);
    let robot = Users::new(&["robots"]);
    let mut s = Script::default();
    let (o, events) = w.login_with("alice", "sshd", Some(&mut s), &robot, NOW, false);
    assert!(matches!(o, Outcome::Ignore));
    assert_eq!(events, [EventKind::AuthSkipped]);
    assert!(s.transcript.is_empty());
}

#[test]
fn groups_are_not_looked_up_when_no_rule_needs_them() {
    let w = World::enrolled(|_| {});
    let users = Users::new(&["admins"]);
    w.login_with(
        "alice",
        "sshd",
        Some(&mut Script::answering(&[&code(NOW)])),
        &users,
        NOW,
        false,
    );
    assert_eq!(users.group_lookups.get(), 0);
}

#[test]
fn back_off_refuses_without_evaluating_and_the_cap_locks_until_unlocked() {
    let w = World::enrolled(|c| {
        c.throttle.backoff_after = 2;
        c.throttle.backoff_seconds = 60;
        c.throttle.lockout_after = 4;
    });
    for i in 0..2 {
        let (o, _) = w.login("alice", &mut Script::answering(&[b"000000"]), NOW + i);
        assert!(matches!(o, Outcome::WrongCode));
    }
    // Third attempt within the back-off: refused, not evaluated, not counted,
    // even with the right code.
    let mut s = Script::answering(&[&code(NOW + 2)]);
    let (o, events) = w.login("alice", &mut s, NOW + 2);
    assert!(matches!(o, Outcome::Throttled), "{o:?}");
    assert_eq!(events, [EventKind::AuthThrottled]);
    assert_eq!(s.prompts(), 0);
    assert_eq!(w.record().unwrap().failures, 2);
    // After the back-off, two more failures reach the cap.
    let (o, _) = w.login("alice", &mut Script::answering(&[b"000000"]), NOW + 100);
    assert!(matches!(o, Outcome::WrongCode));
    let (o, _) = w.login("alice", &mut Script::answering(&[b"000000"]), NOW + 1000);
    assert!(matches!(o, Outcome::WrongCode));
    let (o, events) = w.login(
        "alice",
        &mut Script::answering(&[&code(NOW + 99_999)]),
        NOW + 99_999,
    );
    assert!(matches!(o, Outcome::Locked));
    assert_eq!(events, [EventKind::AuthLocked]);
    let mut r = w.record().unwrap();
    mfa_core::throttle::clear(&mut r);
    w.save(&r);
    let (o, _) = w.login(
        "alice",
        &mut Script::answering(&[&code(NOW + 99_999)]),
        NOW + 99_999,
    );
    assert!(matches!(o, Outcome::Success));
}

#[test]
fn a_success_clears_the_failure_counter() {
    let w = World::enrolled(|_| {});
    w.login("alice", &mut Script::answering(&[b"000000"]), NOW);
    w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    assert_eq!(w.record().unwrap().failures, 0);
}

#[test]
fn remember_skips_the_prompt_only_on_the_same_service_within_the_threshold() {
    let w = World::enrolled(|c| c.policy.remember_seconds = 600);
    w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    let users = Users::new(&[]);
    let mut s = Script::default();
    let (o, _) = w.login_with("alice", "sshd", Some(&mut s), &users, NOW + 300, false);
    assert!(matches!(o, Outcome::Success));
    assert_eq!(s.prompts(), 0);
    let mut s = Script::default();
    let (o, _) = w.login_with("alice", "sudo", Some(&mut s), &users, NOW + 300, false);
    assert!(matches!(o, Outcome::ConversationFailed));
    assert_eq!(s.prompts(), 1);
    let mut s = Script::default();
    w.login_with("alice", "sshd", Some(&mut s), &users, NOW + 601, false);
    assert_eq!(s.prompts(), 1);
}

#[test]
fn a_success_remembered_on_one_host_does_not_open_a_login_on_another_sharing_the_record() {
    // Two hosts reading the same records (as the PostgreSQL store makes
    // them): the same service, remote host and terminal name on host B are
    // not the place where host A verified the code.
    let w = World::enrolled(|c| c.policy.remember_seconds = 600);
    w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    assert_eq!(w.record().unwrap().last_success.unwrap().host, "testhost");
    let other = Host::open(w.host.config.clone(), trust(), "otherhost").unwrap();
    let req = Request {
        user: "alice",
        service: "sshd",
        rhost: Some("192.0.2.9"),
        tty: Some("pts/3"),
        silent: false,
    };
    let mut s = Script::default();
    let report = flow::authenticate(
        &other,
        req,
        Some(&mut s),
        &Users::new(&[]),
        &FixedClock(NOW + 300),
    );
    assert!(matches!(report.outcome, Outcome::ConversationFailed));
    assert_eq!(s.prompts(), 1);
    // Back on host A it is still remembered.
    let mut s = Script::default();
    let (o, _) = w.login_with(
        "alice",
        "sshd",
        Some(&mut s),
        &Users::new(&[]),
        NOW + 300,
        false,
    );
    assert!(matches!(o, Outcome::Success));
    assert_eq!(s.prompts(), 0);
}

#[test]
fn silent_suppresses_messages_but_not_the_prompt() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Deny);
    let mut s = Script::answering(&[b"123456"]);
    let (o, _) = w.login_with("alice", "sshd", Some(&mut s), &Users::new(&[]), NOW, true);
    assert!(matches!(o, Outcome::Denied));
    assert_eq!(s.transcript, [format!("prompt:{CODE_PROMPT}")]);
}

/// Answers the new-device prompt with the code of the secret it was shown.
struct Live<'a>(&'a mut Script);
impl Prompter for Live<'_> {
    fn prompt(&mut self, p: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed> {
        self.0.transcript.push(format!("prompt:{p}"));
        let secret = secret_from_transcript(self.0);
        Ok(Zeroizing::new(
            code_at_step(&secret, TotpParams::default(), time_step(NOW, 30))
                .as_bytes()
                .to_vec(),
        ))
    }
    fn info(&mut self, t: &str) -> Result<(), ConversationFailed> {
        self.0.info(t)
    }
    fn error(&mut self, t: &str) -> Result<(), ConversationFailed> {
        self.0.error(t)
    }
}

fn secret_from_transcript(s: &Script) -> Vec<u8> {
    let line = s
        .infos()
        .into_iter()
        .find_map(|i| i.strip_prefix("Secret: "))
        .expect("secret shown");
    base32_decode(line).unwrap().to_vec()
}

#[test]
fn configure_enrolls_in_the_conversation_and_commits_only_in_the_account_phase() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Configure);
    let mut s = Script::default();
    // Answer the new-device prompt with a code computed from the secret shown.
    let req = Request {
        user: "alice",
        service: "sshd",
        rhost: None,
        tty: None,
        silent: false,
    };
    let mut live = Live(&mut s);
    let report = flow::authenticate(
        &w.host,
        req,
        Some(&mut live),
        &Users::new(&[]),
        &FixedClock(NOW),
    );
    let Outcome::EnrollmentVerified(pending) = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    // The QR code arrived in messages of at most 512 bytes, then the secret and URI.
    assert!(s.infos().iter().all(|i| i.len() <= 512));
    assert!(s.infos().iter().any(|i| i.contains('█')));
    assert!(s
        .infos()
        .iter()
        .any(|i| i.starts_with("URI: otpauth://totp/testhost:alice%40testhost?")));
    // Nothing is stored until the account phase.
    assert!(w.record().is_none());
    let mut after = Script::default();
    let done = flow::complete_enrollment(
        &w.host,
        req,
        Some(*pending),
        Some(&mut after),
        &FixedClock(NOW),
    );
    assert!(matches!(done.outcome, Outcome::Success));
    assert_eq!(done.events[0].kind, EventKind::DeviceEnrolled);
    let r = w.record().unwrap();
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.devices[0].last_used_step, Some(time_step(NOW, 30)));
    assert_eq!(r.recovery_codes_left(), 10);
    assert!(after.infos()[0].contains("recovery codes"));
    assert_eq!(after.infos()[0].lines().count(), 11);
}

#[test]
fn a_wrong_code_for_the_new_device_stores_nothing() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Configure);
    let mut s = Script::answering(&[b"000000"]);
    let (o, _) = w.login("alice", &mut s, NOW);
    assert!(matches!(o, Outcome::WrongCode));
    assert!(w.record().is_none());
}

#[test]
fn an_abandoned_enrollment_leaves_nothing_behind() {
    // The first factor failed after pam_mfa verified the device: PAM never
    // calls the account phase, so the pending device is simply dropped.
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Configure);
    let mut s = Script::default();
    let (o, _) = w.login("alice", &mut s, NOW);
    assert!(matches!(o, Outcome::ConversationFailed));
    assert!(w.record().is_none());
    assert!(!w.fixture.record_path(UID).exists());
}

#[test]
fn the_account_phase_without_a_pending_device_does_nothing() {
    let w = World::enrolled(|_| {});
    let before = std::fs::read(w.fixture.record_path(UID)).unwrap();
    let req = Request {
        user: "alice",
        service: "sshd",
        rhost: None,
        tty: None,
        silent: false,
    };
    let r = flow::complete_enrollment::<Script, _>(&w.host, req, None, None, &FixedClock(NOW));
    assert!(matches!(r.outcome, Outcome::Success));
    assert!(r.events.is_empty());
    assert_eq!(std::fs::read(w.fixture.record_path(UID)).unwrap(), before);
}

// ---- self-service enrollments waiting in the spool ----

const NEW_SECRET: &[u8; 20] = b"abcdefghijabcdefghij";

fn new_code(now: u64) -> Vec<u8> {
    code_at_step(NEW_SECRET, TotpParams::default(), time_step(now, 30))
        .as_bytes()
        .to_vec()
}

/// Puts a self-service request for `alice`, made at `created` with `proof`,
/// in the spool, as `mfa-enroll` run by her (or anyone who can read the
/// host's public key) would.
fn spool_request_at(
    w: &World,
    created: u64,
    request: Request_,
    proof: Option<Proof>,
) -> (std::path::PathBuf, Pending) {
    let pending = Pending {
        id: Pending::new_id().unwrap(),
        created,
        request,
        proof,
    };
    (spool_sealed(w, &pending), pending)
}

/// Writes `pending` sealed for alice into the spool as her file.
fn spool_sealed(w: &World, pending: &Pending) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = &w.host.config.paths.spool_dir;
    if !dir.exists() {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1733)).unwrap();
    }
    let sealed = pending
        .seal(&w.fixture.keys.enrollment_public_key(), UID)
        .unwrap();
    let path = mfa_core::spool::write_to_spool(dir, UID, &sealed).unwrap();
    nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(UID)), None).unwrap();
    path
}

type Request_ = mfa_core::pending::Request;

/// A code typed into `mfa-enroll` and sealed.
fn typed(code: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(String::from_utf8(code.to_vec()).unwrap())
}

/// A new device "tablet" with the code it showed at `at`.
fn tablet_request(at: u64) -> (Vec<mfa_core::recovery::RecoveryCode>, Request_) {
    let (codes, hashes) = cheap_codes();
    (
        codes,
        Request_::Device {
            device: new_device("tablet"),
            recovery: hashes,
            code: Some(typed(&new_code(at))),
        },
    )
}

fn cheap_codes() -> (
    Vec<mfa_core::recovery::RecoveryCode>,
    mfa_core::recovery::RecoveryHashes,
) {
    mfa_core::recovery::generate(
        3,
        12,
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
    )
    .unwrap()
}

fn new_device(name: &str) -> mfa_core::record::Device {
    mfa_core::record::Device {
        name: name.into(),
        secret: Zeroizing::new(NEW_SECRET.to_vec()),
        params: TotpParams::default(),
        created: NOW,
        last_used_step: None,
    }
}

/// When alice ran `mfa-enroll`: a minute before the login.
const MADE: u64 = NOW - 60;

#[test]
fn an_enrolled_user_adds_a_device_with_a_code_of_the_old_one_typed_into_mfa_enroll() {
    let w = World::enrolled(|_| {});
    let (codes, request) = tablet_request(MADE);
    let (path, pending) =
        spool_request_at(&w, MADE, request, Some(Proof::Totp(typed(&code(MADE)))));
    let mut s = Script::answering(&[&code(NOW)]);
    let (o, events) = w.login("alice", &mut s, NOW);
    assert!(matches!(o, Outcome::Success), "{o:?}");
    assert_eq!(events, [EventKind::AuthSuccess, EventKind::DeviceEnrolled]);
    assert_eq!(
        s.prompts(),
        1,
        "no second prompt: the codes came with the request"
    );
    let r = w.record().unwrap();
    let names: Vec<&str> = r.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["phone", "tablet"]);
    // Both codes are used up: the old device's at the login, the new one's
    // at the request's time.
    assert_eq!(r.devices[0].last_used_step, Some(time_step(NOW, 30)));
    assert_eq!(r.devices[1].last_used_step, Some(time_step(MADE, 30)));
    assert!(r.has_applied(&pending.id));
    assert!(!path.exists());
    // The change is announced in this login, which may print, and cleared.
    assert!(
        s.infos().iter().any(|t| t.contains("\"tablet\" was added")),
        "{:?}",
        s.transcript
    );
    assert!(r.notices.is_empty());
    // The codes the user was shown at enrollment are the ones that work now.
    let (o, _) = w.login(
        "alice",
        &mut Script::answering(&[codes[0].display().as_bytes()]),
        NOW + 60,
    );
    assert!(matches!(o, Outcome::Success));
}

#[test]
fn a_shell_without_the_authenticator_cannot_install_recovery_codes() {
    // What anyone with a shell as alice can seal: no code of her device.
    let w = World::enrolled(|_| {});
    let before = w.record().unwrap();
    let (attacker_codes, hashes) = cheap_codes();
    let (path, _) = spool_request_at(&w, MADE, Request_::RecoveryCodes { recovery: hashes }, None);
    let mut s = Script::answering(&[&code(NOW)]);
    let (o, events) = w.login("alice", &mut s, NOW);
    assert!(matches!(o, Outcome::Success), "{o:?}");
    assert_eq!(events, [EventKind::AuthSuccess, EventKind::PendingIgnored]);
    let after = w.record().unwrap();
    assert_eq!(after.recovery, before.recovery, "the codes are alice's own");
    assert!(!path.exists(), "a refused request goes");
    assert!(
        s.transcript.iter().any(|t| t.contains("was refused")),
        "alice is told: {:?}",
        s.transcript
    );
    let (o, _) = w.login(
        "alice",
        &mut Script::answering(&[attacker_codes[0].display().as_bytes()]),
        NOW + 60,
    );
    assert!(matches!(o, Outcome::WrongCode));
}

#[test]
fn a_wrong_code_in_a_request_is_refused_removes_every_request_and_counts_as_a_failure() {
    let w = World::enrolled(|_| {});
    let (_, request) = tablet_request(MADE);
    let (older, _) = spool_request_at(&w, MADE - 10, tablet_request(MADE - 10).1, None);
    let (path, _) = spool_request_at(&w, MADE, request, Some(Proof::Totp(typed(b"000000"))));
    let (o, events) = w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    assert!(matches!(o, Outcome::Success), "{o:?}");
    assert_eq!(
        events,
        [
            EventKind::PendingIgnored,
            EventKind::AuthSuccess,
            EventKind::AuthFailure
        ],
        "the older request is superseded, the newest evaluated"
    );
    let r = w.record().unwrap();
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.failures, 1, "a guess like a wrong code at the prompt");
    assert!(!path.exists() && !older.exists());
}

#[test]
fn a_code_already_used_to_log_in_cannot_prove_a_request() {
    let w = World::enrolled(|_| {});
    // Alice logs in at MADE; someone who saw that code seals it at once.
    let (o, _) = w.login("alice", &mut Script::answering(&[&code(MADE)]), MADE);
    assert!(matches!(o, Outcome::Success));
    let (_, request) = tablet_request(MADE);
    spool_request_at(&w, MADE, request, Some(Proof::Totp(typed(&code(MADE)))));
    let (o, events) = w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    assert!(matches!(o, Outcome::Success));
    assert_eq!(events, [EventKind::AuthSuccess, EventKind::AuthFailure]);
    assert_eq!(w.record().unwrap().devices.len(), 1);
}

#[test]
fn a_code_from_outside_the_window_at_the_requests_time_is_refused() {
    let w = World::enrolled(|_| {});
    let (_, request) = tablet_request(MADE);
    // A code of five minutes later than the request claims to be.
    spool_request_at(
        &w,
        MADE,
        request,
        Some(Proof::Totp(typed(&code(MADE + 300)))),
    );
    let (_, events) = w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    assert_eq!(events, [EventKind::AuthSuccess, EventKind::AuthFailure]);
    assert_eq!(w.record().unwrap().devices.len(), 1);
}

#[test]
fn a_wrong_code_of_the_new_device_is_refused() {
    let w = World::enrolled(|_| {});
    let (_, hashes) = cheap_codes();
    let request = Request_::Device {
        device: new_device("tablet"),
        recovery: hashes,
        code: Some(typed(b"000000")),
    };
    spool_request_at(&w, MADE, request, Some(Proof::Totp(typed(&code(MADE)))));
    let (_, events) = w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    assert_eq!(events, [EventKind::AuthSuccess, EventKind::AuthFailure]);
    let r = w.record().unwrap();
    assert_eq!(r.devices.len(), 1);
    // Refused as a whole: the old device's code in it is not used up.
    assert_eq!(r.devices[0].last_used_step, Some(time_step(NOW, 30)));
}

#[test]
fn a_recovery_code_may_stand_in_for_the_device_and_is_used_up() {
    let w = World::enrolled(|_| {});
    let mut record = w.record().unwrap();
    let (old_codes, old_set) = cheap_codes();
    record.recovery = Some(old_set);
    w.save(&record);
    let (new_codes, hashes) = cheap_codes();
    spool_request_at(
        &w,
        MADE,
        Request_::RecoveryCodes { recovery: hashes },
        Some(Proof::Recovery(typed(old_codes[1].display().as_bytes()))),
    );
    let report = w.report_with(
        "alice",
        "sshd",
        Some(&mut Script::answering(&[&code(NOW)])),
        &Users::new(&[]),
        NOW,
        false,
    );
    assert!(matches!(report.outcome, Outcome::Success));
    let regenerated = &report.events[1];
    assert_eq!(regenerated.kind, EventKind::RecoveryCodesRegenerated);
    assert!(
        regenerated
            .reason
            .as_deref()
            .unwrap()
            .contains("recovery code (now used up)"),
        "{regenerated:?}"
    );
    // The old set is gone as a whole; the new one works.
    for (code, ok) in [(&old_codes[0], false), (&new_codes[0], true)] {
        let (o, _) = w.login(
            "alice",
            &mut Script::answering(&[code.display().as_bytes()]),
            NOW + 60,
        );
        assert_eq!(matches!(o, Outcome::Success), ok, "{o:?}");
    }
}

#[test]
fn a_copy_of_an_applied_request_does_not_apply_again() {
    let w = World::enrolled(|_| {});
    let (_, request) = tablet_request(MADE);
    let (_, pending) = spool_request_at(&w, MADE, request, Some(Proof::Totp(typed(&code(MADE)))));
    let (o, _) = w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
    assert!(matches!(o, Outcome::Success));
    // Alice removes the tablet; the copy someone kept is put back.
    let mut r = w.record().unwrap();
    r.devices.retain(|d| d.name != "tablet");
    w.save(&r);
    let copy = spool_sealed(&w, &pending);
    let (o, events) = w.login(
        "alice",
        &mut Script::answering(&[&code(NOW + 30)]),
        NOW + 30,
    );
    assert!(matches!(o, Outcome::Success));
    assert_eq!(events, [EventKind::AuthSuccess, EventKind::PendingIgnored]);
    assert_eq!(w.record().unwrap().devices.len(), 1);
    assert!(!copy.exists());
}

#[test]
fn a_change_made_under_pam_silent_is_announced_at_the_next_login_that_may_print() {
    let w = World::enrolled(|_| {});
    let (_, hashes) = cheap_codes();
    spool_request_at(
        &w,
        MADE,
        Request_::RecoveryCodes { recovery: hashes },
        Some(Proof::Totp(typed(&code(MADE)))),
    );
    let mut silent = Script::answering(&[&code(NOW)]);
    let (o, _) = w.login_with(
        "alice",
        "sudo",
        Some(&mut silent),
        &Users::new(&[]),
        NOW,
        true,
    );
    assert!(matches!(o, Outcome::Success));
    assert!(silent.infos().is_empty(), "{:?}", silent.transcript);
    assert_eq!(w.record().unwrap().notices.len(), 1);
    let mut next = Script::answering(&[&code(NOW + 30)]);
    w.login("alice", &mut next, NOW + 30);
    assert!(
        next.infos()
            .iter()
            .any(|t| t.contains("recovery codes were replaced") && t.contains(" UTC")),
        "{:?}",
        next.transcript
    );
    assert!(w.record().unwrap().notices.is_empty());
    let mut third = Script::answering(&[&code(NOW + 60)]);
    w.login("alice", &mut third, NOW + 60);
    assert!(
        third.infos().is_empty(),
        "told once: {:?}",
        third.transcript
    );
}

#[test]
fn a_request_refused_under_pam_silent_is_told_at_the_next_login_that_may_print() {
    let w = World::enrolled(|_| {});
    let (_, request) = tablet_request(MADE);
    spool_request_at(&w, MADE, request, Some(Proof::Totp(typed(b"000000"))));
    let mut silent = Script::answering(&[&code(NOW)]);
    let (o, _) = w.login_with(
        "alice",
        "sudo",
        Some(&mut silent),
        &Users::new(&[]),
        NOW,
        true,
    );
    assert!(matches!(o, Outcome::Success));
    assert!(silent.infos().is_empty(), "{:?}", silent.transcript);
    let mut next = Script::answering(&[&code(NOW + 30)]);
    w.login("alice", &mut next, NOW + 30);
    let told = next.infos().join("\n");
    assert!(
        told.contains("a request to change your second factor was refused: the code of an existing device or recovery code it carries is wrong or was already used"),
        "{told}"
    );
    assert!(w.record().unwrap().notices.is_empty());
}

#[test]
fn a_request_breaking_the_settings_is_refused_before_the_login() {
    let w = World::enrolled(|_| {});
    let (_, hashes) = cheap_codes();
    let mut device = new_device("tablet");
    device.secret = Zeroizing::new(b"short secret".to_vec());
    let request = Request_::Device {
        device,
        recovery: hashes,
        code: None,
    };
    let (path, _) = spool_request_at(&w, MADE, request, Some(Proof::Totp(typed(&code(MADE)))));
    let report = w.report_with(
        "alice",
        "sshd",
        Some(&mut Script::answering(&[&code(NOW)])),
        &Users::new(&[]),
        NOW,
        false,
    );
    let kinds: Vec<EventKind> = report.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::PendingIgnored, EventKind::AuthSuccess]);
    assert!(report.events[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("bits, fewer than 128"));
    assert!(!path.exists());
    assert_eq!(w.record().unwrap().devices.len(), 1);
}

#[test]
fn a_wrong_first_factor_never_activates_a_pending_device() {
    let w = World::enrolled(|_| {});
    let (_, request) = tablet_request(MADE);
    let (path, _) = spool_request_at(&w, MADE, request, Some(Proof::Totp(typed(&code(MADE)))));
    // Even the new device's code is no good in place of the existing factor.
    let (o, _) = w.login("alice", &mut Script::answering(&[&new_code(NOW)]), NOW);
    assert!(matches!(o, Outcome::WrongCode));
    assert_eq!(w.record().unwrap().devices.len(), 1);
    assert!(path.exists());
}

#[test]
fn a_first_device_is_activated_by_its_code_under_skip_and_committed_in_the_account_phase() {
    for policy in [NotConfigured::Skip, NotConfigured::Configure] {
        let w = World::new(|c| c.policy.not_configured = policy);
        let (_, hashes) = cheap_codes();
        let (path, pending) = spool_request_at(
            &w,
            MADE,
            Request_::Device {
                device: new_device("phone"),
                recovery: hashes,
                code: Some(typed(&new_code(MADE))),
            },
            None,
        );
        let req = Request {
            user: "alice",
            service: "sshd",
            rhost: None,
            tty: None,
            silent: false,
        };
        // A fresh code at the login, newer than the one in the request.
        let mut s = Script::answering(&[&new_code(NOW)]);
        let report = flow::authenticate(
            &w.host,
            req,
            Some(&mut s),
            &Users::new(&[]),
            &FixedClock(NOW),
        );
        let Outcome::EnrollmentVerified(verified) = report.outcome else {
            panic!("{policy:?}: {:?}", report.outcome)
        };
        assert!(w.record().is_none(), "nothing before the account phase");
        let mut after = Script::default();
        let done = flow::complete_enrollment(
            &w.host,
            req,
            Some(*verified),
            Some(&mut after),
            &FixedClock(NOW),
        );
        assert!(matches!(done.outcome, Outcome::Success));
        let r = w.record().unwrap();
        assert_eq!(r.devices[0].name, "phone");
        assert_eq!(r.recovery_codes_left(), 3, "the codes the user already saw");
        assert!(r.has_applied(&pending.id));
        assert!(after.transcript.is_empty(), "no new codes are shown");
        assert!(!path.exists());
    }
}

#[test]
fn the_code_in_a_first_device_request_cannot_be_typed_again_at_the_login() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Configure);
    let (_, hashes) = cheap_codes();
    spool_request_at(
        &w,
        NOW,
        Request_::Device {
            device: new_device("phone"),
            recovery: hashes,
            code: Some(typed(&new_code(NOW))),
        },
        None,
    );
    let (o, _) = w.login("alice", &mut Script::answering(&[&new_code(NOW)]), NOW);
    assert!(matches!(o, Outcome::WrongCode), "{o:?}");
}

#[test]
fn under_deny_a_first_device_waits_for_approval() {
    let w = World::new(|c| c.policy.not_configured = NotConfigured::Deny);
    let (_, request) = tablet_request(MADE);
    let (path, _) = spool_request_at(&w, MADE, request, None);
    let mut s = Script::answering(&[&new_code(NOW)]);
    let (o, _) = w.login("alice", &mut s, NOW);
    assert!(matches!(o, Outcome::Denied));
    assert_eq!(s.prompts(), 0);
    assert!(s.transcript[0].contains("approve"));
    assert!(path.exists());
    assert!(w.record().is_none());
}

// ---- What happens on disk while the user types is seen at the second read ----

/// Answers the first prompt with `answer`, after running `meanwhile`: what
/// other sessions or an administrator do while this user types.
struct Typing<F: FnMut()> {
    answer: Vec<u8>,
    meanwhile: F,
}

impl<F: FnMut()> Prompter for Typing<F> {
    fn prompt(&mut self, _prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed> {
        (self.meanwhile)();
        Ok(Zeroizing::new(self.answer.clone()))
    }
    fn info(&mut self, _text: &str) -> Result<(), ConversationFailed> {
        Ok(())
    }
    fn error(&mut self, _text: &str) -> Result<(), ConversationFailed> {
        Ok(())
    }
}

impl World {
    fn login_while(
        &self,
        answer: &[u8],
        now: u64,
        meanwhile: impl FnMut(),
    ) -> (Outcome, Vec<EventKind>) {
        let mut typing = Typing {
            answer: answer.to_vec(),
            meanwhile,
        };
        outcome_and_kinds(self.report_with(
            "alice",
            "sshd",
            Some(&mut typing),
            &Users::new(&[]),
            now,
            false,
        ))
    }
}

#[test]
fn two_logins_with_the_same_code_interleaved_at_the_prompt_let_exactly_one_in() {
    let w = World::enrolled(|_| {});
    let (outcome, events) = w.login_while(&code(NOW), NOW, || {
        // The other session asks, gets the same code, and commits first.
        let (outcome, _) = w.login("alice", &mut Script::answering(&[&code(NOW)]), NOW);
        assert!(matches!(outcome, Outcome::Success), "{outcome:?}");
    });
    assert!(matches!(outcome, Outcome::WrongCode), "{outcome:?}");
    assert_eq!(events, [EventKind::AuthReplay]);
    let r = w.record().unwrap();
    assert_eq!(r.failures, 1);
    assert_eq!(r.devices[0].last_used_step, Some(time_step(NOW, 30)));
}

#[test]
fn failures_of_other_sessions_while_typing_count_before_this_answer() {
    let w = World::enrolled(|c| {
        c.throttle.backoff_after = 100;
        c.throttle.lockout_after = 3;
    });
    let (outcome, events) = w.login_while(&code(NOW), NOW, || {
        for _ in 0..3 {
            w.login("alice", &mut Script::answering(&[b"000000"]), NOW);
        }
    });
    assert!(matches!(outcome, Outcome::Locked), "{outcome:?}");
    assert_eq!(events, [EventKind::AuthLocked]);
    assert_eq!(w.record().unwrap().failures, 3);
}

#[test]
fn a_reset_while_typing_denies_the_login() {
    let w = World::enrolled(|_| {});
    let (outcome, events) = w.login_while(&code(NOW), NOW, || {
        w.fixture.store().remove_user(UID).unwrap();
    });
    assert!(matches!(outcome, Outcome::Denied), "{outcome:?}");
    assert_eq!(events, [EventKind::AuthDenied]);
    assert!(w.record().is_none());
}

#[test]
fn a_device_replaced_while_typing_is_the_one_the_answer_is_checked_against() {
    let w = World::enrolled(|_| {});
    let (outcome, _) = w.login_while(&code(NOW), NOW, || {
        let mut r = w.record().unwrap();
        r.devices[0].secret = Zeroizing::new(b"another secret, 20 b".to_vec());
        w.save(&r);
    });
    assert!(matches!(outcome, Outcome::WrongCode), "{outcome:?}");
    assert_eq!(w.record().unwrap().failures, 1);
}

#[test]
fn a_record_migrated_to_a_key_this_login_does_not_hold_fails_closed() {
    let w = World::enrolled(|_| {});
    let (outcome, events) = w.login_while(&code(NOW), NOW, || {
        // `mfa-enroll key rotate` and `key migrate` while the user types; this
        // login loaded the key file before they ran.
        let mut keys = MasterKey::load(&w.fixture.root().join("master.key"), trust()).unwrap();
        keys.rotate(NOW).unwrap();
        let store = w.fixture.store();
        let mut user = store.open_user(UID, &keys).unwrap();
        let record = user.record().unwrap().clone();
        user.rewrite(&record, &keys).unwrap();
    });
    assert!(matches!(outcome, Outcome::StoreUnavailable), "{outcome:?}");
    assert_eq!(events, [EventKind::StoreFailure]);
}

#[test]
fn a_record_damaged_while_typing_is_refused() {
    let w = World::enrolled(|_| {});
    let path = w.fixture.record_path(UID);
    let (outcome, events) = w.login_while(&code(NOW), NOW, || {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[60] ^= 1;
        std::fs::write(&path, bytes).unwrap();
    });
    assert!(matches!(outcome, Outcome::StoreUnavailable), "{outcome:?}");
    assert_eq!(events, [EventKind::StoreFailure]);
}

#[test]
fn nothing_changing_while_typing_lets_the_right_code_in() {
    let w = World::enrolled(|_| {});
    let (outcome, events) = w.login_while(&code(NOW), NOW, || {});
    assert!(matches!(outcome, Outcome::Success), "{outcome:?}");
    assert_eq!(events, [EventKind::AuthSuccess]);
    assert_eq!(
        w.record().unwrap().devices[0].last_used_step,
        Some(time_step(NOW, 30))
    );
}

#[test]
fn a_login_removes_expired_requests_of_other_users_and_logs_them_in_one_line() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::enrolled(|_| {});
    let dir = w.host.config.paths.spool_dir.clone();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1733)).unwrap();
    let planted: Vec<std::path::PathBuf> = (2000..2003)
        .map(|uid| {
            let sealed = mfa_core::pending::Pending {
                id: Pending::new_id().unwrap(),
                created: NOW,
                request: mfa_core::pending::Request::RecoveryCodes {
                    recovery: cheap_codes().1,
                },
                proof: None,
            }
            .seal(&w.fixture.keys.enrollment_public_key(), uid)
            .unwrap();
            let path = mfa_core::spool::write_to_spool(&dir, uid, &sealed).unwrap();
            nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
            path
        })
        .collect();
    // Two days after they were written (the default age limit is one day).
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2 * 86_400;
    let mut s = Script::answering(&[&code(later)]);
    let report = w.report_with(
        "alice",
        "sshd",
        Some(&mut s),
        &Users::new(&[]),
        later,
        false,
    );
    assert!(
        matches!(report.outcome, Outcome::Success),
        "{:?}",
        report.outcome
    );
    let kinds: Vec<EventKind> = report.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::PendingExpired, EventKind::AuthSuccess]);
    let cleanup = &report.events[0];
    // The files are other users'; the line does not pin them on this one.
    assert_eq!(cleanup.uid, None);
    let reason = cleanup.reason.as_deref().unwrap();
    assert!(reason.starts_with("removed 3 expired requests"), "{reason}");
    for path in &planted {
        assert!(!path.exists());
        assert!(reason.contains(&path.display().to_string()), "{reason}");
    }
}

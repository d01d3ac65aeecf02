//! Faults in the middle of a login, through the real module and libpam:
//! the process killed at each step of a commit, a torn write, a full and a
//! read-only state directory, failing writes and syncs, a lock taken while
//! the user types, a broken key file, and a state directory on a network
//! filesystem. Each must deny, log, and lose nothing: the record opens
//! afterwards with the state from before (or, once the commit reached the
//! disk, after) and the user can log in again. Needs root and a C compiler.
//!
//! The in-place commit of a login is one `pwrite` and one `fdatasync` of
//! the record; an enrollment is the rename protocol (`write` + `fsync` of a
//! temporary file, `rename`, `fsync` of the directory). The shim in
//! `faults/shim.c` kills the process or fails the call at each of those.

mod common;
mod faults;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{
    code_now, enroll, expect_event, forget_last_step, record_path, status, wrong_code, CODE_PROMPT,
};
use faults::{strays, Faulty, SmallFs};
use pam_mfa_e2e::{
    oathtool_code, Converse, Op, PamCode, Prompt as Message, Style, TestUser, Transcript,
};

/// No back-off or lockout in the way of a few failures.
const ROOMY: &str = "[throttle]\nfail_delay_ms = 0\nbackoff_after = 20\nlockout_after = 100\n";

fn configure() -> String {
    format!("[policy]\nnot_configured = \"configure\"\n\n{ROOMY}")
}

/// pam_mfa alone for auth and account, as service `mfa`.
fn mfa_stack(f: &Faulty) {
    f.service(
        "mfa",
        &format!(
            "{}{}",
            f.pam_mfa_line("auth required", ""),
            f.pam_mfa_line("account required", "")
        ),
    );
}

/// The secret shown as `Secret: XXXX XXXX ...`, without the spaces.
fn shown_secret(seen: &[Message]) -> Option<String> {
    seen.iter()
        .filter(|m| m.style == Style::TextInfo)
        .find_map(|m| m.msg.strip_prefix("Secret: "))
        .map(|s| s.replace(' ', ""))
}

/// An enrollment at login (authenticate, then `acct_mgmt` commits).
fn enroll_at_login(f: &Faulty, user: &TestUser) -> Transcript {
    f.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_seeing(|seen, _| shown_secret(seen).map(|s| oathtool_code(&s, None))),
    )
}

/// Fails unless the run was killed by the armed fault, before any result
/// of `op` reached the application.
fn assert_killed_before(f: &Faulty, t: &Transcript, op: Op) {
    assert!(
        f.fired(),
        "the fault never fired; calls seen: {:?}\n{t}",
        f.trace()
    );
    assert!(t.run.timed_out(), "pam-converse was not killed\n{t}");
    assert_eq!(t.rc(op), None, "{op} returned although killed\n{t}");
}

// ---------------------------------------------------------------------------
// What a commit is made of

#[test]
fn a_login_commits_with_one_write_and_one_fdatasync_of_the_record() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("fltrace");
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.arm(None);
    f.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let record = record_path(&f, user.uid()).display().to_string();
    assert_eq!(
        f.trace(),
        [format!("pwrite {record}"), format!("fdatasync {record}")],
        "SECURITY 10: one durable commit per attempt"
    );
}

#[test]
fn an_enrollment_at_login_commits_by_the_rename_protocol() {
    let f = Faulty::new(&configure());
    let user = TestUser::create("fltrren");
    mfa_stack(&f);
    f.arm(None);
    enroll_at_login(&f, &user).assert_success();
    let trace = f.trace();
    let record = record_path(&f, user.uid()).display().to_string();
    let state = f.state_dir().display().to_string();
    let temp = format!("{state}/.{}.tmp", user.uid());
    assert_eq!(trace.len(), 4, "{trace:?}");
    assert!(trace[0].starts_with(&format!("write {temp}")), "{trace:?}");
    assert!(trace[1].starts_with(&format!("fsync {temp}")), "{trace:?}");
    assert_eq!(trace[2], format!("rename {record}"));
    assert_eq!(trace[3], format!("fsync {state}"));
}

// ---------------------------------------------------------------------------
// SIGKILL during the in-place commit of a login

/// Kills a wrong-code login at `fault`; returns the failures counted
/// afterwards. The record must open, and the right code must then work.
fn kill_a_wrong_code_login(prefix: &str, fault: &str) -> u32 {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create(prefix);
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.arm(Some(fault));
    let t = f.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)));
    assert_killed_before(&f, &t, Op::Authenticate);
    // The record opens (status panics otherwise) with the state from
    // before or after the commit.
    let failures = status(&f, user.uid()).failures;
    f.disarm();
    let again = f.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    again.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    failures
}

#[test]
fn killed_before_writing_the_slot_keeps_the_old_state() {
    let failures = kill_a_wrong_code_login("flkw0", "pwrite:1:kill-before");
    assert_eq!(failures, 0);
}

#[test]
fn killed_after_writing_the_slot_keeps_the_new_state() {
    // SIGKILL loses no page cache: what was written is read back.
    let failures = kill_a_wrong_code_login("flkw1", "pwrite:1:kill-after");
    assert_eq!(failures, 1);
}

#[test]
fn killed_before_the_fdatasync_keeps_the_new_state() {
    let failures = kill_a_wrong_code_login("flks0", "fdatasync:1:kill-before");
    assert_eq!(failures, 1);
}

#[test]
fn killed_after_the_fdatasync_keeps_the_new_state() {
    let failures = kill_a_wrong_code_login("flks1", "fdatasync:1:kill-after");
    assert_eq!(failures, 1);
}

#[test]
fn a_slot_write_cut_after_its_ciphertext_keeps_a_whole_state() {
    // Half the slot holds the header and the whole ciphertext; the rest is
    // padding, zero before and after: the half-written slot is complete.
    let failures = kill_a_wrong_code_login("fltearh", "pwrite:1:tear");
    assert!(failures <= 1);
}

#[test]
fn a_torn_slot_write_falls_back_to_the_old_state_with_an_alert() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("fltear");
    let device = enroll(&f, &user);
    mfa_stack(&f);
    // The 46-byte header and the first bytes of the ciphertext only.
    f.arm(Some("pwrite:1:tear=100"));
    let t = f.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)));
    assert_killed_before(&f, &t, Op::Authenticate);
    let s = status(&f, user.uid());
    assert_eq!(s.failures, 0, "the torn commit is not the state");
    assert!(s.slot_discarded.is_some(), "{s:?}");
    f.disarm();
    let uid = user.uid().to_string();
    let next = f.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    next.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    expect_event(&next, "record_slot_discarded", &[("uid", &uid)]);
    // The successful commit overwrote the torn slot.
    assert!(status(&f, user.uid()).slot_discarded.is_none());
}

#[test]
fn a_right_code_killed_after_its_commit_is_used_up_but_never_granted() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("flkok");
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.arm(Some("fdatasync:1:kill-after"));
    let mut code = String::new();
    let t = f.converse(Converse::new("mfa", user.name()).answer_with(|_| {
        code = code_now(&device.secret);
        Some(code.clone())
    }));
    assert_killed_before(&f, &t, Op::Authenticate);
    f.disarm();
    // Committed before anything was revealed: the code is spent.
    let replay = f.converse(Converse::new("mfa", user.name()).answer(&code));
    replay.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&replay, "auth_replay", &[("user", user.name())]);
}

// ---------------------------------------------------------------------------
// SIGKILL during the rename protocol of an enrollment at login

/// Kills an enrollment at login at `fault`; returns whether the user ended
/// up enrolled. Afterwards the state opens, no stray file but a leftover
/// temporary file remains, and the user can finish logging in.
fn kill_an_enrollment(prefix: &str, fault: &str) -> bool {
    let f = Faulty::new(&configure());
    let user = TestUser::create(prefix);
    mfa_stack(&f);
    f.arm(Some(fault));
    let t = enroll_at_login(&f, &user);
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    assert_killed_before(&f, &t, Op::AcctMgmt);
    let s = status(&f, user.uid());
    let leftovers = strays(&f.state_dir(), &[]);
    assert!(
        leftovers
            .iter()
            .all(|n| n.starts_with(&format!(".{}.tmp", user.uid()))),
        "{leftovers:?}"
    );
    f.disarm();
    if s.enrolled {
        assert_eq!(s.devices.len(), 1);
        // Enrolled with the device whose code was just typed: the next
        // step's code logs in.
        forget_last_step(&f, user.uid());
    } else {
        enroll_at_login(&f, &user).assert_success();
    }
    assert!(status(&f, user.uid()).enrolled);
    s.enrolled
}

#[test]
fn an_enrollment_killed_before_writing_its_file_saves_nothing() {
    assert!(!kill_an_enrollment("flrw0", "write:1:kill-before"));
}

#[test]
fn an_enrollment_torn_while_writing_its_file_saves_nothing() {
    assert!(!kill_an_enrollment("flrwt", "write:1:tear"));
}

#[test]
fn an_enrollment_killed_before_syncing_its_file_saves_nothing() {
    assert!(!kill_an_enrollment("flrs0", "fsync:1:kill-before"));
}

#[test]
fn an_enrollment_killed_before_the_rename_saves_nothing() {
    assert!(!kill_an_enrollment("flrr0", "rename:1:kill-before"));
}

#[test]
fn an_enrollment_killed_after_the_rename_is_saved() {
    assert!(kill_an_enrollment("flrr1", "rename:1:kill-after"));
}

#[test]
fn an_enrollment_killed_after_syncing_the_directory_is_saved() {
    assert!(kill_an_enrollment("flrd1", "fsync:2:kill-after"));
}

// ---------------------------------------------------------------------------
// Write and sync errors (as a copy-on-write filesystem or a failing disk
// reports them: an in-place overwrite needs new blocks on btrfs)

#[test]
fn no_space_for_the_slot_write_denies_and_keeps_the_code_unused() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("flenosp");
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.arm(Some("pwrite:1:ENOSPC"));
    let mut code = String::new();
    let t = f.converse(Converse::new("mfa", user.name()).answer_with(|_| {
        code = code_now(&device.secret);
        Some(code.clone())
    }));
    t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
    assert!(f.fired());
    let line = expect_event(&t, "store_failure", &[("uid", &user.uid().to_string())]);
    assert!(
        line.get("reason")
            .is_some_and(|r| r.contains("No space left")),
        "{line:?}"
    );
    let s = status(&f, user.uid());
    assert_eq!((s.failures, s.devices[0].last_used_step), (0, None));
    // Nothing was used up: the same code works once the disk does.
    f.disarm();
    f.converse(Converse::new("mfa", user.name()).answer(&code))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

#[test]
fn an_io_error_from_the_fdatasync_denies_and_the_record_still_opens() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("fleio");
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.arm(Some("fdatasync:1:EIO"));
    let t = f.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
    expect_event(&t, "store_failure", &[("uid", &user.uid().to_string())]);
    // The slot write itself went through before the sync failed, so the
    // record may show the attempt; either way it opens and the user gets in
    // with the next code.
    let s = status(&f, user.uid());
    assert_eq!(s.failures, 0);
    f.disarm();
    forget_last_step(&f, user.uid());
    f.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

#[test]
fn a_failing_write_of_an_enrollment_denies_and_leaves_no_file() {
    let f = Faulty::new(&configure());
    let user = TestUser::create("flrenosp");
    mfa_stack(&f);
    f.arm(Some("write:1:ENOSPC"));
    let t = enroll_at_login(&f, &user);
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
        .assert_rc(Op::AcctMgmt, PamCode::AUTHINFO_UNAVAIL);
    expect_event(&t, "store_failure", &[("uid", &user.uid().to_string())]);
    assert!(!status(&f, user.uid()).enrolled);
    assert_eq!(strays(&f.state_dir(), &[]), Vec::<String>::new());
}

#[test]
fn a_failing_rename_of_an_enrollment_denies_and_leaves_no_file() {
    let f = Faulty::new(&configure());
    let user = TestUser::create("flrreio");
    mfa_stack(&f);
    f.arm(Some("rename:1:EIO"));
    let t = enroll_at_login(&f, &user);
    t.assert_rc(Op::AcctMgmt, PamCode::AUTHINFO_UNAVAIL);
    expect_event(&t, "store_failure", &[("uid", &user.uid().to_string())]);
    assert!(!status(&f, user.uid()).enrolled);
    assert_eq!(strays(&f.state_dir(), &[]), Vec::<String>::new());
}

/// SECURITY 14: an error on commit denies and leaves the old state. Here the
/// directory fsync after the rename fails: `acct_mgmt` denies, but the new
/// record is already in place, so the refused user ends up enrolled with a
/// device whose recovery codes were never shown.
#[test]
fn a_failing_directory_sync_of_an_enrollment_denies_and_keeps_the_old_state() {
    let f = Faulty::new(&configure());
    let user = TestUser::create("flrdeio");
    mfa_stack(&f);
    f.arm(Some("fsync:2:EIO"));
    let t = enroll_at_login(&f, &user);
    t.assert_rc(Op::AcctMgmt, PamCode::AUTHINFO_UNAVAIL);
    assert!(
        !status(&f, user.uid()).enrolled,
        "the login was refused, yet the enrollment was saved\n{t}"
    );
}

// ---------------------------------------------------------------------------
// A full and a read-only state directory (a real tmpfs)

#[test]
fn a_full_state_directory_still_lets_logins_commit_in_place() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("flfull");
    let small = SmallFs::mount(&f.state_dir(), 256);
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.disarm();
    assert!(small.fill("filler") > 0);
    // The slots were allocated at enrollment: a login needs no new space.
    let wrong = f.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)));
    wrong.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert_eq!(status(&f, user.uid()).failures, 1);
    f.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    assert_eq!(status(&f, user.uid()).failures, 0);
    drop(small);
}

#[test]
fn an_enrollment_on_a_full_state_directory_denies_and_leaves_nothing() {
    let f = Faulty::new(&configure());
    let enrolled = TestUser::create("flfulla");
    let newcomer = TestUser::create("flfullb");
    let small = SmallFs::mount(&f.state_dir(), 256);
    let device = enroll(&f, &enrolled);
    mfa_stack(&f);
    f.disarm();
    small.fill("filler");
    let t = enroll_at_login(&f, &newcomer);
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
        .assert_rc(Op::AcctMgmt, PamCode::AUTHINFO_UNAVAIL);
    let line = expect_event(&t, "store_failure", &[("uid", &newcomer.uid().to_string())]);
    assert!(
        line.get("reason")
            .is_some_and(|r| r.contains("No space left")),
        "{line:?}"
    );
    assert!(!status(&f, newcomer.uid()).enrolled);
    assert_eq!(strays(&f.state_dir(), &["filler"]), Vec::<String>::new());
    // The other user's record is untouched and works.
    f.converse(
        Converse::new("mfa", enrolled.name()).answer_with(|_| Some(code_now(&device.secret))),
    )
    .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    // With room again, the same user enrolls.
    fs::remove_file(f.state_dir().join("filler")).unwrap();
    enroll_at_login(&f, &newcomer).assert_success();
    drop(small);
}

#[test]
fn a_read_only_state_directory_denies_every_login_and_loses_nothing() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("flrofs");
    let small = SmallFs::mount(&f.state_dir(), 256);
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.disarm();
    // One failure before, to see it kept.
    f.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let before = fs::read(record_path(&f, user.uid())).unwrap();
    small.set_read_only(true);
    let uid = user.uid().to_string();
    for answer in [code_now(&device.secret), wrong_code(&device.secret)] {
        let t = f.converse(Converse::new("mfa", user.name()).answer(&answer));
        t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
        let line = expect_event(&t, "store_failure", &[("uid", &uid)]);
        assert!(
            line.get("reason").is_some_and(|r| r.contains("Read-only")),
            "{line:?}"
        );
    }
    small.set_read_only(false);
    assert_eq!(fs::read(record_path(&f, user.uid())).unwrap(), before);
    assert_eq!(status(&f, user.uid()).failures, 1);
    f.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    drop(small);
}

// ---------------------------------------------------------------------------
// The lock and the key

#[test]
fn a_lock_taken_while_the_user_types_fails_closed_and_counts_nothing() {
    // module_records.rs holds the lock before the prompt; here another
    // process takes it between the prompt and the answer, so the module
    // waits for it in the verify-and-commit step.
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("fllock");
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.disarm();
    let lock_path = f.state_dir().join(format!("{}.lock", user.uid()));
    let mut held = None;
    let mut code = String::new();
    let start = Instant::now();
    let t = f.converse(Converse::new("mfa", user.name()).answer_with(|p| {
        assert_eq!(p.msg, CODE_PROMPT);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock_path)
            .expect("the module made the lock file");
        held = Some(
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .expect("lock"),
        );
        code = code_now(&device.secret);
        Some(code.clone())
    }));
    let waited = start.elapsed();
    t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(30)).contains(&waited),
        "waited {waited:?}\n{t}"
    );
    expect_event(&t, "store_failure", &[("uid", &user.uid().to_string())]);
    drop(held);
    let s = status(&f, user.uid());
    assert_eq!((s.failures, s.devices[0].last_used_step), (0, None), "{t}");
    f.converse(Converse::new("mfa", user.name()).answer(&code))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

/// Replaces the key file with `broken`, checks that a login is refused
/// before any prompt and logged, then restores it and logs in with the
/// record as it was.
fn a_broken_key_is_refused(prefix: &str, broken: impl FnOnce(&std::path::Path)) {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create(prefix);
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.disarm();
    let key = f.key_file();
    let saved = fs::read(&key).unwrap();
    let record = fs::read(record_path(&f, user.uid())).unwrap();
    fs::remove_file(&key).unwrap();
    broken(&key);
    let t = f.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
    assert!(t.prompts().is_empty(), "{t}");
    expect_event(&t, "key_failure", &[("service", "mfa")]);
    let _ = fs::remove_file(&key);
    let _ = fs::remove_dir(&key);
    fs::write(&key, saved).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::read(record_path(&f, user.uid())).unwrap(), record);
    f.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

#[test]
fn a_key_file_of_garbage_is_refused_and_loses_nothing() {
    a_broken_key_is_refused("flkeyjunk", |key| {
        fs::write(key, "not a key\n").unwrap();
        fs::set_permissions(key, fs::Permissions::from_mode(0o600)).unwrap();
    });
}

#[test]
fn a_truncated_key_file_is_refused_and_loses_nothing() {
    a_broken_key_is_refused("flkeytrunc", |key| {
        fs::write(key, "").unwrap();
        fs::set_permissions(key, fs::Permissions::from_mode(0o600)).unwrap();
    });
}

#[test]
fn a_fifo_as_key_file_is_refused_without_hanging() {
    a_broken_key_is_refused("flkeyfifo", |key| {
        nix::unistd::mkfifo(key, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    });
}

#[test]
fn a_directory_as_key_file_is_refused() {
    a_broken_key_is_refused("flkeydir", |key| {
        fs::create_dir(key).unwrap();
        fs::set_permissions(key, fs::Permissions::from_mode(0o700)).unwrap();
    });
}

// ---------------------------------------------------------------------------
// A state directory on a network filesystem

/// `f_type` values of filesystems whose locking and sync semantics the
/// store cannot rely on: NFS, CIFS, SMB2 and FUSE.
const NETWORK_FILESYSTEMS: [(&str, u32); 4] = [
    ("NFS", 0x6969),
    ("CIFS", 0xFF53_4D42),
    ("SMB2", 0xFE53_4D42),
    ("FUSE", 0x6573_5546),
];

/// flock on NFS is emulated with byte-range locks through the lock daemon,
/// fdatasync does not mean the same thing, and a server can serve one
/// record to two hosts: the per-user lock and replay protection stop being
/// sound. The store refuses such a state directory (`statfs` `f_type`),
/// denies and logs.
#[test]
fn a_state_directory_on_a_network_filesystem_is_refused() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("flnfs");
    let device = enroll(&f, &user);
    mfa_stack(&f);
    for (name, magic) in NETWORK_FILESYSTEMS {
        f.arm_statfs(magic);
        let t = f.converse(
            Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
        );
        assert_eq!(
            t.rc(Op::Authenticate),
            Some(PamCode::AUTHINFO_UNAVAIL),
            "a state directory on {name} was used\n{t}"
        );
        forget_last_step(&f, user.uid());
    }
}

// ---------------------------------------------------------------------------
// A panic inside the module

/// A panic must unwind to the catch at the PAM boundary and deny, also in
/// a C program that never loaded the GCC unwinder library itself (the
/// module links its unwinder statically; sshd and sudo are such programs).
/// The standard library panics when the wall clock cannot be read.
#[test]
fn a_panic_in_a_c_application_is_caught_denied_and_logged() {
    let f = Faulty::new(ROOMY);
    let user = TestUser::create("flpanic");
    let device = enroll(&f, &user);
    mfa_stack(&f);
    f.arm_clock_failure();
    let run = f.pamtester(
        "mfa",
        user.name(),
        &["authenticate"],
        &[&code_now(&device.secret)],
    );
    assert!(!run.timed_out(), "pamtester hung\n{run}");
    assert!(
        run.code().is_some(),
        "pamtester died of a signal: the panic was not caught\n{run}"
    );
    run.assert_failure();
    assert!(run.stderr.contains("System error"), "{run}");
    f.syslog()
        .wait_for(
            |l| {
                l.tag == "pam_mfa"
                    && l.message.starts_with("event=internal_error")
                    && l.message.contains("panic caught at the PAM boundary")
            },
            common::WAIT,
        )
        .expect("the caught panic is logged");

    f.disarm();
    let after = f.pamtester(
        "mfa",
        user.name(),
        &["authenticate"],
        &[&code_now(&device.secret)],
    );
    after.assert_success();
}

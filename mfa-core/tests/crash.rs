//! Commits interrupted at every step, by an error or by SIGKILL, leave the
//! old state or the new one; and two processes racing to use the same TOTP
//! step for one user: exactly one wins.
//!
//! Each scenario re-runs this test binary as child processes (see
//! `common::spawn_child`) so that a real process dies mid-commit.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{child_output, child_role, spawn_child, Fixture, SECRET};
use mfa_core::fsutil::RenameStep;
use mfa_core::input::parse_totp;
use mfa_core::record::Record;
use mfa_core::store::{decode_record_file, CommitStep};
use mfa_core::totp::{code_at_step, verify, Verdict};

const UID: u32 = 4242;

const STEPS: [CommitStep; 7] = [
    CommitStep::BeforeSlotWrite,
    CommitStep::SlotWritten,
    CommitStep::SlotSynced,
    CommitStep::Rename(RenameStep::TempCreated),
    CommitStep::Rename(RenameStep::TempWritten),
    CommitStep::Rename(RenameStep::TempSynced),
    CommitStep::Rename(RenameStep::Renamed),
];

fn step_name(step: CommitStep) -> String {
    format!("{step:?}")
}

fn step_by_name(name: &str) -> CommitStep {
    STEPS
        .into_iter()
        .find(|s| step_name(*s) == name)
        .expect("known step")
}

fn is_rename(step: CommitStep) -> bool {
    matches!(step, CommitStep::Rename(_))
}

/// The state the child tries to commit, derived from the one on disk.
fn next_state(old: &Record) -> Record {
    let mut new = old.clone();
    new.devices[0].last_used_step = Some(old.devices[0].last_used_step.unwrap_or(0) + 1);
    new.failures += 1;
    new
}

/// Child: commit the next state, stopping at `step` by SIGKILL or an error.
fn commit_child(root: &Path, step: CommitStep, how: &str) {
    let f = Fixture::at(root);
    let kill = how == "kill";
    let store = f.store().with_fault_injection(move |at| {
        if at != step {
            return Ok(());
        }
        if kill {
            nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL)
                .expect("kill self");
        }
        Err(io::Error::other("injected failure"))
    });
    let mut user = store.open_user(UID, &f.keys).expect("open");
    let new = next_state(user.record().expect("enrolled"));
    let result = if is_rename(step) {
        user.rewrite(&new, &f.keys)
    } else {
        user.commit(&new, &f.keys).map(|_| ())
    };
    match result {
        Ok(()) => println!("child: committed"),
        Err(e) => println!("child: failed: {e}"),
    }
}

fn interrupted_commit_leaves_old_or_new(how: &str) {
    for step in STEPS {
        let f = Fixture::new();
        let mut old = f.enroll(UID);
        // A first in-place commit, so that both slots hold a state.
        old.devices[0].last_used_step = Some(10);
        f.store()
            .open_user(UID, &f.keys)
            .unwrap()
            .commit(&old, &f.keys)
            .unwrap();
        let new = next_state(&old);
        let root = f.root().to_str().unwrap().to_owned();
        let child = spawn_child(
            &format!("crash_child_{how}"),
            "commit",
            &[("FIXTURE", &root), ("STEP", &step_name(step))],
        );
        let out = child_output(child);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if how == "kill" {
            assert_eq!(
                signal_of(&out),
                Some(nix::sys::signal::Signal::SIGKILL),
                "{step:?}: child was not killed: {stdout}"
            );
        } else {
            assert!(stdout.contains("child: failed: "), "{step:?}: {stdout}");
        }
        let store = f.store();
        let user = store
            .open_user(UID, &f.keys)
            .unwrap_or_else(|e| panic!("{step:?}: {e}"));
        let state = user.record().expect("still enrolled");
        assert!(
            *state == old || *state == new,
            "{step:?}: a state that was never committed"
        );
        // Before anything reached the file, the old state must be intact.
        if matches!(
            step,
            CommitStep::BeforeSlotWrite
                | CommitStep::Rename(
                    RenameStep::TempCreated | RenameStep::TempWritten | RenameStep::TempSynced
                )
        ) {
            assert_eq!(*state, old, "{step:?}");
        }
        // An injected error cleans up its temporary file; only a killed
        // process can leave one behind.
        if how == "fail" {
            assert_eq!(
                leftovers(&f.root().join("users")),
                Vec::<PathBuf>::new(),
                "{step:?}"
            );
        }
        // A further commit works on top of whatever was left.
        drop(user);
        let mut user = store.open_user(UID, &f.keys).unwrap();
        let again = next_state(user.record().unwrap());
        user.commit(&again, &f.keys).unwrap();
    }
}

fn signal_of(out: &std::process::Output) -> Option<nix::sys::signal::Signal> {
    use std::os::unix::process::ExitStatusExt;
    out.status
        .signal()
        .and_then(|s| nix::sys::signal::Signal::try_from(s).ok())
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

fn run_as_child_if_asked(how: &str) -> bool {
    if child_role().as_deref() != Some("commit") {
        return false;
    }
    let root = PathBuf::from(std::env::var("FIXTURE").unwrap());
    commit_child(&root, step_by_name(&std::env::var("STEP").unwrap()), how);
    true
}

#[test]
fn crash_child_kill() {
    if run_as_child_if_asked("kill") {
        return;
    }
    interrupted_commit_leaves_old_or_new("kill");
}

#[test]
fn crash_child_fail() {
    if run_as_child_if_asked("fail") {
        return;
    }
    interrupted_commit_leaves_old_or_new("fail");
}

#[test]
fn a_torn_slot_write_at_any_byte_leaves_the_previous_state() {
    let f = Fixture::new();
    let mut first = f.enroll(UID);
    first.devices[0].last_used_step = Some(1);
    let store = f.store();
    store
        .open_user(UID, &f.keys)
        .unwrap()
        .commit(&first, &f.keys)
        .unwrap();
    let before = std::fs::read(f.record_path(UID)).unwrap();
    let second = next_state(&first);
    store
        .open_user(UID, &f.keys)
        .unwrap()
        .commit(&second, &f.keys)
        .unwrap();
    let after = std::fs::read(f.record_path(UID)).unwrap();
    let slot = after.len() / 2;
    // The commit rewrote exactly one slot; find it.
    let target = if before[..slot] == after[..slot] {
        slot
    } else {
        0
    };
    assert_eq!(
        before[slot - target..2 * slot - target],
        after[slot - target..2 * slot - target]
    );
    for cut in (0..slot).step_by(7) {
        // Front written, rest old; and rest written, front old.
        let mut head = before.clone();
        head[target..target + cut].copy_from_slice(&after[target..target + cut]);
        let mut tail = before.clone();
        tail[target + cut..target + slot].copy_from_slice(&after[target + cut..target + slot]);
        for (which, torn) in [("head", head), ("tail", tail)] {
            let (state, discarded) = decode_record_file(&torn, UID, &f.keys)
                .unwrap_or_else(|e| panic!("{which} cut {cut}: {e}"));
            if torn == after {
                assert_eq!(state, second);
            } else if torn != before {
                assert_eq!(state, first, "{which} cut {cut}");
                assert!(discarded.is_some(), "{which} cut {cut}");
            }
        }
    }
}

/// Child: wait for the start signal, then try to use the code of `STEP`.
fn race_child(root: &Path, go: &Path, step: u64) {
    let f = Fixture::at(root);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !go.exists() {
        assert!(Instant::now() < deadline, "start signal never came");
        std::thread::yield_now();
    }
    let store = f.store();
    let mut user = store.open_user(UID, &f.keys).expect("open");
    let mut record = user.record().expect("enrolled").clone();
    let device = &record.devices[0];
    let code = code_at_step(SECRET, device.params, step);
    let code = parse_totp(code.as_bytes(), 6).expect("code");
    let now = step * u64::from(device.params.period);
    match verify(
        &device.secret,
        device.params,
        1,
        now,
        device.last_used_step,
        &code,
    ) {
        Verdict::Accepted { step } => {
            record.devices[0].last_used_step = Some(step);
            user.commit(&record, &f.keys).expect("commit");
            println!("race: won");
        }
        Verdict::Replayed { .. } => println!("race: lost"),
        Verdict::Rejected => println!("race: rejected"),
    }
}

#[test]
fn two_processes_using_the_same_fresh_step_exactly_one_wins() {
    if child_role().as_deref() == Some("race") {
        let root = PathBuf::from(std::env::var("FIXTURE").unwrap());
        let go = PathBuf::from(std::env::var("GO").unwrap());
        race_child(&root, &go, std::env::var("STEP").unwrap().parse().unwrap());
        return;
    }
    let f = Fixture::new();
    f.enroll(UID);
    let root = f.root().to_str().unwrap().to_owned();
    for round in 0..20u64 {
        let step = 56_666_666 + round;
        let go = f.root().join(format!("go-{round}"));
        let go_s = go.to_str().unwrap().to_owned();
        let step_s = step.to_string();
        let vars = [
            ("FIXTURE", root.as_str()),
            ("GO", go_s.as_str()),
            ("STEP", step_s.as_str()),
        ];
        let test = "two_processes_using_the_same_fresh_step_exactly_one_wins";
        let a = spawn_child(test, "race", &vars);
        let b = spawn_child(test, "race", &vars);
        std::fs::write(&go, b"").unwrap();
        let outs = [child_output(a), child_output(b)];
        let said: Vec<String> = outs
            .iter()
            .map(|o| {
                assert!(
                    o.status.success(),
                    "round {round}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                let s = String::from_utf8_lossy(&o.stdout);
                // libtest prints "test <name> ... " before the child's own line.
                ["race: won", "race: lost", "race: rejected"]
                    .into_iter()
                    .find(|w| s.contains(w))
                    .map_or_else(|| format!("race: silent: {s}"), str::to_owned)
            })
            .collect();
        let won = said.iter().filter(|s| *s == "race: won").count();
        let lost = said.iter().filter(|s| *s == "race: lost").count();
        assert_eq!((won, lost), (1, 1), "round {round}: {said:?}");
        let store = f.store();
        let user = store.open_user(UID, &f.keys).unwrap();
        assert_eq!(user.record().unwrap().devices[0].last_used_step, Some(step));
    }
}

//! The login's transaction helper on the files backend: decide on a
//! snapshot, commit only over the record it saw, and decide again (under
//! the user's lock) when another login committed in between. Giving up
//! after `MAX_ATTEMPTS` is the PostgreSQL backend's, tested in
//! `mfa-core/src/store.rs`.

mod common;

use common::Fixture;
use mfa_core::record::Record;
use mfa_core::store::Decision;

const UID: u32 = 1000;

/// Another login's commit: the failure count goes up by one.
fn count_a_failure(f: &Fixture) {
    let store = f.store();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    let mut record = state.record().cloned().unwrap();
    record.failures += 1;
    state.commit(&record, &f.keys).unwrap();
}

fn failures(f: &Fixture) -> u32 {
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    state.record().unwrap().failures
}

fn plus_one(record: &Record) -> Record {
    let mut next = record.clone();
    next.failures += 1;
    next
}

#[test]
fn an_unchanged_record_commits_on_the_first_decision() {
    let f = Fixture::new();
    f.enroll(UID);
    let store = f.store();
    let snapshot = store.read(UID, &f.keys).unwrap();
    let mut decisions = 0;
    let answer = store
        .transact(snapshot, &f.keys, |snap| {
            decisions += 1;
            Decision::Write(plus_one(snap.record().unwrap()), "committed")
        })
        .unwrap();
    assert_eq!((answer, decisions), ("committed", 1));
    assert_eq!(failures(&f), 1);
}

#[test]
fn a_commit_in_between_makes_the_login_decide_again_on_the_new_record() {
    let f = Fixture::new();
    f.enroll(UID);
    let store = f.store();
    // Read before the prompt; another session fails while the user types.
    let snapshot = store.read(UID, &f.keys).unwrap();
    count_a_failure(&f);
    let mut seen = Vec::new();
    store
        .transact(snapshot, &f.keys, |snap| {
            let record = snap.record().unwrap();
            seen.push(record.failures);
            Decision::Write(plus_one(record), ())
        })
        .unwrap();
    // The first decision (on the stale record) lost; the second saw the
    // other session's failure, so neither count is lost.
    assert_eq!(seen, [0, 1]);
    assert_eq!(failures(&f), 2);
}

#[test]
fn a_re_enrollment_in_between_is_a_change_even_at_the_same_sequence_number() {
    let f = Fixture::new();
    f.enroll(UID);
    let store = f.store();
    let snapshot = store.read(UID, &f.keys).unwrap();
    // Reset and enroll again: a new file whose slot sequence starts over,
    // so only the file's identity tells it from the one read.
    mfa_core::admin::reset(&store, UID, &f.keys).unwrap();
    f.enroll(UID);
    let mut decisions = 0;
    store
        .transact(snapshot, &f.keys, |snap| {
            decisions += 1;
            Decision::Write(plus_one(snap.record().unwrap()), ())
        })
        .unwrap();
    assert_eq!(decisions, 2);
    assert_eq!(failures(&f), 1);
}

#[test]
fn keeping_writes_nothing() {
    let f = Fixture::new();
    f.enroll(UID);
    let before = std::fs::read(f.record_path(UID)).unwrap();
    let store = f.store();
    let snapshot = store.read(UID, &f.keys).unwrap();
    let answer = store
        .transact(snapshot, &f.keys, |_| Decision::Keep(7))
        .unwrap();
    assert_eq!(answer, 7);
    assert_eq!(std::fs::read(f.record_path(UID)).unwrap(), before);
}

#[test]
fn the_second_decision_is_made_under_the_lock_and_cannot_lose() {
    // Files: another login commits while the first decision is made; the
    // commit then finds the record changed and decides again under the
    // user's lock, where nothing else commits, so there is no third try and
    // no giving up however busy the user's record is.
    let f = Fixture::new();
    f.enroll(UID);
    let store = f.store();
    let snapshot = store.read(UID, &f.keys).unwrap();
    let mut decisions = 0;
    store
        .transact(snapshot, &f.keys, |snap| {
            decisions += 1;
            if decisions == 1 {
                count_a_failure(&f);
            }
            Decision::Write(plus_one(snap.record().unwrap()), ())
        })
        .unwrap();
    assert_eq!(decisions, 2);
    assert_eq!(failures(&f), 2);
}

#[test]
fn a_record_removed_in_between_is_seen_as_gone() {
    let f = Fixture::new();
    f.enroll(UID);
    let store = f.store();
    let snapshot = store.read(UID, &f.keys).unwrap();
    mfa_core::admin::reset(&store, UID, &f.keys).unwrap();
    let enrolled = store
        .transact(snapshot, &f.keys, |snap| match snap.record() {
            Some(r) => Decision::Write(plus_one(r), true),
            None => Decision::Keep(false),
        })
        .unwrap();
    assert!(!enrolled);
    assert!(!f.record_path(UID).exists());
}

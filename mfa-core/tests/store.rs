//! The record store: round trips, strict opening, every corruption refused.

mod common;

use std::time::Duration;

use common::{sample_record, set_mode, Fixture};
use mfa_core::fsutil::{FileProblem, FileTrust};
use mfa_core::keys::MasterKey;
use mfa_core::record::{LastSuccess, Record};
use mfa_core::store::{
    decode_record_file, CommitKind, SlotFault, Store, StoreError, MAX_RECORD_FILE,
};

const UID: u32 = 1000;

/// Enrolls, then commits one login so both slots hold a state. Returns the
/// file after enrollment, after the login, and the two records.
fn two_states(f: &Fixture) -> (Vec<u8>, Vec<u8>, Record, Record) {
    let first = f.enroll(UID);
    let before = std::fs::read(f.record_path(UID)).unwrap();
    let store = f.store();
    let mut user = store.open_user(UID, &f.keys).unwrap();
    let mut second = first.clone();
    second.devices[0].last_used_step = Some(42);
    second.last_success = Some(LastSuccess::new(1_700_000_100, "sshd", "192.0.2.1", ""));
    assert_eq!(user.commit(&second, &f.keys).unwrap(), CommitKind::InPlace);
    drop(user);
    let after = std::fs::read(f.record_path(UID)).unwrap();
    (before, after, first, second)
}

#[test]
fn an_absent_record_means_not_enrolled() {
    let f = Fixture::new();
    let store = f.store();
    let user = store.open_user(UID, &f.keys).unwrap();
    assert!(user.record().is_none());
    assert!(matches!(
        user.require_record(),
        Err(StoreError::NotEnrolled { uid: UID })
    ));
}

#[test]
fn an_enrolled_record_reads_back_exactly() {
    let f = Fixture::new();
    let written = f.enroll(UID);
    let store = f.store();
    let user = store.open_user(UID, &f.keys).unwrap();
    assert_eq!(user.record(), Some(&written));
    assert_eq!(user.generations(), &[1]);
    assert!(user.discarded_slot().is_none());
    let meta = std::fs::metadata(f.record_path(UID)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn a_login_commit_is_in_place_and_alternates_slots() {
    let f = Fixture::new();
    let mut record = f.enroll(UID);
    let store = f.store();
    let size = std::fs::metadata(f.record_path(UID)).unwrap().len();
    for step in 1..=5u64 {
        let mut user = store.open_user(UID, &f.keys).unwrap();
        record.devices[0].last_used_step = Some(step);
        assert_eq!(user.commit(&record, &f.keys).unwrap(), CommitKind::InPlace);
        drop(user);
        let user = store.open_user(UID, &f.keys).unwrap();
        assert_eq!(user.record().unwrap().devices[0].last_used_step, Some(step));
        // Both slots are valid after the first in-place commit: no slot discarded.
        assert!(user.discarded_slot().is_none());
    }
    assert_eq!(std::fs::metadata(f.record_path(UID)).unwrap().len(), size);
}

#[test]
fn a_record_that_outgrows_its_slot_is_rewritten() {
    let f = Fixture::new();
    let mut record = f.enroll(UID);
    let store = f.store();
    let mut user = store.open_user(UID, &f.keys).unwrap();
    for i in 0..7 {
        let mut d = record.devices[0].clone();
        d.name = format!("device-{i}-{}", "x".repeat(50));
        record.devices.push(d);
    }
    assert_eq!(
        user.commit(&record, &f.keys).unwrap(),
        CommitKind::Rewritten
    );
    drop(user);
    assert_eq!(
        store.open_user(UID, &f.keys).unwrap().record(),
        Some(&record)
    );
}

#[test]
fn a_record_breaking_a_bound_is_not_written() {
    let f = Fixture::new();
    let mut record = f.enroll(UID);
    let store = f.store();
    let mut user = store.open_user(UID, &f.keys).unwrap();
    record.devices[0].name = "n".repeat(65);
    assert!(matches!(
        user.commit(&record, &f.keys),
        Err(StoreError::TooLarge(_))
    ));
}

#[test]
fn records_survive_rotation_and_migrate_to_the_active_generation() {
    let mut f = Fixture::new();
    let record = f.enroll(UID);
    f.keys.rotate(1_700_000_500).unwrap();
    let store = f.store();
    let mut user = store.open_user(UID, &f.keys).unwrap();
    assert_eq!(user.record(), Some(&record));
    assert_eq!(user.generations(), &[1]);
    user.rewrite(&record, &f.keys).unwrap();
    drop(user);
    let user = store.open_user(UID, &f.keys).unwrap();
    assert_eq!(user.generations(), &[2]);
    drop(user);
    f.keys.retire(1).unwrap();
    assert_eq!(
        store.open_user(UID, &f.keys).unwrap().record(),
        Some(&record)
    );
}

#[test]
fn an_in_place_commit_after_rotation_leaves_the_old_generation_in_the_other_slot() {
    let mut f = Fixture::new();
    let mut record = f.enroll(UID);
    f.keys.rotate(1).unwrap();
    let store = f.store();
    let mut user = store.open_user(UID, &f.keys).unwrap();
    record.failures = 1;
    assert_eq!(user.commit(&record, &f.keys).unwrap(), CommitKind::InPlace);
    drop(user);
    let user = store.open_user(UID, &f.keys).unwrap();
    let mut gens = user.generations().to_vec();
    gens.sort_unstable();
    // Generation 1 is still in use, so it must not be retired yet.
    assert_eq!(gens, [1, 2]);
}

#[test]
fn reset_removes_the_record_and_keeps_the_lock_file() {
    let f = Fixture::new();
    f.enroll(UID);
    let store = f.store();
    let mut user = store.open_user(UID, &f.keys).unwrap();
    user.remove().unwrap();
    assert!(user.record().is_none());
    drop(user);
    assert!(!f.record_path(UID).exists());
    assert!(f.root().join("users/1000.lock").exists());
    assert!(store.open_user(UID, &f.keys).unwrap().record().is_none());
}

#[test]
fn uids_lists_only_canonical_record_names() {
    let f = Fixture::new();
    f.enroll(5);
    f.enroll(1000);
    for junk in ["007", "+9", "12.lock", ".1000.tmp1", "abc"] {
        std::fs::write(f.root().join("users").join(junk), b"").unwrap();
    }
    assert_eq!(f.store().uids().unwrap(), vec![5, 1000]);
}

#[test]
fn a_held_lock_makes_a_second_open_wait_then_fail() {
    let f = Fixture::new();
    f.enroll(UID);
    let store = f.store();
    let held = store.open_user(UID, &f.keys).unwrap();
    let impatient = f.store().with_lock_timeout(Duration::from_millis(150));
    let err = impatient.open_user(UID, &f.keys).unwrap_err();
    assert!(
        matches!(err, StoreError::LockTimeout { uid: UID, .. }),
        "{err}"
    );
    // Other users are not affected.
    assert!(impatient.open_user(UID + 1, &f.keys).is_ok());
    drop(held);
    assert!(impatient.open_user(UID, &f.keys).is_ok());
}

// ---- SECURITY item 12: the files themselves ----

fn open_err(f: &Fixture, store: &Store) -> StoreError {
    store.open_user(UID, &f.keys).unwrap_err()
}

#[test]
fn a_symlinked_record_is_refused() {
    let f = Fixture::new();
    f.enroll(UID);
    let real = f.root().join("elsewhere");
    std::fs::rename(f.record_path(UID), &real).unwrap();
    std::os::unix::fs::symlink(&real, f.record_path(UID)).unwrap();
    let err = open_err(&f, &f.store());
    assert!(
        matches!(&err, StoreError::Unreadable(e) if matches!(e.problem, FileProblem::Symlink)),
        "{err}"
    );
}

#[test]
fn a_fifo_in_place_of_a_record_is_refused_without_hanging() {
    let f = Fixture::new();
    nix::unistd::mkfifo(
        &f.record_path(UID),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let err = open_err(&f, &f.store());
    assert!(
        matches!(&err, StoreError::Unreadable(e) if matches!(e.problem, FileProblem::WrongType(_))),
        "{err}"
    );
}

#[test]
fn a_directory_in_place_of_a_record_is_refused() {
    let f = Fixture::new();
    std::fs::create_dir(f.record_path(UID)).unwrap();
    let err = open_err(&f, &f.store());
    assert!(
        matches!(&err, StoreError::Unreadable(e) if matches!(e.problem, FileProblem::WrongType(_))),
        "{err}"
    );
}

#[test]
fn a_record_readable_or_writable_by_others_is_refused() {
    let f = Fixture::new();
    f.enroll(UID);
    for mode in [0o640, 0o604, 0o660, 0o606] {
        set_mode(&f.record_path(UID), mode);
        let err = open_err(&f, &f.store());
        assert!(
            matches!(&err, StoreError::Unreadable(e) if matches!(e.problem, FileProblem::WrongMode { .. })),
            "{mode:o}: {err}"
        );
    }
}

#[test]
fn a_record_owned_by_someone_else_is_refused() {
    let f = Fixture::new();
    f.enroll(UID);
    // Expecting another owner exercises the same fstat check as a chown would.
    let me = nix::unistd::geteuid().as_raw();
    let strict = Store::new(
        f.root().join("users"),
        FileTrust::insecure_owner_for_tests(me + 1),
    );
    let err = strict.open_user(UID, &f.keys).unwrap_err();
    assert!(
        matches!(err, StoreError::Directory(_) | StoreError::Unreadable(_)),
        "{err}"
    );
    // With the directory trusted, the record's own owner check fires.
    if me == 0 {
        nix::unistd::chown(
            &f.record_path(UID),
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
        let err = open_err(&f, &f.store());
        assert!(
            matches!(&err, StoreError::Unreadable(e) if matches!(e.problem, FileProblem::WrongOwner { .. })),
            "{err}"
        );
    }
}

#[test]
fn an_unsafe_state_directory_is_refused() {
    let f = Fixture::new();
    f.enroll(UID);
    for mode in [0o750, 0o705, 0o770, 0o777] {
        set_mode(&f.root().join("users"), mode);
        let err = open_err(&f, &f.store());
        assert!(matches!(err, StoreError::Directory(_)), "{mode:o}: {err}");
    }
    set_mode(&f.root().join("users"), 0o700);
    std::fs::remove_dir_all(f.root().join("users")).unwrap();
    assert!(matches!(open_err(&f, &f.store()), StoreError::Directory(ref e) if e.is_missing()));
}

#[test]
fn an_oversized_record_file_is_refused_before_reading() {
    let f = Fixture::new();
    f.enroll(UID);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(f.record_path(UID))
        .unwrap();
    file.set_len(MAX_RECORD_FILE + 1).unwrap();
    let err = open_err(&f, &f.store());
    assert!(
        matches!(&err, StoreError::Unreadable(e) if matches!(e.problem, FileProblem::TooLarge { .. })),
        "{err}"
    );
}

// ---- SECURITY item 13: every corruption is refused, never "not enrolled" ----

#[test]
fn every_bit_flip_in_a_fresh_record_is_refused_or_harmless() {
    let f = Fixture::new();
    let record = f.enroll(UID);
    let bytes = std::fs::read(f.record_path(UID)).unwrap();
    let slot = bytes.len() / 2;
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << bit;
            match decode_record_file(&bad, UID, &f.keys) {
                // Slot A holds the only state: any change to it is refused.
                Err(e) => assert!(i < slot, "byte {i}: {e}"),
                // Slot B is empty; damage there cannot change the state, and is reported.
                Ok((r, discarded)) => {
                    assert!(i >= slot, "byte {i} bit {bit} accepted");
                    assert_eq!(r, record);
                    assert!(discarded.is_some());
                }
            }
        }
    }
}

#[test]
fn a_bit_flip_in_a_two_slot_record_yields_a_committed_state_or_a_refusal() {
    let f = Fixture::new();
    let (_, bytes, first, second) = two_states(&f);
    let slot = bytes.len() / 2;
    let mut fallbacks = 0;
    for i in (0..bytes.len()).step_by(3) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        match decode_record_file(&bad, UID, &f.keys) {
            Ok((r, discarded)) => {
                // Damage to one slot is always reported...
                assert!(discarded.is_some(), "byte {i}");
                // ...and the state is one that was really committed: the newest
                // if the older slot was hit, the one before if the newer was.
                assert!(r == second || r == first, "byte {i}");
                if r == first {
                    fallbacks += 1;
                    assert!(i >= slot, "newest state lives in slot B");
                }
            }
            Err(e) => panic!("one damaged slot must not lose the other: byte {i}: {e}"),
        }
    }
    assert!(fallbacks > 0);
}

#[test]
fn a_record_under_another_master_key_is_wrong_key() {
    let f = Fixture::new();
    f.enroll(UID);
    let other = MasterKey::generate(1).unwrap();
    let err = f.store().open_user(UID, &other).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongKey {
                generation: 1,
                missing: false,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_record_under_a_generation_the_key_file_lacks_is_wrong_key() {
    let mut f = Fixture::new();
    f.enroll(UID);
    f.keys.rotate(1).unwrap();
    f.keys.retire(1).unwrap();
    let err = f.store().open_user(UID, &f.keys).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongKey {
                generation: 1,
                missing: true,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_record_copied_to_another_uid_is_refused() {
    let f = Fixture::new();
    let (_, bytes, _, _) = two_states(&f);
    std::fs::copy(f.record_path(UID), f.record_path(0)).unwrap();
    let err = f.store().open_user(0, &f.keys).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { uid: 0, .. }), "{err}");
    assert!(decode_record_file(&bytes, UID + 1, &f.keys).is_err());
}

#[test]
fn a_truncated_record_is_refused_at_every_length() {
    let f = Fixture::new();
    let (_, bytes, _, _) = two_states(&f);
    for len in 0..bytes.len() {
        let err = decode_record_file(&bytes[..len], UID, &f.keys).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { .. }),
            "len {len}: {err}"
        );
    }
}

#[test]
fn a_zero_length_record_is_corrupt_not_unenrolled() {
    let f = Fixture::new();
    f.enroll(UID);
    std::fs::write(f.record_path(UID), b"").unwrap();
    let err = open_err(&f, &f.store());
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn an_extended_record_is_refused() {
    let f = Fixture::new();
    let (_, mut bytes, _, _) = two_states(&f);
    bytes.extend_from_slice(&[0; 512]);
    assert!(matches!(
        decode_record_file(&bytes, UID, &f.keys),
        Err(StoreError::Corrupt { .. })
    ));
    let (_, mut bytes, _, _) = two_states(&Fixture::new());
    bytes.push(0);
    assert!(decode_record_file(&bytes, UID, &f.keys).is_err());
}

#[test]
fn a_record_of_an_unknown_version_asks_for_an_upgrade() {
    let f = Fixture::new();
    let (_, mut bytes, _, _) = two_states(&f);
    let slot = bytes.len() / 2;
    let newer = mfa_core::record::WRITE_VERSION + 1;
    for start in [0, slot] {
        bytes[start + 8..start + 10].copy_from_slice(&newer.to_be_bytes());
    }
    let err = decode_record_file(&bytes, UID, &f.keys).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownVersion { version, .. } if version == newer),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade"));
}

#[test]
fn a_file_of_zeros_or_garbage_is_corrupt() {
    let f = Fixture::new();
    let (_, bytes, _, _) = two_states(&f);
    let zeros = vec![0u8; bytes.len()];
    assert!(matches!(
        decode_record_file(&zeros, UID, &f.keys),
        Err(StoreError::Corrupt { .. })
    ));
    let garbage: Vec<u8> = (0..bytes.len())
        .map(|i| u8::try_from((i * 7 + 3) % 256).unwrap())
        .collect();
    assert!(matches!(
        decode_record_file(&garbage, UID, &f.keys),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn swapping_slots_between_users_or_replaying_an_old_file_cannot_go_unnoticed() {
    let f = Fixture::new();
    let (before, after, first, second) = two_states(&f);
    // The old file is a valid old state; rollback by a root-level attacker is
    // out of scope, but it is still only ever a state that was committed.
    assert_eq!(decode_record_file(&before, UID, &f.keys).unwrap().0, first);
    assert_eq!(decode_record_file(&after, UID, &f.keys).unwrap().0, second);
    // A slot sealed under the same key for another user, spliced in, is refused.
    let g = Fixture::new();
    let mut other = sample_record("bob");
    other.failures = 3;
    let store = g.store();
    store
        .open_user(UID + 1, &f.keys)
        .unwrap()
        .rewrite(&other, &f.keys)
        .unwrap();
    let bob = std::fs::read(g.record_path(UID + 1)).unwrap();
    assert_eq!(bob.len(), after.len());
    let slot = after.len() / 2;
    let mut spliced = after.clone();
    spliced[..slot].copy_from_slice(&bob[..slot]);
    let (r, discarded) = decode_record_file(&spliced, UID, &f.keys).unwrap();
    assert_eq!(r, second);
    assert!(
        matches!(discarded, Some(SlotFault::Corrupt(_))),
        "{discarded:?}"
    );
}

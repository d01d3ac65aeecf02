//! The administrator's tools over many records: list, device removal,
//! recovery-code regeneration, key rotation, migration and retirement, and
//! importing a device from another module.

mod common;

use common::{sample_record, set_mode, trust, Fixture, SECRET};
use mfa_core::admin::{self, AdminError, DeviceRemoval, Migrated};
use mfa_core::config::{Config, Paths};
use mfa_core::import::{parse_google_authenticator, ImportedRecovery, ScratchCodes};
use mfa_core::keys::{KeyError, MasterKey};
use mfa_core::record::{Device, LastSuccess};
use mfa_core::recovery::{normalize, CodeFormat};
use mfa_core::store::StoreError;
use mfa_core::totp::{Algorithm, TotpParams};
use zeroize::Zeroizing;

const NOW: u64 = 1_764_150_000;

fn config(f: &Fixture) -> Config {
    let mut c = Config::default();
    c.recovery.count = 3;
    c.paths = paths(f);
    c
}

fn paths(f: &Fixture) -> Paths {
    Paths {
        state_dir: f.root().join("users"),
        key_file: f.root().join("master.key"),
        enroll_public_key: f.root().join("enroll.pub"),
        spool_dir: f.root().join("spool"),
    }
}

fn keys(f: &Fixture) -> MasterKey {
    MasterKey::load(&f.root().join("master.key"), trust()).unwrap()
}

fn device(name: &str) -> Device {
    Device {
        name: name.into(),
        secret: Zeroizing::new(SECRET.to_vec()),
        params: TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        },
        created: NOW,
        last_used_step: None,
    }
}

/// Enrolls `uid` under whatever key generation `keys` has active.
fn enroll(f: &Fixture, uid: u32, keys: &MasterKey, devices: &[&str]) {
    let mut record = sample_record("user");
    record.devices = devices.iter().map(|d| device(d)).collect();
    let store = f.store();
    let mut state = store.open_user(uid, keys).unwrap();
    state.rewrite(&record, keys).unwrap();
}

/// A login: an in-place commit, which seals only the slot it writes.
fn login(f: &Fixture, uid: u32, keys: &MasterKey) {
    let store = f.store();
    let mut state = store.open_user(uid, keys).unwrap();
    let mut record = state.record().unwrap().clone();
    record.last_success = Some(LastSuccess::new(NOW, "sshd", "192.0.2.1", ""));
    state.commit(&record, keys).unwrap();
}

fn generations(f: &Fixture, uid: u32, keys: &MasterKey) -> Vec<u32> {
    let store = f.store();
    let state = store.open_user(uid, keys).unwrap();
    let mut g = state.generations().to_vec();
    g.sort_unstable();
    g
}

fn usage(f: &Fixture, keys: &MasterKey) -> Vec<(u32, bool, Vec<u32>)> {
    admin::key_usage(&f.store(), keys)
        .unwrap()
        .generations
        .into_iter()
        .map(|g| (g.id, g.active, g.uids))
        .collect()
}

#[test]
fn list_shows_every_record_its_pending_file_and_the_ones_that_do_not_open() {
    let f = Fixture::new();
    let c = config(&f);
    enroll(&f, 1000, &f.keys, &["phone"]);
    enroll(&f, 1001, &f.keys, &["phone", "laptop"]);
    enroll(&f, 1002, &f.keys, &["phone"]);
    std::fs::write(f.record_path(1002), vec![0x55; 1024]).unwrap();
    std::fs::create_dir(&c.paths.spool_dir).unwrap();
    std::fs::write(c.paths.spool_dir.join("1001.0123456789abcdef"), b"sealed").unwrap();

    let listed = admin::list(&f.store(), &f.keys, &c, NOW).unwrap();
    assert_eq!(
        listed.iter().map(|u| u.uid).collect::<Vec<_>>(),
        [1000, 1001, 1002]
    );
    let second = listed[1].status.as_ref().unwrap();
    assert_eq!(second.devices.len(), 2);
    assert_eq!(second.key_generations, [1]);
    assert!(listed[1].pending);
    assert!(!listed[0].pending);
    assert!(matches!(
        listed[2].status,
        Err(StoreError::Corrupt { uid: 1002, .. })
    ));
}

#[test]
fn removing_one_of_two_devices_keeps_the_other() {
    let f = Fixture::new();
    enroll(&f, 1000, &f.keys, &["phone", "laptop"]);
    let store = f.store();
    let mut state = store.open_user(1000, &f.keys).unwrap();
    let removal = admin::remove_device(&mut state, &f.keys, "phone", false).unwrap();
    assert_eq!(removal, DeviceRemoval::Removed { remaining: 1 });
    drop(state);
    let state = store.open_user(1000, &f.keys).unwrap();
    let names: Vec<&str> = state
        .record()
        .unwrap()
        .devices
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["laptop"]);
}

#[test]
fn removing_the_last_device_is_refused_unless_forced_and_then_removes_the_record() {
    let f = Fixture::new();
    enroll(&f, 1000, &f.keys, &["phone"]);
    let store = f.store();
    let mut state = store.open_user(1000, &f.keys).unwrap();
    let err = admin::remove_device(&mut state, &f.keys, "phone", false).unwrap_err();
    assert!(matches!(err, AdminError::LastDevice { uid: 1000, .. }));
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(state.record().unwrap().devices.len(), 1);
    let removal = admin::remove_device(&mut state, &f.keys, "phone", true).unwrap();
    assert_eq!(removal, DeviceRemoval::RecordRemoved);
    drop(state);
    assert!(!f.record_path(1000).exists());
}

#[test]
fn removing_a_device_the_user_does_not_have_names_the_ones_they_have() {
    let f = Fixture::new();
    enroll(&f, 1000, &f.keys, &["phone", "laptop"]);
    let store = f.store();
    let mut state = store.open_user(1000, &f.keys).unwrap();
    let err = admin::remove_device(&mut state, &f.keys, "tablet", false).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("phone, laptop"), "{text}");
    let mut nobody = store.open_user(1001, &f.keys).unwrap();
    assert!(matches!(
        admin::remove_device(&mut nobody, &f.keys, "phone", true),
        Err(AdminError::NotEnrolled { uid: 1001 })
    ));
}

#[test]
fn regenerated_recovery_codes_replace_the_whole_set() {
    let f = Fixture::new();
    let c = config(&f);
    enroll(&f, 1000, &f.keys, &["phone"]);
    let store = f.store();
    let mut state = store.open_user(1000, &f.keys).unwrap();
    let first = admin::regenerate_recovery_codes(&mut state, &c, &f.keys).unwrap();
    let second = admin::regenerate_recovery_codes(&mut state, &c, &f.keys).unwrap();
    drop(state);
    assert_eq!(second.len(), 3);
    let state = store.open_user(1000, &f.keys).unwrap();
    let hashes = state.record().unwrap().recovery.clone().unwrap();
    assert_eq!(hashes.remaining(), 3);
    for code in &second {
        let candidate = normalize(code.display().as_bytes(), c.recovery.length).unwrap();
        assert!(hashes.find(&candidate).unwrap().is_some());
    }
    for code in &first {
        let candidate = normalize(code.display().as_bytes(), c.recovery.length).unwrap();
        assert_eq!(hashes.find(&candidate).unwrap(), None);
    }
    // The device is untouched.
    assert_eq!(state.record().unwrap().devices[0].name, "phone");
}

#[test]
fn rotate_migrate_retire_round_trip_with_an_interrupted_migration() {
    let f = Fixture::new();
    let p = paths(&f);
    let store = f.store();
    let gen1 = keys(&f);
    for uid in [1000, 1001, 1002] {
        enroll(&f, uid, &gen1, &["phone"]);
    }

    let new = admin::rotate_key(&p, trust(), NOW).unwrap();
    assert_eq!(new, 2);
    let both = keys(&f);
    assert_eq!(both.active(), 2);
    let public = mfa_core::keys::EnrollmentPublicKey::load(&p.enroll_public_key, trust()).unwrap();
    assert_eq!(public.generation(), 2);

    // A login after the rotation seals one slot under generation 2; the
    // other slot still uses 1. A new enrollment uses 2 only.
    login(&f, 1001, &both);
    enroll(&f, 1003, &both, &["phone"]);
    assert_eq!(generations(&f, 1001, &both), [1, 2]);
    assert_eq!(
        usage(&f, &both),
        [
            (1, false, vec![1000, 1001, 1002]),
            (2, true, vec![1001, 1003])
        ]
    );

    let refused = admin::retire_key(&p, trust(), &store, 1).unwrap_err();
    assert!(
        matches!(&refused, AdminError::GenerationInUse { generation: 1, uids } if uids == &[1000, 1001, 1002]),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("key migrate"), "{refused}");

    // The migration is interrupted after its first record...
    assert_eq!(
        admin::migrate_user(&store, 1000, &both).unwrap(),
        Migrated::Resealed { from: vec![1] }
    );
    // ...so generation 1 is still needed, including by the half-migrated
    // record 1001 whose older slot is still sealed under it.
    let refused = admin::retire_key(&p, trust(), &store, 1).unwrap_err();
    assert!(
        matches!(&refused, AdminError::GenerationInUse { uids, .. } if uids == &[1001, 1002]),
        "{refused:?}"
    );

    // Running it again finishes the job and leaves migrated records alone.
    let report = admin::migrate(&store, &both).unwrap();
    assert_eq!(report.resealed, [(1001, vec![1, 2]), (1002, vec![1])]);
    assert_eq!(report.current, [1000, 1003]);
    assert!(report.failed.is_empty());
    let again = admin::migrate(&store, &both).unwrap();
    assert!(again.resealed.is_empty());
    assert_eq!(again.current, [1000, 1001, 1002, 1003]);

    admin::retire_key(&p, trust(), &store, 1).unwrap();
    let after = keys(&f);
    assert_eq!(after.list().len(), 1);
    assert_eq!(after.active(), 2);
    for uid in [1000, 1001, 1002, 1003] {
        let state = store.open_user(uid, &after).unwrap();
        assert_eq!(state.record().unwrap().devices[0].name, "phone");
        assert_eq!(state.generations(), [2]);
    }
    // The login recorded before the migration survived it.
    let state = store.open_user(1001, &after).unwrap();
    assert!(state.record().unwrap().last_success.is_some());
}

#[test]
fn the_active_or_an_unknown_generation_cannot_be_retired() {
    let f = Fixture::new();
    let p = paths(&f);
    let before = std::fs::read(&p.key_file).unwrap();
    let err = admin::retire_key(&p, trust(), &f.store(), 1).unwrap_err();
    assert!(matches!(err, AdminError::Key(KeyError::RetireActive(1))));
    assert!(err.to_string().contains("rotate"), "{err}");
    let err = admin::retire_key(&p, trust(), &f.store(), 9).unwrap_err();
    assert!(matches!(
        err,
        AdminError::Key(KeyError::UnknownGeneration(9))
    ));
    assert_eq!(std::fs::read(&p.key_file).unwrap(), before);
}

#[test]
fn a_record_that_does_not_open_is_reported_by_migrate_and_blocks_retire() {
    let f = Fixture::new();
    let p = paths(&f);
    let store = f.store();
    enroll(&f, 1000, &f.keys, &["phone"]);
    enroll(&f, 1001, &f.keys, &["phone"]);
    admin::rotate_key(&p, trust(), NOW).unwrap();
    let both = keys(&f);
    let mut bytes = std::fs::read(f.record_path(1000)).unwrap();
    bytes[60] ^= 1;
    std::fs::write(f.record_path(1000), &bytes).unwrap();
    set_mode(&f.record_path(1000), 0o600);

    let report = admin::migrate(&store, &both).unwrap();
    assert_eq!(report.resealed, [(1001, vec![1])]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].uid, 1000);
    assert!(matches!(report.failed[0].error, StoreError::Corrupt { .. }));

    let usage = admin::key_usage(&store, &both).unwrap();
    assert_eq!(usage.unreadable.len(), 1);
    let before = std::fs::read(&p.key_file).unwrap();
    let err = admin::retire_key(&p, trust(), &store, 1).unwrap_err();
    assert!(
        matches!(&err, AdminError::UnreadableRecords { generation: 1, uids } if uids == &[1000]),
        "{err:?}"
    );
    assert!(err.to_string().contains("reset --uid"), "{err}");
    assert_eq!(std::fs::read(&p.key_file).unwrap(), before);
}

#[test]
fn an_imported_device_keeps_the_scratch_codes_carried_over_and_shows_none() {
    let f = Fixture::new();
    let c = config(&f);
    let store = f.store();
    let file = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ga-totp"),
    )
    .unwrap();
    let ga = parse_google_authenticator(&file).unwrap();
    let recovery = ga
        .recovery(ScratchCodes::Keep, mfa_core::recovery::KdfParams::default())
        .unwrap();

    let mut state = store.open_user(1000, &f.keys).unwrap();
    let imported = admin::import_device(
        &mut state,
        "alice",
        ga.device("google-authenticator", NOW),
        recovery,
        &c,
        &f.keys,
        false,
    )
    .unwrap();
    assert!(imported.recovery_codes.is_empty(), "nothing to show");
    assert_eq!(imported.recovery_codes_left, 5);
    // Read back from disk: the set and its format survive the store.
    drop(state);
    let state = store.open_user(1000, &f.keys).unwrap();
    let record = state.record().unwrap();
    assert_eq!(record.recovery_codes_left(), 5);
    let set = record.recovery.as_ref().unwrap();
    assert_eq!(set.format(), CodeFormat::Digits(8));
    let candidate = set.candidate(b"46940178").unwrap();
    assert!(set.find(&candidate).unwrap().is_some());
}

#[test]
fn an_imported_device_from_a_file_without_scratch_codes_has_no_recovery_codes() {
    let f = Fixture::new();
    let c = config(&f);
    let store = f.store();
    let file = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ga-totp-step60"),
    )
    .unwrap();
    let ga = parse_google_authenticator(&file).unwrap();
    let recovery = ga
        .recovery(ScratchCodes::Keep, mfa_core::recovery::KdfParams::default())
        .unwrap();
    let mut state = store.open_user(1000, &f.keys).unwrap();
    let imported = admin::import_device(
        &mut state,
        "alice",
        ga.device("google-authenticator", NOW),
        recovery,
        &c,
        &f.keys,
        false,
    )
    .unwrap();
    assert!(imported.recovery_codes.is_empty());
    assert_eq!(imported.recovery_codes_left, 0);
    assert!(state.record().unwrap().recovery.is_none());
}

#[test]
fn an_imported_device_with_a_new_set_gets_fresh_recovery_codes_and_refuses_to_replace_without_force(
) {
    let f = Fixture::new();
    let c = config(&f);
    let store = f.store();
    let file = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ga-totp"),
    )
    .unwrap();
    let ga = parse_google_authenticator(&file).unwrap();

    let mut state = store.open_user(1000, &f.keys).unwrap();
    let imported = admin::import_device(
        &mut state,
        "alice",
        ga.device("google-authenticator", NOW),
        ImportedRecovery::NewSet,
        &c,
        &f.keys,
        false,
    )
    .unwrap();
    assert!(!imported.replaced);
    assert_eq!(imported.recovery_codes.len(), 3);
    let record = state.record().unwrap().clone();
    assert_eq!(record.username, "alice");
    assert_eq!(record.devices.len(), 1);
    assert_eq!(*record.devices[0].secret, *ga.secret);
    assert_eq!(record.recovery_codes_left(), 3);

    let err = admin::import_device(
        &mut state,
        "alice",
        ga.device("google-authenticator", NOW),
        ImportedRecovery::NewSet,
        &c,
        &f.keys,
        false,
    )
    .unwrap_err();
    assert!(matches!(err, AdminError::AlreadyEnrolled { uid: 1000 }));
    let again = admin::import_device(
        &mut state,
        "alice",
        ga.device("phone", NOW),
        ImportedRecovery::NewSet,
        &c,
        &f.keys,
        true,
    )
    .unwrap();
    assert!(again.replaced);
    assert_eq!(state.record().unwrap().devices[0].name, "phone");
}

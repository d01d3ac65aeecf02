//! The administrator's operations: key setup, provisioning, status, unlock
//! and reset, decided in mfa-core and tested here without the CLI.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{set_mode, trust, Fixture};
use mfa_core::admin::{self, AdminError, EnrollRequest, Provision, Reset};
use mfa_core::config::{Config, Paths};
use mfa_core::input::{parse_totp, InvalidInput};
use mfa_core::keys::{EnrollmentPublicKey, KeyError, MasterKey};
use mfa_core::record::LastSuccess;
use mfa_core::store::{SlotFault, StoreError};
use mfa_core::throttle;
use mfa_core::totp::{code_at_step, time_step, verify, Verdict};

const UID: u32 = 1000;
const NOW: u64 = 1_764_150_000;

fn config() -> Config {
    let mut c = Config::default();
    // Fewer recovery codes keep the Argon2id hashing short; the count is
    // still checked below.
    c.recovery.count = 3;
    c
}

fn request(replace: bool) -> EnrollRequest<'static> {
    EnrollRequest {
        username: "alice",
        device: "phone",
        issuer: "host.example",
        account: "alice@host.example",
        replace,
    }
}

/// The code the new device shows at `now`.
fn code_now(p: &Provision, now: u64) -> String {
    let device = &p.record().devices[0];
    code_at_step(
        &device.secret,
        device.params,
        time_step(now, device.params.period),
    )
    .to_string()
}

/// Provisions, confirms and stores an enrollment for `UID`.
fn enroll(f: &Fixture, cfg: &Config) -> Provision {
    let store = f.store();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    let mut p = admin::provision(cfg, &request(false), NOW).unwrap();
    let code = code_now(&p, NOW);
    p.confirm(code.as_bytes(), cfg, NOW).unwrap();
    p.store(&mut state, &f.keys).unwrap();
    p
}

/// Gives `UID`'s record `failures` failures, the last at `at`.
fn fail(f: &Fixture, failures: u32, at: u64) {
    let store = f.store();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    let mut record = state.record().unwrap().clone();
    for _ in 0..failures {
        throttle::record_failure(&mut record, at);
    }
    state.commit(&record, &f.keys).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn a_user_without_a_record_is_reported_as_not_enrolled() {
    let f = Fixture::new();
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    let s = admin::status(&state, &config(), NOW);
    assert!(!s.enrolled);
    assert_eq!(s.uid, UID);
    assert!(s.devices.is_empty());
    assert_eq!(s.recovery_codes_left, 0);
    assert!(!s.locked);
    assert!(s.key_generations.is_empty());
    assert!(s.last_success.is_none());
}

#[test]
fn provisioning_stores_one_device_and_a_full_set_of_recovery_codes() {
    let f = Fixture::new();
    let cfg = config();
    let p = enroll(&f, &cfg);
    assert_eq!(p.recovery_codes().len(), 3);
    assert!(p.uri().starts_with("otpauth://totp/"));
    assert!(p.uri().contains(&format!("secret={}", p.secret_base32())));
    assert_eq!(p.secret_grouped().replace(' ', ""), p.secret_base32());

    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    let s = admin::status(&state, &cfg, NOW);
    assert!(s.enrolled);
    assert_eq!(s.enrolled_as.as_deref(), Some("alice"));
    assert_eq!(s.created, Some(NOW));
    assert_eq!(s.devices.len(), 1);
    assert_eq!(s.devices[0].name, "phone");
    assert_eq!(s.devices[0].params.digits, 6);
    assert_eq!(s.devices[0].params.period, 30);
    assert_eq!(s.devices[0].created, NOW);
    assert_eq!(s.recovery_codes_left, 3);
    assert_eq!(s.failures, 0);
    assert_eq!(s.key_generations, vec![1]);
    assert!(s.slot_discarded.is_none());
}

#[test]
fn stored_recovery_codes_are_the_ones_shown() {
    let f = Fixture::new();
    let cfg = config();
    let p = enroll(&f, &cfg);
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    let hashes = state.record().unwrap().recovery.clone().unwrap();
    for code in p.recovery_codes() {
        let candidate =
            mfa_core::recovery::normalize(code.display().as_bytes(), cfg.recovery.length).unwrap();
        assert!(
            hashes.find(&candidate).unwrap().is_some(),
            "a shown code is not stored"
        );
    }
}

#[test]
fn the_confirmed_code_cannot_be_used_again_to_log_in() {
    let f = Fixture::new();
    let cfg = config();
    let p = enroll(&f, &cfg);
    let code = code_now(&p, NOW);
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    let device = &state.record().unwrap().devices[0];
    assert_eq!(device.last_used_step, Some(time_step(NOW, 30)));
    let verdict = verify(
        &device.secret,
        device.params,
        cfg.totp.window,
        NOW,
        device.last_used_step,
        &parse_totp(code.as_bytes(), 6).unwrap(),
    );
    assert_eq!(
        verdict,
        Verdict::Replayed {
            step: time_step(NOW, 30)
        }
    );
}

#[test]
fn a_code_from_the_next_step_is_accepted_within_the_window() {
    let cfg = config();
    let mut p = admin::provision(&cfg, &request(false), NOW).unwrap();
    let later = code_now(&p, NOW + 30);
    assert_eq!(
        p.confirm(later.as_bytes(), &cfg, NOW).unwrap(),
        time_step(NOW, 30) + 1
    );
}

#[test]
fn a_wrong_code_is_refused_and_nothing_is_stored() {
    let f = Fixture::new();
    let cfg = config();
    let mut p = admin::provision(&cfg, &request(false), NOW).unwrap();
    let right = code_now(&p, NOW);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert!(matches!(
        p.confirm(wrong.as_bytes(), &cfg, NOW),
        Err(AdminError::WrongCode)
    ));
    assert_eq!(p.record().devices[0].last_used_step, None);
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    assert!(state.record().is_none());
    assert!(!f.record_path(UID).exists());
}

#[test]
fn a_code_from_outside_the_window_is_refused() {
    let cfg = config();
    let mut p = admin::provision(&cfg, &request(false), NOW).unwrap();
    let stale = code_now(&p, NOW - 90);
    assert!(matches!(
        p.confirm(stale.as_bytes(), &cfg, NOW),
        Err(AdminError::WrongCode)
    ));
}

#[test]
fn a_response_that_is_not_a_code_is_refused_with_the_reason() {
    let cfg = config();
    let mut p = admin::provision(&cfg, &request(false), NOW).unwrap();
    let code = code_now(&p, NOW);
    let cases: [(Vec<u8>, InvalidInput); 4] = [
        (code.as_bytes()[..5].to_vec(), InvalidInput::WrongLength),
        (
            format!("{code}\n").into_bytes(),
            InvalidInput::BadCharacters,
        ),
        (format!(" {code}").into_bytes(), InvalidInput::BadCharacters),
        (Vec::new(), InvalidInput::Empty),
    ];
    for (response, want) in cases {
        match p.confirm(&response, &cfg, NOW) {
            Err(AdminError::InvalidCode { reason, digits: 6 }) => assert_eq!(reason, want),
            other => panic!("{response:?}: {other:?}"),
        }
    }
}

#[test]
fn enrolling_an_enrolled_user_is_refused_without_replace() {
    let f = Fixture::new();
    let cfg = config();
    enroll(&f, &cfg);
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    assert!(matches!(
        admin::check_enrollable(&state, false),
        Err(AdminError::AlreadyEnrolled { uid: UID })
    ));
    assert!(admin::check_enrollable(&state, true).unwrap());
}

#[test]
fn a_record_that_appeared_while_confirming_is_not_overwritten() {
    let f = Fixture::new();
    let cfg = config();
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    assert!(!admin::check_enrollable(&state, false).unwrap());
    drop(state);
    let mut p = admin::provision(&cfg, &request(false), NOW).unwrap();
    let first = enroll(&f, &cfg);
    let code = code_now(&p, NOW);
    p.confirm(code.as_bytes(), &cfg, NOW).unwrap();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    assert!(matches!(
        p.store(&mut state, &f.keys),
        Err(AdminError::AlreadyEnrolled { uid: UID })
    ));
    drop(state);
    let state = store.open_user(UID, &f.keys).unwrap();
    assert_eq!(state.record(), Some(first.record()));
}

#[test]
fn replacing_an_enrolled_user_starts_a_fresh_record() {
    let f = Fixture::new();
    let cfg = config();
    let old = enroll(&f, &cfg);
    fail(&f, 5, NOW);
    let store = f.store();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    let mut req = request(true);
    req.device = "laptop";
    let p = admin::provision(&cfg, &req, NOW + 60).unwrap();
    assert!(p.store(&mut state, &f.keys).unwrap());
    drop(state);
    let state = store.open_user(UID, &f.keys).unwrap();
    let record = state.record().unwrap();
    assert_eq!(record.devices.len(), 1);
    assert_eq!(record.devices[0].name, "laptop");
    assert_ne!(record.devices[0].secret, old.record().devices[0].secret);
    assert_eq!(record.devices[0].last_used_step, None);
    assert_eq!(record.failures, 0);
}

#[test]
fn a_bad_device_name_is_refused_before_anything_is_made() {
    let cfg = config();
    let mut req = request(false);
    req.device = "pho\nne";
    assert!(matches!(
        admin::provision(&cfg, &req, NOW),
        Err(AdminError::Enrollment(_))
    ));
}

#[test]
fn status_reports_back_off_and_then_the_lockout() {
    let f = Fixture::new();
    let cfg = config();
    enroll(&f, &cfg);
    fail(&f, cfg.throttle.backoff_after, NOW);
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    let s = admin::status(&state, &cfg, NOW);
    assert_eq!(s.failures, cfg.throttle.backoff_after);
    assert_eq!(s.last_failure, Some(NOW));
    assert_eq!(
        s.backoff_until,
        Some(NOW + u64::from(cfg.throttle.backoff_seconds))
    );
    assert!(!s.locked);
    drop(state);

    fail(&f, cfg.throttle.lockout_after, NOW);
    let state = store.open_user(UID, &f.keys).unwrap();
    let s = admin::status(&state, &cfg, NOW + 1_000_000);
    assert!(s.locked);
    assert_eq!(s.backoff_until, None);
}

#[test]
fn status_reports_the_last_success() {
    let f = Fixture::new();
    let cfg = config();
    enroll(&f, &cfg);
    let store = f.store();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    let mut record = state.record().unwrap().clone();
    record.last_success = Some(LastSuccess::new(NOW + 5, "sshd", "192.0.2.7", ""));
    state.commit(&record, &f.keys).unwrap();
    let s = admin::status(&state, &cfg, NOW + 10);
    assert_eq!(
        s.last_success,
        Some(LastSuccess::new(NOW + 5, "sshd", "192.0.2.7", ""))
    );
}

#[test]
fn status_reports_a_discarded_slot() {
    let f = Fixture::new();
    let cfg = config();
    enroll(&f, &cfg);
    // A second state in the other slot, then damage that newer slot.
    fail(&f, 1, NOW);
    let path = f.record_path(UID);
    let mut bytes = std::fs::read(&path).unwrap();
    let slot = bytes.len() / 2;
    bytes[slot + 60] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let store = f.store();
    let state = store.open_user(UID, &f.keys).unwrap();
    let s = admin::status(&state, &cfg, NOW);
    assert!(matches!(s.slot_discarded, Some(SlotFault::Corrupt(_))));
    // The older slot, from before the failure, is the state in use.
    assert_eq!(s.failures, 0);
}

#[test]
fn status_lists_each_key_generation_the_record_uses() {
    let f = Fixture::new();
    let cfg = config();
    enroll(&f, &cfg);
    let mut keys = MasterKey::load(&f.root().join("master.key"), trust()).unwrap();
    keys.rotate(NOW).unwrap();
    let store = f.store();
    let mut state = store.open_user(UID, &keys).unwrap();
    let mut record = state.record().unwrap().clone();
    throttle::record_failure(&mut record, NOW);
    state.commit(&record, &keys).unwrap();
    let s = admin::status(&state, &cfg, NOW);
    assert_eq!(s.key_generations, vec![1, 2]);
}

#[test]
fn unlock_clears_failures_durably() {
    let f = Fixture::new();
    let cfg = config();
    enroll(&f, &cfg);
    fail(&f, cfg.throttle.lockout_after, NOW);
    let store = f.store();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    let u = admin::unlock(&mut state, &cfg, &f.keys).unwrap();
    assert_eq!(u.cleared, cfg.throttle.lockout_after);
    assert!(u.was_locked);
    drop(state);
    let state = store.open_user(UID, &f.keys).unwrap();
    let s = admin::status(&state, &cfg, NOW);
    assert_eq!((s.failures, s.last_failure, s.locked), (0, None, false));
    assert_eq!(s.recovery_codes_left, 3);
}

#[test]
fn unlocking_a_user_without_failures_writes_nothing() {
    let f = Fixture::new();
    let cfg = config();
    enroll(&f, &cfg);
    let before = std::fs::read(f.record_path(UID)).unwrap();
    let store = f.store();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    let u = admin::unlock(&mut state, &cfg, &f.keys).unwrap();
    assert_eq!((u.cleared, u.was_locked), (0, false));
    assert_eq!(std::fs::read(f.record_path(UID)).unwrap(), before);
}

#[test]
fn unlocking_a_user_without_a_record_is_refused() {
    let f = Fixture::new();
    let store = f.store();
    let mut state = store.open_user(UID, &f.keys).unwrap();
    assert!(matches!(
        admin::unlock(&mut state, &config(), &f.keys),
        Err(AdminError::NotEnrolled { uid: UID })
    ));
    assert!(!f.record_path(UID).exists());
}

#[test]
fn reset_removes_the_record_and_keeps_the_lock_file() {
    let f = Fixture::new();
    enroll(&f, &config());
    let store = f.store();
    assert!(matches!(
        admin::reset(&store, UID, &f.keys).unwrap(),
        Reset::Removed
    ));
    assert!(!f.record_path(UID).exists());
    assert!(f.root().join("users").join(format!("{UID}.lock")).exists());
    let state = store.open_user(UID, &f.keys).unwrap();
    assert!(state.record().is_none());
}

#[test]
fn reset_of_a_user_without_a_record_changes_nothing() {
    let f = Fixture::new();
    let store = f.store();
    assert!(matches!(
        admin::reset(&store, UID, &f.keys).unwrap(),
        Reset::NotEnrolled
    ));
}

#[test]
fn reset_removes_a_corrupt_record() {
    let f = Fixture::new();
    enroll(&f, &config());
    let path = f.record_path(UID);
    std::fs::write(&path, vec![0x5a; 1024]).unwrap();
    let store = f.store();
    assert!(store.open_user(UID, &f.keys).is_err());
    match admin::reset(&store, UID, &f.keys).unwrap() {
        Reset::RemovedUnreadable(StoreError::Corrupt { uid: UID, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!path.exists());
}

#[test]
fn reset_removes_a_record_sealed_under_another_key() {
    let f = Fixture::new();
    enroll(&f, &config());
    let other = MasterKey::generate(NOW).unwrap();
    let store = f.store();
    match admin::reset(&store, UID, &other).unwrap() {
        Reset::RemovedUnreadable(StoreError::WrongKey { uid: UID, .. }) => {}
        r => panic!("{r:?}"),
    }
    assert!(!f.record_path(UID).exists());
}

#[test]
fn reset_does_not_touch_records_when_the_state_directory_is_unsafe() {
    let f = Fixture::new();
    enroll(&f, &config());
    set_mode(&f.root().join("users"), 0o755);
    let store = f.store();
    assert!(matches!(
        admin::reset(&store, UID, &f.keys),
        Err(AdminError::Store(StoreError::Directory(_)))
    ));
    assert!(f.record_path(UID).exists());
}

fn paths_in(root: &Path) -> Paths {
    Paths {
        state_dir: root.join("lib/pam_mfa/users"),
        key_file: root.join("etc/pam_mfa/master.key"),
        enroll_public_key: root.join("etc/pam_mfa/enroll.pub"),
        spool_dir: root.join("spool"),
    }
}

#[test]
fn key_init_creates_the_key_the_public_key_and_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    let init = admin::init_key(&paths, trust(), NOW).unwrap();
    assert_eq!(init.generation, 1);
    assert_eq!(mode(&paths.key_file), 0o600);
    assert_eq!(mode(&paths.enroll_public_key), 0o644);
    assert_eq!(mode(&paths.state_dir), 0o700);
    assert_eq!(mode(&dir.path().join("lib/pam_mfa")), 0o755);
    assert!(init.created_dirs.contains(&paths.state_dir));
    let keys = MasterKey::load(&paths.key_file, trust()).unwrap();
    let public = EnrollmentPublicKey::load(&paths.enroll_public_key, trust()).unwrap();
    assert_eq!(public, keys.enrollment_public_key());
    // The store accepts the directory it made.
    mfa_core::store::Store::new(&paths.state_dir, trust())
        .check_dir()
        .unwrap();
}

#[test]
fn key_init_keeps_a_shared_key_directory_traversable_for_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    admin::init_key(&paths, trust(), NOW).unwrap();
    assert_eq!(mode(&dir.path().join("etc/pam_mfa")), 0o755);
}

#[test]
fn key_init_makes_a_key_directory_of_its_own_private() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = paths_in(dir.path());
    paths.key_file = dir.path().join("private/master.key");
    admin::init_key(&paths, trust(), NOW).unwrap();
    assert_eq!(mode(&dir.path().join("private")), 0o700);
}

#[test]
fn key_init_refuses_to_overwrite_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    admin::init_key(&paths, trust(), NOW).unwrap();
    let key_before = std::fs::read(&paths.key_file).unwrap();
    let pub_before = std::fs::read(&paths.enroll_public_key).unwrap();
    assert!(matches!(
        admin::init_key(&paths, trust(), NOW),
        Err(AdminError::Key(KeyError::AlreadyExists(_)))
    ));
    assert_eq!(std::fs::read(&paths.key_file).unwrap(), key_before);
    assert_eq!(std::fs::read(&paths.enroll_public_key).unwrap(), pub_before);
}

#[test]
fn key_init_refuses_an_unsafe_state_directory_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    std::fs::create_dir_all(&paths.state_dir).unwrap();
    set_mode(&paths.state_dir, 0o755);
    assert!(matches!(
        admin::init_key(&paths, trust(), NOW),
        Err(AdminError::UnsafeDirectory(_))
    ));
    assert!(!paths.key_file.exists());
    assert!(!paths.enroll_public_key.exists());
}

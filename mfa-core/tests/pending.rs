//! Self-service enrollments in the spool: sealed by the user, found only
//! when everything about them is right.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{trust, Fixture, SECRET};
use mfa_core::config::Config;
use mfa_core::keys::MasterKey;
use mfa_core::pending::{self, ApproveError, Pending, Refusal, Request};
use mfa_core::record::{Device, FactorChange};
use mfa_core::recovery::{self, KdfParams};
use mfa_core::spool;
use mfa_core::totp::TotpParams;
use nix::unistd::{chown, Uid};
use zeroize::Zeroizing;

const UID: u32 = 1000;
const NOW: u64 = 1_764_150_000;
const DAY: u64 = 86_400;

fn spool(f: &Fixture) -> PathBuf {
    let dir = f.root().join("spool");
    if !dir.exists() {
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1733)).unwrap();
    }
    dir
}

fn device_request(name: &str) -> Pending {
    let (_, recovery) = recovery::generate(
        2,
        12,
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
    )
    .unwrap();
    Pending {
        id: Pending::new_id().unwrap(),
        created: NOW,
        request: Request::Device {
            device: Device {
                name: name.into(),
                secret: Zeroizing::new(SECRET.to_vec()),
                params: TotpParams::default(),
                created: NOW,
                last_used_step: None,
            },
            recovery,
            code: None,
        },
        proof: None,
    }
}

fn config() -> Config {
    Config::parse("", "test").unwrap()
}

/// Seals `p` for `sealed_for` and writes it as a file of `owner`.
fn place(f: &Fixture, p: &Pending, sealed_for: u32, owner: u32) -> PathBuf {
    let sealed = p.seal(&f.keys.enrollment_public_key(), sealed_for).unwrap();
    let path = spool::write_to_spool(&spool(f), UID, &sealed).unwrap();
    chown(&path, Some(Uid::from_raw(owner)), None).unwrap();
    path
}

fn find(f: &Fixture, keys: &MasterKey) -> spool::Search {
    spool::find(&spool(f), UID, keys, trust(), DAY, NOW).unwrap()
}

#[test]
fn a_sealed_enrollment_round_trips_through_the_spool() {
    let f = Fixture::new();
    let p = device_request("phone");
    let path = place(&f, &p, UID, UID);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let search = find(&f, &f.keys);
    let found = search.found.expect("found");
    assert_eq!(found.pending, p);
    assert!(search.ignored.is_empty());
    spool::remove(&found).unwrap();
    assert!(!path.exists());
}

#[test]
fn approval_enrolls_a_first_device_and_clears_the_spool() {
    let f = Fixture::new();
    let path = place(&f, &device_request("phone"), UID, UID);
    let found = find(&f, &f.keys).found.unwrap();
    let store = f.store();
    let done = pending::approve(&store, &f.keys, &config(), UID, "alice", &found, NOW).unwrap();
    assert_eq!(done, FactorChange::DeviceAdded("phone".into()));
    let user = store.open_user(UID, &f.keys).unwrap();
    let r = user.record().unwrap();
    assert_eq!(r.username, "alice");
    assert_eq!(r.devices[0].name, "phone");
    assert_eq!(r.devices[0].last_used_step, None);
    assert!(r.has_applied(&found.pending.id));
    assert_eq!(r.recovery_codes_left(), 2);
    assert!(!path.exists());
}

#[test]
fn approving_new_recovery_codes_needs_an_enrolled_user() {
    let f = Fixture::new();
    let recovery_request = || {
        let (_, recovery) = recovery::generate(
            2,
            12,
            KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
        )
        .unwrap();
        Pending {
            id: Pending::new_id().unwrap(),
            created: NOW,
            request: Request::RecoveryCodes { recovery },
            proof: None,
        }
    };
    let path = place(&f, &recovery_request(), UID, UID);
    let found = find(&f, &f.keys).found.unwrap();
    let err =
        pending::approve(&f.store(), &f.keys, &config(), UID, "alice", &found, NOW).unwrap_err();
    assert!(
        matches!(err, ApproveError::Refused(Refusal::NotEnrolled)),
        "{err:?}"
    );
    // Refused requests go: they can never apply.
    assert!(!path.exists());
    f.enroll(UID);
    place(&f, &recovery_request(), UID, UID);
    let found = find(&f, &f.keys).found.unwrap();
    let done = pending::approve(&f.store(), &f.keys, &config(), UID, "alice", &found, NOW).unwrap();
    assert_eq!(done, FactorChange::RecoveryCodesReplaced);
}

#[test]
fn approval_refuses_a_request_that_breaks_the_settings_and_removes_it() {
    let f = Fixture::new();
    let mut p = device_request("phone");
    if let Request::Device { device, .. } = &mut p.request {
        // 64 bits: below the 128 the module accepts.
        device.secret = Zeroizing::new(vec![7; 8]);
    }
    let path = place(&f, &p, UID, UID);
    let found = find(&f, &f.keys).found.unwrap();
    let err =
        pending::approve(&f.store(), &f.keys, &config(), UID, "alice", &found, NOW).unwrap_err();
    assert!(
        matches!(err, ApproveError::Refused(Refusal::Policy(_))),
        "{err:?}"
    );
    assert!(!path.exists());
    assert!(f
        .store()
        .open_user(UID, &f.keys)
        .unwrap()
        .record()
        .is_none());
}

#[test]
fn an_applied_request_cannot_apply_again() {
    let f = Fixture::new();
    let p = device_request("phone");
    place(&f, &p, UID, UID);
    let found = find(&f, &f.keys).found.unwrap();
    pending::approve(&f.store(), &f.keys, &config(), UID, "alice", &found, NOW).unwrap();
    // A copy of the same request, made before it was applied.
    place(&f, &p, UID, UID);
    let copy = find(&f, &f.keys).found.unwrap();
    let err =
        pending::approve(&f.store(), &f.keys, &config(), UID, "alice", &copy, NOW).unwrap_err();
    assert!(
        matches!(err, ApproveError::Refused(Refusal::AlreadyApplied)),
        "{err:?}"
    );
}

/// A device request whose two recovery codes are hashed with `params`.
fn device_request_hashed_with(params: KdfParams) -> Pending {
    let mut p = device_request("phone");
    let (_, heavier) = recovery::generate(2, 12, params).unwrap();
    if let Request::Device { recovery, .. } = &mut p.request {
        *recovery = heavier;
    }
    p
}

#[test]
fn requests_from_before_the_lighter_default_are_still_accepted() {
    // An older mfa-enroll hashed with 19 MiB and 2 passes; its requests
    // must not be refused once the default is lighter.
    let old = KdfParams::PREVIOUS_DEFAULT;
    assert!(!old.within(KdfParams::default()), "the default got lighter");
    assert_eq!(
        pending::check_policy(&device_request_hashed_with(old), &config()),
        Ok(())
    );
    assert_eq!(
        pending::check_policy(&device_request_hashed_with(KdfParams::default()), &config()),
        Ok(())
    );
}

#[test]
fn requests_heavier_than_the_previous_default_are_refused() {
    let heavier = KdfParams {
        iterations: KdfParams::PREVIOUS_DEFAULT.iterations + 1,
        ..KdfParams::PREVIOUS_DEFAULT
    };
    let err = pending::check_policy(&device_request_hashed_with(heavier), &config()).unwrap_err();
    assert!(matches!(err, Refusal::Policy(_)), "{err:?}");
}

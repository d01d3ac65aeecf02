//! Self-service enrollments in the spool: sealed by the user, found only
//! when everything about them is right.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{trust, Fixture, SECRET};
use mfa_core::keys::MasterKey;
use mfa_core::pending::{self, Pending, Request};
use mfa_core::record::Device;
use mfa_core::recovery::{self, KdfParams};
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
        created: NOW,
        request: Request::Device {
            device: Device {
                name: name.into(),
                secret: Zeroizing::new(SECRET.to_vec()),
                params: TotpParams::default(),
                created: NOW,
                last_used_step: Some(10),
            },
            recovery,
        },
    }
}

/// Seals `p` for `sealed_for` and writes it as a file of `owner`.
fn place(f: &Fixture, p: &Pending, sealed_for: u32, owner: u32) -> PathBuf {
    let sealed = p.seal(&f.keys.enrollment_public_key(), sealed_for).unwrap();
    let path = pending::write_to_spool(&spool(f), UID, &sealed).unwrap();
    chown(&path, Some(Uid::from_raw(owner)), None).unwrap();
    path
}

fn find(f: &Fixture, keys: &MasterKey) -> pending::Search {
    pending::find(&spool(f), UID, keys, trust(), DAY, NOW).unwrap()
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
    pending::remove(&found).unwrap();
    assert!(!path.exists());
}

#[test]
fn a_missing_spool_means_nothing_pending() {
    let f = Fixture::new();
    let s = pending::find(&f.root().join("nope"), UID, &f.keys, trust(), DAY, NOW).unwrap();
    assert!(s.found.is_none() && s.ignored.is_empty());
}

#[test]
fn a_spool_without_the_sticky_bit_is_refused() {
    let f = Fixture::new();
    let dir = spool(&f);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o733)).unwrap();
    let err = pending::find(&dir, UID, &f.keys, trust(), DAY, NOW).unwrap_err();
    assert!(err.to_string().contains("sticky"), "{err}");
}

#[test]
fn a_file_owned_by_another_user_is_ignored_and_left_alone() {
    let f = Fixture::new();
    let path = place(&f, &device_request("phone"), UID, 1001);
    let s = find(&f, &f.keys);
    assert!(s.found.is_none());
    assert!(
        s.ignored[0].reason.contains("owned by uid 1001"),
        "{:?}",
        s.ignored
    );
    assert!(path.exists());
}

#[test]
fn someone_elses_file_under_the_prefix_cannot_block_the_users_own() {
    let f = Fixture::new();
    place(&f, &device_request("planted"), UID, 1001);
    let mine = device_request("phone");
    place(&f, &mine, UID, UID);
    let s = find(&f, &f.keys);
    assert_eq!(s.found.unwrap().pending, mine);
    assert_eq!(s.ignored.len(), 1);
}

#[test]
fn an_enrollment_sealed_for_another_uid_is_ignored_and_removed() {
    let f = Fixture::new();
    let path = place(&f, &device_request("phone"), 1001, UID);
    let s = find(&f, &f.keys);
    assert!(s.found.is_none());
    assert!(
        s.ignored[0].reason.contains("different user"),
        "{:?}",
        s.ignored
    );
    assert!(!path.exists());
}

#[test]
fn an_enrollment_sealed_to_another_host_is_ignored() {
    let f = Fixture::new();
    place(&f, &device_request("phone"), UID, UID);
    let other = MasterKey::generate(1).unwrap();
    let s = find(&f, &other);
    assert!(s.found.is_none());
    assert!(
        s.ignored[0].reason.contains("does not open"),
        "{:?}",
        s.ignored
    );
}

#[test]
fn a_stale_or_future_enrollment_is_ignored() {
    let f = Fixture::new();
    let mut old = device_request("phone");
    old.created = NOW - DAY - 1;
    place(&f, &old, UID, UID);
    let mut future = device_request("phone");
    future.created = NOW + 3600;
    place(&f, &future, UID, UID);
    let s = find(&f, &f.keys);
    assert!(s.found.is_none());
    let reasons: Vec<&str> = s.ignored.iter().map(|i| i.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("older than")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("future")), "{reasons:?}");
}

#[test]
fn oversized_writable_symlinked_or_special_files_are_ignored() {
    let f = Fixture::new();
    let dir = spool(&f);
    let big = dir.join(format!("{UID}.big"));
    std::fs::write(&big, vec![0u8; 20_000]).unwrap();
    chown(&big, Some(Uid::from_raw(UID)), None).unwrap();
    let writable = place(&f, &device_request("w"), UID, UID);
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join(format!("{UID}.link"))).unwrap();
    nix::unistd::mkfifo(
        &dir.join(format!("{UID}.fifo")),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    chown(
        &dir.join(format!("{UID}.fifo")),
        Some(Uid::from_raw(UID)),
        None,
    )
    .unwrap();
    let s = find(&f, &f.keys);
    assert!(s.found.is_none());
    assert_eq!(s.ignored.len(), 4, "{:?}", s.ignored);
}

#[test]
fn the_newest_enrollment_wins_and_older_ones_are_removed() {
    let f = Fixture::new();
    let mut first = device_request("old");
    first.created = NOW - 100;
    let old_path = place(&f, &first, UID, UID);
    let second = device_request("new");
    place(&f, &second, UID, UID);
    let s = find(&f, &f.keys);
    assert_eq!(s.found.unwrap().pending, second);
    assert!(!old_path.exists());
}

#[test]
fn other_users_files_are_not_even_looked_at() {
    let f = Fixture::new();
    let sealed = device_request("x")
        .seal(&f.keys.enrollment_public_key(), 2000)
        .unwrap();
    pending::write_to_spool(&spool(&f), 2000, &sealed).unwrap();
    let s = find(&f, &f.keys);
    assert!(s.found.is_none() && s.ignored.is_empty());
}

#[test]
fn approval_enrolls_a_first_device_and_clears_the_spool() {
    let f = Fixture::new();
    let path = place(&f, &device_request("phone"), UID, UID);
    let found = find(&f, &f.keys).found.unwrap();
    let store = f.store();
    let done = pending::approve(&store, &f.keys, UID, "alice", &found, NOW).unwrap();
    assert_eq!(done, pending::Approved::Device("phone".into()));
    let user = store.open_user(UID, &f.keys).unwrap();
    let r = user.record().unwrap();
    assert_eq!(r.username, "alice");
    assert_eq!(r.devices[0].name, "phone");
    assert_eq!(r.devices[0].last_used_step, Some(10));
    assert_eq!(r.recovery_codes_left(), 2);
    assert!(!path.exists());
}

#[test]
fn approving_new_recovery_codes_needs_an_enrolled_user() {
    let f = Fixture::new();
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
    let p = Pending {
        created: NOW,
        request: Request::RecoveryCodes { recovery },
    };
    let path = place(&f, &p, UID, UID);
    let found = find(&f, &f.keys).found.unwrap();
    let err = pending::approve(&f.store(), &f.keys, UID, "alice", &found, NOW).unwrap_err();
    assert!(matches!(
        err,
        mfa_core::store::StoreError::NotEnrolled { .. }
    ));
    assert!(path.exists());
    f.enroll(UID);
    let done = pending::approve(&f.store(), &f.keys, UID, "alice", &found, NOW).unwrap();
    assert_eq!(done, pending::Approved::RecoveryCodes);
}

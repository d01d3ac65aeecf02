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
fn a_missing_spool_means_nothing_pending() {
    let f = Fixture::new();
    let s = spool::find(&f.root().join("nope"), UID, &f.keys, trust(), DAY, NOW).unwrap();
    assert!(s.found.is_none() && s.ignored.is_empty());
}

#[test]
fn a_spool_without_the_sticky_bit_is_refused() {
    let f = Fixture::new();
    let dir = spool(&f);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o733)).unwrap();
    let err = spool::find(&dir, UID, &f.keys, trust(), DAY, NOW).unwrap_err();
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
fn other_users_fresh_requests_are_neither_opened_nor_reported() {
    let f = Fixture::new();
    let sealed = device_request("x")
        .seal(&f.keys.enrollment_public_key(), 2000)
        .unwrap();
    spool::write_to_spool(&spool(&f), 2000, &sealed).unwrap();
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

// ---- Expired requests of every user are removed during the scan ----

/// The real time: a file's change time comes from the kernel's clock.
fn real_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A scan of `UID`'s prefix at `now`, with requests living one day.
fn scan_at(f: &Fixture, now: u64) -> spool::Search {
    spool::find(&spool(f), UID, &f.keys, trust(), DAY, now).unwrap()
}

/// Two days from now, when every file made by this test is expired.
fn two_days_later() -> u64 {
    real_now() + 2 * DAY
}

/// A request of `uid`, sealed for them and owned by them, as their own
/// `mfa-enroll` writes it.
fn request_of(f: &Fixture, uid: u32) -> PathBuf {
    let sealed = device_request("phone")
        .seal(&f.keys.enrollment_public_key(), uid)
        .unwrap();
    let path = spool::write_to_spool(&spool(f), uid, &sealed).unwrap();
    chown(&path, Some(Uid::from_raw(uid)), None).unwrap();
    path
}

fn exists(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[test]
fn expired_requests_of_other_users_are_removed() {
    let f = Fixture::new();
    let a = request_of(&f, 1001);
    let b = request_of(&f, 2000);
    let s = scan_at(&f, two_days_later());
    assert!(!exists(&a) && !exists(&b));
    let mut removed = s.expired.removed.clone();
    removed.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(removed, want);
    assert!(s.expired.failed.is_empty());
    // Other users' files are not the user's business: nothing is "ignored".
    assert!(s.found.is_none() && s.ignored.is_empty(), "{:?}", s.ignored);
}

#[test]
fn fresh_requests_of_other_users_are_kept() {
    let f = Fixture::new();
    let a = request_of(&f, 1001);
    let b = request_of(&f, 2000);
    let s = scan_at(&f, real_now());
    assert!(exists(&a) && exists(&b));
    assert!(s.expired.is_empty());
    assert!(s.expired.summary().is_none());
    // Just inside the age limit is still fresh.
    let s = spool::find(&spool(&f), UID, &f.keys, trust(), DAY, real_now() + DAY - 5).unwrap();
    assert!(s.expired.is_empty() && exists(&a) && exists(&b));
}

#[test]
fn a_request_whose_modification_time_was_set_back_is_judged_by_its_change_time() {
    let f = Fixture::new();
    let a = request_of(&f, 1001);
    // The owner can set the modification time to anything; that moves the
    // change time to now.
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW - 30 * DAY);
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let s = scan_at(&f, real_now());
    assert!(exists(&a));
    assert!(s.expired.is_empty());
}

#[test]
fn names_that_are_not_request_names_are_kept_however_old() {
    let f = Fixture::new();
    let dir = spool(&f);
    let names = [
        "README",
        "notes.txt",
        "1001",
        "1001.",
        "01001.0123456789abcdef",
        "+1001.0123456789abcdef",
        ".1001.0123456789abcdef",
        "4294967296.0123456789abcdef",
    ];
    for name in names {
        std::fs::write(dir.join(name), b"x").unwrap();
        chown(&dir.join(name), Some(Uid::from_raw(1001)), None).unwrap();
    }
    // A directory with a request name is not a request either.
    std::fs::create_dir(dir.join("1001.0123456789abcdef")).unwrap();
    let s = scan_at(&f, two_days_later());
    assert!(s.expired.is_empty(), "{:?}", s.expired);
    for name in names {
        assert!(exists(&dir.join(name)), "{name} is kept");
    }
    assert!(dir.join("1001.0123456789abcdef").is_dir());
}

#[test]
fn request_names_are_a_canonical_uid_a_dot_and_a_suffix() {
    assert_eq!(spool::request_name_uid("1001.0123456789abcdef"), Some(1001));
    assert_eq!(spool::request_name_uid("0.x"), Some(0));
    for not in [
        "1001", "1001.", "01001.x", "+1001.x", "-1.x", ".1001.x", "x.1001", "",
    ] {
        assert_eq!(spool::request_name_uid(not), None, "{not:?}");
    }
}

#[test]
fn an_expired_request_planted_under_the_users_prefix_is_removed() {
    let f = Fixture::new();
    // Someone else's file under the user's prefix: reported while fresh...
    let planted = place(&f, &device_request("planted"), UID, 1001);
    let s = scan_at(&f, real_now());
    assert!(exists(&planted));
    assert!(
        s.ignored[0].reason.contains("owned by uid 1001"),
        "{:?}",
        s.ignored
    );
    // ...and removed once expired, like any other user's request.
    let s = scan_at(&f, two_days_later());
    assert!(!exists(&planted));
    assert_eq!(s.expired.removed, [planted]);
    assert!(s.ignored.is_empty(), "{:?}", s.ignored);
}

#[test]
fn an_expired_symlink_of_another_user_is_removed_and_its_target_untouched() {
    let f = Fixture::new();
    let dir = spool(&f);
    // What a link could point at: a file and a directory full of requests.
    let target = f.root().join("precious");
    std::fs::write(&target, b"keep me").unwrap();
    let target_dir = f.root().join("elsewhere");
    std::fs::create_dir(&target_dir).unwrap();
    std::fs::write(target_dir.join("1001.0123456789abcdef"), b"keep me too").unwrap();
    let to_file = dir.join("1001.00000000000000aa");
    let to_dir = dir.join("1001.00000000000000bb");
    std::os::unix::fs::symlink(&target, &to_file).unwrap();
    std::os::unix::fs::symlink(&target_dir, &to_dir).unwrap();
    for link in [&to_file, &to_dir] {
        std::os::unix::fs::lchown(link, Some(1001), None).unwrap();
    }
    let s = scan_at(&f, two_days_later());
    assert_eq!(s.expired.removed.len(), 2, "{:?}", s.expired);
    assert!(!exists(&to_file) && !exists(&to_dir));
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    assert_eq!(
        std::fs::read(target_dir.join("1001.0123456789abcdef")).unwrap(),
        b"keep me too"
    );
}

#[test]
fn a_fresh_symlink_of_another_user_is_kept_and_never_followed() {
    let f = Fixture::new();
    let dir = spool(&f);
    // A link under the user's prefix to a valid enrollment of the user's own.
    let real = place(&f, &device_request("phone"), UID, UID);
    let moved = f.root().join("moved");
    std::fs::rename(&real, &moved).unwrap();
    let link = dir.join(format!("{UID}.00000000000000cc"));
    std::os::unix::fs::symlink(&moved, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(1001), None).unwrap();
    let s = scan_at(&f, real_now());
    assert!(s.found.is_none(), "the link was followed");
    assert!(exists(&link));
    assert!(
        s.ignored[0].reason.contains("symbolic link")
            && s.ignored[0].reason.contains("owned by uid 1001"),
        "{:?}",
        s.ignored
    );
    assert!(moved.exists());
}

#[test]
fn the_users_own_symlink_and_fifo_are_removed_without_being_followed_or_opened() {
    let f = Fixture::new();
    let dir = spool(&f);
    let target = place(&f, &device_request("phone"), UID, UID);
    let moved = f.root().join("moved");
    std::fs::rename(&target, &moved).unwrap();
    let link = dir.join(format!("{UID}.00000000000000dd"));
    std::os::unix::fs::symlink(&moved, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(UID), None).unwrap();
    let fifo = dir.join(format!("{UID}.00000000000000ee"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    chown(&fifo, Some(Uid::from_raw(UID)), None).unwrap();
    let s = scan_at(&f, real_now());
    assert!(s.found.is_none());
    assert!(!exists(&link) && !exists(&fifo));
    let reasons: Vec<&str> = s.ignored.iter().map(|i| i.reason.as_str()).collect();
    assert!(
        reasons.contains(&"a symbolic link (never followed); removed"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"not a regular file; removed"),
        "{reasons:?}"
    );
    assert_eq!(
        std::fs::read(&moved).unwrap().len(),
        device_request("phone")
            .seal(&f.keys.enrollment_public_key(), UID)
            .unwrap()
            .len()
    );
}

#[test]
fn the_users_own_stale_file_is_removed_and_says_so() {
    let f = Fixture::new();
    let mut old = device_request("phone");
    old.created = NOW - DAY - 1;
    let path = place(&f, &old, UID, UID);
    let s = find(&f, &f.keys);
    assert!(!exists(&path));
    assert_eq!(
        s.ignored[0].reason,
        "older than enrollment.pending_max_age; removed"
    );
}

#[test]
fn many_expired_requests_make_one_summary_line() {
    let f = Fixture::new();
    // As many as every scan examines.
    for uid in 2000..2016 {
        request_of(&f, uid);
    }
    let s = scan_at(&f, two_days_later());
    assert_eq!(s.expired.removed.len(), 16);
    let line = s.expired.summary().unwrap();
    assert!(!line.contains('\n'));
    assert!(
        line.starts_with("removed 16 expired requests of other users"),
        "{line}"
    );
    assert!(line.ends_with(" and 6 more"), "{line}");
    assert_eq!(line.matches(", ").count(), 9, "{line}");
    // The next scan finds nothing left to do.
    assert!(scan_at(&f, two_days_later()).expired.is_empty());
}

#[test]
fn a_large_spool_of_expired_requests_is_swept_a_share_at_a_time() {
    let f = Fixture::new();
    let expired: Vec<PathBuf> = (3000..3200).map(|uid| request_of(&f, uid)).collect();
    let later = two_days_later();
    let left = || expired.iter().filter(|p| exists(p)).count();
    let mut removed = 0;
    let mut scans = 0;
    while left() > 0 {
        scans += 1;
        // Each request is examined by a scan with a chance of at least 1/16.
        assert!(scans <= 400, "{} expired requests left", left());
        let s = scan_at(&f, later);
        assert!(s.expired.failed.is_empty());
        removed += s.expired.removed.len();
    }
    assert_eq!(removed, expired.len());
    assert!(scans > 1, "a scan examines only a share of a large spool");
}

#[test]
fn a_large_spool_of_fresh_requests_loses_none() {
    let f = Fixture::new();
    let fresh: Vec<PathBuf> = (3000..3200).map(|uid| request_of(&f, uid)).collect();
    for _ in 0..50 {
        assert!(scan_at(&f, real_now()).expired.is_empty());
    }
    assert!(fresh.iter().all(|p| exists(p)));
}

#[test]
fn a_symlinked_spool_is_refused() {
    let f = Fixture::new();
    let dir = spool(&f);
    let link = f.root().join("spool-link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let err = spool::find(&link, UID, &f.keys, trust(), DAY, NOW).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

//! The spool directory: what a scan finds, what it removes, and how much
//! work it does however full the spool is.
//!
//! Anyone may create anything in the spool (mode 1733). These tests plant
//! what another local user could (files named after someone else's uid,
//! directories, links, FIFOs, junk names, thousands of them) and check that
//! a scan removes them, reports them in one line, examines at most
//! `MAX_EXAMINED` entries, and still finds the user's own request.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{trust, Fixture};
use mfa_core::keys::MasterKey;
use mfa_core::pending::{Pending, Request};
use mfa_core::recovery::{self, KdfParams};
use mfa_core::spool::{
    self, Unusable, MAX_DIRECTORIES_REMOVED, MAX_EXAMINED, MAX_IGNORED, MAX_REQUESTS_PER_UID,
};
use nix::unistd::{chown, Uid};

/// The user logging in.
const UID: u32 = 1000;
/// Someone else, who plants things.
const MALLORY: u32 = 1001;
const DAY: u64 = 86_400;

/// The real time: files' times come from the kernel's clock.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Two days from now, when every file made by a test is expired.
fn two_days_later() -> u64 {
    now() + 2 * DAY
}

fn spool(f: &Fixture) -> PathBuf {
    let dir = f.root().join("spool");
    if !dir.exists() {
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1733)).unwrap();
    }
    dir
}

/// A request for new recovery codes, made at `created`.
fn request(created: u64) -> Pending {
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
        created,
        request: Request::RecoveryCodes { recovery },
        proof: None,
    }
}

/// `p` sealed for `sealed_for`, written under `named`'s uid and owned by
/// `owner`.
fn place(f: &Fixture, p: &Pending, sealed_for: u32, named: u32, owner: u32) -> PathBuf {
    let sealed = p.seal(&f.keys.enrollment_public_key(), sealed_for).unwrap();
    let path = spool::write_to_spool(&spool(f), named, &sealed).unwrap();
    chown(&path, Some(Uid::from_raw(owner)), None).unwrap();
    path
}

/// A request of `uid`'s own, made now, as their `mfa-enroll` writes it.
fn request_of(f: &Fixture, uid: u32) -> (PathBuf, Pending) {
    let p = request(now());
    (place(f, &p, uid, uid, uid), p)
}

/// A file `name` in the spool with `contents`, owned by `owner`.
fn plant_file(f: &Fixture, name: &str, owner: u32) -> PathBuf {
    let path = spool(f).join(name);
    fs::write(&path, b"not a request").unwrap();
    chown(&path, Some(Uid::from_raw(owner)), None).unwrap();
    path
}

/// An empty directory `name` in the spool, owned by `owner`.
fn plant_dir(f: &Fixture, name: &str, owner: u32) -> PathBuf {
    let path = spool(f).join(name);
    fs::create_dir(&path).unwrap();
    chown(&path, Some(Uid::from_raw(owner)), None).unwrap();
    path
}

fn scan_at(f: &Fixture, keys: &MasterKey, now: u64) -> spool::Search {
    spool::find(&spool(f), UID, keys, trust(), DAY, now).unwrap()
}

fn scan(f: &Fixture) -> spool::Search {
    scan_at(f, &f.keys, now())
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Every name left in the spool.
fn left(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(spool(f))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn set_times(path: &Path, mtime: u64) {
    let t = UNIX_EPOCH + Duration::from_secs(mtime);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

// ---------------------------------------------------------------------------
// The spool itself

#[test]
fn a_missing_spool_means_nothing_pending() {
    let f = Fixture::new();
    let s = spool::find(&f.root().join("nope"), UID, &f.keys, trust(), DAY, now()).unwrap();
    assert!(s.found.is_none() && s.ignored.is_empty() && s.expired.is_empty());
}

#[test]
fn a_spool_without_the_sticky_bit_is_refused() {
    let f = Fixture::new();
    let dir = spool(&f);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o733)).unwrap();
    let err = spool::find(&dir, UID, &f.keys, trust(), DAY, now()).unwrap_err();
    assert!(err.to_string().contains("sticky"), "{err}");
}

#[test]
fn a_symlinked_spool_is_refused() {
    let f = Fixture::new();
    let dir = spool(&f);
    let link = f.root().join("spool-link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let err = spool::find(&link, UID, &f.keys, trust(), DAY, now()).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
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

// ---------------------------------------------------------------------------
// The user's own requests

#[test]
fn the_users_request_is_found_and_nothing_else_is_reported() {
    let f = Fixture::new();
    let (path, p) = request_of(&f, UID);
    let s = scan(&f);
    let found = s.found.expect("found");
    assert_eq!(found.pending, p);
    assert_eq!(found.path, path);
    assert!(s.ignored.is_empty(), "{:?}", s.ignored);
    assert!(s.expired.is_empty(), "{:?}", s.expired.summary());
}

#[test]
fn an_enrollment_sealed_for_another_uid_is_ignored_and_removed() {
    let f = Fixture::new();
    let path = place(&f, &request(now()), MALLORY, UID, UID);
    let s = scan(&f);
    assert!(s.found.is_none());
    assert!(
        s.ignored[0].reason.contains("different user"),
        "{:?}",
        s.ignored
    );
    assert!(!exists(&path));
}

#[test]
fn an_enrollment_sealed_to_another_host_is_ignored() {
    let f = Fixture::new();
    request_of(&f, UID);
    let other = MasterKey::generate(1).unwrap();
    let s = scan_at(&f, &other, now());
    assert!(s.found.is_none());
    assert!(
        s.ignored[0].reason.contains("does not open"),
        "{:?}",
        s.ignored
    );
}

#[test]
fn a_stale_or_future_enrollment_is_ignored_and_removed() {
    let f = Fixture::new();
    let stale = place(&f, &request(now() - DAY - 1), UID, UID, UID);
    let future = place(&f, &request(now() + 3600), UID, UID, UID);
    let s = scan(&f);
    assert!(s.found.is_none());
    let reasons: Vec<&str> = s.ignored.iter().map(|i| i.reason.as_str()).collect();
    assert!(
        reasons.contains(&"older than enrollment.pending_max_age; removed"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"created in the future; removed"),
        "{reasons:?}"
    );
    assert!(!exists(&stale) && !exists(&future));
}

#[test]
fn oversized_writable_and_special_files_of_the_users_own_are_removed() {
    let f = Fixture::new();
    let dir = spool(&f);
    let big = dir.join(format!("{UID}.big"));
    fs::write(&big, vec![0u8; 20_000]).unwrap();
    chown(&big, Some(Uid::from_raw(UID)), None).unwrap();
    let (writable, _) = request_of(&f, UID);
    fs::set_permissions(&writable, fs::Permissions::from_mode(0o666)).unwrap();
    let fifo = dir.join(format!("{UID}.fifo"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    chown(&fifo, Some(Uid::from_raw(UID)), None).unwrap();
    let s = scan(&f);
    assert!(s.found.is_none());
    let mut reasons: Vec<&str> = s.ignored.iter().map(|i| i.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "20000 bytes, more than 16384; removed",
            "not a regular file; removed",
            "writable by others; removed"
        ]
    );
    assert!(!exists(&big) && !exists(&writable) && !exists(&fifo));
}

#[test]
fn the_users_own_symlink_is_removed_without_being_followed() {
    let f = Fixture::new();
    let dir = spool(&f);
    // A link under the user's prefix to a valid request of the user's own.
    let (real, _) = request_of(&f, UID);
    let moved = f.root().join("moved");
    fs::rename(&real, &moved).unwrap();
    let link = dir.join(format!("{UID}.00000000000000dd"));
    std::os::unix::fs::symlink(&moved, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(UID), None).unwrap();
    let s = scan(&f);
    assert!(s.found.is_none(), "the link was followed");
    assert!(!exists(&link));
    assert_eq!(
        s.ignored[0].reason,
        "a symbolic link (never followed); removed"
    );
    assert!(moved.exists());
}

#[test]
fn the_newest_enrollment_wins_and_older_ones_are_removed() {
    let f = Fixture::new();
    let old = place(&f, &request(now() - 100), UID, UID, UID);
    let (new, p) = request_of(&f, UID);
    let s = scan(&f);
    assert_eq!(s.found.unwrap().pending, p);
    assert!(!exists(&old) && exists(&new));
    assert_eq!(
        s.ignored[0].reason,
        "superseded by a newer enrollment; removed"
    );
}

#[test]
fn of_many_requests_of_the_users_own_only_the_newest_are_opened() {
    let f = Fixture::new();
    let t = now();
    // Oldest first, by their file times and by the times sealed inside.
    let paths: Vec<PathBuf> = (0..MAX_REQUESTS_PER_UID + 2)
        .map(|i| {
            let age = 600 - 60 * u64::try_from(i).unwrap();
            let path = place(&f, &request(t - age), UID, UID, UID);
            set_times(&path, t - age);
            path
        })
        .collect();
    let s = scan(&f);
    let found = s.found.expect("the newest is found");
    assert_eq!(&found.path, paths.last().unwrap());
    let reasons: Vec<&str> = s.ignored.iter().map(|i| i.reason.as_str()).collect();
    let unopened = reasons
        .iter()
        .filter(|r| r.starts_with("superseded: more than 4 requests waiting"))
        .count();
    let superseded = reasons
        .iter()
        .filter(|r| **r == "superseded by a newer enrollment; removed")
        .count();
    assert_eq!(
        (unopened, superseded),
        (2, MAX_REQUESTS_PER_UID - 1),
        "{reasons:?}"
    );
    assert!(!exists(&paths[0]) && !exists(&paths[1]));
    assert_eq!(left(&f).len(), 1);
}

#[test]
fn the_users_own_unusable_entries_are_reported_one_by_one_up_to_a_limit() {
    let f = Fixture::new();
    for i in 0..MAX_IGNORED + 4 {
        plant_file(&f, &format!("{UID}.junk{i:02}"), UID);
    }
    let s = scan(&f);
    assert_eq!(s.ignored.len(), MAX_IGNORED);
    assert_eq!(s.expired.removed_total(), 4);
    let line = s.expired.summary().unwrap();
    assert!(
        line.starts_with("removed 4 more unusable entries of the user logging in"),
        "{line}"
    );
    assert!(left(&f).is_empty(), "{:?}", left(&f));
}

// ---------------------------------------------------------------------------
// Expiry: the oldest of the sealed creation time and the file's times

#[test]
fn a_request_is_as_old_as_the_oldest_of_its_times() {
    let f = Fixture::new();
    // Sealed long ago, written now: too old.
    let sealed_old = place(&f, &request(now() - 2 * DAY), UID, UID, UID);
    // Sealed now, its modification time set back: too old, whoever's.
    let (mine_backdated, _) = request_of(&f, UID);
    set_times(&mine_backdated, now() - 2 * DAY);
    let (theirs_backdated, _) = request_of(&f, 2000);
    set_times(&theirs_backdated, now() - 2 * DAY);
    // A fresh request of another user: kept.
    let (theirs_fresh, _) = request_of(&f, 2001);
    let s = scan(&f);
    assert!(s.found.is_none());
    assert!(!exists(&sealed_old) && !exists(&mine_backdated));
    assert!(!exists(&theirs_backdated));
    assert!(exists(&theirs_fresh));
    assert_eq!(s.expired.removed(Unusable::Expired), 1);
    assert!(
        s.ignored
            .iter()
            .all(|i| i.reason == "older than enrollment.pending_max_age; removed"),
        "{:?}",
        s.ignored
    );
}

#[test]
fn changing_a_requests_mode_does_not_make_it_young() {
    let f = Fixture::new();
    // Written two days ago (as far as its modification time says), then
    // chmod today, which moves only its change time.
    let (theirs, _) = request_of(&f, 2000);
    set_times(&theirs, now() - 2 * DAY);
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o400)).unwrap();
    let ctime = fs::symlink_metadata(&theirs).unwrap().ctime();
    assert!(ctime >= i64::try_from(now() - 60).unwrap());
    let s = scan(&f);
    assert!(!exists(&theirs));
    assert_eq!(s.expired.removed(Unusable::Expired), 1);
}

#[test]
fn fresh_requests_of_other_users_are_neither_opened_nor_reported() {
    let f = Fixture::new();
    let (a, _) = request_of(&f, 1001);
    let (b, _) = request_of(&f, 2000);
    let s = scan(&f);
    assert!(exists(&a) && exists(&b));
    assert!(s.found.is_none() && s.ignored.is_empty());
    assert!(s.expired.is_empty());
    assert!(s.expired.summary().is_none());
    // Just inside the age limit is still fresh.
    let s = scan_at(&f, &f.keys, now() + DAY - 5);
    assert!(s.expired.is_empty() && exists(&a) && exists(&b));
}

#[test]
fn expired_requests_of_other_users_are_removed_in_one_line() {
    let f = Fixture::new();
    let paths: Vec<PathBuf> = (2000..2016).map(|uid| request_of(&f, uid).0).collect();
    let s = scan_at(&f, &f.keys, two_days_later());
    assert!(paths.iter().all(|p| !exists(p)));
    assert!(s.found.is_none() && s.ignored.is_empty(), "{:?}", s.ignored);
    assert_eq!(s.expired.removed(Unusable::Expired), 16);
    let line = s.expired.summary().unwrap();
    assert!(!line.contains('\n'));
    assert!(
        line.starts_with("removed 16 expired requests of other users"),
        "{line}"
    );
    assert!(line.contains(" and 13 more; "), "{line}");
    assert!(line.ends_with("; examined 16 entries"), "{line}");
    // The next scan finds nothing left to do.
    assert!(scan_at(&f, &f.keys, two_days_later()).expired.is_empty());
}

#[test]
fn a_large_spool_of_expired_requests_is_swept_a_share_at_a_time() {
    let f = Fixture::new();
    let expired: Vec<PathBuf> = (3000..3200).map(|uid| request_of(&f, uid).0).collect();
    let later = two_days_later();
    let left = || expired.iter().filter(|p| exists(p)).count();
    let mut removed = 0;
    let mut scans = 0;
    while left() > 0 {
        scans += 1;
        // Each request is examined by a scan with a chance of at least 1/16.
        assert!(scans <= 400, "{} expired requests left", left());
        let s = scan_at(&f, &f.keys, later);
        assert_eq!(s.expired.failed(), 0);
        removed += s.expired.removed(Unusable::Expired);
    }
    assert_eq!(removed, expired.len());
    assert!(scans > 1, "a scan examines only a share of a large spool");
}

#[test]
fn a_large_spool_of_fresh_requests_loses_none() {
    let f = Fixture::new();
    let fresh: Vec<PathBuf> = (3000..3200).map(|uid| request_of(&f, uid).0).collect();
    for _ in 0..50 {
        assert!(scan(&f).expired.is_empty());
    }
    assert!(fresh.iter().all(|p| exists(p)));
}

// ---------------------------------------------------------------------------
// What another user can plant

/// The defect: entries planted under the user's uid by someone else stayed
/// while fresh, and each was reported on a line of its own at every one of
/// the user's logins.
#[test]
fn entries_planted_under_the_users_uid_by_another_user_are_gone_after_one_scan() {
    let f = Fixture::new();
    let dir = spool(&f);
    let mut planted = Vec::new();
    // Well-formed requests sealed for the user (the public key is public),
    // garbage, a link, directories; all the planter's.
    for _ in 0..20 {
        planted.push(place(&f, &request(now()), UID, UID, MALLORY));
    }
    for i in 0..20 {
        planted.push(plant_file(&f, &format!("{UID}.garbage{i}"), MALLORY));
    }
    for i in 0..MAX_DIRECTORIES_REMOVED {
        planted.push(plant_dir(&f, &format!("{UID}.dir{i}"), MALLORY));
    }
    let symlink = dir.join(format!("{UID}.link"));
    std::os::unix::fs::symlink("/etc/passwd", &symlink).unwrap();
    std::os::unix::fs::lchown(&symlink, Some(MALLORY), None).unwrap();
    planted.push(symlink);
    // The user's own request is still found among them.
    let (mine, p) = request_of(&f, UID);

    let s = scan(&f);
    assert_eq!(s.found.map(|f| f.pending), Some(p));
    for path in &planted {
        assert!(!exists(path), "{} is still there", path.display());
    }
    assert!(exists(&mine));
    assert!(exists(Path::new("/etc/passwd")));
    // Not one report per entry: the user's list is for the user's own files.
    assert!(s.ignored.is_empty(), "{:?}", s.ignored);
    // The link too: it is not the user's.
    assert_eq!(s.expired.removed(Unusable::WrongOwner), 41);
    assert_eq!(
        s.expired.removed(Unusable::Directory),
        MAX_DIRECTORIES_REMOVED
    );
    assert_eq!(s.expired.removed_total(), 41 + MAX_DIRECTORIES_REMOVED);
    let line = s.expired.summary().unwrap();
    assert!(
        line.starts_with(
            "removed 41 entries not owned by the uid in their name (owned by uid 1001): "
        ),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "removed {MAX_DIRECTORIES_REMOVED} empty directories (owned by uid 1001): "
        )),
        "{line}"
    );
    // A few names of each kind, then a count.
    assert_eq!(line.matches(" and 38 more; ").count(), 1, "{line}");
    assert!(
        line.ends_with(&format!(
            "; examined {} entries",
            42 + MAX_DIRECTORIES_REMOVED
        )),
        "{line}"
    );
}

#[test]
fn a_planted_symlink_is_removed_and_its_target_untouched() {
    let f = Fixture::new();
    let dir = spool(&f);
    // What a link could point at: a file and a directory full of requests.
    let target = f.root().join("precious");
    fs::write(&target, b"keep me").unwrap();
    let target_dir = f.root().join("elsewhere");
    fs::create_dir(&target_dir).unwrap();
    fs::write(target_dir.join("1001.0123456789abcdef"), b"keep me too").unwrap();
    // Named as the planter's own requests, and as the user's.
    let links = [
        dir.join("1001.00000000000000aa"),
        dir.join("1001.00000000000000bb"),
        dir.join(format!("{UID}.00000000000000cc")),
    ];
    std::os::unix::fs::symlink(&target, &links[0]).unwrap();
    std::os::unix::fs::symlink(&target_dir, &links[1]).unwrap();
    std::os::unix::fs::symlink(&target_dir, &links[2]).unwrap();
    for link in &links {
        std::os::unix::fs::lchown(link, Some(MALLORY), None).unwrap();
    }
    let s = scan(&f);
    assert!(links.iter().all(|l| !exists(l)));
    assert_eq!(s.expired.removed(Unusable::NotRegular), 2);
    assert_eq!(s.expired.removed(Unusable::WrongOwner), 1);
    assert_eq!(fs::read(&target).unwrap(), b"keep me");
    assert_eq!(
        fs::read(target_dir.join("1001.0123456789abcdef")).unwrap(),
        b"keep me too"
    );
}

#[test]
fn names_that_are_not_request_names_are_removed_whoever_made_them() {
    let f = Fixture::new();
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
        plant_file(&f, name, MALLORY);
    }
    plant_dir(&f, "a-directory", MALLORY);
    plant_file(&f, "owned-by-root", 0);
    let s = scan(&f);
    assert!(left(&f).is_empty(), "{:?}", left(&f));
    assert_eq!(s.expired.removed(Unusable::NotRequestName), names.len() + 2);
    let line = s.expired.summary().unwrap();
    assert!(
        line.starts_with(
            "removed 10 entries whose name is not a request's (<uid>.<suffix>) (owned by uid "
        ),
        "{line}"
    );
}

#[test]
fn names_with_control_characters_or_invalid_utf8_are_removed_and_escaped() {
    let f = Fixture::new();
    let dir = spool(&f);
    let evil: [&[u8]; 3] = [
        b"\x1b]0;owned\x07",
        b"1000.\x1b[2J\nfake line",
        b"\xff\xfe not utf-8 \\",
    ];
    for name in evil {
        let path = dir.join(OsStr::from_bytes(name));
        fs::write(&path, b"x").unwrap();
        chown(&path, Some(Uid::from_raw(MALLORY)), None).unwrap();
    }
    let s = scan(&f);
    assert!(left(&f).is_empty(), "{:?}", left(&f));
    let line = s.expired.summary().unwrap();
    assert!(
        line.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
        "{line:?}"
    );
    assert!(line.contains("\\x1b]0;owned\\x07"), "{line}");
    assert!(
        line.contains("\\xff\\xfe\\x20not\\x20utf-8\\x20\\\\"),
        "{line}"
    );
    // The user's prefix with a control character is still not the user's file.
    assert!(s.ignored.is_empty(), "{:?}", s.ignored);
}

#[test]
fn a_directory_is_removed_if_empty_and_left_with_its_contents_if_not() {
    let f = Fixture::new();
    let empty = plant_dir(&f, &format!("{UID}.empty"), MALLORY);
    let full = plant_dir(&f, &format!("{UID}.full"), MALLORY);
    let inside = full.join("1000.0123456789abcdef");
    fs::write(&inside, b"keep").unwrap();
    let sub = full.join("sub");
    fs::create_dir(&sub).unwrap();
    let s = scan(&f);
    assert!(!exists(&empty));
    // Root does not walk a tree someone else controls.
    assert!(full.is_dir() && inside.exists() && sub.is_dir());
    assert_eq!(s.expired.removed(Unusable::Directory), 1);
    assert_eq!(s.expired.left_non_empty(), 1);
    let line = s.expired.summary().unwrap();
    assert!(
        line.contains(&format!(
            "left 1 non-empty directory (not walked as root: look, then remove by hand) (owned by uid 1001): {}",
            full.display()
        )),
        "{line}"
    );
    // The user's own non-empty directory is reported to the user, and left.
    let own = plant_dir(&f, &format!("{UID}.own"), UID);
    fs::write(own.join("x"), b"x").unwrap();
    let s = scan(&f);
    assert!(own.is_dir());
    assert!(
        s.ignored.iter().any(|i| i.path == own
            && i.reason == "a directory, not a regular file; not empty, left (remove it by hand)"),
        "{:?}",
        s.ignored
    );
}

#[test]
fn other_users_requests_that_cannot_be_requests_are_removed() {
    let f = Fixture::new();
    // Named after 2000 but the planter's; writable by others; too big.
    let wrong_owner = place(&f, &request(now()), 2000, 2000, MALLORY);
    let (writable, _) = request_of(&f, 2001);
    fs::set_permissions(&writable, fs::Permissions::from_mode(0o622)).unwrap();
    let big = plant_file(&f, "2002.big", 2002);
    fs::write(&big, vec![0u8; 20_000]).unwrap();
    let (fine, _) = request_of(&f, 2003);
    let s = scan(&f);
    assert!(!exists(&wrong_owner) && !exists(&writable) && !exists(&big));
    assert!(exists(&fine));
    assert_eq!(s.expired.removed(Unusable::WrongOwner), 1);
    assert_eq!(s.expired.removed(Unusable::Unsafe), 2);
}

#[test]
fn a_uid_keeps_only_its_newest_requests() {
    let f = Fixture::new();
    let t = now();
    let count = MAX_REQUESTS_PER_UID + 6;
    // Oldest first.
    let paths: Vec<PathBuf> = (0..count)
        .map(|i| {
            let (path, _) = request_of(&f, 2000);
            set_times(&path, t - 3600 + 60 * u64::try_from(i).unwrap());
            path
        })
        .collect();
    let s = scan(&f);
    assert_eq!(s.expired.removed(Unusable::Surplus), 6);
    assert!(paths[..6].iter().all(|p| !exists(p)));
    assert!(paths[6..].iter().all(|p| exists(p)));
    // A uid with no more than that is left alone.
    assert!(scan(&f).expired.is_empty());
}

// ---------------------------------------------------------------------------
// Bounded work

#[test]
fn a_scan_examines_at_most_the_limit_and_the_next_one_goes_on() {
    let f = Fixture::new();
    // Fewer named after the user's uid than a scan examines.
    let extra = MAX_EXAMINED / 2;
    for i in 0..MAX_EXAMINED + extra {
        if i % 2 == 0 {
            plant_file(&f, &format!("junk{i}"), MALLORY);
        } else {
            plant_file(&f, &format!("{UID}.planted{i}"), MALLORY);
        }
    }
    let s = scan(&f);
    assert_eq!(s.expired.examined, MAX_EXAMINED);
    assert_eq!(s.expired.removed_total(), MAX_EXAMINED);
    assert_eq!(s.expired.deferred, extra);
    assert_eq!(left(&f).len(), extra);
    let line = s.expired.summary().unwrap();
    assert!(
        line.ends_with(&format!(
            "examined {MAX_EXAMINED} entries; {extra} left for the next scan \
             (one examines at most {MAX_EXAMINED} entries and removes at most \
             {MAX_DIRECTORIES_REMOVED} directories)"
        )),
        "{line}"
    );
    // Entries named after the user's uid come first.
    assert!(
        left(&f).iter().all(|n| n.starts_with("junk")),
        "{:?}",
        left(&f)
    );
    let s = scan(&f);
    assert_eq!(
        (
            s.expired.examined,
            s.expired.deferred,
            s.expired.removed_total()
        ),
        (extra, 0, extra)
    );
    assert!(left(&f).is_empty());
}

#[test]
fn directories_are_removed_a_few_at_each_scan() {
    let f = Fixture::new();
    for i in 0..3 * MAX_DIRECTORIES_REMOVED {
        plant_dir(&f, &format!("{UID}.dir{i}"), MALLORY);
        plant_dir(&f, &format!("dir{i}"), MALLORY);
    }
    for i in 0..5 {
        plant_file(&f, &format!("{UID}.file{i}"), MALLORY);
    }
    let s = scan(&f);
    // The files all go, and the most directories a scan removes.
    assert_eq!(s.expired.removed(Unusable::WrongOwner), 5);
    assert_eq!(
        s.expired.removed(Unusable::Directory),
        MAX_DIRECTORIES_REMOVED
    );
    assert_eq!(s.expired.deferred, 5 * MAX_DIRECTORIES_REMOVED);
    // Those named after the user's uid go first.
    let mut scans = 1;
    while left(&f).iter().any(|n| n.starts_with(&format!("{UID}."))) {
        scans += 1;
        scan(&f);
    }
    assert_eq!(scans, 3);
    assert_eq!(left(&f).len(), 3 * MAX_DIRECTORIES_REMOVED);
    for _ in 0..3 {
        let s = scan(&f);
        assert_eq!(
            s.expired.removed(Unusable::NotRequestName),
            MAX_DIRECTORIES_REMOVED
        );
    }
    assert!(left(&f).is_empty());
}

#[test]
fn the_users_request_is_found_however_much_else_the_spool_holds() {
    let f = Fixture::new();
    // More junk than one scan examines, other users' entries, and half the
    // limit planted under the user's uid.
    for i in 0..MAX_EXAMINED + 100 {
        plant_file(&f, &format!("junk{i}"), MALLORY);
    }
    for i in 0..MAX_EXAMINED / 2 {
        plant_file(&f, &format!("{UID}.planted{i}"), MALLORY);
    }
    for uid in 5000..5100 {
        request_of(&f, uid);
    }
    let (mine, p) = request_of(&f, UID);
    let s = scan(&f);
    assert_eq!(s.found.map(|f| f.pending), Some(p));
    assert!(exists(&mine));
    assert_eq!(s.expired.examined, MAX_EXAMINED);
    assert_eq!(s.expired.removed(Unusable::WrongOwner), MAX_EXAMINED / 2);
    assert!(
        left(&f)
            .iter()
            .all(|n| !n.starts_with(&format!("{UID}.planted"))),
        "all of the user's planted entries went first"
    );
}

// ---------------------------------------------------------------------------
// For `mfa-enroll approve`

#[test]
fn approve_finds_a_request_however_many_files_are_planted_under_the_users_uid() {
    let f = Fixture::new();
    let planted = 3 * MAX_EXAMINED;
    for i in 0..planted {
        plant_file(&f, &format!("{UID}.planted{i}"), MALLORY);
    }
    let (mine, p) = request_of(&f, UID);
    let (requests, ignored) =
        spool::requests_of(&spool(&f), UID, &f.keys, trust(), DAY, now()).unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].pending, p);
    assert!(exists(&mine));
    assert_eq!(left(&f).len(), 1);
    assert!(
        ignored[0].reason.starts_with(&format!(
            "removed {planted} entries not owned by the uid in their name"
        )),
        "{ignored:?}"
    );
}

#[test]
fn requests_of_lists_every_usable_request_newest_first_and_removes_none() {
    let f = Fixture::new();
    let t = now();
    let older = place(&f, &request(t - 100), UID, UID, UID);
    let (newer, _) = request_of(&f, UID);
    let planted = plant_file(&f, &format!("{UID}.planted"), MALLORY);
    let junk = plant_file(&f, "junk", MALLORY);
    let (requests, ignored) =
        spool::requests_of(&spool(&f), UID, &f.keys, trust(), DAY, t).unwrap();
    let paths: Vec<&Path> = requests.iter().map(|r| r.path.as_path()).collect();
    assert_eq!(paths, [newer.as_path(), older.as_path()]);
    assert!(exists(&older) && exists(&newer));
    // What is under the user's uid and not theirs goes, in one line.
    assert!(!exists(&planted));
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert_eq!(ignored[0].path, spool(&f));
    assert!(
        ignored[0]
            .reason
            .starts_with("removed 1 entry not owned by the uid in its name"),
        "{ignored:?}"
    );
    // The rest of the spool is not approve's business.
    assert!(exists(&junk));
}

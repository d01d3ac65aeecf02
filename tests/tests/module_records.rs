//! Damaged, foreign and unsafe user records (SECURITY.md items 12-13, 17):
//! each fails closed with `PAM_AUTHINFO_UNAVAIL` and an alert, under every
//! policy, is never taken for "not enrolled" (so never `PAM_IGNORE` under
//! skip, never a new enrollment under configure), and is left as it was.
//! Needs root.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::{Duration, Instant};

use common::{
    code_next, code_now, enroll, expect_event, ignore_falls_through, mfa_alone, policy, read,
    record_path, sandbox_with, CODE_PROMPT,
};
use mfa_core::keys::MasterKey;
use pam_mfa_e2e::{unix_now, Converse, Op, PamCode, Sandbox, TestUser};

/// Checks that `user`'s login fails closed before anything is asked,
/// under every policy and in the key-only stack, with a `store_failure`
/// alert; and that the record file is as it was.
fn fails_closed(sb: &Sandbox, user: &TestUser, code: &str) -> common::AuditLine {
    let path = record_path(sb, user.uid());
    let before = fs::symlink_metadata(&path)
        .ok()
        .filter(fs::Metadata::is_file)
        .map(|_| read(&path));
    mfa_alone(sb, "mfa", "");
    ignore_falls_through(sb, "keyonly");
    let mut alert = None;
    for name in ["skip", "configure", "deny"] {
        sb.write_config(&policy(name));
        let t = sb.converse(Converse::new("mfa", user.name()).answer(code));
        t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
        assert!(
            t.messages().is_empty(),
            "nothing asked or shown (no enrollment) under {name}\n{t}"
        );
        let uid = user.uid().to_string();
        let line = expect_event(&t, "store_failure", &[("user", user.name()), ("uid", &uid)]);
        alert.get_or_insert(line);
        if name == "skip" {
            let keyonly = sb.converse(Converse::new("keyonly", user.name()).answer(code));
            keyonly.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
        }
    }
    if let Some(before) = before {
        assert_eq!(
            read(&path),
            before,
            "the record is left for an administrator"
        );
    }
    alert.expect("three runs")
}

/// The record file of a freshly enrolled user: one sealed slot, one empty.
fn enrolled(prefix: &str) -> (Sandbox, TestUser, common::Enrolled) {
    let sb = sandbox_with(&policy("skip"));
    let user = TestUser::create(prefix);
    let device = enroll(&sb, &user);
    (sb, user, device)
}

fn rewrite(sb: &Sandbox, uid: u32, change: impl FnOnce(&mut Vec<u8>)) {
    let path = record_path(sb, uid);
    let mut bytes = read(&path);
    change(&mut bytes);
    fs::write(&path, &bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_record_with_a_flipped_bit_fails_closed() {
    let (sb, user, device) = enrolled("recflip");
    // Inside the ciphertext of the only sealed slot.
    rewrite(&sb, user.uid(), |b| b[60] ^= 0x01);
    let line = fails_closed(&sb, &user, &code_now(&device.secret));
    assert!(
        line.get("reason").is_some_and(|r| r.contains("corrupt")),
        "{line:?}"
    );
}

#[test]
fn a_record_with_a_flipped_header_bit_fails_closed() {
    let (sb, user, device) = enrolled("recflhd");
    // The sequence number, which the AAD covers.
    rewrite(&sb, user.uid(), |b| b[29] ^= 0x01);
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn a_truncated_record_fails_closed() {
    let (sb, user, device) = enrolled("rectrunc");
    rewrite(&sb, user.uid(), |b| b.truncate(b.len() / 2 + 100));
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn a_record_cut_to_its_first_bytes_fails_closed() {
    let (sb, user, device) = enrolled("rectrun2");
    rewrite(&sb, user.uid(), |b| b.truncate(20));
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn an_empty_record_file_fails_closed() {
    let (sb, user, device) = enrolled("recempty");
    rewrite(&sb, user.uid(), Vec::clear);
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn a_record_of_zeros_fails_closed() {
    let (sb, user, device) = enrolled("reczero");
    rewrite(&sb, user.uid(), |b| b.iter_mut().for_each(|x| *x = 0));
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn an_oversized_record_fails_closed() {
    let (sb, user, device) = enrolled("recbig");
    rewrite(&sb, user.uid(), |b| b.resize(256 * 1024, 0));
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn a_record_of_an_unknown_format_version_fails_closed() {
    let (sb, user, device) = enrolled("recvers");
    rewrite(&sb, user.uid(), |b| {
        b[8] = 0;
        b[9] = 0xff;
    });
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn a_record_under_another_master_key_fails_closed() {
    let (sb, user, device) = enrolled("reckey");
    MasterKey::generate(unix_now())
        .unwrap()
        .save(&sb.key_file())
        .unwrap();
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn a_record_copied_to_another_enrolled_user_fails_closed() {
    let (sb, alice, device) = enrolled("recalice");
    let bob = TestUser::create("recbob");
    enroll(&sb, &bob);
    fs::copy(record_path(&sb, alice.uid()), record_path(&sb, bob.uid())).unwrap();
    // Alice's code, at Bob's login.
    fails_closed(&sb, &bob, &code_now(&device.secret));
}

#[test]
fn a_record_copied_to_an_unenrolled_user_fails_closed() {
    let (sb, alice, device) = enrolled("recalice");
    let carol = TestUser::create("reccarol");
    fs::copy(record_path(&sb, alice.uid()), record_path(&sb, carol.uid())).unwrap();
    fails_closed(&sb, &carol, &code_now(&device.secret));
}

#[test]
fn a_record_not_owned_by_root_fails_closed() {
    let (sb, user, device) = enrolled("recowner");
    nix::unistd::chown(
        &record_path(&sb, user.uid()),
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();
    let line = fails_closed(&sb, &user, &code_now(&device.secret));
    assert!(
        line.get("reason")
            .is_some_and(|r| r.contains("owned by uid 65534")),
        "{line:?}"
    );
}

#[test]
fn a_record_owned_by_its_user_fails_closed() {
    let (sb, user, device) = enrolled("recowner");
    nix::unistd::chown(
        &record_path(&sb, user.uid()),
        Some(nix::unistd::Uid::from_raw(user.uid())),
        None,
    )
    .unwrap();
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn a_world_readable_record_fails_closed() {
    let (sb, user, device) = enrolled("recmode");
    fs::set_permissions(
        record_path(&sb, user.uid()),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let line = fails_closed(&sb, &user, &code_now(&device.secret));
    assert!(
        line.get("reason").is_some_and(|r| r.contains("0644")),
        "{line:?}"
    );
}

#[test]
fn a_group_writable_record_fails_closed() {
    let (sb, user, device) = enrolled("recmodeg");
    fs::set_permissions(
        record_path(&sb, user.uid()),
        fs::Permissions::from_mode(0o620),
    )
    .unwrap();
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn a_symlinked_record_fails_closed() {
    let (sb, user, device) = enrolled("recsym");
    let path = record_path(&sb, user.uid());
    let real = sb.path("elsewhere");
    fs::rename(&path, &real).unwrap();
    symlink(&real, &path).unwrap();
    let line = fails_closed(&sb, &user, &code_now(&device.secret));
    assert!(
        line.get("reason")
            .is_some_and(|r| r.contains("symbolic link")),
        "{line:?}"
    );
}

#[test]
fn a_fifo_in_place_of_a_record_fails_closed_without_hanging() {
    let (sb, user, device) = enrolled("recfifo");
    let path = record_path(&sb, user.uid());
    fs::remove_file(&path).unwrap();
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let start = Instant::now();
    fails_closed(&sb, &user, &code_now(&device.secret));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "no login waited on the FIFO"
    );
}

#[test]
fn a_directory_in_place_of_a_record_fails_closed() {
    let (sb, user, device) = enrolled("recdir");
    let path = record_path(&sb, user.uid());
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    fails_closed(&sb, &user, &code_now(&device.secret));
}

#[test]
fn damage_to_the_newer_slot_falls_back_to_the_older_one_with_an_alert() {
    let (sb, user, device) = enrolled("recslot");
    mfa_alone(&sb, "mfa", "");
    let first = code_now(&device.secret);
    sb.converse(Converse::new("mfa", user.name()).answer(&first))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    // The login wrote the second slot in place; damage it.
    let len = read(&record_path(&sb, user.uid())).len();
    rewrite(&sb, user.uid(), |b| b[len / 2 + 60] ^= 0x01);
    let t = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_next(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
        .assert_prompts(&[CODE_PROMPT]);
    let uid = user.uid().to_string();
    expect_event(&t, "record_slot_discarded", &[("uid", &uid)]);
    expect_event(&t, "auth_success", &[("uid", &uid)]);
}

#[test]
fn a_record_removed_by_an_administrator_makes_an_enrolled_user_unenrolled() {
    let (sb, user, device) = enrolled("recreset");
    let run = common::mfa_enroll(&sb, &["reset", "--user", user.name()]);
    run.assert_success();
    assert!(!record_path(&sb, user.uid()).exists());
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&code_now(&device.secret)));
    t.assert_rc(Op::Authenticate, PamCode::PERM_DENIED);
    expect_event(&t, "auth_skipped", &[("user", user.name())]);
}

#[test]
fn a_user_lock_held_forever_fails_closed_after_a_bounded_wait() {
    let (sb, user, device) = enrolled("reclock");
    let lock_path = sb.state_dir().join(format!("{}.lock", user.uid()));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .unwrap();
    fs::set_permissions(&lock_path, fs::Permissions::from_mode(0o600)).unwrap();
    // Another login (or a hung process) holding the user's lock.
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    mfa_alone(&sb, "mfa", "");
    let start = Instant::now();
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&code_now(&device.secret)));
    let waited = start.elapsed();
    t.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(30)).contains(&waited),
        "waited {waited:?} for the lock\n{t}"
    );
    let uid = user.uid().to_string();
    expect_event(&t, "store_failure", &[("uid", &uid)]);
    drop(held);
    // Once the lock is free, the same user logs in.
    sb.converse(Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

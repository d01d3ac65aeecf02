//! The master key file, its generations and the keys derived from them.

mod common;

use common::{set_mode, trust};
use mfa_core::fsutil::{FileProblem, FileTrust};
use mfa_core::keys::{EnrollmentPublicKey, KeyError, MasterKey, SealedError};

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn a_created_key_file_loads_back_with_the_same_keys() {
    let d = dir();
    let path = d.path().join("master.key");
    let key = MasterKey::generate(100).unwrap();
    key.create(&path).unwrap();
    let loaded = MasterKey::load(&path, trust()).unwrap();
    assert_eq!(loaded.active(), 1);
    assert_eq!(loaded.list(), key.list());
    assert_eq!(
        loaded.active_store_key().bytes(),
        key.active_store_key().bytes()
    );
    assert_eq!(loaded.enrollment_public_key(), key.enrollment_public_key());
    let mode = std::fs::metadata(&path).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

#[test]
fn init_refuses_to_overwrite_an_existing_key() {
    let d = dir();
    let path = d.path().join("master.key");
    let first = MasterKey::generate(1).unwrap();
    first.create(&path).unwrap();
    let second = MasterKey::generate(2).unwrap();
    assert!(matches!(
        second.create(&path),
        Err(KeyError::AlreadyExists(_))
    ));
    let kept = MasterKey::load(&path, trust()).unwrap();
    assert_eq!(
        kept.active_store_key().bytes(),
        first.active_store_key().bytes()
    );
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let d = dir();
    let path = d.path().join("master.key");
    MasterKey::generate(1).unwrap().create(&path).unwrap();
    for mode in [0o640, 0o604, 0o620, 0o644] {
        set_mode(&path, mode);
        let err = MasterKey::load(&path, trust()).unwrap_err();
        assert!(
            matches!(&err, KeyError::File(e) if matches!(e.problem, FileProblem::WrongMode { .. })),
            "mode {mode:o}: {err}"
        );
    }
}

#[test]
fn a_key_file_owned_by_someone_else_is_refused() {
    let d = dir();
    let path = d.path().join("master.key");
    MasterKey::generate(1).unwrap().create(&path).unwrap();
    let me = nix::unistd::geteuid().as_raw();
    let other = FileTrust::insecure_owner_for_tests(me.wrapping_add(1));
    let err = MasterKey::load(&path, other).unwrap_err();
    assert!(
        matches!(&err, KeyError::File(e) if matches!(e.problem, FileProblem::WrongOwner { .. }))
    );
}

#[test]
fn a_symlinked_key_file_is_refused() {
    let d = dir();
    let real = d.path().join("real.key");
    MasterKey::generate(1).unwrap().create(&real).unwrap();
    let link = d.path().join("master.key");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = MasterKey::load(&link, trust()).unwrap_err();
    assert!(matches!(&err, KeyError::File(e) if matches!(e.problem, FileProblem::Symlink)));
}

#[test]
fn a_missing_key_file_says_how_to_create_one() {
    let d = dir();
    let err = MasterKey::load(&d.path().join("master.key"), trust()).unwrap_err();
    assert!(err.to_string().contains("mfa-enroll key init"), "{err}");
}

#[test]
fn rotation_adds_an_active_generation_and_keeps_the_old_one() {
    let mut key = MasterKey::generate(1).unwrap();
    let old = key.active_store_key();
    let (old_bytes, old_check) = (*old.bytes(), old.check());
    assert_eq!(key.rotate(2).unwrap(), 2);
    assert_eq!(key.active(), 2);
    let list = key.list();
    assert_eq!(list.len(), 2);
    assert!(!list[0].active && list[1].active);
    assert_eq!(key.store_key(1).unwrap().bytes(), &old_bytes);
    assert_ne!(key.active_store_key().bytes(), &old_bytes);
    assert_ne!(key.active_store_key().check(), old_check);
    assert_eq!(key.enrollment_public_key().generation(), 2);
}

#[test]
fn retiring_refuses_the_active_generation_and_unknown_ones() {
    let mut key = MasterKey::generate(1).unwrap();
    key.rotate(2).unwrap();
    assert!(matches!(key.retire(2), Err(KeyError::RetireActive(2))));
    assert!(matches!(key.retire(9), Err(KeyError::UnknownGeneration(9))));
    key.retire(1).unwrap();
    assert!(key.store_key(1).is_none());
    assert_eq!(key.list().len(), 1);
}

#[test]
fn a_rotated_key_saves_and_loads_with_every_generation() {
    let d = dir();
    let path = d.path().join("master.key");
    let mut key = MasterKey::generate(1).unwrap();
    key.create(&path).unwrap();
    key.rotate(2).unwrap();
    key.save(&path).unwrap();
    let loaded = MasterKey::load(&path, trust()).unwrap();
    assert_eq!(loaded.list(), key.list());
    assert_eq!(
        loaded.store_key(1).unwrap().bytes(),
        key.store_key(1).unwrap().bytes()
    );
}

#[test]
fn malformed_key_files_are_refused_with_the_line() {
    let good =
        String::from_utf8(MasterKey::generate(1).unwrap().to_file_contents().to_vec()).unwrap();
    let gen_line = good
        .lines()
        .find(|l| l.starts_with("generation"))
        .unwrap()
        .to_owned();
    let cases = [
        ("", "missing header"),
        ("not a key\n", "missing header"),
        ("pam_mfa master key v1\n", "no `active`"),
        (
            &*format!("pam_mfa master key v1\nactive 2\n{gen_line}\n"),
            "active generation is not",
        ),
        (
            &*format!("pam_mfa master key v1\nactive 1\n{gen_line}\n{gen_line}\n"),
            "line 4",
        ),
        (
            &*format!("pam_mfa master key v1\nactive 1\n{gen_line}\nbogus\n"),
            "unrecognised",
        ),
        (
            &*format!(
                "pam_mfa master key v1\nactive 1\n{}\n",
                &gen_line[..gen_line.len() - 2]
            ),
            "secret",
        ),
        (
            &*format!("pam_mfa master key v1\nactive 1\nactive 1\n{gen_line}\n"),
            "twice",
        ),
    ];
    for (text, expect) in cases {
        let err = MasterKey::parse(text.as_bytes(), "test.key").unwrap_err();
        assert!(err.to_string().contains(expect), "{text:?}: {err}");
    }
}

#[test]
fn the_same_secret_always_derives_the_same_keys() {
    let key = MasterKey::generate(1).unwrap();
    let again = MasterKey::parse(&key.to_file_contents(), "k").unwrap();
    assert_eq!(
        key.active_store_key().bytes(),
        again.active_store_key().bytes()
    );
    assert_eq!(
        key.active_store_key().check(),
        again.active_store_key().check()
    );
    assert_eq!(key.enrollment_public_key(), again.enrollment_public_key());
    // Store key, key check and enrollment key are independent derivations.
    assert_ne!(
        &key.active_store_key().bytes()[..8],
        &key.active_store_key().check()
    );
}

#[test]
fn the_enrollment_public_key_file_round_trips() {
    let d = dir();
    let path = d.path().join("enroll.pub");
    let key = MasterKey::generate(1).unwrap();
    let public = key.enrollment_public_key();
    public.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o644
    );
    assert_eq!(EnrollmentPublicKey::load(&path, trust()).unwrap(), public);
    assert!(
        EnrollmentPublicKey::parse(b"pam_mfa enrollment key v1\ngeneration 1 zz\n", "p").is_err()
    );
}

#[test]
fn a_sealed_enrollment_opens_only_for_its_uid_under_the_host_key() {
    let key = MasterKey::generate(1).unwrap();
    let sealed = key
        .enrollment_public_key()
        .seal(1000, b"device secret")
        .unwrap();
    assert_eq!(
        &**key.open_enrollment(&sealed, 1000).unwrap(),
        b"device secret"
    );
    assert_eq!(
        key.open_enrollment(&sealed, 1001),
        Err(SealedError::WrongUser)
    );
    let other_host = MasterKey::generate(1).unwrap();
    assert_eq!(
        other_host.open_enrollment(&sealed, 1000),
        Err(SealedError::DoesNotOpen)
    );
}

#[test]
fn a_tampered_sealed_enrollment_never_opens() {
    let key = MasterKey::generate(1).unwrap();
    let sealed = key
        .enrollment_public_key()
        .seal(1000, b"device secret")
        .unwrap();
    for i in 0..sealed.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = sealed.clone();
            bad[i] ^= bit;
            assert!(
                key.open_enrollment(&bad, 1000).is_err(),
                "byte {i} bit {bit:#x}"
            );
        }
    }
    for len in 0..sealed.len() {
        assert!(
            key.open_enrollment(&sealed[..len], 1000).is_err(),
            "truncated to {len}"
        );
    }
}

#[test]
fn an_enrollment_sealed_to_a_retired_generation_names_it() {
    let mut key = MasterKey::generate(1).unwrap();
    let sealed = key.enrollment_public_key().seal(7, b"x").unwrap();
    key.rotate(2).unwrap();
    assert_eq!(&**key.open_enrollment(&sealed, 7).unwrap(), b"x");
    key.retire(1).unwrap();
    assert_eq!(
        key.open_enrollment(&sealed, 7),
        Err(SealedError::UnknownGeneration(1))
    );
}

//! Shared fixtures for mfa-core's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::record::{Device, Record};
use mfa_core::store::Store;
use mfa_core::totp::{Algorithm, TotpParams};
use zeroize::Zeroizing;

/// Trust files owned by whoever runs the tests (root in CI).
pub fn trust() -> FileTrust {
    FileTrust::insecure_owner_for_tests(nix::unistd::geteuid().as_raw())
}

/// A private directory (0700) holding a key file and a state directory.
pub struct Fixture {
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub keys: MasterKey,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("users")).expect("state dir");
        set_mode(&dir.path().join("users"), 0o700);
        let keys = MasterKey::generate(1_700_000_000).expect("key");
        keys.create(&dir.path().join("master.key"))
            .expect("key file");
        Fixture {
            root: dir.path().to_path_buf(),
            _dir: Some(dir),
            keys,
        }
    }

    /// Opens a fixture that another process created (and will remove).
    pub fn at(root: &Path) -> Self {
        let keys = MasterKey::load(&root.join("master.key"), trust()).expect("key file");
        Fixture {
            root: root.to_path_buf(),
            _dir: None,
            keys,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn store(&self) -> Store {
        Store::new(self.root.join("users"), trust())
    }

    pub fn record_path(&self, uid: u32) -> PathBuf {
        self.root.join("users").join(uid.to_string())
    }

    /// Enrolls `uid` with one device and returns the record written.
    pub fn enroll(&self, uid: u32) -> Record {
        let record = sample_record("alice");
        let store = self.store();
        let mut user = store.open_user(uid, &self.keys).expect("open");
        user.rewrite(&record, &self.keys).expect("enroll");
        record
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub const SECRET: &[u8; 20] = b"12345678901234567890";

pub fn sample_record(name: &str) -> Record {
    let mut r = Record::new(name, 1_700_000_000);
    r.devices.push(Device {
        name: "phone".into(),
        secret: Zeroizing::new(SECRET.to_vec()),
        params: TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        },
        created: 1_700_000_000,
        last_used_step: None,
    });
    r
}

/// Re-runs the current test binary as a child that executes only `test`
/// with `role` in its environment; the test function sees the variable and
/// plays the child's part instead of orchestrating.
pub fn spawn_child(test: &str, role: &str, extra: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child")
}

pub fn child_output(child: std::process::Child) -> Output {
    child.wait_with_output().expect("wait child")
}

pub const CHILD_ROLE: &str = "MFA_CORE_TEST_CHILD_ROLE";

pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

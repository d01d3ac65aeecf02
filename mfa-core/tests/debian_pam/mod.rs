//! A Debian 12 `/etc/pam.d` in a temporary directory, for the tests of
//! `pamd` and of doctor's service checks.
//!
//! `tests/fixtures/debian12-pam.d/` holds the files as a fresh Debian 12
//! has them (sudo 1.9.13, util-linux, login, passwd, openssh-server and
//! libpam-runtime; the `common-*` files as pam-auth-update writes them with
//! the stock profiles unix, capability and systemd), unchanged.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shipped example stacks, from the workspace's `config/pam.d/`.
pub fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/pam.d")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A host root whose `etc/pam.d` is a copy of the Debian 12 fixture.
pub struct DebianPam {
    root: tempfile::TempDir,
}

impl DebianPam {
    /// Debian's stock stacks: nothing asks for a code.
    pub fn stock() -> DebianPam {
        let root = tempfile::tempdir().unwrap();
        let pam_d = root.path().join("etc/pam.d");
        std::fs::create_dir_all(&pam_d).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian12-pam.d");
        for entry in std::fs::read_dir(&fixture).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), pam_d.join(entry.file_name())).unwrap();
        }
        DebianPam { root }
    }

    /// The guide's per-service setup: the shipped `sudo` and `sshd`
    /// stacks, every other file as Debian has it.
    pub fn per_service() -> DebianPam {
        let host = DebianPam::stock();
        host.write("sudo", &shipped("sudo"));
        host.write("sshd", &shipped("sshd"));
        host
    }

    /// What `pam-auth-update --enable pam_mfa` makes of the stock files:
    /// pam_mfa's lines after the Additional block's `pam_permit`, as the
    /// profile in packaging/pam-configs says.
    pub fn pam_auth_update() -> DebianPam {
        let host = DebianPam::stock();
        host.replace(
            "common-auth",
            "auth\trequired\t\t\tpam_permit.so\n",
            "auth\trequired\t\t\tpam_permit.so\nauth\trequisite\tpam_mfa.so\n",
        );
        host.replace(
            "common-account",
            "account\trequired\t\t\tpam_permit.so\n",
            "account\trequired\t\t\tpam_permit.so\naccount\trequired\tpam_mfa.so\n",
        );
        host
    }

    /// The host's root (for `SystemPaths::under`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The `pam.d` directory.
    pub fn pam_d(&self) -> PathBuf {
        self.root.path().join("etc/pam.d")
    }

    /// The path of a service file.
    pub fn file(&self, name: &str) -> PathBuf {
        self.pam_d().join(name)
    }

    /// Writes a file of the `pam.d` directory.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.file(name), text).unwrap();
    }

    /// The text of a file of the `pam.d` directory.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap()
    }

    /// Replaces the one occurrence of `old` in a file by `new`.
    pub fn replace(&self, name: &str, old: &str, new: &str) {
        let text = self.read(name);
        assert_eq!(text.matches(old).count(), 1, "{old:?} in {name}:\n{text}");
        self.write(name, &text.replacen(old, new, 1));
    }

    /// Removes a file of the `pam.d` directory.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.file(name)).unwrap();
    }
}

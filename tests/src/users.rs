//! Throwaway local accounts, deleted again when the test is done with them.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::process::{self, Run};

/// useradd and userdel lock /etc/passwd and give up quickly when another
/// process holds it; tests of one binary take turns instead.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// Numbers the users of this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Exit codes of useradd/userdel that mean "try again": 1 cannot update
/// the password file, 10 cannot update the group file (both when locked).
const BUSY: [i32; 2] = [1, 10];

/// useradd: the name is taken (by an account a killed run left behind).
const NAME_IN_USE: i32 = 9;

/// A local user made with `useradd`, with a home directory and a known
/// random password; `userdel -r` removes both when it is dropped, also when
/// the test panicked.
#[derive(Debug)]
pub struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    password: String,
}

fn run_locked(program: &str, args: &[&str], input: &str) -> Run {
    let _turn = ACCOUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut attempt = 0;
    loop {
        let mut cmd = Command::new(program);
        cmd.args(args);
        let run = process::run(cmd, input.as_bytes());
        attempt += 1;
        match run.code() {
            Some(code) if BUSY.contains(&code) && attempt < 20 => {
                thread::sleep(Duration::from_millis(100));
            }
            _ => return run,
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom is readable");
    buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl TestUser {
    /// Creates a user whose name starts with `prefix` (1 to 12 of `a-z`,
    /// `0-9`, starting with a letter) and is unique on this machine.
    pub fn create(prefix: &str) -> TestUser {
        crate::require_root();
        assert!(
            (1..=12).contains(&prefix.len())
                && prefix.starts_with(|c: char| c.is_ascii_lowercase())
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "user prefix {prefix:?}: 1 to 12 of a-z 0-9, starting with a letter"
        );
        let name = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("{prefix}{:x}u{n}", std::process::id());
            let run = run_locked(
                "useradd",
                &[
                    "--create-home",
                    "--shell",
                    "/bin/sh",
                    "--comment",
                    "pam_mfa end-to-end test",
                    &name,
                ],
                "",
            );
            match run.code() {
                Some(0) => break name,
                Some(NAME_IN_USE) if n < 1000 => {}
                _ => panic!("useradd failed:\n{run}"),
            }
        };
        let entry = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                // Not looked up, so not owned yet: remove it here.
                let _ = run_locked("userdel", &["--remove", "--force", &name], "");
                panic!("useradd made {name} but it cannot be looked up")
            });
        let user = TestUser {
            name,
            uid: entry.uid.as_raw(),
            gid: entry.gid.as_raw(),
            home: entry.dir,
            password: format!("e2e-{}", random_hex(12)),
        };
        // From here on, a panic drops `user`, which deletes the account.
        run_locked(
            "chpasswd",
            &[],
            &format!("{}:{}\n", user.name, user.password),
        )
        .assert_success();
        user
    }

    /// The login name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The numeric user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The primary group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The password `pam_unix` accepts.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // -f: remove it even if a process of the test still runs as it.
        let run = run_locked("userdel", &["--remove", "--force", &self.name], "");
        if !run.success() {
            // Panicking in drop would abort a test that is already failing.
            eprintln!("warning: could not remove test user {}:\n{run}", self.name);
        }
    }
}

//! A throwaway host for running the real `mfa-enroll` binary, as root and
//! as Debian's unprivileged `nobody`: shared by the test files that need
//! one. Each file uses part of it.

#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_mfa-enroll");
/// Debian's unprivileged account (base-passwd), the user of these tests.
pub const USER: &str = "nobody";
pub const UID: u32 = 65534;
pub const NAME_PROMPT: &str = "Name for this device [phone]: ";
pub const CODE_PROMPT: &str = "Verification code from the app: ";

/// Copies the binary to `dest` (0755) in a child process: a copy written by
/// this process could still be open for writing in a child another test
/// thread is forking, and running it would then fail with "Text file busy".
fn install_binary(dest: &Path) {
    let out = Command::new("install")
        .args(["-m", "0755", BIN])
        .arg(dest)
        .output()
        .expect("install (coreutils) runs");
    assert!(out.status.success(), "{}", stderr(&out));
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Writes `text` to `path` (0644), making its directory.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    set_mode(path, 0o644);
}

/// The current code for a base32 secret, from oathtool.
pub fn oathtool(secret: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool is installed (apt-get install oathtool)");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A host in a temporary directory that users can reach (0755): a root
/// 0644 config pointing inside it, a master key and `enroll.pub` from
/// `mfa-enroll key init`, and a copy of the binary anyone may run (the
/// build directory may not be reachable).
pub struct Host {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub bin: PathBuf,
}

impl Host {
    pub fn new() -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests must run as root (CI does): they lay out root-owned files, \
             then drop to `nobody`"
        );
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let config = dir.path().join("pam_mfa.toml");
        let d = dir.path().display();
        write(
            &config,
            &format!(
                "[paths]\n\
                 state_dir = \"{d}/state/users\"\n\
                 key_file = \"{d}/keys/master.key\"\n\
                 enroll_public_key = \"{d}/keys/enroll.pub\"\n\
                 spool_dir = \"{d}/spool\"\n"
            ),
        );
        let bin = dir.path().join("mfa-enroll");
        install_binary(&bin);
        let host = Host { dir, config, bin };
        host.ok(&["key", "init"]);
        host
    }

    /// Makes the spool, root 1733, as the package does.
    pub fn make_spool(&self) {
        std::fs::create_dir(self.spool()).unwrap();
        set_mode(&self.spool(), 0o1733);
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state/users")
    }

    /// `mfa-enroll ARGS` as root, with empty stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mfa-enroll")
    }

    /// `mfa-enroll ARGS` as root, with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mfa-enroll");
        // It may exit before reading everything.
        let _ = child.stdin.take().expect("piped").write_all(input);
        child.wait_with_output().expect("run mfa-enroll")
    }

    /// [`Host::run`], which must exit 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        out
    }

    /// Every file in the spool, sorted.
    pub fn spool_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.spool())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// `mfa-enroll ARGS` as `nobody`, with nothing but a login's
    /// environment.
    pub fn user_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={UID}"),
            &format!("--regid={UID}"),
            "--clear-groups",
            "--",
        ])
        .arg(&self.bin)
        .arg("--config")
        .arg(&self.config)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("USER", USER)
        .current_dir("/");
        cmd
    }

    /// Runs `mfa-enroll ARGS` (an `enroll`) as `nobody` like a person at
    /// the keyboard: `name` at the name prompt if there is one, then
    /// `answer(secret)` at the code prompt. Returns what was printed
    /// before the code prompt, and the run.
    pub fn user_enrolls(
        &self,
        args: &[&str],
        name: &str,
        answer: impl FnOnce(&str) -> String,
    ) -> (String, Output) {
        let mut child = self
            .user_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv (util-linux) is installed");
        let mut stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut before = Vec::new();
        let mut byte = [0u8; 1];
        while !before.ends_with(CODE_PROMPT.as_bytes()) {
            if before.ends_with(NAME_PROMPT.as_bytes()) {
                writeln!(stdin, "{name}").unwrap();
            }
            if out.read(&mut byte).unwrap() == 0 {
                drop(stdin);
                let done = child.wait_with_output().unwrap();
                panic!(
                    "mfa-enroll ended before asking for a code:\n{}\n{}",
                    String::from_utf8_lossy(&before),
                    stderr(&done)
                );
            }
            before.push(byte[0]);
        }
        let before = String::from_utf8(before).unwrap();
        let uri = before
            .lines()
            .find_map(|l| l.strip_prefix("otpauth URI: "))
            .expect("the URI is shown");
        let secret = uri
            .split_once("secret=")
            .and_then(|(_, rest)| rest.split('&').next())
            .expect("a secret in the URI");
        writeln!(stdin, "{}", answer(secret)).unwrap();
        drop(stdin);
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).unwrap();
        let mut done = child.wait_with_output().unwrap();
        done.stdout = rest;
        (before, done)
    }
}

/// A run as it reads in a snapshot: the command line after `prompt`, the
/// exit status, stdout and stderr, each passed through `clean` (which makes
/// them the same across runs and machines).
pub fn transcript(
    prompt: &str,
    args: &[&str],
    out: &Output,
    clean: impl Fn(&str) -> String,
) -> String {
    let line: String = args.iter().flat_map(|a| [" ", a]).collect();
    format!(
        "{prompt}$ mfa-enroll{}\nexit status: {}\n--- stdout\n{}--- stderr\n{}",
        clean(&line).trim_end_matches('\n'),
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        clean(&stdout(out)),
        clean(&stderr(out)),
    )
}

/// Compares `transcript` with tests/snapshots/`name`.txt, or writes it
/// there when `UPDATE_SNAPSHOTS` is set: one scenario, one small file.
pub fn assert_snapshot(name: &str, transcript: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, transcript).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_SNAPSHOTS=1 cargo test to create it",
            path.display()
        )
    });
    assert_eq!(
        transcript,
        want,
        "output differs from {}; if the change is intended, run UPDATE_SNAPSHOTS=1 cargo test",
        path.display()
    );
}

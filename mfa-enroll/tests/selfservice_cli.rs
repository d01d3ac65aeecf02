//! Self-service through the real binary: `mfa-enroll` run by an
//! unprivileged user (Debian's `nobody`, through `setpriv`) against a
//! throwaway host in a temporary directory, and root running the user's
//! commands by mistake. What it refuses, and what it leaves in the spool.
//!
//! The tests run as root (CI does): they set up root-owned files and then
//! drop to `nobody` for the user's side. Error output is pinned by snapshot
//! files under tests/snapshots/ (temporary paths normalized);
//! `UPDATE_SNAPSHOTS=1 cargo test` rewrites them.

use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mfa_core::clock::{Clock, SystemClock};
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::pending::{Pending, Request, MAX_PENDING_FILE};
use mfa_core::recovery::normalize;
use mfa_core::totp::time_step;

const BIN: &str = env!("CARGO_BIN_EXE_mfa-enroll");
/// Debian's unprivileged account (base-passwd), the user of these tests.
const USER: &str = "nobody";
const UID: u32 = 65534;
const NAME_PROMPT: &str = "Name for this device [phone]: ";
const CODE_PROMPT: &str = "Verification code from the app: ";

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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The current code for a base32 secret, from oathtool.
fn oathtool(secret: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool is installed (apt-get install oathtool)");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A host in a temporary directory that users can reach (0755): a root
/// 0644 config pointing inside it, a master key and `enroll.pub` from
/// `mfa-enroll key init`, a spool root 1733, and a copy of the binary
/// anyone may run (the build directory may not be reachable).
struct Host {
    dir: tempfile::TempDir,
    config: PathBuf,
    bin: PathBuf,
}

impl Host {
    fn new() -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests must run as root (CI does): they lay out root-owned files, \
             then drop to `nobody`"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("pam_mfa.toml");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "[paths]\n\
                 state_dir = \"{d}/state/users\"\n\
                 key_file = \"{d}/keys/master.key\"\n\
                 enroll_public_key = \"{d}/keys/enroll.pub\"\n\
                 spool_dir = \"{d}/spool\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let bin = dir.path().join("mfa-enroll");
        install_binary(&bin);
        let host = Host { dir, config, bin };
        let out = host.as_root(&["key", "init"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        host
    }

    /// A host ready for self-service: with the spool.
    fn ready() -> Self {
        let host = Self::new();
        std::fs::create_dir(host.spool()).unwrap();
        std::fs::set_permissions(host.spool(), std::fs::Permissions::from_mode(0o1733)).unwrap();
        host
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn public_key_file(&self) -> PathBuf {
        self.dir.path().join("keys/enroll.pub")
    }

    fn keys(&self) -> MasterKey {
        MasterKey::load(&self.dir.path().join("keys/master.key"), FileTrust::ROOT).unwrap()
    }

    fn as_root(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mfa-enroll")
    }

    /// `mfa-enroll ARGS` as `nobody`, with nothing but a login's
    /// environment.
    fn user_command(&self, args: &[&str]) -> Command {
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

    /// `mfa-enroll ARGS` as `nobody` with `input` on stdin.
    fn as_user(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .user_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv (util-linux) is installed");
        // It may exit before reading everything.
        let _ = child.stdin.take().unwrap().write_all(input);
        child.wait_with_output().unwrap()
    }

    /// Every file in the spool.
    fn spool_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.spool())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// Runs `mfa-enroll enroll` as `nobody` like a person at the keyboard:
    /// `name` at the name prompt, then `answer(secret)` at the code prompt.
    /// Returns what was printed before the code prompt, and the run.
    fn enroll_as_user(&self, name: &str, answer: impl FnOnce(&str) -> String) -> (String, Output) {
        let mut child = self
            .user_command(&["enroll"])
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

/// The indented recovery codes in `text`.
fn codes_in(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("    "))
        .map(str::trim)
        .filter(|l| {
            l.len() == "xxxx-xxxx-xxxx".len()
                && l.split('-').count() == 3
                && l.bytes()
                    .all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_lowercase())
        })
        .map(str::to_owned)
        .collect()
}

/// A transcript of a run with the host's directory replaced by `<dir>`,
/// compared with tests/snapshots/`name`.txt.
fn snapshot(host: &Host, name: &str, who: &str, args: &[&str], out: &Output) {
    let dir = host.dir.path().display().to_string();
    let transcript = format!(
        "{who}$ mfa-enroll{}\nexit status: {}\n--- stdout\n{}--- stderr\n{}",
        args.iter().flat_map(|a| [" ", a]).collect::<String>(),
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        stdout(out).replace(&dir, "<dir>"),
        stderr(out).replace(&dir, "<dir>"),
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &transcript).unwrap();
    } else {
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
}

#[test]
fn without_a_spool_a_user_is_refused_before_being_asked_anything() {
    let host = Host::new();
    let out = host.as_user(&[], b"phone\n123456\n");
    snapshot(&host, "selfservice-no-spool", "(nobody) ", &[], &out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stdout(&out).contains(NAME_PROMPT), "{}", stdout(&out));
    assert!(!host.spool().exists(), "the user cannot make one");
}

#[test]
fn without_the_enrollment_public_key_a_user_is_refused_and_sent_to_an_administrator() {
    let host = Host::ready();
    std::fs::remove_file(host.public_key_file()).unwrap();
    let out = host.as_user(&["enroll"], b"phone\n123456\n");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!stdout(&out).contains(NAME_PROMPT), "{}", stdout(&out));
    assert!(host.spool_files().is_empty());
    assert!(
        err.contains(&host.public_key_file().display().to_string()),
        "names the file: {err}"
    );
    // The user can do nothing about it but ask; and `key init` would not
    // help anyway, since the master key exists (it refuses to overwrite).
    assert!(
        err.contains("self-service enrollment is not available"),
        "says self-service is unavailable, as for a missing spool: {err}"
    );
    assert!(err.contains("Ask an administrator"), "{err}");
    assert!(
        !err.contains("mfa-enroll key init"),
        "tells a user to run a root command that would refuse: {err}"
    );
}

#[test]
fn a_spool_without_the_sticky_bit_is_refused() {
    let host = Host::ready();
    std::fs::set_permissions(host.spool(), std::fs::Permissions::from_mode(0o733)).unwrap();
    let out = host.as_user(&["enroll"], b"phone\n123456\n");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lacks the sticky bit"), "{err}");
    assert!(err.contains("Ask an administrator"), "{err}");
    assert!(host.spool_files().is_empty());
}

#[test]
fn root_running_mfa_enroll_without_a_user_gets_a_usage_error() {
    let host = Host::ready();
    let out = host.as_root(&[]);
    snapshot(&host, "selfservice-root-without-user", "(root) ", &[], &out);
    assert_eq!(out.status.code(), Some(2));
    for args in [&["enroll"][..], &["recovery-codes", "--regenerate"]] {
        let out = host.as_root(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--user NAME"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing generated");
    }
    assert!(host.spool_files().is_empty(), "root writes no request");
}

#[test]
fn a_wrong_code_writes_nothing_to_the_spool() {
    let host = Host::ready();
    let (before, out) = host.enroll_as_user("phone", |secret| {
        let right: u32 = oathtool(secret).parse().unwrap();
        format!("{:06}", (right + 500_000) % 1_000_000)
    });
    assert!(before.contains("Scan this QR code"), "{before}");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was stored"),
        "{}",
        stderr(&out)
    );
    assert!(
        codes_in(&stdout(&out)).is_empty(),
        "no recovery codes shown"
    );
    assert!(host.spool_files().is_empty());
}

#[test]
fn no_answer_at_all_writes_nothing_to_the_spool() {
    let host = Host::ready();
    let out = host.as_user(&["enroll", "--device", "phone"], b"");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(host.spool_files().is_empty());
}

#[test]
fn a_bad_device_name_is_a_usage_error_and_writes_nothing() {
    let host = Host::ready();
    let long = "x".repeat(65);
    let out = host.as_user(&["enroll", "--device", &long], b"123456\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("device name"), "{}", stderr(&out));
    assert!(!stdout(&out).contains(CODE_PROMPT));
    assert!(host.spool_files().is_empty());
}

#[test]
fn a_right_code_leaves_one_sealed_request_the_user_owns_for_that_uid_only() {
    let host = Host::ready();
    let (_, out) = host.enroll_as_user("work phone", oathtool);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = codes_in(&stdout(&out));
    assert_eq!(shown.len(), 10, "{}", stdout(&out));

    let files = host.spool_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let suffix = name.strip_prefix("65534.").expect("named <uid>.<hex>");
    assert!(
        suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    let meta = std::fs::symlink_metadata(&files[0]).unwrap();
    assert!(meta.is_file());
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (UID, 0o600), "{name}");
    assert!(meta.len() <= MAX_PENDING_FILE);

    // Only the master key opens it, and only as this uid's.
    let sealed = std::fs::read(&files[0]).unwrap();
    let keys = host.keys();
    assert!(keys.open_enrollment(&sealed, UID - 1).is_err());
    let pending = Pending::decode(&keys.open_enrollment(&sealed, UID).unwrap()).unwrap();
    let now = SystemClock.now();
    assert!(pending.created <= now && now - pending.created < 120);
    let Request::Device { device, recovery } = pending.request else {
        panic!("a device request: {pending:?}");
    };
    assert_eq!(device.name, "work phone");
    // The code typed at enrollment is spent.
    let step = device.last_used_step.expect("the verified step is kept");
    assert!(step + 2 >= time_step(now, device.params.period), "{step}");
    assert_eq!(recovery.remaining(), 10);
    for code in &shown {
        let candidate = normalize(code.as_bytes(), 12).expect("a recovery code");
        assert!(recovery.find(&candidate).unwrap().is_some(), "{code}");
    }
    // Nothing is active until the module (or approve) applies it.
    assert!(!host.dir.path().join("state/users/65534").exists());
}

#[test]
fn new_recovery_codes_asked_for_by_a_user_are_sealed_to_the_spool_not_applied() {
    let host = Host::ready();
    let out = host.as_user(&["recovery-codes", "--regenerate"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = codes_in(&stdout(&out));
    assert_eq!(shown.len(), 10, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("at your next login"),
        "{}",
        stdout(&out)
    );

    let files = host.spool_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::symlink_metadata(&files[0]).unwrap().uid(),
        UID,
        "the user's own file"
    );
    let sealed = std::fs::read(&files[0]).unwrap();
    let pending = Pending::decode(&host.keys().open_enrollment(&sealed, UID).unwrap()).unwrap();
    let Request::RecoveryCodes { recovery } = pending.request else {
        panic!("a recovery-codes request: {pending:?}");
    };
    for code in &shown {
        let candidate = normalize(code.as_bytes(), 12).expect("a recovery code");
        assert!(recovery.find(&candidate).unwrap().is_some(), "{code}");
    }
}

#[test]
fn the_usage_errors_of_recovery_codes_name_the_command_that_works() {
    let host = Host::ready();
    // Root forgot --user: the command suggested must still regenerate.
    let out = host.as_root(&["recovery-codes", "--regenerate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--regenerate"),
        "root is told to run a command that only counts the codes: {}",
        stderr(&out)
    );
    // A user forgot --regenerate: they are not root, and --regenerate is
    // what they can run.
    let out = host.as_user(&["recovery-codes"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("as root"),
        "a user is addressed as root: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("recovery-codes --regenerate"),
        "{}",
        stderr(&out)
    );
    assert!(host.spool_files().is_empty());
}

//! The user's side of self-service enrollment: the workspace's `mfa-enroll`
//! run by a throwaway user with no privileges (no setuid bit, no sudo), as
//! that user runs it, through pipes or in a pseudo-terminal; what it
//! printed; and the spool it leaves its sealed request in.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::app::AuthenticatorApp;
use crate::process::{self, Run};
use crate::pty::PtySession;
use crate::sandbox::Sandbox;
use crate::users::TestUser;

/// What `mfa-enroll` asks for a device name when none was given.
pub const NAME_PROMPT: &str = "Name for this device [phone]: ";
/// What `mfa-enroll` asks for the first code from the new device.
pub const APP_CODE_PROMPT: &str = "Verification code from the app: ";
/// What `mfa-enroll` prints before the recovery codes.
pub const CODES_SHOWN: &str = "they will not be shown again:";
/// What `mfa-enroll` asks after the new device's code: a factor the user
/// already has, or Enter for a first device.
pub const PROOF_PROMPT: &str = "If you already have a device for this account, enter a code from it (or one of\n\
                                your recovery codes) to show this change is yours; if this is your first\n\
                                device, just press Enter: ";
/// What `mfa-enroll recovery-codes --regenerate` asks before it makes a set.
pub const REGENERATE_PROMPT: &str =
    "Enter a code from your device (or one of your recovery codes) to show this\n\
     change is yours: ";
/// What `mfa-enroll` prints before the new secret's fingerprint, which
/// `mfa-enroll approve` shows the administrator too.
pub const FINGERPRINT_SHOWN: &str = "Secret fingerprint: ";

impl Sandbox {
    /// A command that runs `program` inside the namespace as `user` (uid,
    /// gid and groups, a clean environment as after a login), with no
    /// privileges left: `setpriv --reuid --regid --init-groups --reset-env`.
    pub fn command_as(&self, user: &TestUser, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.command("setpriv");
        cmd.arg(format!("--reuid={}", user.uid()))
            .arg(format!("--regid={}", user.gid()))
            .args(["--init-groups", "--reset-env", "--"])
            .arg(program)
            .current_dir("/");
        cmd
    }

    /// Runs `program ARGS` as `user` (see [`Sandbox::command_as`]) with
    /// `stdin` as its input.
    pub fn run_as(&self, user: &TestUser, program: &str, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = self.command_as(user, program);
        cmd.args(args);
        process::run(cmd, stdin)
    }

    /// Writes `bytes` to `path` as `user` (who then owns it), mode 0600:
    /// what anyone with a shell as `user` can put into the spool.
    pub fn write_as(&self, user: &TestUser, path: &Path, bytes: &[u8]) {
        let path = path.to_str().expect("sandbox paths are UTF-8");
        self.run_as(
            user,
            "sh",
            &["-c", "umask 077 && cat > \"$1\"", "sh", path],
            bytes,
        )
        .assert_success();
    }

    /// `cp FROM TO` as `user`: a copy `user` owns.
    pub fn copy_as(&self, user: &TestUser, from: &Path, to: &Path) {
        let [from, to] = [from, to].map(|p| p.to_str().expect("sandbox paths are UTF-8"));
        self.run_as(user, "cp", &[from, to], b"").assert_success();
    }

    /// A spool path `<uid>.<16 random hex digits>`, as `mfa-enroll` names
    /// its requests; nothing is created.
    pub fn new_spool_path(&self, uid: u32) -> PathBuf {
        let mut bytes = [0u8; 8];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("/dev/urandom is readable");
        let mut name = format!("{uid}.");
        for b in bytes {
            let _ = write!(name, "{b:02x}");
        }
        self.spool_dir().join(name)
    }

    /// The files in the spool named `<uid>.*`, sorted.
    pub fn spool_files(&self, uid: u32) -> Vec<PathBuf> {
        let prefix = format!("{uid}.");
        let dir = self.spool_dir();
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|e| e.expect("a spool entry").path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect();
        files.sort();
        files
    }
}

/// What a user's `mfa-enroll` printed: the device it made and the recovery
/// codes it showed.
#[derive(Debug)]
pub struct SelfEnrolled {
    /// The base32 secret, from the `otpauth URI:` line.
    pub secret: String,
    /// The `otpauth://` URI printed.
    pub uri: String,
    /// The recovery codes shown after the code was accepted.
    pub recovery_codes: Vec<String>,
    /// Everything printed up to and including the code prompt.
    pub before_code: String,
    /// Whether it asked for a factor the user already has ([`PROOF_PROMPT`]).
    pub asked_proof: bool,
    /// The secret's fingerprint it printed (`xxxx:xxxx:xxxx`), if any.
    pub fingerprint: Option<String>,
    /// The whole run (stdout holds everything, prompts included).
    pub run: Run,
}

/// The workspace's `mfa-enroll`, run by `user` against the sandbox's config.
pub struct UserMfaEnroll<'a> {
    sb: &'a Sandbox,
    user: &'a TestUser,
    binary: PathBuf,
}

impl<'a> UserMfaEnroll<'a> {
    /// `mfa-enroll` of this build (see [`crate::MfaEnroll::new`]) for `user`.
    pub fn new(sb: &'a Sandbox, user: &'a TestUser) -> UserMfaEnroll<'a> {
        let binary = sb.tools().artifact("mfa-enroll");
        assert!(
            binary.is_file(),
            "{} is missing: build the whole workspace first \
             (`cargo build --workspace` or `cargo test --workspace`)",
            binary.display()
        );
        UserMfaEnroll { sb, user, binary }
    }

    /// The binary the user runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// `mfa-enroll --config <sandbox config> ARGS...` as the user.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.sb.command_as(self.user, &self.binary);
        cmd.arg("--config").arg(self.sb.config_path()).args(args);
        cmd
    }

    /// Runs `mfa-enroll ARGS` as the user with `stdin` piped in at once.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        process::run(self.command(args), stdin)
    }

    /// Starts `mfa-enroll ARGS` as the user in a pseudo-terminal.
    pub fn terminal(&self, args: &[&str]) -> PtySession {
        let config = self.sb.config_path();
        let mut command_line: Vec<&str> = vec![
            self.binary.to_str().expect("build paths are UTF-8"),
            "--config",
            config.to_str().expect("sandbox paths are UTF-8"),
        ];
        command_line.extend_from_slice(args);
        self.sb.terminal_as(self.user, &command_line)
    }

    /// Runs `mfa-enroll ARGS` through pipes as a person at a keyboard
    /// would answer it: the device name `name` when asked for one, then
    /// `answer(secret)` when asked for a code (with `secret` read off the
    /// `otpauth URI:` line), then `proof()` if it asks for a factor the
    /// user already has ([`PROOF_PROMPT`]; an empty answer is Enter). Fails
    /// the test if it never asks for a code.
    pub fn enroll_answering(
        &self,
        args: &[&str],
        name: &str,
        answer: impl FnOnce(&str) -> String,
        proof: impl FnOnce() -> String,
    ) -> SelfEnrolled {
        let mut cmd = self.command(args);
        let command = process::render(&cmd);
        let mut child = process::spawn_piped(&mut cmd)
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let stderr = process::drain(child.stderr.take().expect("stderr is piped"));
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut seen = Vec::new();
        let mut named = false;
        let ended = !read_until(&mut stdout, &mut seen, APP_CODE_PROMPT, |seen| {
            if !named && seen.ends_with(NAME_PROMPT.as_bytes()) {
                // A closed pipe shows in the run's result.
                let _ = writeln!(stdin, "{name}");
                named = true;
            }
        });
        let before_code = String::from_utf8_lossy(&seen).into_owned();
        let uri = before_code
            .lines()
            .find_map(|l| l.strip_prefix("otpauth URI: "))
            .map(str::to_owned);
        if ended || uri.is_none() {
            drop(stdin);
            let run = process::finish(command, child, before_code, stderr);
            panic!("mfa-enroll did not show a URI and ask for a code:\n{run}");
        }
        let uri = uri.unwrap_or_default();
        let secret = secret_of(&uri)
            .unwrap_or_else(|| panic!("no secret in the printed URI {uri:?}"))
            .to_owned();
        let _ = writeln!(stdin, "{}", answer(&secret));
        // A wrong code ends the run here; a right one is followed by the
        // question for an existing factor.
        let asked_proof = read_until(&mut stdout, &mut seen, PROOF_PROMPT, |_| {});
        if asked_proof {
            let _ = writeln!(stdin, "{}", proof());
        }
        drop(stdin);
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest);
        seen.extend_from_slice(&rest);
        let all = String::from_utf8_lossy(&seen).into_owned();
        let run = process::finish(command, child, all, stderr);
        SelfEnrolled {
            secret,
            uri,
            recovery_codes: recovery_codes_shown(&run.stdout),
            before_code,
            asked_proof,
            fingerprint: fingerprint_shown(&run.stdout),
            run,
        }
    }

    /// A successful self-enrollment (`mfa-enroll ARGS`, e.g. none or
    /// `enroll`) of a user's first device, named `name` at its prompt: the
    /// app that scanned it typed its current code, and the question for an
    /// existing factor was answered with Enter. Returns what was printed
    /// and that app, which has spent the code.
    pub fn enroll(&self, args: &[&str], name: &str) -> (SelfEnrolled, AuthenticatorApp) {
        self.enroll_proving(args, name, String::new)
    }

    /// Like [`UserMfaEnroll::enroll`], for a user who already has a
    /// factor: `proof()` (a code of an existing device, or a recovery
    /// code) answers the question for it.
    pub fn enroll_proving(
        &self,
        args: &[&str],
        name: &str,
        proof: impl FnOnce() -> String,
    ) -> (SelfEnrolled, AuthenticatorApp) {
        let mut app = None;
        let enrolled = self.enroll_answering(
            args,
            name,
            |secret| {
                let mut a = AuthenticatorApp::new(secret);
                let code = a.next_code();
                app = Some(a);
                code
            },
            proof,
        );
        enrolled.run.assert_success();
        assert!(
            enrolled.asked_proof,
            "it asks for a factor the user already has:\n{}",
            enrolled.run
        );
        assert_eq!(
            enrolled.recovery_codes.len(),
            10,
            "ten recovery codes are shown:\n{}",
            enrolled.run
        );
        assert!(
            enrolled.fingerprint.is_some(),
            "the secret's fingerprint is shown:\n{}",
            enrolled.run
        );
        (enrolled, app.expect("the code was asked for"))
    }

    /// `mfa-enroll recovery-codes --regenerate` as the user, answering its
    /// question for an existing factor with `proof` (empty: Enter).
    pub fn regenerate(&self, proof: &str) -> Run {
        self.run(
            &["recovery-codes", "--regenerate"],
            format!("{proof}\n").as_bytes(),
        )
    }
}

/// Reads `stdout` byte by byte into `seen`, calling `each(seen)` before
/// every read, until `seen` ends with `want` (true) or the output ends
/// (false).
fn read_until(
    stdout: &mut impl Read,
    seen: &mut Vec<u8>,
    want: &str,
    mut each: impl FnMut(&[u8]),
) -> bool {
    let mut byte = [0u8; 1];
    loop {
        if seen.ends_with(want.as_bytes()) {
            return true;
        }
        each(seen);
        match stdout.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => return false,
        }
    }
}

/// The fingerprint on the [`FINGERPRINT_SHOWN`] line of `text`.
pub fn fingerprint_shown(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(FINGERPRINT_SHOWN))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// The `secret` parameter of an `otpauth://` URI.
pub fn secret_of(uri: &str) -> Option<&str> {
    uri.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
}

/// Whether `text` is a recovery code as shown: groups of lower-case letters
/// and digits joined by `-`.
fn looks_like_recovery_code(text: &str) -> bool {
    text.contains('-')
        && text.split('-').all(|g| {
            !g.is_empty()
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        })
}

/// The recovery codes in `text`: the indented code lines after
/// [`CODES_SHOWN`] (enrollment) or after `New recovery codes` (a new set).
pub fn recovery_codes_shown(text: &str) -> Vec<String> {
    let after = text
        .split_once(CODES_SHOWN)
        .or_else(|| text.split_once("New recovery codes"))
        .map_or("", |(_, rest)| rest);
    after
        .lines()
        .skip(1)
        .map(str::trim)
        .skip_while(|l| !looks_like_recovery_code(l))
        .take_while(|l| looks_like_recovery_code(l))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_either_heading() {
        let enrolled = "The app works. ...\nStore them somewhere safe now; they will not be shown again:\n\n    \
                        abcd-2345-efgh\n    zzzz-0000-a1b2\n\nWhat happens next: ...\n";
        assert_eq!(
            recovery_codes_shown(enrolled),
            ["abcd-2345-efgh", "zzzz-0000-a1b2"]
        );
        let regenerated =
            "New recovery codes (each works once). Store them somewhere safe now:\n\n    aaaa-bbbb-cccc\n\nThey replace\n";
        assert_eq!(recovery_codes_shown(regenerated), ["aaaa-bbbb-cccc"]);
        assert!(recovery_codes_shown("nothing here\n").is_empty());
    }

    #[test]
    fn the_fingerprint_is_the_word_after_its_label() {
        let out = "...\nSecret fingerprint: 6056:a1f0:8739 (an administrator approving this request sees the same).\n";
        assert_eq!(fingerprint_shown(out).as_deref(), Some("6056:a1f0:8739"));
        assert_eq!(fingerprint_shown("no such line\n"), None);
    }

    #[test]
    fn the_secret_is_taken_from_the_uri() {
        let uri = "otpauth://totp/h:u%40h?secret=ABCDEFGH&issuer=h&digits=6";
        assert_eq!(secret_of(uri), Some("ABCDEFGH"));
        assert_eq!(secret_of("otpauth://totp/x"), None);
    }
}

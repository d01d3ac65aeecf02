//! Programs driven in a pseudo-terminal, as a person at a terminal would
//! drive them: wait for a prompt on the screen, type an answer.
//!
//! `ssh` and `sudo` read passwords and codes from their controlling
//! terminal (`/dev/tty`), never from a pipe, so the program must make the
//! pty its controlling terminal: start it through `setsid --wait --ctty`
//! ([`terminal_command`] and [`Sandbox::terminal_command`] do).
//!
//! Everything the program printed, and everything typed into it, is kept in
//! order; a failed wait or assertion prints that transcript together with
//! whatever context the test attached (a server's log, the syslog).

use std::ffi::OsStr;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::process::{self, describe_status};
use crate::sandbox::Sandbox;

/// How long [`PtySession::expect`] waits by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// A command that runs `program` with the pty on its standard streams as
/// its controlling terminal, under `deadline`, outside any sandbox.
pub fn terminal_command(deadline: Duration, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = process::with_deadline(deadline, "setsid");
    cmd.args(["--wait", "--ctty"]).arg(program);
    cmd
}

impl Sandbox {
    /// Like [`Sandbox::command`], but `program` gets the pty it is started
    /// on as its controlling terminal (for [`PtySession::spawn`]).
    pub fn terminal_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.command("setsid");
        cmd.args(["--wait", "--ctty"]).arg(program);
        cmd
    }
}

/// Something typed, and where in the output it was typed.
#[derive(Debug, Clone)]
struct Typed {
    /// How many output bytes had arrived when it was typed.
    at: usize,
    text: String,
}

/// What the reader thread collected.
#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    /// The program side closed (every process holding the pty exited).
    closed: bool,
}

struct Shared {
    screen: Mutex<Screen>,
    changed: Condvar,
}

impl Shared {
    fn screen(&self) -> MutexGuard<'_, Screen> {
        self.screen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Extra text for failure reports, computed when a failure happens (e.g.
/// the lines a server logged so far).
type Context = Box<dyn Fn() -> String + Send>;

/// A program running in a pseudo-terminal.
pub struct PtySession {
    label: String,
    command: String,
    child: Child,
    status: Option<ExitStatus>,
    master: Arc<PtyMaster>,
    shared: Arc<Shared>,
    /// Output before this offset has been matched by an `expect`.
    cursor: usize,
    typed: Vec<Typed>,
    context: Vec<(String, Context)>,
}

/// Opens a pty pair; both ends close on exec, so that a process another
/// test thread starts at the same moment cannot inherit them (it would keep
/// the terminal open after our program exits).
fn open_pair() -> io::Result<(PtyMaster, OwnedFd)> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    // std opens with O_CLOEXEC; O_NOCTTY keeps it from becoming the test
    // process's controlling terminal.
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(Path::new(&name))?;
    Ok((master, slave.into()))
}

impl PtySession {
    /// Starts `cmd` with a fresh pty as its stdin, stdout and stderr.
    /// `label` names it in reports ("ssh", "sudo"). Use a command from
    /// [`terminal_command`] or [`Sandbox::terminal_command`] so that the
    /// pty is also its controlling terminal.
    pub fn spawn(label: &str, mut cmd: Command) -> PtySession {
        let command = process::render(&cmd);
        let (master, slave) =
            open_pair().unwrap_or_else(|e| panic!("cannot open a pseudo-terminal: {e}"));
        let stdio = |fd: &OwnedFd| {
            Stdio::from(
                fd.try_clone()
                    .unwrap_or_else(|e| panic!("cannot duplicate the pty: {e}")),
            )
        };
        cmd.stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        // The Command holds copies of the terminal end: without dropping
        // them the output would never end.
        drop(cmd);
        drop(slave);
        let master = Arc::new(master);
        let shared = Arc::new(Shared {
            screen: Mutex::new(Screen::default()),
            changed: Condvar::new(),
        });
        {
            let master = Arc::clone(&master);
            let shared = Arc::clone(&shared);
            // Detached: it ends when the terminal closes (EIO), which a
            // stray process holding it could delay past the session.
            thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match (&*master).read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            shared.screen().bytes.extend_from_slice(&buf[..n]);
                            shared.changed.notify_all();
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // EIO: no process has the terminal open any more.
                        Err(_) => break,
                    }
                }
                shared.screen().closed = true;
                shared.changed.notify_all();
            });
        }
        PtySession {
            label: label.to_owned(),
            command,
            child,
            status: None,
            master,
            shared,
            cursor: 0,
            typed: Vec::new(),
            context: Vec::new(),
        }
    }

    /// Adds a section to failure reports, computed when the report is made.
    pub fn attach(&mut self, title: &str, context: impl Fn() -> String + Send + 'static) {
        self.context.push((title.to_owned(), Box::new(context)));
    }

    /// Everything printed so far, with the terminal's `\r\n` as `\n`.
    pub fn output(&self) -> String {
        clean(&self.shared.screen().bytes)
    }

    /// What was printed after the last matched text.
    pub fn unmatched(&self) -> String {
        let screen = self.shared.screen();
        clean(&screen.bytes[self.cursor.min(screen.bytes.len())..])
    }

    /// Waits up to [`DEFAULT_WAIT`] until `text` appears after the last
    /// match, and returns what was printed up to and including it. Fails
    /// the test, showing the transcript, if it does not appear.
    pub fn expect(&mut self, text: &str) -> String {
        self.expect_within(text, DEFAULT_WAIT)
    }

    /// [`PtySession::expect`] with a timeout of its own.
    pub fn expect_within(&mut self, text: &str, wait: Duration) -> String {
        match self.expect_any_within(&[text], wait) {
            Some((_, seen)) => seen,
            None => self.fail(&format!("{text:?} did not appear within {wait:?}")),
        }
    }

    /// Waits until one of `texts` appears after the last match; returns
    /// which (its index) and what was printed up to and including it, or
    /// `None` if the program closed the terminal or `wait` passed first.
    pub fn expect_any_within(&mut self, texts: &[&str], wait: Duration) -> Option<(usize, String)> {
        let deadline = Instant::now() + wait;
        let mut screen = self.shared.screen();
        loop {
            let start = self.cursor.min(screen.bytes.len());
            let rest = &screen.bytes[start..];
            let found = texts
                .iter()
                .enumerate()
                .filter_map(|(i, t)| find(rest, t.as_bytes()).map(|at| (at + t.len(), i)))
                .min();
            if let Some((end, index)) = found {
                let seen = clean(&rest[..end]);
                self.cursor = start + end;
                return Some((index, seen));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if screen.closed || left.is_zero() {
                return None;
            }
            screen = self
                .shared
                .changed
                .wait_timeout(screen, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Types `text` and Enter.
    pub fn send_line(&mut self, text: &str) {
        let at = self.shared.screen().bytes.len();
        self.typed.push(Typed {
            at,
            text: text.to_owned(),
        });
        let mut line = text.as_bytes().to_vec();
        line.push(b'\n');
        if let Err(e) = (&*self.master).write_all(&line) {
            self.fail(&format!("cannot type into the terminal: {e}"));
        }
    }

    /// Waits for `prompt`, then types `answer` and Enter.
    pub fn answer(&mut self, prompt: &str, answer: &str) -> String {
        let seen = self.expect(prompt);
        self.send_line(answer);
        seen
    }

    /// Waits up to [`DEFAULT_WAIT`] for the program to exit and for all of
    /// its output, and returns how it ended. A program still running then is
    /// killed and the test fails.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + DEFAULT_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    break;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    self.status = self.stop();
                    self.fail(&format!("still running after {DEFAULT_WAIT:?}; stopped"));
                }
                Err(e) => self.fail(&format!("cannot wait for it: {e}")),
            }
        }
        // The output ends when the last process holding the terminal exits;
        // give it a moment to be read.
        let drain_until = Instant::now() + Duration::from_secs(5);
        let mut screen = self.shared.screen();
        while !screen.closed {
            let left = drain_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            screen = self
                .shared
                .changed
                .wait_timeout(screen, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(screen);
        self.status.unwrap_or_else(|| ExitStatus::from_raw(-1))
    }

    /// Waits for the exit and fails the test unless the exit code is `code`.
    pub fn assert_exit(&mut self, code: i32) -> &mut Self {
        let status = self.wait();
        self.check(
            status.code() == Some(code),
            &format!("expected exit status {code}"),
        );
        self
    }

    /// Fails the test with `message` and the transcript unless `ok`.
    pub fn check(&self, ok: bool, message: &str) {
        if !ok {
            self.fail(message);
        }
    }

    /// Fails the test, showing the transcript, unless `text` appears
    /// anywhere in the output.
    pub fn assert_printed(&self, text: &str) -> &Self {
        self.check(
            self.output().contains(text),
            &format!("expected {text:?} in the output"),
        );
        self
    }

    /// Fails the test, showing the transcript, if `text` appears anywhere
    /// in the output.
    pub fn assert_not_printed(&self, text: &str) -> &Self {
        self.check(
            !self.output().contains(text),
            &format!("{text:?} must not appear in the output"),
        );
        self
    }

    /// Fails the test, printing `message`, the transcript and every
    /// attached context.
    pub fn fail(&self, message: &str) -> ! {
        panic!("{}: {message}\n{self}", self.label)
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Terminal output as text: lossy UTF-8, `\r\n` as `\n`.
fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

impl fmt::Display for PtySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.shared.screen().bytes.clone();
        writeln!(
            f,
            "--- terminal transcript of {} (typed input in ⟦ ⟧)",
            self.label
        )?;
        writeln!(f, "$ {}", self.command)?;
        let mut from = 0;
        let mut text = String::new();
        for typed in &self.typed {
            let at = typed.at.min(bytes.len());
            text.push_str(&clean(&bytes[from..at]));
            text.push('⟦');
            text.push_str(&typed.text);
            text.push('⟧');
            from = at;
        }
        text.push_str(&clean(&bytes[from..]));
        for line in text.lines() {
            writeln!(f, "    {line}")?;
        }
        match self.status {
            Some(status) => writeln!(f, "--- {}", describe_status(status))?,
            None => writeln!(f, "--- (still running)")?,
        }
        for (title, context) in &self.context {
            let body = context();
            if body.is_empty() {
                continue;
            }
            writeln!(f, "--- {title}")?;
            for line in body.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PtySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PtySession {
    /// Ends the program: SIGTERM first, which `timeout` passes on to it
    /// (a SIGKILL would end `timeout` alone and leave the program running),
    /// then SIGKILL if it is still there a moment later.
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(_) => return None,
            }
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> PtySession {
        let mut cmd = terminal_command(Duration::from_secs(20), "sh");
        cmd.args(["-c", script]);
        PtySession::spawn("sh", cmd)
    }

    #[test]
    fn a_prompt_is_answered_and_the_answer_read_from_the_terminal() {
        let mut s = shell("printf 'Name: '; read name < /dev/tty; echo \"hello $name\"");
        s.answer("Name: ", "world");
        s.expect("hello world");
        s.assert_exit(0);
    }

    #[test]
    fn the_terminal_is_the_controlling_terminal_with_echo_off_for_secrets() {
        // stty -echo is what password readers do; the typed text must then
        // not show in the output.
        let mut s = shell("stty -echo; printf 'Secret: '; read x; stty echo; echo; echo got-$x");
        s.answer("Secret: ", "hidden");
        s.expect("got-hidden");
        s.assert_exit(0);
        let out = s.output();
        assert_eq!(out.matches("hidden").count(), 1, "{s}");
    }

    #[test]
    fn the_exit_status_and_late_output_are_kept() {
        let mut s = shell("echo one; echo two; exit 3");
        let status = s.wait();
        assert_eq!(status.code(), Some(3), "{s}");
        assert_eq!(s.output(), "one\ntwo\n", "{s}");
    }

    #[test]
    fn a_missing_prompt_fails_with_the_transcript_and_the_context() {
        let mut s = shell("echo something else");
        s.attach("server log", || "the server said hi".to_owned());
        let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.expect_within("Password: ", Duration::from_secs(5));
        }))
        .expect_err("the wait fails");
        let shown = failure.downcast_ref::<String>().expect("a message");
        for part in [
            "\"Password: \" did not appear",
            "something else",
            "--- server log",
            "the server said hi",
        ] {
            assert!(shown.contains(part), "missing {part:?} in:\n{shown}");
        }
    }

    #[test]
    fn typed_text_is_shown_in_place() {
        let mut s = shell("printf 'Code: '; read c; echo done");
        s.answer("Code: ", "123456");
        s.expect("done");
        s.wait();
        let shown = s.to_string();
        assert!(shown.contains("Code: ⟦123456⟧"), "{shown}");
    }

    /// The running processes as `(pid, parent pid, command line)`, from
    /// /proc (no procps needed).
    fn processes() -> Vec<(u32, u32, String)> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // After the parenthesised name: state, then the parent pid.
                let parent = stat
                    .rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                Some((pid, parent, cmdline.trim_end().to_owned()))
            })
            .collect()
    }

    #[test]
    fn dropping_a_session_ends_the_program_not_just_its_deadline_wrapper() {
        let s = shell("exec sleep 60");
        // The program the shell became: its parent is the session's
        // deadline wrapper, `timeout`.
        let wrapper = s.child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        let sleeper = loop {
            let found = processes()
                .into_iter()
                .find(|(_, ppid, cmd)| *ppid == wrapper && cmd == "sleep 60");
            if let Some((pid, _, _)) = found {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "no `sleep 60` under {wrapper}: {:?}",
                processes()
            );
            thread::sleep(Duration::from_millis(20));
        };
        drop(s);
        let proc_dir = format!("/proc/{sleeper}");
        let deadline = Instant::now() + Duration::from_secs(5);
        // A zombie has no command line left: it has ended.
        while std::fs::read(format!("{proc_dir}/cmdline")).is_ok_and(|c| !c.is_empty()) {
            assert!(
                Instant::now() < deadline,
                "sleep {sleeper} is still running: {:?}",
                processes()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn expect_any_reports_which_text_came_first() {
        let mut s = shell("echo beta; echo alpha");
        let (which, seen) = s
            .expect_any_within(&["alpha", "beta"], Duration::from_secs(10))
            .expect("one of them");
        assert_eq!((which, seen.as_str()), (1, "beta"), "{s}");
        s.wait();
        assert!(
            s.expect_any_within(&["gamma"], Duration::from_secs(1))
                .is_none(),
            "{s}"
        );
    }
}

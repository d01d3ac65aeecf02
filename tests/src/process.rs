//! Running commands with a deadline and keeping what they printed.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The signal `timeout --signal=KILL` sends to its whole process group,
/// itself included, at the deadline.
const SIGKILL: i32 = 9;

/// A finished command: what it printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// The command line, quoted for reading.
    pub command: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Run {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Its exit code, `None` if a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Whether it was killed at its deadline.
    pub fn timed_out(&self) -> bool {
        self.status.signal() == Some(SIGKILL)
    }

    /// Fails the test, showing the whole run, unless it exited with 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Fails the test, showing the whole run, unless it exited with a
    /// status other than 0 by itself (not killed at its deadline).
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.success() && !self.timed_out(),
            "expected a failure:\n{self}"
        );
        self
    }
}

/// `status` as a reader wants it.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(SIGKILL)) => "killed at its deadline (or by another SIGKILL)".into(),
        (None, _) => status.to_string(),
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "{}", describe_status(self.status))?;
        write_block(f, "stdout", &self.stdout)?;
        write_block(f, "stderr", &self.stderr)
    }
}

/// Writes `text` indented under `title`, or nothing when it is empty.
pub(crate) fn write_block(f: &mut fmt::Formatter<'_>, title: &str, text: &str) -> fmt::Result {
    if text.is_empty() {
        return Ok(());
    }
    writeln!(f, "--- {title}")?;
    for line in text.lines() {
        writeln!(f, "    {line}")?;
    }
    Ok(())
}

/// Quotes `word` so that the command line reads unambiguously.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command line of `cmd`, quoted for reading.
pub fn render(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| quote(&w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wraps `program` so that it is killed, with everything it started, after
/// `deadline`: a hung PAM module must fail the test, not hang it.
pub fn with_deadline(deadline: Duration, program: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("--signal=KILL")
        .arg(format!("{}s", deadline.as_secs().max(1)))
        .arg(program);
    cmd
}

/// Reads all of `from` on a thread of its own, so pipes never fill up.
pub(crate) fn drain(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // What was read before an error is still worth showing.
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Spawns `cmd` with all three standard streams piped.
pub(crate) fn spawn_piped(cmd: &mut Command) -> io::Result<Child> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Runs `cmd` with `stdin` as its input and waits for it.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Run {
    let command = render(&cmd);
    let mut child =
        spawn_piped(&mut cmd).unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let mut input = child.stdin.take().expect("stdin is piped");
    // A command that exits without reading its input is not an error here.
    let _ = io::Write::write_all(&mut input, stdin);
    drop(input);
    let stdout = stdout.join().unwrap_or_default();
    finish(command, child, stdout, stderr)
}

/// Waits for `child`, whose stdout was read to the end, and collects what
/// the stderr thread read.
pub(crate) fn finish(
    command: String,
    mut child: Child,
    stdout: String,
    stderr: JoinHandle<String>,
) -> Run {
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("cannot wait for `{command}`: {e}"));
    Run {
        command,
        status,
        stdout,
        stderr: stderr.join().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_needs_it() {
        let mut cmd = Command::new("pamtester");
        cmd.args(["-v", "svc", "it's me", ""]);
        assert_eq!(render(&cmd), r"pamtester -v svc 'it'\''s me' ''");
    }

    #[test]
    fn runs_keep_output_and_status() {
        let mut cmd = with_deadline(Duration::from_secs(10), "sh");
        cmd.args(["-c", "cat; echo oops >&2; exit 3"]);
        let run = run(cmd, b"hello\n");
        assert_eq!(run.stdout, "hello\n");
        assert_eq!(run.stderr, "oops\n");
        assert_eq!(run.code(), Some(3));
        run.assert_failure();
        let shown = run.to_string();
        assert!(shown.contains("exit status 3"), "{shown}");
        assert!(shown.contains("    oops"), "{shown}");
    }

    #[test]
    fn a_command_past_its_deadline_is_killed() {
        let mut cmd = with_deadline(Duration::from_secs(1), "sleep");
        cmd.arg("30");
        let run = run(cmd, b"");
        assert!(run.timed_out(), "{run}");
    }
}

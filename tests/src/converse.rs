//! Driving `pam-converse` inside a sandbox and reading its transcript.

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use crate::codes::PamCode;
use crate::process::{self, describe_status, write_block, Run};
use crate::protocol::{At, Event, Line, Message, Op, OpLine};
use crate::sandbox::Sandbox;
use crate::syslog::{LogLine, NotSeen, SyslogSink};

/// A prompt as a test's answer function sees it.
pub type Prompt = Message;

/// Computes the answer to a prompt when it arrives, from the messages
/// shown before it in the run and the prompt; `None` gives none.
type AnswerFn<'a> = Box<dyn FnMut(&[Message], &Prompt) -> Option<String> + 'a>;

/// Where the answers come from.
enum Answers<'a> {
    /// Fixed answers, in order (`--answer`).
    Script(Vec<String>),
    /// Computed when each prompt arrives (`--answers-from-stdin`); `None`
    /// ends the answers.
    Live(AnswerFn<'a>),
}

/// One run of `pam-converse`: the service, the user, the answers and the
/// ops, built up with the methods below and run by [`Sandbox::converse`].
// Each flag is one switch of pam-converse's command line.
#[allow(clippy::struct_excessive_bools)]
pub struct Converse<'a> {
    service: String,
    user: Option<String>,
    answers: Answers<'a>,
    ops: Vec<Op>,
    silent: bool,
    no_conv: bool,
    real_fail_delay: bool,
    keep_going: bool,
    rhost: Option<String>,
    tty: Option<String>,
    conv_fail_at: Option<u32>,
    threads: u32,
    repeat: u32,
}

impl<'a> Converse<'a> {
    /// `pam_authenticate` for `user` on `service`, with no answers yet.
    pub fn new(service: &str, user: &str) -> Self {
        let mut c = Self::without_user(service);
        c.user = Some(user.to_owned());
        c
    }

    /// Like [`Converse::new`] but with `PAM_USER` unset, so a module has to
    /// ask for it.
    pub fn without_user(service: &str) -> Self {
        Converse {
            service: service.to_owned(),
            user: None,
            answers: Answers::Script(Vec::new()),
            ops: vec![Op::Authenticate],
            silent: false,
            no_conv: false,
            real_fail_delay: false,
            keep_going: false,
            rhost: None,
            tty: None,
            conv_fail_at: None,
            threads: 1,
            repeat: 1,
        }
    }

    /// Adds a fixed answer for the next prompt.
    #[must_use]
    pub fn answer(mut self, text: &str) -> Self {
        match &mut self.answers {
            Answers::Script(list) => list.push(text.to_owned()),
            Answers::Live(_) => panic!("answer() and answer_with() do not mix"),
        }
        self
    }

    /// Answers each prompt with what `answer` returns when it arrives, e.g.
    /// a TOTP code computed at that moment; `None` gives no answer, and the
    /// conversation fails.
    #[must_use]
    pub fn answer_with(mut self, answer: impl FnMut(&Prompt) -> Option<String> + 'a) -> Self {
        assert!(
            matches!(&self.answers, Answers::Script(l) if l.is_empty()),
            "answer() and answer_with() do not mix"
        );
        let mut answer = answer;
        self.answers = Answers::Live(Box::new(move |_: &[Message], prompt: &Prompt| {
            answer(prompt)
        }));
        self
    }

    /// Like [`Converse::answer_with`], but `answer` also sees every message
    /// of the run before the prompt, oldest first (the prompt itself is
    /// not among them): e.g. to answer with a code for a secret the module
    /// has just shown.
    #[must_use]
    pub fn answer_seeing(
        mut self,
        answer: impl FnMut(&[Message], &Prompt) -> Option<String> + 'a,
    ) -> Self {
        assert!(
            matches!(&self.answers, Answers::Script(l) if l.is_empty()),
            "answer() and answer_seeing() do not mix"
        );
        self.answers = Answers::Live(Box::new(answer));
        self
    }

    /// The libpam calls to make, in order (default: authenticate).
    #[must_use]
    pub fn ops(mut self, ops: &[Op]) -> Self {
        self.ops = ops.to_vec();
        self
    }

    /// Runs every op even after one failed, as an application that retries
    /// (sudo calls `pam_authenticate` again after a failure).
    #[must_use]
    pub fn keep_going(mut self) -> Self {
        self.keep_going = true;
        self
    }

    /// Passes `PAM_SILENT` to every call.
    #[must_use]
    pub fn silent(mut self) -> Self {
        self.silent = true;
        self
    }

    /// Passes a NULL conversation function.
    #[must_use]
    pub fn no_conv(mut self) -> Self {
        self.no_conv = true;
        self
    }

    /// Lets libpam sleep its failure delay instead of recording it.
    #[must_use]
    pub fn real_fail_delay(mut self) -> Self {
        self.real_fail_delay = true;
        self
    }

    /// Sets `PAM_RHOST`.
    #[must_use]
    pub fn rhost(mut self, host: &str) -> Self {
        self.rhost = Some(host.to_owned());
        self
    }

    /// Sets `PAM_TTY` (e.g. `tty1` for a console, `pts/0` for a terminal window).
    #[must_use]
    pub fn tty(mut self, tty: &str) -> Self {
        self.tty = Some(tty.to_owned());
        self
    }

    /// Makes the `call`-th conversation call (from 1) of each transaction fail.
    #[must_use]
    pub fn conv_fail_at(mut self, call: u32) -> Self {
        self.conv_fail_at = Some(call);
        self
    }

    /// Runs `threads` threads at once, each with its own handles.
    #[must_use]
    pub fn threads(mut self, threads: u32) -> Self {
        self.threads = threads;
        self
    }

    /// Runs `repeat` transactions one after another in each thread.
    #[must_use]
    pub fn repeat(mut self, repeat: u32) -> Self {
        self.repeat = repeat;
        self
    }

    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--service".into(), self.service.clone().into()];
        if let Some(user) = &self.user {
            args.extend(["--user".into(), user.into()]);
        }
        match &self.answers {
            Answers::Script(list) => {
                for a in list {
                    args.extend(["--answer".into(), a.into()]);
                }
            }
            Answers::Live(_) => args.push("--answers-from-stdin".into()),
        }
        let ops: Vec<&str> = self.ops.iter().map(|op| op.name()).collect();
        args.extend(["--ops".into(), ops.join(",").into()]);
        for (on, flag) in [
            (self.silent, "--silent"),
            (self.no_conv, "--no-conv"),
            (self.real_fail_delay, "--real-fail-delay"),
            (self.keep_going, "--keep-going"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        if let Some(host) = &self.rhost {
            args.extend(["--rhost".into(), host.into()]);
        }
        if let Some(tty) = &self.tty {
            args.extend(["--tty".into(), tty.into()]);
        }
        if let Some(n) = self.conv_fail_at {
            args.extend(["--conv-fail-at".into(), n.to_string().into()]);
        }
        if self.threads != 1 || self.repeat != 1 {
            args.extend([
                "--threads".into(),
                self.threads.to_string().into(),
                "--repeat".into(),
                self.repeat.to_string().into(),
            ]);
        }
        args
    }
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A line pam-converse printed.
    Line(Line),
    /// The answer a live answer function gave to the prompt before it
    /// (`None`: it gave none).
    Answered(Option<String>),
    /// Output that is not a protocol line (a module writing to stdout).
    Unparsed(String),
}

/// What happened in a `pam-converse` run, with assertions that print the
/// whole transcript and the sandbox's syslog when they fail.
pub struct Transcript {
    /// The lines in the order they came.
    pub entries: Vec<Entry>,
    /// The fixed answers it was given, if any.
    pub script: Vec<String>,
    /// The process: command line, status, raw stdout and stderr.
    pub run: Run,
    syslog: SyslogSink,
    /// How many syslog lines the sandbox had before this run.
    syslog_start: usize,
}

impl Transcript {
    fn lines(&self) -> impl Iterator<Item = &Line> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Line(l) => Some(l),
            _ => None,
        })
    }

    fn events(&self) -> impl Iterator<Item = (&Event, At)> {
        self.lines().filter_map(|l| match l {
            Line::Event(e) => Some((&e.event, l.at())),
            Line::Op(_) => None,
        })
    }

    /// Every conversation message, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.events().filter_map(|(e, _)| e.as_message()).collect()
    }

    /// The text of every prompt, in order.
    pub fn prompts(&self) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.style.is_prompt())
            .map(|m| m.msg)
            .collect()
    }

    /// Every other event (conversation errors, failure delays), in order.
    pub fn other_events(&self) -> Vec<Event> {
        self.events()
            .filter(|(e, _)| e.as_message().is_none())
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Every op result, in order.
    pub fn results(&self) -> Vec<&OpLine> {
        self.lines()
            .filter_map(|l| match l {
                Line::Op(op) => Some(op),
                Line::Event(_) => None,
            })
            .collect()
    }

    /// What `op` returned in every transaction that got to it.
    pub fn codes(&self, op: Op) -> Vec<PamCode> {
        self.results()
            .into_iter()
            .filter(|r| r.op == op)
            .map(OpLine::code)
            .collect()
    }

    /// What `op` returned, in a run of one transaction; `None` if it did not
    /// run.
    pub fn rc(&self, op: Op) -> Option<PamCode> {
        let codes = self.codes(op);
        assert!(
            codes.len() <= 1,
            "rc() is for one transaction; use codes():\n{self}"
        );
        codes.first().copied()
    }

    /// Whether pam-converse exited with 0 (every op returned `PAM_SUCCESS`).
    pub fn succeeded(&self) -> bool {
        self.run.success()
    }

    /// Fails the test, showing everything, unless `op` returned `want`.
    pub fn assert_rc(&self, op: Op, want: PamCode) -> &Self {
        let got = self.rc(op);
        assert!(
            got == Some(want),
            "{op} returned {}, expected {want}\n{self}",
            got.map_or_else(|| "nothing (it did not run)".into(), |c| c.to_string())
        );
        self
    }

    /// Fails the test, showing everything, unless every op of every
    /// transaction returned `PAM_SUCCESS`.
    pub fn assert_success(&self) -> &Self {
        let all = self.results().iter().all(|r| r.rc == 0);
        assert!(
            self.succeeded() && all && !self.results().is_empty(),
            "expected every op to succeed\n{self}"
        );
        self
    }

    /// Fails the test, showing everything, unless the prompts were exactly
    /// `want`.
    pub fn assert_prompts(&self, want: &[&str]) -> &Self {
        assert!(
            self.prompts() == want,
            "expected the prompts {want:?}\n{self}"
        );
        self
    }

    /// The sandbox's syslog lines since this run started. Lines can arrive
    /// a moment after the process exits; to wait for one, use
    /// [`SyslogSink::wait_for`].
    pub fn logs(&self) -> Vec<LogLine> {
        self.syslog.lines_since(self.syslog_start)
    }

    /// Waits until a syslog line for which `matches` is true has arrived
    /// since this run started, and returns the first such line.
    ///
    /// # Errors
    /// [`NotSeen`], listing all lines, if none matched within `timeout`.
    pub fn wait_for_log(
        &self,
        matches: impl FnMut(&LogLine) -> bool,
        timeout: Duration,
    ) -> Result<LogLine, NotSeen> {
        self.syslog
            .wait_for_since(self.syslog_start, matches, timeout)
    }
}

fn show_event(f: &mut fmt::Formatter<'_>, event: &Event) -> fmt::Result {
    match event {
        Event::ConvError { call, reason } => {
            writeln!(f, "  [call {call}] conversation fails: {reason}")
        }
        Event::FailDelay { usec, rc } => writeln!(
            f,
            "  fail delay of {usec} us requested (status {})",
            PamCode(*rc)
        ),
        Event::OtherStyle { style, call } => {
            writeln!(f, "  [call {call}] message of unsupported style {style}")
        }
        Event::PromptEchoOff { msg, call }
        | Event::PromptEchoOn { msg, call }
        | Event::ErrorMsg { msg, call }
        | Event::TextInfo { msg, call } => {
            let style = event.as_message().map_or("?", |m| m.style.name());
            writeln!(f, "  [call {call}] {style} {msg:?}")
        }
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- transcript")?;
        writeln!(f, "$ {}", self.run.command)?;
        if !self.script.is_empty() {
            writeln!(f, "  answers given: {:?}", self.script)?;
        }
        let tagged = self.lines().any(|l| l.at() != At::default());
        for entry in &self.entries {
            match entry {
                Entry::Line(line) => {
                    if tagged {
                        let at = line.at();
                        write!(f, "  t{}/r{}", at.thread, at.round)?;
                    }
                    match line {
                        Line::Event(e) => show_event(f, &e.event)?,
                        Line::Op(op) => writeln!(f, "  {} -> {}", op.op, op.code())?,
                    }
                }
                Entry::Answered(Some(a)) => writeln!(f, "      answered {a:?}")?,
                Entry::Answered(None) => writeln!(f, "      not answered")?,
                Entry::Unparsed(text) => writeln!(f, "  (not a protocol line) {text}")?,
            }
        }
        writeln!(f, "  {}", describe_status(self.run.status))?;
        write_block(f, "stderr", &self.run.stderr)?;
        let logs = self.logs();
        if !logs.is_empty() {
            writeln!(f, "--- syslog of the sandbox since the run started")?;
            for line in logs {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn parse(text: &str) -> Entry {
    serde_json::from_str(text).map_or_else(|_| Entry::Unparsed(text.to_owned()), Entry::Line)
}

/// What `pam_unix` asks for the password.
pub const PASSWORD_PROMPT: &str = "Password: ";

/// Answers `pam_unix`'s password prompt with `password` and every other
/// prompt with what `code` returns then.
pub fn password_and<'a>(
    password: &'a str,
    mut code: impl FnMut() -> String + 'a,
) -> impl FnMut(&Prompt) -> Option<String> + 'a {
    move |p: &Prompt| {
        Some(if p.msg == PASSWORD_PROMPT {
            password.to_owned()
        } else {
            code()
        })
    }
}

impl Sandbox {
    /// A login as the tests tell it: `pam_authenticate` then
    /// `pam_acct_mgmt` on `service` for `user`, the password prompt
    /// answered with `password` and every other prompt with what `code`
    /// returns then. The one login helper of the end-to-end tests.
    pub fn login<'a>(
        &self,
        service: &str,
        user: &'a str,
        password: &'a str,
        code: impl FnMut() -> String + 'a,
    ) -> Transcript {
        self.converse(
            Converse::new(service, user)
                .ops(&[Op::Authenticate, Op::AcctMgmt])
                .answer_with(password_and(password, code)),
        )
    }

    /// Runs `pam-converse` as `req` says, inside the namespace.
    pub fn converse(&self, req: Converse<'_>) -> Transcript {
        let script = match &req.answers {
            Answers::Script(list) => list.clone(),
            Answers::Live(_) => Vec::new(),
        };
        let syslog_start = self.syslog().count();
        let mut cmd = self.command(self.tools().converse());
        cmd.args(req.args());
        let command = process::render(&cmd);
        let mut child = process::spawn_piped(&mut cmd)
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let stderr = process::drain(child.stderr.take().expect("stderr is piped"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stdin = child.stdin.take();
        let mut live = match req.answers {
            Answers::Live(f) => Some(f),
            Answers::Script(_) => {
                stdin = None;
                None
            }
        };
        let mut entries = Vec::new();
        let mut seen: Vec<Message> = Vec::new();
        let mut raw = String::new();
        for text in BufReader::new(stdout).lines() {
            let Ok(text) = text else { break };
            raw.push_str(&text);
            raw.push('\n');
            let entry = parse(&text);
            let message = match &entry {
                Entry::Line(Line::Event(e)) => e.event.as_message(),
                _ => None,
            };
            entries.push(entry);
            let Some(message) = message else { continue };
            if !message.style.is_prompt() {
                seen.push(message);
                continue;
            }
            let prompt = message;
            if let Some(answer) = live.as_mut() {
                let given = answer(&seen, &prompt);
                let sent = match (&given, stdin.as_mut()) {
                    (Some(text), Some(pipe)) => pipe
                        .write_all(text.as_bytes())
                        .and_then(|()| pipe.write_all(b"\n"))
                        .and_then(|()| pipe.flush())
                        .is_ok(),
                    _ => false,
                };
                if !sent {
                    // No answer: end of input, so every later prompt fails too.
                    stdin = None;
                }
                entries.push(Entry::Answered(given));
            }
            seen.push(prompt);
        }
        drop(stdin);
        let run = process::finish(command, child, raw, stderr);
        Transcript {
            entries,
            script,
            run,
            syslog: self.syslog().clone(),
            syslog_start,
        }
    }
}

//! pam-converse: runs PAM transactions through the real libpam with a
//! scripted conversation, and prints what the modules said and returned as
//! JSON lines (see `pam_mfa_e2e::protocol`).
//!
//! ```text
//! pam-converse --service NAME [--user NAME] [--answer TEXT]... [--answers-from-stdin]
//!              [--ops authenticate,acct_mgmt,setcred] [--silent] [--no-conv]
//!              [--rhost HOST] [--tty TTY] [--conv-fail-at N] [--threads N]
//!              [--repeat M] [--real-fail-delay]
//! ```
//!
//! Exit status: 0 if every op of every transaction returned `PAM_SUCCESS`,
//! 1 if any did not, 2 for a usage error.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString, OsStr, OsString};
use std::io::{self, BufRead, Write};
use std::os::unix::ffi::OsStringExt;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::ptr;
use std::sync::{Barrier, Mutex, PoisonError};

use nix::libc;
use pam_mfa_e2e::libpam as ffi;
use pam_mfa_e2e::protocol::{At, Event, EventLine, Line, Op, OpLine, Style};

const USAGE: &str = "\
usage: pam-converse --service NAME [--user NAME] [--answer TEXT]... [--answers-from-stdin]
                    [--ops authenticate,acct_mgmt,setcred,open_session,close_session]
                    [--silent] [--no-conv] [--rhost HOST] [--tty TTY] [--conv-fail-at N]
                    [--threads N] [--repeat M] [--real-fail-delay] [--keep-going]

Runs PAM transactions through libpam and prints each conversation message and
each result as a JSON line. Prompts are answered in order from --answer, or
with --answers-from-stdin one line of stdin per prompt, read when the prompt
arrives; when answers run out the conversation returns PAM_CONV_ERR.
Without --user, PAM_USER is unset and a module must ask for it.
--rhost and --tty set PAM_RHOST and PAM_TTY. --no-conv passes a NULL conversation function. --conv-fail-at N fails the
N-th conversation call of each transaction. libpam's failure delay is
recorded as a fail_delay line instead of slept, unless --real-fail-delay.
--threads N runs N threads at once, each running --repeat M transactions on
its own handle.

Exit status: 0 if every op returned PAM_SUCCESS, 1 otherwise, 2 usage error.";

/// Where the answers to prompts come from.
enum Answers {
    /// The same list for every transaction, used in order.
    Script(Vec<Vec<u8>>),
    /// One line of stdin per prompt, shared by all transactions.
    Stdin,
}

// Each flag is one switch of pam-converse's command line.
#[allow(clippy::struct_excessive_bools)]
struct Options {
    service: CString,
    user: Option<CString>,
    answers: Answers,
    ops: Vec<Op>,
    silent: bool,
    no_conv: bool,
    real_fail_delay: bool,
    /// Run every op even after one failed, as an application that retries.
    keep_going: bool,
    rhost: Option<CString>,
    tty: Option<CString>,
    conv_fail_at: Option<u32>,
    threads: u32,
    repeat: u32,
}

fn c_string(value: OsString, what: &str) -> Result<CString, String> {
    CString::new(value.into_vec()).map_err(|_| format!("{what} contains a NUL byte"))
}

fn number(value: &OsStr, what: &str, max: u32) -> Result<u32, String> {
    value
        .to_str()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("{what} takes a number from 1 to {max}"))
}

impl Options {
    /// The options, or `None` for `--help`.
    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<Options>, String> {
        let mut service = None;
        let mut user = None;
        let mut script = Vec::new();
        let mut from_stdin = false;
        let mut ops = vec![Op::Authenticate];
        let mut silent = false;
        let mut no_conv = false;
        let mut real_fail_delay = false;
        let mut keep_going = false;
        let mut rhost = None;
        let mut tty = None;
        let mut conv_fail_at = None;
        let mut threads = 1;
        let mut repeat = 1;
        while let Some(arg) = args.next() {
            let flag = arg.to_string_lossy().into_owned();
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--service" => service = Some(c_string(value()?, "--service")?),
                "--user" => user = Some(c_string(value()?, "--user")?),
                "--answer" => script.push(value()?.into_vec()),
                "--answers-from-stdin" => from_stdin = true,
                "--help" => return Ok(None),
                "--ops" => {
                    let list = value()?;
                    let list = list.to_str().ok_or("--ops is not UTF-8")?;
                    ops = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
                }
                "--silent" => silent = true,
                "--no-conv" => no_conv = true,
                "--real-fail-delay" => real_fail_delay = true,
                "--keep-going" => keep_going = true,
                "--rhost" => rhost = Some(c_string(value()?, "--rhost")?),
                "--tty" => tty = Some(c_string(value()?, "--tty")?),
                "--conv-fail-at" => conv_fail_at = Some(number(&value()?, &flag, u32::MAX)?),
                "--threads" => threads = number(&value()?, &flag, 1024)?,
                "--repeat" => repeat = number(&value()?, &flag, 1_000_000)?,
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        let service = service.ok_or("--service is required")?;
        if from_stdin && !script.is_empty() {
            return Err("use either --answer or --answers-from-stdin".into());
        }
        if no_conv && (from_stdin || !script.is_empty() || conv_fail_at.is_some()) {
            return Err("--no-conv has no conversation to answer or fail".into());
        }
        Ok(Some(Options {
            service,
            user,
            answers: if from_stdin {
                Answers::Stdin
            } else {
                Answers::Script(script)
            },
            ops,
            silent,
            no_conv,
            real_fail_delay,
            keep_going,
            rhost,
            tty,
            conv_fail_at,
            threads,
            repeat,
        }))
    }
}

/// What all transactions share: the options and the terminal-like I/O.
struct Shared {
    opts: Options,
    /// Held for a whole conversation call, so that a prompt and the answer
    /// read for it from stdin are never split by another thread's lines.
    io: Mutex<()>,
    /// Whether lines carry thread and round.
    tagged: bool,
}

/// Prints one line of output and flushes it, so that a test reading the
/// output sees a prompt before it has to answer it.
fn emit(line: &Line) {
    let mut text = serde_json::to_vec(line).unwrap_or_default();
    text.push(b'\n');
    let mut out = io::stdout().lock();
    // A reader that went away cannot be told anything either.
    let _ = out.write_all(&text).and_then(|()| out.flush());
}

impl Shared {
    fn emit_event(&self, event: Event, at: At) {
        emit(&Line::Event(EventLine::new(event, self.tag(at))));
    }

    fn tag(&self, at: At) -> Option<At> {
        self.tagged.then_some(at)
    }
}

/// The state one transaction's conversation function works on; libpam
/// hands it back as `appdata_ptr`.
struct Conversation<'a> {
    shared: &'a Shared,
    at: At,
    calls: Cell<u32>,
    next_answer: Cell<usize>,
}

impl Conversation<'_> {
    fn answer(&self) -> Option<Vec<u8>> {
        match &self.shared.opts.answers {
            Answers::Script(list) => {
                let i = self.next_answer.get();
                self.next_answer.set(i + 1);
                list.get(i).cloned()
            }
            Answers::Stdin => {
                let mut line = Vec::new();
                match io::stdin().lock().read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        Some(line)
                    }
                }
            }
        }
    }

    /// Handles one call: prints every message, then answers the prompts or
    /// fails. Returns the answers, one per message (`None` for messages
    /// that take none), or why the call fails.
    fn handle(&self, messages: &[(c_int, String)]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let call = self.calls.get() + 1;
        self.calls.set(call);
        let _io = self
            .shared
            .io
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let fail_here = self.shared.opts.conv_fail_at == Some(call);
        let mut answers = Vec::with_capacity(messages.len());
        for (style, text) in messages {
            self.shared
                .emit_event(Event::message(*style, text.clone(), call), self.at);
            if fail_here {
                continue;
            }
            match Style::from_raw(*style) {
                Some(s) if s.is_prompt() => match self.answer() {
                    Some(a) => answers.push(Some(a)),
                    None => return Err(self.fail(call, "no answer left")),
                },
                Some(_) => answers.push(None),
                None => return Err(self.fail(call, "unsupported message style")),
            }
        }
        if fail_here {
            return Err(self.fail(call, "--conv-fail-at"));
        }
        Ok(answers)
    }

    fn fail(&self, call: u32, reason: &str) -> String {
        self.shared.emit_event(
            Event::ConvError {
                call,
                reason: reason.into(),
            },
            self.at,
        );
        reason.into()
    }
}

/// Copies `answers` into the malloc'd array libpam expects, which it frees.
fn responses(answers: &[Option<Vec<u8>>]) -> Option<*mut ffi::PamResponse> {
    // SAFETY: calloc has no preconditions; the result is checked for NULL.
    let array = unsafe { libc::calloc(answers.len(), std::mem::size_of::<ffi::PamResponse>()) }
        .cast::<ffi::PamResponse>();
    if array.is_null() {
        return None;
    }
    for (i, answer) in answers.iter().enumerate() {
        let Some(bytes) = answer else { continue };
        // SAFETY: calloc has no preconditions; one extra zero byte ends the string.
        let text = unsafe { libc::calloc(bytes.len() + 1, 1) }.cast::<c_char>();
        if text.is_null() {
            free_responses(array, i);
            return None;
        }
        // SAFETY: `text` has room for bytes.len() + 1 bytes and does not
        // overlap `bytes`; `array` has answers.len() zeroed entries and i is
        // in range.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), text, bytes.len());
            (*array.add(i)).resp = text;
        }
    }
    Some(array)
}

/// Frees the first `filled` entries of a response array and the array.
fn free_responses(array: *mut ffi::PamResponse, filled: usize) {
    for i in 0..filled {
        // SAFETY: the caller allocated `array` with at least `filled` entries,
        // each either NULL or a calloc'd string not yet handed to libpam.
        unsafe { libc::free((*array.add(i)).resp.cast::<c_void>()) };
    }
    // SAFETY: `array` came from calloc and is not used after this.
    unsafe { libc::free(array.cast::<c_void>()) };
}

/// The conversation function given to libpam.
///
/// # Safety
/// libpam calls it with `appdata_ptr` as set in [`transaction`] (a live
/// `Conversation`), and `msg`/`resp` as Linux-PAM documents them; all are
/// checked for NULL.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const ffi::PamMessage,
    resp: *mut *mut ffi::PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    let body = || {
        if appdata_ptr.is_null() {
            return ffi::PAM_CONV_ERR;
        }
        // SAFETY: appdata_ptr is the `Conversation` that transaction() passed
        // to pam_start; it outlives the handle, and libpam calls back only on
        // the thread that is inside a pam_* call on that handle. It is only
        // used through a shared reference (its mutable parts are Cells).
        let conv = unsafe { &*appdata_ptr.cast::<Conversation>() };
        let count = usize::try_from(num_msg).unwrap_or(0);
        if count == 0 || num_msg > ffi::PAM_MAX_NUM_MSG || msg.is_null() || resp.is_null() {
            let call = conv.calls.get() + 1;
            conv.calls.set(call);
            conv.fail(call, "bad arguments");
            return ffi::PAM_CONV_ERR;
        }
        let mut messages = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: msg is non-NULL and Linux-PAM passes num_msg pointers.
            let m = unsafe { *msg.add(i) };
            if m.is_null() {
                return ffi::PAM_CONV_ERR;
            }
            // SAFETY: a non-NULL message pointer from libpam points to a
            // pam_message that lives for this call.
            let m = unsafe { &*m };
            let text = if m.msg.is_null() {
                String::new()
            } else {
                // SAFETY: msg is a NUL-terminated string owned by the module
                // for the duration of the call.
                unsafe { CStr::from_ptr(m.msg) }
                    .to_string_lossy()
                    .into_owned()
            };
            messages.push((m.msg_style, text));
        }
        let Ok(answers) = conv.handle(&messages) else {
            return ffi::PAM_CONV_ERR;
        };
        match responses(&answers) {
            Some(array) => {
                // SAFETY: resp is non-NULL and points to where libpam wants
                // the array; ownership passes to libpam.
                unsafe { *resp = array };
                ffi::PAM_SUCCESS
            }
            None => ffi::PAM_BUF_ERR,
        }
    };
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(ffi::PAM_CONV_ERR)
}

/// The `PAM_FAIL_DELAY` function: records the delay libpam asks for
/// instead of sleeping, so that tests of back-off do not wait.
///
/// # Safety
/// `appdata_ptr` is the conversation's, as for [`converse`].
unsafe extern "C" fn record_fail_delay(
    retval: c_int,
    usec_delay: c_uint,
    appdata_ptr: *mut c_void,
) {
    let body = || {
        if appdata_ptr.is_null() || usec_delay == 0 {
            return;
        }
        // SAFETY: as in converse(): the live Conversation of this handle.
        let conv = unsafe { &*appdata_ptr.cast::<Conversation>() };
        let _io = conv
            .shared
            .io
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        conv.shared.emit_event(
            Event::FailDelay {
                usec: u64::from(usec_delay),
                rc: retval,
            },
            conv.at,
        );
    };
    // Nothing can be reported from here; a panic must not cross into C.
    let _ = panic::catch_unwind(AssertUnwindSafe(body));
}

/// An open PAM handle, ended with the last status when dropped.
struct Handle {
    pamh: *mut ffi::PamHandle,
    last: c_int,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: pamh came from a successful pam_start and is ended once.
        unsafe { ffi::pam_end(self.pamh, self.last) };
    }
}

/// Runs one transaction: start, set items, the ops in order until one
/// fails, end. Returns whether every op returned `PAM_SUCCESS`.
fn transaction(shared: &Shared, at: At) -> bool {
    let opts = &shared.opts;
    let conversation = Conversation {
        shared,
        at,
        calls: Cell::new(0),
        next_answer: Cell::new(0),
    };
    let conv = ffi::PamConv {
        conv: if opts.no_conv {
            None
        } else {
            Some(converse as ffi::ConvFn)
        },
        appdata_ptr: ptr::from_ref(&conversation).cast_mut().cast::<c_void>(),
    };
    let report = |op: Op, rc: c_int| emit(&Line::Op(OpLine::new(op, rc, shared.tag(at))));

    let mut pamh = ptr::null_mut();
    let user = opts.user.as_ref().map_or(ptr::null(), |u| u.as_ptr());
    // SAFETY: service and user are NUL-terminated (or user NULL); conv is
    // a valid pam_conv that libpam copies; pamh receives the handle.
    let rc = unsafe { ffi::pam_start(opts.service.as_ptr(), user, &raw const conv, &raw mut pamh) };
    if rc != ffi::PAM_SUCCESS || pamh.is_null() {
        report(Op::Start, rc);
        return false;
    }
    // Declared after `conversation`, so the handle is ended before the
    // conversation it points to goes away.
    let mut handle = Handle {
        pamh,
        last: ffi::PAM_SUCCESS,
    };
    for (item, value) in [(ffi::PAM_RHOST, &opts.rhost), (ffi::PAM_TTY, &opts.tty)] {
        let Some(value) = value else { continue };
        // SAFETY: a live handle and a NUL-terminated string, which libpam copies.
        let rc = unsafe { ffi::pam_set_item(handle.pamh, item, value.as_ptr().cast()) };
        if rc != ffi::PAM_SUCCESS {
            report(Op::Start, rc);
            return false;
        }
    }
    if !opts.real_fail_delay {
        let delay: ffi::DelayFn = record_fail_delay;
        // SAFETY: a live handle; PAM_FAIL_DELAY takes the function pointer
        // itself as the item.
        let rc =
            unsafe { ffi::pam_set_item(handle.pamh, ffi::PAM_FAIL_DELAY, delay as *const c_void) };
        if rc != ffi::PAM_SUCCESS {
            report(Op::Start, rc);
            return false;
        }
    }
    let silent = if opts.silent { ffi::PAM_SILENT } else { 0 };
    let mut ok = true;
    for &op in &opts.ops {
        let call = match op {
            Op::Start => continue,
            Op::Authenticate => ffi::pam_authenticate,
            Op::AcctMgmt => ffi::pam_acct_mgmt,
            Op::Setcred => ffi::pam_setcred,
            Op::OpenSession => ffi::pam_open_session,
            Op::CloseSession => ffi::pam_close_session,
        };
        let flags = if op == Op::Setcred {
            silent | ffi::PAM_ESTABLISH_CRED
        } else {
            silent
        };
        // SAFETY: a live handle from pam_start; the conversation it calls
        // back into is alive for the whole transaction.
        let rc = unsafe { call(handle.pamh, flags) };
        handle.last = rc;
        report(op, rc);
        if rc != ffi::PAM_SUCCESS {
            ok = false;
            if !opts.keep_going {
                break;
            }
        }
    }
    ok
}

fn run_thread(shared: &Shared, thread: u32) -> bool {
    let mut all = true;
    for round in 0..shared.opts.repeat {
        all &= transaction(shared, At { thread, round });
    }
    all
}

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args_os().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pam-converse: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let threads = opts.threads;
    let shared = Shared {
        tagged: opts.threads > 1 || opts.repeat > 1,
        opts,
        io: Mutex::new(()),
    };
    let all = if threads == 1 {
        run_thread(&shared, 0)
    } else {
        // Every thread starts its first transaction at the same moment.
        let start = Barrier::new(threads as usize);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let shared = &shared;
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        run_thread(shared, t)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or(false))
                .fold(true, |a, b| a & b)
        })
    };
    if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        parse(args).unwrap().unwrap()
    }

    #[test]
    fn defaults_to_one_authenticate_with_no_answers() {
        let o = options(&["--service", "login", "--user", "alice"]);
        assert_eq!(o.service.as_bytes(), b"login");
        assert_eq!(o.user.unwrap().as_bytes(), b"alice");
        assert_eq!(o.ops, [Op::Authenticate]);
        assert!(matches!(o.answers, Answers::Script(ref a) if a.is_empty()));
        assert_eq!((o.threads, o.repeat, o.conv_fail_at), (1, 1, None));
        assert!(!o.silent && !o.no_conv && !o.real_fail_delay);
    }

    #[test]
    fn reads_every_option() {
        let o = options(&[
            "--service",
            "sshd",
            "--answer",
            "one",
            "--answer",
            "",
            "--ops",
            "authenticate,acct_mgmt,setcred",
            "--silent",
            "--rhost",
            "192.0.2.1",
            "--tty",
            "tty1",
            "--conv-fail-at",
            "3",
            "--threads",
            "8",
            "--repeat",
            "2",
            "--real-fail-delay",
        ]);
        assert!(o.user.is_none());
        assert!(matches!(o.answers, Answers::Script(ref a) if a == &[b"one".to_vec(), Vec::new()]));
        assert_eq!(o.ops, [Op::Authenticate, Op::AcctMgmt, Op::Setcred]);
        assert_eq!(o.rhost.unwrap().as_bytes(), b"192.0.2.1");
        assert_eq!(o.tty.unwrap().as_bytes(), b"tty1");
        assert_eq!((o.threads, o.repeat, o.conv_fail_at), (8, 2, Some(3)));
        assert!(o.silent && o.real_fail_delay);
    }

    #[test]
    fn refuses_contradictions_and_bad_values() {
        for args in [
            &["--user", "a"][..],
            &["--service", "s", "--answer", "x", "--answers-from-stdin"],
            &["--service", "s", "--no-conv", "--answer", "x"],
            &["--service", "s", "--no-conv", "--conv-fail-at", "1"],
            &["--service", "s", "--ops", "authenticate,start"],
            &["--service", "s", "--threads", "0"],
            &["--service", "s", "--threads", "1025"],
            &["--service", "s", "--conv-fail-at", "-1"],
            &["--service", "s", "--rhost"],
            &["--service", "s", "--tty"],
            &["--service", "s", "--bogus"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
        assert!(parse(&["--help"]).unwrap().is_none());
    }

    fn shared(args: &[&str]) -> Shared {
        Shared {
            opts: options(args),
            io: Mutex::new(()),
            tagged: false,
        }
    }

    fn conversation(shared: &Shared) -> Conversation<'_> {
        Conversation {
            shared,
            at: At::default(),
            calls: Cell::new(0),
            next_answer: Cell::new(0),
        }
    }

    #[test]
    fn prompts_take_the_scripted_answers_in_order_and_messages_take_none() {
        let s = shared(&["--service", "s", "--answer", "a", "--answer", "b"]);
        let c = conversation(&s);
        let got = c
            .handle(&[
                (1, "Password: ".into()),
                (4, "info".into()),
                (2, "Name: ".into()),
            ])
            .unwrap();
        assert_eq!(got, [Some(b"a".to_vec()), None, Some(b"b".to_vec())]);
        assert_eq!(
            c.handle(&[(1, "again".into())]),
            Err("no answer left".into())
        );
        assert_eq!(c.calls.get(), 2);
    }

    #[test]
    fn the_chosen_call_fails_and_the_others_do_not() {
        let s = shared(&["--service", "s", "--answer", "a", "--conv-fail-at", "2"]);
        let c = conversation(&s);
        assert_eq!(c.handle(&[(3, "error".into())]), Ok(vec![None]));
        assert_eq!(
            c.handle(&[(1, "Password: ".into())]),
            Err("--conv-fail-at".into())
        );
        assert_eq!(
            c.handle(&[(1, "Password: ".into())]),
            Ok(vec![Some(b"a".to_vec())]),
            "the failed call used no answer"
        );
    }

    #[test]
    fn unknown_message_styles_fail_the_call() {
        let s = shared(&["--service", "s", "--answer", "a"]);
        let c = conversation(&s);
        assert_eq!(
            c.handle(&[(7, "binary".into())]),
            Err("unsupported message style".into())
        );
    }

    #[test]
    fn responses_are_nul_terminated_copies_for_prompts_only() {
        let answers = [Some(b"123456".to_vec()), None, Some(Vec::new())];
        let array = responses(&answers).unwrap();
        let read = |i: usize| {
            // SAFETY: `array` has three entries from responses().
            let resp = unsafe { (*array.add(i)).resp };
            // SAFETY: non-NULL entries are NUL-terminated strings.
            (!resp.is_null()).then(|| unsafe { CStr::from_ptr(resp) }.to_bytes().to_vec())
        };
        assert_eq!(read(0), Some(b"123456".to_vec()));
        assert_eq!(read(1), None);
        assert_eq!(read(2), Some(Vec::new()));
        free_responses(array, answers.len());
    }
}

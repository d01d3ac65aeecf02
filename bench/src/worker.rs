//! The worker: an in-process libpam application. It reads one [`Task`] on
//! stdin, runs it, and prints one report on stdout.
//!
//! For a PAM task each user gets one transaction: `pam_start` on the
//! task's service (libpam reads the service file and loads its modules),
//! the `PAM_FAIL_DELAY` item set to a function that records the delay
//! instead of sleeping, `pam_authenticate` with a scripted conversation
//! that answers every prompt with a code computed here, and `pam_end`
//! (which unloads the modules). Codes are computed just before
//! `pam_start`, outside the timed span; the wrong code, which costs a few
//! thousand HMACs to choose, is chosen before the first transaction.

use std::cell::Cell;
use std::ffi::{c_int, c_uint, c_void, CStr, CString};
use std::io::{self, BufRead, Write};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::time::Instant;

use nix::libc;
use nix::sys::resource::{getrusage, UsageWho};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::User;

use crate::codes::{self, Secret};
use crate::job::{Answer, Attempt, JobUser, NssReport, PamReport, SpinReport, Task};
use pam_mfa_e2e::libpam as ffi;

/// Runs the task read from stdin and prints its report.
///
/// # Errors
/// A bad task, or a report that cannot be written.
pub fn main() -> Result<(), String> {
    let stdin = io::stdin();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the task: {e}"))?;
    let task: Task = serde_json::from_str(&line).map_err(|e| format!("bad task: {e}"))?;
    let report = match task {
        Task::Pam {
            service,
            answer,
            users,
            wait_for_go,
        } => serde_json::to_string(&pam(&service, answer, &users, wait_for_go)?),
        Task::Nss { users } => serde_json::to_string(&nss(&users)),
        Task::Spin {
            rounds,
            wait_for_go,
        } => serde_json::to_string(&spin(rounds, wait_for_go)?),
    }
    .map_err(|e| e.to_string())?;
    let mut out = io::stdout().lock();
    writeln!(out, "{report}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the report: {e}"))
}

/// The state one transaction's conversation works on; libpam hands it
/// back as `appdata_ptr`.
struct Conversation {
    answer: CString,
    prompts: Cell<u64>,
    messages: Cell<u64>,
    fail_delays: Cell<u64>,
}

/// Answers every prompt with the conversation's code; counts the rest.
///
/// # Safety
/// libpam calls it with `appdata_ptr` as passed to `pam_start` (a live
/// [`Conversation`]) and `msg`/`resp` as Linux-PAM documents them.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const ffi::PamMessage,
    resp: *mut *mut ffi::PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    let body = || {
        let count = usize::try_from(num_msg).unwrap_or(0);
        if appdata_ptr.is_null()
            || count == 0
            || num_msg > ffi::PAM_MAX_NUM_MSG
            || msg.is_null()
            || resp.is_null()
        {
            return ffi::PAM_CONV_ERR;
        }
        // SAFETY: appdata_ptr is the Conversation passed to pam_start, which
        // outlives the handle; it is only used through a shared reference.
        let conv = unsafe { &*appdata_ptr.cast::<Conversation>() };
        // SAFETY: calloc has no preconditions; the result is checked.
        let array = unsafe { libc::calloc(count, std::mem::size_of::<ffi::PamResponse>()) }
            .cast::<ffi::PamResponse>();
        if array.is_null() {
            return ffi::PAM_BUF_ERR;
        }
        for i in 0..count {
            // SAFETY: msg is non-NULL and Linux-PAM passes num_msg pointers.
            let m = unsafe { *msg.add(i) };
            if m.is_null() {
                continue;
            }
            // SAFETY: a non-NULL message pointer points to a live pam_message.
            let style = unsafe { (*m).msg_style };
            if style == ffi::PAM_PROMPT_ECHO_OFF || style == ffi::PAM_PROMPT_ECHO_ON {
                conv.prompts.set(conv.prompts.get() + 1);
                // SAFETY: the answer is NUL-terminated; strdup's copy is
                // freed by libpam (or the module) with free().
                let text = unsafe { libc::strdup(conv.answer.as_ptr()) };
                // SAFETY: array has `count` zeroed entries and i < count.
                unsafe { (*array.add(i)).resp = text };
            } else {
                conv.messages.set(conv.messages.get() + 1);
            }
        }
        // SAFETY: resp is non-NULL; ownership of the array passes to libpam.
        unsafe { *resp = array };
        ffi::PAM_SUCCESS
    };
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(ffi::PAM_CONV_ERR)
}

/// Records libpam's failure delay instead of sleeping it, for every module
/// alike (pam-converse in the end-to-end tests does the same).
///
/// # Safety
/// `appdata_ptr` is the conversation's, as for [`converse`].
unsafe extern "C" fn record_fail_delay(_retval: c_int, usec: c_uint, appdata_ptr: *mut c_void) {
    if appdata_ptr.is_null() || usec == 0 {
        return;
    }
    // SAFETY: as in converse(): the live Conversation of this handle.
    let conv = unsafe { &*appdata_ptr.cast::<Conversation>() };
    conv.fail_delays.set(conv.fail_delays.get() + 1);
}

/// One transaction; returns (rc, `pam_authenticate` ns, whole ns).
fn transaction(service: &CStr, user: &CStr, conversation: &Conversation) -> (c_int, u64, u64) {
    let conv = ffi::PamConv {
        conv: Some(converse as ffi::ConvFn),
        appdata_ptr: ptr::from_ref(conversation).cast_mut().cast::<c_void>(),
    };
    let start = Instant::now();
    let mut pamh = ptr::null_mut();
    // SAFETY: service and user are NUL-terminated; conv is a valid pam_conv
    // that libpam copies; pamh receives the handle.
    let rc = unsafe {
        ffi::pam_start(
            service.as_ptr(),
            user.as_ptr(),
            &raw const conv,
            &raw mut pamh,
        )
    };
    if rc != ffi::PAM_SUCCESS || pamh.is_null() {
        return (rc, 0, nanos(start));
    }
    let delay: ffi::DelayFn = record_fail_delay;
    // SAFETY: a live handle; PAM_FAIL_DELAY takes the function pointer itself.
    let rc = unsafe { ffi::pam_set_item(pamh, ffi::PAM_FAIL_DELAY, delay as *const c_void) };
    let (rc, auth_ns) = if rc == ffi::PAM_SUCCESS {
        let auth = Instant::now();
        // SAFETY: a live handle; the conversation outlives it.
        let rc = unsafe { ffi::pam_authenticate(pamh, 0) };
        (rc, nanos(auth))
    } else {
        (rc, 0)
    };
    // SAFETY: pamh came from a successful pam_start and is ended once.
    unsafe { ffi::pam_end(pamh, rc) };
    (rc, auth_ns, nanos(start))
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `CLOCK_MONOTONIC` in ns: the same clock in every process.
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// Peak resident set size of this program so far, in KiB: `VmHWM`, the
/// high-water mark of this process's own memory map.
///
/// `getrusage`'s `ru_maxrss` would be the natural call, but Linux carries
/// the parent's resident size over a fork and exec into it, so a worker
/// spawned by the orchestrator (which holds a lot more) would report the
/// orchestrator's size. It is kept in the report as `maxrss_kb`.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `getrusage(RUSAGE_SELF).ru_maxrss` in KiB (see [`peak_rss_kb`]).
fn maxrss_kb() -> u64 {
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0))
}

/// Says `ready` and waits for `go`, so that two workers start together.
fn ready_set_go() -> Result<(), String> {
    let mut out = io::stdout().lock();
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    let mut go = String::new();
    io::stdin()
        .lock()
        .read_line(&mut go)
        .map_err(|e| e.to_string())?;
    if go.trim() == "go" {
        Ok(())
    } else {
        Err(format!("expected `go`, got {go:?}"))
    }
}

fn spin(rounds: u64, wait_for_go: bool) -> Result<SpinReport, String> {
    use sha2::{Digest, Sha256};
    if wait_for_go {
        ready_set_go()?;
    }
    let start_ns = monotonic_ns();
    let mut digest = [0u8; 32];
    for _ in 0..rounds {
        digest = Sha256::digest(digest).into();
    }
    std::hint::black_box(digest);
    Ok(SpinReport {
        start_ns,
        end_ns: monotonic_ns(),
    })
}

struct Prepared {
    name: CString,
    secret: Secret,
    wrong: Option<String>,
}

fn pam(
    service: &str,
    answer: Answer,
    users: &[JobUser],
    wait_for_go: bool,
) -> Result<PamReport, String> {
    let service = CString::new(service).map_err(|e| e.to_string())?;
    let step = codes::step_of(codes::unix_now());
    let prepared = users
        .iter()
        .map(|u| {
            let secret = codes::secret_from_hex(&u.secret_hex)?;
            Ok(Prepared {
                name: CString::new(u.name.as_str()).map_err(|e| e.to_string())?,
                wrong: (answer == Answer::Wrong).then(|| codes::wrong_code(&secret, step)),
                secret,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if wait_for_go {
        ready_set_go()?;
    }
    let rss_start_kb = peak_rss_kb();
    let mut attempts = Vec::with_capacity(prepared.len());
    let (mut prompts, mut messages, mut fail_delays) = (0, 0, 0);
    let start_ns = monotonic_ns();
    for user in &prepared {
        let step = codes::step_of(codes::unix_now());
        let code = match &user.wrong {
            Some(w) => w.clone(),
            None => codes::code_at(&user.secret, step),
        };
        let conversation = Conversation {
            answer: CString::new(code).map_err(|e| e.to_string())?,
            prompts: Cell::new(0),
            messages: Cell::new(0),
            fail_delays: Cell::new(0),
        };
        let (rc, auth_ns, txn_ns) = transaction(&service, &user.name, &conversation);
        prompts += conversation.prompts.get();
        messages += conversation.messages.get();
        fail_delays += conversation.fail_delays.get();
        attempts.push(Attempt {
            auth_ns,
            txn_ns,
            rc,
            step,
        });
    }
    let end_ns = monotonic_ns();
    Ok(PamReport {
        attempts,
        start_ns,
        end_ns,
        rss_start_kb,
        rss_peak_kb: peak_rss_kb(),
        maxrss_kb: maxrss_kb(),
        prompts,
        messages,
        fail_delays,
    })
}

fn nss(users: &[String]) -> NssReport {
    let mut report = NssReport {
        lookup_ns: Vec::with_capacity(users.len()),
        root_ns: Vec::with_capacity(users.len()),
        missing: 0,
    };
    for name in users {
        let start = Instant::now();
        let found = User::from_name(name);
        report.lookup_ns.push(nanos(start));
        if !matches!(found, Ok(Some(_))) {
            report.missing += 1;
        }
        let start = Instant::now();
        let _ = User::from_name("root");
        report.root_ns.push(nanos(start));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversation_answers_prompts_and_counts_messages() {
        let conversation = Conversation {
            answer: CString::new("123456").unwrap(),
            prompts: Cell::new(0),
            messages: Cell::new(0),
            fail_delays: Cell::new(0),
        };
        let prompt = CString::new("Verification code: ").unwrap();
        let info = CString::new("hello").unwrap();
        let messages = [
            ffi::PamMessage {
                msg_style: 4,
                msg: info.as_ptr(),
            },
            ffi::PamMessage {
                msg_style: ffi::PAM_PROMPT_ECHO_OFF,
                msg: prompt.as_ptr(),
            },
        ];
        let mut pointers: Vec<*const ffi::PamMessage> =
            messages.iter().map(ptr::from_ref).collect();
        let mut resp: *mut ffi::PamResponse = ptr::null_mut();
        let appdata = ptr::from_ref(&conversation).cast_mut().cast::<c_void>();
        // SAFETY: two valid messages, a valid out pointer, a live Conversation.
        let rc = unsafe { converse(2, pointers.as_mut_ptr(), &raw mut resp, appdata) };
        assert_eq!(rc, ffi::PAM_SUCCESS);
        // SAFETY: converse returned an array of two responses.
        let (first, second) = unsafe { ((*resp).resp, (*resp.add(1)).resp) };
        assert!(first.is_null());
        // SAFETY: a strdup'd NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(second) }.to_bytes(), b"123456");
        // SAFETY: both were malloc'd by converse and are not used again.
        unsafe {
            libc::free(second.cast());
            libc::free(resp.cast());
        }
        assert_eq!(
            (conversation.prompts.get(), conversation.messages.get()),
            (1, 1)
        );
    }
}

//! `pam_mfa.so`: the PAM shell around `mfa_core::flow`.
//!
//! Each `pam_sm_*` entry point catches panics, reads its arguments and PAM
//! items, hands the decision to mfa-core, logs the events it returns, and
//! turns the outcome into a return code in one table, [`pam_code`]. It makes
//! no process-wide changes: no openlog, no signal handlers, no umask, no
//! environment, no threads.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// argc/argv are PAM's own names.
#![allow(clippy::similar_names)]

mod conv;
mod nss;
mod pam;

use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;

use mfa_core::audit::{self, Event, EventKind};
use mfa_core::clock::SystemClock;
use mfa_core::config::{parse_module_args, Config, ModuleArgs};
use mfa_core::flow::{self, Host, Outcome, PendingDevice, Report, Request};
use mfa_core::fsutil::FileTrust;

use crate::conv::PamPrompter;
use crate::nss::Nss;
use crate::pam::{code, Handle, PamHandleT, PAM_SILENT};

const IDENT: &str = "pam_mfa";
const SYSLOG: &str = "/dev/log";
/// Where a device verified in authenticate waits for the account phase.
const PENDING: &CStr = c"pam_mfa_pending_device";

/// Why the module could not even start deciding.
enum Setup {
    /// Module arguments or config file refused.
    Config,
    /// Key file or state directory unusable.
    Host,
    /// No user name could be had.
    NoUser,
    /// PAM gave us no handle.
    NoHandle,
}

/// The one table from decisions to PAM return codes (see DESIGN.md, return codes).
fn pam_code(outcome: Result<&Outcome, &Setup>) -> c_int {
    match outcome {
        Ok(Outcome::Success | Outcome::EnrollmentVerified(_)) => code::SUCCESS,
        Ok(Outcome::Ignore) => code::IGNORE,
        Ok(Outcome::WrongCode | Outcome::Denied | Outcome::Throttled) => code::AUTH_ERR,
        Ok(Outcome::Locked) => code::MAXTRIES,
        Ok(Outcome::NoConversation | Outcome::ConversationFailed) => code::CONV_ERR,
        Ok(Outcome::StoreUnavailable | Outcome::DirectoryUnavailable) | Err(Setup::Host) => {
            code::AUTHINFO_UNAVAIL
        }
        Ok(Outcome::Internal) | Err(Setup::NoHandle) => code::SYSTEM_ERR,
        Err(Setup::Config) => code::SERVICE_ERR,
        Err(Setup::NoUser) => code::USER_UNKNOWN,
    }
}

fn log(event: &Event) {
    // No syslog daemon changes no decision; there is nowhere else to report it.
    let _ = audit::send_to(Path::new(SYSLOG), IDENT, event);
}

fn log_all(events: &[Event]) {
    events.iter().for_each(log);
}

/// Runs `body` so that a panic becomes `PAM_SYSTEM_ERR` instead of unwinding
/// into the application.
fn guarded(body: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log(&Event::new(EventKind::InternalError).reason("panic caught at the PAM boundary"));
        code::SYSTEM_ERR
    })
}

/// Collects argv; a non-UTF-8 argument is an unknown argument.
///
/// # Safety
/// `argv` must hold `argc` valid NUL-terminated strings, as libpam passes.
unsafe fn arguments<'a>(argc: c_int, argv: *const *const c_char) -> Option<Vec<&'a str>> {
    let n = usize::try_from(argc).ok()?;
    if n == 0 {
        return Some(Vec::new());
    }
    if argv.is_null() {
        return None;
    }
    // SAFETY: libpam passes `argc` pointers in `argv`.
    let ptrs = unsafe { std::slice::from_raw_parts(argv, n) };
    ptrs.iter()
        .map(|&p| {
            if p.is_null() {
                return None;
            }
            // SAFETY: each is a NUL-terminated string owned by libpam for the call.
            unsafe { CStr::from_ptr(p) }.to_str().ok()
        })
        .collect()
}

struct Call {
    handle: Handle,
    args: ModuleArgs,
    service: String,
    rhost: Option<String>,
    tty: Option<String>,
    silent: bool,
}

fn config_event(reason: impl std::fmt::Display, service: &str) -> Event {
    Event::new(EventKind::ConfigFailure)
        .service(service)
        .reason(reason)
}

/// Parses arguments and reads PAM items; logs and refuses on any problem.
fn begin(handle: Handle, argv: Option<Vec<&str>>, flags: c_int) -> Result<Call, Setup> {
    let service = handle.service().unwrap_or_default();
    let Some(argv) = argv else {
        log(&config_event(
            "module arguments are not valid UTF-8",
            &service,
        ));
        return Err(Setup::Config);
    };
    let args = parse_module_args(&argv).map_err(|e| {
        log(&config_event(e, &service));
        Setup::Config
    })?;
    Ok(Call {
        rhost: handle.rhost(),
        tty: handle.tty(),
        handle,
        args,
        service,
        silent: flags & PAM_SILENT != 0,
    })
}

impl Call {
    fn host(&self) -> Result<Host, Setup> {
        self.open(self.config()?)
    }

    /// Reads the configuration file and the arguments over it.
    fn config(&self) -> Result<Config, Setup> {
        let config = Config::load(
            self.args.config_path(),
            FileTrust::ROOT,
            &self.args.overrides,
        )
        .map_err(|e| {
            log(&config_event(e, &self.service));
            Setup::Config
        })?;
        if self.args.debug {
            for line in config.describe() {
                log(&Event::new(EventKind::Debug)
                    .service(&self.service)
                    .reason(format!("setting {line}")));
            }
        }
        Ok(config)
    }

    /// Loads the key and checks the store that `config` names.
    fn open(&self, config: Config) -> Result<Host, Setup> {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_owned());
        let fail_delay = config.throttle.fail_delay_ms;
        let host = Host::open(config, FileTrust::ROOT, &hostname).map_err(|e| {
            log(&Event::new(EventKind::KeyFailure)
                .service(&self.service)
                .reason(e));
            Setup::Host
        })?;
        self.handle.fail_delay(fail_delay);
        Ok(host)
    }

    fn request<'r>(&'r self, user: &'r str) -> Request<'r> {
        Request {
            user,
            service: &self.service,
            rhost: self.rhost.as_deref(),
            tty: self.tty.as_deref(),
            silent: self.silent,
        }
    }
}

fn authenticate(call: &Call) -> c_int {
    // A device verified by an earlier authenticate in this handle belongs to
    // that attempt: only what this one verifies may reach the account phase.
    if let Some(cell) = call
        .handle
        .get_data::<Mutex<Option<PendingDevice>>>(PENDING)
    {
        if let Ok(mut kept) = cell.lock() {
            kept.take();
        }
    }
    let config = match call.config() {
        Ok(c) => c,
        Err(e) => return pam_code(Err(&e)),
    };
    let Some(user) = call.handle.user() else {
        log(&Event::new(EventKind::AuthDenied)
            .service(&call.service)
            .reason("no user name from the application"));
        return pam_code(Err(&Setup::NoUser));
    };
    // Before the key and the store are opened: a console break-glass login
    // is the way back in when they are what is broken.
    if let Some(Report { outcome, events }) = flow::break_glass(&config, &call.request(&user)) {
        log_all(&events);
        return pam_code(Ok(&outcome));
    }
    let host = match call.open(config) {
        Ok(h) => h,
        Err(e) => return pam_code(Err(&e)),
    };
    let mut prompter = call.handle.conversation().map(PamPrompter::new);
    let Report { outcome, events } = flow::authenticate(
        &host,
        call.request(&user),
        prompter.as_mut(),
        &Nss,
        &SystemClock,
    );
    log_all(&events);
    let rc = pam_code(Ok(&outcome));
    if let Outcome::EnrollmentVerified(pending) = outcome {
        // Kept until pam_sm_acct_mgmt; dropped (and wiped) with the handle if
        // the rest of the auth stack fails and the account phase never runs.
        if !call
            .handle
            .set_data(PENDING, Box::new(Mutex::new(Some(*pending))))
        {
            log(&Event::new(EventKind::InternalError)
                .user(&user)
                .service(&call.service)
                .reason("cannot keep the verified device for the account phase"));
            return code::SYSTEM_ERR;
        }
    }
    rc
}

fn account(call: &Call) -> c_int {
    let pending = call
        .handle
        .get_data::<Mutex<Option<PendingDevice>>>(PENDING)
        .and_then(|cell| cell.lock().ok().and_then(|mut p| p.take()));
    let Some(pending) = pending else {
        // Nothing was enrolled in this transaction: nothing to do.
        return code::SUCCESS;
    };
    let host = match call.host() {
        Ok(h) => h,
        Err(e) => return pam_code(Err(&e)),
    };
    let user = call.handle.user().unwrap_or_default();
    let mut prompter = call.handle.conversation().map(PamPrompter::new);
    let Report { outcome, events } = flow::complete_enrollment(
        &host,
        call.request(&user),
        Some(pending),
        prompter.as_mut(),
        &SystemClock,
    );
    log_all(&events);
    pam_code(Ok(&outcome))
}

fn entry(
    pamh: *mut PamHandleT,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
    run: fn(&Call) -> c_int,
) -> c_int {
    guarded(|| {
        let Some(handle) = Handle::new(pamh) else {
            return pam_code(Err(&Setup::NoHandle));
        };
        // SAFETY: libpam passes argc strings in argv for the duration of the call.
        let argv = unsafe { arguments(argc, argv) };
        match begin(handle, argv, flags) {
            Ok(call) => run(&call),
            Err(e) => pam_code(Err(&e)),
        }
    })
}

/// Verifies the second factor (or enrolls one under `configure`).
///
/// # Safety
/// Called by libpam with a live handle and `argc` strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandleT,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    entry(pamh, flags, argc, argv, authenticate)
}

/// Commits a device enrolled during authentication, once the whole auth
/// stack has succeeded; otherwise has nothing to do.
///
/// # Safety
/// Called by libpam with a live handle and `argc` strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    pamh: *mut PamHandleT,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    entry(pamh, flags, argc, argv, account)
}

/// Credentials are not pam_mfa's business: success, no side effects.
///
/// # Safety
/// Called by libpam; touches nothing.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut PamHandleT,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::SUCCESS
}

/// pam_mfa has no password to change; it ignores the call.
///
/// # Safety
/// Called by libpam; touches nothing.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_chauthtok(
    _pamh: *mut PamHandleT,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::IGNORE
}

/// pam_mfa has no session work; it ignores the call.
///
/// # Safety
/// Called by libpam; touches nothing.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_open_session(
    _pamh: *mut PamHandleT,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::IGNORE
}

/// pam_mfa has no session work; it ignores the call.
///
/// # Safety
/// Called by libpam; touches nothing.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_close_session(
    _pamh: *mut PamHandleT,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    code::IGNORE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_returned_only_for_verified_outcomes() {
        let all = [
            Outcome::Success,
            Outcome::Ignore,
            Outcome::WrongCode,
            Outcome::Denied,
            Outcome::Throttled,
            Outcome::Locked,
            Outcome::NoConversation,
            Outcome::ConversationFailed,
            Outcome::StoreUnavailable,
            Outcome::DirectoryUnavailable,
            Outcome::Internal,
        ];
        let successes: Vec<_> = all
            .iter()
            .filter(|o| pam_code(Ok(o)) == code::SUCCESS)
            .collect();
        assert_eq!(successes.len(), 1);
        assert_eq!(pam_code(Ok(&Outcome::Ignore)), code::IGNORE);
        assert_eq!(pam_code(Ok(&Outcome::Locked)), code::MAXTRIES);
        assert_eq!(
            pam_code(Ok(&Outcome::StoreUnavailable)),
            code::AUTHINFO_UNAVAIL
        );
        for setup in [Setup::Config, Setup::Host, Setup::NoUser, Setup::NoHandle] {
            let rc = pam_code(Err(&setup));
            assert!(rc != code::SUCCESS && rc != code::IGNORE);
        }
    }

    #[test]
    #[allow(clippy::panic)]
    fn a_panic_becomes_a_system_error() {
        assert_eq!(guarded(|| panic!("boom")), code::SYSTEM_ERR);
    }
}

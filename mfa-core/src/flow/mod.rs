//! The login flow: what `pam_sm_authenticate` and `pam_sm_acct_mgmt` decide.
//!
//! The PAM module hands this module a [`Prompter`] (its conversation), a
//! [`Directory`] (its name-service lookups), a [`Clock`] and the loaded
//! [`Host`]; it gets back a [`Report`]: one typed [`Outcome`] and the audit
//! events to log. Only the module turns outcomes into PAM return codes.
//!
//! The user's lock is never held while waiting for the user: the flow reads
//! the record to decide what to ask, asks, then locks again, re-reads,
//! verifies and commits before revealing anything (SECURITY item 10).

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::audit::{Event, EventKind, Method};
use crate::clock::Clock;
use crate::config::{Config, NotConfigured};
use crate::enrollment::{self, NewDevice};
use crate::fsutil::FileTrust;
use crate::input::{self, Input};
use crate::keys::{KeyError, MasterKey};
use crate::pending;
use crate::pending::{Applied, Refusal};
use crate::policy::{self, Effective};
use crate::qr;
use crate::record::{Device, FactorChange, LastSuccess, Notable, Notice, Record};
use crate::recovery::RecoveryHashes;
use crate::spool;
use crate::store::{Store, StoreError, UserState};
use crate::throttle::{self, Gate};
use crate::totp::{self, Verdict};

/// The prompt for a code.
pub const CODE_PROMPT: &str = "Verification code: ";
/// What a user without a device hears under the deny policy.
const DENY_MESSAGE: &str =
    "A second factor is required, but none is set up for this account. Ask an administrator.";
/// The prompt for the first code of a device being enrolled at login.
pub const NEW_DEVICE_PROMPT: &str = "Verification code from the new app: ";
/// The largest message Linux-PAM conversations carry in one piece.
pub const MAX_MESSAGE: usize = 512;
/// The name of a device enrolled inside the login conversation.
pub const LOGIN_DEVICE_NAME: &str = "default";

/// The conversation failed, was refused, or returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationFailed;

/// How the flow talks to the person logging in.
pub trait Prompter {
    /// Asks with echo off; the answer is wiped when dropped.
    ///
    /// # Errors
    /// [`ConversationFailed`] if there is no answer.
    fn prompt(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed>;
    /// Shows informational text.
    ///
    /// # Errors
    /// [`ConversationFailed`] if it could not be shown.
    fn info(&mut self, text: &str) -> Result<(), ConversationFailed>;
    /// Shows an error message.
    ///
    /// # Errors
    /// [`ConversationFailed`] if it could not be shown.
    fn error(&mut self, text: &str) -> Result<(), ConversationFailed>;
}

/// A user as the name service knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// The uid records are keyed by.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
}

/// Name-service lookups, asked only when a decision needs them.
pub trait Directory {
    /// The account named `user`, or `None` if there is none.
    ///
    /// # Errors
    /// A description of the lookup failure (the flow fails closed).
    fn account(&self, user: &str) -> Result<Option<Account>, String>;
    /// The names of every group `user` belongs to.
    ///
    /// # Errors
    /// A description of the lookup failure.
    fn groups(&self, user: &str, account: Account) -> Result<Vec<String>, String>;
}

/// What was asked for: the user and service as PAM reported them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `PAM_USER` (untrusted).
    pub user: &'a str,
    /// `PAM_SERVICE`.
    pub service: &'a str,
    /// `PAM_RHOST`: logged, and what a remembered success is bound to.
    pub rhost: Option<&'a str>,
    /// `PAM_TTY`: what a remembered success is bound to, and how a console
    /// login is recognized for `break_glass`.
    pub tty: Option<&'a str>,
    /// `PAM_SILENT`: no informational messages.
    pub silent: bool,
}

/// Configuration, key and store, loaded once per PAM call.
pub struct Host {
    /// The effective configuration.
    pub config: Config,
    /// The master key.
    pub keys: MasterKey,
    /// The record store.
    pub store: Store,
    /// The host name, the default issuer in authenticator apps.
    pub hostname: String,
    /// Who must own the files the flow trusts.
    pub trust: FileTrust,
}

/// Why the host could not be set up; every case fails closed.
#[derive(Debug)]
pub enum HostError {
    /// The master key is missing, unsafe or malformed.
    Key(KeyError),
    /// The state directory is missing or unsafe.
    Store(StoreError),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Key(e) => write!(f, "{e}"),
            HostError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HostError {}

impl Host {
    /// Loads the key and checks the state directory named in `config`.
    ///
    /// # Errors
    /// [`HostError`] naming the file at fault.
    pub fn open(config: Config, trust: FileTrust, hostname: &str) -> Result<Self, HostError> {
        let keys = MasterKey::load(&config.paths.key_file, trust).map_err(HostError::Key)?;
        let store = Store::new(&config.paths.state_dir, trust);
        store.check_dir().map_err(HostError::Store)?;
        Ok(Host {
            config,
            keys,
            store,
            hostname: hostname.to_owned(),
            trust,
        })
    }

    /// The path of the key file, for messages.
    pub fn key_file(&self) -> &Path {
        &self.config.paths.key_file
    }
}

/// A device verified during authentication, to be committed in the account
/// phase (only reached once the whole auth stack succeeded).
pub struct PendingDevice {
    uid: u32,
    user: String,
    device: Device,
    /// Recovery codes the user already saw (self-service); `None` makes new ones.
    recovery: Option<RecoveryHashes>,
    /// The spool file to delete once committed (self-service).
    spool: Option<spool::Found>,
}

impl fmt::Debug for PendingDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingDevice")
            .field("uid", &self.uid)
            .field("user", &self.user)
            .field("device", &self.device)
            .field("spool", &self.spool.as_ref().map(|f| &f.path))
            .finish_non_exhaustive()
    }
}

/// What the flow decided.
#[derive(Debug)]
pub enum Outcome {
    /// Verified and committed.
    Success,
    /// The module has nothing to say: not enrolled under `skip`, or exempt.
    Ignore,
    /// A new device was verified; keep it for the account phase.
    EnrollmentVerified(Box<PendingDevice>),
    /// The code was wrong, replayed or malformed (the failure is recorded).
    WrongCode,
    /// Refused by policy: not enrolled under `deny`, or an unknown user.
    Denied,
    /// Too many failures: back-off in force.
    Throttled,
    /// The hard cap was reached; an administrator must unlock.
    Locked,
    /// There was no conversation to ask with (`sudo -n`); nothing counted.
    NoConversation,
    /// The conversation failed or returned nothing.
    ConversationFailed,
    /// The record or store could not be used.
    StoreUnavailable,
    /// The name service failed.
    DirectoryUnavailable,
    /// Something that should not happen did.
    Internal,
}

/// An outcome and the events to log for it.
#[derive(Debug)]
pub struct Report {
    /// The decision.
    pub outcome: Outcome,
    /// One or more audit events, in order.
    pub events: Vec<Event>,
}

/// What one answer amounts to.
struct Verification {
    verdict: Verdict,
    method: Method,
    /// The device that matched (or whose used code was replayed).
    device: Option<usize>,
    /// Recovery codes left, if one was consumed (already removed from the
    /// record).
    recovery_left: Option<usize>,
}

impl Verification {
    fn rejected(method: Method) -> Self {
        Verification {
            verdict: Verdict::Rejected,
            method,
            device: None,
            recovery_left: None,
        }
    }
}

/// Checks an answer against the record, evaluating at most one TOTP window
/// per device and one recovery-code hash. Each device is checked with its
/// own digits, algorithm and period, and the recovery set with its own
/// format, so a configuration changed after enrollment locks nobody out.
fn evaluate(
    record: &mut Record,
    answer: &[u8],
    window: u8,
    now: u64,
) -> Result<Verification, crate::recovery::RecoveryError> {
    let digits: Vec<u8> = record.devices.iter().map(|d| d.params.digits).collect();
    let format = record.recovery.as_ref().map(RecoveryHashes::format);
    let (code, candidate) = match input::classify(answer, &digits, format) {
        Input::Totp(code) => (Some(code), None),
        Input::Recovery(candidate) => (None, Some(candidate)),
        Input::Either(code, candidate) => (Some(code), Some(candidate)),
        // Malformed input is a guess like any other; the reason is not logged
        // because it could hint at what was typed.
        Input::Invalid(_) => return Ok(Verification::rejected(Method::Totp)),
    };
    let mut totp_result = Verification::rejected(Method::Totp);
    if let Some(code) = code {
        for (i, d) in record.devices.iter().enumerate() {
            if usize::from(d.params.digits) != code.as_bytes().len() {
                continue;
            }
            let v = totp::verify(&d.secret, d.params, window, now, d.last_used_step, &code);
            match v {
                Verdict::Accepted { .. } => {
                    return Ok(Verification {
                        verdict: v,
                        method: Method::Totp,
                        device: Some(i),
                        recovery_left: None,
                    })
                }
                Verdict::Replayed { .. } if totp_result.device.is_none() => {
                    totp_result.verdict = v;
                    totp_result.device = Some(i);
                }
                _ => {}
            }
        }
    }
    let Some(candidate) = candidate else {
        return Ok(totp_result);
    };
    let hit = match &record.recovery {
        Some(r) => r.find(&candidate)?,
        None => None,
    };
    if let (Some(index), Some(r)) = (hit, record.recovery.as_mut()) {
        if r.remove(index) {
            return Ok(Verification {
                verdict: Verdict::Accepted { step: 0 },
                method: Method::Recovery,
                device: None,
                recovery_left: Some(r.remaining()),
            });
        }
    }
    // An answer that could be either and matched neither: say it was a TOTP
    // code (replayed, if it was) unless only a recovery code fit.
    Ok(
        if totp_result.device.is_some() || code_was_tried(&digits, answer) {
            totp_result
        } else {
            Verification::rejected(Method::Recovery)
        },
    )
}

fn code_was_tried(digits: &[u8], answer: &[u8]) -> bool {
    answer.iter().all(u8::is_ascii_digit) && digits.iter().any(|&d| usize::from(d) == answer.len())
}

struct Flow<'a, P: Prompter, D: Directory, C: Clock> {
    host: &'a Host,
    req: Request<'a>,
    prompter: Option<&'a mut P>,
    dir: &'a D,
    clock: &'a C,
    events: Vec<Event>,
    pending: Option<spool::Found>,
    /// Why a self-service request was refused before the lock (this host's
    /// settings): the user is told at their next login that may print.
    refused_early: Option<String>,
}

/// The longest user name looked up; anything else is treated as unknown.
const MAX_USER: usize = 256;

fn plausible_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER && !user.chars().any(char::is_control)
}

impl<P: Prompter, D: Directory, C: Clock> Flow<'_, P, D, C> {
    fn event(&self, kind: EventKind) -> Event {
        let mut e = Event::new(kind)
            .user(self.req.user)
            .service(self.req.service);
        if let Some(r) = self.req.rhost {
            e = e.rhost(r);
        }
        e
    }

    fn finish(mut self, outcome: Outcome, event: Event) -> Report {
        self.events.push(event);
        Report {
            outcome,
            events: self.events,
        }
    }

    fn tell(&mut self, text: &str) {
        if self.req.silent {
            return;
        }
        if let Some(p) = self.prompter.as_mut() {
            // Informational text is best effort; a failure here changes nothing.
            let _ = p.info(text);
        }
    }

    fn warn(&mut self, text: &str) {
        if self.req.silent {
            return;
        }
        if let Some(p) = self.prompter.as_mut() {
            let _ = p.error(text);
        }
    }

    fn ask(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, Outcome> {
        match self.prompter.as_mut() {
            None => Err(Outcome::NoConversation),
            Some(p) => p.prompt(prompt).map_err(|_| Outcome::ConversationFailed),
        }
    }

    /// The outcome and event if throttling refuses this attempt unevaluated.
    fn closed_gate(&self, uid: u32, record: &Record, now: u64) -> Option<(Outcome, Event)> {
        match throttle::gate(record, &self.host.config.throttle, now) {
            Gate::Open => None,
            Gate::Locked => Some((
                Outcome::Locked,
                self.event(EventKind::AuthLocked)
                    .uid(uid)
                    .reason("failure cap reached"),
            )),
            Gate::BackOff { .. } => Some((
                Outcome::Throttled,
                self.event(EventKind::AuthThrottled)
                    .uid(uid)
                    .reason("back-off in force"),
            )),
        }
    }

    fn store_failure(self, uid: u32, err: &StoreError) -> Report {
        let e = self.event(EventKind::StoreFailure).uid(uid).reason(err);
        self.finish(Outcome::StoreUnavailable, e)
    }

    fn open(&self, uid: u32) -> Result<UserState<'_>, StoreError> {
        self.host.store.open_user(uid, &self.host.keys)
    }

    /// The event for a prompt that got no answer. Without a conversation at
    /// all (`sudo -n`) nothing was asked and nothing is counted; paths that
    /// need no prompt (exempt, skip, remembered) never get here.
    fn unanswered(&self, uid: u32, outcome: &Outcome) -> Event {
        if matches!(outcome, Outcome::NoConversation) {
            self.event(EventKind::AuthNoConversation).uid(uid)
        } else {
            self.event(EventKind::AuthFailure)
                .uid(uid)
                .reason("no answer from the conversation")
        }
    }

    fn authenticate(mut self) -> Report {
        if let Some(report) = break_glass(&self.host.config, &self.req) {
            return report;
        }
        let account = if plausible_user(self.req.user) {
            match self.dir.account(self.req.user) {
                Ok(a) => a,
                Err(why) => {
                    let e = self
                        .event(EventKind::InternalError)
                        .reason(format!("user lookup failed: {why}"));
                    return self.finish(Outcome::DirectoryUnavailable, e);
                }
            }
        } else {
            None
        };
        let Some(account) = account else {
            return self.unknown_user();
        };
        let groups = match self.groups(account) {
            Ok(g) => g,
            Err(why) => {
                let e = self
                    .event(EventKind::InternalError)
                    .uid(account.uid)
                    .reason(format!("group lookup failed: {why}"));
                return self.finish(Outcome::DirectoryUnavailable, e);
            }
        };
        let policy = policy::effective(&self.host.config, self.req.service, &groups);
        if policy.exempt {
            let e = self
                .event(EventKind::AuthSkipped)
                .uid(account.uid)
                .reason("member of an exempt group");
            return self.finish(Outcome::Ignore, e);
        }
        let state = match self.open(account.uid) {
            Ok(s) => s,
            Err(err) => return self.store_failure(account.uid, &err),
        };
        let discarded = state.discarded_slot().cloned();
        let record = state.record().cloned();
        drop(state);
        if let Some(fault) = discarded {
            let e = self
                .event(EventKind::RecordSlotDiscarded)
                .uid(account.uid)
                .reason(format!(
                    "one slot unusable ({fault}); using the other. An interrupted commit or damage"
                ));
            self.events.push(e);
        }
        self.pending = self.search_pending(account.uid);
        match record {
            Some(record) => self.enrolled(account, &record, policy),
            None => self.not_enrolled(account, policy),
        }
    }

    /// Looks for the user's self-service enrollment; everything passed over
    /// is logged, and a broken spool only disables the feature.
    fn search_pending(&mut self, uid: u32) -> Option<spool::Found> {
        let host = self.host;
        let cfg = &host.config;
        let search = spool::find(
            &cfg.paths.spool_dir,
            uid,
            &host.keys,
            host.trust,
            u64::from(cfg.enrollment.pending_max_age),
            self.clock.now(),
        );
        match search {
            Ok(search) => {
                for ignored in search.ignored {
                    let e = self
                        .event(EventKind::PendingIgnored)
                        .uid(uid)
                        .reason(format!("{}: {}", ignored.path.display(), ignored.reason));
                    self.events.push(e);
                }
                // Other users' files: one line for all of them, without a uid.
                if let Some(summary) = search.expired.summary() {
                    let e = self.event(EventKind::PendingExpired).reason(summary);
                    self.events.push(e);
                }
                let found = search.found?;
                // Checked before any work under the user's lock (SECURITY 27).
                match pending::check_policy(&found.pending, cfg) {
                    Ok(()) => Some(found),
                    Err(refusal) => {
                        let _ = spool::remove(&found);
                        let e = self
                            .event(EventKind::PendingIgnored)
                            .uid(uid)
                            .reason(format!(
                                "self-service request {} refused and removed: {refusal}",
                                found.path.display()
                            ));
                        self.events.push(e);
                        self.refused_early = Some(refusal.to_string());
                        None
                    }
                }
            }
            Err(err) => {
                let e = self.event(EventKind::PendingIgnored).uid(uid).reason(err);
                self.events.push(e);
                None
            }
        }
    }

    fn groups(&self, account: Account) -> Result<Vec<String>, String> {
        if !policy::needs_groups(&self.host.config) {
            return Ok(Vec::new());
        }
        self.dir.groups(self.req.user, account)
    }

    /// An unknown user sees the same prompt as anyone, then fails.
    fn unknown_user(mut self) -> Report {
        let outcome = match self.ask(CODE_PROMPT) {
            Ok(_) => Outcome::Denied,
            Err(o) => o,
        };
        // Under deny, an unenrolled user hears why; an unknown one hears the
        // same as an unenrolled user in no group would.
        if matches!(outcome, Outcome::Denied)
            && policy::effective(&self.host.config, self.req.service, &[]).not_configured
                == NotConfigured::Deny
        {
            self.warn(DENY_MESSAGE);
        }
        let e = self.event(EventKind::AuthDenied).reason("unknown user");
        self.finish(outcome, e)
    }

    fn enrolled(mut self, account: Account, record: &Record, policy: Effective) -> Report {
        let uid = account.uid;
        let cfg = &self.host.config;
        let now = self.clock.now();
        if let Some((outcome, e)) = self.closed_gate(uid, record, now) {
            let now_gate = throttle::gate(record, &cfg.throttle, now);
            self.warn(&match now_gate {
                Gate::BackOff { until } => format!(
                    "Too many failed attempts: try again in {} seconds.",
                    until - now
                ),
                _ => "Too many failed attempts: this account is locked. Ask an administrator to unlock it.".to_owned(),
            });
            return self.finish(outcome, e);
        }
        let remember = u64::from(policy.remember_seconds);
        if remember > 0 {
            if let Some(last) = &record.last_success {
                // Bound to the place as well as the service: a success over
                // ssh from one host does not open a login from another, nor
                // sudo on one terminal a sudo on another.
                let here = last.same_place(
                    self.req.service,
                    self.req.rhost.unwrap_or(""),
                    self.req.tty.unwrap_or(""),
                );
                if here && now >= last.time && now - last.time <= remember {
                    let e = self
                        .event(EventKind::AuthSkipped)
                        .uid(uid)
                        .method(Method::Remembered)
                        .reason("passed MFA recently on this service, host and terminal");
                    return self.finish(Outcome::Success, e);
                }
            }
        }
        let answer = match self.ask(CODE_PROMPT) {
            Ok(a) => a,
            Err(o) => {
                let e = self.unanswered(uid, &o);
                return self.finish(o, e);
            }
        };
        self.verify_answer(uid, &answer)
    }

    /// Locks, re-reads, verifies and commits; only then reveals the result.
    /// A self-service request found before the prompt is checked and applied
    /// in the same commit as the login (SECURITY 26).
    fn verify_answer(mut self, uid: u32, answer: &[u8]) -> Report {
        let host = self.host;
        let cfg = &host.config;
        let now = self.clock.now();
        let mut state = match host.store.open_user(uid, &host.keys) {
            Ok(s) => s,
            Err(err) => return self.store_failure(uid, &err),
        };
        let Some(mut record) = state.record().cloned() else {
            // Reset by an administrator while the user was typing.
            drop(state);
            let e = self
                .event(EventKind::AuthDenied)
                .uid(uid)
                .reason("record removed during login");
            return self.finish(Outcome::Denied, e);
        };
        // Another session may have failed meanwhile: gate again under the lock.
        if let Some((outcome, e)) = self.closed_gate(uid, &record, now) {
            drop(state);
            return self.finish(outcome, e);
        }
        // Each device's last used step before this login: the floor for the
        // code of an existing device a self-service request carries.
        let before: Vec<Option<u64>> = record.devices.iter().map(|d| d.last_used_step).collect();
        let v = match evaluate(&mut record, answer, cfg.totp.window, now) {
            Ok(v) => v,
            Err(err) => {
                drop(state);
                let e = self.event(EventKind::InternalError).uid(uid).reason(err);
                return self.finish(Outcome::Internal, e);
            }
        };
        let device_name = v.device.map(|i| record.devices[i].name.clone());
        let Verdict::Accepted { step } = v.verdict else {
            let replay = matches!(v.verdict, Verdict::Replayed { .. });
            throttle::record_failure(&mut record, now);
            if let Err(err) = state.commit(&record, &host.keys) {
                drop(state);
                return self.store_failure(uid, &err);
            }
            drop(state);
            let kind = if replay {
                EventKind::AuthReplay
            } else {
                EventKind::AuthFailure
            };
            let mut e = self
                .event(kind)
                .uid(uid)
                .method(v.method)
                .reason(if replay {
                    "code already used"
                } else {
                    "wrong code"
                });
            if let Some(d) = &device_name {
                e = e.device(d);
            }
            return self.finish(Outcome::WrongCode, e);
        };
        if let (Method::Totp, Some(i)) = (v.method, v.device) {
            record.devices[i].last_used_step = Some(step);
        }
        throttle::clear(&mut record);
        record.last_success = Some(LastSuccess::new(
            now,
            self.req.service,
            self.req.rhost.unwrap_or(""),
            self.req.tty.unwrap_or(""),
        ));
        let request = self.check_request(&mut record, &before, now);
        // Changes the user has not heard of are told now if this login may
        // print; they are cleared in the same commit.
        let notices = if self.may_print() {
            std::mem::take(&mut record.notices)
        } else {
            Vec::new()
        };
        if let Err(err) = state.commit(&record, &host.keys) {
            drop(state);
            return self.store_failure(uid, &err);
        }
        drop(state);
        self.succeeded(uid, &v, device_name.as_deref());
        if let Some((found, result)) = request {
            self.activated(uid, &found, result);
        }
        for n in &notices {
            self.tell(&announcement(n));
        }
        Report {
            outcome: Outcome::Success,
            events: self.events,
        }
    }

    /// Checks the self-service request found before the prompt against the
    /// record (as this login's own factor left it) and applies it there, or
    /// keeps word of its refusal; one commit then holds both.
    fn check_request(
        &mut self,
        record: &mut Record,
        before: &[Option<u64>],
        now: u64,
    ) -> Option<(spool::Found, Result<Applied, Refusal>)> {
        // A request refused before the lock (this host's settings) is told too.
        if let Some(why) = self.refused_early.take() {
            record.announce_refusal(now, &why);
        }
        let found = self.pending.take()?;
        let window = self.host.config.totp.window;
        let result = pending::activate(record, before, &found.pending, window, now);
        if let Err(refusal) = &result {
            if refusal.is_guess() {
                // A wrong code in a request is a guess like a wrong code at the prompt.
                throttle::record_failure(record, now);
            }
            record.announce_refusal(now, &refusal.to_string());
        }
        Some((found, result))
    }

    /// Logs a committed success, and tells the user how many recovery codes
    /// are left if one was used.
    fn succeeded(&mut self, uid: u32, v: &Verification, device_name: Option<&str>) {
        let mut e = self.event(EventKind::AuthSuccess).uid(uid).method(v.method);
        if let Some(d) = device_name {
            e = e.device(d);
        }
        if let Some(left) = v.recovery_left {
            e = e.remaining(left);
            self.events.push(
                self.event(EventKind::RecoveryCodeUsed)
                    .uid(uid)
                    .remaining(left),
            );
            self.tell(&format!(
                "Recovery code accepted. {left} recovery code{} left.{}",
                if left == 1 { "" } else { "s" },
                if left <= 2 {
                    " Ask for new ones soon (mfa-enroll)."
                } else {
                    ""
                }
            ));
        }
        self.events.push(e);
    }

    /// True if this login may show text (not `PAM_SILENT`, and there is a
    /// conversation).
    fn may_print(&self) -> bool {
        !self.req.silent && self.prompter.is_some()
    }

    /// After the commit: the spool file goes whatever happened (applied, or
    /// refused and so never to be tried again), and the log says what.
    fn activated(&mut self, uid: u32, found: &spool::Found, result: Result<Applied, Refusal>) {
        let _ = spool::remove(found);
        match result {
            Ok(applied) => {
                let (kind, what) = match &applied.change {
                    FactorChange::DeviceAdded(name) => (
                        EventKind::DeviceEnrolled,
                        format!("device \"{name}\" added"),
                    ),
                    FactorChange::RecoveryCodesReplaced => (
                        EventKind::RecoveryCodesRegenerated,
                        "recovery codes replaced".to_owned(),
                    ),
                };
                let proof = if applied.used_recovery_code {
                    "a recovery code (now used up)"
                } else {
                    "a code of an existing device"
                };
                let mut e = self
                    .event(kind)
                    .uid(uid)
                    .method(Method::Enrollment)
                    .reason(format!("self-service request: {what}; proven with {proof}"));
                if let FactorChange::DeviceAdded(name) = &applied.change {
                    e = e.device(name);
                }
                self.events.push(e);
            }
            Err(refusal) => {
                let kind = if refusal.is_guess() {
                    EventKind::AuthFailure
                } else {
                    EventKind::PendingIgnored
                };
                let e = self
                    .event(kind)
                    .uid(uid)
                    .method(Method::Enrollment)
                    .reason(format!(
                        "self-service request {} refused and removed: {refusal}",
                        found.path.display()
                    ));
                // The user hears of it from the notice kept in the record, at
                // this login if it may print, else at the next that may.
                self.events.push(e);
            }
        }
    }

    fn not_enrolled(mut self, account: Account, effective: Effective) -> Report {
        let uid = account.uid;
        let policy = effective.not_configured;
        if let Some(found) = self.pending.take() {
            match found.pending.request {
                pending::Request::Device { .. } => {
                    return self.activate_first_device(uid, policy, found)
                }
                pending::Request::RecoveryCodes { .. } => {
                    let _ = spool::remove(&found);
                    let e = self
                        .event(EventKind::PendingIgnored)
                        .uid(uid)
                        .reason("new recovery codes for a user with no device");
                    self.events.push(e);
                }
            }
        }
        match policy {
            NotConfigured::Skip => {
                let e = self
                    .event(EventKind::AuthSkipped)
                    .uid(uid)
                    .reason("not enrolled; policy skip");
                self.finish(Outcome::Ignore, e)
            }
            NotConfigured::Deny => {
                // Asked like everyone else, so that the prompt does not tell
                // an unenrolled account from an unknown one (SECURITY 18).
                if let Err(o) = self.ask(CODE_PROMPT) {
                    let e = self.unanswered(uid, &o);
                    return self.finish(o, e);
                }
                self.warn(DENY_MESSAGE);
                let e = self
                    .event(EventKind::AuthDenied)
                    .uid(uid)
                    .reason("not enrolled; policy deny");
                self.finish(Outcome::Denied, e)
            }
            NotConfigured::Configure => self.enroll_at_login(uid),
        }
    }

    /// Asks for a code from a new device and checks it; the device's own
    /// last step (set when a user verified it themselves) is the floor.
    fn verify_new_device(&mut self, device: &Device, prompt: &str) -> Result<Option<u64>, Outcome> {
        let answer = self.ask(prompt)?;
        let cfg = &self.host.config;
        let verdict =
            input::parse_totp(&answer, device.params.digits).map_or(Verdict::Rejected, |code| {
                totp::verify(
                    &device.secret,
                    device.params,
                    cfg.totp.window,
                    self.clock.now(),
                    device.last_used_step,
                    &code,
                )
            });
        Ok(match verdict {
            Verdict::Accepted { step } => Some(step),
            _ => None,
        })
    }

    /// A user without a device who enrolled themselves: under skip and
    /// configure a code from the new device activates it (committed in the
    /// account phase); under deny it waits for `mfa-enroll approve`.
    fn activate_first_device(
        mut self,
        uid: u32,
        policy: NotConfigured,
        found: spool::Found,
    ) -> Report {
        let pending::Request::Device {
            mut device,
            recovery,
            ..
        } = found.pending.request.clone()
        else {
            return self.finish(Outcome::Internal, Event::new(EventKind::InternalError));
        };
        if policy == NotConfigured::Deny {
            self.warn("Your new device is waiting for an administrator to approve it (mfa-enroll approve).");
            let e = self
                .event(EventKind::AuthDenied)
                .uid(uid)
                .device(&device.name)
                .reason("self-service enrollment awaits approval; policy deny");
            return self.finish(Outcome::Denied, e);
        }
        // The code the new device showed when the request was made is
        // checked again here; a fresh one must follow at the prompt.
        match pending::check_new_device_code(&found.pending, self.host.config.totp.window) {
            Ok(step) => device.last_used_step = step,
            Err(refusal) => {
                let _ = spool::remove(&found);
                self.warn(&format!(
                    "Your self-service enrollment was refused: {refusal}."
                ));
                let e = self
                    .event(EventKind::AuthFailure)
                    .uid(uid)
                    .method(Method::Enrollment)
                    .device(&device.name)
                    .reason(format!(
                        "self-service request {} refused and removed: {refusal}",
                        found.path.display()
                    ));
                return self.finish(Outcome::WrongCode, e);
            }
        }
        let step = match self.verify_new_device(&device, &self_service_prompt(&device)) {
            Ok(Some(step)) => step,
            Ok(None) => {
                self.warn("That code does not match your new device. It stays pending; try again.");
                let e = self
                    .event(EventKind::AuthFailure)
                    .uid(uid)
                    .method(Method::Enrollment)
                    .device(&device.name)
                    .reason("wrong code for the pending self-service device");
                return self.finish(Outcome::WrongCode, e);
            }
            Err(outcome) => {
                let e = self.unanswered(uid, &outcome).method(Method::Enrollment);
                return self.finish(outcome, e);
            }
        };
        self.device_verified(uid, device, step, Some(recovery), Some(found))
    }

    /// A new device answered with the code of `step`: keep it for the account
    /// phase, which commits it once the whole auth stack has succeeded.
    fn device_verified(
        self,
        uid: u32,
        mut device: Device,
        step: u64,
        recovery: Option<RecoveryHashes>,
        spool: Option<spool::Found>,
    ) -> Report {
        device.last_used_step = Some(step);
        let e = self
            .event(EventKind::AuthSuccess)
            .uid(uid)
            .method(Method::Enrollment)
            .device(&device.name)
            .reason("new device verified; saved once the login completes");
        let pending = PendingDevice {
            uid,
            user: self.req.user.to_owned(),
            device,
            recovery,
            spool,
        };
        self.finish(Outcome::EnrollmentVerified(Box::new(pending)), e)
    }

    fn enroll_at_login(mut self, uid: u32) -> Report {
        let host = self.host;
        let cfg = &host.config;
        let now = self.clock.now();
        let issuer = enrollment::issuer(cfg, &host.hostname);
        let account = format!("{}@{}", self.req.user, host.hostname);
        let new = match enrollment::new_device(cfg, LOGIN_DEVICE_NAME, &issuer, &account, now) {
            Ok(n) => n,
            Err(err) => {
                let e = self.event(EventKind::InternalError).uid(uid).reason(err);
                return self.finish(Outcome::Internal, e);
            }
        };
        if let Err(outcome) = self.show_new_device(&new) {
            let e = self
                .event(EventKind::AuthFailure)
                .uid(uid)
                .method(Method::Enrollment)
                .reason("conversation failed during enrollment");
            return self.finish(outcome, e);
        }
        let step = match self.verify_new_device(&new.device, NEW_DEVICE_PROMPT) {
            Ok(Some(step)) => step,
            Ok(None) => {
                self.warn("That code does not match the new device. Nothing was saved; log in again to start over.");
                let e = self
                    .event(EventKind::AuthFailure)
                    .uid(uid)
                    .method(Method::Enrollment)
                    .reason("wrong code for the new device");
                return self.finish(Outcome::WrongCode, e);
            }
            Err(o) => {
                let e = self.unanswered(uid, &o).method(Method::Enrollment);
                return self.finish(o, e);
            }
        };
        self.device_verified(uid, new.device, step, None, None)
    }

    fn show_new_device(&mut self, new: &NewDevice) -> Result<(), Outcome> {
        let cfg = &self.host.config;
        let Some(p) = self.prompter.as_mut() else {
            return Err(Outcome::NoConversation);
        };
        let mut say = |text: &str| p.info(text).map_err(|_| Outcome::ConversationFailed);
        say("This account needs a second factor. Scan the QR code below with an authenticator app (or type the secret), then enter the code it shows.")?;
        // A QR code that cannot be drawn is no reason to stop: the secret
        // follows. The drawing encodes the secret: every copy is wiped.
        let drawn = Zeroizing::new(qr::render(&new.uri, cfg.enrollment.qr).unwrap_or_default());
        for chunk in Zeroizing::new(qr::chunk_lines(&drawn, MAX_MESSAGE)).iter() {
            say(chunk)?;
        }
        say(&labelled("Secret: ", &new.secret_grouped))?;
        say(&labelled("URI: ", &new.uri))?;
        Ok(())
    }
}

/// `label` followed by a secret, in a buffer sized once and wiped on drop.
fn labelled(label: &str, secret: &str) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(label.len() + secret.len()));
    text.push_str(label);
    text.push_str(secret);
    text
}

/// What the user is told about a change of their factors.
fn announcement(n: &Notice) -> String {
    let what = match &n.what {
        Notable::Change(FactorChange::DeviceAdded(name)) => format!(
            "the device \"{}\" was added to your second factor",
            crate::text::escape(name)
        ),
        Notable::Change(FactorChange::RecoveryCodesReplaced) => {
            "your recovery codes were replaced by a new set; the old ones no longer work".to_owned()
        }
        Notable::RefusedRequest(why) => format!(
            "a request to change your second factor was refused: {}",
            crate::text::escape(why)
        ),
    };
    format!(
        "On {}, {what}. If that was not you, tell an administrator now.",
        crate::clock::utc(n.time)
    )
}

fn self_service_prompt(device: &Device) -> String {
    format!(
        "Verification code from your new device \"{}\": ",
        crate::text::escape(&device.name)
    )
}

/// A console login on a service whose table sets `break_glass` steps aside
/// without a code ([`Outcome::Ignore`]), and says so at alert level. Decided
/// before anything that could fail (the user, the groups, the key, the
/// store): it is the way back in when those are broken, so the PAM shell
/// asks it before opening the [`Host`] too. `None`: the login goes on.
pub fn break_glass(config: &Config, req: &Request<'_>) -> Option<Report> {
    if !policy::break_glass(config, req.service, req.tty, req.rhost) {
        return None;
    }
    let event = Event::new(EventKind::BreakGlass)
        .user(req.user)
        .service(req.service)
        .reason(format!(
            "console login on {} without a code: service.{}.break_glass = true",
            req.tty.unwrap_or_default(),
            req.service
        ));
    Some(Report {
        outcome: Outcome::Ignore,
        events: vec![event],
    })
}

/// Runs the authentication phase for `req`. `prompter` is `None` when PAM
/// has no conversation function.
pub fn authenticate<P: Prompter, D: Directory, C: Clock>(
    host: &Host,
    req: Request<'_>,
    prompter: Option<&mut P>,
    dir: &D,
    clock: &C,
) -> Report {
    Flow {
        host,
        req,
        prompter,
        dir,
        clock,
        events: Vec::new(),
        pending: None,
        refused_early: None,
    }
    .authenticate()
}

/// The account phase: commits a device verified during authentication,
/// then shows the new recovery codes. Without one it has nothing to do.
pub fn complete_enrollment<P: Prompter, C: Clock>(
    host: &Host,
    req: Request<'_>,
    pending: Option<PendingDevice>,
    prompter: Option<&mut P>,
    clock: &C,
) -> Report {
    let Some(pending) = pending else {
        return Report {
            outcome: Outcome::Success,
            events: Vec::new(),
        };
    };
    let mut base = Event::new(EventKind::DeviceEnrolled)
        .user(req.user)
        .service(req.service)
        .uid(pending.uid)
        .device(&pending.device.name)
        .method(Method::Enrollment);
    if let Some(r) = req.rhost {
        base = base.rhost(r);
    }
    let fail = |outcome: Outcome, kind: EventKind, reason: String| Report {
        outcome,
        events: vec![Event {
            kind,
            ..base.clone()
        }
        .reason(reason)],
    };
    let now = clock.now();
    let mut state = match host.store.open_user(pending.uid, &host.keys) {
        Ok(s) => s,
        Err(err) => {
            return fail(
                Outcome::StoreUnavailable,
                EventKind::StoreFailure,
                err.to_string(),
            )
        }
    };
    if state.record().is_some() {
        return fail(
            Outcome::Denied,
            EventKind::AuthDenied,
            "another enrollment finished first; log in again".into(),
        );
    }
    // Self-service enrollments bring the codes the user was already shown.
    let (codes, hashes) = match pending.recovery {
        Some(hashes) => (Vec::new(), hashes),
        None => match enrollment::new_recovery_codes(&host.config) {
            Ok(c) => c,
            Err(err) => return fail(Outcome::Internal, EventKind::InternalError, err.to_string()),
        },
    };
    let mut record = Record::new(&pending.user, now);
    if let Some(found) = &pending.spool {
        // A self-service first device: remembered so that a copy of the
        // request cannot apply again, and announced at the next login.
        record.mark_applied(found.pending.id);
        record.announce(now, FactorChange::DeviceAdded(pending.device.name.clone()));
    }
    record.devices.push(pending.device);
    record.recovery = Some(hashes);
    record.last_success = Some(LastSuccess::new(
        now,
        req.service,
        req.rhost.unwrap_or(""),
        req.tty.unwrap_or(""),
    ));
    if let Err(err) = state.rewrite(&record, &host.keys) {
        return fail(
            Outcome::StoreUnavailable,
            EventKind::StoreFailure,
            err.to_string(),
        );
    }
    drop(state);
    if let Some(found) = &pending.spool {
        // Already committed: a file that cannot be removed now is offered
        // again at the next login, where it can only replace this device.
        let _ = spool::remove(found);
    }
    if let (Some(p), false) = (prompter, codes.is_empty()) {
        const HEAD: &str = "Your device is set up. These recovery codes each work once if you lose it; store them somewhere safe now, they will not be shown again:";
        // Sized up front: a buffer that grows leaves copies of the codes behind.
        let size = HEAD.len() + codes.iter().map(|c| c.display().len() + 1).sum::<usize>();
        let mut text = Zeroizing::new(String::with_capacity(size));
        text.push_str(HEAD);
        for c in &codes {
            text.push('\n');
            text.push_str(c.display());
        }
        // The record is committed; a lost message is for the user to fix
        // with `mfa-enroll`, not a reason to fail the login.
        let _ = p.info(&text);
    }
    Report {
        outcome: Outcome::Success,
        events: vec![base],
    }
}

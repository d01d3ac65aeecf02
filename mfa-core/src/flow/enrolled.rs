//! The enrolled login path: a user with a device. The gate (back-off,
//! lock), a remembered success, the prompt, then under the user's lock:
//! the answer checked against every device and the recovery codes, a
//! self-service request checked and applied in the same commit, and the
//! notices the user has not heard yet.

use crate::audit::{Event, EventKind, Method};
use crate::clock::Clock;
use crate::input::{self, Input};
use crate::pending::{self, Applied, Refusal};
use crate::policy::Effective;
use crate::record::{FactorChange, LastSuccess, Notable, Notice, Record};
use crate::recovery::RecoveryHashes;
use crate::spool;
use crate::store::{Decision, Snapshot};
use crate::throttle::{self, Gate};
use crate::totp::{self, Verdict};

use super::{Account, Directory, Flow, Outcome, Prompter, Report, CODE_PROMPT};

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

/// Throttling refuses this attempt unevaluated.
struct Closed {
    /// Back-off or lock, for what the user is told.
    gate: Gate,
    outcome: Outcome,
    event: Event,
}

/// What one judgement of the answer came to.
enum Decided {
    /// The record went (an administrator's reset) while the user typed.
    Removed,
    /// Throttling refuses the attempt unevaluated.
    Closed(Closed),
    /// Verification itself failed.
    Internal(String),
    /// A wrong or replayed code, counted in the record.
    Wrong {
        replay: bool,
        method: Method,
        device_name: Option<String>,
    },
    /// A good code: the record uses it up, and carries the request and
    /// notices handled in the same commit.
    Accepted {
        verification: Verification,
        device_name: Option<String>,
        request: Option<Result<Applied, Refusal>>,
        notices: Vec<Notice>,
    },
}

/// A self-service request checked in the login's commit, to be logged and
/// its spool file removed once that commit is done.
struct Activation {
    found: spool::Found,
    result: Result<Applied, Refusal>,
}

impl<P: Prompter, D: Directory, C: Clock> Flow<'_, P, D, C> {
    /// What to report if throttling refuses this attempt unevaluated.
    fn closed_gate(&self, uid: u32, record: &Record, now: u64) -> Option<Closed> {
        let gate = throttle::gate(record, &self.host.config.throttle, now);
        let (outcome, event) = match gate {
            Gate::Open => return None,
            Gate::Locked => (
                Outcome::Locked,
                self.event(EventKind::AuthLocked)
                    .uid(uid)
                    .reason("failure cap reached"),
            ),
            Gate::BackOff { .. } => (
                Outcome::Throttled,
                self.event(EventKind::AuthThrottled)
                    .uid(uid)
                    .reason("back-off in force"),
            ),
        };
        Some(Closed {
            gate,
            outcome,
            event,
        })
    }

    pub(super) fn enrolled(
        mut self,
        account: Account,
        snapshot: Snapshot,
        policy: Effective,
    ) -> Report {
        let uid = account.uid;
        let Some(record) = snapshot.record() else {
            return self.not_enrolled(account, policy);
        };
        let now = self.clock.now();
        if let Some(closed) = self.closed_gate(uid, record, now) {
            self.warn(&match closed.gate {
                Gate::BackOff { until } => format!(
                    "Too many failed attempts: try again in {} seconds.",
                    until - now
                ),
                _ => "Too many failed attempts: this account is locked. Ask an administrator to unlock it.".to_owned(),
            });
            return self.finish(closed.outcome, closed.event);
        }
        let remember = u64::from(policy.remember_seconds);
        if remember > 0 {
            if let Some(last) = &record.last_success {
                // Bound to the place as well as the service: a success over
                // ssh from one host does not open a login from another, nor
                // sudo on one terminal a sudo on another.
                let here = last.same_place(
                    &self.host.hostname,
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
        self.verify_answer(uid, snapshot, &answer)
    }

    /// Verifies the answer against the record read before the prompt and
    /// commits the outcome only over that same record (compare-and-set);
    /// when another login committed meanwhile, here or on another host, the
    /// record is read again and the answer judged again. Only then is the
    /// result revealed. A self-service request found before the prompt is
    /// checked and applied in the same commit as the login (SECURITY 26).
    fn verify_answer(mut self, uid: u32, snapshot: Snapshot, answer: &[u8]) -> Report {
        let host = self.host;
        let now = self.clock.now();
        let may_print = self.may_print();
        let decided = {
            let this = &self;
            host.store.transact(snapshot, &host.keys, |snap| {
                this.decide(uid, snap, answer, may_print, now)
            })
        };
        let decided = match decided {
            Ok(d) => d,
            Err(err) => return self.store_failure(uid, &err),
        };
        match decided {
            Decided::Removed => {
                // Reset by an administrator while the user was typing.
                let e = self
                    .event(EventKind::AuthDenied)
                    .uid(uid)
                    .reason("record removed during login");
                self.finish(Outcome::Denied, e)
            }
            Decided::Closed(closed) => self.finish(closed.outcome, closed.event),
            Decided::Internal(why) => {
                let e = self.event(EventKind::InternalError).uid(uid).reason(why);
                self.finish(Outcome::Internal, e)
            }
            Decided::Wrong {
                replay,
                method,
                device_name,
            } => {
                let kind = if replay {
                    EventKind::AuthReplay
                } else {
                    EventKind::AuthFailure
                };
                let mut e = self.event(kind).uid(uid).method(method).reason(if replay {
                    "code already used"
                } else {
                    "wrong code"
                });
                if let Some(d) = &device_name {
                    e = e.device(d);
                }
                self.finish(Outcome::WrongCode, e)
            }
            Decided::Accepted {
                verification,
                device_name,
                request,
                notices,
            } => {
                self.refused_early = None;
                self.succeeded(uid, &verification, device_name.as_deref());
                if let (Some(result), Some(found)) = (request, self.pending.take()) {
                    self.activated(uid, Activation { found, result });
                }
                for n in &notices {
                    self.tell(&announcement(n));
                }
                Report {
                    outcome: Outcome::Success,
                    events: self.events,
                }
            }
        }
    }

    /// Judges `answer` against one snapshot of the record and says what to
    /// write. Pure apart from the clock reading it is given: it runs again,
    /// on the fresh record, when the commit loses to another login.
    fn decide(
        &self,
        uid: u32,
        snapshot: &Snapshot,
        answer: &[u8],
        may_print: bool,
        now: u64,
    ) -> Decision<Decided> {
        let Some(record) = snapshot.record() else {
            return Decision::Keep(Decided::Removed);
        };
        let mut record = record.clone();
        // Another session may have failed meanwhile: gate on this record.
        if let Some(closed) = self.closed_gate(uid, &record, now) {
            return Decision::Keep(Decided::Closed(closed));
        }
        // Each device's last used step before this login: the floor for the
        // code of an existing device a self-service request carries.
        let before: Vec<Option<u64>> = record.devices.iter().map(|d| d.last_used_step).collect();
        let window = self.host.config.totp.window;
        let v = match evaluate(&mut record, answer, window, now) {
            Ok(v) => v,
            Err(err) => return Decision::Keep(Decided::Internal(err.to_string())),
        };
        let device_name = v.device.map(|i| record.devices[i].name.clone());
        let Verdict::Accepted { step } = v.verdict else {
            // Wrong codes are committed like right ones, so failures add up
            // across sessions and hosts.
            throttle::record_failure(&mut record, now);
            return Decision::Write(
                record,
                Decided::Wrong {
                    replay: matches!(v.verdict, Verdict::Replayed { .. }),
                    method: v.method,
                    device_name,
                },
            );
        };
        if let (Method::Totp, Some(i)) = (v.method, v.device) {
            record.devices[i].last_used_step = Some(step);
        }
        throttle::clear(&mut record);
        record.last_success = Some(
            LastSuccess::new(
                now,
                self.req.service,
                self.req.rhost.unwrap_or(""),
                self.req.tty.unwrap_or(""),
            )
            .on_host(&self.host.hostname),
        );
        let request = self.check_request(&mut record, &before, now);
        // Changes the user has not heard of are told now if this login may
        // print; they are cleared in the same commit.
        let notices = if may_print {
            std::mem::take(&mut record.notices)
        } else {
            Vec::new()
        };
        Decision::Write(
            record,
            Decided::Accepted {
                verification: v,
                device_name,
                request,
                notices,
            },
        )
    }

    /// Checks the self-service request found before the prompt against the
    /// record (as this login's own factor left it) and applies it there, or
    /// keeps word of its refusal; one commit then holds both.
    fn check_request(
        &self,
        record: &mut Record,
        before: &[Option<u64>],
        now: u64,
    ) -> Option<Result<Applied, Refusal>> {
        // A request refused before the lock (this host's settings) is told too.
        if let Some(why) = &self.refused_early {
            record.announce_refusal(now, why);
        }
        let found = self.pending.as_ref()?;
        let window = self.host.config.totp.window;
        let result = pending::activate(record, before, &found.pending, window, now);
        if let Err(refusal) = &result {
            if refusal.is_guess() {
                // A wrong code in a request is a guess like a wrong code at the prompt.
                throttle::record_failure(record, now);
            }
            record.announce_refusal(now, &refusal.to_string());
        }
        Some(result)
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

    /// After the commit: the spool file goes whatever happened (applied, or
    /// refused and so never to be tried again), and the log says what.
    fn activated(&mut self, uid: u32, activation: Activation) {
        let Activation { found, result } = activation;
        let _ = spool::remove(&found);
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

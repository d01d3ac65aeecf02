//! A user without a device: the policy for them (skip, deny or configure),
//! enrollment at login, and the activation of a first device the user
//! enrolled themselves; then the account phase, which commits the device
//! once the whole auth stack has succeeded.

use zeroize::Zeroizing;

use crate::audit::{Event, EventKind, Method};
use crate::clock::Clock;
use crate::config::NotConfigured;
use crate::enrollment::{self, NewDevice};
use crate::input;
use crate::pending;
use crate::policy::Effective;
use crate::qr;
use crate::record::{Device, FactorChange, LastSuccess, Record};
use crate::recovery::{RecoveryCode, RecoveryHashes};
use crate::spool;
use crate::store::Owner;
use crate::totp::{self, Verdict};

use super::{
    Account, Directory, Flow, Host, Outcome, PendingDevice, Prompter, Report, Request, CODE_PROMPT,
    DENY_MESSAGE, LOGIN_DEVICE_NAME, MAX_MESSAGE, NEW_DEVICE_PROMPT,
};

impl<P: Prompter, D: Directory, C: Clock> Flow<'_, P, D, C> {
    pub(super) fn not_enrolled(mut self, account: Account, effective: Effective) -> Report {
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
        // A long issuer can take the URI past one message (Prompter contract).
        let uri = labelled("URI: ", &new.uri);
        for chunk in
            Zeroizing::new(qr::chunk_lines(std::slice::from_ref(&*uri), MAX_MESSAGE)).iter()
        {
            say(chunk)?;
        }
        Ok(())
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
}

/// `label` followed by a secret, in a buffer sized once and wiped on drop.
fn labelled(label: &str, secret: &str) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(label.len() + secret.len()));
    text.push_str(label);
    text.push_str(secret);
    text
}

fn self_service_prompt(device: &Device) -> String {
    format!(
        "Verification code from your new device \"{}\": ",
        crate::text::escape(&device.name)
    )
}

/// The account phase ([`super::complete_enrollment`]): commits the device
/// verified during authentication under the user's lock, removes the
/// self-service request it came from, and shows new recovery codes.
pub(super) fn commit<P: Prompter, C: Clock>(
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
    let mut state = match host
        .store
        .open_user(Owner::new(pending.uid, &pending.user), &host.keys)
    {
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
    record.last_success = Some(
        LastSuccess::new(
            now,
            req.service,
            req.rhost.unwrap_or(""),
            req.tty.unwrap_or(""),
        )
        .on_host(&host.hostname),
    );
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
        // One line per code, in as few messages as fit (32 codes of 32
        // characters take three); each is built in a buffer sized once.
        let lines: Vec<&str> = std::iter::once(HEAD)
            .chain(codes.iter().map(RecoveryCode::display))
            .collect();
        for text in Zeroizing::new(qr::chunk_lines(&lines, MAX_MESSAGE)).iter() {
            // The record is committed; a lost message is for the user to fix
            // with `mfa-enroll`, not a reason to fail the login.
            if p.info(text).is_err() {
                break;
            }
        }
    }
    Report {
        outcome: Outcome::Success,
        events: vec![base],
    }
}

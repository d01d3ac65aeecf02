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
//!
//! One login, by path:
//! - `route`: break-glass, the account, its groups, the effective policy
//!   ([`crate::policy::effective`]), the record and any self-service
//!   request; an unknown user is answered there.
//! - `enrolled`: a user with a device: throttling, remembered successes,
//!   the code or recovery code, a self-service request applied in the same
//!   commit, notices.
//! - `first_device`: a user without one: skip or deny, enrollment at login,
//!   self-service first-device activation, and the account phase that
//!   commits the new device.

mod enrolled;
mod first_device;
mod route;

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::audit::{Event, EventKind};
use crate::clock::Clock;
use crate::config::Config;
use crate::fsutil::FileTrust;
use crate::keys::{KeyError, MasterKey};
use crate::policy;
use crate::record::Device;
use crate::recovery::RecoveryHashes;
use crate::spool;
use crate::store::{Store, StoreError};

/// The prompt for a code.
pub const CODE_PROMPT: &str = "Verification code: ";
/// What a user without a device hears under the deny policy.
const DENY_MESSAGE: &str =
    "A second factor is required, but none is set up for this account. Ask an administrator.";
/// The prompt for the first code of a device being enrolled at login.
pub const NEW_DEVICE_PROMPT: &str = "Verification code from the new app: ";
/// The largest message Linux-PAM conversations carry in one piece; no text
/// the flow hands a [`Prompter`] is longer (see its contract).
pub const MAX_MESSAGE: usize = 512;
/// The name of a device enrolled inside the login conversation.
pub const LOGIN_DEVICE_NAME: &str = "default";

/// The conversation failed, was refused, or returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationFailed;

/// How the flow talks to the person logging in.
///
/// The contract: every text the flow hands over fits one Linux-PAM
/// message, at most [`MAX_MESSAGE`] bytes. Content that can be longer (the
/// QR drawing, a URI with a long issuer, the recovery codes) is cut by the
/// flow, in one place ([`crate::qr::chunk_lines`]), so an implementation
/// shows each call as exactly one message and never cuts. Texts that carry
/// a secret arrive in buffers the flow wipes; an implementation that copies
/// one wipes its copy.
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
        let store = Store::from_config(&config, trust, hostname).map_err(HostError::Store)?;
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

/// One authentication call: what it was given, what it found before the
/// prompt, and the events so far. The paths live in `route`, `enrolled` and
/// `first_device`; what they all use is below.
struct Flow<'a, P: Prompter, D: Directory, C: Clock> {
    host: &'a Host,
    req: Request<'a>,
    prompter: Option<&'a mut P>,
    dir: &'a D,
    clock: &'a C,
    events: Vec<Event>,
    /// The user's self-service request, found before the prompt.
    pending: Option<spool::Found>,
    /// Why a self-service request was refused before the lock (this host's
    /// settings): the user is told at their next login that may print.
    refused_early: Option<String>,
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

    fn store_failure(self, uid: u32, err: &StoreError) -> Report {
        let e = self.event(EventKind::StoreFailure).uid(uid).reason(err);
        self.finish(Outcome::StoreUnavailable, e)
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

    /// True if this login may show text (not `PAM_SILENT`, and there is a
    /// conversation).
    fn may_print(&self) -> bool {
        !self.req.silent && self.prompter.is_some()
    }
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
    first_device::commit(host, req, pending, prompter, clock)
}

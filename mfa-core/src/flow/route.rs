//! The first steps of every login: break-glass, the account, its groups,
//! the effective policy, the record and any self-service request; then the
//! path: [`enrolled`](super::enrolled), [`first_device`](super::first_device),
//! or the answer to an unknown user, here.

use crate::audit::EventKind;
use crate::clock::Clock;
use crate::config::NotConfigured;
use crate::pending;
use crate::policy;
use crate::spool;
use crate::store::Owner;

use super::{
    break_glass, Account, Directory, Flow, Outcome, Prompter, Report, CODE_PROMPT, DENY_MESSAGE,
};

/// The longest user name looked up; anything else is treated as unknown.
const MAX_USER: usize = 256;

fn plausible_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER && !user.chars().any(char::is_control)
}

impl<P: Prompter, D: Directory, C: Clock> Flow<'_, P, D, C> {
    /// Every login starts here: break-glass first (it needs nothing that can
    /// fail), then who the user is and what applies to them, then their path.
    pub(super) fn authenticate(mut self) -> Report {
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
        let owner = Owner::new(account.uid, self.req.user);
        let snapshot = match self.host.store.read(owner, &self.host.keys) {
            Ok(s) => s,
            Err(err) => return self.store_failure(account.uid, &err),
        };
        if let Some(fault) = snapshot.discarded_slot() {
            let e = self
                .event(EventKind::RecordSlotDiscarded)
                .uid(account.uid)
                .reason(format!(
                    "one slot unusable ({fault}); using the other. An interrupted commit or damage"
                ));
            self.events.push(e);
        }
        self.pending = self.search_pending(account.uid);
        // An absent record is "not enrolled"; enrolled() hands it over.
        self.enrolled(account, snapshot, policy)
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
}

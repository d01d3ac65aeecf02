//! Back-off and lockout, from the failure counter in a user's record.
//!
//! One counter per uid, shared by every service and session (SECURITY item
//! 9). The first `backoff_after` consecutive failures cost nothing; each
//! further failure doubles a waiting time (from `backoff_seconds` up to
//! `backoff_max_seconds`) during which attempts are refused without being
//! evaluated; at `lockout_after` failures only an administrator's
//! `mfa-enroll unlock` helps, and waiting does not.

use crate::config::ThrottleConfig;
use crate::record::Record;

/// Whether an attempt may be evaluated now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Evaluate the attempt.
    Open,
    /// Refuse without evaluating until this Unix time.
    BackOff {
        /// When the next attempt will be evaluated.
        until: u64,
    },
    /// Refuse until an administrator unlocks the user.
    Locked,
}

/// Whether the user has reached the hard cap.
pub fn is_locked(record: &Record, config: &ThrottleConfig) -> bool {
    record.failures >= config.lockout_after
}

/// Decides whether an attempt by this user may be evaluated at `now`.
pub fn gate(record: &Record, config: &ThrottleConfig, now: u64) -> Gate {
    if is_locked(record, config) {
        return Gate::Locked;
    }
    if record.failures < config.backoff_after.max(1) {
        return Gate::Open;
    }
    let excess = record.failures - config.backoff_after.max(1);
    // Doubling per excess failure, capped; 2^31 seconds is far beyond any cap.
    let delay = u64::from(config.backoff_seconds)
        .saturating_mul(1u64 << excess.min(31))
        .min(u64::from(config.backoff_max_seconds));
    let until = record.last_failure.unwrap_or(0).saturating_add(delay);
    if now < until {
        Gate::BackOff { until }
    } else {
        Gate::Open
    }
}

/// Records a failed attempt at `now`.
pub fn record_failure(record: &mut Record, now: u64) {
    record.failures = record.failures.saturating_add(1);
    record.last_failure = Some(now);
}

/// Clears the failure counter after a success or an administrator's unlock.
pub fn clear(record: &mut Record) {
    record.failures = 0;
    record.last_failure = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig {
            backoff_after: 3,
            backoff_seconds: 30,
            backoff_max_seconds: 100,
            lockout_after: 6,
            fail_delay_ms: 0,
        }
    }

    fn with_failures(n: u32, at: u64) -> Record {
        let mut r = Record::new("u", 0);
        r.failures = n;
        r.last_failure = Some(at);
        r
    }

    #[test]
    fn the_first_failures_are_free() {
        for n in 0..3 {
            assert_eq!(gate(&with_failures(n, 1000), &cfg(), 1000), Gate::Open);
        }
    }

    #[test]
    fn back_off_doubles_up_to_its_ceiling() {
        assert_eq!(
            gate(&with_failures(3, 1000), &cfg(), 1000),
            Gate::BackOff { until: 1030 }
        );
        assert_eq!(gate(&with_failures(3, 1000), &cfg(), 1030), Gate::Open);
        assert_eq!(
            gate(&with_failures(4, 1000), &cfg(), 1000),
            Gate::BackOff { until: 1060 }
        );
        assert_eq!(
            gate(&with_failures(5, 1000), &cfg(), 1000),
            Gate::BackOff { until: 1100 }
        );
    }

    #[test]
    fn the_hard_cap_does_not_expire() {
        assert_eq!(gate(&with_failures(6, 0), &cfg(), u64::MAX), Gate::Locked);
        assert!(is_locked(&with_failures(7, 0), &cfg()));
    }

    #[test]
    fn clearing_reopens_the_gate() {
        let mut r = with_failures(6, 0);
        clear(&mut r);
        assert_eq!(gate(&r, &cfg(), 0), Gate::Open);
        record_failure(&mut r, 5);
        assert_eq!((r.failures, r.last_failure), (1, Some(5)));
    }
}

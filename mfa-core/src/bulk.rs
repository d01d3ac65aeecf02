//! Bulk provisioning (`mfa-enroll enroll --users-from FILE --json`): what a
//! line of the users file may say, how the work is spread over the cores,
//! and how the run is summed up.
//!
//! The file holds one JSON object per line: `{"user": "alice"}` or
//! `{"uid": 1000}` (exactly one of the two), and optionally
//! `"device": "phone"`. Blank lines and lines starting with `#` are
//! skipped and give no output; every other line gives exactly one output
//! line, in input order, whether it succeeds or not.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use serde::Deserialize;

/// A line of the users file as written. Unknown fields are refused, so
/// that a misspelt `"devcie"` does not silently enroll a device called
/// "default".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineFields {
    /// The login name.
    pub user: Option<String>,
    /// The numeric uid.
    pub uid: Option<u32>,
    /// The device name; without it the command line's `--device`, or
    /// "default".
    pub device: Option<String>,
}

/// Whom a line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A login name, looked up in the name service.
    Name(String),
    /// A numeric uid.
    Uid(u32),
}

/// A line that names a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The user.
    pub subject: Subject,
    /// The device name the line asks for, if any.
    pub device: Option<String>,
}

/// Why a line of the users file names no user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line is not a JSON object of the documented fields.
    Syntax(String),
    /// Neither "user" nor "uid" is given.
    NoUser,
    /// Both "user" and "uid" are given.
    UserAndUid,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Syntax(why) => write!(
                f,
                "not a JSON object of \"user\" or \"uid\" and \"device\": {why}; fix the line and run it again"
            ),
            LineError::NoUser => {
                f.write_str("names no user; give \"user\": NAME or \"uid\": N")
            }
            LineError::UserAndUid => {
                f.write_str("gives both \"user\" and \"uid\"; give only one of them")
            }
        }
    }
}

impl std::error::Error for LineError {}

impl LineFields {
    /// Whom the line names.
    ///
    /// # Errors
    /// [`LineError::NoUser`] or [`LineError::UserAndUid`].
    pub fn into_entry(self) -> Result<Entry, LineError> {
        let subject = match (self.user, self.uid) {
            (Some(name), None) => Subject::Name(name),
            (None, Some(uid)) => Subject::Uid(uid),
            (None, None) => return Err(LineError::NoUser),
            (Some(_), Some(_)) => return Err(LineError::UserAndUid),
        };
        Ok(Entry {
            subject,
            device: self.device,
        })
    }
}

/// True for a line that is skipped without output: blank, or a `#` comment.
pub fn is_skipped(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// How many threads to run `jobs` jobs on: one per core the process may
/// use, never more than there are jobs, at least one.
pub fn workers(jobs: usize) -> usize {
    thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(jobs)
        .max(1)
}

/// Runs `work` on every item on `workers` threads and hands each result
/// to `emit` on the calling thread, in the order of `items`, as soon as
/// it and all results before it are done, so that results (secrets, here)
/// do not pile up for the whole run. When `emit` returns false no further
/// item is started; the jobs already running finish and are still
/// emitted, since their work is done. A job that panics is raised again
/// once the others have stopped.
pub fn run_in_order<T, R>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> R + Sync,
    mut emit: impl FnMut(usize, R) -> bool,
) where
    T: Sync,
    R: Send,
{
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, R)>();
    thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if tx.send((i, work(item))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut waiting: std::collections::BTreeMap<usize, R> = std::collections::BTreeMap::new();
        let mut due = 0;
        for (i, result) in rx {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&due) {
                if !emit(due, result) {
                    next.store(items.len(), Ordering::Relaxed);
                }
                due += 1;
            }
        }
    });
}

/// What a bulk run did, for the closing line on standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines that named a user (skipped lines not counted).
    pub lines: usize,
    /// Users enrolled.
    pub enrolled: usize,
    /// Lines that failed, each with its error object in the output.
    pub failed: usize,
}

impl Summary {
    /// Counts one line's outcome.
    pub fn count(&mut self, enrolled: bool) {
        self.lines += 1;
        if enrolled {
            self.enrolled += 1;
        } else {
            self.failed += 1;
        }
    }

    /// True if every line was enrolled: the run exits 0.
    pub fn all_enrolled(&self) -> bool {
        self.failed == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line{}: {} enrolled, {} failed",
            self.lines,
            if self.lines == 1 { "" } else { "s" },
            self.enrolled,
            self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_exactly_one_user() {
        let by_name = LineFields {
            user: Some("alice".into()),
            ..LineFields::default()
        };
        assert_eq!(
            by_name.into_entry().unwrap().subject,
            Subject::Name("alice".into())
        );
        let by_uid = LineFields {
            uid: Some(1000),
            device: Some("phone".into()),
            ..LineFields::default()
        };
        let e = by_uid.into_entry().unwrap();
        assert_eq!(e.subject, Subject::Uid(1000));
        assert_eq!(e.device.as_deref(), Some("phone"));
        assert_eq!(LineFields::default().into_entry(), Err(LineError::NoUser));
        let both = LineFields {
            user: Some("alice".into()),
            uid: Some(1000),
            device: None,
        };
        assert_eq!(both.into_entry(), Err(LineError::UserAndUid));
    }

    #[test]
    fn blank_and_comment_lines_are_skipped() {
        assert!(is_skipped(""));
        assert!(is_skipped("   \t"));
        assert!(is_skipped("# users of the finance team"));
        assert!(!is_skipped("{\"user\": \"alice\"}"));
        assert!(!is_skipped("not json"));
    }

    #[test]
    fn results_come_out_in_input_order_from_every_worker() {
        let items: Vec<u64> = (0..200).collect();
        let mut seen = Vec::new();
        run_in_order(
            &items,
            4,
            |&n| {
                // Uneven work, so that later items often finish first.
                let spins = (200 - n) * 500;
                let noise = (0..spins).fold(0u64, |a, b| std::hint::black_box(a ^ b));
                n + noise - noise
            },
            |i, r| {
                seen.push((i, r));
                true
            },
        );
        let expected: Vec<(usize, u64)> = (0..200u64)
            .map(|n| (usize::try_from(n).unwrap(), n))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn no_item_starts_after_emit_says_stop() {
        let items: Vec<usize> = (0..10_000).collect();
        let emitted = AtomicUsize::new(0);
        let mut seen = Vec::new();
        run_in_order(
            &items,
            2,
            |&n| {
                // Later items wait until the first five are out, so that
                // the stop comes while the run has barely begun.
                while n >= 5 && emitted.load(Ordering::Relaxed) < 5 {
                    thread::yield_now();
                }
                n
            },
            |i, r| {
                seen.push(r);
                emitted.fetch_add(1, Ordering::Relaxed);
                i < 4
            },
        );
        assert!(seen.len() >= 5, "{seen:?}");
        assert!(seen.len() < items.len(), "the run went on after the stop");
        assert_eq!(seen, (0..seen.len()).collect::<Vec<_>>());
    }

    #[test]
    fn workers_never_exceed_the_jobs_and_are_at_least_one() {
        assert_eq!(workers(0), 1);
        assert_eq!(workers(1), 1);
        assert!(workers(1000) >= 1);
    }

    #[test]
    fn the_summary_counts_each_outcome() {
        let mut s = Summary::default();
        for ok in [true, false, true, true] {
            s.count(ok);
        }
        assert_eq!(
            s,
            Summary {
                lines: 4,
                enrolled: 3,
                failed: 1
            }
        );
        assert!(!s.all_enrolled());
        assert_eq!(s.to_string(), "4 lines: 3 enrolled, 1 failed");
    }
}

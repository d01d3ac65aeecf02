//! What the orchestrator asks a worker process to do, and what the worker
//! reports back: one JSON document each way (stdin, stdout).

use serde::{Deserialize, Serialize};

/// Which answer the scripted conversation gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The code the user's app shows now.
    Right,
    /// Six digits that match no step within 1 500 steps of now (past
    /// google-authenticator's clock-skew search), so every module refuses them.
    Wrong,
}

/// A user to authenticate once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobUser {
    /// The login name, `PAM_USER`.
    pub name: String,
    /// The TOTP secret (SHA-1, 6 digits, 30 s) in hex.
    pub secret_hex: String,
}

/// What a worker process is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "task")]
pub enum Task {
    /// One PAM transaction per user, through the service's stack.
    Pam {
        /// The PAM service (a file in the private `/etc/pam.d`).
        service: String,
        /// Right or wrong codes.
        answer: Answer,
        /// Each user authenticates once.
        users: Vec<JobUser>,
        /// Print `ready` and wait for a `go` line before starting, so that
        /// two workers start at the same moment.
        wait_for_go: bool,
    },
    /// Pure CPU work (SHA-256 rounds), to see how much parallelism the
    /// machine gives two processes at this moment.
    Spin {
        /// SHA-256 compressions of one block.
        rounds: u64,
        /// As for [`Task::Pam`].
        wait_for_go: bool,
    },
    /// Time `getpwnam_r` for each user (the name-service lookup alone).
    Nss {
        /// The names to look up.
        users: Vec<String>,
    },
}

/// One PAM transaction as the worker measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// `pam_authenticate` alone, in nanoseconds.
    pub auth_ns: u64,
    /// `pam_start` to `pam_end` inclusive (module loading and unloading).
    pub txn_ns: u64,
    /// What `pam_authenticate` returned (or `pam_start`, if it failed).
    pub rc: i32,
    /// The TOTP time step the answer was computed for.
    pub step: u64,
}

/// What a worker reports after a [`Task::Pam`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PamReport {
    /// One per user, in order.
    pub attempts: Vec<Attempt>,
    /// `CLOCK_MONOTONIC` when the first transaction started, in ns: the
    /// clock is shared by all processes, so two workers' spans compare.
    pub start_ns: u64,
    /// `CLOCK_MONOTONIC` when the last transaction ended.
    pub end_ns: u64,
    /// Peak RSS (`VmHWM`) before the first transaction (KiB): the driver alone.
    pub rss_start_kb: u64,
    /// Peak RSS (`VmHWM`) after the last transaction (KiB).
    pub rss_peak_kb: u64,
    /// `getrusage` `ru_maxrss` after the last transaction (KiB); includes
    /// what Linux carried over from the parent process.
    pub maxrss_kb: u64,
    /// Prompts the modules sent.
    pub prompts: u64,
    /// Other conversation messages (info, error).
    pub messages: u64,
    /// Non-zero failure delays libpam asked for (recorded, never slept).
    pub fail_delays: u64,
}

/// What a worker reports after a [`Task::Spin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpinReport {
    /// `CLOCK_MONOTONIC` at the start, ns.
    pub start_ns: u64,
    /// `CLOCK_MONOTONIC` at the end, ns.
    pub end_ns: u64,
}

/// What a worker reports after a [`Task::Nss`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NssReport {
    /// `getpwnam_r` of each user, in ns.
    pub lookup_ns: Vec<u64>,
    /// `getpwnam_r("root")`, the lookup google-authenticator's `user=root`
    /// makes, once per user, in ns.
    pub root_ns: Vec<u64>,
    /// Users that were not found (should be none).
    pub missing: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_survives_json() {
        let task = Task::Pam {
            service: "bench-mfa".into(),
            answer: Answer::Wrong,
            users: vec![JobUser {
                name: "mfab000001".into(),
                secret_hex: "00ff".into(),
            }],
            wait_for_go: true,
        };
        let text = serde_json::to_string(&task).unwrap();
        assert!(text.contains(r#""task":"pam""#), "{text}");
        assert!(text.contains(r#""answer":"wrong""#), "{text}");
        assert_eq!(serde_json::from_str::<Task>(&text).unwrap(), task);
    }
}

//! What `pam-mfa-bench postgres` measured: the figures, as written to
//! `postgres.json`, and the tables of `postgres.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::job::PamReport;
use crate::pg_floor;
use crate::results::Machine;
use crate::stats::Summary;

/// The TLS setting of a measurement, for the module and the floor alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// `sslmode=verify-full` with the test CA as `sslrootcert`.
    VerifyFull,
    /// `sslmode=disable`: plain TCP.
    Disable,
}

impl SslMode {
    /// The libpq word.
    pub fn word(self) -> &'static str {
        match self {
            SslMode::VerifyFull => "verify-full",
            SslMode::Disable => "disable",
        }
    }
}

/// Logins of two processes at once, over all rounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairFigures {
    /// Logins attempted.
    pub logins: usize,
    /// Logins that succeeded.
    pub successes: usize,
    /// Return codes other than success, with counts.
    pub other_codes: BTreeMap<i32, usize>,
    /// The login: `pam_authenticate` (the floor: connect to goodbye).
    pub login: Summary,
    /// The whole PAM transaction (`pam_start` to `pam_end`); the floor's
    /// login again.
    pub transaction: Summary,
    /// Logins per second of both processes together: all logins over the
    /// sum of the rounds' spans (first start to last end).
    pub per_second: f64,
}

/// Collects one scenario's rounds.
#[derive(Default)]
pub struct PairRounds {
    login_ns: Vec<u64>,
    txn_ns: Vec<u64>,
    successes: usize,
    other_codes: BTreeMap<i32, usize>,
    span_ns: u64,
}

impl PairRounds {
    pub fn add_pam(&mut self, reports: &[PamReport]) {
        for r in reports {
            for a in &r.attempts {
                self.login_ns.push(a.auth_ns);
                self.txn_ns.push(a.txn_ns);
                if a.rc == 0 {
                    self.successes += 1;
                } else {
                    *self.other_codes.entry(a.rc).or_default() += 1;
                }
            }
        }
        self.add_span(reports.iter().map(|r| (r.start_ns, r.end_ns)));
    }

    pub fn add_floor(&mut self, outputs: &[pg_floor::Output]) {
        for o in outputs {
            for s in &o.samples {
                self.login_ns.push(s.total());
                self.txn_ns.push(s.total());
                self.successes += 1;
            }
        }
        self.add_span(outputs.iter().map(|o| o.span));
    }

    fn add_span(&mut self, spans: impl Iterator<Item = (u64, u64)>) {
        let (start, end) = spans.fold((u64::MAX, 0), |(s, e), (a, b)| (s.min(a), e.max(b)));
        self.span_ns += end.saturating_sub(start);
    }

    pub fn figures(&self) -> PairFigures {
        let logins = self.login_ns.len();
        PairFigures {
            logins,
            successes: self.successes,
            other_codes: self.other_codes.clone(),
            login: Summary::of_ns(&self.login_ns),
            transaction: Summary::of_ns(&self.txn_ns),
            per_second: if self.span_ns > 0 {
                logins as f64 * 1e9 / self.span_ns as f64
            } else {
                0.0
            },
        }
    }
}

/// The floor's steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloorSteps {
    /// `PQconnectdb`: TCP, TLS, startup, SCRAM.
    pub connect: Summary,
    /// The SELECT.
    pub select: Summary,
    /// The UPDATE, committed.
    pub update: Summary,
    /// `PQfinish`.
    pub close: Summary,
}

impl FloorSteps {
    /// The medians and percentiles of `samples`.
    pub fn of(samples: &[pg_floor::Sample]) -> FloorSteps {
        let of = |f: fn(&pg_floor::Sample) -> u64| {
            Summary::of_ns(&samples.iter().map(f).collect::<Vec<_>>())
        };
        FloorSteps {
            connect: of(|s| s.connect),
            select: of(|s| s.select),
            update: of(|s| s.update),
            close: of(|s| s.close),
        }
    }
}

/// pam_mfa's row client driven one step at a time: what a login on this
/// backend does between `pam_authenticate`'s start and end, without PAM,
/// the record's crypto or the code check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientSteps {
    /// The connection string's variant.
    pub variant: String,
    /// The read: runtime, name resolution, TCP, TLS, startup, SCRAM,
    /// preparing the SELECT, the SELECT.
    pub read: Summary,
    /// The version-checked UPDATE on the same connection (preparing it,
    /// then running it).
    pub replace: Summary,
    /// Dropping the client: goodbye, connection task, runtime.
    pub drop: Summary,
    /// All three.
    pub total: Summary,
}

/// One TLS setting's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeResult {
    /// The TLS setting of the module and the floor.
    pub sslmode: SslMode,
    /// pam_mfa on PostgreSQL, two hosts, one process each.
    pub module: PairFigures,
    /// The libpq floor, two processes.
    pub floor: PairFigures,
    /// pam_mfa on the files backend, two processes, for scale.
    pub files: PairFigures,
    /// Median login of the module over the floor's.
    pub ratio_login: f64,
    /// Median whole transaction of the module over the floor's login.
    pub ratio_transaction: f64,
    /// Index scans of `pam_mfa_records` per module login (one per
    /// statement that finds a row by name), from the server's statistics.
    pub module_scans_per_login: f64,
    /// The same for the floor (one SELECT, one UPDATE: 2).
    pub floor_scans_per_login: f64,
    /// The floor's steps.
    pub floor_steps: FloorSteps,
    /// pam_mfa's client, step by step, one process.
    pub client_steps: Vec<ClientSteps>,
    /// The floor's steps in one process alone, on the rows and right after
    /// the client steps: the same conditions.
    pub floor_alone: FloorSteps,
    /// The floor's whole login in one process alone.
    pub floor_alone_total: Summary,
    /// The 1-minute load average before and after the rounds: what else
    /// the machine was doing.
    pub load_average: (f64, f64),
}

/// Everything `postgres` measured, as written to `postgres.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgResults {
    /// UTC start.
    pub started: String,
    /// Seconds the whole run took.
    pub elapsed_s: f64,
    /// Where it ran.
    pub machine: Machine,
    /// The module measured.
    pub module_path: String,
    /// `SELECT version()`.
    pub server_version: String,
    /// The login role's stored verifier's mechanism and iteration count
    /// (`SCRAM-SHA-256$4096`): what both the module and the floor pay.
    pub scram: String,
    /// Synthetic users.
    pub users: u32,
    /// Logins per process per round.
    pub logins_per_process: usize,
    /// Rounds per TLS setting.
    pub rounds: usize,
    /// One per TLS setting.
    pub modes: Vec<ModeResult>,
}

impl ClientSteps {
    /// The medians and percentiles of `samples` (read, replace, drop,
    /// total: ns).
    pub fn of(variant: &str, samples: &[[u64; 4]]) -> ClientSteps {
        let of = |k: usize| Summary::of_ns(&samples.iter().map(|s| s[k]).collect::<Vec<_>>());
        ClientSteps {
            variant: variant.to_owned(),
            read: of(0),
            replace: of(1),
            drop: of(2),
            total: of(3),
        }
    }
}

fn latency_row(out: &mut String, what: &str, l: &Summary, per_second: Option<f64>) {
    let rate = per_second.map_or_else(String::new, |r| format!("{r:.0}"));
    let _ = writeln!(
        out,
        "| {what} | {:.0} | {:.0} | {:.0} | {rate} |",
        l.median_us, l.p90_us, l.p99_us
    );
}

/// The tables of `postgres.md` (docs/benchmarks.md quotes them).
pub fn markdown(r: &PgResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## pam_mfa on PostgreSQL (loopback)\n\n{} users; {} logins per process per round, {} rounds, \
         two processes at once. {}; {}. Started {}, took {:.0} s.\n",
        r.users,
        r.logins_per_process,
        r.rounds,
        r.server_version,
        r.scram,
        r.started,
        r.elapsed_s
    );
    for m in &r.modes {
        mode_markdown(&mut out, m);
        steps_markdown(&mut out, m);
        out.push('\n');
    }
    out
}

/// A TLS setting's main table and ratio.
fn mode_markdown(out: &mut String, m: &ModeResult) {
    let _ = writeln!(
        out,
        "### sslmode={}\n\n| µs | median | p90 | p99 | logins/s (2 processes) |\n|---|---:|---:|---:|---:|",
        m.sslmode.word()
    );
    latency_row(
        out,
        "pam_mfa, postgres: pam_authenticate",
        &m.module.login,
        Some(m.module.per_second),
    );
    latency_row(
        out,
        "pam_mfa, postgres: pam_start to pam_end",
        &m.module.transaction,
        None,
    );
    latency_row(
        out,
        "libpq floor: connect, SELECT, UPDATE, close",
        &m.floor.login,
        Some(m.floor.per_second),
    );
    latency_row(
        out,
        "pam_mfa, files: pam_authenticate",
        &m.files.login,
        Some(m.files.per_second),
    );
    let _ = writeln!(
        out,
        "\nRatio of medians, pam_authenticate / floor: **{:.2}** (whole transaction / floor: {:.2}). \
         Successes: pam_mfa postgres {}/{}, files {}/{}. Index scans per login: pam_mfa {:.2}, floor {:.2}. \
         Load average {:.1} before the rounds, {:.1} after.\n",
        m.ratio_login,
        m.ratio_transaction,
        m.module.successes,
        m.module.logins,
        m.files.successes,
        m.files.logins,
        m.module_scans_per_login,
        m.floor_scans_per_login,
        m.load_average.0,
        m.load_average.1
    );
}

/// A TLS setting's tables of steps.
fn steps_markdown(out: &mut String, m: &ModeResult) {
    let _ = writeln!(
        out,
        "| floor step, µs | median | p90 | p99 |\n|---|---:|---:|---:|"
    );
    for (what, l) in [
        ("connect (TCP, TLS, startup, SCRAM)", &m.floor_steps.connect),
        ("SELECT", &m.floor_steps.select),
        ("UPDATE", &m.floor_steps.update),
        ("close", &m.floor_steps.close),
    ] {
        let _ = writeln!(
            out,
            "| {what} | {:.0} | {:.0} | {:.0} |",
            l.median_us, l.p90_us, l.p99_us
        );
    }
    let _ = writeln!(
        out,
        "\nOne process alone (the floor's connect and SELECT are separate medians):\n\n| pam_mfa's row client, medians in µs | connect + SELECT | UPDATE | close | total |\n|---|---:|---:|---:|---:|"
    );
    for c in &m.client_steps {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            c.variant, c.read.median_us, c.replace.median_us, c.drop.median_us, c.total.median_us
        );
    }
    let f = &m.floor_alone;
    let _ = writeln!(
        out,
        "| libpq floor, for comparison | {:.0} + {:.0} | {:.0} | {:.0} | {:.0} |",
        f.connect.median_us,
        f.select.median_us,
        f.update.median_us,
        f.close.median_us,
        m.floor_alone_total.median_us
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let l = Summary::of_ns(&samples);
        assert!((l.median_us - 50.5).abs() < 1e-9);
        assert!((l.p90_us - 90.0).abs() < 1e-9);
        assert!((l.p99_us - 99.0).abs() < 1e-9);
        assert_eq!(Summary::of_ns(&[]), Summary::default());
    }

    #[test]
    fn throughput_is_all_logins_over_the_summed_spans() {
        let mut rounds = PairRounds::default();
        let output = |start, end| pg_floor::Output {
            samples: vec![
                pg_floor::Sample {
                    connect: 1,
                    select: 1,
                    update: 1,
                    close: 1,
                };
                5
            ],
            span: (start, end),
        };
        // Two copies overlapping: the round spans 1 s.
        rounds.add_floor(&[output(0, 800_000_000), output(200_000_000, 1_000_000_000)]);
        rounds.add_floor(&[output(5_000_000_000, 6_000_000_000)]);
        let f = rounds.figures();
        assert_eq!((f.logins, f.successes), (15, 15));
        assert!((f.per_second - 7.5).abs() < 1e-9);
    }

    #[test]
    fn tls_settings_are_named_as_libpq_names_them() {
        assert_eq!(SslMode::VerifyFull.word(), "verify-full");
        assert_eq!(
            serde_json::to_string(&SslMode::Disable).unwrap(),
            "\"disable\""
        );
    }
}

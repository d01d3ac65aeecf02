//! Everything one run measured, as written to `results.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::admin_costs::{SelfEnrollment, SpoolFlood, SpoolScan};
use crate::breakdown::Step;
use crate::floor::Floor;
use crate::job::{NssReport, PamReport};
use crate::sink::TagCounts;
use crate::stats::Summary;

/// The modules under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// This project's `pam_mfa.so`.
    PamMfa,
    /// Debian's `libpam-google-authenticator`.
    GoogleAuthenticator,
    /// Debian's `libpam-oath`.
    PamOath,
}

impl Module {
    /// All three, in report order.
    pub const ALL: [Module; 3] = [Module::PamMfa, Module::GoogleAuthenticator, Module::PamOath];

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Module::PamMfa => "pam_mfa",
            Module::GoogleAuthenticator => "google-authenticator",
            Module::PamOath => "pam_oath",
        }
    }

    /// The PAM service whose stack holds the module alone.
    pub fn service(self) -> &'static str {
        match self {
            Module::PamMfa => crate::population::SERVICE_MFA,
            Module::GoogleAuthenticator => crate::population::SERVICE_GA,
            Module::PamOath => crate::population::SERVICE_OATH,
        }
    }
}

/// The machine the run was on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores the process may use.
    pub cores: usize,
    /// `MemTotal`.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// `PRETTY_NAME` from os-release.
    pub os: String,
    /// Filesystem of the benchmark directory: device, type, mount options.
    pub filesystem: String,
    /// The block device's queue: rotational, write cache, scheduler.
    pub disk: String,
    /// Versions of the packages under test.
    pub packages: Vec<String>,
}

/// One scenario of one module: each user once, one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Transactions.
    pub attempts: usize,
    /// `pam_authenticate` returned `PAM_SUCCESS`.
    pub successes: usize,
    /// Return codes other than success, with counts.
    pub other_codes: BTreeMap<i32, usize>,
    /// `pam_authenticate`.
    pub auth: Summary,
    /// `pam_start` .. `pam_end`.
    pub txn: Summary,
    /// The transaction minus `pam_authenticate`: reading the service file,
    /// loading and unloading the module.
    pub overhead: Summary,
    /// Transactions per second of wall time.
    pub per_second: f64,
    /// Peak RSS of the driver before the first transaction, KiB.
    pub rss_start_kb: u64,
    /// Peak RSS at the end, KiB.
    pub rss_peak_kb: u64,
    /// `getrusage` `ru_maxrss` at the end, KiB (inflated by the parent's).
    pub maxrss_kb: u64,
    /// Opens of `/etc/passwd` during the scenario.
    pub passwd_opens: u64,
    /// Opens of `/etc/group` during the scenario.
    pub group_opens: u64,
    /// Syslog lines per tag during the scenario.
    pub syslog: TagCounts,
    /// Failure delays libpam asked for (recorded, not slept).
    pub fail_delays: u64,
    /// Prompts the module sent.
    pub prompts: u64,
}

fn nanos_to_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// One worker's report with what the orchestrator saw meanwhile.
#[derive(Debug, Clone)]
pub struct Run {
    /// What the worker measured.
    pub report: PamReport,
    /// Opens of `/etc/passwd` while it ran.
    pub passwd_opens: u64,
    /// Opens of `/etc/group` while it ran.
    pub group_opens: u64,
    /// Syslog lines while it ran.
    pub syslog: TagCounts,
}

fn span_ns(r: &PamReport) -> u64 {
    r.end_ns.saturating_sub(r.start_ns)
}

fn rate(attempts: usize, ns: u64) -> f64 {
    let seconds = nanos_to_seconds(ns);
    if seconds > 0.0 {
        attempts as f64 / seconds
    } else {
        0.0
    }
}

impl Scenario {
    /// Summarizes the runs of one scenario (the rounds it was split into).
    pub fn from_runs(runs: &[Run]) -> Scenario {
        let attempts: Vec<_> = runs.iter().flat_map(|r| &r.report.attempts).collect();
        let auth: Vec<u64> = attempts.iter().map(|a| a.auth_ns).collect();
        let txn: Vec<u64> = attempts.iter().map(|a| a.txn_ns).collect();
        let overhead: Vec<u64> = attempts
            .iter()
            .map(|a| a.txn_ns.saturating_sub(a.auth_ns))
            .collect();
        let mut other_codes = BTreeMap::new();
        for a in attempts.iter().filter(|a| a.rc != 0) {
            *other_codes.entry(a.rc).or_insert(0) += 1;
        }
        let mut syslog = TagCounts::new();
        for r in runs {
            for (tag, n) in &r.syslog {
                *syslog.entry(tag.clone()).or_default() += n;
            }
        }
        let max = |f: fn(&PamReport) -> u64| runs.iter().map(|r| f(&r.report)).max().unwrap_or(0);
        let sum = |f: fn(&PamReport) -> u64| runs.iter().map(|r| f(&r.report)).sum::<u64>();
        Scenario {
            attempts: attempts.len(),
            successes: attempts.iter().filter(|a| a.rc == 0).count(),
            other_codes,
            auth: Summary::of_ns(&auth),
            txn: Summary::of_ns(&txn),
            overhead: Summary::of_ns(&overhead),
            per_second: rate(attempts.len(), sum(span_ns)),
            rss_start_kb: max(|r| r.rss_start_kb),
            rss_peak_kb: max(|r| r.rss_peak_kb),
            maxrss_kb: max(|r| r.maxrss_kb),
            passwd_opens: runs.iter().map(|r| r.passwd_opens).sum(),
            group_opens: runs.iter().map(|r| r.group_opens).sum(),
            syslog,
            fail_delays: sum(|r| r.fail_delays),
            prompts: sum(|r| r.prompts),
        }
    }

    /// Syslog lines per attempt, all tags together.
    pub fn syslog_per_attempt(&self) -> f64 {
        per_attempt(self.syslog.values().sum(), self.attempts)
    }
}

/// `count / attempts`, 0 for no attempts.
pub fn per_attempt(count: u64, attempts: usize) -> f64 {
    if attempts == 0 {
        0.0
    } else {
        count as f64 / attempts as f64
    }
}

/// Two processes at once on disjoint users, right codes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Transactions of both.
    pub attempts: usize,
    /// Of which succeeded.
    pub successes: usize,
    /// Both processes' transactions per second of wall time, from the
    /// first start to the last end.
    pub per_second: f64,
    /// `per_second` over the single process's.
    pub speedup: f64,
    /// `pam_authenticate` of both.
    pub auth: Summary,
}

impl Pair {
    /// Combines rounds of two workers each; `single` is the one-process
    /// rate. A round lasts from the first start to the last end.
    pub fn from_rounds(rounds: &[(PamReport, PamReport)], single: f64) -> Pair {
        let attempts: Vec<_> = rounds
            .iter()
            .flat_map(|(a, b)| a.attempts.iter().chain(&b.attempts))
            .collect();
        let busy: u64 = rounds
            .iter()
            .map(|(a, b)| {
                a.end_ns
                    .max(b.end_ns)
                    .saturating_sub(a.start_ns.min(b.start_ns))
            })
            .sum();
        let per_second = rate(attempts.len(), busy);
        Pair {
            attempts: attempts.len(),
            successes: attempts.iter().filter(|x| x.rc == 0).count(),
            per_second,
            speedup: if single > 0.0 {
                per_second / single
            } else {
                0.0
            },
            auth: Summary::of_ns(&attempts.iter().map(|x| x.auth_ns).collect::<Vec<_>>()),
        }
    }
}

/// One module at one population size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleResult {
    /// Which.
    pub module: Module,
    /// Right codes.
    pub right: Scenario,
    /// Wrong codes (the same users, just before).
    pub wrong: Scenario,
    /// Two processes at once.
    pub pair: Pair,
}

/// The name-service lookup alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NssResult {
    /// `getpwnam_r` of the sampled users.
    pub lookup: Summary,
    /// `getpwnam_r("root")`.
    pub root: Summary,
    /// Sampled users not found.
    pub missing: u64,
}

impl NssResult {
    /// Summarizes a worker's lookups.
    pub fn from_report(report: &NssReport) -> NssResult {
        NssResult {
            lookup: Summary::of_ns(&report.lookup_ns),
            root: Summary::of_ns(&report.root_ns),
            missing: report.missing,
        }
    }
}

/// pam_mfa with nscd running, at one population size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NscdResult {
    /// Each sampled user's first lookup with nscd up: a miss, for which
    /// nscd reads `/etc/passwd` and keeps the entry.
    pub fill: Summary,
    /// The same lookups again, in another process, answered from the cache.
    pub nss: NssResult,
    /// pam_mfa with right codes, the same users, after those lookups.
    pub right: Scenario,
    /// The disk floor, measured in the same rounds.
    #[serde(default)]
    pub floor: Floor,
}

/// Loading one module in a C program (`dlopen` + `dlclose`), measured
/// once per run: it does not depend on the population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleLoad {
    /// Which.
    pub module: Module,
    /// The file loaded.
    pub path: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The `NEEDED` entries of its dynamic section.
    pub needed: Vec<String>,
    /// Libraries the program loaded before the module (besides libpam).
    pub preloaded: Vec<String>,
    /// The objects the module's `dlopen` added to the program: the module
    /// and the libraries it needs that were not loaded yet.
    pub loaded: Vec<String>,
    /// Of those, the ones `dlclose` left loaded.
    pub kept: Vec<String>,
    /// `dlopen(RTLD_NOW)`.
    pub dlopen: Summary,
    /// `dlclose`.
    pub dlclose: Summary,
    /// Both, per load.
    pub total: Summary,
}

/// Everything measured with `users` enrolled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeResult {
    /// Users enrolled in each module.
    pub users: u32,
    /// Seconds it took to enroll the users added for this size.
    pub populate_s: f64,
    /// Users sampled for the single-process scenarios.
    pub sample: usize,
    /// The disk floor, measured in the same rounds as the modules.
    pub floor: Floor,
    /// `getpwnam_r` alone.
    pub nss: NssResult,
    /// pam_mfa and `getpwnam_r` with nscd (none if nscd is not installed).
    #[serde(default)]
    pub nscd: Option<NscdResult>,
    /// Per module.
    pub modules: Vec<ModuleResult>,
    /// Self-service enrollment per user.
    pub self_enrollment: SelfEnrollment,
    /// `key migrate` per user.
    pub migrate: Summary,
    /// pam_mfa's login path step by step, warm, through mfa-core.
    pub breakdown: Vec<Step>,
    /// Two CPU-bound processes' speed-up over one, measured right after
    /// the two-process scenarios: what the machine could give them.
    pub cpu_parallelism: f64,
    /// The 1-minute load average before and after this size's scenarios
    /// (this benchmark's own processes count too).
    pub load_average: (f64, f64),
}

impl SizeResult {
    /// The result of `module`, if measured.
    pub fn module(&self, module: Module) -> Option<&ModuleResult> {
        self.modules.iter().find(|m| m.module == module)
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// When it started (UTC).
    pub started: String,
    /// How long it took, in seconds.
    pub elapsed_s: f64,
    /// The machine.
    pub machine: Machine,
    /// The pam_mfa module measured.
    pub module_path: String,
    /// `admin::provision` for one user (device and ten Argon2id hashes).
    pub provision: Summary,
    /// One login's spool search while other users' requests wait.
    pub spool_scan: Vec<SpoolScan>,
    /// The first login after another user planted entries under the
    /// user's uid.
    #[serde(default)]
    pub spool_flood: Vec<SpoolFlood>,
    /// Loading each module in a C program.
    #[serde(default)]
    pub module_load: Vec<ModuleLoad>,
    /// Why there are no measurements with nscd, if there are none.
    #[serde(default)]
    pub nscd_skipped: Option<String>,
    /// Per population size, ascending.
    pub sizes: Vec<SizeResult>,
}

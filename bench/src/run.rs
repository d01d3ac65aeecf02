//! The orchestrator: lays out the population, enters the private
//! namespace, and runs the scenarios in worker processes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use mfa_core::admin;
use mfa_core::codec::hex_encode;
use mfa_core::config::Config;
use mfa_core::fsutil::FileTrust;
use serde::de::DeserializeOwned;

use crate::admin_costs;
use crate::breakdown;
use crate::codes;
use crate::floor;
use crate::job::{Answer, JobUser, NssReport, PamReport, SpinReport, Task};
use crate::load;
use crate::machine;
use crate::nscd::{self, Daemon};
use crate::population::{self, Layout, Population, Seed};
use crate::report;
use crate::results::{
    Module, ModuleResult, NscdResult, NssResult, Pair, Results, Run, Scenario, SizeResult,
};

/// Rounds each single-process scenario is split into.
const ROUNDS: usize = 4;
/// Rounds of the two-process scenario.
const PAIR_ROUNDS: usize = 2;
use crate::sandbox::{self, Mounts};
use crate::sink::{self, OpenCounter, SyslogSink};
use crate::stats::Summary;

/// What `run` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Population sizes, ascending.
    pub sizes: Vec<u32>,
    /// Users sampled per scenario.
    pub sample: usize,
    /// The benchmark directory (on the disk to measure).
    pub work: PathBuf,
    /// Where results, report and plot go.
    pub out: PathBuf,
    /// The pam_mfa module to load.
    pub module: PathBuf,
    /// Repetitions of each disk-floor measurement.
    pub floor_reps: usize,
    /// Loads of each module in the C program.
    pub load_reps: usize,
    /// Whether to run `pam-mfa-bench postgres` too (first, in a process of
    /// its own), into `out`.
    pub postgres: bool,
}

/// Runs `pam-mfa-bench postgres` with its defaults in a child process,
/// before this process makes its namespace (the child makes its own), with
/// its work directory beside `opts.work`.
fn postgres_section(opts: &Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut work = opts.work.clone().into_os_string();
    work.push("-pg");
    eprintln!("pam-mfa-bench: pam_mfa on PostgreSQL (pam-mfa-bench postgres)");
    let status = Command::new(&exe)
        .arg("postgres")
        .arg("--work")
        .arg(&work)
        .arg("--out")
        .arg(&opts.out)
        .arg("--module")
        .arg(&opts.module)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the PostgreSQL section failed ({status}); it needs postgresql and libpq-dev installed, \
             or run with --no-postgres"
        ))
    }
}

/// Waits for what one run left behind (`pam_oath` rewrites megabytes per
/// login at 100 000 users) to reach the disk, so that it does not slow the
/// next run, whichever module that is.
pub(crate) fn settle() {
    nix::unistd::sync();
    std::thread::sleep(Duration::from_millis(100));
}

/// A small deterministic generator for sampling users (splitmix64),
/// seeded from the kernel.
pub(crate) struct Sampler(u64);

impl Sampler {
    pub(crate) fn new() -> Result<Sampler, String> {
        let seed = mfa_core::random::bytes::<8>().map_err(|e| e.to_string())?;
        Ok(Sampler(u64::from_le_bytes(seed)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `count` distinct items of `from`, in random order (partial Fisher-Yates).
    fn choose(&mut self, mut from: Vec<u32>, count: usize) -> Vec<u32> {
        let count = count.min(from.len());
        for i in 0..count {
            let span = (from.len() - i) as u64;
            let j = i + usize::try_from(self.next() % span).unwrap_or(0);
            from.swap(i, j);
        }
        from.truncate(count);
        from
    }
}

/// Which time step each user last used a right code in, in one module, so
/// that every right code the module sees is fresh for that user (the
/// modules keep separate state, so each has its own).
pub(crate) struct Freshness {
    last_step: Vec<u64>,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness { last_step: vec![0] }
    }
}

impl Freshness {
    pub(crate) fn grow(&mut self, users: u32) {
        self.last_step.resize(users as usize + 1, 0);
    }

    /// `count` random users whose last right code is older than the
    /// current step; waits for the next step if there are too few.
    pub(crate) fn pick(&self, sampler: &mut Sampler, count: usize) -> Vec<u32> {
        loop {
            let step = codes::step_of(codes::unix_now());
            let eligible: Vec<u32> = (1..self.last_step.len())
                .filter(|&i| self.last_step[i] < step)
                .filter_map(|i| u32::try_from(i).ok())
                .collect();
            if eligible.len() >= count {
                return sampler.choose(eligible, count);
            }
            let next = (step + 1) * u64::from(codes::PARAMS.period);
            let wait = next.saturating_sub(codes::unix_now()) + 1;
            eprintln!("  waiting {wait} s for the next time step, so that every code is fresh");
            std::thread::sleep(Duration::from_secs(wait));
        }
    }

    pub(crate) fn used(&mut self, users: &[u32], report: &PamReport) {
        for (&i, a) in users.iter().zip(&report.attempts) {
            let slot = &mut self.last_step[i as usize];
            *slot = (*slot).max(a.step);
        }
    }
}

/// A worker process running one task.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(task: &Task, wrapper: &[String]) -> Result<Worker, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let mut child = cmd
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no worker stdout")?);
        let text = serde_json::to_string(task).map_err(|e| e.to_string())?;
        writeln!(stdin, "{text}").map_err(|e| format!("cannot send the task: {e}"))?;
        Ok(Worker {
            child,
            stdin: Some(stdin),
            stdout,
        })
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("worker output: {e}"))?;
        if line.is_empty() {
            return Err("the worker ended without a report".into());
        }
        Ok(line)
    }

    fn go(&mut self) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("worker stdin closed")?;
        writeln!(stdin, "go")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot start the worker: {e}"))
    }

    fn finish<T: DeserializeOwned>(mut self) -> Result<T, String> {
        let line = self.line()?;
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("worker failed: {status}"));
        }
        serde_json::from_str(&line).map_err(|e| format!("bad worker report: {e}"))
    }
}

/// Runs one task in one worker.
///
/// # Errors
/// If the worker fails.
pub fn run_task<T: DeserializeOwned>(task: &Task, wrapper: &[String]) -> Result<T, String> {
    Worker::spawn(task, wrapper)?.finish()
}

/// The namespace, the syslog sink and the open counter, set up once.
pub struct World {
    /// The benchmark directory.
    pub layout: Layout,
    /// Lines modules sent to `/dev/log`.
    pub syslog: SyslogSink,
    /// Opens of `/etc/passwd` and `/etc/group`.
    pub opens: OpenCounter,
}

impl World {
    /// Binds the syslog socket, enters the namespace, then starts the
    /// threads (a threaded process cannot unshare its mount namespace).
    ///
    /// # Errors
    /// Any mount or socket failure.
    pub fn enter(layout: &Layout) -> Result<World, String> {
        let socket_path = layout.log_socket();
        let _ = std::fs::remove_file(&socket_path);
        let socket = UnixDatagram::bind(&socket_path)
            .map_err(|e| format!("cannot bind {}: {e}", socket_path.display()))?;
        sandbox::enter(&Mounts {
            host_etc: &layout.host_etc(),
            pam_d: &layout.pam_d(),
            passwd: &layout.passwd(),
            group: &layout.group(),
            dev_log: &socket_path,
        })?;
        Ok(World {
            syslog: SyslogSink::start(socket, &socket_path)?,
            opens: OpenCounter::watch(&layout.passwd(), &layout.group())?,
            layout: layout.clone(),
        })
    }

    /// Runs a PAM task in one worker, with the syslog lines and name-service
    /// opens it caused.
    ///
    /// # Errors
    /// If the worker fails.
    pub fn scenario(&mut self, task: &Task, wrapper: &[String]) -> Result<Run, String> {
        let lines = self.syslog.snapshot();
        let opens = self.opens.snapshot();
        let report: PamReport = run_task(task, wrapper)?;
        settle();
        let after = self.opens.snapshot();
        Ok(Run {
            report,
            passwd_opens: after.0 - opens.0,
            group_opens: after.1 - opens.1,
            syslog: sink::difference(&lines, &self.syslog.snapshot()),
        })
    }
}

pub(crate) fn job_users(seed: &Seed, users: &[u32]) -> Vec<JobUser> {
    users
        .iter()
        .map(|&i| JobUser {
            name: population::user_name(i),
            secret_hex: hex_encode(&seed.secret(i).0).to_string(),
        })
        .collect()
}

fn pam_task(module: Module, answer: Answer, users: Vec<JobUser>, wait_for_go: bool) -> Task {
    Task::Pam {
        service: module.service().to_owned(),
        answer,
        users,
        wait_for_go,
    }
}

/// How much faster two CPU-bound processes finish the same work each than
/// one does alone, right now: the ceiling for any two-process speed-up.
fn cpu_parallelism() -> Result<f64, String> {
    const ROUNDS: u64 = 200_000;
    let task = |wait_for_go| Task::Spin {
        rounds: ROUNDS,
        wait_for_go,
    };
    let one: SpinReport = run_task(&task(false), &[])?;
    let (a, b): (SpinReport, SpinReport) = pair(&task(true), &task(true))?;
    let single = one.end_ns.saturating_sub(one.start_ns) as f64;
    let both = a
        .end_ns
        .max(b.end_ns)
        .saturating_sub(a.start_ns.min(b.start_ns)) as f64;
    Ok(if both > 0.0 { 2.0 * single / both } else { 0.0 })
}

/// Two workers started at the same moment.
pub(crate) fn pair<T: DeserializeOwned>(a: &Task, b: &Task) -> Result<(T, T), String> {
    let mut first = Worker::spawn(a, &[])?;
    let mut second = Worker::spawn(b, &[])?;
    for w in [&mut first, &mut second] {
        let line = w.line()?;
        if line.trim() != "ready" {
            return Err(format!("worker said {line:?} instead of ready"));
        }
    }
    first.go()?;
    second.go()?;
    Ok((first.finish()?, second.finish()?))
}

fn prepare(opts: &Options) -> Result<(Layout, PathBuf), String> {
    prepare_in(&opts.work, &opts.module)
}

/// Makes the benchmark directory `work` afresh for the pam_mfa `module`:
/// the stacks, pam_mfa's config and key, the spool. Returns the layout and
/// the module's canonical path.
///
/// # Errors
/// Not root, no module, or any I/O or key error.
pub(crate) fn prepare_in(work: &Path, module: &Path) -> Result<(Layout, PathBuf), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("run as root: the benchmark makes a mount namespace".into());
    }
    let module = std::fs::canonicalize(module).map_err(|e| {
        format!(
            "{}: {e} (build it: cargo build --release -p pam_mfa)",
            module.display()
        )
    })?;
    let layout = Layout::create_fresh(work)?;
    layout.write_stacks(&module)?;
    let config = Config::load(&layout.config(), FileTrust::ROOT, &[]).map_err(|e| e.to_string())?;
    admin::init_key(&config.paths, FileTrust::ROOT, codes::unix_now())
        .map_err(|e| e.to_string())?;
    population::make_spool(&layout)?;
    Ok((layout, module))
}

/// Runs the whole benchmark and writes `results.json`, `report.md` and the
/// plot into `opts.out`.
///
/// # Errors
/// The first failure; partial results are kept in `results.json`.
pub fn run(opts: &Options) -> Result<(), String> {
    let begin = Instant::now();
    let started = machine::utc_now();
    if opts.postgres {
        postgres_section(opts)?;
    }
    let (layout, module) = prepare(opts)?;
    // Reads the host's /etc/passwd and /etc/group, so before they are hidden.
    let mut population = Population::new(&layout)?;
    let mut world = World::enter(&layout)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    eprintln!("pam-mfa-bench: working in {}", layout.root.display());
    let nscd = nscd::find();
    if let Err(why) = &nscd {
        eprintln!("pam-mfa-bench: no scenario with nscd: {why}");
    }
    let mut results = Results {
        started,
        elapsed_s: 0.0,
        machine: machine::describe(&layout.root),
        module_path: module.display().to_string(),
        provision: admin_costs::provision(&layout, 3)?,
        spool_scan: Vec::new(),
        spool_flood: Vec::new(),
        module_load: Vec::new(),
        nscd_skipped: nscd.as_ref().err().cloned(),
        sizes: Vec::new(),
    };
    eprintln!("pam-mfa-bench: loading each module in a C program");
    results.module_load = load::measure(&layout, &module, opts.load_reps, ROUNDS)?;
    let mut sampler = Sampler::new()?;
    let mut fresh: [Freshness; 3] = Default::default();
    for &n in &opts.sizes {
        eprintln!("pam-mfa-bench: {n} users");
        let t = Instant::now();
        population.grow_to(n)?;
        for f in &mut fresh {
            f.grow(n);
        }
        let populate_s = t.elapsed().as_secs_f64();
        // Let the writeback of the enrollment settle before measuring.
        std::thread::sleep(Duration::from_secs(2));
        let size = measure_size(
            opts,
            &mut world,
            &population,
            &mut sampler,
            &mut fresh,
            nscd.as_ref().ok(),
            populate_s,
        )?;
        results.sizes.push(size);
        results.elapsed_s = begin.elapsed().as_secs_f64();
        report::save(&opts.out, &results)?;
    }
    eprintln!("pam-mfa-bench: spool search with waiting requests");
    results.spool_scan = admin_costs::spool_scan(&layout, &[0, 100, 1_000, 10_000], 50)?;
    eprintln!("pam-mfa-bench: spool search after a flood under the user's uid");
    results.spool_flood = admin_costs::spool_flood(
        &layout,
        &[("files", 512), ("files", 2_500), ("directories", 100)],
        10,
    )?;
    results.elapsed_s = begin.elapsed().as_secs_f64();
    report::save(&opts.out, &results)?;
    report::render(&opts.out, &results)?;
    eprintln!(
        "pam-mfa-bench: wrote results.json, report.md and latency.png in {}",
        opts.out.display()
    );
    Ok(())
}

fn measure_size(
    opts: &Options,
    world: &mut World,
    population: &Population,
    sampler: &mut Sampler,
    fresh: &mut [Freshness; 3],
    nscd: Option<&nscd::Installed>,
    populate_s: f64,
) -> Result<SizeResult, String> {
    let layout = world.layout.clone();
    let n = population.size();
    let seed = population.seed();
    let sample = opts.sample.min(n as usize);
    let slot = admin_costs::slot_size(&layout)?;
    // The floor is measured in the same rounds as the modules, so that it
    // meets the same conditions on this (possibly shared) disk.
    let mut floor_samples = floor::Samples::default();
    let floor_reps = opts.floor_reps.div_ceil(ROUNDS);
    let load_before = machine::load_average();
    // The same users for every module, so they must be fresh in all three.
    let all = Freshness {
        last_step: (0..fresh[0].last_step.len())
            .map(|i| fresh.iter().map(|f| f.last_step[i]).max().unwrap_or(0))
            .collect(),
    };
    let main = all.pick(sampler, sample);
    let nss: NssReport = run_task(
        &Task::Nss {
            users: main.iter().map(|&i| population::user_name(i)).collect(),
        },
        &[],
    )?;
    // Each scenario runs in rounds that take turns between the modules,
    // so that whatever else the machine does meanwhile falls on all three.
    let chunk = main.len().div_ceil(ROUNDS).max(1);
    let mut wrong: [Vec<Run>; 3] = Default::default();
    let mut right: [Vec<Run>; 3] = Default::default();
    eprintln!("  wrong codes, then right codes, {sample} users");
    for answer in [Answer::Wrong, Answer::Right] {
        for users in main.chunks(chunk) {
            for (k, module) in Module::ALL.into_iter().enumerate() {
                let task = pam_task(module, answer, job_users(&seed, users), false);
                let run = world.scenario(&task, &[])?;
                if answer == Answer::Right {
                    fresh[k].used(users, &run.report);
                    right[k].push(run);
                } else {
                    wrong[k].push(run);
                }
            }
            if answer == Answer::Right {
                floor_samples.extend(floor::measure(&layout.floor_dir(), slot, floor_reps)?);
                settle();
            }
        }
    }
    let floor = floor_samples.floor(slot);
    let wrong = wrong.map(|runs| Scenario::from_runs(&runs));
    let right = right.map(|runs| Scenario::from_runs(&runs));
    let per_process = (opts.sample.min(n as usize / 2) / PAIR_ROUNDS).max(1);
    eprintln!("  two processes, {} users each", per_process * PAIR_ROUNDS);
    let mut pairs: [Vec<(PamReport, PamReport)>; 3] = Default::default();
    for _ in 0..PAIR_ROUNDS {
        for (k, module) in Module::ALL.into_iter().enumerate() {
            let users = fresh[k].pick(sampler, 2 * per_process);
            let (a_users, b_users) = users.split_at(per_process);
            let a = pam_task(module, Answer::Right, job_users(&seed, a_users), true);
            let b = pam_task(module, Answer::Right, job_users(&seed, b_users), true);
            let (ra, rb) = pair(&a, &b)?;
            settle();
            fresh[k].used(a_users, &ra);
            fresh[k].used(b_users, &rb);
            pairs[k].push((ra, rb));
        }
    }
    let cpu_parallelism = cpu_parallelism()?;
    let nscd = nscd
        .map(|d| with_nscd(world, d, &seed, sampler, &mut fresh[0], sample, floor_reps))
        .transpose()?;
    let pairs: Vec<Pair> = pairs
        .iter()
        .zip(&right)
        .map(|(rounds, single)| Pair::from_rounds(rounds, single.per_second))
        .collect();
    let modules = Module::ALL
        .into_iter()
        .zip(right.into_iter().zip(wrong).zip(pairs))
        .map(|(module, ((right, wrong), pair))| ModuleResult {
            module,
            right,
            wrong,
            pair,
        })
        .collect();
    eprintln!("  pam_mfa's steps, one by one");
    let breakdown = breakdown::measure(&layout, &seed, &main)?;
    eprintln!("  self-enrollment and key migration");
    let self_enrollment = admin_costs::self_enrollment(&layout, population, &main)?;
    let migrate = admin_costs::migrate(&layout, &main)?;
    Ok(SizeResult {
        users: n,
        populate_s,
        sample,
        floor,
        nss: NssResult::from_report(&nss),
        nscd,
        modules,
        self_enrollment,
        migrate,
        breakdown,
        cpu_parallelism,
        load_average: (load_before, machine::load_average()),
    })
}

/// pam_mfa's right-code scenario and the lookups alone, for `sample`
/// users whose codes are fresh, with an nscd of the benchmark's own
/// running. A first worker looks each user up once, which fills nscd's
/// cache (a miss each); a second times the lookups again (hits); then the
/// users authenticate, in rounds as in the scenario without nscd, with the
/// disk floor (`floor_reps` per round) measured in the same rounds. The
/// daemon is stopped and its mounts removed before this returns, also on
/// failure.
fn with_nscd(
    world: &mut World,
    nscd: &nscd::Installed,
    seed: &Seed,
    sampler: &mut Sampler,
    fresh: &mut Freshness,
    sample: usize,
    floor_reps: usize,
) -> Result<NscdResult, String> {
    eprintln!("  pam_mfa with nscd, {sample} users");
    let users = fresh.pick(sampler, sample);
    let names: Vec<String> = users.iter().map(|&i| population::user_name(i)).collect();
    let daemon = Daemon::start(nscd, &world.layout.nscd_log())?;
    let fill: NssReport = run_task(
        &Task::Nss {
            users: names.clone(),
        },
        &[],
    )?;
    let hits: NssReport = run_task(&Task::Nss { users: names }, &[])?;
    let slot = admin_costs::slot_size(&world.layout)?;
    let mut floor_samples = floor::Samples::default();
    let chunk = users.len().div_ceil(ROUNDS).max(1);
    let mut runs = Vec::new();
    for part in users.chunks(chunk) {
        let task = pam_task(Module::PamMfa, Answer::Right, job_users(seed, part), false);
        let run = world.scenario(&task, &[])?;
        fresh.used(part, &run.report);
        runs.push(run);
        floor_samples.extend(floor::measure(&world.layout.floor_dir(), slot, floor_reps)?);
        settle();
    }
    daemon.stop()?;
    Ok(NscdResult {
        fill: Summary::of_ns(&fill.lookup_ns),
        nss: NssResult::from_report(&hits),
        right: Scenario::from_runs(&runs),
        floor: floor_samples.floor(slot),
    })
}

/// Options of `profile`.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// A benchmark directory a `run` left behind.
    pub work: PathBuf,
    /// The module to drive.
    pub module: Module,
    /// Users to authenticate (each once).
    pub users: usize,
    /// Right or wrong codes.
    pub answer: Answer,
    /// Prefix of the worker's command line, e.g. `valgrind --tool=callgrind`.
    pub wrapper: Vec<String>,
}

/// Runs one worker inside the namespace of an existing benchmark directory,
/// under `wrapper` (a profiler), and prints what it measured.
///
/// # Errors
/// A missing directory or a failing worker.
pub fn profile(opts: &ProfileOptions) -> Result<(), String> {
    let layout = Layout::existing(&opts.work)?;
    let (seed, n) = Seed::load(&layout)?;
    let mut world = World::enter(&layout)?;
    let mut sampler = Sampler::new()?;
    let users = sampler.choose((1..=n).collect(), opts.users);
    // A run that just ended may have used these users' current codes.
    let step = codes::step_of(codes::unix_now());
    let next = (step + 1) * u64::from(codes::PARAMS.period);
    std::thread::sleep(Duration::from_secs(
        next.saturating_sub(codes::unix_now()) + 1,
    ));
    let task = pam_task(opts.module, opts.answer, job_users(&seed, &users), false);
    let s = Scenario::from_runs(&[world.scenario(&task, &opts.wrapper)?]);
    println!(
        "{} {n} users: {}/{} succeeded; pam_authenticate median {:.1} us, p99 {:.1} us; transaction median {:.1} us, overhead median {:.1} us; peak RSS {} KiB ({} before); passwd opens {}, group opens {}, syslog lines {}",
        opts.module.label(),
        s.successes,
        s.attempts,
        s.auth.median_us,
        s.auth.p99_us,
        s.txn.median_us,
        s.overhead.median_us,
        s.rss_peak_kb,
        s.rss_start_kb,
        s.passwd_opens,
        s.group_opens,
        s.syslog.values().sum::<u64>(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_sampler_picks_distinct_users() {
        let mut s = Sampler(42);
        let picked = s.choose((1..=1000).collect(), 200);
        assert_eq!(picked.len(), 200);
        assert_eq!(picked.iter().collect::<HashSet<_>>().len(), 200);
        assert!(picked.iter().all(|i| (1..=1000).contains(i)));
        assert_eq!(s.choose(vec![1, 2, 3], 10).len(), 3);
    }

    #[test]
    fn users_who_just_used_a_code_are_not_picked_again_in_that_step() {
        let step = codes::step_of(codes::unix_now());
        let mut fresh = Freshness::default();
        fresh.grow(4);
        fresh.last_step[1] = step + 5;
        fresh.last_step[2] = step + 5;
        let picked = fresh.pick(&mut Sampler(7), 2);
        assert_eq!(
            picked.iter().copied().collect::<HashSet<_>>(),
            HashSet::from([3, 4])
        );
    }
}

//! pam_mfa on the PostgreSQL store, against the floor of what such a login
//! must cost, in one run on loopback.
//!
//! A throwaway server (the end-to-end harness's: TLS from a test CA, SCRAM
//! passwords) holds one row per synthetic user. Two "hosts" share it: two
//! pam_mfa configs with their own state directories, the same master key
//! and the same database, each behind a PAM service of its own
//! (`bench-pg-a`, `bench-pg-b`) and driven by one worker process, the two
//! at once, with real codes through the real libpam. Each login is one
//! connection, reads before the prompt and commits after it.
//!
//! The floor is [`pg_floor`](crate::pg_floor): one libpq connection, one
//! SELECT and one UPDATE of the same row size per login, two copies at
//! once, with the same connection settings (TLS included), measured in the
//! same rounds as the module so that both meet the same machine. pam_mfa
//! on the files backend runs in those rounds too, for scale.
//!
//! Two more measurements say where the time goes: the floor's own steps
//! (connect, SELECT, UPDATE, close), and pam_mfa's row client
//! (`mfa_core::store::postgres::Client`) driven step by step in this
//! process, with `host` resolved and with `hostaddr` given. The server's
//! statistics count the index scans of each login (one per statement).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::record::{Device, Record};
use mfa_core::store::postgres::{self as pgstore, Client, Settings};
use mfa_core::store::{Owner, Store};
use pam_mfa_e2e::postgres::Postgres;
use zeroize::Zeroizing;

use crate::codes;
use crate::job::{Answer, PamReport, Task};
use crate::machine;
use crate::pg_floor;
use crate::pg_results::{
    markdown, ClientSteps, FloorSteps, ModeResult, PairRounds, PgResults, SslMode,
};
use crate::population::{self, write_file, Layout, Population};
use crate::run::{self, Freshness, Sampler, World};
use crate::stats::Summary;

/// The database the hosts share.
const DATABASE: &str = "pam_mfa";
/// Owns the database and the table; enrolls.
const OWNER_ROLE: &str = "pam_mfa_admin";
/// What the hosts (and the floor) log in as: SELECT and UPDATE only.
const LOGIN_ROLE: &str = "pam_mfa_login";
/// Throwaway passwords: the server listens on loopback and lives for one run.
const OWNER_PASSWORD: &str = "bench-owner-password";
const LOGIN_PASSWORD: &str = "bench-login-password";
/// The two hosts.
const HOSTS: [&str; 2] = ["a", "b"];
/// The store deadline in the hosts' configs: far above any login here, so
/// that it never decides a result.
const TIMEOUT_MS: u32 = 10_000;
/// `updated_by` of the rows the benchmark writes itself.
const BENCH_HOST: &str = "pam-mfa-bench";

/// What `postgres` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The benchmark directory (emptied first).
    pub work: PathBuf,
    /// Where `postgres.json` and `postgres.md` go.
    pub out: PathBuf,
    /// The pam_mfa module to load.
    pub module: PathBuf,
    /// Synthetic users (each enrolled in the database and in files).
    pub users: u32,
    /// Logins per process per round.
    pub logins: usize,
    /// Rounds per TLS setting.
    pub rounds: usize,
    /// TLS settings to measure, in order.
    pub modes: Vec<SslMode>,
    /// Logins of the step-by-step client measurement, per variant.
    pub client_logins: usize,
}

/// The PAM service of host `h`.
fn service(h: &str) -> String {
    format!("bench-pg-{h}")
}

/// Host `h`'s directory.
fn host_dir(layout: &Layout, h: &str) -> PathBuf {
    layout.path(&format!("pg/host-{h}"))
}

fn connection_file(layout: &Layout, h: &str) -> PathBuf {
    host_dir(layout, h).join("postgres.conf")
}

/// The floor's row names of copy `h`.
fn floor_name(h: &str, i: usize) -> String {
    format!("pgfloor-{h}-{i:06}")
}

fn mkdir(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .mode(mode)
        .recursive(true)
        .create(path)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Writes each host's directory, config and PAM service (the connection
/// file comes with each TLS setting).
fn write_hosts(layout: &Layout, module: &Path) -> Result<(), String> {
    let quoted = |p: PathBuf| format!("\"{}\"", p.display());
    for h in HOSTS {
        let dir = host_dir(layout, h);
        mkdir(&dir, 0o755)?;
        mkdir(&dir.join("state"), 0o700)?;
        let config = dir.join("pam_mfa.toml");
        write_file(
            &config,
            &format!(
                "# pam_mfa for the benchmark, host {h}: the shared PostgreSQL store.\n\
                 [throttle]\nfail_delay_ms = 0\n\n[paths]\nstate_dir = {}\nkey_file = {}\n\
                 enroll_public_key = {}\nspool_dir = {}\n\n[store]\nbackend = \"postgres\"\n\
                 connection_file = {}\ntimeout_ms = {TIMEOUT_MS}\n",
                quoted(dir.join("state")),
                quoted(layout.key_file()),
                quoted(layout.enroll_public_key()),
                quoted(layout.spool_dir()),
                quoted(connection_file(layout, h)),
            ),
            0o644,
        )?;
        write_file(
            &layout.pam_d().join(service(h)),
            &format!(
                "auth required {} config={}\n",
                module.display(),
                config.display()
            ),
            0o644,
        )?;
    }
    Ok(())
}

/// The login role's connection string for `mode`: the harness's for
/// verify-full (`host=localhost`, the test CA).
fn login_conninfo(pg: &Postgres, mode: SslMode) -> String {
    match mode {
        SslMode::VerifyFull => pg.conninfo(DATABASE, LOGIN_ROLE, LOGIN_PASSWORD),
        SslMode::Disable => format!(
            "host=localhost port={} dbname={DATABASE} user={LOGIN_ROLE} \
             password={LOGIN_PASSWORD} sslmode=disable",
            pg.port()
        ),
    }
}

/// The floor's: the same, and no GSSAPI encryption attempt first (libpq's
/// `gssencmode=prefer` looks for Kerberos credentials on every connect;
/// pam_mfa's client never does), so that the floor is as low as libpq goes.
fn floor_conninfo(pg: &Postgres, mode: SslMode) -> String {
    format!("{} gssencmode=disable", login_conninfo(pg, mode))
}

/// The owner's settings, for enrolling and the schema.
fn owner_settings(pg: &Postgres) -> Result<Settings, String> {
    Settings::parse(
        &pg.conninfo(DATABASE, OWNER_ROLE, OWNER_PASSWORD),
        Duration::from_secs(60),
    )
    .map_err(|e| format!("the owner's connection string: {e}"))
}

/// Roles, database, table, grants; the users' rows and the floor's.
fn set_up_database(
    pg: &Postgres,
    layout: &Layout,
    population: &Population,
    floor_rows: usize,
) -> Result<(), String> {
    pg.create_role(OWNER_ROLE, OWNER_PASSWORD);
    pg.create_role(LOGIN_ROLE, LOGIN_PASSWORD);
    pg.create_database(DATABASE, OWNER_ROLE);
    Client::new(owner_settings(pg)?)
        .init_schema()
        .map_err(|e| format!("cannot create the table: {e}"))?;
    pg.sql_in(DATABASE, &pgstore::grants(LOGIN_ROLE, false));
    let keys = MasterKey::load(&layout.key_file(), FileTrust::ROOT).map_err(|e| e.to_string())?;
    let store = Store::postgres(
        Client::new(owner_settings(pg)?),
        layout.state_dir(),
        BENCH_HOST,
    );
    let seed = population.seed();
    let now = codes::unix_now();
    for i in 1..=population.size() {
        let name = population::user_name(i);
        let mut record = Record::new(&name, now);
        record.devices.push(Device {
            name: "phone".into(),
            secret: Zeroizing::new(seed.secret(i).0.to_vec()),
            params: codes::PARAMS,
            created: now,
            last_used_step: None,
        });
        record.recovery = Some(population.recovery().clone());
        store
            .open_user(Owner::new(population::uid(i), name.clone()), &keys)
            .and_then(|mut state| state.rewrite(&record, &keys))
            .map_err(|e| format!("row of {name}: {e}"))?;
    }
    // The floor's rows: a copy of a user's sealed record each, so the same
    // size as a login writes.
    for h in HOSTS {
        pg.sql_in(
            DATABASE,
            &format!(
                "INSERT INTO {table} (name, version, key_generation, sealed, updated_by) \
                 SELECT format('pgfloor-{h}-%s', lpad(i::text, 6, '0')), 1, key_generation, \
                 sealed, '{BENCH_HOST}' FROM {table}, generate_series(1, {floor_rows}) AS i \
                 WHERE name = '{first}';",
                table = pgstore::TABLE,
                first = population::user_name(1),
            ),
        );
    }
    pg.sql_in(DATABASE, &format!("VACUUM ANALYZE {};", pgstore::TABLE));
    Ok(())
}

/// Index scans and updated rows of the table so far, once the backends of
/// finished logins have reported them.
fn table_counters(pg: &Postgres) -> Result<(u64, u64), String> {
    // A backend reports its counts as it exits, just after its client left.
    std::thread::sleep(Duration::from_millis(500));
    let text = pg.sql_in(
        DATABASE,
        &format!(
            "SELECT coalesce(idx_scan, 0), n_tup_upd FROM pg_stat_user_tables \
             WHERE relname = '{}';",
            pgstore::TABLE
        ),
    );
    let (scans, updates) = text
        .split_once('|')
        .ok_or_else(|| format!("unexpected statistics {text:?}"))?;
    let number = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("unexpected statistics {text:?}"))
    };
    Ok((number(scans)?, number(updates)?))
}

/// Drives pam_mfa's row client one step at a time for each of `names`, as
/// a login uses it: read, replace, drop. Each login's steps in ns: read,
/// replace, drop, all.
fn client_steps(conninfo: &str, names: &[String]) -> Result<Vec<[u64; 4]>, String> {
    let settings = Settings::parse(conninfo, Duration::from_millis(u64::from(TIMEOUT_MS)))
        .map_err(|e| format!("connection string: {e}"))?;
    let mut steps = Vec::with_capacity(names.len());
    let ns = |t: Instant| u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
    for name in names {
        let client = Client::new(settings.clone());
        let t = Instant::now();
        let row = client
            .read(name)
            .map_err(|e| format!("read {name}: {e}"))?
            .ok_or_else(|| format!("no row {name}"))?;
        let read = ns(t);
        let next = pgstore::Row {
            version: row.version + 1,
            generation: row.generation,
            sealed: row.sealed,
        };
        let t = Instant::now();
        let changed = client
            .replace(name, row.version, &next, BENCH_HOST)
            .map_err(|e| format!("replace {name}: {e}"))?;
        let replace = ns(t);
        if !changed {
            return Err(format!("the row of {name} changed under the client steps"));
        }
        let t = Instant::now();
        drop(client);
        let gone = ns(t);
        steps.push([read, replace, gone, read + replace + gone]);
    }
    Ok(steps)
}

fn pam_task(service: &str, users: Vec<crate::job::JobUser>) -> Task {
    Task::Pam {
        service: service.to_owned(),
        answer: Answer::Right,
        users,
        wait_for_go: true,
    }
}

/// The state shared by the TLS settings' measurements.
struct Bench<'a> {
    world: &'a mut World,
    population: &'a Population,
    pg: &'a Postgres,
    floor_program: PathBuf,
    sampler: Sampler,
    fresh_pg: Freshness,
    fresh_files: Freshness,
    logins: usize,
    rounds: usize,
    client_logins: usize,
}

/// What the rounds of one TLS setting gathered.
#[derive(Default)]
struct Gathered {
    module: PairRounds,
    floor: PairRounds,
    files: PairRounds,
    floor_samples: Vec<pg_floor::Sample>,
    module_scans: u64,
    floor_scans: u64,
}

/// The three scenarios of a round.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    Module,
    Floor,
    Files,
}

impl Bench<'_> {
    /// Writes the hosts' connection files for `mode` and reads a row with
    /// them in this process first, so that a server the module cannot
    /// reach is reported with the reason rather than as failed logins.
    fn connect_hosts(&self, mode: SslMode) -> Result<String, String> {
        let conninfo = login_conninfo(self.pg, mode);
        for h in HOSTS {
            write_file(
                &connection_file(&self.world.layout, h),
                &format!("{conninfo}\n"),
                0o600,
            )?;
        }
        let probe = Settings::parse(&conninfo, Duration::from_millis(u64::from(TIMEOUT_MS)))
            .map_err(|e| format!("the hosts' connection string: {e}"))?;
        Client::new(probe)
            .read(&population::user_name(1))
            .map_err(|e| format!("the hosts cannot read a row (sslmode={}): {e}", mode.word()))?;
        Ok(conninfo)
    }

    /// Runs one scenario of a round: two processes at once.
    fn scenario(
        &mut self,
        which: Scenario,
        mode: SslMode,
        floor_lists: &[Vec<String>],
        into: &mut Gathered,
    ) -> Result<(), String> {
        let seed = self.population.seed();
        match which {
            Scenario::Module => {
                let users = self.fresh_pg.pick(&mut self.sampler, 2 * self.logins);
                let (a, b) = users.split_at(self.logins);
                let before = table_counters(self.pg)?;
                let (ra, rb): (PamReport, PamReport) = run::pair(
                    &pam_task(&service(HOSTS[0]), run::job_users(&seed, a)),
                    &pam_task(&service(HOSTS[1]), run::job_users(&seed, b)),
                )?;
                into.module_scans += table_counters(self.pg)?.0 - before.0;
                self.fresh_pg.used(a, &ra);
                self.fresh_pg.used(b, &rb);
                into.module.add_pam(&[ra, rb]);
            }
            Scenario::Floor => {
                let before = table_counters(self.pg)?;
                let outputs = pg_floor::run(
                    &self.floor_program,
                    &floor_conninfo(self.pg, mode),
                    floor_lists,
                )?;
                into.floor_scans += table_counters(self.pg)?.0 - before.0;
                into.floor.add_floor(&outputs);
                into.floor_samples
                    .extend(outputs.into_iter().flat_map(|o| o.samples));
            }
            Scenario::Files => {
                let users = self.fresh_files.pick(&mut self.sampler, 2 * self.logins);
                let (a, b) = users.split_at(self.logins);
                let (ra, rb): (PamReport, PamReport) = run::pair(
                    &pam_task(population::SERVICE_MFA, run::job_users(&seed, a)),
                    &pam_task(population::SERVICE_MFA, run::job_users(&seed, b)),
                )?;
                self.fresh_files.used(a, &ra);
                self.fresh_files.used(b, &rb);
                into.files.add_pam(&[ra, rb]);
            }
        }
        run::settle();
        Ok(())
    }

    /// pam_mfa's client step by step (both variants) and the floor, one
    /// process at a time, in rounds that take turns between them.
    fn alone(
        &self,
        mode: SslMode,
        conninfo: &str,
        names: &[String],
    ) -> Result<(Vec<ClientSteps>, Vec<pg_floor::Sample>), String> {
        let variants = [
            ("host=localhost", conninfo.to_owned()),
            (
                "host=localhost hostaddr=127.0.0.1",
                format!("{conninfo} hostaddr=127.0.0.1"),
            ),
        ];
        let mut raw: [Vec<[u64; 4]>; 2] = Default::default();
        let mut floor = Vec::new();
        for part in names.chunks(names.len().div_ceil(self.rounds).max(1)) {
            for (samples, (_, info)) in raw.iter_mut().zip(&variants) {
                samples.extend(client_steps(info, part)?);
            }
            let outputs = pg_floor::run(
                &self.floor_program,
                &floor_conninfo(self.pg, mode),
                &[part.to_vec()],
            )?;
            floor.extend(outputs.into_iter().flat_map(|o| o.samples));
        }
        let client = variants
            .iter()
            .zip(&raw)
            .map(|((label, _), samples)| ClientSteps::of(label, samples))
            .collect();
        Ok((client, floor))
    }

    fn mode(&mut self, mode: SslMode) -> Result<ModeResult, String> {
        let conninfo = self.connect_hosts(mode)?;
        let floor_lists: Vec<Vec<String>> = HOSTS
            .iter()
            .map(|h| (1..=self.logins).map(|i| floor_name(h, i)).collect())
            .collect();
        let mut gathered = Gathered::default();
        let load_before = machine::load_average();
        for round in 0..self.rounds {
            eprintln!(
                "  sslmode={}, round {} of {}: pam_mfa on two hosts, the libpq floor, pam_mfa on files",
                mode.word(),
                round + 1,
                self.rounds
            );
            // Each round starts with another scenario, so that none is
            // always the one that follows the same other.
            let order = [Scenario::Module, Scenario::Floor, Scenario::Files];
            for k in 0..order.len() {
                let which = order[(round + k) % order.len()];
                self.scenario(which, mode, &floor_lists, &mut gathered)?;
            }
        }
        let load_after = machine::load_average();
        let module = gathered.module.figures();
        if module.successes == 0 {
            return Err(format!(
                "no pam_mfa login on PostgreSQL succeeded (return codes {:?}); see the syslog lines and {}",
                module.other_codes,
                self.world.layout.root.display()
            ));
        }
        let floor = gathered.floor.figures();
        eprintln!("  sslmode={}: pam_mfa's client step by step", mode.word());
        let names = &floor_lists[0][..self.client_logins.min(self.logins)];
        let (client_steps, alone) = self.alone(mode, &conninfo, names)?;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Ok(ModeResult {
            sslmode: mode,
            ratio_login: ratio(module.login.median_us, floor.login.median_us),
            ratio_transaction: ratio(module.transaction.median_us, floor.login.median_us),
            module_scans_per_login: ratio(gathered.module_scans as f64, module.logins as f64),
            floor_scans_per_login: ratio(gathered.floor_scans as f64, floor.logins as f64),
            module,
            floor,
            files: gathered.files.figures(),
            floor_steps: FloorSteps::of(&gathered.floor_samples),
            client_steps,
            floor_alone: FloorSteps::of(&alone),
            floor_alone_total: Summary::of_ns(
                &alone
                    .iter()
                    .map(pg_floor::Sample::total)
                    .collect::<Vec<_>>(),
            ),
            load_average: (load_before, load_after),
        })
    }
}

/// Runs the whole comparison and writes `postgres.json` and `postgres.md`
/// into `opts.out`.
///
/// # Errors
/// The first failure.
pub fn run(opts: &Options) -> Result<(), String> {
    let begin = Instant::now();
    let started = machine::utc_now();
    let (layout, module) = run::prepare_in(&opts.work, &opts.module)?;
    write_hosts(&layout, &module)?;
    let floor_program = pg_floor::build(&layout.tools_dir())?;
    let mut population = Population::new(&layout)?;
    let mut world = World::enter(&layout)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    eprintln!(
        "pam-mfa-bench: {} users in files and in PostgreSQL, in {}",
        opts.users,
        layout.root.display()
    );
    population.grow_to(opts.users)?;
    let pg = Postgres::start();
    set_up_database(&pg, &layout, &population, opts.logins)?;
    let server_version = pg.sql("SELECT version();");
    let scram = pg
        .sql(&format!(
            "SELECT split_part(rolpassword, ':', 1) FROM pg_authid WHERE rolname = '{LOGIN_ROLE}';"
        ))
        .trim()
        .to_owned();
    let mut fresh_pg = Freshness::default();
    fresh_pg.grow(opts.users);
    let mut fresh_files = Freshness::default();
    fresh_files.grow(opts.users);
    let mut bench = Bench {
        world: &mut world,
        population: &population,
        pg: &pg,
        floor_program,
        sampler: Sampler::new()?,
        fresh_pg,
        fresh_files,
        logins: opts.logins,
        rounds: opts.rounds,
        client_logins: opts.client_logins,
    };
    let mut modes = Vec::new();
    for &mode in &opts.modes {
        modes.push(bench.mode(mode)?);
    }
    let results = PgResults {
        started,
        elapsed_s: begin.elapsed().as_secs_f64(),
        machine: machine::describe(&layout.root),
        module_path: module.display().to_string(),
        server_version,
        scram,
        users: opts.users,
        logins_per_process: opts.logins,
        rounds: opts.rounds,
        modes,
    };
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    let json_path = opts.out.join("postgres.json");
    std::fs::write(&json_path, json + "\n").map_err(|e| format!("{}: {e}", json_path.display()))?;
    let md = markdown(&results);
    let md_path = opts.out.join("postgres.md");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    print!("{md}");
    eprintln!(
        "pam-mfa-bench: wrote postgres.json and postgres.md in {}",
        opts.out.display()
    );
    Ok(())
}

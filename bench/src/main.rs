//! pam-mfa-bench: measures `pam_mfa.so` against google-authenticator-libpam
//! and `pam_oath` through the real libpam, in one run on one machine.
//!
//! ```text
//! pam-mfa-bench run [--users 100,1000,10000,100000] [--sample 200]
//!                   [--work DIR] [--out DIR] [--module PATH] [--floor-reps N]
//!                   [--load-reps N] [--no-postgres]
//! pam-mfa-bench report [--out DIR]
//! pam-mfa-bench profile [--work DIR] [--module-under-test mfa|ga|oath]
//!                       [--users N] [--wrong] -- WRAPPER [ARG]...
//! pam-mfa-bench config-load [--config PATH] [--reps N]
//! pam-mfa-bench bulk-enroll [--users N] [--work DIR] [--mfa-enroll PATH]
//! pam-mfa-bench postgres [--users N] [--logins N] [--rounds N]
//!                        [--sslmode verify-full|disable|both] [--client-logins N]
//!                        [--work DIR] [--out DIR] [--module PATH]
//! ```
//!
//! `run` enrolls N synthetic users in all three modules, enters a private
//! mount namespace (its own `/etc/pam.d`, `/etc/passwd`, `/etc/group` and
//! `/dev/log`), and drives PAM transactions from worker processes. See
//! docs/benchmarks.md. Needs root.
// Timings become floating-point microseconds for the tables; the counts
// involved are far below 2^52.
#![allow(clippy::cast_precision_loss)]

mod admin_costs;
mod breakdown;
mod bulk_enroll;
mod codes;
mod config_load;
mod floor;
mod job;
mod load;
mod machine;
mod nscd;
mod pg_floor;
mod pg_results;
mod population;
mod postgres;
mod report;
mod results;
mod run;
mod sandbox;
mod sink;
mod stats;
mod worker;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::job::Answer;
use crate::results::Module;

const USAGE: &str = "\
usage: pam-mfa-bench run [--users 100,1000,10000,100000] [--sample 200]
                         [--work DIR] [--out DIR] [--module PATH] [--floor-reps N]
                         [--load-reps N] [--no-postgres]
       pam-mfa-bench report [--out DIR]
       pam-mfa-bench profile [--work DIR] [--module-under-test mfa|ga|oath]
                             [--users N] [--wrong] -- WRAPPER [ARG]...
       pam-mfa-bench config-load [--config PATH] [--reps N]
       pam-mfa-bench bulk-enroll [--users N] [--work DIR] [--mfa-enroll PATH]
       pam-mfa-bench postgres [--users N] [--logins N] [--rounds N]
                              [--sslmode verify-full|disable|both] [--client-logins N]
                              [--work DIR] [--out DIR] [--module PATH]

run      enrolls the users in pam_mfa, google-authenticator and pam_oath, then
         measures each module through libpam in a private mount namespace and
         writes results.json, report.md and latency.png into --out.
         Defaults: --work /var/tmp/pam-mfa-bench (emptied first; it must be on
         the disk to measure), --out target/bench,
         --module target/release/libpam_mfa.so, --floor-reps 500,
         --load-reps 1000 (loads of each module in a C program, which is
         compiled with cc). With nscd installed, pam_mfa is measured with a
         private nscd too. First runs `postgres` (below) with its defaults
         and --work DIR-pg, unless --no-postgres.
report   renders report.md and latency.png again from --out/results.json.
profile  authenticates --users random users (default 200) of the population
         a run left in --work, in its namespace, with the worker started under
         WRAPPER (e.g. valgrind --tool=callgrind, or perf record -g).
config-load  times Config::load in this process, with and without module
         arguments (defaults: --config config/pam_mfa.toml, the annotated
         default, which must be owned by root; --reps 20000).
bulk-enroll  provisions --users synthetic users (default 1000) with one
         `mfa-enroll enroll --users-from FILE --json` in the benchmark's
         namespace and prints users per second (defaults: --work as for run,
         emptied first; --mfa-enroll target/release/mfa-enroll).
postgres pam_mfa on the PostgreSQL store on loopback: a throwaway server
         (PostgreSQL 15 from Debian, run as the postgres user), two hosts'
         configs sharing it, one worker process each, against a libpq floor
         (one connection, one SELECT, one UPDATE per login; compiled with cc
         and libpq-dev) and pam_mfa on files, in the same rounds. Writes
         postgres.json and postgres.md into --out. Defaults: --users 2000,
         --logins 100 (per process per round), --rounds 5, --sslmode both
         (verify-full, then disable), --client-logins 100,
         --work /var/tmp/pam-mfa-bench-pg (emptied first), --out and
         --module as for run.

Needs root (mount namespace, files owned by root).";

fn value(args: &mut impl Iterator<Item = OsString>, flag: &str) -> Result<OsString, String> {
    args.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn text(args: &mut impl Iterator<Item = OsString>, flag: &str) -> Result<String, String> {
    value(args, flag)?
        .into_string()
        .map_err(|_| format!("{flag} is not UTF-8"))
}

fn number<T: std::str::FromStr>(
    args: &mut impl Iterator<Item = OsString>,
    flag: &str,
) -> Result<T, String> {
    text(args, flag)?
        .parse()
        .map_err(|_| format!("{flag} takes a number"))
}

fn default_work() -> PathBuf {
    PathBuf::from("/var/tmp/pam-mfa-bench")
}

fn default_out() -> PathBuf {
    PathBuf::from("target/bench")
}

fn parse_run(mut args: impl Iterator<Item = OsString>) -> Result<run::Options, String> {
    let mut opts = run::Options {
        sizes: vec![100, 1_000, 10_000, 100_000],
        sample: 200,
        work: default_work(),
        out: default_out(),
        module: PathBuf::from("target/release/libpam_mfa.so"),
        floor_reps: 500,
        load_reps: 1000,
        postgres: true,
    };
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        match flag.as_str() {
            "--users" => {
                let mut sizes = text(&mut args, &flag)?
                    .split(',')
                    .map(|n| n.trim().parse::<u32>().ok().filter(|&n| n >= 2))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("--users takes sizes of at least 2, comma-separated")?;
                sizes.sort_unstable();
                sizes.dedup();
                opts.sizes = sizes;
            }
            "--sample" => opts.sample = number(&mut args, &flag)?,
            "--work" => opts.work = value(&mut args, &flag)?.into(),
            "--out" => opts.out = value(&mut args, &flag)?.into(),
            "--module" => opts.module = value(&mut args, &flag)?.into(),
            "--floor-reps" => opts.floor_reps = number(&mut args, &flag)?,
            "--load-reps" => opts.load_reps = number(&mut args, &flag)?,
            "--no-postgres" => opts.postgres = false,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if opts.sample == 0 || opts.floor_reps == 0 || opts.load_reps == 0 {
        return Err("--sample, --floor-reps and --load-reps must be at least 1".into());
    }
    Ok(opts)
}

fn parse_profile(mut args: impl Iterator<Item = OsString>) -> Result<run::ProfileOptions, String> {
    let mut opts = run::ProfileOptions {
        work: default_work(),
        module: Module::PamMfa,
        users: 200,
        answer: Answer::Right,
        wrapper: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        match flag.as_str() {
            "--work" => opts.work = value(&mut args, &flag)?.into(),
            "--module-under-test" => {
                opts.module = match text(&mut args, &flag)?.as_str() {
                    "mfa" => Module::PamMfa,
                    "ga" => Module::GoogleAuthenticator,
                    "oath" => Module::PamOath,
                    other => return Err(format!("unknown module {other:?}: mfa, ga or oath")),
                };
            }
            "--users" => opts.users = number(&mut args, &flag)?,
            "--wrong" => opts.answer = Answer::Wrong,
            "--" => {
                opts.wrapper = args
                    .map(|a| {
                        a.into_string()
                            .map_err(|_| "WRAPPER is not UTF-8".to_owned())
                    })
                    .collect::<Result<_, _>>()?;
                break;
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(opts)
}

fn parse_bulk_enroll(
    mut args: impl Iterator<Item = OsString>,
) -> Result<bulk_enroll::Options, String> {
    let mut opts = bulk_enroll::Options {
        work: default_work(),
        users: 1000,
        mfa_enroll: PathBuf::from("target/release/mfa-enroll"),
    };
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        match flag.as_str() {
            "--users" => opts.users = number(&mut args, &flag)?,
            "--work" => opts.work = value(&mut args, &flag)?.into(),
            "--mfa-enroll" => opts.mfa_enroll = value(&mut args, &flag)?.into(),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if opts.users == 0 {
        return Err("--users must be at least 1".into());
    }
    Ok(opts)
}

fn parse_postgres(mut args: impl Iterator<Item = OsString>) -> Result<postgres::Options, String> {
    let mut opts = postgres::Options {
        work: PathBuf::from("/var/tmp/pam-mfa-bench-pg"),
        out: default_out(),
        module: PathBuf::from("target/release/libpam_mfa.so"),
        users: 2000,
        logins: 100,
        rounds: 5,
        modes: vec![
            pg_results::SslMode::VerifyFull,
            pg_results::SslMode::Disable,
        ],
        client_logins: 100,
    };
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        match flag.as_str() {
            "--users" => opts.users = number(&mut args, &flag)?,
            "--logins" => opts.logins = number(&mut args, &flag)?,
            "--rounds" => opts.rounds = number(&mut args, &flag)?,
            "--client-logins" => opts.client_logins = number(&mut args, &flag)?,
            "--sslmode" => {
                opts.modes = match text(&mut args, &flag)?.as_str() {
                    "verify-full" => vec![pg_results::SslMode::VerifyFull],
                    "disable" => vec![pg_results::SslMode::Disable],
                    "both" => vec![
                        pg_results::SslMode::VerifyFull,
                        pg_results::SslMode::Disable,
                    ],
                    other => {
                        return Err(format!(
                            "unknown sslmode {other:?}: verify-full, disable or both"
                        ))
                    }
                };
            }
            "--work" => opts.work = value(&mut args, &flag)?.into(),
            "--out" => opts.out = value(&mut args, &flag)?.into(),
            "--module" => opts.module = value(&mut args, &flag)?.into(),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if opts.logins == 0 || opts.rounds == 0 || opts.client_logins == 0 {
        return Err("--logins, --rounds and --client-logins must be at least 1".into());
    }
    // The client steps reuse the floor's rows, --logins of them per copy.
    opts.client_logins = opts.client_logins.min(opts.logins);
    // Each round needs 2 x --logins users whose codes are fresh.
    if (opts.users as usize) < 2 * opts.logins {
        return Err("--users must be at least twice --logins".into());
    }
    Ok(opts)
}

fn dispatch(mut args: impl Iterator<Item = OsString>) -> Result<(), String> {
    match args.next().and_then(|a| a.into_string().ok()).as_deref() {
        Some("run") => run::run(&parse_run(args)?),
        Some("report") => {
            let out = match (args.next(), args.next()) {
                (None, _) => default_out(),
                (Some(flag), Some(dir)) if flag == "--out" => dir.into(),
                _ => return Err(USAGE.into()),
            };
            report::render(&out, &report::load(&out)?)
        }
        Some("profile") => run::profile(&parse_profile(args)?),
        Some("config-load") => {
            let mut config = PathBuf::from("config/pam_mfa.toml");
            let mut reps = 20_000;
            while let Some(arg) = args.next() {
                let flag = arg.to_string_lossy().into_owned();
                match flag.as_str() {
                    "--config" => config = value(&mut args, &flag)?.into(),
                    "--reps" => reps = number(&mut args, &flag)?,
                    _ => return Err(format!("unknown argument {flag:?}")),
                }
            }
            if reps == 0 {
                return Err("--reps must be at least 1".into());
            }
            config_load::run(&config, reps)
        }
        Some("bulk-enroll") => bulk_enroll::run(&parse_bulk_enroll(args)?),
        Some("postgres") => postgres::run(&parse_postgres(args)?),
        Some("worker") => worker::main(),
        Some("--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    match dispatch(std::env::args_os().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pam-mfa-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = OsString> {
        list.iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn run_takes_sizes_in_any_order() {
        let o = parse_run(args(&["--users", "1000,100", "--sample", "20"])).unwrap();
        assert_eq!(o.sizes, [100, 1000]);
        assert_eq!(o.sample, 20);
        assert_eq!(o.load_reps, 1000);
        assert!(o.postgres);
        assert!(!parse_run(args(&["--no-postgres"])).unwrap().postgres);
        let o = parse_run(args(&["--load-reps", "40"])).unwrap();
        assert_eq!(o.load_reps, 40);
        assert!(parse_run(args(&["--load-reps", "0"])).is_err());
        assert!(parse_run(args(&["--users", "1"])).is_err());
        assert!(parse_run(args(&["--sample", "0"])).is_err());
        assert!(parse_run(args(&["--bogus"])).is_err());
    }

    #[test]
    fn bulk_enroll_takes_a_user_count() {
        let o = parse_bulk_enroll(args(&["--users", "500"])).unwrap();
        assert_eq!(o.users, 500);
        assert_eq!(o.mfa_enroll, PathBuf::from("target/release/mfa-enroll"));
        assert!(parse_bulk_enroll(args(&["--users", "0"])).is_err());
        assert!(parse_bulk_enroll(args(&["--bogus"])).is_err());
    }

    #[test]
    fn postgres_takes_a_tls_setting_and_enough_users() {
        let o = parse_postgres(args(&["--sslmode", "disable", "--logins", "10"])).unwrap();
        assert_eq!(o.modes, [pg_results::SslMode::Disable]);
        assert_eq!(o.logins, 10);
        assert!(parse_postgres(args(&["--sslmode", "prefer"])).is_err());
        assert!(parse_postgres(args(&["--users", "100", "--logins", "60"])).is_err());
        assert!(parse_postgres(args(&["--rounds", "0"])).is_err());
    }

    #[test]
    fn profile_takes_the_wrapper_after_the_dashes() {
        let o = parse_profile(args(&[
            "--module-under-test",
            "ga",
            "--wrong",
            "--",
            "valgrind",
            "--tool=callgrind",
        ]))
        .unwrap();
        assert_eq!(o.module, Module::GoogleAuthenticator);
        assert_eq!(o.answer, Answer::Wrong);
        assert_eq!(o.wrapper, ["valgrind", "--tool=callgrind"]);
    }
}

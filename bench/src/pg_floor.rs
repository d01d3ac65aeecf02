//! The floor of a login on the PostgreSQL store: `pg_floor.c`, a libpq
//! program compiled at run time, makes for each name one connection, one
//! SELECT and one version-checked UPDATE of the same row size as a login,
//! and closes the connection. Two copies run at once, as the two workers
//! of the module do.
//!
//! A C program rather than `pgbench`: it runs pam_mfa's own statements with
//! its parameter types and binary rows, times every login from the start of
//! the connection to the end of the goodbye (pgbench's per-transaction log
//! leaves the connection out), and splits the time into its steps.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SOURCE: &str = include_str!("pg_floor.c");

/// One login of the floor: the time of each step, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// `PQconnectdb`: TCP, TLS, startup, SCRAM.
    pub connect: u64,
    /// The SELECT.
    pub select: u64,
    /// The UPDATE, committed.
    pub update: u64,
    /// `PQfinish`.
    pub close: u64,
}

impl Sample {
    /// The whole login.
    pub fn total(&self) -> u64 {
        self.connect + self.select + self.update + self.close
    }
}

/// What one copy of the program measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// One per name, in order.
    pub samples: Vec<Sample>,
    /// `CLOCK_MONOTONIC` before the first login and after the last, in ns.
    pub span: (u64, u64),
}

/// Where libpq's headers are: `pg_config --includedir`, else Debian's.
fn include_dir() -> String {
    Command::new("pg_config")
        .arg("--includedir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/usr/include/postgresql".to_owned())
}

/// Compiles `pg_floor.c` into `dir` with `cc` and libpq.
///
/// # Errors
/// No compiler, or no libpq headers (Debian: `libpq-dev`).
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    let src = dir.join("pg_floor.c");
    let exe = dir.join("pg_floor");
    std::fs::write(&src, SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
    // -lpq after the source: with --as-needed (Debian's default) a library
    // named before the objects that use it is dropped.
    let out = Command::new("cc")
        .args(["-O2", "-Wall"])
        .arg(format!("-I{}", include_dir()))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg("-lpq")
        .output()
        .map_err(|e| format!("cannot run cc (a C compiler is needed): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc failed on {} (the floor needs libpq's headers: apt-get install libpq-dev):\n{}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(exe)
}

/// Parses the program's output.
fn parse(text: &str) -> Result<Output, String> {
    let mut out = Output::default();
    let mut span = None;
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let numbers = rest
            .split(' ')
            .map(str::parse::<u64>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("bad line {line:?}"))?;
        match (kind, numbers.as_slice()) {
            ("sample", &[connect, select, update, close]) => out.samples.push(Sample {
                connect,
                select,
                update,
                close,
            }),
            ("span", &[start, end]) => span = Some((start, end)),
            _ => return Err(format!("bad line {line:?}")),
        }
    }
    out.span = span.ok_or("no span line")?;
    Ok(out)
}

/// One running copy.
struct Running {
    child: Child,
}

impl Running {
    fn spawn(program: &Path, conninfo: &str, names: &[String]) -> Result<Running, String> {
        let mut child = Command::new(program)
            .arg(conninfo)
            .args(names)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let stdout = child.stdout.as_mut().ok_or("no stdout")?;
        let mut ready = String::new();
        BufReader::new(stdout)
            .read_line(&mut ready)
            .map_err(|e| e.to_string())?;
        if ready.trim() != "ready" {
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            return Err(format!("pg_floor did not start: {}", err.trim()));
        }
        Ok(Running { child })
    }

    fn go(&mut self) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot start pg_floor: {e}"))
    }

    fn finish(self) -> Result<Output, String> {
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| format!("pg_floor: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_floor failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        parse(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Runs one copy per list of names at the same moment, all against
/// `conninfo`.
///
/// # Errors
/// A copy that cannot start or fails.
pub fn run(program: &Path, conninfo: &str, lists: &[Vec<String>]) -> Result<Vec<Output>, String> {
    let mut copies = lists
        .iter()
        .map(|names| Running::spawn(program, conninfo, names))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &mut copies {
        c.go()?;
    }
    // Read each copy's output on a thread of its own, so that none blocks
    // on a full pipe while another is waited for.
    std::thread::scope(|s| {
        let handles: Vec<_> = copies
            .into_iter()
            .map(|c| s.spawn(move || c.finish()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("pg_floor reader panicked".into()))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_programs_output_is_read() {
        let out = parse("sample 1 2 3 4\nsample 5 6 7 8\nspan 100 200\n").unwrap();
        assert_eq!(out.samples.len(), 2);
        assert_eq!(out.samples[1].total(), 26);
        assert_eq!(out.span, (100, 200));
        assert!(parse("sample 1 2 3 4\n").is_err());
        assert!(parse("sample 1 2 3\nspan 1 2\n").is_err());
        assert!(parse("sample 1 x 3 4\nspan 1 2\n").is_err());
    }
}

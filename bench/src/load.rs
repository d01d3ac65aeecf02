//! What loading each module costs a C program: `load.c`, compiled at run
//! time, opens the module with `dlopen` and closes it with `dlclose`, as
//! sshd and sudo do (through libpam) on every login.
//!
//! The worker is a Rust program, so `libgcc_s.so.1` (the GCC unwinder) is
//! loaded in it before any module; sshd and sudo do not load it, and a
//! module that needs it loads it on every `pam_start` there. The worker's
//! transaction overhead cannot show that; this program can.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pam_mfa_e2e::native;

use crate::population::Layout;
use crate::results::{Module, ModuleLoad};
use crate::stats::Summary;

const SOURCE: &str = include_str!("load.c");

/// The runtime library a Rust module needs and a C program has not loaded.
pub const LIBGCC: &str = "libgcc_s.so.1";

/// Compiles `load.c` into `dir` with the system's C compiler.
fn build(dir: &Path) -> Result<PathBuf, String> {
    let exe = dir.join("load");
    native::compile_c(SOURCE, &exe, &[])
        .map_err(|e| format!("the load measurement needs a C compiler: {e}"))?;
    Ok(exe)
}

/// Where libpam looks for a module named without a path (its
/// `DEFAULT_MODULE_PATH`, `<libdir>/security`), as the stacks name
/// google-authenticator and `pam_oath`.
fn system_module(name: &str) -> Result<PathBuf, String> {
    let arch = std::env::consts::ARCH;
    let dirs = [
        format!("/lib/{arch}-linux-gnu/security"),
        format!("/usr/lib/{arch}-linux-gnu/security"),
        "/lib64/security".to_owned(),
        "/usr/lib64/security".to_owned(),
        "/lib/security".to_owned(),
        "/usr/lib/security".to_owned(),
    ];
    dirs.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed in any of {}", dirs.join(", ")))
}

/// The module's file: pam_mfa's under test, or the system's.
fn module_path(module: Module, pam_mfa: &Path) -> Result<PathBuf, String> {
    match module {
        Module::PamMfa => Ok(pam_mfa.to_path_buf()),
        Module::GoogleAuthenticator => system_module("pam_google_authenticator.so"),
        Module::PamOath => system_module("pam_oath.so"),
    }
}

/// What one run of the program printed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Output {
    /// Objects the first `dlopen` added.
    loaded: Vec<String>,
    /// Of those, the ones `dlclose` left loaded.
    kept: Vec<String>,
    /// (`dlopen`, `dlclose`) in ns.
    samples: Vec<(u64, u64)>,
}

impl Output {
    fn append(&mut self, other: Output) {
        // Every round adds the same objects; keep the first round's list.
        if self.loaded.is_empty() {
            self.loaded = other.loaded;
            self.kept = other.kept;
        }
        self.samples.extend(other.samples);
    }
}

/// Parses the program's output; the summary lines for people are skipped.
fn parse_output(text: &str) -> Result<Output, String> {
    let mut out = Output::default();
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("loaded ") {
            out.loaded.push(path.to_owned());
        } else if let Some(path) = line.strip_prefix("kept ") {
            out.kept.push(path.to_owned());
        } else if let Some(pair) = line.strip_prefix("sample ") {
            let mut fields = pair.split(' ').map(str::parse::<u64>);
            match (fields.next(), fields.next(), fields.next()) {
                (Some(Ok(open)), Some(Ok(close)), None) => out.samples.push((open, close)),
                _ => return Err(format!("bad sample line {line:?}")),
            }
        }
    }
    if out.samples.is_empty() {
        return Err("no samples".into());
    }
    Ok(out)
}

/// One case to measure: a module, with some libraries loaded before it.
struct Case {
    module: Module,
    path: PathBuf,
    needed: Vec<String>,
    preloaded: Vec<String>,
    output: Output,
}

fn run_case(program: &Path, case: &Case, reps: usize) -> Result<Output, String> {
    let out = Command::new(program)
        .arg(reps.to_string())
        .arg(&case.path)
        .args(&case.preloaded)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed: {}",
            program.display(),
            case.path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_output(&String::from_utf8_lossy(&out.stdout))
        .map_err(|e| format!("{} {}: {e}", program.display(), case.path.display()))
}

/// Measures the three modules, `reps` loads each in all, in `rounds`
/// rounds that take turns between them; pam_mfa also with `libgcc_s.so.1`
/// loaded beforehand if it needs it, as it is in the Rust worker.
///
/// # Errors
/// No C compiler, a missing module, or a program that fails.
pub fn measure(
    layout: &Layout,
    pam_mfa: &Path,
    reps: usize,
    rounds: usize,
) -> Result<Vec<ModuleLoad>, String> {
    let program = build(&layout.tools_dir())?;
    let mut cases = Vec::new();
    for module in Module::ALL {
        let path = module_path(module, pam_mfa)?;
        let needed = native::needed_libraries(&path)?;
        let with_libgcc = module == Module::PamMfa && needed.iter().any(|l| l == LIBGCC);
        cases.push(Case {
            module,
            path: path.clone(),
            needed: needed.clone(),
            preloaded: Vec::new(),
            output: Output::default(),
        });
        if with_libgcc {
            cases.push(Case {
                module,
                path,
                needed,
                preloaded: vec![LIBGCC.to_owned()],
                output: Output::default(),
            });
        }
    }
    let per_round = reps.div_ceil(rounds).max(1);
    for _ in 0..rounds {
        for case in &mut cases {
            let output = run_case(&program, case, per_round)?;
            case.output.append(output);
        }
    }
    cases
        .into_iter()
        .map(|case| {
            let size_bytes = fs::metadata(&case.path)
                .map_err(|e| format!("{}: {e}", case.path.display()))?
                .len();
            let samples = &case.output.samples;
            let of = |f: fn(&(u64, u64)) -> u64| {
                Summary::of_ns(&samples.iter().map(f).collect::<Vec<_>>())
            };
            Ok(ModuleLoad {
                module: case.module,
                path: case.path.display().to_string(),
                size_bytes,
                needed: case.needed,
                preloaded: case.preloaded,
                loaded: case.output.loaded,
                kept: case.output.kept,
                dlopen: of(|s| s.0),
                dlclose: of(|s| s.1),
                total: of(|s| s.0 + s.1),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_programs_output_is_read_and_its_summary_skipped() {
        let text = "loaded /x/libpam_mfa.so\nloaded /lib/libgcc_s.so.1\nkept /lib/libgcc_s.so.1\n\
                    sample 1000 200\nsample 3000 400\n\
                    dlopen median 2.0 us, p99 3.0 us\ndlclose median 0.3 us, p99 0.4 us\n\
                    dlopen + dlclose median 2.3 us, p99 3.4 us\n";
        let out = parse_output(text).unwrap();
        assert_eq!(out.loaded, ["/x/libpam_mfa.so", "/lib/libgcc_s.so.1"]);
        assert_eq!(out.kept, ["/lib/libgcc_s.so.1"]);
        assert_eq!(out.samples, [(1000, 200), (3000, 400)]);
        assert!(parse_output("sample 1 x\n").is_err());
        assert!(parse_output("sample 1 2 3\n").is_err());
        assert!(parse_output("loaded /a\n").is_err());
    }

    #[test]
    fn rounds_keep_the_first_list_of_objects_and_all_samples() {
        let mut all = Output::default();
        all.append(parse_output("loaded /a\nsample 1 2\n").unwrap());
        all.append(parse_output("loaded /a\nsample 3 4\n").unwrap());
        assert_eq!(all.loaded, ["/a"]);
        assert_eq!(all.samples, [(1, 2), (3, 4)]);
    }
}

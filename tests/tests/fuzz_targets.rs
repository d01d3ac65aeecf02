//! The fuzz targets of `fuzz/` on the stable toolchain, in `cargo test`.
//!
//! `cargo fuzz` needs libFuzzer and instrumentation flags; this file needs
//! neither. It runs the very same target functions (`fuzz/src/lib.rs`,
//! included as a module) on
//!
//! 1. every seed in `fuzz/seeds/<target>/`,
//! 2. every saved crash in `fuzz/regressions/<target>/` (a crash found by
//!    the fuzzer is copied there and so becomes a regression test), and
//! 3. inputs made by a deterministic mutator from those files: the same
//!    inputs on every run, so a failure here always reproduces.
//!
//! `PAM_MFA_FUZZ_ITERATIONS=N` changes the number of mutated inputs per
//! target (default below). A failure prints the input in hex; save it under
//! `fuzz/regressions/<target>/` to keep it.

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::fmt::Write as _;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Mutated inputs per parser target; the flow target does a fraction (each
/// of its runs commits to a store).
const DEFAULT_ITERATIONS: usize = 4000;

fn iterations(parser: bool) -> usize {
    let n = std::env::var("PAM_MFA_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    if parser {
        n
    } else {
        n / 10
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted by name.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = format!("{kind}/{target}/{}", e.file_name().to_string_lossy());
            let bytes = fs::read(e.path()).unwrap_or_else(|err| panic!("{name}: {err}"));
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// `SplitMix64`: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn for_target(target: &str) -> Self {
        // FNV-1a of the name: each target gets its own stream.
        let seed = target.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'"', b'=', b'[', b'-', b'0', b'9',
];

/// A new input from the corpus: a seed (or nothing) with a few edits.
fn mutate(rng: &mut Rng, corpus: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut data = if corpus.is_empty() || rng.below(10) == 0 {
        (0..rng.below(64)).map(|_| rng.byte()).collect()
    } else {
        corpus[rng.below(corpus.len())].1.clone()
    };
    for _ in 0..=rng.below(8) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = rng.byte();
            }
            2 if len > 0 => {
                let at = rng.below(len);
                data[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                data.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                data.drain(at..end);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                let copy = data[at..end].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, copy);
            }
            6 if !corpus.is_empty() => {
                // Splice in part of another seed.
                let other = &corpus[rng.below(corpus.len())].1;
                let from = rng.below(other.len() + 1);
                let to = rng.below(data.len() + 1);
                data.truncate(to);
                data.extend_from_slice(&other[from..]);
            }
            _ => data.truncate(rng.below(len + 1)),
        }
    }
    data
}

fn hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data.iter().take(4096) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Runs `target` on the seeds, the saved crashes and mutated inputs;
/// fails naming the input that broke a property.
fn exercise(target: &str, run: &dyn Fn(&[u8])) {
    let mut corpus = inputs("seeds", target);
    let regressions = inputs("regressions", target);
    assert!(
        !corpus.is_empty(),
        "no seeds in {}",
        fuzz_dir().join("seeds").join(target).display()
    );
    corpus.extend(regressions);
    let check = |what: &str, data: &[u8]| {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(data))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "fuzz target `{target}` broke on {what}: {message}\ninput ({} bytes, hex): {}",
                data.len(),
                hex(data)
            );
        }
    };
    for (name, data) in &corpus {
        check(name, data);
    }
    let mut rng = Rng::for_target(target);
    for i in 0..iterations(target != "flow") {
        let data = mutate(&mut rng, &corpus);
        check(&format!("mutated input #{i}"), &data);
    }
}

#[test]
fn every_target_has_a_test_here() {
    assert_eq!(
        targets::TARGETS,
        [
            "config",
            "module_args",
            "record",
            "pending",
            "input",
            "import_google_authenticator",
            "import_oath",
            "flow"
        ]
    );
}

#[test]
fn the_config_parser_holds_its_properties() {
    exercise("config", &|d| targets::run("config", d));
}

#[test]
fn the_module_argument_parser_holds_its_properties() {
    exercise("module_args", &|d| targets::run("module_args", d));
}

#[test]
fn record_decoding_holds_its_properties() {
    exercise("record", &|d| targets::run("record", d));
}

#[test]
fn pending_enrollment_decoding_holds_its_properties() {
    exercise("pending", &|d| targets::run("pending", d));
}

#[test]
fn code_input_classification_holds_its_properties() {
    exercise("input", &|d| targets::run("input", d));
}

#[test]
fn the_google_authenticator_import_holds_its_properties() {
    exercise("import_google_authenticator", &|d| {
        targets::run("import_google_authenticator", d);
    });
}

#[test]
fn the_pam_oath_import_holds_its_properties() {
    exercise("import_oath", &|d| targets::run("import_oath", d));
}

#[test]
fn the_login_flow_holds_its_properties_against_a_hostile_conversation() {
    // A fixture of this test's own, removed when the test ends.
    let fixture = targets::FlowFixture::new();
    exercise("flow", &|d| fixture.run(d));
}

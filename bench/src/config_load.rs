//! `Config::load` alone, in this process: the module reads its configuration
//! file and applies its arguments at every login, so this is what a change
//! to the configuration reader costs or saves. No namespace, no population.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use mfa_core::config::{parse_module_args, Config};
use mfa_core::fsutil::FileTrust;

use crate::stats::Summary;

/// Module arguments of a typical pam.d line that overlays a few settings.
const OVERLAY_ARGS: [&str; 3] = [
    "not_configured=deny",
    "fail_delay_ms=0",
    "groups.exempt=backup,cron",
];

/// Times `reps` loads of `config` (a root-owned file), first as
/// `config=PATH` alone, then with [`OVERLAY_ARGS`], and prints the medians.
///
/// # Errors
/// The file does not load.
pub fn run(config: &Path, reps: usize) -> Result<(), String> {
    // `config=` takes an absolute path only.
    let config = &std::path::absolute(config).map_err(|e| e.to_string())?;
    let config_arg = format!("config={}", config.display());
    let plain = [config_arg.as_str()];
    let mut overlaid = vec![config_arg.as_str()];
    overlaid.extend(OVERLAY_ARGS);
    println!(
        "Config::load of {} ({} bytes), {reps} loads each, release build, µs:",
        config.display(),
        std::fs::metadata(config).map_err(|e| e.to_string())?.len()
    );
    for (what, args) in [
        ("config= only", &plain[..]),
        ("config= + 3 settings", &overlaid[..]),
    ] {
        // Warm up: the first load faults the code and the file's pages in.
        for _ in 0..reps.min(100) {
            load(args)?;
        }
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            black_box(load(args)?);
            samples.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        let s = Summary::of_ns(&samples);
        println!(
            "  {what:<22} median {:.1}  p99 {:.1}  min {:.1}",
            s.median_us, s.p99_us, s.min_us
        );
    }
    Ok(())
}

/// What the module does first at every login: parse its arguments, then
/// read the file with them overlaid.
fn load(args: &[&str]) -> Result<Config, String> {
    let parsed = parse_module_args(args).map_err(|e| e.to_string())?;
    Config::load(parsed.config_path(), FileTrust::ROOT, &parsed.overrides)
        .map_err(|e| e.to_string())
}

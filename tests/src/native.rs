//! The native tools the tests and the benchmark lean on: the C compiler,
//! for the small C programs that must not be Rust (a preload shim, a loader
//! that has not loaded the Rust runtime's libraries), and `readelf`, for the
//! libraries a shared object needs.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Compiles the C `source` into `out` with `cc -O2 -Wall FLAGS ... -ldl`.
///
/// Source and output are written under names of this process and the
/// output renamed into place, so that several processes may build the same
/// `out` at once.
///
/// # Errors
/// No C compiler, or one that fails (its messages are in the error).
pub fn compile_c(source: &str, out: &Path, flags: &[&str]) -> Result<(), String> {
    let pid = std::process::id();
    let src = out.with_extension(format!("{pid}.c"));
    let tmp = out.with_extension(format!("{pid}.tmp"));
    fs::write(&src, source).map_err(|e| format!("{}: {e}", src.display()))?;
    let run = Command::new("cc")
        .args(["-O2", "-Wall"])
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .arg("-ldl")
        .output();
    let _ = fs::remove_file(&src);
    let run = run.map_err(|e| format!("cannot run cc (a C compiler is needed): {e}"))?;
    if !run.status.success() {
        return Err(format!(
            "cc failed on {}:\n{}",
            out.display(),
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}

/// The libraries `path` names as `NEEDED` in its dynamic section.
///
/// # Errors
/// No `readelf` (binutils), or one that fails.
pub fn needed_libraries(path: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("readelf")
        .arg("--dynamic")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run readelf (binutils): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "readelf --dynamic {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_needed(&String::from_utf8_lossy(&out.stdout)))
}

/// The `NEEDED` entries of `readelf --dynamic` output.
fn parse_needed(readelf: &str) -> Vec<String> {
    readelf
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            let (_, rest) = l.split_once("Shared library: [")?;
            let (name, _) = rest.rsplit_once(']')?;
            Some(name.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_libraries_come_from_the_dynamic_section() {
        let readelf = "
Dynamic section at offset 0x1915e8 contains 29 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libpam.so.0]
 0x0000000000000001 (NEEDED)             Shared library: [libgcc_s.so.1]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000e (SONAME)             Library soname: [libfoo.so.1]
 0x000000000000001e (FLAGS)              BIND_NOW
 0x0000000000000000 (NULL)               0x0
";
        assert_eq!(
            parse_needed(readelf),
            ["libpam.so.0", "libgcc_s.so.1", "libc.so.6"]
        );
        assert!(parse_needed("There is no dynamic section in this file.\n").is_empty());
    }
}

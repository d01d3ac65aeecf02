//! What the report says about the machine: CPU, memory, kernel, and the
//! disk under the benchmark directory (whose flush cost is the floor).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::results::Machine;

fn first_line_with(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The mount holding `path`: (device, mount point, type, options).
fn mount_of(path: &Path) -> Option<(String, String, String, String)> {
    let dev = fs::metadata(path).ok()?.dev();
    read("/proc/self/mounts")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() >= 4).then(|| {
                (
                    f[0].to_owned(),
                    f[1].to_owned(),
                    f[2].to_owned(),
                    f[3].to_owned(),
                )
            })
        })
        // The longest mount point on the same device that contains the path.
        .filter(|(_, point, _, _)| {
            path.starts_with(point) && fs::metadata(point).is_ok_and(|m| m.dev() == dev)
        })
        .max_by_key(|(_, point, _, _)| point.len())
}

/// The block device's queue settings that decide what a flush costs.
fn queue_of(device: &str) -> String {
    let Some(name) = device.strip_prefix("/dev/") else {
        return String::new();
    };
    // A partition's queue is its disk's: vda1 -> vda, nvme0n1p1 -> nvme0n1.
    let mut disk = name.to_owned();
    while !Path::new(&format!("/sys/block/{disk}")).exists() && !disk.is_empty() {
        disk.pop();
        if disk.ends_with('p') && disk.contains("nvme") {
            disk.pop();
        }
    }
    let q = |f: &str| {
        read(&format!("/sys/block/{disk}/queue/{f}"))
            .trim()
            .to_owned()
    };
    format!(
        "{disk}: rotational={}, write_cache={}, scheduler={}",
        q("rotational"),
        q("write_cache"),
        q("scheduler")
    )
}

fn package_versions(names: &[&str]) -> Vec<String> {
    Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${Version}\n")
        .args(names)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Describes this machine and the disk under `work`.
pub fn describe(work: &Path) -> Machine {
    let (device, point, fstype, options) = mount_of(work).unwrap_or_default();
    Machine {
        cpu: first_line_with(&read("/proc/cpuinfo"), "model name").unwrap_or_default(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        memory: first_line_with(&read("/proc/meminfo"), "MemTotal").unwrap_or_default(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        os: read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned(),
        filesystem: format!("{device} on {point} ({fstype}, {options})"),
        disk: queue_of(&device),
        packages: package_versions(&[
            "libpam0g",
            "libpam-google-authenticator",
            "libpam-oath",
            "liboath0",
            "nscd",
        ]),
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    read("/proc/loadavg")
        .split(' ')
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0)
}

/// The current time in UTC, `YYYY-MM-DD HH:MM`.
pub fn utc_now() -> String {
    let secs = crate::codes::unix_now();
    let days = secs / 86_400;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02} {h:02}:{m:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_fields_are_found() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: x";
        assert_eq!(
            first_line_with(text, "model name").as_deref(),
            Some("AMD EPYC")
        );
    }
}

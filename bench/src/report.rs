//! Turns [`Results`] into `results.json`, `report.md` (tables and the
//! targets, judged) and `latency.png` (gnuplot).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::results::{per_attempt, Module, ModuleLoad, ModuleResult, Results, SizeResult};
use crate::stats::Summary;

/// Writes `results.json`.
///
/// # Errors
/// Any I/O error.
pub fn save(out: &Path, results: &Results) -> Result<(), String> {
    let text = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    let path = out.join("results.json");
    std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads `results.json`.
///
/// # Errors
/// A missing or unreadable file.
pub fn load(out: &Path) -> Result<Results, String> {
    let path = out.join("results.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `report.md`, `latency.dat` and (if gnuplot is installed)
/// `latency.png`, and prints the report.
///
/// # Errors
/// Any I/O error.
pub fn render(out: &Path, results: &Results) -> Result<(), String> {
    let text = markdown(results);
    let path = out.join("report.md");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    let dat = out.join("latency.dat");
    std::fs::write(&dat, plot_data(results)).map_err(|e| format!("{}: {e}", dat.display()))?;
    if let Err(e) = plot(out) {
        eprintln!("pam-mfa-bench: no plot: {e}");
    }
    println!("{text}");
    Ok(())
}

fn us(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn med_p99(s: &Summary) -> String {
    format!("{} / {}", us(s.median_us), us(s.p99_us))
}

fn users(n: u32) -> String {
    grouped(u64::from(n))
}

/// `n` with its digits grouped in thousands by narrow spaces.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

fn header(cells: &[&str]) -> String {
    let mut s = row(&cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>());
    s.push_str(&row(&cells
        .iter()
        .map(|_| "---".to_owned())
        .collect::<Vec<_>>()));
    s
}

fn each_module(size: &SizeResult) -> impl Iterator<Item = &ModuleResult> + '_ {
    Module::ALL.into_iter().filter_map(|m| size.module(m))
}

/// pam_mfa's median minus the median name-service lookup: what the module
/// costs on a host whose lookups are cheap (nscd, sssd's cache).
fn mfa_without_nss(size: &SizeResult) -> Option<f64> {
    size.module(Module::PamMfa)
        .map(|m| m.right.auth.median_us - size.nss.lookup.median_us)
}

fn machine_section(r: &Results, s: &mut String) {
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Run {} ({:.0} s), pam_mfa from `{}`.\n",
        r.started, r.elapsed_s, r.module_path
    );
    let _ = writeln!(s, "| machine | |\n|---|---|");
    for (k, v) in [
        ("CPU", format!("{} ({} cores)", m.cpu, m.cores)),
        ("memory", m.memory.clone()),
        ("OS, kernel", format!("{}, {}", m.os, m.kernel)),
        ("benchmark filesystem", m.filesystem.clone()),
        ("disk queue", m.disk.clone()),
        ("packages", m.packages.join(", ")),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s.push('\n');
}

fn latency_sections(r: &Results, s: &mut String) {
    s.push_str("### pam_authenticate, right code (µs, median / p99)\n\n");
    s.push_str(&header(&[
        "users",
        "pam_mfa",
        "pam_mfa − getpwnam",
        "google-authenticator",
        "pam_oath",
        "floor: write + fdatasync",
        "(same file, back to back)",
        "write + fsync + rename + fsync dir",
    ]));
    for size in &r.sizes {
        let mut cells = vec![users(size.users)];
        let cell = |m: Module| {
            size.module(m)
                .map_or("–".into(), |x| med_p99(&x.right.auth))
        };
        cells.push(cell(Module::PamMfa));
        cells.push(mfa_without_nss(size).map_or("–".into(), |x| format!("{} / –", us(x))));
        cells.push(cell(Module::GoogleAuthenticator));
        cells.push(cell(Module::PamOath));
        cells.push(med_p99(&size.floor.in_place));
        cells.push(med_p99(&size.floor.in_place_same_file));
        cells.push(med_p99(&size.floor.rename));
        s.push_str(&row(&cells));
    }
    s.push_str("\n### Whole transaction, pam_start .. pam_end, right code (µs, median / p99; overhead = transaction − pam_authenticate, median)\n\n");
    s.push_str(&header(&[
        "users",
        "module",
        "transaction",
        "overhead",
        "wrong code: pam_authenticate",
        "wrong codes refused",
    ]));
    for size in &r.sizes {
        for m in each_module(size) {
            s.push_str(&row(&[
                users(size.users),
                m.module.label().into(),
                med_p99(&m.right.txn),
                us(m.right.overhead.median_us),
                med_p99(&m.wrong.auth),
                format!(
                    "{}/{}",
                    m.wrong.attempts - m.wrong.successes,
                    m.wrong.attempts
                ),
            ]));
        }
    }
    s.push('\n');
}

/// The file name of a path, for tables.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The row's name: the module, and what was loaded before it.
fn load_label(l: &ModuleLoad) -> String {
    if l.preloaded.is_empty() {
        l.module.label().to_owned()
    } else {
        format!(
            "{}, with {} loaded first",
            l.module.label(),
            l.preloaded.join(", ")
        )
    }
}

fn load_section(r: &Results, s: &mut String) {
    if r.module_load.is_empty() {
        return;
    }
    s.push_str("### Loading the module in a C program (dlopen + dlclose, as sshd and sudo do on every login)

");
    let count = r.module_load.first().map_or(0, |l| l.total.count);
    let _ = writeln!(
        s,
        "A C program (`bench/src/load.c`, compiled at run time) that has loaded libpam.so.0 \
         (`RTLD_GLOBAL`) and otherwise only libc opens the module with `dlopen(RTLD_NOW)` and \
         closes it with `dlclose`, {} times per row after one untimed load, in rounds that take \
         turns between the rows; libpam does the same in `pam_start` and `pam_end`. The Rust \
         worker of the tables above has `libgcc_s.so.1` loaded before any module; sshd and sudo, \
         C programs, do not, so a module that needs it loads it on every login there. \
         µs, median / p99.\n",
        grouped(count as u64)
    );
    s.push_str(&header(&[
        "module",
        "file size",
        "NEEDED",
        "objects the dlopen loaded",
        "dlopen",
        "dlclose",
        "dlopen + dlclose",
    ]));
    for l in &r.module_load {
        let mut loaded = l
            .loaded
            .iter()
            .map(|p| file_name(p))
            .collect::<Vec<_>>()
            .join(", ");
        if !l.kept.is_empty() {
            let kept: Vec<&str> = l.kept.iter().map(|p| file_name(p)).collect();
            let _ = write!(loaded, " (left loaded by dlclose: {})", kept.join(", "));
        }
        s.push_str(&row(&[
            load_label(l),
            format!("{} KiB", grouped(l.size_bytes.div_ceil(1024))),
            l.needed.join(", "),
            loaded,
            med_p99(&l.dlopen),
            med_p99(&l.dlclose),
            med_p99(&l.total),
        ]));
    }
    s.push('\n');
}

fn throughput_section(r: &Results, s: &mut String) {
    s.push_str("### Throughput and resources (right codes)\n\n");
    s.push_str("Two processes of pure CPU work reached ");
    s.push_str(
        &r.sizes
            .iter()
            .map(|z| {
                format!(
                    "{:.2}× one ({} users; load average {:.1} → {:.1})",
                    z.cpu_parallelism,
                    users(z.users),
                    z.load_average.0,
                    z.load_average.1
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    s.push_str(": the most any module could gain from a second process at that moment.\n\n");
    s.push_str(&header(&[
        "users",
        "module",
        "accepted",
        "attempts/s, 1 process",
        "2 processes: attempts/s",
        "speed-up",
        "accepted (2 processes)",
        "peak RSS KiB (driver alone)",
        "passwd opens / attempt",
        "group opens / attempt",
        "syslog lines / attempt",
    ]));
    for size in &r.sizes {
        for m in each_module(size) {
            let a = m.right.attempts;
            s.push_str(&row(&[
                users(size.users),
                m.module.label().into(),
                format!("{}/{}", m.right.successes, a),
                format!("{:.0}", m.right.per_second),
                format!("{:.0}", m.pair.per_second),
                format!("{:.2}×", m.pair.speedup),
                format!("{}/{}", m.pair.successes, m.pair.attempts),
                format!("{} ({})", m.right.rss_peak_kb, m.right.rss_start_kb),
                format!("{:.2}", per_attempt(m.right.passwd_opens, a)),
                format!("{:.2}", per_attempt(m.right.group_opens, a)),
                format!("{:.2}", m.right.syslog_per_attempt()),
            ]));
        }
    }
    s.push('\n');
}

fn admin_section(r: &Results, s: &mut String) {
    s.push_str(
        "### Name service, self-enrollment and key migration (µs per user, median / p99)\n\n",
    );
    s.push_str(&header(&[
        "users",
        "getpwnam(user)",
        "getpwnam(\"root\")",
        "self-enrollment: seal",
        "spool write + fsync",
        "module finds and opens it",
        "key migrate",
    ]));
    for size in &r.sizes {
        s.push_str(&row(&[
            users(size.users),
            med_p99(&size.nss.lookup),
            med_p99(&size.nss.root),
            med_p99(&size.self_enrollment.seal),
            med_p99(&size.self_enrollment.spool_write),
            med_p99(&size.self_enrollment.find),
            med_p99(&size.migrate),
        ]));
    }
    let _ = writeln!(
        s,
        "\nMaking the device and ten Argon2id recovery-code hashes (`mfa-enroll`, user side, once per enrollment): {} ms median.\n",
        us(r.provision.median_us / 1000.0)
    );
    if !r.spool_scan.is_empty() {
        s.push_str("Spool search of every pam_mfa login, for a user with nothing pending (µs, median / p99):\n\n");
        s.push_str(&header(&["other users' requests waiting", "spool::find"]));
        for row_ in &r.spool_scan {
            s.push_str(&row(&[
                users(u32::try_from(row_.waiting).unwrap_or(u32::MAX)),
                med_p99(&row_.find),
            ]));
        }
        s.push('\n');
    }
    if !r.spool_flood.is_empty() {
        s.push_str("Another user's entries planted under the user's uid: the first login after, which removes as many as one login may (µs, median / p99), and how many logins remove them all:\n\n");
        s.push_str(&header(&["planted", "spool::find, first login", "logins"]));
        for row_ in &r.spool_flood {
            s.push_str(&row(&[
                format!("{} {}", row_.planted, row_.kind),
                med_p99(&row_.first),
                row_.logins.to_string(),
            ]));
        }
        s.push('\n');
    }
}

fn nscd_section(r: &Results, s: &mut String) {
    s.push_str("### pam_mfa with nscd (µs, median / p99)\n\n");
    if let Some(why) = &r.nscd_skipped {
        let _ = writeln!(s, "Not measured in this run: {why}.\n");
        return;
    }
    if r.sizes.iter().all(|z| z.nscd.is_none()) {
        s.push_str("Not measured in this run.\n\n");
        return;
    }
    s.push_str(
        "pam_mfa looks the user up once per login (`getpwnam_r`); with the files backend glibc \
         reads `/etc/passwd` line by line. Here nscd, the usual cache on hosts with many local \
         users, ran inside the benchmark's namespace (`nscd -F` with the host's \
         `/etc/nscd.conf`, private tmpfs mounts on `/run/nscd` and `/var/cache/nscd`), started \
         afresh at each size and stopped, its mounts removed, before the other scenarios. \
         Its cache was warmed first: one worker looked each sampled user up once with \
         `getpwnam` (a miss each: nscd read `/etc/passwd`, \"first lookup\"), a second timed \
         the same lookups again (answered by nscd), then pam_mfa authenticated the same users \
         with right codes, one worker per round as without nscd, and the disk floor was measured \
         again in the same rounds. These are other users than those of the scenario without \
         nscd (every right code is fresh), and a few seconds later.\n\n",
    );
    s.push_str(&header(&[
        "users",
        "pam_mfa: files",
        "floor then",
        "pam_mfa: nscd",
        "floor then",
        "getpwnam: files",
        "getpwnam: nscd",
        "first lookup through nscd (fills its cache)",
        "accepted (nscd)",
        "passwd opens / attempt: files, nscd",
    ]));
    for size in &r.sizes {
        let (Some(n), Some(m)) = (&size.nscd, size.module(Module::PamMfa)) else {
            continue;
        };
        s.push_str(&row(&[
            users(size.users),
            med_p99(&m.right.auth),
            med_p99(&size.floor.in_place),
            med_p99(&n.right.auth),
            med_p99(&n.floor.in_place),
            med_p99(&size.nss.lookup),
            med_p99(&n.nss.lookup),
            med_p99(&n.fill),
            format!("{}/{}", n.right.successes, n.right.attempts),
            format!(
                "{:.2}, {:.2}",
                per_attempt(m.right.passwd_opens, m.right.attempts),
                per_attempt(n.right.passwd_opens, n.right.attempts)
            ),
        ]));
    }
    s.push('\n');
}

fn breakdown_section(r: &Results, s: &mut String) {
    let Some(first) = r.sizes.first() else { return };
    if first.breakdown.is_empty() {
        return;
    }
    s.push_str("### pam_mfa's login, step by step (µs per call, median; warm, in-process through mfa-core)\n\n");
    let mut head = vec!["step".to_owned(), "calls per login".to_owned()];
    head.extend(r.sizes.iter().map(|z| format!("{} users", users(z.users))));
    s.push_str(&row(&head));
    s.push_str(&row(&head
        .iter()
        .map(|_| "---".to_owned())
        .collect::<Vec<_>>()));
    for (k, step) in first.breakdown.iter().enumerate() {
        let mut cells = vec![step.what.clone(), step.per_login.to_string()];
        cells.extend(r.sizes.iter().map(|z| {
            z.breakdown
                .get(k)
                .map_or("–".into(), |x| us(x.time.median_us))
        }));
        s.push_str(&row(&cells));
    }
    // The HKDF row is already inside the slot opens and the seal.
    let warm = |z: &SizeResult| -> f64 {
        z.breakdown
            .iter()
            .filter(|x| !x.what.starts_with("MasterKey::active_store_key"))
            .map(|x| x.time.median_us * f64::from(x.per_login))
            .sum()
    };
    let mut cells = vec!["sum of the steps, per login".to_owned(), String::new()];
    cells.extend(r.sizes.iter().map(|z| us(warm(z))));
    s.push_str(&row(&cells));
    let mut cells = vec![
        "measured pam_authenticate (median)".to_owned(),
        String::new(),
    ];
    cells.extend(r.sizes.iter().map(|z| {
        z.module(Module::PamMfa)
            .map_or("–".into(), |m| us(m.right.auth.median_us))
    }));
    s.push_str(&row(&cells));
    s.push('\n');
}

/// One judged target.
struct Verdict {
    target: &'static str,
    measured: String,
    /// `None`: the machine could not show it this time.
    met: Option<bool>,
}

fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measurable in this run",
    }
}

/// A second process can only help where the machine had a second core
/// free: below this CPU-bound speed-up a size does not count.
const FREE_CORES: f64 = 1.8;

fn judge(r: &Results) -> Vec<Verdict> {
    let mut v = Vec::new();
    let pairs: Vec<Triple<'_>> = r
        .sizes
        .iter()
        .filter_map(|s| {
            Some((
                s,
                s.module(Module::PamMfa)?,
                s.module(Module::GoogleAuthenticator)?,
            ))
        })
        .collect();
    let list = |f: &dyn Fn(&SizeResult, &ModuleResult, &ModuleResult) -> (String, bool)| {
        each_size(&pairs, f)
    };
    let (measured, met) = list(&|s, m, g| {
        let ratio = m.right.auth.median_us / g.right.auth.median_us;
        (format!("{}: {ratio:.2}×", users(s.users)), ratio <= 0.5)
    });
    v.push(Verdict {
        target: "success path ≤ 0.5 × google-authenticator's median",
        measured,
        met: Some(met),
    });
    let (measured, met) = list(&|s, m, _| {
        let ratio = m.right.auth.median_us / s.floor.in_place.median_us;
        (format!("{}: {ratio:.2}×", users(s.users)), ratio <= 1.5)
    });
    v.push(Verdict {
        target: "success path ≤ 1.5 × floor (write + fdatasync)",
        measured,
        met: Some(met),
    });
    let (measured, met) = list(&|s, m, _| {
        let ratio = (m.right.auth.median_us - s.nss.lookup.median_us) / s.floor.in_place.median_us;
        (format!("{}: {ratio:.2}×", users(s.users)), ratio <= 1.5)
    });
    v.push(Verdict {
        target: "(same, without the getpwnam lookup)",
        measured,
        met: Some(met),
    });
    if let (Some((s0, m0, g0)), Some((s1, m1, g1))) = (pairs.first(), pairs.last()) {
        let dm = m1.right.auth.median_us - m0.right.auth.median_us;
        let dg = g1.right.auth.median_us - g0.right.auth.median_us;
        let dn = dm - (s1.nss.lookup.median_us - s0.nss.lookup.median_us);
        v.push(Verdict {
            target: "flat in N: growth from the smallest to the largest N ≤ google-authenticator's",
            measured: format!(
                "{} → {} users: pam_mfa (files) {:+.0} µs, google-authenticator {:+.0} µs",
                users(s0.users),
                users(s1.users),
                dm,
                dg
            ),
            met: Some(dm <= dg.max(0.0)),
        });
        v.push(Verdict {
            target: "(same, pam_mfa without the getpwnam lookup)",
            measured: format!("pam_mfa {dn:+.0} µs"),
            met: Some(dn <= dg.max(0.0)),
        });
    }
    v.extend(judge_nscd(r, &pairs));
    v.extend(judge_scaling(r, &pairs));
    v
}

/// Flat in N with nscd: pam_mfa's growth between the smallest and the
/// largest size measured with nscd, against google-authenticator's.
fn judge_nscd(r: &Results, pairs: &[Triple<'_>]) -> Option<Verdict> {
    let target = "(same, pam_mfa with nscd)";
    if let Some(why) = &r.nscd_skipped {
        return Some(Verdict {
            target,
            measured: format!("not measured: {why}"),
            met: None,
        });
    }
    let with: Vec<(&SizeResult, f64, &ModuleResult)> = pairs
        .iter()
        .filter_map(|(s, _, g)| Some((*s, s.nscd.as_ref()?.right.auth.median_us, *g)))
        .collect();
    let ((s0, m0, g0), (s1, m1, g1)) = (with.first()?, with.last()?);
    let dm = m1 - m0;
    let dg = g1.right.auth.median_us - g0.right.auth.median_us;
    Some(Verdict {
        target,
        measured: format!(
            "{} → {} users: pam_mfa with nscd {dm:+.0} µs ({} → {} µs), google-authenticator {dg:+.0} µs",
            users(s0.users),
            users(s1.users),
            us(*m0),
            us(*m1),
        ),
        met: Some(dm <= dg.max(0.0)),
    })
}

/// The load target again, from the C program: `dlopen` + `dlclose`.
fn judge_load(r: &Results) -> Option<Verdict> {
    let plain = |m: Module| {
        r.module_load
            .iter()
            .find(|l| l.module == m && l.preloaded.is_empty())
    };
    let (m, g) = (plain(Module::PamMfa)?, plain(Module::GoogleAuthenticator)?);
    let preloaded = r
        .module_load
        .iter()
        .find(|l| l.module == Module::PamMfa && !l.preloaded.is_empty())
        .map_or(String::new(), |p| {
            format!(
                " ({} µs with {} loaded first)",
                us(p.total.median_us),
                p.preloaded.join(", ")
            )
        });
    Some(Verdict {
        target: "(same, loading in a C program: dlopen + dlclose, median)",
        measured: format!(
            "pam_mfa {} µs{preloaded} vs google-authenticator {} µs",
            us(m.total.median_us),
            us(g.total.median_us)
        ),
        met: Some(m.total.median_us <= g.total.median_us),
    })
}

type Triple<'a> = (&'a SizeResult, &'a ModuleResult, &'a ModuleResult);

/// `f` for each size, joined; met if it is met at every size.
fn each_size(
    pairs: &[Triple<'_>],
    f: &dyn Fn(&SizeResult, &ModuleResult, &ModuleResult) -> (String, bool),
) -> (String, bool) {
    let parts: Vec<(String, bool)> = pairs.iter().map(|(s, m, g)| f(s, m, g)).collect();
    let met = !parts.is_empty() && parts.iter().all(|(_, ok)| *ok);
    (
        parts
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>()
            .join("; "),
        met,
    )
}

/// The targets on concurrency, loading, memory and lookups.
fn judge_scaling(r: &Results, pairs: &[Triple<'_>]) -> Vec<Verdict> {
    let mut v = Vec::new();
    let list = |f: &dyn Fn(&SizeResult, &ModuleResult, &ModuleResult) -> (String, bool)| {
        each_size(pairs, f)
    };
    let (measured, _) = list(&|s, m, _| {
        let all = m.pair.successes == m.pair.attempts;
        (
            format!(
                "{}: {:.2}× (CPU-bound work: {:.2}×){}",
                users(s.users),
                m.pair.speedup,
                s.cpu_parallelism,
                if all { "" } else { " (codes refused!)" }
            ),
            true,
        )
    });
    let counted: Vec<bool> = pairs
        .iter()
        .filter(|(s, _, _)| s.cpu_parallelism >= FREE_CORES)
        .map(|(_, m, _)| m.pair.speedup >= 1.6 && m.pair.successes == m.pair.attempts)
        .collect();
    v.push(Verdict {
        target: "2 processes on disjoint users ≥ 1.6 × one, every right code accepted (judged where 2 CPU-bound processes reached ≥ 1.8×)",
        measured,
        met: (!counted.is_empty()).then(|| counted.iter().all(|&ok| ok)),
    });
    let (measured, met) = list(&|s, m, g| {
        (
            format!(
                "{}: {} vs {} µs",
                users(s.users),
                us(m.right.overhead.median_us),
                us(g.right.overhead.median_us)
            ),
            m.right.overhead.median_us <= g.right.overhead.median_us,
        )
    });
    v.push(Verdict {
        target: "module load + transaction overhead ≤ google-authenticator's",
        measured,
        met: Some(met),
    });
    v.extend(judge_load(r));
    let (measured, met) = list(&|s, m, g| {
        let d = i128::from(m.right.rss_peak_kb) - i128::from(g.right.rss_peak_kb);
        (format!("{}: {d:+} KiB", users(s.users)), d <= 1024)
    });
    v.push(Verdict {
        target: "peak RSS ≤ google-authenticator's + 1 MiB",
        measured,
        met: Some(met),
    });
    let (measured, met) = list(&|s, m, _| {
        let p = per_attempt(m.right.passwd_opens, m.right.attempts);
        let g = per_attempt(m.right.group_opens, m.right.attempts);
        (
            format!("{}: passwd {p:.2}, group {g:.2}", users(s.users)),
            p <= 1.0 && g == 0.0,
        )
    });
    v.push(Verdict {
        target: "name-service lookups only when needed (one getpwnam for the uid; no group lookups without group rules)",
        measured,
        met: Some(met),
    });
    v
}

fn targets_section(r: &Results, s: &mut String) {
    s.push_str("### Targets\n\n");
    s.push_str(&header(&["target", "measured", "verdict"]));
    for v in judge(r) {
        s.push_str(&row(&[v.target.into(), v.measured, mark(v.met).into()]));
    }
    s.push('\n');
}

/// The whole report as Markdown.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    machine_section(r, &mut s);
    latency_sections(r, &mut s);
    load_section(r, &mut s);
    throughput_section(r, &mut s);
    admin_section(r, &mut s);
    nscd_section(r, &mut s);
    breakdown_section(r, &mut s);
    targets_section(r, &mut s);
    s
}

fn plot_data(r: &Results) -> String {
    let mut s = String::from(
        "# users mfa_med mfa_without_nss_med ga_med oath_med floor_med mfa_p99 ga_p99 oath_p99 floor_p99 (µs)\n",
    );
    for size in &r.sizes {
        let get = |m: Module| size.module(m).map(|x| x.right.auth);
        let (Some(mfa), Some(ga), Some(oath)) = (
            get(Module::PamMfa),
            get(Module::GoogleAuthenticator),
            get(Module::PamOath),
        ) else {
            continue;
        };
        let _ = writeln!(
            s,
            "{} {:.1} {:.1} {:.1} {:.1} {:.1} {:.1} {:.1} {:.1} {:.1}",
            size.users,
            mfa.median_us,
            mfa_without_nss(size).unwrap_or(0.0),
            ga.median_us,
            oath.median_us,
            size.floor.in_place.median_us,
            mfa.p99_us,
            ga.p99_us,
            oath.p99_us,
            size.floor.in_place.p99_us,
        );
    }
    s
}

const GNUPLOT: &str = r#"set terminal pngcairo noenhanced size 1200,520 font ",10"
set output 'latency.png'
set multiplot layout 1,2 title "pam_authenticate with a right code vs. users enrolled (log-log)"
set logscale xy
set grid
set xlabel 'users enrolled'
set key top left
set format x "%.0s%c"
set ylabel 'µs'
mfa = '#7b2cbf'; ga = '#2a9d8f'; oath = '#e76f51'; floor = '#555555'
set title 'median'
plot 'latency.dat' using 1:2 with linespoints lw 2 pt 7 lc rgb mfa title 'pam_mfa', \
     '' using 1:3 with linespoints dt 2 pt 6 lc rgb mfa title 'pam_mfa minus getpwnam', \
     '' using 1:4 with linespoints lw 2 pt 5 lc rgb ga title 'google-authenticator', \
     '' using 1:5 with linespoints lw 2 pt 9 lc rgb oath title 'pam_oath', \
     '' using 1:6 with lines dt 3 lw 2 lc rgb floor title 'floor: write + fdatasync'
set title '99th percentile'
plot 'latency.dat' using 1:7 with linespoints lw 2 pt 7 lc rgb mfa title 'pam_mfa', \
     '' using 1:8 with linespoints lw 2 pt 5 lc rgb ga title 'google-authenticator', \
     '' using 1:9 with linespoints lw 2 pt 9 lc rgb oath title 'pam_oath', \
     '' using 1:10 with lines dt 3 lw 2 lc rgb floor title 'floor: write + fdatasync'
unset multiplot
"#;

fn plot(out: &Path) -> Result<(), String> {
    let mut child = Command::new("gnuplot")
        .current_dir(out)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("gnuplot: {e} (apt-get install gnuplot-nox)"))?;
    child
        .stdin
        .take()
        .ok_or("gnuplot has no stdin")?
        .write_all(GNUPLOT.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("gnuplot failed: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(module: Module, preloaded: &[&str], total_ns: u64) -> ModuleLoad {
        ModuleLoad {
            module,
            path: format!("/lib/security/{}.so", module.label()),
            size_bytes: 2_000_000,
            needed: vec!["libpam.so.0".into(), "libc.so.6".into()],
            preloaded: preloaded.iter().map(|&p| p.to_owned()).collect(),
            loaded: vec![format!("/lib/security/{}.so", module.label())],
            kept: Vec::new(),
            dlopen: Summary::of_ns(&[total_ns]),
            dlclose: Summary::of_ns(&[0]),
            total: Summary::of_ns(&[total_ns]),
        }
    }

    fn results() -> Results {
        Results {
            started: String::new(),
            elapsed_s: 0.0,
            machine: crate::results::Machine::default(),
            module_path: String::new(),
            provision: Summary::default(),
            spool_scan: Vec::new(),
            spool_flood: Vec::new(),
            module_load: vec![
                load(Module::PamMfa, &[], 180_000),
                load(Module::PamMfa, &["libgcc_s.so.1"], 70_000),
                load(Module::GoogleAuthenticator, &[], 40_000),
            ],
            nscd_skipped: Some("nscd is not installed (apt-get install nscd)".into()),
            sizes: Vec::new(),
        }
    }

    #[test]
    fn the_load_table_and_its_verdict_follow_the_plain_loads() {
        let text = markdown(&results());
        assert!(
            text.contains("### Loading the module in a C program"),
            "{text}"
        );
        assert!(
            text.contains("| pam_mfa, with libgcc_s.so.1 loaded first | 1\u{202f}954 KiB |"),
            "{text}"
        );
        assert!(text.contains(
            "| (same, loading in a C program: dlopen + dlclose, median) | pam_mfa 180 µs (70.0 µs with libgcc_s.so.1 loaded first) vs google-authenticator 40.0 µs | **not met** |"
        ), "{text}");
        let mut faster = results();
        faster.module_load.truncate(1);
        faster
            .module_load
            .push(load(Module::GoogleAuthenticator, &[], 200_000));
        assert!(markdown(&faster).contains("vs google-authenticator 200 µs | met |"));
    }

    #[test]
    fn without_nscd_the_report_says_why() {
        let text = markdown(&results());
        assert!(
            text.contains(
                "Not measured in this run: nscd is not installed (apt-get install nscd)."
            ),
            "{text}"
        );
        assert!(text.contains(
            "| (same, pam_mfa with nscd) | not measured: nscd is not installed (apt-get install nscd) | not measurable in this run |"
        ), "{text}");
    }

    #[test]
    fn user_counts_are_grouped_in_thousands() {
        assert_eq!(users(100), "100");
        assert_eq!(users(100_000), "100\u{202f}000");
        assert_eq!(users(1_000), "1\u{202f}000");
    }
}

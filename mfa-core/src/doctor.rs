//! `mfa-enroll doctor`: checks a host's pam_mfa setup and says how to fix
//! what is wrong.
//!
//! The checks read files, and, with the PostgreSQL store, ask the database
//! for its list of records (one operation under the store's deadline). Each
//! returns [`Finding`]s; an `Error` means logins are unsafe or will fail, a
//! `Warning` something an administrator most likely did not intend.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Config, NotConfigured, StoreBackend};
use crate::fsutil::{self, Access, FileTrust};
use crate::keys::{EnrollmentPublicKey, Generation, MasterKey};
use crate::policy;
use crate::spool;
use crate::store::{postgres, Store};

mod services;
pub use services::{check_account_last, check_service_coverage, check_service_tables};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Checked and fine.
    Ok,
    /// Worth knowing.
    Info,
    /// Probably not what was intended.
    Warning,
    /// Unsafe or broken.
    Error,
}

impl Level {
    /// Lower-case name for output.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// What was checked (`config`, `pam.d/sudo`, `sshd_config`...).
    pub area: String,
    /// What was found.
    pub message: String,
    /// What to do about it; empty when nothing is needed.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}",
            self.level.as_str(),
            self.area,
            self.message
        )?;
        if !self.fix.is_empty() {
            write!(f, "\n    fix: {}", self.fix)?;
        }
        Ok(())
    }
}

fn finding(
    level: Level,
    area: &str,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        level,
        area: area.to_owned(),
        message: message.into(),
        fix: fix.into(),
    }
}

/// Where the checked files live; [`SystemPaths::under`] points everything
/// into a directory for tests.
#[derive(Debug, Clone)]
pub struct SystemPaths {
    /// The PAM configuration directory.
    pub pam_d: PathBuf,
    /// The sshd configuration file.
    pub sshd_config: PathBuf,
    /// The sudoers file.
    pub sudoers: PathBuf,
    /// The sudoers drop-in directory.
    pub sudoers_d: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        SystemPaths::under(Path::new("/"))
    }
}

impl SystemPaths {
    /// The usual layout below `root`.
    pub fn under(root: &Path) -> Self {
        SystemPaths {
            pam_d: root.join("etc/pam.d"),
            sshd_config: root.join("etc/ssh/sshd_config"),
            sudoers: root.join("etc/sudoers"),
            sudoers_d: root.join("etc/sudoers.d"),
        }
    }
}

/// Runs every check.
pub fn run(config_path: &Path, trust: FileTrust, system: &SystemPaths) -> Vec<Finding> {
    let mut out = Vec::new();
    let config = match Config::load(config_path, trust, &[]) {
        Ok(c) => {
            out.push(finding(
                Level::Ok,
                "config",
                format!("{} is valid", config_path.display()),
                "",
            ));
            c
        }
        Err(e) => {
            out.push(finding(
                Level::Error,
                "config",
                e.to_string(),
                "fix the file as the message says; every login through pam_mfa fails until then",
            ));
            return out;
        }
    };
    out.extend(check_files(&config, trust));
    out.extend(check_store(&config, trust));
    out.extend(check_record_keys(&config, trust));
    for service in ["sshd", "sudo"] {
        // Under skip and configure a user's first device (enrolled at login,
        // or a self-service request) is committed in the account phase.
        let first_device_at_login = policy::unenrolled_policies(&config, service)
            .iter()
            .any(|p| *p != NotConfigured::Deny);
        out.extend(check_stack(&system.pam_d, service, first_device_at_login));
    }
    out.extend(check_policy(&config));
    out.extend(check_common_auth(&system.pam_d));
    out.extend(check_service_coverage(&system.pam_d));
    out.extend(check_account_last(&system.pam_d));
    out.extend(check_service_tables(&system.pam_d, &config));
    out.extend(check_sshd(&system.sshd_config));
    out.extend(check_sudo_timestamp(&system.sudoers, &system.sudoers_d));
    out
}

/// Key file, public key, state directory and spool.
pub fn check_files(config: &Config, trust: FileTrust) -> Vec<Finding> {
    let mut out = Vec::new();
    let p = &config.paths;
    let keys = match MasterKey::load(&p.key_file, trust) {
        Ok(k) => {
            out.push(finding(
                Level::Ok,
                "master key",
                format!("{} is root-only and valid", p.key_file.display()),
                "",
            ));
            Some(k)
        }
        Err(e) => {
            out.push(finding(
                Level::Error,
                "master key",
                e.to_string(),
                "restore the key file from backup, or run `mfa-enroll key init` on a new host",
            ));
            None
        }
    };
    match EnrollmentPublicKey::load(&p.enroll_public_key, trust) {
        Ok(public) => {
            if let Some(keys) = &keys {
                if keys.enrollment_public_key() == public {
                    out.push(finding(
                        Level::Ok,
                        "enrollment key",
                        "matches the active generation",
                        "",
                    ));
                } else {
                    out.push(finding(
                        Level::Error,
                        "enrollment key",
                        format!("{} does not belong to the active master key generation", p.enroll_public_key.display()),
                        "run `mfa-enroll key rotate` or restore the matching file; self-service enrollments sealed to it cannot be opened",
                    ));
                }
            }
        }
        Err(e) => out.push(finding(
            Level::Warning,
            "enrollment key",
            e.to_string(),
            "users cannot enroll themselves until it exists; `mfa-enroll key init` writes it",
        )),
    }
    match fsutil::check_dir(&p.state_dir, trust, Access::OwnerOnly) {
        Ok(()) => out.push(finding(
            Level::Ok,
            "state directory",
            format!("{} is root-only", p.state_dir.display()),
            "",
        )),
        Err(e) => out.push(finding(
            Level::Error,
            "state directory",
            e.to_string(),
            format!("install -d -m 0700 -o root {}", p.state_dir.display()),
        )),
    }
    match spool::check_spool(&p.spool_dir, trust) {
        Ok(()) => out.push(finding(
            Level::Ok,
            "spool",
            format!("{} accepts self-service enrollments", p.spool_dir.display()),
            "",
        )),
        Err(e) => out.push(finding(
            Level::Warning,
            "spool",
            e.to_string(),
            format!("install -d -m 1733 -o root {}", p.spool_dir.display()),
        )),
    }
    out
}

/// The PostgreSQL store: the connection file is safe and parses, its TLS
/// setting verifies the server, and the database answers within
/// `timeout_ms`. Nothing for the files store (see [`check_files`]).
pub fn check_store(config: &Config, trust: FileTrust) -> Vec<Finding> {
    const AREA: &str = "store";
    let store = &config.store;
    if store.backend == StoreBackend::Files {
        return Vec::new();
    }
    let file = store.connection_file.display();
    let timeout = std::time::Duration::from_millis(u64::from(store.timeout_ms));
    let settings = match postgres::Settings::load(&store.connection_file, trust, timeout) {
        Ok(s) => s,
        Err(e) => {
            return vec![finding(
                Level::Error,
                AREA,
                e.to_string(),
                format!(
                    "write one libpq connection string into {file} (root, 0600); see docs/postgres.md. Until then every login of an enrolled user fails"
                ),
            )]
        }
    };
    let mut out = Vec::new();
    let weaker = match settings.sslmode() {
        postgres::SslMode::VerifyFull => None,
        postgres::SslMode::VerifyCa => Some("verify-ca"),
        postgres::SslMode::Require => Some("require"),
        postgres::SslMode::Disable => Some("disable"),
    };
    if let Some(mode) = weaker {
        out.push(finding(
            Level::Warning,
            AREA,
            format!(
                "{file} sets sslmode={mode}: the database server's certificate is not checked for its host name"
            ),
            "set sslmode=verify-full and sslrootcert to the CA that signed the server's certificate",
        ));
    }
    let servers = settings.describe();
    let client = postgres::Client::new(settings);
    match client.names() {
        Ok(names) => out.push(finding(
            Level::Ok,
            AREA,
            format!(
                "PostgreSQL {servers} answered within {} ms and holds {} record{}",
                store.timeout_ms,
                names.len(),
                if names.len() == 1 { "" } else { "s" }
            ),
            "",
        )),
        Err(e) => out.push(finding(
            Level::Error,
            AREA,
            e.to_string(),
            "every login of an enrolled user fails with PAM_AUTHINFO_UNAVAIL until the database answers; see docs/postgres.md",
        )),
    }
    out
}

/// Records the master key cannot open: each record's newest sealed slot
/// (read from its header, nothing decrypted) must name a generation the key
/// file holds, with the same key check. What a purge followed by a new
/// install leaves behind, or a key file restored from a backup older than a
/// rotation. Records whose headers do not read at all are left to `list`.
pub fn check_record_keys(config: &Config, trust: FileTrust) -> Vec<Finding> {
    const AREA: &str = "records";
    let p = &config.paths;
    let store = Store::new(&p.state_dir, trust);
    // An unusable state directory has its own finding.
    let Ok(uids) = store.uids() else {
        return Vec::new();
    };
    let keys = MasterKey::load(&p.key_file, trust).ok();
    let mut sealed = 0usize;
    let mut lost: Vec<(u32, Generation)> = Vec::new();
    for uid in uids {
        let Some(newest) = store
            .sealed_under(uid)
            .ok()
            .and_then(|seals| seals.into_iter().max_by_key(|s| s.seq))
        else {
            continue;
        };
        sealed += 1;
        if !keys.as_ref().is_some_and(|k| newest.opens_with(k)) {
            lost.push((uid, newest.generation));
        }
    }
    let records = |n: usize| {
        let dir = p.state_dir.display();
        if n == 1 {
            format!("1 record in {dir} is")
        } else {
            format!("{n} records in {dir} are")
        }
    };
    if lost.is_empty() {
        return vec![finding(
            Level::Ok,
            AREA,
            format!(
                "{} sealed under generations that {} holds",
                records(sealed),
                p.key_file.display()
            ),
            "",
        )];
    }
    let uids: Vec<u32> = lost.iter().map(|(uid, _)| *uid).collect();
    let mut generations: Vec<Generation> = lost.iter().map(|(_, g)| *g).collect();
    generations.sort_unstable();
    generations.dedup();
    // A fresh key starts at generation 1 again: say when the number is held
    // but the key behind it is another.
    let generations = generations
        .iter()
        .map(|&g| match &keys {
            Some(k) if k.store_key(g).is_some() => format!("generation {g} of another key"),
            _ => format!("generation {g}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (message, fix) = match keys {
        None => (
            format!(
                "{} sealed under a master key this host does not have ({generations}; {} is missing): those users cannot log in (uid {})",
                records(lost.len()),
                p.key_file.display(),
                uid_list(&uids)
            ),
            format!(
                "restore {} (and {}) from your backup; to give these enrollments up instead, run `mfa-enroll key init`, then `mfa-enroll reset --uid N` for each uid above, and enroll those users again",
                p.key_file.display(),
                p.enroll_public_key.display()
            ),
        ),
        Some(_) => (
            format!(
                "{} sealed under key generations that {} does not hold ({generations}): those users cannot log in, or log in with an older state (uid {})",
                records(lost.len()),
                p.key_file.display(),
                uid_list(&uids)
            ),
            "restore the key file that holds these generations from your backup; to give these enrollments up instead, run `mfa-enroll reset --uid N` for each uid above and enroll those users again".to_owned(),
        ),
    };
    vec![finding(Level::Error, AREA, message, fix)]
}

/// The first few uids of a list, and how many more.
fn uid_list(uids: &[u32]) -> String {
    const SHOWN: usize = 10;
    let mut s: Vec<String> = uids.iter().take(SHOWN).map(ToString::to_string).collect();
    if uids.len() > SHOWN {
        s.push(format!("and {} more", uids.len() - SHOWN));
    }
    s.join(", ")
}

/// One line of a PAM stack.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PamLine {
    kind: String,
    control: String,
    module: String,
    from: String,
}

/// Reads a stack, following `@include` (one file deep per level, at most 4
/// levels, which covers Debian's common-* files).
fn read_stack(pam_d: &Path, service: &str, depth: u8) -> Option<Vec<PamLine>> {
    let text = std::fs::read_to_string(pam_d.join(service)).ok()?;
    let mut lines = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(inc) = line.strip_prefix("@include") {
            if depth < 4 {
                lines.extend(read_stack(pam_d, inc.trim(), depth + 1).unwrap_or_default());
            }
            continue;
        }
        let (kind, rest) = line.split_once(char::is_whitespace)?;
        let rest = rest.trim_start();
        // Bracketed controls contain spaces: [success=ok default=die].
        let (control, rest) = if rest.starts_with('[') {
            let end = rest.find(']')?;
            (&rest[..=end], rest[end + 1..].trim_start())
        } else {
            rest.split_once(char::is_whitespace)?
        };
        let module = rest.split_whitespace().next().unwrap_or("");
        lines.push(PamLine {
            kind: kind.trim_start_matches('-').to_owned(),
            control: control.to_owned(),
            module: module.to_owned(),
            from: service.to_owned(),
        });
    }
    Some(lines)
}

fn is_mfa(module: &str) -> bool {
    Path::new(module)
        .file_name()
        .is_some_and(|n| n == "pam_mfa.so")
}

/// Whether a control stops the stack when the module fails.
fn stops_on_failure(control: &str) -> bool {
    control == "requisite" || control.contains("default=die") || control.contains("auth_err=die")
}

/// A service's stack: pam_mfa present, never `sufficient`, after a first
/// factor that stops the stack on failure, and with an account line when
/// the `configure` policy is used.
pub fn check_stack(pam_d: &Path, service: &str, first_device_at_login: bool) -> Vec<Finding> {
    let area = format!("pam.d/{service}");
    let Some(lines) = read_stack(pam_d, service, 0) else {
        return vec![finding(Level::Info, &area, "no such service file", "")];
    };
    let mut out = Vec::new();
    let auth: Vec<&PamLine> = lines.iter().filter(|l| l.kind == "auth").collect();
    let Some(pos) = auth.iter().position(|l| is_mfa(&l.module)) else {
        return vec![finding(
            Level::Warning,
            &area,
            format!("pam_mfa is not in the auth stack: {service} asks for no second factor"),
            format!("add `auth required pam_mfa.so` after the first factor (see /usr/share/doc/pam-mfa/examples/pam.d/{service})"),
        )];
    };
    let mfa = auth[pos];
    if mfa.control == "sufficient" || mfa.control.contains("success=done") && service != "sshd" {
        out.push(finding(
            Level::Error,
            &area,
            format!(
                "pam_mfa is `{}`: a right code alone ends the stack, skipping the password",
                mfa.control
            ),
            "use `required` after a requisite first factor",
        ));
    }
    let before = &auth[..pos];
    let first_factor = before
        .iter()
        .filter(|l| {
            !matches!(
                l.module.as_str(),
                "pam_env.so" | "pam_faildelay.so" | "pam_nologin.so"
            )
        })
        .collect::<Vec<_>>();
    if first_factor.is_empty() {
        if service == "sshd" {
            out.push(finding(
                Level::Info,
                &area,
                "pam_mfa is the only auth module: right for `AuthenticationMethods publickey,keyboard-interactive`",
                "",
            ));
        } else {
            out.push(finding(
                Level::Error,
                &area,
                "nothing runs before pam_mfa: the code is the only factor",
                "put the password check first: `@include common-auth` or `auth requisite pam_unix.so`",
            ));
        }
    } else if !first_factor.iter().any(|l| stops_on_failure(&l.control)) {
        out.push(finding(
            Level::Warning,
            &area,
            "no module before pam_mfa stops the stack on failure: a wrong password still reaches the code prompt (and enrollment)",
            "make the first factor `requisite` (Debian's common-auth already ends in `requisite pam_deny.so`)",
        ));
    } else {
        out.push(finding(
            Level::Ok,
            &area,
            "pam_mfa runs after a first factor that stops the stack on failure",
            "",
        ));
    }
    let has_account = lines
        .iter()
        .any(|l| l.kind == "account" && is_mfa(&l.module));
    if first_device_at_login && !has_account {
        out.push(finding(
            Level::Error,
            &area,
            "users without a device may get one at login (not_configured = \"configure\", or a self-service request under \"skip\") but there is no `account required pam_mfa.so` line: such devices are never saved",
            "add `account required pam_mfa.so` after the other account modules",
        ));
    }
    out
}

/// pam_mfa in common-auth applies to every service that includes it: the
/// way to cover them all (`check_service_coverage` lists them), and a
/// reminder of the services that cannot ask a second question.
pub fn check_common_auth(pam_d: &Path) -> Vec<Finding> {
    match read_stack(pam_d, "common-auth", 0) {
        Some(lines) if lines.iter().any(|l| is_mfa(&l.module)) => vec![finding(
            Level::Info,
            "pam.d/common-auth",
            "pam_mfa is in common-auth (pam-auth-update), so every service that includes it asks enrolled users for a code: \
             login, su, su-l, sudo, sudo-i, sshd with a password, polkit, screen lockers; \
             a service that can ask only for a password (mail, FTP) refuses enrolled users",
            "",
        )],
        _ => Vec::new(),
    }
}

/// Reads sshd's configuration the way sshd does: first value wins,
/// `Include` globs expanded in place (only `*.conf` in one directory).
fn sshd_settings(path: &Path, out: &mut Vec<(String, String)>, depth: u8) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or((line, ""));
        let key = key.to_ascii_lowercase();
        let value = value
            .trim_start_matches(|c: char| c.is_whitespace() || c == '=')
            .trim();
        if key == "match" {
            // Settings under Match apply conditionally; stop as sshd's global section ends.
            return;
        }
        if key == "include" && depth < 3 {
            for pattern in value.split_whitespace() {
                let pattern = if Path::new(pattern).is_absolute() {
                    PathBuf::from(pattern)
                } else {
                    path.parent().unwrap_or(Path::new("/")).join(pattern)
                };
                for file in expand_glob(&pattern) {
                    sshd_settings(&file, out, depth + 1);
                }
            }
            continue;
        }
        out.push((key, value.to_owned()));
    }
}

/// Expands a trailing `*.ext` pattern in one directory, sorted as sshd does.
fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some(suffix) = name.strip_prefix('*') else {
        return vec![pattern.to_path_buf()];
    };
    let dir = pattern.parent().unwrap_or(Path::new("/"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// sshd: PAM on, keyboard-interactive on, and required by `AuthenticationMethods`.
pub fn check_sshd(path: &Path) -> Vec<Finding> {
    let area = "sshd_config";
    if !path.exists() {
        return vec![finding(
            Level::Info,
            area,
            "sshd is not configured on this host",
            "",
        )];
    }
    let mut settings = Vec::new();
    sshd_settings(path, &mut settings, 0);
    let get = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let mut out = Vec::new();
    if get("usepam").as_deref() != Some("yes") {
        out.push(finding(
            Level::Error,
            area,
            "UsePAM is not yes: sshd never runs pam_mfa",
            "set `UsePAM yes`",
        ));
    }
    let kbd =
        get("kbdinteractiveauthentication").or_else(|| get("challengeresponseauthentication"));
    if kbd.as_deref() == Some("no") {
        out.push(finding(
            Level::Error,
            area,
            "KbdInteractiveAuthentication is no: the code cannot be asked",
            "set `KbdInteractiveAuthentication yes`",
        ));
    }
    match get("authenticationmethods") {
        Some(m) if m.split_whitespace().all(|list| list.contains("keyboard-interactive")) => {
            out.push(finding(Level::Ok, area, format!("AuthenticationMethods {m} requires keyboard-interactive"), ""));
        }
        Some(m) => out.push(finding(
            Level::Error,
            area,
            format!("AuthenticationMethods {m} allows a login without keyboard-interactive, so without a code"),
            "use `AuthenticationMethods publickey,keyboard-interactive`",
        )),
        None => out.push(finding(
            Level::Warning,
            area,
            "AuthenticationMethods is not set: a public key alone logs in without running PAM's auth stack",
            "set `AuthenticationMethods publickey,keyboard-interactive` (see the pam_mfa sshd drop-in)",
        )),
    }
    if get("passwordauthentication").as_deref() != Some("no") {
        out.push(finding(
            Level::Warning,
            area,
            "PasswordAuthentication is not no: its password conversation answers every PAM prompt with the password",
            "set `PasswordAuthentication no` and use keyboard-interactive",
        ));
    }
    out
}

/// sudo caches authentication: within `timestamp_timeout` minutes it asks
/// for neither password nor code.
pub fn check_sudo_timestamp(sudoers: &Path, sudoers_d: &Path) -> Vec<Finding> {
    let area = "sudo";
    let mut files = vec![sudoers.to_path_buf()];
    if let Ok(d) = std::fs::read_dir(sudoers_d) {
        let mut more: Vec<PathBuf> = d
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.contains('.') && !n.ends_with('~'))
            })
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut timeout: Option<String> = None;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            if !line.starts_with("Defaults") {
                continue;
            }
            if let Some(pos) = line.find("timestamp_timeout") {
                let value = line[pos + "timestamp_timeout".len()..]
                    .trim_start_matches(|c: char| c.is_whitespace() || c == '=')
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .to_owned();
                // Later Defaults override earlier ones.
                timeout = Some(value);
            }
        }
    }
    match timeout.as_deref() {
        None => vec![finding(
            Level::Info,
            area,
            "timestamp_timeout is sudo's default (15 minutes): after one code, sudo asks for neither password nor code for 15 minutes on that terminal",
            "`Defaults timestamp_timeout=0` in /etc/sudoers.d/ asks every time",
        )],
        Some(v) if v.starts_with('-') => vec![finding(
            Level::Warning,
            area,
            format!("timestamp_timeout={v}: sudo's cache never expires, so one code lasts forever"),
            "set a small non-negative timestamp_timeout",
        )],
        Some(v) => vec![finding(Level::Ok, area, format!("timestamp_timeout={v} minutes"), "")],
    }
}

/// Policy settings that do not apply as written, and the services where a
/// console login needs no code (`break_glass`). What applies is decided by
/// [`policy::effective`]: the strictest of `[policy]`, `[service.NAME]` and,
/// for members of `groups.require`, `groups.require_policy`.
pub fn check_policy(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let base = config.policy.not_configured;
    for (name, table) in &config.service {
        let Some(written) = table.not_configured else {
            continue;
        };
        let applied = policy::effective(config, name, &[]).not_configured;
        if applied != written {
            out.push(finding(
                Level::Warning,
                "config",
                format!(
                    "[service.{name}] sets not_configured = \"{written}\", but policy.not_configured = \"{base}\" is stricter and applies: a service table can only make the policy stricter"
                ),
                "make [policy] the loosest policy you want anywhere and set the stricter ones in [service.NAME] tables",
            ));
        }
    }
    if policy::require_policy_overridden(config) {
        out.push(finding(
            Level::Warning,
            "config",
            format!(
                "groups.require_policy = \"{}\" has no effect: policy.not_configured = \"{base}\" is stricter and applies to members of groups.require too",
                config.groups.require_policy
            ),
            "set groups.require_policy = \"deny\", or remove groups.require",
        ));
    }
    let glass: Vec<&str> = config
        .service
        .iter()
        .filter(|(_, t)| t.break_glass)
        .map(|(name, _)| name.as_str())
        .collect();
    if !glass.is_empty() {
        // On sudo, su and the like, whoever sits at a console already logged
        // in would reach root without a code.
        let level = if glass.iter().all(|s| *s == "login") {
            Level::Info
        } else {
            Level::Warning
        };
        out.push(finding(
            level,
            "config",
            format!(
                "break_glass = true on {}: a login there from a local console (tty1 to tty63, console; no remote host) needs no code, and each one is logged at alert level (event=break_glass)",
                glass.join(", ")
            ),
            if level == Level::Info {
                ""
            } else {
                "keep break_glass to [service.login], the console login itself"
            },
        ));
    }
    out
}

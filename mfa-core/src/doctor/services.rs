//! The checks that read `/etc/pam.d` as a whole: which services ask for a
//! code, which ways in are left without one, where pam_mfa's account line
//! runs, and `[service.NAME]` tables without a service.
//!
//! On Debian more services than sshd and sudo give a shell for a password:
//! `sudo -i` runs the service `sudo-i` (not `sudo`), `su -` runs `su-l`,
//! a console login runs `login`, and each of them includes `common-auth`
//! directly. A host that put pam_mfa into sshd and sudo alone still lets
//! the password in through those, so doctor names each of them with the
//! file and the line to add.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::pamd::{module_name, Entry, Inclusion, Kind, PamDir, Site, Stack};

use super::{finding, Finding, Level};

/// Services that give whoever passes their auth stack a shell, a desktop
/// or root, with what runs them.
const SHELL_SERVICES: &[(&str, &str)] = &[
    ("login", "console and serial-line logins (`login`)"),
    ("sshd", "SSH logins"),
    ("su", "`su`"),
    ("su-l", "`su -` and `su -l` (they run su-l, not su)"),
    ("sudo", "`sudo`"),
    ("sudo-i", "`sudo -i` (it runs sudo-i, not sudo)"),
    ("polkit-1", "`pkexec` and other polkit authorisations"),
    ("gdm-password", "GNOME's login screen"),
    ("lightdm", "LightDM's login screen"),
    ("sddm", "SDDM's login screen"),
    ("xrdp-sesman", "remote desktop logins (xrdp)"),
    ("cockpit", "the Cockpit web console"),
];

/// Services that run `other` when their file is missing, with the service
/// whose file shows that the program is installed.
const FALL_BACK_TO_OTHER: &[(&str, &str)] = &[("sudo-i", "sudo"), ("su-l", "su")];

/// Services that include `common-auth` but only let a user who is already
/// logged in change their own account details: no way in.
const NO_WAY_IN: &[&str] = &["chfn", "chsh"];

/// The line that makes a service ask for a code.
pub const AUTH_LINE: &str = "auth required pam_mfa.so";
/// The line that saves a device enrolled at the prompt.
pub const ACCOUNT_LINE: &str = "account required pam_mfa.so";

/// The services of the directory that applications start, without the
/// shared `common-*` files they include.
fn service_names(dir: &PamDir) -> std::io::Result<Vec<String>> {
    let mut names = dir.services()?;
    names.retain(|n| !n.starts_with("common-"));
    Ok(names)
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Whether a control ends the stack (or the substack) with success when
/// the module succeeds.
fn ends_on_success(control: &str) -> bool {
    control.eq_ignore_ascii_case("sufficient") || control.contains("success=done")
}

/// The substack lines an entry runs inside, outermost first.
fn substacks(entry: &Entry) -> Vec<&Site> {
    entry
        .via
        .iter()
        .filter(|s| s.how == Inclusion::Substack)
        .map(|s| &s.site)
        .collect()
}

/// The lines before pam_mfa that can end its stack with success, so that
/// pam_mfa never runs: `sufficient` (or `success=done`) modules in the
/// same stack or an enclosing one. `pam_rootok` is left out: it succeeds
/// for root only, who needs no password either.
fn skippers(stack: &Stack) -> Vec<&Entry> {
    let Some(pos) = stack.entries.iter().position(Entry::is_pam_mfa) else {
        return Vec::new();
    };
    let mfa = substacks(&stack.entries[pos]);
    stack.entries[..pos]
        .iter()
        .filter(|e| ends_on_success(&e.control) && module_name(&e.module) != "pam_rootok.so")
        .filter(|e| mfa.starts_with(&substacks(e)))
        .collect()
}

/// Where to add a line to a service, and the file it goes into.
#[derive(Debug)]
struct Placement {
    /// The file to edit.
    file: std::path::PathBuf,
    /// The line to add it after; `None` when the file has no line of that
    /// type (add it anywhere).
    after: Option<Site>,
    /// The include line that sent us from the service's file to `file`.
    through: Option<Site>,
}

impl Placement {
    /// `/etc/pam.d/sudo-i: add "auth required pam_mfa.so" after "@include common-auth" (line 5)`.
    fn render(&self, line: &str) -> String {
        let mut out = match &self.after {
            Some(site) => format!(
                "{}: add \"{line}\" after \"{}\" (line {})",
                self.file.display(),
                site.text,
                site.line
            ),
            None => format!("{}: add \"{line}\"", self.file.display()),
        };
        if let Some(through) = &self.through {
            let _ = write!(
                out,
                " (it reaches this file through \"{}\", {} line {})",
                through.text,
                through.file.display(),
                through.line
            );
        }
        out
    }
}

/// Where `line` of type `kind` belongs in `service`: after the include of
/// `common` (`common-auth`) when the service's own file has one (the first
/// factor comes from there), otherwise after the last line of that type.
/// When the service takes those lines from another service's file (su-l
/// from su), the line belongs there, which fixes both.
fn placement(dir: &PamDir, service: &str, kind: Kind, common: &str, depth: usize) -> Placement {
    let own = if dir.has_service(service) {
        service
    } else {
        "other"
    };
    let file = dir.file_of(own);
    let stack = dir.stack(own, kind);
    let after_common = stack
        .entries
        .iter()
        .filter_map(|e| e.via.first())
        .rfind(|step| step.target == common)
        .map(|step| step.site.clone());
    let last = stack.entries.iter().rev().find(|e| e.origin().file == file);
    let delegated = last
        .and_then(|e| e.via.first())
        .filter(|step| !step.target.starts_with("common-") && dir.has_service(&step.target));
    if let (Some(site), Kind::Auth) = (&after_common, kind) {
        return Placement {
            file,
            after: Some(site.clone()),
            through: None,
        };
    }
    if let Some(step) = delegated {
        if depth < 4 {
            let mut inner = placement(dir, &step.target, kind, common, depth + 1);
            inner.through.get_or_insert_with(|| step.site.clone());
            return inner;
        }
    }
    Placement {
        file,
        after: last.map(|e| e.origin().clone()),
        through: None,
    }
}

/// How a shell service without pam_mfa is reported.
fn uncovered(
    dir: &PamDir,
    service: &str,
    stack: &Stack,
    anchors: &[&str],
    account_missing: bool,
) -> Option<Finding> {
    // A stack of pam_deny (and pam_warn, which only logs) lets nobody in:
    // what Debian's own `other` suggests.
    let ways_in = stack
        .entries
        .iter()
        .any(|e| !matches!(module_name(&e.module), "pam_deny.so" | "pam_warn.so"));
    if !ways_in {
        return None;
    }
    let path = dir.file_of(service);
    let asks = format!(
        "while {} {} for a code",
        and_list(anchors),
        if anchors.len() == 1 { "asks" } else { "ask" }
    );
    let shell = SHELL_SERVICES
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, what)| *what);
    let stands_in: Vec<&str> = if service == "other" {
        FALL_BACK_TO_OTHER
            .iter()
            .filter(|(missing, installed)| !dir.has_service(missing) && dir.has_service(installed))
            .map(|(missing, _)| *missing)
            .collect()
    } else {
        Vec::new()
    };
    let (level, message) = if let Some(what) = shell {
        (
            Level::Error,
            format!(
                "{what}: the PAM service {service} ({}) never reaches pam_mfa.so, so the password alone gets in, {asks}",
                path.display()
            ),
        )
    } else if service == "other" {
        let mut message = format!(
            "services without a file of their own run {}, which never reaches pam_mfa.so",
            path.display()
        );
        if stands_in.is_empty() {
            (Level::Warning, message)
        } else {
            let missing: Vec<String> = stands_in
                .iter()
                .map(|s| dir.file_of(s).display().to_string())
                .collect();
            let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
            let _ = write!(
                message,
                "; there is no {}, so {} {} it: the password alone gets in, {asks}",
                and_list(&missing),
                and_list(&stands_in),
                if stands_in.len() == 1 { "runs" } else { "run" }
            );
            (Level::Error, message)
        }
    } else if stack.includes("common-auth") && !NO_WAY_IN.contains(&service) {
        (
            Level::Warning,
            format!(
                "{service} ({}) includes common-auth but never reaches pam_mfa.so: if it logs users in, the password alone gets in there, {asks}",
                path.display()
            ),
        )
    } else {
        return None;
    };
    let mut fix = placement(dir, service, Kind::Auth, "common-auth", 0).render(AUTH_LINE);
    if account_missing {
        fix.push_str("; ");
        fix.push_str(
            &placement(dir, service, Kind::Account, "common-account", 0).render(ACCOUNT_LINE),
        );
    }
    if service == "sshd" {
        fix.push_str(
            " (for an SSH key followed by a code instead of the password, use /usr/share/doc/pam-mfa/examples/pam.d/sshd)",
        );
    }
    if service == "other" {
        fix.push_str(", or make services without a file refuse: \"auth required pam_deny.so\" in place of its auth lines");
    }
    Some(finding(level, &format!("pam.d/{service}"), message, fix))
}

/// When sudo or sshd asks for a code: every other way to a shell that does
/// not (sudo-i, su, su-l, login, sshd, sudo, and any other service that
/// includes common-auth) is reported with the file and the line to add;
/// an Info line lists the services that ask. Also reported: lines that end
/// the auth stack with success before pam_mfa asks, and pam_mfa asked
/// twice in one stack.
pub fn check_service_coverage(pam_d: &Path) -> Vec<Finding> {
    let dir = PamDir::new(pam_d);
    let services = match service_names(&dir) {
        Ok(s) => s,
        Err(e) => {
            return vec![finding(
                Level::Warning,
                "pam.d",
                format!("cannot list {}: {e}", pam_d.display()),
                "",
            )]
        }
    };
    // A file without auth lines of its own runs other's (passwd, chpasswd:
    // programs that never authenticate); other is reported for itself.
    let stacks: Vec<(&str, Stack)> = services
        .iter()
        .map(|s| (s.as_str(), dir.stack(s, Kind::Auth)))
        .filter(|(s, stack)| {
            let file = dir.file_of(s);
            stack.entries.iter().any(|e| e.origin().file == file)
        })
        .collect();
    let asking: Vec<&str> = stacks
        .iter()
        .filter(|(_, stack)| stack.reaches_pam_mfa())
        .map(|(name, _)| *name)
        .collect();
    let anchors: Vec<&str> = ["sshd", "sudo"]
        .into_iter()
        .filter(|s| asking.contains(s))
        .collect();
    if anchors.is_empty() {
        // Nothing is set up yet: check_stack says so for sshd and sudo.
        return Vec::new();
    }
    let mut out = vec![finding(
        Level::Info,
        "pam.d",
        format!(
            "services that ask enrolled users for a code: {}",
            and_list(&asking)
        ),
        "",
    )];
    for (service, stack) in &stacks {
        if stack.reaches_pam_mfa() {
            out.extend(skipped_or_twice(service, stack));
            continue;
        }
        let account_missing = !dir.stack(service, Kind::Account).reaches_pam_mfa();
        out.extend(uncovered(&dir, service, stack, &anchors, account_missing));
    }
    out
}

/// A service whose auth stack loads pam_mfa: lines that skip it on
/// success, and pam_mfa loaded twice.
fn skipped_or_twice(service: &str, stack: &Stack) -> Vec<Finding> {
    let area = format!("pam.d/{service}");
    let mut out = Vec::new();
    for e in skippers(stack) {
        out.push(finding(
            Level::Warning,
            &area,
            format!(
                "\"{}\" ({}) is `{}`: when {} succeeds the auth stack ends there and pam_mfa never asks for a code",
                e.site.text,
                e.site,
                e.control,
                module_name(&e.module)
            ),
            format!(
                "if that is not meant as an exemption, make it `requisite` or `required`, or move \"{AUTH_LINE}\" above it"
            ),
        ));
    }
    let mfa = stack.pam_mfa_entries();
    if let [first, second, ..] = mfa.as_slice() {
        out.push(finding(
            Level::Warning,
            &area,
            format!(
                "pam_mfa is in the auth stack twice ({} and {}): users are asked for two codes",
                first.site, second.site
            ),
            format!(
                "keep one: if pam-auth-update put pam_mfa into common-auth, remove \"{}\" from {}",
                second.site.text,
                second.site.file.display()
            ),
        ));
    }
    out
}

/// pam_mfa's account line saves a device enrolled at the prompt when it
/// runs, whatever the account modules after it will decide: it must be
/// the last account line of every service that asks for a code, and no
/// `sufficient` line may end the account stack before it.
pub fn check_account_last(pam_d: &Path) -> Vec<Finding> {
    let dir = PamDir::new(pam_d);
    let Ok(services) = service_names(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for service in &services {
        if !dir.stack(service, Kind::Auth).reaches_pam_mfa() {
            continue;
        }
        let stack = dir.stack(service, Kind::Account);
        let Some(mfa) = stack.pam_mfa_entries().last().copied() else {
            continue;
        };
        let area = format!("pam.d/{service}");
        let after = stack.after_last_pam_mfa();
        if let Some(last) = after.last() {
            let names: Vec<&str> = after.iter().map(|e| module_name(&e.module)).collect();
            let (move_this, below) = diverging_lines(mfa, last);
            out.push(finding(
                Level::Warning,
                &area,
                format!(
                    "pam_mfa's account line ({}) is not the last account line: {} {} after it; pam_mfa saves a device enrolled at the prompt whatever they decide, so a login they refuse would still leave the device behind",
                    mfa.site,
                    and_list(&names),
                    if names.len() == 1 { "runs" } else { "run" }
                ),
                format!(
                    "{}: move \"{}\" (line {}) below \"{}\" (line {})",
                    move_this.file.display(),
                    move_this.text,
                    move_this.line,
                    below.text,
                    below.line
                ),
            ));
        }
        for e in skippers(&stack) {
            out.push(finding(
                Level::Warning,
                &area,
                format!(
                    "\"{}\" ({}) is `{}`: when {} succeeds the account stack ends before pam_mfa's account line, and a device enrolled at the prompt is not saved",
                    e.site.text,
                    e.site,
                    e.control,
                    module_name(&e.module)
                ),
                "make it `required`, or do not use not_configured = \"configure\" with this service",
            ));
        }
    }
    out
}

/// The two lines of one file that order `a` before `b`: where their
/// include paths part.
fn diverging_lines<'a>(a: &'a Entry, b: &'a Entry) -> (&'a Site, &'a Site) {
    let chain = |e: &'a Entry| -> Vec<&'a Site> {
        e.via
            .iter()
            .map(|s| &s.site)
            .chain(std::iter::once(&e.site))
            .collect()
    };
    let (ca, cb) = (chain(a), chain(b));
    let at = ca.iter().zip(&cb).position(|(x, y)| x != y).unwrap_or(0);
    (ca[at.min(ca.len() - 1)], cb[at.min(cb.len() - 1)])
}

/// `[service.NAME]` tables whose NAME has no file in the pam.d directory:
/// no stack of that name loads pam_mfa, so the settings most likely never
/// apply (a typo, or a service that is not installed).
pub fn check_service_tables(pam_d: &Path, config: &Config) -> Vec<Finding> {
    let dir = PamDir::new(pam_d);
    config
        .service
        .keys()
        .filter(|name| !dir.has_service(name))
        .map(|name| {
            finding(
                Level::Warning,
                "config",
                format!(
                    "[service.{name}]: there is no {}, so no stack of that name loads pam_mfa and these settings most likely never apply",
                    dir.file_of(name).display()
                ),
                format!(
                    "name the table after a file in {} (service names are those file names, in lower case), or remove it",
                    pam_d.display()
                ),
            )
        })
        .collect()
}

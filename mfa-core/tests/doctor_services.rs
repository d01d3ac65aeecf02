//! doctor's checks of the PAM services as a whole, on Debian 12's own
//! `/etc/pam.d` set up the ways the guide describes: which services ask
//! for a code, which ways to a shell are left without one (with the file
//! and the line to add), where pam_mfa's account line runs, and
//! `[service.NAME]` tables without a service.

mod common;
mod debian_pam;

use common::trust;
use debian_pam::DebianPam;
use mfa_core::doctor::{self, Finding, Level, SystemPaths};

/// The findings about `area` (`pam.d/sudo-i`).
fn about<'a>(findings: &'a [Finding], area: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.area == area).collect()
}

/// The one finding about `area` at `level`.
fn one(findings: &[Finding], area: &str, level: Level) -> Finding {
    match about(findings, area).as_slice() {
        [f] if f.level == level => (*f).clone(),
        other => panic!("expected one {level:?} about {area}, got {other:#?}\nall: {findings:#?}"),
    }
}

fn coverage(host: &DebianPam) -> Vec<Finding> {
    doctor::check_service_coverage(&host.pam_d())
}

/// `doctor::run` on the host with a config whose paths are in the host's
/// directory, and whose body is `settings`.
fn run_doctor(host: &DebianPam, settings: &str) -> Vec<Finding> {
    let path = host.root().join("pam_mfa.toml");
    std::fs::write(
        &path,
        format!(
            "{settings}\n[paths]\nstate_dir = \"{0}/users\"\nkey_file = \"{0}/master.key\"\n\
             enroll_public_key = \"{0}/enroll.pub\"\nspool_dir = \"{0}/spool\"\n",
            host.root().display()
        ),
    )
    .unwrap();
    doctor::run(&path, trust(), &SystemPaths::under(host.root()))
}

#[test]
fn doctor_reports_sudo_i_when_only_the_sudo_file_was_edited() {
    // The guide's per-service instructions before sudo-i was covered:
    // /etc/pam.d/sudo replaced, sudo-i as Debian ships it.
    let host = DebianPam::per_service();
    let findings = run_doctor(&host, "");
    let f = one(&findings, "pam.d/sudo-i", Level::Error);
    assert!(f.message.contains("`sudo -i`"), "{f}");
    assert!(f.message.contains("the password alone"), "{f}");
    let want = format!(
        "{}: add \"auth required pam_mfa.so\" after \"@include common-auth\" (line 6)",
        host.file("sudo-i").display()
    );
    assert!(f.fix.starts_with(&want), "{f}\nwant: {want}");
    assert!(
        f.fix.contains(
            "add \"account required pam_mfa.so\" after \"@include common-account\" (line 7)"
        ),
        "{f}"
    );
}

#[test]
fn every_way_to_a_shell_without_a_code_is_an_error_naming_the_line() {
    let host = DebianPam::per_service();
    let findings = coverage(&host);
    for (service, include_line) in [("su", 57), ("login", 57), ("sudo-i", 6)] {
        let f = one(&findings, &format!("pam.d/{service}"), Level::Error);
        assert!(
            f.fix.contains(&format!(
                "{}: add \"auth required pam_mfa.so\" after \"@include common-auth\" (line {include_line})",
                host.file(service).display()
            )),
            "{f}"
        );
    }
    // su-l takes its auth lines from su: the line goes there.
    let f = one(&findings, "pam.d/su-l", Level::Error);
    assert!(
        f.fix.starts_with(&format!(
            "{}: add \"auth required pam_mfa.so\" after \"@include common-auth\" (line 57) \
             (it reaches this file through \"auth include su\", {} line 2)",
            host.file("su").display(),
            host.file("su-l").display()
        )),
        "{f}"
    );
    // other includes common-auth: any service without a file gets the
    // password alone.
    one(&findings, "pam.d/other", Level::Warning);
    // chfn and chsh change a logged-in user's own details; runuser is root's.
    for quiet in [
        "chfn",
        "chsh",
        "runuser",
        "runuser-l",
        "passwd",
        "sudo",
        "sshd",
    ] {
        assert!(
            about(&findings, &format!("pam.d/{quiet}")).is_empty(),
            "{quiet}: {findings:#?}"
        );
    }
    let info = one(&findings, "pam.d", Level::Info);
    assert_eq!(
        info.message,
        "services that ask enrolled users for a code: sshd and sudo"
    );
}

#[test]
fn sshd_without_pam_mfa_is_an_error_when_sudo_has_it() {
    let host = DebianPam::stock();
    host.write("sudo", &debian_pam::shipped("sudo"));
    let f = coverage(&host);
    let sshd = one(&f, "pam.d/sshd", Level::Error);
    assert!(sshd.message.contains("SSH logins"), "{sshd}");
    assert!(
        sshd.message.contains("while sudo asks for a code"),
        "{sshd}"
    );
    assert!(
        sshd.fix.contains("after \"@include common-auth\" (line 4)")
            && sshd.fix.contains("examples/pam.d/sshd"),
        "{sshd}"
    );
}

#[test]
fn the_guides_per_service_setup_with_sudo_i_su_and_login_leaves_nothing_uncovered() {
    let host = DebianPam::per_service();
    for (service, auth_at, account_at) in [("sudo-i", 6, 7), ("su", 57, 58), ("login", 57, 98)] {
        let text = host.read(service);
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(account_at, "account required pam_mfa.so");
        lines.insert(auth_at, "auth    required   pam_mfa.so");
        host.write(service, &(lines.join("\n") + "\n"));
    }
    let findings = coverage(&host);
    assert!(
        findings.iter().all(|f| f.level < Level::Error),
        "{findings:#?}"
    );
    let info = one(&findings, "pam.d", Level::Info);
    assert_eq!(
        info.message,
        "services that ask enrolled users for a code: login, sshd, su, su-l, sudo and sudo-i"
    );
    assert!(doctor::check_account_last(&host.pam_d()).is_empty());
}

#[test]
fn pam_auth_update_covers_every_service_that_includes_common_auth() {
    let host = DebianPam::pam_auth_update();
    let findings = coverage(&host);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        one(&findings, "pam.d", Level::Info).message,
        "services that ask enrolled users for a code: chfn, chsh, login, other, sshd, su, su-l, sudo and sudo-i"
    );
    assert!(doctor::check_account_last(&host.pam_d()).is_empty());
}

#[test]
fn nothing_is_said_about_other_services_before_sudo_or_sshd_asks() {
    let host = DebianPam::stock();
    assert!(coverage(&host).is_empty());
}

#[test]
fn a_missing_sudo_i_file_makes_other_an_error() {
    let host = DebianPam::per_service();
    host.remove("sudo-i");
    let f = one(&coverage(&host), "pam.d/other", Level::Error);
    assert!(
        f.message
            .contains(&format!("there is no {}", host.file("sudo-i").display())),
        "{f}"
    );
    assert!(
        f.fix.contains(&format!(
            "{}: add \"auth required pam_mfa.so\" after \"@include common-auth\" (line 13)",
            host.file("other").display()
        )),
        "{f}"
    );
}

#[test]
fn an_other_that_refuses_is_not_reported() {
    // As the comment in Debian's /etc/pam.d/other suggests.
    let host = DebianPam::per_service();
    host.write(
        "other",
        "auth required pam_warn.so\nauth required pam_deny.so\naccount required pam_deny.so\n",
    );
    let findings = coverage(&host);
    assert!(about(&findings, "pam.d/other").is_empty(), "{findings:#?}");
    // Then a missing sudo-i is refused outright: nothing to report either.
    host.remove("sudo-i");
    assert!(about(&coverage(&host), "pam.d/other").is_empty());
}

#[test]
fn the_line_to_add_quotes_the_include_as_written() {
    let host = DebianPam::per_service();
    host.write(
        "sudo-i",
        "session required pam_limits.so\nauth   include   common-auth\naccount include common-account\n",
    );
    let f = one(&coverage(&host), "pam.d/sudo-i", Level::Error);
    assert!(
        f.fix.contains(
            "add \"auth required pam_mfa.so\" after \"auth include common-auth\" (line 2)"
        ),
        "{f}"
    );
}

#[test]
fn another_service_that_includes_common_auth_is_a_warning() {
    let host = DebianPam::per_service();
    host.write(
        "vsftpd",
        "auth required pam_shells.so\n@include common-auth\n@include common-account\n",
    );
    let f = one(&coverage(&host), "pam.d/vsftpd", Level::Warning);
    assert!(f.message.contains("includes common-auth"), "{f}");
    assert!(
        f.fix.contains("after \"@include common-auth\" (line 2)"),
        "{f}"
    );
}

#[test]
fn a_backup_of_a_stack_is_not_reported() {
    let host = DebianPam::per_service();
    std::fs::copy(host.file("sudo-i"), host.file("sudo-i.pre-mfa")).unwrap();
    let findings = coverage(&host);
    assert!(
        about(&findings, "pam.d/sudo-i.pre-mfa").is_empty(),
        "{findings:#?}"
    );
}

#[test]
fn a_sufficient_module_before_pam_mfa_is_a_warning() {
    let host = DebianPam::per_service();
    host.write(
        "sudo",
        "auth sufficient pam_unix.so\nauth required pam_mfa.so\n@include common-account\naccount required pam_mfa.so\n",
    );
    let f = one(&coverage(&host), "pam.d/sudo", Level::Warning);
    assert!(f.message.contains("pam_mfa never asks"), "{f}");
    assert!(f.message.contains(":1)"), "{f}");
}

#[test]
fn pam_mfa_twice_in_one_stack_is_a_warning() {
    // pam-auth-update enabled, and the per-service line left in place.
    let host = DebianPam::pam_auth_update();
    host.write("sudo", &debian_pam::shipped("sudo"));
    let f = one(&coverage(&host), "pam.d/sudo", Level::Warning);
    assert!(f.message.contains("twice"), "{f}");
    assert!(
        f.fix.contains(&host.file("sudo").display().to_string()),
        "{f}"
    );
}

#[test]
fn an_account_line_before_common_account_is_a_warning_saying_what_to_move() {
    let host = DebianPam::per_service();
    host.write(
        "sudo",
        "@include common-auth\nauth required pam_mfa.so\naccount required pam_mfa.so\n@include common-account\n",
    );
    let findings = doctor::check_account_last(&host.pam_d());
    let f = one(&findings, "pam.d/sudo", Level::Warning);
    assert!(f.message.contains("not the last account line"), "{f}");
    assert!(
        f.message
            .contains("pam_unix.so, pam_deny.so and pam_permit.so run after it"),
        "{f}"
    );
    assert_eq!(
        f.fix,
        format!(
            "{}: move \"account required pam_mfa.so\" (line 3) below \"@include common-account\" (line 4)",
            host.file("sudo").display()
        )
    );
}

#[test]
fn an_account_module_after_pam_mfa_in_common_account_is_a_warning() {
    // Another pam-auth-update profile whose Account lines sort after pam_mfa's.
    let host = DebianPam::pam_auth_update();
    host.replace(
        "common-account",
        "account\trequired\tpam_mfa.so\n",
        "account\trequired\tpam_mfa.so\naccount\trequired\tpam_access.so\n",
    );
    let findings = doctor::check_account_last(&host.pam_d());
    let f = one(&findings, "pam.d/sudo", Level::Warning);
    assert!(
        f.fix.starts_with(&format!(
            "{}: move \"account required pam_mfa.so\"",
            host.file("common-account").display()
        )),
        "{f}"
    );
    assert!(
        f.fix.contains("below \"account required pam_access.so\""),
        "{f}"
    );
}

#[test]
fn a_sufficient_account_module_before_pam_mfa_is_a_warning() {
    // libpam-sss's profile: `sufficient pam_localuser.so` ends the account
    // stack for local users.
    let host = DebianPam::pam_auth_update();
    host.replace(
        "common-account",
        "account\trequired\tpam_mfa.so\n",
        "account\tsufficient\tpam_localuser.so\naccount\trequired\tpam_mfa.so\n",
    );
    let findings = doctor::check_account_last(&host.pam_d());
    let f = one(&findings, "pam.d/sudo-i", Level::Warning);
    assert!(f.message.contains("pam_localuser.so succeeds"), "{f}");
    assert!(f.message.contains("not saved"), "{f}");
}

#[test]
fn the_shipped_stacks_put_pam_mfas_account_line_last() {
    let host = DebianPam::per_service();
    host.write(
        "sshd-password",
        &debian_pam::shipped("sshd.password-and-code"),
    );
    assert!(
        doctor::check_account_last(&host.pam_d()).is_empty(),
        "{:#?}",
        doctor::check_account_last(&host.pam_d())
    );
}

#[test]
fn a_service_table_without_a_service_file_is_a_warning() {
    let host = DebianPam::per_service();
    let findings = run_doctor(
        &host,
        "[service.ssh]\nnot_configured = \"deny\"\n[service.sudo-i]\nnot_configured = \"deny\"\n",
    );
    let tables: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.area == "config" && f.message.starts_with("[service."))
        .collect();
    assert_eq!(tables.len(), 1, "{findings:#?}");
    assert_eq!(tables[0].level, Level::Warning);
    assert!(
        tables[0].message.contains(&format!(
            "[service.ssh]: there is no {}",
            host.file("ssh").display()
        )),
        "{}",
        tables[0]
    );
}

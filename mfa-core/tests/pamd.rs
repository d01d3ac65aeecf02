//! `pamd`: stacks assembled from a pam.d directory as libpam does, on
//! Debian 12's own files and on small hand-made ones.

mod debian_pam;

use debian_pam::DebianPam;
use mfa_core::pamd::{Inclusion, Kind, PamDir};

fn modules(dir: &PamDir, service: &str, kind: Kind) -> Vec<String> {
    dir.stack(service, kind)
        .entries
        .iter()
        .map(|e| e.module.clone())
        .collect()
}

#[test]
fn sudo_i_takes_its_auth_lines_from_common_auth_not_from_sudo() {
    let host = DebianPam::per_service();
    let dir = PamDir::new(host.pam_d());
    assert!(dir.stack("sudo", Kind::Auth).reaches_pam_mfa());
    let sudo_i = dir.stack("sudo-i", Kind::Auth);
    assert!(!sudo_i.reaches_pam_mfa(), "{sudo_i:#?}");
    assert!(sudo_i.includes("common-auth"));
    assert!(!sudo_i.includes("sudo"));
    let unix = &sudo_i.entries[0];
    assert_eq!(unix.module, "pam_unix.so");
    assert_eq!(unix.site.file, host.file("common-auth"));
    assert_eq!(unix.site.line, 17);
    assert_eq!(unix.origin().file, host.file("sudo-i"));
    assert_eq!(unix.origin().line, 6);
    assert_eq!(unix.origin().text, "@include common-auth");
}

#[test]
fn su_l_follows_auth_include_su_into_common_auth() {
    let host = DebianPam::stock();
    let dir = PamDir::new(host.pam_d());
    let stack = dir.stack("su-l", Kind::Auth);
    assert_eq!(
        modules(&dir, "su-l", Kind::Auth),
        [
            "pam_rootok.so",
            "pam_unix.so",
            "pam_deny.so",
            "pam_permit.so",
            "pam_cap.so"
        ]
    );
    let unix = &stack.entries[1];
    let targets: Vec<(&str, Inclusion)> = unix
        .via
        .iter()
        .map(|s| (s.target.as_str(), s.how))
        .collect();
    assert_eq!(
        targets,
        [
            ("su", Inclusion::Include),
            ("common-auth", Inclusion::AtInclude)
        ]
    );
    assert_eq!(unix.origin().text, "auth include su");
    assert_eq!(unix.origin().line, 2);
}

#[test]
fn a_type_include_brings_in_that_type_only() {
    let host = DebianPam::stock();
    let dir = PamDir::new(host.pam_d());
    host.write("t", "auth include sudo\n");
    assert_eq!(
        modules(&dir, "t", Kind::Auth),
        modules(&dir, "sudo", Kind::Auth)
    );
    // No account line of its own: libpam runs other's account stack.
    assert_eq!(
        modules(&dir, "t", Kind::Account),
        modules(&dir, "other", Kind::Account)
    );
}

#[test]
fn a_substack_is_followed_and_marked() {
    let host = DebianPam::stock();
    host.write("t", "auth substack common-auth\nauth required pam_mfa.so\n");
    let stack = PamDir::new(host.pam_d()).stack("t", Kind::Auth);
    assert!(stack.reaches_pam_mfa());
    assert_eq!(stack.entries[0].substack_depth(), 1);
    assert_eq!(stack.entries.last().unwrap().substack_depth(), 0);
}

#[test]
fn a_service_without_a_file_runs_other() {
    let host = DebianPam::stock();
    host.remove("sudo-i");
    let dir = PamDir::new(host.pam_d());
    let stack = dir.stack("sudo-i", Kind::Auth);
    assert_eq!(stack.entries[0].origin().file, host.file("other"));
    assert!(stack.includes("common-auth"));
}

#[test]
fn pam_mfa_is_found_in_common_auth_after_pam_auth_update() {
    let host = DebianPam::pam_auth_update();
    let dir = PamDir::new(host.pam_d());
    for service in ["login", "sshd", "su", "su-l", "sudo", "sudo-i", "other"] {
        assert!(
            dir.stack(service, Kind::Auth).reaches_pam_mfa(),
            "{service}"
        );
        let account = dir.stack(service, Kind::Account);
        assert!(account.reaches_pam_mfa(), "{service}");
        assert!(
            account.after_last_pam_mfa().is_empty(),
            "{service}: {account:#?}"
        );
    }
    assert!(!dir.stack("runuser", Kind::Auth).reaches_pam_mfa());
}

#[test]
fn lines_after_pam_mfas_account_line_are_listed() {
    let host = DebianPam::stock();
    host.write(
        "t",
        "@include common-auth\nauth required pam_mfa.so\naccount required pam_mfa.so\n@include common-account\n",
    );
    let stack = PamDir::new(host.pam_d()).stack("t", Kind::Account);
    let after: Vec<&str> = stack
        .after_last_pam_mfa()
        .iter()
        .map(|e| e.module.as_str())
        .collect();
    assert_eq!(after, ["pam_unix.so", "pam_deny.so", "pam_permit.so"]);
}

#[test]
fn a_missing_include_is_a_problem_with_its_line() {
    let host = DebianPam::stock();
    host.write("t", "auth required pam_unix.so\n@include common-nothing\n");
    let stack = PamDir::new(host.pam_d()).stack("t", Kind::Auth);
    assert_eq!(stack.entries.len(), 1);
    assert_eq!(stack.problems.len(), 1, "{stack:#?}");
    assert_eq!(stack.problems[0].site.line, 2);
    assert!(
        stack.problems[0].message.contains("common-nothing"),
        "{stack:#?}"
    );
}

#[test]
fn backups_and_leftovers_are_not_services() {
    let host = DebianPam::stock();
    for name in ["sudo.pre-mfa", "sshd.dpkg-old", "login~", ".hidden"] {
        host.write(name, "@include common-auth\n");
    }
    host.write("gdm-password", "@include common-auth\n");
    let services = PamDir::new(host.pam_d()).services().unwrap();
    for name in ["sudo.pre-mfa", "sshd.dpkg-old", "login~", ".hidden"] {
        assert!(
            !services.iter().any(|s| s == name),
            "{name} in {services:?}"
        );
    }
    assert!(services.iter().any(|s| s == "gdm-password"));
    assert!(services.iter().any(|s| s == "sudo-i"));
}

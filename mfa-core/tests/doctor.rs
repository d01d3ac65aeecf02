//! `doctor` on good and broken setups, built in a directory tree.

mod common;

use std::path::Path;

use common::{trust, Fixture};
use mfa_core::config::Config;
use mfa_core::doctor::{self, Finding, Level, SystemPaths};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const COMMON_AUTH: &str = "\
auth [success=1 default=ignore] pam_unix.so nullok
auth requisite pam_deny.so
auth required pam_permit.so
";

/// A host laid out like the shipped examples.
fn good_host() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write(root, "etc/pam.d/common-auth", COMMON_AUTH);
    write(
        root,
        "etc/pam.d/common-account",
        "account required pam_unix.so\n",
    );
    write(
        root,
        "etc/pam.d/common-session",
        "session required pam_unix.so\n",
    );
    write(
        root,
        "etc/pam.d/common-session-noninteractive",
        "session required pam_unix.so\n",
    );
    write(
        root,
        "etc/pam.d/common-password",
        "password required pam_unix.so\n",
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (from, to) in [
        ("config/pam.d/sudo", "etc/pam.d/sudo"),
        ("config/pam.d/sshd", "etc/pam.d/sshd"),
    ] {
        write(root, to, &std::fs::read_to_string(repo.join(from)).unwrap());
    }
    write(
        root,
        "etc/ssh/sshd_config",
        "Include /dev/null\nInclude sshd_config.d/*.conf\nUsePAM no\n",
    );
    write(
        root,
        "etc/ssh/sshd_config.d/00-pam_mfa.conf",
        &std::fs::read_to_string(repo.join("config/sshd_config.d/00-pam_mfa.conf")).unwrap(),
    );
    write(root, "etc/sudoers", "Defaults env_reset\n");
    write(root, "etc/sudoers.d/mfa", "Defaults timestamp_timeout=0\n");
    d
}

fn errors(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .collect()
}

fn has(findings: &[Finding], level: Level, needle: &str) -> bool {
    findings
        .iter()
        .any(|f| f.level == level && f.message.contains(needle))
}

#[test]
fn the_shipped_examples_pass_every_system_check() {
    let host = good_host();
    let sys = SystemPaths::under(host.path());
    let mut all = Vec::new();
    for service in ["sshd", "sudo"] {
        all.extend(doctor::check_stack(&sys.pam_d, service, true));
    }
    all.extend(doctor::check_common_auth(&sys.pam_d));
    all.extend(doctor::check_sshd(&sys.sshd_config));
    all.extend(doctor::check_sudo_timestamp(&sys.sudoers, &sys.sudoers_d));
    assert!(all.iter().all(|f| f.level <= Level::Info), "{all:#?}");
    assert!(has(&all, Level::Ok, "requires keyboard-interactive"));
    assert!(has(&all, Level::Ok, "timestamp_timeout=0"));
}

#[test]
fn a_sufficient_pam_mfa_is_an_error() {
    let host = good_host();
    write(
        host.path(),
        "etc/pam.d/sudo",
        "@include common-auth\nauth sufficient pam_mfa.so\n",
    );
    let f = doctor::check_stack(&SystemPaths::under(host.path()).pam_d, "sudo", false);
    assert!(has(&f, Level::Error, "sufficient"), "{f:#?}");
}

#[test]
fn pam_mfa_alone_in_sudo_is_an_error() {
    let host = good_host();
    write(
        host.path(),
        "etc/pam.d/sudo",
        "auth required pam_mfa.so\naccount required pam_mfa.so\n",
    );
    let f = doctor::check_stack(&SystemPaths::under(host.path()).pam_d, "sudo", false);
    assert!(has(&f, Level::Error, "only factor"), "{f:#?}");
}

#[test]
fn a_first_factor_that_does_not_stop_the_stack_is_a_warning() {
    let host = good_host();
    write(
        host.path(),
        "etc/pam.d/sudo",
        "auth required pam_unix.so\nauth required pam_mfa.so\n",
    );
    let f = doctor::check_stack(&SystemPaths::under(host.path()).pam_d, "sudo", false);
    assert!(
        has(&f, Level::Warning, "wrong password still reaches"),
        "{f:#?}"
    );
}

#[test]
fn configure_without_an_account_line_is_an_error() {
    let host = good_host();
    write(
        host.path(),
        "etc/pam.d/sudo",
        "@include common-auth\nauth required pam_mfa.so\n",
    );
    let pam_d = SystemPaths::under(host.path()).pam_d;
    assert!(has(
        &doctor::check_stack(&pam_d, "sudo", true),
        Level::Error,
        "account required pam_mfa.so"
    ));
    assert!(errors(&doctor::check_stack(&pam_d, "sudo", false)).is_empty());
}

#[test]
fn the_account_line_is_needed_wherever_a_first_device_can_arrive_at_login() {
    // Under skip a self-service request gives a user their first device at
    // login, committed in the account phase like configure's; under deny
    // only an administrator adds one.
    for (policy, needed) in [("skip", true), ("configure", true), ("deny", false)] {
        let host = good_host();
        write(
            host.path(),
            "etc/pam.d/sudo",
            "@include common-auth\nauth required pam_mfa.so\n",
        );
        let config = host.path().join("pam_mfa.toml");
        std::fs::write(
            &config,
            format!("[policy]\nnot_configured = \"{policy}\"\n"),
        )
        .unwrap();
        let f = doctor::run(&config, trust(), &SystemPaths::under(host.path()));
        assert_eq!(
            has(&f, Level::Error, "account required pam_mfa.so"),
            needed,
            "{policy}: {f:#?}"
        );
    }
}

#[test]
fn a_service_without_pam_mfa_is_a_warning() {
    let host = good_host();
    write(host.path(), "etc/pam.d/sudo", "@include common-auth\n");
    let f = doctor::check_stack(&SystemPaths::under(host.path()).pam_d, "sudo", false);
    assert!(has(&f, Level::Warning, "not in the auth stack"), "{f:#?}");
}

#[test]
fn pam_mfa_in_common_auth_is_reported_as_covering_every_service_that_includes_it() {
    let host = good_host();
    write(
        host.path(),
        "etc/pam.d/common-auth",
        &format!("{COMMON_AUTH}auth required pam_mfa.so\n"),
    );
    let f = doctor::check_common_auth(&SystemPaths::under(host.path()).pam_d);
    assert!(has(&f, Level::Info, "every service"), "{f:#?}");
    assert!(has(&f, Level::Info, "sudo-i"), "{f:#?}");
}

#[test]
fn sshd_without_pam_or_with_a_key_only_method_is_an_error() {
    let host = good_host();
    let path = host.path().join("etc/ssh/sshd_config");
    write(
        host.path(),
        "etc/ssh/sshd_config",
        "UsePAM no\nKbdInteractiveAuthentication no\nAuthenticationMethods publickey\n",
    );
    let f = doctor::check_sshd(&path);
    assert!(has(&f, Level::Error, "UsePAM"), "{f:#?}");
    assert!(
        has(&f, Level::Error, "KbdInteractiveAuthentication"),
        "{f:#?}"
    );
    assert!(
        has(&f, Level::Error, "without keyboard-interactive"),
        "{f:#?}"
    );
    assert!(has(&f, Level::Warning, "PasswordAuthentication"), "{f:#?}");
    write(
        host.path(),
        "etc/ssh/sshd_config",
        "UsePAM yes\nPasswordAuthentication no\n",
    );
    assert!(has(
        &doctor::check_sshd(&path),
        Level::Warning,
        "AuthenticationMethods is not set"
    ));
}

#[test]
fn sshd_first_value_wins_as_in_sshd() {
    let host = good_host();
    let path = host.path().join("etc/ssh/sshd_config");
    write(
        host.path(),
        "etc/ssh/sshd_config",
        "UsePAM no\nUsePAM yes\n",
    );
    assert!(has(&doctor::check_sshd(&path), Level::Error, "UsePAM"));
}

#[test]
fn sudo_timestamps_are_reported() {
    let host = good_host();
    let sys = SystemPaths::under(host.path());
    std::fs::remove_file(host.path().join("etc/sudoers.d/mfa")).unwrap();
    assert!(has(
        &doctor::check_sudo_timestamp(&sys.sudoers, &sys.sudoers_d),
        Level::Info,
        "15 minutes"
    ));
    write(
        host.path(),
        "etc/sudoers.d/mfa",
        "Defaults timestamp_timeout=-1\n",
    );
    assert!(has(
        &doctor::check_sudo_timestamp(&sys.sudoers, &sys.sudoers_d),
        Level::Warning,
        "never expires"
    ));
}

#[test]
fn file_checks_report_a_missing_key_and_an_unsafe_state_directory() {
    let f = Fixture::new();
    let mut config = Config::default();
    config.paths.state_dir = f.root().join("users");
    config.paths.key_file = f.root().join("master.key");
    config.paths.enroll_public_key = f.root().join("enroll.pub");
    config.paths.spool_dir = f.root().join("spool");
    f.keys
        .enrollment_public_key()
        .save(&config.paths.enroll_public_key)
        .unwrap();
    let ok = doctor::check_files(&config, trust());
    assert!(errors(&ok).is_empty(), "{ok:#?}");
    assert!(
        has(&ok, Level::Warning, "spool"),
        "a missing spool only disables self-service: {ok:#?}"
    );
    common::set_mode(&config.paths.state_dir, 0o777);
    std::fs::remove_file(&config.paths.key_file).unwrap();
    let bad = doctor::check_files(&config, trust());
    assert!(has(&bad, Level::Error, "master.key"), "{bad:#?}");
    assert!(
        bad.iter()
            .any(|f| f.area == "state directory" && f.level == Level::Error),
        "{bad:#?}"
    );
}

#[test]
fn a_bad_config_stops_the_checks_with_an_error() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("pam_mfa.toml");
    std::fs::write(&path, "[policy]\nnot_configured = \"maybe\"\n").unwrap();
    let f = doctor::run(&path, trust(), &SystemPaths::under(d.path()));
    assert_eq!(f.len(), 1);
    assert!(
        f[0].level == Level::Error && f[0].message.contains("policy.not_configured"),
        "{f:#?}"
    );
}

/// A configuration file pointing every path into `f`, as `doctor` reads it.
fn config_for(f: &Fixture) -> std::path::PathBuf {
    let path = f.root().join("pam_mfa.toml");
    std::fs::write(
        &path,
        format!(
            "[paths]\nstate_dir = \"{0}/users\"\nkey_file = \"{0}/master.key\"\n\
             enroll_public_key = \"{0}/enroll.pub\"\nspool_dir = \"{0}/spool\"\n",
            f.root().display()
        ),
    )
    .unwrap();
    path
}

/// The findings about the records' keys, from a full doctor run.
fn record_findings(f: &Fixture) -> Vec<Finding> {
    let host = good_host();
    doctor::run(&config_for(f), trust(), &SystemPaths::under(host.path()))
        .into_iter()
        .filter(|f| f.area == "records")
        .collect()
}

#[test]
fn records_without_any_master_key_are_an_error_with_their_count() {
    // What a purge leaves: the records, and no key.
    let f = Fixture::new();
    for uid in [1001, 1002, 1003] {
        f.enroll(uid);
    }
    std::fs::remove_file(f.root().join("master.key")).unwrap();
    let found = record_findings(&f);
    assert!(has(&found, Level::Error, "3 records"), "{found:#?}");
    assert!(
        found.iter().any(|f| f.fix.contains("restore")),
        "{found:#?}"
    );
}

#[test]
fn records_sealed_under_another_key_with_the_same_generation_are_an_error() {
    // A purge, then an install that made a new key: generation 1 again,
    // but not the generation 1 the records were sealed under.
    let f = Fixture::new();
    for uid in [1001, 1002] {
        f.enroll(uid);
    }
    let key_file = f.root().join("master.key");
    std::fs::remove_file(&key_file).unwrap();
    let other = mfa_core::keys::MasterKey::generate(1_800_000_000).unwrap();
    other.create(&key_file).unwrap();
    assert_eq!(other.active(), f.keys.active());
    let found = record_findings(&f);
    assert!(has(&found, Level::Error, "2 records"), "{found:#?}");
    assert!(
        found.iter().any(|f| f.fix.contains("mfa-enroll reset")),
        "{found:#?}"
    );
}

#[test]
fn records_under_a_generation_the_key_file_lacks_are_an_error() {
    let mut f = Fixture::new();
    f.enroll(1001);
    f.enroll(1002);
    // Rotate, seal one more record under generation 2, then lose generation
    // 1 from the key file (retired by hand, or an old copy of the file).
    f.keys.rotate(1_700_000_100).unwrap();
    f.enroll(1003);
    f.keys.retire(1).unwrap();
    f.keys.save(&f.root().join("master.key")).unwrap();
    let found = record_findings(&f);
    assert!(has(&found, Level::Error, "2 records"), "{found:#?}");
    assert!(
        found.iter().any(|f| f.message.contains("generation 1")),
        "{found:#?}"
    );
}

#[test]
fn a_record_whose_newest_state_is_under_a_missing_generation_is_an_error() {
    // The newer slot is sealed under generation 2; a key file restored from a
    // backup made before the rotation holds only generation 1, so the record
    // would open at its older state.
    let mut f = Fixture::new();
    let record = f.enroll(1001);
    let old_key_file = f.root().join("master.key.before-rotation");
    f.keys.create(&old_key_file).unwrap();
    f.keys.rotate(1_700_000_100).unwrap();
    let store = f.store();
    let mut state = store.open_user(1001, &f.keys).unwrap();
    let mut changed = record.clone();
    changed.failures = 1;
    state.commit(&changed, &f.keys).unwrap();
    drop(state);
    std::fs::rename(&old_key_file, f.root().join("master.key")).unwrap();
    let found = record_findings(&f);
    assert!(has(&found, Level::Error, "1 record"), "{found:#?}");
}

#[test]
fn records_the_key_file_opens_are_ok() {
    let f = Fixture::new();
    for uid in [1001, 1002] {
        f.enroll(uid);
    }
    let found = record_findings(&f);
    assert!(errors(&found).is_empty(), "{found:#?}");
    assert!(has(&found, Level::Ok, "2 records"), "{found:#?}");
}

//! `mfa-enroll store migrate` moves a host's local records into the shared
//! store, and the migrated user then logs in on every host of the fleet
//! through the real libpam, with the replay protection the local record
//! carried: a code used on the host before the move is refused everywhere
//! after it. Codes come from oathtool. Needs root and Debian's `postgresql`.

mod common;

use std::fs;

use common::{code_next, code_now, expect_event, mfa_alone};
use pam_mfa_e2e::fleet::{Fleet, DATABASE, ENROLL_PASSWORD, ENROLL_ROLE};
use pam_mfa_e2e::{tools, Converse, MfaEnroll, Op, PamCode, Run, Sandbox, TestUser, Transcript};

/// No failure delay, so that refusals do not slow the test down.
const FAST: &str = "[throttle]\nfail_delay_ms = 0\n";

fn login(sb: &Sandbox, user: &TestUser, code: &str) -> Transcript {
    sb.converse(Converse::new("mfa", user.name()).answer(code))
}

/// `mfa-enroll --config CONFIG ARGS...` inside `sb`.
fn mfa_enroll_with(sb: &Sandbox, config: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = sb.command(sb.tools().artifact("mfa-enroll"));
    cmd.arg("--config").arg(config).args(args);
    pam_mfa_e2e::process::run(cmd, b"")
}

fn rows(fleet: &Fleet) -> String {
    fleet
        .primary()
        .sql_in(DATABASE, "SELECT count(*) FROM pam_mfa_records;")
}

#[test]
fn a_migrated_user_logs_in_on_every_host_and_a_code_used_before_the_move_stays_used() {
    let fleet = Fleet::start(&tools!(), 2, FAST);
    for host in fleet.hosts() {
        mfa_alone(host, "mfa", "");
    }
    let local = fleet.host(1);
    // Host 1 still keeps its records in files, and the user is enrolled there.
    local.write_config(FAST);
    let alice = TestUser::create("flmig");
    let secret = MfaEnroll::new(local).enroll(&alice).secret;
    let used = code_now(&secret);
    login(local, &alice, &used).assert_rc(Op::Authenticate, PamCode::SUCCESS);
    let record = local.state_dir().join(alice.uid().to_string());
    assert!(record.is_file(), "no local record at {}", record.display());

    // The administrator prepares host 1's new configuration beside the old
    // one (docs/postgres.md), with a role that may insert rows.
    let files_config = fs::read_to_string(local.config_path()).expect("read the config");
    fleet.write_connection(
        1,
        &fleet
            .primary()
            .conninfo(DATABASE, ENROLL_ROLE, ENROLL_PASSWORD),
    );
    fleet.configure(1, FAST, 3000);
    let new_config = local.path("pam_mfa.toml.new");
    fs::copy(local.config_path(), &new_config).expect("keep the new config");
    fs::write(local.config_path(), files_config).expect("put the old config back");

    let dry = mfa_enroll_with(local, &new_config, &["store", "migrate"]);
    dry.assert_success();
    assert!(dry.stdout.contains(alice.name()), "{dry}");
    assert!(dry.stdout.contains("--apply"), "{dry}");
    assert_eq!(rows(&fleet), "0", "a dry run wrote a row\n{dry}");

    let apply = mfa_enroll_with(local, &new_config, &["store", "migrate", "--apply"]);
    apply.assert_success();
    assert_eq!(rows(&fleet), "1", "{apply}");
    // Then the switch.
    fs::rename(&new_config, local.config_path()).expect("switch the config");
    assert!(record.is_file(), "store migrate removed the local record");

    // On host 0, which never saw the user before, the code used on host 1
    // before the move is a replay, and a fresh one logs in.
    let t = login(fleet.host(0), &alice, &used);
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_replay", &[("user", alice.name())]);
    let fresh = code_next(&secret);
    let t = login(fleet.host(0), &alice, &fresh);
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    expect_event(&t, "auth_success", &[("user", alice.name())]);
    // Host 1, now on the shared store, sees that use too.
    let t = login(local, &alice, &fresh);
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_replay", &[("user", alice.name())]);

    // A second migration copies nothing and leaves the row as it is.
    let before = fleet
        .primary()
        .sql_in(DATABASE, "SELECT version FROM pam_mfa_records;");
    let again = MfaEnroll::new(local).run(&["store", "migrate", "--apply"]);
    again.assert_success();
    assert_eq!(
        fleet
            .primary()
            .sql_in(DATABASE, "SELECT version FROM pam_mfa_records;"),
        before,
        "{again}"
    );
}

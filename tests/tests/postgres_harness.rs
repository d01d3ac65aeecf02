//! The database harness itself (`pam_mfa_e2e::postgres`), checked with
//! the real libpq client, `psql`: the test CA, server certificate and
//! `pg_hba.conf` give TLS with `verify-full` and SCRAM passwords; a server
//! stops and starts again with its data; a synchronous standby has every
//! committed row and takes writes once promoted. Needs root and Debian's
//! `postgresql` package.

use std::time::{Duration, Instant};

use pam_mfa_e2e::postgres::{psql, BlackHole, Postgres};

/// A server with the role `alice` (password `secret`) owning the database
/// `mfa`.
fn server_with_alice() -> Postgres {
    let pg = Postgres::start();
    pg.create_role("alice", "secret");
    pg.create_database("mfa", "alice");
    pg
}

#[test]
fn a_client_verifying_the_certificate_logs_in_over_tls() {
    let pg = server_with_alice();
    let run = psql(
        &pg.conninfo("mfa", "alice", "secret"),
        "SELECT 1;\nSELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();",
    );
    run.assert_success();
    assert_eq!(run.stdout, "1\nt\n", "{run}");
}

#[test]
fn a_client_without_tls_logs_in_with_its_password() {
    let pg = server_with_alice();
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=mfa user=alice password=secret sslmode=disable",
        pg.port()
    );
    let run = psql(
        &conninfo,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();",
    );
    run.assert_success();
    assert_eq!(run.stdout, "f\n", "{run}");
}

#[test]
fn a_wrong_password_is_refused() {
    let pg = server_with_alice();
    let run = psql(&pg.conninfo("mfa", "alice", "wrong"), "SELECT 1;");
    run.assert_failure();
    assert!(
        run.stderr
            .contains("password authentication failed for user \"alice\""),
        "{run}"
    );
}

#[test]
fn a_client_trusting_another_ca_refuses_the_server() {
    let pg = server_with_alice();
    let ca = pg.ca_file().to_str().unwrap().to_owned();
    let other = pg.other_ca_file().to_str().unwrap().to_owned();
    let conninfo = pg.conninfo("mfa", "alice", "secret").replace(&ca, &other);
    assert!(conninfo.contains(&other), "{conninfo}");
    let run = psql(&conninfo, "SELECT 1;");
    run.assert_failure();
    assert!(run.stderr.contains("certificate verify failed"), "{run}");
}

#[test]
fn a_stopped_server_refuses_and_keeps_its_data_when_started_again() {
    let pg = server_with_alice();
    let conninfo = pg.conninfo("mfa", "alice", "secret");
    psql(
        &conninfo,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept');",
    )
    .assert_success();
    pg.stop();
    assert!(!pg.is_running());
    let run = psql(&conninfo, "SELECT 1;");
    run.assert_failure();
    assert!(run.stderr.contains("Connection refused"), "{run}");
    pg.start_again();
    assert!(pg.is_running());
    let run = psql(&conninfo, "SELECT v FROM t;");
    run.assert_success();
    assert_eq!(run.stdout, "kept\n", "{run}");
}

#[test]
fn a_promoted_standby_has_every_committed_row_and_accepts_writes() {
    let primary = server_with_alice();
    let standby = primary.standby("replica1");
    assert_eq!(standby.sql("SELECT pg_is_in_recovery();"), "t");
    let on_primary = primary.conninfo("mfa", "alice", "secret");
    let on_standby = standby.conninfo("mfa", "alice", "secret");
    psql(
        &on_primary,
        "CREATE TABLE records (name text PRIMARY KEY, version int);\n\
         INSERT INTO records VALUES ('alice', 1);",
    )
    .assert_success();
    // remote_apply: the commit returned, so the standby shows the row now.
    let run = psql(
        &on_standby,
        "SELECT version FROM records WHERE name = 'alice';",
    );
    run.assert_success();
    assert_eq!(run.stdout, "1\n", "{run}");
    let run = psql(&on_standby, "UPDATE records SET version = 2;");
    run.assert_failure();
    assert!(run.stderr.contains("read-only transaction"), "{run}");

    primary.stop();
    standby.promote();
    let run = psql(
        &on_standby,
        "UPDATE records SET version = 2 WHERE name = 'alice' AND version = 1;\n\
         SELECT version FROM records WHERE name = 'alice';",
    );
    run.assert_success();
    assert_eq!(run.stdout, "2\n", "{run}");
}

#[test]
fn a_black_hole_accepts_and_never_answers() {
    let hole = BlackHole::start();
    let started = Instant::now();
    let run = psql(
        &format!(
            "host=127.0.0.1 port={} dbname=mfa user=alice connect_timeout=2",
            hole.port()
        ),
        "SELECT 1;",
    );
    run.assert_failure();
    assert!(run.stderr.contains("timeout expired"), "{run}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{run}");
}

//! The PostgreSQL row client (`mfa_core::store::postgres`) against real
//! servers from `pam_mfa_e2e::postgres`: rows round-trip, the
//! compare-and-set refuses a stale version, the schema is created once
//! however often and from however many clients, every failure (wrong
//! password, foreign CA, stopped server, a server that never answers) is an
//! error of its own kind within the deadline, and no thread outlives the
//! client. Needs root and Debian's `postgresql` package.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mfa_core::fsutil::FileTrust;
use mfa_core::store::postgres::{grants, Client, PgError, Row, Settings, TABLE};
use pam_mfa_e2e::postgres::{BlackHole, Postgres};

const TIMEOUT: Duration = Duration::from_secs(3);
/// Generous room above the deadline for a loaded test machine: the bounds
/// below say "fails at the deadline, not long after", not how fast.
const MARGIN: Duration = Duration::from_secs(2);

/// A server with the role `pam` (password `secret`) owning the database
/// `mfa`.
fn server() -> Postgres {
    let pg = Postgres::start();
    pg.create_role("pam", "secret");
    pg.create_database("mfa", "pam");
    pg
}

fn client(conninfo: &str) -> Client {
    Client::new(Settings::parse(conninfo, TIMEOUT).expect("the harness's conninfo parses"))
}

fn ready_client(pg: &Postgres) -> Client {
    let c = client(&pg.conninfo("mfa", "pam", "secret"));
    c.init_schema().expect("init_schema");
    c
}

fn row(version: i64, sealed: &[u8]) -> Row {
    Row {
        version,
        generation: 3,
        sealed: sealed.to_vec(),
    }
}

/// Runs `op`, prints how long it took, and fails if that was more than the
/// deadline plus the margin.
fn within_deadline<T>(what: &str, op: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = op();
    let took = start.elapsed();
    eprintln!("{what}: failed after {} ms", took.as_millis());
    assert!(
        took < TIMEOUT + MARGIN,
        "{what} took {took:?}, the deadline is {TIMEOUT:?}"
    );
    out
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address").port()
}

#[test]
fn rows_round_trip_through_create_read_replace_and_delete() {
    let pg = server();
    let c = ready_client(&pg);
    assert_eq!(c.read("alice").expect("read"), None);
    assert!(c
        .create("alice", &row(1, b"first"), "host-a")
        .expect("create"));
    assert!(c
        .create("bob", &row(1, b"\x00\xff"), "host-a")
        .expect("create"));
    assert_eq!(c.read("alice").expect("read"), Some(row(1, b"first")));
    assert!(c
        .replace("alice", 1, &row(2, b"second"), "host-b")
        .expect("replace"));
    assert_eq!(c.read("alice").expect("read"), Some(row(2, b"second")));
    assert_eq!(c.names().expect("names"), vec!["alice", "bob"]);
    assert_eq!(
        pg.sql_in(
            "mfa",
            "SELECT updated_by FROM pam_mfa_records WHERE name = 'alice';"
        ),
        "host-b"
    );
    assert!(!c
        .delete("alice", Some(1))
        .expect("delete at a stale version"));
    assert!(c.delete("alice", Some(2)).expect("delete at the version"));
    assert!(c.delete("bob", None).expect("delete"));
    assert!(!c.delete("bob", None).expect("delete of nothing"));
    assert_eq!(c.names().expect("names"), Vec::<String>::new());
}

#[test]
fn creating_a_name_that_has_a_row_changes_nothing() {
    let pg = server();
    let c = ready_client(&pg);
    assert!(c.create("alice", &row(1, b"first"), "a").expect("create"));
    assert!(!c.create("alice", &row(1, b"other"), "b").expect("create"));
    assert_eq!(c.read("alice").expect("read"), Some(row(1, b"first")));
}

#[test]
fn replace_with_a_stale_version_changes_nothing() {
    let pg = server();
    let a = ready_client(&pg);
    let b = client(&pg.conninfo("mfa", "pam", "secret"));
    assert!(a.create("alice", &row(1, b"v1"), "a").expect("create"));
    // Two hosts read version 1; the first to commit wins, the other must
    // re-read.
    assert!(a.replace("alice", 1, &row(2, b"a"), "a").expect("replace"));
    assert!(!b.replace("alice", 1, &row(2, b"b"), "b").expect("replace"));
    assert!(!b.replace("nobody", 1, &row(2, b"b"), "b").expect("replace"));
    assert_eq!(b.read("alice").expect("read"), Some(row(2, b"a")));
}

#[test]
fn init_schema_twice_and_from_two_clients_at_once() {
    let pg = server();
    let conninfo = pg.conninfo("mfa", "pam", "secret");
    for _ in 0..3 {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let conninfo = conninfo.clone();
                std::thread::spawn(move || client(&conninfo).init_schema())
            })
            .collect();
        for h in handles {
            h.join().expect("no panic").expect("init_schema");
        }
    }
    let c = client(&conninfo);
    c.init_schema().expect("init_schema again");
    assert_eq!(c.names().expect("names"), Vec::<String>::new());
}

#[test]
fn a_missing_table_says_to_run_store_init() {
    let pg = server();
    let c = client(&pg.conninfo("mfa", "pam", "secret"));
    let err = c.read("alice").expect_err("no table yet");
    assert!(matches!(err, PgError::NoTable { .. }), "{err:?}");
    assert!(err.to_string().contains("mfa-enroll store init"), "{err}");
}

#[test]
fn a_wrong_password_is_an_authentication_error() {
    let pg = server();
    let c = client(&pg.conninfo("mfa", "pam", "wrong-password-xyz"));
    let err = within_deadline("wrong password", || c.read("alice")).expect_err("refused");
    assert!(matches!(err, PgError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-password-xyz"), "{err}");
}

#[test]
fn a_certificate_from_another_ca_is_a_tls_error() {
    let pg = server();
    let conninfo = pg.conninfo("mfa", "pam", "secret").replace(
        pg.ca_file().to_str().expect("UTF-8 path"),
        pg.other_ca_file().to_str().expect("UTF-8 path"),
    );
    let c = client(&conninfo);
    let err = within_deadline("other CA", || c.read("alice")).expect_err("refused");
    assert!(matches!(err, PgError::Tls { .. }), "{err:?}");
}

#[test]
fn a_stopped_server_is_a_connection_error() {
    let pg = server();
    let c = ready_client(&pg);
    pg.stop();
    let err = within_deadline("stopped server", || c.read("alice")).expect_err("down");
    assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
    pg.start_again();
    assert_eq!(c.read("alice").expect("up again"), None);
}

#[test]
fn a_server_that_never_answers_times_out() {
    let hole = BlackHole::start();
    let c = client(&format!(
        "host=localhost port={} dbname=mfa user=pam password=secret sslmode=verify-full sslrootcert=/etc/ssl/certs/ca-certificates.crt",
        hole.port()
    ));
    let start = Instant::now();
    let err = within_deadline("black hole", || c.read("alice")).expect_err("no answer");
    assert!(matches!(err, PgError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() >= TIMEOUT, "failed before the deadline");
}

#[test]
fn a_connection_the_server_closed_is_replaced() {
    let pg = server();
    let c = ready_client(&pg);
    assert!(c.create("alice", &row(1, b"x"), "a").expect("create"));
    pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'pam';");
    // pg_terminate_backend only signals; wait until the session is gone.
    let start = Instant::now();
    while pg.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'pam';") != "0" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the session lives on"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The client notices the closed connection before it sends anything,
    // so the next operation reconnects instead of failing.
    let row_now = c.read("alice").expect("reconnected");
    assert_eq!(row_now, Some(row(1, b"x")));
}

#[test]
fn the_second_host_is_tried_when_the_first_is_down() {
    let pg = server();
    ready_client(&pg);
    let conninfo = pg
        .conninfo("mfa", "pam", "secret")
        .replace("host=localhost", "host=localhost,localhost")
        .replace(
            &format!("port={}", pg.port()),
            &format!(
                "port={},{} target_session_attrs=read-write",
                closed_port(),
                pg.port()
            ),
        );
    let c = client(&conninfo);
    assert_eq!(c.read("alice").expect("the live server answers"), None);
}

#[test]
fn a_standby_named_first_is_skipped_for_the_primary() {
    let pg = server();
    ready_client(&pg);
    let standby = pg.standby("s1");
    let conninfo = pg
        .conninfo("mfa", "pam", "secret")
        .replace("host=localhost", "host=localhost,localhost")
        .replace(
            &format!("port={}", pg.port()),
            &format!(
                "port={},{} target_session_attrs=read-write",
                standby.port(),
                pg.port()
            ),
        );
    let c = client(&conninfo);
    assert!(c
        .create("alice", &row(1, b"x"), "a")
        .expect("on the primary"));
    drop(c);
    // Failover: the primary goes, the standby is promoted; the same string
    // reaches the new primary, which has the committed row.
    pg.stop();
    standby.promote();
    let c = client(&conninfo);
    assert_eq!(c.read("alice").expect("new primary"), Some(row(1, b"x")));
    assert!(c.replace("alice", 1, &row(2, b"y"), "b").expect("writable"));
}

#[test]
fn a_connection_file_readable_by_others_is_refused() {
    let pg = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.conn");
    fs::write(&path, pg.conninfo("mfa", "pam", "secret")).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let trust = FileTrust::insecure_owner_for_tests(nix::unistd::getuid().as_raw());
    let err = Settings::load(&path, trust, TIMEOUT).expect_err("0644 refused");
    assert!(matches!(err, PgError::File(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("store.conn") && text.contains("chmod 0600"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");

    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    let settings = Settings::load(&path, trust, TIMEOUT).expect("0600 accepted");
    assert_eq!(settings.describe(), format!("localhost:{}", pg.port()));
    let c = Client::new(settings);
    c.init_schema().expect("init_schema");
}

#[test]
fn grants_let_a_login_role_read_and_update_only() {
    let pg = server();
    let owner = ready_client(&pg);
    assert!(owner.create("alice", &row(1, b"x"), "a").expect("create"));
    pg.create_role("login", "pw");
    pg.sql_in("mfa", &grants("login", false));
    let c = client(&pg.conninfo("mfa", "login", "pw"));
    assert!(c.replace("alice", 1, &row(2, b"y"), "h").expect("update"));
    let err = c.create("bob", &row(1, b"x"), "h").expect_err("no INSERT");
    assert!(matches!(err, PgError::Query { .. }), "{err:?}");
    assert!(grants("we\"ird", true).contains("\"we\"\"ird\""));
    assert!(grants("x", true).contains(TABLE));
}

/// Measured in a process of its own (this test binary, re-run with one
/// test): the test harness runs other tests on threads of its own.
#[test]
fn no_thread_outlives_the_client() {
    let pg = server();
    ready_client(&pg);
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "thread_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PAM_MFA_PG_PROBE", pg.conninfo("mfa", "pam", "secret"))
        .output()
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("threads before=").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no measurement in {stdout}"));
    eprintln!("{line}");
    if let Some(timing) = stdout.lines().find(|l| l.starts_with("read+replace")) {
        eprintln!("{timing}");
    }
    let counts: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.split('=').nth(1)?.parse().ok())
        .collect();
    let [before, during, after] = counts[..] else {
        panic!("cannot read {line}")
    };
    assert_eq!(during, before, "{line}");
    assert_eq!(after, before, "{line}");
}

#[test]
#[ignore = "run by no_thread_outlives_the_client in a process of its own"]
fn thread_probe() {
    let Ok(conninfo) = std::env::var("PAM_MFA_PG_PROBE") else {
        return;
    };
    // A sampler watches the count while the operations run; it exists
    // before the first count, so it is part of every figure.
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, most) = (Arc::clone(&stop), Arc::clone(&most));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(threads(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let before = threads();
    let c = client(&conninfo);
    // Logins: a read, then an update on the same connection.
    let _ = c.create("probe", &row(1, b"x"), "probe").expect("create");
    let runs = 50;
    let start = Instant::now();
    let mut version = c.read("probe").expect("read").expect("a row").version;
    for _ in 0..runs {
        let current = c.read("probe").expect("read").expect("a row");
        assert!(c
            .replace(
                "probe",
                current.version,
                &row(current.version + 1, b"y"),
                "p"
            )
            .expect("replace"));
        version += 1;
    }
    let per_login = start.elapsed() / runs;
    assert_eq!(
        c.read("probe").expect("read").expect("row").version,
        version
    );
    let during = most.load(Ordering::Relaxed);
    drop(c);
    let after = threads();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    println!("threads before={before} during={during} after={after}");
    println!("read+replace on loopback: {} us", per_login.as_micros());
}

#[test]
fn sslmodes_check_what_libpq_checks() {
    let pg = server();
    ready_client(&pg);
    let full = pg.conninfo("mfa", "pam", "secret");
    // A name the certificate does not carry, reached by its address.
    let renamed = full.replace("host=localhost", "host=db.example hostaddr=127.0.0.1");
    let err = client(&renamed)
        .read("alice")
        .expect_err("verify-full checks the name");
    assert!(matches!(err, PgError::Tls { .. }), "{err:?}");
    let ca_only = renamed.replace("sslmode=verify-full", "sslmode=verify-ca");
    assert_eq!(client(&ca_only).read("alice").expect("verify-ca"), None);
    // require checks the chain when sslrootcert is given, as libpq does...
    let ca = pg.ca_file().to_str().expect("UTF-8 path").to_owned();
    let other = pg.other_ca_file().to_str().expect("UTF-8 path").to_owned();
    let require = renamed.replace("sslmode=verify-full", "sslmode=require");
    let err = client(&require.replace(&ca, &other))
        .read("alice")
        .expect_err("require with a root certificate checks the chain");
    assert!(matches!(err, PgError::Tls { .. }), "{err:?}");
    // ...and only encrypts without one.
    let bare = require.replace(&format!("sslrootcert={ca}"), "");
    assert!(!bare.contains("sslrootcert"), "{bare}");
    assert_eq!(client(&bare).read("alice").expect("require alone"), None);
}

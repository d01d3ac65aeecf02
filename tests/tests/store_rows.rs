//! The record store's PostgreSQL backend (`Store::postgres`) against a real
//! server: records keyed by login name, sealed so that the database cannot
//! move or roll them back unnoticed, commands that lose a race refused,
//! and `doctor`'s check of the store. Needs root and Debian's `postgresql`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use mfa_core::config::Config;
use mfa_core::doctor::{self, Level};
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::record::Record;
use mfa_core::store::postgres::{Client, Settings};
use mfa_core::store::{Decision, Owner, Store, StoreError};
use pam_mfa_e2e::postgres::Postgres;

const TIMEOUT: Duration = Duration::from_secs(3);

struct Db {
    pg: Postgres,
    conninfo: String,
    keys: MasterKey,
    dir: tempfile::TempDir,
}

fn db() -> Db {
    let pg = Postgres::start();
    pg.create_role("pam", "secret");
    pg.create_database("mfa", "pam");
    let conninfo = pg.conninfo("mfa", "pam", "secret");
    Client::new(Settings::parse(&conninfo, TIMEOUT).unwrap())
        .init_schema()
        .unwrap();
    Db {
        pg,
        conninfo,
        keys: MasterKey::generate(1_700_000_000).unwrap(),
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Db {
    /// One host's view of the database.
    fn store(&self, host: &str) -> Store {
        let client = Client::new(Settings::parse(&self.conninfo, TIMEOUT).unwrap());
        Store::postgres(client, self.dir.path(), host)
    }

    fn sql(&self, sql: &str) -> String {
        self.pg.sql_in("mfa", sql)
    }
}

fn record(name: &str, failures: u32) -> Record {
    let mut r = Record::new(name, 1_700_000_000);
    r.failures = failures;
    r
}

fn enroll(store: &Store, keys: &MasterKey, name: &str) {
    let mut state = store.open_user(Owner::named(name), keys).unwrap();
    assert!(state.record().is_none());
    state.rewrite(&record(name, 0), keys).unwrap();
}

fn failures(store: &Store, keys: &MasterKey, name: &str) -> u32 {
    store
        .open_user(Owner::named(name), keys)
        .unwrap()
        .record()
        .unwrap()
        .failures
}

#[test]
fn a_record_written_on_one_host_reads_on_another_and_only_ciphertext_is_stored() {
    let db = db();
    let (a, b) = (db.store("host-a"), db.store("host-b"));
    enroll(&a, &db.keys, "alice");
    let state = b.open_user(Owner::named("alice"), &db.keys).unwrap();
    assert_eq!(state.record(), Some(&record("alice", 0)));
    assert_eq!(
        db.sql(
            "SELECT version, key_generation, updated_by FROM pam_mfa_records WHERE name = 'alice';"
        ),
        "1|1|host-a"
    );
    // The user name is inside the record too; it must not be readable there.
    let hex = db.sql("SELECT encode(sealed, 'hex') FROM pam_mfa_records;");
    assert!(!hex.contains(&hex_of(b"alice")), "{hex}");
    assert_eq!(b.owners().unwrap().len(), 1);
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

#[test]
fn a_row_moved_to_another_name_or_given_another_version_does_not_open() {
    let db = db();
    let store = db.store("host-a");
    enroll(&store, &db.keys, "alice");
    enroll(&store, &db.keys, "bob");
    // Someone with write access to the table copies alice's record to bob.
    db.sql(
        "UPDATE pam_mfa_records SET sealed = (SELECT sealed FROM pam_mfa_records WHERE name = 'alice') WHERE name = 'bob';",
    );
    let err = store.open_user(Owner::named("bob"), &db.keys).unwrap_err();
    assert!(
        matches!(err, StoreError::Row { ref name, .. } if name == "bob"),
        "{err}"
    );
    // Or rolls alice back to an older version number: the seal names its own.
    let mut state = store.open_user(Owner::named("alice"), &db.keys).unwrap();
    state.commit(&record("alice", 1), &db.keys).unwrap();
    db.sql("UPDATE pam_mfa_records SET version = 1 WHERE name = 'alice';");
    let err = store
        .open_user(Owner::named("alice"), &db.keys)
        .unwrap_err();
    assert!(err.to_string().contains("another version"), "{err}");
}

#[test]
fn a_command_that_read_a_row_another_host_changed_since_writes_nothing() {
    let db = db();
    let (a, b) = (db.store("host-a"), db.store("host-b"));
    enroll(&a, &db.keys, "alice");
    let mut on_a = a.open_user(Owner::named("alice"), &db.keys).unwrap();
    let mut on_b = b.open_user(Owner::named("alice"), &db.keys).unwrap();
    on_b.commit(&record("alice", 5), &db.keys).unwrap();
    let err = on_a.commit(&record("alice", 1), &db.keys).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("run the command again"), "{err}");
    assert_eq!(failures(&a, &db.keys, "alice"), 5);
}

#[test]
fn a_login_that_loses_the_race_decides_again_on_the_other_hosts_commit() {
    let db = db();
    let (a, b) = (db.store("host-a"), db.store("host-b"));
    enroll(&a, &db.keys, "alice");
    let snapshot = a.read(Owner::named("alice"), &db.keys).unwrap();
    // Host B counts a failure while the user on A is typing.
    let mut on_b = b.open_user(Owner::named("alice"), &db.keys).unwrap();
    on_b.commit(&record("alice", 1), &db.keys).unwrap();
    let mut seen = Vec::new();
    a.transact(snapshot, &db.keys, |snap| {
        let r = snap.record().unwrap();
        seen.push(r.failures);
        let mut next = r.clone();
        next.failures += 1;
        Decision::Write(next, ())
    })
    .unwrap();
    assert_eq!(seen, [0, 1]);
    assert_eq!(failures(&b, &db.keys, "alice"), 2);
    assert_eq!(
        db.sql("SELECT version FROM pam_mfa_records WHERE name = 'alice';"),
        "3"
    );
}

#[test]
fn creating_a_record_a_second_host_created_first_is_a_conflict() {
    let db = db();
    let (a, b) = (db.store("host-a"), db.store("host-b"));
    let mut on_a = a.open_user(Owner::named("alice"), &db.keys).unwrap();
    enroll(&b, &db.keys, "alice");
    let err = on_a.rewrite(&record("alice", 9), &db.keys).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(failures(&a, &db.keys, "alice"), 0);
}

#[test]
fn a_uid_without_a_name_cannot_address_a_row() {
    let db = db();
    let store = db.store("host-a");
    // No account has (uid_t)-2 on a test machine.
    let err = store
        .open_user(Owner::by_uid(u32::MAX - 1), &db.keys)
        .unwrap_err();
    assert!(matches!(err, StoreError::NameRequired { .. }), "{err}");
    assert!(err.to_string().contains("--user"), "{err}");
}

#[test]
fn an_unreachable_database_is_an_error_never_an_absent_record() {
    let db = db();
    let store = db.store("host-a");
    enroll(&store, &db.keys, "alice");
    db.pg.stop();
    let err = store
        .read(Owner::named("alice"), &db.keys)
        .expect_err("a stopped server cannot say alice is not enrolled");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

/// Writes a configuration for the PostgreSQL store and its connection file.
fn config_for(db: &Db, conninfo: &str) -> std::path::PathBuf {
    let dir = db.dir.path();
    let conn = dir.join("postgres.conf");
    fs::write(&conn, conninfo).unwrap();
    fs::set_permissions(&conn, fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("pam_mfa.toml");
    fs::write(
        &config,
        format!(
            "[store]\nbackend = \"postgres\"\nconnection_file = \"{}\"\ntimeout_ms = 2000\n",
            conn.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    config
}

fn store_findings(config: &std::path::Path) -> Vec<doctor::Finding> {
    let config = Config::load(config, FileTrust::ROOT, &[]).unwrap();
    doctor::check_store(&config, FileTrust::ROOT)
}

#[test]
fn doctor_reports_a_reachable_store_a_weak_tls_setting_and_a_stopped_server() {
    let db = db();
    enroll(&db.store("host-a"), &db.keys, "alice");
    let good = store_findings(&config_for(&db, &db.conninfo));
    assert_eq!(good.len(), 1, "{good:?}");
    assert_eq!(good[0].level, Level::Ok);
    assert!(good[0].message.contains("holds 1 record"), "{}", good[0]);

    let weak = db
        .conninfo
        .replace("sslmode=verify-full", "sslmode=require");
    let findings = store_findings(&config_for(&db, &weak));
    assert!(
        findings
            .iter()
            .any(|f| f.level == Level::Warning && f.message.contains("sslmode=require")),
        "{findings:?}"
    );

    db.pg.stop();
    let down = store_findings(&config_for(&db, &db.conninfo));
    assert!(down.iter().any(|f| f.level == Level::Error), "{down:?}");
    assert!(down[0].fix.contains("PAM_AUTHINFO_UNAVAIL"), "{}", down[0]);
}

#[test]
fn doctor_refuses_a_connection_file_others_can_read() {
    let db = db();
    let config = config_for(&db, &db.conninfo);
    fs::set_permissions(
        db.dir.path().join("postgres.conf"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let findings = store_findings(&config);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].level, Level::Error);
    assert!(findings[0].fix.contains("0600"), "{}", findings[0]);
}

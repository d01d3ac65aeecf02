//! The commands against a real PostgreSQL server (`[store] backend =
//! "postgres"`): `store init` and the GRANTs it prints, `store migrate`,
//! the everyday commands with the same output as on the files store, and a
//! stopped server failing every command with its name, never as "not
//! enrolled".
//!
//! The servers come from pam-mfa-e2e's harness (`initdb` and `pg_ctl` of
//! Debian's postgresql package, TLS with a test CA, SCRAM passwords). One
//! server is shared by the tests of this file, each in a database and with
//! roles of its own; the test that stops its server has one to itself.
//! Like the other tests of this crate these need root (CI runs as root).

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use common::{assert_snapshot, stderr, stdout, transcript, Host};
use pam_mfa_e2e::postgres::{psql, Postgres};
use serde_json::Value;

/// Every role's password: the servers listen on loopback only.
const PASSWORD: &str = "store-cli-password";

/// The server the tests share. It is never dropped: the harness stops it
/// and removes its directory when the test process ends.
fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(Postgres::start)
}

/// A database of its own for one test, owned by `<prefix>_owner`, with a
/// role `<prefix>_host` that has no privileges yet.
struct Database {
    pg: &'static Postgres,
    prefix: String,
}

impl Database {
    fn new() -> Database {
        Database::on(server())
    }

    fn on(pg: &'static Postgres) -> Database {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!("sc{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let db = Database { pg, prefix };
        db.pg.create_role(&db.owner(), PASSWORD);
        db.pg.create_role(&db.role("host"), PASSWORD);
        db.pg.create_database(&db.name(), &db.owner());
        db
    }

    fn name(&self) -> String {
        format!("{}_db", self.prefix)
    }

    fn owner(&self) -> String {
        self.role("owner")
    }

    fn role(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix)
    }

    fn conninfo(&self, role: &str) -> String {
        self.pg.conninfo(&self.name(), role, PASSWORD)
    }

    /// Runs `sql` as the superuser in this database.
    fn sql(&self, sql: &str) -> String {
        self.pg.sql_in(&self.name(), sql)
    }

    /// The names that have a row, sorted.
    fn names(&self) -> Vec<String> {
        let out = self.sql("SELECT name FROM pam_mfa_records ORDER BY name;");
        out.lines().map(str::to_owned).collect()
    }

    /// Everything stored for `name`: version, key generation, the sealed
    /// bytes, when and by whom it was written.
    fn row(&self, name: &str) -> String {
        self.sql(&format!(
            "SELECT version, key_generation, encode(sealed, 'hex'), updated_at, updated_by \
             FROM pam_mfa_records WHERE name = '{name}';"
        ))
    }
}

/// Writes `text` to `path` as a connection file must be: root, 0600.
fn write_private(path: &std::path::Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(text.as_bytes()).unwrap();
}

/// A host (`common::Host`: a config, a master key, the binary) whose store is
/// `db`, reached as `role`; `admin.conf` holds the owner's connection.
struct PgHost {
    host: Host,
    db: Database,
}

impl PgHost {
    /// A host on the files store, to be switched with [`PgHost::use_postgres`].
    fn on_files(db: Database) -> PgHost {
        let host = Host::new();
        write_private(
            &host.dir.path().join("admin.conf"),
            &db.conninfo(&db.owner()),
        );
        PgHost { host, db }
    }

    /// A host on `db` as its owner, with the table made.
    fn ready(db: Database) -> PgHost {
        let owner = db.owner();
        let h = PgHost::on_files(db);
        h.use_postgres(&owner);
        h.ok(&["store", "init"]);
        h
    }

    /// Sets `[store] backend = "postgres"`, reaching the database as `role`.
    fn use_postgres(&self, role: &str) {
        let conf = self.connection_file();
        write_private(&conf, &self.db.conninfo(role));
        let mut config = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.host.config)
            .unwrap();
        write!(
            config,
            "\n[store]\nbackend = \"postgres\"\nconnection_file = \"{}\"\ntimeout_ms = 5000\n",
            conf.display()
        )
        .unwrap();
    }

    fn connection_file(&self) -> PathBuf {
        self.host.dir.path().join("postgres.conf")
    }

    fn admin_conf(&self) -> String {
        self.host
            .dir
            .path()
            .join("admin.conf")
            .display()
            .to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.host.run(args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        self.host.ok(args)
    }

    /// The output as it reads in a snapshot: temporary paths, the port,
    /// this test's names and the times made the same on every run.
    fn clean(&self, text: &str) -> String {
        let text = text
            .replace(&self.host.dir.path().display().to_string(), "<dir>")
            .replace(&format!(":{}", self.db.pg.port()), ":<port>")
            .replace(&format!("{}_", self.db.prefix), "t_");
        normalize(&text)
    }

    fn snapshot(&self, name: &str, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_snapshot(name, &transcript("", args, &out, |t| self.clean(t)));
        out
    }
}

/// Makes output comparable between runs and between the two stores:
/// dates, Unix times, recovery codes, secrets and column padding (which
/// follows the widths of what was replaced).
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut words = String::new();
        let mut spaces = 0;
        for c in line.chars() {
            if c == ' ' {
                spaces += 1;
                continue;
            }
            words.push_str(if spaces >= 2 { "  " } else { &" "[..spaces] });
            spaces = 0;
            words.push(c);
        }
        let _ = writeln!(out, "{}", mask(&words));
    }
    out
}

/// Replaces `2026-12-05 02:40:00 UTC` by `<date>`, numbers of 9 digits or
/// more by `<time>` and `xxxx-xxxx-xxxx` recovery codes by `<code>`.
fn mask(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let fits = |at: usize, shape: &str| {
        let shape: Vec<char> = shape.chars().collect();
        at + shape.len() <= chars.len()
            && shape.iter().zip(&chars[at..]).all(|(s, c)| match s {
                '9' => c.is_ascii_digit(),
                'x' => c.is_ascii_digit() || c.is_ascii_lowercase(),
                s => s == c,
            })
    };
    while i < chars.len() {
        let alone = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if alone && fits(i, "9999-99-99 99:99:99 UTC") {
            out.push_str("<date>");
            i += 23;
        } else if alone && fits(i, "xxxx-xxxx-xxxx") {
            out.push_str("<code>");
            i += 14;
        } else if alone && chars[i].is_ascii_digit() {
            let end = (i..chars.len())
                .find(|&j| !chars[j].is_ascii_digit())
                .unwrap_or(chars.len());
            if end - i >= 9 {
                out.push_str("<time>");
            } else {
                out.extend(&chars[i..end]);
            }
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

// ---------------------------------------------------------------------------
// store init

#[test]
fn store_init_creates_the_table_once_and_prints_grants_that_give_hosts_read_and_update_only() {
    let h = PgHost::on_files(Database::new());
    let (host_role, enroll_role) = (h.db.role("host"), h.db.role("enroll"));
    h.db.pg.create_role(&enroll_role, PASSWORD);
    h.use_postgres(&host_role);

    // The hosts' role may not create tables: init says whose connection to use.
    let refused = h.run(&["store", "init"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("may not create the table")
            && stderr(&refused).contains("--connection-file"),
        "{}",
        stderr(&refused)
    );

    let admin = h.admin_conf();
    let args = [
        "store",
        "init",
        "--connection-file",
        &admin,
        "--enroll-role",
        &enroll_role,
    ];
    let first = h.snapshot("store-init", &args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let again = h.ok(&args);
    assert_eq!(stdout(&again), stdout(&first), "init is idempotent");
    assert_eq!(h.db.sql("SELECT count(*) FROM pam_mfa_records;"), "0");

    // The output is SQL: the owner runs it as printed.
    psql(&h.db.conninfo(&h.db.owner()), &stdout(&first)).assert_success();

    let as_host = |sql: &str| psql(&h.db.conninfo(&host_role), sql);
    as_host("SELECT count(*) FROM pam_mfa_records;").assert_success();
    as_host("UPDATE pam_mfa_records SET version = version + 1 WHERE name = 'x';").assert_success();
    for refused in [
        "INSERT INTO pam_mfa_records (name, version, key_generation, sealed, updated_by) \
         VALUES ('x', 1, 1, '\\x00', 'h');",
        "DELETE FROM pam_mfa_records WHERE name = 'x';",
    ] {
        let run = as_host(refused);
        run.assert_failure();
        assert!(run.stderr.contains("permission denied"), "{}", run.stderr);
    }
    let as_enroll = |sql: &str| psql(&h.db.conninfo(&enroll_role), sql);
    as_enroll(
        "INSERT INTO pam_mfa_records (name, version, key_generation, sealed, updated_by) \
         VALUES ('x', 1, 1, '\\x00', 'h');",
    )
    .assert_success();
    as_enroll("DELETE FROM pam_mfa_records WHERE name = 'x';").assert_success();
}

#[test]
fn with_only_the_host_grant_a_login_role_can_use_an_enrolled_record_but_not_enroll() {
    let h = PgHost::ready(Database::new());
    h.ok(&["enroll", "--user", "nobody", "--json"]);
    let host_role = h.db.role("host");
    let grants = h.ok(&["store", "init", "--host-role", &host_role]);
    psql(&h.db.conninfo(&h.db.owner()), &stdout(&grants)).assert_success();
    // Now the host runs as the host role.
    write_private(&h.connection_file(), &h.db.conninfo(&host_role));

    h.ok(&["status", "--user", "nobody"]);
    h.ok(&["unlock", "--user", "nobody"]);
    let regenerated = h.ok(&["recovery-codes", "--user", "nobody", "--regenerate"]);
    assert!(stdout(&regenerated).contains("New recovery codes"));
    for args in [
        &["enroll", "--user", "daemon", "--json"][..],
        &["reset", "--user", "nobody"][..],
    ] {
        let out = h.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("permission denied"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(h.db.names(), ["nobody"]);
}

// ---------------------------------------------------------------------------
// store migrate

#[test]
fn store_migrate_copies_local_records_once_and_never_overwrites_a_row() {
    let h = PgHost::on_files(Database::new());
    h.ok(&["enroll", "--user", "nobody", "--json"]);
    h.ok(&["enroll", "--user", "daemon", "--json"]);
    let owner = h.db.owner();
    h.use_postgres(&owner);
    h.ok(&["store", "init"]);
    // The fleet already has its own record of daemon.
    h.ok(&[
        "enroll",
        "--user",
        "daemon",
        "--device",
        "fleet-phone",
        "--json",
    ]);
    let daemon_row = h.db.row("daemon");

    h.snapshot("store-migrate-dry-run", &["store", "migrate"]);
    assert_eq!(h.db.names(), ["daemon"], "a dry run writes nothing");

    let out = h.snapshot("store-migrate-apply", &["store", "migrate", "--apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(h.db.names(), ["daemon", "nobody"]);
    assert_eq!(h.db.row("daemon"), daemon_row, "never overwritten");
    let nobody_row = h.db.row("nobody");

    let again = h.run(&["store", "migrate", "--apply", "--json"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let report = json(&again);
    assert_eq!(report["applied"], true);
    assert_eq!(report["copied"], 0);
    assert_eq!(report["already_shared"], 2);
    let results: Vec<(&str, &str)> = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["user"].as_str().unwrap(), r["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        results,
        [("daemon", "already-shared"), ("nobody", "already-shared")]
    );
    assert_eq!(h.db.row("daemon"), daemon_row);
    assert_eq!(h.db.row("nobody"), nobody_row);

    // The copy is the local record; the fleet's daemon kept its device.
    let status = json(&h.ok(&["devices", "--user", "nobody", "--json"]));
    assert_eq!(status["devices"][0]["name"], "default");
    let status = json(&h.ok(&["devices", "--user", "daemon", "--json"]));
    assert_eq!(status["devices"][0]["name"], "fleet-phone");
    // The local records stay where they were.
    for uid in ["1", "65534"] {
        assert!(h.host.state_dir().join(uid).is_file(), "uid {uid}");
    }
}

#[test]
fn store_migrate_as_a_role_without_insert_reports_the_record_and_exits_1() {
    let h = PgHost::on_files(Database::new());
    h.ok(&["enroll", "--user", "nobody", "--json"]);
    let owner = h.db.owner();
    h.use_postgres(&owner);
    let host_role = h.db.role("host");
    let grants = h.ok(&["store", "init", "--host-role", &host_role]);
    psql(&h.db.conninfo(&owner), &stdout(&grants)).assert_success();
    write_private(&h.connection_file(), &h.db.conninfo(&host_role));

    let dry = h.ok(&["store", "migrate"]);
    assert!(stdout(&dry).contains("would copy"), "{}", stdout(&dry));
    let out = h.run(&["store", "migrate", "--apply"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("permission denied"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("1 record was not copied"),
        "{}",
        stderr(&out)
    );
    assert!(h.db.names().is_empty());
}

#[test]
fn the_store_commands_need_the_postgres_backend() {
    let h = PgHost::on_files(Database::new());
    for args in [&["store", "init"][..], &["store", "migrate"][..]] {
        let out = h.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("backend = \"postgres\""),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// the everyday commands

/// The administrator's round through one user, with the output made
/// comparable: every command's status, stdout and stderr.
fn round(run: impl Fn(&[&str]) -> Output, clean: impl Fn(&str) -> String) -> String {
    let mut all = String::new();
    let enrolled = run(&["enroll", "--user", "nobody", "--json"]);
    assert_eq!(enrolled.status.code(), Some(0), "{}", stderr(&enrolled));
    let mut keys: Vec<String> = json(&enrolled)
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    let _ = writeln!(all, "enroll --json keys: {keys:?}");
    let script: [&[&str]; 15] = [
        &["status", "--user", "nobody"],
        &["status", "--user", "nobody", "--json"],
        &["status", "--uid", "65534"],
        &["devices", "--user", "nobody"],
        &["devices", "--user", "nobody", "--json"],
        &["list"],
        &["list", "--json"],
        &["recovery-codes", "--user", "nobody"],
        &["recovery-codes", "--user", "nobody", "--regenerate"],
        &["recovery-codes", "--user", "nobody", "--json"],
        &["unlock", "--user", "nobody"],
        &["enroll", "--user", "nobody", "--json"],
        &["reset", "--user", "nobody"],
        &["status", "--user", "nobody"],
        &["reset", "--user", "nobody"],
    ];
    for args in script {
        let out = run(args);
        all.push_str(&transcript("", args, &out, &clean));
    }
    all
}

#[test]
fn the_everyday_commands_print_the_same_on_postgres_as_on_files() {
    let files = Host::new();
    let files_dir = files.dir.path().display().to_string();
    let on_files = round(
        |args| files.run(args),
        |t| normalize(&t.replace(&files_dir, "<dir>")),
    );
    let h = PgHost::ready(Database::new());
    let on_postgres = round(|args| h.run(args), |t| h.clean(t));
    assert_eq!(on_postgres, on_files);
    // And the round really ran on the database: the last reset removed the row.
    assert!(h.db.names().is_empty());
    assert!(!h.host.state_dir().join("65534").exists());
}

#[test]
fn a_row_whose_name_has_no_account_here_is_listed_by_name_and_can_be_reset() {
    let h = PgHost::ready(Database::new());
    h.ok(&["enroll", "--user", "nobody", "--json"]);
    // A copy under another name: its seal names nobody, so it does not open.
    h.db.sql(
        "INSERT INTO pam_mfa_records (name, version, key_generation, sealed, updated_by) \
         SELECT 'ghost-of-elsewhere', version, key_generation, sealed, 'other-host' \
         FROM pam_mfa_records WHERE name = 'nobody';",
    );
    let list = h.snapshot("store-list-name-without-account", &["list"]);
    assert_eq!(list.status.code(), Some(1));
    let listed = json(&h.run(&["list", "--json"]));
    let ghost = &listed["users"][0];
    assert_eq!(ghost["user"], "ghost-of-elsewhere");
    assert_eq!(ghost["uid"], Value::Null);
    assert!(ghost["error"]
        .as_str()
        .unwrap()
        .contains("PostgreSQL store"));
    assert_eq!(listed["users"][1]["uid"], 65534);

    let status = h.run(&["status", "--user", "ghost-of-elsewhere"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(
        !stderr(&status).contains("not enrolled"),
        "{}",
        stderr(&status)
    );

    h.snapshot(
        "store-reset-name-without-account",
        &["reset", "--user", "ghost-of-elsewhere"],
    );
    assert_eq!(h.db.names(), ["nobody"]);
}

#[test]
fn a_name_with_neither_an_account_nor_a_row_is_still_an_unknown_user() {
    let h = PgHost::ready(Database::new());
    let out = h.run(&["unlock", "--user", "no-such-user-anywhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("there is no user named `no-such-user-anywhere`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bulk_enrollment_and_import_write_rows() {
    let h = PgHost::ready(Database::new());
    let out = h.host.run_with_input(
        &["enroll", "--users-from", "-", "--json"],
        b"{\"user\": \"nobody\"}\n{\"uid\": 1, \"device\": \"tablet\"}\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2);
    assert_eq!(h.db.names(), ["daemon", "nobody"]);

    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mfa-core/tests/fixtures/ga-totp")
        .display()
        .to_string();
    h.ok(&[
        "import",
        "google-authenticator",
        "--user",
        "bin",
        "--file",
        &fixture,
        "--apply",
    ]);
    assert_eq!(h.db.names(), ["bin", "daemon", "nobody"]);
    let devices = json(&h.ok(&["devices", "--user", "bin", "--json"]));
    assert_eq!(devices["devices"][0]["name"], "google-authenticator");
}

#[test]
fn an_approved_self_enrollment_becomes_the_row_of_the_login_name() {
    let h = PgHost::ready(Database::new());
    h.host.make_spool();
    let (_, done) =
        h.host
            .user_enrolls(&["enroll", "--device", "phone"], "phone", common::oathtool);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let out = h.ok(&["approve", "--uid", "65534", "--yes"]);
    assert!(
        stdout(&out).contains("Approved: device \"phone\" of nobody (uid 65534)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(h.db.names(), ["nobody"]);
    let devices = json(&h.ok(&["devices", "--user", "nobody", "--json"]));
    assert_eq!(devices["devices"][0]["name"], "phone");
}

#[test]
fn key_rotation_migrates_and_retires_over_the_rows() {
    let h = PgHost::ready(Database::new());
    h.ok(&["enroll", "--user", "nobody", "--json"]);
    h.ok(&["enroll", "--user", "daemon", "--json"]);
    h.ok(&["key", "rotate"]);
    let refused = h.run(&["key", "retire", "1"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let migrated = h.ok(&["key", "migrate"]);
    assert!(
        stdout(&migrated).starts_with("Re-sealed 2 records under key generation 2"),
        "{}",
        stdout(&migrated)
    );
    let generations: Vec<String> =
        h.db.sql("SELECT DISTINCT key_generation FROM pam_mfa_records;")
            .lines()
            .map(str::to_owned)
            .collect();
    assert_eq!(generations, ["2"]);
    let list = json(&h.ok(&["key", "list", "--json"]));
    assert_eq!(list["generations"][1]["records"], 2);
    h.ok(&["key", "retire", "1"]);
    h.ok(&["status", "--user", "nobody"]);
}

#[test]
fn a_uid_without_a_name_needs_user_on_postgres() {
    let h = PgHost::ready(Database::new());
    let out = h.run(&["status", "--uid", "3999999"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--user"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------
// the server stopped

#[test]
fn with_the_server_stopped_every_command_fails_naming_it_never_as_not_enrolled() {
    static OWN: OnceLock<Postgres> = OnceLock::new();
    let pg = OWN.get_or_init(Postgres::start);
    let h = PgHost::on_files(Database::on(pg));
    // A local record, for store migrate to have something to copy.
    h.ok(&["enroll", "--user", "nobody", "--json"]);
    let owner = h.db.owner();
    h.use_postgres(&owner);
    h.ok(&["store", "init"]);
    h.ok(&["enroll", "--user", "nobody", "--json"]);
    pg.stop();
    h.snapshot(
        "store-status-server-stopped",
        &["status", "--user", "nobody"],
    );
    let server = format!("localhost:{}", pg.port());
    let commands: [&[&str]; 13] = [
        &["status", "--user", "nobody"],
        &["status", "--user", "daemon"],
        &["devices", "--user", "nobody"],
        &["list"],
        &["reset", "--user", "nobody"],
        &["unlock", "--user", "nobody"],
        &["recovery-codes", "--user", "nobody"],
        &["remove-device", "--user", "nobody", "--device", "default"],
        &["enroll", "--user", "daemon", "--json"],
        &["key", "list"],
        &["key", "migrate"],
        &["store", "migrate"],
        &["store", "init"],
    ];
    for args in commands {
        let out = h.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&server), "{args:?} names the server: {err}");
        assert!(!err.contains("not enrolled"), "{args:?}: {err}");
    }
    pg.start_again();
    h.ok(&["status", "--user", "nobody"]);
}

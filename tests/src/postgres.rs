//! Real `PostgreSQL` servers for the tests of pam_mfa's database store.
//!
//! [`Postgres::start`] makes a cluster in a fresh temporary directory with
//! `initdb` and starts it with `pg_ctl`, both as the `postgres` OS user
//! (the server refuses to run as root). Each server listens on 127.0.0.1
//! and a free port only, with TLS from a test CA of its own, SCRAM
//! passwords over TCP, and a Unix socket in its own directory through which
//! the harness runs SQL as the superuser. [`Postgres::standby`] adds a
//! synchronous standby (`remote_apply`), which [`Postgres::promote`] turns
//! into a primary after a failover. [`BlackHole`] is a port that accepts
//! connections and never answers: a server that hangs.
//!
//! The server's own stderr goes to `postgres.log` in its directory, shown
//! whenever a harness step fails. Dropping a [`Postgres`] kills the server
//! (`pg_ctl stop -m immediate`) and removes its directory, also when a
//! test panics.

use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{self, Run};

/// Where Debian's postgresql packages put each major version's programs.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// The OS account the server runs as.
const OS_USER: &str = "postgres";
/// The superuser, reached over the Unix socket without a password.
const SUPERUSER: &str = "postgres";
/// The role standbys replicate as.
const REPLICATION_ROLE: &str = "replicator";
/// Its password: the servers are throwaway and listen on loopback only.
const REPLICATION_PASSWORD: &str = "pam-mfa-e2e-replication";
/// How long one harness command (`initdb`, `pg_ctl`, `psql`) may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long `pg_ctl` waits for a start, stop or promotion.
const PG_CTL_WAIT_SECS: &str = "60";
/// How long a standby may take to become the synchronous one, and a
/// promoted one to leave recovery.
const STATE_WAIT: Duration = Duration::from_secs(60);
/// Start attempts: another test may take the free port before the server
/// binds it.
const START_ATTEMPTS: usize = 5;

/// The path of the program `tool` (e.g. `"pg_ctl"`) of the highest major
/// version installed from Debian's `postgresql` packages:
/// `/usr/lib/postgresql/<N>/bin/<tool>`. Not the `/usr/bin` wrappers or
/// `/usr/local/bin` links, which a fresh CI machine lacks for the server
/// programs.
pub fn postgres_bin(tool: &str) -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let entries = fs::read_dir(DEBIAN_ROOT).unwrap_or_else(|e| {
            panic!("cannot list {DEBIAN_ROOT} ({e}): apt-get install -y postgresql")
        });
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let major: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((major, bin))
            })
            .max_by_key(|(major, _)| *major)
            .map_or_else(
                || panic!("no {DEBIAN_ROOT}/<version>/bin/initdb: apt-get install -y postgresql"),
                |(_, bin)| bin,
            )
    })
    .join(tool)
}

/// The uid and gid of the `postgres` OS user.
fn os_user_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let id = |flag: &str| -> u32 {
            let mut cmd = process::with_deadline(COMMAND_DEADLINE, "id");
            cmd.args([flag, OS_USER]);
            let run = process::run(cmd, b"");
            run.assert_success();
            run.stdout
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("`id {flag} {OS_USER}` printed no number ({e})"))
        };
        (id("-u"), id("-g"))
    })
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port on 127.0.0.1")
}

/// `value` as a libpq connection string value: bare when it can be,
/// otherwise single-quoted with `\` and `'` escaped.
fn conninfo_value(value: &str) -> String {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if bare {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
    }
}

/// A libpq connection string of `pairs`.
fn conninfo_of(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", conninfo_value(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `name` as an SQL identifier.
fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal.
fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A command for the client programs of the server's version, in a clean
/// environment: no `PG*` variables or `~/.pgpass` of the host sneak in.
fn client_command(tool: &str, home: &Path) -> Command {
    let mut cmd = process::with_deadline(COMMAND_DEADLINE, "env");
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home)
        .env("LC_ALL", "C.UTF-8")
        .env("PGCONNECT_TIMEOUT", "20")
        .arg(postgres_bin(tool))
        .current_dir("/");
    cmd
}

/// Runs `psql` as a client would: `conninfo` (e.g. from
/// [`Postgres::conninfo`]) and `sql` on stdin, tuples only, stopping at
/// the first error. Returns the run for the test to judge; a refused
/// connection is a failed run, not a panic.
pub fn psql(conninfo: &str, sql: &str) -> Run {
    // An empty home: no ~/.pgpass, no ~/.postgresql client certificate.
    let home = tempfile::tempdir().expect("cannot create a temporary directory");
    let mut cmd = client_command("psql", home.path());
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
    ]);
    process::run(cmd, sql.as_bytes())
}

/// Makes `path` a directory owned by the `postgres` user with `mode`.
fn make_server_dir(path: &Path, mode: u32) {
    if !path.is_dir() {
        fs::create_dir(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    }
    give_to_server(path, mode);
}

/// Hands `path` to the `postgres` user with `mode`.
fn give_to_server(path: &Path, mode: u32) {
    let (uid, gid) = os_user_ids();
    chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// Starts a process, in a session of its own so that a kill of the test's
/// process group spares it, that waits for its stdin to close and then
/// stops the server in `dir` at once and removes `dir`. The test process
/// holds the only writing end: it closes however the process ends.
fn spawn_guardian(dir: &Path) -> Child {
    let script = r#"read -r _; setpriv --reuid="$1" --regid="$1" --init-groups -- "$2" stop -m immediate -w -D "$3/data" >/dev/null 2>&1; rm -rf -- "$3""#;
    let mut cmd = Command::new("setsid");
    cmd.args(["sh", "-c", script, "pam-mfa-pg-guardian", OS_USER])
        .arg(postgres_bin("pg_ctl"))
        .arg(dir)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", process::render(&cmd)))
}

/// Runs `openssl` with `args` in `dir`, failing the test if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = process::with_deadline(COMMAND_DEADLINE, "openssl");
    cmd.args(args).current_dir(dir);
    process::run(cmd, b"").assert_success();
}

/// Makes a self-signed CA in `dir`: `<name>.pem` and `<name>.key`.
fn make_ca(dir: &Path, name: &str, subject: &str) {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-sha256",
            "-days",
            "7",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &pem,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    fs::set_permissions(dir.join(&pem), fs::Permissions::from_mode(0o644))
        .expect("cannot chmod the CA certificate");
}

/// Makes the test CAs and the server certificate in `tls`: `ca.pem`
/// signed `server.crt` (with `server.key`) for `localhost` and
/// `127.0.0.1`; `other-ca.pem` signed nothing.
fn make_certificates(tls: &Path) {
    make_ca(tls, "ca", "/CN=pam_mfa e2e test CA");
    make_ca(tls, "other-ca", "/CN=pam_mfa e2e other test CA");
    openssl(
        tls,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    fs::write(
        tls.join("server.ext"),
        "basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .expect("cannot write the certificate extensions");
    openssl(
        tls,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-sha256",
            "-days",
            "7",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// Settings every test server gets, after `initdb`'s `postgresql.conf`
/// (the port and socket directory are on the command line instead, so
/// that a standby's copy of this file fits it too).
const SERVER_SETTINGS: &str = "\n\
# pam_mfa end-to-end test server.\n\
listen_addresses = '127.0.0.1'\n\
ssl = on\n\
ssl_cert_file = 'server.crt'\n\
ssl_key_file = 'server.key'\n\
password_encryption = 'scram-sha-256'\n\
shared_buffers = '16MB'\n\
max_connections = 50\n\
max_wal_senders = 5\n\
wal_level = replica\n\
log_connections = on\n\
log_line_prefix = '%m [%p] %q%u@%d '\n";

/// Who may connect how: the superuser over the Unix socket only, everyone
/// else over TCP with a SCRAM password, with or without TLS.
const PG_HBA: &str = "\
# pam_mfa end-to-end test server.\n\
local    all          postgres                 trust\n\
hostssl  replication  replicator  127.0.0.1/32 scram-sha-256\n\
hostssl  all          all         127.0.0.1/32 scram-sha-256\n\
host     all          all         127.0.0.1/32 scram-sha-256\n";

/// One running `PostgreSQL` cluster in a temporary directory of its own,
/// listening on `127.0.0.1:`[`port`](Postgres::port) with TLS. Dropping
/// it kills the server and removes the directory.
pub struct Postgres {
    /// Holds `data/`, `socket/`, `tls/` and `postgres.log`.
    dir: TempDir,
    /// `dir/tls/ca.pem`, kept to lend out as a `&Path`.
    ca_file: PathBuf,
    port: u16,
    /// Stops the server and removes `dir` once its stdin closes: when
    /// this is dropped, or when the test process dies in a way that runs
    /// no `Drop` (a SIGKILL at a deadline).
    guardian: Option<Child>,
}

impl Postgres {
    /// Makes a fresh cluster with its own test CA and starts it on a free
    /// port. Panics with what failed and the server's log.
    #[must_use = "dropping the server kills it"]
    pub fn start() -> Postgres {
        let pg = Postgres::prepare();
        let tls = pg.tls_dir();
        make_certificates(&tls);
        let mut cmd = pg.server_command("initdb");
        cmd.args([
            "--username",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            // The cluster's files need not survive a crash of the test
            // machine; the server's own fsync, what commits rely on, is on.
            "--no-sync",
            "-D",
        ])
        .arg(pg.data_dir());
        pg.check(&process::run(cmd, b""), "initdb");
        let data = pg.data_dir();
        let mut conf = fs::read_to_string(data.join("postgresql.conf"))
            .expect("initdb writes postgresql.conf");
        conf.push_str(SERVER_SETTINGS);
        pg.write_server_file("postgresql.conf", &conf, 0o600);
        pg.write_server_file("pg_hba.conf", PG_HBA, 0o600);
        for (file, mode) in [("server.crt", 0o644), ("server.key", 0o600)] {
            let text = fs::read_to_string(tls.join(file)).expect("the certificate was made");
            pg.write_server_file(file, &text, mode);
        }
        pg.launch()
    }

    /// A directory for a server that is not started yet; dropping it
    /// stops whatever was started in it.
    fn prepare() -> Postgres {
        crate::require_root();
        // /tmp rather than $TMPDIR: the postgres user must traverse the
        // parents, and the socket path must stay short.
        let dir = tempfile::Builder::new()
            .prefix("pam-mfa-pg.")
            .tempdir_in("/tmp")
            .expect("cannot create a temporary directory in /tmp");
        let ca_file = dir.path().join("tls/ca.pem");
        let guardian = spawn_guardian(dir.path());
        let pg = Postgres {
            dir,
            ca_file,
            port: 0,
            guardian: Some(guardian),
        };
        make_server_dir(pg.dir.path(), 0o755);
        make_server_dir(&pg.socket_dir(), 0o755);
        let tls = pg.tls_dir();
        fs::create_dir(&tls).expect("cannot create the TLS directory");
        fs::set_permissions(&tls, fs::Permissions::from_mode(0o755))
            .expect("cannot chmod the TLS directory");
        pg
    }

    /// Starts the prepared cluster on a free port, trying another port
    /// when one was taken in the meantime.
    fn launch(mut self) -> Postgres {
        for attempt in 1..=START_ATTEMPTS {
            self.port = free_port();
            let run = self.pg_ctl_start();
            if run.success() {
                return self;
            }
            let log = self.log();
            if attempt == START_ATTEMPTS || !log.contains("Address already in use") {
                self.fail(&run, "the server did not start");
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn pg_ctl_start(&self) -> Run {
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["start", "-w", "-t", PG_CTL_WAIT_SECS, "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .arg("-o")
            .arg(format!(
                "-p {} -k {}",
                self.port,
                self.socket_dir().display()
            ));
        process::run(cmd, b"")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM certificate of the test CA that signed the server's
    /// certificate: the `sslrootcert` a client should trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The PEM certificate of a second test CA, which signed nothing the
    /// server has: a client trusting only it must refuse the server.
    pub fn other_ca_file(&self) -> PathBuf {
        self.tls_dir().join("other-ca.pem")
    }

    /// A libpq connection string to `db` as `user`:
    /// `host=localhost port=P dbname=.. user=.. password=..
    /// sslmode=verify-full sslrootcert=<ca_file>`, values quoted by libpq's
    /// rules where needed.
    pub fn conninfo(&self, db: &str, user: &str, password: &str) -> String {
        let port = self.port.to_string();
        let ca = self.ca_file.to_str().expect("temporary paths are UTF-8");
        conninfo_of(&[
            ("host", "localhost"),
            ("port", &port),
            ("dbname", db),
            ("user", user),
            ("password", password),
            ("sslmode", "verify-full"),
            ("sslrootcert", ca),
        ])
    }

    /// Runs `sql` (one or more statements, each in its own transaction) as
    /// the superuser in the `postgres` database; see [`Postgres::sql_in`].
    pub fn sql(&self, sql: &str) -> String {
        self.sql_in("postgres", sql)
    }

    /// Runs `sql` as the superuser in `db`, over the Unix socket, and
    /// returns what it printed: rows one a line, columns separated by `|`,
    /// without the last newline. Panics at the first error, with the
    /// server's log.
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        let run = self.try_sql_in(db, sql);
        self.check(&run, "SQL as the superuser failed");
        run.stdout.trim_end_matches('\n').to_owned()
    }

    fn try_sql_in(&self, db: &str, sql: &str) -> Run {
        let mut cmd = client_command("psql", self.dir.path());
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", db]);
        process::run(cmd, sql.as_bytes())
    }

    /// Creates a role that can log in with `password` (stored as a SCRAM
    /// verifier).
    pub fn create_role(&self, name: &str, password: &str) {
        self.sql(&format!(
            "CREATE ROLE {} LOGIN PASSWORD {};",
            sql_ident(name),
            sql_literal(password)
        ));
    }

    /// Creates the database `name` owned by the role `owner`.
    pub fn create_database(&self, name: &str, owner: &str) {
        self.sql(&format!(
            "CREATE DATABASE {} OWNER {};",
            sql_ident(name),
            sql_ident(owner)
        ));
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`): clients are
    /// disconnected, and it listens no more until [`Postgres::start_again`].
    pub fn stop(&self) {
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["stop", "-m", "fast", "-w", "-t", PG_CTL_WAIT_SECS, "-D"])
            .arg(self.data_dir());
        self.check(&process::run(cmd, b""), "pg_ctl stop failed");
    }

    /// Starts the stopped server again, on the same port with the same
    /// data.
    pub fn start_again(&self) {
        let run = self.pg_ctl_start();
        self.check(&run, "the server did not start again");
    }

    /// Whether the server is running (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["status", "-D"]).arg(self.data_dir());
        let run = process::run(cmd, b"");
        match run.code() {
            Some(0) => true,
            Some(3) => false,
            _ => self.fail(&run, "pg_ctl status failed"),
        }
    }

    /// Makes a synchronous standby of this server named `name` (lower-case
    /// letters, digits and `_`: it is also the replication slot's name)
    /// and starts it: `pg_basebackup -R` over TLS as a replication role,
    /// into its own directory and port, with the same CA and server
    /// certificate. This server then has `synchronous_standby_names =
    /// '"name"'` (replacing any earlier standby's) and `synchronous_commit
    /// = remote_apply`, so a commit here returns only once the standby
    /// shows it. Returns when `pg_stat_replication` shows the standby
    /// streaming as `sync`.
    #[must_use = "dropping the standby kills it"]
    pub fn standby(&self, name: &str) -> Postgres {
        assert!(
            !name.is_empty()
                && name.len() < 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "a standby's name is a replication slot name: [a-z0-9_]{{1,63}}, not {name:?}"
        );
        self.ensure_replication_role();
        let standby = Postgres::prepare();
        for entry in fs::read_dir(self.tls_dir()).expect("the TLS directory exists") {
            let from = entry.expect("cannot list the TLS directory").path();
            let to = standby
                .tls_dir()
                .join(from.file_name().expect("a file name"));
            fs::copy(&from, &to).unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
        }
        let port = self.port.to_string();
        let ca = standby.ca_file.to_str().expect("temporary paths are UTF-8");
        let source = conninfo_of(&[
            ("host", "localhost"),
            ("port", &port),
            ("user", REPLICATION_ROLE),
            ("password", REPLICATION_PASSWORD),
            ("sslmode", "verify-full"),
            ("sslrootcert", ca),
            ("application_name", name),
        ]);
        let mut cmd = standby.server_command("pg_basebackup");
        cmd.args(["-D"])
            .arg(standby.data_dir())
            .args(["-R", "-X", "stream", "-C", "-S", name, "--checkpoint=fast"])
            .args(["--no-sync", "-w", "-d", &source]);
        self.check(&process::run(cmd, b""), "pg_basebackup failed");
        // The copy has this server's postgresql.auto.conf: a standby that
        // is promoted must not wait for a standby of its own.
        let auto = standby.data_dir().join("postgresql.auto.conf");
        let mut text = fs::read_to_string(&auto).expect("pg_basebackup -R writes it");
        assert!(
            text.contains(&format!("application_name={name}")),
            "pg_basebackup -R wrote no application_name into {}:\n{text}",
            auto.display()
        );
        text.push_str("synchronous_standby_names = ''\n");
        fs::write(&auto, text).expect("cannot write the standby's postgresql.auto.conf");
        let standby = standby.launch();
        self.sql(&format!(
            "ALTER SYSTEM SET synchronous_standby_names = {};\n\
             ALTER SYSTEM SET synchronous_commit = 'remote_apply';\n\
             SELECT pg_reload_conf();",
            sql_literal(&sql_ident(name))
        ));
        let query = format!(
            "SELECT sync_state || ' ' || state FROM pg_stat_replication \
             WHERE application_name = {};",
            sql_literal(name)
        );
        let deadline = Instant::now() + STATE_WAIT;
        loop {
            let seen = self.sql(&query);
            if seen == "sync streaming" {
                return standby;
            }
            assert!(
                Instant::now() < deadline,
                "standby {name} is not a streaming sync standby after {STATE_WAIT:?} \
                 (pg_stat_replication: {seen:?})\n--- primary log\n{}\n--- standby log\n{}",
                self.log(),
                standby.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The role standbys connect as, made the first time one is needed.
    fn ensure_replication_role(&self) {
        let exists = self.sql(&format!(
            "SELECT 1 FROM pg_roles WHERE rolname = {};",
            sql_literal(REPLICATION_ROLE)
        ));
        if exists.is_empty() {
            self.sql(&format!(
                "CREATE ROLE {} REPLICATION LOGIN PASSWORD {};",
                sql_ident(REPLICATION_ROLE),
                sql_literal(REPLICATION_PASSWORD)
            ));
        }
    }

    /// Promotes this standby to a primary (`pg_ctl promote`) and returns
    /// once it is out of recovery, accepting writes.
    pub fn promote(&self) {
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["promote", "-w", "-t", PG_CTL_WAIT_SECS, "-D"])
            .arg(self.data_dir());
        self.check(&process::run(cmd, b""), "pg_ctl promote failed");
        let deadline = Instant::now() + STATE_WAIT;
        while self.sql("SELECT pg_is_in_recovery();") != "f" {
            assert!(
                Instant::now() < deadline,
                "still in recovery {STATE_WAIT:?} after pg_ctl promote:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the server wrote to its log (`postgres.log`) so far.
    pub fn log(&self) -> String {
        let path = self.log_file();
        fs::read_to_string(&path)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Writes `text` to `file` in the data directory, owned by the
    /// `postgres` user with `mode`.
    fn write_server_file(&self, file: &str, text: &str, mode: u32) {
        let path = self.data_dir().join(file);
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        give_to_server(&path, mode);
    }

    /// A server program of [`postgres_bin`] run as the `postgres` user,
    /// in this server's directory, with a clean environment.
    fn server_command(&self, tool: &str) -> Command {
        let mut cmd = process::with_deadline(COMMAND_DEADLINE, "setpriv");
        cmd.args([
            &format!("--reuid={OS_USER}"),
            &format!("--regid={OS_USER}"),
            "--init-groups",
            "--",
        ])
        .arg(postgres_bin(tool))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", self.dir.path())
        // English messages: the harness looks for some in the log.
        .env("LC_ALL", "C")
        .current_dir(self.dir.path());
        cmd
    }

    /// Fails the test with `what`, the run and the server's log unless
    /// `run` succeeded.
    fn check(&self, run: &Run, what: &str) {
        if !run.success() {
            self.fail(run, what);
        }
    }

    fn fail(&self, run: &Run, what: &str) -> ! {
        let mut text = format!("{what}:\n{run}");
        let _ = write!(
            text,
            "--- server log ({})\n{}",
            self.log_file().display(),
            self.log()
        );
        panic!("{text}");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut guardian) = self.guardian.take() {
            drop(guardian.stdin.take());
            let _ = guardian.wait();
        }
    }
}

impl Postgres {
    /// Stops the server at once (`pg_ctl stop -m immediate`), with a
    /// SIGKILL to the postmaster if that fails.
    fn kill(&self) {
        let pid_file = self.data_dir().join("postmaster.pid");
        if !pid_file.exists() {
            return;
        }
        let mut cmd = self.server_command("pg_ctl");
        cmd.args([
            "stop",
            "-m",
            "immediate",
            "-w",
            "-t",
            PG_CTL_WAIT_SECS,
            "-D",
        ])
        .arg(self.data_dir());
        let run = process::run(cmd, b"");
        if run.success() {
            return;
        }
        // pg_ctl could not stop it: the postmaster's children exit by
        // themselves once it is gone.
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        if let Some(pid) = pid.filter(|p| *p > 1) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A TCP port on 127.0.0.1 that accepts connections and never sends a
/// byte: a database server that hangs. The connections stay open until it
/// is dropped.
pub struct BlackHole {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    /// Listens on a free port and accepts everything, on a thread of its
    /// own.
    pub fn start() -> BlackHole {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("cannot listen on a free port on 127.0.0.1");
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        // Non-blocking, so that the thread sees `stop` between accepts.
        listener
            .set_nonblocking(true)
            .expect("cannot make the listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(10));
                        }
                        // E.g. a client that reset before the accept.
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        BlackHole {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_values_are_quoted_only_when_needed() {
        assert_eq!(
            conninfo_of(&[
                ("user", "alice"),
                ("password", "it's a \\ secret"),
                ("x", "")
            ]),
            r"user=alice password='it\'s a \\ secret' x=''"
        );
    }

    #[test]
    fn sql_names_and_texts_are_quoted() {
        assert_eq!(sql_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(sql_literal("it's"), "'it''s'");
    }
}

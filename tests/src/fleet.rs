//! A fleet of hosts sharing one enrollment in `PostgreSQL`: one real
//! server ([`Postgres`]) with a database owned by an administrator's role,
//! login roles for the hosts, and N sandboxes ("hosts"), each with its
//! own pam.d, config file, state directories and syslog sink, its own
//! connection file (root, 0600) and the same master key.
//!
//! Host 0 is the administrator's: its role ([`ENROLL_ROLE`]) may insert
//! and delete rows, so `mfa-enroll enroll` works there; the others log in
//! as [`HOST_ROLE`], which may only read and update. The fleet is set up
//! as an administrator would, with the workspace's `mfa-enroll` on host 0:
//! `key init` (the key then copied to every host), and `store init` with
//! the database owner's connection file, whose GRANTs are run as printed.
//!
//! ```no_run
//! use pam_mfa_e2e::fleet::Fleet;
//! use pam_mfa_e2e::Tools;
//!
//! // In tests/*.rs: `Fleet::start(&pam_mfa_e2e::tools!(), ..)`.
//! let tools = Tools::new("target/debug/pam-converse", "target/debug/pam-sandbox");
//! let fleet = Fleet::start(&tools, 2, "[throttle]\nfail_delay_ms = 0\n");
//! for host in fleet.hosts() {
//!     host.service("mfa", &host.pam_mfa_line("auth required", ""));
//! }
//! ```

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::enroll::MfaEnroll;
use crate::postgres::Postgres;
use crate::sandbox::{write_file, Sandbox, Tools};

/// The database the fleet's records live in.
pub const DATABASE: &str = "pam_mfa";
/// The administrator's role: owns the database, creates the table,
/// enrolls users.
pub const OWNER_ROLE: &str = "mfa_admin";
/// Its password (the server listens on loopback only).
pub const OWNER_PASSWORD: &str = "fleet-admin-password";
/// The role the first host (the administrator's, where `mfa-enroll`
/// enrolls users) logs in as: it may also insert and delete rows.
pub const ENROLL_ROLE: &str = "mfa_enroll";
/// Its password, written into the first host's connection file.
pub const ENROLL_PASSWORD: &str = "fleet-enroll-password";
/// The role every other host logs in as: read and update only.
pub const HOST_ROLE: &str = "mfa_host";
/// Its password, written into each host's connection file.
pub const HOST_PASSWORD: &str = "fleet-host-password";
/// `store.timeout_ms` unless a test sets another: the product's default.
pub const DEFAULT_TIMEOUT_MS: u32 = 3000;

/// A host's connection file, relative to its sandbox.
const CONNECTION_FILE: &str = "etc/pam_mfa-postgres.conf";
/// The database owner's connection file on host 0, for `store init`.
const OWNER_CONNECTION_FILE: &str = "etc/pam_mfa-postgres-owner.conf";

/// A `PostgreSQL` server and the hosts that share it. Dropping it removes
/// the hosts' sandboxes, then stops the servers.
pub struct Fleet {
    hosts: Vec<Sandbox>,
    standby: Option<Postgres>,
    primary: Postgres,
}

/// `path` as a TOML basic string.
fn toml_string(path: &Path) -> String {
    let text = path.to_str().expect("sandbox paths are UTF-8");
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Fleet {
    /// Starts a server with [`DATABASE`] owned by [`OWNER_ROLE`], the login
    /// roles [`ENROLL_ROLE`] and [`HOST_ROLE`], and
    /// `hosts` sandboxes whose config is `settings` (TOML without `[store]`
    /// or `[paths]`) with `backend = "postgres"` and
    /// [`DEFAULT_TIMEOUT_MS`]. Host 0 reaches the server as [`ENROLL_ROLE`],
    /// the others as [`HOST_ROLE`], all with `sslmode=verify-full`. Then
    /// `mfa-enroll key init` and `store init` on host 0, which makes the
    /// table and prints the roles' GRANTs (see the module's documentation):
    /// the fleet is ready for enrollments and logins.
    pub fn start(tools: &Tools, hosts: usize, settings: &str) -> Fleet {
        assert!(hosts > 0, "a fleet has at least one host");
        let primary = Postgres::start();
        primary.create_role(OWNER_ROLE, OWNER_PASSWORD);
        primary.create_role(ENROLL_ROLE, ENROLL_PASSWORD);
        primary.create_role(HOST_ROLE, HOST_PASSWORD);
        primary.create_database(DATABASE, OWNER_ROLE);
        let fleet = Fleet {
            hosts: (0..hosts).map(|_| Sandbox::new(tools.clone())).collect(),
            standby: None,
            primary,
        };
        for host in 0..hosts {
            fleet.write_connection(host, &fleet.conninfo(host));
            fleet.configure(host, settings, DEFAULT_TIMEOUT_MS);
        }
        let admin = MfaEnroll::new(fleet.host(0));
        admin.key_init();
        fleet.share_key(0);
        let owner_file = fleet.host(0).path(OWNER_CONNECTION_FILE);
        write_file(&owner_file, &format!("{}\n", fleet.owner_conninfo()), 0o600);
        let init = admin.run(&[
            "store",
            "init",
            "--connection-file",
            owner_file.to_str().expect("sandbox paths are UTF-8"),
            "--host-role",
            HOST_ROLE,
            "--enroll-role",
            ENROLL_ROLE,
        ]);
        init.assert_success();
        fleet.grant(&init.stdout);
        fleet
    }

    /// Kills the hosts' commands (a `sshd`, say) after `deadline` instead
    /// of the sandbox's default.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Fleet {
        self.hosts = std::mem::take(&mut self.hosts)
            .into_iter()
            .map(|h| h.with_deadline(deadline))
            .collect();
        self
    }

    /// Host `n`'s sandbox.
    pub fn host(&self, n: usize) -> &Sandbox {
        self.hosts
            .get(n)
            .unwrap_or_else(|| panic!("the fleet has {} hosts, not {}", self.hosts.len(), n + 1))
    }

    /// Every host's sandbox.
    pub fn hosts(&self) -> &[Sandbox] {
        &self.hosts
    }

    /// The primary server.
    pub fn primary(&self) -> &Postgres {
        &self.primary
    }

    /// The standby made by [`Fleet::add_standby`], if any.
    pub fn standby(&self) -> Option<&Postgres> {
        self.standby.as_ref()
    }

    /// The connection string of the administrator's role on the primary.
    pub fn owner_conninfo(&self) -> String {
        self.primary.conninfo(DATABASE, OWNER_ROLE, OWNER_PASSWORD)
    }

    /// The connection string host `n` starts with: its role on the
    /// primary.
    pub fn conninfo(&self, n: usize) -> String {
        let (role, password) = if n == 0 {
            (ENROLL_ROLE, ENROLL_PASSWORD)
        } else {
            (HOST_ROLE, HOST_PASSWORD)
        };
        self.primary.conninfo(DATABASE, role, password)
    }

    /// Runs `sql` as the superuser in [`DATABASE`] on the primary, e.g. the
    /// GRANT statements `mfa-enroll store init` prints.
    pub fn grant(&self, sql: &str) {
        self.primary.sql_in(DATABASE, sql);
    }

    /// Host `n`'s connection file (`store.connection_file`).
    pub fn connection_file(&self, n: usize) -> PathBuf {
        self.host(n).path(CONNECTION_FILE)
    }

    /// Replaces host `n`'s connection file (root, 0600) with `conninfo`.
    pub fn write_connection(&self, n: usize, conninfo: &str) {
        write_file(&self.connection_file(n), &format!("{conninfo}\n"), 0o600);
    }

    /// Rewrites host `n`'s config: `settings` (TOML without `[store]` or
    /// `[paths]`), then `[store]` with this host's connection file and
    /// `timeout_ms`, then the sandbox's `[paths]`.
    pub fn configure(&self, n: usize, settings: &str, timeout_ms: u32) {
        let mut text = settings.to_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let _ = write!(
            text,
            "\n[store]\nbackend = \"postgres\"\nconnection_file = {}\ntimeout_ms = {timeout_ms}\n",
            toml_string(&self.connection_file(n))
        );
        self.host(n).write_config(&text);
    }

    /// Copies host `from`'s master key file (0600) and enrollment public
    /// key (0644) to every other host, as an administrator rolls out one
    /// key to a fleet.
    pub fn share_key(&self, from: usize) {
        let source = self.host(from);
        for (i, host) in self.hosts.iter().enumerate() {
            if i == from {
                continue;
            }
            for (file, mode) in [
                (source.key_file(), 0o600),
                (source.enroll_public_key(), 0o644),
            ] {
                let to = host.root().join(
                    file.strip_prefix(source.root())
                        .expect("the key files are in the sandbox"),
                );
                let text = fs::read(&file)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
                fs::write(&to, text)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
                fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                    .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", to.display()));
            }
        }
    }

    /// Makes a synchronous standby of the primary ([`Postgres::standby`]:
    /// `synchronous_commit = remote_apply`) and points every host at both
    /// servers: `host=localhost,localhost port=PRIMARY,STANDBY
    /// target_session_attrs=read-write`.
    pub fn add_standby(&mut self, name: &str) {
        let standby = self.primary.standby(name);
        let primary_port = self.primary.port();
        let single = format!("host=localhost port={primary_port} ");
        let both = format!(
            "host=localhost,localhost port={primary_port},{} ",
            standby.port()
        );
        self.standby = Some(standby);
        for host in 0..self.hosts.len() {
            let one = self.conninfo(host);
            assert!(
                one.starts_with(&single),
                "the harness's connection string changed its form: {one}"
            );
            let conninfo = format!(
                "{} target_session_attrs=read-write",
                one.replacen(&single, &both, 1)
            );
            self.write_connection(host, &conninfo);
        }
    }
}

//! The `PostgreSQL` row client behind the shared record store.
//!
//! One row per login name in [`TABLE`]; the caller seals and opens the
//! record, the database only ever sees ciphertext. This module knows rows,
//! not records: read, compare-and-set on `version`, create, delete, list.
//!
//! The client runs inside sshd and sudo, so it keeps no process-wide state
//! and leaves no thread behind:
//! - each [`Client`] owns a current-thread tokio runtime (io and time only,
//!   no worker or blocking-pool threads are started by what runs on it),
//!   created at the first operation and dropped with the client;
//! - host names are resolved on that runtime by hickory (`/etc/hosts`, then
//!   the name servers of `/etc/resolv.conf`), never by tokio's `lookup_host`,
//!   whose `getaddrinfo` runs on a blocking-pool thread that a deadline cannot
//!   stop and that a runtime drop waits for; tokio-postgres then gets the
//!   address as `hostaddr` and keeps `host` for certificate verification;
//! - TLS is rustls with the ring provider passed explicitly (no process-wide
//!   default provider is installed);
//! - every operation (resolution, connection, TLS, authentication, statement)
//!   runs under one deadline, [`Settings::timeout`].
//!
//! `sslmode` keeps libpq's meaning where it applies: `verify-full` checks
//! the chain against `sslrootcert` and the host name, `verify-ca` the chain
//! only, `require` encrypts and checks the chain only if `sslrootcert` is
//! given, `disable` is plain text. `prefer` and `allow`, which fall back to
//! plain text without a word, are refused; a missing `sslmode` means
//! `verify-full` (libpq's default is `prefer`).
//!
//! Several servers (`host=db1,db2 port=5432,5433
//! target_session_attrs=read-write`) are tried in order, each address of a
//! name in turn, as libpq does. A server that is down refuses at once and
//! the next is tried; one that cannot be reached at all (packets dropped)
//! holds the attempt until `connect_timeout` (libpq's, in seconds, at least
//! 2), or without it until the deadline: name the likely primary first, and
//! keep `timeout_ms` above `connect_timeout` when hosts can vanish.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tokio_postgres::config::{SslMode as WireSslMode, TargetSessionAttrs};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::fsutil::{self, Access, FileError, FileTrust};

/// The table that holds one sealed record per login name.
pub const TABLE: &str = "pam_mfa_records";

/// The largest connection file: a connection string is a line or two.
const MAX_CONNECTION_FILE: u64 = 64 * 1024;

/// The largest `sslrootcert` file read.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// How long a dropped client waits for the server to take its goodbye
/// (Terminate), so the server logs a clean disconnect; never longer.
const CLOSE_WAIT: Duration = Duration::from_millis(100);

/// The default port, as libpq's.
const DEFAULT_PORT: u16 = 5432;

/// libpq's `sslmode`, as far as this client implements it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text.
    Disable,
    /// Encrypted; the chain is checked only if `sslrootcert` is given.
    Require,
    /// Encrypted, the chain checked against `sslrootcert`.
    VerifyCa,
    /// Encrypted, the chain checked against `sslrootcert` and the server's
    /// certificate checked for the host name.
    VerifyFull,
}

impl SslMode {
    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// One server of the connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    /// The name (or IP literal) given as `host`: what the certificate must name.
    host: String,
    /// `hostaddr`, or `host` when it is an IP literal.
    addr: Option<IpAddr>,
    port: u16,
}

impl Server {
    fn describe(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A parsed connection file: where the servers are, how to talk to them,
/// and the deadline of each operation.
#[derive(Clone)]
pub struct Settings {
    servers: Vec<Server>,
    sslmode: SslMode,
    sslrootcert: Option<PathBuf>,
    target: TargetSessionAttrs,
    /// libpq's `connect_timeout`: the most one server may take to connect.
    connect_timeout: Option<Duration>,
    /// Everything else (user, password, dbname, options...), for tokio-postgres.
    base: tokio_postgres::Config,
    timeout: Duration,
    /// Who must own `sslrootcert` (besides root).
    trust: FileTrust,
}

impl fmt::Debug for Settings {
    // By hand: the base configuration holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("servers", &self.describe())
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("target_session_attrs", &self.target)
            .field("connect_timeout", &self.connect_timeout)
            .field("dbname", &self.base.get_dbname())
            .field("user", &self.base.get_user())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads and checks `path` (regular file, owned by `trust`'s uid, no
    /// group/other permission bits), then parses it.
    ///
    /// # Errors
    /// [`PgError::File`] for the file, [`PgError::Conninfo`] for its contents.
    pub fn load(path: &Path, trust: FileTrust, timeout: Duration) -> Result<Settings, PgError> {
        let bytes = fsutil::read_trusted(path, trust, Access::OwnerOnly, MAX_CONNECTION_FILE)
            .map_err(PgError::File)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| PgError::Conninfo {
            file: Some(path.to_path_buf()),
            problem: "the file is not UTF-8 text".to_string(),
        })?;
        let mut settings = Self::parse(text, timeout).map_err(|e| match e {
            PgError::Conninfo { problem, .. } => PgError::Conninfo {
                file: Some(path.to_path_buf()),
                problem,
            },
            other => other,
        })?;
        settings.trust = trust;
        Ok(settings)
    }

    /// Parses one libpq connection string (used by load and by tests):
    /// `key=value` pairs separated by white space, values in single quotes
    /// when they hold spaces, `\'` and `\\` escaped.
    ///
    /// # Errors
    /// [`PgError::Conninfo`] naming the key at fault (never a value: one of
    /// them is the password).
    pub fn parse(conninfo: &str, timeout: Duration) -> Result<Settings, PgError> {
        let bad = |problem: String| PgError::Conninfo {
            file: None,
            problem,
        };
        let trimmed = conninfo.trim_start();
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return Err(bad(
                "a URI is not accepted; write key=value pairs (host=... port=... dbname=... user=... password=... sslmode=verify-full sslrootcert=...)"
                    .to_string(),
            ));
        }
        let pairs = parse_pairs(conninfo).map_err(bad)?;
        // libpq: a later key overrides an earlier one.
        let mut map: HashMap<String, String> = HashMap::new();
        for (k, v) in pairs {
            map.insert(k, v);
        }

        let (sslmode, sslrootcert) = tls_keys(&mut map).map_err(bad)?;

        let servers = servers(
            map.remove("host").as_deref(),
            map.remove("hostaddr").as_deref(),
            map.remove("port").as_deref(),
        )
        .map_err(bad)?;

        let (target, connect_timeout) = session_keys(&mut map).map_err(bad)?;
        let password = map.remove("password");

        let mut base = base_config(&map).map_err(bad)?;
        if base.get_user().is_none() {
            return Err(bad(
                "user is missing: name the PostgreSQL role the hosts log in as".to_string(),
            ));
        }
        if let Some(pw) = password {
            base.password(pw);
        }
        Ok(Settings {
            servers,
            sslmode,
            sslrootcert,
            target,
            connect_timeout,
            base,
            timeout,
            trust: FileTrust::ROOT,
        })
    }

    /// The deadline of one store operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The servers named, for messages and doctor: "db1:5432,db2:5432"
    /// (never the password).
    pub fn describe(&self) -> String {
        self.servers
            .iter()
            .map(Server::describe)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `sslmode` in force.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// The database named by `dbname` (tokio-postgres defaults it to the user).
    pub fn dbname(&self) -> Option<&str> {
        self.base.get_dbname()
    }

    /// The role the client logs in as.
    pub fn user(&self) -> Option<&str> {
        self.base.get_user()
    }
}

/// Takes `sslmode` and `sslrootcert` out of `map`.
fn tls_keys(map: &mut HashMap<String, String>) -> Result<(SslMode, Option<PathBuf>), String> {
    let sslmode = match map.remove("sslmode").as_deref() {
        None | Some("verify-full") => SslMode::VerifyFull,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("require") => SslMode::Require,
        Some("disable") => SslMode::Disable,
        Some(m @ ("prefer" | "allow")) => {
            return Err(format!(
                "sslmode={m} falls back to plain text without a word; an authentication store must not: use sslmode=verify-full with sslrootcert"
            ))
        }
        Some(_) => {
            return Err(
                "sslmode must be verify-full (recommended), verify-ca, require or disable"
                    .to_string(),
            )
        }
    };
    let sslrootcert = map
        .remove("sslrootcert")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && sslrootcert.is_none() {
        return Err(format!(
            "sslmode={} needs sslrootcert=FILE, the CA certificate that signed the server's certificate",
            sslmode.name()
        ));
    }
    for key in ["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"] {
        if map.contains_key(key) {
            return Err(format!(
                "{key} is not supported; authenticate with a password (SCRAM) over sslmode=verify-full"
            ));
        }
    }
    Ok((sslmode, sslrootcert))
}

/// Takes `target_session_attrs` and `connect_timeout` out of `map`.
fn session_keys(
    map: &mut HashMap<String, String>,
) -> Result<(TargetSessionAttrs, Option<Duration>), String> {
    let target = match map.remove("target_session_attrs").as_deref() {
        None | Some("any") => TargetSessionAttrs::Any,
        Some("read-write") => TargetSessionAttrs::ReadWrite,
        Some("read-only") => TargetSessionAttrs::ReadOnly,
        Some(_) => return Err(
            "target_session_attrs must be read-write (for a store with standbys), any or read-only"
                .to_string(),
        ),
    };
    let connect_timeout = match map.remove("connect_timeout") {
        None => None,
        Some(v) => match v.trim().parse::<u64>() {
            // libpq: zero means wait indefinitely (here: the deadline); 1 means 2.
            Ok(0) => None,
            Ok(s) => Some(Duration::from_secs(s.max(2))),
            Err(_) => return Err("connect_timeout must be a whole number of seconds".to_string()),
        },
    };
    Ok((target, connect_timeout))
}

/// Hands the keys left in `map` to tokio-postgres's own parser, which knows
/// `user`, `dbname`, `options`, `application_name`, keepalives, `channel_binding`...
/// and refuses what it does not know. The password is never among them.
fn base_config(map: &HashMap<String, String>) -> Result<tokio_postgres::Config, String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut rest = String::new();
    for k in keys {
        if k.contains(|c: char| c == '=' || c == '\'' || c == '\\' || c.is_whitespace()) {
            return Err("a key holds a character keys never have".to_string());
        }
        rest.push_str(k);
        rest.push_str("='");
        for c in map[k].chars() {
            if c == '\'' || c == '\\' {
                rest.push('\\');
            }
            rest.push(c);
        }
        rest.push_str("' ");
    }
    // tokio-postgres's messages name the key, not the value.
    rest.parse()
        .map_err(|e: tokio_postgres::Error| error_chain(&e))
}

/// Splits a libpq connection string into (key, value) pairs.
fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("\"=\" is missing after the key {key}"));
        }
        if key.is_empty() {
            return Err("a \"=\" has no key before it".to_string());
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("the quoted value of {key} has no closing quote")),
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(format!("the quoted value of {key} has no closing quote"))
                        }
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// Builds the server list from libpq's comma-separated `host`, `hostaddr`
/// and `port` (one port for all, or one per host).
fn servers(
    host: Option<&str>,
    hostaddr: Option<&str>,
    port: Option<&str>,
) -> Result<Vec<Server>, String> {
    let split = |s: &str| {
        s.split(',')
            .map(str::trim)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let hosts = host.map(split).unwrap_or_default();
    let addrs = hostaddr.map(split).unwrap_or_default();
    let ports = port.map(split).unwrap_or_default();
    if hosts.is_empty() && addrs.is_empty() {
        return Err(
            "host is missing: name the PostgreSQL server(s), e.g. host=db1,db2 port=5432"
                .to_string(),
        );
    }
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(format!(
            "host names {} servers and hostaddr {}; give one address per host",
            hosts.len(),
            addrs.len()
        ));
    }
    let count = hosts.len().max(addrs.len());
    if ports.len() > 1 && ports.len() != count {
        return Err(format!(
            "port names {} ports for {count} servers; give one port, or one per host",
            ports.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let port = match ports.get(i).or(ports.first()).map(String::as_str) {
            None | Some("") => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port {p} is not a TCP port number"))?,
        };
        let addr = match addrs.get(i).map(String::as_str) {
            None | Some("") => None,
            Some(a) => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| format!("hostaddr {a} is not an IP address"))?,
            ),
        };
        let host = match hosts.get(i).map(String::as_str) {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => match addr {
                Some(a) => a.to_string(),
                None => return Err("an empty host name in host".to_string()),
            },
        };
        if host.starts_with('/') || host.starts_with('@') {
            return Err(format!(
                "host {host} is a Unix socket; the shared store is reached over TCP with TLS"
            ));
        }
        let addr = addr.or_else(|| host.parse::<IpAddr>().ok());
        out.push(Server { host, addr, port });
    }
    Ok(out)
}

/// One row as stored: the caller seals and opens `sealed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Incremented by every change; the compare-and-set compares it.
    pub version: i64,
    /// The key generation that sealed the record.
    pub generation: u32,
    /// The sealed record.
    pub sealed: Vec<u8>,
}

/// The SQL an administrator runs to let `role` read and update records
/// (and, with `enroll`, also insert and delete them).
pub fn grants(role: &str, enroll: bool) -> String {
    let privileges = if enroll {
        "SELECT, INSERT, UPDATE, DELETE"
    } else {
        "SELECT, UPDATE"
    };
    format!(
        "GRANT {privileges} ON TABLE {TABLE} TO {};\n",
        quote_ident(role)
    )
}

/// Quotes an SQL identifier: in double quotes, inner quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The table. `version > 0` so that no row can look like "never written".
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS pam_mfa_records (
    name text PRIMARY KEY,
    version bigint NOT NULL CHECK (version > 0),
    key_generation integer NOT NULL,
    sealed bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
)";

/// Serialises concurrent `init_schema` calls from several hosts: CREATE TABLE
/// IF NOT EXISTS checks the catalog before it inserts into it, so two at once
/// can both decide to create and one fails on the catalog's unique index.
/// The key is arbitrary but fixed (the bytes of "pam_mfa" as a number).
const SCHEMA_LOCK: &str = "SELECT pg_advisory_xact_lock(31632319771928161)";

const SELECT_ROW: &str =
    "SELECT version, key_generation, sealed FROM pam_mfa_records WHERE name = $1";
const UPDATE_ROW: &str = "UPDATE pam_mfa_records SET version = $3, key_generation = $4, sealed = $5, updated_at = now(), updated_by = $6 WHERE name = $1 AND version = $2";
const INSERT_ROW: &str = "INSERT INTO pam_mfa_records (name, version, key_generation, sealed, updated_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING";
const DELETE_ROW: &str = "DELETE FROM pam_mfa_records WHERE name = $1";
const DELETE_ROW_AT: &str = "DELETE FROM pam_mfa_records WHERE name = $1 AND version = $2";
const SELECT_NAMES: &str = "SELECT name FROM pam_mfa_records ORDER BY name COLLATE \"C\"";

/// Why a store operation failed. `Display` says what to do next.
#[derive(Debug)]
pub enum PgError {
    /// The connection file is missing, not a regular file, has the wrong
    /// owner or mode, or cannot be read.
    File(FileError),
    /// The connection string cannot be used.
    Conninfo {
        /// The connection file, when it came from one.
        file: Option<PathBuf>,
        /// What is wrong (names keys, never values).
        problem: String,
    },
    /// The operation did not finish within the deadline.
    Timeout {
        /// The servers of the connection string.
        servers: String,
        /// The deadline.
        timeout: Duration,
        /// Whether the connection was up when time ran out.
        connected: bool,
    },
    /// No server could be reached: refused, unreachable, name unknown, none
    /// writable, or the connection was lost.
    Connect {
        /// The servers of the connection string.
        servers: String,
        /// What happened, per server tried.
        detail: String,
    },
    /// TLS failed: certificate not signed by `sslrootcert`, wrong host name,
    /// unreadable CA file, or a server without TLS.
    Tls {
        /// The servers of the connection string.
        servers: String,
        /// What happened.
        detail: String,
    },
    /// The server refused the role or its password.
    Auth {
        /// The servers of the connection string.
        servers: String,
        /// The server's message.
        detail: String,
    },
    /// The table does not exist in the database.
    NoTable {
        /// The servers of the connection string.
        servers: String,
    },
    /// A statement failed on the server.
    Query {
        /// The server's message.
        detail: String,
        /// The SQLSTATE, if the server sent one.
        code: Option<String>,
    },
    /// The server sent something the protocol does not allow.
    Protocol {
        /// The servers of the connection string.
        servers: String,
        /// What was wrong.
        detail: String,
    },
    /// A row that pam_mfa does not write (NULLs, negative key generation).
    BadRow {
        /// The login name of the row.
        name: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The client could not run here (no runtime, called from async code).
    Local(String),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL store: ")?;
        match self {
            PgError::File(e) => write!(f, "connection file: {e}"),
            PgError::Conninfo {
                file: Some(file),
                problem,
            } => write!(
                f,
                "{}: {problem} (a libpq connection string: key=value ...)",
                file.display()
            ),
            PgError::Conninfo {
                file: None,
                problem,
            } => write!(f, "connection string: {problem}"),
            PgError::Timeout {
                servers,
                timeout,
                connected,
            } => {
                let ms = timeout.as_millis();
                if *connected {
                    write!(f, "{servers} did not answer within {ms} ms (timeout_ms in [store]); check the server's load and locks (pg_stat_activity)")
                } else {
                    write!(f, "no answer from {servers} within {ms} ms (timeout_ms in [store]); check that the server is up and reachable")
                }
            }
            PgError::Connect { servers, detail } => write!(
                f,
                "cannot connect to {servers}: {detail}; check that the server is up, listens on that address and port, and (with target_session_attrs=read-write) that one of them is the primary"
            ),
            PgError::Tls { servers, detail } => write!(
                f,
                "TLS with {servers} failed: {detail}; the server's certificate must be signed by the CA in sslrootcert and (verify-full) name the host as written in host="
            ),
            PgError::Auth { servers, detail } => write!(
                f,
                "{servers} refused the login: {detail}; check user and password in the connection file and pg_hba.conf on the server"
            ),
            PgError::NoTable { servers } => write!(
                f,
                "the table {TABLE} does not exist in the database on {servers}; run `mfa-enroll store init`"
            ),
            PgError::Query { detail, code } => {
                write!(f, "statement failed: {detail}")?;
                match code.as_deref() {
                    Some("42501") => write!(f, "; grant the role access to {TABLE} (GRANT SELECT, UPDATE, and for enrollment INSERT, DELETE)"),
                    Some("25006") => write!(f, "; the server is a read-only standby: name the primary, or all servers with target_session_attrs=read-write"),
                    _ => Ok(()),
                }
            }
            PgError::Protocol { servers, detail } => write!(
                f,
                "{servers} answered something that is not PostgreSQL's protocol: {detail}; check that host and port name a PostgreSQL server"
            ),
            PgError::BadRow { name, detail } => write!(
                f,
                "the row of {name} in {TABLE} was not written by pam_mfa: {detail}; restore it from a backup or delete it and enroll again"
            ),
            PgError::Local(detail) => write!(f, "{detail}"),
        }
    }
}

impl std::error::Error for PgError {}

/// What a [`Client`] keeps between operations.
struct State {
    runtime: Option<Runtime>,
    conn: Option<Conn>,
}

/// A live connection.
struct Conn {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

/// A lazily connected client. Each method is one store operation under one
/// deadline (connecting first if there is no live connection). The
/// connection is kept for the next operation of the same Client (a login
/// reads before the prompt and updates after it: one connection), and
/// dropped after any error. Dropping the Client closes the connection and the
/// runtime; no thread survives.
pub struct Client {
    settings: Settings,
    state: Mutex<State>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One store operation.
enum Request<'a> {
    Read(&'a str),
    Replace {
        name: &'a str,
        expected: i64,
        new: &'a Row,
        by: &'a str,
    },
    Create {
        name: &'a str,
        new: &'a Row,
        by: &'a str,
    },
    Delete(&'a str, Option<i64>),
    Names,
    InitSchema,
}

/// Its answer.
enum Response {
    Row(Option<Row>),
    Changed(bool),
    Names(Vec<String>),
    Done,
}

impl Client {
    /// A client for `settings`; nothing is opened until the first operation.
    pub fn new(settings: Settings) -> Client {
        Client {
            settings,
            state: Mutex::new(State {
                runtime: None,
                conn: None,
            }),
        }
    }

    /// The settings the client connects with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The row of `name`, if there is one.
    ///
    /// # Errors
    /// Any [`PgError`]; a failure never means "no row".
    pub fn read(&self, name: &str) -> Result<Option<Row>, PgError> {
        match self.run(&Request::Read(name))? {
            Response::Row(r) => Ok(r),
            _ => Err(unexpected_response()),
        }
    }

    /// Replaces the row of `name` if its version is still `expected`;
    /// `Ok(true)` iff one row changed (`Ok(false)`: another host got there
    /// first, or the row went).
    ///
    /// # Errors
    /// Any [`PgError`]; the row may or may not have changed when the error
    /// is a timeout or a lost connection.
    pub fn replace(
        &self,
        name: &str,
        expected: i64,
        new: &Row,
        updated_by: &str,
    ) -> Result<bool, PgError> {
        self.changed(&Request::Replace {
            name,
            expected,
            new,
            by: updated_by,
        })
    }

    /// Creates the row of `name`; `Ok(false)` if the name already has a row.
    ///
    /// # Errors
    /// Any [`PgError`].
    pub fn create(&self, name: &str, new: &Row, updated_by: &str) -> Result<bool, PgError> {
        self.changed(&Request::Create {
            name,
            new,
            by: updated_by,
        })
    }

    /// Deletes the row of `name` (only at version `expected`, when given);
    /// `Ok(true)` iff a row went.
    ///
    /// # Errors
    /// Any [`PgError`].
    pub fn delete(&self, name: &str, expected: Option<i64>) -> Result<bool, PgError> {
        self.changed(&Request::Delete(name, expected))
    }

    /// Every name with a row, sorted (bytewise).
    ///
    /// # Errors
    /// Any [`PgError`].
    pub fn names(&self) -> Result<Vec<String>, PgError> {
        match self.run(&Request::Names)? {
            Response::Names(n) => Ok(n),
            _ => Err(unexpected_response()),
        }
    }

    /// Creates the table if it does not exist; idempotent, and safe to run
    /// from several hosts at once.
    ///
    /// # Errors
    /// Any [`PgError`] (creating a table needs the CREATE privilege on the
    /// schema: run it as the database owner).
    pub fn init_schema(&self) -> Result<(), PgError> {
        match self.run(&Request::InitSchema)? {
            Response::Done => Ok(()),
            _ => Err(unexpected_response()),
        }
    }

    fn changed(&self, req: &Request<'_>) -> Result<bool, PgError> {
        match self.run(req)? {
            Response::Changed(c) => Ok(c),
            _ => Err(unexpected_response()),
        }
    }

    /// Runs one operation under the deadline, connecting first if needed;
    /// drops the connection after any error.
    fn run(&self, req: &Request<'_>) -> Result<Response, PgError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // block_on would panic inside another runtime.
            return Err(PgError::Local(
                "the store client blocks and cannot be called from async code".to_string(),
            ));
        }
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = &mut *guard;
        if state.runtime.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| PgError::Local(format!("cannot start the I/O runtime: {e}")))?;
            state.runtime = Some(rt);
        }
        let Some(rt) = state.runtime.as_ref() else {
            return Err(PgError::Local("no I/O runtime".to_string()));
        };
        let settings = &self.settings;
        let conn_slot = &mut state.conn;
        let result = rt.block_on(async {
            let deadline = after(settings.timeout);
            let timed_out = |connected| PgError::Timeout {
                servers: settings.describe(),
                timeout: settings.timeout,
                connected,
            };
            // A connection the server closed since the last operation (a
            // restart, an idle timeout, pg_terminate_backend) is replaced
            // before anything is sent. Its connection task learns of the
            // close (a FATAL message, end of file) only when polled: yield
            // so the runtime polls the socket once, then look.
            if conn_slot.is_some() {
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
            }
            if conn_slot.as_ref().is_some_and(|c| c.client.is_closed()) {
                *conn_slot = None;
            }
            if conn_slot.is_none() {
                let conn = tokio::time::timeout_at(deadline, connect(settings, deadline))
                    .await
                    .map_err(|_| timed_out(false))??;
                *conn_slot = Some(conn);
            }
            let Some(conn) = conn_slot.as_mut() else {
                return Err(PgError::Local("no connection".to_string()));
            };
            tokio::time::timeout_at(deadline, execute(conn, req, settings))
                .await
                .map_err(|_| timed_out(true))?
        });
        if result.is_err() {
            if let Some(conn) = state.conn.take() {
                drop(conn.client);
                conn.task.abort();
            }
        }
        result
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let state = match self.state.get_mut() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let conn = state.conn.take();
        let Some(rt) = state.runtime.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Dropping a runtime inside another one panics.
            drop(conn);
            rt.shutdown_background();
            return;
        }
        if let Some(conn) = conn {
            // Without its client the connection task says goodbye to the
            // server and ends; wait for that briefly, never longer.
            drop(conn.client);
            // The timer must be made inside the runtime.
            let _ = rt.block_on(async { tokio::time::timeout(CLOSE_WAIT, conn.task).await });
        }
        drop(rt);
    }
}

/// The instant `d` from now; an absurd `d` (a configuration typo) means a
/// year rather than an overflow panic.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

fn unexpected_response() -> PgError {
    PgError::Local("internal error: mismatched store response".to_string())
}

/// Connects to the first server that takes the login, in the order of the
/// connection string, trying each address of a name in turn (as libpq).
async fn connect(settings: &Settings, deadline: Instant) -> Result<Conn, PgError> {
    let servers = settings.describe();
    let tls = tls_connector(settings).map_err(|detail| PgError::Tls {
        servers: servers.clone(),
        detail,
    })?;
    let mut resolver: Option<TokioResolver> = None;
    let mut failures: Vec<(Failure, String)> = Vec::new();
    for server in &settings.servers {
        let addrs = if let Some(a) = server.addr {
            vec![a]
        } else {
            let r = resolver.get_or_insert_with(system_resolver);
            match r.lookup_ip(server.host.as_str()).await {
                Ok(found) => found.iter().collect(),
                Err(e) => {
                    failures.push((
                        Failure::Connect,
                        format!("{}: cannot resolve the name: {e}", server.describe()),
                    ));
                    continue;
                }
            }
        };
        for addr in addrs {
            let mut config = settings.base.clone();
            config
                .host(&server.host)
                .hostaddr(addr)
                .port(server.port)
                .target_session_attrs(settings.target)
                .ssl_mode(if settings.sslmode == SslMode::Disable {
                    WireSslMode::Disable
                } else {
                    WireSslMode::Require
                });
            let attempt = config.connect(tls.clone());
            let outcome = if let Some(t) = settings.connect_timeout {
                let until = deadline.min(after(t));
                if let Ok(r) = tokio::time::timeout_at(until, attempt).await {
                    r
                } else {
                    failures.push((
                        Failure::Connect,
                        format!(
                            "{} ({addr}): no answer within connect_timeout ({} s)",
                            server.describe(),
                            t.as_secs()
                        ),
                    ));
                    continue;
                }
            } else {
                attempt.await
            };
            match outcome {
                Ok((client, connection)) => {
                    let task = tokio::spawn(async move {
                        // The error is seen by the next statement on the client.
                        let _ = connection.await;
                    });
                    return Ok(Conn { client, task });
                }
                Err(e) => {
                    let kind = classify(&e);
                    failures.push((
                        kind,
                        format!("{} ({addr}): {}", server.describe(), error_chain(&e)),
                    ));
                }
            }
        }
    }
    // The most telling failure decides the kind: a wrong certificate or
    // password matters more than a server that is down.
    let kind = failures
        .iter()
        .map(|(k, _)| *k)
        .max()
        .unwrap_or(Failure::Connect);
    let detail = if failures.is_empty() {
        "no address to try".to_string()
    } else {
        failures
            .into_iter()
            .map(|(_, d)| d)
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err(kind.error(servers, detail))
}

/// The resolver of the system's configuration: `/etc/hosts` and the name
/// servers of `/etc/resolv.conf`; without the latter, `/etc/hosts` alone
/// (never a public resolver).
fn system_resolver() -> TokioResolver {
    match TokioResolver::builder_tokio() {
        Ok(b) => b.build(),
        Err(_) => TokioResolver::builder_with_config(
            ResolverConfig::new(),
            TokioConnectionProvider::default(),
        )
        .with_options(ResolverOpts::default())
        .build(),
    }
}

/// What went wrong while connecting, from least to most telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    Connect,
    Protocol,
    Tls,
    Auth,
    Query,
}

impl Failure {
    fn error(self, servers: String, detail: String) -> PgError {
        match self {
            Failure::Connect => PgError::Connect { servers, detail },
            Failure::Protocol => PgError::Protocol { servers, detail },
            Failure::Tls => PgError::Tls { servers, detail },
            Failure::Auth => PgError::Auth { servers, detail },
            Failure::Query => PgError::Query { detail, code: None },
        }
    }
}

/// Sorts a tokio-postgres error; its kinds are private, so by the server's
/// SQLSTATE, the error's sources and its message.
fn classify(e: &tokio_postgres::Error) -> Failure {
    if let Some(code) = e.code() {
        let c = code.code();
        if c.starts_with("28") || *code == SqlState::INVALID_CATALOG_NAME {
            // 28000/28P01: role or password refused; 3D000: no such database
            // for this login.
            return Failure::Auth;
        }
        if c.starts_with("08") || c.starts_with("57") || c.starts_with("53") {
            // Connection exceptions, shutdown in progress, too many connections.
            return Failure::Connect;
        }
        return Failure::Query;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return Failure::Tls;
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return Failure::Tls;
            }
        }
        source = s.source();
    }
    let text = e.to_string();
    if text.starts_with("error performing TLS handshake") {
        Failure::Tls
    } else if text.starts_with("authentication error") {
        Failure::Auth
    } else if text.starts_with("unexpected message from server")
        || text.starts_with("error parsing response from server")
    {
        Failure::Protocol
    } else {
        Failure::Connect
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        // tokio-postgres already appends its source to its own message.
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Maps an error of a statement on a live connection.
fn statement_error(e: &tokio_postgres::Error, settings: &Settings) -> PgError {
    let servers = settings.describe();
    if e.code() == Some(&SqlState::UNDEFINED_TABLE) {
        return PgError::NoTable { servers };
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if code.starts_with("08") || code.starts_with("57P") {
            // Connection exceptions, and the server shutting down or
            // terminating this session.
            return PgError::Connect {
                servers,
                detail: format!("connection lost: {}: {}", db.severity(), db.message()),
            };
        }
        return PgError::Query {
            detail: format!("{}: {}", db.severity(), db.message()),
            code: Some(db.code().code().to_string()),
        };
    }
    match classify(e) {
        Failure::Protocol => PgError::Protocol {
            servers,
            detail: error_chain(e),
        },
        _ => PgError::Connect {
            servers,
            detail: format!("connection lost: {}", error_chain(e)),
        },
    }
}

fn generation_param(new: &Row, name: &str) -> Result<i32, PgError> {
    i32::try_from(new.generation).map_err(|_| PgError::BadRow {
        name: name.to_string(),
        detail: format!(
            "key generation {} does not fit the integer column",
            new.generation
        ),
    })
}

/// Runs one statement with its parameters typed by the caller: parse, bind
/// and execute go to the server together, so each statement of a login
/// (one read, one update) is one round trip, as with libpq's `PQexecParams`.
async fn execute(
    conn: &mut Conn,
    req: &Request<'_>,
    settings: &Settings,
) -> Result<Response, PgError> {
    let fail = |e: tokio_postgres::Error| statement_error(&e, settings);
    let client = &conn.client;
    match *req {
        Request::Read(name) => {
            let row = client
                .query_typed_opt(SELECT_ROW, &[(&name, Type::TEXT)])
                .await
                .map_err(fail)?;
            match row {
                None => Ok(Response::Row(None)),
                Some(row) => decode_row(&row, name).map(|r| Response::Row(Some(r))),
            }
        }
        Request::Replace {
            name,
            expected,
            new,
            by,
        } => {
            let generation = generation_param(new, name)?;
            let n = client
                .execute_typed(
                    UPDATE_ROW,
                    &[
                        (&name, Type::TEXT),
                        (&expected, Type::INT8),
                        (&new.version, Type::INT8),
                        (&generation, Type::INT4),
                        (&new.sealed, Type::BYTEA),
                        (&by, Type::TEXT),
                    ],
                )
                .await
                .map_err(fail)?;
            Ok(Response::Changed(n == 1))
        }
        Request::Create { name, new, by } => {
            let generation = generation_param(new, name)?;
            let n = client
                .execute_typed(
                    INSERT_ROW,
                    &[
                        (&name, Type::TEXT),
                        (&new.version, Type::INT8),
                        (&generation, Type::INT4),
                        (&new.sealed, Type::BYTEA),
                        (&by, Type::TEXT),
                    ],
                )
                .await
                .map_err(fail)?;
            Ok(Response::Changed(n == 1))
        }
        Request::Delete(name, None) => {
            let n = client
                .execute_typed(DELETE_ROW, &[(&name, Type::TEXT)])
                .await
                .map_err(fail)?;
            Ok(Response::Changed(n == 1))
        }
        Request::Delete(name, Some(expected)) => {
            let n = client
                .execute_typed(
                    DELETE_ROW_AT,
                    &[(&name, Type::TEXT), (&expected, Type::INT8)],
                )
                .await
                .map_err(fail)?;
            Ok(Response::Changed(n == 1))
        }
        Request::Names => names(conn, settings).await.map(Response::Names),
        Request::InitSchema => init_schema(conn, settings).await.map(|()| Response::Done),
    }
}

async fn names(conn: &mut Conn, settings: &Settings) -> Result<Vec<String>, PgError> {
    let rows = conn
        .client
        .query_typed(SELECT_NAMES, &[])
        .await
        .map_err(|e| statement_error(&e, settings))?;
    let mut names = Vec::with_capacity(rows.len());
    for row in rows {
        let name: Option<String> = row.try_get(0).map_err(|e| PgError::BadRow {
            name: "?".to_string(),
            detail: error_chain(&e),
        })?;
        names.push(name.ok_or_else(|| PgError::BadRow {
            name: "?".to_string(),
            detail: "a NULL name".to_string(),
        })?);
    }
    Ok(names)
}

async fn init_schema(conn: &mut Conn, settings: &Settings) -> Result<(), PgError> {
    let fail = |e: tokio_postgres::Error| statement_error(&e, settings);
    let sql = format!("BEGIN; {SCHEMA_LOCK}; {CREATE_TABLE}; COMMIT");
    if let Err(e) = conn.client.batch_execute(&sql).await {
        // The lock serialises this client's peers; a CREATE from elsewhere
        // (psql, an init without the lock) can still win the race, which
        // leaves the table there: not an error.
        let raced = e.code() == Some(&SqlState::DUPLICATE_TABLE)
            || e.code() == Some(&SqlState::UNIQUE_VIOLATION);
        if !raced {
            let _ = conn.client.batch_execute("ROLLBACK").await;
            return Err(fail(e));
        }
        conn.client.batch_execute("ROLLBACK").await.map_err(fail)?;
        conn.client
            .batch_execute(CREATE_TABLE)
            .await
            .map_err(fail)?;
    }
    Ok(())
}

/// Checks and converts one (`version`, `key_generation`, `sealed`) row.
fn decode_row(row: &tokio_postgres::Row, name: &str) -> Result<Row, PgError> {
    let bad = |detail: String| PgError::BadRow {
        name: name.to_string(),
        detail,
    };
    if row.len() != 3 {
        return Err(bad(format!("{} columns instead of 3", row.len())));
    }
    let version: Option<i64> = row.try_get(0).map_err(|e| bad(error_chain(&e)))?;
    let generation: Option<i32> = row.try_get(1).map_err(|e| bad(error_chain(&e)))?;
    let sealed: Option<Vec<u8>> = row.try_get(2).map_err(|e| bad(error_chain(&e)))?;
    let version = version.ok_or_else(|| bad("version is NULL".to_string()))?;
    if version <= 0 {
        return Err(bad(format!("version {version} is not positive")));
    }
    let generation = generation.ok_or_else(|| bad("key_generation is NULL".to_string()))?;
    let generation = u32::try_from(generation)
        .map_err(|_| bad(format!("key_generation {generation} is negative")))?;
    let sealed = sealed.ok_or_else(|| bad("sealed is NULL".to_string()))?;
    Ok(Row {
        version,
        generation,
        sealed,
    })
}

/// The TLS side of the connection: rustls with the ring provider, handed
/// over explicitly, and the verifier `sslmode` asks for.
fn tls_connector(settings: &Settings) -> Result<MakeRustlsConnect, String> {
    // ring, not aws-lc-rs (which needs cmake and nasm to build); rustls
    // deprecates ring's provider only for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match (&settings.sslrootcert, settings.sslmode) {
        (_, SslMode::Disable) | (None, _) => None,
        (Some(path), _) => Some(load_roots(path, settings.trust)?),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let config = match (settings.sslmode, roots) {
        // Never used: tokio-postgres does not start TLS with sslmode=disable.
        (SslMode::Disable, _) => builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        (SslMode::VerifyFull, Some(roots)) => {
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (SslMode::VerifyCa | SslMode::Require, Some(roots)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(WithoutHostName {
                roots: Some(Arc::new(roots)),
                provider,
            }))
            .with_no_client_auth(),
        // libpq's require without a root certificate: encrypted, the
        // server's identity unchecked.
        (SslMode::Require, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(WithoutHostName {
                roots: None,
                provider,
            }))
            .with_no_client_auth(),
        (mode @ (SslMode::VerifyCa | SslMode::VerifyFull), None) => {
            return Err(format!("sslmode={} needs sslrootcert", mode.name()))
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Reads the CA certificates of `sslrootcert`. Whoever can change that file
/// can impersonate the server, so it must not be writable by group or
/// others and must belong to root or the trusted owner.
fn load_roots(path: &Path, trust: FileTrust) -> Result<RootCertStore, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("sslrootcert {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("sslrootcert {shown} is not a regular file"));
    }
    if meta.uid() != 0 && meta.uid() != trust.owner() {
        return Err(format!(
            "sslrootcert {shown} is owned by uid {}, so that user could replace the CA; run: chown root {shown}",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "sslrootcert {shown} is writable by group or others; run: chmod go-w {shown}"
        ));
    }
    if meta.len() > MAX_CA_FILE {
        return Err(format!("sslrootcert {shown} is too large for a CA file"));
    }
    let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {shown}: not PEM certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {shown}: a certificate cannot be used: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {shown} holds no certificate"));
    }
    Ok(roots)
}

/// The verifier of the modes that do not compare the host name:
/// - `verify-ca` (and `require` with a root certificate): the chain must
///   lead to `roots`;
/// - libpq's `require` without a root certificate (`roots` is `None`): any
///   certificate, so the session is encrypted to whoever holds its key.
///
/// The handshake signatures are checked in every mode.
#[derive(Debug)]
struct WithoutHostName {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for WithoutHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(3);

    fn parse(s: &str) -> Result<Settings, PgError> {
        Settings::parse(s, T)
    }

    fn problem(s: &str) -> String {
        match parse(s) {
            Err(PgError::Conninfo { problem, .. }) => problem,
            other => panic!("expected a connection string error, got {other:?}"),
        }
    }

    const TAIL: &str = "user=pam sslrootcert=/etc/ca.pem";

    #[test]
    fn a_plain_string_names_its_server_database_and_user() {
        let s = parse("host=db1 port=5433 dbname=mfa user=pam password=pw sslmode=verify-full sslrootcert=/etc/ca.pem").unwrap();
        assert_eq!(s.describe(), "db1:5433");
        assert_eq!(s.dbname(), Some("mfa"));
        assert_eq!(s.user(), Some("pam"));
        assert_eq!(s.sslmode(), SslMode::VerifyFull);
        assert_eq!(s.timeout(), T);
        assert_eq!(s.base.get_password(), Some(&b"pw"[..]));
        assert_eq!(s.servers[0].addr, None);
    }

    #[test]
    fn quoted_values_keep_spaces_and_escaped_quotes_and_backslashes() {
        let s = parse(r"host = db1 password = 'a b\'c\\d' application_name='x y' user=pam sslrootcert='/etc/my ca.pem'").unwrap();
        assert_eq!(s.base.get_password(), Some(&br"a b'c\d"[..]));
        assert_eq!(s.base.get_application_name(), Some("x y"));
        assert_eq!(s.sslrootcert, Some(PathBuf::from("/etc/my ca.pem")));
    }

    #[test]
    fn an_unquoted_backslash_escapes_the_next_character() {
        let s = parse(r"host=db1 password=a\ b\\ user=pam sslrootcert=/c").unwrap();
        assert_eq!(s.base.get_password(), Some(&br"a b\"[..]));
    }

    #[test]
    fn a_later_key_overrides_an_earlier_one_as_in_libpq() {
        let s = parse(&format!("host=db1 host=db2 {TAIL}")).unwrap();
        assert_eq!(s.describe(), "db2:5432");
    }

    #[test]
    fn several_hosts_share_one_port_or_have_one_each() {
        let s = parse(&format!("host=db1,db2 port=5433 {TAIL}")).unwrap();
        assert_eq!(s.describe(), "db1:5433,db2:5433");
        let s = parse(&format!(
            "host=db1,db2 port=5432,5433 target_session_attrs=read-write {TAIL}"
        ))
        .unwrap();
        assert_eq!(s.describe(), "db1:5432,db2:5433");
        assert_eq!(s.target, TargetSessionAttrs::ReadWrite);
        assert!(problem(&format!("host=db1,db2 port=1,2,3 {TAIL}")).contains("port"));
    }

    #[test]
    fn ip_literals_and_hostaddr_need_no_resolution() {
        let s = parse(&format!("host=127.0.0.1,::1 {TAIL}")).unwrap();
        assert_eq!(s.describe(), "127.0.0.1:5432,[::1]:5432");
        assert_eq!(s.servers[0].addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.servers[1].addr, Some("::1".parse().unwrap()));
        let s = parse(&format!("host=db1 hostaddr=10.0.0.5 {TAIL}")).unwrap();
        assert_eq!(s.servers[0].host, "db1");
        assert_eq!(s.servers[0].addr, Some("10.0.0.5".parse().unwrap()));
        let s = parse(&format!("hostaddr=10.0.0.5 {TAIL}")).unwrap();
        assert_eq!(s.describe(), "10.0.0.5:5432");
        assert!(problem(&format!("host=a,b hostaddr=10.0.0.5 {TAIL}")).contains("hostaddr"));
        assert!(problem(&format!("host=a hostaddr=db1 {TAIL}")).contains("not an IP"));
    }

    #[test]
    fn sslmodes_that_fall_back_to_plain_text_are_refused() {
        for mode in ["prefer", "allow"] {
            let p = problem(&format!("host=db1 sslmode={mode} {TAIL}"));
            assert!(p.contains("verify-full"), "{p}");
        }
        assert!(problem(&format!("host=db1 sslmode=bogus {TAIL}")).contains("sslmode"));
    }

    #[test]
    fn without_sslmode_the_certificate_and_name_are_verified() {
        let s = parse(&format!("host=db1 {TAIL}")).unwrap();
        assert_eq!(s.sslmode(), SslMode::VerifyFull);
        let p = problem("host=db1 user=pam");
        assert!(p.contains("sslrootcert"), "{p}");
        assert!(problem("host=db1 user=pam sslmode=verify-ca").contains("sslrootcert"));
        assert_eq!(
            parse("host=db1 user=pam sslmode=require")
                .unwrap()
                .sslmode(),
            SslMode::Require
        );
        assert_eq!(
            parse("host=db1 user=pam sslmode=disable")
                .unwrap()
                .sslmode(),
            SslMode::Disable
        );
    }

    #[test]
    fn unknown_keys_and_client_certificates_are_refused() {
        let p = problem(&format!("host=db1 password=hunter2 frobnicate=1 {TAIL}"));
        assert!(p.contains("frobnicate"), "{p}");
        assert!(!p.contains("hunter2"), "{p}");
        assert!(problem(&format!("host=db1 sslcert=/c {TAIL}")).contains("sslcert"));
    }

    #[test]
    fn missing_host_or_user_and_uris_and_sockets_are_refused() {
        assert!(problem("user=pam sslrootcert=/c").contains("host"));
        assert!(problem("host=db1 sslrootcert=/c").contains("user"));
        assert!(problem("postgresql://pam@db1/mfa").contains("key=value"));
        assert!(problem(&format!("host=/run/postgresql {TAIL}")).contains("Unix socket"));
        assert!(problem(&format!("host=db1 port=70000 {TAIL}")).contains("port"));
        assert!(problem(&format!("host=db1 port=0 {TAIL}")).contains("port"));
    }

    #[test]
    fn syntax_errors_never_show_the_password() {
        let p = problem(&format!("{TAIL} host=db1 password='hunter2"));
        assert!(p.contains("password") && !p.contains("hunter2"), "{p}");
        let p = problem(&format!("{TAIL} host=db1 hunter2"));
        assert!(p.contains('='), "{p}");
        assert!(problem("=x").contains("no key"));
    }

    #[test]
    fn debug_output_has_no_password() {
        let s = parse(&format!("host=db1 password=hunter2 {TAIL}")).unwrap();
        let c = Client::new(s.clone());
        assert!(!format!("{s:?} {c:?}").contains("hunter2"));
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        let ct = |v: &str| {
            parse(&format!("host=db1 connect_timeout={v} {TAIL}"))
                .unwrap()
                .connect_timeout
        };
        assert_eq!(ct("0"), None);
        assert_eq!(ct("1"), Some(Duration::from_secs(2)));
        assert_eq!(ct("10"), Some(Duration::from_secs(10)));
        assert!(
            problem(&format!("host=db1 connect_timeout=soon {TAIL}")).contains("connect_timeout")
        );
    }

    #[test]
    fn a_client_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Client>();
        shared::<Settings>();
        shared::<PgError>();
    }

    #[test]
    fn an_absurd_connect_timeout_is_no_overflow() {
        let s = parse(&format!(
            "host=127.0.0.1 port=1 connect_timeout=18446744073709551615 sslmode=disable {TAIL}"
        ))
        .unwrap();
        let err = Client::new(s).names().unwrap_err();
        assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
        let s = Settings::parse(
            &format!("host=127.0.0.1 port=1 sslmode=disable {TAIL}"),
            Duration::MAX,
        )
        .unwrap();
        let err = Client::new(s).names().unwrap_err();
        assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
    }

    #[test]
    fn grants_quote_the_role() {
        assert_eq!(
            grants("pam", false),
            "GRANT SELECT, UPDATE ON TABLE pam_mfa_records TO \"pam\";\n"
        );
        assert_eq!(
            grants("a\"b", true),
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE pam_mfa_records TO \"a\"\"b\";\n"
        );
    }

    #[test]
    fn a_client_called_from_async_code_errors_instead_of_panicking() {
        let c = Client::new(parse(&format!("host=127.0.0.1 port=1 {TAIL}")).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt.block_on(async { c.read("x") }).unwrap_err();
        assert!(matches!(err, PgError::Local(_)), "{err:?}");
    }

    #[test]
    fn a_closed_port_is_a_connection_error_and_the_file_error_names_the_file() {
        let c =
            Client::new(parse(&format!("host=127.0.0.1 port=1 sslmode=disable {TAIL}")).unwrap());
        let err = c.names().unwrap_err();
        assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        let err =
            Settings::load(Path::new("/nonexistent/store.conn"), FileTrust::ROOT, T).unwrap_err();
        assert!(err.to_string().contains("/nonexistent"), "{err}");
    }
}

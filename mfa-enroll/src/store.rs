//! The shared PostgreSQL store: `store init` (the table and the GRANTs) and
//! `store migrate` (this host's records into the database). What to copy is
//! decided in `mfa_core::store::migrate`; this module prints it.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use mfa_core::audit::EventKind;
use mfa_core::config::{Config, StoreBackend};
use mfa_core::fsutil::FileTrust;
use mfa_core::store::migrate::{self, Entry, Outcome, Report};
use mfa_core::store::postgres::{self, Client, PgError, Settings, TABLE};
use mfa_core::text::escape;
use serde_json::{json, Value};

use crate::cli::{StoreInitArgs, StoreMigrateArgs};
use crate::context::{
    load_config, load_keys, local_store, log, log_store_error, require_root, store, write_out, Who,
};
use crate::error::{CliError, EXIT_FAILED};
use crate::render::{self, plural, table};

/// Root, and a configuration whose store is PostgreSQL.
fn open_config(command: &'static str, config_path: &Path) -> Result<Config, CliError> {
    require_root(command)?;
    let config = load_config(config_path)?;
    if config.store.backend != StoreBackend::Postgres {
        return Err(CliError::NotPostgres { command });
    }
    Ok(config)
}

// ---------------------------------------------------------------------------
// store init

/// `store init`: creates the table (idempotent) and prints the GRANTs.
pub fn init(
    config_path: &Path,
    args: &StoreInitArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let config = open_config("store init", config_path)?;
    let timeout = Duration::from_millis(u64::from(config.store.timeout_ms));
    let load =
        |path: &Path| Settings::load(path, FileTrust::ROOT, timeout).map_err(CliError::Postgres);
    let configured = &config.store.connection_file;
    let settings = load(args.connection_file.as_deref().unwrap_or(configured))?;
    // The hosts' role: named, or the one the configured connection file
    // logs in as (which must then load, to be read).
    let host_role = if let Some(role) = &args.host_role {
        role.clone()
    } else {
        let hosts = if args.connection_file.is_some() {
            load(configured)?
        } else {
            settings.clone()
        };
        hosts.user().unwrap_or_default().to_owned()
    };
    let admin_role = settings.user().unwrap_or_default().to_owned();
    let client = Client::new(settings);
    client
        .init_schema()
        .map_err(|e| init_failed(e, &admin_role))?;
    let text = init_text(
        client.settings(),
        &host_role,
        args.enroll_role.as_deref(),
        &admin_role,
    );
    drop(client);
    write_out(out, &text)
}

/// A refused CREATE says which connection to use; the row client's own
/// advice (grant access to the table) fits the hosts, not `store init`.
fn init_failed(e: PgError, role: &str) -> CliError {
    match e {
        PgError::Query {
            detail,
            code: Some(code),
        } if code == "42501" => CliError::StoreInitRefused {
            role: role.to_owned(),
            detail,
        },
        other => CliError::Postgres(other),
    }
}

/// What `store init` prints: SQL comments and statements, so that the
/// output can go straight into psql.
fn init_text(
    settings: &Settings,
    host_role: &str,
    enroll_role: Option<&str>,
    admin_role: &str,
) -> String {
    // Names go into comment lines: escaped, so none can end the comment.
    let db = escape(settings.dbname().unwrap_or(admin_role)).into_owned();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "-- The table {TABLE} is ready in database {db} on {}\n\
         -- (created if it was missing; rows already there are untouched).\n\
         -- Run the statements below as the table's owner, for example by piping\n\
         -- this output into psql.",
        escape(&settings.describe())
    );
    let _ = writeln!(
        s,
        "-- The hosts log in as {}: a login reads a user's record and updates it, nothing more.",
        escape(host_role)
    );
    s.push_str(&postgres::grants(host_role, false));
    if host_role == admin_role {
        let _ = writeln!(
            s,
            "-- {} also ran this; a table's owner may do everything. Give the hosts a role\n\
             -- of their own with only the rights above (--host-role NAME).",
            escape(host_role)
        );
    }
    if let Some(role) = enroll_role {
        let _ = writeln!(
            s,
            "-- {} also creates and deletes records: enroll, reset, import, approve, store migrate,\n\
             -- and users who enroll a first device at login.",
            escape(role)
        );
        s.push_str(&postgres::grants(role, true));
    }
    s
}

// ---------------------------------------------------------------------------
// store migrate

/// `store migrate [--apply] [--json]`.
pub fn migrate(
    config_path: &Path,
    args: &StoreMigrateArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let config = open_config("store migrate", config_path)?;
    let keys = load_keys(&config)?;
    let shared = store(&config)?;
    let local = local_store(&config);
    let report = migrate::migrate(&local, &shared, &keys, args.apply)?;
    let from = config.paths.state_dir.display().to_string();
    let to = shared.describe();
    for entry in &report.entries {
        let who = Who::from_owner(&entry.owner);
        match &entry.outcome {
            Outcome::Copied => log(&who
                .event(EventKind::RecordMigrated)
                .reason(format!("copied from {from} into the shared store {to}"))),
            Outcome::Unreadable(e) => log_store_error(&who, e),
            _ => {}
        }
    }
    if args.json {
        write_out(out, &render::json_line(&migrate_json(&report, &from, &to)))?;
    } else {
        write_out(out, &migrate_text(&report, &from, &to))?;
    }
    let unsettled = report.count(|o| !o.is_settled());
    if unsettled > 0 {
        return Err(CliError::Incomplete {
            summary: if report.applied {
                format!(
                    "{} not copied",
                    plural(unsettled, "record was", "records were")
                )
            } else {
                format!(
                    "{} would not be copied",
                    plural(unsettled, "record", "records")
                )
            },
            code: EXIT_FAILED,
        });
    }
    Ok(())
}

/// The short result of one record, for the table.
fn result_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::WouldCopy => "would copy",
        Outcome::Copied => "copied",
        Outcome::AlreadyShared => "already there, left alone",
        Outcome::NoName => "skipped: no login name here",
        Outcome::Unreadable(_) => "local record unreadable",
        Outcome::Failed(_) => "failed",
        Outcome::NotTried => "not tried",
    }
}

fn migrate_text(report: &Report, from: &str, to: &str) -> String {
    let mut s = format!(
        "Local records in {}, for the shared store {}:\n\n",
        escape(from),
        escape(to)
    );
    if report.entries.is_empty() {
        s = format!("No local record in {}; nothing to copy.\n", escape(from));
        return s;
    }
    let rows: Vec<Vec<String>> = report
        .entries
        .iter()
        .map(|e| {
            vec![
                e.uid().to_string(),
                e.owner
                    .name()
                    .map_or_else(|| "-".to_owned(), |n| escape(n).into_owned()),
                result_word(&e.outcome).to_owned(),
            ]
        })
        .collect();
    s.push_str(&table(&["UID", "USER", "RESULT"], &rows));
    let problems: Vec<&Entry> = report
        .entries
        .iter()
        .filter(|e| !e.outcome.is_settled())
        .collect();
    if !problems.is_empty() {
        s.push_str("\nNot copied:\n");
        for e in &problems {
            let _ = writeln!(
                s,
                "  {}: {}",
                Who::from_owner(&e.owner).describe(),
                escape(&e.outcome.to_string())
            );
        }
    }
    let there = report.count(|o| matches!(o, Outcome::AlreadyShared));
    let there = match (there, report.applied) {
        (0, _) => String::new(),
        (n, true) => format!(
            "; {} already in the shared store (left alone, never overwritten)",
            plural(n, "record was", "records were")
        ),
        (n, false) => format!(
            "; {} already in the shared store (would be left alone)",
            plural(n, "record is", "records are")
        ),
    };
    s.push('\n');
    if report.applied {
        let _ = writeln!(
            s,
            "Copied {}{there}.\n\
             The local records are left in place in {}: once `mfa-enroll list` shows the\n\
             users, remove them (this host no longer reads them).",
            plural(
                report.count(|o| matches!(o, Outcome::Copied)),
                "record",
                "records"
            ),
            escape(from)
        );
    } else {
        let _ = writeln!(
            s,
            "Dry run, nothing was written: {} would be copied{there}.\n\
             Run `mfa-enroll store migrate --apply` to copy; the local records stay in place.",
            plural(
                report.count(|o| matches!(o, Outcome::WouldCopy)),
                "record",
                "records"
            ),
        );
    }
    s
}

fn migrate_json(report: &Report, from: &str, to: &str) -> Value {
    let records: Vec<Value> = report
        .entries
        .iter()
        .map(|e| {
            json!({
                "uid": e.uid(),
                "user": e.owner.name(),
                "result": e.outcome.as_str(),
                "error": e.outcome.error().map(ToString::to_string),
            })
        })
        .collect();
    json!({
        "applied": report.applied,
        "from": from,
        "to": to,
        "records": records,
        "copied": report.count(|o| matches!(o, Outcome::Copied)),
        "would_copy": report.count(|o| matches!(o, Outcome::WouldCopy)),
        "already_shared": report.count(|o| matches!(o, Outcome::AlreadyShared)),
        "not_copied": report.count(|o| !o.is_settled()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(user: &str) -> Settings {
        Settings::parse(
            &format!("host=db1.example port=5433 dbname=pam_mfa user={user} sslmode=verify-full sslrootcert=/etc/ssl/db-ca.pem"),
            Duration::from_secs(3),
        )
        .unwrap()
    }

    #[test]
    fn init_prints_sql_that_grants_the_hosts_read_and_update_only() {
        let text = init_text(&settings("admin"), "pam_host", None, "admin");
        let statements: Vec<&str> = text.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(
            statements,
            [format!(
                "GRANT SELECT, UPDATE ON TABLE {TABLE} TO \"pam_host\";"
            )]
        );
        assert!(text.contains("db1.example:5433"), "{text}");
        assert!(text.contains("database pam_mfa"), "{text}");
    }

    #[test]
    fn an_enroll_role_also_gets_insert_and_delete() {
        let text = init_text(&settings("admin"), "pam_host", Some("pam_admin"), "admin");
        let statements: Vec<&str> = text.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(statements.len(), 2, "{text}");
        assert_eq!(
            statements[1],
            format!("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {TABLE} TO \"pam_admin\";")
        );
    }

    #[test]
    fn a_role_name_cannot_break_out_of_a_comment() {
        let text = init_text(&settings("admin"), "evil\nDROP TABLE x;", None, "admin");
        // In comments the newline is shown escaped; in the statement it
        // stays inside the quoted identifier.
        let statements: Vec<&str> = text.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(
            statements,
            [
                format!("GRANT SELECT, UPDATE ON TABLE {TABLE} TO \"evil"),
                "DROP TABLE x;\";".to_owned()
            ],
            "{text}"
        );
    }

    #[test]
    fn the_hosts_role_being_the_owner_is_pointed_out() {
        let text = init_text(&settings("pam_mfa"), "pam_mfa", None, "pam_mfa");
        assert!(text.contains("--host-role NAME"), "{text}");
    }
}

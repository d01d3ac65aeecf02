//! The master key: key init, rotate, list, migrate and retire.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use mfa_core::admin;
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::fsutil::FileTrust;
use mfa_core::text::escape;
use serde_json::json;

use crate::cli::{JsonArg, RetireArgs};
use crate::context::{
    load_config, load_keys, log, log_store_error, require_root, store, write_out, Admin, Who,
};
use crate::error::{CliError, EXIT_FAILED};
use crate::render::{self, plural, table, utc, yes_no};

/// `key init`.
pub fn init(config_path: &Path, out: &mut impl Write) -> Result<(), CliError> {
    require_root("key init")?;
    let config = load_config(config_path)?;
    let init = admin::init_key(&config.paths, FileTrust::ROOT, SystemClock.now())?;
    log(&render::key_created_event(init.generation));
    let mut text = String::new();
    for dir in &init.created_dirs {
        let _ = writeln!(text, "Created directory {}", dir.display());
    }
    let key = config.paths.key_file.display();
    let _ = writeln!(
        text,
        "Created the master key {key} (generation {}) and the enrollment public key {}.\n\
         Back up {key} where only root can read it: without it no enrolled user can log in.",
        init.generation,
        config.paths.enroll_public_key.display()
    );
    write_out(out, &text)
}

/// `key rotate`.
pub fn rotate(config_path: &Path, out: &mut impl Write) -> Result<(), CliError> {
    require_root("key rotate")?;
    let config = load_config(config_path)?;
    let generation = admin::rotate_key(&config.paths, FileTrust::ROOT, SystemClock.now())?;
    log(&render::key_rotated_event(generation));
    write_out(
        out,
        &format!(
            "Added key generation {generation} and made it active; rewrote {}.\n\
             Records sealed under older generations keep working. Re-seal them with\n\
             `mfa-enroll key migrate`, then remove old generations with `mfa-enroll key retire GEN`.\n\
             Back up {} again: the new generation is only in this file.\n",
            config.paths.enroll_public_key.display(),
            config.paths.key_file.display()
        ),
    )
}

/// `key list`.
pub fn list(config_path: &Path, args: &JsonArg, out: &mut impl Write) -> Result<(), CliError> {
    let Admin { keys, store, .. } = Admin::open("key list", config_path)?;
    let usage = admin::key_usage(&store, &keys)?;
    for u in &usage.unreadable {
        log_store_error(&Who::from_owner(&u.owner), &u.error);
    }
    if args.json {
        write_out(
            out,
            &render::json_line(&json!({
                "active": keys.active(),
                "generations": usage.generations.iter().map(|g| json!({
                    "id": g.id,
                    "created": g.created,
                    "active": g.active,
                    "records": g.uids.len(),
                })).collect::<Vec<_>>(),
                "unreadable": usage.unreadable.iter().map(|u| json!({
                    "user": u.owner.name(),
                    "uid": u.owner.uid(),
                    "error": u.error.to_string(),
                })).collect::<Vec<_>>(),
            })),
        )?;
    } else {
        let rows: Vec<Vec<String>> = usage
            .generations
            .iter()
            .map(|g| {
                vec![
                    g.id.to_string(),
                    yes_no(g.active),
                    utc(g.created),
                    g.uids.len().to_string(),
                ]
            })
            .collect();
        let mut text = table(&["GENERATION", "ACTIVE", "CREATED", "RECORDS"], &rows);
        if !usage.unreadable.is_empty() {
            text.push_str("\nRecords that do not open (their generation is unknown):\n");
            for u in &usage.unreadable {
                let _ = writeln!(
                    text,
                    "  {}: {}",
                    Who::from_owner(&u.owner).describe(),
                    escape(&u.error.to_string())
                );
            }
        }
        write_out(out, &text)?;
    }
    if usage.unreadable.is_empty() {
        Ok(())
    } else {
        Err(CliError::Incomplete {
            summary: format!(
                "{} could not be opened",
                plural(usage.unreadable.len(), "record", "records")
            ),
            code: EXIT_FAILED,
        })
    }
}

/// `key migrate`.
pub fn migrate(config_path: &Path, out: &mut impl Write) -> Result<(), CliError> {
    let Admin { keys, store, .. } = Admin::open("key migrate", config_path)?;
    let report = admin::migrate(&store, &keys)?;
    let active = keys.active();
    for (uid, from) in &report.resealed {
        log(&render::migrated_event(&Who::by_uid(*uid), from, active));
    }
    for f in &report.failed {
        log_store_error(&Who::from_owner(&f.owner), &f.error);
    }
    let mut text = format!(
        "Re-sealed {} under key generation {active}; {} already used only it.\n",
        plural(report.resealed.len(), "record", "records"),
        plural(report.current.len(), "record", "records"),
    );
    if report.failed.is_empty() {
        text.push_str(
            "Once `mfa-enroll key list` shows no record on an old generation, \
             `mfa-enroll key retire GEN` removes it.\n",
        );
    } else {
        let _ = writeln!(
            text,
            "{} could not be migrated and keep the generation they had:",
            plural(report.failed.len(), "record", "records")
        );
        for f in &report.failed {
            let _ = writeln!(
                text,
                "  {}: {}",
                Who::from_owner(&f.owner).describe(),
                escape(&f.error.to_string())
            );
        }
    }
    write_out(out, &text)?;
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Incomplete {
            summary: format!(
                "{} could not be migrated (the others were)",
                plural(report.failed.len(), "record", "records")
            ),
            code: EXIT_FAILED,
        })
    }
}

/// `key retire GEN`.
pub fn retire(config_path: &Path, args: &RetireArgs, out: &mut impl Write) -> Result<(), CliError> {
    require_root("key retire")?;
    let config = load_config(config_path)?;
    let store = store(&config)?;
    admin::retire_key(&config.paths, FileTrust::ROOT, &store, args.generation)?;
    log(&render::key_retired_event(args.generation));
    let keys = load_keys(&config)?;
    let left: Vec<String> = keys.list().iter().map(|g| g.id.to_string()).collect();
    write_out(
        out,
        &format!(
            "Retired key generation {}; {} now holds generation {}.\n",
            args.generation,
            config.paths.key_file.display(),
            left.join(", ")
        ),
    )
}

//! The commands over many records and over the key: list, devices,
//! remove-device, recovery-codes, key rotate/list/migrate/retire.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use mfa_core::admin::{self, DeviceRemoval, ListedUser, UserStatus};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::fsutil::FileTrust;
use mfa_core::recovery::RecoveryCode;
use mfa_core::text::escape;
use nix::unistd::{Uid, User};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::commands::{
    load_config, load_keys, log, log_store_error, open_user, require_root, resolve, store,
    write_out, Admin, Who,
};
use crate::error::{CliError, EXIT_FAILED};
use crate::render::{self, utc};
use crate::{JsonArg, RecoveryCodesArgs, RemoveDeviceArgs, RetireArgs, StatusArgs, Target};

/// The account name of `uid`, if the name service knows it. Only for
/// display: a failing lookup never keeps a record from being shown.
fn who_by_uid(uid: u32) -> Who {
    let name = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    Who { uid, name }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn json_line(out: &mut impl Write, value: &Value) -> Result<(), CliError> {
    write_out(out, &render::json_line(value))
}

// ---------------------------------------------------------------------------
// list

/// `list`: every record, including the ones that do not open.
pub fn list(config_path: &Path, args: &JsonArg, out: &mut impl Write) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("list", config_path)?;
    let users = admin::list(&store, &keys, &config, SystemClock.now())?;
    let mut unreadable = 0;
    let rows: Vec<(Who, &ListedUser)> = users.iter().map(|u| (who_by_uid(u.uid), u)).collect();
    for (who, user) in &rows {
        match &user.status {
            Err(e) => {
                unreadable += 1;
                log_store_error(who, e);
            }
            Ok(status) => {
                if let Some(fault) = &status.slot_discarded {
                    log(&render::slot_discarded_event(who, &fault.to_string()));
                }
            }
        }
    }
    if args.json {
        json_line(out, &list_json(&rows))?;
    } else {
        write_out(out, &list_text(&rows))?;
    }
    if unreadable > 0 {
        return Err(CliError::Incomplete {
            summary: format!(
                "{} could not be opened",
                plural(unreadable, "record", "records")
            ),
            code: EXIT_FAILED,
        });
    }
    Ok(())
}

fn list_json(rows: &[(Who, &ListedUser)]) -> Value {
    let users: Vec<Value> = rows
        .iter()
        .map(|(who, user)| {
            let s = user.status.as_ref().ok();
            json!({
                "user": who.name,
                "uid": user.uid,
                "enrolled_as": s.and_then(|s| s.enrolled_as.clone()),
                "devices": s.map(|s| s.devices.iter().map(|d| d.name.clone()).collect::<Vec<_>>()),
                "recovery_codes_left": s.map(|s| s.recovery_codes_left),
                "last_success": s.and_then(|s| s.last_success.as_ref()).map(|l| json!({
                    "time": l.time,
                    "service": l.service,
                    "rhost": l.rhost,
                })),
                "failures": s.map(|s| s.failures),
                "locked": s.map(|s| s.locked),
                "key_generations": s.map(|s| s.key_generations.clone()),
                "pending": user.pending,
                "error": user.status.as_ref().err().map(ToString::to_string),
            })
        })
        .collect();
    json!({ "users": users })
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn yes_no(b: bool) -> String {
    (if b { "yes" } else { "no" }).to_owned()
}

fn generations_text(g: &[u32]) -> String {
    g.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn list_text(rows: &[(Who, &ListedUser)]) -> String {
    if rows.is_empty() {
        return "No user is enrolled.\n".to_owned();
    }
    let mut cells = Vec::new();
    let mut errors = String::new();
    for (who, user) in rows {
        let name = who
            .name
            .as_deref()
            .map_or_else(|| "-".to_owned(), |n| escape(n).into_owned());
        let row = match &user.status {
            Ok(s) => vec![
                name,
                user.uid.to_string(),
                s.devices
                    .iter()
                    .map(|d| escape(&d.name))
                    .collect::<Vec<_>>()
                    .join(","),
                s.recovery_codes_left.to_string(),
                s.failures.to_string(),
                yes_no(s.locked),
                generations_text(&s.key_generations),
                yes_no(user.pending),
                s.last_success.as_ref().map_or_else(
                    || "never".to_owned(),
                    |l| format!("{} via {}", utc(l.time), escape(&l.service)),
                ),
            ],
            Err(e) => {
                let _ = writeln!(errors, "  {}: {}", who.describe(), escape(&e.to_string()));
                let mut row = vec![name, user.uid.to_string(), "UNREADABLE".to_owned()];
                row.extend(["-", "-", "-", "-"].map(str::to_owned));
                row.push(yes_no(user.pending));
                row.push("-".to_owned());
                row
            }
        };
        cells.push(row);
    }
    let mut out = table(
        &[
            "USER",
            "UID",
            "DEVICES",
            "CODES",
            "FAILURES",
            "LOCKED",
            "KEY",
            "PENDING",
            "LAST SUCCESS",
        ],
        &cells,
    );
    if !errors.is_empty() {
        out.push_str("\nRecords that do not open:\n");
        out.push_str(&errors);
    }
    out
}

// ---------------------------------------------------------------------------
// devices

/// `devices`: one user's devices.
pub fn devices(
    config_path: &Path,
    args: &StatusArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("devices", config_path)?;
    let who = resolve(&args.target)?;
    let state = open_user(&store, &who, &keys)?;
    let status = admin::status(&state, &config, SystemClock.now());
    drop(state);
    if args.json {
        let full = render::status_json(&who, &status);
        json_line(
            out,
            &json!({
                "user": who.name,
                "uid": who.uid,
                "enrolled": status.enrolled,
                "devices": full["devices"],
            }),
        )
    } else {
        write_out(out, &devices_text(&who, &status))
    }
}

fn devices_text(who: &Who, s: &UserStatus) -> String {
    if !s.enrolled {
        return format!("{} is not enrolled: no devices.\n", who.describe());
    }
    let rows: Vec<Vec<String>> = s
        .devices
        .iter()
        .map(|d| {
            vec![
                escape(&d.name).into_owned(),
                d.params.algorithm.as_str().to_owned(),
                d.params.digits.to_string(),
                format!("{} s", d.params.period),
                utc(d.created),
                d.last_used_step.map_or_else(
                    || "never".to_owned(),
                    |step| utc(step.saturating_mul(u64::from(d.params.period))),
                ),
            ]
        })
        .collect();
    format!(
        "Devices of {}:\n\n{}",
        who.describe(),
        table(
            &[
                "NAME",
                "ALGORITHM",
                "DIGITS",
                "PERIOD",
                "ADDED",
                "LAST USED"
            ],
            &rows
        )
    )
}

// ---------------------------------------------------------------------------
// remove-device

/// `remove-device`.
pub fn remove_device(
    config_path: &Path,
    args: &RemoveDeviceArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let Admin { keys, store, .. } = Admin::open("remove-device", config_path)?;
    let who = resolve(&args.target)?;
    let removal = {
        let mut state = open_user(&store, &who, &keys)?;
        admin::remove_device(&mut state, &keys, &args.device, args.force)?
    };
    let text = match removal {
        DeviceRemoval::Removed { remaining } => {
            log(&render::device_removed_event(&who, &args.device, false));
            format!(
                "Removed device \"{}\" of {}; {} left.\n",
                escape(&args.device),
                who.describe(),
                plural(remaining, "device", "devices")
            )
        }
        DeviceRemoval::RecordRemoved => {
            log(&render::device_removed_event(&who, &args.device, true));
            format!(
                "Removed device \"{}\", the only device of {}, and with it the whole MFA record \
                 (as `reset` does): the user is no longer enrolled.\n",
                escape(&args.device),
                who.describe()
            )
        }
    };
    write_out(out, &text)
}

// ---------------------------------------------------------------------------
// recovery-codes

/// `recovery-codes [--regenerate]`.
pub fn recovery_codes(
    config_path: &Path,
    args: &RecoveryCodesArgs,
    target: &Target,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("recovery-codes", config_path)?;
    let who = resolve(target)?;
    if !args.regenerate {
        let state = open_user(&store, &who, &keys)?;
        let left = state
            .require_record()
            .map(mfa_core::record::Record::recovery_codes_left)
            .map_err(|_| admin::AdminError::NotEnrolled { uid: who.uid })?;
        drop(state);
        return if args.json {
            json_line(
                out,
                &json!({"user": who.name, "uid": who.uid, "recovery_codes_left": left}),
            )
        } else {
            write_out(
                out,
                &format!(
                    "{} has {} left. `mfa-enroll recovery-codes --regenerate` replaces them.\n",
                    who.describe(),
                    plural(left, "unused recovery code", "unused recovery codes")
                ),
            )
        };
    }
    let codes = {
        let mut state = open_user(&store, &who, &keys)?;
        admin::regenerate_recovery_codes(&mut state, &config, &keys)?
    };
    log(&render::recovery_regenerated_event(&who, codes.len()));
    let shown = if args.json {
        recovery_json(&who, &codes)
    } else {
        recovery_text(&who, &codes)
    };
    out.write_all(&shown)
        .and_then(|()| out.flush())
        .map_err(|err| CliError::OutputAfterEnroll { uid: who.uid, err })
}

fn recovery_json(who: &Who, codes: &[RecoveryCode]) -> Zeroizing<Vec<u8>> {
    // Borrowed, not copied into json! values: the codes live only in
    // `codes` and in `buf`, both wiped.
    #[derive(serde::Serialize)]
    struct Output<'a> {
        user: Option<&'a str>,
        uid: u32,
        recovery_codes: Vec<&'a str>,
    }
    let value = Output {
        user: who.name.as_deref(),
        uid: who.uid,
        recovery_codes: codes.iter().map(RecoveryCode::display).collect(),
    };
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    render::write_json(&mut buf, &value);
    buf.push(b'\n');
    buf
}

fn recovery_text(who: &Who, codes: &[RecoveryCode]) -> Zeroizing<Vec<u8>> {
    let mut s = Zeroizing::new(String::with_capacity(4096));
    let _ = writeln!(
        s,
        "New recovery codes for {}; the previous ones no longer work.\n\
         Each works once, in place of a code from the app. They are shown only now;\n\
         hand them to the user to keep somewhere safe, away from the phone.\n",
        who.describe()
    );
    for code in codes {
        let _ = writeln!(s, "    {}", code.display());
    }
    Zeroizing::new(s.as_bytes().to_vec())
}

// ---------------------------------------------------------------------------
// key rotate, list, migrate, retire

/// `key rotate`.
pub fn key_rotate(config_path: &Path, out: &mut impl Write) -> Result<(), CliError> {
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
pub fn key_list(config_path: &Path, args: &JsonArg, out: &mut impl Write) -> Result<(), CliError> {
    let Admin { keys, store, .. } = Admin::open("key list", config_path)?;
    let usage = admin::key_usage(&store, &keys)?;
    for u in &usage.unreadable {
        log_store_error(&who_by_uid(u.uid), &u.error);
    }
    if args.json {
        json_line(
            out,
            &json!({
                "active": keys.active(),
                "generations": usage.generations.iter().map(|g| json!({
                    "id": g.id,
                    "created": g.created,
                    "active": g.active,
                    "records": g.uids.len(),
                })).collect::<Vec<_>>(),
                "unreadable": usage.unreadable.iter().map(|u| json!({
                    "uid": u.uid,
                    "error": u.error.to_string(),
                })).collect::<Vec<_>>(),
            }),
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
                    who_by_uid(u.uid).describe(),
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
pub fn key_migrate(config_path: &Path, out: &mut impl Write) -> Result<(), CliError> {
    let Admin { keys, store, .. } = Admin::open("key migrate", config_path)?;
    let report = admin::migrate(&store, &keys)?;
    let active = keys.active();
    for (uid, from) in &report.resealed {
        log(&render::migrated_event(&who_by_uid(*uid), from, active));
    }
    for f in &report.failed {
        log_store_error(&who_by_uid(f.uid), &f.error);
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
                who_by_uid(f.uid).describe(),
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
pub fn key_retire(
    config_path: &Path,
    args: &RetireArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    require_root("key retire")?;
    let config = load_config(config_path)?;
    let store = store(&config);
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

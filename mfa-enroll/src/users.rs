//! The commands about users' records: status, reset, unlock, list,
//! devices, remove-device, recovery-codes.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use mfa_core::admin::{self, DeviceRemoval, ListedUser, Reset, UserStatus};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::recovery::RecoveryCode;
use mfa_core::text::escape;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::cli::{JsonArg, RecoveryCodesArgs, RemoveDeviceArgs, StatusArgs, Target};
use crate::context::{log, log_store_error, open_user, resolve_in, write_out, Admin, Who};
use crate::error::{CliError, EXIT_FAILED};
use crate::render::{self, plural, table, utc, yes_no};

fn json_line(out: &mut impl Write, value: &Value) -> Result<(), CliError> {
    write_out(out, &render::json_line(value))
}

// ---------------------------------------------------------------------------
// status, reset, unlock

/// What `status` and `devices` show: the user's state, read under their
/// lock; a half of the record found unusable on the way is logged.
fn read_status(
    command: &'static str,
    config_path: &Path,
    target: &Target,
) -> Result<(Who, UserStatus), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open(command, config_path)?;
    let who = resolve_in(&store, &keys, target)?;
    let state = open_user(&store, &who, &keys)?;
    let status = admin::status(&state, &config, SystemClock.now());
    drop(state);
    if let Some(fault) = &status.slot_discarded {
        log(&render::slot_discarded_event(&who, &fault.to_string()));
    }
    Ok((who, status))
}

/// `status`: one user's state.
pub fn status(config_path: &Path, args: &StatusArgs, out: &mut impl Write) -> Result<(), CliError> {
    let (who, status) = read_status("status", config_path, &args.target)?;
    if args.json {
        write_out(out, &render::json_line(&render::status_json(&who, &status)))
    } else {
        write_out(out, &render::status_text(&who, &status))
    }
}

/// `reset`: deletes a user's record, readable or not.
pub fn reset(config_path: &Path, target: &Target, out: &mut impl Write) -> Result<(), CliError> {
    let Admin { keys, store, .. } = Admin::open("reset", config_path)?;
    let who = resolve_in(&store, &keys, target)?;
    let text = match admin::reset(&store, who.owner(), &keys)? {
        Reset::Removed => {
            log(&render::reset_event(&who, None));
            format!("Removed the MFA record of {}.\n", who.describe())
        }
        Reset::RemovedUnreadable(why) => {
            let why = why.to_string();
            log(&render::reset_event(&who, Some(&why)));
            format!(
                "Removed the unreadable MFA record of {}.\n  It could not be opened: {why}\n",
                who.describe()
            )
        }
        Reset::NotEnrolled => format!("{} has no MFA record; nothing removed.\n", who.describe()),
    };
    write_out(out, &text)
}

/// `unlock`: clears a user's failures and lockout.
pub fn unlock(config_path: &Path, target: &Target, out: &mut impl Write) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("unlock", config_path)?;
    let who = resolve_in(&store, &keys, target)?;
    let unlocked = {
        let mut state = open_user(&store, &who, &keys)?;
        admin::unlock(&mut state, &config, &keys)?
    };
    let text = if unlocked.cleared == 0 {
        format!(
            "{} has no failed attempts; nothing to clear.\n",
            who.describe()
        )
    } else {
        log(&render::unlocked_event(&who, unlocked.cleared));
        let was = if unlocked.was_locked {
            "was locked out"
        } else {
            "was not locked out"
        };
        format!(
            "Cleared {} failed attempts of {} ({was}); the next correct code is accepted.\n",
            unlocked.cleared,
            who.describe()
        )
    };
    write_out(out, &text)
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
    let rows: Vec<(Who, &ListedUser)> = users
        .iter()
        .map(|u| (Who::from_owner(&u.owner), u))
        .collect();
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
                "uid": who.local_uid(),
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
        let uid = who
            .local_uid()
            .map_or_else(|| "-".to_owned(), |uid| uid.to_string());
        let row = match &user.status {
            Ok(s) => vec![
                name,
                uid,
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
                let mut row = vec![name, uid, "UNREADABLE".to_owned()];
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
    let (who, status) = read_status("devices", config_path, &args.target)?;
    if args.json {
        let full = render::status_json(&who, &status);
        json_line(
            out,
            &json!({
                "user": who.name,
                "uid": who.local_uid(),
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
    let who = resolve_in(&store, &keys, &args.target)?;
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
    let who = resolve_in(&store, &keys, target)?;
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
                &json!({"user": who.name, "uid": who.local_uid(), "recovery_codes_left": left}),
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
        uid: Option<u32>,
        recovery_codes: Vec<&'a str>,
    }
    let value = Output {
        user: who.name.as_deref(),
        uid: who.local_uid(),
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

//! `approve`: apply a user's pending self-service enrollment.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use mfa_core::admin::AdminError;
use mfa_core::audit::{Event, EventKind};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::fsutil::FileTrust;
use mfa_core::pending::{self, ApproveError};
use mfa_core::record::FactorChange;
use mfa_core::spool::{self, Found};
use mfa_core::store::StoreError;
use mfa_core::text::escape;

use crate::cli::ApproveArgs;
use crate::context::{log, read_response, resolve, write_out, Admin};
use crate::error::CliError;
use crate::render;

/// `mfa-enroll approve --user NAME [--request ID] [--yes]`: shows what the
/// request would apply and asks before applying it.
pub fn approve(
    config_path: &Path,
    args: &ApproveArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("approve", config_path)?;
    let who = resolve(&args.target)?;
    let username = match &who.name {
        Some(name) => name.clone(),
        // The shared store keys the record by this name: a made-up one
        // would enroll a row nobody logs in as.
        None if store.is_shared() => {
            return Err(CliError::Store(StoreError::NameRequired { uid: who.uid }))
        }
        None => format!("uid{}", who.uid),
    };
    let now = SystemClock.now();
    let (mut requests, ignored) = spool::requests_of(
        &config.paths.spool_dir,
        who.uid,
        &keys,
        FileTrust::ROOT,
        u64::from(config.enrollment.pending_max_age),
        now,
    )
    .map_err(|e| CliError::Spool(e.to_string()))?;
    for i in &ignored {
        write_out(
            out,
            &format!(
                "Ignored {}: {}\n",
                escape(&i.path.display().to_string()),
                escape(&i.reason)
            ),
        )?;
    }
    let found = match (&args.request, requests.len()) {
        (_, 0) => return Err(CliError::NothingPending { uid: who.uid }),
        (None, 1) => requests.remove(0),
        (None, _) => {
            for f in &requests {
                write_out(out, &describe(f))?;
            }
            return Err(CliError::WhichRequest {
                uid: who.uid,
                named: None,
            });
        }
        (Some(id), _) => {
            let Some(i) = requests.iter().position(|f| request_id(f) == id.as_str()) else {
                return Err(CliError::WhichRequest {
                    uid: who.uid,
                    named: Some(id.clone()),
                });
            };
            requests.remove(i)
        }
    };
    write_out(out, &describe(&found))?;
    if !args.yes && !confirm(out, &format!("Apply it to {}? [y/N] ", who.describe()))? {
        return Err(CliError::NotApproved);
    }
    let change = pending::approve(&store, &keys, &config, who.uid, &username, &found, now)
        .map_err(|e| match e {
            ApproveError::Refused(r) => {
                log(&Event::new(EventKind::PendingIgnored)
                    .uid(who.uid)
                    .reason(format!(
                        "{} refused and removed at approval: {r}",
                        found.path.display()
                    )));
                CliError::RequestRefused(r)
            }
            ApproveError::Store(StoreError::NotEnrolled { uid }) => {
                CliError::Admin(AdminError::NotEnrolled { uid })
            }
            ApproveError::Store(e) => CliError::Store(e),
        })?;
    let mut event = Event::new(match change {
        FactorChange::DeviceAdded(_) => EventKind::DeviceEnrolled,
        FactorChange::RecoveryCodesReplaced => EventKind::RecoveryCodesRegenerated,
    })
    .uid(who.uid)
    .reason("self-service enrollment approved");
    if let Some(name) = &who.name {
        event = event.user(name);
    }
    if let FactorChange::DeviceAdded(device) = &change {
        event = event.device(device);
    }
    log(&event);
    let text = match change {
        FactorChange::DeviceAdded(device) => format!(
            "Approved: device \"{}\" of {} is active; the recovery codes the user was shown with it replace any old ones.\n",
            escape(&device),
            who.describe()
        ),
        FactorChange::RecoveryCodesReplaced => format!(
            "Approved: the new recovery codes of {} are active.\n",
            who.describe()
        ),
    };
    write_out(out, &text)
}

/// The name `--request` takes: the spool file's name after `<uid>.`.
fn request_id(found: &Found) -> &str {
    found
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once('.'))
        .map_or("", |(_, id)| id)
}

/// What approving `found` would apply, for the administrator to check.
fn describe(found: &Found) -> String {
    let p = &found.pending;
    let mut text = format!(
        "Request {} (made {}):\n",
        escape(request_id(found)),
        render::utc(p.created)
    );
    match p.device() {
        Some(d) => {
            let _ = writeln!(
                text,
                "  new device \"{}\": {}, {} digits, {} s period, secret fingerprint {}",
                escape(&d.name),
                d.params.algorithm.as_str(),
                d.params.digits,
                d.params.period,
                pending::fingerprint(&d.secret)
            );
            let _ = writeln!(
                text,
                "  with {} new recovery codes, which replace the current ones",
                p.recovery().remaining()
            );
        }
        None => {
            let _ = writeln!(
                text,
                "  {} new recovery codes, which replace the current ones",
                p.recovery().remaining()
            );
        }
    }
    let proof = if p.proof.is_some() {
        "carries a code of an existing factor (not needed for approval)"
    } else {
        "carries no code of an existing factor"
    };
    let _ = writeln!(text, "  {proof}");
    text
}

/// Asks a yes/no question on standard input; anything but y or yes is no.
fn confirm(out: &mut impl Write, question: &str) -> Result<bool, CliError> {
    write_out(out, question)?;
    out.flush().map_err(CliError::Output)?;
    let line = read_response(&mut io::stdin().lock()).map_err(CliError::Input)?;
    let answer = String::from_utf8_lossy(&line).trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

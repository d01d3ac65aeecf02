//! `approve` (apply a user's pending self-service enrollment) and `doctor`
//! (check the host's setup).

use std::io::Write;
use std::path::Path;

use mfa_core::admin::AdminError;
use mfa_core::audit::{Event, EventKind};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::doctor::{self, Level, SystemPaths};
use mfa_core::fsutil::FileTrust;
use mfa_core::pending::{self, Approved};
use mfa_core::spool;
use mfa_core::store::StoreError;
use serde_json::json;

use crate::commands::{log, require_root, resolve, write_out, Admin};
use crate::error::CliError;
use crate::{JsonArg, Target};

/// `mfa-enroll approve --user NAME`.
pub fn approve(config_path: &Path, target: &Target, out: &mut impl Write) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("approve", config_path)?;
    let who = resolve(target)?;
    let now = SystemClock.now();
    let search = spool::find(
        &config.paths.spool_dir,
        who.uid,
        &keys,
        FileTrust::ROOT,
        u64::from(config.enrollment.pending_max_age),
        now,
    )
    .map_err(|e| CliError::Spool(e.to_string()))?;
    for ignored in &search.ignored {
        log(&Event::new(EventKind::PendingIgnored)
            .uid(who.uid)
            .reason(format!("{}: {}", ignored.path.display(), ignored.reason)));
        write_out(
            out,
            &format!("Ignored {}: {}\n", ignored.path.display(), ignored.reason),
        )?;
    }
    if let Some(summary) = search.expired.summary() {
        log(&Event::new(EventKind::PendingExpired).reason(&summary));
    }
    let Some(found) = search.found else {
        return Err(CliError::NothingPending { uid: who.uid });
    };
    let username = who
        .name
        .clone()
        .unwrap_or_else(|| format!("uid{}", who.uid));
    let approved =
        pending::approve(&store, &keys, who.uid, &username, &found, now).map_err(|e| match e {
            StoreError::NotEnrolled { uid } => CliError::Admin(AdminError::NotEnrolled { uid }),
            e => CliError::Store(e),
        })?;
    let mut event = Event::new(match approved {
        Approved::Device(_) => EventKind::DeviceEnrolled,
        Approved::RecoveryCodes => EventKind::RecoveryCodesRegenerated,
    })
    .uid(who.uid)
    .reason("self-service enrollment approved");
    if let Some(name) = &who.name {
        event = event.user(name);
    }
    if let Approved::Device(device) = &approved {
        event = event.device(device);
    }
    log(&event);
    let text = match approved {
        Approved::Device(device) => format!(
            "Approved: device \"{device}\" of {} is active; the recovery codes the user was shown with it replace any old ones.\n",
            who.describe()
        ),
        Approved::RecoveryCodes => format!(
            "Approved: the new recovery codes of {} are active.\n",
            who.describe()
        ),
    };
    write_out(out, &text)
}

/// `mfa-enroll doctor [--json]`.
pub fn doctor(config_path: &Path, args: &JsonArg, out: &mut impl Write) -> Result<(), CliError> {
    require_root("doctor")?;
    let findings = doctor::run(config_path, FileTrust::ROOT, &SystemPaths::default());
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    if args.json {
        let list: Vec<_> = findings
            .iter()
            .map(|f| json!({"level": f.level.as_str(), "area": f.area, "message": f.message, "fix": f.fix}))
            .collect();
        write_out(
            out,
            &format!("{}\n", json!({ "findings": list, "errors": errors })),
        )?;
    } else {
        for f in &findings {
            write_out(out, &format!("{f}\n"))?;
        }
    }
    if errors > 0 {
        return Err(CliError::DoctorFound(errors));
    }
    Ok(())
}

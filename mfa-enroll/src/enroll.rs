//! `enroll --user NAME`: an administrator gives a user a device and
//! recovery codes.

use std::io::{self, IsTerminal as _, Write};
use std::path::Path;

use mfa_core::admin::{self, EnrollRequest};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::enrollment;
use mfa_core::qr;
use zeroize::Zeroizing;

use crate::cli::{EnrollArgs, Target};
use crate::context::{
    hostname, log, open_user, qr_style, read_response, resolve, write_out, Admin,
};
use crate::error::CliError;
use crate::render;

/// `enroll --user NAME [--json] [--force]`.
pub fn enroll(
    config_path: &Path,
    args: &EnrollArgs,
    target: &Target,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("enroll", config_path)?;
    let who = resolve(target)?;
    let Some(name) = who.name.clone() else {
        return Err(CliError::UnknownUid(who.uid));
    };
    // Refuse early, before anything is generated or shown; the lock is not
    // held while the user reaches for the phone, and `store` checks again.
    admin::check_enrollable(&open_user(&store, &who, &keys)?, args.force)?;

    let host = hostname()?;
    let issuer = enrollment::issuer(&config, &host);
    let account = format!("{name}@{host}");
    let request = EnrollRequest {
        username: &name,
        device: args.device_or_default(),
        issuer: &issuer,
        account: &account,
        replace: args.force,
    };
    let mut provision = admin::provision(&config, &request, SystemClock.now())?;

    if !args.json {
        // The drawing encodes the secret: wiped when dropped.
        let qr_lines = Zeroizing::new(
            match qr::render(
                provision.uri(),
                qr_style(args.qr.map(Into::into), config.enrollment.qr),
            ) {
                Ok(lines) => lines,
                Err(e) => vec![e.to_string()],
            },
        );
        write_out(
            out,
            &render::enroll_instructions(&who, &provision, &qr_lines),
        )?;
        write_out(out, render::CODE_PROMPT)?;
        let stdin = io::stdin();
        let response = read_response(&mut stdin.lock()).map_err(CliError::Input)?;
        if !stdin.is_terminal() {
            // A terminal echoes the Enter key; piped input leaves the
            // prompt line open.
            write_out(out, "\n")?;
        }
        provision.confirm(&response, &config, SystemClock.now())?;
    }

    let replaced = {
        let mut state = open_user(&store, &who, &keys)?;
        provision.store(&mut state, &keys)?
    };
    log(&render::enrolled_event(
        &who,
        provision.device_name(),
        replaced,
    ));

    let written = if args.json {
        out.write_all(&render::enroll_json(&who, &provision, keys.active()))
    } else {
        out.write_all(render::enroll_done(&who, &provision, replaced).as_bytes())
    };
    written
        .and_then(|()| out.flush())
        .map_err(|err| CliError::OutputAfterEnroll { uid: who.uid, err })
}

//! What a user without privileges can do: enroll a device, or ask for new
//! recovery codes. No setuid bit: the result is sealed to the host's
//! enrollment public key and left in the spool, and pam_mfa applies it at
//! the user's next login (DESIGN.md, "Self-service enrollment").
//!
//! Identity comes from `getuid()` alone; nothing is looked up in the name
//! service, so this works when LDAP is down. `$USER` is used only for the
//! label the authenticator app shows, never to decide anything.

use std::fmt::Write as _;
use std::io::{self, IsTerminal as _, Write};
use std::path::Path;

use mfa_core::admin::{self, EnrollRequest};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::config::{Config, QrStyle};
use mfa_core::enrollment;
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::EnrollmentPublicKey;
use mfa_core::pending::{self, Pending, Proof, Request, Secret};
use mfa_core::qr;
use mfa_core::spool;
use mfa_core::totp::TotpParams;
use zeroize::Zeroizing;

use crate::context::{self, hostname, load_config, read_response, write_out, Who};
use crate::error::CliError;
use crate::render;

/// The device name offered when the user just presses Enter.
const DEFAULT_DEVICE: &str = "phone";

fn label(uid: u32) -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty() && u.len() <= 64 && u.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| format!("uid{uid}"))
}

fn public_key(config: &Config) -> Result<EnrollmentPublicKey, CliError> {
    // The fix is root's (key init or rotate); the user can only ask for it.
    EnrollmentPublicKey::load(&config.paths.enroll_public_key, FileTrust::ROOT).map_err(|e| {
        // Only the finding: the key-file advice in KeyError is for root.
        let why = match e {
            mfa_core::keys::KeyError::File(f) => f.to_string(),
            other => other.to_string(),
        };
        CliError::Spool(format!("the host's enrollment key cannot be used ({why})"))
    })
}

fn check_spool(config: &Config) -> Result<(), CliError> {
    spool::check_spool(&config.paths.spool_dir, FileTrust::ROOT)
        .map_err(|e| CliError::Spool(e.to_string()))
}

fn seal_and_spool(
    config: &Config,
    public: &EnrollmentPublicKey,
    uid: u32,
    request: &Pending,
) -> Result<(), CliError> {
    let sealed = request
        .seal(public, uid)
        .map_err(|e| CliError::Spool(e.to_string()))?;
    spool::write_to_spool(&config.paths.spool_dir, uid, &sealed).map_err(|e| {
        CliError::Spool(format!(
            "cannot write into {}: {e}",
            config.paths.spool_dir.display()
        ))
    })?;
    Ok(())
}

fn ask_line(out: &mut impl Write, prompt: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    write_out(out, prompt)?;
    out.flush().map_err(CliError::Output)?;
    let stdin = io::stdin();
    let line = read_response(&mut stdin.lock()).map_err(CliError::Input)?;
    if !stdin.is_terminal() {
        write_out(out, "\n")?;
    }
    Ok(line)
}

/// Asks for a factor the user already has: a code from one of their
/// devices or one of their recovery codes. A change to an enrolled user's
/// factors must carry one (the module checks it at the next login), so that
/// someone with only the user's shell cannot change them. With
/// `first_allowed`, an empty answer means "this is my first device".
fn ask_proof(out: &mut impl Write, first_allowed: bool) -> Result<Option<Proof>, CliError> {
    let prompt = if first_allowed {
        "If you already have a device for this account, enter a code from it (or one of\n\
         your recovery codes) to show this change is yours; if this is your first\n\
         device, just press Enter: "
    } else {
        "Enter a code from your device (or one of your recovery codes) to show this\n\
         change is yours: "
    };
    let answer = ask_line(out, prompt)?;
    let answer = typed_code(&answer);
    if answer.is_empty() {
        return Ok(None);
    }
    let digits = answer.bytes().all(|b| b.is_ascii_digit());
    Ok(Some(
        if digits
            && (usize::from(TotpParams::MIN_DIGITS)..=usize::from(TotpParams::MAX_DIGITS))
                .contains(&answer.len())
        {
            Proof::Totp(answer)
        } else {
            Proof::Recovery(answer)
        },
    ))
}

/// A typed answer as text, trimmed, in a buffer wiped when dropped.
fn typed_code(raw: &[u8]) -> Secret {
    // Not UTF-8 is no code; a marker that matches none keeps the lossy
    // (unwiped) copy of what was typed from being made.
    let trimmed = std::str::from_utf8(raw).map_or("\u{fffd}", str::trim);
    let mut out = Zeroizing::new(String::with_capacity(trimmed.len()));
    out.push_str(trimmed);
    out
}

fn expiry_note(config: &Config) -> String {
    let hours = config.enrollment.pending_max_age / 3600;
    if hours >= 1 {
        format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
    } else {
        format!("{} minutes", config.enrollment.pending_max_age / 60)
    }
}

/// `mfa-enroll` (or `mfa-enroll enroll`) run by a user; root must say
/// whom it enrolls.
pub fn enroll(
    config_path: &Path,
    device: Option<&str>,
    qr_style: Option<QrStyle>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    if nix::unistd::geteuid().is_root() {
        return Err(CliError::NeedsUser {
            root_command: "enroll --user NAME",
            user_command: "enroll",
        });
    }
    let uid = nix::unistd::getuid().as_raw();
    let config = load_config(config_path)?;
    let public = public_key(&config)?;
    check_spool(&config)?;
    let name = if let Some(d) = device {
        d.to_owned()
    } else {
        let typed = ask_line(out, &format!("Name for this device [{DEFAULT_DEVICE}]: "))?;
        let typed = String::from_utf8_lossy(&typed).trim().to_owned();
        if typed.is_empty() {
            DEFAULT_DEVICE.to_owned()
        } else {
            typed
        }
    };
    let host = hostname()?;
    let user = label(uid);
    let issuer = enrollment::issuer(&config, &host);
    let account = format!("{user}@{host}");
    let request = EnrollRequest {
        username: &user,
        device: &name,
        issuer: &issuer,
        account: &account,
        replace: false,
    };
    let mut provision = admin::provision(&config, &request, SystemClock.now())?;
    // The drawing encodes the secret: wiped when dropped.
    let qr_lines = Zeroizing::new(
        match qr::render(
            provision.uri(),
            context::qr_style(qr_style, config.enrollment.qr),
        ) {
            Ok(lines) => lines,
            Err(e) => vec![e.to_string()],
        },
    );
    let who = Who {
        uid,
        name: Some(user.clone()),
    };
    write_out(
        out,
        &render::enroll_instructions(&who, &provision, &qr_lines),
    )?;
    let response = ask_line(out, render::CODE_PROMPT)?;
    provision.confirm(&response, &config, SystemClock.now())?;
    let proof = ask_proof(out, true)?;
    let request = provision
        .to_pending(SystemClock.now(), typed_code(&response), proof)
        .map_err(|e| CliError::Spool(e.to_string()))?;
    // The module checks the new device's code at the request's time; one
    // typed too long ago would be refused at the login, so say so now.
    pending::check_new_device_code(&request, config.totp.window)
        .map_err(|_| CliError::Spool("the code from the new app is too old by now; run mfa-enroll again and answer both questions promptly".into()))?;
    seal_and_spool(&config, &public, uid, &request)?;
    if let Some(d) = request.device() {
        write_out(
            out,
            &format!(
                "Secret fingerprint: {} (an administrator approving this request sees the same).\n",
                pending::fingerprint(&d.secret)
            ),
        )?;
    }

    let mut text = Zeroizing::new(String::with_capacity(4096));
    text.push_str(
        "The app works. These recovery codes each work once if you lose the device.\n\
         Store them somewhere safe now; they will not be shown again:\n\n",
    );
    for code in provision.recovery_codes() {
        let _ = writeln!(text, "    {}", code.display());
    }
    let _ = write!(
        text,
        "\nWhat happens next: at your next login (sudo, ssh) you will be asked for a\n\
         code from your current device if you have one (a new code: each works\n\
         once), then, if this is your first device, for a code from \"{name}\". Only\n\
         then is it active, and these recovery codes replace any old ones. Under a\n\
         policy that requires an administrator's approval, ask them to run\n\
         `mfa-enroll approve --uid {uid}`. The request expires in {}.\n",
        expiry_note(&config)
    );
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// `mfa-enroll recovery-codes --regenerate` run by a user.
pub fn regenerate_codes(config_path: &Path, out: &mut impl Write) -> Result<(), CliError> {
    let uid = nix::unistd::getuid().as_raw();
    let config = load_config(config_path)?;
    let public = public_key(&config)?;
    check_spool(&config)?;
    let Some(proof) = ask_proof(out, false)? else {
        return Err(CliError::Spool(
            "new recovery codes need a code from your device or one of your recovery codes; nothing was changed".into(),
        ));
    };
    let (codes, recovery) = enrollment::new_recovery_codes(&config)
        .map_err(|e| CliError::Admin(admin::AdminError::Enrollment(e)))?;
    let request = Pending {
        id: Pending::new_id().map_err(|e| CliError::Spool(e.to_string()))?,
        created: SystemClock.now(),
        request: Request::RecoveryCodes { recovery },
        proof: Some(proof),
    };
    seal_and_spool(&config, &public, uid, &request)?;
    let mut text = Zeroizing::new(String::from(
        "New recovery codes (each works once). Store them somewhere safe now:\n\n",
    ));
    for code in &codes {
        let _ = writeln!(text, "    {}", code.display());
    }
    let _ = write!(
        text,
        "\nThey replace your current codes at your next login, after you enter a\n\
         new code from your device. Until then the old codes still work. The\n\
         request expires in {}.\n",
        expiry_note(&config)
    );
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

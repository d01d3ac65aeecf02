//! `enroll --user NAME`: an administrator gives a user a device and
//! recovery codes; `enroll --users-from FILE --json` does it for many.

use std::fmt;
use std::io::{self, IsTerminal as _, Read as _, Write};
use std::path::Path;

use mfa_core::admin::{self, EnrollRequest};
use mfa_core::bulk::{self, LineError, LineFields, Subject, Summary};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::enrollment;
use mfa_core::qr;
use zeroize::Zeroizing;

use crate::cli::{EnrollArgs, Target};
use crate::context::{
    hostname, log, open_user, qr_style, read_response, resolve, write_out, Admin,
};
use crate::error::{CliError, ReadProblem, EXIT_FAILED};
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

/// `enroll --users-from FILE --json [--device NAME] [--force]`: every user
/// the file names, on all cores, one output line per input line in input
/// order, a summary on standard error.
pub fn enroll_many(
    config_path: &Path,
    args: &EnrollArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let admin = Admin::open("enroll", config_path)?;
    let path = args.users_from.as_deref().unwrap_or(Path::new("-"));
    let text = read_users_file(path)?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !bulk::is_skipped(line))
        .collect();
    let host = hostname()?;
    let issuer = enrollment::issuer(&admin.config, &host);
    let shared = Shared {
        admin: &admin,
        args,
        host: &host,
        issuer: &issuer,
    };

    let mut summary = Summary::default();
    let mut broken: Option<io::Error> = None;
    // Users enrolled whose secrets could not be printed.
    let mut unseen: Vec<u32> = Vec::new();
    bulk::run_in_order(
        &lines,
        bulk::workers(lines.len()),
        |&(number, line)| shared.enroll_line(number, line),
        |_, outcome| {
            let (enrolled, bytes) = match outcome {
                Ok((uid, json)) => (Some(uid), json),
                Err(json) => (None, Zeroizing::new(json)),
            };
            summary.count(enrolled.is_some());
            if broken.is_none() {
                if let Err(e) = out.write_all(&bytes).and_then(|()| out.flush()) {
                    broken = Some(e);
                }
            }
            if let (Some(uid), Some(_)) = (enrolled, &broken) {
                unseen.push(uid);
            }
            broken.is_none()
        },
    );

    if let Some(err) = broken {
        let uids: Vec<String> = unseen.iter().map(u32::to_string).collect();
        return Err(CliError::Incomplete {
            summary: format!(
                "cannot write the output ({err}); no further user was started ({summary}); the secrets of the users enrolled after the failure were not shown (uids: {}): enroll them again with --force",
                if uids.is_empty() { "none".to_owned() } else { uids.join(", ") }
            ),
            code: EXIT_FAILED,
        });
    }
    let _ = writeln!(io::stderr(), "mfa-enroll: {summary}");
    if summary.all_enrolled() {
        Ok(())
    } else {
        Err(CliError::Incomplete {
            summary: format!(
                "{} of {} lines failed; their error objects are in the output, and the other users are enrolled",
                summary.failed, summary.lines
            ),
            code: EXIT_FAILED,
        })
    }
}

/// Reads the users file, or standard input for `-`.
fn read_users_file(path: &Path) -> Result<String, CliError> {
    let read = if path == Path::new("-") {
        let mut text = String::new();
        io::stdin().lock().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|err| CliError::ReadFile {
        path: path.to_path_buf(),
        problem: ReadProblem::Io(err),
    })
}

/// What every line of a bulk run shares.
struct Shared<'a> {
    admin: &'a Admin,
    args: &'a EnrollArgs,
    host: &'a str,
    issuer: &'a str,
}

impl Shared<'_> {
    /// One line: its output, the user's uid and the `enroll --json` object
    /// on success, or an error object on failure.
    fn enroll_line(&self, number: usize, line: &str) -> Result<(u32, Zeroizing<Vec<u8>>), Vec<u8>> {
        let syntax = |user: Option<&str>, uid: Option<u32>, e: &serde_json::Error| {
            line_error(number, user, uid, &LineError::Syntax(e.to_string()))
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| syntax(None, None, &e))?;
        // Named in the error object even when another field is wrong, so
        // that the administrator sees whose line failed.
        let user = value
            .get("user")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let uid = value
            .get("uid")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok());
        let fields: LineFields =
            serde_json::from_value(value).map_err(|e| syntax(user.as_deref(), uid, &e))?;
        let fail = |e: &dyn fmt::Display| line_error(number, user.as_deref(), uid, e);
        let entry = fields.into_entry().map_err(|e| fail(&e))?;
        let target = match entry.subject {
            Subject::Name(name) => Target {
                user: Some(name),
                uid: None,
            },
            Subject::Uid(uid) => Target {
                user: None,
                uid: Some(uid),
            },
        };
        let device = entry
            .device
            .as_deref()
            .unwrap_or_else(|| self.args.device_or_default());
        self.enroll_one(&target, device).map_err(|e| fail(&e))
    }

    /// What `enroll --user X --json` does, holding the user's lock from
    /// the check to the write, since nobody is asked anything in between.
    fn enroll_one(
        &self,
        target: &Target,
        device: &str,
    ) -> Result<(u32, Zeroizing<Vec<u8>>), CliError> {
        let Admin {
            config,
            keys,
            store,
        } = self.admin;
        let who = resolve(target)?;
        let Some(name) = who.name.clone() else {
            return Err(CliError::UnknownUid(who.uid));
        };
        let mut state = open_user(store, &who, keys)?;
        admin::check_enrollable(&state, self.args.force)?;
        let account = format!("{name}@{}", self.host);
        let request = EnrollRequest {
            username: &name,
            device,
            issuer: self.issuer,
            account: &account,
            replace: self.args.force,
        };
        let provision = admin::provision(config, &request, SystemClock.now())?;
        let replaced = provision.store(&mut state, keys)?;
        drop(state);
        log(&render::enrolled_event(
            &who,
            provision.device_name(),
            replaced,
        ));
        Ok((
            who.uid,
            render::enroll_json(&who, &provision, keys.active()),
        ))
    }
}

/// The output line of a failed line: its number, whom it named if it
/// could be read, and why it failed.
fn line_error(
    number: usize,
    user: Option<&str>,
    uid: Option<u32>,
    error: &dyn fmt::Display,
) -> Vec<u8> {
    /// Field order as documented: line, user, uid, error.
    #[derive(serde::Serialize)]
    struct Failure<'a> {
        line: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        error: String,
    }
    let failure = Failure {
        line: number,
        user,
        uid,
        error: error.to_string(),
    };
    let mut bytes = serde_json::to_vec(&failure).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

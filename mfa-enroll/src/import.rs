//! `import google-authenticator` and `import oath`: read another module's
//! file (never modifying it), parse it in mfa-core, and either describe what
//! would change (the default) or write the records (`--apply`).

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{Read as _, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use mfa_core::admin;
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::enrollment;
use mfa_core::import::{
    parse_google_authenticator, parse_oath_usersfile, GoogleAuthenticator, ImportedRecovery,
    OathEntry, OathLine, OathSelection, OathToken, RecoveryPlan, ScratchCodes,
    MAX_GOOGLE_AUTHENTICATOR_FILE, MAX_OATH_USERSFILE,
};
use mfa_core::recovery::{KdfParams, RecoveryCode};
use mfa_core::text::escape;
use mfa_core::totp::TotpParams;
use nix::libc;
use nix::unistd::{Uid, User};
use zeroize::Zeroizing;

use crate::cli::{GoogleAuthenticatorArgs, OathArgs};
use crate::context::{log, log_store_error, open_user, resolve, write_out, Admin, Who};
use crate::error::{CliError, ReadProblem, EXIT_FAILED, EXIT_REFUSED};
use crate::render;

/// Reads a file to import: never through a symbolic link, never blocking on
/// a FIFO, only a regular file, at most `max` bytes, and, given `owner`,
/// only if that uid or root owns it (so a user cannot have root import a
/// file of someone else's). The file is opened read-only and never
/// written. The buffer is wiped when dropped.
pub fn read_file(
    path: &Path,
    max: usize,
    owner: Option<u32>,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let fail = |problem| CliError::ReadFile {
        path: path.to_path_buf(),
        problem,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            fail(match e.raw_os_error() {
                Some(libc::ENOENT) => ReadProblem::Missing,
                Some(libc::ELOOP) => ReadProblem::Symlink,
                Some(libc::ENXIO | libc::EISDIR) => ReadProblem::NotRegular,
                _ => ReadProblem::Io(e),
            })
        })?;
    let meta = file.metadata().map_err(|e| fail(ReadProblem::Io(e)))?;
    if !meta.is_file() {
        return Err(fail(ReadProblem::NotRegular));
    }
    if let Some(expected) = owner {
        if meta.uid() != expected && meta.uid() != 0 {
            return Err(fail(ReadProblem::WrongOwner {
                found: meta.uid(),
                expected,
            }));
        }
    }
    if meta.len() > max as u64 {
        return Err(fail(ReadProblem::TooLarge { max }));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(max + 1));
    // One byte past the bound catches a file that grew after fstat.
    file.take(max as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| fail(ReadProblem::Io(e)))?;
    if buf.len() > max {
        return Err(fail(ReadProblem::TooLarge { max }));
    }
    Ok(buf)
}

fn params_text(p: TotpParams) -> String {
    format!(
        "TOTP, {}, {} digits, {} s",
        p.algorithm.as_str(),
        p.digits,
        p.period
    )
}

fn codes_text(codes: &[RecoveryCode]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(64 * codes.len()));
    for code in codes {
        let _ = writeln!(s, "    {}", code.display());
    }
    s
}

/// The file `import google-authenticator` reads for `who` by default.
fn default_file(who: &Who) -> Result<PathBuf, CliError> {
    let name = who.name.clone().unwrap_or_default();
    match User::from_uid(Uid::from_raw(who.uid)) {
        Ok(Some(u)) if u.dir.is_absolute() => Ok(u.dir.join(".google_authenticator")),
        Ok(Some(_)) => Err(CliError::NoHome(name)),
        Ok(None) => Err(CliError::UnknownUid(who.uid)),
        Err(err) => Err(CliError::UserLookup {
            user: format!("`{name}`"),
            err,
        }),
    }
}

/// `import google-authenticator`.
pub fn google_authenticator(
    config_path: &Path,
    args: &GoogleAuthenticatorArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("import google-authenticator", config_path)?;
    let who = resolve(&args.target)?;
    let Some(name) = who.name.clone() else {
        return Err(CliError::UnknownUid(who.uid));
    };
    enrollment::check_device_name(&args.device).map_err(admin::AdminError::from)?;
    let path = match &args.file {
        Some(p) => p.clone(),
        None => default_file(&who)?,
    };
    let bytes = read_file(&path, MAX_GOOGLE_AUTHENTICATOR_FILE, Some(who.uid))?;
    let ga = parse_google_authenticator(&bytes).map_err(|err| CliError::Import {
        path: path.clone(),
        err,
    })?;
    drop(bytes);
    let choice = if args.new_recovery_codes {
        ScratchCodes::Replace
    } else {
        ScratchCodes::Keep
    };
    let import_error = |err| CliError::Import {
        path: path.clone(),
        err,
    };
    // Decided before anything is written, so the dry run refuses what the
    // import would refuse.
    let plan = ga.recovery_plan(choice).map_err(import_error)?;
    let summary = ga_summary(&who, &path, &ga, plan, &args.device, config.totp.window);
    if !args.apply {
        let state = open_user(&store, &who, &keys)?;
        // The same check the import makes (mfa-core), so the dry run
        // tells what --apply would do.
        let existing = match admin::check_enrollable(&state, args.force) {
            Ok(false) => "none",
            Ok(true) => "yes; --apply --force replaces it",
            Err(_) => "yes; --apply is refused without --force",
        };
        return write_out(
            out,
            &format!(
                "Would import {summary}  existing record: {existing}\n\n\
                 Nothing was changed (dry run); add --apply to import.\n"
            ),
        );
    }
    // Argon2id for each carried code runs before the user's lock is taken.
    let recovery = ga
        .recovery(choice, KdfParams::default())
        .map_err(import_error)?;
    let mut state = open_user(&store, &who, &keys)?;
    let now = SystemClock.now();
    let imported = admin::import_device(
        &mut state,
        &name,
        ga.device(&args.device, now),
        recovery,
        &config,
        &keys,
        args.force,
    )?;
    drop(state);
    log(&render::imported_event(
        &who,
        &args.device,
        "google-authenticator",
        imported.replaced,
    ));
    let text = imported_text(&summary, plan, &imported, &ga, &name, &path);
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|err| CliError::OutputAfterEnroll { uid: who.uid, err })
}

/// What `import google-authenticator --apply` prints: what was imported
/// and what became of the scratch codes (with a new set, the codes).
fn imported_text(
    summary: &str,
    plan: RecoveryPlan,
    imported: &admin::Imported,
    ga: &GoogleAuthenticator,
    name: &str,
    path: &Path,
) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(8192));
    let _ = write!(text, "Imported {summary}");
    if imported.replaced {
        text.push_str("  The previous record was replaced.\n");
    }
    match plan {
        RecoveryPlan::Carry { .. } => {
            let _ = write!(
                text,
                "\nThe authenticator app keeps working unchanged, and so do the user's\n\
                 {}: each now works once as a pam_mfa recovery code, at the same\n\
                 prompt. No codes are shown; the user already holds them. Until\n\
                 pam_google_authenticator.so is out of the PAM stack, each also works once with it.\n",
                scratch_codes_phrase(imported.recovery_codes_left)
            );
        }
        RecoveryPlan::NoneToCarry => {
            let _ = write!(
                text,
                "\nThe authenticator app keeps working unchanged. The file has no scratch codes\n\
                 left, so the user has no recovery codes; to give them a set, run\n\n    \
                 mfa-enroll recovery-codes --user {} --regenerate\n",
                escape(name)
            );
        }
        RecoveryPlan::NewSet => {
            let _ = write!(
                text,
                "\nThe authenticator app keeps working unchanged. The {} in the file do not work\n\
                 with pam_mfa; these new recovery codes do. Each works once; they are shown only now:\n\n",
                scratch_codes_phrase(ga.scratch_codes.len())
            );
            text.push_str(&codes_text(&imported.recovery_codes));
        }
    }
    let _ = write!(
        text,
        "\n{} was not modified. Delete it once pam_google_authenticator.so is out of the PAM stack.\n",
        escape(&path.display().to_string())
    );
    text
}

fn scratch_codes_phrase(n: usize) -> String {
    match n {
        1 => "1 scratch code".to_owned(),
        n => format!("{n} scratch codes"),
    }
}

/// What was found in the file, as the dry run and the import show it.
fn ga_summary(
    who: &Who,
    path: &Path,
    ga: &GoogleAuthenticator,
    plan: RecoveryPlan,
    device: &str,
    window: u8,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "the google-authenticator file {} for {}:\n",
        escape(&path.display().to_string()),
        who.describe()
    );
    let _ = writeln!(
        s,
        "  device:          \"{device}\" ({}, {}-bit secret)",
        params_text(ga.params),
        ga.secret.len() * 8
    );
    let size = ga
        .window_size
        .map_or_else(|| "not set (3)".to_owned(), |n| n.to_string());
    let steps = ga.window_steps();
    let _ = write!(
        s,
        "  window:          WINDOW_SIZE {size}, {steps} step(s) either side; pam_mfa's totp.window is {window}"
    );
    if steps > u32::from(window) {
        s.push_str(" (raise it if the user's clock drifts)");
    }
    s.push('\n');
    if let Some((n, m)) = ga.rate_limit {
        let _ = writeln!(
            s,
            "  rate limit:      {n} logins per {m} s; not carried over, pam_mfa's throttling applies"
        );
    }
    let _ = writeln!(
        s,
        "  reuse:           {}; pam_mfa never accepts a code twice",
        if ga.disallow_reuse {
            "disallowed"
        } else {
            "allowed"
        }
    );
    if !ga.used_steps.is_empty() {
        let _ = writeln!(
            s,
            "  used codes:      {} time step(s) already used stay used",
            ga.used_steps.len()
        );
    }
    if let Some(skew) = ga.time_skew {
        let _ = writeln!(
            s,
            "  time skew:       {skew} step(s) learnt by the old module; not carried over"
        );
    }
    let listed = ga.scratch_codes.len();
    let _ = match plan {
        RecoveryPlan::Carry { count } if count == listed => writeln!(
            s,
            "  scratch codes:   {count}, carried over as recovery codes (each works once)"
        ),
        RecoveryPlan::Carry { count } => writeln!(
            s,
            "  scratch codes:   {listed} ({count} different), carried over as recovery codes (each works once)"
        ),
        RecoveryPlan::NoneToCarry => writeln!(
            s,
            "  scratch codes:   none left; the user gets no recovery codes (--new-recovery-codes prints a set)"
        ),
        RecoveryPlan::NewSet => writeln!(
            s,
            "  scratch codes:   {listed}, not carried over (--new-recovery-codes): a new set of recovery codes is printed instead"
        ),
    };
    s
}

/// One token line's fate.
enum Fate {
    Skipped(String),
    Refused(String),
    Failed(String),
    Ready { uid: u32, replaces: bool },
    Imported { uid: u32, replaced: bool },
}

/// What every token line of a users file is imported with.
struct OathContext<'a> {
    config: &'a mfa_core::config::Config,
    keys: &'a mfa_core::keys::MasterKey,
    store: &'a mfa_core::store::Store,
    args: &'a OathArgs,
    now: u64,
}

/// Carries out what `selection` (mfa-core) decides for one time-based
/// token: with `--apply` the import, otherwise what it would do. The
/// recovery codes of each imported user are added to `codes`.
fn token_fate(
    ctx: &OathContext<'_>,
    line: &OathLine,
    token: &OathToken,
    selection: &mut OathSelection,
    codes: &mut Vec<(Who, Vec<RecoveryCode>)>,
) -> Fate {
    if let Err(refusal) = selection.claim(line) {
        return Fate::Refused(refusal.to_string());
    }
    let user = match User::from_name(&line.user) {
        Ok(Some(user)) => user,
        Ok(None) => return Fate::Refused("no such user on this host".to_owned()),
        Err(e) => return Fate::Failed(format!("user lookup failed: {e}")),
    };
    let who = Who {
        uid: user.uid.as_raw(),
        name: Some(user.name.clone()),
    };
    let mut state = match ctx.store.open_user(who.owner(), ctx.keys) {
        Ok(state) => state,
        Err(e) => {
            log_store_error(&who, &e);
            return Fate::Failed(e.to_string());
        }
    };
    let replaces = match selection.admit(state.record().is_some()) {
        Ok(replaces) => replaces,
        Err(refusal) => return Fate::Refused(refusal.to_string()),
    };
    if !ctx.args.apply {
        return Fate::Ready {
            uid: who.uid,
            replaces,
        };
    }
    let device = token.device(&ctx.args.device, ctx.now, ctx.config.totp.window);
    // A users file holds no scratch codes: each user gets a new set.
    match admin::import_device(
        &mut state,
        &user.name,
        device,
        ImportedRecovery::NewSet,
        ctx.config,
        ctx.keys,
        ctx.args.force,
    ) {
        Ok(imported) => {
            drop(state);
            log(&render::imported_event(
                &who,
                &ctx.args.device,
                "a pam_oath users file",
                imported.replaced,
            ));
            codes.push((who.clone(), imported.recovery_codes));
            Fate::Imported {
                uid: who.uid,
                replaced: imported.replaced,
            }
        }
        Err(e) => Fate::Failed(e.to_string()),
    }
}

/// The report `import oath` prints, and how many lines were refused and
/// failed.
fn oath_report(
    path: &Path,
    args: &OathArgs,
    line_count: usize,
    rows: &[(&OathLine, String, Fate)],
    codes: &[(Who, Vec<RecoveryCode>)],
) -> (Zeroizing<String>, usize, usize) {
    let mut text = Zeroizing::new(String::with_capacity(8192));
    let _ = writeln!(
        text,
        "{} {} ({} token {}):\n",
        if args.apply {
            "Imported from"
        } else {
            "Would import from"
        },
        escape(&path.display().to_string()),
        line_count,
        if line_count == 1 { "line" } else { "lines" }
    );
    let (mut ready, mut skipped, mut refused, mut failed) = (0, 0, 0, 0);
    for (line, params, fate) in rows {
        let what = match fate {
            Fate::Skipped(why) => {
                skipped += 1;
                format!("skipped: {why}")
            }
            Fate::Refused(why) => {
                refused += 1;
                format!("refused: {why}")
            }
            Fate::Failed(why) => {
                failed += 1;
                format!("failed: {why}")
            }
            Fate::Ready { uid, replaces } => {
                ready += 1;
                format!(
                    "uid {uid}: would import as device \"{}\" ({params}){}",
                    args.device,
                    if *replaces {
                        ", replacing the existing record"
                    } else {
                        ""
                    }
                )
            }
            Fate::Imported { uid, replaced } => {
                ready += 1;
                format!(
                    "uid {uid}: imported as device \"{}\" ({params}){}",
                    args.device,
                    if *replaced {
                        ", replacing the previous record"
                    } else {
                        ""
                    }
                )
            }
        };
        let _ = writeln!(
            text,
            "  line {:<4} {:<12} {:<11} {what}",
            line.line, line.user, line.kind
        );
    }
    let _ = writeln!(
        text,
        "\n{ready} to import, {skipped} skipped, {refused} refused, {failed} failed."
    );
    if args.apply {
        for (who, set) in codes {
            let _ = writeln!(
                text,
                "\nNew recovery codes for {} (each works once; shown only now):\n",
                who.describe()
            );
            text.push_str(&codes_text(set));
        }
        if !codes.is_empty() {
            let _ = writeln!(
                text,
                "\nThe authenticator apps keep working unchanged. {} was not modified.",
                escape(&path.display().to_string())
            );
        }
    } else {
        text.push_str("Nothing was changed (dry run); add --apply to import.\n");
    }
    (text, refused, failed)
}

/// `import oath`.
pub fn oath(config_path: &Path, args: &OathArgs, out: &mut impl Write) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("import oath", config_path)?;
    enrollment::check_device_name(&args.device).map_err(admin::AdminError::from)?;
    let path = &args.usersfile;
    let bytes = read_file(path, MAX_OATH_USERSFILE, Some(0))?;
    let lines = parse_oath_usersfile(&bytes).map_err(|err| CliError::Import {
        path: path.clone(),
        err,
    })?;
    drop(bytes);

    let now = SystemClock.now();
    let mut selection = OathSelection::new(args.force);
    let mut rows = Vec::new();
    let mut codes: Vec<(Who, Vec<RecoveryCode>)> = Vec::new();
    for line in &lines {
        let fate = match &line.entry {
            OathEntry::Skipped(why) => Fate::Skipped(why.to_string()),
            OathEntry::Totp(token) => {
                let ctx = OathContext {
                    config: &config,
                    keys: &keys,
                    store: &store,
                    args,
                    now,
                };
                token_fate(&ctx, line, token, &mut selection, &mut codes)
            }
        };
        let params = match &line.entry {
            OathEntry::Totp(t) => params_text(t.params),
            OathEntry::Skipped(_) => String::new(),
        };
        rows.push((line, params, fate));
    }

    let (text, refused, failed) = oath_report(path, args, lines.len(), &rows, &codes);
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if let Err(err) = written {
        return Err(match codes.first() {
            Some((who, _)) => CliError::OutputAfterEnroll { uid: who.uid, err },
            None => CliError::Output(err),
        });
    }
    if failed > 0 {
        Err(CliError::Incomplete {
            summary: format!("{failed} of the tokens could not be imported"),
            code: EXIT_FAILED,
        })
    } else if refused > 0 && args.apply {
        Err(CliError::Incomplete {
            summary: format!("{refused} of the tokens were refused"),
            code: EXIT_REFUSED,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn reading_refuses_symlinks_fifos_directories_and_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"abc").unwrap();
        assert_eq!(read_file(&real, 3, None).unwrap().as_slice(), b"abc");
        // Root's file is accepted for anyone; someone else's is not.
        assert!(read_file(&real, 3, Some(12345)).is_ok());
        nix::unistd::chown(&real, Some(nix::unistd::Uid::from_raw(4321)), None).unwrap();
        let err = read_file(&real, 3, Some(12345)).unwrap_err().to_string();
        assert!(err.contains("owned by uid 4321, not by uid 12345"), "{err}");
        assert!(read_file(&real, 3, Some(4321)).is_ok());
        nix::unistd::chown(&real, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for (path, max, want) in [
            (&link, 3, "symbolic link"),
            (&fifo, 3, "not a regular file"),
            (&dir.path().to_path_buf(), 3, "not a regular file"),
            (&real, 2, "larger than the 2 bytes"),
            (&dir.path().join("none"), 3, "does not exist"),
        ] {
            let err = read_file(path, max, None).unwrap_err().to_string();
            assert!(err.contains(want), "{}: {err}", path.display());
        }
    }

    #[test]
    fn io_errors_keep_their_cause() {
        let e = ReadProblem::Io(io::Error::from_raw_os_error(libc::EACCES));
        assert!(e.to_string().contains("cannot be read"));
    }
}

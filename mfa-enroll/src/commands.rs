//! The commands: load what they need, call mfa-core, print, log.

use std::fmt::Write as _;
use std::io::{self, BufRead, IsTerminal as _, Read as _, Write};
use std::path::Path;

use mfa_core::admin::{self, EnrollRequest, Reset};
use mfa_core::audit::{self, Event};
use mfa_core::clock::{Clock, SystemClock};
use mfa_core::config::Config;
use mfa_core::enrollment;
use mfa_core::fsutil::FileTrust;
use mfa_core::input::MAX_INPUT_BYTES;
use mfa_core::keys::MasterKey;
use mfa_core::qr;
use mfa_core::store::{Store, StoreError};
use nix::unistd::{Uid, User};
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::render;
use crate::{approval, docs, import, selfservice, tools};
use crate::{Cli, Command, EnrollArgs, ImportCommand, KeyCommand, StatusArgs, Target};

/// Where audit lines go: the local syslog socket.
const SYSLOG_SOCKET: &str = "/dev/log";
/// The syslog identity of this program.
const IDENT: &str = "mfa-enroll";

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<(), CliError> {
    let config_path = cli.config.as_path();
    let mut out = io::stdout().lock();
    let Some(command) = &cli.command else {
        return self_enroll(config_path, None, None, &mut out);
    };
    match command {
        Command::Key(KeyCommand::Init) => key_init(config_path, &mut out),
        Command::Enroll(args) => match args.target.target() {
            Some(target) => enroll(config_path, args, &target, &mut out),
            None => self_enroll(
                config_path,
                args.device.as_deref(),
                args.qr.map(Into::into),
                &mut out,
            ),
        },
        Command::Status(args) => status(config_path, args, &mut out),
        Command::Reset(target) => reset(config_path, target, &mut out),
        Command::Unlock(target) => unlock(config_path, target, &mut out),
        Command::Key(KeyCommand::Rotate) => tools::key_rotate(config_path, &mut out),
        Command::Key(KeyCommand::List(args)) => tools::key_list(config_path, args, &mut out),
        Command::Key(KeyCommand::Migrate) => tools::key_migrate(config_path, &mut out),
        Command::Key(KeyCommand::Retire(args)) => tools::key_retire(config_path, args, &mut out),
        Command::List(args) => tools::list(config_path, args, &mut out),
        Command::Devices(args) => tools::devices(config_path, args, &mut out),
        Command::RemoveDevice(args) => tools::remove_device(config_path, args, &mut out),
        Command::RecoveryCodes(args) => match args.target.target() {
            Some(target) => tools::recovery_codes(config_path, args, &target, &mut out),
            None if args.regenerate && !nix::unistd::geteuid().is_root() => {
                selfservice::regenerate_codes(config_path, &mut out)
            }
            None => Err(CliError::NeedsUser {
                root_command: "recovery-codes --user NAME --regenerate",
                user_command: "recovery-codes --regenerate",
            }),
        },
        Command::Import(ImportCommand::GoogleAuthenticator(args)) => {
            import::google_authenticator(config_path, args, &mut out)
        }
        Command::Import(ImportCommand::Oath(args)) => import::oath(config_path, args, &mut out),
        Command::Approve(args) => approval::approve(config_path, args, &mut out),
        Command::Doctor(args) => approval::doctor(config_path, args, &mut out),
        Command::GenerateDocs(args) => docs::generate(&args.out, &mut out),
    }
}

/// A user enrolling themselves; root must say whom it enrolls.
fn self_enroll(
    config_path: &Path,
    device: Option<&str>,
    qr: Option<mfa_core::config::QrStyle>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    if nix::unistd::geteuid().is_root() {
        return Err(CliError::NeedsUser {
            root_command: "enroll --user NAME",
            user_command: "enroll",
        });
    }
    selfservice::enroll(config_path, device, qr, out)
}

/// The user a command is about: always a uid, a name when one is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The uid the state is keyed by.
    pub uid: u32,
    /// The login name, if the name service knows the uid.
    pub name: Option<String>,
}

impl Who {
    /// `alice (uid 1000)`, or `uid 1000` without a name. The name is
    /// escaped ([`mfa_core::text::escape`]): the name service may hold
    /// anything.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("{} (uid {})", mfa_core::text::escape(name), self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// What every root command that touches records starts from.
pub(crate) struct Admin {
    pub config: Config,
    pub keys: MasterKey,
    pub store: Store,
}

impl Admin {
    /// Checks for root, then loads the config, the master key and the store.
    pub fn open(command: &'static str, config_path: &Path) -> Result<Self, CliError> {
        require_root(command)?;
        let config = load_config(config_path)?;
        let keys = load_keys(&config)?;
        let store = store(&config);
        Ok(Admin {
            config,
            keys,
            store,
        })
    }
}

pub(crate) fn require_root(command: &'static str) -> Result<(), CliError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(CliError::NotRoot { command })
    }
}

/// Resolves `--user NAME` (which must exist) or `--uid N` (which need not:
/// a record may outlive its account, and an administrator must still be
/// able to see and remove it).
pub(crate) fn resolve(target: &Target) -> Result<Who, CliError> {
    if let Some(name) = &target.user {
        return match User::from_name(name) {
            Ok(Some(u)) => Ok(Who {
                uid: u.uid.as_raw(),
                name: Some(u.name),
            }),
            Ok(None) => Err(CliError::UnknownUser(name.clone())),
            Err(err) => Err(CliError::UserLookup {
                user: format!("`{name}`"),
                err,
            }),
        };
    }
    // clap requires exactly one of the two.
    let uid = target.uid.unwrap_or_default();
    // The name is only for display here; a failing lookup must not keep an
    // administrator from the record.
    let name = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    Ok(Who { uid, name })
}

pub(crate) fn load_config(path: &Path) -> Result<Config, CliError> {
    Ok(Config::load(path, FileTrust::ROOT, &[])?)
}

pub(crate) fn load_keys(config: &Config) -> Result<MasterKey, CliError> {
    Ok(MasterKey::load(&config.paths.key_file, FileTrust::ROOT)?)
}

pub(crate) fn store(config: &Config) -> Store {
    Store::new(&config.paths.state_dir, FileTrust::ROOT)
}

/// Sends an audit line. A missing syslog daemon changes nothing.
pub(crate) fn log(event: &Event) {
    let _ = audit::send_to(Path::new(SYSLOG_SOCKET), IDENT, event);
}

/// Opens `who`'s state, logging integrity problems with the record.
pub(crate) fn open_user<'s>(
    store: &'s Store,
    who: &Who,
    keys: &MasterKey,
) -> Result<mfa_core::store::UserState<'s>, CliError> {
    store.open_user(who.uid, keys).map_err(|e| {
        log_store_error(who, &e);
        CliError::Store(e)
    })
}

pub(crate) fn log_store_error(who: &Who, e: &StoreError) {
    if matches!(
        e,
        StoreError::Corrupt { .. }
            | StoreError::WrongKey { .. }
            | StoreError::UnknownVersion { .. }
            | StoreError::Unreadable(_)
    ) {
        log(&render::store_failure_event(who, &e.to_string()));
    }
}

pub(crate) fn write_out(out: &mut impl Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

fn key_init(config_path: &Path, out: &mut impl Write) -> Result<(), CliError> {
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

pub(crate) fn hostname() -> Result<String, CliError> {
    let host = nix::unistd::gethostname().map_err(CliError::Hostname)?;
    Ok(host.to_string_lossy().into_owned())
}

/// Reads one line, without its line ending, bounded so a runaway input
/// cannot fill memory: anything past the bound makes the line too long for
/// a code, which [`mfa_core::input::parse_totp`] then refuses.
pub(crate) fn read_response(input: &mut impl BufRead) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_INPUT_BYTES + 2));
    input
        .take(MAX_INPUT_BYTES as u64 + 2)
        .read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(line)
}

fn enroll(
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
        let qr_lines = Zeroizing::new(match qr::render(provision.uri(), config.enrollment.qr) {
            Ok(lines) => lines,
            Err(e) => vec![e.to_string()],
        });
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

fn status(config_path: &Path, args: &StatusArgs, out: &mut impl Write) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("status", config_path)?;
    let who = resolve(&args.target)?;
    let state = open_user(&store, &who, &keys)?;
    let status = admin::status(&state, &config, SystemClock.now());
    drop(state);
    if let Some(fault) = &status.slot_discarded {
        log(&render::slot_discarded_event(&who, &fault.to_string()));
    }
    if args.json {
        write_out(out, &render::json_line(&render::status_json(&who, &status)))
    } else {
        write_out(out, &render::status_text(&who, &status))
    }
}

fn reset(config_path: &Path, target: &Target, out: &mut impl Write) -> Result<(), CliError> {
    let Admin { keys, store, .. } = Admin::open("reset", config_path)?;
    let who = resolve(target)?;
    let text = match admin::reset(&store, who.uid, &keys)? {
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

fn unlock(config_path: &Path, target: &Target, out: &mut impl Write) -> Result<(), CliError> {
    let Admin {
        config,
        keys,
        store,
    } = Admin::open("unlock", config_path)?;
    let who = resolve(target)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_loses_its_line_ending_and_nothing_else() {
        let mut input: &[u8] = b"123456\r\nrest";
        assert_eq!(read_response(&mut input).unwrap().as_slice(), b"123456");
        let mut input: &[u8] = b" 123456 \n";
        assert_eq!(read_response(&mut input).unwrap().as_slice(), b" 123456 ");
        let mut input: &[u8] = b"";
        assert!(read_response(&mut input).unwrap().is_empty());
    }

    #[test]
    fn a_runaway_line_is_cut_just_past_the_input_bound() {
        let long = vec![b'1'; 10 * MAX_INPUT_BYTES];
        let mut input: &[u8] = &long;
        let line = read_response(&mut input).unwrap();
        assert!(line.len() > MAX_INPUT_BYTES);
        assert!(line.len() <= MAX_INPUT_BYTES + 2);
    }

    #[test]
    fn who_names_the_uid_with_or_without_a_name() {
        let named = Who {
            uid: 7,
            name: Some("bob".into()),
        };
        assert_eq!(named.describe(), "bob (uid 7)");
        assert_eq!(Who { uid: 7, name: None }.describe(), "uid 7");
    }
}

//! What every command starts from: who the user is, the root check, the
//! configuration, master key and store, the audit log, reading a response
//! and writing output. Below the commands: it imports none of them.

use std::ffi::OsString;
use std::io::{self, BufRead, Read as _, Write};
use std::path::Path;

use mfa_core::audit::{self, Event, EventKind};
use mfa_core::config::{Config, QrStyle, StoreBackend};
use mfa_core::fsutil::FileTrust;
use mfa_core::input::MAX_INPUT_BYTES;
use mfa_core::keys::MasterKey;
use mfa_core::store::{Owner, Store, StoreError, NO_UID};
use nix::unistd::{Uid, User};
use zeroize::Zeroizing;

use crate::cli::Target;
use crate::error::CliError;

/// Where audit lines go: the local syslog socket.
const SYSLOG_SOCKET: &str = "/dev/log";
/// The syslog identity of this program.
const IDENT: &str = "mfa-enroll";

/// The user a command is about: a uid and a name when one is known. With
/// the shared store, a name may have no account on this host; its uid is
/// then [`NO_UID`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The uid the files store keys the state by ([`NO_UID`] for a name
    /// with no account here).
    pub uid: u32,
    /// The login name, if the name service knows the uid (the key of the
    /// shared store).
    pub name: Option<String>,
}

impl Who {
    /// `alice (uid 1000)`, `uid 1000` without a name, or `alice (no
    /// account on this host)`. The name is escaped
    /// ([`mfa_core::text::escape`]): the name service and the shared store
    /// may hold anything.
    pub fn describe(&self) -> String {
        match (&self.name, self.uid) {
            (Some(name), NO_UID) => {
                format!("{} (no account on this host)", mfa_core::text::escape(name))
            }
            (Some(name), uid) => format!("{} (uid {uid})", mfa_core::text::escape(name)),
            (None, uid) => format!("uid {uid}"),
        }
    }

    /// The uid, or `None` for a name with no account here (JSON `null`).
    pub fn local_uid(&self) -> Option<u32> {
        (self.uid != NO_UID).then_some(self.uid)
    }

    /// Whose record, as the store keys it: by name when the name is known
    /// (the shared store's key), by uid otherwise (the shared store then
    /// looks the name up, or asks for --user).
    pub fn owner(&self) -> Owner {
        match (&self.name, self.local_uid()) {
            (Some(name), Some(uid)) => Owner::new(uid, name.clone()),
            (Some(name), None) => Owner::named(name.clone()),
            (None, _) => Owner::by_uid(self.uid),
        }
    }

    /// The user a store's [`Owner`] names.
    pub fn from_owner(owner: &Owner) -> Self {
        Who {
            uid: owner.uid().unwrap_or(NO_UID),
            name: owner.name().map(str::to_owned),
        }
    }

    /// The account name of `uid`, if the name service knows it. Only for
    /// display: a failing lookup never keeps a record from being shown.
    pub fn by_uid(uid: u32) -> Self {
        let name = User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        Who { uid, name }
    }

    /// An audit event of `kind` about this user: uid if there is one here,
    /// and name if known.
    pub fn event(&self, kind: EventKind) -> Event {
        let mut event = Event::new(kind);
        if let Some(uid) = self.local_uid() {
            event = event.uid(uid);
        }
        match &self.name {
            Some(name) => event.user(name),
            None => event,
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
        let store = store(&config)?;
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
    // The name is only for display here; a failing lookup must not keep an
    // administrator from the record.
    Ok(Who::by_uid(target.uid.unwrap_or_default()))
}

/// As [`resolve`], except that with the shared store `--user NAME` may name
/// someone with no account on this host whose row is there (`list` shows
/// such rows): an administrator must be able to see, unlock and remove it
/// from any host. A name with neither an account nor a row is still an
/// unknown user, so that a typo reads as one.
pub(crate) fn resolve_in(
    store: &Store,
    keys: &MasterKey,
    target: &Target,
) -> Result<Who, CliError> {
    match (resolve(target), &target.user) {
        (Err(CliError::UnknownUser(_)), Some(name)) if store.is_shared() => {
            let elsewhere = Who {
                uid: NO_UID,
                name: Some(name.clone()),
            };
            match store.read(elsewhere.owner(), keys) {
                Ok(snapshot) if snapshot.record().is_none() => {
                    Err(CliError::UnknownUser(name.clone()))
                }
                // A row that does not open is there all the same.
                Ok(_) | Err(StoreError::Row { .. }) => Ok(elsewhere),
                Err(e) => Err(CliError::Store(e)),
            }
        }
        (resolved, _) => resolved,
    }
}

pub(crate) fn load_config(path: &Path) -> Result<Config, CliError> {
    Ok(Config::load(path, FileTrust::ROOT, &[])?)
}

pub(crate) fn load_keys(config: &Config) -> Result<MasterKey, CliError> {
    Ok(MasterKey::load(&config.paths.key_file, FileTrust::ROOT)?)
}

/// The store the configuration names: the state directory, or the
/// PostgreSQL database (which learns this host's name for `updated_by`).
pub(crate) fn store(config: &Config) -> Result<Store, CliError> {
    let host = match config.store.backend {
        StoreBackend::Files => String::new(),
        StoreBackend::Postgres => hostname()?,
    };
    Ok(Store::from_config(config, FileTrust::ROOT, &host)?)
}

/// The files store of the state directory, whatever the configured
/// backend: where `store migrate` reads the local records.
pub(crate) fn local_store(config: &Config) -> Store {
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
    store.open_user(who.owner(), keys).map_err(|e| {
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
            | StoreError::Row { .. }
    ) {
        log(&who.event(EventKind::StoreFailure).reason(e.to_string()));
    }
}

pub(crate) fn write_out(out: &mut impl Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

pub(crate) fn hostname() -> Result<String, CliError> {
    let host = nix::unistd::gethostname().map_err(CliError::Hostname)?;
    Ok(host.to_string_lossy().into_owned())
}

/// How to draw the QR code on the terminal `mfa-enroll` runs in: as
/// `--qr` says when it is given; otherwise `enrollment.qr` of the config,
/// except that UTF-8 blocks become ASCII when the locale's character set
/// is not UTF-8 (`LANG=C` in a root shell or on a minimal server shows the
/// blocks as garbage). `none` stays none: the administrator chose not to
/// show the code, and the locale says nothing about that. The setting
/// itself stays the module's, which cannot see the client's terminal.
pub(crate) fn qr_style(flag: Option<QrStyle>, configured: QrStyle) -> QrStyle {
    flag.unwrap_or_else(|| for_locale(configured, locale_is_utf8(|name| std::env::var_os(name))))
}

/// `configured`, with UTF-8 blocks made ASCII unless `utf8`.
fn for_locale(configured: QrStyle, utf8: bool) -> QrStyle {
    match configured {
        QrStyle::Utf8 if !utf8 => QrStyle::Ascii,
        other => other,
    }
}

/// Whether the locale's character set is UTF-8, looked up as the C
/// library looks up `LC_CTYPE`: the first of `LC_ALL`, `LC_CTYPE` and
/// `LANG` that is set and not empty, whose codeset (after the `.`, before
/// any `@modifier`) is `UTF-8` or `utf8` in any case. `C`, `POSIX`, no
/// value at all or any other codeset is not UTF-8.
fn locale_is_utf8(var: impl Fn(&str) -> Option<OsString>) -> bool {
    let Some(value) = ["LC_ALL", "LC_CTYPE", "LANG"]
        .into_iter()
        .find_map(|name| var(name).filter(|v| !v.is_empty()))
    else {
        return false;
    };
    let value = value.to_string_lossy();
    let name = value.split_once('@').map_or(&*value, |(name, _)| name);
    name.rsplit_once('.').is_some_and(|(_, codeset)| {
        codeset.eq_ignore_ascii_case("UTF-8") || codeset.eq_ignore_ascii_case("utf8")
    })
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
        let elsewhere = Who {
            uid: NO_UID,
            name: Some("carol".into()),
        };
        assert_eq!(elsewhere.describe(), "carol (no account on this host)");
    }

    #[test]
    fn the_store_owner_carries_the_name_when_one_is_known() {
        let named = Who {
            uid: 7,
            name: Some("bob".into()),
        };
        assert_eq!(named.owner(), Owner::new(7, "bob"));
        assert_eq!(Who { uid: 7, name: None }.owner(), Owner::by_uid(7));
        let elsewhere = Who {
            uid: NO_UID,
            name: Some("carol".into()),
        };
        assert_eq!(elsewhere.owner(), Owner::named("carol"));
        assert_eq!(elsewhere.local_uid(), None);
        assert_eq!(Who::from_owner(&Owner::named("carol")), elsewhere);
    }

    fn utf8_with(vars: &[(&str, &str)]) -> bool {
        locale_is_utf8(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn the_locale_is_utf8_only_when_its_codeset_says_so() {
        for yes in [
            "C.UTF-8",
            "C.utf8",
            "en_US.UTF-8",
            "en_GB.Utf8",
            "de_DE.UTF-8@euro",
        ] {
            assert!(utf8_with(&[("LANG", yes)]), "{yes}");
        }
        for no in [
            "C",
            "POSIX",
            "",
            "en_US",
            "en_US.ISO-8859-1",
            "UTF-8",
            "C.UTF-16",
        ] {
            assert!(!utf8_with(&[("LANG", no)]), "{no}");
        }
        assert!(!utf8_with(&[]));
    }

    #[test]
    fn lc_all_then_lc_ctype_then_lang_decide() {
        assert!(utf8_with(&[
            ("LC_ALL", "C.UTF-8"),
            ("LC_CTYPE", "C"),
            ("LANG", "C")
        ]));
        assert!(!utf8_with(&[
            ("LC_ALL", "C"),
            ("LC_CTYPE", "C.UTF-8"),
            ("LANG", "C.UTF-8")
        ]));
        assert!(utf8_with(&[("LC_CTYPE", "C.UTF-8"), ("LANG", "C")]));
        assert!(!utf8_with(&[("LC_CTYPE", "C"), ("LANG", "C.UTF-8")]));
        // An empty variable counts as unset.
        assert!(utf8_with(&[
            ("LC_ALL", ""),
            ("LC_CTYPE", ""),
            ("LANG", "C.UTF-8")
        ]));
    }

    #[test]
    fn only_utf8_blocks_give_way_to_the_locale() {
        assert_eq!(for_locale(QrStyle::Utf8, true), QrStyle::Utf8);
        assert_eq!(for_locale(QrStyle::Utf8, false), QrStyle::Ascii);
        for utf8 in [true, false] {
            assert_eq!(for_locale(QrStyle::Ascii, utf8), QrStyle::Ascii);
            assert_eq!(for_locale(QrStyle::None, utf8), QrStyle::None);
        }
        assert_eq!(qr_style(Some(QrStyle::None), QrStyle::Utf8), QrStyle::None);
        assert_eq!(qr_style(Some(QrStyle::Utf8), QrStyle::None), QrStyle::Utf8);
    }
}

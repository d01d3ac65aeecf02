//! The configuration file and the module arguments that overlay it.
//!
//! One vocabulary serves both: every setting is `section.key` in the TOML
//! file (`/etc/security/pam_mfa.toml`), and the same `section.key=value` (or a
//! bare `key=value` where the key name is unique) as a module argument in a
//! pam.d line. Anything the parser does not understand is an error that names
//! where it came from, the line and column, and the dotted key: an unknown
//! key, a bad enum value or an out-of-range number is never ignored or
//! clamped, because a typo in a security policy must not quietly weaken it.
//!
//! The module reads the file at every login. A file written the plain way,
//! as the annotated default is, goes through a small one-pass reader
//! (`plain`); any other file, and any file with a mistake in it, through the
//! full TOML parser (`basic_toml`), which also explains every mistake. Both
//! give a value to the same deserializer per key, and module arguments go
//! through them too.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::fsutil::{self, Access, FileError, FileTrust};
use crate::totp::Algorithm;

mod plain;

/// Where the shells look for the configuration unless `config=` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/security/pam_mfa.toml";

/// The largest configuration file accepted; the annotated default is a few KiB.
pub const MAX_CONFIG_SIZE: u64 = 64 * 1024;

/// The origin named in errors about module arguments.
pub const ARGS_ORIGIN: &str = "module arguments";

const MAX_REMEMBER_SECONDS: u64 = 30 * 24 * 3600;

/// What happens to a user who has no device enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotConfigured {
    /// The module steps aside (`PAM_IGNORE`).
    Skip,
    /// The user enrolls a device in the login conversation.
    Configure,
    /// The login fails until an administrator enrolls or approves the user.
    Deny,
}

impl NotConfigured {
    /// The word used for this policy in the config file and module arguments.
    pub fn as_str(self) -> &'static str {
        match self {
            NotConfigured::Skip => "skip",
            NotConfigured::Configure => "configure",
            NotConfigured::Deny => "deny",
        }
    }
}

impl<'de> Deserialize<'de> for NotConfigured {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(NOT_CONFIGURED_WORDS)
    }
}

const NOT_CONFIGURED_WORDS: Words<NotConfigured> = Words(&[
    ("skip", NotConfigured::Skip),
    ("configure", NotConfigured::Configure),
    ("deny", NotConfigured::Deny),
]);

impl fmt::Display for NotConfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the enrollment QR code is drawn on the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QrStyle {
    /// Unicode half blocks: compact, needs a UTF-8 terminal.
    Utf8,
    /// Plain ASCII: large, works on any terminal.
    Ascii,
    /// No QR code; only the secret and the otpauth URI are shown.
    None,
}

impl QrStyle {
    /// The word used for this style in the config file and module arguments.
    pub fn as_str(self) -> &'static str {
        match self {
            QrStyle::Utf8 => "utf8",
            QrStyle::Ascii => "ascii",
            QrStyle::None => "none",
        }
    }
}

impl<'de> Deserialize<'de> for QrStyle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Words(&[
            ("utf8", QrStyle::Utf8),
            ("ascii", QrStyle::Ascii),
            ("none", QrStyle::None),
        ]))
    }
}

impl fmt::Display for QrStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[policy]`: what happens to users without a device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [policy] table")]
pub struct PolicyConfig {
    /// The policy for a user with no device.
    pub not_configured: NotConfigured,
    /// Skip the prompt if the user passed MFA on the same service within this
    /// many seconds; 0 turns it off.
    #[serde(deserialize_with = "ranged::<_, _, 0, MAX_REMEMBER_SECONDS>")]
    pub remember_seconds: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            not_configured: NotConfigured::Skip,
            remember_seconds: 0,
        }
    }
}

/// The TOTP periods the configuration accepts, in seconds (`totp.period`);
/// self-service requests outside them are refused.
pub const TOTP_PERIODS: std::ops::RangeInclusive<u32> = 10..=300;

/// `[totp]`: the codes new devices produce and how they are checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [totp] table")]
pub struct TotpConfig {
    /// The HMAC hash for new devices.
    #[serde(deserialize_with = "algorithm")]
    pub algorithm: Algorithm,
    /// Digits per code: 6 or 8.
    #[serde(deserialize_with = "digits")]
    pub digits: u8,
    /// Seconds per time step.
    #[serde(deserialize_with = "ranged::<_, _, 10, 300>")]
    pub period: u32,
    /// Time steps accepted either side of now.
    #[serde(deserialize_with = "ranged::<_, _, 0, 10>")]
    pub window: u8,
    /// The issuer shown in the authenticator app; empty means the host name.
    #[serde(deserialize_with = "issuer")]
    pub issuer: String,
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            window: 1,
            issuer: String::new(),
        }
    }
}

/// `[recovery]`: the single-use codes handed out at enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [recovery] table")]
pub struct RecoveryConfig {
    /// Codes per set.
    #[serde(deserialize_with = "ranged::<_, _, 1, 32>")]
    pub count: u8,
    /// Base32 characters per code (5 bits each).
    #[serde(deserialize_with = "ranged::<_, _, 10, 32>")]
    pub length: u8,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            count: 10,
            length: 12,
        }
    }
}

/// `[throttle]`: back-off and lockout after wrong codes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [throttle] table")]
pub struct ThrottleConfig {
    /// Failures allowed before back-off starts.
    #[serde(deserialize_with = "ranged::<_, _, 0, 20>")]
    pub backoff_after: u32,
    /// The first back-off delay in seconds; it doubles with each further failure.
    #[serde(deserialize_with = "ranged::<_, _, 1, 3600>")]
    pub backoff_seconds: u32,
    /// The ceiling of the doubling, in seconds.
    #[serde(deserialize_with = "ranged::<_, _, 1, 86_400>")]
    pub backoff_max_seconds: u32,
    /// Consecutive failures after which only an administrator can unlock.
    #[serde(deserialize_with = "ranged::<_, _, 1, 100>")]
    pub lockout_after: u32,
    /// The delay PAM imposes after a failed login, in milliseconds (`pam_fail_delay`).
    #[serde(deserialize_with = "ranged::<_, _, 0, 10_000>")]
    pub fail_delay_ms: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            backoff_after: 3,
            backoff_seconds: 30,
            backoff_max_seconds: 900,
            lockout_after: 20,
            fail_delay_ms: 2000,
        }
    }
}

/// `[enrollment]`: how new devices are set up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an [enrollment] table")]
pub struct EnrollmentConfig {
    /// How the QR code is drawn.
    pub qr: QrStyle,
    /// Seconds a self-service enrollment waits in the spool before it is ignored.
    #[serde(deserialize_with = "ranged::<_, _, 60, MAX_REMEMBER_SECONDS>")]
    pub pending_max_age: u32,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        EnrollmentConfig {
            qr: QrStyle::Utf8,
            pending_max_age: 86_400,
        }
    }
}

/// `[groups]`: groups that must, or never, use MFA.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [groups] table")]
pub struct GroupsConfig {
    /// Members must use MFA even when `not_configured` is `skip`.
    #[serde(deserialize_with = "group_list")]
    pub require: Vec<String>,
    /// The policy for unenrolled members of `require`: never `Skip`.
    #[serde(deserialize_with = "require_policy")]
    pub require_policy: NotConfigured,
    /// Members never get the prompt.
    #[serde(deserialize_with = "group_list")]
    pub exempt: Vec<String>,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            require: Vec::new(),
            require_policy: NotConfigured::Configure,
            exempt: Vec::new(),
        }
    }
}

/// `[paths]`: where the module keeps its state; all absolute.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [paths] table")]
pub struct Paths {
    /// The directory of per-user records.
    #[serde(deserialize_with = "absolute_path")]
    pub state_dir: PathBuf,
    /// The master key file.
    #[serde(deserialize_with = "absolute_path")]
    pub key_file: PathBuf,
    /// The public key users seal self-enrollments to.
    #[serde(deserialize_with = "absolute_path")]
    pub enroll_public_key: PathBuf,
    /// The spool of sealed pending self-enrollments.
    #[serde(deserialize_with = "absolute_path")]
    pub spool_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            state_dir: PathBuf::from("/var/lib/pam_mfa/users"),
            key_file: PathBuf::from("/etc/security/pam_mfa/master.key"),
            enroll_public_key: PathBuf::from("/etc/security/pam_mfa/enroll.pub"),
            spool_dir: PathBuf::from("/var/spool/pam_mfa"),
        }
    }
}

/// `[service.NAME]`: settings for one PAM service. How they combine with
/// `[policy]` and `[groups]` is decided in one place, [`crate::policy`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [service.NAME] table")]
pub struct ServiceOverride {
    /// A policy for this service; the strictest of it, `policy.not_configured`
    /// and (for members of `groups.require`) `groups.require_policy` applies.
    pub not_configured: Option<NotConfigured>,
    /// Replaces `policy.remember_seconds` for this service.
    #[serde(deserialize_with = "some_ranged::<_, _, 0, MAX_REMEMBER_SECONDS>")]
    pub remember_seconds: Option<u32>,
    /// A login on this service from a local console (a virtual terminal or
    /// the system console, no remote host) steps aside without a code, and
    /// is logged at alert level every time.
    pub break_glass: bool,
}

/// The whole configuration. [`Config::default`] is exactly what the shipped,
/// annotated `config/pam_mfa.toml` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a pam_mfa configuration")]
pub struct Config {
    /// `[policy]`.
    pub policy: PolicyConfig,
    /// `[totp]`.
    pub totp: TotpConfig,
    /// `[recovery]`.
    pub recovery: RecoveryConfig,
    /// `[throttle]`.
    pub throttle: ThrottleConfig,
    /// `[enrollment]`.
    pub enrollment: EnrollmentConfig,
    /// `[groups]`.
    pub groups: GroupsConfig,
    /// `[paths]`.
    pub paths: Paths,
    /// `[service.NAME]` tables, by PAM service name.
    pub service: BTreeMap<String, ServiceOverride>,
}

/// The parsed module arguments of a pam.d line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleArgs {
    /// `config=/abs/path`: the configuration file to read instead of the default.
    pub config: Option<PathBuf>,
    /// Bare `debug`: log one line per effective setting and decision.
    pub debug: bool,
    /// Settings that overlay the file, as canonical `section.key` and the raw value.
    pub overrides: Vec<(String, String)>,
}

impl ModuleArgs {
    /// The configuration file to read: `config=` or [`DEFAULT_CONFIG_PATH`].
    pub fn config_path(&self) -> &Path {
        self.config
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CONFIG_PATH))
    }
}

/// The configuration could not be used. The `Display` text is written for
/// the administrator who has to fix it.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read, or failed its owner, mode or size checks.
    File(FileError),
    /// The file or the module arguments say something invalid.
    Invalid {
        /// The file path, or [`ARGS_ORIGIN`].
        origin: String,
        /// 1-based line, when the problem sits on one line of the file.
        line: Option<usize>,
        /// 1-based column in characters, with `line`.
        column: Option<usize>,
        /// The dotted key, e.g. `policy.not_configured`, when known.
        key: Option<String>,
        /// What is wrong, and what to do about it.
        message: String,
    },
}

impl ConfigError {
    fn invalid(origin: &str, key: Option<String>, message: String) -> Self {
        ConfigError::Invalid {
            origin: origin.to_owned(),
            line: None,
            column: None,
            key,
            message,
        }
    }

    fn args(key: Option<String>, message: String) -> Self {
        Self::invalid(ARGS_ORIGIN, key, message)
    }

    /// The dotted key the error is about, if known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => key.as_deref(),
            ConfigError::File(_) => None,
        }
    }

    /// The 1-based line in the file, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::File(_) => None,
        }
    }

    /// The file path or [`ARGS_ORIGIN`] for an invalid setting.
    pub fn origin(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { origin, .. } => Some(origin),
            ConfigError::File(_) => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::File(e) if e.is_missing() => write!(
                f,
                "{e}; pam_mfa cannot work without its configuration file: install it (an empty file selects every default)"
            ),
            ConfigError::File(e) => write!(f, "pam_mfa configuration refused: {e}"),
            ConfigError::Invalid {
                origin,
                line,
                column,
                key,
                message,
            } => {
                f.write_str(origin)?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                    if let Some(column) = column {
                        write!(f, ":{column}")?;
                    }
                }
                if let Some(key) = key {
                    write!(f, ": {key}")?;
                }
                write!(f, ": {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::File(e) => Some(e),
            ConfigError::Invalid { .. } => None,
        }
    }
}

impl From<FileError> for ConfigError {
    fn from(e: FileError) -> Self {
        ConfigError::File(e)
    }
}

impl Config {
    /// Reads the configuration at `path` and overlays `overrides` (canonical
    /// or bare keys, as [`parse_module_args`] returns them).
    ///
    /// The file must be a regular file owned by the trusted uid, writable by
    /// nobody else, in a directory nobody else can write, at most
    /// [`MAX_CONFIG_SIZE`] bytes. A missing file is an error: the shells
    /// decide what that means, and the module fails closed.
    ///
    /// # Errors
    /// [`ConfigError::File`] if the file is missing or refused;
    /// [`ConfigError::Invalid`] for anything it or the overrides say wrongly.
    pub fn load(
        path: &Path,
        trust: FileTrust,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let bytes = fsutil::read_trusted(path, trust, Access::WorldReadable, MAX_CONFIG_SIZE)?;
        let origin = path.display().to_string();
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let (line, column) = position(&String::from_utf8_lossy(&bytes), e.valid_up_to());
            ConfigError::Invalid {
                origin: origin.clone(),
                line: Some(line),
                column: Some(column),
                key: None,
                message: "the file is not valid UTF-8; save it as UTF-8".to_owned(),
            }
        })?;
        Self::parse_with_overrides(text, &origin, overrides)
    }

    /// Parses configuration text; `origin` names it in errors. No filesystem.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the line, column and key at fault.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::parse_with_overrides(text, origin, &[])
    }

    /// Parses configuration text and overlays module-argument `overrides`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with `origin` for problems in the text, or
    /// [`ARGS_ORIGIN`] for problems an override causes.
    pub fn parse_with_overrides(
        text: &str,
        origin: &str,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut config = match plain::read(text) {
            Some(config) => {
                debug_assert_eq!(
                    Self::read_toml(text, origin).ok().as_ref(),
                    Some(&config),
                    "the plain reader and the TOML reader disagree about {text:?}"
                );
                config
            }
            None => Self::read_toml(text, origin)?,
        };
        config.check_service_names(text, origin)?;
        // The overrides go onto the typed configuration, each checked by the
        // same deserializer as the key in the file.
        let mut overridden = Vec::with_capacity(overrides.len());
        for (name, raw) in overrides {
            let setting = resolve_arg_key(name, OVERLAY_KEYS)?;
            let key = setting.dotted();
            if overridden.contains(&key) {
                return Err(ConfigError::args(
                    Some(key),
                    "given more than once; keep one".to_owned(),
                ));
            }
            setting.apply(&mut config, raw)?;
            overridden.push(key);
        }
        config.check_consistency().map_err(|problem| {
            if let Some(key) = problem
                .keys
                .iter()
                .find(|k| overridden.iter().any(|o| o == *k))
            {
                return ConfigError::args(Some((*key).to_owned()), problem.message);
            }
            let key = problem.keys[0];
            let (line, column) = locate_key(text, key)
                .map(|found| (found.line, found.column))
                .unzip();
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                key: Some(key.to_owned()),
                message: problem.message,
            }
        })?;
        Ok(config)
    }

    /// Reads `text` with the full TOML reader: the one that explains what is
    /// wrong. Everything but the names of services is checked.
    fn read_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let code = without_comments(text).map_err(|(offset, message)| {
            let (line, column) = position(text, offset);
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line: Some(line),
                column: Some(column),
                // No setting has a key this long; it would only flood the log.
                key: key_at(text, offset).filter(|key| key.len() <= 128),
                message: format!("TOML syntax error: {message}"),
            }
        })?;
        basic_toml::from_str(&code).map_err(|e| text_error(text, &code, origin, &e))
    }

    /// One `key=value` line per effective setting, in the vocabulary of the
    /// file and the module arguments, for the module's `debug` option.
    pub fn describe(&self) -> Vec<String> {
        fn path(p: &Path) -> String {
            p.display().to_string()
        }
        let algorithm = match self.totp.algorithm {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        };
        let mut lines: Vec<String> = [
            (
                "policy.not_configured",
                self.policy.not_configured.to_string(),
            ),
            (
                "policy.remember_seconds",
                self.policy.remember_seconds.to_string(),
            ),
            ("totp.algorithm", algorithm.to_owned()),
            ("totp.digits", self.totp.digits.to_string()),
            ("totp.period", self.totp.period.to_string()),
            ("totp.window", self.totp.window.to_string()),
            ("totp.issuer", self.totp.issuer.clone()),
            ("recovery.count", self.recovery.count.to_string()),
            ("recovery.length", self.recovery.length.to_string()),
            (
                "throttle.backoff_after",
                self.throttle.backoff_after.to_string(),
            ),
            (
                "throttle.backoff_seconds",
                self.throttle.backoff_seconds.to_string(),
            ),
            (
                "throttle.backoff_max_seconds",
                self.throttle.backoff_max_seconds.to_string(),
            ),
            (
                "throttle.lockout_after",
                self.throttle.lockout_after.to_string(),
            ),
            (
                "throttle.fail_delay_ms",
                self.throttle.fail_delay_ms.to_string(),
            ),
            ("enrollment.qr", self.enrollment.qr.to_string()),
            (
                "enrollment.pending_max_age",
                self.enrollment.pending_max_age.to_string(),
            ),
            ("groups.require", self.groups.require.join(",")),
            (
                "groups.require_policy",
                self.groups.require_policy.to_string(),
            ),
            ("groups.exempt", self.groups.exempt.join(",")),
            ("paths.state_dir", path(&self.paths.state_dir)),
            ("paths.key_file", path(&self.paths.key_file)),
            (
                "paths.enroll_public_key",
                path(&self.paths.enroll_public_key),
            ),
            ("paths.spool_dir", path(&self.paths.spool_dir)),
        ]
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        for (name, o) in &self.service {
            if let Some(nc) = o.not_configured {
                lines.push(format!("service.{name}.not_configured={nc}"));
            }
            if let Some(secs) = o.remember_seconds {
                lines.push(format!("service.{name}.remember_seconds={secs}"));
            }
            if o.break_glass {
                lines.push(format!("service.{name}.break_glass=true"));
            }
        }
        lines
    }

    /// Refuses a `[service.NAME]` whose NAME no PAM service can have. Checked
    /// after the text is read, where the key is found again in the text.
    fn check_service_names(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let Some(name) = self.service.keys().find(|name| !is_service_name(name)) else {
            return Ok(());
        };
        let key = format!("service.{name}");
        let (line, column) = locate_key(text, &key)
            .map(|found| (found.line, found.column))
            .unzip();
        let lower = name.to_ascii_lowercase();
        // libpam lowercases the service name in pam_start: a table with
        // capitals would silently never apply.
        let message = if is_service_name(&lower) {
            format!(
                "`{name}` has capitals, but libpam lowercases PAM service names, so this table would never apply; write [service.{lower}]"
            )
        } else {
            format!(
                "`{}` is not a PAM service name; use 1 to 64 of a-z 0-9 _ . - as in the file name in /etc/pam.d",
                name.escape_debug()
            )
        };
        Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            line,
            column,
            key: Some(key),
            message,
        })
    }

    /// Rules that span several keys, checked after the overlay.
    fn check_consistency(&self) -> Result<(), Problem> {
        let t = &self.throttle;
        if t.backoff_max_seconds < t.backoff_seconds {
            return Err(Problem {
                keys: &["throttle.backoff_max_seconds", "throttle.backoff_seconds"],
                message: format!(
                    "{} is below throttle.backoff_seconds ({}); the ceiling must be at least the first delay",
                    t.backoff_max_seconds, t.backoff_seconds
                ),
            });
        }
        if t.lockout_after <= t.backoff_after {
            return Err(Problem {
                keys: &["throttle.lockout_after", "throttle.backoff_after"],
                message: format!(
                    "{} must be greater than throttle.backoff_after ({}), or back-off would never come before the lockout",
                    t.lockout_after, t.backoff_after
                ),
            });
        }
        if let Some(group) = self
            .groups
            .exempt
            .iter()
            .find(|g| self.groups.require.contains(g))
        {
            return Err(Problem {
                keys: &["groups.exempt", "groups.require"],
                message: format!(
                    "group `{group}` is also in groups.require; a group cannot be both required and exempt, remove it from one list"
                ),
            });
        }
        Ok(())
    }
}

/// A rule across keys was broken; `keys[0]` is the one to blame by default.
struct Problem {
    keys: &'static [&'static str],
    message: String,
}

/// Parses the arguments of a pam.d line: bare `debug`, `config=/abs/path`,
/// and any setting as `section.key=value` or, where the key name is unique,
/// `key=value`. Values are checked against the same rules as the file.
///
/// # Errors
/// [`ConfigError::Invalid`] with origin [`ARGS_ORIGIN`] for an unknown or
/// ambiguous argument, a missing `=`, an empty or invalid value, a setting
/// given twice, or a relative `config=` path.
pub fn parse_module_args(args: &[&str]) -> Result<ModuleArgs, ConfigError> {
    let mut parsed = ModuleArgs::default();
    for arg in args {
        if *arg == "debug" {
            parsed.debug = true;
            continue;
        }
        let Some((name, value)) = arg.split_once('=') else {
            if *arg == "config" {
                return Err(ConfigError::args(
                    Some("config".to_owned()),
                    "needs a value: config=/absolute/path/pam_mfa.toml".to_owned(),
                ));
            }
            let setting = resolve_arg_key(arg, OVERLAY_KEYS)?;
            return Err(ConfigError::args(
                Some(setting.dotted()),
                format!("needs a value: {arg}={}", setting.kind.placeholder()),
            ));
        };
        if name == "debug" {
            return Err(ConfigError::args(
                Some("debug".to_owned()),
                "takes no value; write just `debug`".to_owned(),
            ));
        }
        if name == "config" {
            if value.is_empty() || !value.starts_with('/') {
                return Err(ConfigError::args(
                    Some("config".to_owned()),
                    format!("`{value}` is not an absolute path; write config=/absolute/path"),
                ));
            }
            if parsed.config.is_some() {
                return Err(ConfigError::args(
                    Some("config".to_owned()),
                    "given more than once; keep one".to_owned(),
                ));
            }
            parsed.config = Some(PathBuf::from(value));
            continue;
        }
        let setting = resolve_arg_key(name, OVERLAY_KEYS)?;
        let key = setting.dotted();
        if value.is_empty() {
            return Err(ConfigError::args(
                Some(key),
                format!(
                    "has an empty value; write {name}={}",
                    setting.kind.placeholder()
                ),
            ));
        }
        if parsed.overrides.iter().any(|(k, _)| *k == key) {
            return Err(ConfigError::args(
                Some(key),
                "given more than once; keep one".to_owned(),
            ));
        }
        // Checked now, so that a bad value is refused as an argument before
        // any file is read.
        setting.apply(&mut Config::default(), value)?;
        parsed.overrides.push((key, value.to_owned()));
    }
    Ok(parsed)
}

/// How a module-argument value is typed: as the same key's value in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Text,
    /// Comma-separated, like a group list.
    List,
}

impl Kind {
    fn placeholder(self) -> &'static str {
        match self {
            Kind::Integer => "N",
            Kind::Text => "VALUE",
            Kind::List => "NAME,NAME",
        }
    }
}

/// One setting module arguments may overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setting {
    section: &'static str,
    leaf: &'static str,
    kind: Kind,
}

impl Setting {
    const fn new(section: &'static str, leaf: &'static str, kind: Kind) -> Self {
        Setting {
            section,
            leaf,
            kind,
        }
    }

    fn dotted(self) -> String {
        format!("{}.{}", self.section, self.leaf)
    }

    /// Sets this key of `config` to the module-argument value `raw`, typed
    /// by [`Kind`] as the same key's value in the file would be.
    fn apply(self, config: &mut Config, raw: &str) -> Result<(), ConfigError> {
        let value = match self.kind {
            Kind::Integer => SettingValue::Integer(raw.parse().map_err(|_| {
                ConfigError::args(
                    Some(self.dotted()),
                    format!("`{raw}` is not a whole number"),
                )
            })?),
            Kind::Text => SettingValue::Text(raw),
            Kind::List => SettingValue::List(raw.split(',').collect()),
        };
        self.set(config, value)
            .map_err(|e| ConfigError::args(Some(self.dotted()), clean_message(&e.to_string())))
    }
}

/// Declares the keys module arguments may set, as `section.leaf: Kind`, and
/// how [`Setting::set`] sets each: one list, so the two cannot diverge.
macro_rules! overlay_keys {
    ($($section:ident . $leaf:ident : $kind:ident,)+) => {
        /// Every key module arguments may set: all of them except `[service.NAME]`.
        const OVERLAY_KEYS: &[Setting] = &[
            $(Setting::new(stringify!($section), stringify!($leaf), Kind::$kind),)+
        ];

        impl Setting {
            /// Sets this key of `config` to `value`, deserialized as the key's
            /// whole section would be, by the key's own deserializer: a
            /// module argument obeys exactly the rules of the file, and gets
            /// the same messages.
            fn set(self, config: &mut Config, value: SettingValue<'_>) -> Result<(), de::value::Error> {
                match (self.section, self.leaf) {
                    $((stringify!($section), stringify!($leaf)) => {
                        config.$section.$leaf = section_with(&config.$section, self.leaf, value)?.$leaf;
                    })+
                    _ => return Err(de::Error::custom("cannot be set by a module argument")),
                }
                Ok(())
            }
        }
    };
}

overlay_keys! {
    policy.not_configured: Text,
    policy.remember_seconds: Integer,
    totp.algorithm: Text,
    totp.digits: Integer,
    totp.period: Integer,
    totp.window: Integer,
    totp.issuer: Text,
    recovery.count: Integer,
    recovery.length: Integer,
    throttle.backoff_after: Integer,
    throttle.backoff_seconds: Integer,
    throttle.backoff_max_seconds: Integer,
    throttle.lockout_after: Integer,
    throttle.fail_delay_ms: Integer,
    enrollment.qr: Text,
    enrollment.pending_max_age: Integer,
    groups.require: List,
    groups.require_policy: Text,
    groups.exempt: List,
    paths.state_dir: Text,
    paths.key_file: Text,
    paths.enroll_public_key: Text,
    paths.spool_dir: Text,
}

/// The section `S` as a file setting only `leaf = value` in it would give
/// it; `current` only names the section's type.
fn section_with<'a, S: Deserialize<'a>>(
    _current: &S,
    leaf: &'a str,
    value: SettingValue<'a>,
) -> Result<S, de::value::Error> {
    S::deserialize(de::value::MapDeserializer::new(std::iter::once((
        leaf, value,
    ))))
}

/// A value for one key: a module argument typed as the same key's value in
/// the file would be, or a value of the file itself.
#[derive(Debug, Clone)]
enum SettingValue<'a> {
    Integer(i64),
    Text(&'a str),
    /// `true` or `false`, only in the file.
    Bool(bool),
    /// An array of strings.
    List(Vec<&'a str>),
}

impl<'de> Deserializer<'de> for SettingValue<'de> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            SettingValue::Integer(n) => visitor.visit_i64(n),
            SettingValue::Text(s) => visitor.visit_borrowed_str(s),
            SettingValue::Bool(b) => visitor.visit_bool(b),
            SettingValue::List(items) => {
                let mut items = de::value::SeqDeserializer::new(items.into_iter());
                let list = visitor.visit_seq(&mut items)?;
                items.end()?;
                Ok(list)
            }
        }
    }

    // As in the file, a value given is `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> de::IntoDeserializer<'de, de::value::Error> for SettingValue<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// Finds the setting a module-argument name refers to: `section.key`
/// exactly, or a bare `key` that only one section has.
fn resolve_arg_key(name: &str, vocabulary: &[Setting]) -> Result<Setting, ConfigError> {
    let unknown = || {
        ConfigError::args(
            None,
            format!("unknown module argument `{name}`; see pam_mfa(8)"),
        )
    };
    if name == "break_glass" {
        return Err(ConfigError::args(
            Some(name.to_owned()),
            format!(
                "{BREAK_GLASS_PER_SERVICE} of the configuration file, not as a module argument"
            ),
        ));
    }
    if let Some((section, leaf)) = name.split_once('.') {
        if section == "service" {
            return Err(ConfigError::args(
                Some(name.to_owned()),
                "per-service settings cannot be module arguments; use a [service.NAME] table in the configuration file".to_owned(),
            ));
        }
        return vocabulary
            .iter()
            .find(|s| s.section == section && s.leaf == leaf)
            .copied()
            .ok_or_else(unknown);
    }
    let mut matches = vocabulary.iter().filter(|s| s.leaf == name);
    let first = matches.next().copied().ok_or_else(unknown)?;
    let others: Vec<String> = matches.map(|s| format!("`{}`", s.dotted())).collect();
    if others.is_empty() {
        Ok(first)
    } else {
        Err(ConfigError::args(
            Some(name.to_owned()),
            format!(
                "ambiguous module argument `{name}`; write `{}` or {}",
                first.dotted(),
                others.join(" or ")
            ),
        ))
    }
}

/// Turns a `basic_toml` error about `code`, which is `text` without its
/// comments, into one naming the line, column and key in `text`.
fn text_error(text: &str, code: &str, origin: &str, err: &basic_toml::Error) -> ConfigError {
    // The document is checked on its own first, without the settings, so
    // that a text that is not even TOML says so (and is reported as such
    // even where the settings found something wrong earlier in the file).
    if let Err(syntax) = basic_toml::from_str::<de::IgnoredAny>(code) {
        let (message, _, offset) = split_error(text, &syntax);
        let (line, column) = offset.map(|o| position(text, o)).unzip();
        return ConfigError::Invalid {
            origin: origin.to_owned(),
            line,
            column,
            key: offset.and_then(|o| key_at(text, o)),
            message: format!("TOML syntax error: {message}"),
        };
    }
    let (message, context, offset) = split_error(text, err);
    // A key the settings do not know is named only in the message.
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    let key = match (context, unknown) {
        (Some(context), Some(name)) => Some(format!("{context}.{name}")),
        (context, name) => context.or_else(|| name.map(str::to_owned)),
    }
    .filter(|key| !key.is_empty());
    // The parser knows where each value sits, but not where a key or a
    // table header does: those it attributes to the last table header of the
    // file. Find them in the text instead, and never point at a guess.
    let found = key.as_deref().and_then(|k| locate_key(text, k));
    let (line, column) = match found {
        Some(found) if unknown.is_some() || found.header => Some((found.line, found.column)),
        _ => offset
            .filter(|&o| !is_table_header_at(text, o))
            .map(|o| position(text, o)),
    }
    .unzip();
    let message = if unknown == Some("break_glass") {
        BREAK_GLASS_PER_SERVICE.to_owned()
    } else {
        clean_message(&message)
    };
    ConfigError::Invalid {
        origin: origin.to_owned(),
        line,
        column,
        key,
        message,
    }
}

/// Why `break_glass` is refused anywhere but in a `[service.NAME]` table.
const BREAK_GLASS_PER_SERVICE: &str = "break_glass can only be set in a [service.NAME] table, for one PAM service (the console login: [service.login])";

/// A `basic_toml` error taken apart: the message alone, the dotted key it
/// names, and the byte offset in `text` it points at.
fn split_error(text: &str, err: &basic_toml::Error) -> (String, Option<String>, Option<usize>) {
    // Displayed as "MESSAGE[ for key `KEY`][ at line L column C]".
    let mut shown = err.to_string();
    let offset = err.line_col().map(|(line, column)| {
        let suffix = format!(" at line {} column {}", line + 1, column + 1);
        if shown.ends_with(&suffix) {
            shown.truncate(shown.len() - suffix.len());
        }
        byte_offset(text, line, column)
    });
    let mut context = None;
    if shown.ends_with('`') {
        if let Some(at) = shown.rfind(" for key `") {
            context = Some(shown[at + " for key `".len()..shown.len() - 1].to_owned());
            shown.truncate(at);
        }
    }
    (shown, context, offset)
}

/// The byte offset of 0-based `line` and byte `column` in `text`.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text.split('\n').take(line).map(|l| l.len() + 1).sum();
    (start + column).min(text.len())
}

/// Whether byte `offset` of `text` is the `[` that opens a table header.
fn is_table_header_at(text: &str, offset: usize) -> bool {
    let Some(before) = text.get(..offset) else {
        return false;
    };
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].split('\n').next().unwrap_or_default();
    before[line_start..].trim().is_empty() && header_name(line).is_some()
}

/// The error message on one line, in the words of a config file.
fn clean_message(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let replaced = joined.replacen("unknown field", "unknown key", 1);
    if replaced.starts_with("unknown key") {
        format!("{replaced}; check the spelling against the annotated default pam_mfa.toml")
    } else {
        replaced
    }
}

/// The deepest nesting of tables, arrays and dotted keys read. The parser
/// recurses once per level: unbounded, a 64 KiB file could overflow the
/// stack of the process that loaded the module, which would abort it rather
/// than refuse the file. Valid settings nest three deep.
const MAX_NESTING: usize = 32;

/// `text` with every comment cut out (from `#` to the end of its line, so
/// that everything else keeps its line and column), for the TOML parser:
/// it reads comments a character at a time, and they are most of a file.
///
/// Refuses, with the byte offset and what is wrong, what the parser then
/// could not: a control character other than tab in a comment, and nesting
/// of tables, arrays and dotted keys more than [`MAX_NESTING`] deep. The
/// depth is counted over-generously (a dot in a number counts too) but
/// never less than the parser will recurse. Strings are skipped exactly as
/// TOML reads them, so that a `#` in a string is never taken for a comment.
fn without_comments(text: &str) -> Result<String, (usize, String)> {
    let b = text.as_bytes();
    let mut code = String::with_capacity(text.len());
    // Where the text not yet copied to `code` starts.
    let mut kept = 0;
    // The depth at each open `[` or `{` of a value, to return to at its close.
    let mut open = [0usize; MAX_NESTING + 1];
    let mut opened = 0;
    // The depth here, and the depth a key-value line starts at: the number
    // of parts of the table header above it.
    let mut depth = 0;
    let mut base = 0;
    let mut in_header = false;
    let mut line_start = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        match c {
            b'\n' => {
                if opened == 0 {
                    depth = base;
                }
                line_start = true;
                continue;
            }
            b' ' | b'\t' => continue,
            b'\r' if b.get(i) == Some(&b'\n') => continue,
            // A lone CR is no line break in TOML, not even before a comment.
            b'\r' => return Err((i - 1, "unexpected character found: `\\r`".to_owned())),
            b'#' => {
                let mut end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n);
                // Of a CRLF line break, the CR is cut out with the comment.
                if end < b.len() && b[end - 1] == b'\r' {
                    end -= 1;
                }
                let control = b[i..end]
                    .iter()
                    .position(|&c| (c < 0x20 && c != b'\t') || c == 0x7f);
                if let Some(at) = control {
                    let found = char::from(b[i + at]).escape_default();
                    return Err((i + at, format!("control character `{found}` in a comment")));
                }
                code.push_str(&text[kept..i - 1]);
                kept = end;
                i = end;
            }
            b'"' | b'\'' => i = string_end(b, i - 1),
            b'[' if opened == 0 && line_start => {
                in_header = true;
                depth = 1;
                if b.get(i) == Some(&b'[') {
                    i += 1;
                }
            }
            b'[' | b'{' => {
                open[opened] = depth;
                opened += 1;
                depth += 1;
            }
            b']' if in_header && opened == 0 => {
                in_header = false;
                base = depth;
            }
            b']' | b'}' if opened > 0 => {
                opened -= 1;
                depth = open[opened];
            }
            b',' if opened > 0 => depth = open[opened - 1] + 1,
            b'.' => depth += 1,
            _ => {}
        }
        line_start = false;
        if depth > MAX_NESTING || opened == MAX_NESTING {
            return Err((
                i - 1,
                format!("tables, arrays and dotted keys nested more than {MAX_NESTING} deep; no setting needs more than 3"),
            ));
        }
    }
    code.push_str(&text[kept..]);
    Ok(code)
}

/// The index just past the TOML string that opens at `b[start]` (a `"` or
/// `'`, single or tripled), or the end of its line if it is unterminated on
/// one line, or of the text.
fn string_end(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let escapes = quote == b'"';
    let multi_line = b[start..].starts_with(&[quote; 3]);
    let mut i = start + if multi_line { 3 } else { 1 };
    while i < b.len() {
        match b[i] {
            b'\\' if escapes => i += 2,
            b'\n' if !multi_line => return i,
            c if c == quote && !multi_line => return i + 1,
            c if c == quote && b[i..].starts_with(&[quote; 3]) => {
                // Up to two quotes of the content may touch the closing three.
                let run = b[i..].iter().take_while(|&&c| c == quote).count();
                return i + run.min(5);
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The dotted key that byte `offset` of `text` belongs to, read from the
/// source: a table header on that line, or the key of the assignment on that
/// line (or the nearest line above inside a multi-line value) joined to the
/// nearest preceding header. A best effort for error messages only.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let index = position(text, offset).0 - 1;
    let mut i = index.min(lines.len().saturating_sub(1));
    let leaf = loop {
        let line = lines.get(i)?;
        if let Some(header) = header_name(line) {
            return (i == index).then_some(header);
        }
        if let Some(key) = assignment_key(line) {
            break key;
        }
        i = i.checked_sub(1)?;
    };
    match lines[..i].iter().rev().find_map(|l| header_name(l)) {
        Some(section) => Some(format!("{section}.{leaf}")),
        None => Some(leaf),
    }
}

/// Where a key is written in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    /// 1-based.
    line: usize,
    /// 1-based, in characters: where the key starts.
    column: usize,
    /// In a table header rather than an assignment.
    header: bool,
}

/// The first place `text` writes dotted `key`, or a key inside it: a table
/// header or an assignment. Not found inside inline tables.
fn locate_key(text: &str, key: &str) -> Option<Found> {
    let names = |written: &str| {
        written
            .strip_prefix(key)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    };
    let mut section: Option<String> = None;
    for (i, line) in text.split('\n').enumerate() {
        let indent = line.chars().take_while(|c| c.is_whitespace()).count();
        if let Some(header) = header_name(line) {
            if names(&header) {
                let brackets = line.trim_start().chars().take_while(|&c| c == '[').count();
                let inner = line.trim_start()[brackets..].chars();
                let space = inner.take_while(|c| c.is_whitespace()).count();
                return Some(Found {
                    line: i + 1,
                    column: indent + brackets + space + 1,
                    header: true,
                });
            }
            section = Some(header);
            continue;
        }
        let Some(leaf) = assignment_key(line) else {
            continue;
        };
        let full = match &section {
            Some(s) => format!("{s}.{leaf}"),
            None => leaf,
        };
        if names(&full) {
            return Some(Found {
                line: i + 1,
                column: indent + 1,
                header: false,
            });
        }
    }
    None
}

/// Byte index of the first `target` in `line` outside a quoted string, or of
/// a comment start if that comes first (then `None`).
fn find_unquoted(line: &str, target: char) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            // Only basic ("...") strings have backslash escapes.
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            None if c == target => return Some(i),
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return None,
            _ => {}
        }
    }
    None
}

/// The normalized name of a `[table]` or `[[array]]` header line.
fn header_name(line: &str) -> Option<String> {
    let code = match find_unquoted(line, '#') {
        Some(i) => &line[..i],
        None => line,
    }
    .trim();
    let inner = code
        .strip_prefix("[[")
        .and_then(|s| s.strip_suffix("]]"))
        .or_else(|| code.strip_prefix('[').and_then(|s| s.strip_suffix(']')))?;
    // An array element such as `[1, 2]` inside a multi-line value is no header.
    if find_unquoted(inner, ',').is_some() || find_unquoted(inner, '=').is_some() {
        return None;
    }
    dotted_key(inner)
}

/// The normalized key of a `key = value` line.
fn assignment_key(line: &str) -> Option<String> {
    let eq = find_unquoted(line, '=')?;
    dotted_key(&line[..eq])
}

/// `a . "b.c" . 'd'` -> `a.b.c.d`; `None` if a part is empty.
fn dotted_key(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut rest = raw;
    loop {
        let (part, tail) = match find_unquoted(rest, '.') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let part = part.trim();
        let unquoted = part
            .strip_prefix('"')
            .and_then(|p| p.strip_suffix('"'))
            .or_else(|| part.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')))
            .unwrap_or(part);
        if unquoted.is_empty() {
            return None;
        }
        parts.push(unquoted);
        match tail {
            Some(t) => rest = t,
            None => break,
        }
    }
    Some(parts.join("."))
}

// Field deserializers. Each checks its value inside the visitor, while the
// parser still knows where the value sits in the file, so that the error
// carries the line and column.

/// One of a fixed set of words, compared exactly (case matters).
#[derive(Clone, Copy)]
struct Words<T: 'static>(&'static [(&'static str, T)]);

impl<T: Copy> Words<T> {
    fn list(&self) -> String {
        let words: Vec<String> = self.0.iter().map(|(w, _)| format!("`{w}`")).collect();
        words.join(", ")
    }
}

impl<T: Copy> Visitor<'_> for Words<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", self.list())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        match self.0.iter().find(|(w, _)| *w == v) {
            Some((_, value)) => Ok(*value),
            None => Err(E::custom(format!(
                "unknown value `{v}`, expected one of {}",
                self.list()
            ))),
        }
    }
}

fn algorithm<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
    d.deserialize_str(Words(&[
        ("SHA1", Algorithm::Sha1),
        ("SHA256", Algorithm::Sha256),
        ("SHA512", Algorithm::Sha512),
    ]))
}

/// A whole number from `MIN` to `MAX`; anything else is refused, never clamped.
struct RangeVisitor<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Visitor<'_> for RangeVisitor<MIN, MAX> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number from {MIN} to {MAX}")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if (MIN..=MAX).contains(&v) {
            Ok(v)
        } else {
            Err(E::custom(format!(
                "{v} is out of range; use a whole number from {MIN} to {MAX}"
            )))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "{v} is out of range; use a whole number from {MIN} to {MAX}"
            ))),
        }
    }
}

fn ranged<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let v = d.deserialize_u64(RangeVisitor::<MIN, MAX>)?;
    T::try_from(v).map_err(|_| de::Error::custom(format!("{v} does not fit this setting")))
}

fn some_ranged<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    ranged::<D, T, MIN, MAX>(d).map(Some)
}

fn digits<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    struct Digits;
    impl Visitor<'_> for Digits {
        type Value = u8;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("6 or 8")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u8, E> {
            match v {
                6 => Ok(6),
                8 => Ok(8),
                _ => Err(E::custom(format!(
                    "{v} digits are not supported; use 6 or 8"
                ))),
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u8, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
    }
    d.deserialize_u64(Digits)
}

/// A string checked by `check` as it is read: a refusal then carries the
/// position of the value (a check after reading would come too late for it).
struct CheckedStr<T>(fn(&str) -> Result<T, String>);

impl<T> Visitor<'_> for CheckedStr<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

fn issuer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(CheckedStr(|s| {
        if s.chars().count() > 64 {
            return Err(
                "longer than 64 characters; authenticator apps cut it off, shorten it".to_owned(),
            );
        }
        // The otpauth label is `issuer:account`; a colon would move the split.
        if s.contains(':') {
            return Err(
                "must not contain `:`, which separates issuer and account in the app".to_owned(),
            );
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters".to_owned());
        }
        Ok(s.to_owned())
    }))
}

/// One name in a group list.
struct GroupName(String);

impl<'de> Deserialize<'de> for GroupName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CheckedStr(|g| {
            if g.is_empty() {
                return Err("contains an empty group name".to_owned());
            }
            // ',' separates groups in module arguments and ':' fields in /etc/group.
            if g.contains(',') || g.contains(':') || g.chars().any(char::is_control) {
                return Err(format!(
                    "`{}` is not a group name; names cannot contain `,`, `:` or control characters",
                    g.escape_debug()
                ));
            }
            Ok(GroupName(g.to_owned()))
        }))
    }
}

fn group_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let groups = Vec::<GroupName>::deserialize(d)?;
    Ok(groups.into_iter().map(|g| g.0).collect())
}

fn require_policy<'de, D: Deserializer<'de>>(d: D) -> Result<NotConfigured, D::Error> {
    struct RequirePolicy;
    impl Visitor<'_> for RequirePolicy {
        type Value = NotConfigured;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            NOT_CONFIGURED_WORDS.expecting(f)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<NotConfigured, E> {
            match NOT_CONFIGURED_WORDS.visit_str(v)? {
                NotConfigured::Skip => Err(E::custom(
                    "\"skip\" would let required groups log in without MFA; use \"configure\" or \"deny\"",
                )),
                policy => Ok(policy),
            }
        }
    }
    d.deserialize_str(RequirePolicy)
}

fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    d.deserialize_str(CheckedStr(|s| {
        // Relative paths would depend on the working directory of whatever
        // program loaded the module.
        if !s.starts_with('/') {
            return Err(format!(
                "`{s}` is not an absolute path; write it starting with /"
            ));
        }
        if s.contains('\0') {
            return Err("must not contain a NUL character".to_owned());
        }
        Ok(PathBuf::from(s))
    }))
}

/// Whether `name` can be a PAM service name as libpam passes it to modules,
/// as in `[service.NAME]`: lower case, because libpam lowercases it.
fn is_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_key_two_sections_share_is_ambiguous() {
        let vocabulary = [
            Setting::new("a", "size", Kind::Integer),
            Setting::new("b", "size", Kind::Integer),
            Setting::new("b", "name", Kind::Text),
        ];
        let err = resolve_arg_key("size", &vocabulary).unwrap_err();
        assert_eq!(err.key(), Some("size"));
        assert!(err.to_string().contains("ambiguous"), "{err}");
        assert!(err.to_string().contains("`a.size` or `b.size`"), "{err}");
        assert_eq!(resolve_arg_key("b.size", &vocabulary).unwrap().section, "b");
        assert_eq!(resolve_arg_key("name", &vocabulary).unwrap().section, "b");
    }

    #[test]
    fn every_bare_overlay_key_is_unique() {
        for s in OVERLAY_KEYS {
            assert_eq!(resolve_arg_key(s.leaf, OVERLAY_KEYS).unwrap(), *s);
        }
    }

    #[test]
    fn describe_lists_exactly_the_overlay_keys() {
        let described: Vec<String> = Config::default()
            .describe()
            .into_iter()
            .map(|l| l.split_once('=').unwrap().0.to_owned())
            .collect();
        let vocabulary: Vec<String> = OVERLAY_KEYS.iter().map(|s| s.dotted()).collect();
        assert_eq!(described, vocabulary);
    }

    #[test]
    fn keys_are_read_from_headers_and_assignments() {
        let text = "top = 1\n[a . \"b.c\"]\n# x = 1\nk = [\n  1,\n]\n[[arr]]\n";
        assert_eq!(
            assignment_key("\"a\\\"=b\" = 1").as_deref(),
            Some("a\\\"=b")
        );
        assert_eq!(key_at(text, 0).as_deref(), Some("top"));
        assert_eq!(key_at(text, 9).as_deref(), Some("a.b.c"));
        let element = text.find("1,").unwrap();
        assert_eq!(key_at(text, element).as_deref(), Some("a.b.c.k"));
        let arr = text.find("arr").unwrap();
        assert_eq!(key_at(text, arr).as_deref(), Some("arr"));
        let found = locate_key(text, "a.b.c.k").unwrap();
        assert_eq!((found.line, found.column, found.header), (4, 1, false));
        assert_eq!(locate_key(text, "a.b.c.x"), None);
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(position("ä = 1\nx", 0), (1, 1));
        assert_eq!(position("ä = 1\nx", 3), (1, 3));
        assert_eq!(position("ä = 1\nx", 7), (2, 1));
        assert_eq!(position("ab", 99), (1, 3));
    }
}

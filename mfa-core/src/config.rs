//! The configuration file and the module arguments that overlay it.
//!
//! One vocabulary serves both: every setting is `section.key` in the TOML
//! file (`/etc/security/pam_mfa.toml`), and the same `section.key=value` (or a
//! bare `key=value` where the key name is unique) as a module argument in a
//! pam.d line. Anything the parser does not understand is an error that names
//! where it came from, the line and column, and the dotted key: an unknown
//! key, a bad enum value or an out-of-range number is never ignored or
//! clamped, because a typo in a security policy must not quietly weaken it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::fsutil::{self, Access, FileError, FileTrust};
use crate::totp::Algorithm;

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
        d.deserialize_str(Words(&[
            ("skip", NotConfigured::Skip),
            ("configure", NotConfigured::Configure),
            ("deny", NotConfigured::Deny),
        ]))
    }
}

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

/// `[service.NAME]`: settings that replace `[policy]` for one PAM service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [service.NAME] table")]
pub struct ServiceOverride {
    /// Replaces `policy.not_configured` for this service.
    pub not_configured: Option<NotConfigured>,
    /// Replaces `policy.remember_seconds` for this service.
    #[serde(deserialize_with = "some_ranged::<_, _, 0, MAX_REMEMBER_SECONDS>")]
    pub remember_seconds: Option<u32>,
}

/// The policy in force for one PAM service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePolicy {
    /// What happens to a user with no device.
    pub not_configured: NotConfigured,
    /// Seconds a successful MFA on this service is remembered; 0 is off.
    pub remember_seconds: u32,
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
    #[serde(deserialize_with = "service_tables")]
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
        // Deserialize the text itself first: only then do errors carry spans.
        let mut config: Config = toml::from_str(text).map_err(|e| text_error(text, origin, &e))?;
        let mut overridden = Vec::with_capacity(overrides.len());
        if !overrides.is_empty() {
            let mut table: toml::Table =
                toml::from_str(text).map_err(|e| text_error(text, origin, &e))?;
            for (name, raw) in overrides {
                let setting = resolve_arg_key(name, OVERLAY_KEYS)?;
                let key = setting.dotted();
                if overridden.contains(&key) {
                    return Err(ConfigError::args(
                        Some(key),
                        "given more than once; keep one".to_owned(),
                    ));
                }
                let value = override_value(setting, raw)?;
                let section = table
                    .entry(setting.section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let toml::Value::Table(section) = section else {
                    // Unreachable after the text deserialized, but never panic on config.
                    return Err(ConfigError::invalid(
                        origin,
                        Some(setting.section.to_owned()),
                        "must be a table".to_owned(),
                    ));
                };
                section.insert(setting.leaf.to_owned(), value);
                overridden.push(key);
            }
            config = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::args(None, clean_message(&e)))?;
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
            let (line, column) = locate_key(text, key).unzip();
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

    /// The policy for `service`: its `[service.NAME]` table over `[policy]`.
    pub fn service_policy(&self, service: &str) -> ServicePolicy {
        let mut policy = ServicePolicy {
            not_configured: self.policy.not_configured,
            remember_seconds: self.policy.remember_seconds,
        };
        if let Some(o) = self.service.get(service) {
            if let Some(nc) = o.not_configured {
                policy.not_configured = nc;
            }
            if let Some(secs) = o.remember_seconds {
                policy.remember_seconds = secs;
            }
        }
        policy
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
        }
        lines
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
        override_value(setting, value)?;
        parsed.overrides.push((key, value.to_owned()));
    }
    Ok(parsed)
}

/// How a module-argument value is typed before it joins the TOML table.
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
}

/// Every key module arguments may set: all of them except `[service.NAME]`.
const OVERLAY_KEYS: &[Setting] = &[
    Setting::new("policy", "not_configured", Kind::Text),
    Setting::new("policy", "remember_seconds", Kind::Integer),
    Setting::new("totp", "algorithm", Kind::Text),
    Setting::new("totp", "digits", Kind::Integer),
    Setting::new("totp", "period", Kind::Integer),
    Setting::new("totp", "window", Kind::Integer),
    Setting::new("totp", "issuer", Kind::Text),
    Setting::new("recovery", "count", Kind::Integer),
    Setting::new("recovery", "length", Kind::Integer),
    Setting::new("throttle", "backoff_after", Kind::Integer),
    Setting::new("throttle", "backoff_seconds", Kind::Integer),
    Setting::new("throttle", "backoff_max_seconds", Kind::Integer),
    Setting::new("throttle", "lockout_after", Kind::Integer),
    Setting::new("throttle", "fail_delay_ms", Kind::Integer),
    Setting::new("enrollment", "qr", Kind::Text),
    Setting::new("enrollment", "pending_max_age", Kind::Integer),
    Setting::new("groups", "require", Kind::List),
    Setting::new("groups", "require_policy", Kind::Text),
    Setting::new("groups", "exempt", Kind::List),
    Setting::new("paths", "state_dir", Kind::Text),
    Setting::new("paths", "key_file", Kind::Text),
    Setting::new("paths", "enroll_public_key", Kind::Text),
    Setting::new("paths", "spool_dir", Kind::Text),
];

/// Finds the setting a module-argument name refers to: `section.key`
/// exactly, or a bare `key` that only one section has.
fn resolve_arg_key(name: &str, vocabulary: &[Setting]) -> Result<Setting, ConfigError> {
    let unknown = || {
        ConfigError::args(
            None,
            format!("unknown module argument `{name}`; see pam_mfa(8)"),
        )
    };
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

/// Types a raw argument value for `setting` and checks it by deserializing a
/// configuration holding only that setting, so that arguments obey exactly
/// the rules of the file.
fn override_value(setting: Setting, raw: &str) -> Result<toml::Value, ConfigError> {
    let key = setting.dotted();
    let value = match setting.kind {
        Kind::Integer => toml::Value::Integer(raw.parse().map_err(|_| {
            ConfigError::args(Some(key.clone()), format!("`{raw}` is not a whole number"))
        })?),
        Kind::Text => toml::Value::String(raw.to_owned()),
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    };
    let mut section = toml::Table::new();
    section.insert(setting.leaf.to_owned(), value.clone());
    let mut table = toml::Table::new();
    table.insert(setting.section.to_owned(), toml::Value::Table(section));
    toml::Value::Table(table)
        .try_into::<Config>()
        .map_err(|e| ConfigError::args(Some(key), clean_message(&e)))?;
    Ok(value)
}

/// Turns a toml error about `text` into one naming the line, column and key.
fn text_error(text: &str, origin: &str, err: &toml::de::Error) -> ConfigError {
    let mut message = clean_message(err);
    // A document that is not even TOML gets said so; only then is the key a guess.
    if toml::from_str::<toml::Table>(text).is_err() {
        message = format!("TOML syntax error: {message}");
    }
    let (line, column, key) = match err.span() {
        Some(span) => {
            let (line, column) = position(text, span.start);
            (Some(line), Some(column), key_at(text, span.start))
        }
        None => (None, None, None),
    };
    ConfigError::Invalid {
        origin: origin.to_owned(),
        line,
        column,
        key,
        message,
    }
}

/// The error message on one line, in the words of a config file.
fn clean_message(err: &toml::de::Error) -> String {
    let joined = err
        .message()
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

/// The 1-based line and column of the assignment to dotted `key` in `text`.
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut section: Option<String> = None;
    for (i, line) in text.split('\n').enumerate() {
        if let Some(header) = header_name(line) {
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
        if full == key {
            let indent = line.chars().take_while(|c| c.is_whitespace()).count();
            return Some((i + 1, indent + 1));
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

// Field deserializers. Each checks its value while toml still knows where
// the value sits in the file, so the error carries the line and column.

/// One of a fixed set of words, compared exactly (case matters).
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

fn issuer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.chars().count() > 64 {
        return Err(de::Error::custom(
            "longer than 64 characters; authenticator apps cut it off, shorten it",
        ));
    }
    // The otpauth label is `issuer:account`; a colon would move the split.
    if s.contains(':') {
        return Err(de::Error::custom(
            "must not contain `:`, which separates issuer and account in the app",
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(de::Error::custom("must not contain control characters"));
    }
    Ok(s)
}

fn group_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let groups = Vec::<String>::deserialize(d)?;
    for g in &groups {
        if g.is_empty() {
            return Err(de::Error::custom("contains an empty group name"));
        }
        // ',' separates groups in module arguments and ':' fields in /etc/group.
        if g.contains(',') || g.contains(':') || g.chars().any(char::is_control) {
            return Err(de::Error::custom(format!(
                "`{}` is not a group name; names cannot contain `,`, `:` or control characters",
                g.escape_debug()
            )));
        }
    }
    Ok(groups)
}

fn require_policy<'de, D: Deserializer<'de>>(d: D) -> Result<NotConfigured, D::Error> {
    match NotConfigured::deserialize(d)? {
        NotConfigured::Skip => Err(de::Error::custom(
            "\"skip\" would let required groups log in without MFA; use \"configure\" or \"deny\"",
        )),
        policy => Ok(policy),
    }
}

fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let s = String::deserialize(d)?;
    // Relative paths would depend on the working directory of whatever
    // program loaded the module.
    if !s.starts_with('/') {
        return Err(de::Error::custom(format!(
            "`{s}` is not an absolute path; write it starting with /"
        )));
    }
    if s.contains('\0') {
        return Err(de::Error::custom("must not contain a NUL character"));
    }
    Ok(PathBuf::from(s))
}

/// A PAM service name as it may appear in `[service.NAME]`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ServiceName(String);

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let valid = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Ok(ServiceName(s))
        } else {
            Err(de::Error::custom(format!(
                "`{s}` is not a PAM service name; use 1 to 64 of A-Z a-z 0-9 _ . -"
            )))
        }
    }
}

fn service_tables<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ServiceOverride>, D::Error> {
    let tables = BTreeMap::<ServiceName, ServiceOverride>::deserialize(d)?;
    Ok(tables.into_iter().map(|(k, v)| (k.0, v)).collect())
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
        assert_eq!(locate_key(text, "a.b.c.k"), Some((4, 1)));
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

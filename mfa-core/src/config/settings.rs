//! The setting types: one struct per section of the file, their defaults
//! (exactly what the annotated `config/pam_mfa.toml` says), and the words
//! each enum is written as.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::Deserializer;
use serde::Deserialize;

use super::fields::{
    absolute_path, algorithm, digits, group_list, issuer, ranged, require_policy, service_tables,
    some_ranged, table, BACKEND_WORDS, NOT_CONFIGURED_WORDS, QR_WORDS,
};
use crate::totp::Algorithm;

/// The longest `remember_seconds` and `pending_max_age`: 30 days.
pub(super) const MAX_REMEMBER_SECONDS: u64 = 30 * 24 * 3600;

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
        d.deserialize_str(QR_WORDS)
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

/// Where the records live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreBackend {
    /// One file per uid in `paths.state_dir` (the default).
    Files,
    /// One row per login name in a PostgreSQL database that hosts share.
    Postgres,
}

impl StoreBackend {
    /// The word used for this backend in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreBackend::Files => "files",
            StoreBackend::Postgres => "postgres",
        }
    }
}

impl<'de> Deserialize<'de> for StoreBackend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(BACKEND_WORDS)
    }
}

/// The longest `store.timeout_ms`: a minute.
pub(super) const MAX_STORE_TIMEOUT_MS: u64 = 60_000;

/// `[store]`: where the records live and, for PostgreSQL, how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [store] table")]
pub struct StoreConfig {
    /// `files` or `postgres`.
    pub backend: StoreBackend,
    /// The libpq connection string (root, 0600), for `postgres`.
    #[serde(deserialize_with = "absolute_path")]
    pub connection_file: PathBuf,
    /// One deadline over a whole store operation (DNS, connect, TLS,
    /// queries), in milliseconds.
    #[serde(deserialize_with = "ranged::<_, _, 100, MAX_STORE_TIMEOUT_MS>")]
    pub timeout_ms: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Files,
            connection_file: PathBuf::from("/etc/security/pam_mfa/postgres.conf"),
            timeout_ms: 3000,
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
    #[serde(deserialize_with = "table")]
    pub policy: PolicyConfig,
    /// `[totp]`.
    #[serde(deserialize_with = "table")]
    pub totp: TotpConfig,
    /// `[recovery]`.
    #[serde(deserialize_with = "table")]
    pub recovery: RecoveryConfig,
    /// `[throttle]`.
    #[serde(deserialize_with = "table")]
    pub throttle: ThrottleConfig,
    /// `[enrollment]`.
    #[serde(deserialize_with = "table")]
    pub enrollment: EnrollmentConfig,
    /// `[groups]`.
    #[serde(deserialize_with = "table")]
    pub groups: GroupsConfig,
    /// `[paths]`.
    #[serde(deserialize_with = "table")]
    pub paths: Paths,
    /// `[store]`.
    #[serde(deserialize_with = "table")]
    pub store: StoreConfig,
    /// `[service.NAME]` tables, by PAM service name.
    #[serde(deserialize_with = "service_tables")]
    pub service: BTreeMap<String, ServiceOverride>,
}

impl Config {
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
            ("store.backend", self.store.backend.as_str().to_owned()),
            ("store.connection_file", path(&self.store.connection_file)),
            ("store.timeout_ms", self.store.timeout_ms.to_string()),
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
}

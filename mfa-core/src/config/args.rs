//! The module-argument grammar: bare `debug`, `config=/abs/path`, and any
//! setting as `section.key=value` or, where the key name is unique, a bare
//! `key=value`. Each value is typed and checked once, here, by the same
//! deserializer as the key in the file; loading then only assigns it.

use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::error::ConfigError;
use super::locate::{clean_message, BREAK_GLASS_PER_SERVICE};
use super::settings::{
    Config, EnrollmentConfig, GroupsConfig, NotConfigured, Paths, PolicyConfig, QrStyle,
    RecoveryConfig, StoreBackend, StoreConfig, ThrottleConfig, TotpConfig,
};
use super::DEFAULT_CONFIG_PATH;
use crate::totp::Algorithm;

/// The parsed module arguments of a pam.d line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleArgs {
    /// `config=/abs/path`: the configuration file to read instead of the default.
    pub config: Option<PathBuf>,
    /// Bare `debug`: log one line per effective setting and decision.
    pub debug: bool,
    /// Settings that overlay the file, each already typed and checked.
    pub overrides: Vec<Override>,
}

impl ModuleArgs {
    /// The configuration file to read: `config=` or [`DEFAULT_CONFIG_PATH`].
    pub fn config_path(&self) -> &Path {
        self.config
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CONFIG_PATH))
    }
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
                Some(setting.dotted.to_owned()),
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
        let key = setting.dotted.to_owned();
        if value.is_empty() {
            return Err(ConfigError::args(
                Some(key),
                format!(
                    "has an empty value; write {name}={}",
                    setting.kind.placeholder()
                ),
            ));
        }
        if parsed.overrides.iter().any(|o| o.setting == setting) {
            return Err(ConfigError::args(
                Some(key),
                "given more than once; keep one".to_owned(),
            ));
        }
        // Typed and checked now, once: a bad value is refused as an argument
        // before any file is read, and the file's load only assigns it.
        parsed.overrides.push(setting.parse(value)?);
    }
    Ok(parsed)
}

/// How a module-argument value is typed: as the same key's value in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) struct Setting {
    pub(super) section: &'static str,
    pub(super) leaf: &'static str,
    /// `section.leaf`.
    pub(super) dotted: &'static str,
    kind: Kind,
}

impl Setting {
    pub(super) const fn new(
        section: &'static str,
        leaf: &'static str,
        dotted: &'static str,
        kind: Kind,
    ) -> Self {
        Setting {
            section,
            leaf,
            dotted,
            kind,
        }
    }

    /// Types the module-argument value `raw` for this key, as the same
    /// key's value in the file would be typed (see [`Kind`]), and checks it
    /// with the key's own deserializer.
    fn parse(self, raw: &str) -> Result<Override, ConfigError> {
        let invalid = |message: String| ConfigError::args(Some(self.dotted.to_owned()), message);
        let value = match self.kind {
            Kind::Integer => ArgValue::Integer(
                raw.parse()
                    .map_err(|_| invalid(format!("`{raw}` is not a whole number")))?,
            ),
            Kind::Text => ArgValue::Text(raw),
            Kind::List => ArgValue::List(raw.split(',').collect()),
        };
        let value = self
            .typed(value)
            .map_err(|e| invalid(clean_message(&e.to_string())))?;
        Ok(Override {
            setting: self,
            value,
        })
    }
}

/// One module argument's setting, typed and checked: what it overlays on
/// the file's settings. Made only by [`parse_module_args`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    setting: Setting,
    value: Value,
}

impl Override {
    /// The dotted key it sets, e.g. `policy.not_configured`.
    pub fn key(&self) -> &'static str {
        self.setting.dotted
    }

    /// Sets its key of `config`.
    pub fn apply(&self, config: &mut Config) {
        self.value.clone().assign(config);
    }
}

/// Declares the keys module arguments may set, as
/// `section(SectionType).leaf: Kind => Variant(FieldType)`: the vocabulary,
/// the typed value of each, how it is checked and where it goes, in one list
/// so that they cannot diverge.
macro_rules! overlay_keys {
    ($($section:ident($section_type:ty) . $leaf:ident : $kind:ident => $variant:ident($ty:ty),)+) => {
        /// Every key module arguments may set: all of them except `[service.NAME]`.
        pub(super) const OVERLAY_KEYS: &[Setting] = &[
            $(Setting::new(
                stringify!($section),
                stringify!($leaf),
                concat!(stringify!($section), ".", stringify!($leaf)),
                Kind::$kind,
            ),)+
        ];

        /// The typed value of one overlay key.
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Value {
            $($variant($ty),)+
        }

        impl Setting {
            /// `value` as this key's field, deserialized as the key's whole
            /// section would be, by the key's own deserializer: a module
            /// argument obeys exactly the rules of the file, and gets the
            /// same messages.
            fn typed(self, value: ArgValue<'_>) -> Result<Value, de::value::Error> {
                match (self.section, self.leaf) {
                    $((stringify!($section), stringify!($leaf)) => Ok(Value::$variant(
                        section_with::<$section_type>(self.leaf, value)?.$leaf,
                    )),)+
                    _ => Err(de::Error::custom("cannot be set by a module argument")),
                }
            }
        }

        impl Value {
            fn assign(self, config: &mut Config) {
                match self {
                    $(Value::$variant(v) => config.$section.$leaf = v,)+
                }
            }
        }
    };
}

overlay_keys! {
    policy(PolicyConfig).not_configured: Text => NotConfigured(NotConfigured),
    policy(PolicyConfig).remember_seconds: Integer => RememberSeconds(u32),
    totp(TotpConfig).algorithm: Text => Algorithm(Algorithm),
    totp(TotpConfig).digits: Integer => Digits(u8),
    totp(TotpConfig).period: Integer => Period(u32),
    totp(TotpConfig).window: Integer => Window(u8),
    totp(TotpConfig).issuer: Text => Issuer(String),
    recovery(RecoveryConfig).count: Integer => RecoveryCount(u8),
    recovery(RecoveryConfig).length: Integer => RecoveryLength(u8),
    throttle(ThrottleConfig).backoff_after: Integer => BackoffAfter(u32),
    throttle(ThrottleConfig).backoff_seconds: Integer => BackoffSeconds(u32),
    throttle(ThrottleConfig).backoff_max_seconds: Integer => BackoffMaxSeconds(u32),
    throttle(ThrottleConfig).lockout_after: Integer => LockoutAfter(u32),
    throttle(ThrottleConfig).fail_delay_ms: Integer => FailDelayMs(u32),
    enrollment(EnrollmentConfig).qr: Text => Qr(QrStyle),
    enrollment(EnrollmentConfig).pending_max_age: Integer => PendingMaxAge(u32),
    groups(GroupsConfig).require: List => Require(Vec<String>),
    groups(GroupsConfig).require_policy: Text => RequirePolicy(NotConfigured),
    groups(GroupsConfig).exempt: List => Exempt(Vec<String>),
    paths(Paths).state_dir: Text => StateDir(PathBuf),
    paths(Paths).key_file: Text => KeyFile(PathBuf),
    paths(Paths).enroll_public_key: Text => EnrollPublicKey(PathBuf),
    paths(Paths).spool_dir: Text => SpoolDir(PathBuf),
    store(StoreConfig).backend: Text => Backend(StoreBackend),
    store(StoreConfig).connection_file: Text => ConnectionFile(PathBuf),
    store(StoreConfig).timeout_ms: Integer => TimeoutMs(u32),
}

/// The section `S` as a file setting only `leaf = value` in it would give it.
fn section_with<'a, S: Deserialize<'a>>(
    leaf: &'a str,
    value: ArgValue<'a>,
) -> Result<S, de::value::Error> {
    S::deserialize(de::value::MapDeserializer::new(std::iter::once((
        leaf, value,
    ))))
}

/// A module-argument value typed as the same key's value in the file would
/// be: `N` an integer, `NAME,NAME` a list of strings, anything else a string.
#[derive(Debug, Clone)]
enum ArgValue<'a> {
    Integer(i64),
    Text(&'a str),
    List(Vec<&'a str>),
}

impl<'de> Deserializer<'de> for ArgValue<'de> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            ArgValue::Integer(n) => visitor.visit_i64(n),
            ArgValue::Text(s) => visitor.visit_borrowed_str(s),
            ArgValue::List(items) => {
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

impl<'de> de::IntoDeserializer<'de, de::value::Error> for ArgValue<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// Finds the setting a module-argument name refers to: `section.key`
/// exactly, or a bare `key` that only one section has.
pub(super) fn resolve_arg_key(name: &str, vocabulary: &[Setting]) -> Result<Setting, ConfigError> {
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
    let others: Vec<String> = matches.map(|s| format!("`{}`", s.dotted)).collect();
    if others.is_empty() {
        Ok(first)
    } else {
        Err(ConfigError::args(
            Some(name.to_owned()),
            format!(
                "ambiguous module argument `{name}`; write `{}` or {}",
                first.dotted,
                others.join(" or ")
            ),
        ))
    }
}

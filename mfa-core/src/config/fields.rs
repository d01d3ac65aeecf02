//! The field deserializers. Each checks its value inside the visitor, while
//! the parser still knows where the value sits in the file, so that the
//! error carries the line and column. Module arguments go through the same
//! ones (see `args`), and get the same messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::settings::{NotConfigured, QrStyle, ServiceOverride, StoreBackend};
use crate::totp::Algorithm;

/// One of a fixed set of words, compared exactly (case matters).
#[derive(Clone, Copy)]
pub(super) struct Words<T: 'static>(&'static [(&'static str, T)]);

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

pub(super) fn algorithm<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
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

pub(super) fn ranged<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let v = d.deserialize_u64(RangeVisitor::<MIN, MAX>)?;
    T::try_from(v).map_err(|_| de::Error::custom(format!("{v} does not fit this setting")))
}

pub(super) fn some_ranged<'de, D, T, const MIN: u64, const MAX: u64>(
    d: D,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    ranged::<D, T, MIN, MAX>(d).map(Some)
}

pub(super) fn digits<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
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

pub(super) fn issuer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
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

pub(super) fn group_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let groups = Vec::<GroupName>::deserialize(d)?;
    Ok(groups.into_iter().map(|g| g.0).collect())
}

pub(super) fn require_policy<'de, D: Deserializer<'de>>(d: D) -> Result<NotConfigured, D::Error> {
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

pub(super) fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
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

/// A section: only a TOML table. serde's derived structs also take an
/// array of their fields in order, so that `policy = []` would read as the
/// defaults and `totp = ["SHA1"]` as an algorithm; a section written as
/// anything but a table is refused instead.
pub(super) fn table<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Table<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Table<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Table(std::marker::PhantomData))
}

/// A `[service.NAME]` table; see [`table`].
struct ServiceTable(ServiceOverride);

impl<'de> Deserialize<'de> for ServiceTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        table(d).map(ServiceTable)
    }
}

/// The words of `not_configured` and `require_policy`.
pub(super) const NOT_CONFIGURED_WORDS: Words<NotConfigured> = Words(&[
    ("skip", NotConfigured::Skip),
    ("configure", NotConfigured::Configure),
    ("deny", NotConfigured::Deny),
]);

/// The words of `store.backend`.
pub(super) const BACKEND_WORDS: Words<StoreBackend> = Words(&[
    ("files", StoreBackend::Files),
    ("postgres", StoreBackend::Postgres),
]);

/// The words of `enrollment.qr`.
pub(super) const QR_WORDS: Words<QrStyle> = Words(&[
    ("utf8", QrStyle::Utf8),
    ("ascii", QrStyle::Ascii),
    ("none", QrStyle::None),
]);

/// The `[service.NAME]` tables. Each NAME is checked as it is read, so that
/// a refusal points at the name in the file.
pub(super) fn service_tables<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ServiceOverride>, D::Error> {
    let tables = BTreeMap::<ServiceName, ServiceTable>::deserialize(d)?;
    Ok(tables.into_iter().map(|(name, o)| (name.0, o.0)).collect())
}

/// A `[service.NAME]` NAME.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ServiceName(String);

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CheckedStr(|name| {
            if is_service_name(name) {
                return Ok(ServiceName(name.to_owned()));
            }
            let lower = name.to_ascii_lowercase();
            // libpam lowercases the service name in pam_start: a table with
            // capitals would silently never apply.
            Err(if is_service_name(&lower) {
                format!(
                    "`{name}` has capitals, but {LOWERCASED}, so this table would never apply; write [service.{lower}]"
                )
            } else {
                format!(
                    "`{}` {NOT_A_SERVICE}; use 1 to 64 of a-z 0-9 _ . - as in the file name in /etc/pam.d",
                    name.escape_debug()
                )
            })
        }))
    }
}

/// In the messages that refuse a service name: they are about the name, a
/// key, not a value (see `locate`).
pub(super) const LOWERCASED: &str = "libpam lowercases PAM service names";
/// See [`LOWERCASED`].
pub(super) const NOT_A_SERVICE: &str = "is not a PAM service name";

/// Whether `name` can be a PAM service name as libpam passes it to modules,
/// as in `[service.NAME]`: lower case, because libpam lowercases it.
fn is_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

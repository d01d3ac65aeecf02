//! TOTP (RFC 6238) over HOTP (RFC 4226): code generation, verification with
//! replay protection, secrets and their base32 form, and the `otpauth://`
//! URI authenticator apps scan.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroizing;

use crate::input::Code;
use crate::random::{self, RandomUnavailable};

/// The HMAC hash a device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC-SHA-1, what nearly every authenticator app expects.
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA-256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA-512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and in the record (`SHA1`, `SHA256`, `SHA512`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

/// How a device turns its secret and the time into a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    /// The HMAC hash.
    pub algorithm: Algorithm,
    /// Digits per code, [`TotpParams::MIN_DIGITS`] to [`TotpParams::MAX_DIGITS`].
    pub digits: u8,
    /// Seconds per time step, at least 1.
    pub period: u32,
}

impl TotpParams {
    /// The fewest digits a code may have (RFC 4226 5.3).
    pub const MIN_DIGITS: u8 = 6;
    /// The most digits a code may have (RFC 4226 5.3).
    pub const MAX_DIGITS: u8 = 8;

    /// Checks that codes can be computed with these parameters.
    ///
    /// # Errors
    /// [`ParamsError`] naming the setting that is out of range.
    pub fn validate(self) -> Result<(), ParamsError> {
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&self.digits) {
            return Err(ParamsError::Digits(self.digits));
        }
        if self.period == 0 {
            return Err(ParamsError::ZeroPeriod);
        }
        Ok(())
    }
}

impl Default for TotpParams {
    /// SHA-1, 6 digits, 30 seconds: what authenticator apps assume when told nothing.
    fn default() -> Self {
        TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// TOTP parameters no code can be computed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    /// The number of digits is outside 6..=8.
    Digits(u8),
    /// The period is zero seconds.
    ZeroPeriod,
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamsError::Digits(d) => write!(
                f,
                "a TOTP code has {} to {} digits, not {d}; use the number of digits the authenticator app shows (usually 6)",
                TotpParams::MIN_DIGITS,
                TotpParams::MAX_DIGITS
            ),
            ParamsError::ZeroPeriod => f.write_str(
                "a TOTP period of 0 seconds is meaningless; use the app's period (usually 30)",
            ),
        }
    }
}

impl std::error::Error for ParamsError {}

/// The RFC 6238 time step: `floor(unix / period)`, in 64 bits so that 2038
/// and 2106 are ordinary days.
///
/// A period of 0 is invalid ([`TotpParams::validate`] refuses it); it yields
/// `u64::MAX`, a step newer than any, so a caller that records it as the last
/// used step locks the device instead of opening it.
pub fn time_step(unix: u64, period: u32) -> u64 {
    unix.checked_div(u64::from(period)).unwrap_or(u64::MAX)
}

/// The code for time step `step` (RFC 6238 with the counter `step`, which is
/// RFC 4226 HOTP). Leading zeros are kept: the result always has
/// `params.digits` characters.
///
/// With digits outside [`TotpParams::MIN_DIGITS`]..=[`TotpParams::MAX_DIGITS`]
/// the result is empty, which matches no [`Code`].
pub fn code_at_step(secret: &[u8], params: TotpParams, step: u64) -> Zeroizing<String> {
    if !(TotpParams::MIN_DIGITS..=TotpParams::MAX_DIGITS).contains(&params.digits) {
        return Zeroizing::new(String::new());
    }
    // A period of 1 makes totp-rs use `step` itself as the counter; scaling
    // the step back up to seconds could overflow for steps near 2^64.
    // totp-rs wipes its copy of the secret on drop (feature `zeroize`).
    let totp = totp_rs::TOTP::new_unchecked(
        params.algorithm.to_totp_rs(),
        usize::from(params.digits),
        1,
        1,
        secret.to_vec(),
    );
    Zeroizing::new(totp.generate(step))
}

/// What [`verify`] decided about a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code is right for `step`, which is newer than the last used step.
    /// The caller records `step` as the new last used step before granting.
    Accepted {
        /// The time step the code belongs to.
        step: u64,
    },
    /// The code is right for `step`, but that step (or a later one) was
    /// already used. The caller counts this as a failure.
    Replayed {
        /// The time step the code belongs to.
        step: u64,
    },
    /// The code matches no step in the window.
    Rejected,
}

/// Checks `code` against every time step from `T - window` to `T + window`,
/// where `T` is the step of `now`.
///
/// Every step in the window is computed and compared in constant time, with
/// no early exit, so timing does not tell which step matched. A match at a
/// step no newer than `last_used_step` is [`Verdict::Replayed`] (RFC 6238
/// 5.2: a code is good once, and an older code is no good after a newer
/// one); otherwise the newest matching step is [`Verdict::Accepted`].
///
/// Invalid `params` (see [`TotpParams::validate`]) reject every code.
pub fn verify(
    secret: &[u8],
    params: TotpParams,
    window: u8,
    now: u64,
    last_used_step: Option<u64>,
    code: &Code,
) -> Verdict {
    if params.validate().is_err() {
        return Verdict::Rejected;
    }
    let current = time_step(now, params.period);
    let first = current.saturating_sub(u64::from(window));
    let last = current.saturating_add(u64::from(window));

    let mut accepted = Choice::from(0);
    let mut accepted_step = 0u64;
    let mut replayed = Choice::from(0);
    let mut replayed_step = 0u64;
    for step in first..=last {
        let expected = code_at_step(secret, params, step);
        let matches = expected.as_bytes().ct_eq(code.as_bytes());
        let fresh = match last_used_step {
            Some(used) => step.ct_gt(&used),
            None => Choice::from(1),
        };
        // Steps ascend, so the last assignment is the newest match.
        accepted_step.conditional_assign(&step, matches & fresh);
        accepted |= matches & fresh;
        replayed_step.conditional_assign(&step, matches & !fresh);
        replayed |= matches & !fresh;
    }

    if bool::from(accepted) {
        Verdict::Accepted {
            step: accepted_step,
        }
    } else if bool::from(replayed) {
        Verdict::Replayed {
            step: replayed_step,
        }
    } else {
        Verdict::Rejected
    }
}

/// Bytes in a newly generated secret: 160 bits, the length RFC 4226 recommends.
pub const DEFAULT_SECRET_BYTES: usize = 20;
/// The shortest secret accepted on import: 128 bits (RFC 4226 4, R6).
pub const MIN_SECRET_BYTES: usize = 16;
/// The longest secret accepted on import. HMAC takes any length, but no app
/// uses more than a SHA-512 block, and the record has a size bound.
pub const MAX_SECRET_BYTES: usize = 128;

/// A fresh secret of [`DEFAULT_SECRET_BYTES`] from the kernel CSPRNG.
///
/// # Errors
/// [`RandomUnavailable`] if the kernel gives no random bytes.
pub fn generate_secret() -> Result<Zeroizing<Vec<u8>>, RandomUnavailable> {
    let mut secret = Zeroizing::new(vec![0u8; DEFAULT_SECRET_BYTES]);
    random::fill(&mut secret)?;
    Ok(secret)
}

/// A secret given in base32 that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretError {
    /// A character that is not base32, a space or '-'. The character itself
    /// is not kept: it is part of a secret.
    InvalidCharacter {
        /// 1-based position in the text as given.
        position: usize,
    },
    /// Something other than '=' follows padding.
    MisplacedPadding,
    /// The base32 characters do not make whole bytes, or the padding does not
    /// fit them: a character is missing or extra.
    BadLength {
        /// Base32 characters, not counting spaces, '-' and padding.
        characters: usize,
    },
    /// The secret is shorter than [`MIN_SECRET_BYTES`].
    TooShort {
        /// Its length in bits.
        bits: usize,
    },
    /// The secret is longer than [`MAX_SECRET_BYTES`].
    TooLong {
        /// Its length in bits.
        bits: usize,
    },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::InvalidCharacter { position } => write!(
                f,
                "character {position} of the secret is not base32 (letters A-Z and digits 2-7); \
                 check for 0/O, 1/I/L, 8 and 9 and copy the secret again"
            ),
            SecretError::MisplacedPadding => f.write_str(
                "the secret has '=' padding in the middle; '=' may only appear at the end, copy the secret again",
            ),
            SecretError::BadLength { characters } => write!(
                f,
                "the secret has {characters} base32 characters, which do not make whole bytes; \
                 a character is missing or extra, copy the secret again"
            ),
            SecretError::TooShort { bits } => write!(
                f,
                "the secret is {bits} bits long, but 128 bits (26 base32 characters) is the minimum; \
                 have the service issue a new, longer secret or let mfa-enroll generate one"
            ),
            SecretError::TooLong { bits } => write!(
                f,
                "the secret is {bits} bits long, more than the {} bits accepted; check that the whole \
                 text is the secret and nothing else",
                MAX_SECRET_BYTES * 8
            ),
        }
    }
}

impl std::error::Error for SecretError {}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 of `bytes`: uppercase, without '=' padding, the form
/// authenticator apps expect in a URI and people type.
pub fn base32_encode(bytes: &[u8]) -> Zeroizing<String> {
    // Sized up front so no reallocation leaves a copy of the secret behind.
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    // The bit buffer holds pieces of the secret too.
    let mut buffer = Zeroizing::new(0u16);
    let mut bits: u32 = 0;
    for &byte in bytes {
        *buffer = (*buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[usize::from((*buffer >> bits) & 0x1f)],
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[usize::from((*buffer << (5 - bits)) & 0x1f)],
        ));
    }
    out
}

fn base32_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// Decodes an RFC 4648 base32 secret as people copy it: either case, with
/// spaces and '-' between groups ignored, and optional '=' padding at the
/// end only. Anything else is refused, as is a result shorter than
/// [`MIN_SECRET_BYTES`] or longer than [`MAX_SECRET_BYTES`].
///
/// Leftover bits in the last character are dropped, not checked: secrets
/// made of random base32 characters often have some, and authenticator apps
/// drop them too, so refusing them would refuse secrets that work.
///
/// # Errors
/// A [`SecretError`] saying what is wrong.
pub fn base32_decode(text: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8 + 1));
    let mut buffer = Zeroizing::new(0u16);
    let mut bits: u32 = 0;
    let mut characters = 0usize;
    let mut padding = 0usize;
    for (index, c) in text.chars().enumerate() {
        let position = index + 1;
        if c == ' ' || c == '-' {
            continue;
        }
        if c == '=' {
            padding += 1;
            continue;
        }
        let value = u8::try_from(c)
            .ok()
            .and_then(base32_value)
            .ok_or(SecretError::InvalidCharacter { position })?;
        if padding > 0 {
            return Err(SecretError::MisplacedPadding);
        }
        characters += 1;
        *buffer = (*buffer << 5) | u16::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Truncation intended: the byte is the top 8 of the buffered bits.
            #[allow(clippy::cast_possible_truncation)]
            out.push((*buffer >> bits) as u8);
            if out.len() > MAX_SECRET_BYTES {
                return Err(SecretError::TooLong {
                    bits: out.len() * 8,
                });
            }
        }
    }
    // 1, 3 or 6 characters past a block of 8 leave a character whose bits
    // make no byte: a typo, not a secret.
    let valid_tail = matches!(characters % 8, 0 | 2 | 4 | 5 | 7);
    let valid_padding = padding == 0 || padding == (8 - characters % 8) % 8;
    if !valid_tail || !valid_padding {
        return Err(SecretError::BadLength { characters });
    }
    if out.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort {
            bits: out.len() * 8,
        });
    }
    Ok(out)
}

/// `secret_b32` in groups of 4 separated by spaces, for reading off a screen
/// and typing into an app (`JBSW Y3DP EHPK 3PXP`).
pub fn grouped(secret_b32: &str) -> Zeroizing<String> {
    let count = secret_b32.chars().count();
    let mut out = Zeroizing::new(String::with_capacity(secret_b32.len() + count / 4));
    for (i, c) in secret_b32.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// RFC 3986 percent-encoding: unreserved characters stay, every other byte
/// of the UTF-8 becomes `%XX`.
fn percent_encode(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// The Key URI authenticator apps read from a QR code:
/// `otpauth://totp/{issuer}:{account}?secret=..&issuer=..&algorithm=..&digits=..&period=..`.
///
/// Issuer and account are percent-encoded (RFC 3986); the ':' between them
/// stays literal. The issuer is given both in the label and as a parameter,
/// as apps differ in which one they read. With an empty issuer the label is
/// the account alone and the issuer parameter is left out.
pub fn otpauth_uri(
    secret: &[u8],
    params: TotpParams,
    issuer: &str,
    account: &str,
) -> Zeroizing<String> {
    let secret_b32 = base32_encode(secret);
    // Sized up front so no reallocation leaves a copy of the secret behind.
    let capacity = 128 + secret_b32.len() + 3 * (2 * issuer.len() + account.len());
    let mut uri = Zeroizing::new(String::with_capacity(capacity));
    uri.push_str("otpauth://totp/");
    if !issuer.is_empty() {
        percent_encode(&mut uri, issuer);
        uri.push(':');
    }
    percent_encode(&mut uri, account);
    uri.push_str("?secret=");
    uri.push_str(&secret_b32);
    if !issuer.is_empty() {
        uri.push_str("&issuer=");
        percent_encode(&mut uri, issuer);
    }
    uri.push_str("&algorithm=");
    uri.push_str(params.algorithm.as_str());
    uri.push_str("&digits=");
    uri.push_str(&params.digits.to_string());
    uri.push_str("&period=");
    uri.push_str(&params.period.to_string());
    uri
}

//! What a user typed at the prompt, read strictly.
//!
//! A response is a TOTP code only if it is exactly the configured number of
//! ASCII digits: no sign, no whitespace, no newline, no Unicode digits. Being
//! lenient here would let two different strings count as the same code and
//! hide broken clients. A response that is not a TOTP code may still be a
//! recovery code, which has its own documented normalization
//! ([`crate::recovery::normalize`]).

use std::fmt;

use zeroize::Zeroizing;

use crate::recovery::{self, Candidate, CodeFormat};

/// Responses longer than this are refused before any other processing.
pub const MAX_INPUT_BYTES: usize = 512;

/// A syntactically valid TOTP code: exactly the configured number of ASCII
/// digits, leading zeros kept. Whether it is the right code is for
/// [`crate::totp::verify`] to say.
pub struct Code(Zeroizing<String>);

impl Code {
    /// The digits as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A code is a credential for the length of its time step.
        f.write_str("Code(..)")
    }
}

/// Why a response is neither a TOTP code nor a recovery code.
///
/// For the auth log only. It never carries the response or its length: users
/// type passwords into the wrong prompt, and neither may reach a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidInput {
    /// Nothing was typed.
    Empty,
    /// More than [`MAX_INPUT_BYTES`] bytes.
    TooLong,
    /// A byte outside ASCII: invalid UTF-8, or Unicode such as fullwidth digits.
    NonAscii,
    /// A NUL byte, which C code on the way would have cut the string at.
    ContainsNul,
    /// Only characters a code may contain, but not as many as a code has.
    WrongLength,
    /// A character no code contains (sign, whitespace other than a space,
    /// control character, punctuation...).
    BadCharacters,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidInput::Empty => "empty response",
            InvalidInput::TooLong => "response longer than 512 bytes",
            InvalidInput::NonAscii => "response contains non-ASCII bytes",
            InvalidInput::ContainsNul => "response contains a NUL byte",
            InvalidInput::WrongLength => "response has the wrong number of characters for a code",
            InvalidInput::BadCharacters => "response contains characters no code has",
        })
    }
}

impl std::error::Error for InvalidInput {}

/// What a response at the verification prompt is.
#[derive(Debug)]
pub enum Input {
    /// A TOTP code.
    Totp(Code),
    /// A normalized recovery code candidate.
    Recovery(Candidate),
    /// Both: digits as many as a device's codes have, and as many as the
    /// user's recovery codes have (8-digit scratch codes carried over from
    /// google-authenticator beside an 8-digit device). The device is tried
    /// first.
    Either(Code, Candidate),
    /// Neither; the reason is for the log.
    Invalid(InvalidInput),
}

/// The checks every response goes through first, cheapest and most
/// important first: the length bound comes before anything else looks at
/// the bytes.
fn precheck(raw: &[u8]) -> Result<(), InvalidInput> {
    if raw.len() > MAX_INPUT_BYTES {
        return Err(InvalidInput::TooLong);
    }
    if raw.is_empty() {
        return Err(InvalidInput::Empty);
    }
    if raw.contains(&0) {
        return Err(InvalidInput::ContainsNul);
    }
    if !raw.is_ascii() {
        return Err(InvalidInput::NonAscii);
    }
    Ok(())
}

fn is_totp(raw: &[u8], digits: u8) -> bool {
    raw.len() == usize::from(digits) && raw.iter().all(u8::is_ascii_digit)
}

fn code_from_digits(raw: &[u8]) -> Code {
    // Sized up front so no reallocation leaves a copy behind.
    let mut text = Zeroizing::new(String::with_capacity(raw.len()));
    text.extend(raw.iter().copied().map(char::from));
    Code(text)
}

/// Classifies a response against what the user can answer with: a TOTP
/// code is exactly as many ASCII digits as one of `digits` (each device
/// has its own); a recovery code is what the user's set, of `recovery`
/// format, accepts; anything else is invalid.
pub fn classify(raw: &[u8], digits: &[u8], recovery: Option<CodeFormat>) -> Input {
    if let Err(reason) = precheck(raw) {
        return Input::Invalid(reason);
    }
    let totp = digits
        .iter()
        .any(|&d| is_totp(raw, d))
        .then(|| code_from_digits(raw));
    let candidate = recovery.and_then(|f| f.candidate(raw));
    match (totp, candidate) {
        (Some(code), Some(candidate)) => Input::Either(code, candidate),
        (Some(code), None) => Input::Totp(code),
        (None, Some(candidate)) => Input::Recovery(candidate),
        (None, None) => {
            let reason = if raw
                .iter()
                .all(|&b| b.is_ascii_digit() || recovery::is_code_character(b))
            {
                InvalidInput::WrongLength
            } else {
                InvalidInput::BadCharacters
            };
            Input::Invalid(reason)
        }
    }
}

/// Reads a TOTP code and nothing else, as when enrollment asks for a code
/// from the new device.
///
/// # Errors
/// [`InvalidInput`] saying why the response is not `digits` ASCII digits.
pub fn parse_totp(raw: &[u8], digits: u8) -> Result<Code, InvalidInput> {
    precheck(raw)?;
    if !raw.iter().all(u8::is_ascii_digit) {
        return Err(InvalidInput::BadCharacters);
    }
    if !is_totp(raw, digits) {
        return Err(InvalidInput::WrongLength);
    }
    Ok(code_from_digits(raw))
}

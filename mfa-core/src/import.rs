//! Reading the secrets of other TOTP modules, so users keep the entry in
//! their authenticator app when a host moves to pam_mfa.
//!
//! Two formats are understood, both as pure functions over the file's bytes
//! (no filesystem, no clock), strict and bounded so they can be fuzzed:
//!
//! * `~/.google_authenticator`, written by the `google-authenticator` command
//!   of google-authenticator-libpam: a base32 secret on the first line, then
//!   option lines that start with `"` and a space, and 8-digit scratch codes
//!   one per line ([`parse_google_authenticator`]);
//! * the `pam_oath` (liboath) users file: one token per line,
//!   `TYPE USER PIN HEXSECRET [COUNTER [LASTOTP [TIME]]]`
//!   ([`parse_oath_usersfile`]).
//!
//! Anything the parsers do not understand is an error naming the line;
//! nothing is guessed. Errors never carry a secret or a code.
//!
//! google-authenticator's scratch codes are what its users hold on paper:
//! an import carries them over as the user's recovery codes, hashed like
//! any other set, unless the administrator asks for a new set instead
//! ([`GoogleAuthenticator::recovery_plan`], [`ScratchCodes`]).

use std::fmt;

use zeroize::Zeroizing;

use crate::record::Device;
use crate::recovery::{CodeFormat, KdfParams, RecoveryError, RecoveryHashes, MAX_CODES};
use crate::totp::{self, Algorithm, SecretError, TotpParams, MAX_SECRET_BYTES, MIN_SECRET_BYTES};

/// The largest `~/.google_authenticator` accepted. The tool itself limits
/// the file to 1 KiB; a little room is left for long `DISALLOW_REUSE` and
/// `RATE_LIMIT` lists the PAM module appends.
pub const MAX_GOOGLE_AUTHENTICATOR_FILE: usize = 4096;
/// The largest `pam_oath` users file accepted: thousands of users.
pub const MAX_OATH_USERSFILE: usize = 1024 * 1024;
/// The period `google-authenticator` uses unless `STEP_SIZE` says otherwise.
pub const GOOGLE_AUTHENTICATOR_DEFAULT_STEP: u32 = 30;
/// The window size `google-authenticator` uses unless `WINDOW_SIZE` says
/// otherwise: three codes, the current one and one either side.
pub const GOOGLE_AUTHENTICATOR_DEFAULT_WINDOW_SIZE: u32 = 3;
/// Digits of a scratch code as `google-authenticator` writes them; its PAM
/// module accepts a line only as a number from 10000000 to 99999999.
pub const GOOGLE_AUTHENTICATOR_SCRATCH_DIGITS: usize = 8;
/// Most used time steps kept from one option line; more means the line is
/// not what the PAM module writes.
const MAX_LISTED_STEPS: usize = 256;

/// A file that cannot be imported. `Display` says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportError {
    /// The file is larger than any valid one.
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// The file is empty.
    Empty,
    /// A byte that the format never contains (not ASCII, a control
    /// character, a carriage return, a NUL).
    BadByte {
        /// The 1-based line.
        line: usize,
    },
    /// The first line is not a usable base32 secret.
    Secret(SecretError),
    /// A `"` option line names an option the format does not have.
    UnknownOption {
        /// The 1-based line.
        line: usize,
        /// The option name (only upper-case letters and `_`; never secret).
        name: String,
    },
    /// An option's arguments are missing, extra or out of range.
    BadOption {
        /// The 1-based line.
        line: usize,
        /// The option name.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The same option appears twice.
    RepeatedOption {
        /// The 1-based line of the second one.
        line: usize,
        /// The option name.
        name: &'static str,
    },
    /// A line that is neither an option nor a scratch code (digits).
    BadLine {
        /// The 1-based line.
        line: usize,
    },
    /// A scratch code google-authenticator's PAM module never accepted: not
    /// 8 digits, or starting with 0. The module stops reading scratch codes
    /// at such a line, so it cannot be carried over as a working code.
    UnusableScratchCode {
        /// The 1-based line.
        line: usize,
        /// How many digits it has.
        digits: usize,
    },
    /// More distinct scratch codes than a recovery set holds.
    TooManyScratchCodes {
        /// How many the file lists.
        count: usize,
    },
    /// Hashing the scratch codes failed.
    Recovery(RecoveryError),
    /// The file sets up counter-based HOTP (`HOTP_COUNTER`), which pam_mfa
    /// does not do.
    CounterBased,
    /// The file enables neither TOTP nor HOTP, so only its scratch codes work.
    NotTimeBased,
    /// A users-file line has too few fields or a malformed one.
    BadOathLine {
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A users-file token type that liboath does not define.
    UnknownOathType {
        /// The 1-based line.
        line: usize,
    },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::TooLarge { size, max } => write!(
                f,
                "the file is {size} bytes, more than the {max} a valid one can be; check that it is the right file"
            ),
            ImportError::Empty => f.write_str(
                "the file is empty; check that it is the right file, or enroll the user afresh with `mfa-enroll enroll`",
            ),
            ImportError::BadByte { line } => write!(
                f,
                "line {line} holds a byte the format never contains (not printable ASCII); the file is damaged or not of this format"
            ),
            ImportError::Secret(e) => write!(f, "line 1 (the secret): {e}"),
            ImportError::UnknownOption { line, name } => write!(
                f,
                "line {line}: unknown option `{name}`; nothing was imported. If a newer google-authenticator wrote it, enroll the user afresh with `mfa-enroll enroll`"
            ),
            ImportError::BadOption { line, name, reason } => write!(
                f,
                "line {line}: option {name}: {reason}; the file is damaged, enroll the user afresh with `mfa-enroll enroll`"
            ),
            ImportError::RepeatedOption { line, name } => write!(
                f,
                "line {line}: option {name} appears twice; the file is damaged, enroll the user afresh with `mfa-enroll enroll`"
            ),
            ImportError::BadLine { line } => write!(
                f,
                "line {line} is neither an option nor a scratch code; the file is damaged or not a .google_authenticator file"
            ),
            ImportError::UnusableScratchCode { line, digits } => {
                if *digits == GOOGLE_AUTHENTICATOR_SCRATCH_DIGITS {
                    write!(f, "line {line}: the scratch code starts with 0")?;
                } else {
                    write!(f, "line {line}: the scratch code has {digits} digits, not 8")?;
                }
                f.write_str(
                    ", which google-authenticator never writes and its PAM module never accepted (it stops reading scratch codes there), so it cannot be carried over; import with --new-recovery-codes to give the user a new set of recovery codes instead",
                )
            }
            ImportError::TooManyScratchCodes { count } => write!(
                f,
                "the file lists {count} scratch codes, more than the {MAX_CODES} a set of recovery codes holds (the tool writes at most 10); import with --new-recovery-codes to give the user a new set instead"
            ),
            ImportError::Recovery(e) => write!(f, "carrying the scratch codes over: {e}"),
            ImportError::CounterBased => f.write_str(
                "the file sets up counter-based codes (HOTP_COUNTER), and pam_mfa only does time-based codes (TOTP); enroll the user afresh with `mfa-enroll enroll`, which gives the app a new time-based entry",
            ),
            ImportError::NotTimeBased => f.write_str(
                "the file enables neither time-based (TOTP_AUTH) nor counter-based codes, so it holds no usable device; enroll the user afresh with `mfa-enroll enroll`",
            ),
            ImportError::BadOathLine { line, reason } => write!(
                f,
                "line {line}: {reason}; fix the line (TYPE USER PIN HEXSECRET [COUNTER [LASTOTP [TIME]]]) or remove it"
            ),
            ImportError::UnknownOathType { line } => write!(
                f,
                "line {line}: the token type is none of HOTP, HOTP/E[/6|7|8], HOTP/T30[/6|7|8], HOTP/T60[/6|7|8]; fix the line or remove it"
            ),
        }
    }
}

impl std::error::Error for ImportError {}

/// Splits `bytes` into lines, refusing anything outside printable ASCII,
/// space and tab (`\r` too: neither format is written with it).
fn ascii_lines(bytes: &[u8], max: usize) -> Result<Vec<&str>, ImportError> {
    if bytes.len() > max {
        return Err(ImportError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    if bytes.is_empty() {
        return Err(ImportError::Empty);
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut lines = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line
            .iter()
            .any(|&b| !(b == b' ' || b == b'\t' || b.is_ascii_graphic()))
        {
            return Err(ImportError::BadByte { line: i + 1 });
        }
        // Printable ASCII is UTF-8.
        lines.push(std::str::from_utf8(line).map_err(|_| ImportError::BadByte { line: i + 1 })?);
    }
    Ok(lines)
}

// ---------------------------------------------------------------------------
// google-authenticator

/// What a `~/.google_authenticator` file holds, as far as pam_mfa uses it.
pub struct GoogleAuthenticator {
    /// The shared secret from the first line.
    pub secret: Zeroizing<Vec<u8>>,
    /// Always SHA-1 and 6 digits (the tool offers nothing else); the period
    /// is `STEP_SIZE`, 30 seconds by default.
    pub params: TotpParams,
    /// `WINDOW_SIZE n` as found: how many codes were valid at once (3 means
    /// the current one and one either side). `None` if absent (then 3).
    pub window_size: Option<u32>,
    /// `RATE_LIMIT n m`: at most n logins per m seconds. pam_mfa's own
    /// throttling replaces it.
    pub rate_limit: Option<(u32, u32)>,
    /// Whether `DISALLOW_REUSE` is set. pam_mfa never accepts a code twice,
    /// whatever this says.
    pub disallow_reuse: bool,
    /// Time steps the PAM module listed after `DISALLOW_REUSE` as already
    /// used, so they can stay used after the import.
    pub used_steps: Vec<u64>,
    /// `TIME_SKEW n`, the clock skew in steps the PAM module learnt, if any.
    pub time_skew: Option<i64>,
    /// The scratch codes the file lists, in file order: single-use codes
    /// the user holds on paper, which an import carries over as recovery
    /// codes ([`GoogleAuthenticator::recovery_plan`]).
    pub scratch_codes: Vec<ScratchCode>,
}

impl fmt::Debug for GoogleAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleAuthenticator")
            .field("params", &self.params)
            .field("window_size", &self.window_size)
            .field("rate_limit", &self.rate_limit)
            .field("disallow_reuse", &self.disallow_reuse)
            .field("used_steps", &self.used_steps.len())
            .field("time_skew", &self.time_skew)
            .field("scratch_codes", &self.scratch_codes.len())
            .finish_non_exhaustive()
    }
}

impl GoogleAuthenticator {
    /// The window the file allowed, as steps either side of now (pam_mfa's
    /// `totp.window`): `(WINDOW_SIZE - 1) / 2`.
    pub fn window_steps(&self) -> u32 {
        (self
            .window_size
            .unwrap_or(GOOGLE_AUTHENTICATOR_DEFAULT_WINDOW_SIZE)
            .max(1)
            - 1)
            / 2
    }

    /// The device this file describes, named `name`, enrolled at `now`.
    /// Steps the file lists as used stay used, but never beyond the step of
    /// `now`: a bogus future step would lock the device out.
    pub fn device(&self, name: &str, now: u64) -> Device {
        let current = totp::time_step(now, self.params.period);
        Device {
            name: name.to_owned(),
            secret: self.secret.clone(),
            params: self.params,
            created: now,
            last_used_step: self.used_steps.iter().max().map(|s| (*s).min(current)),
        }
    }
}

/// One scratch code line of a `.google_authenticator` file: a credential,
/// wiped when dropped and never shown by `Debug`.
pub struct ScratchCode {
    /// The 1-based line it is on.
    pub line: usize,
    code: Zeroizing<String>,
}

impl ScratchCode {
    /// The digits as written.
    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// Whether google-authenticator's PAM module accepts this line as a
    /// scratch code: it reads the line as a number from 10000000 to
    /// 99999999, that is 8 digits and no leading 0 (the tool draws again
    /// when a code would start with 0).
    pub fn is_usable(&self) -> bool {
        self.code.len() == GOOGLE_AUTHENTICATOR_SCRATCH_DIGITS && !self.code.starts_with('0')
    }
}

impl fmt::Debug for ScratchCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScratchCode")
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// What the administrator asked for the imported user's recovery codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScratchCodes {
    /// Carry the file's scratch codes over as the user's recovery codes:
    /// nothing to hand over, the user keeps what they hold.
    Keep,
    /// Give the user a new set of recovery codes (shown once) instead; the
    /// scratch codes stop working when the old module leaves the stack.
    Replace,
}

/// What an import will do about recovery codes, decided before anything is
/// hashed or written (the dry run shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryPlan {
    /// The scratch codes become a set of 8-digit recovery codes, each
    /// working once; `count` distinct codes.
    Carry {
        /// Distinct codes carried over.
        count: usize,
    },
    /// The file has no scratch codes left: the user keeps having none.
    NoneToCarry,
    /// A new set is generated from the configuration and shown once.
    NewSet,
}

/// The recovery codes an imported record starts with.
pub enum ImportedRecovery {
    /// A new set, generated from the configuration and shown once.
    NewSet,
    /// Codes the user already holds, hashed; there is nothing to show.
    Carried(RecoveryHashes),
    /// No recovery codes: the old module's file had none left.
    Nothing,
}

impl fmt::Debug for ImportedRecovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportedRecovery::NewSet => f.write_str("NewSet"),
            ImportedRecovery::Carried(set) => f.debug_tuple("Carried").field(set).finish(),
            ImportedRecovery::Nothing => f.write_str("Nothing"),
        }
    }
}

impl GoogleAuthenticator {
    /// What an import does with the file's scratch codes when the
    /// administrator asks for `choice`.
    ///
    /// With [`ScratchCodes::Keep`] every scratch code must be one the old
    /// PAM module accepted (8 digits, no leading 0): it stops reading at
    /// any other, so such a line is not a code the user could log in with,
    /// and the import is refused rather than guess which codes still count.
    /// A code listed twice counts once. A file with no scratch codes left
    /// gives a user with no recovery codes, as before the import.
    ///
    /// # Errors
    /// [`ImportError::UnusableScratchCode`] or
    /// [`ImportError::TooManyScratchCodes`]; both name
    /// `--new-recovery-codes`, which ([`ScratchCodes::Replace`]) never fails.
    pub fn recovery_plan(&self, choice: ScratchCodes) -> Result<RecoveryPlan, ImportError> {
        if choice == ScratchCodes::Replace {
            return Ok(RecoveryPlan::NewSet);
        }
        if let Some(bad) = self.scratch_codes.iter().find(|c| !c.is_usable()) {
            return Err(ImportError::UnusableScratchCode {
                line: bad.line,
                digits: bad.code.len(),
            });
        }
        let count = self
            .scratch_codes
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                !self.scratch_codes[..*i]
                    .iter()
                    .any(|earlier| earlier.as_str() == c.as_str())
            })
            .count();
        Ok(match count {
            0 => RecoveryPlan::NoneToCarry,
            n if n > MAX_CODES => return Err(ImportError::TooManyScratchCodes { count: n }),
            n => RecoveryPlan::Carry { count: n },
        })
    }

    /// The recovery codes the imported record starts with, as
    /// [`GoogleAuthenticator::recovery_plan`] decides: the scratch codes
    /// hashed with Argon2id under `params` into an 8-digit set, or a new set
    /// to generate, or none. Costs one Argon2id evaluation per carried
    /// code, so call it before taking the user's lock.
    ///
    /// # Errors
    /// What [`GoogleAuthenticator::recovery_plan`] refuses, or
    /// [`ImportError::Recovery`] if hashing fails.
    pub fn recovery(
        &self,
        choice: ScratchCodes,
        params: KdfParams,
    ) -> Result<ImportedRecovery, ImportError> {
        match self.recovery_plan(choice)? {
            RecoveryPlan::NewSet => Ok(ImportedRecovery::NewSet),
            RecoveryPlan::NoneToCarry => Ok(ImportedRecovery::Nothing),
            RecoveryPlan::Carry { .. } => {
                let codes: Vec<&str> = self.scratch_codes.iter().map(ScratchCode::as_str).collect();
                // The digit count fits: checked by recovery_plan above.
                #[allow(clippy::cast_possible_truncation)]
                let format = CodeFormat::Digits(GOOGLE_AUTHENTICATOR_SCRATCH_DIGITS as u8);
                RecoveryHashes::from_codes(format, &codes, params)
                    .map(ImportedRecovery::Carried)
                    .map_err(ImportError::Recovery)
            }
        }
    }
}

/// The options of a `.google_authenticator` file.
const GA_OPTIONS: [&str; 8] = [
    "RATE_LIMIT",
    "WINDOW_SIZE",
    "DISALLOW_REUSE",
    "TOTP_AUTH",
    "HOTP_COUNTER",
    "STEP_SIZE",
    "TIME_SKEW",
    "RESETTING_TIME_SKEW",
];

fn parse_number<T: std::str::FromStr>(
    word: Option<&str>,
    line: usize,
    name: &'static str,
    missing: &'static str,
) -> Result<T, ImportError> {
    let word = word.ok_or(ImportError::BadOption {
        line,
        name,
        reason: missing,
    })?;
    // Plain decimal only: no sign, no leading '+', nothing after.
    let digits = word.strip_prefix('-').unwrap_or(word);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ImportError::BadOption {
            line,
            name,
            reason: "not a decimal number",
        });
    }
    word.parse().map_err(|_| ImportError::BadOption {
        line,
        name,
        reason: "number out of range",
    })
}

fn no_more(
    words: &mut std::str::Split<'_, char>,
    line: usize,
    name: &'static str,
) -> Result<(), ImportError> {
    match words.next() {
        None => Ok(()),
        Some(_) => Err(ImportError::BadOption {
            line,
            name,
            reason: "unexpected extra arguments",
        }),
    }
}

/// Checks `RESETTING_TIME_SKEW`'s `TIME+SKEW` / `TIME-SKEW` entries.
fn check_skew_pairs(
    words: &mut std::str::Split<'_, char>,
    line: usize,
    name: &'static str,
) -> Result<(), ImportError> {
    for (count, word) in words.enumerate() {
        if count >= MAX_LISTED_STEPS {
            return Err(ImportError::BadOption {
                line,
                name,
                reason: "too many entries",
            });
        }
        let Some((time, skew)) = word
            .split_once('+')
            .or_else(|| word.rfind('-').filter(|&i| i > 0).map(|i| word.split_at(i)))
        else {
            return Err(ImportError::BadOption {
                line,
                name,
                reason: "entries must be TIME+SKEW or TIME-SKEW",
            });
        };
        let _: u64 = parse_number(Some(time), line, name, "")?;
        let _: i64 = parse_number(Some(skew), line, name, "")?;
    }
    Ok(())
}

/// Which kind of device a file's options set up.
#[derive(Default)]
struct Mode {
    totp_auth: bool,
    hotp: bool,
}

/// Checks one option line's arguments and applies them to `parsed`.
fn apply_option(
    parsed: &mut GoogleAuthenticator,
    mode: &mut Mode,
    name: &'static str,
    words: &mut std::str::Split<'_, char>,
    line: usize,
) -> Result<(), ImportError> {
    match name {
        "RATE_LIMIT" => {
            let n: u32 = parse_number(words.next(), line, name, "needs n and m")?;
            let m: u32 = parse_number(words.next(), line, name, "needs n and m")?;
            if n == 0 || m == 0 {
                return Err(ImportError::BadOption {
                    line,
                    name,
                    reason: "n and m must be positive",
                });
            }
            // The PAM module keeps recent login times after n and m.
            for (count, word) in words.by_ref().enumerate() {
                if count >= MAX_LISTED_STEPS {
                    return Err(ImportError::BadOption {
                        line,
                        name,
                        reason: "too many timestamps",
                    });
                }
                let _: u64 = parse_number(Some(word), line, name, "")?;
            }
            parsed.rate_limit = Some((n, m));
        }
        "WINDOW_SIZE" => {
            let n: u32 = parse_number(words.next(), line, name, "needs a size")?;
            if !(1..=100).contains(&n) {
                return Err(ImportError::BadOption {
                    line,
                    name,
                    reason: "the size must be 1 to 100",
                });
            }
            no_more(words, line, name)?;
            parsed.window_size = Some(n);
        }
        "DISALLOW_REUSE" => {
            for word in words.by_ref().filter(|w| !w.is_empty()) {
                if parsed.used_steps.len() >= MAX_LISTED_STEPS {
                    return Err(ImportError::BadOption {
                        line,
                        name,
                        reason: "too many used steps",
                    });
                }
                parsed
                    .used_steps
                    .push(parse_number(Some(word), line, name, "")?);
            }
            parsed.disallow_reuse = true;
        }
        "TOTP_AUTH" => {
            no_more(words, line, name)?;
            mode.totp_auth = true;
        }
        "HOTP_COUNTER" => {
            let _: u64 = parse_number(words.next(), line, name, "needs a counter")?;
            no_more(words, line, name)?;
            mode.hotp = true;
        }
        "STEP_SIZE" => {
            let n: u32 = parse_number(words.next(), line, name, "needs a step size")?;
            // The PAM module's own bounds.
            if !(1..=60).contains(&n) {
                return Err(ImportError::BadOption {
                    line,
                    name,
                    reason: "the step size must be 1 to 60 seconds",
                });
            }
            no_more(words, line, name)?;
            parsed.params.period = n;
        }
        "TIME_SKEW" => {
            let n: i64 = parse_number(words.next(), line, name, "needs a skew")?;
            no_more(words, line, name)?;
            parsed.time_skew = Some(n);
        }
        // "RESETTING_TIME_SKEW": pairs of time and skew the module collects
        // while it re-learns the skew; checked, nothing to import.
        _ => check_skew_pairs(words, line, name)?,
    }
    Ok(())
}

/// Parses a `~/.google_authenticator` file as the `google-authenticator`
/// command and its PAM module write it (see their FILEFORMAT document).
///
/// The first line is the base32 secret (at least 128 bits:
/// [`totp::MIN_SECRET_BYTES`]). Every other line is either an option, `"`
/// and a space then one of `RATE_LIMIT n m [timestamps]`, `WINDOW_SIZE n`,
/// `DISALLOW_REUSE [steps]`, `TOTP_AUTH`, `HOTP_COUNTER n`, `STEP_SIZE n`,
/// `TIME_SKEW n`, `RESETTING_TIME_SKEW [pairs]`, each at most once, or a
/// scratch code (a line of digits; the tool writes 8, and whether the codes
/// can be carried over is for [`GoogleAuthenticator::recovery_plan`] to
/// say, so that a file with odd ones can still be imported with a new set
/// of recovery codes). A counter-based file (`HOTP_COUNTER`) and a file
/// without `TOTP_AUTH` are refused: there is no time-based device in them.
///
/// # Errors
/// An [`ImportError`] naming the line and what is wrong.
pub fn parse_google_authenticator(bytes: &[u8]) -> Result<GoogleAuthenticator, ImportError> {
    let lines = ascii_lines(bytes, MAX_GOOGLE_AUTHENTICATOR_FILE)?;
    let secret = totp::base32_decode(lines[0]).map_err(ImportError::Secret)?;
    // The tool writes the secret as bare upper-case base32; base32_decode
    // also takes spaces, '-' and lower case, which no such file contains.
    if !lines[0]
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    {
        return Err(ImportError::Secret(SecretError::InvalidCharacter {
            position: lines[0]
                .bytes()
                .position(|b| !(b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
                .map_or(1, |p| p + 1),
        }));
    }
    let mut seen: Vec<&'static str> = Vec::new();
    let mut parsed = GoogleAuthenticator {
        secret,
        params: TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: GOOGLE_AUTHENTICATOR_DEFAULT_STEP,
        },
        window_size: None,
        rate_limit: None,
        disallow_reuse: false,
        used_steps: Vec::new(),
        time_skew: None,
        scratch_codes: Vec::new(),
    };
    let mut mode = Mode::default();
    for (index, text) in lines.iter().enumerate().skip(1) {
        let line = index + 1;
        if let Some(option) = text.strip_prefix("\" ") {
            let mut words = option.split(' ');
            let word = words.next().unwrap_or_default();
            let Some(name) = GA_OPTIONS.iter().copied().find(|n| *n == word) else {
                let shown = if word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                    && !word.is_empty()
                    && word.len() <= 32
                {
                    word.to_owned()
                } else {
                    "(not an option name)".to_owned()
                };
                return Err(ImportError::UnknownOption { line, name: shown });
            };
            if seen.contains(&name) {
                return Err(ImportError::RepeatedOption { line, name });
            }
            seen.push(name);
            apply_option(&mut parsed, &mut mode, name, &mut words, line)?;
        } else if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            // Sized up front so no reallocation leaves a copy behind.
            let mut code = Zeroizing::new(String::with_capacity(text.len()));
            code.push_str(text);
            parsed.scratch_codes.push(ScratchCode { line, code });
        } else {
            return Err(ImportError::BadLine { line });
        }
    }
    // HOTP_COUNTER wins over TOTP_AUTH in the PAM module, so it does here.
    if mode.hotp {
        return Err(ImportError::CounterBased);
    }
    if !mode.totp_auth {
        return Err(ImportError::NotTimeBased);
    }
    Ok(parsed)
}

// ---------------------------------------------------------------------------
// pam_oath users file

/// One TOTP token from a users file.
pub struct OathToken {
    /// The shared secret.
    pub secret: Zeroizing<Vec<u8>>,
    /// SHA-1 (the only hash the users file knows), 6 to 8 digits, 30 or 60 s.
    pub params: TotpParams,
    /// The last code the user logged in with, if liboath recorded one; it
    /// lets an import keep that code used.
    pub last_otp: Option<Zeroizing<String>>,
}

impl fmt::Debug for OathToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OathToken")
            .field("params", &self.params)
            .field("last_otp", &self.last_otp.is_some())
            .finish_non_exhaustive()
    }
}

impl OathToken {
    /// The device this token describes, named `name`, enrolled at `now`.
    /// If the last code liboath recorded belongs to a step within `window`
    /// steps of now, that step stays used (no later replay of that code).
    pub fn device(&self, name: &str, now: u64, window: u8) -> Device {
        let current = totp::time_step(now, self.params.period);
        let last_used_step = self.last_otp.as_ref().and_then(|otp| {
            let first = current.saturating_sub(u64::from(window));
            (first..=current).rev().find(|&step| {
                totp::code_at_step(&self.secret, self.params, step).as_str() == otp.as_str()
            })
        });
        Device {
            name: name.to_owned(),
            secret: self.secret.clone(),
            params: self.params,
            created: now,
            last_used_step,
        }
    }
}

/// Why a users-file line is not imported although it is well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathSkip {
    /// A counter-based (event) token: `HOTP` or `HOTP/E...`.
    CounterBased,
    /// The line sets a PIN the user types before the code; pam_mfa has no
    /// PIN, so importing it would silently drop that factor.
    HasPin,
}

impl fmt::Display for OathSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OathSkip::CounterBased => f.write_str(
                "counter-based (HOTP) token; pam_mfa only does time-based codes, enroll the user afresh",
            ),
            OathSkip::HasPin => f.write_str(
                "the token has a PIN, which pam_mfa does not support; enroll the user afresh",
            ),
        }
    }
}

/// What one token line of a users file yields.
#[derive(Debug)]
pub enum OathEntry {
    /// A time-based token pam_mfa can take over.
    Totp(OathToken),
    /// A token that is reported and left alone.
    Skipped(OathSkip),
}

/// One token line of a users file.
#[derive(Debug)]
pub struct OathLine {
    /// The 1-based line number.
    pub line: usize,
    /// The user name as written.
    pub user: String,
    /// The token type as written (`HOTP/T30/6`).
    pub kind: String,
    /// What it yields.
    pub entry: OathEntry,
}

/// Why a time-based token of a users file is not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathRefusal {
    /// The user has a token on an earlier line, and that one is imported:
    /// a record holds the devices of one user, and liboath tries a user's
    /// tokens in file order, so the first is the one in use.
    NotFirst {
        /// The 1-based line of the user's first token.
        first_line: usize,
    },
    /// The user already has a pam_mfa record, and the import does not
    /// replace records.
    AlreadyEnrolled,
}

impl fmt::Display for OathRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFirst { first_line } => write!(
                f,
                "the user's token on line {first_line} is the one imported; pam_mfa imports one token per user"
            ),
            Self::AlreadyEnrolled => {
                f.write_str("already enrolled (add --force to replace the record)")
            }
        }
    }
}

/// Which tokens of a users file are imported: the first time-based token
/// of each user, over an existing record only when replacing was asked
/// for.
#[derive(Debug, Default)]
pub struct OathSelection {
    replace: bool,
    /// Each user seen so far, with the line of their first token.
    first: Vec<(String, usize)>,
}

impl OathSelection {
    /// A selection that replaces existing records when `replace` (the
    /// administrator's `--force`).
    #[must_use]
    pub fn new(replace: bool) -> Self {
        Self {
            replace,
            first: Vec::new(),
        }
    }

    /// Claims `line`'s token for its user. The first token line of a user
    /// is claimed; every later one is refused, whatever became of the
    /// first.
    ///
    /// # Errors
    /// [`OathRefusal::NotFirst`] for a user claimed before.
    pub fn claim(&mut self, line: &OathLine) -> Result<(), OathRefusal> {
        if let Some((_, first_line)) = self.first.iter().find(|(u, _)| *u == line.user) {
            return Err(OathRefusal::NotFirst {
                first_line: *first_line,
            });
        }
        self.first.push((line.user.clone(), line.line));
        Ok(())
    }

    /// Whether a claimed token may be imported for a user who is
    /// `enrolled` or not: `Ok(true)` when it replaces their record.
    ///
    /// # Errors
    /// [`OathRefusal::AlreadyEnrolled`] for an enrolled user unless
    /// replacing was asked for.
    pub fn admit(&self, enrolled: bool) -> Result<bool, OathRefusal> {
        match (enrolled, self.replace) {
            (false, _) => Ok(false),
            (true, true) => Ok(true),
            (true, false) => Err(OathRefusal::AlreadyEnrolled),
        }
    }
}

/// `(digits, period)` for a liboath token type; period 0 for counter-based.
fn oath_type(kind: &str) -> Option<(u8, u32)> {
    if kind == "HOTP" {
        return Some((6, 0));
    }
    let rest = kind.strip_prefix("HOTP/")?;
    let (period, rest) = if let Some(r) = rest.strip_prefix("T30") {
        (30, r)
    } else if let Some(r) = rest.strip_prefix("T60") {
        (60, r)
    } else {
        (0, rest.strip_prefix('E')?)
    };
    let digits = match rest {
        "" | "/6" => 6,
        "/7" => 7,
        "/8" => 8,
        _ => return None,
    };
    Some((digits, period))
}

fn hex_secret(text: &str, line: usize) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let bad = |reason| ImportError::BadOathLine { line, reason };
    if text.len() % 2 != 0 {
        return Err(bad("the secret has an odd number of hex digits"));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
    for pair in text.as_bytes().chunks(2) {
        let nibble = |c: u8| char::from(c).to_digit(16);
        let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(bad("the secret is not hexadecimal"));
        };
        // Two hex digits make one byte.
        #[allow(clippy::cast_possible_truncation)]
        out.push((hi * 16 + lo) as u8);
    }
    if out.len() < MIN_SECRET_BYTES {
        return Err(bad(
            "the secret is shorter than 128 bits; give the user a new token (`mfa-enroll enroll`)",
        ));
    }
    if out.len() > MAX_SECRET_BYTES {
        return Err(bad("the secret is longer than 1024 bits"));
    }
    Ok(out)
}

/// Parses a `pam_oath` users file: one token per line,
/// `TYPE USER PIN HEXSECRET [COUNTER [LASTOTP [TIME]]]`, fields separated by
/// spaces or tabs. Blank lines and lines starting with `#` are comments.
///
/// `TYPE` is `HOTP`, `HOTP/E`, `HOTP/E/N` (counter-based) or `HOTP/T30`,
/// `HOTP/T60`, optionally with `/6`, `/7` or `/8` digits (time-based). PIN
/// `-` means none and `+` that it is checked elsewhere; any other PIN, and
/// every counter-based token, is reported as [`OathEntry::Skipped`].
/// Secrets shorter than 128 bits are an error, like any malformed line.
///
/// # Errors
/// An [`ImportError`] naming the first bad line; nothing is returned then.
pub fn parse_oath_usersfile(bytes: &[u8]) -> Result<Vec<OathLine>, ImportError> {
    let lines = ascii_lines(bytes, MAX_OATH_USERSFILE)?;
    let mut out = Vec::new();
    for (index, text) in lines.iter().enumerate() {
        let line = index + 1;
        let bad = |reason| ImportError::BadOathLine { line, reason };
        let mut fields = text.split([' ', '\t']).filter(|f| !f.is_empty());
        let Some(kind) = fields.next() else { continue };
        if kind.starts_with('#') {
            continue;
        }
        let (digits, period) = oath_type(kind).ok_or(ImportError::UnknownOathType { line })?;
        let user = fields.next().ok_or_else(|| bad("no user name"))?;
        let pin = fields
            .next()
            .ok_or_else(|| bad("no PIN field (`-` for none)"))?;
        let secret = hex_secret(fields.next().ok_or_else(|| bad("no secret"))?, line)?;
        if let Some(counter) = fields.next() {
            if counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("the counter is not a decimal number"));
            }
            counter
                .parse::<u64>()
                .map_err(|_| bad("the counter is out of range"))?;
        }
        let last_otp = match fields.next() {
            Some(otp)
                if otp.len() == usize::from(digits) && otp.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(Zeroizing::new(otp.to_owned()))
            }
            Some(_) => return Err(bad("the last code is not a code of the token's length")),
            None => None,
        };
        // The time of the last login (liboath's %Y-%m-%dT%H:%M:%SL); checked
        // for shape only, since the last code already says which step.
        if let Some(time) = fields.next() {
            let ok = time.len() == 20
                && time.bytes().enumerate().all(|(i, b)| match i {
                    4 | 7 => b == b'-',
                    10 => b == b'T',
                    13 | 16 => b == b':',
                    19 => b == b'L',
                    _ => b.is_ascii_digit(),
                });
            if !ok {
                return Err(bad(
                    "the time of the last login is not YYYY-MM-DDTHH:MM:SSL",
                ));
            }
        }
        if fields.next().is_some() {
            return Err(bad("too many fields"));
        }
        let entry = if period == 0 {
            OathEntry::Skipped(OathSkip::CounterBased)
        } else if pin != "-" && pin != "+" {
            OathEntry::Skipped(OathSkip::HasPin)
        } else {
            OathEntry::Totp(OathToken {
                secret,
                params: TotpParams {
                    algorithm: Algorithm::Sha1,
                    digits,
                    period,
                },
                last_otp,
            })
        };
        out.push(OathLine {
            line,
            user: user.to_owned(),
            kind: kind.to_owned(),
            entry,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_B32: &str = "QB42L7VL6XBJOCLZ2MQERS6MLQ";

    #[test]
    fn a_minimal_time_based_file_parses() {
        let file = format!("{SECRET_B32}\n\" TOTP_AUTH\n");
        let ga = parse_google_authenticator(file.as_bytes()).unwrap();
        assert_eq!(ga.secret.len(), 16);
        assert_eq!(ga.params.period, 30);
        assert_eq!(ga.window_steps(), 1);
        assert!(ga.scratch_codes.is_empty());
    }

    #[test]
    fn options_are_strict() {
        for (body, want) in [
            ("\" WINDOW_SIZE\n", "needs a size"),
            ("\" WINDOW_SIZE 3 4\n", "extra"),
            ("\" WINDOW_SIZE +3\n", "decimal"),
            ("\" STEP_SIZE 0\n", "1 to 60"),
            ("\" FOO_BAR\n", "unknown option `FOO_BAR`"),
            ("\" TOTP_AUTH\n", "twice"),
            ("1234 5678\n", "neither an option"),
            ("\"TOTP_AUTH\n", "neither an option"),
        ] {
            let file = format!("{SECRET_B32}\n\" TOTP_AUTH\n{body}");
            let err = parse_google_authenticator(file.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(want), "{body:?}: {err}");
        }
    }

    #[test]
    fn oath_types_follow_liboath() {
        assert_eq!(oath_type("HOTP"), Some((6, 0)));
        assert_eq!(oath_type("HOTP/E/8"), Some((8, 0)));
        assert_eq!(oath_type("HOTP/T30"), Some((6, 30)));
        assert_eq!(oath_type("HOTP/T60/8"), Some((8, 60)));
        assert_eq!(oath_type("HOTP/T30/9"), None);
        assert_eq!(oath_type("HOTP/T45"), None);
        assert_eq!(oath_type("TOTP"), None);
    }

    #[test]
    fn a_users_file_imports_the_first_token_of_each_user() {
        let file = b"HOTP/T30 alice - 3132333435363738393031323334353637383930\n\
                     HOTP/T30 bob - 3132333435363738393031323334353637383930\n\
                     HOTP/T60 alice - 3132333435363738393031323334353637383930\n";
        let lines = parse_oath_usersfile(file).unwrap();
        let mut selection = OathSelection::new(false);
        assert_eq!(selection.claim(&lines[0]), Ok(()));
        assert_eq!(selection.claim(&lines[1]), Ok(()));
        let refused = selection.claim(&lines[2]).unwrap_err();
        assert_eq!(refused, OathRefusal::NotFirst { first_line: 1 });
        assert_eq!(
            refused.to_string(),
            "the user's token on line 1 is the one imported; pam_mfa imports one token per user"
        );
    }

    #[test]
    fn an_enrolled_user_is_replaced_only_when_asked() {
        let keep = OathSelection::new(false);
        assert_eq!(keep.admit(false), Ok(false));
        assert_eq!(keep.admit(true), Err(OathRefusal::AlreadyEnrolled));
        assert_eq!(
            OathRefusal::AlreadyEnrolled.to_string(),
            "already enrolled (add --force to replace the record)"
        );
        let replace = OathSelection::new(true);
        assert_eq!(replace.admit(false), Ok(false));
        assert_eq!(replace.admit(true), Ok(true));
    }
}

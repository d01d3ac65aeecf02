//! Single-use recovery codes: generated from the CSPRNG, shown once, stored
//! only as Argon2id hashes.
//!
//! A code is [`DEFAULT_LENGTH`] characters of Crockford's base32 alphabet in
//! lowercase (`0123456789abcdefghjkmnpqrstvwxyz`: no i, l, o or u, so nothing
//! reads as another character or a word), 5 bits each, shown in groups of
//! four: `7kq2-m9xd-4hfr` carries 60 bits.
//!
//! Codes carry fewer than 112 bits, so a fast hash would let whoever reads a
//! record try every code offline; Argon2id makes each guess expensive. All
//! codes of a set share one random salt, so checking a response costs one
//! Argon2id evaluation however many codes are left, not one per code. The
//! codes are independent random strings, so a shared salt tells an attacker
//! nothing about one code from another.
//!
//! A set remembers how its codes are written ([`CodeFormat`]), so that
//! changing `recovery.length` in the configuration, or importing the
//! 8-digit scratch codes of google-authenticator, never leaves a user with
//! codes that can no longer be typed in: a base32 set accepts any length the
//! configuration allows (the hash decides), a digit set exactly its digits.

use std::fmt;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::random::{self, RandomUnavailable};

/// The characters of a code, in the order a random index picks them.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters per code by default: 60 bits.
pub const DEFAULT_LENGTH: u8 = 12;
/// The shortest code length: 50 bits, and longer than any TOTP code, so the
/// two can never be confused.
pub const MIN_LENGTH: u8 = 10;
/// The longest code length: 160 bits.
pub const MAX_LENGTH: u8 = 32;
/// Codes per set by default.
pub const DEFAULT_COUNT: u8 = 10;
/// The most codes a set may hold.
pub const MAX_CODES: usize = 64;

const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;
const GROUP: usize = 4;

/// Maps one typed character to its place in [`ALPHABET`], Crockford-style.
fn canonical(b: u8) -> Option<u8> {
    let c = b.to_ascii_lowercase();
    match c {
        b'o' => Some(b'0'),
        b'i' | b'l' => Some(b'1'),
        _ if ALPHABET.contains(&c) => Some(c),
        _ => None,
    }
}

fn is_separator(b: u8) -> bool {
    b == b'-' || b == b' '
}

/// True if `b` may appear in a typed recovery code (a character that
/// normalizes, or a separator). Lets the prompt tell "wrong length" from
/// "not a code at all" in the log.
pub(crate) fn is_code_character(b: u8) -> bool {
    is_separator(b) || canonical(b).is_some()
}

/// A response normalized to the form recovery codes are hashed in:
/// exactly the expected number of alphabet characters, lowercase, no
/// separators. Whether it is one of the user's codes is for
/// [`RecoveryHashes::find`] to say.
pub struct Candidate(Zeroizing<String>);

impl Candidate {
    /// The normalized characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalized characters as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Candidate(..)")
    }
}

/// Normalizes what a user typed into a recovery code candidate of `length`
/// characters, or `None` if it cannot be one.
///
/// The rules, which are also what users are told:
/// - ASCII only; any other byte means it is not a recovery code;
/// - case does not matter (`7KQ2` is `7kq2`);
/// - '-' and ' ' are separators and are dropped wherever they are;
/// - as in Crockford's base32, `o` reads as `0`, and `i` and `l` read as `1`;
/// - any other character (including `u`, tabs and newlines) means it is not
///   a recovery code;
/// - what is left must be exactly `length` characters, and `length` must be
///   within [`MIN_LENGTH`]..=[`MAX_LENGTH`].
pub fn normalize(input: &[u8], length: u8) -> Option<Candidate> {
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return None;
    }
    let want = usize::from(length);
    // Sized up front so no reallocation leaves a copy behind.
    let mut out = Zeroizing::new(String::with_capacity(want));
    for &b in input {
        if is_separator(b) {
            continue;
        }
        let c = canonical(b)?;
        if out.len() == want {
            return None;
        }
        out.push(char::from(c));
    }
    (out.len() == want).then_some(Candidate(out))
}

/// A freshly generated recovery code, to show the user once.
pub struct RecoveryCode(Zeroizing<String>);

impl RecoveryCode {
    /// The code as shown to the user: groups of four joined by '-'
    /// (`7kq2-m9xd-4hfr`).
    pub fn display(&self) -> &str {
        &self.0
    }

    /// The same grouped form as [`RecoveryCode::display`].
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

fn grouped(code: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(code.len() + code.len() / GROUP));
    for (i, c) in code.chars().enumerate() {
        if i > 0 && i % GROUP == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// How the codes of a set are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFormat {
    /// [`MIN_LENGTH`]..=[`MAX_LENGTH`] characters of [`ALPHABET`], read as
    /// [`normalize`] documents: the codes pam_mfa makes.
    Base32,
    /// Exactly this many decimal digits ('-' and ' ' dropped): scratch codes
    /// carried over from google-authenticator, which are 8 digits.
    Digits(u8),
}

impl CodeFormat {
    /// The fewest digits a [`CodeFormat::Digits`] set may have.
    pub const MIN_DIGITS: u8 = 6;
    /// The most digits a [`CodeFormat::Digits`] set may have.
    pub const MAX_DIGITS: u8 = 16;

    /// What `input` is as a code of this format, if it can be one.
    pub fn candidate(self, input: &[u8]) -> Option<Candidate> {
        match self {
            CodeFormat::Base32 => {
                let typed = input.iter().filter(|&&b| !is_separator(b)).count();
                let length = u8::try_from(typed).ok()?;
                normalize(input, length)
            }
            CodeFormat::Digits(n) => {
                if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&n) {
                    return None;
                }
                let mut out = Zeroizing::new(String::with_capacity(usize::from(n)));
                for &b in input {
                    if is_separator(b) {
                        continue;
                    }
                    if !b.is_ascii_digit() || out.len() == usize::from(n) {
                        return None;
                    }
                    out.push(char::from(b));
                }
                (out.len() == usize::from(n)).then_some(Candidate(out))
            }
        }
    }
}

/// Argon2id cost settings for hashing recovery codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 8 MiB, 2 passes, 1 lane: about 5 ms per hash on one core of the
    /// reference machine, so that ten codes per user let bulk provisioning
    /// reach well over 20 users a second on 2 cores. A recovery code holds
    /// 50 to 60 random bits, not a password's few dozen: at this cost an
    /// offline guess at one 60-bit set takes in the order of 10^7 core-years
    /// (docs/threat-model.md, "Recovery codes"; measurements in
    /// docs/benchmarks.md). NIST SP 800-63B 5.1.2 asks for a salted one-way
    /// KDF below 112 bits, which this is.
    fn default() -> Self {
        KdfParams {
            memory_kib: 8_192,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// The least memory accepted, in KiB (Argon2's own floor).
    pub const MIN_MEMORY_KIB: u32 = 8;
    /// The most memory accepted, in KiB: 1 GiB, beyond which a login would
    /// stall the host.
    pub const MAX_MEMORY_KIB: u32 = 1_048_576;
    /// The fewest iterations accepted.
    pub const MIN_ITERATIONS: u32 = 1;
    /// The most iterations accepted.
    pub const MAX_ITERATIONS: u32 = 16;
    /// The fewest lanes accepted.
    pub const MIN_PARALLELISM: u32 = 1;
    /// The most lanes accepted.
    pub const MAX_PARALLELISM: u32 = 8;

    /// The default before 8 MiB: OWASP's password minimum, 19 MiB and 2
    /// passes. Sets hashed with it keep verifying (every set stores its own
    /// settings), and a self-service request made by an older `mfa-enroll`
    /// may still carry it, so it stays the most a request may ask of a
    /// login (see [`KdfParams::SELF_SERVICE_LIMIT`]).
    pub const PREVIOUS_DEFAULT: KdfParams = KdfParams {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// The heaviest settings a self-service request may carry: the previous
    /// default, which bounds what checking one code at login can cost and
    /// still admits requests sealed before the default was lowered.
    pub const SELF_SERVICE_LIMIT: KdfParams = Self::PREVIOUS_DEFAULT;

    /// True if hashing with these settings costs no more than with `limit`:
    /// no more memory, passes or lanes.
    pub fn within(self, limit: KdfParams) -> bool {
        self.memory_kib <= limit.memory_kib
            && self.iterations <= limit.iterations
            && self.parallelism <= limit.parallelism
    }

    /// Checks the settings against the bounds above, and that there are at
    /// least 8 KiB of memory per lane, as Argon2 requires.
    ///
    /// # Errors
    /// [`RecoveryError::BadKdfParams`] naming the setting out of range.
    pub fn validate(self) -> Result<(), RecoveryError> {
        let check = |setting: &'static str, value: u32, min: u32, max: u32| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(RecoveryError::BadKdfParams {
                    setting,
                    value,
                    min,
                    max,
                })
            }
        };
        check(
            "parallelism",
            self.parallelism,
            Self::MIN_PARALLELISM,
            Self::MAX_PARALLELISM,
        )?;
        check(
            "iterations",
            self.iterations,
            Self::MIN_ITERATIONS,
            Self::MAX_ITERATIONS,
        )?;
        check(
            "memory_kib",
            self.memory_kib,
            Self::MIN_MEMORY_KIB.max(8 * self.parallelism),
            Self::MAX_MEMORY_KIB,
        )
    }

    fn argon2(self) -> Result<argon2::Argon2<'static>, RecoveryError> {
        self.validate()?;
        let params = argon2::Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(HASH_BYTES),
        )
        .map_err(|e| RecoveryError::Kdf(e.to_string()))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

/// Why recovery codes could not be generated or checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryError {
    /// Argon2id itself failed.
    Kdf(String),
    /// An Argon2id setting is outside the accepted range.
    BadKdfParams {
        /// The setting's name (`memory_kib`, `iterations`, `parallelism`).
        setting: &'static str,
        /// Its value.
        value: u32,
        /// The least accepted value.
        min: u32,
        /// The greatest accepted value.
        max: u32,
    },
    /// A code length outside [`MIN_LENGTH`]..=[`MAX_LENGTH`].
    BadLength(u8),
    /// A set would hold no codes, or more than [`MAX_CODES`].
    BadCount(usize),
    /// The same hash appears twice in a set, so removing one would leave
    /// the code usable a second time.
    DuplicateHash,
    /// A digit-code format outside [`CodeFormat::MIN_DIGITS`]..=[`CodeFormat::MAX_DIGITS`].
    BadFormat(u8),
    /// A code given to [`RecoveryHashes::from_codes`] is not of its format.
    NotACode,
    /// The kernel gave no random bytes.
    Random(RandomUnavailable),
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Kdf(e) => write!(
                f,
                "hashing a recovery code with Argon2id failed ({e}); check the recovery code KDF settings"
            ),
            RecoveryError::BadKdfParams {
                setting,
                value,
                min,
                max,
            } => write!(
                f,
                "recovery code KDF setting {setting} = {value} is outside {min}..={max}; set it within that range"
            ),
            RecoveryError::BadLength(length) => write!(
                f,
                "recovery codes have {MIN_LENGTH} to {MAX_LENGTH} characters, not {length}; fix the recovery code length"
            ),
            RecoveryError::BadCount(count) => write!(
                f,
                "a recovery code set holds 1 to {MAX_CODES} codes, not {count}; fix the recovery code count"
            ),
            RecoveryError::DuplicateHash => f.write_str(
                "the recovery code set lists the same code twice, so the record is damaged; regenerate the recovery codes",
            ),
            RecoveryError::BadFormat(n) => write!(
                f,
                "digit recovery codes have {} to {} digits, not {n}",
                CodeFormat::MIN_DIGITS,
                CodeFormat::MAX_DIGITS
            ),
            RecoveryError::NotACode => f.write_str(
                "a code to carry over is not in the format of its set; check the codes being imported",
            ),
            RecoveryError::Random(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RecoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecoveryError::Random(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RandomUnavailable> for RecoveryError {
    fn from(e: RandomUnavailable) -> Self {
        RecoveryError::Random(e)
    }
}

fn hash(
    kdf: &argon2::Argon2<'_>,
    salt: &[u8; SALT_BYTES],
    code: &[u8],
) -> Result<Zeroizing<[u8; HASH_BYTES]>, RecoveryError> {
    let mut out = Zeroizing::new([0u8; HASH_BYTES]);
    kdf.hash_password_into(code, salt, &mut out[..])
        .map_err(|e| RecoveryError::Kdf(e.to_string()))?;
    Ok(out)
}

/// The stored form of a user's remaining recovery codes: one salt and one
/// Argon2id hash per unused code.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryHashes {
    format: CodeFormat,
    salt: [u8; SALT_BYTES],
    params: KdfParams,
    hashes: Vec<[u8; HASH_BYTES]>,
}

impl fmt::Debug for RecoveryHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hashes are what an offline guesser needs; keep them out of logs.
        f.debug_struct("RecoveryHashes")
            .field("format", &self.format)
            .field("params", &self.params)
            .field("remaining", &self.hashes.len())
            .finish_non_exhaustive()
    }
}

impl RecoveryHashes {
    /// Rebuilds a set from its stored parts, as read from a record.
    ///
    /// # Errors
    /// [`RecoveryError::BadKdfParams`] for settings out of range,
    /// [`RecoveryError::BadCount`] for more than [`MAX_CODES`] hashes,
    /// [`RecoveryError::DuplicateHash`] if a hash repeats,
    /// [`RecoveryError::BadFormat`] for a digit format out of range.
    pub fn from_parts(
        format: CodeFormat,
        salt: [u8; SALT_BYTES],
        params: KdfParams,
        hashes: Vec<[u8; HASH_BYTES]>,
    ) -> Result<Self, RecoveryError> {
        params.validate()?;
        if let CodeFormat::Digits(n) = format {
            if !(CodeFormat::MIN_DIGITS..=CodeFormat::MAX_DIGITS).contains(&n) {
                return Err(RecoveryError::BadFormat(n));
            }
        }
        if hashes.len() > MAX_CODES {
            return Err(RecoveryError::BadCount(hashes.len()));
        }
        for (i, h) in hashes.iter().enumerate() {
            if hashes[..i].contains(h) {
                return Err(RecoveryError::DuplicateHash);
            }
        }
        Ok(RecoveryHashes {
            format,
            salt,
            params,
            hashes,
        })
    }

    /// Hashes codes the user already holds (scratch codes carried over by an
    /// import) into a set of `format`, under a fresh salt. Duplicates count
    /// once.
    ///
    /// # Errors
    /// [`RecoveryError::NotACode`] if a code is not of `format`;
    /// [`RecoveryError::BadCount`], [`RecoveryError::BadFormat`],
    /// [`RecoveryError::BadKdfParams`], [`RecoveryError::Random`],
    /// [`RecoveryError::Kdf`].
    pub fn from_codes(
        format: CodeFormat,
        codes: &[&str],
        params: KdfParams,
    ) -> Result<Self, RecoveryError> {
        if codes.is_empty() || codes.len() > MAX_CODES {
            return Err(RecoveryError::BadCount(codes.len()));
        }
        let kdf = params.argon2()?;
        let salt = random::bytes::<SALT_BYTES>()?;
        let mut hashes: Vec<[u8; HASH_BYTES]> = Vec::with_capacity(codes.len());
        for code in codes {
            let candidate = format
                .candidate(code.as_bytes())
                .ok_or(RecoveryError::NotACode)?;
            let h = *hash(&kdf, &salt, candidate.as_bytes())?;
            if !hashes.contains(&h) {
                hashes.push(h);
            }
        }
        Self::from_parts(format, salt, params, hashes)
    }

    /// How the set's codes are written.
    pub fn format(&self) -> CodeFormat {
        self.format
    }

    /// What `input` is as a code of this set, if it can be one at all.
    pub fn candidate(&self, input: &[u8]) -> Option<Candidate> {
        self.format.candidate(input)
    }

    /// The salt all hashes of the set share.
    pub fn salt(&self) -> &[u8; SALT_BYTES] {
        &self.salt
    }

    /// The Argon2id settings the hashes were made with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// One hash per unused code.
    pub fn hashes(&self) -> &[[u8; HASH_BYTES]] {
        &self.hashes
    }

    /// How many codes are left.
    pub fn remaining(&self) -> usize {
        self.hashes.len()
    }

    /// The index of the unused code `candidate` is, if any.
    ///
    /// Costs one Argon2id evaluation, then compares against every hash in
    /// constant time without stopping at a match, so neither the time nor
    /// the work tells which code matched or how many are left.
    ///
    /// # Errors
    /// [`RecoveryError`] if Argon2id fails; the caller denies.
    pub fn find(&self, candidate: &Candidate) -> Result<Option<usize>, RecoveryError> {
        let kdf = self.params.argon2()?;
        let probe = hash(&kdf, &self.salt, candidate.as_bytes())?;
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, stored) in (0u32..).zip(&self.hashes) {
            let matches = stored[..].ct_eq(&probe[..]);
            index.conditional_assign(&i, matches);
            found |= matches;
        }
        if bool::from(found) {
            Ok(usize::try_from(index).ok())
        } else {
            Ok(None)
        }
    }

    /// Removes the code at `index` (from [`RecoveryHashes::find`]) so it
    /// cannot be used again. Returns false, changing nothing, if `index` is
    /// out of range; a caller that gets false must not grant.
    pub fn remove(&mut self, index: usize) -> bool {
        if index < self.hashes.len() {
            self.hashes.remove(index);
            true
        } else {
            false
        }
    }
}

fn random_code(length: u8) -> Result<Zeroizing<String>, RandomUnavailable> {
    let mut code = Zeroizing::new(String::with_capacity(usize::from(length)));
    for _ in 0..length {
        code.push(char::from(ALPHABET[random::index_below(ALPHABET.len())?]));
    }
    Ok(code)
}

/// Generates a set of `count` distinct codes of `length` characters from the
/// kernel CSPRNG and their hashes under a fresh random salt.
///
/// The codes are returned to be shown once; only the hashes are kept.
///
/// # Errors
/// [`RecoveryError::BadCount`], [`RecoveryError::BadLength`] or
/// [`RecoveryError::BadKdfParams`] for settings out of range,
/// [`RecoveryError::Random`] if the kernel gives no random bytes,
/// [`RecoveryError::Kdf`] if Argon2id fails.
pub fn generate(
    count: u8,
    length: u8,
    params: KdfParams,
) -> Result<(Vec<RecoveryCode>, RecoveryHashes), RecoveryError> {
    if count == 0 || usize::from(count) > MAX_CODES {
        return Err(RecoveryError::BadCount(usize::from(count)));
    }
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return Err(RecoveryError::BadLength(length));
    }
    let kdf = params.argon2()?;
    let salt = random::bytes::<SALT_BYTES>()?;

    let mut raw: Vec<Zeroizing<String>> = Vec::with_capacity(usize::from(count));
    while raw.len() < usize::from(count) {
        let code = random_code(length)?;
        // Two equal codes would be one code that works twice.
        if raw.iter().all(|c| c.as_str() != code.as_str()) {
            raw.push(code);
        }
    }

    let mut hashes = Vec::with_capacity(raw.len());
    for code in &raw {
        hashes.push(*hash(&kdf, &salt, code.as_bytes())?);
    }
    let codes = raw.iter().map(|c| RecoveryCode(grouped(c))).collect();
    Ok((
        codes,
        RecoveryHashes {
            format: CodeFormat::Base32,
            salt,
            params,
            hashes,
        },
    ))
}

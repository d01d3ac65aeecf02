//! The fuzz targets of pam_mfa, as plain functions over bytes.
//!
//! Every parser that reads something an attacker or a careless administrator
//! can write is a target here: the configuration file, the module arguments
//! of a pam.d line, a sealed record file and the record inside it, a sealed
//! pending enrollment and the request inside it, what a user types at the
//! prompt, and the google-authenticator and `pam_oath` files an import reads.
//! The last target drives the whole login flow with a hostile conversation.
//!
//! The targets do more than "must not panic": each checks properties that
//! must hold for every input (a decoded record encodes again, a tampered
//! sealed file never opens to other contents, a login succeeds only for a
//! valid code, the failure counter moves by exactly one per wrong code...).
//! A violated property panics, which libFuzzer reports as a crash.
//!
//! The same functions run in three places: under libFuzzer (`fuzz_targets/`,
//! `cargo fuzz run NAME`), and on the stable toolchain in `cargo test`, where
//! `tests/tests/fuzz_targets.rs` feeds them the seeds, every saved crash and
//! inputs from a deterministic mutator. They depend on nothing but mfa-core,
//! zeroize and std, so that test can include this file as a module.
#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use mfa_core::clock::FixedClock;
use mfa_core::config::{parse_module_args, Config, Override, ARGS_ORIGIN};
use mfa_core::flow::{
    self, Account, ConversationFailed, Directory, Host, Outcome, Prompter, Request, CODE_PROMPT,
    NEW_DEVICE_PROMPT,
};
use mfa_core::fsutil::FileTrust;
use mfa_core::import::{parse_google_authenticator, parse_oath_usersfile, OathEntry};
use mfa_core::input::{self, Input, InvalidInput, MAX_INPUT_BYTES};
use mfa_core::keys::MasterKey;
use mfa_core::pending::{self, Pending, Proof, Request as PendingRequest};
use mfa_core::record::{Device, LastSuccess, Record, WRITE_VERSION};
use mfa_core::recovery::{self, CodeFormat, KdfParams, RecoveryHashes};
use mfa_core::store::{decode_record_file, Store};
use mfa_core::throttle::{self, Gate};
use mfa_core::totp::{self, Algorithm, TotpParams, MIN_SECRET_BYTES};
use zeroize::Zeroizing;

/// The names of every target, as `cargo fuzz list` shows them.
pub const TARGETS: &[&str] = &[
    "config",
    "module_args",
    "record",
    "pending",
    "input",
    "import_google_authenticator",
    "import_oath",
    "flow",
];

/// Runs the target called `name` on `data`.
///
/// # Panics
/// If a property of the target does not hold, or `name` is unknown.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "config" => config(data),
        "module_args" => module_args(data),
        "record" => record(data),
        "pending" => pending(data),
        "input" => code_input(data),
        "import_google_authenticator" => import_google_authenticator(data),
        "import_oath" => import_oath(data),
        "flow" => flow(data),
        other => panic!("no fuzz target {other}"),
    }
}

// ---------------------------------------------------------------------------
// Reading structured choices from the fuzzer's bytes

/// Takes choices from the front of the input; an exhausted input reads as
/// zeros, so every input is a complete run.
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Choices { data }
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let wide = (usize::from(self.byte()) << 8) | usize::from(self.byte());
        wide % n
    }

    /// A coin flip.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Whatever is left.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

// ---------------------------------------------------------------------------
// Configuration and module arguments

/// `Config::parse` on any text, and with module arguments overlaid.
///
/// Mode byte 0: the rest is the file. Otherwise: the first line is split
/// off as NUL-separated module arguments, the rest is the file.
pub fn config(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode & 1 == 0 {
        check_config_result(&text, Config::parse(&text, "fuzz"));
        return;
    }
    let (args_line, file) = text.split_once('\n').unwrap_or((&text, ""));
    let args: Vec<&str> = args_line.split('\0').collect();
    if let Ok(parsed) = parse_module_args(&args) {
        check_config_result(
            file,
            Config::parse_with_overrides(file, "fuzz", &parsed.overrides),
        );
    }
}

fn check_config_result(text: &str, result: Result<Config, mfa_core::config::ConfigError>) {
    match result {
        Ok(config) => {
            // Everything an administrator can ask of a loaded config.
            assert!(!config.describe().is_empty());
            for service in ["sshd", "sudo", "", "x\u{0}y"] {
                let _ = mfa_core::policy::effective(&config, service, &[]);
            }
            let t = &config.throttle;
            assert!(
                t.lockout_after > t.backoff_after,
                "a config with lockout_after <= backoff_after was accepted: {t:?}"
            );
            assert!(t.backoff_max_seconds >= t.backoff_seconds);
            assert!(
                config.totp.window <= 10,
                "an out-of-range window was accepted"
            );
        }
        Err(e) => {
            // The message is for an administrator: it must render, and a
            // line number must point into the text.
            let shown = e.to_string();
            assert!(!shown.is_empty());
            if let (Some(line), Some(origin)) = (e.line(), e.origin()) {
                if origin != ARGS_ORIGIN {
                    let lines = text.lines().count().max(1);
                    assert!(
                        line >= 1 && line <= lines + 1,
                        "error at line {line} of a {lines}-line text: {shown}"
                    );
                }
            }
            let _ = e.key();
        }
    }
}

/// `parse_module_args` on any argument vector (NUL separates arguments,
/// as no C string can hold one).
pub fn module_args(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let args: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\0').collect()
    };
    match parse_module_args(&args) {
        Ok(parsed) => {
            if let Some(path) = &parsed.config {
                assert!(path.is_absolute(), "a relative config= was accepted");
            }
            let mut keys: Vec<&str> = parsed.overrides.iter().map(Override::key).collect();
            let n = keys.len();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), n, "a setting given twice was accepted");
            assert!(
                parsed.debug == args.contains(&"debug"),
                "debug flag does not match the arguments"
            );
            // Overlaid on an empty file, anything wrong is the arguments' fault.
            if let Err(e) = Config::parse_with_overrides("", "fuzz", &parsed.overrides) {
                assert_eq!(
                    e.origin(),
                    Some(ARGS_ORIGIN),
                    "an empty file was blamed for an argument: {e}"
                );
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// Records

const SEALED_UID: u32 = 4242;
const BASE_TIME: u64 = 1_700_000_000;

/// A small, fast recovery-code KDF: the targets hash many candidates.
const FAST_KDF: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn sample_device(name: &str, secret: &[u8], last_used_step: Option<u64>) -> Device {
    Device {
        name: name.to_owned(),
        secret: Zeroizing::new(secret.to_vec()),
        params: TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        },
        created: BASE_TIME - 1000,
        last_used_step,
    }
}

/// A file two commits wrote: slot 0 holds `older`, slot 1 holds `newer`.
struct SealedRecords {
    keys: MasterKey,
    older: Record,
    newer: Record,
    file: Vec<u8>,
}

static SEALED_RECORDS: OnceLock<SealedRecords> = OnceLock::new();

fn sealed_records() -> &'static SealedRecords {
    SEALED_RECORDS.get_or_init(|| {
        let dir = Scratch::new("record");
        let keys = MasterKey::generate(BASE_TIME).expect("a master key");
        let store = Store::new(dir.state(), dir.trust());
        let mut older = Record::new("alice", BASE_TIME);
        older
            .devices
            .push(sample_device("phone", b"12345678901234567890", None));
        let mut newer = older.clone();
        newer.failures = 1;
        newer.last_failure = Some(BASE_TIME + 5);
        let mut state = store.open_user(SEALED_UID, &keys).expect("open");
        state.rewrite(&older, &keys).expect("first write");
        state.commit(&newer, &keys).expect("in-place commit");
        drop(state);
        let file = fs::read(dir.state().join(SEALED_UID.to_string())).expect("read back");
        SealedRecords {
            keys,
            older,
            newer,
            file,
        }
    })
}

/// Applies edits from `c` to `bytes`: XOR at a position, truncation,
/// extension, or a copy of one half over the other (a rollback).
fn tamper(c: &mut Choices<'_>, bytes: &mut Vec<u8>) {
    for _ in 0..c.below(8) {
        if bytes.is_empty() {
            return;
        }
        match c.below(8) {
            0 => bytes.truncate(c.below(bytes.len() + 1)),
            1 => bytes.resize(bytes.len() + c.below(1024), c.byte()),
            2 => {
                let half = bytes.len() / 2;
                let (a, b) = bytes.split_at_mut(half);
                if c.flag() {
                    b[..half].copy_from_slice(&a[..half]);
                } else {
                    a.copy_from_slice(&b[..half]);
                }
            }
            _ => {
                let at = c.below(bytes.len());
                bytes[at] ^= c.byte() | 1;
            }
        }
    }
}

/// Mode byte even: `Record::decode` on raw bytes (format 1 or 2, by the
/// mode's second bit), and a decoded record must encode (in the current
/// format) and decode to itself. Odd: a sealed two-slot file with edits must
/// open to one of the two states written, or be refused.
pub fn record(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let version = if mode & 2 == 0 { 1 } else { WRITE_VERSION };
        if let Ok(r) = Record::decode(rest, version) {
            let encoded = r
                .encode()
                .unwrap_or_else(|e| panic!("a record that decodes does not encode: {e}: {r:?}"));
            let again = Record::decode(&encoded, WRITE_VERSION).expect("an encoded record decodes");
            assert_eq!(again, r, "decode(encode(r)) != r");
        }
        return;
    }
    let sealed = sealed_records();
    let mut c = Choices::new(rest);
    let mut bytes = sealed.file.clone();
    let edited = c.below(4) != 0;
    if edited {
        tamper(&mut c, &mut bytes);
    }
    let uid = if c.below(16) == 0 {
        SEALED_UID + 1
    } else {
        SEALED_UID
    };
    match decode_record_file(&bytes, uid, &sealed.keys) {
        Ok((r, _)) => {
            assert_eq!(uid, SEALED_UID, "a record opened for another uid");
            assert!(
                r == sealed.newer || r == sealed.older,
                "a tampered file opened to a state never written: {r:?}"
            );
            if !edited {
                assert_eq!(r, sealed.newer, "the newer slot was not chosen");
            }
        }
        Err(e) => {
            assert!(
                edited || uid != SEALED_UID,
                "an untouched file was refused: {e}"
            );
            assert!(!e.to_string().is_empty());
        }
    }
    // Arbitrary bytes, not just edits of a good file.
    let _ = decode_record_file(c.rest(), SEALED_UID, &sealed.keys);
}

// ---------------------------------------------------------------------------
// Pending enrollments

struct SealedPending {
    keys: MasterKey,
    plaintext: Zeroizing<Vec<u8>>,
    sealed: Vec<u8>,
}

static SEALED_PENDING: OnceLock<SealedPending> = OnceLock::new();

fn sealed_pending() -> &'static SealedPending {
    SEALED_PENDING.get_or_init(|| {
        let keys = MasterKey::generate(BASE_TIME).expect("a master key");
        let (_, recovery) = recovery::generate(2, 10, FAST_KDF).expect("codes");
        let pending = Pending {
            id: [7; 16],
            created: BASE_TIME,
            request: PendingRequest::Device {
                device: sample_device("tablet", b"abcdefghijabcdefghij", None),
                recovery,
                code: Some(Zeroizing::new("123456".to_owned())),
            },
            proof: Some(Proof::Totp(Zeroizing::new("654321".to_owned()))),
        };
        let sealed = pending
            .seal(&keys.enrollment_public_key(), SEALED_UID)
            .expect("seal");
        SealedPending {
            keys,
            plaintext: pending.encode(),
            sealed,
        }
    })
}

/// Mode byte even: `Pending::decode` on raw bytes, format 1 or 2 by the
/// mode's second bit (a decoded request must encode to bytes that decode, in
/// the current format, to it; a format 1 request keeps its derived id). Odd: a sealed file with edits opens
/// to exactly what was sealed, or not at all.
pub fn pending(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let version = if mode & 2 == 0 { 1 } else { pending::FORMAT };
        if let Ok(p) = Pending::decode(rest, version) {
            let again =
                Pending::decode(&p.encode(), pending::FORMAT).expect("an encoded request decodes");
            assert_eq!(again, p, "decode(encode(p)) != p");
        }
        return;
    }
    let sp = sealed_pending();
    let mut c = Choices::new(rest);
    let mut bytes = sp.sealed.clone();
    let edited = c.below(4) != 0;
    if edited {
        tamper(&mut c, &mut bytes);
    }
    let uid = if c.below(16) == 0 {
        SEALED_UID + 1
    } else {
        SEALED_UID
    };
    match sp.keys.open_request(&bytes, uid) {
        Ok((version, plain)) => {
            assert_eq!(uid, SEALED_UID, "a pending file opened for another uid");
            assert_eq!(
                plain.as_slice(),
                sp.plaintext.as_slice(),
                "a tampered pending file opened to other contents"
            );
            Pending::decode(&plain, version).expect("what was sealed decodes");
        }
        Err(_) => assert!(edited || uid != SEALED_UID, "an untouched file was refused"),
    }
    let _ = sp.keys.open_enrollment(c.rest(), SEALED_UID);
}

// ---------------------------------------------------------------------------
// What the user types

/// `input::classify` and `input::parse_totp` agree with each other and with
/// SECURITY.md item 5, for every digits setting and recovery code format.
pub fn code_input(data: &[u8]) {
    let mut c = Choices::new(data);
    let digits = 6 + u8::try_from(c.below(3)).unwrap_or(0);
    let format = match c.below(3) {
        0 => CodeFormat::Base32,
        n => CodeFormat::Digits(if n == 1 { 8 } else { digits }),
    };
    let raw = c.rest();
    let classified = input::classify(raw, &[digits], Some(format));
    let totp = input::parse_totp(raw, digits);
    let all_digits = !raw.is_empty() && raw.iter().all(u8::is_ascii_digit);
    match &classified {
        Input::Totp(code) => {
            assert_eq!(
                code.as_bytes(),
                raw,
                "a TOTP code differs from what was typed"
            );
            assert!(raw.len() == usize::from(digits) && all_digits);
            assert!(totp.is_ok(), "classify and parse_totp disagree");
        }
        Input::Recovery(candidate) => {
            assert!(raw.len() <= MAX_INPUT_BYTES && raw.is_ascii() && !raw.contains(&0));
            check_candidate(format, candidate);
            assert!(totp.is_err(), "a TOTP code was taken for a recovery code");
        }
        Input::Either(code, candidate) => {
            assert_eq!(code.as_bytes(), raw);
            assert!(totp.is_ok(), "classify and parse_totp disagree");
            assert_eq!(
                format,
                CodeFormat::Digits(digits),
                "only digit codes overlap"
            );
            check_candidate(format, candidate);
        }
        Input::Invalid(reason) => {
            assert!(totp.is_err(), "classify refused what parse_totp took");
            if raw.len() > MAX_INPUT_BYTES {
                assert_eq!(*reason, InvalidInput::TooLong);
            }
            assert!(!reason.to_string().is_empty());
        }
    }
    if raw.len() > MAX_INPUT_BYTES {
        assert!(matches!(totp, Err(InvalidInput::TooLong)));
    }
}

/// A candidate is of its set's format, and normalizing it again changes
/// nothing.
fn check_candidate(format: CodeFormat, candidate: &recovery::Candidate) {
    match format {
        CodeFormat::Base32 => assert!((usize::from(recovery::MIN_LENGTH)
            ..=usize::from(recovery::MAX_LENGTH))
            .contains(&candidate.as_str().len())),
        CodeFormat::Digits(n) => {
            assert_eq!(candidate.as_str().len(), usize::from(n));
            assert!(candidate.as_bytes().iter().all(u8::is_ascii_digit));
        }
    }
    let again = format
        .candidate(candidate.as_bytes())
        .expect("a normalized code normalizes");
    assert_eq!(
        again.as_str(),
        candidate.as_str(),
        "normalize is not idempotent"
    );
}

// ---------------------------------------------------------------------------
// Imports

/// `parse_google_authenticator`: whatever it accepts is a usable device.
pub fn import_google_authenticator(data: &[u8]) {
    if let Ok(ga) = parse_google_authenticator(data) {
        assert!(
            ga.secret.len() >= MIN_SECRET_BYTES,
            "a short secret was imported"
        );
        assert!(ga.params.validate().is_ok(), "bad TOTP parameters imported");
        let _ = ga.window_steps();
        for now in [0, BASE_TIME, u64::MAX] {
            let device = ga.device("imported", now);
            if let Some(step) = device.last_used_step {
                assert!(
                    step <= totp::time_step(now, ga.params.period),
                    "an imported used step lies in the future"
                );
            }
        }
    }
}

/// `parse_oath_usersfile`: whatever it accepts is a usable device.
pub fn import_oath(data: &[u8]) {
    if let Ok(lines) = parse_oath_usersfile(data) {
        for line in lines {
            if let OathEntry::Totp(token) = line.entry {
                assert!(token.secret.len() >= MIN_SECRET_BYTES);
                assert!(token.params.validate().is_ok());
                let _ = token.device(&line.user, BASE_TIME, 1);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The login flow with a hostile conversation

/// A private directory for one fixture, removed when dropped.
struct Scratch {
    root: PathBuf,
}

static SCRATCH_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Scratch {
    fn new(what: &str) -> Self {
        // tmpfs where there is one: the flow commits with fdatasync.
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!(
            "pam-mfa-fuzz.{what}.{}.{}",
            std::process::id(),
            SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir(&root).expect("scratch directory");
        fs::create_dir(root.join("state")).expect("state directory");
        fs::set_permissions(root.join("state"), fs::Permissions::from_mode(0o700))
            .expect("chmod state");
        fs::create_dir(root.join("spool")).expect("spool directory");
        fs::set_permissions(root.join("spool"), fs::Permissions::from_mode(0o1733))
            .expect("chmod spool");
        Scratch { root }
    }

    fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    fn trust(&self) -> FileTrust {
        let meta = fs::metadata(&self.root).expect("scratch metadata");
        FileTrust::insecure_owner_for_tests(std::os::unix::fs::MetadataExt::uid(&meta))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The enrolled user of the flow fixture.
const ALICE: u32 = 61_000;
/// The user with no record.
const BOB: u32 = 61_001;
const SECRET_A: &[u8] = b"12345678901234567890";
const SECRET_B: &[u8] = b"09876543210987654321";
const RECOVERY_LENGTH: u8 = 10;

/// A state directory, a key and a recovery-code set, reused by every run.
pub struct FlowFixture {
    scratch: Scratch,
    key_file: Zeroizing<Vec<u8>>,
    codes: Vec<String>,
    hashes: RecoveryHashes,
}

impl Default for FlowFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// What the hostile conversation did.
struct Hostile<'a, 'o> {
    script: Choices<'a>,
    oracle: &'o Oracle,
    /// The secret the module showed for a new device, in base32.
    shown_secret: Option<String>,
    prompts: Vec<String>,
    /// For each prompt: whether the answer was a credential the oracle
    /// accepts for that prompt.
    valid: Vec<bool>,
}

/// What a correct answer is, worked out without the flow's code.
struct Oracle {
    now: u64,
    window: u8,
    devices: Vec<Device>,
    recovery: Vec<String>,
}

impl Oracle {
    fn totp_ok(&self, answer: &[u8]) -> bool {
        self.devices.iter().any(|d| {
            let t = totp::time_step(self.now, d.params.period);
            let first = t.saturating_sub(u64::from(self.window));
            (first..=t + u64::from(self.window)).any(|s| {
                d.last_used_step.is_none_or(|last| s > last)
                    && totp::code_at_step(&d.secret, d.params, s).as_bytes() == answer
            })
        })
    }

    fn recovery_ok(&self, answer: &[u8]) -> bool {
        // Six digits are always a TOTP code, never a recovery code.
        if answer.len() == 6 && answer.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let Some(candidate) = recovery::normalize(answer, RECOVERY_LENGTH) else {
            return false;
        };
        answer.len() <= MAX_INPUT_BYTES
            && self.recovery.iter().any(|code| {
                recovery::normalize(code.as_bytes(), RECOVERY_LENGTH)
                    .is_some_and(|c| c.as_str() == candidate.as_str())
            })
    }

    fn new_device_ok(&self, secret_b32: Option<&str>, answer: &[u8]) -> bool {
        let Some(secret) = secret_b32.and_then(|s| totp::base32_decode(s).ok()) else {
            return false;
        };
        let device = sample_device("new", &secret, None);
        Oracle {
            now: self.now,
            window: self.window,
            devices: vec![device],
            recovery: Vec::new(),
        }
        .totp_ok(answer)
    }
}

impl Hostile<'_, '_> {
    fn answer(&mut self, prompt: &str) -> Option<Vec<u8>> {
        let o = self.oracle;
        let device = |i: usize| o.devices.get(i).unwrap_or(&o.devices[0]);
        let code_at = |d: &Device, offset: i64| {
            let t = totp::time_step(o.now, d.params.period);
            let step = t.saturating_add_signed(offset);
            totp::code_at_step(&d.secret, d.params, step)
                .as_bytes()
                .to_vec()
        };
        Some(match self.script.below(10) {
            0 => return None,
            1 => code_at(device(0), 0),
            2 => {
                let offset = i64::try_from(self.script.below(7)).unwrap_or(0) - 3;
                code_at(device(self.script.below(2)), offset)
            }
            3 => o.recovery[self.script.below(o.recovery.len())]
                .as_bytes()
                .to_vec(),
            4 => {
                // Case and separators are documented as ignored.
                let code = &o.recovery[self.script.below(o.recovery.len())];
                code.replace('-', " ").to_ascii_uppercase().into_bytes()
            }
            5 => {
                let secret = self
                    .shown_secret
                    .as_deref()
                    .and_then(|s| totp::base32_decode(s).ok());
                match secret {
                    Some(s) => code_at(&sample_device("new", &s, None), 0),
                    None => code_at(device(0), 0),
                }
            }
            6 => {
                let fill = if self.script.flag() { b'1' } else { b'a' };
                vec![fill; MAX_INPUT_BYTES + self.script.below(4) * 256]
            }
            7 => {
                let mut a = code_at(device(0), 0);
                a.push(b"\n\0 "[self.script.below(3)]);
                a
            }
            _ => {
                let n = self.script.below(40);
                self.script.take(n).to_vec()
            }
        })
        .inspect(|a| {
            let ok = if prompt == CODE_PROMPT {
                o.totp_ok(a) || o.recovery_ok(a)
            } else {
                o.new_device_ok(self.shown_secret.as_deref(), a)
            };
            self.valid.push(ok);
        })
    }
}

impl Prompter for Hostile<'_, '_> {
    fn prompt(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed> {
        self.prompts.push(prompt.to_owned());
        if let Some(a) = self.answer(prompt) {
            Ok(Zeroizing::new(a))
        } else {
            self.valid.push(false);
            Err(ConversationFailed)
        }
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationFailed> {
        assert!(
            text.len() <= flow::MAX_MESSAGE,
            "an info message over 512 bytes"
        );
        if let Some(s) = text.strip_prefix("Secret: ") {
            self.shown_secret = Some(s.replace(' ', ""));
        }
        if self.script.below(16) == 0 {
            Err(ConversationFailed)
        } else {
            Ok(())
        }
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationFailed> {
        assert!(text.len() <= flow::MAX_MESSAGE);
        if self.script.below(16) == 0 {
            Err(ConversationFailed)
        } else {
            Ok(())
        }
    }
}

/// A name service with two users, failing when told to.
struct Names {
    fail_lookup: bool,
    fail_groups: bool,
    in_wheel: bool,
}

impl Directory for Names {
    fn account(&self, user: &str) -> Result<Option<Account>, String> {
        if self.fail_lookup {
            return Err("name service down".into());
        }
        Ok(match user {
            "alice" => Some(Account {
                uid: ALICE,
                gid: ALICE,
            }),
            "bob" => Some(Account { uid: BOB, gid: BOB }),
            _ => None,
        })
    }

    fn groups(&self, _user: &str, _account: Account) -> Result<Vec<String>, String> {
        if self.fail_groups {
            return Err("group lookup failed".into());
        }
        Ok(if self.in_wheel {
            vec!["wheel".into()]
        } else {
            vec!["users".into()]
        })
    }
}

const POLICIES: [&str; 3] = ["skip", "configure", "deny"];

impl FlowFixture {
    /// A new fixture in a private directory (removed when dropped).
    pub fn new() -> Self {
        let scratch = Scratch::new("flow");
        let keys = MasterKey::generate(BASE_TIME).expect("a master key");
        let (codes, hashes) = recovery::generate(3, RECOVERY_LENGTH, FAST_KDF).expect("codes");
        FlowFixture {
            key_file: keys.to_file_contents(),
            codes: codes.iter().map(|c| c.display().to_owned()).collect(),
            hashes,
            scratch,
        }
    }

    /// One login (and, if it enrolled a device, the account phase) as
    /// `data` describes it, checking the outcome against an oracle.
    #[allow(clippy::too_many_lines)]
    pub fn run(&self, data: &[u8]) {
        let mut c = Choices::new(data);
        let policy = POLICIES[c.below(3)];
        let remember = if c.flag() { 300 } else { 0 };
        let window = u8::try_from(c.below(3)).unwrap_or(1);
        let backoff_after = c.below(4);
        let lockout_after = backoff_after + 1 + c.below(3);
        let exempt = c.flag();
        let text = format!(
            "[policy]\nnot_configured = \"{policy}\"\nremember_seconds = {remember}\n\
             [totp]\nwindow = {window}\n\
             [recovery]\nlength = {RECOVERY_LENGTH}\ncount = 2\n\
             [throttle]\nfail_delay_ms = 0\nbackoff_after = {backoff_after}\nlockout_after = {lockout_after}\nbackoff_seconds = 30\nbackoff_max_seconds = 60\n\
             [groups]\nexempt = [{}]\n\
             [paths]\nstate_dir = \"{}\"\nspool_dir = \"{}\"\n",
            if exempt { "\"wheel\"" } else { "" },
            self.scratch.state().display(),
            self.scratch.root.join("spool").display(),
        );
        let config = Config::parse(&text, "fuzz").expect("the fixture's config parses");
        let trust = self.scratch.trust();
        let host = Host {
            keys: MasterKey::parse(&self.key_file, "fuzz").expect("key"),
            store: Store::new(self.scratch.state(), trust)
                .with_lock_timeout(Duration::from_secs(2)),
            hostname: "fuzzhost".into(),
            trust,
            config,
        };

        // The state before the login.
        let now = BASE_TIME + u64::from(c.u16()) * 7;
        let step = totp::time_step(now, 30);
        let mut before = Record::new("alice", BASE_TIME - 1000);
        let last_used = |c: &mut Choices<'_>| match c.below(3) {
            0 => None,
            _ => Some(step + 1 - c.below(4) as u64),
        };
        let used_a = last_used(&mut c);
        before
            .devices
            .push(sample_device("phone", SECRET_A, used_a));
        if c.flag() {
            let used_b = last_used(&mut c);
            before
                .devices
                .push(sample_device("tablet", SECRET_B, used_b));
        }
        let mut hashes = self.hashes.clone();
        let mut recovery_left: Vec<String> = self.codes.clone();
        if c.flag() {
            let i = c.below(recovery_left.len());
            hashes.remove(i);
            recovery_left.remove(i);
        }
        before.recovery = Some(hashes);
        before.failures = u32::try_from(c.below(lockout_after + 2)).unwrap_or(0);
        if before.failures > 0 {
            before.last_failure = Some(now - c.below(90) as u64);
        }
        if c.flag() {
            let service = ["sshd", "sudo"][c.below(2)];
            before.last_success =
                Some(LastSuccess::new(now - c.below(600) as u64, service, "", ""));
        }
        {
            let mut state = host.store.open_user(ALICE, &host.keys).expect("open alice");
            state.rewrite(&before, &host.keys).expect("reset alice");
        }
        host.store.remove_user(BOB).expect("reset bob");

        let user_choice = c.below(6);
        let hostile_name: String;
        let user = match user_choice {
            0 | 1 => "alice",
            2 => "bob",
            3 => "",
            4 => "../alice",
            _ => {
                let n = c.below(300);
                hostile_name = String::from_utf8_lossy(c.take(n)).into_owned();
                &hostile_name
            }
        };
        let service = ["sshd", "sudo"][c.below(2)];
        let req = Request {
            user,
            service,
            rhost: if c.flag() { Some("203.0.113.9") } else { None },
            tty: None,
            silent: c.flag(),
        };
        let names = Names {
            fail_lookup: c.below(16) == 0,
            fail_groups: c.below(16) == 0,
            in_wheel: c.flag(),
        };
        let has_conversation = c.below(12) != 0;
        let oracle = Oracle {
            now,
            window,
            devices: before.devices.clone(),
            recovery: recovery_left.clone(),
        };
        let mut hostile = Hostile {
            script: Choices::new(c.rest()),
            oracle: &oracle,
            shown_secret: None,
            prompts: Vec::new(),
            valid: Vec::new(),
        };
        let clock = FixedClock(now);
        let report = flow::authenticate(
            &host,
            req,
            has_conversation.then_some(&mut hostile),
            &names,
            &clock,
        );
        assert!(
            !report.events.is_empty(),
            "a decision without an audit event"
        );

        let known = !names.fail_lookup && matches!(user, "alice" | "bob");
        let exempt_member = known && exempt && names.in_wheel && !names.fail_groups;
        let after = {
            let state = host
                .store
                .open_user(ALICE, &host.keys)
                .expect("alice's record opens after any login");
            state.record().cloned().expect("alice stays enrolled")
        };
        let shown = format!(
            "user={user:?} policy={policy} outcome={:?} prompts={:?} valid={:?}",
            report.outcome, hostile.prompts, hostile.valid
        );
        if std::env::var_os("PAM_MFA_FUZZ_DEBUG").is_some() {
            eprintln!("flow: {shown}");
        }

        // Nobody but alice and bob ever gets anything but a refusal.
        if !known {
            assert!(
                matches!(
                    report.outcome,
                    Outcome::Denied
                        | Outcome::ConversationFailed
                        | Outcome::NoConversation
                        | Outcome::DirectoryUnavailable
                ),
                "unknown user {user:?}: {shown}"
            );
            assert_eq!(after, before, "an unknown user changed alice's record");
            return;
        }
        if names.fail_groups && exempt {
            assert!(
                matches!(report.outcome, Outcome::DirectoryUnavailable),
                "{shown}"
            );
            return;
        }
        if exempt_member {
            assert!(matches!(report.outcome, Outcome::Ignore), "{shown}");
            return;
        }

        if user == "bob" {
            assert_eq!(after, before, "bob's login changed alice's record");
            let verified = matches!(report.outcome, Outcome::EnrollmentVerified(_));
            match (policy, &report.outcome) {
                // Under deny the user is prompted like anyone (so an unknown
                // account looks the same), then denied.
                ("skip", Outcome::Ignore)
                | (
                    "deny",
                    Outcome::Denied | Outcome::ConversationFailed | Outcome::NoConversation,
                ) => {}
                ("configure", Outcome::EnrollmentVerified(_)) => assert!(
                    hostile.prompts == [NEW_DEVICE_PROMPT] && hostile.valid == [true],
                    "a new device was verified without its code: {shown}"
                ),
                (
                    "configure",
                    Outcome::WrongCode | Outcome::ConversationFailed | Outcome::NoConversation,
                ) => assert!(
                    !hostile.valid.contains(&true) || hostile.shown_secret.is_none(),
                    "the right code for the new device was refused: {shown}"
                ),
                _ => panic!("bob under {policy}: {shown}"),
            }
            if let Outcome::EnrollmentVerified(pending) = report.outcome {
                let done = flow::complete_enrollment(
                    &host,
                    req,
                    Some(*pending),
                    has_conversation.then_some(&mut hostile),
                    &clock,
                );
                assert!(
                    matches!(done.outcome, Outcome::Success),
                    "{:?}",
                    done.outcome
                );
            }
            let state = host
                .store
                .open_user(BOB, &host.keys)
                .expect("bob's record opens");
            assert_eq!(
                state.record().is_some(),
                verified,
                "bob has a record exactly when his new device was verified"
            );
            return;
        }

        // alice, enrolled.
        let gate = throttle::gate(&before, &host.config.throttle, now);
        let remembered = remember > 0
            && before
                .last_success
                .as_ref()
                .is_some_and(|l| l.service == service && now >= l.time && now - l.time <= remember);
        let answered_validly = hostile.prompts == [CODE_PROMPT] && hostile.valid == [true];
        match &report.outcome {
            Outcome::Success => {
                assert_eq!(gate, Gate::Open, "success through a closed gate: {shown}");
                if hostile.prompts.is_empty() {
                    assert!(remembered, "success without a prompt: {shown}");
                    assert_eq!(after, before, "a remembered login changed the record");
                } else {
                    assert!(answered_validly, "success without a valid code: {shown}");
                    assert_eq!(after.failures, 0, "a success left failures behind");
                    let consumed = usize::from(
                        after.recovery.as_ref().map_or(0, RecoveryHashes::remaining)
                            < before
                                .recovery
                                .as_ref()
                                .map_or(0, RecoveryHashes::remaining),
                    );
                    let stepped = after
                        .devices
                        .iter()
                        .zip(&before.devices)
                        .filter(|(a, b)| a.last_used_step != b.last_used_step)
                        .count();
                    assert_eq!(consumed + stepped, 1, "a success consumed {consumed} recovery codes and moved {stepped} devices: {shown}");
                    for (a, b) in after.devices.iter().zip(&before.devices) {
                        assert!(
                            a.last_used_step >= b.last_used_step,
                            "a device's last used step went back: {shown}"
                        );
                    }
                }
            }
            Outcome::WrongCode => {
                assert_eq!(gate, Gate::Open, "a code evaluated through a closed gate");
                assert!(!answered_validly, "a valid code was refused: {shown}");
                assert_eq!(
                    after.failures,
                    before.failures + 1,
                    "a wrong code moved the counter from {} to {}: {shown}",
                    before.failures,
                    after.failures
                );
            }
            Outcome::Throttled | Outcome::Locked => {
                assert_ne!(gate, Gate::Open, "refused with an open gate: {shown}");
                assert!(
                    hostile.prompts.is_empty(),
                    "asked although refused: {shown}"
                );
                assert_eq!(after, before, "a refusal changed the record");
            }
            Outcome::ConversationFailed | Outcome::NoConversation => {
                assert_eq!(
                    after, before,
                    "an unanswered prompt changed the record: {shown}"
                );
            }
            _ => panic!("alice: {shown}"),
        }
        if gate == Gate::Open && !remembered && has_conversation && answered_validly {
            assert!(
                matches!(report.outcome, Outcome::Success),
                "a valid code was refused: {shown}"
            );
        }
    }
}

static FLOW: OnceLock<Mutex<FlowFixture>> = OnceLock::new();

/// The flow target: one login against a shared fixture.
pub fn flow(data: &[u8]) {
    let fixture = FLOW
        .get_or_init(|| Mutex::new(FlowFixture::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    fixture.run(data);
}

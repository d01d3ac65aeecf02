//! Self-service requests: what `mfa-enroll` seals for the module.
//!
//! A user runs `mfa-enroll` without privileges. It seals what it made (a new
//! device and a new set of recovery codes, or only new recovery codes) with
//! HPKE to the host's enrollment public key and writes it into the spool
//! directory (root, mode 1733: anyone may create a file, nobody may list or
//! remove another's) as `<uid>.<random>`, a file the user owns. Only root can
//! open it, and only as that uid's enrollment.
//!
//! The spool directory and the search for a user's request are in
//! [`crate::spool`].

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::config::{Config, TOTP_PERIODS};
use crate::enrollment::check_device_name;
use crate::input;
use crate::keys::{EnrollmentPublicKey, MasterKey, SealedError};
use crate::random::{self, RandomUnavailable};
use crate::record::{
    decode_device, decode_recovery, decode_recovery_v1, encode_device, encode_recovery, Device,
    FactorChange, Record, RequestId, MAX_DEVICES,
};
use crate::recovery::{KdfParams, RecoveryHashes};
use crate::spool::{self, Found};
use crate::store::{Owner, Store, StoreError};
use crate::totp::{self, Verdict, MIN_SECRET_BYTES};

/// What a pending enrollment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Add this device and replace the recovery codes with this set.
    Device {
        /// The new device. Its last used step is the one its code was
        /// accepted at, once the module has checked that code.
        device: Device,
        /// The recovery codes the user was shown, hashed.
        recovery: RecoveryHashes,
        /// A code the new device showed when the request was made (format
        /// 2; requests of format 1 carry none).
        code: Option<Secret>,
    },
    /// Replace the recovery codes with this set.
    RecoveryCodes {
        /// The new codes, hashed.
        recovery: RecoveryHashes,
    },
}

/// A code typed into `mfa-enroll`, sealed into a request.
pub type Secret = Zeroizing<String>;

/// How the maker of a request proved they hold one of the user's factors.
#[derive(Clone, PartialEq, Eq)]
pub enum Proof {
    /// A code from one of the user's enrolled devices, at the request's time.
    Totp(Secret),
    /// One of the user's unused recovery codes (used up when it is checked).
    Recovery(Secret),
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proof::Totp(_) => "Proof::Totp(..)",
            Proof::Recovery(_) => "Proof::Recovery(..)",
        })
    }
}

/// A self-service enrollment as sealed into the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Identifies the request: a record remembers the ids it applied, so a
    /// copy of the file cannot apply again. Random in format 2; in format 1
    /// a digest of the sealed contents, the same for every copy.
    pub id: RequestId,
    /// When the user made it (Unix seconds): the time its codes are
    /// checked at.
    pub created: u64,
    /// What it asks for.
    pub request: Request,
    /// A factor the user already has, for a user who has one (format 2).
    pub proof: Option<Proof>,
}

/// The request format `mfa-enroll` writes.
pub const FORMAT: u16 = 2;

const TAG_DEVICE: u8 = 1;
const TAG_RECOVERY: u8 = 2;
const PROOF_NONE: u8 = 0;
const PROOF_TOTP: u8 = 1;
const PROOF_RECOVERY: u8 = 2;
/// No typed code in a request is longer (recovery codes with separators).
const MAX_CODE: usize = 64;

impl Pending {
    /// Encodes the plaintext that gets sealed, in format [`FORMAT`].
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.raw(&self.id);
        w.u64(self.created);
        match &self.request {
            Request::Device {
                device,
                recovery,
                code,
            } => {
                w.u8(TAG_DEVICE);
                encode_device(&mut w, device);
                encode_recovery(&mut w, recovery);
                w.str(code.as_ref().map_or("", |c| c.as_str()));
            }
            Request::RecoveryCodes { recovery } => {
                w.u8(TAG_RECOVERY);
                encode_recovery(&mut w, recovery);
            }
        }
        match &self.proof {
            None => w.u8(PROOF_NONE),
            Some(Proof::Totp(code)) => {
                w.u8(PROOF_TOTP);
                w.str(code);
            }
            Some(Proof::Recovery(code)) => {
                w.u8(PROOF_RECOVERY);
                w.str(code);
            }
        }
        w.finish()
    }

    /// Decodes a plaintext of request format `version` (1 or 2), refusing
    /// anything malformed.
    ///
    /// # Errors
    /// [`DecodeError`].
    pub fn decode(buf: &[u8], version: u16) -> Result<Self, DecodeError> {
        match version {
            1 => Self::decode_v1(buf),
            2 => Self::decode_v2(buf),
            _ => Err(DecodeError("unknown request format")),
        }
    }

    fn decode_v2(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let id = r.array::<16>()?;
        let created = r.u64()?;
        let request = match r.u8()? {
            TAG_DEVICE => Request::Device {
                device: decode_device(&mut r)?,
                recovery: decode_recovery(&mut r)?,
                code: Some(code(&mut r)?).filter(|c| !c.is_empty()),
            },
            TAG_RECOVERY => Request::RecoveryCodes {
                recovery: decode_recovery(&mut r)?,
            },
            _ => return Err(DecodeError("unknown pending request")),
        };
        let proof = match r.u8()? {
            PROOF_NONE => None,
            PROOF_TOTP => Some(Proof::Totp(code(&mut r)?)),
            PROOF_RECOVERY => Some(Proof::Recovery(code(&mut r)?)),
            _ => return Err(DecodeError("unknown proof")),
        };
        r.finish()?;
        Ok(Pending {
            id,
            created,
            request,
            proof,
        })
    }

    /// Format 1 (release 0.1): no id, no codes; its id is a digest of the
    /// plaintext so that copies share it.
    fn decode_v1(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let created = r.u64()?;
        let request = match r.u8()? {
            TAG_DEVICE => Request::Device {
                device: decode_device(&mut r)?,
                recovery: decode_recovery_v1(&mut r)?,
                code: None,
            },
            TAG_RECOVERY => Request::RecoveryCodes {
                recovery: decode_recovery_v1(&mut r)?,
            },
            _ => return Err(DecodeError("unknown pending request")),
        };
        r.finish()?;
        let digest = Sha256::digest(buf);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Ok(Pending {
            id,
            created,
            request,
            proof: None,
        })
    }

    /// Seals this enrollment for `uid` to the host's public key.
    ///
    /// # Errors
    /// [`SealedError::SealFailed`].
    pub fn seal(&self, key: &EnrollmentPublicKey, uid: u32) -> Result<Vec<u8>, SealedError> {
        key.seal(uid, &self.encode())
    }

    /// A fresh random request id.
    ///
    /// # Errors
    /// [`RandomUnavailable`] if the kernel gives no random bytes.
    pub fn new_id() -> Result<RequestId, RandomUnavailable> {
        random::bytes::<16>()
    }

    /// The new device, if the request adds one.
    pub fn device(&self) -> Option<&Device> {
        match &self.request {
            Request::Device { device, .. } => Some(device),
            Request::RecoveryCodes { .. } => None,
        }
    }

    /// The recovery set the request installs.
    pub fn recovery(&self) -> &RecoveryHashes {
        match &self.request {
            Request::Device { recovery, .. } | Request::RecoveryCodes { recovery } => recovery,
        }
    }

    /// The change applying it makes.
    pub fn change(&self) -> FactorChange {
        match self.device() {
            Some(d) => FactorChange::DeviceAdded(d.name.clone()),
            None => FactorChange::RecoveryCodesReplaced,
        }
    }
}

fn code(r: &mut Reader<'_>) -> Result<Secret, DecodeError> {
    let bytes = r.bytes(MAX_CODE)?;
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError("code is not UTF-8"))?;
    // Sized up front so no reallocation leaves a copy behind.
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    out.push_str(text);
    Ok(out)
}

/// A short fingerprint of a secret, for an administrator to compare with
/// what the user sees (`mfa-enroll` prints it too): the first 48 bits of
/// its SHA-256, which say nothing useful about a secret of 128 bits or more.
pub fn fingerprint(secret: &[u8]) -> String {
    let digest = Sha256::digest(secret);
    digest[..6]
        .chunks(2)
        .map(|pair| format!("{:02x}{:02x}", pair[0], pair[1]))
        .collect::<Vec<_>>()
        .join(":")
}

/// Why the module or an administrator refuses a request. Every refusal
/// removes the request; the Display is for the auth log and the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request breaks the administrator's settings.
    Policy(String),
    /// A request to change an enrolled user's factors without a code of an
    /// existing factor (made by release 0.1, or by hand).
    NoProof,
    /// The code of an existing factor is wrong, outside the window at the
    /// request's time, or already used.
    WrongProof,
    /// The new device's code is missing, wrong or outside the window.
    WrongNewDeviceCode,
    /// This request was applied already (a copy of the file).
    AlreadyApplied,
    /// New recovery codes for a user with no device.
    NotEnrolled,
    /// The user has the most devices allowed.
    TooManyDevices,
}

impl Refusal {
    /// True if the refusal counts as a failed attempt: a wrong code, that
    /// is, a guess.
    pub fn is_guess(&self) -> bool {
        matches!(self, Refusal::WrongProof | Refusal::WrongNewDeviceCode)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Policy(why) => write!(f, "{why}; run mfa-enroll again"),
            Refusal::NoProof => f.write_str(
                "it carries no code of an existing device (made by an older mfa-enroll?); run mfa-enroll again",
            ),
            Refusal::WrongProof => f.write_str(
                "the code of an existing device or recovery code it carries is wrong or was already used",
            ),
            Refusal::WrongNewDeviceCode => {
                f.write_str("the code of the new device it carries is missing or wrong")
            }
            Refusal::AlreadyApplied => f.write_str("it was applied already (a copy)"),
            Refusal::NotEnrolled => {
                f.write_str("it replaces the recovery codes of a user with no device")
            }
            Refusal::TooManyDevices => write!(
                f,
                "the user already has {MAX_DEVICES} devices; remove one (mfa-enroll remove-device) first"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Checks a request against the administrator's settings before any work
/// under the user's lock: the device name, a secret of at least 128 bits,
/// the configured algorithm, 6 or 8 digits, a period the configuration
/// accepts, and recovery codes hashed no more expensively than the module
/// hashes them itself (a request must not make logins slow).
///
/// # Errors
/// [`Refusal::Policy`] naming the setting.
pub fn check_policy(pending: &Pending, config: &Config) -> Result<(), Refusal> {
    let refuse = |why: String| Err(Refusal::Policy(why));
    if let Some(d) = pending.device() {
        if check_device_name(&d.name).is_err() {
            return refuse("the device name is empty, too long or not printable".into());
        }
        if d.secret.len() < MIN_SECRET_BYTES {
            return refuse(format!(
                "the secret has {} bits, fewer than {}",
                d.secret.len() * 8,
                MIN_SECRET_BYTES * 8
            ));
        }
        if d.params.algorithm != config.totp.algorithm {
            return refuse(format!(
                "the algorithm is {}, not the configured {}",
                d.params.algorithm.as_str(),
                config.totp.algorithm.as_str()
            ));
        }
        if !matches!(d.params.digits, 6 | 8) {
            return refuse(format!("codes of {} digits, not 6 or 8", d.params.digits));
        }
        if !TOTP_PERIODS.contains(&d.params.period) {
            return refuse(format!(
                "a period of {} s, outside {}..={} s",
                d.params.period,
                TOTP_PERIODS.start(),
                TOTP_PERIODS.end()
            ));
        }
    }
    let recovery = pending.recovery();
    // Requests sealed by an mfa-enroll from before the lighter default
    // still carry the old 19 MiB settings: accepted, since that cost was
    // always allowed; anything heavier would let a user slow every login.
    if !recovery.params().within(KdfParams::SELF_SERVICE_LIMIT) {
        return refuse(
            "recovery codes hashed with heavier Argon2id settings than this host's".into(),
        );
    }
    if recovery.remaining() == 0 {
        return refuse("an empty set of recovery codes".into());
    }
    Ok(())
}

/// What applying a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The change, as announced.
    pub change: FactorChange,
    /// True if a recovery code stood in for a device code (and is used up).
    pub used_recovery_code: bool,
}

/// Checks a request's codes and, if they hold, applies it to `record`
/// (the user's record as it stands after this login's own factor was
/// accepted). `before` gives each device's last used step before this
/// login: a code of an existing device must be newer than that, at the
/// request's time and within `window` steps of it; a recovery code must be
/// unused. The step and the recovery code are used up, the request id is
/// remembered and the change is announced. Nothing in `record` changes
/// when the request is refused.
///
/// # Errors
/// A [`Refusal`]; [`Refusal::is_guess`] says whether it counts as a failure.
/// A recovery-code hashing failure is [`Refusal::WrongProof`].
pub fn activate(
    record: &mut Record,
    before: &[Option<u64>],
    pending: &Pending,
    window: u8,
    now: u64,
) -> Result<Applied, Refusal> {
    if record.has_applied(&pending.id) {
        return Err(Refusal::AlreadyApplied);
    }
    let mut next = record.clone();
    let used_recovery_code = match &pending.proof {
        None => return Err(Refusal::NoProof),
        // Digits may also be an imported scratch code.
        Some(Proof::Totp(code)) => {
            !prove_with_device(&mut next, before, code, pending.created, window)
                && prove_with_recovery_code(&mut next, code)?
        }
        Some(Proof::Recovery(code)) => prove_with_recovery_code(&mut next, code)?,
    };
    apply_to(&mut next, pending, window, now)?;
    *record = next;
    Ok(Applied {
        change: pending.change(),
        used_recovery_code,
    })
}

/// Uses up the step of the device `code` is valid for at `created`, newer
/// than that device's step `before` this login. False if no device takes it.
fn prove_with_device(
    record: &mut Record,
    before: &[Option<u64>],
    code: &str,
    created: u64,
    window: u8,
) -> bool {
    for (i, d) in record.devices.iter_mut().enumerate() {
        let floor = before.get(i).copied().flatten();
        let Ok(code) = input::parse_totp(code.as_bytes(), d.params.digits) else {
            continue;
        };
        if let Verdict::Accepted { step } =
            totp::verify(&d.secret, d.params, window, created, floor, &code)
        {
            d.last_used_step = Some(d.last_used_step.map_or(step, |s| s.max(step)));
            return true;
        }
    }
    false
}

/// Uses up the unused recovery code `code` is; true if it was one.
///
/// # Errors
/// [`Refusal::WrongProof`] if it is not (or hashing failed).
fn prove_with_recovery_code(record: &mut Record, code: &str) -> Result<bool, Refusal> {
    let set = record.recovery.as_mut().ok_or(Refusal::WrongProof)?;
    let candidate = set.candidate(code.as_bytes()).ok_or(Refusal::WrongProof)?;
    match set.find(&candidate) {
        Ok(Some(index)) if set.remove(index) => Ok(true),
        _ => Err(Refusal::WrongProof),
    }
}

/// Applies a request to `record` without a proof of an existing factor:
/// for a user's first device (whose own code is checked at the login) and
/// for an administrator's approval. The new device's code, if the request
/// carries one, is still checked.
///
/// # Errors
/// [`Refusal`] as for [`activate`].
pub fn apply_unproven(
    record: &mut Record,
    pending: &Pending,
    window: u8,
    now: u64,
) -> Result<FactorChange, Refusal> {
    if record.has_applied(&pending.id) {
        return Err(Refusal::AlreadyApplied);
    }
    let mut next = record.clone();
    apply_to(&mut next, pending, window, now)?;
    *record = next;
    Ok(pending.change())
}

fn apply_to(record: &mut Record, pending: &Pending, window: u8, now: u64) -> Result<(), Refusal> {
    match &pending.request {
        Request::Device {
            device,
            recovery,
            code,
        } => {
            let mut device = device.clone();
            if let Some(code) = code {
                device.last_used_step =
                    Some(new_device_step(&device, code, pending.created, window)?);
            }
            // A device of the same name is replaced: "phone" after a new
            // phone is the usual case.
            record.devices.retain(|d| d.name != device.name);
            if record.devices.len() >= MAX_DEVICES {
                return Err(Refusal::TooManyDevices);
            }
            record.devices.push(device);
            record.recovery = Some(recovery.clone());
        }
        Request::RecoveryCodes { recovery } => {
            if record.devices.is_empty() {
                return Err(Refusal::NotEnrolled);
            }
            record.recovery = Some(recovery.clone());
        }
    }
    record.mark_applied(pending.id);
    record.announce(now, pending.change());
    Ok(())
}

/// The step at which the new device's code is valid at `created`.
fn new_device_step(device: &Device, code: &str, created: u64, window: u8) -> Result<u64, Refusal> {
    let code = input::parse_totp(code.as_bytes(), device.params.digits)
        .map_err(|_| Refusal::WrongNewDeviceCode)?;
    match totp::verify(&device.secret, device.params, window, created, None, &code) {
        Verdict::Accepted { step } => Ok(step),
        _ => Err(Refusal::WrongNewDeviceCode),
    }
}

/// Checks the new device's code a request carries, as `mfa-enroll` does
/// before sealing and the module does again: `Ok(None)` for a request with
/// no new device or (format 1) no code.
///
/// # Errors
/// [`Refusal::WrongNewDeviceCode`].
pub fn check_new_device_code(pending: &Pending, window: u8) -> Result<Option<u64>, Refusal> {
    match &pending.request {
        Request::Device {
            device,
            code: Some(code),
            ..
        } => new_device_step(device, code, pending.created, window).map(Some),
        _ => Ok(None),
    }
}

/// Why an approval did not happen.
#[derive(Debug)]
pub enum ApproveError {
    /// The request itself is refused.
    Refused(Refusal),
    /// The record could not be read or written.
    Store(StoreError),
}

impl fmt::Display for ApproveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApproveError::Refused(r) => write!(f, "the request is refused: {r}"),
            ApproveError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ApproveError {}

/// Applies `found` to `uid`'s record on an administrator's say-so
/// (`mfa-enroll approve`): the way a first device gets in under the `deny`
/// policy. The request is checked against `config` first; the new device's
/// code, if it carries one, is checked at the request's time; a code of an
/// existing device is not needed (the administrator vouches). `username`
/// names a record that does not exist yet. The spool file is removed once
/// the record is durable, and also when the request is refused.
///
/// # Errors
/// [`ApproveError`].
pub fn approve(
    store: &Store,
    keys: &MasterKey,
    config: &Config,
    uid: u32,
    username: &str,
    found: &Found,
    now: u64,
) -> Result<FactorChange, ApproveError> {
    let refused = |r: Refusal| {
        let _ = spool::remove(found);
        ApproveError::Refused(r)
    };
    check_policy(&found.pending, config).map_err(refused)?;
    let mut state = store
        .open_user(Owner::new(uid, username), keys)
        .map_err(ApproveError::Store)?;
    let mut record = state
        .record()
        .cloned()
        .unwrap_or_else(|| Record::new(username, now));
    let change =
        apply_unproven(&mut record, &found.pending, config.totp.window, now).map_err(refused)?;
    record
        .validate()
        .map_err(|e| ApproveError::Store(StoreError::TooLarge(e)))?;
    // An approved device starts with a clean slate of failures.
    crate::throttle::clear(&mut record);
    state.rewrite(&record, keys).map_err(ApproveError::Store)?;
    drop(state);
    // Durable now; a copy that lingers is refused as applied already.
    let _ = spool::remove(found);
    Ok(change)
}

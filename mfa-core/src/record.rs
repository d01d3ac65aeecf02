//! A user's MFA state: devices, recovery codes, failures, last success.
//!
//! This is the plaintext that the store seals. Its binary layout is private
//! to this module and versioned by the record format version in the sealed
//! header; every field has a bound so a record always fits its slot.
//!
//! Format 1 (release 0.1) is still read; everything is written as format 2,
//! which adds the way a recovery set is written, the terminal of the last
//! success, the ids of the self-service requests applied, and the factor
//! changes (and refused requests) not yet told to the user.

use std::fmt;

use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::recovery::{CodeFormat, KdfParams, RecoveryHashes};
use crate::totp::{Algorithm, TotpParams};

/// Longest device name, in bytes.
pub const MAX_DEVICE_NAME: usize = 64;
/// Most devices one user may have.
pub const MAX_DEVICES: usize = 8;
/// Longest stored user name (informational; state is keyed by uid).
pub const MAX_USERNAME: usize = 256;
/// Longest stored PAM service name.
pub const MAX_SERVICE: usize = 64;
/// Longest stored remote host.
pub const MAX_RHOST: usize = 255;
/// Largest TOTP secret.
pub const MAX_SECRET: usize = crate::totp::MAX_SECRET_BYTES;
/// Most recovery-code hashes in a set.
pub const MAX_RECOVERY_HASHES: usize = 64;
/// Longest stored terminal name.
pub const MAX_TTY: usize = 64;
/// Longest stored host name (`HOST_NAME_MAX`).
pub const MAX_HOST: usize = 64;
/// How many applied self-service request ids a record remembers.
pub const MAX_APPLIED: usize = 16;
/// How many unannounced factor changes a record keeps (the oldest go first).
pub const MAX_NOTICES: usize = 8;
/// Longest stored reason of a refused request.
pub const MAX_REASON: usize = 200;

/// The record formats this build reads.
pub const READ_VERSIONS: [u16; 3] = [1, 2, 3];
/// The record format this build writes. 3 adds the host of the last
/// success: one record may serve many hosts (the PostgreSQL store), and a
/// success remembered on one must not open a login on another.
pub const WRITE_VERSION: u16 = 3;

/// Identifies one self-service request, so that it applies at most once.
pub type RequestId = [u8; 16];

/// One authenticator: a TOTP secret and its parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct Device {
    /// The name the user gave it ("phone").
    pub name: String,
    /// The shared secret.
    pub secret: Zeroizing<Vec<u8>>,
    /// Algorithm, digits and period.
    pub params: TotpParams,
    /// When it was enrolled (Unix seconds).
    pub created: u64,
    /// The newest time step accepted from it; only newer steps are accepted.
    pub last_used_step: Option<u64>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("created", &self.created)
            .field("last_used_step", &self.last_used_step)
            .finish_non_exhaustive()
    }
}

/// The last successful second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSuccess {
    /// When (Unix seconds).
    pub time: u64,
    /// The PAM service ("sshd", "sudo").
    pub service: String,
    /// The remote host PAM reported, if any.
    pub rhost: String,
    /// The terminal PAM reported, if any (empty in format 1 records).
    pub tty: String,
    /// The host that verified it (empty in records before format 3).
    pub host: String,
}

impl LastSuccess {
    /// Records a success, cutting over-long names at a character boundary so
    /// the record stays within its bounds.
    pub fn new(time: u64, service: &str, rhost: &str, tty: &str) -> Self {
        LastSuccess {
            time,
            service: truncate(service, MAX_SERVICE),
            rhost: truncate(rhost, MAX_RHOST),
            tty: truncate(tty, MAX_TTY),
            host: String::new(),
        }
    }

    /// The same success, verified on `host`.
    #[must_use]
    pub fn on_host(mut self, host: &str) -> Self {
        self.host = truncate(host, MAX_HOST);
        self
    }

    /// True if a login on `host`'s `service` from `rhost` on `tty` is the
    /// same place as this success: what `remember_seconds` is bound to. Names are
    /// compared as stored (cut to their bounds).
    pub fn same_place(&self, host: &str, service: &str, rhost: &str, tty: &str) -> bool {
        self.host == truncate(host, MAX_HOST)
            && self.service == truncate(service, MAX_SERVICE)
            && self.rhost == truncate(rhost, MAX_RHOST)
            && self.tty == truncate(tty, MAX_TTY)
    }
}

/// A change to a user's factors, to tell them about at their next login
/// that may print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorChange {
    /// A device was added (or replaced one of the same name).
    DeviceAdded(String),
    /// The recovery codes were replaced by a new set.
    RecoveryCodesReplaced,
}

/// What a notice tells the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notable {
    /// Their factors changed.
    Change(FactorChange),
    /// A request to change them was refused (someone may have tried), and
    /// why.
    RefusedRequest(String),
}

/// Something to tell the user at their next login that may print, and when
/// it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// When it happened (Unix seconds).
    pub time: u64,
    /// What happened.
    pub what: Notable,
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Everything pam_mfa knows about one enrolled user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The user name at enrollment, for administrators' eyes only.
    pub username: String,
    /// When the record was created (Unix seconds).
    pub created: u64,
    /// The user's authenticators.
    pub devices: Vec<Device>,
    /// The unused recovery codes, hashed.
    pub recovery: Option<RecoveryHashes>,
    /// Consecutive failed attempts since the last success or unlock.
    pub failures: u32,
    /// When the last failure happened (Unix seconds), for back-off.
    pub last_failure: Option<u64>,
    /// The last successful second factor.
    pub last_success: Option<LastSuccess>,
    /// The ids of the latest self-service requests applied, newest last.
    pub applied: Vec<RequestId>,
    /// Factor changes the user has not been told about yet, oldest first.
    pub notices: Vec<Notice>,
}

/// A record whose fields break the format's bounds; it is never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTooLarge(pub &'static str);

impl fmt::Display for RecordTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record field out of bounds: {}", self.0)
    }
}

impl std::error::Error for RecordTooLarge {}

fn algorithm_code(a: Algorithm) -> u8 {
    match a {
        Algorithm::Sha1 => 1,
        Algorithm::Sha256 => 2,
        Algorithm::Sha512 => 3,
    }
}

fn algorithm_from(code: u8) -> Result<Algorithm, DecodeError> {
    match code {
        1 => Ok(Algorithm::Sha1),
        2 => Ok(Algorithm::Sha256),
        3 => Ok(Algorithm::Sha512),
        _ => Err(DecodeError("unknown algorithm")),
    }
}

impl Record {
    /// A new record for a user with no devices yet.
    pub fn new(username: &str, created: u64) -> Self {
        Record {
            username: truncate(username, MAX_USERNAME),
            created,
            devices: Vec::new(),
            recovery: None,
            failures: 0,
            last_failure: None,
            last_success: None,
            applied: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// True if the request `id` has been applied to this record.
    pub fn has_applied(&self, id: &RequestId) -> bool {
        self.applied.contains(id)
    }

    /// Remembers that the request `id` was applied (the oldest id goes when
    /// the list is full: requests expire long before sixteen more are made).
    pub fn mark_applied(&mut self, id: RequestId) {
        if self.applied.len() >= MAX_APPLIED {
            self.applied.remove(0);
        }
        self.applied.push(id);
    }

    /// Keeps `change` to tell the user about at their next login that may
    /// print (the oldest notice goes when the list is full).
    pub fn announce(&mut self, time: u64, change: FactorChange) {
        self.notify(time, Notable::Change(change));
    }

    /// Keeps word of a refused request, and `why`, for the user's next login
    /// that may print: sudo prints nothing (`PAM_SILENT`), so the login that
    /// refused it may not have been able to say so.
    pub fn announce_refusal(&mut self, time: u64, why: &str) {
        self.notify(time, Notable::RefusedRequest(truncate(why, MAX_REASON)));
    }

    fn notify(&mut self, time: u64, what: Notable) {
        if self.notices.len() >= MAX_NOTICES {
            self.notices.remove(0);
        }
        self.notices.push(Notice { time, what });
    }

    /// Finds a device by name.
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// Unused recovery codes.
    pub fn recovery_codes_left(&self) -> usize {
        self.recovery.as_ref().map_or(0, RecoveryHashes::remaining)
    }

    /// Checks every bound the encoding relies on.
    ///
    /// # Errors
    /// [`RecordTooLarge`] naming the field.
    pub fn validate(&self) -> Result<(), RecordTooLarge> {
        if self.username.len() > MAX_USERNAME {
            return Err(RecordTooLarge("user name"));
        }
        if self.devices.len() > MAX_DEVICES {
            return Err(RecordTooLarge("too many devices"));
        }
        for d in &self.devices {
            if d.name.is_empty() || d.name.len() > MAX_DEVICE_NAME {
                return Err(RecordTooLarge("device name"));
            }
            if d.secret.len() > MAX_SECRET || d.secret.is_empty() {
                return Err(RecordTooLarge("device secret"));
            }
        }
        if let Some(s) = &self.last_success {
            if s.service.len() > MAX_SERVICE
                || s.rhost.len() > MAX_RHOST
                || s.tty.len() > MAX_TTY
                || s.host.len() > MAX_HOST
            {
                return Err(RecordTooLarge("last success"));
            }
        }
        if let Some(r) = &self.recovery {
            if r.hashes().len() > MAX_RECOVERY_HASHES {
                return Err(RecordTooLarge("recovery codes"));
            }
        }
        if self.applied.len() > MAX_APPLIED {
            return Err(RecordTooLarge("applied requests"));
        }
        if self.notices.len() > MAX_NOTICES
            || self.notices.iter().any(|n| match &n.what {
                Notable::Change(FactorChange::DeviceAdded(name)) => {
                    name.is_empty() || name.len() > MAX_DEVICE_NAME
                }
                Notable::RefusedRequest(why) => why.len() > MAX_REASON,
                Notable::Change(FactorChange::RecoveryCodesReplaced) => false,
            })
        {
            return Err(RecordTooLarge("notices"));
        }
        Ok(())
    }

    /// Encodes the record in format [`WRITE_VERSION`]. The buffer is wiped
    /// when dropped.
    ///
    /// # Errors
    /// [`RecordTooLarge`] if a bound is broken.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, RecordTooLarge> {
        self.validate()?;
        let mut w = Writer::new();
        w.str(&self.username);
        w.u64(self.created);
        w.u32(self.failures);
        w.opt_u64(self.last_failure);
        match &self.last_success {
            Some(s) => {
                w.u8(1);
                w.u64(s.time);
                w.str(&s.service);
                w.str(&s.rhost);
                w.str(&s.tty);
                w.str(&s.host);
            }
            None => w.u8(0),
        }
        // Bounded by MAX_DEVICES above.
        w.u8(u8::try_from(self.devices.len()).unwrap_or(u8::MAX));
        for d in &self.devices {
            encode_device(&mut w, d);
        }
        match &self.recovery {
            Some(r) => {
                w.u8(1);
                encode_recovery(&mut w, r);
            }
            None => w.u8(0),
        }
        // Bounded by MAX_APPLIED and MAX_NOTICES above.
        w.u8(u8::try_from(self.applied.len()).unwrap_or(u8::MAX));
        for id in &self.applied {
            w.raw(id);
        }
        w.u8(u8::try_from(self.notices.len()).unwrap_or(u8::MAX));
        for n in &self.notices {
            w.u64(n.time);
            match &n.what {
                Notable::Change(FactorChange::DeviceAdded(name)) => {
                    w.u8(NOTICE_DEVICE);
                    w.str(name);
                }
                Notable::Change(FactorChange::RecoveryCodesReplaced) => w.u8(NOTICE_RECOVERY),
                Notable::RefusedRequest(why) => {
                    w.u8(NOTICE_REFUSED);
                    w.str(why);
                }
            }
        }
        Ok(w.finish())
    }

    /// Decodes a record of format `version` (one of [`READ_VERSIONS`]),
    /// refusing anything malformed or out of bounds.
    ///
    /// # Errors
    /// [`DecodeError`] naming the problem.
    pub fn decode(buf: &[u8], version: u16) -> Result<Self, DecodeError> {
        if !READ_VERSIONS.contains(&version) {
            return Err(DecodeError("unknown record format"));
        }
        let v2 = version >= 2;
        let v3 = version >= 3;
        let mut r = Reader::new(buf);
        let username = r.str(MAX_USERNAME)?;
        let created = r.u64()?;
        let failures = r.u32()?;
        let last_failure = r.opt_u64()?;
        let last_success = match r.u8()? {
            0 => None,
            1 => Some(LastSuccess {
                time: r.u64()?,
                service: r.str(MAX_SERVICE)?,
                rhost: r.str(MAX_RHOST)?,
                tty: if v2 { r.str(MAX_TTY)? } else { String::new() },
                host: if v3 { r.str(MAX_HOST)? } else { String::new() },
            }),
            _ => return Err(DecodeError("bad presence flag")),
        };
        let n = usize::from(r.u8()?);
        if n > MAX_DEVICES {
            return Err(DecodeError("too many devices"));
        }
        let mut devices = Vec::with_capacity(n);
        for _ in 0..n {
            devices.push(decode_device(&mut r)?);
        }
        let recovery = match r.u8()? {
            0 => None,
            1 if v2 => Some(decode_recovery(&mut r)?),
            1 => Some(decode_recovery_v1(&mut r)?),
            _ => return Err(DecodeError("bad presence flag")),
        };
        let (applied, notices) = if v2 {
            (decode_applied(&mut r)?, decode_notices(&mut r)?)
        } else {
            (Vec::new(), Vec::new())
        };
        r.finish()?;
        Ok(Record {
            username,
            created,
            devices,
            recovery,
            failures,
            last_failure,
            last_success,
            applied,
            notices,
        })
    }
}

const NOTICE_DEVICE: u8 = 1;
const NOTICE_RECOVERY: u8 = 2;
const NOTICE_REFUSED: u8 = 3;

fn decode_applied(r: &mut Reader<'_>) -> Result<Vec<RequestId>, DecodeError> {
    let n = usize::from(r.u8()?);
    if n > MAX_APPLIED {
        return Err(DecodeError("too many applied requests"));
    }
    (0..n).map(|_| r.array::<16>()).collect()
}

fn decode_notices(r: &mut Reader<'_>) -> Result<Vec<Notice>, DecodeError> {
    let n = usize::from(r.u8()?);
    if n > MAX_NOTICES {
        return Err(DecodeError("too many notices"));
    }
    let mut notices = Vec::with_capacity(n);
    for _ in 0..n {
        let time = r.u64()?;
        let what = match r.u8()? {
            NOTICE_DEVICE => {
                let name = r.str(MAX_DEVICE_NAME)?;
                if name.is_empty() {
                    return Err(DecodeError("empty device name"));
                }
                Notable::Change(FactorChange::DeviceAdded(name))
            }
            NOTICE_RECOVERY => Notable::Change(FactorChange::RecoveryCodesReplaced),
            NOTICE_REFUSED => Notable::RefusedRequest(r.str(MAX_REASON)?),
            _ => return Err(DecodeError("unknown notice")),
        };
        notices.push(Notice { time, what });
    }
    Ok(notices)
}

/// Appends one device (shared with the pending-enrollment format).
pub(crate) fn encode_device(w: &mut Writer, d: &Device) {
    w.str(&d.name);
    w.bytes(&d.secret);
    w.u8(algorithm_code(d.params.algorithm));
    w.u8(d.params.digits);
    w.u32(d.params.period);
    w.u64(d.created);
    w.opt_u64(d.last_used_step);
}

/// Reads one device written by [`encode_device`], checking its bounds.
pub(crate) fn decode_device(r: &mut Reader<'_>) -> Result<Device, DecodeError> {
    let name = r.str(MAX_DEVICE_NAME)?;
    let secret = Zeroizing::new(r.bytes(MAX_SECRET)?.to_vec());
    let algorithm = algorithm_from(r.u8()?)?;
    let digits = r.u8()?;
    let period = r.u32()?;
    if name.is_empty() || secret.is_empty() || !matches!(digits, 6..=8) || period == 0 {
        return Err(DecodeError("device field out of range"));
    }
    Ok(Device {
        name,
        secret,
        params: TotpParams {
            algorithm,
            digits,
            period,
        },
        created: r.u64()?,
        last_used_step: r.opt_u64()?,
    })
}

const FORMAT_BASE32: u8 = 0;
const FORMAT_DIGITS: u8 = 1;

/// Appends a set of recovery-code hashes (format 2: with its code format).
pub(crate) fn encode_recovery(w: &mut Writer, r: &RecoveryHashes) {
    match r.format() {
        CodeFormat::Base32 => {
            w.u8(FORMAT_BASE32);
            w.u8(0);
        }
        CodeFormat::Digits(n) => {
            w.u8(FORMAT_DIGITS);
            w.u8(n);
        }
    }
    encode_recovery_v1(w, r);
}

/// Appends a set's salt, KDF settings and hashes (all of format 1).
pub(crate) fn encode_recovery_v1(w: &mut Writer, r: &RecoveryHashes) {
    w.raw(r.salt());
    let p = r.params();
    w.u32(p.memory_kib);
    w.u32(p.iterations);
    w.u32(p.parallelism);
    // Bounded by MAX_RECOVERY_HASHES (validated before encoding).
    w.u8(u8::try_from(r.hashes().len()).unwrap_or(u8::MAX));
    for h in r.hashes() {
        w.raw(h);
    }
}

/// Reads a set written by [`encode_recovery`], checking its bounds.
pub(crate) fn decode_recovery(r: &mut Reader<'_>) -> Result<RecoveryHashes, DecodeError> {
    let format = match (r.u8()?, r.u8()?) {
        (FORMAT_BASE32, 0) => CodeFormat::Base32,
        (FORMAT_DIGITS, n) => CodeFormat::Digits(n),
        _ => return Err(DecodeError("unknown recovery code format")),
    };
    decode_recovery_parts(r, format)
}

/// Reads a set of format 1, whose codes are all base32.
pub(crate) fn decode_recovery_v1(r: &mut Reader<'_>) -> Result<RecoveryHashes, DecodeError> {
    decode_recovery_parts(r, CodeFormat::Base32)
}

fn decode_recovery_parts(
    r: &mut Reader<'_>,
    format: CodeFormat,
) -> Result<RecoveryHashes, DecodeError> {
    let salt = r.array::<16>()?;
    let params = KdfParams {
        memory_kib: r.u32()?,
        iterations: r.u32()?,
        parallelism: r.u32()?,
    };
    let n = usize::from(r.u8()?);
    if n > MAX_RECOVERY_HASHES {
        return Err(DecodeError("too many recovery codes"));
    }
    let mut hashes = Vec::with_capacity(n);
    for _ in 0..n {
        hashes.push(r.array::<32>()?);
    }
    RecoveryHashes::from_parts(format, salt, params, hashes)
        .map_err(|_| DecodeError("recovery code parameters out of range"))
}

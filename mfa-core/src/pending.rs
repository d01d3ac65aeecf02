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

use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::keys::{EnrollmentPublicKey, MasterKey, SealedError};
use crate::record::{decode_device, decode_recovery, encode_device, encode_recovery, Device};
use crate::recovery::RecoveryHashes;
use crate::spool::{self, Found};

/// What a pending enrollment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Add this device and replace the recovery codes with this set.
    Device {
        /// The device, verified once by the user when it was made.
        device: Device,
        /// The recovery codes the user was shown, hashed.
        recovery: RecoveryHashes,
    },
    /// Replace the recovery codes with this set.
    RecoveryCodes {
        /// The new codes, hashed.
        recovery: RecoveryHashes,
    },
}

/// A self-service enrollment as sealed into the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// When the user made it (Unix seconds).
    pub created: u64,
    /// What it asks for.
    pub request: Request,
}

const TAG_DEVICE: u8 = 1;
const TAG_RECOVERY: u8 = 2;

impl Pending {
    /// Encodes the plaintext that gets sealed.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u64(self.created);
        match &self.request {
            Request::Device { device, recovery } => {
                w.u8(TAG_DEVICE);
                encode_device(&mut w, device);
                encode_recovery(&mut w, recovery);
            }
            Request::RecoveryCodes { recovery } => {
                w.u8(TAG_RECOVERY);
                encode_recovery(&mut w, recovery);
            }
        }
        w.finish()
    }

    /// Decodes a plaintext, refusing anything malformed.
    ///
    /// # Errors
    /// [`DecodeError`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let created = r.u64()?;
        let request = match r.u8()? {
            TAG_DEVICE => Request::Device {
                device: decode_device(&mut r)?,
                recovery: decode_recovery(&mut r)?,
            },
            TAG_RECOVERY => Request::RecoveryCodes {
                recovery: decode_recovery(&mut r)?,
            },
            _ => return Err(DecodeError("unknown pending request")),
        };
        r.finish()?;
        Ok(Pending { created, request })
    }

    /// Seals this enrollment for `uid` to the host's public key.
    ///
    /// # Errors
    /// [`SealedError::SealFailed`].
    pub fn seal(&self, key: &EnrollmentPublicKey, uid: u32) -> Result<Vec<u8>, SealedError> {
        key.seal(uid, &self.encode())
    }
}

/// Writes a sealed enrollment into the spool as a new file `<uid>.<random>`
/// What an administrator's approval changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approved {
    /// The device was added (the user's first, or another one).
    Device(String),
    /// The recovery codes were replaced.
    RecoveryCodes,
}

/// Applies `found` to `uid`'s record on an administrator's say-so
/// (`mfa-enroll approve`): the way a first device gets in under the `deny`
/// policy. `username` names a record that does not exist yet. The spool file
/// is removed once the record is durable.
///
/// # Errors
/// A store error; or [`StoreError::NotEnrolled`] for new recovery codes of a
/// user with no record.
pub fn approve(
    store: &crate::store::Store,
    keys: &MasterKey,
    uid: u32,
    username: &str,
    found: &Found,
    now: u64,
) -> Result<Approved, crate::store::StoreError> {
    let mut state = store.open_user(uid, keys)?;
    let (mut record, approved) = match &found.pending.request {
        Request::Device { device, recovery } => {
            let mut record = state
                .record()
                .cloned()
                .unwrap_or_else(|| crate::record::Record::new(username, now));
            record.devices.retain(|d| d.name != device.name);
            record.devices.push(device.clone());
            record.recovery = Some(recovery.clone());
            (record, Approved::Device(device.name.clone()))
        }
        Request::RecoveryCodes { recovery } => {
            let mut record = state.require_record()?.clone();
            record.recovery = Some(recovery.clone());
            (record, Approved::RecoveryCodes)
        }
    };
    record
        .validate()
        .map_err(crate::store::StoreError::TooLarge)?;
    // An approved device starts with a clean slate of failures.
    crate::throttle::clear(&mut record);
    state.rewrite(&record, keys)?;
    drop(state);
    // Durable now; a file that lingers is offered again and only re-adds it.
    let _ = spool::remove(found);
    Ok(approved)
}

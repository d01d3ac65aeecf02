//! Making a new device and a new set of recovery codes, the same way for
//! every path that enrolls: the administrator's `mfa-enroll enroll`, a user's
//! self-service enrollment, and enrollment inside the login conversation.

use std::fmt;

use zeroize::Zeroizing;

use crate::config::Config;
use crate::random::RandomUnavailable;
use crate::record::{Device, MAX_DEVICE_NAME};
use crate::recovery::{self, KdfParams, RecoveryCode, RecoveryError, RecoveryHashes};
use crate::text;
use crate::totp::{self, TotpParams};

/// A device that has been generated but not yet stored.
pub struct NewDevice {
    /// The device, ready to be put in a record.
    pub device: Device,
    /// The secret in base32, grouped in fours for typing.
    pub secret_grouped: Zeroizing<String>,
    /// The `otpauth://` URI that the QR code carries.
    pub uri: Zeroizing<String>,
}

impl fmt::Debug for NewDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDevice")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Why a device could not be made.
#[derive(Debug)]
pub enum EnrollmentError {
    /// The device name is empty, too long, has a character that is not
    /// printable ([`crate::text::is_printable`]) or starts or ends with
    /// white space.
    BadDeviceName,
    /// The kernel could not provide randomness.
    Random(RandomUnavailable),
    /// Recovery codes could not be made.
    Recovery(RecoveryError),
}

impl fmt::Display for EnrollmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnrollmentError::BadDeviceName => write!(
                f,
                "a device name must be 1 to {MAX_DEVICE_NAME} bytes of printable text, without control \
                 characters (such as escape sequences), invisible or direction-changing characters, \
                 or spaces at either end; choose another name"
            ),
            EnrollmentError::Random(e) => write!(f, "{e}"),
            EnrollmentError::Recovery(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EnrollmentError {}

/// Checks a device name wherever one enters: `mfa-enroll enroll --device`,
/// a user's own enrollment, imports, and a self-service request before it
/// is applied. A name is 1 to [`MAX_DEVICE_NAME`] bytes of printable text
/// ([`crate::text::is_printable`]: no control character, so no terminal
/// escape sequence, and no invisible or bidirectional formatting character
/// that makes a name read as another), without white space at either end
/// (`"phone "` would look like `"phone"` in every listing).
///
/// Names already stored by an older release are not checked again: they
/// keep working, and front ends print them through [`crate::text::escape`].
///
/// # Errors
/// [`EnrollmentError::BadDeviceName`].
pub fn check_device_name(name: &str) -> Result<(), EnrollmentError> {
    let bad = name.is_empty()
        || name.len() > MAX_DEVICE_NAME
        || !name.chars().all(text::is_printable)
        || name.starts_with(char::is_whitespace)
        || name.ends_with(char::is_whitespace);
    if bad {
        return Err(EnrollmentError::BadDeviceName);
    }
    Ok(())
}

/// The issuer shown in the authenticator app: the configured one, or the
/// host name when the configuration leaves it empty.
pub fn issuer(config: &Config, hostname: &str) -> String {
    if config.totp.issuer.is_empty() {
        hostname.to_owned()
    } else {
        config.totp.issuer.clone()
    }
}

/// Generates a device with a fresh secret and the configured TOTP
/// parameters. `account` is the label after the issuer (`user@host`).
///
/// # Errors
/// A bad device name or unavailable randomness.
pub fn new_device(
    config: &Config,
    name: &str,
    issuer: &str,
    account: &str,
    now: u64,
) -> Result<NewDevice, EnrollmentError> {
    check_device_name(name)?;
    let secret = totp::generate_secret().map_err(EnrollmentError::Random)?;
    let params = TotpParams {
        algorithm: config.totp.algorithm,
        digits: config.totp.digits,
        period: config.totp.period,
    };
    let uri = totp::otpauth_uri(&secret, params, issuer, account);
    let secret_grouped = totp::grouped(&totp::base32_encode(&secret));
    Ok(NewDevice {
        device: Device {
            name: name.to_owned(),
            secret,
            params,
            created: now,
            last_used_step: None,
        },
        secret_grouped,
        uri,
    })
}

/// A fresh set of recovery codes as configured: the codes to show once, and
/// the hashes to store.
///
/// # Errors
/// [`EnrollmentError::Recovery`].
pub fn new_recovery_codes(
    config: &Config,
) -> Result<(Vec<RecoveryCode>, RecoveryHashes), EnrollmentError> {
    recovery::generate(
        config.recovery.count,
        config.recovery.length,
        KdfParams::default(),
    )
    .map_err(EnrollmentError::Recovery)
}

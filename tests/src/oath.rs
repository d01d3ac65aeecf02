//! TOTP codes from oathtool (liboath), an implementation independent of
//! pam_mfa's own, so a test never checks the module against itself.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The HMAC of a TOTP device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OathAlgorithm {
    /// HMAC-SHA1, what nearly every app uses.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// The settings of a TOTP device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OathSpec {
    /// The HMAC.
    pub algorithm: OathAlgorithm,
    /// Digits per code.
    pub digits: u8,
    /// Seconds per code.
    pub period: u32,
}

impl Default for OathSpec {
    /// SHA1, 6 digits, 30 seconds: pam_mfa's defaults.
    fn default() -> Self {
        OathSpec {
            algorithm: OathAlgorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// The 6-digit, 30-second SHA1 code for a base32 secret at `at_unix`, or
/// now.
pub fn oathtool_code(secret_b32: &str, at_unix: Option<u64>) -> String {
    oathtool_totp(secret_b32, OathSpec::default(), at_unix)
}

/// The code for a base32 secret under `spec` at `at_unix`, or now.
pub fn oathtool_totp(secret_b32: &str, spec: OathSpec, at_unix: Option<u64>) -> String {
    let mode = match spec.algorithm {
        OathAlgorithm::Sha1 => "sha1",
        OathAlgorithm::Sha256 => "sha256",
        OathAlgorithm::Sha512 => "sha512",
    };
    let at = at_unix.unwrap_or_else(unix_now);
    let out = Command::new("oathtool")
        .arg(format!("--totp={mode}"))
        .arg("--base32")
        .arg(format!("--digits={}", spec.digits))
        .arg(format!("--time-step-size={}s", spec.period))
        .arg(format!("--now=@{at}"))
        .arg(secret_b32)
        .output()
        .expect("oathtool is installed (apt-get install oathtool)");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("oathtool prints ASCII digits")
        .trim()
        .to_owned()
}

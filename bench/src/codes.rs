//! TOTP codes as the users' apps would show them (SHA-1, 6 digits, 30 s:
//! what every module under test is configured for).

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use mfa_core::codec::hex_decode;
use mfa_core::totp::{self, Algorithm, TotpParams};

/// Bytes per secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

/// A synthetic user's TOTP secret. Throwaway test material, so it is not
/// wiped like the module's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secret(pub [u8; SECRET_LEN]);

/// The parameters of every synthetic device.
pub const PARAMS: TotpParams = TotpParams {
    algorithm: Algorithm::Sha1,
    digits: 6,
    period: 30,
};

/// How far google-authenticator searches for clock skew after a wrong code
/// (25 minutes of 30 s steps each way), plus the window.
const SKEW_SEARCH: u64 = 25 * 60 + 2;

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The time step of `unix`.
pub fn step_of(unix: u64) -> u64 {
    totp::time_step(unix, PARAMS.period)
}

/// Decodes a secret given in hex.
///
/// # Errors
/// If it is not 40 hex digits.
pub fn secret_from_hex(hex: &str) -> Result<Secret, String> {
    hex_decode::<SECRET_LEN>(hex)
        .map(|s| Secret(*s))
        .map_err(|e| format!("bad secret: {e}"))
}

/// The code for `step`.
pub fn code_at(secret: &Secret, step: u64) -> String {
    totp::code_at_step(&secret.0, PARAMS, step).to_string()
}

/// Six digits that are not the code of any step within the skew search
/// around `step`, so no module accepts them or treats them as clock skew.
pub fn wrong_code(secret: &Secret, step: u64) -> String {
    let near: HashSet<String> = (step.saturating_sub(SKEW_SEARCH)..=step + SKEW_SEARCH)
        .map(|s| code_at(secret, s))
        .collect();
    let right: u64 = code_at(secret, step).parse().unwrap_or(0);
    // 7 919 is prime, so the candidates run through every six-digit code.
    (0..1_000_000u64)
        .map(|k| format!("{:06}", (right + 500_000 + k * 7_919) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap_or_else(|| unreachable!("3 000 codes cannot cover a million"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, T = 59 s, 8 digits 94287082: the
        // last six digits are the 6-digit code.
        let secret = secret_from_hex("3132333435363738393031323334353637383930").unwrap();
        assert_eq!(code_at(&secret, step_of(59)), "287082");
    }

    #[test]
    fn a_wrong_code_matches_no_step_in_the_skew_search() {
        let secret = secret_from_hex("3132333435363738393031323334353637383930").unwrap();
        let step = step_of(1_700_000_000);
        let wrong = wrong_code(&secret, step);
        assert_eq!(wrong.len(), 6);
        for s in step - SKEW_SEARCH..=step + SKEW_SEARCH {
            assert_ne!(code_at(&secret, s), wrong, "step {s}");
        }
    }
}

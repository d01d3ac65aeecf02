//! Randomness comes from the operating system's CSPRNG and nowhere else.

use std::fmt;

/// The operating system could not provide random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomUnavailable;

impl fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the kernel random number generator is unavailable; check that getrandom(2) works on this host",
        )
    }
}

impl std::error::Error for RandomUnavailable {}

/// Fills `buf` from the kernel CSPRNG.
///
/// # Errors
/// [`RandomUnavailable`] if the kernel refuses; callers fail closed.
pub fn fill(buf: &mut [u8]) -> Result<(), RandomUnavailable> {
    use rand_core::TryRngCore;
    rand_core::OsRng
        .try_fill_bytes(buf)
        .map_err(|_| RandomUnavailable)
}

/// Returns `N` random bytes.
///
/// # Errors
/// [`RandomUnavailable`] if the kernel refuses.
pub fn bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// A uniformly distributed index below `bound` (rejection sampling, no modulo bias).
///
/// # Errors
/// [`RandomUnavailable`] if the kernel refuses.
///
/// # Panics
/// If `bound` is 0 or above 256.
pub fn index_below(bound: usize) -> Result<usize, RandomUnavailable> {
    assert!(bound > 0 && bound <= 256, "index_below: bound out of range");
    // Largest multiple of `bound` that fits in a byte; values at or above it are redrawn.
    let limit = 256 - (256 % bound);
    loop {
        let [b] = bytes::<1>()?;
        let b = usize::from(b);
        if b < limit {
            return Ok(b % bound);
        }
    }
}

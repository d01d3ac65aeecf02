//! Sealing one copy of a record: the header both backends write, and the
//! AES-256-GCM seal whose AAD binds it to its owner.
//!
//! ```text
//! offset size
//!  0      8   magic "PAM_MFA\0"
//!  8      2   format version, big-endian
//! 10      4   key generation
//! 14      8   key check (derived from the generation's secret)
//! 22      8   sequence number (files: the slot's; PostgreSQL: the row version)
//! 30     12   AES-GCM nonce (random per write)
//! 42      4   ciphertext length n
//! 46      n   AES-256-GCM ciphertext of the encoded record, tag included
//! ```
//!
//! The AAD is the header followed by the owner's [`Binding`], so a copy moved
//! to another user, or given another sequence number or generation, fails to
//! authenticate.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::{SlotFault, StoreError, HEADER_LEN, RECORD_MAGIC, RECORD_VERSION, TAG_LEN};
use crate::codec::{Reader, Writer};
use crate::keys::{Generation, MasterKey, StoreKey};
use crate::random;
use crate::record::RecordTooLarge;

/// Whom a sealed copy belongs to, as its AAD says.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Binding<'a> {
    /// A record file, named by the uid (4 bytes, big-endian: the format
    /// every record file has had since the first release).
    Uid(u32),
    /// A PostgreSQL row, keyed by login name ("name:" and the name's bytes;
    /// never 4 bytes long, so never mistaken for a uid binding).
    Name(&'a str),
}

impl Binding<'_> {
    fn extend(self, aad: &mut Vec<u8>) {
        match self {
            Binding::Uid(uid) => aad.extend_from_slice(&uid.to_be_bytes()),
            Binding::Name(name) => {
                aad.extend_from_slice(b"name:");
                aad.extend_from_slice(name.as_bytes());
            }
        }
    }
}

/// What one sealed copy holds.
pub(crate) enum Slot {
    /// All zeros: never written.
    Empty,
    /// Authenticated under a key the key file holds.
    Valid {
        seq: u64,
        /// Random for every seal, so it tells two writes apart even where
        /// the sequence number starts over (a record enrolled afresh).
        nonce: [u8; 12],
        generation: Generation,
        version: u16,
        plaintext: Zeroizing<Vec<u8>>,
    },
    /// Present but unusable, and why.
    Invalid(SlotFault),
}

/// Where the nonce sits in a sealed copy.
pub(crate) const NONCE_AT: std::ops::Range<usize> = 30..42;

/// Seals `plaintext` under `key` for `owner` with sequence number `seq`,
/// zero-padded to `size` bytes (at least the sealed length).
pub(crate) fn seal(
    key: &StoreKey,
    owner: Binding<'_>,
    seq: u64,
    plaintext: &[u8],
    size: usize,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let nonce = random::bytes::<12>().map_err(StoreError::Random)?;
    let ct_len = plaintext.len() + TAG_LEN;
    let ct_len_field = u32::try_from(ct_len)
        .map_err(|_| StoreError::TooLarge(RecordTooLarge("sealed record too long")))?;
    let mut w = Writer::with_capacity(HEADER_LEN);
    w.raw(&RECORD_MAGIC);
    w.u16(RECORD_VERSION);
    w.u32(key.generation());
    w.raw(&key.check());
    w.u64(seq);
    w.raw(&nonce);
    w.u32(ct_len_field);
    let header = w.finish();
    let mut aad = header.to_vec();
    owner.extend(&mut aad);
    let cipher = Aes256Gcm::new(key.bytes().into());
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| StoreError::TooLarge(RecordTooLarge("record too long to seal")))?;
    let mut sealed = Zeroizing::new(Vec::with_capacity(size.max(HEADER_LEN + ct.len())));
    sealed.extend_from_slice(&header);
    sealed.extend_from_slice(&ct);
    if sealed.len() < size {
        sealed.resize(size, 0);
    }
    Ok(sealed)
}

/// Opens one sealed copy of `owner`'s record. Bytes after the ciphertext
/// must be zero (the padding is outside the AEAD).
pub(crate) fn open(bytes: &[u8], owner: Binding<'_>, keys: &MasterKey) -> Slot {
    use SlotFault::{Corrupt, UnknownGeneration, UnknownVersion, WrongKey};
    if bytes.iter().all(|&b| b == 0) {
        return Slot::Empty;
    }
    let Some((header, rest)) = bytes.split_at_checked(HEADER_LEN) else {
        return Slot::Invalid(Corrupt("slot shorter than its header"));
    };
    let mut r = Reader::new(header);
    // The header is exactly HEADER_LEN bytes, so these reads cannot fail.
    let (Ok(magic), Ok(version), Ok(generation), Ok(check), Ok(seq), Ok(nonce), Ok(ct_len)) = (
        r.array::<8>(),
        r.u16(),
        r.u32(),
        r.array::<8>(),
        r.u64(),
        r.array::<12>(),
        r.u32(),
    ) else {
        return Slot::Invalid(Corrupt("short header"));
    };
    if magic != RECORD_MAGIC {
        return Slot::Invalid(Corrupt("bad magic"));
    }
    if !crate::record::READ_VERSIONS.contains(&version) {
        return Slot::Invalid(UnknownVersion(version));
    }
    let ct_len = ct_len as usize;
    if ct_len < TAG_LEN || ct_len > rest.len() {
        return Slot::Invalid(Corrupt("bad length"));
    }
    let (ct, padding) = rest.split_at(ct_len);
    if padding.iter().any(|&b| b != 0) {
        return Slot::Invalid(Corrupt("padding altered"));
    }
    let Some(key) = keys.store_key(generation) else {
        return Slot::Invalid(UnknownGeneration(generation));
    };
    if key.check() != check {
        return Slot::Invalid(WrongKey(generation));
    }
    let mut aad = header.to_vec();
    owner.extend(&mut aad);
    let cipher = Aes256Gcm::new(key.bytes().into());
    match cipher.decrypt(Nonce::from_slice(&nonce), Payload { msg: ct, aad: &aad }) {
        Ok(pt) => Slot::Valid {
            seq,
            nonce,
            generation,
            version,
            plaintext: Zeroizing::new(pt),
        },
        Err(_) => Slot::Invalid(Corrupt("does not authenticate")),
    }
}

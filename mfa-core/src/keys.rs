//! The master key and everything derived from it.
//!
//! The master key file holds one or more *generations*: an id, a creation
//! time and 32 random bytes each, one of them active. From each generation's
//! secret HKDF-SHA256 derives
//!
//! * the **store key** (AES-256-GCM) that seals user records, with a short
//!   **key check** value written beside each record so that "sealed under a
//!   different key" is told apart from "damaged";
//! * the **enrollment key pair** (X25519) that users seal self-service
//!   enrollments to with HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256),
//!   HKDF-SHA256, AES-256-GCM). Its public half is written to the enrollment
//!   public key file, readable by everyone.
//!
//! Rotation adds a generation and makes it active; records sealed under an
//! older generation keep opening until they are migrated, and a generation
//! can be retired once nothing uses it.

use std::fmt::{self, Write as _};
use std::io;
use std::path::Path;
use std::sync::OnceLock;

use hkdf::Hkdf;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::codec::{hex_decode, hex_encode, DecodeError, Reader, Writer};
use crate::fsutil::{self, Access, FileError, FileTrust};
use crate::random::{self, RandomUnavailable};

const MASTER_HEADER: &str = "pam_mfa master key v1";
const PUBLIC_HEADER: &str = "pam_mfa enrollment key v1";
const HKDF_SALT: &[u8] = b"pam_mfa key derivation v1";
const INFO_STORE: &[u8] = b"record store key";
const INFO_CHECK: &[u8] = b"record key check";
const INFO_ENROLL: &[u8] = b"enrollment x25519 key";
const HPKE_INFO: &[u8] = b"pam_mfa pending enrollment v1";
const PENDING_MAGIC: &[u8; 8] = b"PMFAPEND";
/// The request format sealed (see `pending::FORMAT`); the header, and so
/// the AAD, carries it.
const PENDING_VERSION: u16 = 2;
/// Release 0.1 sealed format 1; its requests still open.
const PENDING_READ_VERSIONS: [u16; 2] = [1, 2];
/// X25519 encapsulated keys are 32 bytes.
const ENCAPPED_LEN: usize = 32;

/// No legitimate key file is anywhere near this size.
pub const MAX_KEY_FILE: u64 = 64 * 1024;
/// The most generations a key file may hold.
pub const MAX_GENERATIONS: usize = 64;

/// Identifies one generation of the master key.
pub type Generation = u32;

/// Something is wrong with a key file or an operation on keys.
#[derive(Debug)]
pub enum KeyError {
    /// The file failed its ownership, mode, type or size checks, or is missing.
    File(FileError),
    /// The file exists but is not a valid key file.
    Malformed {
        /// Which file.
        path: String,
        /// Where and what.
        reason: String,
    },
    /// `key init` found an existing key file and will not overwrite it.
    AlreadyExists(String),
    /// A generation that the operation needs is not in the key file.
    UnknownGeneration(Generation),
    /// Retiring the active generation is refused.
    RetireActive(Generation),
    /// The key file already holds the maximum number of generations.
    TooManyGenerations,
    /// The kernel could not provide random bytes.
    Random(RandomUnavailable),
    /// Writing a key file failed.
    Write {
        /// Which file.
        path: String,
        /// The OS error.
        err: io::Error,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::File(e) if e.is_missing() => write!(
                f,
                "{e}; create the key with `mfa-enroll key init` (or restore it from backup)"
            ),
            KeyError::File(e) => write!(f, "{e}"),
            KeyError::Malformed { path, reason } => write!(
                f,
                "{path} is not a valid pam_mfa key file ({reason}); restore it from backup"
            ),
            KeyError::AlreadyExists(path) => write!(
                f,
                "{path} already exists; refusing to overwrite a master key (use `mfa-enroll key rotate` to add a generation)"
            ),
            KeyError::UnknownGeneration(g) => write!(
                f,
                "key generation {g} is not in the master key file; restore the key file that holds it"
            ),
            KeyError::RetireActive(g) => write!(
                f,
                "generation {g} is the active key; rotate to a new generation before retiring it"
            ),
            KeyError::TooManyGenerations => write!(
                f,
                "the master key already holds {MAX_GENERATIONS} generations; migrate records and retire old ones first"
            ),
            KeyError::Random(e) => write!(f, "{e}"),
            KeyError::Write { path, err } => write!(f, "cannot write {path}: {err}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<RandomUnavailable> for KeyError {
    fn from(e: RandomUnavailable) -> Self {
        KeyError::Random(e)
    }
}

fn hkdf_expand<const N: usize>(secret: &[u8; 32], info: &[u8]) -> Zeroizing<[u8; N]> {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
    let mut out = Zeroizing::new([0u8; N]);
    // N is at most 255 * 32 for every caller, so expand cannot fail.
    hk.expand(info, out.as_mut())
        .expect("HKDF output length within bounds");
    out
}

/// The AES-256-GCM key that seals records of one generation.
pub struct StoreKey {
    generation: Generation,
    key: Zeroizing<[u8; 32]>,
    check: [u8; 8],
}

impl StoreKey {
    /// The generation this key belongs to.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The raw AES key.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// A value derived from the same secret and stored beside each record,
    /// so a record sealed under another key reads as "wrong key", not "corrupt".
    pub fn check(&self) -> [u8; 8] {
        self.check
    }
}

struct GenerationSecret {
    id: Generation,
    created: u64,
    secret: Zeroizing<[u8; 32]>,
    /// Derived at first use and kept: every record read and write needs it,
    /// but a login touches one generation, and the key file may hold several.
    store: OnceLock<StoreKey>,
}

impl GenerationSecret {
    fn new(id: Generation, created: u64, secret: Zeroizing<[u8; 32]>) -> Self {
        GenerationSecret {
            id,
            created,
            secret,
            store: OnceLock::new(),
        }
    }

    fn store_key(&self) -> &StoreKey {
        self.store.get_or_init(|| {
            let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), self.secret.as_ref());
            let mut key = Zeroizing::new([0u8; 32]);
            let mut check = [0u8; 8];
            // Both lengths are far below HKDF's limit of 255 * 32 bytes.
            hk.expand(INFO_STORE, key.as_mut())
                .and_then(|()| hk.expand(INFO_CHECK, &mut check))
                .expect("HKDF output length within bounds");
            StoreKey {
                generation: self.id,
                key,
                check,
            }
        })
    }

    fn enrollment_pair(
        &self,
    ) -> (
        <X25519HkdfSha256 as hpke::Kem>::PrivateKey,
        <X25519HkdfSha256 as hpke::Kem>::PublicKey,
    ) {
        let ikm = hkdf_expand::<32>(&self.secret, INFO_ENROLL);
        X25519HkdfSha256::derive_keypair(ikm.as_ref())
    }
}

/// What `key list` shows about one generation; no secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationInfo {
    /// The generation id.
    pub id: Generation,
    /// When it was created (Unix seconds).
    pub created: u64,
    /// Whether new records are sealed under it.
    pub active: bool,
}

/// A list of generations holding `first`, with room for
/// [`MAX_GENERATIONS`]. Each generation's secret lives inside the list, so
/// the list must never reallocate: that would free the old buffer with the
/// secrets still in it.
fn generation_list(first: GenerationSecret) -> Vec<GenerationSecret> {
    let mut list = Vec::with_capacity(MAX_GENERATIONS);
    list.push(first);
    list
}

/// The host's master key: all generations, one of them active. The list of
/// generations has room for [`MAX_GENERATIONS`] from the start and is never
/// allowed more, so it never reallocates.
pub struct MasterKey {
    generations: Vec<GenerationSecret>,
    active: Generation,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("generations", &self.list())
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A new master key with one fresh generation (id 1), active.
    ///
    /// # Errors
    /// If the kernel cannot provide randomness.
    pub fn generate(now: u64) -> Result<Self, KeyError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        random::fill(secret.as_mut())?;
        Ok(MasterKey {
            generations: generation_list(GenerationSecret::new(1, now, secret)),
            active: 1,
        })
    }

    /// Adds a new generation and makes it active. Returns its id.
    ///
    /// # Errors
    /// If there are already [`MAX_GENERATIONS`] or randomness is unavailable.
    pub fn rotate(&mut self, now: u64) -> Result<Generation, KeyError> {
        if self.generations.len() >= MAX_GENERATIONS {
            return Err(KeyError::TooManyGenerations);
        }
        let id = self.generations.iter().map(|g| g.id).max().unwrap_or(0) + 1;
        let mut secret = Zeroizing::new([0u8; 32]);
        random::fill(secret.as_mut())?;
        self.generations
            .push(GenerationSecret::new(id, now, secret));
        self.active = id;
        Ok(id)
    }

    /// Removes a generation that is not active. The caller must first make
    /// sure no record still uses it.
    ///
    /// # Errors
    /// If it is the active generation or does not exist.
    pub fn retire(&mut self, id: Generation) -> Result<(), KeyError> {
        if id == self.active {
            return Err(KeyError::RetireActive(id));
        }
        let before = self.generations.len();
        self.generations.retain(|g| g.id != id);
        // Retaining shifted the later generations down; the slots they left
        // still hold their secrets, outside the list's length now.
        self.generations.spare_capacity_mut().zeroize();
        if self.generations.len() == before {
            return Err(KeyError::UnknownGeneration(id));
        }
        Ok(())
    }

    /// The generation new records are sealed under.
    pub fn active(&self) -> Generation {
        self.active
    }

    /// Every generation, oldest first.
    pub fn list(&self) -> Vec<GenerationInfo> {
        self.generations
            .iter()
            .map(|g| GenerationInfo {
                id: g.id,
                created: g.created,
                active: g.id == self.active,
            })
            .collect()
    }

    fn find(&self, id: Generation) -> Option<&GenerationSecret> {
        self.generations.iter().find(|g| g.id == id)
    }

    fn active_secret(&self) -> &GenerationSecret {
        // Parsing and every mutation keep `active` pointing at a held generation.
        self.find(self.active)
            .expect("active generation is always present")
    }

    /// The store key of a generation, if the key file holds it.
    pub fn store_key(&self, id: Generation) -> Option<&StoreKey> {
        self.find(id).map(GenerationSecret::store_key)
    }

    /// The store key new records are sealed under.
    pub fn active_store_key(&self) -> &StoreKey {
        self.active_secret().store_key()
    }

    /// The public enrollment key of the active generation.
    pub fn enrollment_public_key(&self) -> EnrollmentPublicKey {
        let (_, pk) = self.active_secret().enrollment_pair();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&pk.to_bytes());
        EnrollmentPublicKey {
            generation: self.active,
            bytes,
        }
    }

    /// Serializes the key file. The buffer is wiped when dropped, and sized
    /// up front: a `String` that grew would free its old buffers, with the
    /// secrets already written, unwiped.
    pub fn to_file_contents(&self) -> Zeroizing<Vec<u8>> {
        // "generation " id " created " time " " hex "\n", ids and times at
        // their longest.
        const PER_GENERATION: usize = 11 + 10 + 9 + 20 + 1 + 64 + 1;
        // The header, the two comment lines and the `active` line.
        const FIXED: usize = 256;
        let capacity = FIXED + PER_GENERATION * self.generations.len();
        let mut s = Zeroizing::new(String::with_capacity(capacity));
        s.push_str(MASTER_HEADER);
        s.push('\n');
        s.push_str("# Root only (0600). Without this file no enrolled user can log in;\n");
        s.push_str("# back it up where only root can read it. See pam_mfa(8).\n");
        let _ = writeln!(s, "active {}", self.active);
        for g in &self.generations {
            let _ = write!(s, "generation {} created {} ", g.id, g.created);
            s.push_str(&hex_encode(g.secret.as_ref()));
            s.push('\n');
        }
        // The same buffer, not a copy.
        Zeroizing::new(std::mem::take(&mut *s).into_bytes())
    }

    /// Parses a key file's contents; `origin` names it in errors.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] with the line and what is wrong.
    pub fn parse(contents: &[u8], origin: &str) -> Result<Self, KeyError> {
        let bad = |line: usize, reason: &str| KeyError::Malformed {
            path: origin.to_owned(),
            reason: if line == 0 {
                reason.to_owned()
            } else {
                format!("line {line}: {reason}")
            },
        };
        let text = std::str::from_utf8(contents).map_err(|_| bad(0, "not UTF-8"))?;
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, MASTER_HEADER)) => {}
            _ => return Err(bad(1, "missing header `pam_mfa master key v1`")),
        }
        let mut active = None;
        let mut generations: Vec<GenerationSecret> = Vec::with_capacity(MAX_GENERATIONS);
        for (n, line) in lines {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["active", id] => {
                    if active.is_some() {
                        return Err(bad(n, "`active` given twice"));
                    }
                    active = Some(id.parse::<Generation>().map_err(|_| bad(n, "bad id"))?);
                }
                ["generation", id, "created", created, secret] => {
                    let id = id.parse::<Generation>().map_err(|_| bad(n, "bad id"))?;
                    if id == 0 || generations.iter().any(|g| g.id == id) {
                        return Err(bad(n, "generation id is zero or repeated"));
                    }
                    if generations.len() >= MAX_GENERATIONS {
                        return Err(bad(n, "too many generations"));
                    }
                    let created = created.parse::<u64>().map_err(|_| bad(n, "bad time"))?;
                    let secret = hex_decode::<32>(secret)
                        .map_err(|DecodeError(e)| bad(n, &format!("secret: {e}")))?;
                    generations.push(GenerationSecret::new(id, created, secret));
                }
                _ => return Err(bad(n, "unrecognised line")),
            }
        }
        let active = active.ok_or_else(|| bad(0, "no `active` line"))?;
        if !generations.iter().any(|g| g.id == active) {
            return Err(bad(0, "the active generation is not in the file"));
        }
        Ok(MasterKey {
            generations,
            active,
        })
    }

    /// Loads the key file, refusing it unless it is a regular root-only file
    /// (mode 0600 or stricter) in a directory only root can write.
    ///
    /// # Errors
    /// [`KeyError::File`] or [`KeyError::Malformed`].
    pub fn load(path: &Path, trust: FileTrust) -> Result<Self, KeyError> {
        let contents = fsutil::read_trusted(path, trust, Access::OwnerOnly, MAX_KEY_FILE)
            .map_err(KeyError::File)?;
        Self::parse(&contents, &path.display().to_string())
    }

    /// Writes a new key file; never replaces an existing one.
    ///
    /// # Errors
    /// [`KeyError::AlreadyExists`] if there is one, or the write error.
    pub fn create(&self, path: &Path) -> Result<(), KeyError> {
        fsutil::write_atomic(path, &self.to_file_contents(), 0o600, false).map_err(|err| {
            if err.kind() == io::ErrorKind::AlreadyExists {
                KeyError::AlreadyExists(path.display().to_string())
            } else {
                KeyError::Write {
                    path: path.display().to_string(),
                    err,
                }
            }
        })
    }

    /// Atomically replaces the key file with this key (after rotate/retire).
    ///
    /// # Errors
    /// The write error; the old file is then untouched.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        fsutil::write_atomic(path, &self.to_file_contents(), 0o600, true).map_err(|err| {
            KeyError::Write {
                path: path.display().to_string(),
                err,
            }
        })
    }

    /// Opens a pending enrollment sealed with [`EnrollmentPublicKey::seal`]
    /// by `uid`. Fails unless it was sealed for that uid under a generation
    /// this key file holds.
    ///
    /// # Errors
    /// [`SealedError`] saying why it does not open.
    pub fn open_enrollment(
        &self,
        sealed: &[u8],
        uid: u32,
    ) -> Result<Zeroizing<Vec<u8>>, SealedError> {
        self.open_request(sealed, uid)
            .map(|(_, plaintext)| plaintext)
    }

    /// As [`MasterKey::open_enrollment`], with the request format the
    /// sealed header names (1 or 2; the plaintext's layout depends on it).
    ///
    /// # Errors
    /// [`SealedError`] saying why it does not open.
    pub fn open_request(
        &self,
        sealed: &[u8],
        uid: u32,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), SealedError> {
        let mut r = Reader::new(sealed);
        let header = r
            .raw(PENDING_HEADER_LEN)
            .map_err(|_| SealedError::Malformed)?;
        let mut h = Reader::new(header);
        if h.raw(8).map_err(|_| SealedError::Malformed)? != PENDING_MAGIC {
            return Err(SealedError::Malformed);
        }
        let version = h.u16().map_err(|_| SealedError::Malformed)?;
        if !PENDING_READ_VERSIONS.contains(&version) {
            return Err(SealedError::UnknownVersion(version));
        }
        let generation = h.u32().map_err(|_| SealedError::Malformed)?;
        let sealed_uid = h.u32().map_err(|_| SealedError::Malformed)?;
        if sealed_uid != uid {
            return Err(SealedError::WrongUser);
        }
        let enc = h.raw(ENCAPPED_LEN).map_err(|_| SealedError::Malformed)?;
        let ciphertext = r.raw(sealed.len() - PENDING_HEADER_LEN).unwrap_or_default();
        let secret = self
            .find(generation)
            .ok_or(SealedError::UnknownGeneration(generation))?;
        let (sk, _) = secret.enrollment_pair();
        let encapped = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(enc)
            .map_err(|_| SealedError::Malformed)?;
        hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &sk,
            &encapped,
            HPKE_INFO,
            ciphertext,
            header,
        )
        .map(|plaintext| (version, Zeroizing::new(plaintext)))
        .map_err(|_| SealedError::DoesNotOpen)
    }
}

const PENDING_HEADER_LEN: usize = 8 + 2 + 4 + 4 + ENCAPPED_LEN;

/// Why a sealed pending enrollment was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedError {
    /// Not a pending-enrollment file at all.
    Malformed,
    /// Written by a newer pam_mfa.
    UnknownVersion(u16),
    /// Sealed for another uid than the one asking.
    WrongUser,
    /// Sealed to a key generation this host does not hold.
    UnknownGeneration(Generation),
    /// Authentication failed: damaged, or sealed to another host's key.
    DoesNotOpen,
    /// Sealing failed (randomness unavailable).
    SealFailed,
}

impl fmt::Display for SealedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealedError::Malformed => f.write_str("not a pam_mfa pending enrollment"),
            SealedError::UnknownVersion(v) => write!(
                f,
                "pending enrollment format version {v} is newer than this pam_mfa understands; upgrade pam_mfa"
            ),
            SealedError::WrongUser => f.write_str("sealed for a different user"),
            SealedError::UnknownGeneration(g) => write!(
                f,
                "sealed to key generation {g}, which this host does not hold; enroll again"
            ),
            SealedError::DoesNotOpen => {
                f.write_str("does not open under this host's key: damaged or made for another host; enroll again")
            }
            SealedError::SealFailed => f.write_str("sealing failed: no randomness available"),
        }
    }
}

impl std::error::Error for SealedError {}

/// The public half of a generation's enrollment key pair, which users seal
/// their self-service enrollments to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollmentPublicKey {
    generation: Generation,
    bytes: [u8; 32],
}

/// Public key files are tiny.
pub const MAX_PUBLIC_KEY_FILE: u64 = 4096;

impl EnrollmentPublicKey {
    /// The generation it belongs to.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Serializes the public key file.
    pub fn to_file_contents(&self) -> String {
        format!(
            "{PUBLIC_HEADER}\n# Public: users seal self-service enrollments to this key.\ngeneration {} {}\n",
            self.generation,
            hex_encode(&self.bytes).as_str()
        )
    }

    /// Parses a public key file.
    ///
    /// # Errors
    /// [`KeyError::Malformed`].
    pub fn parse(contents: &[u8], origin: &str) -> Result<Self, KeyError> {
        let bad = |reason: &str| KeyError::Malformed {
            path: origin.to_owned(),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(contents).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(PUBLIC_HEADER) {
            return Err(bad("missing header `pam_mfa enrollment key v1`"));
        }
        let line = lines.next().ok_or_else(|| bad("no generation line"))?;
        if lines.next().is_some() {
            return Err(bad("unexpected extra lines"));
        }
        let words: Vec<&str> = line.split(' ').collect();
        let ["generation", id, key] = words.as_slice() else {
            return Err(bad("unrecognised line"));
        };
        let generation = id.parse().map_err(|_| bad("bad generation id"))?;
        let bytes = *hex_decode::<32>(key).map_err(|DecodeError(e)| bad(e))?;
        <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| bad("not an X25519 public key"))?;
        Ok(EnrollmentPublicKey { generation, bytes })
    }

    /// Loads the public key file. It must be owned by the trusted uid and not
    /// writable by others; anyone may read it.
    ///
    /// # Errors
    /// [`KeyError::File`] or [`KeyError::Malformed`].
    pub fn load(path: &Path, trust: FileTrust) -> Result<Self, KeyError> {
        let contents =
            fsutil::read_trusted(path, trust, Access::WorldReadable, MAX_PUBLIC_KEY_FILE)
                .map_err(KeyError::File)?;
        Self::parse(&contents, &path.display().to_string())
    }

    /// Atomically writes (or replaces) the public key file, mode 0644.
    ///
    /// # Errors
    /// The write error.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        fsutil::write_atomic(path, self.to_file_contents().as_bytes(), 0o644, true).map_err(|err| {
            KeyError::Write {
                path: path.display().to_string(),
                err,
            }
        })
    }

    /// Seals `plaintext` for `uid` so that only the holder of the master key
    /// can open it, and only as that uid's enrollment.
    ///
    /// # Errors
    /// [`SealedError::SealFailed`] if randomness is unavailable.
    pub fn seal(&self, uid: u32, plaintext: &[u8]) -> Result<Vec<u8>, SealedError> {
        let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&self.bytes)
            .map_err(|_| SealedError::SealFailed)?;
        let (encapped, mut ctx) = hpke::setup_sender::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
            &OpModeS::Base,
            &pk,
            HPKE_INFO,
            &mut rand_core::UnwrapErr(rand_core::OsRng),
        )
        .map_err(|_| SealedError::SealFailed)?;
        // The header (including the encapsulated key) is the AAD, so the uid
        // and generation cannot be changed without the seal failing.
        let mut w = Writer::with_capacity(PENDING_HEADER_LEN);
        w.raw(PENDING_MAGIC);
        w.u16(PENDING_VERSION);
        w.u32(self.generation);
        w.u32(uid);
        w.raw(&encapped.to_bytes());
        let header = w.finish();
        let ciphertext = ctx
            .seal(plaintext, &header)
            .map_err(|_| SealedError::SealFailed)?;
        let mut out = header.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }
}

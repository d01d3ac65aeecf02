//! What the administrator's commands decide: setting up the master key,
//! provisioning a user's device and recovery codes, reporting a user's
//! state, clearing a lockout and deleting a record.
//!
//! `mfa-enroll` only parses arguments, looks up names, prints and logs; every
//! rule about what may be done to a user's record lives here, so it can be
//! tested without the CLI and shared by any other front end.

use std::fmt;
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::{Config, Paths};
use crate::enrollment::{self, EnrollmentError};
use crate::fsutil::{self, Access, FileError, FileTrust};
use crate::input::{self, InvalidInput};
use crate::keys::{Generation, KeyError, MasterKey};
use crate::record::{LastSuccess, Record};
use crate::recovery::RecoveryCode;
use crate::store::{SlotFault, Store, StoreError, UserState};
use crate::throttle::{self, Gate};
use crate::totp::{self, TotpParams, Verdict};

/// An administrative operation was refused or failed. The `Display` text
/// tells the administrator what to do next.
#[derive(Debug)]
pub enum AdminError {
    /// The user already has a record and the operation would replace it.
    AlreadyEnrolled {
        /// The user.
        uid: u32,
    },
    /// The operation needs a record and the user has none.
    NotEnrolled {
        /// The user.
        uid: u32,
    },
    /// The response to the verification prompt is not a code at all.
    InvalidCode {
        /// Why not (never the response itself).
        reason: InvalidInput,
        /// How many digits the new device shows.
        digits: u8,
    },
    /// The code does not belong to the new device at this time.
    WrongCode,
    /// A directory the files go into is unsafe (wrong owner, writable by others...).
    UnsafeDirectory(FileError),
    /// A missing directory could not be created.
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        err: io::Error,
    },
    /// The device or its recovery codes could not be made.
    Enrollment(EnrollmentError),
    /// The master key could not be made or written.
    Key(KeyError),
    /// The user's record could not be read, written or removed.
    Store(StoreError),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::AlreadyEnrolled { uid } => write!(
                f,
                "uid {uid} is already enrolled; run `mfa-enroll reset` first, or add --force to replace its devices and recovery codes"
            ),
            AdminError::NotEnrolled { uid } => write!(
                f,
                "uid {uid} is not enrolled, so there is nothing to change; enroll it with `mfa-enroll enroll`"
            ),
            AdminError::InvalidCode { reason, digits } => write!(
                f,
                "that is not a verification code ({reason}); nothing was stored. Run the enrollment again and type exactly the {digits} digits the app shows"
            ),
            AdminError::WrongCode => f.write_str(
                "the code does not match the new device; nothing was stored. Check that the phone's clock is right, delete the entry the app just added, and run the enrollment again",
            ),
            AdminError::UnsafeDirectory(e) => write!(f, "{e}"),
            AdminError::CreateDirectory { path, err } => write!(
                f,
                "cannot create {}: {err}; create it as root (mode 0700) and try again",
                path.display()
            ),
            AdminError::Enrollment(e) => write!(f, "{e}"),
            AdminError::Key(e) => write!(f, "{e}"),
            AdminError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AdminError::UnsafeDirectory(e) => Some(e),
            AdminError::CreateDirectory { err, .. } => Some(err),
            AdminError::Enrollment(e) => Some(e),
            AdminError::Key(e) => Some(e),
            AdminError::Store(e) => Some(e),
            AdminError::AlreadyEnrolled { .. }
            | AdminError::NotEnrolled { .. }
            | AdminError::InvalidCode { .. }
            | AdminError::WrongCode => None,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

impl From<KeyError> for AdminError {
    fn from(e: KeyError) -> Self {
        AdminError::Key(e)
    }
}

impl From<EnrollmentError> for AdminError {
    fn from(e: EnrollmentError) -> Self {
        AdminError::Enrollment(e)
    }
}

// ---------------------------------------------------------------------------
// key init

/// What [`init_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInit {
    /// The generation the new key starts with.
    pub generation: Generation,
    /// Directories that did not exist and were created, outermost first.
    pub created_dirs: Vec<PathBuf>,
}

/// Creates the host's master key, its enrollment public key file and the
/// state directory.
///
/// Missing directories are created: the state directory with mode 0700, the
/// key file's directory with 0700 unless the public key file lives in it too
/// (users must be able to read that one, so the directory is then 0755), and
/// any other missing parent with 0755. Every directory the files go into is
/// then checked (owned by `trust`'s uid, writable by nobody else; the state
/// directory also unreadable by others) before anything is written, so a
/// key is never put where the module would refuse to read it.
///
/// # Errors
/// [`AdminError::Key`] with [`KeyError::AlreadyExists`] if the key file
/// exists (nothing is changed then); [`AdminError::UnsafeDirectory`],
/// [`AdminError::CreateDirectory`] or another [`KeyError`].
pub fn init_key(paths: &Paths, trust: FileTrust, now: u64) -> Result<KeyInit, AdminError> {
    let key_file = &paths.key_file;
    if std::fs::symlink_metadata(key_file).is_ok() {
        return Err(KeyError::AlreadyExists(key_file.display().to_string()).into());
    }
    let pub_dir = parent_of(&paths.enroll_public_key);
    let key_dir = parent_of(key_file);
    let key_dir_mode = if pub_dir.starts_with(key_dir) {
        0o755
    } else {
        0o700
    };
    let mut created_dirs = Vec::new();
    create_dir_all(key_dir, key_dir_mode, &mut created_dirs)?;
    create_dir_all(pub_dir, 0o755, &mut created_dirs)?;
    create_dir_all(&paths.state_dir, 0o700, &mut created_dirs)?;

    fsutil::check_parent(key_file, trust).map_err(AdminError::UnsafeDirectory)?;
    fsutil::check_parent(&paths.enroll_public_key, trust).map_err(AdminError::UnsafeDirectory)?;
    fsutil::check_dir(&paths.state_dir, trust, Access::OwnerOnly)
        .map_err(AdminError::UnsafeDirectory)?;

    let key = MasterKey::generate(now)?;
    // The key file first: creating it is the step that refuses to clobber,
    // and a public key without its private half would be worse than none.
    key.create(key_file)?;
    key.enrollment_public_key().save(&paths.enroll_public_key)?;
    Ok(KeyInit {
        generation: key.active(),
        created_dirs,
    })
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` and its missing parents; `dir` gets `mode`, parents 0755.
/// Modes are set exactly, whatever the umask.
fn create_dir_all(dir: &Path, mode: u32, created: &mut Vec<PathBuf>) -> Result<(), AdminError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
        .collect();
    for path in missing.into_iter().rev() {
        let this_mode = if path == dir { mode } else { 0o755 };
        let fail = |err| AdminError::CreateDirectory {
            path: path.to_path_buf(),
            err,
        };
        DirBuilder::new()
            .mode(this_mode)
            .create(path)
            .map_err(fail)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(this_mode)).map_err(fail)?;
        created.push(path.to_path_buf());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// enroll

/// Who and what an administrator's enrollment is for.
#[derive(Debug, Clone, Copy)]
pub struct EnrollRequest<'a> {
    /// The user's login name, kept in the record for administrators' eyes.
    pub username: &'a str,
    /// The device name ("default", "phone").
    pub device: &'a str,
    /// The issuer the authenticator app shows (see [`enrollment::issuer`]).
    pub issuer: &'a str,
    /// The account label after the issuer, `user@host`.
    pub account: &'a str,
    /// Replace an existing record instead of refusing.
    pub replace: bool,
}

/// Checks that `state`'s user may be enrolled: not enrolled yet, or
/// `replace` given. Returns whether an existing record will be replaced.
///
/// # Errors
/// [`AdminError::AlreadyEnrolled`].
pub fn check_enrollable(state: &UserState<'_>, replace: bool) -> Result<bool, AdminError> {
    match (state.record().is_some(), replace) {
        (false, _) => Ok(false),
        (true, true) => Ok(true),
        (true, false) => Err(AdminError::AlreadyEnrolled { uid: state.uid() }),
    }
}

/// A new record, made but not yet stored: one fresh device, a fresh set of
/// recovery codes, no failures. The secret and the codes are wiped when it
/// is dropped.
pub struct Provision {
    record: Record,
    uri: Zeroizing<String>,
    secret_grouped: Zeroizing<String>,
    secret_base32: Zeroizing<String>,
    recovery_codes: Vec<RecoveryCode>,
    replace: bool,
}

impl fmt::Debug for Provision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provision")
            .field("record", &self.record)
            .field("replace", &self.replace)
            .finish_non_exhaustive()
    }
}

/// Makes the record an enrollment will store, with the configured TOTP
/// parameters and recovery codes. Nothing is written.
///
/// # Errors
/// [`AdminError::Enrollment`] for a bad device name or no randomness.
pub fn provision(
    config: &Config,
    request: &EnrollRequest<'_>,
    now: u64,
) -> Result<Provision, AdminError> {
    let new = enrollment::new_device(config, request.device, request.issuer, request.account, now)?;
    let (codes, hashes) = enrollment::new_recovery_codes(config)?;
    let secret_base32 = totp::base32_encode(&new.device.secret);
    let mut record = Record::new(request.username, now);
    record.devices.push(new.device);
    record.recovery = Some(hashes);
    Ok(Provision {
        record,
        uri: new.uri,
        secret_grouped: new.secret_grouped,
        secret_base32,
        recovery_codes: codes,
        replace: request.replace,
    })
}

impl Provision {
    /// The record that [`Provision::store`] writes.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The new device's name.
    pub fn device_name(&self) -> &str {
        &self.record.devices[0].name
    }

    /// The new device's TOTP parameters.
    pub fn params(&self) -> TotpParams {
        self.record.devices[0].params
    }

    /// The `otpauth://` URI the QR code carries.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The secret in base32, in groups of four for typing.
    pub fn secret_grouped(&self) -> &str {
        &self.secret_grouped
    }

    /// The secret in base32 without spaces or padding.
    pub fn secret_base32(&self) -> &str {
        &self.secret_base32
    }

    /// The recovery codes, to show once.
    pub fn recovery_codes(&self) -> &[RecoveryCode] {
        &self.recovery_codes
    }

    /// Checks `response`, what the user typed from the app, against the new
    /// device at `now` within the configured window. On success the code's
    /// time step becomes the device's last used step, so the same code
    /// cannot then be used to log in, and the step is returned.
    ///
    /// # Errors
    /// [`AdminError::InvalidCode`] if the response is not exactly the
    /// device's number of digits, [`AdminError::WrongCode`] if it is not the
    /// device's code.
    pub fn confirm(
        &mut self,
        response: &[u8],
        config: &Config,
        now: u64,
    ) -> Result<u64, AdminError> {
        let device = &mut self.record.devices[0];
        let digits = device.params.digits;
        let code = input::parse_totp(response, digits)
            .map_err(|reason| AdminError::InvalidCode { reason, digits })?;
        match totp::verify(
            &device.secret,
            device.params,
            config.totp.window,
            now,
            device.last_used_step,
            &code,
        ) {
            Verdict::Accepted { step } => {
                device.last_used_step = Some(step);
                Ok(step)
            }
            // A device that was never used has no step to replay; a second
            // confirmation with the same code is as wrong as any other.
            Verdict::Replayed { .. } | Verdict::Rejected => Err(AdminError::WrongCode),
        }
    }

    /// Writes the record as `state`'s user's new state (rename protocol,
    /// sealed under the active key). Checks again that the user may be
    /// enrolled, since the lock may have been let go while the user was
    /// typing. Returns whether an existing record was replaced.
    ///
    /// # Errors
    /// [`AdminError::AlreadyEnrolled`] or [`AdminError::Store`].
    pub fn store(&self, state: &mut UserState<'_>, keys: &MasterKey) -> Result<bool, AdminError> {
        let replaced = check_enrollable(state, self.replace)?;
        state.rewrite(&self.record, keys)?;
        Ok(replaced)
    }
}

// ---------------------------------------------------------------------------
// status

/// One device as `status` reports it; no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Its name.
    pub name: String,
    /// Algorithm, digits and period.
    pub params: TotpParams,
    /// When it was enrolled (Unix seconds).
    pub created: u64,
    /// The newest time step accepted from it.
    pub last_used_step: Option<u64>,
}

/// What an administrator sees about one user. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStatus {
    /// The user.
    pub uid: u32,
    /// Whether the user has a record.
    pub enrolled: bool,
    /// The user name stored at enrollment.
    pub enrolled_as: Option<String>,
    /// When the record was created (Unix seconds).
    pub created: Option<u64>,
    /// The user's devices.
    pub devices: Vec<DeviceStatus>,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Consecutive failures since the last success or unlock.
    pub failures: u32,
    /// When the last failure happened.
    pub last_failure: Option<u64>,
    /// Whether the hard cap is reached: only `unlock` helps.
    pub locked: bool,
    /// Until when attempts are refused without evaluation, if back-off is in force.
    pub backoff_until: Option<u64>,
    /// The key generations the record's valid slots are sealed under.
    pub key_generations: Vec<Generation>,
    /// The last successful second factor.
    pub last_success: Option<LastSuccess>,
    /// Why one slot of the record was unusable, if one was.
    pub slot_discarded: Option<SlotFault>,
}

/// Reports `state`'s user as of `now`.
pub fn status(state: &UserState<'_>, config: &Config, now: u64) -> UserStatus {
    let Some(record) = state.record() else {
        return UserStatus {
            uid: state.uid(),
            enrolled: false,
            enrolled_as: None,
            created: None,
            devices: Vec::new(),
            recovery_codes_left: 0,
            failures: 0,
            last_failure: None,
            locked: false,
            backoff_until: None,
            key_generations: Vec::new(),
            last_success: None,
            slot_discarded: None,
        };
    };
    let backoff_until = match throttle::gate(record, &config.throttle, now) {
        Gate::BackOff { until } => Some(until),
        Gate::Open | Gate::Locked => None,
    };
    let mut key_generations = state.generations().to_vec();
    key_generations.sort_unstable();
    key_generations.dedup();
    UserStatus {
        uid: state.uid(),
        enrolled: true,
        enrolled_as: Some(record.username.clone()),
        created: Some(record.created),
        devices: record
            .devices
            .iter()
            .map(|d| DeviceStatus {
                name: d.name.clone(),
                params: d.params,
                created: d.created,
                last_used_step: d.last_used_step,
            })
            .collect(),
        recovery_codes_left: record.recovery_codes_left(),
        failures: record.failures,
        last_failure: record.last_failure,
        locked: throttle::is_locked(record, &config.throttle),
        backoff_until,
        key_generations,
        last_success: record.last_success.clone(),
        slot_discarded: state.discarded_slot().cloned(),
    }
}

// ---------------------------------------------------------------------------
// unlock

/// What [`unlock`] cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlocked {
    /// The failure count before the unlock.
    pub cleared: u32,
    /// Whether the user had reached the hard cap.
    pub was_locked: bool,
}

/// Clears `state`'s user's failure counter and back-off, durably. A user
/// with nothing to clear is left untouched (no write).
///
/// # Errors
/// [`AdminError::NotEnrolled`] or the commit's [`AdminError::Store`].
pub fn unlock(
    state: &mut UserState<'_>,
    config: &Config,
    keys: &MasterKey,
) -> Result<Unlocked, AdminError> {
    let Some(record) = state.record() else {
        return Err(AdminError::NotEnrolled { uid: state.uid() });
    };
    let outcome = Unlocked {
        cleared: record.failures,
        was_locked: throttle::is_locked(record, &config.throttle),
    };
    if record.failures == 0 && record.last_failure.is_none() {
        return Ok(outcome);
    }
    let mut record = record.clone();
    throttle::clear(&mut record);
    state.commit(&record, keys)?;
    Ok(outcome)
}

// ---------------------------------------------------------------------------
// reset

/// What [`reset`] removed.
#[derive(Debug)]
pub enum Reset {
    /// The user's record was removed.
    Removed,
    /// The record could not be opened (the error says why) and was removed
    /// all the same: resetting is how an administrator gets rid of it.
    RemovedUnreadable(StoreError),
    /// The user had no record; nothing changed.
    NotEnrolled,
}

/// Deletes `uid`'s record under the user's lock, whether or not it opens
/// with `keys`: a damaged record, or one sealed under a key this host no
/// longer holds, is removed too, so that the user can be enrolled afresh.
///
/// # Errors
/// [`AdminError::Store`] if the state directory is unusable, the lock
/// cannot be had, or the file cannot be removed.
pub fn reset(store: &Store, uid: u32, keys: &MasterKey) -> Result<Reset, AdminError> {
    match store.open_user(uid, keys) {
        Ok(mut state) => {
            let enrolled = state.record().is_some();
            state.remove()?;
            Ok(if enrolled {
                Reset::Removed
            } else {
                Reset::NotEnrolled
            })
        }
        Err(e) if record_unusable(store, uid, &e) => {
            store.remove_user(uid)?;
            Ok(Reset::RemovedUnreadable(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// True for errors about the record file itself (rather than the state
/// directory, the lock or the disk): those a reset is meant to clear.
fn record_unusable(store: &Store, uid: u32, e: &StoreError) -> bool {
    match e {
        StoreError::Corrupt { .. }
        | StoreError::WrongKey { .. }
        | StoreError::UnknownVersion { .. } => true,
        StoreError::Unreadable(f) => f.path == store.dir().join(uid.to_string()),
        _ => false,
    }
}

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
use crate::import::ImportedRecovery;
use crate::input::{self, InvalidInput};
use crate::keys::{Generation, KeyError, MasterKey};
use crate::record::{LastSuccess, Record};
use crate::recovery::RecoveryCode;
use crate::store::{Owner, SlotFault, Store, StoreError, UserState, NO_UID};
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
    /// The user has no device of that name.
    UnknownDevice {
        /// The user.
        uid: u32,
        /// The name asked for.
        device: String,
        /// The names the user's devices have.
        known: Vec<String>,
    },
    /// Removing the device would leave the user without any.
    LastDevice {
        /// The user.
        uid: u32,
        /// The device.
        device: String,
    },
    /// An imported device's TOTP parameters are unusable.
    BadParams(totp::ParamsError),
    /// A key generation cannot be retired while records are sealed under it.
    GenerationInUse {
        /// The generation.
        generation: Generation,
        /// The users whose records use it.
        uids: Vec<u32>,
    },
    /// A key generation cannot be retired while some records cannot be
    /// opened: nobody can tell which generation they need.
    UnreadableRecords {
        /// The generation that was to be retired.
        generation: Generation,
        /// The users whose records do not open.
        uids: Vec<u32>,
    },
}

fn uid_list(uids: &[u32]) -> String {
    const SHOWN: usize = 10;
    let mut s: Vec<String> = uids.iter().take(SHOWN).map(ToString::to_string).collect();
    if uids.len() > SHOWN {
        s.push(format!("and {} more", uids.len() - SHOWN));
    }
    s.join(", ")
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
            AdminError::UnknownDevice { uid, device, known } => write!(
                f,
                "uid {uid} has no device named `{device}`; its devices are: {}. See `mfa-enroll devices`",
                known.join(", ")
            ),
            AdminError::LastDevice { uid, device } => write!(
                f,
                "`{device}` is the only device of uid {uid}; removing it would leave the user without a second factor. Enroll another device first, or add --force to remove the whole record (like `mfa-enroll reset`)"
            ),
            AdminError::BadParams(e) => write!(f, "the imported device cannot be used: {e}"),
            AdminError::GenerationInUse { generation, uids } => write!(
                f,
                "key generation {generation} still seals the records of uid {}; run `mfa-enroll key migrate` first, then retire it",
                uid_list(uids)
            ),
            AdminError::UnreadableRecords { generation, uids } => write!(
                f,
                "the records of uid {} do not open, so nobody can tell whether they need key generation {generation}; repair them (restore from backup) or remove them with `mfa-enroll reset --uid N`, then retire it",
                uid_list(uids)
            ),
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
            | AdminError::WrongCode
            | AdminError::UnknownDevice { .. }
            | AdminError::LastDevice { .. }
            | AdminError::BadParams(_)
            | AdminError::GenerationInUse { .. }
            | AdminError::UnreadableRecords { .. } => None,
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

    /// The same device and recovery codes as a self-service request, to be
    /// sealed into the spool instead of written to the store. `code` is the
    /// code the new device showed when the user verified it at `now`;
    /// `proof` a factor the user already has, if they have one.
    ///
    /// # Errors
    /// [`RandomUnavailable`](crate::random::RandomUnavailable) for the request id.
    pub fn to_pending(
        &self,
        now: u64,
        code: crate::pending::Secret,
        proof: Option<crate::pending::Proof>,
    ) -> Result<crate::pending::Pending, crate::random::RandomUnavailable> {
        let mut device = self.record.devices[0].clone();
        // The module checks the code and sets the step it was used at.
        device.last_used_step = None;
        // `provision` always makes a recovery set.
        let recovery = self
            .record
            .recovery
            .clone()
            .unwrap_or_else(|| unreachable!());
        Ok(crate::pending::Pending {
            id: crate::pending::Pending::new_id()?,
            created: now,
            request: crate::pending::Request::Device {
                device,
                recovery,
                code: Some(code),
            },
            proof,
        })
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
pub fn reset(
    store: &Store,
    owner: impl Into<Owner>,
    keys: &MasterKey,
) -> Result<Reset, AdminError> {
    let owner = owner.into();
    match store.open_user(owner.clone(), keys) {
        Ok(mut state) => {
            let enrolled = state.record().is_some();
            state.remove()?;
            Ok(if enrolled {
                Reset::Removed
            } else {
                Reset::NotEnrolled
            })
        }
        Err(e) if record_unusable(store, &owner, &e) => {
            store.remove_user(owner)?;
            Ok(Reset::RemovedUnreadable(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// True for errors about the record file itself (rather than the state
/// directory, the lock or the disk): those a reset is meant to clear.
fn record_unusable(store: &Store, owner: &Owner, e: &StoreError) -> bool {
    match e {
        StoreError::Corrupt { .. }
        | StoreError::WrongKey { .. }
        | StoreError::UnknownVersion { .. }
        | StoreError::Row { .. } => true,
        StoreError::Unreadable(f) => owner
            .uid()
            .is_some_and(|uid| f.path == store.dir().join(uid.to_string())),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// list

/// One record found in the state directory, as `list` shows it.
#[derive(Debug)]
pub struct ListedUser {
    /// The uid the record belongs to ([`NO_UID`] for a row of the shared
    /// store whose name has no account on this host).
    pub uid: u32,
    /// The uid and, where known, the login name.
    pub owner: Owner,
    /// The user's state, or why the record does not open. A record that
    /// fails is listed all the same, never skipped.
    pub status: Result<UserStatus, StoreError>,
    /// Whether a self-service enrollment of this uid waits in the spool.
    pub pending: bool,
}

/// Whether the spool holds a pending self-service enrollment for `uid` (a
/// file `<uid>.*`). Only its presence is reported; it is not opened here.
pub fn pending_enrollment(paths: &Paths, uid: u32) -> bool {
    crate::spool::waiting_uids(&paths.spool_dir).contains(&uid)
}

/// Every user with a record file, in uid order, each opened (under its
/// lock, one at a time) and reported as [`status`] does. A record that
/// vanished between listing the directory and opening it is left out.
///
/// # Errors
/// [`AdminError::Store`] if the state directory cannot be listed.
pub fn list(
    store: &Store,
    keys: &MasterKey,
    config: &Config,
    now: u64,
) -> Result<Vec<ListedUser>, AdminError> {
    let mut users = Vec::new();
    for owner in store.owners()? {
        let status = store
            .open_user(owner.clone(), keys)
            .map(|state| status(&state, config, now));
        if matches!(&status, Ok(s) if !s.enrolled) {
            continue;
        }
        let uid = owner.uid().unwrap_or(NO_UID);
        users.push(ListedUser {
            uid,
            owner,
            status,
            pending: uid != NO_UID && pending_enrollment(&config.paths, uid),
        });
    }
    Ok(users)
}

// ---------------------------------------------------------------------------
// remove-device

/// What [`remove_device`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRemoval {
    /// The device is gone; the user keeps this many others.
    Removed {
        /// Devices left.
        remaining: usize,
    },
    /// It was the last device and `force` was given: the whole record was
    /// removed, as `reset` does, so the user is no longer enrolled.
    RecordRemoved,
}

/// Removes the device named `device` from `state`'s user. Removing the last
/// device is refused unless `force`, which removes the whole record (the
/// recovery codes alone are not a device to log in with day to day).
///
/// # Errors
/// [`AdminError::NotEnrolled`], [`AdminError::UnknownDevice`],
/// [`AdminError::LastDevice`] or the write's [`AdminError::Store`].
pub fn remove_device(
    state: &mut UserState<'_>,
    keys: &MasterKey,
    device: &str,
    force: bool,
) -> Result<DeviceRemoval, AdminError> {
    let uid = state.uid();
    let record = state.record().ok_or(AdminError::NotEnrolled { uid })?;
    let Some(index) = record.devices.iter().position(|d| d.name == device) else {
        return Err(AdminError::UnknownDevice {
            uid,
            device: device.to_owned(),
            known: record.devices.iter().map(|d| d.name.clone()).collect(),
        });
    };
    if record.devices.len() == 1 {
        if !force {
            return Err(AdminError::LastDevice {
                uid,
                device: device.to_owned(),
            });
        }
        state.remove()?;
        return Ok(DeviceRemoval::RecordRemoved);
    }
    let mut record = record.clone();
    record.devices.remove(index);
    // The record shrinks; a fresh file leaves no copy of the removed secret
    // in the other slot.
    state.rewrite(&record, keys)?;
    Ok(DeviceRemoval::Removed {
        remaining: record.devices.len(),
    })
}

// ---------------------------------------------------------------------------
// recovery-codes --regenerate

/// Replaces `state`'s user's recovery codes with a fresh set, as configured,
/// in one atomic rewrite: afterwards only the new codes work. Returns the
/// codes, to show once.
///
/// # Errors
/// [`AdminError::NotEnrolled`], [`AdminError::Enrollment`] or
/// [`AdminError::Store`]; the old codes still work after any error.
pub fn regenerate_recovery_codes(
    state: &mut UserState<'_>,
    config: &Config,
    keys: &MasterKey,
) -> Result<Vec<RecoveryCode>, AdminError> {
    let uid = state.uid();
    let mut record = state
        .record()
        .ok_or(AdminError::NotEnrolled { uid })?
        .clone();
    let (codes, hashes) = enrollment::new_recovery_codes(config)?;
    record.recovery = Some(hashes);
    // A new file: the old hashes do not linger in the other slot.
    state.rewrite(&record, keys)?;
    Ok(codes)
}

// ---------------------------------------------------------------------------
// key rotate, list, migrate, retire

/// Adds a key generation and makes it active: the key file is replaced
/// atomically, then the enrollment public key is rewritten for the new
/// generation. Records sealed under older generations keep opening.
/// Returns the new generation.
///
/// # Errors
/// [`AdminError::Key`]: the key file does not load, holds too many
/// generations, or a file cannot be written. If only the public key could
/// not be written, running `key rotate` again is not needed: the error says
/// which file failed, and the old public key still works for new
/// self-enrollments.
pub fn rotate_key(paths: &Paths, trust: FileTrust, now: u64) -> Result<Generation, AdminError> {
    let mut keys = MasterKey::load(&paths.key_file, trust)?;
    let generation = keys.rotate(now)?;
    keys.save(&paths.key_file)?;
    keys.enrollment_public_key()
        .save(&paths.enroll_public_key)?;
    Ok(generation)
}

/// A record that could not be opened while scanning the store.
#[derive(Debug)]
pub struct UnreadableRecord {
    /// The uid the record belongs to ([`NO_UID`] for a row whose name has
    /// no account on this host).
    pub uid: u32,
    /// The uid and, where known, the login name.
    pub owner: Owner,
    /// Why it does not open.
    pub error: StoreError,
}

/// One key generation and the records sealed under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationUsage {
    /// The generation.
    pub id: Generation,
    /// When it was created (Unix seconds).
    pub created: u64,
    /// Whether new records are sealed under it.
    pub active: bool,
    /// The users whose record has at least one valid slot sealed under it.
    pub uids: Vec<u32>,
}

/// Which records use which key generation.
#[derive(Debug)]
pub struct KeyUsage {
    /// Every generation of the key file, oldest first.
    pub generations: Vec<GenerationUsage>,
    /// Records that did not open, so whose generation is unknown.
    pub unreadable: Vec<UnreadableRecord>,
}

/// Opens every record and notes the generations its valid slots are sealed
/// under ([`UserState::generations`]: both slots, since a login seals only
/// the slot it writes under the active key).
///
/// # Errors
/// [`AdminError::Store`] if the state directory cannot be listed.
pub fn key_usage(store: &Store, keys: &MasterKey) -> Result<KeyUsage, AdminError> {
    let mut generations: Vec<GenerationUsage> = keys
        .list()
        .into_iter()
        .map(|g| GenerationUsage {
            id: g.id,
            created: g.created,
            active: g.active,
            uids: Vec::new(),
        })
        .collect();
    let mut unreadable = Vec::new();
    for owner in store.owners()? {
        let uid = owner.uid().unwrap_or(NO_UID);
        match store.open_user(owner.clone(), keys) {
            Ok(state) => {
                for g in &mut generations {
                    if state.generations().contains(&g.id) {
                        g.uids.push(uid);
                    }
                }
            }
            Err(error) => unreadable.push(UnreadableRecord { uid, owner, error }),
        }
    }
    Ok(KeyUsage {
        generations,
        unreadable,
    })
}

/// What [`migrate_user`] did to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrated {
    /// The record was re-sealed under the active generation; it had used
    /// these generations.
    Resealed {
        /// The generations the record used before.
        from: Vec<Generation>,
    },
    /// Every valid slot already used the active generation; nothing written.
    AlreadyCurrent,
    /// The record file was gone when it was opened.
    Gone,
}

/// Re-seals `uid`'s record under the active generation by the rename
/// protocol, unless it already uses only that one. Each record is rewritten
/// on its own and atomically, so a migration interrupted at any point is
/// finished by running it again.
///
/// # Errors
/// The [`StoreError`] if the record does not open or cannot be written.
pub fn migrate_user(
    store: &Store,
    owner: impl Into<Owner>,
    keys: &MasterKey,
) -> Result<Migrated, StoreError> {
    let mut state = store.open_user(owner, keys)?;
    let Some(record) = state.record().cloned() else {
        return Ok(Migrated::Gone);
    };
    let from = state.generations().to_vec();
    if from.iter().all(|g| *g == keys.active()) {
        return Ok(Migrated::AlreadyCurrent);
    }
    state.rewrite(&record, keys)?;
    let mut from = from;
    from.sort_unstable();
    from.dedup();
    Ok(Migrated::Resealed { from })
}

/// The outcome of [`migrate`].
#[derive(Debug, Default)]
pub struct MigrationReport {
    /// Records re-sealed, with the generations they used before.
    pub resealed: Vec<(u32, Vec<Generation>)>,
    /// Records that already used only the active generation.
    pub current: Vec<u32>,
    /// Records that did not open or could not be written; the others were
    /// migrated all the same.
    pub failed: Vec<UnreadableRecord>,
}

/// Runs [`migrate_user`] for every record in the store.
///
/// # Errors
/// [`AdminError::Store`] if the state directory cannot be listed; a record
/// that fails is reported in [`MigrationReport::failed`] instead.
pub fn migrate(store: &Store, keys: &MasterKey) -> Result<MigrationReport, AdminError> {
    let mut report = MigrationReport::default();
    for owner in store.owners()? {
        let uid = owner.uid().unwrap_or(NO_UID);
        match migrate_user(store, owner.clone(), keys) {
            Ok(Migrated::Resealed { from }) => report.resealed.push((uid, from)),
            Ok(Migrated::AlreadyCurrent) => report.current.push(uid),
            Ok(Migrated::Gone) => {}
            Err(error) => report.failed.push(UnreadableRecord { uid, owner, error }),
        }
    }
    Ok(report)
}

/// Removes key generation `generation` from the key file, once nothing
/// needs it: it must not be the active one, and every record must open and
/// have no valid slot sealed under it. Then the key file is replaced
/// atomically.
///
/// # Errors
/// [`AdminError::Key`] with [`KeyError::RetireActive`] or
/// [`KeyError::UnknownGeneration`]; [`AdminError::UnreadableRecords`];
/// [`AdminError::GenerationInUse`]; or a load or write failure. The key
/// file is unchanged after any error.
pub fn retire_key(
    paths: &Paths,
    trust: FileTrust,
    store: &Store,
    generation: Generation,
) -> Result<(), AdminError> {
    let mut keys = MasterKey::load(&paths.key_file, trust)?;
    if generation == keys.active() {
        return Err(KeyError::RetireActive(generation).into());
    }
    if !keys.list().iter().any(|g| g.id == generation) {
        return Err(KeyError::UnknownGeneration(generation).into());
    }
    let usage = key_usage(store, &keys)?;
    if !usage.unreadable.is_empty() {
        return Err(AdminError::UnreadableRecords {
            generation,
            uids: usage.unreadable.iter().map(|u| u.uid).collect(),
        });
    }
    if let Some(used) = usage
        .generations
        .iter()
        .find(|g| g.id == generation && !g.uids.is_empty())
    {
        return Err(AdminError::GenerationInUse {
            generation,
            uids: used.uids.clone(),
        });
    }
    keys.retire(generation)?;
    keys.save(&paths.key_file)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// import

/// What [`import_device`] stored.
pub struct Imported {
    /// The new recovery codes, to show once; empty unless the import asked
    /// for a new set ([`ImportedRecovery::NewSet`]).
    pub recovery_codes: Vec<RecoveryCode>,
    /// Recovery codes the record holds, carried over or new.
    pub recovery_codes_left: usize,
    /// Whether an existing record was replaced.
    pub replaced: bool,
}

impl fmt::Debug for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imported")
            .field("recovery_codes", &self.recovery_codes.len())
            .field("recovery_codes_left", &self.recovery_codes_left)
            .field("replaced", &self.replaced)
            .finish()
    }
}

/// Enrolls `state`'s user with a device taken over from another module
/// (see [`crate::import`]) and the recovery codes the import decided on:
/// the other module's scratch codes carried over, a new set generated from
/// `config`, or none; all in one new record. Refused if the user is
/// enrolled, unless `replace`.
///
/// # Errors
/// [`AdminError::AlreadyEnrolled`], [`AdminError::Enrollment`] for a bad
/// device name, or [`AdminError::Store`].
pub fn import_device(
    state: &mut UserState<'_>,
    username: &str,
    device: crate::record::Device,
    recovery: ImportedRecovery,
    config: &Config,
    keys: &MasterKey,
    replace: bool,
) -> Result<Imported, AdminError> {
    enrollment::check_device_name(&device.name)?;
    device.params.validate().map_err(AdminError::BadParams)?;
    let replaced = check_enrollable(state, replace)?;
    let (codes, hashes) = match recovery {
        ImportedRecovery::NewSet => {
            let (codes, hashes) = enrollment::new_recovery_codes(config)?;
            (codes, Some(hashes))
        }
        ImportedRecovery::Carried(hashes) => (Vec::new(), Some(hashes)),
        ImportedRecovery::Nothing => (Vec::new(), None),
    };
    let mut record = Record::new(username, device.created);
    record.devices.push(device);
    record.recovery = hashes;
    state.rewrite(&record, keys)?;
    Ok(Imported {
        recovery_codes: codes,
        recovery_codes_left: record.recovery_codes_left(),
        replaced,
    })
}

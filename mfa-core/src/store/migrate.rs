//! Moving local records into the shared store (`mfa-enroll store migrate`).
//!
//! The files store keys a record by uid, the PostgreSQL store by login
//! name, so each local record goes to the row of the name its uid has on
//! this host. A row already there is never overwritten: the copy creates
//! the row only if the name has none, and a row that appears meanwhile
//! (another host migrating the same user) makes the copy a no-op. The local
//! records are left in place; the administrator removes them after
//! checking, and the PostgreSQL store never reads them.
//!
//! A dry run ([`migrate`] with `apply` false) reads both stores and writes
//! nothing, so it says exactly what the real run will do, barring changes
//! in between.

use std::fmt;

use super::{Owner, Store, StoreError, NO_UID};
use crate::keys::MasterKey;

/// What became, or in a dry run would become, of one local record.
#[derive(Debug)]
pub enum Outcome {
    /// Dry run: the shared store has no row for the name; the record would
    /// be copied.
    WouldCopy,
    /// The record was copied into the shared store.
    Copied,
    /// The shared store already has a row for the name (found, or created
    /// by someone else during the copy); it is left alone.
    AlreadyShared,
    /// The uid has no login name on this host, so there is no row to copy
    /// the record to.
    NoName,
    /// The local record does not open; it was not copied.
    Unreadable(StoreError),
    /// The shared store failed for this record; it was not copied (after a
    /// timeout or a lost connection during the write, run again to find out).
    Failed(StoreError),
    /// Not tried: the shared store stopped answering earlier in the run.
    NotTried,
}

impl Outcome {
    /// True when the record is where it should be afterwards: copied, or
    /// already in the shared store (or, in a dry run, about to be copied).
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Outcome::WouldCopy | Outcome::Copied | Outcome::AlreadyShared
        )
    }

    /// A short stable name for machines (`--json`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::WouldCopy => "would-copy",
            Outcome::Copied => "copied",
            Outcome::AlreadyShared => "already-shared",
            Outcome::NoName => "no-name",
            Outcome::Unreadable(_) => "unreadable",
            Outcome::Failed(_) => "failed",
            Outcome::NotTried => "not-tried",
        }
    }

    /// The error behind an unreadable or failed record.
    pub fn error(&self) -> Option<&StoreError> {
        match self {
            Outcome::Unreadable(e) | Outcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::WouldCopy => f.write_str("would copy"),
            Outcome::Copied => f.write_str("copied"),
            Outcome::AlreadyShared => {
                f.write_str("already in the shared store: left alone, not overwritten")
            }
            Outcome::NoName => f.write_str(
                "skipped: the uid has no login name on this host, and the shared store keys records by name",
            ),
            Outcome::Unreadable(e) => write!(f, "local record unreadable: {e}"),
            Outcome::Failed(e) => write!(f, "failed: {e}"),
            Outcome::NotTried => f.write_str("not tried: the shared store stopped answering"),
        }
    }
}

/// One local record and its outcome.
#[derive(Debug)]
pub struct Entry {
    /// The local uid and, when this host knows it, the login name (the
    /// row the record goes to).
    pub owner: Owner,
    /// What became of it.
    pub outcome: Outcome,
}

impl Entry {
    /// The local uid (every local record has one).
    pub fn uid(&self) -> u32 {
        self.owner.uid().unwrap_or(NO_UID)
    }
}

/// The outcome of [`migrate`]: one entry per local record, in uid order.
#[derive(Debug)]
pub struct Report {
    /// Whether records were written (`--apply`) or this is a dry run.
    pub applied: bool,
    /// Every local record.
    pub entries: Vec<Entry>,
}

impl Report {
    /// How many entries `pick` selects.
    pub fn count(&self, pick: impl Fn(&Outcome) -> bool) -> usize {
        self.entries.iter().filter(|e| pick(&e.outcome)).count()
    }

    /// True when every local record is (or in a dry run would be) in the
    /// shared store: nothing unreadable, failed, skipped or left untried.
    pub fn is_complete(&self) -> bool {
        self.entries.iter().all(|e| e.outcome.is_settled())
    }
}

/// Why [`migrate`] could not run at all.
#[derive(Debug)]
pub enum MigrateError {
    /// The destination is not a shared store (`[store] backend` is not
    /// `postgres`).
    NotShared,
    /// The local records could not be listed.
    Local(StoreError),
    /// The shared store failed before any record was settled; nothing was
    /// written.
    Shared(StoreError),
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::NotShared => f.write_str(
                "the configured record store is the files store; set `backend = \"postgres\"` and `connection_file` in [store] of the configuration, then run this again",
            ),
            MigrateError::Local(e) => write!(f, "cannot list the local records: {e}"),
            MigrateError::Shared(e) => write!(f, "{e}; nothing was written"),
        }
    }
}

impl std::error::Error for MigrateError {}

/// Copies every record of `local` (the files store of the state directory)
/// into `shared` (the PostgreSQL store) under the login name its uid has on
/// this host, unless the name already has a row there; with `apply` false,
/// only says what it would do. Local records are never changed.
///
/// Once the shared store is unreachable (a timeout, a lost connection, a
/// refused statement) the run stops: the records after it are
/// [`Outcome::NotTried`], since each would wait out the same deadline.
///
/// # Errors
/// [`MigrateError::NotShared`] if `shared` is not a shared store;
/// [`MigrateError::Local`] if the state directory cannot be listed;
/// [`MigrateError::Shared`] if reading the shared store fails before any
/// record was settled (then nothing was written). A write that fails is
/// reported for its record, since it may have reached the server.
pub fn migrate(
    local: &Store,
    shared: &Store,
    keys: &MasterKey,
    apply: bool,
) -> Result<Report, MigrateError> {
    if !shared.is_shared() || local.is_shared() {
        return Err(MigrateError::NotShared);
    }
    // A host that never had a local record may have no state directory.
    if matches!(
        std::fs::symlink_metadata(local.dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    ) {
        return Ok(Report {
            applied: apply,
            entries: Vec::new(),
        });
    }
    let owners = local.owners().map_err(MigrateError::Local)?;
    let mut entries = Vec::with_capacity(owners.len());
    // The run fails as a whole only if the server failed before anything
    // was written or settled; after that, each record reports for itself.
    let mut clean = true;
    let mut stopped = false;
    for owner in owners {
        if stopped {
            entries.push(Entry {
                owner,
                outcome: Outcome::NotTried,
            });
            continue;
        }
        let Some(step) = migrate_one(local, shared, &owner, keys, apply) else {
            // The local record went between listing and opening.
            continue;
        };
        let outcome = match step {
            Step::ReadFailed(e @ StoreError::Unavailable(_)) if clean => {
                return Err(MigrateError::Shared(e));
            }
            Step::ReadFailed(e) => Outcome::Failed(e),
            Step::Done(outcome) => outcome,
        };
        match &outcome {
            Outcome::Failed(StoreError::Unavailable(_)) => stopped = true,
            Outcome::NoName | Outcome::Unreadable(_) => {}
            _ => clean = false,
        }
        entries.push(Entry { owner, outcome });
    }
    Ok(Report {
        applied: apply,
        entries,
    })
}

/// How far one record got.
enum Step {
    /// Reading the shared store failed: nothing was written for it.
    ReadFailed(StoreError),
    /// Anything else, including a failed write (which may or may not have
    /// reached the server).
    Done(Outcome),
}

/// One local record: `None` if it is gone.
fn migrate_one(
    local: &Store,
    shared: &Store,
    owner: &Owner,
    keys: &MasterKey,
    apply: bool,
) -> Option<Step> {
    let (Some(uid), Some(name)) = (owner.uid(), owner.name()) else {
        return Some(Step::Done(Outcome::NoName));
    };
    let record = match local.open_user(uid, keys) {
        Ok(state) => state.record().cloned()?,
        Err(e) => return Some(Step::Done(Outcome::Unreadable(e))),
    };
    let mut state = match shared.open_user(Owner::new(uid, name), keys) {
        Ok(state) => state,
        Err(e) => return Some(Step::ReadFailed(e)),
    };
    if state.record().is_some() {
        return Some(Step::Done(Outcome::AlreadyShared));
    }
    if !apply {
        return Some(Step::Done(Outcome::WouldCopy));
    }
    Some(Step::Done(match state.commit(&record, keys) {
        Ok(_) => Outcome::Copied,
        // The row appeared after it was read: another host got there first.
        Err(StoreError::Conflict { .. }) => Outcome::AlreadyShared,
        Err(e) => Outcome::Failed(e),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use super::super::postgres::Row;
    use super::super::rows::{RowClient, RowStore};
    use super::super::Backend;
    use super::*;
    use crate::fsutil::FileTrust;
    use crate::record::Record;

    type BackendError = Box<dyn std::error::Error + Send + Sync>;

    /// An in-memory table with the statements' semantics, and switches to
    /// make it fail.
    #[derive(Default)]
    struct Table {
        rows: BTreeMap<String, Row>,
        /// Every statement fails, as with the server down.
        down: bool,
        /// A row appears for this name just before its insert runs.
        raced: Option<(String, Row)>,
        /// Inserts run.
        inserts: usize,
        /// Reads that still succeed before the server goes down.
        reads_left: Option<usize>,
        /// Inserts are refused, as for a role without INSERT.
        no_insert: bool,
    }

    #[derive(Clone, Default)]
    struct FakeClient(Arc<Mutex<Table>>);

    fn down() -> BackendError {
        "PostgreSQL store: cannot connect to db.example:5432: refused".into()
    }

    impl RowClient for FakeClient {
        fn read(&self, name: &str) -> Result<Option<Row>, BackendError> {
            let mut t = self.0.lock().unwrap();
            match &mut t.reads_left {
                Some(0) => t.down = true,
                Some(n) => *n -= 1,
                None => {}
            }
            if t.down {
                return Err(down());
            }
            Ok(t.rows.get(name).cloned())
        }

        fn replace(
            &self,
            name: &str,
            expected: i64,
            new: &Row,
            _by: &str,
        ) -> Result<bool, BackendError> {
            let mut t = self.0.lock().unwrap();
            if t.down {
                return Err(down());
            }
            match t.rows.get_mut(name) {
                Some(row) if row.version == expected => {
                    *row = new.clone();
                    Ok(true)
                }
                _ => Ok(false),
            }
        }

        fn create(&self, name: &str, new: &Row, _by: &str) -> Result<bool, BackendError> {
            let mut t = self.0.lock().unwrap();
            if t.down {
                return Err(down());
            }
            if t.no_insert {
                return Err("PostgreSQL store: statement failed: permission denied".into());
            }
            if let Some((raced, row)) = t.raced.take() {
                t.rows.insert(raced, row);
            }
            t.inserts += 1;
            if t.rows.contains_key(name) {
                return Ok(false);
            }
            t.rows.insert(name.to_owned(), new.clone());
            Ok(true)
        }

        fn delete(&self, name: &str, _expected: Option<i64>) -> Result<bool, BackendError> {
            Ok(self.0.lock().unwrap().rows.remove(name).is_some())
        }

        fn names(&self) -> Result<Vec<String>, BackendError> {
            Ok(self.0.lock().unwrap().rows.keys().cloned().collect())
        }

        fn describe(&self) -> String {
            "db.example:5432".to_owned()
        }
    }

    /// Accounts every Debian system has, and a uid nobody has.
    const ROOT_UID: u32 = 0;
    const NOBODY_UID: u32 = 65534;
    const NAMELESS_UID: u32 = 3_999_999;

    struct World {
        _dir: tempfile::TempDir,
        state_dir: PathBuf,
        keys: MasterKey,
        local: Store,
        table: FakeClient,
        shared: Store,
    }

    impl World {
        fn new() -> World {
            let dir = tempfile::tempdir().unwrap();
            let state_dir = dir.path().join("users");
            std::fs::create_dir(&state_dir).unwrap();
            std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            let trust = FileTrust::insecure_owner_for_tests(nix::unistd::geteuid().as_raw());
            let table = FakeClient::default();
            let shared = Store {
                backend: Backend::Rows(RowStore::new(
                    Box::new(table.clone()),
                    state_dir.clone(),
                    "host1",
                )),
            };
            World {
                local: Store::new(&state_dir, trust),
                state_dir,
                _dir: dir,
                keys: MasterKey::generate(1).unwrap(),
                table,
                shared,
            }
        }

        fn enroll_locally(&self, uid: u32, username: &str) {
            let mut state = self.local.open_user(uid, &self.keys).unwrap();
            state
                .commit(&Record::new(username, 1_700_000_000), &self.keys)
                .unwrap();
        }

        /// A record of `name` put straight into the shared store.
        fn enroll_shared(&self, name: &str, username: &str) {
            let mut state = self
                .shared
                .open_user(Owner::named(name), &self.keys)
                .unwrap();
            state
                .commit(&Record::new(username, 1_600_000_000), &self.keys)
                .unwrap();
        }

        fn shared_username(&self, name: &str) -> Option<String> {
            self.shared
                .read(Owner::named(name), &self.keys)
                .unwrap()
                .record()
                .map(|r| r.username.clone())
        }

        fn run(&self, apply: bool) -> Report {
            migrate(&self.local, &self.shared, &self.keys, apply).unwrap()
        }
    }

    fn outcomes(report: &Report) -> Vec<(u32, &'static str)> {
        report
            .entries
            .iter()
            .map(|e| (e.uid(), e.outcome.as_str()))
            .collect()
    }

    #[test]
    fn a_dry_run_says_what_would_be_copied_and_writes_nothing() {
        let w = World::new();
        w.enroll_locally(NOBODY_UID, "nobody");
        let report = w.run(false);
        assert!(!report.applied);
        assert_eq!(outcomes(&report), [(NOBODY_UID, "would-copy")]);
        assert_eq!(report.entries[0].owner.name(), Some("nobody"));
        assert!(report.is_complete());
        assert!(w.table.0.lock().unwrap().rows.is_empty());
        assert_eq!(w.table.0.lock().unwrap().inserts, 0);
    }

    #[test]
    fn apply_copies_under_the_login_name_and_leaves_the_local_record() {
        let w = World::new();
        w.enroll_locally(NOBODY_UID, "nobody");
        let report = w.run(true);
        assert!(report.applied);
        assert_eq!(outcomes(&report), [(NOBODY_UID, "copied")]);
        assert_eq!(w.shared_username("nobody").as_deref(), Some("nobody"));
        // The local record is still there and still opens.
        assert!(w.state_dir.join(NOBODY_UID.to_string()).is_file());
        let local = w.local.read(NOBODY_UID, &w.keys).unwrap();
        assert!(local.record().is_some());
    }

    #[test]
    fn a_second_apply_copies_nothing() {
        let w = World::new();
        w.enroll_locally(NOBODY_UID, "nobody");
        w.run(true);
        let again = w.run(true);
        assert_eq!(outcomes(&again), [(NOBODY_UID, "already-shared")]);
        assert_eq!(w.table.0.lock().unwrap().inserts, 1);
    }

    #[test]
    fn a_row_already_there_is_never_overwritten() {
        let w = World::new();
        w.enroll_locally(NOBODY_UID, "nobody-local");
        w.enroll_shared("nobody", "nobody-fleet");
        assert_eq!(outcomes(&w.run(false)), [(NOBODY_UID, "already-shared")]);
        assert_eq!(outcomes(&w.run(true)), [(NOBODY_UID, "already-shared")]);
        assert_eq!(w.shared_username("nobody").as_deref(), Some("nobody-fleet"));
    }

    #[test]
    fn a_row_created_during_the_copy_wins_and_is_reported_as_there() {
        let w = World::new();
        w.enroll_locally(NOBODY_UID, "nobody-local");
        // Another host's row for the same name appears between the read
        // and the insert.
        w.enroll_shared("nobody", "nobody-other-host");
        let row = w.table.0.lock().unwrap().rows.remove("nobody").unwrap();
        w.table.0.lock().unwrap().raced = Some(("nobody".to_owned(), row));
        assert_eq!(outcomes(&w.run(true)), [(NOBODY_UID, "already-shared")]);
        assert_eq!(
            w.shared_username("nobody").as_deref(),
            Some("nobody-other-host")
        );
    }

    #[test]
    fn a_uid_without_a_name_here_is_skipped_with_that_reason() {
        let w = World::new();
        w.enroll_locally(NAMELESS_UID, "ghost");
        w.enroll_locally(NOBODY_UID, "nobody");
        let report = w.run(true);
        assert_eq!(
            outcomes(&report),
            [(NOBODY_UID, "copied"), (NAMELESS_UID, "no-name")]
        );
        assert!(!report.is_complete());
        assert!(report.entries[1]
            .outcome
            .to_string()
            .contains("no login name on this host"));
        assert_eq!(w.table.0.lock().unwrap().rows.len(), 1);
    }

    #[test]
    fn an_unreadable_local_record_is_reported_and_the_others_are_copied() {
        let w = World::new();
        // Root's record sealed under a key this host does not hold.
        let foreign = MasterKey::generate(1).unwrap();
        let mut state = w.local.open_user(ROOT_UID, &foreign).unwrap();
        state.commit(&Record::new("root", 1), &foreign).unwrap();
        drop(state);
        w.enroll_locally(NOBODY_UID, "nobody");
        let report = w.run(true);
        assert_eq!(
            outcomes(&report),
            [(ROOT_UID, "unreadable"), (NOBODY_UID, "copied")]
        );
        assert!(matches!(
            report.entries[0].outcome.error(),
            Some(StoreError::WrongKey { .. })
        ));
        assert_eq!(w.shared_username("root"), None);
    }

    #[test]
    fn an_unreachable_shared_store_fails_the_run_before_anything_is_written() {
        let w = World::new();
        w.enroll_locally(NOBODY_UID, "nobody");
        w.table.0.lock().unwrap().down = true;
        let err = migrate(&w.local, &w.shared, &w.keys, true).unwrap_err();
        assert!(matches!(
            err,
            MigrateError::Shared(StoreError::Unavailable(_))
        ));
        assert!(err.to_string().contains("db.example:5432"));
        assert!(err.to_string().contains("nothing was written"));
    }

    #[test]
    fn a_shared_store_lost_midway_stops_the_run_and_the_rest_are_not_tried() {
        let w = World::new();
        w.enroll_locally(ROOT_UID, "root");
        w.enroll_locally(NOBODY_UID, "nobody");
        w.enroll_locally(NAMELESS_UID, "ghost");
        w.table.0.lock().unwrap().reads_left = Some(1);
        let report = w.run(true);
        assert_eq!(
            outcomes(&report),
            [
                (ROOT_UID, "copied"),
                (NOBODY_UID, "failed"),
                (NAMELESS_UID, "not-tried")
            ]
        );
        assert!(matches!(
            report.entries[1].outcome.error(),
            Some(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn a_refused_write_is_reported_for_its_record_and_stops_the_run() {
        let w = World::new();
        w.enroll_locally(ROOT_UID, "root");
        w.enroll_locally(NOBODY_UID, "nobody");
        w.table.0.lock().unwrap().no_insert = true;
        // The write may or may not have reached the server: the run cannot
        // say "nothing was written", so it reports the record instead.
        let report = w.run(true);
        assert_eq!(
            outcomes(&report),
            [(ROOT_UID, "failed"), (NOBODY_UID, "not-tried")]
        );
        assert!(report.entries[0]
            .outcome
            .to_string()
            .contains("permission denied"));
    }

    #[test]
    fn the_destination_must_be_the_shared_store() {
        let w = World::new();
        let err = migrate(&w.local, &w.local, &w.keys, false).unwrap_err();
        assert!(matches!(err, MigrateError::NotShared));
        assert!(err.to_string().contains("backend = \"postgres\""));
    }

    #[test]
    fn a_missing_state_directory_is_an_empty_report() {
        let w = World::new();
        std::fs::remove_dir(&w.state_dir).unwrap();
        let report = w.run(false);
        assert!(report.entries.is_empty());
    }

    #[test]
    fn an_unsafe_state_directory_fails_the_run() {
        let w = World::new();
        std::fs::set_permissions(&w.state_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = migrate(&w.local, &w.shared, &w.keys, false).unwrap_err();
        assert!(matches!(err, MigrateError::Local(StoreError::Directory(_))));
    }

    #[test]
    fn an_empty_state_directory_is_an_empty_report() {
        let w = World::new();
        let report = w.run(true);
        assert!(report.entries.is_empty());
        assert!(report.is_complete());
    }
}

//! The PostgreSQL backend: one row per login name, sealed as the files
//! backend seals a slot ([`super::seal`], the AAD binding the name and the
//! row version), written with one version-checked statement.

use std::fmt;
use std::path::{Path, PathBuf};

use super::postgres::Row;
use super::seal::{self, Binding, Slot};
use super::{Owner, StoreError, Version};
use crate::keys::{Generation, MasterKey};
use crate::record::Record;

type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// The statements the backend needs; [`super::postgres::Client`] runs them
/// against the server, each under one deadline.
pub(crate) trait RowClient: Send + Sync {
    /// The row of `name`, if there is one.
    fn read(&self, name: &str) -> Result<Option<Row>, BackendError>;
    /// Replaces the row of `name` if its version is still `expected`.
    fn replace(&self, name: &str, expected: i64, new: &Row, by: &str)
        -> Result<bool, BackendError>;
    /// Inserts the row of `name` unless one exists.
    fn create(&self, name: &str, new: &Row, by: &str) -> Result<bool, BackendError>;
    /// Deletes the row of `name` (if still at `expected`, when given).
    fn delete(&self, name: &str, expected: Option<i64>) -> Result<bool, BackendError>;
    /// Every name with a row, sorted.
    fn names(&self) -> Result<Vec<String>, BackendError>;
    /// The servers, for messages.
    fn describe(&self) -> String;
}

impl RowClient for super::postgres::Client {
    fn read(&self, name: &str) -> Result<Option<Row>, BackendError> {
        Ok(super::postgres::Client::read(self, name)?)
    }

    fn replace(
        &self,
        name: &str,
        expected: i64,
        new: &Row,
        by: &str,
    ) -> Result<bool, BackendError> {
        Ok(super::postgres::Client::replace(
            self, name, expected, new, by,
        )?)
    }

    fn create(&self, name: &str, new: &Row, by: &str) -> Result<bool, BackendError> {
        Ok(super::postgres::Client::create(self, name, new, by)?)
    }

    fn delete(&self, name: &str, expected: Option<i64>) -> Result<bool, BackendError> {
        Ok(super::postgres::Client::delete(self, name, expected)?)
    }

    fn names(&self) -> Result<Vec<String>, BackendError> {
        Ok(super::postgres::Client::names(self)?)
    }

    fn describe(&self) -> String {
        self.settings().describe()
    }
}

pub(crate) struct RowStore {
    client: Box<dyn RowClient>,
    state_dir: PathBuf,
    hostname: String,
}

impl fmt::Debug for RowStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowStore")
            .field("servers", &self.client.describe())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: BackendError) -> StoreError {
    StoreError::Unavailable(e)
}

impl RowStore {
    pub(crate) fn new(client: Box<dyn RowClient>, state_dir: PathBuf, hostname: &str) -> Self {
        RowStore {
            client,
            state_dir,
            hostname: hostname.to_owned(),
        }
    }

    pub(crate) fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub(crate) fn describe(&self) -> String {
        format!("PostgreSQL {}", self.client.describe())
    }

    pub(crate) fn names(&self) -> Result<Vec<String>, StoreError> {
        self.client.names().map_err(unavailable)
    }

    /// Reads and opens `name`'s row.
    pub(crate) fn open(&self, name: String, keys: &MasterKey) -> Result<RowState<'_>, StoreError> {
        let row = self.client.read(&name).map_err(unavailable)?;
        let mut state = RowState {
            store: self,
            name,
            version: None,
            record: None,
            generations: Vec::new(),
            poisoned: false,
        };
        let Some(row) = row else { return Ok(state) };
        let record = open_row(&state.name, &row, keys)?;
        state.version = Some(row.version);
        state.record = Some(record);
        state.generations = vec![row.generation];
        Ok(state)
    }

    /// `name`'s state as a snapshot saw it, without reading again: the
    /// write that follows compares the version on the server.
    pub(crate) fn at_version(
        &self,
        name: String,
        version: Option<i64>,
        record: Option<Record>,
    ) -> RowState<'_> {
        RowState {
            store: self,
            name,
            version,
            generations: Vec::new(),
            record,
            poisoned: false,
        }
    }

    /// Deletes `name`'s row whatever it holds.
    pub(crate) fn remove(&self, name: &str) -> Result<(), StoreError> {
        self.client.delete(name, None).map_err(unavailable)?;
        Ok(())
    }
}

/// Opens a row: the seal must name the row's own version and generation
/// (both are in the AAD), so a row copied to another name, or given
/// another version, does not open.
fn open_row(name: &str, row: &Row, keys: &MasterKey) -> Result<Record, StoreError> {
    let unusable = |reason: String, generation: Option<Generation>| StoreError::Row {
        name: name.to_owned(),
        reason,
        generation,
    };
    match seal::open(&row.sealed, Binding::Name(name), keys) {
        Slot::Valid {
            seq,
            nonce: _,
            generation,
            version,
            plaintext,
        } => {
            if i64::try_from(seq).ok() != Some(row.version) || generation != row.generation {
                return Err(unusable(
                    "its seal names another version or key generation than the row".into(),
                    None,
                ));
            }
            Record::decode(&plaintext, version)
                .map_err(|e| unusable(format!("authenticated but undecodable: {e}"), None))
        }
        Slot::Empty => Err(unusable("empty".into(), None)),
        Slot::Invalid(fault) => {
            let generation = match fault {
                super::SlotFault::UnknownGeneration(g) | super::SlotFault::WrongKey(g) => Some(g),
                _ => None,
            };
            Err(unusable(fault.to_string(), generation))
        }
    }
}

/// A user's row as read, with the version any write must find unchanged.
pub(crate) struct RowState<'s> {
    store: &'s RowStore,
    name: String,
    version: Option<i64>,
    record: Option<Record>,
    generations: Vec<Generation>,
    poisoned: bool,
}

impl RowState<'_> {
    pub(crate) fn record(&self) -> Option<&Record> {
        self.record.as_ref()
    }

    pub(crate) fn generations(&self) -> &[Generation] {
        &self.generations
    }

    pub(crate) fn version(&self) -> Version {
        self.version.map_or(Version::Absent, Version::Row)
    }

    /// Seals `record` at the next version and writes it over the version
    /// read (or creates the row if there was none). Returns once the server
    /// acknowledged the commit.
    pub(crate) fn write(
        &mut self,
        owner: &Owner,
        record: &Record,
        keys: &MasterKey,
    ) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let plaintext = record.encode().map_err(StoreError::TooLarge)?;
        let next = self.version.map_or(1, |v| v + 1);
        let key = keys.active_store_key();
        let seq = u64::try_from(next).unwrap_or(u64::MAX);
        let sealed = seal::seal(key, Binding::Name(&self.name), seq, &plaintext, 0)?;
        let row = Row {
            version: next,
            generation: key.generation(),
            sealed: sealed.to_vec(),
        };
        let client = &self.store.client;
        let by = &self.store.hostname;
        let written = match self.version {
            Some(expected) => client.replace(&self.name, expected, &row, by),
            None => client.create(&self.name, &row, by),
        };
        match written {
            Ok(true) => {
                self.version = Some(next);
                self.record = Some(record.clone());
                self.generations = vec![key.generation()];
                Ok(())
            }
            Ok(false) => {
                self.poisoned = true;
                Err(StoreError::Conflict {
                    owner: owner.clone(),
                })
            }
            Err(e) => {
                // The server may or may not have committed: never write
                // again from this state.
                self.poisoned = true;
                Err(unavailable(e))
            }
        }
    }

    /// Deletes the row if it is still the version read.
    pub(crate) fn remove(&mut self, owner: &Owner) -> Result<(), StoreError> {
        let Some(expected) = self.version else {
            return Ok(());
        };
        match self.store.client.delete(&self.name, Some(expected)) {
            Ok(true) => {
                self.version = None;
                self.record = None;
                self.generations.clear();
                Ok(())
            }
            Ok(false) => Err(StoreError::Conflict {
                owner: owner.clone(),
            }),
            Err(e) => Err(unavailable(e)),
        }
    }
}

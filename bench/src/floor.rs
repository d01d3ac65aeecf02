//! The physical floor of a login's update on the benchmark's disk: one
//! small write in place plus `fdatasync` (what pam_mfa's double-buffered
//! record needs), and beside it the rename protocol (write a new file,
//! `fsync`, rename over the old one, `fsync` the directory).
//!
//! The in-place floor rotates over [`FILES`] files, as logins of different
//! users do: a file written again within the same timestamp tick (a few
//! ms) has no new mtime to write, so a loop over one file flushes less
//! than a login does. That loop is measured too, as `in_place_same_file`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// Both floors, in the same directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// Bytes per write (one record slot).
    pub write_bytes: usize,
    /// `pwrite` of one slot + `fdatasync`, each time another file.
    pub in_place: Summary,
    /// The same, over and over on one file.
    pub in_place_same_file: Summary,
    /// Write two slots to a new file + `fsync` + `rename` + `fsync` of the directory.
    pub rename: Summary,
}

/// Files the in-place floor rotates over.
pub const FILES: usize = 64;

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Raw samples of the three floors, in ns, to be merged over rounds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    in_place: Vec<u64>,
    in_place_same_file: Vec<u64>,
    rename: Vec<u64>,
}

impl Samples {
    /// Adds another round's samples.
    pub fn extend(&mut self, other: Samples) {
        self.in_place.extend(other.in_place);
        self.in_place_same_file.extend(other.in_place_same_file);
        self.rename.extend(other.rename);
    }

    /// The summaries, for one-slot writes of `slot` bytes.
    pub fn floor(&self, slot: usize) -> Floor {
        Floor {
            write_bytes: slot,
            in_place: Summary::of_ns(&self.in_place),
            in_place_same_file: Summary::of_ns(&self.in_place_same_file),
            rename: Summary::of_ns(&self.rename),
        }
    }
}

/// Measures `reps` of each in `dir`, writing `slot` bytes at a time.
///
/// # Errors
/// Any I/O error.
pub fn measure(dir: &Path, slot: usize, reps: usize) -> Result<Samples, String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    let files = (0..FILES)
        .map(|k| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(dir.join(format!("slots{k}")))?;
            file.write_all_at(&vec![0u8; 2 * slot], 0)?;
            file.sync_all()?;
            Ok(file)
        })
        .collect::<std::io::Result<Vec<File>>>()
        .map_err(io)?;
    let mut buf = vec![0u8; slot];
    let mut write_sync = |file: &File, r: usize| -> Result<u64, String> {
        // Different bytes each time, as a new sealed slot would be.
        buf.fill(u8::try_from(r % 251).unwrap_or(0));
        let start = Instant::now();
        file.write_all_at(&buf, ((r / FILES % 2) * slot) as u64)
            .map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(elapsed_ns(start))
    };
    let in_place = (0..reps)
        .map(|r| write_sync(&files[r % FILES], r))
        .collect::<Result<Vec<_>, _>>()?;
    let in_place_same_file = (0..reps)
        .map(|r| write_sync(&files[0], r * FILES))
        .collect::<Result<Vec<_>, _>>()?;
    let target = dir.join("record");
    let temp = dir.join(".record.tmp");
    let contents = vec![0x5au8; 2 * slot];
    let mut rename = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&temp)
            .map_err(io)?;
        f.write_all(&contents).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&temp, &target).map_err(io)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        rename.push(elapsed_ns(start));
    }
    Ok(Samples {
        in_place,
        in_place_same_file,
        rename,
    })
}

//! The administrative paths, timed through mfa-core directly: a user's
//! self-enrollment (made and sealed by the user's `mfa-enroll`, found and
//! opened by the module at the next login) and `mfa-enroll key migrate`.

use std::fs;
use std::time::Instant;

use mfa_core::admin::{self, EnrollRequest, Migrated};
use mfa_core::config::Config;
use mfa_core::enrollment;
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::{EnrollmentPublicKey, MasterKey};
use mfa_core::pending::{Pending, Request};
use mfa_core::spool;
use mfa_core::store::Store;
use nix::unistd::{chown, Uid};
use serde::{Deserialize, Serialize};

use crate::codes;
use crate::population::{self, Layout, Population};
use crate::stats::Summary;

/// The per-user cost of a self-enrollment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SelfEnrollment {
    /// User side: HPKE-seal the request to the host's enrollment key.
    pub seal: Summary,
    /// User side: write it into the spool and `fsync` it.
    pub spool_write: Summary,
    /// Module side: `spool::find` lists the spool, opens the user's file
    /// and unseals it (what every login of that user does first).
    pub find: Summary,
}

/// What one login's spool search costs while other users' requests wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SpoolScan {
    /// Pending files of other users in the spool.
    pub waiting: usize,
    /// `spool::find` for a user with nothing pending.
    pub find: Summary,
}

/// What a login costs while another user's entries are planted under the
/// user's uid: the first of the logins that remove them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpoolFlood {
    /// What was planted: "files" or "directories".
    pub kind: String,
    /// How many.
    pub planted: usize,
    /// `spool::find` at the first login after the flood.
    pub first: Summary,
    /// How many logins it took to remove them all.
    pub logins: usize,
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn load_config(layout: &Layout) -> Result<Config, String> {
    Config::load(&layout.config(), FileTrust::ROOT, &[]).map_err(|e| e.to_string())
}

fn load_keys(layout: &Layout) -> Result<MasterKey, String> {
    MasterKey::load(&layout.key_file(), FileTrust::ROOT).map_err(|e| e.to_string())
}

/// `admin::provision` as `mfa-enroll` runs it for a user: a new device and
/// ten recovery codes hashed with Argon2id. Measured `reps` times.
///
/// # Errors
/// A config or provisioning failure.
pub fn provision(layout: &Layout, reps: usize) -> Result<Summary, String> {
    let config = load_config(layout)?;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        admin::provision(
            &config,
            &EnrollRequest {
                username: "mfab000001",
                device: "phone",
                issuer: "bench",
                account: "mfab000001@bench",
                replace: false,
            },
            codes::unix_now(),
        )
        .map_err(|e| e.to_string())?;
        samples.push(elapsed_ns(start));
    }
    Ok(Summary::of_ns(&samples))
}

/// Each of `users` (1-based indexes) enrolls a new device by self-service
/// and the module finds it; the spool holds one request at a time.
///
/// # Errors
/// Any failure, including a request the module does not find.
pub fn self_enrollment(
    layout: &Layout,
    population: &Population,
    users: &[u32],
) -> Result<SelfEnrollment, String> {
    let config = load_config(layout)?;
    let keys = load_keys(layout)?;
    let public = EnrollmentPublicKey::load(&layout.enroll_public_key(), FileTrust::ROOT)
        .map_err(|e| e.to_string())?;
    let spool = layout.spool_dir();
    let (mut seal, mut write, mut find) = (Vec::new(), Vec::new(), Vec::new());
    for &i in users {
        let uid = population::uid(i);
        let now = codes::unix_now();
        let device = enrollment::new_device(&config, "new-phone", "bench", "bench", now)
            .map_err(|e| e.to_string())?
            .device;
        let request = Pending {
            id: Pending::new_id().map_err(|e| e.to_string())?,
            created: now,
            request: Request::Device {
                device,
                recovery: population.recovery().clone(),
                code: None,
            },
            proof: None,
        };
        let start = Instant::now();
        let sealed = request.seal(&public, uid).map_err(|e| e.to_string())?;
        seal.push(elapsed_ns(start));
        let start = Instant::now();
        let path = spool::write_to_spool(&spool, uid, &sealed).map_err(|e| e.to_string())?;
        write.push(elapsed_ns(start));
        // The user's own process would have created it as the user.
        chown(&path, Some(Uid::from_raw(uid)), None).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let search = spool::find(
            &spool,
            uid,
            &keys,
            FileTrust::ROOT,
            u64::from(config.enrollment.pending_max_age),
            now,
        )
        .map_err(|e| e.to_string())?;
        find.push(elapsed_ns(start));
        let found = search
            .found
            .ok_or_else(|| format!("the module did not find uid {uid}'s request"))?;
        spool::remove(&found).map_err(|e| e.to_string())?;
    }
    Ok(SelfEnrollment {
        seal: Summary::of_ns(&seal),
        spool_write: Summary::of_ns(&write),
        find: Summary::of_ns(&find),
    })
}

/// The spool search every pam_mfa login makes, for a user with nothing
/// pending, while `waiting` requests of other users sit in the spool.
///
/// # Errors
/// Any I/O failure.
pub fn spool_scan(
    layout: &Layout,
    waiting: &[usize],
    reps: usize,
) -> Result<Vec<SpoolScan>, String> {
    let keys = load_keys(layout)?;
    // A spool of its own: an ext4 directory never shrinks, and a large one
    // would slow every later login's search even once emptied.
    let spool = layout.path("mfa/spool-scan");
    population::make_spool_at(&spool)?;
    let mut rows = Vec::new();
    let mut made = 0usize;
    for &count in waiting {
        // Names as `mfa-enroll` makes them, each file its uid's (a file of
        // another owner would be removed as planted); the search skips
        // other uids' requests by name, examining a share of them.
        while made < count {
            let uid = u32::try_from(300_000 + made).map_err(|e| e.to_string())?;
            let path = spool.join(format!("{uid}.{made:016x}"));
            fs::write(&path, b"sealed").map_err(|e| e.to_string())?;
            chown(&path, Some(Uid::from_raw(uid)), None).map_err(|e| e.to_string())?;
            made += 1;
        }
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            let search = spool::find(&spool, 1, &keys, FileTrust::ROOT, 86_400, codes::unix_now())
                .map_err(|e| e.to_string())?;
            samples.push(elapsed_ns(start));
            if search.found.is_some() {
                return Err("uid 1 has no request; the search found one".into());
            }
        }
        rows.push(SpoolScan {
            waiting: count,
            find: Summary::of_ns(&samples),
        });
    }
    fs::remove_dir_all(&spool).map_err(|e| e.to_string())?;
    Ok(rows)
}

/// A login of uid 1 after uid 2 planted `count` files (or directories)
/// named after uid 1 in an empty spool: `spool::find` at the first login,
/// which removes as many as one login may, `reps` times; and how many
/// logins remove them all.
///
/// # Errors
/// Any I/O failure, or a flood that a scan does not remove.
pub fn spool_flood(
    layout: &Layout,
    floods: &[(&str, usize)],
    reps: usize,
) -> Result<Vec<SpoolFlood>, String> {
    let keys = load_keys(layout)?;
    let mut rows = Vec::new();
    for (i, &(kind, count)) in floods.iter().enumerate() {
        let mut samples = Vec::with_capacity(reps);
        let mut logins = 0;
        for rep in 0..reps {
            // A fresh directory each time: an ext4 directory never shrinks.
            let spool = layout.path(&format!("mfa/spool-flood-{i}-{rep}"));
            population::make_spool_at(&spool)?;
            for n in 0..count {
                let path = spool.join(format!("1.{n:016x}"));
                if kind == "directories" {
                    fs::create_dir(&path).map_err(|e| e.to_string())?;
                } else {
                    fs::write(&path, b"").map_err(|e| e.to_string())?;
                }
                chown(&path, Some(Uid::from_raw(2)), None).map_err(|e| e.to_string())?;
            }
            let find = || spool::find(&spool, 1, &keys, FileTrust::ROOT, 86_400, codes::unix_now());
            let start = Instant::now();
            let mut search = find().map_err(|e| e.to_string())?;
            samples.push(elapsed_ns(start));
            logins = 1;
            while search.expired.deferred > 0 {
                if logins > count {
                    return Err(format!("{count} planted {kind} are not going away"));
                }
                search = find().map_err(|e| e.to_string())?;
                logins += 1;
            }
            fs::remove_dir(&spool).map_err(|e| format!("{}: {e}", spool.display()))?;
        }
        rows.push(SpoolFlood {
            kind: kind.to_owned(),
            planted: count,
            first: Summary::of_ns(&samples),
            logins,
        });
    }
    Ok(rows)
}

/// `key rotate`, then `key migrate` of each of `users`: re-sealing their
/// record under the new generation by the rename protocol.
///
/// # Errors
/// A rotation failure, or a record that did not migrate.
pub fn migrate(layout: &Layout, users: &[u32]) -> Result<Summary, String> {
    let config = load_config(layout)?;
    admin::rotate_key(&config.paths, FileTrust::ROOT, codes::unix_now())
        .map_err(|e| e.to_string())?;
    let keys = load_keys(layout)?;
    let store = Store::new(layout.state_dir(), FileTrust::ROOT);
    let mut samples = Vec::with_capacity(users.len());
    for &i in users {
        let uid = population::uid(i);
        let start = Instant::now();
        let migrated = admin::migrate_user(&store, uid, &keys).map_err(|e| e.to_string())?;
        samples.push(elapsed_ns(start));
        if !matches!(migrated, Migrated::Resealed { .. }) {
            return Err(format!(
                "uid {uid}: {migrated:?}, expected a re-sealed record"
            ));
        }
    }
    Ok(Summary::of_ns(&samples))
}

/// The slot size of user 1's record: what one in-place commit writes.
///
/// # Errors
/// If the record cannot be read.
pub fn slot_size(layout: &Layout) -> Result<usize, String> {
    let path = layout.state_dir().join(population::uid(1).to_string());
    let len = fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    usize::try_from(len / 2).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A layout with only what `spool_flood` reads: the master key.
    fn layout() -> Layout {
        let root = std::env::temp_dir().join(format!("pam-mfa-bench-flood-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["", "mfa", "mfa/keys"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let layout = Layout { root };
        MasterKey::generate(codes::unix_now())
            .unwrap()
            .create(&layout.key_file())
            .unwrap();
        layout
    }

    #[test]
    fn a_flood_is_measured_and_removed_by_as_many_logins_as_the_limits_need() {
        let layout = layout();
        let over = spool::MAX_EXAMINED + 10;
        let dirs = 2 * spool::MAX_DIRECTORIES_REMOVED + 1;
        let rows = spool_flood(&layout, &[("files", over), ("directories", dirs)], 2).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].planted, rows[0].logins), (over, 2));
        assert_eq!((rows[1].kind.as_str(), rows[1].logins), ("directories", 3));
        assert!(rows.iter().all(|r| r.first.count == 2), "{rows:?}");
        // Each flood's spool is gone again.
        let left: Vec<_> = fs::read_dir(layout.path("mfa"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with("spool-flood"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        fs::remove_dir_all(&layout.root).unwrap();
    }
}

//! The benchmark's directory and its users: N synthetic accounts appended
//! to a copy of the host's `/etc/passwd`, each enrolled in all three
//! modules with the same secret.
//!
//! | path | what |
//! |---|---|
//! | `etc/passwd`, `etc/group` | seen as `/etc/passwd`, `/etc/group` |
//! | `etc/pam_mfa.toml` | pam_mfa's config (`fail_delay_ms = 0`) |
//! | `host-etc/` | the host's `/etc`, inside the namespace |
//! | `pam.d/` | seen as `/etc/pam.d`: `bench-mfa`, `bench-ga`, `bench-oath`, `other` |
//! | `run/log.sock` | seen as `/dev/log` |
//! | `run/nscd.log` | what nscd printed, in the scenarios with nscd |
//! | `tools/` | the module-loading program (`load`), compiled at run time |
//! | `mfa/keys/`, `mfa/state/`, `mfa/spool/` | pam_mfa's key, records, self-enrollment spool |
//! | `ga/<user>` | google-authenticator secret files (root, 0600) |
//! | `oath/users` | the pam_oath users file (root, 0600) |
//! | `floor/` | scratch files for the disk floor |

use std::fmt::Write as _;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mfa_core::codec::{hex_decode, hex_encode};
use mfa_core::fsutil::FileTrust;
use mfa_core::keys::MasterKey;
use mfa_core::record::{Device, Record};
use mfa_core::recovery::{self, KdfParams, RecoveryHashes};
use mfa_core::store::Store;
use mfa_core::totp;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::codes::{self, Secret, SECRET_LEN};

/// The first synthetic uid is this plus one.
pub const UID_BASE: u32 = 200_000;
/// The synthetic users' primary group.
pub const GID: u32 = 200_000;
/// Marks a directory this tool made, so that it only ever deletes its own.
const MARKER: &str = ".pam-mfa-bench";

/// The PAM service of each module.
pub const SERVICE_MFA: &str = "bench-mfa";
/// google-authenticator's service.
pub const SERVICE_GA: &str = "bench-ga";
/// `pam_oath`'s service.
pub const SERVICE_OATH: &str = "bench-oath";

/// Paths inside the benchmark directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The benchmark directory.
    pub root: PathBuf,
}

impl Layout {
    /// A path under the root.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Seen as `/etc/passwd`.
    pub fn passwd(&self) -> PathBuf {
        self.path("etc/passwd")
    }

    /// Seen as `/etc/group`.
    pub fn group(&self) -> PathBuf {
        self.path("etc/group")
    }

    /// pam_mfa's config.
    pub fn config(&self) -> PathBuf {
        self.path("etc/pam_mfa.toml")
    }

    /// Where the host's `/etc` is seen inside the namespace.
    pub fn host_etc(&self) -> PathBuf {
        self.path("host-etc")
    }

    /// Seen as `/etc/pam.d`.
    pub fn pam_d(&self) -> PathBuf {
        self.path("pam.d")
    }

    /// Seen as `/dev/log`.
    pub fn log_socket(&self) -> PathBuf {
        self.path("run/log.sock")
    }

    /// What nscd printed, in the scenarios with nscd.
    pub fn nscd_log(&self) -> PathBuf {
        self.path("run/nscd.log")
    }

    /// Programs compiled at run time.
    pub fn tools_dir(&self) -> PathBuf {
        self.path("tools")
    }

    /// pam_mfa's master key.
    pub fn key_file(&self) -> PathBuf {
        self.path("mfa/keys/master.key")
    }

    /// pam_mfa's enrollment public key.
    pub fn enroll_public_key(&self) -> PathBuf {
        self.path("mfa/keys/enroll.pub")
    }

    /// pam_mfa's records.
    pub fn state_dir(&self) -> PathBuf {
        self.path("mfa/state")
    }

    /// pam_mfa's self-enrollment spool.
    pub fn spool_dir(&self) -> PathBuf {
        self.path("mfa/spool")
    }

    /// google-authenticator's secret files.
    pub fn ga_dir(&self) -> PathBuf {
        self.path("ga")
    }

    /// `pam_oath`'s users file.
    pub fn oath_users(&self) -> PathBuf {
        self.path("oath/users")
    }

    /// Scratch space for the disk floor.
    pub fn floor_dir(&self) -> PathBuf {
        self.path("floor")
    }

    /// Makes the directory tree afresh under `root`, which must not exist
    /// or must be a directory this tool made before (it is then emptied).
    ///
    /// # Errors
    /// A foreign directory in the way, or any I/O error.
    pub fn create_fresh(root: &Path) -> Result<Layout, String> {
        if root.exists() {
            if !root.join(MARKER).is_file() {
                return Err(format!(
                    "{} exists and was not made by pam-mfa-bench; choose another --work directory",
                    root.display()
                ));
            }
            // Inside a namespace this holds the host's /etc: never empty it then.
            let host_etc = root.join("host-etc");
            if fs::read_dir(&host_etc).is_ok_and(|mut d| d.next().is_some()) {
                return Err(format!(
                    "{} is not empty (is a benchmark still running?); refusing to delete {}",
                    host_etc.display(),
                    root.display()
                ));
            }
            fs::remove_dir_all(root)
                .map_err(|e| format!("cannot empty {}: {e}", root.display()))?;
        }
        let layout = Layout {
            root: root.to_path_buf(),
        };
        for (dir, mode) in [
            ("", 0o755),
            ("etc", 0o755),
            ("host-etc", 0o755),
            ("pam.d", 0o755),
            ("run", 0o755),
            ("tools", 0o755),
            ("mfa", 0o755),
            ("ga", 0o700),
            ("oath", 0o700),
            ("floor", 0o700),
        ] {
            make_dir(&layout.path(dir), mode)?;
        }
        write_file(&layout.path(MARKER), "", 0o644)?;
        Ok(layout)
    }

    /// A directory an earlier `run` made.
    ///
    /// # Errors
    /// If it is not one.
    pub fn existing(root: &Path) -> Result<Layout, String> {
        if !root.join(MARKER).is_file() {
            return Err(format!(
                "{} is not a pam-mfa-bench directory; run `pam-mfa-bench run` first",
                root.display()
            ));
        }
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    /// Where the run's seed and population size are kept.
    fn state_file(&self) -> PathBuf {
        self.path("population")
    }

    /// Writes the pam.d service files and pam_mfa's config.
    ///
    /// # Errors
    /// Any I/O error.
    pub fn write_stacks(&self, pam_mfa: &Path) -> Result<(), String> {
        let toml_path = |p: PathBuf| format!("\"{}\"", p.display());
        write_file(
            &self.config(),
            &format!(
                "# pam_mfa for the benchmark: defaults, except that failures are not delayed.\n\
                 [throttle]\nfail_delay_ms = 0\n\n[paths]\nstate_dir = {}\nkey_file = {}\n\
                 enroll_public_key = {}\nspool_dir = {}\n",
                toml_path(self.state_dir()),
                toml_path(self.key_file()),
                toml_path(self.enroll_public_key()),
                toml_path(self.spool_dir()),
            ),
            0o644,
        )?;
        let services = [
            (
                SERVICE_MFA,
                format!(
                    "auth required {} config={}\n",
                    pam_mfa.display(),
                    self.config().display()
                ),
            ),
            (
                SERVICE_GA,
                format!(
                    "auth required pam_google_authenticator.so secret={}/${{USER}} user=root\n",
                    self.ga_dir().display()
                ),
            ),
            (
                SERVICE_OATH,
                format!(
                    "auth required pam_oath.so usersfile={} window=1 digits=6\n",
                    self.oath_users().display()
                ),
            ),
            (
                "other",
                "auth required pam_deny.so\naccount required pam_deny.so\n\
                 password required pam_deny.so\nsession required pam_deny.so\n"
                    .to_owned(),
            ),
        ];
        for (name, text) in services {
            write_file(&self.pam_d().join(name), &text, 0o644)?;
        }
        Ok(())
    }
}

fn make_dir(path: &Path, mode: u32) -> Result<(), String> {
    DirBuilder::new()
        .mode(mode)
        .recursive(true)
        .create(path)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Writes `text` to `path` in place (the same inode, so bind mounts of it
/// see the change) with exactly `mode`.
///
/// # Errors
/// Any I/O error.
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.set_permissions(fs::Permissions::from_mode(mode))
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Makes pam_mfa's spool as the package would: root, mode 1733.
///
/// # Errors
/// Any I/O error.
pub fn make_spool(layout: &Layout) -> Result<(), String> {
    make_spool_at(&layout.spool_dir())
}

/// Makes a directory like pam_mfa's spool at `path`.
///
/// # Errors
/// Any I/O error.
pub fn make_spool_at(path: &Path) -> Result<(), String> {
    make_dir(path, 0o1733)
}

/// The login name of synthetic user `i` (1-based).
pub fn user_name(i: u32) -> String {
    format!("mfab{i:06}")
}

/// The uid of synthetic user `i`.
pub fn uid(i: u32) -> u32 {
    UID_BASE + i
}

/// The `/etc/passwd` line of synthetic user `i`.
pub fn passwd_line(i: u32) -> String {
    format!(
        "{}:x:{}:{GID}:pam_mfa benchmark:/nonexistent:/usr/sbin/nologin\n",
        user_name(i),
        uid(i)
    )
}

/// A google-authenticator secret file: TOTP, no reuse of a code, three
/// steps accepted (the one before, now, the one after), like pam_mfa's
/// default window of one step and `pam_oath`'s `window=1`.
pub fn ga_file(secret: &Secret) -> String {
    format!(
        "{}\n\" TOTP_AUTH\n\" DISALLOW_REUSE\n\" WINDOW_SIZE 3\n",
        totp::base32_encode(&secret.0).as_str()
    )
}

/// The `pam_oath` users-file line of synthetic user `i`.
pub fn oath_line(i: u32, secret: &Secret) -> String {
    format!(
        "HOTP/T30 {} - {}\n",
        user_name(i),
        hex_encode(&secret.0).as_str()
    )
}

/// The run's random seed, from which every user's secret is derived.
#[derive(Debug, Clone, Copy)]
pub struct Seed([u8; 32]);

impl Seed {
    /// The TOTP secret of user `i`: SHA-256 of the seed and `i`.
    pub fn secret(&self, i: u32) -> Secret {
        let digest = Sha256::new()
            .chain_update(self.0)
            .chain_update(i.to_be_bytes())
            .finalize();
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&digest[..SECRET_LEN]);
        Secret(secret)
    }

    /// The seed and population size a run left in `layout`.
    ///
    /// # Errors
    /// If there is none.
    pub fn load(layout: &Layout) -> Result<(Seed, u32), String> {
        let path = layout.state_file();
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bad = || format!("{} is damaged", path.display());
        let (seed, users) = text.trim().split_once(' ').ok_or_else(bad)?;
        let seed = hex_decode::<32>(seed).map_err(|_| bad())?;
        Ok((Seed(*seed), users.parse().map_err(|_| bad())?))
    }

    fn save(&self, layout: &Layout, users: u32) -> Result<(), String> {
        write_file(
            &layout.state_file(),
            &format!("{} {users}\n", hex_encode(&self.0).as_str()),
            0o600,
        )
    }
}

/// The users, enrolled in all three modules.
pub struct Population {
    layout: Layout,
    seed: Seed,
    keys: MasterKey,
    store: Store,
    recovery: RecoveryHashes,
    host_passwd: String,
    host_group: String,
    enrolled: u32,
}

impl Population {
    /// No synthetic users yet: `etc/passwd` and `etc/group` are copies of
    /// the host's (plus the benchmark's group). Loads pam_mfa's key, and
    /// makes one set of recovery-code hashes that every record carries (ten
    /// Argon2id hashes per user would take hours for 100 000 users; the
    /// record has the same size either way).
    ///
    /// # Errors
    /// Any I/O or key error.
    pub fn new(layout: &Layout) -> Result<Population, String> {
        let host_passwd =
            fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
        let host_group =
            fs::read_to_string("/etc/group").map_err(|e| format!("/etc/group: {e}"))?;
        let keys =
            MasterKey::load(&layout.key_file(), FileTrust::ROOT).map_err(|e| e.to_string())?;
        let (_, recovery) = recovery::generate(10, 12, KdfParams::default())
            .map_err(|e| format!("recovery codes: {e}"))?;
        let seed = Seed(mfa_core::random::bytes::<32>().map_err(|e| e.to_string())?);
        let population = Population {
            layout: layout.clone(),
            seed,
            keys,
            store: Store::new(layout.state_dir(), FileTrust::ROOT),
            recovery,
            host_passwd,
            host_group,
            enrolled: 0,
        };
        population.write_name_service()?;
        Ok(population)
    }

    /// Users enrolled so far.
    pub fn size(&self) -> u32 {
        self.enrolled
    }

    /// The recovery-code hashes every record carries.
    pub fn recovery(&self) -> &RecoveryHashes {
        &self.recovery
    }

    /// The seed every secret derives from.
    pub fn seed(&self) -> Seed {
        self.seed
    }

    fn write_name_service(&self) -> Result<(), String> {
        let mut passwd = self.host_passwd.clone();
        if !passwd.is_empty() && !passwd.ends_with('\n') {
            passwd.push('\n');
        }
        for i in 1..=self.enrolled {
            passwd.push_str(&passwd_line(i));
        }
        write_file(&self.layout.passwd(), &passwd, 0o644)?;
        let mut group = self.host_group.clone();
        if !group.is_empty() && !group.ends_with('\n') {
            group.push('\n');
        }
        let _ = writeln!(group, "mfabench:x:{GID}:");
        write_file(&self.layout.group(), &group, 0o644)
    }

    fn enroll(&self, i: u32, now: u64) -> Result<(), String> {
        let secret = self.seed.secret(i);
        let name = user_name(i);
        let mut record = Record::new(&name, now);
        record.devices.push(Device {
            name: "phone".into(),
            secret: Zeroizing::new(secret.0.to_vec()),
            params: codes::PARAMS,
            created: now,
            last_used_step: None,
        });
        record.recovery = Some(self.recovery.clone());
        self.store
            .open_user(uid(i), &self.keys)
            .and_then(|mut state| state.rewrite(&record, &self.keys))
            .map_err(|e| format!("pam_mfa record of {name}: {e}"))?;
        // Durability of the other modules' files is not what is measured
        // here: one sync at the end covers them.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.layout.ga_dir().join(&name))
            .and_then(|mut f| f.write_all(ga_file(&secret).as_bytes()))
            .map_err(|e| format!("google-authenticator file of {name}: {e}"))
    }

    /// Enrolls users up to `n` in all three modules (two threads), then
    /// rewrites the name-service files and the `pam_oath` users file.
    ///
    /// # Errors
    /// The first enrollment or write that fails.
    pub fn grow_to(&mut self, n: u32) -> Result<(), String> {
        let now = codes::unix_now();
        let first = self.enrolled + 1;
        let this = &*self;
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..2u32)
                .map(|t| {
                    s.spawn(move || {
                        (first..=n)
                            .filter(|i| i % 2 == t)
                            .try_for_each(|i| this.enroll(i, now))
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("enrollment panicked".into()))
            })
        })?;
        self.enrolled = self.enrolled.max(n);
        self.write_name_service()?;
        let mut oath = String::with_capacity(n as usize * 80);
        for i in 1..=n {
            oath.push_str(&oath_line(i, &self.seed.secret(i)));
        }
        write_file(&self.layout.oath_users(), &oath, 0o600)?;
        self.seed.save(&self.layout, self.enrolled)?;
        nix::unistd::sync();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_accounts_are_plain_passwd_lines() {
        assert_eq!(user_name(7), "mfab000007");
        assert_eq!(
            passwd_line(7),
            "mfab000007:x:200007:200000:pam_mfa benchmark:/nonexistent:/usr/sbin/nologin\n"
        );
    }

    #[test]
    fn the_other_modules_get_the_same_secret() {
        let secret = codes::secret_from_hex("3132333435363738393031323334353637383930").unwrap();
        assert_eq!(
            ga_file(&secret),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\n\" DISALLOW_REUSE\n\" WINDOW_SIZE 3\n"
        );
        assert_eq!(
            oath_line(3, &secret),
            "HOTP/T30 mfab000003 - 3132333435363738393031323334353637383930\n"
        );
    }
}

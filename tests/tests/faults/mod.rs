//! Fault injection through the real module: a sandbox whose `pam-converse`
//! runs with an `LD_PRELOAD` shim (`shim.c` beside this file) that kills the
//! process or fails a call at an exact step of a commit, and helpers for a
//! small tmpfs as the state directory in a mount namespace of the test's
//! own thread (full disk, read-only remount).
//!
//! Why a preload shim and not a debugger: it needs no ptrace or gdb, costs
//! nothing per call, names the step by call and ordinal (`fdatasync:1`),
//! and can do what a breakpoint cannot, such as writing half a slot before
//! dying (a torn write) or returning `ENOSPC` from one call. The module is
//! the one the other tests load, unchanged; only libc calls are interposed,
//! so a step the module does through another call (an `mmap`, a raw
//! syscall) would escape it, and `trace()` shows what it saw.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use pam_mfa_e2e::{native, tools, Run, Sandbox, Tools};
use tempfile::TempDir;

use crate::common;

const SHIM_SOURCE: &str = include_str!("shim.c");

/// Builds the shim once per test binary, with the C compiler CI has.
pub fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pam_mfa_fault_shim.so");
        native::compile_c(SHIM_SOURCE, &out, &["-shared", "-fPIC"])
            .unwrap_or_else(|e| panic!("the fault tests need a C compiler: {e}"));
        out
    })
}

/// A sandbox whose `pam-converse` is a wrapper that sources `fault.env`
/// (written by [`Faulty::arm`]) and then runs the real one.
pub struct Faulty {
    /// The sandbox; its tools are the wrapper.
    pub sb: Sandbox,
    wrapper: TempDir,
}

impl Faulty {
    /// A sandbox with `settings` and a master key, like
    /// `common::sandbox_with`, whose conversations run under the shim.
    pub fn new(settings: &str) -> Faulty {
        let real = tools!();
        let wrapper = tempfile::Builder::new()
            .prefix("pam-mfa-fault.")
            .tempdir()
            .expect("wrapper directory");
        let script = wrapper.path().join("pam-converse");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\n. \"$(dirname \"$0\")/fault.env\"\nexec {} \"$@\"\n",
                real.converse().display()
            ),
        )
        .expect("write the wrapper");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        // pamtester too, for a libpam application written in C.
        let pamtester = wrapper.path().join("pamtester");
        fs::write(
            &pamtester,
            "#!/bin/sh\n. \"$(dirname \"$0\")/fault.env\"\nexec pamtester \"$@\"\n",
        )
        .expect("write the pamtester wrapper");
        fs::set_permissions(&pamtester, fs::Permissions::from_mode(0o755)).expect("chmod");
        // The sandbox finds libpam_mfa.so next to its converse tool.
        symlink(real.artifact("deps"), wrapper.path().join("deps")).expect("deps link");
        let sb = Sandbox::new(Tools::new(&script, real.sandbox()));
        sb.write_config(settings);
        common::init_key(&sb);
        let f = Faulty { sb, wrapper };
        f.arm(None);
        f
    }

    fn file(&self, name: &str) -> PathBuf {
        self.wrapper.path().join(name)
    }

    /// Makes the next conversations run with the shim and `fault`
    /// (`CALL:N:ACTION`, see shim.c), or with the shim only tracing.
    pub fn arm(&self, fault: Option<&str>) {
        let _ = fs::remove_file(self.file("fired"));
        let _ = fs::remove_file(self.file("trace"));
        let mut env = format!(
            "export LD_PRELOAD={}\nexport PAM_MFA_FAULT_MARK={}\nexport PAM_MFA_TRACE={}\n",
            shim().display(),
            self.file("fired").display(),
            self.file("trace").display()
        );
        if let Some(fault) = fault {
            let _ = writeln!(env, "export PAM_MFA_FAULT={fault}");
        }
        fs::write(self.file("fault.env"), env).expect("write fault.env");
    }

    /// Runs the next conversations with the shim reporting `magic` as the
    /// filesystem type of everything (`statfs`, `fstatfs`).
    pub fn arm_statfs(&self, magic: u32) {
        self.arm(None);
        let mut env = fs::read_to_string(self.file("fault.env")).expect("fault.env");
        let _ = writeln!(env, "export PAM_MFA_STATFS_MAGIC={magic:x}");
        fs::write(self.file("fault.env"), env).expect("write fault.env");
    }

    /// Runs the next conversations with a wall clock that cannot be read
    /// (`clock_gettime(CLOCK_REALTIME)` fails), so that the module panics.
    pub fn arm_clock_failure(&self) {
        self.arm(None);
        let mut env = fs::read_to_string(self.file("fault.env")).expect("fault.env");
        env.push_str("export PAM_MFA_CLOCK_FAIL=1\n");
        fs::write(self.file("fault.env"), env).expect("write fault.env");
    }

    /// Runs Debian's pamtester (a C program) under the shim as armed.
    pub fn pamtester(&self, service: &str, user: &str, ops: &[&str], answers: &[&str]) -> Run {
        self.sb
            .pamtester_via(self.file("pamtester"), service, user, ops, answers)
    }

    /// Runs the next conversations without the shim.
    pub fn disarm(&self) {
        fs::write(self.file("fault.env"), "").expect("write fault.env");
    }

    /// Whether the armed fault fired since [`Faulty::arm`].
    pub fn fired(&self) -> bool {
        self.file("fired").exists()
    }

    /// The calls the shim counted since [`Faulty::arm`]: `"CALL PATH"`.
    pub fn trace(&self) -> Vec<String> {
        fs::read_to_string(self.file("trace"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl std::ops::Deref for Faulty {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.sb
    }
}

/// A tmpfs mounted on a directory in the calling thread's own mount
/// namespace, unmounted when dropped.
///
/// Mount namespaces belong to threads: after `unshare(CLONE_NEWNS)` this
/// test's thread, and every process it starts (the sandbox, pam-converse,
/// mfa-enroll), sees the tmpfs; the host and the other tests never do, and
/// the namespace ends with the thread. Declare it after the sandbox so it
/// is unmounted before the sandbox directory is removed.
pub struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `kib` KiB, root 0700, on `dir`.
    pub fn mount(dir: &Path, kib: u32) -> SmallFs {
        unshare(CloneFlags::CLONE_NEWNS).expect("unshare the test thread's mount namespace");
        // Nothing mounted here may propagate back to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make / private");
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={kib}k,mode=0700,uid=0,gid=0").as_str()),
        )
        .expect("mount a tmpfs on the state directory");
        SmallFs {
            dir: dir.to_path_buf(),
        }
    }

    /// Remounts it read-only or read-write.
    pub fn set_read_only(&self, read_only: bool) {
        let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        if read_only {
            flags |= MsFlags::MS_RDONLY;
        }
        mount(None::<&str>, &self.dir, None::<&str>, flags, None::<&str>).expect("remount");
    }

    /// Fills it up with `name`; returns how many bytes fitted.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let path = self.dir.join(name);
        let mut file = fs::File::create(&path).expect("create the filler");
        let chunk = [0u8; 4096];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // The last partial page too.
        while file.write(&[0u8]).is_ok_and(|n| n == 1) {
            written += 1;
        }
        written
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
    }
}

/// The names in `dir` that are neither record files (a uid) nor lock files.
pub fn strays(dir: &Path, except: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read the state directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !n.bytes().all(|b| b.is_ascii_digit())
                && std::path::Path::new(n)
                    .extension()
                    .is_none_or(|e| e != "lock")
                && !except.contains(&n.as_str())
        })
        .collect();
    names.sort();
    names
}

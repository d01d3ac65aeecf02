//! A test's own PAM world: service files, a pam_mfa config, state paths
//! and a syslog sink in a temporary directory, and a way to run commands
//! that see them at the system's paths.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, Run};
use crate::syslog::{SinkReceiver, SyslogSink};

/// The helper programs of this package.
#[derive(Debug, Clone)]
pub struct Tools {
    converse: PathBuf,
    sandbox: PathBuf,
}

impl Tools {
    /// The tools at these paths; integration tests use [`crate::tools!`].
    pub fn new(converse: impl Into<PathBuf>, sandbox: impl Into<PathBuf>) -> Tools {
        Tools {
            converse: converse.into(),
            sandbox: sandbox.into(),
        }
    }

    /// `pam-converse`.
    pub fn converse(&self) -> &Path {
        &self.converse
    }

    /// `pam-sandbox`.
    pub fn sandbox(&self) -> &Path {
        &self.sandbox
    }

    /// Where another artifact of the same build lives, such as
    /// `libpam_mfa.so`: next to the binaries, in `target/<profile>/`.
    pub fn artifact(&self, file_name: &str) -> PathBuf {
        self.converse
            .parent()
            .expect("binaries live in a directory")
            .join(file_name)
    }
}

/// `pam.d/other`, which libpam uses for a service without a file (and
/// for a type a service file leaves out): refuse, as a host should.
const OTHER: &str = "\
# Services and types without a stack of their own in this sandbox are refused.
auth     required pam_deny.so
account  required pam_deny.so
password required pam_deny.so
session  required pam_deny.so
";

/// How long a command may run before it is killed and the test fails.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// A temporary directory laid out like a host running pam_mfa, removed
/// when dropped:
///
/// | path | mode | what |
/// |---|---|---|
/// | `./` | root 0755 | users may reach the spool and the public key |
/// | `pam.d/` | 0755 | service files, seen as `/etc/pam.d`; `other` denies |
/// | `etc/pam_mfa.toml` | 0644 | the config, with `[paths]` pointing here |
/// | `keys/` | 0755 | `master.key`, `enroll.pub` |
/// | `state/` | 0700 | per-user records |
/// | `spool/` | 1733 | pending self-enrollments |
/// | `run/log.sock` | 0666 | the syslog sink, seen as `/dev/log` |
pub struct Sandbox {
    // Declared before `dir`: the reader stops before the socket's directory goes.
    receiver: SinkReceiver,
    dir: TempDir,
    tools: Tools,
    binds: Vec<(PathBuf, PathBuf)>,
    deadline: Duration,
}

fn make_dir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    set_mode(path, mode);
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// Writes `contents` to `path` with exactly `mode`, whatever the umask.
pub fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    set_mode(path, mode);
}

/// `path` as a TOML basic string.
fn toml_string(path: &Path) -> String {
    let text = path.to_str().expect("sandbox paths are UTF-8");
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Sandbox {
    /// Makes the directory tree and starts the syslog sink. Needs root.
    pub fn new(tools: Tools) -> Sandbox {
        crate::require_root();
        let dir = tempfile::Builder::new()
            .prefix("pam-mfa-e2e.")
            .tempdir()
            .expect("cannot create a temporary directory");
        let root = dir.path();
        set_mode(root, 0o755);
        make_dir(&root.join("pam.d"), 0o755);
        make_dir(&root.join("etc"), 0o755);
        make_dir(&root.join("keys"), 0o755);
        make_dir(&root.join("state"), 0o700);
        make_dir(&root.join("spool"), 0o1733);
        make_dir(&root.join("run"), 0o755);
        let socket = root.join("run/log.sock");
        let receiver = SinkReceiver::bind(&socket)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", socket.display()));
        let sandbox = Sandbox {
            receiver,
            dir,
            tools,
            binds: Vec::new(),
            deadline: DEFAULT_DEADLINE,
        };
        sandbox.service("other", OTHER);
        sandbox.write_config("");
        sandbox
    }

    /// Also bind-mounts `src` on `dst` (which must exist) in the namespace
    /// commands run in, e.g. a test's sudoers over `/etc/sudoers`.
    #[must_use]
    pub fn with_bind(mut self, src: impl Into<PathBuf>, dst: impl Into<PathBuf>) -> Sandbox {
        self.binds.push((src.into(), dst.into()));
        self
    }

    /// Kills commands after `deadline` instead of the default 60 s.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Sandbox {
        self.deadline = deadline;
        self
    }

    /// The sandbox directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the sandbox.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    /// The directory seen as `/etc/pam.d`.
    pub fn pam_d(&self) -> PathBuf {
        self.path("pam.d")
    }

    /// The pam_mfa config, to pass as `config=`.
    pub fn config_path(&self) -> PathBuf {
        self.path("etc/pam_mfa.toml")
    }

    /// `paths.state_dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// `paths.key_file`.
    pub fn key_file(&self) -> PathBuf {
        self.path("keys/master.key")
    }

    /// `paths.enroll_public_key`.
    pub fn enroll_public_key(&self) -> PathBuf {
        self.path("keys/enroll.pub")
    }

    /// `paths.spool_dir`.
    pub fn spool_dir(&self) -> PathBuf {
        self.path("spool")
    }

    /// What arrived on the sandbox's `/dev/log`.
    pub fn syslog(&self) -> &SyslogSink {
        self.receiver.sink()
    }

    /// The helper programs.
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// Writes the service file `pam.d/<name>` (mode 0644); returns its path.
    pub fn service(&self, name: &str, stack: &str) -> PathBuf {
        assert!(
            !name.is_empty() && name != "." && name != ".." && !name.contains('/'),
            "bad service name {name:?}"
        );
        let path = self.pam_d().join(name);
        write_file(&path, stack, 0o644);
        path
    }

    /// Writes the pam_mfa config: `settings` (TOML without a `[paths]`
    /// table) followed by `[paths]` pointing into the sandbox. A new
    /// sandbox starts with `write_config("")`.
    pub fn write_config(&self, settings: &str) {
        let mut text = settings.to_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let _ = write!(
            text,
            "\n[paths]\nstate_dir = {}\nkey_file = {}\nenroll_public_key = {}\nspool_dir = {}\n",
            toml_string(&self.state_dir()),
            toml_string(&self.key_file()),
            toml_string(&self.enroll_public_key()),
            toml_string(&self.spool_dir()),
        );
        self.write_config_raw(&text);
    }

    /// Writes exactly `text` as the config (root, 0644), for tests of bad
    /// configs.
    pub fn write_config_raw(&self, text: &str) {
        write_file(&self.config_path(), text, 0o644);
    }

    /// The PAM module built in this workspace, by absolute path.
    pub fn pam_mfa_module(&self) -> PathBuf {
        // Built by cargo before the tests, as a dependency of this crate.
        let path = self.tools.artifact("deps/libpam_mfa.so");
        assert!(
            path.is_file(),
            "{} is missing: cargo test builds it as a dependency of pam-mfa-e2e",
            path.display()
        );
        path
    }

    /// A pam.d line loading the workspace's module by absolute path with
    /// this sandbox's config, e.g. `pam_mfa_line("auth required", "debug")`.
    pub fn pam_mfa_line(&self, type_and_control: &str, args: &str) -> String {
        let mut line = format!(
            "{type_and_control} {} config={}",
            self.pam_mfa_module().display(),
            self.config_path().display()
        );
        if !args.is_empty() {
            line.push(' ');
            line.push_str(args);
        }
        line.push('\n');
        line
    }

    /// A command that runs `program` inside the sandbox's namespace, under
    /// the deadline; add arguments with `.arg()`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = process::with_deadline(
            self.deadline,
            self.tools.sandbox.to_str().expect("tool paths are UTF-8"),
        );
        cmd.arg("--pam-d")
            .arg(self.pam_d())
            .arg("--dev-log")
            .arg(self.syslog().path());
        for (src, dst) in &self.binds {
            cmd.arg("--bind").arg(src).arg(dst);
        }
        cmd.arg("--").arg(program);
        cmd
    }

    /// Runs `program` with `args` inside the namespace, with empty stdin.
    pub fn run(&self, program: &str, args: &[&str]) -> Run {
        let mut cmd = self.command(program);
        cmd.args(args);
        process::run(cmd, b"")
    }
}

//! A real OpenSSH server in a sandbox, and the real OpenSSH client talking
//! to it in a pseudo-terminal.
//!
//! [`Sshd::start`] runs `/usr/sbin/sshd -D -e` inside the sandbox's mount
//! namespace, so it uses the sandbox's `pam.d/sshd` and logs PAM's lines
//! to the sandbox's syslog, on `127.0.0.1` and a free port, with its own
//! host key. Its config is a small file for the test setup followed by an
//! `Include` of a copy of the shipped `config/sshd_config.d/00-pam_mfa.conf`
//! (settings a scenario passes come first: in `sshd_config` the first
//! value of a keyword wins). [`Sshd::login`] starts `/usr/bin/ssh` in a
//! [`PtySession`] that prints the server's log and the syslog when it
//! fails.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::audit::render_syslog;
use crate::process;
use crate::pty::{terminal_command, PtySession};
use crate::sandbox::{write_file, Sandbox};
use crate::shipped::shipped_text;
use crate::syslog::SyslogSink;
use crate::users::TestUser;

/// OpenSSH's server.
pub const SSHD: &str = "/usr/sbin/sshd";
/// OpenSSH's client.
pub const SSH: &str = "/usr/bin/ssh";
/// The remote command that proves a login: it prints `LOGGED-IN-<user>`.
pub const REMOTE_COMMAND: &str = "echo LOGGED-IN-$USER";

/// How long the server may take to start listening.
const START_WAIT: Duration = Duration::from_secs(15);

/// What `sshd -e` printed, shared with the thread reading it.
#[derive(Default)]
struct LogState {
    text: String,
    ended: bool,
}

struct ServerLog {
    state: Mutex<LogState>,
    changed: Condvar,
}

impl ServerLog {
    fn state(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running `sshd`, stopped when dropped.
pub struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: Arc<ServerLog>,
    syslog: SyslogSink,
}

/// Runs `ssh-keygen` to make an ed25519 key pair at `path` (and `.pub`).
fn keygen(path: &Path, comment: &str) {
    let mut cmd = process::with_deadline(Duration::from_secs(30), "ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path);
    process::run(cmd, b"").assert_success();
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port on 127.0.0.1")
}

impl Sshd {
    /// Starts `sshd` in `sb` with `settings` (`sshd_config` lines, e.g.
    /// `AuthenticationMethods keyboard-interactive`) before the shipped
    /// drop-in. The sandbox's `pam.d/sshd` must be in place.
    pub fn start(sb: &Sandbox, settings: &str) -> Sshd {
        // sshd's privilege separation directory; Debian creates it when
        // the service starts, and a test host may never have started it.
        let privsep = Path::new("/run/sshd");
        if !privsep.is_dir() {
            fs::create_dir_all(privsep).expect("cannot create /run/sshd");
            fs::set_permissions(privsep, fs::Permissions::from_mode(0o755))
                .expect("cannot chmod /run/sshd");
        }
        let dir = sb.path("ssh");
        for (sub, mode) in [
            ("", 0o755),
            ("authorized_keys", 0o755),
            ("sshd_config.d", 0o755),
        ] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
            fs::set_permissions(&d, fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", d.display()));
        }
        keygen(&dir.join("host_ed25519_key"), "pam_mfa e2e host key");
        keygen(&dir.join("client_ed25519_key"), "pam_mfa e2e client key");
        write_file(
            &dir.join("sshd_config.d/00-pam_mfa.conf"),
            &shipped_text("sshd_config.d/00-pam_mfa.conf"),
            0o644,
        );
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            write_file(&config, &Self::config_text(&dir, port, settings), 0o644);
            let mut cmd = sb.command(SSHD);
            cmd.args(["-D", "-e", "-f"])
                .arg(&config)
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let command = process::render(&cmd);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
            let log = Arc::new(ServerLog {
                state: Mutex::new(LogState {
                    text: format!("$ {command}\n"),
                    ended: false,
                }),
                changed: Condvar::new(),
            });
            {
                let log = Arc::clone(&log);
                let stderr = child.stderr.take().expect("stderr is piped");
                thread::spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        let mut state = log.state();
                        state.text.push_str(&line);
                        state.text.push('\n');
                        drop(state);
                        log.changed.notify_all();
                    }
                    log.state().ended = true;
                    log.changed.notify_all();
                });
            }
            let sshd = Sshd {
                child,
                port,
                dir: dir.clone(),
                log,
                syslog: sb.syslog().clone(),
            };
            let listening = format!("Server listening on 127.0.0.1 port {port}.");
            if sshd.wait_for_log(&listening, START_WAIT) {
                return sshd;
            }
            last_log = sshd.log();
            drop(sshd);
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!("sshd did not start listening:\n{last_log}");
    }

    fn config_text(dir: &Path, port: u16, settings: &str) -> String {
        let d = dir.display();
        let mut text = String::from(
            "# sshd_config of a pam_mfa end-to-end test.\n\
             # The scenario's own settings (the first value of a keyword wins):\n",
        );
        text.push_str(settings);
        if !settings.is_empty() && !settings.ends_with('\n') {
            text.push('\n');
        }
        let _ = write!(
            text,
            "\n# The test server: loopback, a free port, files in the sandbox.\n\
             ListenAddress 127.0.0.1:{port}\n\
             HostKey {d}/host_ed25519_key\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys/%u\n\
             # The sandbox lives under /tmp; its modes are not a user's home's.\n\
             StrictModes no\n\
             PermitRootLogin no\n\
             UseDNS no\n\
             PrintMotd no\n\
             LogLevel VERBOSE\n\
             \n\
             # The shipped drop-in, as Debian's sshd_config includes\n\
             # /etc/ssh/sshd_config.d/*.conf:\n\
             Include {d}/sshd_config.d/00-pam_mfa.conf\n"
        );
        text
    }

    /// Waits until `text` is in the server's log; false if the server
    /// ended or `wait` passed first.
    pub fn wait_for_log(&self, text: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut state = self.log.state();
        loop {
            if state.text.contains(text) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.ended || left.is_zero() {
                return false;
            }
            state = self
                .log
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Fails the test, showing the server's log, unless `text` appears in
    /// it within a few seconds.
    pub fn expect_log(&self, text: &str) {
        assert!(
            self.wait_for_log(text, Duration::from_secs(10)),
            "expected {text:?} in the sshd log:\n{}",
            self.log()
        );
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.state().text.clone()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client's private key (its public half is what
    /// [`Sshd::authorize`] installs).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_ed25519_key")
    }

    /// Lets `user` log in with the client key.
    pub fn authorize(&self, user: &TestUser) {
        let public = fs::read_to_string(self.dir.join("client_ed25519_key.pub"))
            .expect("the client key was made at start");
        write_file(
            &self.dir.join("authorized_keys").join(user.name()),
            &public,
            0o644,
        );
    }

    /// A login of `user` to this server, to set up and then start.
    pub fn login<'a>(&'a self, user: &'a TestUser) -> SshLogin<'a> {
        SshLogin {
            sshd: self,
            user,
            methods: "publickey,keyboard-interactive",
            prompts: 1,
            remote: REMOTE_COMMAND,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // The child is `timeout`, which passes SIGTERM on to sshd; a
        // SIGKILL would leave sshd running.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How `ssh` will be started: which user, which methods, what to run.
pub struct SshLogin<'a> {
    sshd: &'a Sshd,
    user: &'a TestUser,
    methods: &'a str,
    prompts: u32,
    remote: &'a str,
}

impl<'a> SshLogin<'a> {
    /// The client's `PreferredAuthentications` (default
    /// `publickey,keyboard-interactive`); without `publickey` the client
    /// offers no key.
    #[must_use]
    pub fn methods(mut self, methods: &'a str) -> Self {
        self.methods = methods;
        self
    }

    /// The client's `NumberOfPasswordPrompts`: how many keyboard-interactive
    /// rounds it tries before giving up (default 1, so that one wrong
    /// answer ends the attempt; OpenSSH's own default is 3).
    #[must_use]
    pub fn prompts(mut self, n: u32) -> Self {
        self.prompts = n;
        self
    }

    /// Starts `ssh` in a pseudo-terminal.
    pub fn spawn(self) -> PtySession {
        let sshd = self.sshd;
        let dir = &sshd.dir;
        let mut cmd = terminal_command(Duration::from_secs(120), SSH);
        let opt = |o: String| ["-o".to_owned(), o];
        cmd.args(["-F", "/dev/null", "-p", &sshd.port.to_string()]);
        for o in [
            format!("UserKnownHostsFile={}/known_hosts", dir.display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=no".into(),
            "BatchMode=no".into(),
            "IdentityAgent=none".into(),
            "IdentitiesOnly=yes".into(),
            format!("IdentityFile={}", sshd.client_key().display()),
            format!("PreferredAuthentications={}", self.methods),
            "KbdInteractiveAuthentication=yes".into(),
            "PasswordAuthentication=no".into(),
            format!("NumberOfPasswordPrompts={}", self.prompts),
            "ConnectTimeout=15".into(),
        ] {
            cmd.args(opt(o));
        }
        cmd.args(["-l", self.user.name(), "127.0.0.1", self.remote]);
        // A person's UTF-8 terminal: the client shows prompts through the
        // locale's idea of printable text, and the QR code is UTF-8.
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", dir)
            .env("LC_ALL", "C.UTF-8")
            .current_dir("/");
        let mut session = PtySession::spawn("ssh", cmd);
        let log = Arc::clone(&sshd.log);
        session.attach("sshd log", move || log.state().text.clone());
        let syslog = sshd.syslog.clone();
        session.attach("sandbox syslog", move || render_syslog(&syslog));
        session
    }
}

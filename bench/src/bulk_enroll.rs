//! `pam-mfa-bench bulk-enroll`: times `mfa-enroll enroll --users-from FILE
//! --json`, the real binary and code path, provisioning N synthetic users
//! in the benchmark's private namespace (its own `/etc/passwd` holds them),
//! and reports users per second.

use std::fmt::Write as _;
use std::io::Read as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use zeroize::Zeroizing;

use crate::population::{self, write_file, Layout, GID};
use crate::sandbox::{self, Mounts};
use crate::sink::SyslogSink;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The benchmark directory (emptied first, as `run` does).
    pub work: PathBuf,
    /// How many users to provision.
    pub users: u32,
    /// The `mfa-enroll` binary.
    pub mfa_enroll: PathBuf,
}

fn mfa_enroll(opts: &Options, config: &Path) -> Command {
    let mut c = Command::new(&opts.mfa_enroll);
    c.arg("--config").arg(config);
    c
}

/// Lays out the users, the config and the key, enters the namespace,
/// provisions everyone in one `mfa-enroll` run and prints the rate.
///
/// # Errors
/// Any I/O, mount or `mfa-enroll` failure, or a user not enrolled.
pub fn run(opts: &Options) -> Result<(), String> {
    let layout = Layout::create_fresh(&opts.work)?;
    let host_passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    let host_group = std::fs::read_to_string("/etc/group").map_err(|e| e.to_string())?;
    let mut passwd = host_passwd.trim_end().to_owned();
    passwd.push('\n');
    let mut users = String::new();
    for i in 1..=opts.users {
        passwd.push_str(&population::passwd_line(i));
        let _ = writeln!(users, "{{\"user\": \"{}\"}}", population::user_name(i));
    }
    write_file(&layout.passwd(), &passwd, 0o644)?;
    let mut group = host_group.trim_end().to_owned();
    let _ = write!(group, "\nmfabench:x:{GID}:\n");
    write_file(&layout.group(), &group, 0o644)?;
    let users_file = layout.path("mfa/users.jsonl");
    write_file(&users_file, &users, 0o600)?;
    let config = layout.path("mfa/bulk.toml");
    write_file(
        &config,
        &format!(
            "[paths]\nstate_dir = \"{}\"\nkey_file = \"{}\"\nenroll_public_key = \"{}\"\nspool_dir = \"{}\"\n",
            layout.state_dir().display(),
            layout.key_file().display(),
            layout.enroll_public_key().display(),
            layout.spool_dir().display()
        ),
        0o644,
    )?;
    let init = mfa_enroll(opts, &config)
        .args(["key", "init"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", opts.mfa_enroll.display()))?;
    if !init.status.success() {
        return Err(format!(
            "mfa-enroll key init: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }

    let socket_path = layout.log_socket();
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path)
        .map_err(|e| format!("cannot bind {}: {e}", socket_path.display()))?;
    sandbox::enter(&Mounts {
        host_etc: &layout.host_etc(),
        pam_d: &layout.pam_d(),
        passwd: &layout.passwd(),
        group: &layout.group(),
        dev_log: &socket_path,
    })?;
    // Audit lines go somewhere, as on a real host.
    let _syslog = SyslogSink::start(socket, &socket_path)?;

    let start = Instant::now();
    let mut child = mfa_enroll(opts, &config)
        .args(["enroll", "--json", "--users-from"])
        .arg(&users_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", opts.mfa_enroll.display()))?;
    // The output holds every user's secret: read into a buffer wiped on drop.
    let mut output = Zeroizing::new(Vec::new());
    child
        .stdout
        .take()
        .ok_or("no stdout")?
        .read_to_end(&mut output)
        .map_err(|e| e.to_string())?;
    let done = child.wait_with_output().map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    let enrolled = output
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"{\"user\""))
        .count();
    let summary = String::from_utf8_lossy(&done.stderr);
    if !done.status.success() || enrolled != opts.users as usize {
        return Err(format!(
            "mfa-enroll enrolled {enrolled} of {} users: {summary}",
            opts.users
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    println!(
        "bulk enrollment: {} users in {seconds:.2} s on {cores} cores: {:.1} users/s ({})",
        opts.users,
        f64::from(opts.users) / seconds,
        summary.trim()
    );
    Ok(())
}

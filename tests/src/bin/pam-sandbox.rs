//! pam-sandbox: runs a command in a private mount namespace in which
//! `/etc/pam.d` is a test's own directory and `/dev/log` a test's own
//! syslog socket. Nothing outside the namespace changes.
//!
//! ```text
//! pam-sandbox [--pam-d DIR] [--dev-log SOCKET] [--bind SRC DST]... -- PROGRAM [ARG]...
//! ```
//!
//! `/dev/log` often does not exist (no syslog daemon in a container) and a
//! bind mount needs an existing target, so with `--dev-log` the namespace
//! gets a fresh tmpfs on `/dev` that mirrors the host's `/dev` entry by
//! entry (bind mounts and symlinks) plus `log`. Needs root.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use pam_mfa_e2e::namespace::{bind, private_dev};

const USAGE: &str = "\
usage: pam-sandbox [--pam-d DIR] [--dev-log SOCKET] [--bind SRC DST]... -- PROGRAM [ARG]...

Runs PROGRAM in a private mount namespace where DIR is bind-mounted on
/etc/pam.d, SOCKET on /dev/log (in a private copy of /dev) and each SRC on
its DST. Needs root.";

struct Options {
    pam_d: Option<PathBuf>,
    dev_log: Option<PathBuf>,
    binds: Vec<(PathBuf, PathBuf)>,
    program: OsString,
    args: Vec<OsString>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Options, String> {
        let mut pam_d = None;
        let mut dev_log = None;
        let mut binds = Vec::new();
        loop {
            let arg = args.next().ok_or("no program given")?;
            let flag = arg.to_string_lossy().into_owned();
            let mut path = || {
                args.next()
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{flag} needs a path"))
            };
            match flag.as_str() {
                "--pam-d" => pam_d = Some(path()?),
                "--dev-log" => dev_log = Some(path()?),
                "--bind" => {
                    let src = path()?;
                    binds.push((src, path()?));
                }
                "--" => break,
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        let program = args.next().ok_or("no program given")?;
        Ok(Options {
            pam_d,
            dev_log,
            binds,
            program,
            args: args.collect(),
        })
    }
}

fn enter(opts: &Options) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot make a mount namespace (run as root): {e}"))?;
    // Nothing mounted from here on may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make / private: {e}"))?;
    if let Some(dir) = &opts.pam_d {
        bind(dir, Path::new("/etc/pam.d"), false)?;
    }
    if let Some(socket) = &opts.dev_log {
        private_dev(socket)?;
    }
    for (src, dst) in &opts.binds {
        bind(src, dst, false)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args_os().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pam-sandbox: {e}\n\n{USAGE}");
            return ExitCode::from(125);
        }
    };
    if let Err(e) = enter(&opts) {
        eprintln!("pam-sandbox: {e}");
        return ExitCode::from(125);
    }
    let err = Command::new(&opts.program).args(&opts.args).exec();
    eprintln!(
        "pam-sandbox: cannot run {}: {err}",
        opts.program.to_string_lossy()
    );
    ExitCode::from(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn takes_mounts_then_the_command() {
        let o = parse(&[
            "--pam-d",
            "/s/pam.d",
            "--dev-log",
            "/s/log",
            "--bind",
            "/s/sudoers",
            "/etc/sudoers",
            "--",
            "pamtester",
            "--",
            "login",
        ])
        .unwrap();
        assert_eq!(o.pam_d.as_deref(), Some(Path::new("/s/pam.d")));
        assert_eq!(o.dev_log.as_deref(), Some(Path::new("/s/log")));
        assert_eq!(
            o.binds,
            [(PathBuf::from("/s/sudoers"), PathBuf::from("/etc/sudoers"))]
        );
        assert_eq!(o.program, "pamtester");
        assert_eq!(o.args, ["--", "login"]);
    }

    #[test]
    fn refuses_a_missing_command_or_value() {
        assert!(parse(&["--pam-d", "/x"]).is_err());
        assert!(parse(&["--pam-d", "/x", "--"]).is_err());
        assert!(parse(&["--bind", "/only-one"]).is_err());
        assert!(parse(&["--mystery", "--", "true"]).is_err());
    }
}

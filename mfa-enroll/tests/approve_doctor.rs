//! `mfa-enroll approve` and `mfa-enroll doctor` through the real binary,
//! against a throwaway host in a temporary directory.
//!
//! `doctor` also reads the host's `/etc/pam.d`, `/etc/ssh` and sudoers, so
//! it runs in a private mount namespace (`unshare --mount`) where those
//! are a well set-up system made from the shipped examples in `config/`:
//! the only problems it can find are the ones a test makes. The host's
//! files are never changed. Needs root (CI runs as root), util-linux's
//! `unshare` and `setpriv`, and the host's `/etc/ssh` and `/etc/sudoers`
//! to mount over (Debian with openssh-server and sudo, as for the
//! end-to-end tests). Output is pinned by snapshot files under
//! tests/snapshots/; `UPDATE_SNAPSHOTS=1 cargo test` rewrites them.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{
    assert_snapshot, oathtool, set_mode, stderr, stdout, transcript, write, Host, UID, USER,
};
use mfa_core::fsutil::FileTrust;
use mfa_core::store::Store;
use serde_json::Value;

/// A shipped example file from the workspace's `config/`.
fn shipped(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A host with its spool, and under `system/` the files the namespace
/// shows as `/etc/pam.d`, `/etc/ssh` and sudoers.
fn host() -> Host {
    let host = Host::new();
    host.make_spool();
    host.lay_out_system();
    host
}

impl Host {
    /// A Debian-like system with pam_mfa set up from the shipped examples:
    /// the shipped `pam.d/sshd` and `pam.d/sudo` over Debian's
    /// `common-auth`, Debian's `sshd_config` (which says
    /// `KbdInteractiveAuthentication no`) with the shipped drop-in included
    /// first, and sudo asking every time.
    fn lay_out_system(&self) {
        let sys = self.system();
        write(
            &sys.join("pam.d/common-auth"),
            "auth [success=1 default=ignore] pam_unix.so nullok\n\
             auth requisite pam_deny.so\n\
             auth required pam_permit.so\n",
        );
        write(
            &sys.join("pam.d/common-account"),
            "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n\
             account requisite pam_deny.so\n\
             account required pam_permit.so\n",
        );
        write(&sys.join("pam.d/sshd"), &shipped("pam.d/sshd"));
        write(&sys.join("pam.d/sudo"), &shipped("pam.d/sudo"));
        write(
            &sys.join("ssh/sshd_config"),
            "Include /etc/ssh/sshd_config.d/*.conf\n\
             KbdInteractiveAuthentication no\n\
             UsePAM yes\n\
             X11Forwarding yes\n\
             PrintMotd no\n",
        );
        write(
            &sys.join("ssh/sshd_config.d/00-pam_mfa.conf"),
            &shipped("sshd_config.d/00-pam_mfa.conf"),
        );
        write(
            &sys.join("sudoers"),
            "Defaults env_reset\nDefaults timestamp_timeout=0\nroot ALL=(ALL:ALL) ALL\n",
        );
        std::fs::create_dir_all(sys.join("sudoers.d")).unwrap();
    }

    fn system(&self) -> PathBuf {
        self.dir.path().join("system")
    }

    /// `mfa-enroll ARGS` in a private mount namespace that sees `system/`
    /// as `/etc/pam.d`, `/etc/ssh`, `/etc/sudoers` and `/etc/sudoers.d`.
    fn in_system(&self, args: &[&str]) -> Output {
        for needed in ["/etc/pam.d", "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d"] {
            assert!(
                Path::new(needed).exists(),
                "{needed} is missing: the doctor tests mount a test system over it \
                 (Debian with openssh-server and sudo)"
            );
        }
        let script = r#"set -e
s=$1; shift
mount --bind "$s/pam.d" /etc/pam.d
mount --bind "$s/ssh" /etc/ssh
mount --bind "$s/sudoers" /etc/sudoers
mount --bind "$s/sudoers.d" /etc/sudoers.d
exec "$@""#;
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script)
            .arg("sh")
            .arg(self.system())
            .arg(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("unshare (util-linux) is installed")
    }

    /// `doctor --json` in the test system, parsed.
    fn doctor_json(&self) -> (Output, Value) {
        let out = self.in_system(&["doctor", "--json"]);
        let json = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}):\n{}", stdout(&out)));
        (out, json)
    }

    /// `nobody` runs `mfa-enroll enroll --device NAME` and types the app's
    /// code: a pending self-service enrollment. Returns the secret.
    fn user_enrolls_device(&self, name: &str) -> String {
        let mut secret = String::new();
        let (_, done) = self.user_enrolls(&["enroll", "--device", name], name, |s| {
            s.clone_into(&mut secret);
            oathtool(s)
        });
        assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
        secret
    }
}

/// A transcript of a run with the host's directory replaced by `<dir>`,
/// compared with tests/snapshots/`name`.txt.
fn snapshot(host: &Host, name: &str, args: &[&str], out: &Output) {
    let dir = host.dir.path().display().to_string();
    assert_snapshot(
        name,
        &transcript("", args, out, |t| t.replace(&dir, "<dir>")),
    );
}

/// The findings of a `doctor --json` about `area`, as (level, message, fix).
fn findings<'a>(json: &'a Value, area: &str) -> Vec<(&'a str, &'a str, &'a str)> {
    json["findings"]
        .as_array()
        .expect("a findings array")
        .iter()
        .filter(|f| f["area"] == area)
        .map(|f| {
            (
                f["level"].as_str().unwrap(),
                f["message"].as_str().unwrap(),
                f["fix"].as_str().unwrap(),
            )
        })
        .collect()
}

/// The one finding about `area`.
fn finding<'a>(json: &'a Value, area: &str) -> (&'a str, &'a str, &'a str) {
    match findings(json, area).as_slice() {
        [one] => *one,
        other => panic!("expected one finding about {area}, got {other:?} in {json}"),
    }
}

// ---------------------------------------------------------------------------
// approve

#[test]
fn approve_with_nothing_pending_exits_4() {
    let host = host();
    let args = ["approve", "--user", USER];
    let out = host.run(&args);
    snapshot(&host, "approve-nothing-pending", &args, &out);
    assert_eq!(out.status.code(), Some(4));
    assert!(!host.state_dir().join(UID.to_string()).exists());
}

#[test]
fn approve_shows_the_request_and_applies_it_when_told_yes() {
    let host = host();
    host.user_enrolls_device("phone");
    assert_eq!(host.spool_files().len(), 1);
    let request = host.spool_files()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_prefix("65534.")
        .unwrap()
        .to_owned();
    let args = ["approve", "--uid", "65534"];
    let out = host.run_with_input(&args, b"y\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for shown in [
        format!("Request {request} (made "),
        "new device \"phone\": SHA1, 6 digits, 30 s period, secret fingerprint ".to_owned(),
        "with 10 new recovery codes".to_owned(),
        "Apply it to nobody (uid 65534)? [y/N] ".to_owned(),
        "Approved: device \"phone\" of nobody (uid 65534) is active".to_owned(),
    ] {
        assert!(text.contains(&shown), "{shown:?} not in {text}");
    }
    assert!(host.spool_files().is_empty(), "the request is used up");

    let status: Value =
        serde_json::from_slice(&host.ok(&["status", "--uid", "65534", "--json"]).stdout).unwrap();
    assert_eq!(status["enrolled"], true, "{status}");
    assert_eq!(status["devices"][0]["name"], "phone", "{status}");
    assert_eq!(status["recovery_codes_left"], 10, "{status}");
    // The step the user typed at enrollment stays spent.
    assert!(status["devices"][0]["last_used_step"].is_u64(), "{status}");
    // A second approve has nothing left to apply.
    assert_eq!(host.run(&args).status.code(), Some(4));
}

#[test]
fn approve_applies_nothing_unless_told_yes() {
    let host = host();
    host.user_enrolls_device("phone");
    for answer in [&b""[..], b"n\n", b"no\n", b"whatever\n"] {
        let out = host.run_with_input(&["approve", "--user", USER], answer);
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("nothing was applied"),
            "{}",
            stderr(&out)
        );
        assert_eq!(host.spool_files().len(), 1);
        assert!(!host.state_dir().join(UID.to_string()).exists());
    }
    let out = host.run(&["approve", "--user", USER, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("[y/N]"));
    assert!(host.state_dir().join(UID.to_string()).exists());
}

#[test]
fn with_several_requests_approve_lists_them_and_takes_the_one_named() {
    let host = host();
    host.user_enrolls_device("phone");
    host.user_enrolls_device("tablet");
    let files = host.spool_files();
    assert_eq!(files.len(), 2);
    let out = host.run(&["approve", "--user", USER, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("name one with --request"),
        "{}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("\"phone\"") && text.contains("\"tablet\""),
        "{text}"
    );
    // Name the tablet's request.
    let tablet = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_owned())
        .find(|name| {
            text.contains(&format!("Request {} ", &name["65534.".len()..])) && {
                let at = text
                    .find(&format!("Request {} ", &name["65534.".len()..]))
                    .unwrap();
                text[at..].lines().nth(1).unwrap().contains("tablet")
            }
        })
        .expect("the tablet's request is listed");
    let id = &tablet["65534.".len()..];
    let out = host.run(&["approve", "--user", USER, "--yes", "--request", id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status: Value =
        serde_json::from_slice(&host.ok(&["status", "--uid", "65534", "--json"]).stdout).unwrap();
    assert_eq!(status["devices"][0]["name"], "tablet", "{status}");
    assert_eq!(host.spool_files().len(), 1, "the other request waits");
    let out = host.run(&["approve", "--user", USER, "--yes", "--request", "nonesuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn approve_reports_an_unusable_request_and_exits_4() {
    let host = host();
    let junk = host.spool().join("65534.0123456789abcdef");
    std::fs::write(&junk, b"not sealed").unwrap();
    nix::unistd::chown(
        &junk,
        Some(nix::unistd::Uid::from_raw(UID)),
        Some(nix::unistd::Gid::from_raw(UID)),
    )
    .unwrap();
    set_mode(&junk, 0o600);
    let out = host.run(&["approve", "--user", USER]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "Ignored {}: not a pam_mfa pending enrollment",
            junk.display()
        )),
        "{}",
        stdout(&out)
    );
    assert!(!junk.exists(), "the user's unusable file is removed");
    let store = Store::new(host.state_dir(), FileTrust::ROOT);
    let keys =
        mfa_core::keys::MasterKey::load(&host.dir.path().join("keys/master.key"), FileTrust::ROOT)
            .unwrap();
    assert!(store.open_user(UID, &keys).unwrap().record().is_none());
}

#[test]
fn approving_new_recovery_codes_of_a_user_without_a_device_is_refused_with_exit_4() {
    // Exit 4 is documented as "refused: ... the user is already enrolled
    // (or not enrolled)"; 1 would say the operation failed.
    let host = host();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&host.bin)
        .arg("--config")
        .arg(&host.config)
        .args(["recovery-codes", "--regenerate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            // A code of a device the user does not have; only the module
            // could check it, and the request never gets that far.
            child.stdin.take().unwrap().write_all(b"123456\n")?;
            child.wait_with_output()
        })
        .expect("setpriv (util-linux) is installed");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = host.run(&["approve", "--user", USER, "--yes"]);
    assert!(
        stderr(&out).contains("recovery codes of a user with no device"),
        "{}",
        stderr(&out)
    );
    assert!(!host.state_dir().join(UID.to_string()).exists());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn approve_and_doctor_need_root() {
    let host = host();
    for args in [&["approve", "--user", USER][..], &["doctor"]] {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&host.bin)
            .arg("--config")
            .arg(&host.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("setpriv (util-linux) is installed");
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("must run as root"),
            "{}",
            stderr(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// doctor

#[test]
fn doctor_passes_a_host_set_up_from_the_shipped_examples() {
    let host = host();
    let out = host.in_system(&["doctor"]);
    snapshot(&host, "doctor-good-host", &["doctor"], &out);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stdout(&out).contains("[error]"), "{}", stdout(&out));
}

#[test]
fn doctor_reports_config_keys_state_directory_and_spool() {
    let host = host();
    let (_, json) = host.doctor_json();
    let d = host.dir.path().display().to_string();
    assert_eq!(
        finding(&json, "config"),
        (
            "ok",
            format!("{} is valid", host.config.display()).as_str(),
            ""
        )
    );
    let key = finding(&json, "master key");
    assert_eq!(key.0, "ok", "{json}");
    assert!(key.1.contains(&format!("{d}/keys/master.key")), "{json}");
    assert_eq!(finding(&json, "enrollment key").0, "ok", "{json}");
    let state = finding(&json, "state directory");
    assert_eq!(state.0, "ok", "{json}");
    assert!(state.1.contains(&format!("{d}/state/users")), "{json}");
    let spool = finding(&json, "spool");
    assert_eq!(spool.0, "ok", "{json}");
    assert!(spool.1.contains(&format!("{d}/spool")), "{json}");
}

#[test]
fn doctor_json_lists_findings_with_level_area_message_and_fix_and_counts_errors() {
    let host = host();
    set_mode(&host.state_dir(), 0o777);
    let (out, json) = host.doctor_json();
    assert_eq!(out.status.code(), Some(1));
    let object = json.as_object().expect("one JSON object");
    let mut keys: Vec<_> = object.keys().collect();
    keys.sort();
    assert_eq!(keys, ["errors", "findings"], "{json}");
    let list = json["findings"].as_array().unwrap();
    assert!(!list.is_empty());
    for f in list {
        let mut keys: Vec<_> = f
            .as_object()
            .expect("findings are objects")
            .keys()
            .collect();
        keys.sort();
        assert_eq!(keys, ["area", "fix", "level", "message"], "{f}");
        assert!(
            ["ok", "info", "warning", "error"].contains(&f["level"].as_str().unwrap()),
            "{f}"
        );
        assert!(!f["area"].as_str().unwrap().is_empty(), "{f}");
        assert!(!f["message"].as_str().unwrap().is_empty(), "{f}");
        let fix = f["fix"].as_str().expect("fix is a string");
        match f["level"].as_str().unwrap() {
            "ok" => assert!(fix.is_empty(), "nothing to fix: {f}"),
            "warning" | "error" => assert!(!fix.is_empty(), "a fix for every problem: {f}"),
            _ => {}
        }
    }
    let errors = list.iter().filter(|f| f["level"] == "error").count();
    assert_eq!(json["errors"], errors, "{json}");
    assert_eq!(errors, 1, "{json}");
    // Nothing but the JSON object on stdout; the summary on stderr.
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(stderr(&out).contains("1 problem found"), "{}", stderr(&out));
}

#[test]
fn a_world_writable_state_directory_makes_doctor_exit_1_with_the_fix() {
    let host = host();
    set_mode(&host.state_dir(), 0o777);
    let out = host.in_system(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let state = format!("[error] state directory: {}", host.state_dir().display());
    assert!(text.contains(&state), "{text}");
    let fix_line = text
        .lines()
        .skip_while(|l| !l.starts_with(&state))
        .nth(1)
        .unwrap_or_default();
    assert!(fix_line.starts_with("    fix: "), "{text}");
}

#[test]
fn the_fix_doctor_prints_for_a_world_writable_state_directory_repairs_it() {
    let host = host();
    set_mode(&host.state_dir(), 0o777);
    let (_, json) = host.doctor_json();
    let (level, _, fix) = finding(&json, "state directory");
    assert_eq!(level, "error", "{json}");
    // An administrator pastes the fix into a root shell.
    let ran = Command::new("sh").args(["-c", fix]).output().unwrap();
    assert!(ran.status.success(), "{fix}: {}", stderr(&ran));
    let (out, json) = host.doctor_json();
    assert_eq!(
        finding(&json, "state directory").0,
        "ok",
        "after `{fix}` the state directory is still refused:\n{json}"
    );
    assert_eq!(out.status.code(), Some(0), "{json}");
}

#[test]
fn a_missing_spool_is_a_warning_whose_fix_makes_it() {
    let host = host();
    std::fs::remove_dir(host.spool()).unwrap();
    let (out, json) = host.doctor_json();
    assert_eq!(out.status.code(), Some(0), "only a warning: {json}");
    let (level, message, fix) = finding(&json, "spool");
    assert_eq!(level, "warning", "{json}");
    assert!(
        message.contains(&host.spool().display().to_string()),
        "{json}"
    );
    let ran = Command::new("sh").args(["-c", fix]).output().unwrap();
    assert!(ran.status.success(), "{fix}: {}", stderr(&ran));
    let (_, json) = host.doctor_json();
    assert_eq!(finding(&json, "spool").0, "ok", "after `{fix}`: {json}");
    let meta = std::fs::symlink_metadata(host.spool()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o1733);
}

#[test]
fn a_spool_users_can_list_is_reported() {
    // 1777 lets every user list who has an enrollment waiting (DESIGN.md:
    // "users may create, not list"; mode 1733).
    let host = host();
    set_mode(&host.spool(), 0o1777);
    let (_, json) = host.doctor_json();
    let (level, message, fix) = finding(&json, "spool");
    assert_ne!(level, "ok", "a listable spool passes: {message} {json}");
    assert!(fix.contains("1733"), "{json}");
}

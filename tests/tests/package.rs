//! The Debian package, end to end: `make deb` builds it (release binaries,
//! in the target directory cargo uses), debootstrap makes a clean Debian 12
//! (minbase, plus pamtester and oathtool), and inside that system the test
//! installs the package with apt-get, checks every file's owner and mode,
//! the master key and the state directories, enables the profile with
//! pam-auth-update, enrolls a user with the installed mfa-enroll, logs in
//! through the installed module with pamtester (password, then a code from
//! oathtool), removes the package and purges it, and checks what is left.
//! A second test runs the console examples of README.md and
//! docs/guide-sshd-sudo.md in such a system, as written, and compares their
//! output with the pages (`pam_mfa_e2e::docs`).
//!
//! Needs root, `debootstrap` and `make`, and on the first run the Debian
//! mirror (`PAM_MFA_DEBIAN_MIRROR`, default `http://deb.debian.org/debian`):
//! the downloaded packages are kept as a debootstrap tarball in
//! `<target>/package-test/`, so later runs only unpack it. Every command in
//! the new system runs in a private mount namespace (pam-sandbox), so the
//! `/proc` and `/dev` mounted for it disappear with the command, also when
//! the test fails or is killed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::libc;
use pam_mfa_e2e::docs;
use pam_mfa_e2e::process::{self, Run};
use pam_mfa_e2e::{require_root, sandbox, Sandbox};
use serde_json::Value;

/// The release the package is built for.
const SUITE: &str = "bookworm";
/// Installed next to minbase: the PAM application and the independent TOTP
/// implementation the login is checked with.
const INCLUDE: &str = "pamtester,oathtool";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// debootstrap, apt-get and `make deb` (a cold release build) may be slow.
const SLOW: Duration = Duration::from_secs(1800);
const WAIT_FOR_LOG: Duration = Duration::from_secs(10);

const USER: &str = "alice";
const PASSWORD: &str = "package-test-Pw-1";
/// The service the test logs in to: the stacks pam-auth-update manages.
const SERVICE: &str = "mfa-test";
const SERVICE_STACK: &str = "@include common-auth\n@include common-account\n";
const CODE_PROMPT: &str = "Verification code: ";

const KEY_DIR: &str = "/etc/security/pam_mfa";
const KEY_FILE: &str = "/etc/security/pam_mfa/master.key";
const ENROLL_PUB: &str = "/etc/security/pam_mfa/enroll.pub";
const CONFIG: &str = "/etc/security/pam_mfa.toml";
const STATE_DIR: &str = "/var/lib/pam_mfa/users";
const SPOOL_DIR: &str = "/var/spool/pam_mfa";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Runs `cmd` (with empty stdin) and fails the test unless it succeeds.
fn must(cmd: Command) -> Run {
    let run = process::run(cmd, b"");
    run.assert_success();
    run
}

/// `make deb` in the workspace, once for all tests of this file: builds
/// (or finds up to date) the package and returns its path.
fn make_deb() -> PathBuf {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(build_deb).clone()
}

fn build_deb() -> PathBuf {
    let started = Instant::now();
    let mut make = process::with_deadline(SLOW, "make");
    make.arg("-C").arg(workspace()).arg("deb");
    must(make);
    let mut path = process::with_deadline(SLOW, "packaging/build-deb");
    path.current_dir(workspace()).arg("--path");
    let deb = PathBuf::from(must(path).stdout.trim());
    assert!(deb.is_file(), "make deb did not write {}", deb.display());
    eprintln!("make deb took {:.0?}", started.elapsed());
    deb
}

fn host_multiarch() -> String {
    let mut cmd = process::with_deadline(SLOW, "dpkg-architecture");
    cmd.arg("-qDEB_HOST_MULTIARCH");
    must(cmd).stdout.trim().to_owned()
}

/// The debootstrap tarball of minbase plus [`INCLUDE`], downloaded once
/// into `cache` and reused. The tests of this file run in parallel and share
/// one process id, so the download is serialised: a second test waits for
/// the first one's tarball instead of downloading into the same directory.
fn debootstrap_tarball(sb: &Sandbox, cache: &Path) -> PathBuf {
    static DOWNLOAD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = DOWNLOAD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tarball = cache.join(format!(
        "debootstrap-{SUITE}-minbase-{}.tgz",
        INCLUDE.replace(',', "-")
    ));
    if tarball.is_file() {
        return tarball;
    }
    let partial = cache.join(format!("debootstrap.{}.partial.tgz", std::process::id()));
    let scratch = cache.join(format!("debootstrap.{}.download", std::process::id()));
    let started = Instant::now();
    let mut cmd = sb.command("debootstrap");
    cmd.arg("--variant=minbase")
        .arg(format!("--include={INCLUDE}"))
        .arg(format!("--make-tarball={}", partial.display()))
        .arg(SUITE)
        .arg(&scratch)
        .arg(mirror());
    let run = process::run(cmd, b"");
    let _ = fs::remove_dir_all(&scratch);
    if !run.success() {
        let _ = fs::remove_file(&partial);
        panic!("debootstrap could not download {SUITE}:\n{run}");
    }
    fs::rename(&partial, &tarball).expect("cannot keep the debootstrap tarball");
    eprintln!("debootstrap --make-tarball took {:.0?}", started.elapsed());
    tarball
}

fn mirror() -> String {
    std::env::var("PAM_MFA_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_owned())
}

/// Enters the system in `$1`: `/proc` and the namespace's `/dev` (with the
/// sandbox's syslog socket as `/dev/log`) mounted into it, a clean
/// environment, then the command.
const ENTER: &str = r#"set -e
root=$1
shift
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
exec chroot "$root" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@""#;

/// A Debian system made by debootstrap in a directory under the target
/// directory, removed when dropped.
struct System {
    sb: Sandbox,
    root: Option<tempfile::TempDir>,
}

impl System {
    fn new(cache: &Path) -> System {
        let sb = sandbox!().with_deadline(SLOW);
        let tarball = debootstrap_tarball(&sb, cache);
        let root = tempfile::Builder::new()
            .prefix("root.")
            .tempdir_in(cache)
            .expect("cannot make the system's directory");
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755))
            .expect("cannot chmod the system's directory");
        let system = System {
            sb,
            root: Some(root),
        };
        let started = Instant::now();
        let mut cmd = system.sb.command("debootstrap");
        cmd.arg("--variant=minbase")
            .arg(format!("--unpack-tarball={}", tarball.display()))
            .arg(SUITE)
            .arg(system.root())
            .arg(mirror());
        must(cmd);
        eprintln!(
            "debootstrap --unpack-tarball took {:.0?}",
            started.elapsed()
        );
        system
    }

    fn root(&self) -> &Path {
        self.root.as_ref().expect("present until dropped").path()
    }

    /// `path` inside the system, as the host sees it.
    fn host_path(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = self.sb.command("sh");
        cmd.arg("-c")
            .arg(ENTER)
            .arg("enter")
            .arg(self.root())
            .arg(program);
        cmd
    }

    /// Runs `program` with `args` inside, with empty stdin.
    fn run(&self, program: &str, args: &[&str]) -> Run {
        let mut cmd = self.command(program);
        cmd.args(args);
        process::run(cmd, b"")
    }

    /// Runs a shell script inside.
    fn sh(&self, script: &str) -> Run {
        self.run("sh", &["-ec", script])
    }

    fn must(&self, program: &str, args: &[&str]) -> Run {
        let run = self.run(program, args);
        run.assert_success();
        run
    }

    fn must_sh(&self, script: &str) -> Run {
        let run = self.sh(script);
        run.assert_success();
        run
    }

    fn exists(&self, path: &str) -> bool {
        fs::symlink_metadata(self.host_path(path)).is_ok()
    }

    fn read(&self, path: &str) -> String {
        fs::read_to_string(self.host_path(path))
            .unwrap_or_else(|e| panic!("cannot read {path} in the system: {e}"))
    }

    /// `owner:group mode type` of `path`, from stat inside the system.
    fn stat(&self, path: &str) -> String {
        let run = self.must("stat", &["-c", "%U:%G %a %F", path]);
        run.stdout.trim().to_owned()
    }

    /// `pamtester -v SERVICE USER OPS...` inside, each answer written only
    /// after pamtester read the one before: its conversation reads a whole
    /// pipe buffer per prompt, so answers written at once would become one.
    fn pamtester(&self, ops: &[&str], answers: &[&str]) -> Run {
        let mut cmd = self.command("pamtester");
        cmd.arg("-v").arg(SERVICE).arg(USER).args(ops);
        let command = process::render(&cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let stdout = drain(child.stdout.take().expect("piped"));
        let stderr = drain(child.stderr.take().expect("piped"));
        let mut pipe = child.stdin.take().expect("piped");
        for answer in answers {
            let written = pipe
                .write_all(format!("{answer}\n").as_bytes())
                .and_then(|()| pipe.flush());
            if written.is_err() {
                break; // it exited; the transcript says why
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                let exited = child.try_wait().map_or(true, |s| s.is_some());
                if exited || unread(&pipe).map_or(true, |n| n == 0) {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        drop(pipe);
        let status = child.wait().expect("cannot wait for pamtester");
        Run {
            command,
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }

    /// A TOTP code from oathtool inside the system.
    fn code(&self, secret: &str) -> String {
        let run = self.must("oathtool", &["--totp", "--base32", secret]);
        run.stdout.trim().to_owned()
    }

    /// The lines of a PAM file that are not comments or blank.
    fn pam_lines(&self, file: &str) -> Vec<String> {
        self.read(file)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let Some(root) = self.root.take() else {
            return;
        };
        // Commands mount only in their own namespaces, so nothing can be
        // mounted below the root here; if something is, deleting would
        // reach into it, so the directory is left for a person to look at.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = root.path().to_string_lossy().into_owned();
        if mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|m| m.starts_with(&prefix))
        {
            eprintln!("warning: something is mounted below {prefix}; left in place");
            let _ = root.keep();
        }
    }
}

fn drain(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Bytes written to `pipe` that the reader has not taken yet.
fn unread(pipe: &ChildStdin) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores one int through the pointer, which points to
    // a live c_int; the descriptor is the open write end of our pipe.
    let rc = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Every regular file the package must hold, with its mode (all owned by
/// root:root); the documents and examples as the repository has them.
fn expected_files(multiarch: &str) -> BTreeMap<String, &'static str> {
    let mut files: BTreeMap<String, &'static str> = [
        (CONFIG.to_owned(), "644"),
        ("/usr/bin/mfa-enroll".to_owned(), "755"),
        (format!("/usr/lib/{multiarch}/security/pam_mfa.so"), "644"),
        ("/usr/lib/tmpfiles.d/pam-mfa.conf".to_owned(), "644"),
        ("/usr/share/pam-configs/pam_mfa".to_owned(), "644"),
        ("/usr/share/man/man1/mfa-enroll.1.gz".to_owned(), "644"),
        ("/usr/share/man/man5/pam_mfa.toml.5.gz".to_owned(), "644"),
        ("/usr/share/man/man8/pam_mfa.8.gz".to_owned(), "644"),
        (
            "/usr/share/bash-completion/completions/mfa-enroll".to_owned(),
            "644",
        ),
        (
            "/usr/share/zsh/vendor-completions/_mfa-enroll".to_owned(),
            "644",
        ),
        (
            "/usr/share/fish/vendor_completions.d/mfa-enroll.fish".to_owned(),
            "644",
        ),
        ("/usr/share/doc/pam-mfa/README.md".to_owned(), "644"),
        ("/usr/share/doc/pam-mfa/copyright".to_owned(), "644"),
        (
            "/usr/share/doc/pam-mfa/changelog.Debian.gz".to_owned(),
            "644",
        ),
        ("/usr/share/lintian/overrides/pam-mfa".to_owned(), "644"),
    ]
    .into_iter()
    .collect();
    let names = |dir: &str, suffix: &str| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(workspace().join(dir))
            .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
            .map(|e| e.expect("a directory entry").file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.ends_with(suffix))
            .collect();
        names.sort();
        names
    };
    for page in names("docs", ".md") {
        files.insert(format!("/usr/share/doc/pam-mfa/{page}"), "644");
    }
    for example in names("config/pam.d", "") {
        files.insert(
            format!("/usr/share/doc/pam-mfa/examples/pam.d/{example}"),
            "644",
        );
    }
    for example in names("config/sshd_config.d", "") {
        files.insert(
            format!("/usr/share/doc/pam-mfa/examples/sshd_config.d/{example}"),
            "644",
        );
    }
    files
}

/// `dpkg -L pam-mfa` with stat: every file is expected, with its mode,
/// every directory is root 0755, nothing else is there.
fn check_installed_files(system: &System, multiarch: &str) {
    let listing = system.must_sh(
        "dpkg -L pam-mfa | while read -r path; do stat -c '%U:%G %a %F %n' \"$path\"; done",
    );
    let mut files = BTreeMap::new();
    for line in listing.stdout.lines() {
        let mut words = line.splitn(4, ' ');
        let (owner, mode) = (words.next().unwrap(), words.next().unwrap());
        let rest = words.collect::<Vec<_>>().join(" ");
        assert_eq!(owner, "root:root", "{line}");
        if let Some(dir) = rest.strip_prefix("directory ") {
            assert_eq!(mode, "755", "directory {dir}: {line}");
        } else if let Some(file) = rest.strip_prefix("regular file ") {
            files.insert(file.to_owned(), mode.to_owned());
        } else {
            panic!("neither a directory nor a regular file: {line}");
        }
    }
    let expected: BTreeMap<String, String> = expected_files(multiarch)
        .into_iter()
        .map(|(path, mode)| (path, mode.to_owned()))
        .collect();
    assert_eq!(files, expected, "the package's files and modes\n{listing}");

    let conffiles = system.must("dpkg-query", &["-W", "-f=${Conffiles}", "pam-mfa"]);
    let conffiles: Vec<&str> = conffiles
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        conffiles,
        [CONFIG],
        "the configuration is the only conffile"
    );
    assert_eq!(
        system.read(CONFIG),
        fs::read_to_string(workspace().join("config/pam_mfa.toml")).unwrap(),
        "the installed configuration is config/pam_mfa.toml"
    );
    system.must_sh(
        "for page in /usr/share/man/man*/mfa-enroll.1.gz /usr/share/man/man*/pam_mfa*.gz \
         /usr/share/doc/pam-mfa/changelog.Debian.gz; do gzip -t \"$page\"; done",
    );
    let version = system.must("mfa-enroll", &["--version"]);
    assert!(version.stdout.starts_with("mfa-enroll "), "{version}");
}

/// The master key and the directories the maintainer scripts made.
fn check_state_layout(system: &System) {
    for (path, want) in [
        (KEY_DIR, "root:root 755 directory"),
        (KEY_FILE, "root:root 600 regular file"),
        (ENROLL_PUB, "root:root 644 regular file"),
        ("/var/lib/pam_mfa", "root:root 755 directory"),
        (STATE_DIR, "root:root 700 directory"),
        (SPOOL_DIR, "root:root 1733 directory"),
    ] {
        assert_eq!(system.stat(path), want, "{path}");
    }
}

/// Indexes of the first line loading each module, in `lines`.
fn position(lines: &[String], module: &str) -> usize {
    lines
        .iter()
        .position(|l| l.split_whitespace().any(|w| w == module))
        .unwrap_or_else(|| panic!("no {module} in:\n{}", lines.join("\n")))
}

fn control_of<'a>(lines: &'a [String], module: &str) -> &'a str {
    let line = &lines[position(lines, module)];
    let mut words = line.split_whitespace().skip(1);
    let control = words.next().unwrap_or_default();
    if control.starts_with('[') {
        // A bracketed control may have spaces in it.
        let end = line.find(']').expect("a closing bracket");
        let start = line.find('[').expect("an opening bracket");
        &line[start..=end]
    } else {
        control
    }
}

/// Removes the package with a stack edited by hand still loading the
/// module: prerm must warn about it.
fn remove_warning_about_a_hand_edited_stack(system: &System) {
    let hand_edited = "/etc/pam.d/mfa-by-hand";
    fs::write(
        system.host_path(hand_edited),
        "@include common-auth\nauth required pam_mfa.so\n",
    )
    .unwrap();
    let remove = system.must("apt-get", &["remove", "-y", "pam-mfa"]);
    // apt may run dpkg on a pty, which merges the maintainer script's stderr
    // into stdout.
    let said = format!("{}{}", remove.stdout, remove.stderr);
    assert!(
        said.contains("still load pam_mfa.so") && said.contains(hand_edited),
        "prerm warns about {hand_edited}\n{remove}"
    );
    fs::remove_file(system.host_path(hand_edited)).unwrap();
}

fn check_enabled_stacks(system: &System) {
    let auth = system.pam_lines("/etc/pam.d/common-auth");
    let (unix, deny, permit, mfa) = (
        position(&auth, "pam_unix.so"),
        position(&auth, "pam_deny.so"),
        position(&auth, "pam_permit.so"),
        position(&auth, "pam_mfa.so"),
    );
    assert!(
        unix < deny && deny < permit && permit < mfa,
        "pam_mfa comes after the primary block (pam_unix, pam_deny, pam_permit):\n{}",
        auth.join("\n")
    );
    assert_eq!(control_of(&auth, "pam_mfa.so"), "requisite");
    assert!(auth[mfa].starts_with("auth"), "{}", auth[mfa]);
    let account = system.pam_lines("/etc/pam.d/common-account");
    assert!(
        position(&account, "pam_unix.so") < position(&account, "pam_mfa.so"),
        "{}",
        account.join("\n")
    );
    assert_eq!(control_of(&account, "pam_mfa.so"), "required");
    // The account part saves a device enrolled at the prompt whatever the
    // modules after it decide, so it runs last (the profile's Priority 0).
    assert_eq!(
        account.iter().rposition(|l| l.starts_with("account")),
        Some(position(&account, "pam_mfa.so")),
        "pam_mfa's account line is the last one:\n{}",
        account.join("\n")
    );
}

fn no_pam_mfa_in_stacks(system: &System) {
    for file in ["/etc/pam.d/common-auth", "/etc/pam.d/common-account"] {
        let lines = system.pam_lines(file);
        assert!(
            !lines.iter().any(|l| l.contains("pam_mfa")),
            "{file}:\n{}",
            lines.join("\n")
        );
    }
}

/// Enrolls [`USER`] with the installed mfa-enroll; returns the secret, the
/// first recovery code and the uid.
fn enroll(system: &System) -> (String, String, u64) {
    system.must_sh(&format!(
        "useradd --create-home --shell /bin/sh {USER}\n\
         echo '{USER}:{PASSWORD}' | chpasswd\n\
         printf '{}' > /etc/pam.d/{SERVICE}",
        SERVICE_STACK.replace('\n', "\\n")
    ));
    let run = system.must("mfa-enroll", &["enroll", "--user", USER, "--json"]);
    let json: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{run}"));
    assert_eq!(json["user"], USER, "{run}");
    let secret = json["secret"].as_str().expect("a secret").to_owned();
    let recovery = json["recovery_codes"][0]
        .as_str()
        .expect("a recovery code")
        .to_owned();
    let uid = json["uid"].as_u64().expect("a uid");
    assert_eq!(
        system.stat(&format!("{STATE_DIR}/{uid}")),
        "root:root 600 regular file"
    );
    (secret, recovery, uid)
}

/// Whether pamtester showed pam_mfa's prompt (`libpam_misc` writes prompts
/// to stderr).
fn asked(run: &Run) -> bool {
    run.stderr.contains(CODE_PROMPT) || run.stdout.contains(CODE_PROMPT)
}

fn check_logins(system: &System, secret: &str, recovery: &str) {
    let code = system.code(secret);
    let first = system.pamtester(&["authenticate", "acct_mgmt"], &[PASSWORD, &code]);
    first.assert_success();
    assert!(asked(&first), "asked for the code\n{first}");
    assert!(
        first.stdout.contains("successfully authenticated"),
        "{first}"
    );
    system
        .sb
        .syslog()
        .wait_for(
            |l| {
                l.tag == "pam_mfa"
                    && l.message.starts_with("event=auth_success")
                    && l.message.contains(&format!("service={SERVICE}"))
            },
            WAIT_FOR_LOG,
        )
        .expect("the installed module logs the success");

    let replay = system.pamtester(&["authenticate"], &[PASSWORD, &code]);
    replay.assert_failure();
    assert!(asked(&replay), "{replay}");

    let wrong_password = system.pamtester(&["authenticate"], &["not the password", &code]);
    wrong_password.assert_failure();
    assert!(
        !asked(&wrong_password),
        "pam_mfa must not ask after a wrong password\n{wrong_password}"
    );

    let with_recovery = system.pamtester(&["authenticate"], &[PASSWORD, recovery]);
    with_recovery.assert_success();
    assert!(
        with_recovery.stdout.contains("9 recovery codes left"),
        "{with_recovery}"
    );
}

/// `apt-get install` of a local file, without questions.
fn apt_install(system: &System, args: &[&str]) -> Run {
    let mut all = vec![
        "install",
        "-y",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ];
    all.extend_from_slice(args);
    all.push("/tmp/pam-mfa.deb");
    system.must("apt-get", &all)
}

#[test]
fn the_package_installs_enables_logs_in_removes_and_purges() {
    require_root();
    let started = Instant::now();
    let deb = make_deb();
    let cache = deb
        .parent()
        .and_then(Path::parent)
        .expect("the package is in <target>/debian/")
        .join("package-test");
    fs::create_dir_all(&cache).expect("cannot make the test's cache directory");
    let multiarch = host_multiarch();
    let system = System::new(&cache);
    fs::copy(&deb, system.host_path("/tmp/pam-mfa.deb")).expect("cannot copy the package in");

    // Install: files, modes, the key, the state directories; PAM untouched.
    let install = apt_install(&system, &[]);
    assert!(
        install
            .stdout
            .contains(&format!("Created the master key {KEY_FILE}")),
        "postinst creates the master key\n{install}"
    );
    check_installed_files(&system, &multiarch);
    check_state_layout(&system);
    no_pam_mfa_in_stacks(&system);
    assert!(
        system
            .read("/var/lib/pam/seen")
            .lines()
            .any(|l| l == "pam_mfa"),
        "postinst registered the profile with pam-auth-update"
    );

    // Reinstalling keeps the key and the administrator's configuration.
    let key = system.read(KEY_FILE);
    let enroll_pub = system.read(ENROLL_PUB);
    let edited = format!("{}\n# changed by the administrator\n", system.read(CONFIG));
    fs::write(system.host_path(CONFIG), &edited).unwrap();
    let again = apt_install(&system, &["--reinstall"]);
    assert!(!again.stdout.contains("Created the master key"), "{again}");
    assert_eq!(system.read(KEY_FILE), key, "the master key was replaced");
    assert_eq!(system.read(CONFIG), edited, "the conffile was replaced");
    check_state_layout(&system);

    // Enable, enroll, log in through the installed module.
    system.must("pam-auth-update", &["--enable", "pam_mfa"]);
    check_enabled_stacks(&system);
    let (secret, recovery, uid) = enroll(&system);
    check_logins(&system, &secret, &recovery);
    let record = format!("{STATE_DIR}/{uid}");

    // Remove: out of the stacks; configuration, key and records kept; a
    // stack edited by hand is left alone, with a warning.
    remove_warning_about_a_hand_edited_stack(&system);
    no_pam_mfa_in_stacks(&system);
    let status = system.must("dpkg-query", &["-W", "-f=${db:Status-Abbrev}", "pam-mfa"]);
    assert_eq!(status.stdout.trim(), "rc", "removed, config files kept");
    for gone in [
        "/usr/bin/mfa-enroll".to_owned(),
        format!("/usr/lib/{multiarch}/security/pam_mfa.so"),
        "/usr/share/pam-configs/pam_mfa".to_owned(),
    ] {
        assert!(!system.exists(&gone), "{gone} is still there after remove");
    }
    assert_eq!(system.read(CONFIG), edited);
    assert_eq!(system.read(KEY_FILE), key);
    check_state_layout(&system);
    assert!(system.exists(&record), "{record} is kept on remove");
    let password_only = system.pamtester(&["authenticate", "acct_mgmt"], &[PASSWORD]);
    password_only.assert_success();
    assert!(!asked(&password_only), "{password_only}");

    // Purge: configuration, key and spool gone; the records kept, and said so.
    let purge = system.must("apt-get", &["purge", "-y", "pam-mfa"]);
    assert!(
        purge
            .stdout
            .contains("kept the users' MFA records in /var/lib/pam_mfa"),
        "{purge}"
    );
    let status = system.run("dpkg-query", &["-W", "-f=${db:Status-Abbrev}", "pam-mfa"]);
    assert!(
        !status.success() || status.stdout.trim() == "un",
        "purged\n{status}"
    );
    for gone in [CONFIG, KEY_DIR, SPOOL_DIR] {
        assert!(!system.exists(gone), "{gone} is still there after purge");
    }
    assert_eq!(system.stat(STATE_DIR), "root:root 700 directory");
    assert_eq!(system.stat(&record), "root:root 600 regular file");

    // What is left: only the records, and nothing in /etc mentions pam_mfa.
    let left = system.must_sh(
        "find / -xdev \\( -name '*pam_mfa*' -o -name '*pam-mfa*' \\) \
         ! -path /tmp/pam-mfa.deb -print | sort",
    );
    assert_eq!(
        left.stdout.lines().collect::<Vec<_>>(),
        ["/var/lib/pam_mfa"],
        "{left}"
    );
    let mentions = system.sh("grep -rl pam_mfa /etc || true");
    assert_eq!(mentions.stdout, "", "{mentions}");

    reinstall_over_kept_records(&system, &key, &enroll_pub);
    eprintln!("the package test took {:.0?}", started.elapsed());
}

/// Installs again after the purge, with the enrolled user's record still
/// in the state directory: the postinst must not make a new key (which
/// would open none of the records and lock the user out), must say how
/// many records there are and how to get out, and `mfa-enroll doctor` must
/// report them as an error with their count. Restoring the old key from the
/// backup then opens the record again.
fn reinstall_over_kept_records(system: &System, key: &str, enroll_pub: &str) {
    let install = apt_install(system, &[]);
    // apt may run dpkg on a pty, which merges the script's stderr into stdout.
    let said = format!("{}{}", install.stdout, install.stderr);
    assert!(
        !said.contains("Created the master key") && !system.exists(KEY_FILE),
        "postinst made a new key over records it cannot open\n{install}"
    );
    assert!(
        said.contains(&format!("{STATE_DIR} holds 1 MFA record "))
            && said.contains("restore")
            && said.contains("mfa-enroll reset"),
        "postinst says how many records and the way out\n{install}"
    );
    check_installed_files(system, &host_multiarch());

    let doctor = system.run("mfa-enroll", &["doctor"]);
    assert!(!doctor.success(), "doctor finds errors\n{doctor}");
    assert!(
        doctor.stdout.contains(&format!(
            "[error] records: 1 record in {STATE_DIR} is sealed under a master key this host does not have"
        )),
        "doctor reports the record and its count\n{doctor}"
    );

    // The way back: the key (and enroll.pub) from the backup.
    fs::create_dir_all(system.host_path(KEY_DIR)).unwrap();
    fs::write(system.host_path(KEY_FILE), key).unwrap();
    fs::set_permissions(
        system.host_path(KEY_FILE),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::write(system.host_path(ENROLL_PUB), enroll_pub).unwrap();
    check_state_layout(system);
    let doctor = system.run("mfa-enroll", &["doctor"]);
    assert!(
        doctor.stdout.contains(&format!(
            "[ok] records: 1 record in {STATE_DIR} is sealed under generations that {KEY_FILE} holds"
        )),
        "{doctor}"
    );
    // The record opens again, with the state it had: one recovery code used.
    let status = system.must("mfa-enroll", &["status", "--user", USER, "--json"]);
    let json: Value = serde_json::from_str(status.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{status}"));
    assert_eq!(json["recovery_codes_left"], 9, "{status}");
}

/// Lintian reports no tag at all, informational, pedantic and experimental
/// ones included: each tag it would report is overridden in
/// packaging/lintian-overrides with its reason (see
/// packaging/lintian-notes.md).
#[test]
fn the_package_is_lintian_clean() {
    require_root();
    let deb = make_deb();
    let mut cmd = process::with_deadline(SLOW, "lintian");
    cmd.args([
        "--display-info",
        "--pedantic",
        "--display-experimental",
        "--fail-on",
        "error,warning,info,pedantic,experimental",
    ])
    .arg(&deb);
    let run = process::run(cmd, b"");
    let tags: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| {
            ["E: ", "W: ", "I: ", "P: ", "X: "]
                .iter()
                .any(|t| l.starts_with(t))
        })
        .collect();
    assert!(run.success() && tags.is_empty(), "{run}");
}

/// The console examples of README.md and docs/guide-sshd-sudo.md, run as
/// written in a clean Debian 12 with the package installed, in page order
/// (README first), each compared with the output the page shows (see
/// `pam_mfa_e2e::docs` for the placeholders). The pages' own words say
/// what to do before an example (install the package, create the user,
/// edit a stack); where a step is described rather than shown, a
/// `doc-test setup` comment in the page does it.
#[test]
fn the_readme_and_the_guide_console_examples_print_what_they_show() {
    require_root();
    let deb = make_deb();
    let cache = deb
        .parent()
        .and_then(Path::parent)
        .expect("the package is in <target>/debian/")
        .join("package-test");
    fs::create_dir_all(&cache).expect("cannot make the test's cache directory");
    let system = System::new(&cache);
    fs::copy(&deb, system.host_path("/tmp/pam-mfa.deb")).expect("cannot copy the package in");
    // README's Quickstart: `make install`, which ends in this.
    apt_install(&system, &[]);
    // The guide's user, with a password and a home, as on a real host.
    system.must_sh(&format!(
        "useradd --create-home --shell /bin/sh {USER}\necho '{USER}:{PASSWORD}' | chpasswd"
    ));

    let mut ran = 0;
    let mut mismatches = Vec::new();
    for page in ["README.md", "docs/guide-sshd-sudo.md"] {
        for example in docs::examples(&workspace().join(page)) {
            if let Some(setup) = &example.setup {
                system.must_sh(setup);
            }
            let output = run_example(&system, &example);
            ran += 1;
            if let Err(mismatch) = example.compare(&output) {
                mismatches.push(mismatch.to_string());
            }
        }
    }
    assert!(ran > 0, "no console examples found");
    assert!(
        mismatches.is_empty(),
        "{} of {ran} console examples differ from their pages:\n\n{}",
        mismatches.len(),
        mismatches.join("\n\n")
    );
}

/// Runs one example inside `system`, as root or as [`USER`], and returns
/// what it printed (stdout and stderr in order). An example that types a
/// code gets the one oathtool computes for the secret it printed, once its
/// prompt appeared; the code is put into the output after the prompt, as a
/// terminal's echo would show it.
fn run_example(system: &System, example: &docs::Example) -> String {
    let script = format!("exec 2>&1\n{}", example.command);
    let mut cmd = system.command("timeout");
    cmd.args(["--signal=KILL", "120"]);
    if example.who == docs::As::User {
        cmd.args(["runuser", "-u", USER, "--"]);
    }
    cmd.args(["sh", "-c", &script]);
    let command = format!("{} ({})", example.command, example.place());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    let output = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let output = Arc::clone(&output);
        let mut stdout = child.stdout.take().expect("piped");
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                output
                    .lock()
                    .expect("not poisoned")
                    .extend_from_slice(&chunk[..n]);
            }
        })
    };
    let stderr = drain(child.stderr.take().expect("piped"));
    let mut stdin = child.stdin.take().expect("piped");
    let printed = || String::from_utf8_lossy(&output.lock().expect("not poisoned")).into_owned();
    let mut typed = None;
    if let Some(prompt) = example.code_prompt() {
        let start = Instant::now();
        while !printed().contains(prompt) {
            let exited = child.try_wait().map_or(true, |s| s.is_some());
            assert!(
                !exited && start.elapsed() < Duration::from_secs(120),
                "{command}: the prompt {prompt:?} never came:\n{}",
                printed()
            );
            thread::sleep(Duration::from_millis(10));
        }
        let secret = example
            .secret_in(&printed())
            .unwrap_or_else(|| panic!("{command}: no secret before the prompt:\n{}", printed()));
        let code = system.code(&secret);
        stdin
            .write_all(format!("{code}\n").as_bytes())
            .unwrap_or_else(|e| panic!("{command}: cannot type the code: {e}"));
        typed = Some((prompt, code));
    }
    drop(stdin);
    child.wait().expect("cannot wait for the example");
    reader.join().expect("the reader does not panic");
    let mut text = printed();
    if let Some((prompt, code)) = typed {
        let at = text.find(prompt).expect("seen above") + prompt.len();
        text.insert_str(at, &code);
    }
    let stderr = stderr.join().unwrap_or_default();
    assert!(stderr.is_empty(), "{command}: could not run:\n{stderr}");
    text
}

//! The real `sudo` in a sandbox, run by a throwaway user in a
//! pseudo-terminal.
//!
//! [`Sandbox::with_sudo`] binds the sandbox's own sudoers over
//! `/etc/sudoers` inside the namespace (the host's stays as it is, and
//! its `/etc/sudoers.d` is not read), with sudo's timestamp directory in
//! the sandbox too, so that no test leaves a cached authentication behind.
//! [`Sandbox::sudo_as`] starts `setpriv --reuid USER ... sudo ARGS` on a
//! pty that is sudo's controlling terminal: sudo reads the password and
//! the code from `/dev/tty`, as it does for a person.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::audit::render_syslog;
use crate::process;
use crate::pty::PtySession;
use crate::sandbox::{write_file, Sandbox};
use crate::users::TestUser;

/// sudo's password prompt (Debian's build: `[sudo] password for %p: `).
pub fn password_prompt(user: &TestUser) -> String {
    format!("[sudo] password for {}: ", user.name())
}

/// What sudo says after a failed attempt when it will ask again.
pub const TRY_AGAIN: &str = "Sorry, try again.";
/// pam_mfa's prompt for a code, as sudo shows it.
const CODE_PROMPT: &str = "Verification code: ";
/// What [`WHOAMI`] prints once it runs as root.
pub const AS_ROOT: &str = "RUNNING-AS-root";
/// A command for sudo to run: proves it ran, and as whom.
pub const WHOAMI: [&str; 3] = ["/bin/sh", "-c", "echo RUNNING-AS-$(id -un)"];

impl Sandbox {
    /// Makes commands in this sandbox see its `sudo/sudoers` as
    /// `/etc/sudoers` (root only until [`Sandbox::write_sudoers`]).
    #[must_use]
    pub fn with_sudo(self) -> Sandbox {
        let dir = self.path("sudo");
        fs::create_dir_all(&dir).expect("cannot create the sandbox's sudo directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .expect("cannot chmod the sandbox's sudo directory");
        let sudoers = dir.join("sudoers");
        write_file(&sudoers, "root ALL=(ALL:ALL) ALL\n", 0o440);
        self.with_bind(sudoers, "/etc/sudoers")
    }

    /// Writes the sudoers the namespace sees: Debian's `env_reset` and
    /// `use_pty`, then `defaults` (each a `Defaults` line's value, e.g.
    /// `timestamp_timeout=0`), then `root` and each of
    /// `users` allowed to run everything as anyone after authenticating.
    /// The file is checked with `visudo -c` first.
    pub fn write_sudoers(&self, defaults: &[&str], users: &[&TestUser]) {
        let dir = self.path("sudo");
        let mut text = String::from(
            "# sudoers of a pam_mfa end-to-end test, seen as /etc/sudoers in the sandbox only.\n",
        );
        // As in Debian's /etc/sudoers.
        text.push_str("Defaults env_reset\nDefaults use_pty\n");
        // Cached authentications stay in the sandbox.
        let _ = writeln!(text, "Defaults timestampdir={}/ts", dir.display());
        text.push_str("Defaults lecture=never\n");
        for d in defaults {
            let _ = writeln!(text, "Defaults {d}");
        }
        text.push_str("root ALL=(ALL:ALL) ALL\n");
        for user in users {
            let _ = writeln!(text, "{} ALL=(ALL:ALL) ALL", user.name());
        }
        let candidate = dir.join("sudoers.new");
        write_file(&candidate, &text, 0o440);
        let mut check = process::with_deadline(std::time::Duration::from_secs(30), "visudo");
        check.arg("-c").arg("-f").arg(&candidate);
        process::run(check, b"").assert_success();
        // Each command binds it afresh when it starts.
        write_file(&dir.join("sudoers"), &text, 0o440);
        let _ = fs::remove_file(candidate);
    }

    /// Starts `argv` as `user` (uid, gid and groups), in a pty that is its
    /// controlling terminal, with a clean environment as after a login:
    /// e.g. `["sh", "-c", "sudo true; sudo true"]` for two sudo runs on
    /// one terminal.
    pub fn terminal_as(&self, user: &TestUser, argv: &[&str]) -> PtySession {
        let mut cmd = self.terminal_command("setpriv");
        cmd.arg(format!("--reuid={}", user.uid()))
            .arg(format!("--regid={}", user.gid()))
            .args(["--init-groups", "--reset-env", "--"])
            .args(argv)
            .current_dir("/");
        let label = argv.first().copied().unwrap_or("command");
        let mut session = PtySession::spawn(label, cmd);
        let syslog = self.syslog().clone();
        session.attach("sandbox syslog", move || render_syslog(&syslog));
        session
    }

    /// Starts `sudo ARGS` as `user` (see [`Sandbox::terminal_as`]).
    pub fn sudo_as(&self, user: &TestUser, args: &[&str]) -> PtySession {
        let mut command_line = vec!["sudo"];
        command_line.extend_from_slice(args);
        self.terminal_as(user, &command_line)
    }

    /// `sudo` [`WHOAMI`] as `user`, answered with each of `codes` in turn
    /// (after the password each time: sudo's tries), the last of which must
    /// let the command run; earlier ones must be refused.
    pub fn sudo_with_codes(&self, user: &TestUser, codes: &[&str]) -> PtySession {
        let mut sudo = self.sudo_as(user, &WHOAMI);
        let (last, refused) = codes.split_last().expect("at least one code");
        for code in refused {
            sudo.answer(&password_prompt(user), user.password());
            sudo.answer(CODE_PROMPT, code);
            sudo.expect(TRY_AGAIN);
        }
        sudo.answer(&password_prompt(user), user.password());
        sudo.answer(CODE_PROMPT, last);
        sudo.expect(AS_ROOT);
        sudo.assert_exit(0);
        sudo.check(
            sudo.output().matches(CODE_PROMPT).count() == codes.len(),
            "one code is asked for at each try",
        );
        sudo
    }
}

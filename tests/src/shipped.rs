//! The example files the project ships in `config/`, installed into a
//! sandbox the way an administrator installs them on a host, so that the
//! end-to-end tests prove exactly those files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sandbox::{write_file, Sandbox};

/// A file under the workspace's `config/`, e.g. `pam.d/sshd`.
pub fn shipped(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(relative);
    assert!(
        path.is_file(),
        "{} is missing: the tests use the files shipped in config/",
        path.display()
    );
    path
}

/// The text of a shipped file.
pub fn shipped_text(relative: &str) -> String {
    let path = shipped(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `stack` with every `pam_mfa.so` module path (outside comments) replaced
/// by `module config=CONFIG`: what the shipped stacks mean on a host where
/// the module is installed in the library directory and its config is
/// `/etc/security/pam_mfa.toml`. Panics if there is none.
pub fn rewrite_pam_mfa(stack: &str, module: &Path, config: &Path) -> String {
    let replacement = format!("{} config={}", module.display(), config.display());
    let mut out = String::with_capacity(stack.len() + 256);
    let mut replaced = 0;
    for line in stack.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("pam_mfa.so") {
            let end = at + "pam_mfa.so".len();
            let before_ok = at == 0 || rest[..at].ends_with(char::is_whitespace);
            let after_ok = rest[end..].is_empty() || rest[end..].starts_with(char::is_whitespace);
            out.push_str(&rest[..at]);
            if before_ok && after_ok {
                out.push_str(&replacement);
                replaced += 1;
            } else {
                out.push_str("pam_mfa.so");
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
    }
    assert!(replaced > 0, "no pam_mfa.so line in:\n{stack}");
    out
}

impl Sandbox {
    /// Installs the shipped `config/pam.d/<shipped>` as the sandbox's
    /// `pam.d/<service>`, loading this build's module with this sandbox's
    /// config, together with the host's `common-*` files it includes.
    /// Returns the text installed.
    pub fn install_shipped_stack(&self, service: &str, shipped_name: &str) -> String {
        self.install_common_includes();
        let text = rewrite_pam_mfa(
            &shipped_text(&format!("pam.d/{shipped_name}")),
            &self.pam_mfa_module(),
            &self.config_path(),
        );
        self.service(service, &text);
        text
    }

    /// Copies the host's `/etc/pam.d/common-*` (Debian's shared stacks,
    /// which the shipped stacks `@include`) into the sandbox's `pam.d`.
    pub fn install_common_includes(&self) {
        let host = Path::new("/etc/pam.d");
        let entries =
            fs::read_dir(host).unwrap_or_else(|e| panic!("cannot list {}: {e}", host.display()));
        let mut copied = 0;
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", host.display()));
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| n.starts_with("common-")) else {
                continue;
            };
            let text = fs::read_to_string(entry.path())
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", entry.path().display()));
            write_file(&self.pam_d().join(name), &text, 0o644);
            copied += 1;
        }
        assert!(
            copied > 0,
            "the host has no /etc/pam.d/common-* (libpam-runtime)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_module_token_outside_comments_is_rewritten() {
        let stack = "# uses pam_mfa.so\nauth [success=done default=die] pam_mfa.so\n\
                     account required pam_mfa.so debug\nauth optional not_pam_mfa.so\n";
        let out = rewrite_pam_mfa(stack, Path::new("/m/libpam_mfa.so"), Path::new("/c.toml"));
        assert_eq!(
            out,
            "# uses pam_mfa.so\nauth [success=done default=die] /m/libpam_mfa.so config=/c.toml\n\
             account required /m/libpam_mfa.so config=/c.toml debug\n\
             auth optional not_pam_mfa.so\n"
        );
    }

    #[test]
    fn every_shipped_stack_loads_pam_mfa() {
        for name in ["sshd", "sshd.password-and-code", "sudo"] {
            let text = shipped_text(&format!("pam.d/{name}"));
            rewrite_pam_mfa(&text, Path::new("/m.so"), Path::new("/c.toml"));
        }
    }
}

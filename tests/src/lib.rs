//! Support for end-to-end tests of pam_mfa through the real libpam.
//!
//! A test builds a [`Sandbox`] (with the [`sandbox!`] macro): a temporary
//! directory with its own `pam.d`, a pam_mfa config, state paths and a
//! syslog sink. Commands run through [`Sandbox::run`], [`Sandbox::converse`]
//! and [`Sandbox::pamtester`] see that `pam.d` as `/etc/pam.d` and that sink
//! as `/dev/log`, inside a private mount namespace: the host's PAM
//! configuration is never touched. [`TestUser`] makes a throwaway account
//! that is deleted again when dropped, and [`oathtool_code`] computes TOTP
//! codes with an implementation independent of pam_mfa.
//!
//! ```no_run
//! use pam_mfa_e2e::{Converse, Op, PamCode, Sandbox, TestUser, Tools};
//!
//! // In tests/*.rs this is `let sb = pam_mfa_e2e::sandbox!();`, which finds
//! // the tools through the paths Cargo gives integration tests.
//! let sb = Sandbox::new(Tools::new("target/debug/pam-converse", "target/debug/pam-sandbox"));
//! let user = TestUser::create("doc");
//! sb.service("login", "auth required pam_unix.so nodelay\n");
//! let t = sb.converse(Converse::new("login", user.name()).answer(user.password()));
//! t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
//! ```
//!
//! Everything here needs root (namespaces, `useradd`), and fails loudly
//! rather than skipping without it. Helpers panic on failure, with a
//! readable transcript, because a failing helper is a failing test.
#![allow(clippy::missing_panics_doc)]

pub mod app;
pub mod audit;
pub mod codes;
pub mod converse;
pub mod docs;
pub mod enroll;
pub mod fleet;
pub mod libpam;
pub mod namespace;
pub mod native;
pub mod oath;
pub mod pamtester;
pub mod postgres;
pub mod process;
pub mod protocol;
pub mod pty;
pub mod qr;
pub mod sandbox;
pub mod selfservice;
pub mod shipped;
pub mod sshd;
pub mod sudo;
pub mod syslog;
pub mod users;

pub use app::AuthenticatorApp;
pub use audit::expect_event;
pub use codes::PamCode;
pub use converse::{Converse, Prompt, Transcript};
pub use enroll::{Enrolled, MfaEnroll};
pub use oath::{oathtool_code, oathtool_totp, unix_now, OathAlgorithm, OathSpec};
pub use process::Run;
pub use protocol::{Op, Style};
pub use pty::PtySession;
pub use sandbox::{Sandbox, Tools};
pub use sshd::Sshd;
pub use syslog::{LogLine, SyslogSink};
pub use users::TestUser;

/// The [`Tools`] built with this package, located through the paths Cargo
/// gives integration tests. Use it in `tests/*.rs`.
#[macro_export]
macro_rules! tools {
    () => {
        $crate::Tools::new(
            env!("CARGO_BIN_EXE_pam-converse"),
            env!("CARGO_BIN_EXE_pam-sandbox"),
        )
    };
}

/// A fresh [`Sandbox`] using this package's [`tools!`].
#[macro_export]
macro_rules! sandbox {
    () => {
        $crate::Sandbox::new($crate::tools!())
    };
}

/// Fails the test unless it runs as root, saying why root is needed.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests need root: they create users and mount namespaces \
         (CI runs them as root through .ci/run)"
    );
}

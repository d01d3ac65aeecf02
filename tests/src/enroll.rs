//! The administrator's side: the workspace's `mfa-enroll` binary, run in a
//! sandbox against the sandbox's config, as an administrator runs it.

use std::path::PathBuf;

use serde_json::Value;

use crate::process::Run;
use crate::sandbox::Sandbox;
use crate::users::TestUser;

/// What `mfa-enroll enroll --json` hands out: the secret the authenticator
/// app needs and the recovery codes.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The base32 TOTP secret.
    pub secret: String,
    /// The `otpauth://` URI of the QR code.
    pub uri: String,
    /// The single-use recovery codes, as shown to the user.
    pub recovery_codes: Vec<String>,
}

/// `mfa-enroll --config <sandbox config> ...`, inside the sandbox.
pub struct MfaEnroll<'a> {
    sb: &'a Sandbox,
    binary: PathBuf,
}

impl<'a> MfaEnroll<'a> {
    /// The `mfa-enroll` of this build, next to the test tools. Fails with
    /// what to do if it was not built (`cargo test --workspace` builds it;
    /// `cargo test -p pam-mfa-e2e` alone does not).
    pub fn new(sb: &'a Sandbox) -> MfaEnroll<'a> {
        let binary = sb.tools().artifact("mfa-enroll");
        assert!(
            binary.is_file(),
            "{} is missing: build the whole workspace first \
             (`cargo build --workspace` or `cargo test --workspace`)",
            binary.display()
        );
        MfaEnroll { sb, binary }
    }

    /// Runs `mfa-enroll --config <sandbox config> ARGS...`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.sb.command(&self.binary);
        cmd.arg("--config").arg(self.sb.config_path()).args(args);
        crate::process::run(cmd, b"")
    }

    /// `mfa-enroll key init`: the master key and the enrollment public key.
    pub fn key_init(&self) {
        self.run(&["key", "init"]).assert_success();
    }

    /// `mfa-enroll enroll --user NAME --json`.
    pub fn enroll(&self, user: &TestUser) -> Enrolled {
        let run = self.run(&["enroll", "--user", user.name(), "--json"]);
        run.assert_success();
        let v: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("enroll --json printed no JSON ({e}):\n{run}"));
        let text = |key: &str| {
            v[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in the JSON:\n{run}"))
                .to_owned()
        };
        let recovery_codes = v["recovery_codes"]
            .as_array()
            .unwrap_or_else(|| panic!("no recovery_codes in the JSON:\n{run}"))
            .iter()
            .map(|c| c.as_str().expect("codes are strings").to_owned())
            .collect();
        Enrolled {
            secret: text("secret"),
            uri: text("otpauth_uri"),
            recovery_codes,
        }
    }

    /// `mfa-enroll status --user NAME --json`, parsed.
    pub fn status(&self, user: &TestUser) -> Value {
        let run = self.run(&["status", "--user", user.name(), "--json"]);
        run.assert_success();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status --json printed no JSON ({e}):\n{run}"))
    }

    /// The user's failure counter, from `status --json`.
    pub fn failures(&self, user: &TestUser) -> u64 {
        self.status(user)["failures"]
            .as_u64()
            .expect("failures is a number")
    }

    /// Whether the user has a record, from `status --json`.
    pub fn enrolled(&self, user: &TestUser) -> bool {
        self.status(user)["enrolled"]
            .as_bool()
            .expect("enrolled is a boolean")
    }
}

//! Configuration changes never lock out the enrolled (SECURITY.md item
//! 32): a device is checked with the digits, algorithm and period it
//! was enrolled with, and a set of recovery codes with the code length it
//! was issued with, whatever `[totp]` and `[recovery]` say now; those
//! settings only shape what is made next. Through the real libpam
//! (pam-converse), with the workspace's `mfa-enroll` as root and as the
//! user, and codes from oathtool with each device's own settings. Needs
//! root, and the whole workspace built (`cargo test --workspace`).

use std::thread;
use std::time::Duration;

use pam_mfa_e2e::audit::{count_events, expect_event};
use pam_mfa_e2e::selfservice::{recovery_codes_shown, UserMfaEnroll};
use pam_mfa_e2e::{
    oathtool_totp, sandbox, unix_now, Converse, MfaEnroll, OathAlgorithm, OathSpec, Op, Sandbox,
    TestUser,
};
use serde_json::Value;

/// pam_mfa's prompt for a code.
const CODE_PROMPT: &str = "Verification code: ";

/// The settings before the change: pam_mfa's defaults, written out.
const BEFORE: Settings = Settings {
    algorithm: "SHA1",
    digits: 6,
    period: 30,
    length: 12,
    count: 10,
};

/// The settings after the change: every one of them different.
const AFTER: Settings = Settings {
    algorithm: "SHA256",
    digits: 8,
    period: 60,
    length: 16,
    count: 6,
};

/// What `[totp]` and `[recovery]` say.
#[derive(Debug, Clone, Copy)]
struct Settings {
    algorithm: &'static str,
    digits: u8,
    period: u32,
    length: u8,
    count: u8,
}

impl Settings {
    /// The config text: policy deny (a code that does not verify is never
    /// let through by a policy), no failure delay, these settings.
    fn config(self) -> String {
        format!(
            "[policy]\nnot_configured = \"deny\"\n\n\
             [throttle]\nfail_delay_ms = 0\n\n\
             [totp]\nalgorithm = \"{}\"\ndigits = {}\nperiod = {}\n\n\
             [recovery]\nlength = {}\ncount = {}\n",
            self.algorithm, self.digits, self.period, self.length, self.count
        )
    }

    /// The TOTP settings of a device made under these settings.
    fn spec(self) -> OathSpec {
        OathSpec {
            algorithm: match self.algorithm {
                "SHA1" => OathAlgorithm::Sha1,
                "SHA256" => OathAlgorithm::Sha256,
                other => panic!("no such algorithm in these tests: {other}"),
            },
            digits: self.digits,
            period: self.period,
        }
    }
}

/// An authenticator app holding one secret with its own settings: each
/// time step is typed once, as pam_mfa refuses a step twice.
struct Token {
    secret: String,
    spec: OathSpec,
    last_step: Option<u64>,
}

impl Token {
    fn new(secret: &str, spec: OathSpec) -> Token {
        Token {
            secret: secret.to_owned(),
            spec,
            last_step: None,
        }
    }

    /// A code (from oathtool) for a step not used yet: the current one or
    /// the next, which pam_mfa's window of one step accepts; waits for the
    /// clock when both were used.
    fn next_code(&mut self) -> String {
        let period = u64::from(self.spec.period);
        let mut current = unix_now() / period;
        let step = match self.last_step {
            Some(last) if last >= current => last + 1,
            _ => current,
        };
        while step > current + 1 {
            let wait = ((current + 1) * period).saturating_sub(unix_now()).max(1);
            thread::sleep(Duration::from_secs(wait));
            current = unix_now() / period;
        }
        self.last_step = Some(step);
        oathtool_totp(&self.secret, self.spec, Some(step * period))
    }
}

/// A sandbox with `settings`, a master key from `mfa-enroll key init`, and
/// a service `mfa` with pam_mfa's auth and account lines.
fn host(settings: Settings) -> Sandbox {
    let sb = sandbox!().with_deadline(Duration::from_secs(300));
    sb.write_config(&settings.config());
    MfaEnroll::new(&sb).key_init();
    sb.service(
        "mfa",
        &format!(
            "{}{}",
            sb.pam_mfa_line("auth required", ""),
            sb.pam_mfa_line("account required", ""),
        ),
    );
    sb
}

/// A login of `user` on `mfa` answering the one code prompt with `code`;
/// fails the test unless it succeeds.
fn login(sb: &Sandbox, user: &TestUser, code: &str) {
    sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer(code),
    )
    .assert_success()
    .assert_prompts(&[CODE_PROMPT]);
}

/// `status --json`'s entry for the device `name`.
fn device<'v>(status: &'v Value, name: &str) -> &'v Value {
    status["devices"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("no device {name:?}: {status}"))
}

/// Checks that `status --json` shows `name` with the settings of `made`.
fn assert_device_made_under(status: &Value, name: &str, made: Settings) {
    let d = device(status, name);
    assert_eq!(
        (&d["algorithm"], &d["digits"], &d["period"]),
        (
            &Value::from(made.algorithm),
            &Value::from(made.digits),
            &Value::from(made.period)
        ),
        "{status}"
    );
}

/// Base32 characters in a recovery code as shown (`xxxx-xxxx-xxxx`).
fn code_length(code: &str) -> usize {
    code.chars().filter(|c| *c != '-').count()
}

#[test]
fn devices_and_recovery_codes_keep_working_when_every_totp_and_recovery_setting_changes() {
    let sb = host(BEFORE);
    let user = TestUser::create("cfgchange");
    let admin = MfaEnroll::new(&sb);

    // Enrolled under the defaults: 6 digits, SHA1, 30 s; ten codes of 12.
    let first = admin.enroll(&user);
    assert_eq!(first.recovery_codes.len(), 10);
    assert!(first.recovery_codes.iter().all(|c| code_length(c) == 12));
    let mut old = Token::new(&first.secret, BEFORE.spec());
    login(&sb, &user, &old.next_code());

    // The administrator changes every setting.
    sb.write_config(&AFTER.config());

    // The device still logs in with its own 6-digit SHA1 30 s codes, and
    // the codes of 12 still work although new sets have 16 and fewer.
    login(&sb, &user, &old.next_code());
    login(&sb, &user, &first.recovery_codes[0]);
    let at_login = [("user", user.name()), ("service", "mfa")];
    expect_event(
        sb.syslog(),
        "recovery_code_used",
        &[at_login[0], at_login[1], ("remaining", "9")],
    );
    let status = admin.status(&user);
    assert_device_made_under(&status, "default", BEFORE);
    assert_eq!(status["recovery_codes_left"], 9, "{status}");
    assert_eq!(
        status["failures"], 0,
        "no try counted as a failure: {status}"
    );
    assert_eq!(count_events(sb.syslog(), "auth_failure", &[]), 0);

    // The user adds a second device with `mfa-enroll` (an administrator's
    // `enroll` replaces a record, it does not add to one), proving it with
    // the first device's 6-digit code. The new device is made under the
    // new settings: 8 digits, SHA256, 60 s, and six codes of 16.
    let mut second = None;
    let enrolled = UserMfaEnroll::new(&sb, &user).enroll_answering(
        &["enroll"],
        "second",
        |secret| {
            let mut token = Token::new(secret, AFTER.spec());
            let code = token.next_code();
            second = Some(token);
            code
        },
        || old.next_code(),
    );
    enrolled.run.assert_success();
    let mut second = second.expect("the new device's code was asked for");
    for part in ["algorithm=SHA256", "digits=8", "period=60"] {
        assert!(enrolled.uri.contains(part), "{part} in {}", enrolled.uri);
    }
    let fresh = recovery_codes_shown(&enrolled.run.stdout);
    assert_eq!(fresh.len(), 6, "{}", enrolled.run);
    assert!(
        fresh.iter().all(|c| code_length(c) == 16),
        "{}",
        enrolled.run
    );

    // The next login, with the first device's code, applies it; from then
    // on each device logs in with codes of its own settings.
    login(&sb, &user, &old.next_code());
    expect_event(
        sb.syslog(),
        "device_enrolled",
        &[at_login[0], ("device", "second")],
    );
    let eight = second.next_code();
    assert_eq!(eight.len(), 8);
    login(&sb, &user, &eight);
    expect_event(
        sb.syslog(),
        "auth_success",
        &[at_login[0], ("method", "totp"), ("device", "second")],
    );
    login(&sb, &user, &fresh[0]);
    let status = admin.status(&user);
    assert_device_made_under(&status, "default", BEFORE);
    assert_device_made_under(&status, "second", AFTER);
    assert_eq!(status["recovery_codes_left"], 5, "{status}");
    assert_eq!(status["failures"], 0, "{status}");

    // And back to the defaults: the SHA256 device and the codes of 16 are
    // as good as before, and so is the first device.
    sb.write_config(&BEFORE.config());
    login(&sb, &user, &second.next_code());
    login(&sb, &user, &fresh[1]);
    login(&sb, &user, &old.next_code());
    let status = admin.status(&user);
    assert_eq!(status["recovery_codes_left"], 4, "{status}");
    assert_eq!(status["failures"], 0, "{status}");
    assert_eq!(count_events(sb.syslog(), "auth_failure", &[]), 0);
    assert_eq!(
        count_events(
            sb.syslog(),
            "auth_success",
            &[
                ("user", user.name()),
                ("method", "totp"),
                ("device", "second")
            ]
        ),
        2
    );
}

//! An authenticator app as a person uses it: it shows the current code,
//! and a code, once typed, is not typed again (pam_mfa refuses a time step
//! it has already accepted). Codes come from oathtool.

use std::thread;
use std::time::Duration;

use crate::oath::{oathtool_code, unix_now};

/// Seconds per code: pam_mfa's default, and what the tests enroll.
const PERIOD: u64 = 30;

/// A phone's authenticator app holding one 6-digit, 30-second SHA1 secret.
#[derive(Debug, Clone)]
pub struct AuthenticatorApp {
    secret: String,
    last_step: Option<u64>,
    last_code: Option<String>,
}

impl AuthenticatorApp {
    /// An app with `secret_b32` scanned in.
    pub fn new(secret_b32: &str) -> AuthenticatorApp {
        AuthenticatorApp {
            secret: secret_b32.to_owned(),
            last_step: None,
            last_code: None,
        }
    }

    /// The secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// A code for a time step not used yet: the current one, or the next
    /// one (inside pam_mfa's default window of one step), waiting for the
    /// clock when both were used. Either stays valid across the next step
    /// boundary, so a slow login does not make it stale.
    pub fn next_code(&mut self) -> String {
        let mut current = unix_now() / PERIOD;
        let step = match self.last_step {
            Some(last) if last >= current => last + 1,
            _ => current,
        };
        while step > current + 1 {
            // Like a person watching the app for the next code.
            let next_boundary = (current + 1) * PERIOD;
            let wait = next_boundary.saturating_sub(unix_now()).max(1);
            thread::sleep(Duration::from_secs(wait));
            current = unix_now() / PERIOD;
        }
        let code = oathtool_code(&self.secret, Some(step * PERIOD));
        self.last_step = Some(step);
        self.last_code = Some(code.clone());
        code
    }

    /// The code [`AuthenticatorApp::next_code`] gave last, to replay it.
    pub fn last_code(&self) -> String {
        self.last_code.clone().expect("no code was given yet")
    }

    /// Six digits that are no valid code now: not the code of any step in
    /// the window around the current one.
    pub fn wrong_code(&self) -> String {
        let now = unix_now();
        let valid: Vec<String> = (0..=4)
            .map(|i| {
                oathtool_code(
                    &self.secret,
                    Some((now + i * PERIOD).saturating_sub(2 * PERIOD)),
                )
            })
            .collect();
        ["000000", "111111", "222222", "333333", "444444", "555555"]
            .into_iter()
            .find(|c| !valid.iter().any(|v| v == c))
            .expect("at most five codes are valid")
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn two_codes_without_waiting_then_never_a_step_twice() {
        let mut app = AuthenticatorApp::new(SECRET);
        let a = app.next_code();
        assert_eq!(a.len(), 6);
        let first = app.last_step.unwrap();
        let b = app.next_code();
        assert_eq!(app.last_step, Some(first + 1));
        assert_eq!(app.last_code(), b);
        assert_ne!(app.wrong_code(), a);
        assert_ne!(app.wrong_code(), b);
    }
}

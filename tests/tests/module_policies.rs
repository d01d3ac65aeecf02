//! pam_mfa after `pam_unix`, as on a real host: every `not_configured` policy
//! for enrolled and unenrolled users, with the password `requisite` and
//! `required`, and enrollment inside the login conversation
//! (`configure`) from the QR code to the recovery codes. Needs root.

mod common;

use common::{
    assert_no_event, code_next, code_now, enroll, expect_event, forget_last_step, password_and,
    password_then_code, policy, record_path, sandbox_with, status, texts, CODE_PROMPT,
    NEW_DEVICE_PROMPT, PASSWORD_PROMPT,
};
use std::os::unix::fs::PermissionsExt;

use pam_mfa_e2e::protocol::Message;
use pam_mfa_e2e::{oathtool_code, Converse, Op, PamCode, Style, TestUser, Transcript};

const POLICIES: [&str; 3] = ["skip", "configure", "deny"];
const CONTROLS: [&str; 2] = ["requisite", "required"];

/// A login of `user` with their password and `code` at every other prompt.
fn login<'a>(
    sb: &pam_mfa_e2e::Sandbox,
    service: &str,
    user: &'a TestUser,
    code: impl FnMut() -> String + 'a,
) -> Transcript {
    sb.login(service, user.name(), user.password(), code)
}

// ---------------------------------------------------------------------------
// Enrolled users: the code is asked under every policy

#[test]
fn an_enrolled_user_needs_the_code_after_the_password_under_every_policy() {
    let user = TestUser::create("polenr");
    for policy_name in POLICIES {
        for control in CONTROLS {
            let sb = sandbox_with(&policy(policy_name));
            let device = enroll(&sb, &user);
            password_then_code(&sb, "login", control);
            let t = login(&sb, "login", &user, || code_now(&device.secret));
            t.assert_success()
                .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
            expect_event(
                &t,
                "auth_success",
                &[("user", user.name()), ("method", "totp")],
            );
            assert_eq!(status(&sb, user.uid()).devices.len(), 1, "{t}");
        }
    }
}

#[test]
fn an_enrolled_user_with_a_wrong_code_fails_under_every_policy() {
    let user = TestUser::create("polenrw");
    for policy_name in POLICIES {
        for control in CONTROLS {
            let sb = sandbox_with(&policy(policy_name));
            let device = enroll(&sb, &user);
            password_then_code(&sb, "login", control);
            let wrong = common::wrong_code(&device.secret);
            let t = login(&sb, "login", &user, || wrong.clone());
            t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
                .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
            assert_eq!(t.rc(Op::AcctMgmt), None, "{t}");
            expect_event(&t, "auth_failure", &[("user", user.name())]);
        }
    }
}

#[test]
fn a_wrong_password_never_reaches_the_code_prompt_with_requisite() {
    let user = TestUser::create("polreq");
    for policy_name in POLICIES {
        let sb = sandbox_with(&policy(policy_name));
        let device = enroll(&sb, &user);
        password_then_code(&sb, "login", "requisite");
        let t = sb.converse(Converse::new("login", user.name()).answer_with(|p| {
            Some(if p.msg == PASSWORD_PROMPT {
                "not the password".to_owned()
            } else {
                code_now(&device.secret)
            })
        }));
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
            .assert_prompts(&[PASSWORD_PROMPT]);
        assert!(
            t.logs().iter().all(|l| l.tag != "pam_mfa"),
            "pam_mfa never ran\n{t}"
        );
        let s = status(&sb, user.uid());
        assert_eq!((s.failures, s.devices[0].last_used_step), (0, None), "{t}");
    }
}

#[test]
fn a_wrong_password_with_the_right_code_still_fails_with_required() {
    let user = TestUser::create("polreqd");
    for policy_name in POLICIES {
        let sb = sandbox_with(&policy(policy_name));
        let device = enroll(&sb, &user);
        password_then_code(&sb, "login", "required");
        let t = sb.converse(
            Converse::new("login", user.name())
                .ops(&[Op::Authenticate, Op::AcctMgmt])
                .answer_with(|p| {
                    Some(if p.msg == PASSWORD_PROMPT {
                        "not the password".to_owned()
                    } else {
                        code_now(&device.secret)
                    })
                }),
        );
        // required: the stack goes on to pam_mfa, but pam_unix's failure wins.
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
            .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
        assert_eq!(t.rc(Op::AcctMgmt), None, "{t}");
    }
}

// ---------------------------------------------------------------------------
// Unenrolled users under skip and deny

#[test]
fn skip_lets_an_unenrolled_user_in_on_the_password_alone() {
    let user = TestUser::create("polskip");
    for control in CONTROLS {
        let sb = sandbox_with(&policy("skip"));
        password_then_code(&sb, "login", control);
        let t = login(&sb, "login", &user, || "unused".to_owned());
        t.assert_success().assert_prompts(&[PASSWORD_PROMPT]);
        expect_event(&t, "auth_skipped", &[("user", user.name())]);
        assert!(!record_path(&sb, user.uid()).exists(), "{t}");
    }
}

#[test]
fn skip_does_not_rescue_a_wrong_password() {
    let user = TestUser::create("polskipw");
    for control in CONTROLS {
        let sb = sandbox_with(&policy("skip"));
        password_then_code(&sb, "login", control);
        let t = sb.converse(Converse::new("login", user.name()).answer("not the password"));
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
            .assert_prompts(&[PASSWORD_PROMPT]);
    }
}

#[test]
fn deny_refuses_an_unenrolled_user_after_the_right_password() {
    let user = TestUser::create("poldeny");
    for control in CONTROLS {
        let sb = sandbox_with(&policy("deny"));
        password_then_code(&sb, "login", control);
        let t = login(&sb, "login", &user, || "unused".to_owned());
        // Prompted for a code like anyone (an unknown user looks the same),
        // then told why.
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
            .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
        assert_eq!(texts(&t, Style::ErrorMsg).len(), 1, "the user is told\n{t}");
        expect_event(&t, "auth_denied", &[("user", user.name())]);
        assert!(!record_path(&sb, user.uid()).exists(), "{t}");
    }
}

#[test]
fn a_required_group_overrides_skip_for_its_unenrolled_members() {
    let user = TestUser::create("polgroup");
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(user.gid()))
        .unwrap()
        .expect("the user's primary group exists")
        .name;
    let sb = sandbox_with(&format!(
        "[groups]\nrequire = [\"{group}\"]\nrequire_policy = \"deny\"\n\n{}",
        policy("skip")
    ));
    password_then_code(&sb, "login", "requisite");
    let t = login(&sb, "login", &user, || "unused".to_owned());
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_denied", &[("user", user.name())]);
}

#[test]
fn a_service_table_overrides_the_policy_for_that_service_only() {
    let user = TestUser::create("polsvc");
    let sb = sandbox_with(&format!(
        "{}\n[service.sshd]\nnot_configured = \"deny\"\n",
        policy("skip")
    ));
    password_then_code(&sb, "sshd", "requisite");
    password_then_code(&sb, "sudo", "requisite");
    let denied = login(&sb, "sshd", &user, || "unused".to_owned());
    denied.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&denied, "auth_denied", &[("service", "sshd")]);
    let skipped = login(&sb, "sudo", &user, || "unused".to_owned());
    skipped.assert_success();
    expect_event(&skipped, "auth_skipped", &[("service", "sudo")]);
}

// ---------------------------------------------------------------------------
// configure: enrollment inside the login conversation

/// The secret shown as `Secret: XXXX XXXX ...`, without the spaces.
fn shown_secret(seen: &[Message]) -> Option<String> {
    seen.iter()
        .filter(|m| m.style == Style::TextInfo)
        .find_map(|m| m.msg.strip_prefix("Secret: "))
        .map(|s| s.replace(' ', ""))
}

/// A pam.d stack for `configure` that also checks, from inside the
/// transaction, where the record is: absent right after pam_mfa's
/// authenticate and before its account part, present after it.
fn probing_stack(sb: &pam_mfa_e2e::Sandbox, control: &str, uid: u32) -> String {
    let record = record_path(sb, uid);
    let record = record.display();
    format!(
        "auth {control} pam_unix.so nodelay\n\
         {}\
         auth required pam_exec.so quiet /usr/bin/test ! -e {record}\n\
         account required pam_unix.so\n\
         account required pam_exec.so quiet /usr/bin/test ! -e {record}\n\
         {}\
         account required pam_exec.so quiet /usr/bin/test -e {record}\n",
        sb.pam_mfa_line("auth required", ""),
        sb.pam_mfa_line("account required", ""),
    )
}

/// Runs an enrollment at login with the right password; returns the
/// transcript and the secret the module showed.
fn enroll_at_login(
    sb: &pam_mfa_e2e::Sandbox,
    service: &str,
    user: &TestUser,
) -> (Transcript, Option<String>) {
    let mut secret = None;
    let t = sb.converse(
        Converse::new(service, user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_seeing(|seen, p| {
                if p.msg == PASSWORD_PROMPT {
                    return Some(user.password().to_owned());
                }
                secret = shown_secret(seen);
                secret.as_deref().map(|s| oathtool_code(s, None))
            }),
    );
    (t, secret)
}

/// The recovery codes in the message `acct_mgmt` shows after enrolling.
fn shown_recovery_codes(t: &Transcript) -> Vec<String> {
    let infos = texts(t, Style::TextInfo);
    let Some(message) = infos.iter().find(|m| m.contains("recovery codes")) else {
        return Vec::new();
    };
    message
        .lines()
        .skip(1)
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn configure_enrolls_inside_the_login_and_commits_only_in_the_account_phase() {
    for control in CONTROLS {
        let sb = sandbox_with(&policy("configure"));
        let user = TestUser::create("polconf");
        sb.service("login", &probing_stack(&sb, control, user.uid()));
        let (t, secret) = enroll_at_login(&sb, "login", &user);
        t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
            .assert_rc(Op::AcctMgmt, PamCode::SUCCESS)
            .assert_prompts(&[PASSWORD_PROMPT, NEW_DEVICE_PROMPT]);
        let secret = secret.expect("the secret was shown before the prompt");

        // What was shown before the prompt.
        let before_prompt: Vec<Message> = t
            .messages()
            .into_iter()
            .take_while(|m| m.msg != NEW_DEVICE_PROMPT)
            .filter(|m| m.style == Style::TextInfo)
            .collect();
        for m in &before_prompt {
            assert!(
                m.msg.len() <= 512,
                "a message of {} bytes\n{t}",
                m.msg.len()
            );
        }
        let calls: Vec<u32> = t.messages().iter().map(|m| m.call).collect();
        let mut distinct = calls.clone();
        distinct.dedup();
        assert_eq!(calls, distinct, "one message per conversation call\n{t}");
        let qr: Vec<&Message> = before_prompt
            .iter()
            .filter(|m| m.msg.chars().any(|c| "▀▄█".contains(c)))
            .collect();
        assert!(!qr.is_empty(), "a QR code is drawn\n{t}");
        let qr_lines: usize = qr.iter().map(|m| m.msg.lines().count()).sum();
        assert!(qr_lines >= 15, "the whole QR code, in pieces\n{t}");
        assert!(
            before_prompt.iter().any(|m| m.msg.starts_with("Secret: ")),
            "{t}"
        );
        let uri = before_prompt
            .iter()
            .find_map(|m| m.msg.strip_prefix("URI: "))
            .unwrap_or_else(|| panic!("the otpauth URI is shown\n{t}"));
        assert!(uri.starts_with("otpauth://totp/"), "{t}");
        assert!(uri.contains(&format!("secret={secret}")), "{t}");

        // Verified in authenticate, kept out of the store until acct_mgmt
        // (the pam_exec probes in the stack would have failed otherwise).
        let verified = expect_event(
            &t,
            "auth_success",
            &[("user", user.name()), ("method", "enrollment")],
        );
        assert_eq!(verified.get("device"), Some("default"));
        expect_event(
            &t,
            "device_enrolled",
            &[("user", user.name()), ("method", "enrollment")],
        );

        // The recovery codes, shown once the record is saved.
        let codes = shown_recovery_codes(&t);
        assert_eq!(codes.len(), 10, "ten recovery codes\n{t}");
        let s = status(&sb, user.uid());
        assert!(s.enrolled, "{t}");
        assert_eq!(s.recovery_codes_left, 10);
        assert_eq!(s.devices.len(), 1);
        common::assert_logs_never_contain(&sb, std::slice::from_ref(&secret));

        // The next login asks for a code from the new device.
        password_then_code(&sb, "again", control);
        let next = login(&sb, "again", &user, || code_next(&secret));
        next.assert_success()
            .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
        expect_event(&next, "auth_success", &[("method", "totp")]);

        // And one of the recovery codes shown works.
        forget_last_step(&sb, user.uid());
        let recovery = login(&sb, "again", &user, || codes[0].clone());
        recovery.assert_success();
        expect_event(&recovery, "recovery_code_used", &[("remaining", "9")]);
    }
}

#[test]
fn configure_with_authenticate_alone_leaves_no_record() {
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("polconfa");
    password_then_code(&sb, "login", "requisite");
    let mut shown = false;
    let t = sb.converse(
        Converse::new("login", user.name())
            .ops(&[Op::Authenticate])
            .answer_seeing(|seen, p| {
                if p.msg == PASSWORD_PROMPT {
                    return Some(user.password().to_owned());
                }
                let secret = shown_secret(seen)?;
                shown = true;
                Some(oathtool_code(&secret, None))
            }),
    );
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    assert!(shown, "{t}");
    expect_event(&t, "auth_success", &[("method", "enrollment")]);
    assert_no_event(&t, "device_enrolled");
    assert!(!record_path(&sb, user.uid()).exists(), "{t}");
    assert!(!status(&sb, user.uid()).enrolled);
}

#[test]
fn configure_with_a_wrong_password_and_requisite_shows_nothing() {
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("polconfr");
    password_then_code(&sb, "login", "requisite");
    let t = sb.converse(
        Converse::new("login", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer("not the password")
            .answer("000000"),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[PASSWORD_PROMPT]);
    assert!(
        texts(&t, Style::TextInfo).is_empty(),
        "no QR code or secret for someone without the password\n{t}"
    );
    assert!(!record_path(&sb, user.uid()).exists(), "{t}");
}

#[test]
fn configure_with_a_wrong_password_and_required_leaves_no_record() {
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("polconfq");
    password_then_code(&sb, "login", "required");
    let mut shown = false;
    let t = sb.converse(
        Converse::new("login", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_seeing(|seen, p| {
                if p.msg == PASSWORD_PROMPT {
                    return Some("not the password".to_owned());
                }
                let secret = shown_secret(seen)?;
                shown = true;
                Some(oathtool_code(&secret, None))
            }),
    );
    // pam_mfa verified the new device, but pam_unix's failure decides and
    // the account phase, which would save it, never runs.
    assert!(shown, "{t}");
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert_eq!(t.rc(Op::AcctMgmt), None, "{t}");
    expect_event(&t, "auth_success", &[("method", "enrollment")]);
    assert_no_event(&t, "device_enrolled");
    assert!(!record_path(&sb, user.uid()).exists(), "{t}");
}

#[test]
fn configure_with_a_wrong_code_for_the_new_device_saves_nothing() {
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("polconfw");
    password_then_code(&sb, "login", "requisite");
    let mut secret = None;
    let t = sb.converse(
        Converse::new("login", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_seeing(|seen, p| {
                if p.msg == PASSWORD_PROMPT {
                    return Some(user.password().to_owned());
                }
                secret = shown_secret(seen);
                secret.as_deref().map(common::wrong_code)
            }),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert!(secret.is_some(), "{t}");
    let errors = texts(&t, Style::ErrorMsg);
    assert!(
        errors.iter().any(|e| e.contains("Nothing was saved")),
        "the user is told\n{t}"
    );
    let line = expect_event(
        &t,
        "auth_failure",
        &[("user", user.name()), ("method", "enrollment")],
    );
    assert_eq!(line.get("reason"), Some("wrong code for the new device"));
    assert!(!record_path(&sb, user.uid()).exists(), "{t}");
}

#[test]
fn a_device_verified_in_an_earlier_authenticate_is_not_committed_after_a_failed_retry() {
    // sudo calls pam_authenticate again in the same handle after a failure
    // (passwd_tries); an application may also retry after a success. The
    // account phase must commit only what the last authenticate verified.
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("polretry");
    password_then_code(&sb, "login", "requisite");
    let mut attempts = 0;
    let t = sb.converse(
        Converse::new("login", user.name())
            .ops(&[Op::Authenticate, Op::Authenticate, Op::AcctMgmt])
            .keep_going()
            .answer_seeing(|seen, p| {
                if p.msg == PASSWORD_PROMPT {
                    return Some(user.password().to_owned());
                }
                attempts += 1;
                // The last secret shown is the one this attempt asks about.
                let secret = seen
                    .iter()
                    .rev()
                    .filter(|m| m.style == Style::TextInfo)
                    .find_map(|m| m.msg.strip_prefix("Secret: "))
                    .map(|s| s.replace(' ', ""))?;
                Some(if attempts == 1 {
                    oathtool_code(&secret, None)
                } else {
                    common::wrong_code(&secret)
                })
            }),
    );
    assert_eq!(attempts, 2, "{t}");
    t.assert_rc(Op::AcctMgmt, PamCode::SUCCESS);
    assert!(
        !record_path(&sb, user.uid()).exists(),
        "the device verified in the first authenticate was committed\n{t}"
    );
}

#[test]
fn configure_shows_a_new_secret_at_each_attempt() {
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("polconfn");
    password_then_code(&sb, "login", "requisite");
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let mut secret = None;
        let t = sb.converse(
            Converse::new("login", user.name())
                .ops(&[Op::Authenticate])
                .answer_seeing(|seen, p| {
                    if p.msg == PASSWORD_PROMPT {
                        return Some(user.password().to_owned());
                    }
                    secret = shown_secret(seen);
                    None
                }),
        );
        t.assert_rc(Op::Authenticate, PamCode::CONV_ERR);
        secrets.push(secret.unwrap_or_else(|| panic!("a secret is shown\n{t}")));
    }
    assert_ne!(
        secrets[0], secrets[1],
        "an abandoned secret is never reused"
    );
    assert!(!record_path(&sb, user.uid()).exists());
}

#[test]
fn configure_keeps_every_message_within_512_bytes_with_a_long_issuer() {
    // 29 characters, within the 64 the config allows; percent-encoded
    // twice in the otpauth URI it makes a URI of about 600 bytes.
    let sb = sandbox_with(&format!(
        "[totp]\nissuer = \"株式会社サンプル本番環境東京データセンター第二開発部門\"\n\n{}",
        policy("configure")
    ));
    let user = TestUser::create("polissuer");
    mfa_alone_with_account(&sb, "mfa");
    let mut secret = None;
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_seeing(|seen, _| {
                secret = shown_secret(seen);
                secret.as_deref().map(|s| oathtool_code(s, None))
            }),
    );
    t.assert_success();
    let long: Vec<usize> = t
        .messages()
        .iter()
        .map(|m| m.msg.len())
        .filter(|n| *n > 512)
        .collect();
    assert!(
        long.is_empty(),
        "messages of {long:?} bytes: longer than PAM_MAX_MSG_SIZE, not split\n{t}"
    );
    // Split or not, the whole URI must reach the user.
    let shown: String = texts(&t, Style::TextInfo).concat();
    let secret = secret.expect("the secret was shown");
    assert!(shown.contains(&format!("secret={secret}")), "{t}");
}

/// pam_mfa alone for auth and account.
fn mfa_alone_with_account(sb: &pam_mfa_e2e::Sandbox, service: &str) {
    sb.service(
        service,
        &format!(
            "{}{}",
            sb.pam_mfa_line("auth required", ""),
            sb.pam_mfa_line("account required", "")
        ),
    );
}

#[test]
fn of_two_simultaneous_enrollments_at_login_exactly_one_is_saved() {
    let sb = sandbox_with(&policy("configure"));
    let user = TestUser::create("polrace");
    mfa_alone_with_account(&sb, "mfa");
    // Both logins are shown a new device before either is saved.
    let both_shown = std::sync::Barrier::new(2);
    let run = || {
        let mut secret = None;
        let t = sb.converse(
            Converse::new("mfa", user.name())
                .ops(&[Op::Authenticate, Op::AcctMgmt])
                .answer_seeing(|seen, _| {
                    secret = shown_secret(seen);
                    both_shown.wait();
                    secret.as_deref().map(|s| oathtool_code(s, None))
                }),
        );
        (t, secret.expect("a secret was shown"))
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        (a.join().unwrap(), b.join().unwrap())
    });
    let results = [&a, &b].map(|(t, _)| (t.rc(Op::Authenticate), t.rc(Op::AcctMgmt)));
    let winners: Vec<usize> = (0..2)
        .filter(|i| results[*i] == (Some(PamCode::SUCCESS), Some(PamCode::SUCCESS)))
        .collect();
    assert_eq!(winners.len(), 1, "{}\n{}", a.0, b.0);
    let (winner, loser) = if winners[0] == 0 { (&a, &b) } else { (&b, &a) };
    loser.0.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    assert_ne!(
        loser.0.rc(Op::AcctMgmt),
        Some(PamCode::SUCCESS),
        "{}",
        loser.0
    );
    expect_event(&loser.0, "auth_denied", &[("user", user.name())]);
    let s = status(&sb, user.uid());
    assert_eq!((s.enrolled, s.devices.len()), (true, 1));
    // The saved device is the winner's.
    password_then_code(&sb, "login", "requisite");
    let with_loser = login(&sb, "login", &user, || code_next(&loser.1));
    with_loser.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let with_winner = login(&sb, "login", &user, || code_next(&winner.1));
    with_winner.assert_success();
}

#[test]
fn a_module_argument_overrides_the_policy_of_the_config() {
    let sb = sandbox_with(&policy("skip"));
    let user = TestUser::create("polarg");
    sb.service(
        "strict",
        &format!(
            "auth requisite pam_unix.so nodelay\n{}",
            sb.pam_mfa_line("auth required", "not_configured=deny")
        ),
    );
    password_then_code(&sb, "lenient", "requisite");
    let t = login(&sb, "strict", &user, String::new);
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_denied", &[("service", "strict")]);
    let lenient = login(&sb, "lenient", &user, String::new);
    lenient.assert_success();
}

#[test]
fn a_recent_success_on_the_same_service_is_remembered() {
    let sb = sandbox_with("[policy]\nremember_seconds = 300\n\n[throttle]\nfail_delay_ms = 0\n");
    let user = TestUser::create("polremem");
    let device = enroll(&sb, &user);
    password_then_code(&sb, "sudo", "requisite");
    password_then_code(&sb, "sshd", "requisite");
    login(&sb, "sudo", &user, || code_now(&device.secret)).assert_success();
    let again = login(&sb, "sudo", &user, String::new);
    again.assert_success().assert_prompts(&[PASSWORD_PROMPT]);
    expect_event(
        &again,
        "auth_skipped",
        &[("service", "sudo"), ("method", "remembered")],
    );
    // Another service asks.
    let other = login(&sb, "sshd", &user, || code_next(&device.secret));
    other
        .assert_success()
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
}

#[test]
fn a_remembered_success_holds_only_for_the_same_remote_host_and_terminal() {
    let sb = sandbox_with("[policy]\nremember_seconds = 300\n\n[throttle]\nfail_delay_ms = 0\n");
    let user = TestUser::create("polremhost");
    let device = enroll(&sb, &user);
    password_then_code(&sb, "sshd", "requisite");
    let from = |rhost: &str, tty: &str, code: Option<String>| {
        let mut code = code;
        sb.converse(
            Converse::new("sshd", user.name())
                .rhost(rhost)
                .tty(tty)
                .ops(&[Op::Authenticate, Op::AcctMgmt])
                .answer_with(password_and(user.password(), move || {
                    code.take().unwrap_or_default()
                })),
        )
    };
    from("192.0.2.10", "ssh", Some(code_now(&device.secret))).assert_success();
    // The same host and terminal: remembered.
    from("192.0.2.10", "ssh", None)
        .assert_success()
        .assert_prompts(&[PASSWORD_PROMPT]);
    // Another host, or another terminal, must give a code.
    for (rhost, tty) in [("198.51.100.7", "ssh"), ("192.0.2.10", "pts/9")] {
        let t = from(rhost, tty, None);
        t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
            .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    }
}

// ---------------------------------------------------------------------------
// The effective policy: the strictest of [policy], [service.NAME] and
// groups.require_policy wins; exempt groups step aside

/// The name of `user`'s primary group (Debian gives each user their own).
fn primary_group(user: &TestUser) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(user.gid()))
        .unwrap()
        .expect("the user's primary group exists")
        .name
}

#[test]
fn the_man_page_example_denies_unenrolled_members_of_a_required_group() {
    // pam_mfa.toml(5)'s EXAMPLE, with the member's own group as "wheel".
    let member = TestUser::create("polman");
    let other = TestUser::create("polmano");
    let wheel = primary_group(&member);
    let sb = sandbox_with(&format!(
        "[policy]\nnot_configured = \"configure\"\n\n\
         [groups]\nrequire = [\"{wheel}\"]\nrequire_policy = \"deny\"\n\n\
         [service.sshd]\nnot_configured = \"deny\"\n\n{}",
        common::FAST
    ));
    password_then_code(&sb, "login", "requisite");

    // A member of the required group is denied, not offered an enrollment.
    let t = login(&sb, "login", &member, || "123456".to_owned());
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    assert!(
        texts(&t, Style::TextInfo).is_empty(),
        "no QR code or secret for a member of a required group under deny\n{t}"
    );
    expect_event(
        &t,
        "auth_denied",
        &[("user", member.name()), ("service", "login")],
    );
    assert!(!record_path(&sb, member.uid()).exists(), "{t}");

    // Anyone else still enrolls at login (configure).
    let (t, secret) = enroll_at_login(&sb, "login", &other);
    t.assert_success()
        .assert_prompts(&[PASSWORD_PROMPT, NEW_DEVICE_PROMPT]);
    assert!(secret.is_some(), "{t}");
    assert!(status(&sb, other.uid()).enrolled, "{t}");
}

/// What pam_mfa does with an unenrolled user, as seen from pamtester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Nothing asked, the login passes (skip, exempt).
    Passes,
    /// The enrollment is offered: the new device's code is asked.
    Enrollment,
    /// The code is asked, then the login is refused.
    Refused,
}

/// Runs pamtester for `user` on `service` (pam_mfa, and `pam_permit`
/// behind it for `PAM_IGNORE`) answering anything asked with a non-code.
fn seen_by_pamtester(sb: &pam_mfa_e2e::Sandbox, service: &str, user: &TestUser) -> Seen {
    let run = sb.pamtester(service, user.name(), &["authenticate"], &["not-a-code"]);
    let out = format!("{}{}", run.stdout, run.stderr);
    let enrollment = out.contains(NEW_DEVICE_PROMPT.trim_end());
    let code = out.contains(CODE_PROMPT.trim_end());
    match (run.success(), enrollment, code) {
        (true, false, false) => Seen::Passes,
        (false, true, false) if out.contains("Authentication failure") => Seen::Enrollment,
        (false, false, true) if out.contains("Authentication failure") => Seen::Refused,
        _ => panic!("unexpected pamtester run:\n{run}"),
    }
}

#[test]
fn the_strictest_policy_applies_to_unenrolled_users_across_the_whole_matrix() {
    const POLICY_ORDER: [&str; 3] = ["skip", "configure", "deny"];
    let member = TestUser::create("polmxm");
    let outsider = TestUser::create("polmxn");
    let exempt = TestUser::create("polmxe");
    let sb = sandbox_with(common::FAST);
    common::ignore_falls_through(&sb, "sshd");
    let mut rows = Vec::new();
    for base in POLICY_ORDER {
        for service in [None, Some("skip"), Some("configure"), Some("deny")] {
            for require_policy in ["configure", "deny"] {
                let table = service.map_or(String::new(), |p| {
                    format!("[service.sshd]\nnot_configured = \"{p}\"\n")
                });
                sb.write_config(&format!(
                    "[policy]\nnot_configured = \"{base}\"\n\n\
                     [groups]\nrequire = [\"{}\"]\nrequire_policy = \"{require_policy}\"\n\
                     exempt = [\"{}\"]\n\n{}\n{table}",
                    primary_group(&member),
                    primary_group(&exempt),
                    common::FAST,
                ));
                for (who, user) in [
                    ("member", &member),
                    ("outsider", &outsider),
                    ("exempt", &exempt),
                ] {
                    // The strictest of the policies that apply to this user.
                    let mut applies = vec![base];
                    applies.extend(service);
                    if who == "member" {
                        applies.push(require_policy);
                    }
                    let strictest = applies
                        .iter()
                        .map(|p| POLICY_ORDER.iter().position(|o| o == p).unwrap())
                        .max()
                        .map(|i| POLICY_ORDER[i])
                        .unwrap();
                    let expected = match (who, strictest) {
                        ("exempt", _) | (_, "skip") => Seen::Passes,
                        (_, "configure") => Seen::Enrollment,
                        _ => Seen::Refused,
                    };
                    let seen = seen_by_pamtester(&sb, "sshd", user);
                    rows.push(format!(
                        "base {base:9} service {:9} require_policy {require_policy:9} {who:8} -> {seen:?}",
                        service.unwrap_or("-")
                    ));
                    assert_eq!(seen, expected, "{}", rows.join("\n"));
                    assert!(!record_path(&sb, user.uid()).exists());
                }
            }
        }
    }
    assert_eq!(rows.len(), 3 * 4 * 2 * 3);
}

#[test]
fn a_service_table_with_capitals_fails_closed_and_says_libpam_lowercases_names() {
    let sb = sandbox_with(&policy("skip"));
    sb.write_config(&format!(
        "{}\n[service.SSHD]\nnot_configured = \"deny\"\n",
        policy("skip")
    ));
    let user = TestUser::create("polcaps");
    password_then_code(&sb, "sshd", "requisite");
    let t = login(&sb, "sshd", &user, || "123456".to_owned());
    t.assert_rc(Op::Authenticate, PamCode::SERVICE_ERR)
        .assert_prompts(&[PASSWORD_PROMPT]);
    let line = expect_event(&t, "config_failure", &[("service", "sshd")]);
    let reason = line.get("reason").unwrap_or_default();
    assert!(
        reason.contains("libpam lowercases") && reason.contains("[service.sshd]"),
        "{reason}"
    );
    assert!(!record_path(&sb, user.uid()).exists(), "{t}");
}

// ---------------------------------------------------------------------------
// break_glass: a console login steps aside, logged at alert each time

/// `deny` for users without a device, `login` with `break_glass`, and the
/// password before pam_mfa on `login` and `sudo`.
fn break_glass_sandbox() -> pam_mfa_e2e::Sandbox {
    let sb = sandbox_with(&format!(
        "{}\n[service.login]\nbreak_glass = true\n",
        policy("deny")
    ));
    password_then_code(&sb, "login", "requisite");
    password_then_code(&sb, "sudo", "requisite");
    sb
}

#[test]
fn break_glass_lets_a_console_login_in_without_a_code_and_logs_an_alert() {
    let sb = break_glass_sandbox();
    let enrolled = TestUser::create("polbge");
    let unenrolled = TestUser::create("polbgu");
    enroll(&sb, &enrolled);
    for (user, tty) in [
        (&enrolled, "tty1"),
        (&enrolled, "/dev/tty2"),
        (&unenrolled, "tty63"),
        (&enrolled, "/dev/console"),
    ] {
        let t = sb.converse(
            Converse::new("login", user.name())
                .tty(tty)
                .ops(&[Op::Authenticate, Op::AcctMgmt])
                .answer_with(password_and(user.password(), || {
                    panic!("no code may be asked on the console")
                })),
        );
        t.assert_success().assert_prompts(&[PASSWORD_PROMPT]);
        let line = expect_event(
            &t,
            "break_glass",
            &[("user", user.name()), ("service", "login")],
        );
        assert!(
            line.get("reason").is_some_and(|r| r.contains(tty)),
            "the console is named: {line:?}"
        );
        assert_no_event(&t, "auth_success");
    }
    // Every use is logged, not only the first.
    let alerts = sb
        .syslog()
        .lines()
        .into_iter()
        .filter(|l| l.tag == "pam_mfa" && l.message.starts_with("event=break_glass"))
        .count();
    assert_eq!(alerts, 4);
    // The code itself was never used.
    let s = status(&sb, enrolled.uid());
    assert_eq!((s.failures, s.devices[0].last_used_step), (0, None));
}

#[test]
fn break_glass_asks_for_the_code_off_the_console_or_on_other_services() {
    let sb = break_glass_sandbox();
    let user = TestUser::create("polbgn");
    let device = enroll(&sb, &user);
    let cases: [(&str, Option<&str>, Option<&str>); 5] = [
        ("login", Some("pts/0"), None),
        ("login", Some("/dev/pts/3"), None),
        ("login", Some("tty1"), Some("192.0.2.7")),
        ("login", None, None),
        ("sudo", Some("tty1"), None),
    ];
    for (service, tty, rhost) in cases {
        forget_last_step(&sb, user.uid());
        let mut c = Converse::new(service, user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(password_and(user.password(), || code_now(&device.secret)));
        if let Some(tty) = tty {
            c = c.tty(tty);
        }
        if let Some(rhost) = rhost {
            c = c.rhost(rhost);
        }
        let t = sb.converse(c);
        t.assert_success()
            .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
        expect_event(&t, "auth_success", &[("service", service)]);
        assert_no_event(&t, "break_glass");
    }
}

#[test]
fn break_glass_is_the_way_in_when_the_master_key_is_gone() {
    let sb = break_glass_sandbox();
    let user = TestUser::create("polbgk");
    let device = enroll(&sb, &user);
    std::fs::remove_file(sb.key_file()).unwrap();
    let remote = sb.converse(
        Converse::new("login", user.name())
            .tty("pts/0")
            .answer_with(password_and(user.password(), || code_now(&device.secret))),
    );
    remote.assert_rc(Op::Authenticate, PamCode::AUTHINFO_UNAVAIL);
    let console = sb.converse(
        Converse::new("login", user.name())
            .tty("tty1")
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_with(password_and(user.password(), || {
                panic!("no code may be asked on the console")
            })),
    );
    console.assert_success().assert_prompts(&[PASSWORD_PROMPT]);
    expect_event(&console, "break_glass", &[("user", user.name())]);
}

#[test]
fn pamtester_with_a_console_tty_steps_aside_only_where_break_glass_is_set() {
    let sb = break_glass_sandbox();
    let user = TestUser::create("polbgp");
    common::ignore_falls_through(&sb, "login");
    common::ignore_falls_through(&sb, "sudo");
    // pamtester sets PAM_TTY with -I; a wrapper puts it before its usual arguments.
    let wrapper = sb.path("pamtester-on-tty1");
    std::fs::write(&wrapper, "#!/bin/sh\nexec pamtester -I tty=tty1 \"$@\"\n").unwrap();
    std::fs::set_permissions(&wrapper, PermissionsExt::from_mode(0o755)).unwrap();
    let console = sb.pamtester_via(&wrapper, "login", user.name(), &["authenticate"], &[]);
    console.assert_success();
    let sudo = sb.pamtester_via(&wrapper, "sudo", user.name(), &["authenticate"], &["x"]);
    sudo.assert_failure();
    assert!(
        format!("{}{}", sudo.stdout, sudo.stderr).contains(CODE_PROMPT.trim_end()),
        "{sudo}"
    );
    let lines = sb.syslog().lines();
    let breaks: Vec<_> = lines
        .iter()
        .filter(|l| l.tag == "pam_mfa" && l.message.starts_with("event=break_glass"))
        .collect();
    assert_eq!(breaks.len(), 1, "{lines:#?}");
    assert_eq!(breaks[0].severity(), Some(1), "{}", breaks[0]);
}

//! What pam_mfa writes to syslog: one `key=value` line per decision, ident
//! `pam_mfa`, facility authpriv, the documented level, hostile values
//! escaped; never a code, a secret, a recovery code or a password; and the
//! application's own syslog identity left alone. Needs root.

mod common;

use common::{
    audit_lines, code_now, documented_severity, enroll, expect_event, fast_sandbox, mfa_alone,
    policy, sandbox_with, wrong_code, AuditLine, PASSWORD_PROMPT,
};
use pam_mfa_e2e::protocol::Message;
use pam_mfa_e2e::syslog::AUTHPRIV;
use pam_mfa_e2e::{oathtool_code, Converse, Op, PamCode, Style, TestUser};

#[test]
fn no_log_line_ever_contains_a_code_a_secret_a_recovery_code_or_a_password() {
    let sb = fast_sandbox();
    let user = TestUser::create("logsec");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let mut said: Vec<String> = vec![device.secret.clone()];
    said.extend(device.recovery_codes.iter().cloned());

    // A success, its replay, a wrong code, a recovery code, a wrong one.
    let code = code_now(&device.secret);
    said.push(code.clone());
    sb.converse(Converse::new("mfa", user.name()).answer(&code))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    sb.converse(Converse::new("mfa", user.name()).answer(&code))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let wrong = wrong_code(&device.secret);
    said.push(wrong.clone());
    sb.converse(Converse::new("mfa", user.name()).answer(&wrong))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    sb.converse(Converse::new("mfa", user.name()).answer(&device.recovery_codes[0]))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    let fake_recovery = "zzzz-zzzz-zzzz".to_owned();
    said.push(fake_recovery.clone());
    sb.converse(Converse::new("mfa", user.name()).answer(&fake_recovery))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    // The password typed into the code prompt by mistake.
    said.push(user.password().to_owned());
    sb.converse(Converse::new("mfa", user.name()).answer(user.password()))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    // An unknown user's answer.
    let unknown_answer = "481516".to_owned();
    said.push(unknown_answer.clone());
    sb.converse(Converse::new("mfa", "nosuchuserhere").answer(&unknown_answer))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);

    // An enrollment at login: the secret, the code and the recovery codes.
    let new_user = TestUser::create("logsecn");
    sb.write_config(&policy("configure"));
    sb.service(
        "conf",
        &format!(
            "{}{}",
            sb.pam_mfa_line("auth required", ""),
            sb.pam_mfa_line("account required", "")
        ),
    );
    let mut shown = Vec::new();
    let t = sb.converse(
        Converse::new("conf", new_user.name())
            .ops(&[Op::Authenticate, Op::AcctMgmt])
            .answer_seeing(|seen: &[Message], _| {
                let secret = seen
                    .iter()
                    .find_map(|m| m.msg.strip_prefix("Secret: "))?
                    .replace(' ', "");
                let code = oathtool_code(&secret, None);
                shown.push(secret);
                shown.push(code.clone());
                Some(code)
            }),
    );
    t.assert_success();
    expect_event(&t, "device_enrolled", &[("user", new_user.name())]);
    let codes_message = common::texts(&t, Style::TextInfo)
        .into_iter()
        .find(|m| m.contains("recovery codes"))
        .unwrap_or_else(|| panic!("recovery codes shown\n{t}"));
    shown.extend(codes_message.lines().skip(1).map(str::to_owned));
    assert_eq!(shown.len(), 12, "{t}");
    said.extend(shown);

    // Every line arrived: the last run's final event was waited for.
    let lines = sb.syslog().lines();
    assert!(lines.len() >= 9, "{lines:#?}");
    common::assert_logs_never_contain(&sb, &said);
}

#[test]
fn every_line_is_one_event_with_ident_pam_mfa_facility_authpriv_and_its_level() {
    let sb = fast_sandbox();
    let user = TestUser::create("logfmt");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    sb.converse(Converse::new("mfa", user.name()).answer(&code_now(&device.secret)))
        .assert_rc(Op::Authenticate, PamCode::SUCCESS);
    sb.converse(Converse::new("mfa", user.name()).answer(&wrong_code(&device.secret)))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    sb.converse(Converse::new("mfa", user.name()).no_conv())
        .assert_rc(Op::Authenticate, PamCode::CONV_ERR);
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&device.recovery_codes[0]));
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    expect_event(&t, "auth_success", &[("method", "recovery")]);
    let lines: Vec<_> = sb
        .syslog()
        .lines()
        .into_iter()
        .filter(|l| l.tag == "pam_mfa")
        .collect();
    let events: Vec<String> = lines
        .iter()
        .map(|l| {
            assert_eq!(l.facility(), Some(AUTHPRIV), "{l}");
            assert!(l.pid.is_some(), "{l}");
            let a = AuditLine::parse(&l.message).unwrap_or_else(|| panic!("key=value: {l}"));
            assert_eq!(l.severity(), Some(documented_severity(&a.event)), "{l}");
            a.event
        })
        .collect();
    assert_eq!(
        events,
        [
            "auth_success",
            "auth_failure",
            "auth_no_conversation",
            "recovery_code_used",
            "auth_success"
        ],
        "one line per decision"
    );
}

#[test]
fn hostile_names_and_hosts_cannot_forge_a_field_or_a_line() {
    let sb = fast_sandbox();
    mfa_alone(&sb, "mfa", "");
    let name = "mallory user=root uid=0\nevent=auth_success";
    let rhost = "192.0.2.1 method=totp\r\n<86>pam_mfa[1]: event=auth_success";
    let t = sb.converse(Converse::new("mfa", name).rhost(rhost).answer("123456"));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let line = expect_event(&t, "auth_denied", &[("user", name), ("rhost", rhost)]);
    assert_eq!(line.get("uid"), None);
    let ours: Vec<_> = t
        .logs()
        .into_iter()
        .filter(|l| l.tag == "pam_mfa")
        .collect();
    assert_eq!(ours.len(), 1, "{t}");
    assert!(
        !ours[0].raw.contains('\n') && !ours[0].raw.contains('\r'),
        "{}",
        ours[0]
    );
    assert!(
        audit_lines(&t).iter().all(|a| a.event != "auth_success"),
        "{t}"
    );
}

#[test]
fn the_debug_argument_logs_the_effective_settings_and_no_secret() {
    let sb = fast_sandbox();
    let user = TestUser::create("logdebug");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "debug window=2");
    let code = code_now(&device.secret);
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&code));
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    expect_event(&t, "auth_success", &[("user", user.name())]);
    let settings: Vec<String> = audit_lines(&t)
        .into_iter()
        .filter(|a| a.event == "debug")
        .filter_map(|a| a.get("reason").map(str::to_owned))
        .collect();
    assert!(!settings.is_empty(), "{t}");
    assert!(
        settings
            .iter()
            .any(|s| s.contains("window") && s.contains('2')),
        "the argument's value is the effective one: {settings:#?}"
    );
    common::assert_logs_never_contain(&sb, &[device.secret.clone(), code]);
}

#[test]
fn pam_mfa_leaves_the_applications_syslog_identity_alone() {
    let sb = fast_sandbox();
    let user = TestUser::create("logident");
    let device = enroll(&sb, &user);
    // pam_mfa logs first, then pam_unix logs through the application's
    // syslog connection: an openlog("pam_mfa") would have renamed it.
    sb.service(
        "both",
        &format!(
            "{}auth required pam_unix.so nodelay\n",
            sb.pam_mfa_line("auth required", "")
        ),
    );
    let t = sb.converse(Converse::new("both", user.name()).answer_with(|p| {
        Some(if p.msg == PASSWORD_PROMPT {
            "not the password".to_owned()
        } else {
            code_now(&device.secret)
        })
    }));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    expect_event(&t, "auth_success", &[("user", user.name())]);
    let unix = t
        .wait_for_log(
            |l| {
                l.message
                    .starts_with("pam_unix(both:auth): authentication failure")
            },
            common::WAIT,
        )
        .unwrap_or_else(|e| panic!("pam_unix logs: {e:?}"));
    assert_eq!(unix.tag, "pam-converse", "{unix}");
}

#[test]
fn pam_mfa_leaves_pam_user_alone() {
    let sb = sandbox_with(&policy("skip"));
    let user = TestUser::create("loguser");
    let device = enroll(&sb, &user);
    sb.service(
        "check",
        &format!(
            "{}auth required pam_succeed_if.so quiet user = {}\n",
            sb.pam_mfa_line("auth required", ""),
            user.name()
        ),
    );
    let t = sb.converse(
        Converse::new("check", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
}

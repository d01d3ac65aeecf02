//! `pam_mfa.so` through the real libpam: its exported entry points, and every
//! row of the return-code table in `docs/pam_mfa.md`, each with the audit
//! line it is documented to produce. Needs root.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{
    code_now, enroll, expect_event, fast_sandbox, ignore_falls_through, mfa_alone, sandbox_with,
    status, texts, wrong_code, CODE_PROMPT, FAST,
};
use nix::libc;
use pam_mfa_e2e::{native, Converse, Op, PamCode, Sandbox, Style, TestUser};

// ---------------------------------------------------------------------------
// The shared object

#[test]
fn the_module_exports_every_pam_entry_point() {
    let sb = fast_sandbox();
    let path = CString::new(sb.pam_mfa_module().to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path; RTLD_NOW resolves every symbol now, so a
    // module libpam could not load fails here too.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {path:?} failed: {}", dlerror());
    let mut missing = Vec::new();
    for name in [
        "pam_sm_authenticate",
        "pam_sm_setcred",
        "pam_sm_acct_mgmt",
        "pam_sm_chauthtok",
        "pam_sm_open_session",
        "pam_sm_close_session",
    ] {
        let symbol = CString::new(name).unwrap();
        // SAFETY: a live handle from dlopen and a NUL-terminated name; the
        // address is only compared with NULL, never called.
        let address = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
        if address.is_null() {
            missing.push(name);
        }
    }
    // SAFETY: the handle came from dlopen and is closed once; no symbol
    // from it is used afterwards.
    unsafe { libc::dlclose(handle) };
    assert!(missing.is_empty(), "not exported: {missing:?}");
}

/// sshd and sudo load the module afresh for every login, so every library
/// it needs that they do not load themselves is loaded and relocated at
/// every login: the module must need only libpam and the C library (the
/// unwinder is linked in, see `pam_mfa/build.rs` and `docs/benchmarks.md`).
#[test]
fn the_module_needs_only_libpam_and_libc() {
    let sb = fast_sandbox();
    let needed = native::needed_libraries(&sb.pam_mfa_module()).unwrap();
    let allowed = |lib: &&String| {
        lib.starts_with("libpam.so.") || lib.starts_with("libc.so.") || lib.starts_with("ld-linux")
    };
    assert!(
        needed.iter().any(|l| l.starts_with("libpam.so.")),
        "{needed:?}"
    );
    let extra: Vec<&String> = needed.iter().filter(|l| !allowed(l)).collect();
    assert!(
        extra.is_empty(),
        "the module needs {extra:?} as well: {needed:?}"
    );
}

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "(no message)".into();
    }
    // SAFETY: non-NULL, NUL-terminated, read at once.
    unsafe { std::ffi::CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

// ---------------------------------------------------------------------------
// PAM_SUCCESS

#[test]
fn the_current_code_returns_success() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcok");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .rhost("192.0.2.7")
            .answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
        .assert_prompts(&[CODE_PROMPT]);
    let uid = user.uid().to_string();
    expect_event(
        &t,
        "auth_success",
        &[
            ("user", user.name()),
            ("uid", &uid),
            ("service", "mfa"),
            ("rhost", "192.0.2.7"),
            ("method", "totp"),
            ("device", "phone"),
        ],
    );
    let s = status(&sb, user.uid());
    assert_eq!(s.failures, 0);
    let last = s.last_success.expect("the success is recorded");
    assert_eq!(
        (last.service.as_str(), last.rhost.as_str()),
        ("mfa", "192.0.2.7")
    );
    assert!(
        s.devices[0].last_used_step.is_some(),
        "the step is recorded"
    );
}

#[test]
fn setcred_returns_success() {
    let sb = fast_sandbox();
    let user = TestUser::create("rccred");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .ops(&[Op::Authenticate, Op::Setcred])
            .answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Setcred, PamCode::SUCCESS).assert_success();
}

#[test]
fn setcred_alone_returns_success_and_changes_nothing() {
    let sb = fast_sandbox();
    let user = TestUser::create("rccred");
    enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let before = status(&sb, user.uid());
    let t = sb.converse(Converse::new("mfa", user.name()).ops(&[Op::Setcred]));
    t.assert_rc(Op::Setcred, PamCode::SUCCESS);
    assert!(t.messages().is_empty(), "{t}");
    assert_eq!(status(&sb, user.uid()), before);
}

// ---------------------------------------------------------------------------
// PAM_IGNORE

#[test]
fn an_unenrolled_user_under_skip_is_ignored_and_the_next_module_decides() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcskip");
    ignore_falls_through(&sb, "keyonly");
    let t = sb.converse(Converse::new("keyonly", user.name()));
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    assert!(t.messages().is_empty(), "no prompt under skip\n{t}");
    let uid = user.uid().to_string();
    let line = expect_event(
        &t,
        "auth_skipped",
        &[("user", user.name()), ("uid", &uid), ("service", "keyonly")],
    );
    assert_eq!(line.get("reason"), Some("not enrolled; policy skip"));
    assert!(!common::record_path(&sb, user.uid()).exists());
}

#[test]
fn an_unenrolled_user_under_skip_alone_in_the_stack_is_permission_denied() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcskip");
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", user.name()));
    // Every module returned PAM_IGNORE: libpam turns that into PAM_PERM_DENIED.
    t.assert_rc(Op::Authenticate, PamCode::PERM_DENIED);
    assert!(t.messages().is_empty(), "{t}");
    expect_event(&t, "auth_skipped", &[("user", user.name())]);
}

#[test]
fn a_member_of_an_exempt_group_is_ignored_even_when_enrolled() {
    let user = TestUser::create("rcexempt");
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(user.gid()))
        .unwrap()
        .expect("the user's primary group exists")
        .name;
    let sb = sandbox_with(&format!("[groups]\nexempt = [\"{group}\"]\n\n{FAST}"));
    enroll(&sb, &user);
    ignore_falls_through(&sb, "keyonly");
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("keyonly", user.name()));
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    assert!(t.messages().is_empty(), "{t}");
    let line = expect_event(&t, "auth_skipped", &[("user", user.name())]);
    assert_eq!(line.get("reason"), Some("member of an exempt group"));
    let alone = sb.converse(Converse::new("mfa", user.name()));
    alone.assert_rc(Op::Authenticate, PamCode::PERM_DENIED);
}

#[test]
fn a_member_of_an_exempt_group_is_ignored_even_without_a_conversation() {
    // Exempt groups are for service and automation accounts, which are the
    // ones without a conversation (`sudo -n` after an SSH-agent or
    // pam_rootok first factor): pam_mfa has nothing to ask them, so a
    // missing conversation is no reason to fail them.
    let user = TestUser::create("rcexnc");
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(user.gid()))
        .unwrap()
        .expect("the user's primary group exists")
        .name;
    let sb = sandbox_with(&format!("[groups]\nexempt = [\"{group}\"]\n\n{FAST}"));
    enroll(&sb, &user);
    ignore_falls_through(&sb, "keyonly");
    let t = sb.converse(Converse::new("keyonly", user.name()).no_conv());
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    let line = expect_event(&t, "auth_skipped", &[("user", user.name())]);
    assert_eq!(line.get("reason"), Some("member of an exempt group"));
}

// ---------------------------------------------------------------------------
// PAM_AUTH_ERR

#[test]
fn a_wrong_code_is_auth_err_and_counted() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcwrong");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let wrong = wrong_code(&device.secret);
    let t = sb.converse(Converse::new("mfa", user.name()).answer(&wrong));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    let line = expect_event(
        &t,
        "auth_failure",
        &[
            ("user", user.name()),
            ("service", "mfa"),
            ("method", "totp"),
        ],
    );
    assert_eq!(line.get("reason"), Some("wrong code"));
    assert_eq!(status(&sb, user.uid()).failures, 1);
}

#[test]
fn an_unenrolled_user_under_deny_is_auth_err_with_a_message() {
    let sb = sandbox_with(&common::policy("deny"));
    let user = TestUser::create("rcdeny");
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", user.name()).answer("123456"));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    // Asked like an unknown user would be, so the two look the same.
    t.assert_prompts(&["Verification code: "]);
    let errors = texts(&t, Style::ErrorMsg);
    assert_eq!(errors.len(), 1, "{t}");
    assert!(errors[0].contains("Ask an administrator"), "{t}");
    let line = expect_event(&t, "auth_denied", &[("user", user.name())]);
    assert_eq!(line.get("reason"), Some("not enrolled; policy deny"));
    assert!(!common::record_path(&sb, user.uid()).exists());
}

#[test]
fn an_unknown_user_gets_the_same_prompt_then_auth_err() {
    let sb = fast_sandbox();
    mfa_alone(&sb, "mfa", "");
    let name = format!("nosuch{}", std::process::id());
    let t = sb.converse(Converse::new("mfa", &name).answer("123456"));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    let line = expect_event(&t, "auth_denied", &[("user", &name), ("service", "mfa")]);
    assert_eq!(line.get("reason"), Some("unknown user"));
    assert_eq!(line.get("uid"), None);
}

#[test]
fn an_unknown_user_under_skip_is_never_ignored() {
    let sb = fast_sandbox();
    ignore_falls_through(&sb, "keyonly");
    let name = format!("nosuch{}", std::process::id());
    let t = sb.converse(Converse::new("keyonly", &name).answer("123456"));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    expect_event(&t, "auth_denied", &[("user", &name)]);
}

#[test]
fn back_off_is_auth_err_without_evaluating_the_code() {
    let sb = sandbox_with(
        "[throttle]\nfail_delay_ms = 0\nbackoff_after = 1\nbackoff_seconds = 3600\nbackoff_max_seconds = 3600\n",
    );
    let user = TestUser::create("rcback");
    let device = enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let wrong = wrong_code(&device.secret);
    sb.converse(Converse::new("mfa", user.name()).answer(&wrong))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let t = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert!(t.prompts().is_empty(), "refused before asking\n{t}");
    let errors = texts(&t, Style::ErrorMsg);
    assert!(
        errors.len() == 1 && errors[0].starts_with("Too many failed attempts: try again in"),
        "{t}"
    );
    expect_event(&t, "auth_throttled", &[("user", user.name())]);
    let s = status(&sb, user.uid());
    assert_eq!(s.failures, 1, "a refused attempt is not another failure");
    assert_eq!(s.devices[0].last_used_step, None, "the code was not used");
}

// ---------------------------------------------------------------------------
// PAM_MAXTRIES

#[test]
fn a_user_at_the_failure_cap_gets_maxtries() {
    let sb = sandbox_with("[throttle]\nfail_delay_ms = 0\nlockout_after = 5\n");
    let user = TestUser::create("rcmax");
    let device = enroll(&sb, &user);
    // Five failures long ago: no back-off left to wait for, only the cap.
    common::edit_record(&sb, user.uid(), |r| {
        r.failures = 5;
        r.last_failure = Some(1);
    });
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(
        Converse::new("mfa", user.name()).answer_with(|_| Some(code_now(&device.secret))),
    );
    t.assert_rc(Op::Authenticate, PamCode::MAXTRIES);
    assert!(t.prompts().is_empty(), "{t}");
    let errors = texts(&t, Style::ErrorMsg);
    assert!(
        errors.len() == 1 && errors[0].contains("locked"),
        "the user is told\n{t}"
    );
    let line = expect_event(&t, "auth_locked", &[("user", user.name())]);
    assert_eq!(line.get("reason"), Some("failure cap reached"));
}

// ---------------------------------------------------------------------------
// PAM_CONV_ERR

#[test]
fn no_conversation_is_conv_err_and_not_a_failure() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcnoconv");
    enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", user.name()).no_conv());
    t.assert_rc(Op::Authenticate, PamCode::CONV_ERR);
    expect_event(&t, "auth_no_conversation", &[("user", user.name())]);
    assert_eq!(status(&sb, user.uid()).failures, 0);
}

#[test]
fn a_conversation_that_returns_nothing_is_conv_err() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcnoans");
    enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(Converse::new("mfa", user.name()).answer_with(|_| None));
    t.assert_rc(Op::Authenticate, PamCode::CONV_ERR)
        .assert_prompts(&[CODE_PROMPT]);
    let line = expect_event(&t, "auth_failure", &[("user", user.name())]);
    assert_eq!(line.get("reason"), Some("no answer from the conversation"));
    assert_eq!(status(&sb, user.uid()).failures, 0);
}

#[test]
fn a_failing_conversation_call_is_conv_err() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcconvf");
    enroll(&sb, &user);
    mfa_alone(&sb, "mfa", "");
    let t = sb.converse(
        Converse::new("mfa", user.name())
            .answer("123456")
            .conv_fail_at(1),
    );
    t.assert_rc(Op::Authenticate, PamCode::CONV_ERR);
    expect_event(&t, "auth_failure", &[("user", user.name())]);
}

// ---------------------------------------------------------------------------
// PAM_USER_UNKNOWN

#[test]
fn no_user_name_from_the_application_is_user_unknown() {
    let sb = fast_sandbox();
    mfa_alone(&sb, "mfa", "");
    // PAM_USER unset: libpam asks for a name, and gets no answer.
    let t = sb.converse(Converse::without_user("mfa"));
    t.assert_rc(Op::Authenticate, PamCode::USER_UNKNOWN);
    assert!(
        !t.prompts().iter().any(|p| p == CODE_PROMPT),
        "no code is asked for without a user\n{t}"
    );
    expect_event(&t, "auth_denied", &[("service", "mfa")]);
}

// ---------------------------------------------------------------------------
// PAM_AUTHINFO_UNAVAIL: the host's key and state directory

/// Runs an enrolled user's login twice: with pam_mfa alone (which must
/// return `want`, having asked nothing), and in the key-only sshd stack,
/// where `PAM_IGNORE` would fall through to `pam_permit` (which must fail).
fn refused_before_prompting(
    sb: &Sandbox,
    user: &TestUser,
    want: PamCode,
) -> pam_mfa_e2e::Transcript {
    mfa_alone(sb, "mfa", "");
    ignore_falls_through(sb, "keyonly");
    let t = sb.converse(Converse::new("mfa", user.name()).answer("123456"));
    t.assert_rc(Op::Authenticate, want);
    assert!(t.prompts().is_empty(), "refused before asking\n{t}");
    let fallthrough = sb.converse(Converse::new("keyonly", user.name()).answer("123456"));
    fallthrough.assert_rc(Op::Authenticate, want);
    t
}

#[test]
fn a_missing_key_file_is_authinfo_unavail() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcnokey");
    enroll(&sb, &user);
    fs::remove_file(sb.key_file()).unwrap();
    let t = refused_before_prompting(&sb, &user, PamCode::AUTHINFO_UNAVAIL);
    let key = sb.key_file().display().to_string();
    let line = expect_event(&t, "key_failure", &[("service", "mfa")]);
    assert!(
        line.get("reason").is_some_and(|r| r.contains(&key)),
        "{line:?}"
    );
}

#[test]
fn a_missing_key_file_is_authinfo_unavail_for_an_unenrolled_user_under_skip() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcnokey");
    fs::remove_file(sb.key_file()).unwrap();
    let t = refused_before_prompting(&sb, &user, PamCode::AUTHINFO_UNAVAIL);
    expect_event(&t, "key_failure", &[("service", "mfa")]);
}

#[test]
fn a_world_readable_key_file_is_authinfo_unavail() {
    let sb = fast_sandbox();
    let user = TestUser::create("rckeymode");
    enroll(&sb, &user);
    fs::set_permissions(sb.key_file(), fs::Permissions::from_mode(0o644)).unwrap();
    let t = refused_before_prompting(&sb, &user, PamCode::AUTHINFO_UNAVAIL);
    expect_event(&t, "key_failure", &[("service", "mfa")]);
}

#[test]
fn a_world_writable_state_directory_is_authinfo_unavail() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcdirmode");
    enroll(&sb, &user);
    fs::set_permissions(sb.state_dir(), fs::Permissions::from_mode(0o777)).unwrap();
    let t = refused_before_prompting(&sb, &user, PamCode::AUTHINFO_UNAVAIL);
    let dir = sb.state_dir().display().to_string();
    let logged = t
        .wait_for_log(
            |l| l.tag == "pam_mfa" && l.message.contains(&dir) && l.severity() <= Some(4),
            common::WAIT,
        )
        .unwrap_or_else(|e| panic!("the state directory is named in a warning: {e:?}"));
    assert!(
        logged.message.starts_with("event=key_failure")
            || logged.message.starts_with("event=store_failure"),
        "{logged}"
    );
}

#[test]
fn a_world_writable_state_directory_is_authinfo_unavail_for_an_unenrolled_user_under_skip() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcdirmode");
    fs::set_permissions(sb.state_dir(), fs::Permissions::from_mode(0o777)).unwrap();
    refused_before_prompting(&sb, &user, PamCode::AUTHINFO_UNAVAIL);
}

// ---------------------------------------------------------------------------
// PAM_SERVICE_ERR

/// Checks that the module refuses to run at all: `PAM_SERVICE_ERR` alone and
/// in the key-only stack, nothing asked, a `config_failure` line; returns it.
fn refused_as_misconfigured(sb: &Sandbox, args: &str) -> common::AuditLine {
    let user = TestUser::create("rcconf");
    mfa_alone(sb, "mfa", args);
    sb.service(
        "keyonly",
        &format!(
            "{}auth required pam_permit.so\n",
            sb.pam_mfa_line("auth [success=done ignore=ignore default=die]", args)
        ),
    );
    let t = sb.converse(Converse::new("mfa", user.name()).answer("123456"));
    t.assert_rc(Op::Authenticate, PamCode::SERVICE_ERR);
    assert!(t.messages().is_empty(), "nothing shown or asked\n{t}");
    let fallthrough = sb.converse(Converse::new("keyonly", user.name()).answer("123456"));
    fallthrough.assert_rc(Op::Authenticate, PamCode::SERVICE_ERR);
    let acct = sb.converse(Converse::new("mfa", user.name()).ops(&[Op::AcctMgmt]));
    assert_ne!(acct.rc(Op::AcctMgmt), Some(PamCode::SUCCESS), "{acct}");
    expect_event(&t, "config_failure", &[("service", "mfa")])
}

#[test]
fn an_unknown_module_argument_is_service_err() {
    let sb = fast_sandbox();
    let line = refused_as_misconfigured(&sb, "frobnicate=1");
    assert!(
        line.get("reason").is_some_and(|r| r.contains("frobnicate")),
        "the argument is named: {line:?}"
    );
}

#[test]
fn a_malformed_module_argument_value_is_service_err() {
    let sb = fast_sandbox();
    let line = refused_as_misconfigured(&sb, "not_configured=maybe");
    assert!(
        line.get("reason")
            .is_some_and(|r| r.contains("not_configured")),
        "{line:?}"
    );
}

#[test]
fn an_out_of_range_config_value_is_service_err() {
    let sb = fast_sandbox();
    sb.write_config("[totp]\nwindow = 99\n");
    let line = refused_as_misconfigured(&sb, "");
    let reason = line.get("reason").unwrap_or_default();
    assert!(reason.contains("window"), "the key is named: {line:?}");
    assert!(
        reason.contains(&sb.config_path().display().to_string()),
        "the file is named: {line:?}"
    );
}

#[test]
fn an_unknown_config_key_is_service_err() {
    let sb = fast_sandbox();
    sb.write_config("[policy]\nnot_configured = \"skip\"\nfrobnicate = 1\n");
    let line = refused_as_misconfigured(&sb, "");
    assert!(
        line.get("reason").is_some_and(|r| r.contains("frobnicate")),
        "{line:?}"
    );
}

#[test]
fn a_bad_policy_name_in_the_config_is_service_err() {
    let sb = fast_sandbox();
    sb.write_config("[policy]\nnot_configured = \"maybe\"\n");
    refused_as_misconfigured(&sb, "");
}

#[test]
fn a_config_that_is_not_toml_is_service_err() {
    let sb = fast_sandbox();
    let text = fs::read_to_string(sb.config_path()).unwrap();
    sb.write_config_raw(&format!("[policy\n{text}"));
    refused_as_misconfigured(&sb, "");
}

#[test]
fn a_world_writable_config_is_service_err() {
    let sb = fast_sandbox();
    fs::set_permissions(sb.config_path(), fs::Permissions::from_mode(0o666)).unwrap();
    let line = refused_as_misconfigured(&sb, "");
    assert!(
        line.get("reason")
            .is_some_and(|r| r.contains(&sb.config_path().display().to_string())),
        "{line:?}"
    );
}

#[test]
fn a_config_not_owned_by_root_is_service_err() {
    let sb = fast_sandbox();
    nix::unistd::chown(
        &sb.config_path(),
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();
    refused_as_misconfigured(&sb, "");
}

#[test]
fn a_missing_config_is_service_err() {
    let sb = fast_sandbox();
    fs::remove_file(sb.config_path()).unwrap();
    let line = refused_as_misconfigured(&sb, "");
    assert!(
        line.get("reason")
            .is_some_and(|r| r.contains(&sb.config_path().display().to_string())),
        "{line:?}"
    );
}

// ---------------------------------------------------------------------------
// The other entry points

#[test]
fn account_management_without_an_enrollment_in_the_transaction_succeeds() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcacct");
    sb.service("acct", &sb.pam_mfa_line("account required", ""));
    let t = sb.converse(Converse::new("acct", user.name()).ops(&[Op::AcctMgmt]));
    t.assert_rc(Op::AcctMgmt, PamCode::SUCCESS);
    assert!(t.messages().is_empty(), "{t}");
    assert!(!common::record_path(&sb, user.uid()).exists());
}

#[test]
fn sessions_are_ignored() {
    let sb = fast_sandbox();
    let user = TestUser::create("rcsess");
    sb.service(
        "sess",
        &format!(
            "auth required pam_permit.so\n{}session required pam_permit.so\n",
            sb.pam_mfa_line("session required", "")
        ),
    );
    sb.service(
        "sessalone",
        &format!(
            "auth required pam_permit.so\n{}",
            sb.pam_mfa_line("session required", "")
        ),
    );
    let t = sb.converse(Converse::new("sess", user.name()).ops(&[
        Op::Authenticate,
        Op::OpenSession,
        Op::CloseSession,
    ]));
    t.assert_success();
    // Alone in the stack, PAM_IGNORE becomes PAM_PERM_DENIED.
    let alone = sb.converse(
        Converse::new("sessalone", user.name()).ops(&[Op::Authenticate, Op::OpenSession]),
    );
    alone.assert_rc(Op::OpenSession, PamCode::PERM_DENIED);
}

//! The harness itself, proved with the system's own PAM modules: libpam
//! loads the sandbox's service files, pam-converse and pamtester talk to
//! real modules, the syslog sink receives what they log, and the host's
//! /etc/pam.d is never touched. Needs root.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use pam_mfa_e2e::protocol::Event;
use pam_mfa_e2e::sandbox::write_file;
use pam_mfa_e2e::syslog::AUTHPRIV;
use pam_mfa_e2e::{
    oathtool_code, oathtool_totp, sandbox, tools, unix_now, Converse, OathAlgorithm, OathSpec, Op,
    PamCode, Style, TestUser,
};

const WAIT: Duration = Duration::from_secs(10);

/// `pam_unix` without its 2 s failure delay, for auth and account.
const UNIX: &str = "\
auth    required pam_unix.so nodelay
account required pam_unix.so
";

#[test]
fn a_pam_permit_stack_succeeds_without_a_conversation() {
    let sb = sandbox!();
    sb.service("permit", "auth required pam_permit.so\n");
    let t = sb.converse(Converse::new("permit", "nobody"));
    t.assert_rc(Op::Authenticate, PamCode::SUCCESS)
        .assert_success();
    assert!(t.messages().is_empty(), "{t}");
}

#[test]
fn a_pam_deny_stack_fails_with_auth_err() {
    let sb = sandbox!();
    sb.service("deny", "auth required pam_deny.so\n");
    let t = sb.converse(Converse::new("deny", "nobody"));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert_eq!(t.run.code(), Some(1), "{t}");
}

#[test]
fn a_service_without_a_file_falls_back_to_the_sandbox_other_and_is_refused() {
    let sb = sandbox!();
    let t = sb.converse(Converse::new("no-such-service", "nobody"));
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
}

#[test]
fn pam_unix_accepts_the_right_password_from_the_script() {
    let sb = sandbox!();
    let user = TestUser::create("script");
    sb.service("unix", UNIX);
    let t = sb.converse(
        Converse::new("unix", user.name())
            .answer(user.password())
            .ops(&[Op::Authenticate, Op::AcctMgmt, Op::Setcred]),
    );
    t.assert_success().assert_prompts(&["Password: "]);
    assert_eq!(t.messages()[0].style, Style::PromptEchoOff, "{t}");
    t.assert_rc(Op::Setcred, PamCode::SUCCESS);
}

#[test]
fn pam_unix_refuses_a_wrong_password_from_the_script_and_logs_it() {
    let sb = sandbox!();
    let user = TestUser::create("script");
    sb.service("unix", UNIX);
    let t = sb.converse(
        Converse::new("unix", user.name())
            .answer("not the password")
            .ops(&[Op::Authenticate, Op::AcctMgmt]),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    assert_eq!(t.rc(Op::AcctMgmt), None, "ops stop at a failure\n{t}");
    let line = sb
        .syslog()
        .wait_for(
            |l| {
                l.message
                    .starts_with("pam_unix(unix:auth): authentication failure")
                    && l.message.ends_with(&format!("user={}", user.name()))
            },
            WAIT,
        )
        .expect("pam_unix logs the failure to the sandbox's /dev/log");
    assert_eq!(line.facility(), Some(AUTHPRIV), "{line}");
    assert_eq!(line.tag, "pam-converse", "{line}");
    assert!(t.logs().contains(&line), "{t}");
}

#[test]
fn pam_unix_accepts_the_right_password_typed_after_the_prompt() {
    let sb = sandbox!();
    let user = TestUser::create("stdin");
    sb.service("unix", UNIX);
    let mut seen = Vec::new();
    let t = sb.converse(Converse::new("unix", user.name()).answer_with(|prompt| {
        seen.push(prompt.clone());
        Some(user.password().to_owned())
    }));
    t.assert_success().assert_prompts(&["Password: "]);
    assert_eq!(seen.len(), 1, "{t}");
    assert_eq!(seen[0].style, Style::PromptEchoOff);
    assert_eq!(seen[0].call, 1);
}

#[test]
fn pam_unix_refuses_a_wrong_password_typed_after_the_prompt() {
    let sb = sandbox!();
    let user = TestUser::create("stdin");
    sb.service("unix", UNIX);
    let t = sb.converse(
        Converse::new("unix", user.name()).answer_with(|_| Some("not the password".into())),
    );
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR)
        .assert_prompts(&["Password: "]);
}

#[test]
fn running_out_of_answers_fails_the_conversation() {
    let sb = sandbox!();
    let user = TestUser::create("noanswer");
    sb.service("unix", UNIX);
    let t = sb.converse(Converse::new("unix", user.name()));
    // pam_unix turns a failed conversation into PAM_AUTHTOK_ERR.
    t.assert_rc(Op::Authenticate, PamCode(20))
        .assert_prompts(&["Password: "]);
    assert_eq!(
        t.other_events(),
        [Event::ConvError {
            call: 1,
            reason: "no answer left".into()
        }],
        "{t}"
    );
}

#[test]
fn a_live_answer_function_that_gives_up_fails_the_conversation() {
    let sb = sandbox!();
    let user = TestUser::create("giveup");
    sb.service("unix", UNIX);
    let t = sb.converse(Converse::new("unix", user.name()).answer_with(|_| None));
    t.assert_rc(Op::Authenticate, PamCode(20));
    assert!(
        matches!(&t.other_events()[..], [Event::ConvError { call: 1, .. }]),
        "{t}"
    );
}

#[test]
fn no_conv_fails_pam_unix_without_prompting() {
    let sb = sandbox!();
    let user = TestUser::create("noconv");
    sb.service("unix", UNIX);
    let t = sb.converse(Converse::new("unix", user.name()).no_conv());
    t.assert_rc(Op::Authenticate, PamCode(20));
    assert!(t.messages().is_empty(), "{t}");
    sb.syslog()
        .wait_for(
            |l| l.message == "pam_unix(unix:auth): no conversation function",
            WAIT,
        )
        .expect("libpam reports the missing conversation");
}

/// A banner module (optional) whose message comes in conversation call 1,
/// then `pam_unix`, whose password prompt is call 2.
const BANNER_THEN_UNIX: &str = "\
auth optional pam_echo.so Authorized use only
auth required pam_unix.so nodelay
";

#[test]
fn failing_the_optional_banner_call_still_lets_the_password_through() {
    let sb = sandbox!();
    let user = TestUser::create("failat");
    sb.service("banner", BANNER_THEN_UNIX);
    let t = sb.converse(
        Converse::new("banner", user.name())
            .answer(user.password())
            .conv_fail_at(1),
    );
    t.assert_success().assert_prompts(&["Password: "]);
    assert_eq!(
        t.other_events(),
        [Event::ConvError {
            call: 1,
            reason: "--conv-fail-at".into()
        }],
        "{t}"
    );
}

#[test]
fn failing_the_password_call_fails_authentication() {
    let sb = sandbox!();
    let user = TestUser::create("failat");
    sb.service("banner", BANNER_THEN_UNIX);
    let t = sb.converse(
        Converse::new("banner", user.name())
            .answer(user.password())
            .conv_fail_at(2),
    );
    t.assert_rc(Op::Authenticate, PamCode(20));
    let messages = t.messages();
    assert_eq!(messages.len(), 2, "{t}");
    assert_eq!(
        (
            messages[0].style,
            messages[0].msg.as_str(),
            messages[0].call
        ),
        (Style::TextInfo, "Authorized use only", 1)
    );
    assert_eq!(
        (messages[1].style, messages[1].call),
        (Style::PromptEchoOff, 2)
    );
}

#[test]
fn the_silent_flag_reaches_the_modules() {
    let sb = sandbox!();
    let user = TestUser::create("silent");
    sb.service("banner", BANNER_THEN_UNIX);
    let loud = sb.converse(Converse::new("banner", user.name()).answer(user.password()));
    loud.assert_success();
    assert_eq!(loud.messages().len(), 2, "{loud}");
    let quiet = sb.converse(
        Converse::new("banner", user.name())
            .answer(user.password())
            .silent(),
    );
    quiet.assert_success().assert_prompts(&["Password: "]);
    assert_eq!(quiet.messages().len(), 1, "pam_echo is quiet\n{quiet}");
}

#[test]
fn without_a_user_the_stack_asks_for_one() {
    let sb = sandbox!();
    let user = TestUser::create("nouser");
    sb.service("unix", UNIX);
    let t = sb.converse(
        Converse::without_user("unix")
            .answer(user.name())
            .answer(user.password()),
    );
    t.assert_success();
    let messages = t.messages();
    assert_eq!(messages.len(), 2, "{t}");
    assert_eq!(messages[0].style, Style::PromptEchoOn, "{t}");
    assert_eq!(messages[1].msg, "Password: ", "{t}");
}

#[test]
fn the_rhost_is_what_modules_see() {
    let sb = sandbox!();
    sb.service(
        "rhost",
        "auth required pam_succeed_if.so rhost = 192.0.2.7\n",
    );
    sb.converse(Converse::new("rhost", "nobody").rhost("192.0.2.7"))
        .assert_success();
    sb.converse(Converse::new("rhost", "nobody").rhost("192.0.2.8"))
        .assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
}

#[test]
fn ops_run_in_order_and_stop_at_the_first_failure() {
    let sb = sandbox!();
    sb.service(
        "order",
        "auth required pam_permit.so\naccount required pam_deny.so\n",
    );
    let t = sb.converse(Converse::new("order", "nobody").ops(&[
        Op::Authenticate,
        Op::Authenticate,
        Op::AcctMgmt,
        Op::Setcred,
    ]));
    let ran: Vec<_> = t.results().iter().map(|r| (r.op, r.code())).collect();
    assert_eq!(
        ran,
        [
            (Op::Authenticate, PamCode::SUCCESS),
            (Op::Authenticate, PamCode::SUCCESS),
            (Op::AcctMgmt, PamCode::AUTH_ERR),
        ],
        "{t}"
    );
    assert!(!t.succeeded(), "{t}");
}

#[test]
fn sessions_open_and_close_on_the_same_handle() {
    let sb = sandbox!();
    sb.service(
        "session",
        "auth required pam_permit.so\nsession required pam_permit.so\n",
    );
    let t = sb.converse(Converse::new("session", "nobody").ops(&[
        Op::Authenticate,
        Op::OpenSession,
        Op::CloseSession,
    ]));
    t.assert_success();
    assert_eq!(t.results().len(), 3, "{t}");
}

#[test]
fn the_failure_delay_is_recorded_instead_of_slept() {
    let sb = sandbox!();
    let user = TestUser::create("delay");
    // Without nodelay pam_unix asks libpam for about 2 s after a failure.
    sb.service("unix", "auth required pam_unix.so\n");
    let start = Instant::now();
    let t = sb.converse(Converse::new("unix", user.name()).answer("wrong"));
    let took = start.elapsed();
    t.assert_rc(Op::Authenticate, PamCode::AUTH_ERR);
    let delays: Vec<u64> = t
        .other_events()
        .iter()
        .filter_map(|e| match e {
            Event::FailDelay { usec, rc: 7 } => Some(*usec),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 1, "{t}");
    assert!(
        (1_000_000..=3_000_000).contains(&delays[0]),
        "about 2 s requested\n{t}"
    );
    assert!(
        took < Duration::from_micros(delays[0]),
        "took {took:?}, as if the delay was slept\n{t}"
    );
}

#[test]
fn the_syslog_sink_receives_what_is_sent_to_dev_log() {
    let sb = sandbox!();
    let text = format!("harness probe {}", std::process::id());
    sb.run(
        "logger",
        &[
            "-u",
            "/dev/log",
            "-p",
            "authpriv.notice",
            "-t",
            "probe",
            &text,
        ],
    )
    .assert_success();
    let line = sb
        .syslog()
        .wait_for(|l| l.message == text, WAIT)
        .expect("logger's line arrives");
    assert_eq!(line.tag, "probe");
    assert_eq!(line.facility(), Some(AUTHPRIV));
    assert_eq!(line.severity(), Some(5));
}

#[test]
fn commands_see_the_sandbox_pam_d_while_the_host_keeps_its_own() {
    let before = listing(Path::new("/etc/pam.d"));
    let sb = sandbox!();
    let name = format!("e2e-probe-{}", std::process::id());
    sb.service(&name, "auth required pam_permit.so\n");
    let run = sb.run("cat", &[&format!("/etc/pam.d/{name}")]);
    run.assert_success();
    assert_eq!(run.stdout, "auth required pam_permit.so\n", "{run}");
    let inside = sb.run("ls", &["/etc/pam.d"]);
    assert!(
        inside.stdout.lines().all(|l| l == name || l == "other"),
        "only the sandbox's services\n{inside}"
    );
    assert!(!Path::new("/etc/pam.d").join(&name).exists());
    assert_eq!(listing(Path::new("/etc/pam.d")), before);
    let dev_log = fs::symlink_metadata("/dev/log").ok().map(|m| m.file_type());
    drop(sb);
    assert_eq!(
        fs::symlink_metadata("/dev/log").ok().map(|m| m.file_type()),
        dev_log,
        "the host's /dev/log is as it was"
    );
}

fn listing(dir: &Path) -> BTreeSet<(String, Vec<u8>)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let body = fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), body)
        })
        .collect()
}

#[test]
fn extra_binds_are_seen_only_inside_the_namespace() {
    let host = fs::read_to_string("/etc/debian_version").unwrap();
    let sb = sandbox!();
    let ours = sb.path("debian_version");
    fs::write(&ours, "sandboxed\n").unwrap();
    let sb = sb.with_bind(&ours, "/etc/debian_version");
    let run = sb.run("cat", &["/etc/debian_version"]);
    assert_eq!(run.stdout, "sandboxed\n", "{run}");
    assert_eq!(fs::read_to_string("/etc/debian_version").unwrap(), host);
}

#[test]
fn pamtester_authenticates_in_the_sandbox() {
    let sb = sandbox!();
    let user = TestUser::create("tester");
    sb.service("unix", UNIX);
    let run = sb.pamtester(
        "unix",
        user.name(),
        &["authenticate", "acct_mgmt"],
        &[user.password()],
    );
    run.assert_success();
    assert!(run.stdout.contains("successfully authenticated"), "{run}");
}

#[test]
fn pamtester_refuses_a_wrong_password() {
    let sb = sandbox!();
    let user = TestUser::create("tester");
    sb.service("unix", UNIX);
    let run = sb.pamtester(
        "unix",
        user.name(),
        &["authenticate"],
        &["not the password"],
    );
    run.assert_failure();
    assert!(run.stderr.contains("Authentication failure"), "{run}");
}

#[test]
fn pamtester_gets_one_answer_per_prompt() {
    let sb = sandbox!();
    let user = TestUser::create("tester");
    sb.service("unix", UNIX);
    // libpam forgets the password after each pam_authenticate, so the second
    // asks again; answers written together would arrive as one.
    let run = sb.pamtester(
        "unix",
        user.name(),
        &["authenticate", "authenticate"],
        &[user.password(), user.password()],
    );
    run.assert_success();
    assert_eq!(
        run.stdout.matches("successfully authenticated").count(),
        2,
        "{run}"
    );
}

/// Each transaction runs a script that waits until `n` of them have
/// arrived: it can only succeed if `n` handles are inside
/// `pam_authenticate` at the same time.
fn rendezvous_stack(sb: &pam_mfa_e2e::Sandbox, n: usize) {
    let dir = sb.path("rendezvous");
    fs::create_dir(&dir).unwrap();
    let script = sb.path("rendezvous.sh");
    let text = format!(
        "#!/bin/sh\n\
         touch {dir}/$$\n\
         i=0\n\
         while [ \"$(ls {dir} | wc -l)\" -lt {n} ]; do\n\
         \x20 i=$((i + 1)); [ $i -gt 400 ] && exit 1\n\
         \x20 sleep 0.05\n\
         done\n",
        dir = dir.display()
    );
    write_file(&script, &text, 0o755);
    sb.service(
        "rendezvous",
        &format!("auth required pam_exec.so {}\n", script.display()),
    );
}

#[test]
fn threads_run_their_transactions_at_the_same_time() {
    let sb = sandbox!();
    rendezvous_stack(&sb, 4);
    let t = sb.converse(Converse::new("rendezvous", "nobody").threads(4));
    t.assert_success();
    let threads: BTreeSet<u32> = t
        .results()
        .iter()
        .map(|r| r.thread.expect("threaded lines are tagged"))
        .collect();
    assert_eq!(threads, (0..4).collect(), "{t}");
}

#[test]
fn threads_and_repeat_run_every_transaction_once() {
    let sb = sandbox!();
    sb.service("permit", "auth required pam_permit.so\n");
    let t = sb.converse(Converse::new("permit", "nobody").threads(4).repeat(25));
    t.assert_success();
    let runs: BTreeSet<(u32, u32)> = t
        .results()
        .iter()
        .map(|r| (r.thread.unwrap(), r.round.unwrap()))
        .collect();
    assert_eq!(t.codes(Op::Authenticate).len(), 100, "{t}");
    assert_eq!(runs.len(), 100, "{t}");
}

#[test]
fn threads_take_turns_at_live_answers() {
    let sb = sandbox!();
    let user = TestUser::create("threads");
    sb.service("unix", UNIX);
    let mut asked = 0;
    let t = sb.converse(
        Converse::new("unix", user.name())
            .threads(3)
            .repeat(2)
            .answer_with(|_| {
                asked += 1;
                Some(user.password().to_owned())
            }),
    );
    t.assert_success();
    assert_eq!(asked, 6, "{t}");
    assert_eq!(t.codes(Op::Authenticate), [PamCode::SUCCESS; 6], "{t}");
}

#[test]
fn a_failed_assertion_shows_the_transcript_and_the_syslog() {
    let sb = sandbox!();
    let user = TestUser::create("shown");
    sb.service("unix", UNIX);
    let t = sb.converse(Converse::new("unix", user.name()).answer("wrong answer"));
    sb.syslog()
        .wait_for(|l| l.message.contains("authentication failure"), WAIT)
        .unwrap();
    let failure = panic::catch_unwind(AssertUnwindSafe(|| {
        t.assert_rc(Op::Authenticate, PamCode::SUCCESS);
    }))
    .expect_err("the assertion fails");
    let shown = failure
        .downcast_ref::<String>()
        .expect("a formatted message");
    for part in [
        "authenticate returned PAM_AUTH_ERR (7), expected PAM_SUCCESS (0)",
        "answers given: [\"wrong answer\"]",
        "[call 1] prompt_echo_off \"Password: \"",
        "authenticate -> PAM_AUTH_ERR (7)",
        "exit status 1",
        "--- syslog of the sandbox since the run started",
        "pam_unix(unix:auth): authentication failure",
    ] {
        assert!(shown.contains(part), "missing {part:?} in:\n{shown}");
    }
}

#[test]
fn a_throwaway_user_is_removed_even_when_the_test_panics() {
    let mut made = None;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let user = TestUser::create("dropped");
        made = Some((user.name().to_owned(), user.home().to_owned()));
        assert!(nix::unistd::User::from_name(user.name()).unwrap().is_some());
        assert!(user.home().is_dir());
        panic!("the test fails here");
    }));
    assert!(outcome.is_err());
    let (name, home) = made.expect("the user was made");
    assert_eq!(nix::unistd::User::from_name(&name).unwrap(), None);
    assert!(!home.exists(), "{} is left", home.display());
}

#[test]
fn the_sandbox_config_is_one_pam_mfa_accepts() {
    use mfa_core::config::{Config, NotConfigured};
    use mfa_core::fsutil::FileTrust;

    let sb = sandbox!();
    let config = Config::load(&sb.config_path(), FileTrust::ROOT, &[]).unwrap();
    assert_eq!(config.paths.state_dir, sb.state_dir());
    assert_eq!(config.paths.key_file, sb.key_file());
    assert_eq!(config.paths.enroll_public_key, sb.enroll_public_key());
    assert_eq!(config.paths.spool_dir, sb.spool_dir());
    mfa_core::store::Store::new(sb.state_dir(), FileTrust::ROOT)
        .check_dir()
        .unwrap();

    sb.write_config("[policy]\nnot_configured = \"deny\"");
    let config = Config::load(&sb.config_path(), FileTrust::ROOT, &[]).unwrap();
    assert_eq!(config.policy.not_configured, NotConfigured::Deny);
    assert_eq!(config.paths.state_dir, sb.state_dir());
}

#[test]
fn tools_find_other_artifacts_next_to_the_binaries() {
    let tools = tools!();
    assert_eq!(tools.artifact("pam-converse"), tools.converse());
    assert_eq!(tools.artifact("pam-sandbox"), tools.sandbox());
    assert!(tools
        .artifact("libpam_mfa.so")
        .ends_with(Path::new("libpam_mfa.so")));
}

/// RFC 6238 appendix B, SHA1 seed "12345678901234567890" in base32.
const RFC_SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[test]
fn oathtool_codes_match_rfc_6238() {
    let eight = |algorithm, seed: &str, t| {
        oathtool_totp(
            seed,
            OathSpec {
                algorithm,
                digits: 8,
                period: 30,
            },
            Some(t),
        )
    };
    assert_eq!(eight(OathAlgorithm::Sha1, RFC_SEED, 59), "94287082");
    assert_eq!(
        eight(OathAlgorithm::Sha1, RFC_SEED, 1_111_111_109),
        "07081804"
    );
    // The SHA-256 seed is 32 bytes of the same digits.
    let seed256 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
    assert_eq!(eight(OathAlgorithm::Sha256, seed256, 59), "46119246");
    assert_eq!(oathtool_code(RFC_SEED, Some(59)), "287082");
}

#[test]
fn oathtool_codes_default_to_now() {
    let before = unix_now();
    let code = oathtool_code(RFC_SEED, None);
    let after = unix_now();
    assert!(
        code == oathtool_code(RFC_SEED, Some(before))
            || code == oathtool_code(RFC_SEED, Some(after)),
        "{code}"
    );
}

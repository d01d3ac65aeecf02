//! The configuration file and module arguments: every key, every refusal.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use mfa_core::config::{
    parse_module_args, Config, ConfigError, ModuleArgs, NotConfigured, Override, QrStyle,
    ARGS_ORIGIN, DEFAULT_CONFIG_PATH,
};
use mfa_core::fsutil::{FileProblem, FileTrust};
use mfa_core::policy::{self, Effective};
use mfa_core::totp::Algorithm;
use serde::de::IgnoredAny;

const SHIPPED: &str = include_str!("../../config/pam_mfa.toml");

fn trust() -> FileTrust {
    FileTrust::insecure_owner_for_tests(nix::unistd::geteuid().as_raw())
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml")
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("expected an error for {text:?}, parsed {c:?}"),
        Err(e) => e,
    }
}

/// The typed overrides of module arguments `key=value`.
fn overrides(pairs: &[(&str, &str)]) -> Vec<Override> {
    let args: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    parse_module_args(&args).unwrap().overrides
}

/// The dotted keys `overrides` set, in order.
fn keys(overrides: &[Override]) -> Vec<&str> {
    overrides.iter().map(Override::key).collect()
}

/// The default configuration with `overrides` applied.
fn overlaid(overrides: &[Override]) -> Config {
    let mut config = Config::default();
    for o in overrides {
        o.apply(&mut config);
    }
    config
}

/// A config file with the given text and mode in its own private directory.
fn config_file(text: &[u8], mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pam_mfa.toml");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    (dir, path)
}

fn file_problem(err: &ConfigError) -> &FileProblem {
    match err {
        ConfigError::File(e) => &e.problem,
        other @ ConfigError::Invalid { .. } => panic!("expected a file error, got {other}"),
    }
}

// --- defaults -------------------------------------------------------------

#[test]
fn the_shipped_file_is_exactly_the_default() {
    assert_eq!(parse(SHIPPED).unwrap(), Config::default());
}

#[test]
fn an_empty_file_is_the_default() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn a_file_of_only_comments_and_empty_sections_is_the_default() {
    let text = "# nothing\n\n[policy]\n[totp]\n[throttle] # later\n";
    assert_eq!(parse(text).unwrap(), Config::default());
}

#[test]
// Only the keys are wanted, so the values are read as nothing.
#[allow(clippy::zero_sized_map_values)]
fn the_shipped_file_sets_every_key_explicitly() {
    let table: BTreeMap<String, BTreeMap<String, IgnoredAny>> = toml::from_str(SHIPPED).unwrap();
    let mut keys = Vec::new();
    for (section, value) in &table {
        for key in value.keys() {
            keys.push(format!("{section}.{key}"));
        }
    }
    keys.sort();
    let mut described: Vec<String> = Config::default()
        .describe()
        .into_iter()
        .map(|l| l.split_once('=').unwrap().0.to_owned())
        .collect();
    described.sort();
    assert_eq!(keys, described);
}

#[test]
fn the_default_values_are_the_documented_ones() {
    let c = Config::default();
    assert_eq!(c.policy.not_configured, NotConfigured::Skip);
    assert_eq!(c.policy.remember_seconds, 0);
    assert_eq!(c.totp.algorithm, Algorithm::Sha1);
    assert_eq!((c.totp.digits, c.totp.period, c.totp.window), (6, 30, 1));
    assert_eq!(c.totp.issuer, "");
    assert_eq!((c.recovery.count, c.recovery.length), (10, 12));
    assert_eq!(
        (
            c.throttle.backoff_after,
            c.throttle.backoff_seconds,
            c.throttle.backoff_max_seconds,
            c.throttle.lockout_after
        ),
        (3, 30, 900, 20)
    );
    assert_eq!(c.throttle.fail_delay_ms, 2000);
    assert_eq!(c.enrollment.qr, QrStyle::Utf8);
    assert_eq!(c.enrollment.pending_max_age, 86_400);
    assert!(c.groups.require.is_empty() && c.groups.exempt.is_empty());
    assert_eq!(c.groups.require_policy, NotConfigured::Configure);
    assert_eq!(c.paths.state_dir, Path::new("/var/lib/pam_mfa/users"));
    assert_eq!(
        c.paths.key_file,
        Path::new("/etc/security/pam_mfa/master.key")
    );
    assert_eq!(
        c.paths.enroll_public_key,
        Path::new("/etc/security/pam_mfa/enroll.pub")
    );
    assert_eq!(c.paths.spool_dir, Path::new("/var/spool/pam_mfa"));
    assert!(c.service.is_empty());
    assert_eq!(DEFAULT_CONFIG_PATH, "/etc/security/pam_mfa.toml");
}

// --- every key parses ---------------------------------------------------

#[test]
fn every_key_parses_to_a_non_default_value() {
    let text = r#"
[policy]
not_configured = "deny"
remember_seconds = 2592000

[totp]
algorithm = "SHA512"
digits = 8
period = 60
window = 0
issuer = "Example Corp"

[recovery]
count = 32
length = 32

[throttle]
backoff_after = 0
backoff_seconds = 1
backoff_max_seconds = 86400
lockout_after = 100
fail_delay_ms = 0

[enrollment]
qr = "none"
pending_max_age = 60

[groups]
require = ["wheel", "domain admins@example.com"]
require_policy = "deny"
exempt = ["backup"]

[paths]
state_dir = "/srv/mfa/users"
key_file = "/srv/mfa/master.key"
enroll_public_key = "/srv/mfa/enroll.pub"
spool_dir = "/srv/mfa/spool"

[service.sshd]
not_configured = "configure"
remember_seconds = 60
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.policy.not_configured, NotConfigured::Deny);
    assert_eq!(c.policy.remember_seconds, 2_592_000);
    assert_eq!(c.totp.algorithm, Algorithm::Sha512);
    assert_eq!((c.totp.digits, c.totp.period, c.totp.window), (8, 60, 0));
    assert_eq!(c.totp.issuer, "Example Corp");
    assert_eq!((c.recovery.count, c.recovery.length), (32, 32));
    assert_eq!(
        (
            c.throttle.backoff_after,
            c.throttle.backoff_seconds,
            c.throttle.backoff_max_seconds,
            c.throttle.lockout_after
        ),
        (0, 1, 86_400, 100)
    );
    assert_eq!(c.throttle.fail_delay_ms, 0);
    assert_eq!(c.enrollment.qr, QrStyle::None);
    assert_eq!(c.enrollment.pending_max_age, 60);
    assert_eq!(c.groups.require, ["wheel", "domain admins@example.com"]);
    assert_eq!(c.groups.require_policy, NotConfigured::Deny);
    assert_eq!(c.groups.exempt, ["backup"]);
    assert_eq!(c.paths.state_dir, Path::new("/srv/mfa/users"));
    assert_eq!(c.paths.key_file, Path::new("/srv/mfa/master.key"));
    assert_eq!(c.paths.enroll_public_key, Path::new("/srv/mfa/enroll.pub"));
    assert_eq!(c.paths.spool_dir, Path::new("/srv/mfa/spool"));
    let sshd = &c.service["sshd"];
    assert_eq!(sshd.not_configured, Some(NotConfigured::Configure));
    assert_eq!(sshd.remember_seconds, Some(60));
}

#[test]
fn every_not_configured_value_parses() {
    for (word, value) in [
        ("skip", NotConfigured::Skip),
        ("configure", NotConfigured::Configure),
        ("deny", NotConfigured::Deny),
    ] {
        let c = parse(&format!("[policy]\nnot_configured = \"{word}\"\n")).unwrap();
        assert_eq!(c.policy.not_configured, value);
        assert_eq!(value.as_str(), word);
    }
}

#[test]
fn every_algorithm_parses() {
    for (word, value) in [
        ("SHA1", Algorithm::Sha1),
        ("SHA256", Algorithm::Sha256),
        ("SHA512", Algorithm::Sha512),
    ] {
        let c = parse(&format!("[totp]\nalgorithm = \"{word}\"\n")).unwrap();
        assert_eq!(c.totp.algorithm, value);
    }
}

#[test]
fn every_qr_style_parses() {
    for (word, value) in [
        ("utf8", QrStyle::Utf8),
        ("ascii", QrStyle::Ascii),
        ("none", QrStyle::None),
    ] {
        let c = parse(&format!("[enrollment]\nqr = \"{word}\"\n")).unwrap();
        assert_eq!(c.enrollment.qr, value);
        assert_eq!(value.as_str(), word);
    }
}

#[test]
fn dotted_keys_at_the_top_level_parse_like_sections() {
    let c = parse("totp.window = 3\npolicy.not_configured = \"deny\"\n").unwrap();
    assert_eq!(c.totp.window, 3);
    assert_eq!(c.policy.not_configured, NotConfigured::Deny);
}

#[test]
fn every_way_toml_writes_a_value_or_a_table_is_read() {
    let text = r#"policy = { not_configured = "deny" }
[totp]
"window" = 0x2
period = 6_0
issuer = "Corp \u00e9"
[paths]
state_dir = '''/srv/mfa/users'''
key_file = """
/srv/mfa/master.key"""
[service]
sshd = { not_configured = "configure" }
sudo.remember_seconds = 300
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.policy.not_configured, NotConfigured::Deny);
    assert_eq!((c.totp.window, c.totp.period), (2, 60));
    assert_eq!(c.totp.issuer, "Corp \u{e9}");
    assert_eq!(c.paths.state_dir, Path::new("/srv/mfa/users"));
    assert_eq!(c.paths.key_file, Path::new("/srv/mfa/master.key"));
    assert_eq!(
        c.service["sshd"].not_configured,
        Some(NotConfigured::Configure)
    );
    assert_eq!(c.service["sudo"].remember_seconds, Some(300));
}

#[test]
fn bounds_themselves_are_accepted() {
    for (section, key, value) in [
        ("policy", "remember_seconds", 0),
        ("totp", "period", 10),
        ("totp", "period", 300),
        ("totp", "window", 10),
        ("recovery", "count", 1),
        ("recovery", "length", 10),
        ("throttle", "backoff_after", 19),
        ("enrollment", "pending_max_age", 2_592_000),
    ] {
        let text = format!("[{section}]\n{key} = {value}\n");
        assert!(
            parse(&text).is_ok(),
            "{text}: {}",
            parse(&text).unwrap_err()
        );
    }
}

// --- unknown keys, bad values -------------------------------------------

#[test]
fn an_unknown_key_in_any_section_names_its_line_and_key() {
    for section in [
        "policy",
        "totp",
        "recovery",
        "throttle",
        "enrollment",
        "groups",
        "paths",
        "service.sshd",
    ] {
        let text = format!("# comment\n[{section}]\n\nnot_a_key = 1\n");
        let err = parse_err(&text);
        assert_eq!(err.key(), Some(format!("{section}.not_a_key").as_str()));
        assert_eq!(err.line(), Some(4), "{err}");
        assert!(
            err.to_string().starts_with(&format!(
                "test.toml:4:1: {section}.not_a_key: unknown key `not_a_key`"
            )),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_section_is_an_error_naming_it() {
    let err = parse_err("[policy]\n[polcy]\nnot_configured = \"deny\"\n");
    assert_eq!(err.key(), Some("polcy"));
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string()
            .starts_with("test.toml:2:2: polcy: unknown key `polcy`"),
        "{err}"
    );
}

#[test]
fn an_unknown_top_level_key_is_an_error() {
    let err = parse_err("debug = true\n");
    assert_eq!(err.key(), Some("debug"));
    assert_eq!(err.line(), Some(1));
}

#[test]
fn a_bad_not_configured_value_names_the_key_and_line() {
    let err = parse_err("[policy]\n\nnot_configured = \"maybe\"\n");
    assert_eq!(err.key(), Some("policy.not_configured"));
    assert_eq!(err.line(), Some(3));
    let shown = err.to_string();
    assert!(
        shown.starts_with("test.toml:3:18: policy.not_configured: unknown value `maybe`"),
        "{shown}"
    );
    assert!(shown.contains("`skip`, `configure`, `deny`"), "{shown}");
}

#[test]
fn enum_values_are_case_sensitive() {
    let err = parse_err("[policy]\nnot_configured = \"Deny\"\n");
    assert_eq!(err.key(), Some("policy.not_configured"));
    let err = parse_err("[totp]\nalgorithm = \"sha1\"\n");
    assert_eq!(err.key(), Some("totp.algorithm"));
}

#[test]
fn a_bad_qr_style_is_an_error() {
    let err = parse_err("[enrollment]\nqr = \"sixel\"\n");
    assert_eq!(err.key(), Some("enrollment.qr"));
    assert_eq!(err.line(), Some(2));
}

#[test]
fn require_policy_skip_is_an_error() {
    let err = parse_err("[groups]\nrequire = [\"wheel\"]\nrequire_policy = \"skip\"\n");
    assert_eq!(err.key(), Some("groups.require_policy"));
    assert_eq!(err.line(), Some(3));
    assert!(
        err.to_string().contains("\"configure\" or \"deny\""),
        "{err}"
    );
}

#[test]
fn every_bounded_number_out_of_range_is_refused_not_clamped() {
    for (section, key, value) in [
        ("policy", "remember_seconds", "2592001"),
        ("policy", "remember_seconds", "-1"),
        ("totp", "digits", "7"),
        ("totp", "digits", "0"),
        ("totp", "digits", "10"),
        ("totp", "period", "5"),
        ("totp", "period", "301"),
        ("totp", "window", "11"),
        ("totp", "window", "-1"),
        ("recovery", "count", "0"),
        ("recovery", "count", "33"),
        ("recovery", "length", "9"),
        ("recovery", "length", "33"),
        ("throttle", "backoff_after", "21"),
        ("throttle", "backoff_seconds", "0"),
        ("throttle", "backoff_seconds", "3601"),
        ("throttle", "backoff_max_seconds", "0"),
        ("throttle", "backoff_max_seconds", "86401"),
        ("throttle", "lockout_after", "0"),
        ("throttle", "lockout_after", "101"),
        ("throttle", "fail_delay_ms", "10001"),
        ("throttle", "fail_delay_ms", "-1"),
        ("enrollment", "pending_max_age", "59"),
        ("enrollment", "pending_max_age", "2592001"),
        ("service.sshd", "remember_seconds", "2592001"),
        ("totp", "window", "9223372036854775807"),
    ] {
        let text = format!("[{section}]\n{key} = {value}\n");
        let err = parse_err(&text);
        assert_eq!(
            err.key(),
            Some(format!("{section}.{key}").as_str()),
            "{err}"
        );
        assert_eq!(err.line(), Some(2), "{err}");
        assert!(err.to_string().contains(value), "{err}");
    }
}

#[test]
fn an_out_of_range_message_says_the_allowed_range() {
    let err = parse_err("[totp]\nwindow = 11\n");
    assert_eq!(
        err.to_string(),
        "test.toml:2:10: totp.window: 11 is out of range; use a whole number from 0 to 10"
    );
}

#[test]
fn wrong_types_are_refused() {
    for (text, key) in [
        ("[totp]\ndigits = \"6\"\n", "totp.digits"),
        ("[totp]\nwindow = 1.5\n", "totp.window"),
        ("[totp]\nissuer = 5\n", "totp.issuer"),
        ("[policy]\nnot_configured = 1\n", "policy.not_configured"),
        (
            "[policy]\nremember_seconds = true\n",
            "policy.remember_seconds",
        ),
        ("[groups]\nrequire = \"wheel\"\n", "groups.require"),
        ("[paths]\nstate_dir = 5\n", "paths.state_dir"),
        ("policy = 5\n", "policy"),
    ] {
        let err = parse_err(text);
        assert_eq!(err.key(), Some(key), "{err}");
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}

#[test]
fn a_section_written_as_an_array_is_refused() {
    // serde would read an array as the section's fields in order.
    for (text, key) in [
        ("policy = []\n", "policy"),
        ("totp = [\"SHA1\"]\n", "totp"),
        ("[[groups]]\n", "groups"),
        ("[service]\nsshd = []\n", "service.sshd"),
    ] {
        let err = parse_err(text);
        assert_eq!(err.key(), Some(key), "{err}");
        assert_eq!(
            err.line(),
            Some(1 + text.matches('\n').count() - 1),
            "{err}"
        );
        assert!(err.to_string().contains("expected a table"), "{err}");
    }
}

#[test]
fn a_wrong_type_inside_a_multi_line_list_names_the_list() {
    let err = parse_err("[groups]\nexempt = [\n  \"backup\",\n  42,\n]\n");
    assert_eq!(err.key(), Some("groups.exempt"));
    assert_eq!(err.line(), Some(4));
}

#[test]
fn a_toml_syntax_error_gives_the_line() {
    let err = parse_err("[policy]\nnot_configured = \"deny\"\n\n[totp]\nwindow = = 2\n");
    assert_eq!(err.line(), Some(5));
    assert_eq!(err.key(), Some("totp.window"));
    assert!(err.to_string().contains("TOML syntax error"), "{err}");
    assert!(
        !err.to_string().contains('\n'),
        "one line for the log: {err}"
    );
}

#[test]
fn a_broken_header_gives_the_line() {
    let err = parse_err("# policy\n[policy\nnot_configured = \"deny\"\n");
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().starts_with("test.toml:2:"), "{err}");
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    for text in [
        format!("a = {}", "[".repeat(60_000)),
        format!("a = {}{}", "[".repeat(30_000), "]".repeat(30_000)),
        format!("a = {}", "{ b = ".repeat(10_000)),
        format!("{} = 1", vec!["a"; 30_000].join(".")),
        format!("[{}]", vec!["a"; 30_000].join(".")),
    ] {
        let err = parse_err(&text);
        assert_eq!(err.line(), Some(1));
        assert!(
            err.to_string().starts_with("test.toml:1:")
                && err.to_string().contains(
                    ": TOML syntax error: tables, arrays and dotted keys nested more than"
                ),
            "{err}"
        );
    }
    let c = parse("service = { sshd = { not_configured = \"deny\" } }\n").unwrap();
    assert_eq!(c.service["sshd"].not_configured, Some(NotConfigured::Deny));
}

#[test]
fn a_control_character_in_a_comment_is_refused() {
    for control in ['\u{0}', '\u{1}', '\r', '\u{7f}'] {
        let err = parse_err(&format!("[totp]\n# a {control} b\nwindow = 2\n"));
        assert_eq!(err.line(), Some(2), "{err}");
        assert!(err.to_string().contains("TOML syntax error"), "{err}");
    }
    assert!(parse("[totp]\n# a \t tab\nwindow = 2\n").is_ok());
}

#[test]
fn a_duplicate_key_is_an_error() {
    let err = parse_err("[totp]\nwindow = 1\nwindow = 2\n");
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.key(), Some("totp.window"));
}

#[test]
fn an_issuer_with_a_colon_is_refused() {
    let err = parse_err("[totp]\nissuer = \"corp:prod\"\n");
    assert_eq!(err.key(), Some("totp.issuer"));
}

#[test]
fn an_issuer_over_64_characters_is_refused() {
    assert!(parse(&format!("[totp]\nissuer = \"{}\"\n", "ä".repeat(64))).is_ok());
    let err = parse_err(&format!("[totp]\nissuer = \"{}\"\n", "a".repeat(65)));
    assert_eq!(err.key(), Some("totp.issuer"));
}

#[test]
fn an_empty_or_comma_group_name_is_refused() {
    for list in ["[\"\"]", "[\"a,b\"]", "[\"a:b\"]"] {
        let err = parse_err(&format!("[groups]\nrequire = {list}\n"));
        assert_eq!(err.key(), Some("groups.require"), "{err}");
    }
}

#[test]
fn a_relative_path_is_refused() {
    let err = parse_err("[paths]\nstate_dir = \"/ok\"\nkey_file = \"etc/master.key\"\n");
    assert_eq!(err.key(), Some("paths.key_file"));
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().contains("absolute"), "{err}");
}

#[test]
fn a_bad_service_name_is_refused() {
    let err = parse_err("[policy]\n\n[service.\"ssh d\"]\nnot_configured = \"deny\"\n");
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.key(), Some("service.ssh d"));
    let long = "s".repeat(65);
    let err = parse_err(&format!("[service.{long}]\n"));
    assert_eq!(err.line(), Some(1));
}

// --- rules across keys --------------------------------------------------

#[test]
fn a_backoff_ceiling_below_the_first_delay_is_refused() {
    let err = parse_err("[throttle]\nbackoff_seconds = 60\nbackoff_max_seconds = 30\n");
    assert_eq!(err.key(), Some("throttle.backoff_max_seconds"));
    assert_eq!(err.line(), Some(3));
    assert!(err
        .to_string()
        .starts_with("test.toml:3:1: throttle.backoff_max_seconds: 30 is below"));
}

#[test]
fn a_cross_key_error_without_a_line_still_names_origin_and_key() {
    // backoff_max_seconds keeps its default (900), so there is no line to point at.
    let err = parse_err("[throttle]\nbackoff_seconds = 1000\n");
    assert_eq!(err.line(), None);
    assert!(
        err.to_string()
            .starts_with("test.toml: throttle.backoff_max_seconds: 900 is below"),
        "{err}"
    );
}

#[test]
fn lockout_at_or_below_backoff_after_is_refused() {
    let err = parse_err("[throttle]\nbackoff_after = 5\nlockout_after = 5\n");
    assert_eq!(err.key(), Some("throttle.lockout_after"));
    assert_eq!(err.line(), Some(3));
    assert!(parse("[throttle]\nbackoff_after = 5\nlockout_after = 6\n").is_ok());
}

#[test]
fn a_group_both_required_and_exempt_is_refused() {
    let err = parse_err("[groups]\nrequire = [\"wheel\", \"ops\"]\nexempt = [\"ops\"]\n");
    assert_eq!(err.key(), Some("groups.exempt"));
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().contains("`ops`"), "{err}");
}

// --- per-service policy -------------------------------------------------

#[test]
fn a_service_override_applies_only_to_that_service() {
    let c = parse(
        "[policy]\nnot_configured = \"configure\"\nremember_seconds = 300\n\
         [service.sshd]\nnot_configured = \"deny\"\nremember_seconds = 0\n",
    )
    .unwrap();
    assert_eq!(
        policy::effective(&c, "sshd", &[]),
        Effective {
            not_configured: NotConfigured::Deny,
            remember_seconds: 0,
            exempt: false,
            break_glass: false,
        }
    );
    assert_eq!(
        policy::effective(&c, "sudo", &[]),
        Effective {
            not_configured: NotConfigured::Configure,
            remember_seconds: 300,
            exempt: false,
            break_glass: false,
        }
    );
}

#[test]
fn a_partial_service_override_keeps_the_other_policy_values() {
    let c = parse("[policy]\nremember_seconds = 120\n[service.sudo]\nnot_configured = \"deny\"\n")
        .unwrap();
    let sudo = policy::effective(&c, "sudo", &[]);
    assert_eq!(
        (sudo.not_configured, sudo.remember_seconds),
        (NotConfigured::Deny, 120)
    );
}

#[test]
fn a_service_table_with_capitals_is_refused_because_libpam_lowercases_service_names() {
    for (text, line, name) in [
        (
            "[policy]\n\n[service.SSHD]\nnot_configured = \"deny\"\n",
            3,
            "SSHD",
        ),
        ("[service.Sudo-i]\nbreak_glass = true\n", 1, "Sudo-i"),
        ("# x\n[service.\"Login\"]\n", 2, "Login"),
    ] {
        let err = parse_err(text);
        assert_eq!(
            err.key(),
            Some(format!("service.{name}").as_str()),
            "{text:?}"
        );
        assert_eq!(err.line(), Some(line), "{text:?}: {err}");
        assert_eq!(err.origin(), Some("test.toml"));
        let shown = err.to_string();
        let lower = name.to_ascii_lowercase();
        assert!(
            shown.starts_with(&format!("test.toml:{line}:"))
                && shown.contains("libpam lowercases")
                && shown.contains(&format!("[service.{lower}]")),
            "{shown}"
        );
    }
    // Written as an inline table, it is refused all the same.
    let err = parse_err("service = { Su = { not_configured = \"deny\" } }\n");
    assert_eq!(err.key(), Some("service.Su"));
    assert!(err.to_string().contains("[service.su]"), "{err}");
    // The lower-case name is fine, and module arguments have no service tables.
    assert!(parse("[service.sudo-i]\nnot_configured = \"deny\"\n").is_ok());
    let err = parse_module_args(&["service.SSHD.not_configured=deny"]).unwrap_err();
    assert!(err.to_string().contains("[service.NAME]"), "{err}");
}

#[test]
fn break_glass_is_a_per_service_boolean() {
    let c = parse("[service.login]\nbreak_glass = true\n[service.sudo]\nbreak_glass = false\n")
        .unwrap();
    assert!(c.service["login"].break_glass);
    assert!(!c.service["sudo"].break_glass);
    assert!(c
        .describe()
        .contains(&"service.login.break_glass=true".to_owned()));
    for (text, line) in [
        ("[policy]\nbreak_glass = true\n", 2),
        ("break_glass = true\n", 1),
        ("[groups]\n\nbreak_glass = false\n", 3),
    ] {
        let err = parse_err(text);
        assert_eq!(err.line(), Some(line), "{text:?}: {err}");
        assert!(
            err.to_string()
                .contains("only be set in a [service.NAME] table"),
            "{err}"
        );
    }
    let err = parse_err("[service.login]\nbreak_glass = \"yes\"\n");
    assert_eq!(err.key(), Some("service.login.break_glass"));
    assert_eq!(err.line(), Some(2));
    for args in [&["break_glass=true"][..], &["break_glass"]] {
        let err = parse_module_args(args).unwrap_err();
        assert_eq!(err.origin(), Some(ARGS_ORIGIN));
        assert!(err.to_string().contains("[service.NAME]"), "{err}");
    }
}

#[test]
fn describe_prints_one_line_per_effective_setting() {
    let c = parse(
        "[groups]\nrequire = [\"wheel\", \"adm\"]\n[service.sshd]\nnot_configured = \"deny\"\n",
    )
    .unwrap();
    let lines = c.describe();
    assert!(lines.contains(&"policy.not_configured=skip".to_owned()));
    assert!(lines.contains(&"totp.algorithm=SHA1".to_owned()));
    assert!(lines.contains(&"groups.require=wheel,adm".to_owned()));
    assert!(lines.contains(&"paths.state_dir=/var/lib/pam_mfa/users".to_owned()));
    assert!(lines.contains(&"service.sshd.not_configured=deny".to_owned()));
    assert!(lines.iter().all(|l| l.contains('=') && !l.contains('\n')));
}

// --- module arguments ---------------------------------------------------

#[test]
fn no_module_arguments_mean_the_default_file_and_no_overrides() {
    let args = parse_module_args(&[]).unwrap();
    assert_eq!(args, ModuleArgs::default());
    assert_eq!(args.config_path(), Path::new(DEFAULT_CONFIG_PATH));
}

#[test]
fn bare_keys_resolve_to_their_section() {
    let args = parse_module_args(&["not_configured=deny", "window=2", "state_dir=/x"]).unwrap();
    assert_eq!(
        keys(&args.overrides),
        ["policy.not_configured", "totp.window", "paths.state_dir"]
    );
    assert_eq!(
        args.overrides,
        overrides(&[
            ("policy.not_configured", "deny"),
            ("totp.window", "2"),
            ("paths.state_dir", "/x"),
        ])
    );
    let c = overlaid(&args.overrides);
    assert_eq!(c.policy.not_configured, NotConfigured::Deny);
    assert_eq!(c.totp.window, 2);
    assert_eq!(c.paths.state_dir, Path::new("/x"));
}

#[test]
fn dotted_keys_are_accepted() {
    let args = parse_module_args(&["totp.digits=8", "groups.exempt=backup,cron"]).unwrap();
    assert_eq!(keys(&args.overrides), ["totp.digits", "groups.exempt"]);
    let c = overlaid(&args.overrides);
    assert_eq!(c.totp.digits, 8);
    assert_eq!(c.groups.exempt, ["backup", "cron"]);
}

#[test]
fn debug_and_config_are_recognised() {
    let args = parse_module_args(&["debug", "config=/etc/pam_mfa/other.toml"]).unwrap();
    assert!(args.debug);
    assert_eq!(args.config_path(), Path::new("/etc/pam_mfa/other.toml"));
    assert!(args.overrides.is_empty());
}

#[test]
fn a_relative_config_path_is_refused() {
    let err = parse_module_args(&["config=pam_mfa.toml"]).unwrap_err();
    assert_eq!(err.origin(), Some(ARGS_ORIGIN));
    assert_eq!(err.key(), Some("config"));
    assert!(err.to_string().contains("absolute"), "{err}");
}

#[test]
fn an_unknown_module_argument_is_refused() {
    let err = parse_module_args(&["debug", "nullok"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module arguments: unknown module argument `nullok`; see pam_mfa(8)"
    );
    let err = parse_module_args(&["foo=1"]).unwrap_err();
    assert!(
        err.to_string().contains("unknown module argument `foo`"),
        "{err}"
    );
    let err = parse_module_args(&["totp.nope=1"]).unwrap_err();
    assert!(err.to_string().contains("`totp.nope`"), "{err}");
}

#[test]
fn a_setting_without_equals_is_refused() {
    let err = parse_module_args(&["window"]).unwrap_err();
    assert_eq!(err.key(), Some("totp.window"));
    assert!(err.to_string().contains("needs a value: window=N"), "{err}");
    let err = parse_module_args(&["config"]).unwrap_err();
    assert_eq!(err.key(), Some("config"));
}

#[test]
fn an_empty_value_is_refused() {
    let err = parse_module_args(&["not_configured="]).unwrap_err();
    assert_eq!(err.key(), Some("policy.not_configured"));
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(parse_module_args(&["config="]).is_err());
}

#[test]
fn debug_with_a_value_is_refused() {
    assert!(parse_module_args(&["debug=1"]).is_err());
}

#[test]
fn the_same_setting_twice_is_refused() {
    let err = parse_module_args(&["window=2", "totp.window=3"]).unwrap_err();
    assert_eq!(err.key(), Some("totp.window"));
    assert!(parse_module_args(&["config=/a", "config=/b"]).is_err());
}

#[test]
fn service_tables_cannot_be_module_arguments() {
    let err = parse_module_args(&["service.sshd.not_configured=deny"]).unwrap_err();
    assert!(err.to_string().contains("[service.NAME]"), "{err}");
}

#[test]
fn an_invalid_module_argument_value_names_module_arguments_and_the_key() {
    for (arg, key) in [
        ("not_configured=maybe", "policy.not_configured"),
        ("window=11", "totp.window"),
        ("digits=7", "totp.digits"),
        ("period=abc", "totp.period"),
        ("state_dir=relative/dir", "paths.state_dir"),
        ("require_policy=skip", "groups.require_policy"),
        ("exempt=a,,b", "groups.exempt"),
    ] {
        let err = parse_module_args(&[arg]).unwrap_err();
        assert_eq!(err.origin(), Some(ARGS_ORIGIN), "{err}");
        assert_eq!(err.key(), Some(key), "{err}");
        assert_eq!(err.line(), None);
        assert!(
            err.to_string()
                .starts_with(&format!("module arguments: {key}: ")),
            "{err}"
        );
    }
}

#[test]
fn an_override_wins_over_the_file() {
    let text = "[policy]\nnot_configured = \"skip\"\n[totp]\nwindow = 1\n";
    let args =
        parse_module_args(&["not_configured=deny", "totp.window=3", "require=wheel,adm"]).unwrap();
    let c = Config::parse_with_overrides(text, "test.toml", &args.overrides).unwrap();
    assert_eq!(c.policy.not_configured, NotConfigured::Deny);
    assert_eq!(c.totp.window, 3);
    assert_eq!(c.groups.require, ["wheel", "adm"]);
    // Everything else still comes from the file and the defaults.
    assert_eq!(c.totp.digits, 6);
}

#[test]
fn an_invalid_override_is_refused_before_any_file_is_read() {
    // Overrides are typed when the arguments are parsed, so an invalid one
    // never reaches Config::load.
    let err =
        parse_module_args(&["config=/nonexistent/pam_mfa.toml", "totp.window=11"]).unwrap_err();
    assert_eq!(err.origin(), Some(ARGS_ORIGIN));
    assert_eq!(err.key(), Some("totp.window"));
    let err = parse_module_args(&["bogus=1"]).unwrap_err();
    assert_eq!(err.origin(), Some(ARGS_ORIGIN));
}

#[test]
fn an_override_that_breaks_a_cross_key_rule_is_blamed_on_module_arguments() {
    let text = "[throttle]\nbackoff_after = 3\n";
    let err =
        Config::parse_with_overrides(text, "test.toml", &overrides(&[("lockout_after", "2")]))
            .unwrap_err();
    assert_eq!(err.origin(), Some(ARGS_ORIGIN));
    assert_eq!(err.key(), Some("throttle.lockout_after"));
    let err = Config::parse_with_overrides(
        "[groups]\nrequire = [\"ops\"]\n",
        "test.toml",
        &overrides(&[("groups.exempt", "ops")]),
    )
    .unwrap_err();
    assert_eq!(err.origin(), Some(ARGS_ORIGIN));
    assert_eq!(err.key(), Some("groups.exempt"));
}

#[test]
fn a_file_error_is_reported_before_any_override() {
    let err = Config::parse_with_overrides(
        "[totp]\nwindow = 99\n",
        "test.toml",
        &overrides(&[("totp.window", "2")]),
    )
    .unwrap_err();
    assert_eq!(err.origin(), Some("test.toml"));
    assert_eq!(err.line(), Some(2));
}

// --- loading the file ---------------------------------------------------

#[test]
fn load_reads_a_trusted_file_and_applies_overrides() {
    let (_dir, path) = config_file(b"[policy]\nnot_configured = \"configure\"\n", 0o644);
    let c = Config::load(&path, trust(), &[]).unwrap();
    assert_eq!(c.policy.not_configured, NotConfigured::Configure);
    let c = Config::load(
        &path,
        trust(),
        &overrides(&[("policy.not_configured", "deny")]),
    )
    .unwrap();
    assert_eq!(c.policy.not_configured, NotConfigured::Deny);
}

#[test]
fn load_names_the_file_in_errors() {
    let (_dir, path) = config_file(b"[totp]\ndigits = 7\n", 0o644);
    let err = Config::load(&path, trust(), &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2:10: totp.digits: ", path.display())),
        "{err}"
    );
}

#[test]
fn load_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Config::load(&dir.path().join("absent.toml"), trust(), &[]).unwrap_err();
    assert!(matches!(file_problem(&err), FileProblem::Missing));
    assert!(err.to_string().contains("cannot work without"), "{err}");
}

#[test]
fn load_refuses_a_group_writable_file() {
    let (_dir, path) = config_file(b"", 0o664);
    let err = Config::load(&path, trust(), &[]).unwrap_err();
    assert!(
        matches!(file_problem(&err), FileProblem::WrongMode { .. }),
        "{err}"
    );
}

#[test]
fn load_refuses_a_world_writable_file() {
    let (_dir, path) = config_file(b"", 0o646);
    let err = Config::load(&path, trust(), &[]).unwrap_err();
    assert!(
        matches!(file_problem(&err), FileProblem::WrongMode { .. }),
        "{err}"
    );
}

#[test]
fn load_refuses_a_file_owned_by_someone_else() {
    let (_dir, path) = config_file(b"", 0o644);
    let other = FileTrust::insecure_owner_for_tests(nix::unistd::geteuid().as_raw() + 1);
    let err = Config::load(&path, other, &[]).unwrap_err();
    assert!(
        matches!(file_problem(&err), FileProblem::WrongOwner { .. }),
        "{err}"
    );
}

#[test]
fn load_refuses_a_symlink() {
    let (dir, path) = config_file(b"", 0o644);
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = Config::load(&link, trust(), &[]).unwrap_err();
    assert!(matches!(file_problem(&err), FileProblem::Symlink), "{err}");
}

#[test]
fn load_refuses_a_file_in_a_world_writable_directory() {
    let (dir, path) = config_file(b"", 0o644);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let err = Config::load(&path, trust(), &[]).unwrap_err();
    match &err {
        ConfigError::File(e) => {
            assert_eq!(e.path, dir.path());
            assert!(matches!(e.problem, FileProblem::WrongMode { .. }), "{err}");
        }
        other @ ConfigError::Invalid { .. } => panic!("expected a file error, got {other}"),
    }
}

#[test]
fn load_refuses_a_fifo_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pam_mfa.toml");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let (tx, rx) = mpsc::channel();
    let fifo = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Config::load(&fifo, trust(), &[]).map(|_| ()));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("loading a FIFO must not block");
    let err = result.unwrap_err();
    assert!(
        matches!(file_problem(&err), FileProblem::WrongType(_)),
        "{err}"
    );
}

#[test]
fn load_refuses_an_oversized_file() {
    let mut text = b"# padding\n".repeat(7000);
    text.truncate(64 * 1024 + 1);
    let (_dir, path) = config_file(&text, 0o644);
    let err = Config::load(&path, trust(), &[]).unwrap_err();
    assert!(
        matches!(file_problem(&err), FileProblem::TooLarge { .. }),
        "{err}"
    );
}

#[test]
fn load_accepts_a_file_of_exactly_the_size_limit() {
    let mut text = b"#".repeat(64 * 1024);
    text[64 * 1024 - 1] = b'\n';
    let (_dir, path) = config_file(&text, 0o644);
    assert_eq!(
        Config::load(&path, trust(), &[]).unwrap(),
        Config::default()
    );
}

#[test]
fn load_refuses_a_file_that_is_not_utf8() {
    let (_dir, path) = config_file(b"[totp]\nissuer = \"\xff\"\n", 0o644);
    let err = Config::load(&path, trust(), &[]).unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn malformed_input_is_an_error_never_a_panic() {
    for text in [
        "[",
        "]",
        "=",
        "\"",
        "[[policy]]\n",
        "[policy]\nnot_configured = \"é\u{301}\"\n",
        "ä.ö = 1\n",
        "[service]\nsshd = 1\n",
        "[service.\"\"]\n",
        "policy = { not_configured = \"maybe\" }\n",
        "[groups]\nrequire = [\n  [\"a\"],\n]\n",
        "[totp]\nissuer = \"\"\"\nmulti = line\n\"\"\"\n",
        "\u{feff}[policy]\nx = 1\n",
        "[policy]\r\nnot_configured = 3\r\n",
    ] {
        assert!(parse(text).is_err(), "{text:?} should be refused");
    }
}

//! `doctor` on policy settings: what is written but does not apply, and
//! the services where a console login needs no code.

use mfa_core::config::Config;
use mfa_core::doctor::{check_policy, Finding, Level};

fn findings(text: &str) -> Vec<Finding> {
    check_policy(&Config::parse(text, "test.toml").unwrap())
}

#[test]
fn the_default_and_the_man_page_example_say_nothing() {
    assert!(findings("").is_empty());
    let example = "[policy]\nnot_configured = \"configure\"\n\n\
                   [groups]\nrequire = [\"wheel\"]\nrequire_policy = \"deny\"\n\n\
                   [service.sshd]\nnot_configured = \"deny\"\n";
    assert_eq!(findings(example), []);
}

#[test]
fn a_service_table_looser_than_the_base_policy_is_a_warning() {
    let f = findings(
        "[policy]\nnot_configured = \"deny\"\n\
         [service.sudo]\nnot_configured = \"skip\"\n\
         [service.sshd]\nnot_configured = \"deny\"\n",
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].level, Level::Warning);
    assert!(
        f[0].message.contains("[service.sudo]")
            && f[0].message.contains("\"skip\"")
            && f[0].message.contains("\"deny\" is stricter and applies"),
        "{}",
        f[0]
    );
}

#[test]
fn a_require_policy_weaker_than_the_base_policy_is_a_warning() {
    let f = findings(
        "[policy]\nnot_configured = \"deny\"\n\
         [groups]\nrequire = [\"wheel\"]\nrequire_policy = \"configure\"\n",
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].level, Level::Warning);
    assert!(f[0].message.contains("has no effect"), "{}", f[0]);
    // Without groups.require the default require_policy means nothing.
    assert!(findings("[policy]\nnot_configured = \"deny\"\n").is_empty());
}

#[test]
fn break_glass_services_are_named_in_one_line() {
    let f = findings("[service.login]\nbreak_glass = true\n[service.sshd]\nbreak_glass = false\n");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].level, Level::Info);
    assert!(
        f[0].message.starts_with("break_glass = true on login:")
            && f[0].message.contains("event=break_glass"),
        "{}",
        f[0]
    );
    let f = findings("[service.login]\nbreak_glass = true\n[service.sudo]\nbreak_glass = true\n");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].level, Level::Warning);
    assert!(
        f[0].message
            .starts_with("break_glass = true on login, sudo:"),
        "{}",
        f[0]
    );
    assert!(f[0].fix.contains("[service.login]"), "{}", f[0]);
}

//! The effective policy: what applies to one login, decided in one place.
//!
//! Three settings can name a policy for a user without a device: the base
//! `[policy] not_configured`, the `[service.NAME]` table of the PAM service,
//! and `groups.require_policy` for members of `groups.require`. Of those
//! that apply, the strictest wins (`deny` > `configure` > `skip`), so that
//! no setting quietly loosens another: whatever is written anywhere is at
//! least what is applied. Members of `groups.exempt` step aside whatever the
//! policy. `remember_seconds` is a convenience, not a policy: a service's
//! value replaces the base one.
//!
//! `break_glass` in a `[service.NAME]` table lets a login on that service
//! from a local console step aside without a code: the way back in when the
//! authenticator, the store or the name service is gone. Every use is
//! logged at alert level by the flow.
//!
//! The login flow and `mfa-enroll doctor` ask [`effective`] (doctor also
//! [`unenrolled_policies`] and [`require_policy_overridden`], both built on
//! the same rule); nothing else combines these settings.

use crate::config::{Config, NotConfigured};

/// What applies to one login on one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// What happens if the user has no device.
    pub not_configured: NotConfigured,
    /// Seconds a success on this service is remembered; 0 is off.
    pub remember_seconds: u32,
    /// The user is in an exempt group: never asked, whatever the policy.
    pub exempt: bool,
    /// The service sets `break_glass`: a login from a local console steps
    /// aside (see [`break_glass`], which also checks the console).
    pub break_glass: bool,
}

/// The policy for a user in `groups` logging in on `service`.
///
/// `groups` only matter when `groups.require` or `groups.exempt` name any
/// group ([`needs_groups`]); pass an empty slice otherwise.
pub fn effective(config: &Config, service: &str, groups: &[String]) -> Effective {
    let table = config.service.get(service);
    let member_of = |list: &[String]| groups.iter().any(|g| list.contains(g));
    let mut not_configured = config.policy.not_configured;
    if let Some(policy) = table.and_then(|t| t.not_configured) {
        not_configured = strictest(not_configured, policy);
    }
    if member_of(&config.groups.require) {
        not_configured = strictest(not_configured, config.groups.require_policy);
    }
    Effective {
        not_configured,
        remember_seconds: table
            .and_then(|t| t.remember_seconds)
            .unwrap_or(config.policy.remember_seconds),
        exempt: member_of(&config.groups.exempt),
        break_glass: table.is_some_and(|t| t.break_glass),
    }
}

/// The policies users without a device can meet on `service`, for
/// `mfa-enroll doctor`: the one for users in no listed group and, when
/// `groups.require` names any group, the one for its members (members of
/// exempt groups are never asked).
pub fn unenrolled_policies(config: &Config, service: &str) -> Vec<NotConfigured> {
    let mut policies = vec![effective(config, service, &[]).not_configured];
    if let Some(group) = config.groups.require.first() {
        let member = effective(config, service, std::slice::from_ref(group));
        if !policies.contains(&member.not_configured) {
            policies.push(member.not_configured);
        }
    }
    policies
}

/// Whether `groups.require_policy` never applies, for `mfa-enroll doctor`:
/// `[policy] not_configured` is stricter, and the strictest wins, so members
/// of `groups.require` meet the base policy (or a stricter service table).
pub fn require_policy_overridden(config: &Config) -> bool {
    let g = &config.groups;
    !g.require.is_empty()
        && strictest(config.policy.not_configured, g.require_policy) != g.require_policy
}

/// Whether [`effective`] needs the user's groups. Group lookups can scan
/// all of /etc/group or reach LDAP: they are made only when a rule needs them.
pub fn needs_groups(config: &Config) -> bool {
    !config.groups.require.is_empty() || !config.groups.exempt.is_empty()
}

/// The stricter of two policies: `deny` over `configure` over `skip`.
pub fn strictest(a: NotConfigured, b: NotConfigured) -> NotConfigured {
    fn rank(p: NotConfigured) -> u8 {
        match p {
            NotConfigured::Skip => 0,
            NotConfigured::Configure => 1,
            NotConfigured::Deny => 2,
        }
    }
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Whether this login steps aside by break-glass: its service's table sets
/// `break_glass` and it comes from a local console ([`is_local_console`]).
/// Needs neither the user nor the store, so that it works when they fail.
pub fn break_glass(config: &Config, service: &str, tty: Option<&str>, rhost: Option<&str>) -> bool {
    config.service.get(service).is_some_and(|t| t.break_glass) && is_local_console(tty, rhost)
}

/// Whether `PAM_TTY` and `PAM_RHOST` describe a login at the machine itself:
/// no remote host, and a virtual console (`tty1` to `tty63`, with or
/// without `/dev/`) or the system console (`console`, `/dev/console`).
/// Pseudo-terminals (`pts/N`), serial lines, X displays and sshd's `ssh`
/// are not.
pub fn is_local_console(tty: Option<&str>, rhost: Option<&str>) -> bool {
    if rhost.is_some() {
        return false;
    }
    let Some(tty) = tty else {
        return false;
    };
    let name = tty.strip_prefix("/dev/").unwrap_or(tty);
    if name == "console" {
        return true;
    }
    // Exactly the kernel's names: no leading zero, no tty0 (the "current
    // console" alias no login is started on), at most 63.
    name.strip_prefix("tty").is_some_and(|n| {
        !n.is_empty()
            && !n.starts_with('0')
            && n.bytes().all(|b| b.is_ascii_digit())
            && n.parse::<u8>().is_ok_and(|n| (1..=63).contains(&n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceOverride;

    const MEMBER: &str = "wheel";
    const EXEMPT: &str = "robots";

    /// Who logs in, as the matrix sees them.
    #[derive(Debug, Clone, Copy)]
    enum Role {
        Member,
        NonMember,
        Exempt,
    }

    fn groups(role: Role) -> Vec<String> {
        match role {
            Role::Member => vec!["users".to_owned(), MEMBER.to_owned()],
            Role::NonMember => vec!["users".to_owned()],
            Role::Exempt => vec!["users".to_owned(), EXEMPT.to_owned()],
        }
    }

    fn config(
        base: NotConfigured,
        service: Option<NotConfigured>,
        require_policy: NotConfigured,
    ) -> Config {
        let mut c = Config::default();
        c.policy.not_configured = base;
        c.groups.require = vec![MEMBER.to_owned()];
        c.groups.require_policy = require_policy;
        c.groups.exempt = vec![EXEMPT.to_owned()];
        if service.is_some() {
            c.service.insert(
                "sshd".to_owned(),
                ServiceOverride {
                    not_configured: service,
                    ..ServiceOverride::default()
                },
            );
        }
        c
    }

    /// The expected policy, written out independently of the code: the
    /// position of the strictest in the list of policies from loose to strict.
    fn expected(words: &[&str]) -> &'static str {
        const ORDER: [&str; 3] = ["skip", "configure", "deny"];
        let i = words
            .iter()
            .map(|w| ORDER.iter().position(|o| o == w).unwrap())
            .max()
            .unwrap();
        ORDER[i]
    }

    #[test]
    fn the_strictest_policy_wins_over_the_whole_matrix() {
        use NotConfigured::{Configure, Deny, Skip};
        let mut rows = 0;
        for base in [Skip, Configure, Deny] {
            for service in [None, Some(Skip), Some(Configure), Some(Deny)] {
                for require_policy in [Configure, Deny] {
                    let c = config(base, service, require_policy);
                    for role in [Role::Member, Role::NonMember, Role::Exempt] {
                        let e = effective(&c, "sshd", &groups(role));
                        let mut applies = vec![base.as_str()];
                        applies.extend(service.map(NotConfigured::as_str));
                        if matches!(role, Role::Member) {
                            applies.push(require_policy.as_str());
                        }
                        let row = format!(
                            "base {base}, service {service:?}, require_policy {require_policy}, {role:?}"
                        );
                        assert_eq!(e.not_configured.as_str(), expected(&applies), "{row}");
                        assert_eq!(e.exempt, matches!(role, Role::Exempt), "{row}");
                        // Another service sees only the base and the groups.
                        let other = effective(&c, "sudo", &groups(role));
                        let mut other_applies = vec![base.as_str()];
                        if matches!(role, Role::Member) {
                            other_applies.push(require_policy.as_str());
                        }
                        assert_eq!(
                            other.not_configured.as_str(),
                            expected(&other_applies),
                            "{row}, on sudo"
                        );
                        rows += 1;
                    }
                }
            }
        }
        assert_eq!(rows, 3 * 4 * 2 * 3);
    }

    #[test]
    fn the_man_page_example_denies_unenrolled_members_of_wheel() {
        // pam_mfa.toml(5), EXAMPLE.
        let c = Config::parse(
            "[policy]\nnot_configured = \"configure\"\n\n\
             [groups]\nrequire = [\"wheel\"]\nrequire_policy = \"deny\"\n\n\
             [service.sshd]\nnot_configured = \"deny\"\n",
            "example",
        )
        .unwrap();
        let wheel = ["wheel".to_owned()];
        assert_eq!(
            effective(&c, "sudo", &wheel).not_configured,
            NotConfigured::Deny
        );
        assert_eq!(
            effective(&c, "sudo", &[]).not_configured,
            NotConfigured::Configure
        );
        assert_eq!(
            effective(&c, "sshd", &[]).not_configured,
            NotConfigured::Deny
        );
    }

    #[test]
    fn a_service_table_cannot_loosen_the_base_policy() {
        let c = config(
            NotConfigured::Deny,
            Some(NotConfigured::Skip),
            NotConfigured::Configure,
        );
        assert_eq!(
            effective(&c, "sshd", &[]).not_configured,
            NotConfigured::Deny
        );
    }

    #[test]
    fn remember_seconds_of_a_service_replaces_the_base_value() {
        let mut c = Config::default();
        c.policy.remember_seconds = 300;
        c.service.insert(
            "sshd".to_owned(),
            ServiceOverride {
                remember_seconds: Some(0),
                ..ServiceOverride::default()
            },
        );
        c.service.insert(
            "sudo".to_owned(),
            ServiceOverride {
                remember_seconds: Some(600),
                ..ServiceOverride::default()
            },
        );
        assert_eq!(effective(&c, "sshd", &[]).remember_seconds, 0);
        assert_eq!(effective(&c, "sudo", &[]).remember_seconds, 600);
        assert_eq!(effective(&c, "login", &[]).remember_seconds, 300);
    }

    #[test]
    fn doctor_sees_the_policies_of_outsiders_and_of_required_members() {
        use NotConfigured::{Configure, Deny, Skip};
        let c = config(Skip, None, Deny);
        assert_eq!(unenrolled_policies(&c, "sudo"), [Skip, Deny]);
        let c = config(Skip, Some(Deny), Configure);
        assert_eq!(unenrolled_policies(&c, "sshd"), [Deny]);
        assert_eq!(unenrolled_policies(&c, "sudo"), [Skip, Configure]);
        let mut c = config(Configure, None, Deny);
        c.groups.require.clear();
        assert_eq!(unenrolled_policies(&c, "sudo"), [Configure]);
    }

    #[test]
    fn doctor_sees_a_require_policy_looser_than_the_base_one() {
        use NotConfigured::{Configure, Deny, Skip};
        assert!(require_policy_overridden(&config(Deny, None, Configure)));
        assert!(!require_policy_overridden(&config(
            Configure, None, Configure
        )));
        assert!(!require_policy_overridden(&config(Skip, None, Deny)));
        assert!(!require_policy_overridden(&config(
            Configure,
            Some(Deny),
            Deny
        )));
        let mut c = config(Deny, None, Configure);
        c.groups.require.clear();
        assert!(!require_policy_overridden(&c));
    }

    #[test]
    fn groups_are_needed_only_when_a_list_names_one() {
        let mut c = Config::default();
        assert!(!needs_groups(&c));
        c.groups.exempt = vec!["robots".to_owned()];
        assert!(needs_groups(&c));
        c.groups.exempt.clear();
        c.groups.require = vec!["wheel".to_owned()];
        assert!(needs_groups(&c));
    }

    #[test]
    fn only_virtual_terminals_and_the_console_without_a_remote_host_are_local() {
        for tty in [
            "tty1",
            "tty63",
            "/dev/tty2",
            "/dev/tty12",
            "console",
            "/dev/console",
        ] {
            assert!(is_local_console(Some(tty), None), "{tty}");
            assert!(
                !is_local_console(Some(tty), Some("192.0.2.1")),
                "{tty} with a remote host"
            );
        }
        for tty in [
            "",
            "tty",
            "tty0",
            "tty01",
            "tty64",
            "tty100",
            "tty1a",
            "ttyS0",
            "ttyUSB0",
            "pts/0",
            "/dev/pts/0",
            "ssh",
            ":0",
            "/dev/tty",
            "/dev/ttyS1",
            "/dev//tty1",
            "/tmp/tty1",
            "tty-1",
            "tty+1",
            "tty 1",
            "console0",
            "/dev/consolex",
        ] {
            assert!(!is_local_console(Some(tty), None), "{tty:?}");
        }
        assert!(!is_local_console(None, None));
    }

    #[test]
    fn break_glass_needs_the_table_and_the_console() {
        let mut c = Config::default();
        c.service.insert(
            "login".to_owned(),
            ServiceOverride {
                break_glass: true,
                ..ServiceOverride::default()
            },
        );
        assert!(break_glass(&c, "login", Some("tty1"), None));
        assert!(!break_glass(&c, "login", Some("pts/0"), None));
        assert!(!break_glass(&c, "login", Some("tty1"), Some("192.0.2.1")));
        assert!(!break_glass(&c, "login", None, None));
        assert!(!break_glass(&c, "sudo", Some("tty1"), None));
        assert!(effective(&c, "login", &[]).break_glass);
        assert!(!effective(&c, "sudo", &[]).break_glass);
    }
}

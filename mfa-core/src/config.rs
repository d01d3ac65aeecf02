//! The configuration file and the module arguments that overlay it.
//!
//! One vocabulary serves both: every setting is `section.key` in the TOML
//! file (`/etc/security/pam_mfa.toml`), and the same `section.key=value` (or a
//! bare `key=value` where the key name is unique) as a module argument in a
//! pam.d line. Anything the parser does not understand is an error that names
//! where it came from, the line and column, and the dotted key: an unknown
//! key, a bad enum value or an out-of-range number is never ignored or
//! clamped, because a typo in a security policy must not quietly weaken it.
//!
//! The rooms, by job:
//!
//! | file | what |
//! |---|---|
//! | `settings` | the setting types, one per section, and their defaults |
//! | `load` | the pipeline: read the trusted file, parse it with `toml`, overlay the arguments, check the rules across keys |
//! | `args` | the module-argument grammar; each value typed once, by the key's own deserializer |
//! | `fields` | the field deserializers: ranges, words, paths, group and service names |
//! | `locate` | where a mistake is: file, line, column and key from the parser's spans |
//! | `error` | [`ConfigError`], in words for the administrator |

mod args;
mod error;
mod fields;
mod load;
mod locate;
mod settings;

pub use args::{parse_module_args, ModuleArgs, Override};
pub use error::ConfigError;
pub use load::MAX_CONFIG_SIZE;
pub use settings::{
    Config, EnrollmentConfig, GroupsConfig, NotConfigured, Paths, PolicyConfig, QrStyle,
    RecoveryConfig, ServiceOverride, StoreBackend, StoreConfig, ThrottleConfig, TotpConfig,
    TOTP_PERIODS,
};

/// Where the shells look for the configuration unless `config=` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/security/pam_mfa.toml";

/// The origin named in errors about module arguments.
pub const ARGS_ORIGIN: &str = "module arguments";

#[cfg(test)]
mod tests {
    use super::args::{resolve_arg_key, Kind, Setting, OVERLAY_KEYS};
    use super::locate::{assignment_key, key_at, position};
    use super::*;

    #[test]
    fn a_bare_key_two_sections_share_is_ambiguous() {
        let vocabulary = [
            Setting::new("a", "size", "a.size", Kind::Integer),
            Setting::new("b", "size", "b.size", Kind::Integer),
            Setting::new("b", "name", "b.name", Kind::Text),
        ];
        let err = resolve_arg_key("size", &vocabulary).unwrap_err();
        assert_eq!(err.key(), Some("size"));
        assert!(err.to_string().contains("ambiguous"), "{err}");
        assert!(err.to_string().contains("`a.size` or `b.size`"), "{err}");
        assert_eq!(resolve_arg_key("b.size", &vocabulary).unwrap().section, "b");
        assert_eq!(resolve_arg_key("name", &vocabulary).unwrap().section, "b");
    }

    #[test]
    fn every_bare_overlay_key_is_unique() {
        for s in OVERLAY_KEYS {
            assert_eq!(resolve_arg_key(s.leaf, OVERLAY_KEYS).unwrap(), *s);
        }
    }

    #[test]
    fn describe_lists_exactly_the_overlay_keys() {
        let described: Vec<String> = Config::default()
            .describe()
            .into_iter()
            .map(|l| l.split_once('=').unwrap().0.to_owned())
            .collect();
        let vocabulary: Vec<&str> = OVERLAY_KEYS.iter().map(|s| s.dotted).collect();
        assert_eq!(described, vocabulary);
    }

    #[test]
    fn keys_are_read_from_headers_and_assignments() {
        let text = "top = 1\n[a . \"b.c\"]\n# x = 1\nk = [\n  1,\n]\n[[arr]]\n";
        assert_eq!(
            assignment_key("\"a\\\"=b\" = 1").as_deref(),
            Some("a\\\"=b")
        );
        assert_eq!(key_at(text, 0).as_deref(), Some("top"));
        assert_eq!(key_at(text, 9).as_deref(), Some("a.b.c"));
        let element = text.find("1,").unwrap();
        assert_eq!(key_at(text, element).as_deref(), Some("a.b.c.k"));
        let arr = text.find("arr").unwrap();
        assert_eq!(key_at(text, arr).as_deref(), Some("arr"));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(position("ä = 1\nx", 0), (1, 1));
        assert_eq!(position("ä = 1\nx", 3), (1, 3));
        assert_eq!(position("ä = 1\nx", 7), (2, 1));
        assert_eq!(position("ab", 99), (1, 3));
    }
}

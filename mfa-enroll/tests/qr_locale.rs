//! How `mfa-enroll` draws the QR code for the terminal it runs in: UTF-8
//! blocks only when the locale's character set is UTF-8 (`LC_ALL`, then
//! `LC_CTYPE`, then `LANG`), ASCII otherwise, unless `--qr` says; and
//! `enrollment.qr = "none"` stays none. The real binary, as root and as
//! `nobody`, with the locale variables set explicitly for each run.

mod common;

use std::process::{Command, Stdio};

use common::{stderr, stdout, write, Host, USER};

/// The locale variables, all removed before each run and set from the
/// case.
const LOCALE_VARS: [&str; 3] = ["LC_ALL", "LC_CTYPE", "LANG"];

/// What the enrollment drew.
#[derive(Debug, PartialEq, Eq)]
enum Drawn {
    Utf8,
    Ascii,
    Nothing,
}

fn drawn(shown: &str) -> Drawn {
    let blocks = shown.chars().any(|c| matches!(c, '▀' | '▄' | '█'));
    if !shown.contains("Scan this QR code") {
        assert!(!blocks, "blocks without a QR code:\n{shown}");
        return Drawn::Nothing;
    }
    if blocks {
        return Drawn::Utf8;
    }
    // Everything printed must be readable on a terminal that is not
    // UTF-8, not only the drawing.
    assert!(shown.is_ascii(), "not ASCII:\n{shown}");
    assert!(
        shown.lines().any(|l| l.starts_with("####")),
        "no ASCII QR code:\n{shown}"
    );
    Drawn::Ascii
}

fn with_locale(cmd: &mut Command, locale: &[(&str, &str)]) {
    for var in LOCALE_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(locale.iter().copied());
}

/// `enroll --user nobody EXTRA` as root under `locale`. Standard input is
/// empty, so no code is typed: the enrollment is refused (4) after the QR
/// code was shown, and nothing is stored.
fn root_enrolls(host: &Host, extra: &[&str], locale: &[(&str, &str)]) -> Drawn {
    let mut cmd = Command::new(&host.bin);
    cmd.arg("--config")
        .arg(&host.config)
        .args(["enroll", "--user", USER])
        .args(extra)
        .stdin(Stdio::null());
    with_locale(&mut cmd, locale);
    let out = cmd.output().expect("run mfa-enroll");
    assert_eq!(out.status.code(), Some(4), "{locale:?}: {}", stderr(&out));
    drawn(&stdout(&out))
}

/// `mfa-enroll enroll --device phone EXTRA` as `nobody` under `locale`,
/// refused like [`root_enrolls`] for want of a code.
fn user_enrolls(host: &Host, extra: &[&str], locale: &[(&str, &str)]) -> Drawn {
    let mut args = vec!["enroll", "--device", "phone"];
    args.extend_from_slice(extra);
    let mut cmd = host.user_command(&args);
    cmd.stdin(Stdio::null());
    with_locale(&mut cmd, locale);
    let out = cmd.output().expect("setpriv (util-linux) is installed");
    assert_eq!(out.status.code(), Some(4), "{locale:?}: {}", stderr(&out));
    drawn(&stdout(&out))
}

fn host_with_qr_setting(setting: Option<&str>) -> Host {
    let host = Host::new();
    if let Some(style) = setting {
        let config = std::fs::read_to_string(&host.config).unwrap();
        write(
            &host.config,
            &format!("{config}\n[enrollment]\nqr = \"{style}\"\n"),
        );
    }
    host
}

#[test]
fn without_qr_the_locale_decides_between_blocks_and_ascii() {
    let host = host_with_qr_setting(None);
    for (locale, want) in [
        (&[][..], Drawn::Ascii),
        (&[("LANG", "C")][..], Drawn::Ascii),
        (&[("LANG", "POSIX")], Drawn::Ascii),
        (&[("LANG", "en_US.ISO-8859-1")], Drawn::Ascii),
        (&[("LANG", "C.UTF-8")], Drawn::Utf8),
        (&[("LANG", "en_US.utf8")], Drawn::Utf8),
        (&[("LANG", "de_DE.Utf-8@euro")], Drawn::Utf8),
        // LC_CTYPE overrides LANG, LC_ALL both; an empty one counts as unset.
        (&[("LANG", "C"), ("LC_CTYPE", "C.UTF-8")], Drawn::Utf8),
        (&[("LANG", "C.UTF-8"), ("LC_CTYPE", "C")], Drawn::Ascii),
        (&[("LANG", "C"), ("LC_ALL", "C.UTF-8")], Drawn::Utf8),
        (
            &[
                ("LANG", "C.UTF-8"),
                ("LC_CTYPE", "C.UTF-8"),
                ("LC_ALL", "C"),
            ],
            Drawn::Ascii,
        ),
        (&[("LANG", "C.UTF-8"), ("LC_ALL", "")], Drawn::Utf8),
    ] {
        assert_eq!(root_enrolls(&host, &[], locale), want, "root, {locale:?}");
    }
}

#[test]
fn qr_on_the_command_line_wins_over_the_locale() {
    let host = host_with_qr_setting(None);
    assert_eq!(
        root_enrolls(&host, &["--qr", "utf8"], &[("LANG", "C")]),
        Drawn::Utf8
    );
    assert_eq!(
        root_enrolls(&host, &["--qr", "ascii"], &[("LC_ALL", "C.UTF-8")]),
        Drawn::Ascii
    );
    assert_eq!(
        root_enrolls(&host, &["--qr", "none"], &[("LC_ALL", "C.UTF-8")]),
        Drawn::Nothing
    );
}

#[test]
fn the_configured_style_stays_none_or_ascii_in_any_locale() {
    let none = host_with_qr_setting(Some("none"));
    let ascii = host_with_qr_setting(Some("ascii"));
    let utf8 = host_with_qr_setting(Some("utf8"));
    for locale in [&[("LANG", "C")][..], &[("LC_ALL", "C.UTF-8")]] {
        assert_eq!(root_enrolls(&none, &[], locale), Drawn::Nothing);
        assert_eq!(root_enrolls(&ascii, &[], locale), Drawn::Ascii);
    }
    assert_eq!(root_enrolls(&utf8, &[], &[("LANG", "C")]), Drawn::Ascii);
    assert_eq!(
        root_enrolls(&utf8, &[], &[("LANG", "C.UTF-8")]),
        Drawn::Utf8
    );
}

#[test]
fn a_user_enrolling_themselves_gets_the_same_choice() {
    let host = host_with_qr_setting(None);
    host.make_spool();
    // A login's environment without a locale, as `su -` or a minimal
    // container gives.
    assert_eq!(user_enrolls(&host, &[], &[]), Drawn::Ascii);
    assert_eq!(user_enrolls(&host, &[], &[("LANG", "C")]), Drawn::Ascii);
    assert_eq!(
        user_enrolls(&host, &[], &[("LANG", "C.UTF-8")]),
        Drawn::Utf8
    );
    assert_eq!(
        user_enrolls(&host, &["--qr", "utf8"], &[("LANG", "C")]),
        Drawn::Utf8
    );
    assert!(
        host.spool_files().is_empty(),
        "a refused enrollment left a request"
    );
}

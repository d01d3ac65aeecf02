//! The import parsers against files written by the real tools (see
//! fixtures/README.md), and the imported secrets against oathtool: after an
//! import the user's authenticator app must keep working unchanged.

use std::path::PathBuf;
use std::process::Command;

use mfa_core::import::{
    parse_google_authenticator, parse_oath_usersfile, ImportError, ImportedRecovery, OathEntry,
    OathSkip, RecoveryPlan, ScratchCode, ScratchCodes, MAX_GOOGLE_AUTHENTICATOR_FILE,
};
use mfa_core::recovery::{CodeFormat, KdfParams, RecoveryHashes};
use mfa_core::totp::{self, code_at_step, time_step, Algorithm, SecretError, TotpParams};

const NOW: u64 = 1_764_150_000;

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8(bytes.split(|&b| b == b'\n').next().unwrap().to_vec()).unwrap()
}

/// oathtool's code at `unix` for a secret given as `-b` base32 or hex.
fn oathtool(secret: &str, base32: bool, params: TotpParams, unix: u64) -> String {
    assert_eq!(params.algorithm, Algorithm::Sha1);
    let mut cmd = Command::new("oathtool");
    cmd.arg("--totp");
    if base32 {
        cmd.arg("--base32");
    }
    let out = cmd
        .args([
            "-d",
            &params.digits.to_string(),
            "-s",
            &format!("{}s", params.period),
            "-N",
            &format!("@{unix}"),
            secret,
        ])
        .output()
        .expect("oathtool is installed (apt-get install oathtool; .ci/run does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn ours(secret: &[u8], params: TotpParams, unix: u64) -> String {
    code_at_step(secret, params, time_step(unix, params.period)).to_string()
}

#[test]
fn a_time_based_file_from_the_tool_gives_its_settings_and_counts_scratch_codes() {
    let ga = parse_google_authenticator(&fixture("ga-totp")).unwrap();
    assert_eq!(ga.secret.len(), 16);
    assert_eq!(
        ga.params,
        TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30
        }
    );
    assert_eq!(ga.window_size, Some(3));
    assert_eq!(ga.window_steps(), 1);
    assert_eq!(ga.rate_limit, Some((3, 30)));
    assert!(ga.disallow_reuse);
    assert!(ga.used_steps.is_empty());
    assert_eq!(ga.time_skew, None);
    assert_eq!(ga.scratch_codes.len(), 5);
}

#[test]
fn the_imported_secret_gives_the_codes_oathtool_gives_for_the_file_secret() {
    for name in ["ga-totp", "ga-totp-step60", "ga-totp-one-scratch-code"] {
        let bytes = fixture(name);
        let ga = parse_google_authenticator(&bytes).unwrap();
        let b32 = first_line(&bytes);
        for unix in [59, NOW, 2_147_483_647, 20_000_000_000] {
            assert_eq!(
                ours(&ga.secret, ga.params, unix),
                oathtool(&b32, true, ga.params, unix),
                "{name} at {unix}"
            );
        }
    }
}

#[test]
fn step_size_and_a_wide_window_are_read() {
    let ga = parse_google_authenticator(&fixture("ga-totp-step60")).unwrap();
    assert_eq!(ga.params.period, 60);
    assert_eq!(ga.window_size, Some(17));
    assert_eq!(ga.window_steps(), 8);
    assert!(!ga.disallow_reuse);
    assert_eq!(ga.rate_limit, None);
    assert!(ga.scratch_codes.is_empty());
}

#[test]
fn a_file_the_pam_module_has_updated_keeps_its_used_steps() {
    let ga = parse_google_authenticator(&fixture("ga-after-logins")).unwrap();
    assert_eq!(ga.used_steps, [58_805_000, 58_805_001]);
    assert_eq!(ga.time_skew, Some(-1));
    assert_eq!(ga.rate_limit, Some((3, 30)));
    assert_eq!(ga.scratch_codes.len(), 5);
    // Steps already used stay used once imported...
    let later = NOW + 60;
    let device = ga.device("phone", later);
    assert_eq!(device.last_used_step, Some(58_805_001));
    assert_eq!(device.created, later);
    assert_eq!(device.name, "phone");
    // ...but a step past now never locks the device out.
    let early = 58_805_000 * 30 - 3600;
    assert_eq!(
        ga.device("phone", early).last_used_step,
        Some(time_step(early, 30))
    );
}

#[test]
fn a_counter_based_file_is_refused_with_a_way_forward() {
    let err = parse_google_authenticator(&fixture("ga-hotp")).unwrap_err();
    assert_eq!(err, ImportError::CounterBased);
    let text = err.to_string();
    assert!(text.contains("HOTP_COUNTER"), "{text}");
    assert!(text.contains("mfa-enroll enroll"), "{text}");
}

#[test]
fn a_secret_under_128_bits_is_refused() {
    let err = parse_google_authenticator(&fixture("ga-short-secret")).unwrap_err();
    assert_eq!(err, ImportError::Secret(SecretError::TooShort { bits: 80 }));
    assert!(err.to_string().contains("128 bits"), "{err}");
}

#[test]
fn a_file_without_totp_auth_is_refused() {
    let file = b"QPTRTB4XQJQP7PEKMBDHSIM4IY\n\" WINDOW_SIZE 3\n12345678\n";
    assert_eq!(
        parse_google_authenticator(file).unwrap_err(),
        ImportError::NotTimeBased
    );
}

#[test]
fn damaged_google_authenticator_files_are_refused_by_line() {
    let good = fixture("ga-totp");
    let cases: Vec<(Vec<u8>, ImportError)> = vec![
        (Vec::new(), ImportError::Empty),
        (
            vec![b'A'; MAX_GOOGLE_AUTHENTICATOR_FILE + 1],
            ImportError::TooLarge {
                size: MAX_GOOGLE_AUTHENTICATOR_FILE + 1,
                max: MAX_GOOGLE_AUTHENTICATOR_FILE,
            },
        ),
        (
            String::from_utf8(good.clone())
                .unwrap()
                .replace('\n', "\r\n")
                .into_bytes(),
            ImportError::BadByte { line: 1 },
        ),
        (
            [&good[..], "\" TOTP_AUTH\n".as_bytes()].concat(),
            ImportError::RepeatedOption {
                line: 11,
                name: "TOTP_AUTH",
            },
        ),
        (
            [&good[..], "1234 5678\n".as_bytes()].concat(),
            ImportError::BadLine { line: 11 },
        ),
        (
            [&good[..], "\u{2}\n".as_bytes()].concat(),
            ImportError::BadByte { line: 11 },
        ),
        (
            [&good[..], "\" SECRET_MODE 1\n".as_bytes()].concat(),
            ImportError::UnknownOption {
                line: 11,
                name: "SECRET_MODE".into(),
            },
        ),
        (
            b"qptrtb4xqjqp7pekmbdhsim4iy\n\" TOTP_AUTH\n".to_vec(),
            ImportError::Secret(SecretError::InvalidCharacter { position: 1 }),
        ),
        (
            b"QPTR TB4X QJQP 7PEK MBDH SIM4 IY\n\" TOTP_AUTH\n".to_vec(),
            ImportError::Secret(SecretError::InvalidCharacter { position: 5 }),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            parse_google_authenticator(&bytes).unwrap_err(),
            want,
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn errors_never_repeat_the_secret() {
    let mut bytes = fixture("ga-totp");
    bytes.extend_from_slice(b"\" NO_SUCH_OPTION\n");
    let err = parse_google_authenticator(&bytes).unwrap_err().to_string();
    assert!(!err.contains(&first_line(&bytes)), "{err}");
    let debug = format!(
        "{:?}",
        parse_google_authenticator(&fixture("ga-totp")).unwrap()
    );
    assert!(!debug.contains("secret:"), "{debug}");
}

fn hex(bytes: &[u8]) -> String {
    mfa_core::codec::hex_encode(bytes).to_string()
}

#[test]
fn the_oath_usersfile_yields_its_time_based_tokens_and_reports_the_rest() {
    let lines = parse_oath_usersfile(&fixture("users.oath")).unwrap();
    let summary: Vec<(usize, &str, &str, Option<OathSkip>)> = lines
        .iter()
        .map(|l| {
            let skip = match &l.entry {
                OathEntry::Totp(_) => None,
                OathEntry::Skipped(s) => Some(*s),
            };
            (l.line, l.user.as_str(), l.kind.as_str(), skip)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (2, "alice", "HOTP/T30", None),
            (3, "bob", "HOTP/T30/6", None),
            (4, "carol", "HOTP/T60/8", None),
            (5, "dave", "HOTP/T30/7", None),
            (7, "erin", "HOTP", Some(OathSkip::CounterBased)),
            (8, "frank", "HOTP/E/8", Some(OathSkip::CounterBased)),
            (9, "grace", "HOTP/T30", Some(OathSkip::HasPin)),
        ]
    );
    let params: Vec<(u8, u32)> = lines
        .iter()
        .filter_map(|l| match &l.entry {
            OathEntry::Totp(t) => Some((t.params.digits, t.params.period)),
            OathEntry::Skipped(_) => None,
        })
        .collect();
    assert_eq!(params, [(6, 30), (6, 30), (8, 60), (7, 30)]);
}

#[test]
fn imported_oath_secrets_give_the_codes_oathtool_gives_for_the_hex_secret() {
    let text = String::from_utf8(fixture("users.oath")).unwrap();
    let lines = parse_oath_usersfile(text.as_bytes()).unwrap();
    for l in &lines {
        let OathEntry::Totp(token) = &l.entry else {
            continue;
        };
        let hex_in_file = text
            .lines()
            .nth(l.line - 1)
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap();
        assert_eq!(hex(&token.secret), hex_in_file);
        for unix in [59, NOW, 2_147_483_647] {
            assert_eq!(
                ours(&token.secret, token.params, unix),
                oathtool(hex_in_file, false, token.params, unix),
                "line {} at {unix}",
                l.line
            );
        }
    }
}

#[test]
fn the_last_code_liboath_recorded_stays_used_after_the_import() {
    let secret = [7u8; 20];
    let params = TotpParams {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };
    let used_step = time_step(NOW, 30) - 1;
    let last = code_at_step(&secret, params, used_step);
    let file = format!(
        "HOTP/T30/6 alice - {} 3 {} 2025-11-26T10:39:30L\n",
        hex(&secret),
        last.as_str()
    );
    let lines = parse_oath_usersfile(file.as_bytes()).unwrap();
    let OathEntry::Totp(token) = &lines[0].entry else {
        panic!("not imported");
    };
    assert_eq!(token.device("d", NOW, 1).last_used_step, Some(used_step));
    // A code from long ago constrains nothing.
    assert_eq!(token.device("d", NOW + 3600, 1).last_used_step, None);
}

#[test]
fn malformed_oath_lines_are_refused_by_line() {
    let secret = "3132333435363738393031323334353637383930";
    let cases = [
        (format!("TOTP alice - {secret}\n"), "line 1", "token type"),
        (
            format!("HOTP/T30/9 alice - {secret}\n"),
            "line 1",
            "token type",
        ),
        ("HOTP/T30 alice\n".to_owned(), "line 1", "no PIN"),
        ("HOTP/T30 alice -\n".to_owned(), "line 1", "no secret"),
        (
            format!("# ok\nHOTP/T30 alice - {secret}0\n"),
            "line 2",
            "odd number",
        ),
        (
            format!("HOTP/T30 alice - {}\n", &secret[..30]),
            "line 1",
            "128 bits",
        ),
        (
            format!("HOTP/T30 alice - {}zz\n", &secret[..38]),
            "line 1",
            "hexadecimal",
        ),
        (
            format!("HOTP/T30 alice - {secret} -1\n"),
            "line 1",
            "counter",
        ),
        (
            format!("HOTP/T30 alice - {secret} 1 12345\n"),
            "line 1",
            "last code",
        ),
        (
            format!("HOTP/T30 alice - {secret} 1 123456 2025-11-26 12:00:00\n"),
            "line 1",
            "time of the last login",
        ),
        (
            format!("HOTP/T30 alice - {secret} 1 123456 2025-11-26T12:00:00L x\n"),
            "line 1",
            "too many fields",
        ),
        (format!("HOTP/T30 alice - {secret}\r\n"), "line 1", "byte"),
    ];
    for (text, line, want) in cases {
        let err = parse_oath_usersfile(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains(line) && err.contains(want), "{text:?}: {err}");
        assert!(!err.contains(secret), "{err}");
    }
}

#[test]
fn comments_and_blank_lines_are_not_tokens() {
    let lines = parse_oath_usersfile(b"# nothing here\n\n   \n#HOTP/T30 x - 00\n").unwrap();
    assert!(lines.is_empty());
    assert_eq!(parse_oath_usersfile(b"").unwrap_err(), ImportError::Empty);
}

#[test]
fn base32_in_the_first_line_is_the_whole_secret() {
    // 26 characters are 130 bits; the last two are padding bits, dropped.
    let ga = parse_google_authenticator(&fixture("ga-totp")).unwrap();
    let again = totp::base32_decode(&first_line(&fixture("ga-totp"))).unwrap();
    assert_eq!(*ga.secret, *again);
}

// ---------------------------------------------------------------------------
// Scratch codes: carried over as the user's recovery codes

/// Cheap Argon2id settings: what is tested here is which codes end up in
/// the set, not the cost of hashing them.
const TEST_KDF: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// The 8-digit lines of a fixture, as the user holds them.
fn scratch_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('"'))
        .map(str::to_owned)
        .collect()
}

fn carried(bytes: &[u8]) -> RecoveryHashes {
    let ga = parse_google_authenticator(bytes).unwrap();
    match ga.recovery(ScratchCodes::Keep, TEST_KDF).unwrap() {
        ImportedRecovery::Carried(set) => set,
        other => panic!("not carried over: {other:?}"),
    }
}

/// Whether `typed` is one of the set's unused codes.
fn holds(set: &RecoveryHashes, typed: &str) -> bool {
    set.candidate(typed.as_bytes())
        .is_some_and(|c| set.find(&c).unwrap().is_some())
}

#[test]
fn scratch_codes_from_the_tool_become_an_eight_digit_recovery_set() {
    for name in ["ga-totp", "ga-after-logins", "ga-totp-one-scratch-code"] {
        let bytes = fixture(name);
        let codes = scratch_lines(&bytes);
        let ga = parse_google_authenticator(&bytes).unwrap();
        assert_eq!(
            ga.recovery_plan(ScratchCodes::Keep).unwrap(),
            RecoveryPlan::Carry { count: codes.len() },
            "{name}"
        );
        let listed: Vec<&str> = ga.scratch_codes.iter().map(ScratchCode::as_str).collect();
        assert_eq!(listed, codes, "{name}");
        let set = carried(&bytes);
        assert_eq!(set.format(), CodeFormat::Digits(8), "{name}");
        assert_eq!(set.remaining(), codes.len(), "{name}");
        assert_eq!(set.params(), TEST_KDF);
        for code in &codes {
            assert!(holds(&set, code), "{name}: {code} is not in the set");
        }
        // Typed as the prompt allows: with a separator.
        let grouped = format!("{}-{}", &codes[0][..4], &codes[0][4..]);
        assert!(holds(&set, &grouped), "{name}");
    }
}

#[test]
fn a_carried_set_holds_nothing_but_the_scratch_codes() {
    let bytes = fixture("ga-totp");
    let set = carried(&bytes);
    let codes = scratch_lines(&bytes);
    // Neighbours of a real code, another file's code, and the TOTP-length
    // prefix of a code are not codes of the set.
    let n: u32 = codes[0].parse().unwrap();
    for other in [
        format!("{}", n + 1),
        format!("{}", n - 1),
        scratch_lines(&fixture("ga-totp-one-scratch-code"))[0].clone(),
        codes[0][..6].to_owned(),
        format!("{}0", codes[0]),
    ] {
        assert!(!holds(&set, &other), "{other} was accepted");
    }
    // Each works once: removing a found code leaves the others.
    let mut set = set;
    let c = set.candidate(codes[1].as_bytes()).unwrap();
    let index = set.find(&c).unwrap().unwrap();
    assert!(set.remove(index));
    assert!(!holds(&set, &codes[1]));
    assert!(holds(&set, &codes[0]) && holds(&set, &codes[4]));
    assert_eq!(set.remaining(), 4);
}

#[test]
fn the_scratch_codes_are_hashed_with_the_module_s_argon2id_settings() {
    let ga = parse_google_authenticator(&fixture("ga-totp-one-scratch-code")).unwrap();
    let ImportedRecovery::Carried(set) = ga
        .recovery(ScratchCodes::Keep, KdfParams::default())
        .unwrap()
    else {
        panic!("not carried over");
    };
    assert_eq!(set.params(), KdfParams::default());
    assert_eq!(set.remaining(), 1);
    assert!(holds(&set, "14918382"));
    // The hashes are Argon2id outputs, not the codes.
    for h in set.hashes() {
        assert!(!h.windows(8).any(|w| w == b"14918382"));
    }
}

#[test]
fn a_new_set_is_chosen_instead_of_carrying_the_scratch_codes() {
    let ga = parse_google_authenticator(&fixture("ga-totp")).unwrap();
    assert_eq!(
        ga.recovery_plan(ScratchCodes::Replace).unwrap(),
        RecoveryPlan::NewSet
    );
    assert!(matches!(
        ga.recovery(ScratchCodes::Replace, TEST_KDF).unwrap(),
        ImportedRecovery::NewSet
    ));
}

#[test]
fn a_file_without_scratch_codes_leaves_the_user_without_recovery_codes() {
    let ga = parse_google_authenticator(&fixture("ga-totp-step60")).unwrap();
    assert_eq!(
        ga.recovery_plan(ScratchCodes::Keep).unwrap(),
        RecoveryPlan::NoneToCarry
    );
    assert!(matches!(
        ga.recovery(ScratchCodes::Keep, TEST_KDF).unwrap(),
        ImportedRecovery::Nothing
    ));
}

#[test]
fn a_scratch_code_listed_twice_is_carried_once() {
    let mut bytes = fixture("ga-totp");
    let first = scratch_lines(&bytes)[0].clone();
    bytes.extend_from_slice(format!("{first}\n").as_bytes());
    let ga = parse_google_authenticator(&bytes).unwrap();
    assert_eq!(ga.scratch_codes.len(), 6);
    assert_eq!(
        ga.recovery_plan(ScratchCodes::Keep).unwrap(),
        RecoveryPlan::Carry { count: 5 }
    );
    assert_eq!(carried(&bytes).remaining(), 5);
}

#[test]
fn scratch_codes_the_old_module_never_accepted_refuse_carrying_and_name_the_way_out() {
    // google-authenticator's PAM module reads a scratch code as a number
    // from 10000000 to 99999999 and stops at the first line that is not.
    for (line, digits, want) in [
        ("1234567", 7, "has 7 digits, not 8"),
        ("123456789", 9, "has 9 digits, not 8"),
        ("01234567", 8, "starts with 0"),
    ] {
        let mut bytes = fixture("ga-totp");
        bytes.extend_from_slice(format!("{line}\n").as_bytes());
        let ga = parse_google_authenticator(&bytes).unwrap();
        let err = ga.recovery_plan(ScratchCodes::Keep).unwrap_err();
        assert_eq!(err, ImportError::UnusableScratchCode { line: 11, digits });
        let text = err.to_string();
        assert!(text.contains("line 11") && text.contains(want), "{text}");
        assert!(text.contains("--new-recovery-codes"), "{text}");
        assert!(!text.contains(line), "the code is not repeated: {text}");
        assert_eq!(ga.recovery(ScratchCodes::Keep, TEST_KDF).unwrap_err(), err);
        // A new set instead imports the same file.
        assert_eq!(
            ga.recovery_plan(ScratchCodes::Replace).unwrap(),
            RecoveryPlan::NewSet
        );
    }
}

#[test]
fn more_scratch_codes_than_a_set_holds_are_refused() {
    let mut bytes = fixture("ga-totp-step60");
    for n in 0..65u32 {
        bytes.extend_from_slice(format!("{}\n", 10_000_000 + n * 7).as_bytes());
    }
    let ga = parse_google_authenticator(&bytes).unwrap();
    let err = ga.recovery_plan(ScratchCodes::Keep).unwrap_err();
    assert_eq!(err, ImportError::TooManyScratchCodes { count: 65 });
    assert!(err.to_string().contains("--new-recovery-codes"), "{err}");
}

#[test]
fn scratch_codes_never_show_in_debug_output() {
    let bytes = fixture("ga-totp");
    let ga = parse_google_authenticator(&bytes).unwrap();
    let debug = format!("{ga:?} {:?}", ga.scratch_codes);
    for code in scratch_lines(&bytes) {
        assert!(!debug.contains(&code), "{debug}");
    }
    let recovery = format!("{:?}", ga.recovery(ScratchCodes::Keep, TEST_KDF).unwrap());
    for code in scratch_lines(&bytes) {
        assert!(!recovery.contains(&code), "{recovery}");
    }
}

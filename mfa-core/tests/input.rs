//! Strict reading of what a user types at the verification prompt.

use mfa_core::input::{classify, parse_totp, Input, InvalidInput, MAX_INPUT_BYTES};
use mfa_core::recovery::CodeFormat;

const DIGITS: &[u8] = &[6];
const RECOVERY: Option<CodeFormat> = Some(CodeFormat::Base32);

fn reason(raw: &[u8]) -> InvalidInput {
    match classify(raw, DIGITS, RECOVERY) {
        Input::Invalid(reason) => reason,
        other => panic!("{raw:?} was accepted as {other:?}"),
    }
}

fn totp(raw: &[u8], digits: u8) -> String {
    match classify(raw, &[digits], RECOVERY) {
        Input::Totp(code) => code.as_str().to_owned(),
        other => panic!("{raw:?} is not a TOTP code: {other:?}"),
    }
}

fn recovery(raw: &[u8]) -> String {
    match classify(raw, DIGITS, RECOVERY) {
        Input::Recovery(candidate) => candidate.as_str().to_owned(),
        other => panic!("{raw:?} is not a recovery code: {other:?}"),
    }
}

#[test]
fn six_ascii_digits_are_a_totp_code() {
    assert_eq!(totp(b"123456", 6), "123456");
}

#[test]
fn leading_zeros_are_kept() {
    assert_eq!(totp(b"000123", 6), "000123");
    assert_eq!(totp(b"07081804", 8), "07081804");
}

#[test]
fn eight_digits_are_a_code_when_the_device_has_eight() {
    assert_eq!(totp(b"94287082", 8), "94287082");
    assert_eq!(reason(b"94287082"), InvalidInput::WrongLength);
}

#[test]
fn plus_sign_is_refused() {
    assert_eq!(reason(b"+123456"), InvalidInput::BadCharacters);
}

#[test]
fn minus_sign_is_refused() {
    assert!(matches!(
        classify(b"-123456", DIGITS, RECOVERY),
        Input::Invalid(_)
    ));
}

#[test]
fn leading_space_is_refused() {
    assert_eq!(reason(b" 123456"), InvalidInput::WrongLength);
}

#[test]
fn trailing_newline_is_refused() {
    assert_eq!(reason(b"123456\n"), InvalidInput::BadCharacters);
    assert_eq!(reason(b"123456\r\n"), InvalidInput::BadCharacters);
}

#[test]
fn tab_is_refused() {
    assert_eq!(reason(b"\t123456"), InvalidInput::BadCharacters);
}

#[test]
fn hex_is_refused() {
    assert!(matches!(
        classify(b"0x1e240", DIGITS, RECOVERY),
        Input::Invalid(_)
    ));
    assert!(matches!(
        classify(b"0x123456", DIGITS, RECOVERY),
        Input::Invalid(_)
    ));
}

#[test]
fn fullwidth_digits_are_refused() {
    assert_eq!(reason("１２３４５６".as_bytes()), InvalidInput::NonAscii);
}

#[test]
fn other_unicode_digits_are_refused() {
    // Arabic-Indic and Devanagari digits are digits to Unicode, not to us.
    assert_eq!(reason("١٢٣٤٥٦".as_bytes()), InvalidInput::NonAscii);
    assert_eq!(reason("१२३४५६".as_bytes()), InvalidInput::NonAscii);
}

#[test]
fn invalid_utf8_is_refused() {
    assert_eq!(reason(b"12345\xff"), InvalidInput::NonAscii);
}

#[test]
fn embedded_nul_is_refused() {
    assert_eq!(reason(b"123\x00456"), InvalidInput::ContainsNul);
    assert_eq!(reason(b"123456\x00"), InvalidInput::ContainsNul);
}

#[test]
fn empty_is_refused() {
    assert_eq!(reason(b""), InvalidInput::Empty);
}

#[test]
fn too_few_or_too_many_digits_are_refused() {
    assert_eq!(reason(b"12345"), InvalidInput::WrongLength);
    assert_eq!(reason(b"1234567"), InvalidInput::WrongLength);
}

#[test]
fn response_of_512_bytes_is_examined() {
    let raw = vec![b'1'; MAX_INPUT_BYTES];
    assert_eq!(reason(&raw), InvalidInput::WrongLength);
}

#[test]
fn response_of_513_bytes_is_refused_as_too_long() {
    let raw = vec![b'1'; MAX_INPUT_BYTES + 1];
    assert_eq!(reason(&raw), InvalidInput::TooLong);
}

#[test]
fn length_is_checked_before_anything_else() {
    // NUL and non-ASCII would be reported if anything looked before the bound.
    let mut raw = b"123456\x00\xff".to_vec();
    raw.resize(MAX_INPUT_BYTES + 1, b'x');
    assert_eq!(reason(&raw), InvalidInput::TooLong);
    assert_eq!(parse_totp(&raw, 6).unwrap_err(), InvalidInput::TooLong);
}

#[test]
fn one_megabyte_response_is_refused_as_too_long() {
    assert_eq!(reason(&vec![b'7'; 1 << 20]), InvalidInput::TooLong);
}

#[test]
fn grouped_recovery_code_is_recognised() {
    assert_eq!(recovery(b"7kq2-m9xd-4hfr"), "7kq2m9xd4hfr");
}

#[test]
fn recovery_code_in_upper_case_with_spaces_is_recognised() {
    assert_eq!(recovery(b"7KQ2 M9XD 4HFR"), "7kq2m9xd4hfr");
    assert_eq!(recovery(b"7KQ2M9XD4HFR"), "7kq2m9xd4hfr");
}

#[test]
fn recovery_code_with_o_i_l_is_read_as_zero_and_one() {
    assert_eq!(recovery(b"o1l2-i3o4-5678"), "011213045678");
    assert_eq!(recovery(b"O1L2-I3O4-5678"), "011213045678");
}

#[test]
fn recovery_code_with_u_is_refused() {
    assert_eq!(reason(b"7kq2-m9xd-4hfu"), InvalidInput::BadCharacters);
}

#[test]
fn recovery_code_of_wrong_length_is_refused() {
    // Shorter than any code pam_mfa makes, longer than any it makes.
    assert_eq!(reason(b"7kq2-m9xd-4"), InvalidInput::WrongLength);
    assert_eq!(
        reason(b"7kq2-m9xd-4hfr-7kq2-m9xd-4hfr-7kq2-m9xd-4"),
        InvalidInput::WrongLength
    );
}

#[test]
fn a_base32_code_of_any_length_a_set_may_have_is_a_candidate() {
    // Codes made before recovery.length changed keep working: the set's
    // hash decides, not today's configured length.
    assert_eq!(recovery(b"7kq2-m9xd-4h"), "7kq2m9xd4h");
    assert_eq!(recovery(b"7kq2-m9xd-4hfr-m9xd"), "7kq2m9xd4hfrm9xd");
}

#[test]
fn recovery_code_with_other_separators_is_refused() {
    assert_eq!(reason(b"7kq2_m9xd_4hfr"), InvalidInput::BadCharacters);
    assert_eq!(reason(b"7kq2.m9xd.4hfr"), InvalidInput::BadCharacters);
}

#[test]
fn digits_of_totp_length_are_never_a_base32_recovery_code() {
    assert!(matches!(
        classify(b"123456", &[6], RECOVERY),
        Input::Totp(_)
    ));
    assert!(matches!(
        classify(b"12345678", &[6, 8], RECOVERY),
        Input::Totp(_)
    ));
}

#[test]
fn each_device_length_is_a_totp_code() {
    // A 6-digit and an 8-digit device: both lengths are codes, 7 is not.
    assert!(matches!(
        classify(b"123456", &[6, 8], RECOVERY),
        Input::Totp(_)
    ));
    assert!(matches!(
        classify(b"12345678", &[6, 8], RECOVERY),
        Input::Totp(_)
    ));
    assert!(matches!(
        classify(b"1234567", &[6, 8], RECOVERY),
        Input::Invalid(InvalidInput::WrongLength)
    ));
}

#[test]
fn eight_digits_beside_imported_scratch_codes_are_either() {
    let scratch = Some(CodeFormat::Digits(8));
    assert!(matches!(
        classify(b"12345678", &[8], scratch),
        Input::Either(..)
    ));
    assert!(matches!(
        classify(b"12345678", &[6], scratch),
        Input::Recovery(_)
    ));
    assert!(matches!(
        classify(b"1234-5678", &[6], scratch),
        Input::Recovery(_)
    ));
    assert!(matches!(classify(b"123456", &[6], scratch), Input::Totp(_)));
}

#[test]
fn parse_totp_accepts_exact_digits() {
    assert_eq!(parse_totp(b"012345", 6).unwrap().as_bytes(), b"012345");
}

#[test]
fn parse_totp_refuses_a_recovery_code() {
    assert_eq!(
        parse_totp(b"7kq2-m9xd-4hfr", 6).unwrap_err(),
        InvalidInput::BadCharacters
    );
}

#[test]
fn parse_totp_refuses_wrong_length() {
    assert_eq!(
        parse_totp(b"12345", 6).unwrap_err(),
        InvalidInput::WrongLength
    );
    assert_eq!(
        parse_totp(b"1234567", 6).unwrap_err(),
        InvalidInput::WrongLength
    );
}

#[test]
fn parse_totp_refuses_every_malformed_form() {
    for (raw, why) in [
        (&b"+123456"[..], InvalidInput::BadCharacters),
        (b" 123456", InvalidInput::BadCharacters),
        (b"123456\n", InvalidInput::BadCharacters),
        (b"0x1234", InvalidInput::BadCharacters),
        ("１２３４５６".as_bytes(), InvalidInput::NonAscii),
        (b"123\x00456", InvalidInput::ContainsNul),
        (b"", InvalidInput::Empty),
    ] {
        assert_eq!(parse_totp(raw, 6).unwrap_err(), why, "{raw:?}");
    }
}

#[test]
fn debug_output_never_shows_the_code() {
    let Input::Totp(code) = classify(b"987654", DIGITS, RECOVERY) else {
        panic!("not a code");
    };
    assert!(!format!("{code:?}").contains("987654"));
    let Input::Recovery(candidate) = classify(b"7kq2-m9xd-4hfr", DIGITS, RECOVERY) else {
        panic!("not a recovery code");
    };
    assert!(!format!("{candidate:?}").contains("7kq2"));
}

#[test]
fn invalid_reasons_describe_the_problem_without_the_input() {
    assert_eq!(InvalidInput::Empty.to_string(), "empty response");
    assert_eq!(
        InvalidInput::TooLong.to_string(),
        "response longer than 512 bytes"
    );
    assert!(InvalidInput::ContainsNul.to_string().contains("NUL"));
}

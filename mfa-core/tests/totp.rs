//! TOTP and HOTP codes, verification windows and replay, secrets, base32 and the otpauth URI.

use mfa_core::input::{parse_totp, Code};
use mfa_core::totp::{
    base32_decode, base32_encode, code_at_step, generate_secret, grouped, otpauth_uri, time_step,
    verify, Algorithm, ParamsError, SecretError, TotpParams, Verdict, DEFAULT_SECRET_BYTES,
    MAX_SECRET_BYTES, MIN_SECRET_BYTES,
};

// RFC 6238 Appendix B seeds with the errata: the key length matches the hash.
const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

const RFC6238_TIMES: [u64; 6] = [
    59,
    1_111_111_109,
    1_111_111_111,
    1_234_567_890,
    2_000_000_000,
    20_000_000_000,
];

fn params(algorithm: Algorithm, digits: u8, period: u32) -> TotpParams {
    TotpParams {
        algorithm,
        digits,
        period,
    }
}

fn code_for(secret: &[u8], p: TotpParams, step: u64) -> Code {
    let text = code_at_step(secret, p, step);
    parse_totp(text.as_bytes(), p.digits).expect("generated code parses")
}

fn check_rfc6238(seed: &[u8], algorithm: Algorithm, expected: [&str; 6]) {
    let p = params(algorithm, 8, 30);
    for (t, want) in RFC6238_TIMES.iter().zip(expected) {
        let got = code_at_step(seed, p, time_step(*t, 30));
        assert_eq!(got.as_str(), want, "{algorithm:?} at t={t}");
    }
}

#[test]
fn rfc6238_appendix_b_sha1() {
    check_rfc6238(
        SEED_SHA1,
        Algorithm::Sha1,
        [
            "94287082", "07081804", "14050471", "89005924", "69279037", "65353130",
        ],
    );
}

#[test]
fn rfc6238_appendix_b_sha256() {
    check_rfc6238(
        SEED_SHA256,
        Algorithm::Sha256,
        [
            "46119246", "68084774", "67062674", "91819424", "90698825", "77737706",
        ],
    );
}

#[test]
fn rfc6238_appendix_b_sha512() {
    check_rfc6238(
        SEED_SHA512,
        Algorithm::Sha512,
        [
            "90693936", "25091201", "99943326", "93441116", "38618901", "47863826",
        ],
    );
}

#[test]
fn rfc4226_appendix_d_hotp_counters() {
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    let p = params(Algorithm::Sha1, 6, 1);
    for (counter, want) in (0u64..).zip(expected) {
        assert_eq!(code_at_step(SEED_SHA1, p, counter).as_str(), want);
    }
}

#[test]
fn code_keeps_leading_zeros() {
    let p = params(Algorithm::Sha1, 8, 30);
    let code = code_at_step(SEED_SHA1, p, time_step(1_111_111_109, 30));
    assert_eq!(code.as_str(), "07081804");
    assert_eq!(code.len(), 8);
}

#[test]
fn code_at_step_handles_the_largest_step() {
    let code = code_at_step(SEED_SHA1, TotpParams::default(), u64::MAX);
    assert_eq!(code.len(), 6);
}

#[test]
fn code_with_unsupported_digits_is_empty() {
    assert!(code_at_step(SEED_SHA1, params(Algorithm::Sha1, 10, 30), 1).is_empty());
    assert!(code_at_step(SEED_SHA1, params(Algorithm::Sha1, 0, 30), 1).is_empty());
}

#[test]
fn time_step_is_floor_of_unix_over_period() {
    assert_eq!(time_step(0, 30), 0);
    assert_eq!(time_step(29, 30), 0);
    assert_eq!(time_step(30, 30), 1);
    assert_eq!(time_step(59, 30), 1);
}

#[test]
fn time_step_is_64_bit_past_2038_and_2106() {
    assert_eq!(time_step(1 << 31, 30), 71_582_788);
    assert_eq!(time_step(20_000_000_000, 30), 666_666_666);
    assert_eq!(time_step(u64::MAX, 1), u64::MAX);
}

#[test]
fn time_step_with_zero_period_is_the_newest_step() {
    assert_eq!(time_step(1_000, 0), u64::MAX);
}

#[test]
fn default_params_are_sha1_six_digits_thirty_seconds() {
    assert_eq!(TotpParams::default(), params(Algorithm::Sha1, 6, 30));
    assert_eq!(TotpParams::default().validate(), Ok(()));
}

#[test]
fn params_outside_six_to_eight_digits_or_zero_period_are_invalid() {
    assert_eq!(
        params(Algorithm::Sha1, 5, 30).validate(),
        Err(ParamsError::Digits(5))
    );
    assert_eq!(
        params(Algorithm::Sha1, 9, 30).validate(),
        Err(ParamsError::Digits(9))
    );
    assert_eq!(
        params(Algorithm::Sha1, 6, 0).validate(),
        Err(ParamsError::ZeroPeriod)
    );
    assert_eq!(params(Algorithm::Sha512, 8, 60).validate(), Ok(()));
}

// --- verify ---------------------------------------------------------------

const NOW: u64 = 1_700_000_015;

fn step_now() -> u64 {
    time_step(NOW, 30)
}

fn verify_step(window: u8, step: u64, last_used: Option<u64>) -> Verdict {
    let p = TotpParams::default();
    verify(
        SEED_SHA1,
        p,
        window,
        NOW,
        last_used,
        &code_for(SEED_SHA1, p, step),
    )
}

#[test]
fn current_step_is_accepted() {
    let t = step_now();
    assert_eq!(verify_step(1, t, None), Verdict::Accepted { step: t });
}

#[test]
fn lower_window_edge_is_accepted() {
    let t = step_now();
    assert_eq!(
        verify_step(3, t - 3, None),
        Verdict::Accepted { step: t - 3 }
    );
}

#[test]
fn upper_window_edge_is_accepted() {
    let t = step_now();
    assert_eq!(
        verify_step(3, t + 3, None),
        Verdict::Accepted { step: t + 3 }
    );
}

#[test]
fn step_below_window_is_rejected() {
    assert_eq!(verify_step(3, step_now() - 4, None), Verdict::Rejected);
}

#[test]
fn step_above_window_is_rejected() {
    assert_eq!(verify_step(3, step_now() + 4, None), Verdict::Rejected);
}

#[test]
fn window_zero_accepts_only_the_current_step() {
    let t = step_now();
    assert_eq!(verify_step(0, t, None), Verdict::Accepted { step: t });
    assert_eq!(verify_step(0, t - 1, None), Verdict::Rejected);
    assert_eq!(verify_step(0, t + 1, None), Verdict::Rejected);
}

#[test]
fn code_reused_in_its_step_is_replayed() {
    let t = step_now();
    assert_eq!(verify_step(1, t, Some(t)), Verdict::Replayed { step: t });
}

#[test]
fn previous_step_after_current_is_replayed() {
    let t = step_now();
    assert_eq!(
        verify_step(1, t - 1, Some(t)),
        Verdict::Replayed { step: t - 1 }
    );
}

#[test]
fn strictly_newer_step_is_accepted_after_a_used_one() {
    let t = step_now();
    assert_eq!(
        verify_step(1, t, Some(t - 1)),
        Verdict::Accepted { step: t }
    );
    assert_eq!(
        verify_step(1, t + 1, Some(t)),
        Verdict::Accepted { step: t + 1 }
    );
}

#[test]
fn wrong_code_is_rejected() {
    let p = TotpParams::default();
    let right = code_at_step(SEED_SHA1, p, step_now());
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let code = parse_totp(wrong.as_bytes(), 6).unwrap();
    assert_eq!(verify(SEED_SHA1, p, 1, NOW, None, &code), Verdict::Rejected);
}

#[test]
fn code_from_another_secret_is_rejected() {
    let p = TotpParams::default();
    let other = b"another secret of 20b";
    let code = code_for(other, p, step_now());
    // A different secret can collide by chance; this pair is known not to.
    assert_ne!(
        code_at_step(SEED_SHA1, p, step_now()).as_str(),
        code.as_str()
    );
    assert_eq!(verify(SEED_SHA1, p, 0, NOW, None, &code), Verdict::Rejected);
}

#[test]
fn step_zero_is_accepted_and_window_saturates_at_zero() {
    let p = TotpParams::default();
    let code = code_for(SEED_SHA1, p, 0);
    assert_eq!(
        verify(SEED_SHA1, p, 2, 5, None, &code),
        Verdict::Accepted { step: 0 }
    );
    let next = code_for(SEED_SHA1, p, 1);
    assert_eq!(
        verify(SEED_SHA1, p, 1, 0, None, &next),
        Verdict::Accepted { step: 1 }
    );
}

#[test]
fn clock_at_2_pow_31_is_accepted() {
    let p = TotpParams::default();
    let now = 1u64 << 31;
    let t = time_step(now, 30);
    let code = code_for(SEED_SHA1, p, t);
    assert_eq!(
        verify(SEED_SHA1, p, 1, now, Some(t - 1), &code),
        Verdict::Accepted { step: t }
    );
}

#[test]
fn clock_at_20000000000_with_eight_digit_sha512_rfc_code_is_accepted() {
    let p = params(Algorithm::Sha512, 8, 30);
    let code = parse_totp(b"47863826", 8).unwrap();
    assert_eq!(
        verify(SEED_SHA512, p, 1, 20_000_000_000, None, &code),
        Verdict::Accepted { step: 666_666_666 }
    );
}

#[test]
fn eight_digit_rfc_code_with_leading_zero_is_accepted() {
    let p = params(Algorithm::Sha1, 8, 30);
    let code = parse_totp(b"07081804", 8).unwrap();
    assert_eq!(
        verify(SEED_SHA1, p, 0, 1_111_111_109, None, &code),
        Verdict::Accepted { step: 37_037_036 }
    );
}

#[test]
fn six_digit_code_is_rejected_when_device_has_eight() {
    let p8 = params(Algorithm::Sha1, 8, 30);
    let full = code_at_step(SEED_SHA1, p8, step_now());
    // The last six digits are what a 6-digit device would show for this step.
    let short = parse_totp(&full.as_bytes()[2..], 6).unwrap();
    assert_eq!(
        verify(SEED_SHA1, p8, 1, NOW, None, &short),
        Verdict::Rejected
    );
}

#[test]
fn invalid_params_reject_every_code() {
    let code = code_for(SEED_SHA1, TotpParams::default(), step_now());
    let zero_period = params(Algorithm::Sha1, 6, 0);
    assert_eq!(
        verify(SEED_SHA1, zero_period, 1, NOW, None, &code),
        Verdict::Rejected
    );
    let code9 = parse_totp(b"123456789", 9).unwrap();
    assert_eq!(
        verify(
            SEED_SHA1,
            params(Algorithm::Sha1, 9, 30),
            255,
            NOW,
            None,
            &code9
        ),
        Verdict::Rejected
    );
}

/// Finds two steps less than `span` apart that share a 6-digit code.
fn colliding_steps(span: u64) -> (u64, u64) {
    let p = params(Algorithm::Sha1, 6, 1);
    let mut seen = std::collections::HashMap::new();
    for step in 0..200_000u64 {
        let code = code_at_step(SEED_SHA1, p, step).to_string();
        if let Some(&earlier) = seen.get(&code) {
            if step - earlier < span {
                return (earlier, step);
            }
        }
        seen.insert(code, step);
    }
    panic!("no collision found");
}

#[test]
fn newest_matching_step_wins_when_several_match() {
    let p = params(Algorithm::Sha1, 6, 1);
    let (older, newer) = colliding_steps(500);
    let now = older + (newer - older) / 2;
    let code = code_for(SEED_SHA1, p, older);
    assert_eq!(
        verify(SEED_SHA1, p, 255, now, None, &code),
        Verdict::Accepted { step: newer }
    );
    assert_eq!(
        verify(SEED_SHA1, p, 255, now, Some(older), &code),
        Verdict::Accepted { step: newer }
    );
    assert_eq!(
        verify(SEED_SHA1, p, 255, now, Some(newer), &code),
        Verdict::Replayed { step: newer }
    );
}

// --- secrets and base32 -----------------------------------------------------

#[test]
fn generated_secret_is_160_bits_and_fresh() {
    let a = generate_secret().unwrap();
    let b = generate_secret().unwrap();
    assert_eq!(DEFAULT_SECRET_BYTES, 20);
    assert_eq!(a.len(), 20);
    assert_ne!(*a, *b);
}

#[test]
fn base32_encodes_known_vector() {
    assert_eq!(
        base32_encode(b"Hello!\xde\xad\xbe\xef").as_str(),
        "JBSWY3DPEHPK3PXP"
    );
    assert_eq!(
        base32_encode(SEED_SHA1).as_str(),
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    );
}

#[test]
fn base32_encodes_rfc4648_vectors_without_padding() {
    let cases: [(&[u8], &str); 7] = [
        (b"", ""),
        (b"f", "MY"),
        (b"fo", "MZXQ"),
        (b"foo", "MZXW6"),
        (b"foob", "MZXW6YQ"),
        (b"fooba", "MZXW6YTB"),
        (b"foobar", "MZXW6YTBOI"),
    ];
    for (raw, b32) in cases {
        assert_eq!(base32_encode(raw).as_str(), b32);
    }
}

#[test]
fn base32_decodes_known_vector() {
    let twice = base32_decode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
    assert_eq!(
        twice.as_slice(),
        b"Hello!\xde\xad\xbe\xefHello!\xde\xad\xbe\xef"
    );
    let seed = base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    assert_eq!(seed.as_slice(), SEED_SHA1);
}

#[test]
fn base32_roundtrips_every_length_from_minimum_to_maximum() {
    for len in MIN_SECRET_BYTES..=MAX_SECRET_BYTES {
        let raw: Vec<u8> = (0..len)
            .map(|i| u8::try_from((i * 37 + len) % 256).unwrap())
            .collect();
        let decoded = base32_decode(&base32_encode(&raw)).unwrap();
        assert_eq!(decoded.as_slice(), raw.as_slice(), "length {len}");
    }
}

#[test]
fn base32_roundtrips_a_generated_secret() {
    let secret = generate_secret().unwrap();
    let decoded = base32_decode(&base32_encode(&secret)).unwrap();
    assert_eq!(*decoded, *secret);
}

#[test]
fn base32_decode_accepts_lowercase_spaces_and_dashes() {
    let seed = base32_decode("gezd-gnbv gy3t-qojq gezd gnbv-gy3t qojq").unwrap();
    assert_eq!(seed.as_slice(), SEED_SHA1);
}

#[test]
fn base32_decode_accepts_padding_at_the_end() {
    // 16 bytes are 26 characters, padded with six '='.
    let raw = [0xa5u8; 16];
    let text = format!("{}======", base32_encode(&raw).as_str());
    assert_eq!(base32_decode(&text).unwrap().as_slice(), raw);
}

#[test]
fn base32_decode_refuses_padding_in_the_middle() {
    assert_eq!(
        base32_decode("GEZDGNBV=GY3TQOJQGEZDGNBVGY3TQOJQ"),
        Err(SecretError::MisplacedPadding)
    );
}

#[test]
fn base32_decode_refuses_wrong_amount_of_padding() {
    let text = format!("{}=", base32_encode(&[0xa5u8; 16]).as_str());
    assert_eq!(
        base32_decode(&text),
        Err(SecretError::BadLength { characters: 26 })
    );
    assert_eq!(
        base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ========"),
        Err(SecretError::BadLength { characters: 32 })
    );
}

#[test]
fn base32_decode_refuses_characters_outside_the_alphabet() {
    for (text, position) in [
        ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ0", 32),
        ("1EZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1),
        ("GEZDGNBVGY3TQOJQ8EZDGNBVGY3TQOJQ", 17),
        ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ9", 32),
        ("GEZD_GNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 5),
        ("GEZD\tGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 5),
        ("GEZDÉGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 5),
    ] {
        assert_eq!(
            base32_decode(text),
            Err(SecretError::InvalidCharacter { position }),
            "{text}"
        );
    }
}

#[test]
fn base32_decode_refuses_a_character_that_makes_no_byte() {
    // 33 characters: the last one carries only 5 bits of a byte.
    assert_eq!(
        base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQA"),
        Err(SecretError::BadLength { characters: 33 })
    );
}

#[test]
fn base32_decode_refuses_secrets_under_128_bits() {
    let err = base32_decode("JBSWY3DPEHPK3PXP").unwrap_err();
    assert_eq!(err, SecretError::TooShort { bits: 80 });
    assert!(err.to_string().contains("128 bits"));
    assert_eq!(
        base32_decode(&base32_encode(&[7u8; 15])),
        Err(SecretError::TooShort { bits: 120 })
    );
    assert_eq!(base32_decode(""), Err(SecretError::TooShort { bits: 0 }));
}

#[test]
fn base32_decode_refuses_secrets_over_the_maximum() {
    let text = base32_encode(&[7u8; MAX_SECRET_BYTES + 1]);
    assert!(matches!(
        base32_decode(&text),
        Err(SecretError::TooLong { .. })
    ));
}

#[test]
fn secret_errors_tell_the_admin_what_to_do() {
    let msg = SecretError::InvalidCharacter { position: 3 }.to_string();
    assert!(msg.contains("character 3"));
    assert!(msg.contains("copy the secret again"));
}

#[test]
fn grouped_splits_into_fours_with_spaces() {
    assert_eq!(grouped("JBSWY3DPEHPK3PXP").as_str(), "JBSW Y3DP EHPK 3PXP");
    assert_eq!(grouped("ABCDEF").as_str(), "ABCD EF");
    assert_eq!(grouped("").as_str(), "");
}

// --- otpauth URI ------------------------------------------------------------

#[test]
fn otpauth_uri_for_default_params_is_exact() {
    let uri = otpauth_uri(
        SEED_SHA1,
        TotpParams::default(),
        "Example Corp",
        "alice@example.com",
    );
    assert_eq!(
        uri.as_str(),
        "otpauth://totp/Example%20Corp:alice%40example.com\
         ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Corp\
         &algorithm=SHA1&digits=6&period=30"
    );
}

#[test]
fn otpauth_uri_carries_algorithm_digits_and_period() {
    let uri = otpauth_uri(SEED_SHA1, params(Algorithm::Sha256, 8, 60), "host1", "bob");
    assert_eq!(
        uri.as_str(),
        "otpauth://totp/host1:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
         &issuer=host1&algorithm=SHA256&digits=8&period=60"
    );
}

#[test]
fn otpauth_uri_percent_encodes_reserved_and_non_ascii_characters() {
    let uri = otpauth_uri(SEED_SHA1, TotpParams::default(), "A&B:C/é", "x?y#z+ _.~-");
    assert_eq!(
        uri.as_str(),
        "otpauth://totp/A%26B%3AC%2F%C3%A9:x%3Fy%23z%2B%20_.~-\
         ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=A%26B%3AC%2F%C3%A9\
         &algorithm=SHA1&digits=6&period=30"
    );
}

#[test]
fn otpauth_uri_without_issuer_labels_with_the_account_alone() {
    let uri = otpauth_uri(SEED_SHA1, TotpParams::default(), "", "alice");
    assert_eq!(
        uri.as_str(),
        "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
         &algorithm=SHA1&digits=6&period=30"
    );
}

#[test]
fn algorithm_names_match_the_uri_format() {
    assert_eq!(Algorithm::Sha1.as_str(), "SHA1");
    assert_eq!(Algorithm::Sha256.as_str(), "SHA256");
    assert_eq!(Algorithm::Sha512.as_str(), "SHA512");
}

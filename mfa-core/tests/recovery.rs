//! Recovery codes: generation, normalization, Argon2id storage and single use.

use std::collections::HashSet;

use mfa_core::recovery::{
    generate, normalize, CodeFormat, KdfParams, RecoveryCode, RecoveryError, RecoveryHashes,
    ALPHABET, DEFAULT_COUNT, DEFAULT_LENGTH, MAX_CODES,
};

/// Argon2id at its cheapest, so the suite stays fast; one test uses the defaults.
const FAST: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn fast_set(count: u8) -> (Vec<RecoveryCode>, RecoveryHashes) {
    generate(count, DEFAULT_LENGTH, FAST).expect("generate")
}

fn find(hashes: &RecoveryHashes, typed: &str) -> Option<usize> {
    let candidate = normalize(typed.as_bytes(), DEFAULT_LENGTH).expect("normalizes");
    hashes.find(&candidate).expect("find")
}

fn is_grouped_code(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 3
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| ALPHABET.contains(&b)))
}

#[test]
fn generate_gives_count_distinct_codes_in_groups_of_four() {
    let (codes, hashes) = fast_set(DEFAULT_COUNT);
    assert_eq!(codes.len(), usize::from(DEFAULT_COUNT));
    assert_eq!(hashes.remaining(), usize::from(DEFAULT_COUNT));
    for code in &codes {
        assert!(is_grouped_code(code.display()), "{}", code.display());
        assert_eq!(code.as_str(), code.display());
    }
    let distinct: HashSet<&str> = codes.iter().map(RecoveryCode::as_str).collect();
    assert_eq!(distinct.len(), codes.len());
}

#[test]
fn alphabet_has_no_i_l_o_u() {
    assert_eq!(ALPHABET.len(), 32);
    for b in b"ilou" {
        assert!(!ALPHABET.contains(b));
    }
}

#[test]
fn each_code_is_found_at_its_own_index() {
    let (codes, hashes) = fast_set(DEFAULT_COUNT);
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(find(&hashes, code.display()), Some(i));
    }
}

#[test]
fn removed_code_is_not_found_again() {
    let (codes, mut hashes) = fast_set(3);
    let index = find(&hashes, codes[1].display()).unwrap();
    assert!(hashes.remove(index));
    assert_eq!(hashes.remaining(), 2);
    assert_eq!(find(&hashes, codes[1].display()), None);
    // The others still work, at their new places.
    assert_eq!(find(&hashes, codes[0].display()), Some(0));
    assert_eq!(find(&hashes, codes[2].display()), Some(1));
}

#[test]
fn every_code_can_be_used_once_until_none_remain() {
    let (codes, mut hashes) = fast_set(4);
    for code in &codes {
        let index = find(&hashes, code.display()).unwrap();
        assert!(hashes.remove(index));
        assert_eq!(find(&hashes, code.display()), None);
    }
    assert_eq!(hashes.remaining(), 0);
}

#[test]
fn remove_out_of_range_changes_nothing() {
    let (_, mut hashes) = fast_set(2);
    assert!(!hashes.remove(2));
    assert_eq!(hashes.remaining(), 2);
}

#[test]
fn wrong_code_is_not_found() {
    let (codes, hashes) = fast_set(DEFAULT_COUNT);
    let wrong = "zzzz-zzzz-zzzz";
    assert!(codes.iter().all(|c| c.display() != wrong));
    assert_eq!(find(&hashes, wrong), None);
}

#[test]
fn code_from_another_set_is_not_found() {
    let (codes, _) = fast_set(1);
    let (_, other) = fast_set(DEFAULT_COUNT);
    assert_eq!(find(&other, codes[0].display()), None);
}

#[test]
fn salt_differs_between_sets() {
    let (_, a) = fast_set(1);
    let (_, b) = fast_set(1);
    assert_ne!(a.salt(), b.salt());
}

#[test]
fn typing_variants_of_one_code_all_match() {
    let (codes, hashes) = fast_set(2);
    let shown = codes[0].display();
    let variants = [
        shown.to_owned(),
        shown.to_uppercase(),
        shown.replace('-', ""),
        shown.replace('-', " "),
        shown.replace('-', " - "),
        format!(" {} ", shown.to_uppercase().replace('-', "  ")),
    ];
    for typed in &variants {
        assert_eq!(find(&hashes, typed), Some(0), "{typed:?}");
    }
}

#[test]
fn o_i_l_typed_for_zero_and_one_match() {
    // Find a code that has a 0 or 1 in it; nearly every set does.
    let (code, hashes, index) = loop {
        let (codes, hashes) = fast_set(DEFAULT_COUNT);
        if let Some(i) = codes.iter().position(|c| c.display().contains(['0', '1'])) {
            break (codes[i].display().to_owned(), hashes, i);
        }
    };
    for typed in [
        code.replace('0', "o").replace('1', "l"),
        code.replace('0', "O").replace('1', "I"),
        code.replace('1', "i").replace('0', "o").to_uppercase(),
    ] {
        assert_ne!(typed, code);
        assert_eq!(find(&hashes, &typed), Some(index), "{typed:?}");
    }
}

#[test]
fn normalize_maps_case_separators_and_crockford_letters() {
    let c = normalize(b"O1L2-i3o4 ABCD", 12).unwrap();
    assert_eq!(c.as_str(), "01121304abcd");
    assert_eq!(c.as_bytes(), b"01121304abcd");
}

#[test]
fn normalize_refuses_u_and_other_characters() {
    for raw in [
        &b"7kq2-m9xd-4hfu"[..],
        b"7kq2_m9xd_4hfr",
        b"7kq2\tm9xd4hfr",
        b"7kq2-m9xd-4hfr\n",
        "7kq2-m9xd-4hfé".as_bytes(),
        b"7kq2-m9xd-4hf\x00",
    ] {
        assert!(normalize(raw, 12).is_none(), "{raw:?}");
    }
}

#[test]
fn normalize_refuses_wrong_length() {
    assert!(normalize(b"7kq2-m9xd-4hf", 12).is_none());
    assert!(normalize(b"7kq2-m9xd-4hfrr", 12).is_none());
    assert!(normalize(b"", 12).is_none());
    assert!(normalize(b"----", 12).is_none());
}

#[test]
fn normalize_refuses_lengths_outside_the_supported_range() {
    assert!(normalize(b"7kq2m9xd4", 9).is_none());
    assert!(normalize(&[b'a'; 33], 33).is_none());
    assert!(normalize(b"", 0).is_none());
}

#[test]
fn default_kdf_params_are_the_measured_choice_and_work() {
    // docs/benchmarks.md, "Recovery-code KDF cost": 8 MiB, 2 passes.
    let params = KdfParams::default();
    assert_eq!(
        params,
        KdfParams {
            memory_kib: 8_192,
            iterations: 2,
            parallelism: 1,
        }
    );
    let (codes, hashes) = generate(2, DEFAULT_LENGTH, params).unwrap();
    assert_eq!(hashes.params(), params);
    assert_eq!(find(&hashes, codes[1].display()), Some(1));
}

#[test]
fn longer_codes_use_more_groups() {
    let (codes, hashes) = generate(1, 16, FAST).unwrap();
    let shown = codes[0].display();
    assert_eq!(shown.len(), 19);
    assert_eq!(shown.matches('-').count(), 3);
    let candidate = normalize(shown.as_bytes(), 16).unwrap();
    assert_eq!(hashes.find(&candidate).unwrap(), Some(0));
}

#[test]
fn set_rebuilt_from_its_parts_still_finds_codes() {
    let (codes, hashes) = fast_set(3);
    let rebuilt = RecoveryHashes::from_parts(
        CodeFormat::Base32,
        *hashes.salt(),
        hashes.params(),
        hashes.hashes().to_vec(),
    )
    .unwrap();
    assert_eq!(rebuilt, hashes);
    assert_eq!(find(&rebuilt, codes[2].display()), Some(2));
}

#[test]
fn set_with_no_codes_left_is_valid_and_finds_nothing() {
    let empty = RecoveryHashes::from_parts(CodeFormat::Base32, [1; 16], FAST, Vec::new()).unwrap();
    assert_eq!(empty.remaining(), 0);
    assert_eq!(find(&empty, "7kq2-m9xd-4hfr"), None);
}

#[test]
fn from_parts_refuses_kdf_params_out_of_range() {
    let cases = [
        (
            "memory_kib",
            KdfParams {
                memory_kib: 7,
                ..FAST
            },
        ),
        (
            "memory_kib",
            KdfParams {
                memory_kib: 1_048_577,
                ..FAST
            },
        ),
        (
            "iterations",
            KdfParams {
                iterations: 0,
                ..FAST
            },
        ),
        (
            "iterations",
            KdfParams {
                iterations: 17,
                ..FAST
            },
        ),
        (
            "parallelism",
            KdfParams {
                parallelism: 0,
                ..FAST
            },
        ),
        (
            "parallelism",
            KdfParams {
                parallelism: 9,
                ..FAST
            },
        ),
        // Argon2 needs 8 KiB per lane.
        (
            "memory_kib",
            KdfParams {
                memory_kib: 32,
                iterations: 1,
                parallelism: 8,
            },
        ),
    ];
    for (name, params) in cases {
        match RecoveryHashes::from_parts(CodeFormat::Base32, [0; 16], params, Vec::new()) {
            Err(RecoveryError::BadKdfParams { setting, .. }) => assert_eq!(setting, name),
            other => panic!("{params:?} gave {other:?}"),
        }
    }
}

#[test]
fn kdf_bounds_themselves_are_accepted() {
    for params in [
        KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        },
        KdfParams {
            memory_kib: 1_048_576,
            iterations: 16,
            parallelism: 8,
        },
    ] {
        assert_eq!(params.validate(), Ok(()));
    }
}

#[test]
fn from_parts_refuses_more_than_64_hashes() {
    let hashes: Vec<[u8; 32]> = (0..=MAX_CODES)
        .map(|i| [u8::try_from(i).unwrap(); 32])
        .collect();
    assert_eq!(
        RecoveryHashes::from_parts(CodeFormat::Base32, [0; 16], FAST, hashes),
        Err(RecoveryError::BadCount(65))
    );
}

#[test]
fn from_parts_refuses_a_repeated_hash() {
    assert_eq!(
        RecoveryHashes::from_parts(
            CodeFormat::Base32,
            [0; 16],
            FAST,
            vec![[1; 32], [2; 32], [1; 32]]
        ),
        Err(RecoveryError::DuplicateHash)
    );
}

#[test]
fn generate_refuses_zero_or_too_many_codes() {
    assert_eq!(
        generate(0, DEFAULT_LENGTH, FAST).unwrap_err(),
        RecoveryError::BadCount(0)
    );
    assert_eq!(
        generate(65, DEFAULT_LENGTH, FAST).unwrap_err(),
        RecoveryError::BadCount(65)
    );
}

#[test]
fn generate_refuses_lengths_outside_the_supported_range() {
    assert_eq!(
        generate(1, 9, FAST).unwrap_err(),
        RecoveryError::BadLength(9)
    );
    assert_eq!(
        generate(1, 33, FAST).unwrap_err(),
        RecoveryError::BadLength(33)
    );
}

#[test]
fn generate_refuses_bad_kdf_params() {
    let bad = KdfParams {
        iterations: 0,
        ..FAST
    };
    assert!(matches!(
        generate(1, DEFAULT_LENGTH, bad),
        Err(RecoveryError::BadKdfParams {
            setting: "iterations",
            ..
        })
    ));
}

#[test]
fn errors_tell_the_admin_what_to_do() {
    let msg = RecoveryError::BadKdfParams {
        setting: "iterations",
        value: 0,
        min: 1,
        max: 16,
    }
    .to_string();
    assert!(msg.contains("iterations = 0"));
    assert!(msg.contains("1..=16"));
    assert!(RecoveryError::BadLength(9).to_string().contains("10 to 32"));
}

#[test]
fn debug_output_never_shows_codes_or_hashes() {
    let (codes, hashes) = fast_set(1);
    let shown = codes[0].display();
    assert!(!format!("{:?}", codes[0]).contains(shown));
    let candidate = normalize(shown.as_bytes(), DEFAULT_LENGTH).unwrap();
    assert!(!format!("{candidate:?}").contains(candidate.as_str()));
    let debug = format!("{hashes:?}");
    assert!(debug.contains("remaining: 1"));
    assert!(!debug.contains(&format!("{:?}", hashes.hashes()[0])));
}

//! Codes agree with oathtool, an independent TOTP implementation, for fresh
//! random secrets of every algorithm, length and period pam_mfa supports.

use std::process::Command;

use mfa_core::input::parse_totp;
use mfa_core::totp::{
    base32_encode, code_at_step, generate_secret, time_step, verify, Algorithm, TotpParams, Verdict,
};

fn oathtool(secret_b32: &str, params: TotpParams, unix: u64) -> String {
    let mode = match params.algorithm {
        Algorithm::Sha1 => "sha1",
        Algorithm::Sha256 => "sha256",
        Algorithm::Sha512 => "sha512",
    };
    let out = Command::new("oathtool")
        .args([
            &format!("--totp={mode}"),
            "--base32",
            "-d",
            &params.digits.to_string(),
            "-s",
            &format!("{}s", params.period),
            "-N",
            &format!("@{unix}"),
            secret_b32,
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

#[test]
fn generated_secrets_give_the_same_codes_as_oathtool() {
    let times = [
        59,
        1_111_111_109,
        1_764_150_000,
        2_147_483_647,
        20_000_000_000,
    ];
    for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        for digits in [6, 8] {
            for period in [30, 60] {
                let params = TotpParams {
                    algorithm,
                    digits,
                    period,
                };
                let secret = generate_secret().unwrap();
                let b32 = base32_encode(&secret);
                for unix in times {
                    let theirs = oathtool(&b32, params, unix);
                    let ours = code_at_step(&secret, params, time_step(unix, period));
                    assert_eq!(*ours, theirs, "{params:?} at {unix}");
                    let code = parse_totp(theirs.as_bytes(), digits).unwrap();
                    assert_eq!(
                        verify(&secret, params, 1, unix, None, &code),
                        Verdict::Accepted {
                            step: time_step(unix, period)
                        },
                        "{params:?} at {unix}"
                    );
                }
            }
        }
    }
}

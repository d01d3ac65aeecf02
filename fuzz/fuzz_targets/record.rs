#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pam_mfa_fuzz::record(data));

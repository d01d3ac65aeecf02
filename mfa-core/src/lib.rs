//! The decisions behind `pam_mfa.so` and `mfa-enroll`.
//!
//! This crate holds everything that decides: the configuration and policy,
//! TOTP and recovery-code verification, the master key and the keys derived
//! from it, and the encrypted per-user record store. It never talks to PAM,
//! never reads the real clock on its own and keeps no process-wide state; the
//! two shells (the PAM module and the CLI) hand it a [`clock::Clock`] and turn
//! its typed results into return codes, syslog lines and terminal output.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod audit;
pub mod bulk;
pub mod clock;
pub mod codec;
pub mod config;
pub mod doctor;
pub mod enrollment;
pub mod flow;
pub mod fsutil;
pub mod import;
pub mod input;
pub mod keys;
pub mod pamd;
pub mod pending;
pub mod policy;
pub mod qr;
pub mod random;
pub mod record;
pub mod recovery;
pub mod spool;
pub mod store;
pub mod text;
pub mod throttle;
pub mod totp;

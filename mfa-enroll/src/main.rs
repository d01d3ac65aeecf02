//! `mfa-enroll`: enroll and administer pam_mfa users.
//!
//! A thin shell over `mfa_core::admin`: this crate parses arguments, looks
//! up user names, prints text or JSON and writes audit lines. Every decision
//! about a user's record is made in mfa-core.
//!
//! Layout: [`cli`] defines the command line; `main` parses it and hands
//! each command to its module (enroll, users, keys, store, import,
//! approve, doctor, selfservice, docs); those share [`context`] (who the user is,
//! loading the config, key and store, the audit log, output) and [`render`]
//! (text, JSON and audit events), and never import each other.
//!
//! Exit status: 0 success; 1 the operation failed (configuration, master
//! key, record store or I/O); 2 usage error (bad arguments, unknown user);
//! 3 not permitted (must run as root); 4 refused (the key already exists,
//! the user is already enrolled or not enrolled, or the verification code
//! was wrong).
#![forbid(unsafe_code)]

mod approve;
mod cli;
mod context;
mod docs;
mod doctor;
mod enroll;
mod error;
mod import;
mod keys;
mod render;
mod selfservice;
mod store;
mod users;

use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command, ImportCommand, KeyCommand, StoreCommand};
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Hands the parsed command line to the command's module.
fn run(cli: &Cli) -> Result<(), CliError> {
    let config_path = cli.config.as_path();
    let mut out = io::stdout().lock();
    let Some(command) = &cli.command else {
        return selfservice::enroll(config_path, None, None, &mut out);
    };
    match command {
        Command::Enroll(args) if args.users_from.is_some() => {
            enroll::enroll_many(config_path, args, &mut out)
        }
        Command::Enroll(args) => match args.target.target() {
            Some(target) => enroll::enroll(config_path, args, &target, &mut out),
            None => selfservice::enroll(
                config_path,
                args.device.as_deref(),
                args.qr.map(Into::into),
                &mut out,
            ),
        },
        Command::Status(args) => users::status(config_path, args, &mut out),
        Command::Reset(target) => users::reset(config_path, target, &mut out),
        Command::Unlock(target) => users::unlock(config_path, target, &mut out),
        Command::List(args) => users::list(config_path, args, &mut out),
        Command::Devices(args) => users::devices(config_path, args, &mut out),
        Command::RemoveDevice(args) => users::remove_device(config_path, args, &mut out),
        Command::RecoveryCodes(args) => match args.target.target() {
            Some(target) => users::recovery_codes(config_path, args, &target, &mut out),
            None if args.regenerate && !nix::unistd::geteuid().is_root() => {
                selfservice::regenerate_codes(config_path, &mut out)
            }
            None => Err(CliError::NeedsUser {
                root_command: "recovery-codes --user NAME --regenerate",
                user_command: "recovery-codes --regenerate",
            }),
        },
        Command::Key(KeyCommand::Init) => keys::init(config_path, &mut out),
        Command::Key(KeyCommand::Rotate) => keys::rotate(config_path, &mut out),
        Command::Key(KeyCommand::List(args)) => keys::list(config_path, args, &mut out),
        Command::Key(KeyCommand::Migrate) => keys::migrate(config_path, &mut out),
        Command::Key(KeyCommand::Retire(args)) => keys::retire(config_path, args, &mut out),
        Command::Store(StoreCommand::Init(args)) => store::init(config_path, args, &mut out),
        Command::Store(StoreCommand::Migrate(args)) => store::migrate(config_path, args, &mut out),
        Command::Import(ImportCommand::GoogleAuthenticator(args)) => {
            import::google_authenticator(config_path, args, &mut out)
        }
        Command::Import(ImportCommand::Oath(args)) => import::oath(config_path, args, &mut out),
        Command::Approve(args) => approve::approve(config_path, args, &mut out),
        Command::Doctor(args) => doctor::doctor(config_path, args, &mut out),
        Command::GenerateDocs(args) => docs::generate(&args.out, &mut out),
    }
}

fn report(e: &CliError) {
    // Messages echo names, paths and spool file names that users chose;
    // escaping the whole message covers every one of them.
    let message = mfa_core::text::escape(&e.to_string()).into_owned();
    // Nothing sensible is left to do if stderr is gone.
    let _ = writeln!(io::stderr(), "mfa-enroll: {message}");
}

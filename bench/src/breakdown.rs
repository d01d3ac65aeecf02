//! pam_mfa's login path step by step, timed in this process through the
//! same mfa-core calls the module makes, in the order it makes them. These
//! are warm numbers (code and data already in this process); the module,
//! loaded afresh by every `pam_start`, also pays for mapping its code.

use std::path::Path;
use std::time::Instant;

use mfa_core::audit::{self, Event, EventKind, Method};
use mfa_core::config::{parse_module_args, Config};
use mfa_core::flow::Host;
use mfa_core::fsutil::FileTrust;
use mfa_core::input;
use mfa_core::spool;
use mfa_core::totp;
use nix::unistd::User;
use serde::{Deserialize, Serialize};

use crate::codes;
use crate::population::{self, Layout, Seed};
use crate::stats::Summary;

/// One step and what it cost per login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What the module does.
    pub what: String,
    /// How many times it does it per successful login.
    pub per_login: u32,
    /// One call.
    pub time: Summary,
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn timed<T>(samples: &mut Vec<u64>, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    samples.push(elapsed_ns(start));
    out
}

/// Times each step for each of `users` (1-based indexes, enrolled).
///
/// # Errors
/// Any step that fails.
pub fn measure(layout: &Layout, seed: &Seed, users: &[u32]) -> Result<Vec<Step>, String> {
    let config_arg = format!("config={}", layout.config().display());
    let mut t: [Vec<u64>; 9] = Default::default();
    for &i in users {
        let name = population::user_name(i);
        let uid = population::uid(i);
        let config = timed(&mut t[0], || {
            let args = parse_module_args(&[config_arg.as_str()]).map_err(|e| e.to_string())?;
            Config::load(args.config_path(), FileTrust::ROOT, &args.overrides)
                .map_err(|e| e.to_string())
        })?;
        let hostname = timed(&mut t[1], || {
            nix::unistd::gethostname().map_err(|e| e.to_string())
        })?;
        let host = timed(&mut t[2], || {
            Host::open(config, FileTrust::ROOT, &hostname.to_string_lossy())
                .map_err(|e| e.to_string())
        })?;
        let account = timed(&mut t[3], || User::from_name(&name));
        if !matches!(account, Ok(Some(_))) {
            return Err(format!("{name} is not in the name service"));
        }
        let state = timed(&mut t[4], || host.store.open_user(uid, &host.keys))
            .map_err(|e| e.to_string())?;
        let mut record = state.record().cloned().ok_or("not enrolled")?;
        drop(state);
        timed(&mut t[5], || {
            spool::find(
                &host.config.paths.spool_dir,
                uid,
                &host.keys,
                FileTrust::ROOT,
                86_400,
                codes::unix_now(),
            )
        })
        .map_err(|e| e.to_string())?;
        let now = codes::unix_now();
        let secret = seed.secret(i);
        let code = input::parse_totp(codes::code_at(&secret, codes::step_of(now)).as_bytes(), 6)
            .map_err(|e| format!("{e:?}"))?;
        let device = &record.devices[0];
        let verdict = timed(&mut t[6], || {
            totp::verify(&device.secret, device.params, 1, now, Some(u64::MAX), &code)
        });
        if !matches!(verdict, totp::Verdict::Replayed { .. }) {
            return Err(format!("{name}: the code did not verify: {verdict:?}"));
        }
        // The same state again: a commit that changes nothing but still
        // seals, writes and syncs like a login's.
        let mut state = host
            .store
            .open_user(uid, &host.keys)
            .map_err(|e| e.to_string())?;
        record.failures = 0;
        timed(&mut t[7], || state.commit(&record, &host.keys)).map_err(|e| e.to_string())?;
        drop(state);
        let event = Event::new(EventKind::AuthSuccess)
            .user(&name)
            .uid(uid)
            .service("bench-mfa")
            .method(Method::Totp)
            .device("phone");
        timed(&mut t[8], || {
            audit::send_to(Path::new("/dev/log"), "pam_mfa", &event)
        })
        .map_err(|e| e.to_string())?;
    }
    let steps = [
        ("parse module arguments, Config::load (read + TOML)", 1),
        ("gethostname", 1),
        ("Host::open: MasterKey::load, state directory check", 1),
        ("getpwnam_r: user name to uid", 1),
        (
            "Store::open_user: lock, open, read, open both slots (the first open of a process derives the store key)",
            2,
        ),
        ("spool::find: list the spool (empty)", 1),
        ("totp::verify: three steps", 1),
        ("UserState::commit: seal one slot, pwrite, fdatasync", 1),
        ("audit::send_to: one syslog datagram", 1),
    ];
    Ok(steps
        .into_iter()
        .zip(t)
        .map(|((what, per_login), samples)| Step {
            what: what.into(),
            per_login,
            time: Summary::of_ns(&samples),
        })
        .collect())
}

//! Upgrades lose nothing: records and self-service requests written by
//! release 0.1 (tests/fixtures/format-1, made once by that release) still
//! open, read as their format, and are rewritten in the current format at
//! the next commit.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{set_mode, trust};
use mfa_core::audit::EventKind;
use mfa_core::clock::FixedClock;
use mfa_core::config::Config;
use mfa_core::flow::{
    self, Account, ConversationFailed, Directory, Host, Outcome, Prompter, Request,
};
use mfa_core::keys::MasterKey;
use mfa_core::pending::{self, Pending, Request as Asked};
use mfa_core::record::{FactorChange, WRITE_VERSION};
use mfa_core::recovery::CodeFormat;
use mfa_core::spool::Found;
use mfa_core::store::Store;
use mfa_core::totp::{code_at_step, time_step, Algorithm, TotpParams};
use zeroize::Zeroizing;

const ALICE: u32 = 1000;
const BOB: u32 = 1001;
/// Long after the fixtures' failures: no back-off left.
const LATER: u64 = 1_800_000_000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1")
}

/// The recovery codes the README lists under `heading`.
fn codes_under(heading: &str) -> Vec<String> {
    let readme = fs::read_to_string(fixtures().join("README")).unwrap();
    readme
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .take_while(|l| l.split('-').count() >= 3)
        .map(str::to_owned)
        .collect()
}

/// A host whose key, state and spool are copies of the fixtures.
struct Old {
    _dir: tempfile::TempDir,
    root: PathBuf,
    keys: MasterKey,
}

impl Old {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let from = fixtures();
        fs::copy(from.join("master.key"), root.join("master.key")).unwrap();
        set_mode(&root.join("master.key"), 0o600);
        fs::create_dir(root.join("users")).unwrap();
        set_mode(&root.join("users"), 0o700);
        for uid in [ALICE, BOB] {
            let to = root.join("users").join(uid.to_string());
            fs::copy(from.join("users").join(uid.to_string()), &to).unwrap();
            set_mode(&to, 0o600);
        }
        fs::create_dir(root.join("spool")).unwrap();
        set_mode(&root.join("spool"), 0o1733);
        let keys = MasterKey::load(&root.join("master.key"), trust()).unwrap();
        Old {
            _dir: dir,
            root,
            keys,
        }
    }

    fn store(&self) -> Store {
        Store::new(self.root.join("users"), trust())
    }

    fn host(&self, edit: impl FnOnce(&mut Config)) -> Host {
        let mut config = Config::default();
        config.paths.state_dir = self.root.join("users");
        config.paths.key_file = self.root.join("master.key");
        config.paths.spool_dir = self.root.join("spool");
        edit(&mut config);
        Host::open(config, trust(), "testhost").unwrap()
    }

    /// The format version in each slot's header.
    fn slot_versions(&self, uid: u32) -> Vec<u16> {
        let bytes = fs::read(self.root.join("users").join(uid.to_string())).unwrap();
        let slot = bytes.len() / 2;
        [0, slot]
            .iter()
            .filter(|&&start| bytes[start..start + slot].iter().any(|&b| b != 0))
            .map(|&start| u16::from_be_bytes([bytes[start + 8], bytes[start + 9]]))
            .collect()
    }

    /// Copies a fixture request into the spool as a file of `uid`.
    fn spool(&self, name: &str, uid: u32) -> PathBuf {
        let to = self.root.join("spool").join(name);
        fs::copy(fixtures().join("spool").join(name), &to).unwrap();
        set_mode(&to, 0o600);
        nix::unistd::chown(&to, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
        to
    }

    fn open_request(&self, name: &str, uid: u32) -> Pending {
        let sealed = fs::read(fixtures().join("spool").join(name)).unwrap();
        let (version, plaintext) = self.keys.open_request(&sealed, uid).unwrap();
        assert_eq!(version, 1);
        Pending::decode(&plaintext, version).unwrap()
    }

    fn login(host: &Host, answer: &[u8], now: u64) -> (Outcome, Vec<EventKind>) {
        let req = Request {
            user: "alice",
            service: "sshd",
            rhost: None,
            tty: None,
            silent: false,
        };
        let mut answers = Answers(vec![answer.to_vec()]);
        let report = flow::authenticate(host, req, Some(&mut answers), &Names, &FixedClock(now));
        let kinds = report.events.iter().map(|e| e.kind).collect();
        (report.outcome, kinds)
    }
}

struct Answers(Vec<Vec<u8>>);

impl Prompter for Answers {
    fn prompt(&mut self, _: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed> {
        if self.0.is_empty() {
            return Err(ConversationFailed);
        }
        Ok(Zeroizing::new(self.0.remove(0)))
    }
    fn info(&mut self, _: &str) -> Result<(), ConversationFailed> {
        Ok(())
    }
    fn error(&mut self, _: &str) -> Result<(), ConversationFailed> {
        Ok(())
    }
}

struct Names;

impl Directory for Names {
    fn account(&self, user: &str) -> Result<Option<Account>, String> {
        Ok(match user {
            "alice" => Some(Account {
                uid: ALICE,
                gid: ALICE,
            }),
            "bob" => Some(Account { uid: BOB, gid: BOB }),
            _ => None,
        })
    }
    fn groups(&self, _: &str, _: Account) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

const PHONE: TotpParams = TotpParams {
    algorithm: Algorithm::Sha1,
    digits: 6,
    period: 30,
};

#[test]
fn a_record_of_release_0_1_opens_as_it_was_written() {
    let old = Old::new();
    assert_eq!(old.slot_versions(ALICE), [1, 1]);
    let store = old.store();
    let user = store.open_user(ALICE, &old.keys).unwrap();
    let r = user.record().unwrap();
    assert_eq!(r.username, "alice");
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.devices[0].name, "phone");
    assert_eq!(r.devices[0].params, PHONE);
    assert_eq!(&r.devices[0].secret[..], b"12345678901234567890");
    assert_eq!(r.devices[0].last_used_step, Some(56_666_666));
    assert_eq!((r.failures, r.last_failure), (3, Some(1_700_000_100)));
    let last = r.last_success.as_ref().unwrap();
    assert_eq!(
        (
            last.time,
            last.service.as_str(),
            last.rhost.as_str(),
            last.tty.as_str()
        ),
        (1_700_000_050, "sshd", "192.0.2.7", "")
    );
    let set = r.recovery.as_ref().unwrap();
    assert_eq!((set.remaining(), set.format()), (10, CodeFormat::Base32));
    assert!(r.applied.is_empty() && r.notices.is_empty());
}

#[test]
fn a_login_on_a_release_0_1_record_works_and_rewrites_it_in_the_current_format() {
    let old = Old::new();
    let host = old.host(|_| {});
    let code = code_at_step(b"12345678901234567890", PHONE, time_step(LATER, 30));
    let (o, events) = Old::login(&host, code.as_bytes(), LATER);
    assert!(matches!(o, Outcome::Success), "{o:?}");
    assert_eq!(events, [EventKind::AuthSuccess]);
    assert!(old.slot_versions(ALICE).contains(&WRITE_VERSION));
    // A recovery code shown by release 0.1 works once.
    let codes = codes_under("uid 1000 (alice)");
    assert_eq!(codes.len(), 10);
    let (o, _) = Old::login(&host, codes[3].as_bytes(), LATER + 60);
    assert!(matches!(o, Outcome::Success), "{o:?}");
    let (o, _) = Old::login(&host, codes[3].as_bytes(), LATER + 90);
    assert!(matches!(o, Outcome::WrongCode), "{o:?}");
    let store = old.store();
    let user = store.open_user(ALICE, &old.keys).unwrap();
    assert_eq!(user.record().unwrap().recovery_codes_left(), 9);
}

#[test]
fn devices_and_codes_of_release_0_1_work_after_the_configuration_changed() {
    let old = Old::new();
    // bob: a 6-digit SHA1 phone, an 8-digit SHA256 token of 60 s, and
    // recovery codes of 16 characters; today's settings say otherwise.
    let host = old.host(|c| {
        c.totp.digits = 8;
        c.totp.algorithm = Algorithm::Sha512;
        c.totp.period = 90;
        c.recovery.length = 10;
    });
    let token = TotpParams {
        algorithm: Algorithm::Sha256,
        digits: 8,
        period: 60,
    };
    let bob = |answer: &[u8], now: u64| {
        let req = Request {
            user: "bob",
            service: "sshd",
            rhost: None,
            tty: None,
            silent: false,
        };
        let mut answers = Answers(vec![answer.to_vec()]);
        flow::authenticate(&host, req, Some(&mut answers), &Names, &FixedClock(now)).outcome
    };
    let phone = code_at_step(b"12345678901234567890", PHONE, time_step(LATER, 30));
    assert!(matches!(bob(phone.as_bytes(), LATER), Outcome::Success));
    let code = code_at_step(
        b"12345678901234567890123456789012",
        token,
        time_step(LATER + 120, 60),
    );
    assert!(matches!(
        bob(code.as_bytes(), LATER + 120),
        Outcome::Success
    ));
    let codes = codes_under("uid 1001 (bob)");
    assert_eq!(codes.len(), 4);
    assert!(matches!(
        bob(codes[0].as_bytes(), LATER + 180),
        Outcome::Success
    ));
}

#[test]
fn requests_of_release_0_1_open_and_keep_one_id_for_every_copy() {
    let old = Old::new();
    let device = old.open_request("1000.device", ALICE);
    assert_eq!(device.created, 1_700_000_200);
    let Asked::Device {
        device: d,
        recovery,
        code,
    } = &device.request
    else {
        panic!("{device:?}")
    };
    assert_eq!(d.name, "tablet");
    assert_eq!(recovery.remaining(), 3);
    assert!(code.is_none() && device.proof.is_none());
    assert_eq!(old.open_request("1000.device", ALICE).id, device.id);
    let codes = old.open_request("1000.recovery", ALICE);
    assert!(matches!(codes.request, Asked::RecoveryCodes { .. }));
    assert_ne!(codes.id, device.id);
}

#[test]
fn a_request_of_release_0_1_cannot_change_an_enrolled_users_factors() {
    // Release 0.1 requests carry no code of an existing device: the hole
    // they opened stays closed after the upgrade.
    let old = Old::new();
    let host = old.host(|c| c.enrollment.pending_max_age = 2_592_000);
    let now = 1_700_000_400;
    let path = old.spool("1000.recovery", ALICE);
    let code = code_at_step(b"12345678901234567890", PHONE, time_step(now, 30));
    let (o, events) = Old::login(&host, code.as_bytes(), now);
    assert!(matches!(o, Outcome::Success), "{o:?}");
    assert!(events.contains(&EventKind::PendingIgnored), "{events:?}");
    assert!(!path.exists());
    let store = old.store();
    let user = store.open_user(ALICE, &old.keys).unwrap();
    assert_eq!(user.record().unwrap().recovery_codes_left(), 10);
}

#[test]
fn an_administrator_can_still_approve_a_request_of_release_0_1() {
    let old = Old::new();
    let host = old.host(|_| {});
    let path = old.spool("1000.device", ALICE);
    let found = Found {
        path: path.clone(),
        pending: old.open_request("1000.device", ALICE),
    };
    let change = pending::approve(
        &old.store(),
        &old.keys,
        &host.config,
        ALICE,
        "alice",
        &found,
        1_700_000_400,
    )
    .unwrap();
    assert_eq!(change, FactorChange::DeviceAdded("tablet".into()));
    assert!(!path.exists());
    let store = old.store();
    let user = store.open_user(ALICE, &old.keys).unwrap();
    let r = user.record().unwrap();
    assert_eq!(r.devices.len(), 2);
    assert_eq!(old.slot_versions(ALICE), [WRITE_VERSION]);
}

//! No plaintext secret is left in freed memory (SECURITY.md 33).
//!
//! This test binary runs on an allocator that zeroes every block it hands
//! out and, for the thread of a test that has armed it, looks into every
//! block freed for pieces of a marker secret (any 8 bytes of it in a row,
//! raw or in its hex or base32 form). Because blocks start zeroed, a piece
//! found at free time was written into that block by the code under test: a
//! buffer wiped before it was freed holds zeros by then, while a `Vec` or
//! `String` that grew past its capacity freed its old buffer with the
//! secret still in it. `realloc` keeps the trait's default (alloc, copy,
//! dealloc), so every block left behind by growth passes the check. What it
//! cannot see: memory never freed, copies on the stack, and frees made by
//! other threads.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::Fixture;
use mfa_core::codec::Writer;
use mfa_core::keys::MasterKey;
use mfa_core::pending::{Pending, Proof, Request};
use mfa_core::record::{
    Device, LastSuccess, Record, MAX_APPLIED, MAX_DEVICES, MAX_DEVICE_NAME, MAX_NOTICES,
    MAX_REASON, MAX_USERNAME,
};
use mfa_core::recovery::{self, KdfParams};
use mfa_core::totp::{self, Algorithm, TotpParams};
use zeroize::Zeroizing;

/// The secret every test uses: 32 bytes that occur nowhere else.
const MARKER: &[u8; 32] = b"\xa7wipe-test \x5cmarker\x01secret\x02\xfe\x03\x04end";
/// [`MARKER`] in lower-case hex, as a key file writes a generation's secret.
const MARKER_HEX: &[u8] = b"a7776970652d74657374205c6d61726b65720173656372657402fe0304656e64";
/// [`MARKER`] in base32, as the otpauth URI and the grouped secret carry it.
const MARKER_BASE32: &[u8] = b"U53WS4DFFV2GK43UEBOG2YLSNNSXEALTMVRXEZLUAL7AGBDFNZSA";
/// Shorter runs than this are too common to mean anything.
const WINDOW: usize = 8;

thread_local! {
    /// How many freed blocks held a piece of a marker, while this thread is
    /// armed (`None`: not armed).
    static FOUND: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The system allocator, zeroing what it hands out and looking into what
/// an armed thread frees.
struct Inspecting;

fn holds_marker(block: &[u8]) -> bool {
    [&MARKER[..], MARKER_HEX, MARKER_BASE32]
        .iter()
        .any(|marker| {
            marker
                .windows(WINDOW)
                .any(|piece| block.windows(WINDOW).any(|w| w == piece))
        })
}

// SAFETY: every call is passed on to `System` with the same arguments;
// `alloc` asks for zeroed memory, which is a valid result of `alloc` too,
// and `dealloc` only reads the block, which is still allocated, before it
// is freed.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Zeroed, so that what a freed block holds was written by its owner,
        // not left over from an earlier block at the same address.
        // SAFETY: the caller upholds `alloc`'s contract, which is
        // `alloc_zeroed`'s.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // try_with: a thread being torn down has no counter to report to.
        let armed = FOUND.try_with(Cell::get).ok().flatten();
        if let Some(found) = armed {
            // SAFETY: `ptr` points to a live block of `layout.size()` bytes
            // (the caller's contract for dealloc), not yet freed, and every
            // byte of it was initialised by `alloc_zeroed`.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if holds_marker(block) {
                let _ = FOUND.try_with(|f| f.set(Some(found + 1)));
            }
        }
        // SAFETY: as received from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// Runs `f` armed; returns how many blocks it freed held a piece of a marker.
fn freed_copies(f: impl FnOnce()) -> usize {
    FOUND.with(|c| c.set(Some(0)));
    f();
    FOUND.with(Cell::take).unwrap_or(0)
}

fn device(i: usize) -> Device {
    let mut secret = Zeroizing::new(vec![0u8; totp::MAX_SECRET_BYTES]);
    for chunk in secret.chunks_mut(MARKER.len()) {
        chunk.copy_from_slice(&MARKER[..chunk.len()]);
    }
    Device {
        name: format!("{i:0>MAX_DEVICE_NAME$}"),
        secret,
        params: TotpParams {
            algorithm: Algorithm::Sha512,
            digits: 8,
            period: 30,
        },
        created: 1_700_000_000,
        last_used_step: Some(u64::MAX),
    }
}

/// A record with the most devices, the longest secrets and names.
fn large_record() -> Record {
    let mut record = Record::new(&"u".repeat(MAX_USERNAME), 1_700_000_000);
    record.devices = (0..MAX_DEVICES).map(device).collect();
    record
}

/// The cheapest Argon2id parameters accepted, for sets made only to be
/// encoded.
fn cheap_kdf() -> KdfParams {
    KdfParams {
        memory_kib: KdfParams::MIN_MEMORY_KIB,
        iterations: 1,
        parallelism: 1,
    }
}

/// Every field of a record at its bound: the most devices, secrets, names,
/// recovery-code hashes, applied requests and notices.
fn maximal_record() -> Record {
    let mut record = large_record();
    let count = u8::try_from(recovery::MAX_CODES).unwrap();
    let (_, hashes) = recovery::generate(count, recovery::MAX_LENGTH, cheap_kdf()).unwrap();
    record.recovery = Some(hashes);
    record.failures = u32::MAX;
    record.last_failure = Some(u64::MAX);
    let long = "x".repeat(1024);
    record.last_success = Some(LastSuccess::new(u64::MAX, &long, &long, &long));
    for i in 0..MAX_APPLIED {
        record.mark_applied([u8::try_from(i).unwrap(); 16]);
    }
    // A refusal's reason is the longest notice there is.
    for i in 0..MAX_NOTICES {
        let why = format!("{i:0>MAX_REASON$}");
        record.announce_refusal(u64::MAX, &why);
    }
    record
}

/// A request for a new device at its bounds, with a code from it and a
/// recovery code as the proof: the longest request there is.
fn maximal_request() -> Pending {
    let count = u8::try_from(recovery::MAX_CODES).unwrap();
    let (_, recovery) = recovery::generate(count, recovery::MAX_LENGTH, cheap_kdf()).unwrap();
    let code = || Zeroizing::new(std::str::from_utf8(&MARKER_HEX[..64]).unwrap().to_owned());
    Pending {
        id: [7; 16],
        created: 1_700_000_000,
        request: Request::Device {
            device: device(0),
            recovery,
            code: Some(code()),
        },
        proof: Some(Proof::Recovery(code())),
    }
}

#[test]
fn the_inspecting_allocator_sees_a_secret_freed_unwiped() {
    // The check itself: a plain Vec freed with the marker in it is seen, the
    // same Vec wiped first is not.
    // black_box keeps the optimizer from eliding the allocations.
    let seen = freed_copies(|| drop(std::hint::black_box(MARKER.to_vec())));
    assert_eq!(seen, 1);
    let seen = freed_copies(|| drop(std::hint::black_box(Zeroizing::new(MARKER.to_vec()))));
    assert_eq!(seen, 0);
    let seen = freed_copies(|| drop(std::hint::black_box(MARKER_BASE32.to_vec())));
    assert_eq!(seen, 1);
}

#[test]
fn a_writer_that_grows_leaves_no_copy_of_a_secret_behind() {
    let seen = freed_copies(|| {
        let mut w = Writer::with_capacity(16);
        w.bytes(MARKER);
        for i in 0..4096u32 {
            w.u32(i);
        }
        assert!(w.growths() > 0, "the test must make the writer grow");
        drop(w.finish());
    });
    assert_eq!(seen, 0, "freed buffers still held the secret");
}

#[test]
fn encoding_a_record_leaves_no_copy_of_its_secrets_behind() {
    let record = large_record();
    let seen = freed_copies(|| {
        let encoded = record.encode().unwrap();
        drop(encoded);
    });
    drop(record);
    assert_eq!(seen, 0, "freed buffers still held a device secret");
}

#[test]
fn a_maximal_record_and_request_encode_in_the_writers_first_buffer() {
    // Sized once: the encodings of the largest record and the largest
    // request never needed a larger buffer, so they never went through even
    // the wiping growth path.
    for encoded in [
        maximal_record().encode().unwrap(),
        maximal_request().encode(),
    ] {
        assert!(encoded.len() <= Writer::DEFAULT_CAPACITY);
        assert_eq!(encoded.capacity(), Writer::DEFAULT_CAPACITY);
    }
}

#[test]
fn sealing_and_opening_a_request_leave_no_copy_behind() {
    let keys = MasterKey::parse(&marker_key_file(), "test").unwrap();
    let public = keys.enrollment_public_key();
    let request = maximal_request();
    let seen = freed_copies(|| {
        let sealed = request.seal(&public, 1000).unwrap();
        let (version, plaintext) = keys.open_request(&sealed, 1000).unwrap();
        let opened = Pending::decode(&plaintext, version).unwrap();
        assert_eq!(opened, request);
    });
    assert_eq!(seen, 0, "freed buffers still held a secret or a code");
}

#[test]
fn sealing_opening_and_committing_a_record_leave_no_copy_behind() {
    let f = Fixture::new();
    let record = large_record();
    let seen = freed_copies(|| {
        let store = f.store();
        let mut state = store.open_user(1000, &f.keys).unwrap();
        state.rewrite(&record, &f.keys).unwrap();
        drop(state);
        let mut state = store.open_user(1000, &f.keys).unwrap();
        let mut next = state.record().unwrap().clone();
        next.failures = 1;
        state.commit(&next, &f.keys).unwrap();
        drop(next);
        drop(state);
    });
    drop(record);
    assert_eq!(seen, 0, "freed buffers still held a device secret");
}

/// A key file with three generations, each with the secret [`MARKER`]
/// (a rotated key: the file grows past the first generation's line).
fn marker_key_file() -> Zeroizing<Vec<u8>> {
    key_file_with_generations(3)
}

/// A key file with `n` (at most 9) generations, each with the secret
/// [`MARKER`], the last one active.
fn key_file_with_generations(n: u8) -> Zeroizing<Vec<u8>> {
    let mut text = Zeroizing::new(Vec::with_capacity(2048));
    text.extend_from_slice(b"pam_mfa master key v1\nactive ");
    text.push(b'0' + n);
    text.push(b'\n');
    for id in 1..=n {
        text.extend_from_slice(b"generation ");
        text.push(b'0' + id);
        text.extend_from_slice(b" created 1700000000 ");
        text.extend_from_slice(MARKER_HEX);
        text.push(b'\n');
    }
    text
}

#[test]
fn loading_rotating_and_retiring_generations_leave_no_copy_behind() {
    // Each generation's secret lives inside the key's list of generations:
    // a list that grew (a fifth generation) or shifted (a retired one) would
    // leave the secrets it moved in freed memory.
    let contents = key_file_with_generations(6);
    let seen = freed_copies(|| {
        let mut keys = MasterKey::parse(&contents, "test").unwrap();
        assert_eq!(keys.list().len(), 6);
        keys.retire(1).unwrap();
        keys.retire(3).unwrap();
        drop(keys);
        let mut keys = MasterKey::parse(&key_file_with_generations(4), "test").unwrap();
        keys.rotate(1_800_000_000).unwrap();
        keys.rotate(1_800_000_001).unwrap();
        drop(keys);
    });
    assert_eq!(seen, 0, "freed buffers still held a generation's secret");
}

#[test]
fn writing_a_key_file_leaves_no_copy_of_the_key_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let contents = marker_key_file();
    let seen = freed_copies(|| {
        let keys = MasterKey::parse(&contents, "test").unwrap();
        assert_eq!(&*keys.to_file_contents(), &*keys.to_file_contents());
        keys.create(&path).unwrap();
        drop(keys);
    });
    assert_eq!(seen, 0, "freed buffers still held the key");
    let written = Zeroizing::new(std::fs::read(&path).unwrap());
    assert!(written.windows(MARKER_HEX.len()).any(|w| w == MARKER_HEX));
}

#[test]
fn the_otpauth_uri_and_base32_forms_leave_no_copy_behind() {
    let seen = freed_copies(|| {
        let b32 = totp::base32_encode(MARKER);
        assert_eq!(b32.as_bytes(), MARKER_BASE32);
        let grouped = totp::grouped(&b32);
        let decoded = totp::base32_decode(&grouped).unwrap();
        assert_eq!(&decoded[..], &MARKER[..]);
        let uri = totp::otpauth_uri(
            MARKER,
            TotpParams::default(),
            "a rather long issuer name, percent-encoded",
            "alice@host.example",
        );
        assert!(uri.contains(std::str::from_utf8(MARKER_BASE32).unwrap()));
    });
    assert_eq!(seen, 0, "freed buffers still held the secret");
}

#[test]
fn computing_and_checking_codes_leaves_no_copy_of_the_secret_behind() {
    let params = TotpParams::default();
    let seen = freed_copies(|| {
        let code = totp::code_at_step(MARKER, params, 56_666_666);
        let code = mfa_core::input::parse_totp(code.as_bytes(), params.digits).unwrap();
        let verdict = totp::verify(MARKER, params, 1, 1_700_000_000, None, &code);
        assert_eq!(verdict, totp::Verdict::Accepted { step: 56_666_666 });
    });
    assert_eq!(seen, 0, "freed buffers still held the secret");
}

#[test]
fn cutting_an_enrollment_message_into_chunks_leaves_no_copy_behind() {
    // What the module shows when a user enrolls at login: the secret among
    // many lines, cut into messages of at most 512 bytes.
    let b32 = std::str::from_utf8(MARKER_BASE32).unwrap();
    let lines: Zeroizing<Vec<String>> =
        Zeroizing::new((0..40).map(|i| format!("line {i:02}: {b32}")).collect());
    let seen = freed_copies(|| {
        let chunks = Zeroizing::new(mfa_core::qr::chunk_lines(&lines, 512));
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() <= 512 && c.contains(b32)));
    });
    assert_eq!(seen, 0, "freed buffers still held the secret");
}

//! A small, strict binary encoding for the sealed formats (records, pending
//! enrollments): big-endian integers and length-prefixed byte strings.
//!
//! Hand-written rather than a general serializer so that every byte of a
//! secret passes through buffers that are wiped, and so that a decoder fed
//! hostile input has no more surface than these few functions.

use std::fmt;

use zeroize::Zeroizing;

/// The input does not follow the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Builds an encoding in a buffer that is wiped when dropped.
///
/// The buffer never grows the way a `Vec` does on its own, which copies the
/// bytes into a larger allocation and frees the old one unwiped, leaving
/// copies of the secrets already written in freed heap memory. It starts
/// with room for [`Writer::DEFAULT_CAPACITY`] bytes, more than any record or
/// request needs; an encoding that outgrows it is moved into a new buffer
/// and the old one is wiped ([`Writer::reserve`]).
pub struct Writer {
    buf: Zeroizing<Vec<u8>>,
    grown: u32,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// The room a [`Writer::new`] starts with: a record with every field at
    /// its bound (eight devices with 128-byte secrets, 64 recovery-code
    /// hashes, the longest names, every applied request and notice) takes
    /// about 5.3 KiB, the largest self-service request less.
    pub const DEFAULT_CAPACITY: usize = 8 * 1024;

    /// An empty writer with room for [`Writer::DEFAULT_CAPACITY`] bytes.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// An empty writer with room for `capacity` bytes, for encodings whose
    /// size is known (headers).
    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: Zeroizing::new(Vec::with_capacity(capacity)),
            grown: 0,
        }
    }

    /// The bytes the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// How many times the buffer had to grow. Each time the bytes were moved
    /// into a new buffer and the old one was wiped; a sized writer that
    /// reports 0 never held its bytes anywhere but its one buffer.
    pub fn growths(&self) -> u32 {
        self.grown
    }

    /// Makes room for `additional` more bytes. If the buffer is too small,
    /// the bytes move to a new buffer at least twice as large and the old
    /// one is wiped, all of its capacity, as it is dropped.
    pub fn reserve(&mut self, additional: usize) {
        let needed = self.buf.len().saturating_add(additional);
        if needed <= self.buf.capacity() {
            return;
        }
        let capacity = needed.max(self.buf.capacity().saturating_mul(2));
        let mut grown = Zeroizing::new(Vec::with_capacity(capacity));
        grown.extend_from_slice(&self.buf);
        self.buf = grown;
        self.grown = self.grown.saturating_add(1);
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.raw(&[v]);
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.raw(&v.to_be_bytes());
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.raw(&v.to_be_bytes());
    }

    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.raw(&v.to_be_bytes());
    }

    /// Appends raw bytes with no length prefix (fixed-size fields).
    pub fn raw(&mut self, v: &[u8]) {
        // Room first, through the wiping path, so that extend_from_slice
        // never reallocates on its own.
        self.reserve(v.len());
        self.buf.extend_from_slice(v);
    }

    /// Appends bytes prefixed by their length as a u16.
    ///
    /// # Panics
    /// If `v` is longer than 65535 bytes: callers bound their fields far below that.
    pub fn bytes(&mut self, v: &[u8]) {
        let len = u16::try_from(v.len()).expect("field longer than 65535 bytes");
        self.u16(len);
        self.raw(v);
    }

    /// Appends a UTF-8 string prefixed by its length.
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    /// Appends an optional u64 as a presence byte and the value.
    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }

    /// The encoding so far.
    pub fn finish(self) -> Zeroizing<Vec<u8>> {
        self.buf
    }
}

/// Reads an encoding, refusing anything short, long or malformed.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Takes exactly `n` bytes.
    ///
    /// # Errors
    /// If fewer remain.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    ///
    /// # Errors
    /// If fewer bytes remain.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.raw(N)?);
        Ok(out)
    }

    /// Reads one byte.
    ///
    /// # Errors
    /// If the input is exhausted.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a big-endian u16.
    ///
    /// # Errors
    /// If the input is exhausted.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u32.
    ///
    /// # Errors
    /// If the input is exhausted.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u64.
    ///
    /// # Errors
    /// If the input is exhausted.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a length-prefixed byte string of at most `max` bytes.
    ///
    /// # Errors
    /// If it is longer than `max` or truncated.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(DecodeError("field longer than its bound"));
        }
        self.raw(len)
    }

    /// Reads a length-prefixed UTF-8 string of at most `max` bytes.
    ///
    /// # Errors
    /// If it is too long, truncated or not UTF-8.
    pub fn str(&mut self, max: usize) -> Result<String, DecodeError> {
        let b = self.bytes(max)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError("string is not UTF-8"))
    }

    /// Reads an optional u64 written by [`Writer::opt_u64`].
    ///
    /// # Errors
    /// If the presence byte is neither 0 nor 1, or the input is exhausted.
    pub fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(DecodeError("bad presence flag")),
        }
    }

    /// Succeeds only if every byte has been consumed.
    ///
    /// # Errors
    /// If bytes are left over.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

/// Lower-case hex, for key files people may need to inspect.
pub fn hex_encode(bytes: &[u8]) -> Zeroizing<String> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Decodes exactly `N` bytes of hex (either case).
///
/// # Errors
/// On a wrong length or a non-hex character.
pub fn hex_decode<const N: usize>(s: &str) -> Result<Zeroizing<[u8; N]>, DecodeError> {
    fn nibble(c: u8) -> Result<u8, DecodeError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(DecodeError("not a hex digit")),
        }
    }
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return Err(DecodeError("wrong hex length"));
    }
    let mut out = Zeroizing::new([0u8; N]);
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field_kind() {
        let mut w = Writer::new();
        w.u8(7);
        w.u16(0xBEEF);
        w.u32(0xDEAD_BEEF);
        w.u64(u64::MAX);
        w.str("héllo");
        w.opt_u64(None);
        w.opt_u64(Some(3));
        let buf = w.finish();
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u16().unwrap(), 0xBEEF);
        assert_eq!(r.u32().unwrap(), 0xDEAD_BEEF);
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert_eq!(r.str(16).unwrap(), "héllo");
        assert_eq!(r.opt_u64().unwrap(), None);
        assert_eq!(r.opt_u64().unwrap(), Some(3));
        r.finish().unwrap();
    }

    #[test]
    fn refuses_truncated_oversized_and_trailing_input() {
        assert!(Reader::new(&[0, 1]).u32().is_err());
        let mut w = Writer::new();
        w.str("abcdef");
        let buf = w.finish();
        assert!(Reader::new(&buf).str(5).is_err());
        assert!(Reader::new(&buf[..4]).str(16).is_err());
        let mut r = Reader::new(&buf);
        r.u8().unwrap();
        assert!(r.finish().is_err());
        assert!(Reader::new(&[2]).opt_u64().is_err());
    }

    #[test]
    fn a_writer_grows_only_through_the_wiping_path() {
        let mut w = Writer::with_capacity(4);
        w.u32(1);
        assert_eq!((w.capacity(), w.growths()), (4, 0));
        let mut capacity = w.capacity();
        let mut growths = 0;
        for i in 0..1000u16 {
            w.bytes(&i.to_be_bytes());
            // Every change of buffer went through reserve, which counts it.
            if w.capacity() != capacity {
                growths += 1;
                capacity = w.capacity();
            }
            assert_eq!(w.growths(), growths);
        }
        assert!(growths > 0);
        assert_eq!(w.finish().len(), 4 + 1000 * 4);
    }

    #[test]
    fn hex_round_trips_and_refuses_bad_digits() {
        let h = hex_encode(&[0x00, 0xab, 0xff]);
        assert_eq!(h.as_str(), "00abff");
        assert_eq!(*hex_decode::<3>("00ABff").unwrap(), [0x00, 0xab, 0xff]);
        assert!(hex_decode::<3>("00abf").is_err());
        assert!(hex_decode::<3>("00abfg").is_err());
    }
}

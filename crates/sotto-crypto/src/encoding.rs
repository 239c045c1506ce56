//! The canonical binary encoding every Sotto structure uses.
//!
//! Integers are big-endian. Variable-length fields carry a length prefix of one, two
//! or four bytes, fixed by the field. A decoder rejects short input, over-long length
//! prefixes and trailing bytes, so every structure has exactly one encoding.

use thiserror::Error;

/// Why bytes could not be decoded into a structure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the structure did.
    #[error("input is truncated")]
    Truncated,
    /// Bytes remained after the structure ended.
    #[error("input has trailing bytes")]
    TrailingBytes,
    /// The structure's version byte is not one this implementation speaks.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// A field held a value outside its allowed range or set.
    #[error("invalid field: {0}")]
    InvalidField(&'static str),
}

/// Builds the canonical encoding of a structure.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends bytes as they are, with no length prefix.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends bytes with a one-byte length prefix.
    ///
    /// Callers guarantee `v.len() <= 255` (identifiers and labels are validated on
    /// construction); a longer slice is a programming error caught in debug builds.
    pub fn bytes8(&mut self, v: &[u8]) -> &mut Self {
        debug_assert!(v.len() <= usize::from(u8::MAX));
        self.u8(v.len() as u8).raw(v)
    }

    /// Appends bytes with a two-byte length prefix (at most 65,535 bytes).
    pub fn bytes16(&mut self, v: &[u8]) -> &mut Self {
        debug_assert!(v.len() <= usize::from(u16::MAX));
        self.u16(v.len() as u16).raw(v)
    }

    /// Appends bytes with a four-byte length prefix.
    pub fn bytes32(&mut self, v: &[u8]) -> &mut Self {
        debug_assert!(u32::try_from(v.len()).is_ok());
        self.u32(v.len() as u32).raw(v)
    }

    /// The encoding built so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads a structure from its canonical encoding, never panicking on hostile input.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads bytes with a one-byte length prefix.
    pub fn bytes8(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// Reads bytes with a two-byte length prefix.
    pub fn bytes16(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// Reads bytes with a four-byte length prefix.
    pub fn bytes32(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        self.take(n)
    }

    /// Reads the version byte and checks that it is `expected`.
    pub fn version(&mut self, expected: u8) -> Result<(), DecodeError> {
        match self.u8()? {
            v if v == expected => Ok(()),
            v => Err(DecodeError::UnsupportedVersion(v)),
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Ends decoding: the input must be fully consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// The bytes a signature in Sotto covers: the label with a one-byte length prefix,
/// then each part as it is. Every label is unique, so no signature made for one
/// purpose verifies for another.
pub fn signing_input(label: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes8(label);
    for p in parts {
        w.raw(p);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fields_round_trip(a: u8, b: u16, c: u32, d: u64, s in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut w = Writer::new();
            w.u8(a).u16(b).u32(c).u64(d).bytes16(&s).bytes32(&s);
            let bytes = w.finish();
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.u8().unwrap(), a);
            prop_assert_eq!(r.u16().unwrap(), b);
            prop_assert_eq!(r.u32().unwrap(), c);
            prop_assert_eq!(r.u64().unwrap(), d);
            prop_assert_eq!(r.bytes16().unwrap(), &s[..]);
            prop_assert_eq!(r.bytes32().unwrap(), &s[..]);
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&input);
            let _ = r.bytes32();
            let _ = r.bytes8();
            let _ = r.u64();
        }
    }

    #[test]
    fn short_and_trailing_input_are_refused() {
        assert_eq!(Reader::new(&[0, 5, 1]).bytes16(), Err(DecodeError::Truncated));
        let mut r = Reader::new(&[1, 2]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes));
        assert_eq!(Reader::new(&[2]).version(1), Err(DecodeError::UnsupportedVersion(2)));
    }
}

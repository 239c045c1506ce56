//! Encrypted files: a fresh random key per file and a chunked AES-256-GCM stream.
//!
//! ```text
//! blob   = header ‖ chunk_0 ‖ … ‖ chunk_{n-1}        (n ≥ 1)
//! header = 0x01 ‖ u32 chunk_size ‖ fixed(7) nonce_prefix
//! chunk_i = AES-256-GCM(file_key, nonce_i, aad = header, plaintext_i)
//! nonce_i = nonce_prefix ‖ u32 i ‖ u8 last        (last = 0x01 for chunk n-1, else 0x00)
//! ```
//!
//! Every chunk but the last holds exactly `chunk_size` plaintext bytes; the last holds
//! 0 to `chunk_size`. The counter in the nonce detects reordering and swapping, the
//! final-chunk flag detects truncation at a chunk boundary and data after the end.
//! Both directions work one chunk at a time, so memory stays constant whatever the
//! file size.

use crate::VERSION;
use crate::encoding::{DecodeError, Reader, Writer};
use aes_gcm::aead::{AeadInOut, KeyInit, inout::InOutBuf};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, Write};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

/// Length of a file key.
pub const FILE_KEY_LEN: usize = 32;
/// Smallest chunk size a stream may declare (small chunks suit tests and vectors).
pub const MIN_CHUNK_SIZE: u32 = 64;
/// Largest chunk size a stream may declare; it bounds what a decryptor buffers.
pub const MAX_CHUNK_SIZE: u32 = 1024 * 1024;
/// The chunk size clients use.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Length of the stream header.
pub const STREAM_HEADER_LEN: usize = 12;
/// Length of the random nonce prefix in the stream header.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Bytes an AES-GCM tag adds to each chunk.
pub const TAG_LEN: usize = 16;

/// The random key of one file. Zeroized on drop; compared in constant time; `Debug`
/// prints nothing of it.
#[derive(Clone)]
pub struct FileKey(Zeroizing<[u8; FILE_KEY_LEN]>);

impl FileKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut k = Zeroizing::new([0u8; FILE_KEY_LEN]);
        rng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// A key from its bytes (as carried in a message attachment).
    pub fn from_bytes(bytes: [u8; FILE_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; FILE_KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.as_bytes().into())
    }
}

impl PartialEq for FileKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&*other.0).into()
    }
}

impl Eq for FileKey {}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(…)")
    }
}

/// Why a file stream could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FileError {
    /// The stream header is malformed, of another version, or declares a chunk size
    /// outside `MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE`.
    #[error("malformed file stream header: {0}")]
    Header(DecodeError),
    /// The stream ended before its final chunk.
    #[error("file stream is truncated")]
    Truncated,
    /// Data follows the final chunk.
    #[error("file stream continues after its final chunk")]
    Extended,
    /// A chunk failed authentication: altered, moved, from another file, or the key
    /// is wrong.
    #[error("file chunk {index} is not authentic")]
    BadChunk {
        /// The chunk's position in the stream, from 0.
        index: u64,
    },
    /// A chunk has a length its position does not allow (too long, or a non-final
    /// chunk that is not full).
    #[error("file chunk {index} has an invalid length")]
    ChunkLength {
        /// The chunk's position in the stream, from 0.
        index: u64,
    },
    /// The output buffer cannot hold the chunk.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// The stream would need more than 2^32 chunks.
    #[error("file has too many chunks")]
    TooManyChunks,
    /// Writing the plaintext out failed earlier, so some of it is missing; the stream
    /// cannot be continued.
    #[error("an earlier write of the plaintext failed")]
    OutputFailed,
    /// The encryptor already wrote the final chunk.
    #[error("file stream already finished")]
    Finished,
}

/// The stream header at the start of every encrypted blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Random bytes that start every chunk nonce.
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl StreamHeader {
    /// The header's 12 bytes.
    pub fn encode(&self) -> [u8; STREAM_HEADER_LEN] {
        let mut w = Writer::new();
        w.u8(VERSION).u32(self.chunk_size).raw(&self.nonce_prefix);
        let mut out = [0u8; STREAM_HEADER_LEN];
        out.copy_from_slice(&w.finish());
        out
    }

    /// Parses exactly one header.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let chunk_size = r.u32()?;
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(DecodeError::InvalidField("chunk size"));
        }
        let nonce_prefix = r.array()?;
        r.finish()?;
        Ok(Self {
            chunk_size,
            nonce_prefix,
        })
    }

    fn nonce(
        &self,
        index: u64,
        last: bool,
    ) -> Result<Nonce<aes_gcm::aes::cipher::consts::U12>, FileError> {
        let counter = u32::try_from(index).map_err(|_| FileError::TooManyChunks)?;
        let mut n = [0u8; 12];
        n[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        n[NONCE_PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        Ok(n.into())
    }

    fn full_chunk_len(&self) -> usize {
        self.chunk_size as usize + TAG_LEN
    }
}

/// Encrypts a file one chunk at a time into caller-provided buffers.
pub struct ChunkEncryptor {
    cipher: Aes256Gcm,
    header: StreamHeader,
    header_bytes: [u8; STREAM_HEADER_LEN],
    next: u64,
    finished: bool,
}

impl fmt::Debug for ChunkEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkEncryptor")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl ChunkEncryptor {
    /// Starts a stream under `key` with a random nonce prefix.
    pub fn new(
        key: &FileKey,
        chunk_size: u32,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Self, FileError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(FileError::Header(DecodeError::InvalidField("chunk size")));
        }
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rng.fill_bytes(&mut nonce_prefix);
        let header = StreamHeader {
            chunk_size,
            nonce_prefix,
        };
        Ok(Self {
            cipher: key.cipher(),
            header,
            header_bytes: header.encode(),
            next: 0,
            finished: false,
        })
    }

    /// The stream header, which the blob starts with.
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Encrypts the next chunk into `out` and returns how many bytes it wrote
    /// (`plaintext.len() + 16`). A non-final chunk must hold exactly `chunk_size`
    /// bytes; the final one at most that.
    pub fn encrypt_chunk(
        &mut self,
        plaintext: &[u8],
        last: bool,
        out: &mut [u8],
    ) -> Result<usize, FileError> {
        if self.finished {
            return Err(FileError::Finished);
        }
        let size = self.header.chunk_size as usize;
        if plaintext.len() > size
            || (!last && plaintext.len() != size)
            || (plaintext.is_empty() && self.next > 0)
        {
            // One encoding per file: only an empty file has an empty (final) chunk.
            return Err(FileError::ChunkLength { index: self.next });
        }
        let n = plaintext.len();
        let (body, rest) = out
            .split_at_mut_checked(n)
            .ok_or(FileError::BufferTooSmall)?;
        let tag_out = rest.get_mut(..TAG_LEN).ok_or(FileError::BufferTooSmall)?;
        let nonce = self.header.nonce(self.next, last)?;
        let buf = InOutBuf::new(plaintext, body).map_err(|_| FileError::BufferTooSmall)?;
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, &self.header_bytes, buf)
            .map_err(|_| FileError::ChunkLength { index: self.next })?;
        tag_out.copy_from_slice(&tag);
        self.next += 1;
        self.finished = last;
        Ok(n + TAG_LEN)
    }
}

/// Decrypts a file one chunk at a time into caller-provided buffers.
pub struct ChunkDecryptor {
    cipher: Aes256Gcm,
    header: StreamHeader,
    header_bytes: [u8; STREAM_HEADER_LEN],
    next: u64,
    finished: bool,
}

impl fmt::Debug for ChunkDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkDecryptor")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl ChunkDecryptor {
    /// Reads the stream header (the blob's first 12 bytes).
    pub fn new(key: &FileKey, header: &[u8]) -> Result<Self, FileError> {
        let parsed = StreamHeader::decode(header).map_err(FileError::Header)?;
        Ok(Self {
            cipher: key.cipher(),
            header: parsed,
            header_bytes: parsed.encode(),
            next: 0,
            finished: false,
        })
    }

    /// The stream header.
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Ciphertext bytes in a full chunk: the most a chunk may hold.
    pub fn max_chunk_len(&self) -> usize {
        self.header.full_chunk_len()
    }

    fn try_open(&self, ciphertext: &[u8], last: bool, out: &mut [u8]) -> Result<usize, FileError> {
        let n = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(FileError::BadChunk { index: self.next })?;
        let (body, tag) = ciphertext.split_at(n);
        let tag = Tag::try_from(tag).map_err(|_| FileError::BadChunk { index: self.next })?;
        let dst = out.get_mut(..n).ok_or(FileError::BufferTooSmall)?;
        let buf = InOutBuf::new(body, dst).map_err(|_| FileError::BufferTooSmall)?;
        let nonce = self.header.nonce(self.next, last)?;
        self.cipher
            .decrypt_inout_detached(&nonce, &self.header_bytes, buf, &tag)
            .map_err(|_| FileError::BadChunk { index: self.next })?;
        Ok(n)
    }

    /// Decrypts the next chunk into `out` and returns the plaintext length. `last`
    /// says whether the stream ends after this chunk. A chunk that authenticates only
    /// with the other flag gives [`FileError::Truncated`] (the stream ended early) or
    /// [`FileError::Extended`] (data follows the final chunk).
    pub fn decrypt_chunk(
        &mut self,
        ciphertext: &[u8],
        last: bool,
        out: &mut [u8],
    ) -> Result<usize, FileError> {
        if self.finished {
            return Err(FileError::Extended);
        }
        let full = self.header.full_chunk_len();
        if ciphertext.len() > full
            || ciphertext.len() < TAG_LEN
            || (ciphertext.len() == TAG_LEN && self.next > 0)
        {
            // Only an empty file has an empty chunk; after full chunks it is refused.
            return Err(FileError::ChunkLength { index: self.next });
        }
        if out.len() < ciphertext.len() - TAG_LEN {
            return Err(FileError::BufferTooSmall);
        }
        match self.try_open(ciphertext, last, out) {
            Ok(n) if last || ciphertext.len() == full => {
                self.next += 1;
                self.finished = last;
                Ok(n)
            }
            // Authentic, but a short chunk can only be the final one.
            Ok(_) => Err(FileError::ChunkLength { index: self.next }),
            Err(FileError::BadChunk { index }) => {
                // Only a full chunk can have been written with the other flag.
                let flipped =
                    ciphertext.len() == full && self.try_open(ciphertext, !last, out).is_ok();
                if flipped {
                    out.iter_mut().for_each(|b| *b = 0);
                    Err(if last {
                        FileError::Truncated
                    } else {
                        FileError::Extended
                    })
                } else {
                    Err(FileError::BadChunk { index })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the final chunk has been decrypted; a stream that ends otherwise is
    /// truncated.
    pub fn finish(&self) -> Result<(), FileError> {
        if self.finished {
            Ok(())
        } else {
            Err(FileError::Truncated)
        }
    }
}

/// SHA-256 of a whole encrypted blob, as carried in the message's attachment.
pub fn blob_sha256(blob: &[u8]) -> [u8; 32] {
    Sha256::digest(blob).into()
}

/// What a finished stream amounts to, for the message's attachment entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    /// Plaintext bytes.
    pub plaintext_len: u64,
    /// Encrypted blob bytes, header included.
    pub blob_len: u64,
    /// SHA-256 of the encrypted blob.
    pub blob_sha256: [u8; 32],
    /// The stream's chunk size.
    pub chunk_size: u32,
}

/// A failure of a streaming adapter: the crypto, or the writer underneath.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The stream is not authentic or not well formed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The underlying writer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn invalid(e: FileError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Encrypts everything written to it into `inner`, one chunk at a time.
///
/// [`EncryptWriter::finish`] writes the final chunk; without it the blob is truncated
/// (and any reader will say so).
pub struct EncryptWriter<W: Write> {
    inner: W,
    enc: ChunkEncryptor,
    pending: Zeroizing<Vec<u8>>,
    out: Vec<u8>,
    hasher: Sha256,
    plaintext_len: u64,
    blob_len: u64,
}

impl<W: Write> fmt::Debug for EncryptWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptWriter")
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl<W: Write> EncryptWriter<W> {
    /// Starts a stream under `key` and writes its header to `inner`.
    pub fn new(
        mut inner: W,
        key: &FileKey,
        chunk_size: u32,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Self, StreamError> {
        let enc = ChunkEncryptor::new(key, chunk_size, rng)?;
        let header = enc.header().encode();
        inner.write_all(&header)?;
        let mut hasher = Sha256::new();
        hasher.update(header);
        let size = chunk_size as usize;
        Ok(Self {
            inner,
            enc,
            pending: Zeroizing::new(Vec::with_capacity(size)),
            out: vec![0; size + TAG_LEN],
            hasher,
            plaintext_len: 0,
            blob_len: STREAM_HEADER_LEN as u64,
        })
    }

    fn emit_pending(&mut self, last: bool) -> io::Result<()> {
        let n = self
            .enc
            .encrypt_chunk(&self.pending, last, &mut self.out)
            .map_err(invalid)?;
        self.pending.clear();
        self.write_out(n)
    }

    fn emit_slice(&mut self, chunk: &[u8]) -> io::Result<()> {
        let n = self
            .enc
            .encrypt_chunk(chunk, false, &mut self.out)
            .map_err(invalid)?;
        self.write_out(n)
    }

    fn write_out(&mut self, n: usize) -> io::Result<()> {
        let chunk = self
            .out
            .get(..n)
            .ok_or_else(|| invalid(FileError::BufferTooSmall))?;
        self.inner.write_all(chunk)?;
        self.hasher.update(chunk);
        self.blob_len += n as u64;
        Ok(())
    }

    /// Writes the final chunk, flushes, and returns the writer with the blob's summary.
    pub fn finish(mut self) -> Result<(W, FileSummary), StreamError> {
        self.emit_pending(true)?;
        self.inner.flush()?;
        let summary = FileSummary {
            plaintext_len: self.plaintext_len,
            blob_len: self.blob_len,
            blob_sha256: self.hasher.finalize().into(),
            chunk_size: self.enc.header().chunk_size,
        };
        Ok((self.inner, summary))
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let written = data.len();
        let size = self.enc.header().chunk_size as usize;
        while !data.is_empty() {
            if self.pending.len() == size {
                // More data follows, so the buffered chunk is not the last.
                self.emit_pending(false)?;
            }
            if self.pending.is_empty() && data.len() > size {
                // Whole chunks straight from the caller's buffer, with data after them.
                let (chunk, rest) = data.split_at(size);
                self.emit_slice(chunk)?;
                self.plaintext_len += size as u64;
                data = rest;
                continue;
            }
            let take = (size - self.pending.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.pending.extend_from_slice(head);
            self.plaintext_len += take as u64;
            data = rest;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts an encrypted blob written to it, passing the plaintext to `inner`.
///
/// Plaintext reaches `inner` chunk by chunk as each authenticates, but the file as a
/// whole is only known complete when [`DecryptWriter::finish`] succeeds; until then
/// callers treat the output as unfinished. A failure inside `write` is an
/// `io::ErrorKind::InvalidData` error wrapping the [`FileError`]; it poisons the writer.
pub struct DecryptWriter<W: Write> {
    inner: W,
    key: FileKey,
    header: Vec<u8>,
    dec: Option<ChunkDecryptor>,
    pending: Vec<u8>,
    out: Zeroizing<Vec<u8>>,
    hasher: Sha256,
    plaintext_len: u64,
    blob_len: u64,
    failed: Option<FileError>,
}

impl<W: Write> fmt::Debug for DecryptWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptWriter")
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl<W: Write> DecryptWriter<W> {
    /// A decryptor for a blob under `key`; the header comes with the first bytes.
    pub fn new(inner: W, key: &FileKey) -> Self {
        Self {
            inner,
            key: key.clone(),
            header: Vec::with_capacity(STREAM_HEADER_LEN),
            dec: None,
            pending: Vec::new(),
            out: Zeroizing::new(Vec::new()),
            hasher: Sha256::new(),
            plaintext_len: 0,
            blob_len: 0,
            failed: None,
        }
    }

    fn fail(&mut self, e: FileError) -> FileError {
        self.failed = Some(e.clone());
        e
    }

    fn absorb(&mut self, mut data: &[u8]) -> Result<(), StreamError> {
        if self.dec.is_none() {
            let take = (STREAM_HEADER_LEN - self.header.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.header.extend_from_slice(head);
            data = rest;
            if self.header.len() < STREAM_HEADER_LEN {
                return Ok(());
            }
            let dec = ChunkDecryptor::new(&self.key, &self.header)?;
            let full = dec.max_chunk_len();
            self.pending = Vec::with_capacity(full);
            self.out = Zeroizing::new(vec![0; full]);
            self.dec = Some(dec);
        }
        let full = self.dec.as_ref().map_or(0, ChunkDecryptor::max_chunk_len);
        while !data.is_empty() {
            if self.pending.len() == full {
                self.decrypt_pending(false)?;
            }
            if self.pending.is_empty() && data.len() > full {
                let (chunk, rest) = data.split_at(full);
                self.decrypt_slice(chunk)?;
                data = rest;
                continue;
            }
            let take = (full - self.pending.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.pending.extend_from_slice(head);
            data = rest;
        }
        Ok(())
    }

    fn decrypt_pending(&mut self, last: bool) -> Result<(), StreamError> {
        let dec = self.dec.as_mut().ok_or(FileError::Truncated)?;
        let n = dec.decrypt_chunk(&self.pending, last, &mut self.out)?;
        self.pending.clear();
        self.deliver(n)
    }

    fn decrypt_slice(&mut self, chunk: &[u8]) -> Result<(), StreamError> {
        let dec = self.dec.as_mut().ok_or(FileError::Truncated)?;
        let n = dec.decrypt_chunk(chunk, false, &mut self.out)?;
        self.deliver(n)
    }

    fn deliver(&mut self, n: usize) -> Result<(), StreamError> {
        let plain = self.out.get(..n).ok_or(FileError::BufferTooSmall)?;
        self.inner.write_all(plain)?;
        self.plaintext_len += n as u64;
        Ok(())
    }

    /// Decrypts the final chunk and checks that the stream is complete. Returns the
    /// writer and the blob's summary, which the caller compares with the attachment
    /// (size, SHA-256, chunk size).
    pub fn finish(mut self) -> Result<(W, FileSummary), StreamError> {
        if let Some(e) = self.failed.take() {
            return Err(e.into());
        }
        let chunk_size = match &self.dec {
            Some(dec) if !self.pending.is_empty() => dec.header().chunk_size,
            _ => return Err(FileError::Truncated.into()),
        };
        self.decrypt_pending(true)?;
        self.inner.flush()?;
        let summary = FileSummary {
            plaintext_len: self.plaintext_len,
            blob_len: self.blob_len,
            blob_sha256: self.hasher.finalize().into(),
            chunk_size,
        };
        Ok((self.inner, summary))
    }
}

impl<W: Write> Write for DecryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(invalid(e.clone()));
        }
        self.hasher.update(data);
        self.blob_len += data.len() as u64;
        match self.absorb(data) {
            Ok(()) => Ok(data.len()),
            Err(StreamError::File(e)) => Err(invalid(self.fail(e))),
            Err(StreamError::Io(e)) => {
                self.fail(FileError::OutputFailed);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;
    use proptest::prelude::*;

    const SMALL: u32 = MIN_CHUNK_SIZE;

    fn encrypt(key: &FileKey, data: &[u8], chunk_size: u32, seed: u64) -> (Vec<u8>, FileSummary) {
        let mut w = EncryptWriter::new(Vec::new(), key, chunk_size, &mut test_rng(seed)).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn decrypt(key: &FileKey, blob: &[u8]) -> Result<Vec<u8>, FileError> {
        let mut w = DecryptWriter::new(Vec::new(), key);
        if let Err(e) = w.write_all(blob) {
            let inner = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<FileError>())
                .cloned();
            return Err(inner.expect("crypto failures carry their FileError"));
        }
        match w.finish() {
            Ok((out, _)) => Ok(out),
            Err(StreamError::File(e)) => Err(e),
            Err(StreamError::Io(e)) => panic!("io: {e}"),
        }
    }

    /// Splits a blob into its header and chunks.
    fn chunks(blob: &[u8], chunk_size: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (h, rest) = blob.split_at(STREAM_HEADER_LEN);
        (
            h.to_vec(),
            rest.chunks(chunk_size as usize + TAG_LEN)
                .map(<[u8]>::to_vec)
                .collect(),
        )
    }

    fn join(h: &[u8], cs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = h.to_vec();
        cs.iter().for_each(|c| out.extend_from_slice(c));
        out
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn edge_sizes_round_trip() {
        let key = FileKey::generate(&mut test_rng(1));
        let s = SMALL as usize;
        for n in [0, 1, s - 1, s, s + 1, 2 * s, 3 * s + 5] {
            let plain = data(n);
            let (blob, summary) = encrypt(&key, &plain, SMALL, 2);
            let chunks_expected = if n == 0 { 1 } else { n.div_ceil(s) };
            assert_eq!(
                blob.len(),
                STREAM_HEADER_LEN + n + chunks_expected * TAG_LEN,
                "size {n}"
            );
            assert_eq!(summary.plaintext_len, n as u64);
            assert_eq!(summary.blob_len, blob.len() as u64);
            assert_eq!(summary.blob_sha256, blob_sha256(&blob));
            assert_eq!(decrypt(&key, &blob).unwrap(), plain, "size {n}");
        }
    }

    #[test]
    fn write_pattern_does_not_change_the_blob() {
        // One byte at a time gives the same blob as one big write.
        let key = FileKey::generate(&mut test_rng(1));
        let plain = data(300);
        let (whole, _) = encrypt(&key, &plain, SMALL, 3);
        let mut w = EncryptWriter::new(Vec::new(), &key, SMALL, &mut test_rng(3)).unwrap();
        for b in &plain {
            w.write_all(&[*b]).unwrap();
        }
        assert_eq!(w.finish().unwrap().0, whole);
        let mut d = DecryptWriter::new(Vec::new(), &key);
        for b in &whole {
            d.write_all(&[*b]).unwrap();
        }
        let (out, summary) = d.finish().unwrap();
        assert_eq!(out, plain);
        assert_eq!(summary.blob_sha256, blob_sha256(&whole));
    }

    #[test]
    fn truncation_is_detected() {
        let key = FileKey::generate(&mut test_rng(1));
        let (blob, _) = encrypt(&key, &data(200), SMALL, 4);
        let (h, cs) = chunks(&blob, SMALL);
        assert_eq!(cs.len(), 4);
        // Dropping the final chunk leaves a full chunk that is not final.
        assert_eq!(
            decrypt(&key, &join(&h, &cs[..3])),
            Err(FileError::Truncated)
        );
        assert_eq!(
            decrypt(&key, &join(&h, &cs[..1])),
            Err(FileError::Truncated)
        );
        // Header only, part of a header, nothing.
        assert_eq!(decrypt(&key, &h), Err(FileError::Truncated));
        assert_eq!(decrypt(&key, &h[..5]), Err(FileError::Truncated));
        assert_eq!(decrypt(&key, &[]), Err(FileError::Truncated));
        // Cut inside a chunk.
        assert_eq!(
            decrypt(&key, &blob[..blob.len() - 40]),
            Err(FileError::BadChunk { index: 2 })
        );
    }

    #[test]
    fn reordering_and_swapping_are_detected() {
        let key = FileKey::generate(&mut test_rng(1));
        let (blob, _) = encrypt(&key, &data(250), SMALL, 5);
        let (h, mut cs) = chunks(&blob, SMALL);
        cs.swap(0, 1);
        assert_eq!(
            decrypt(&key, &join(&h, &cs)),
            Err(FileError::BadChunk { index: 0 })
        );
        let (h, mut cs) = chunks(&blob, SMALL);
        cs.swap(1, 2);
        assert_eq!(
            decrypt(&key, &join(&h, &cs)),
            Err(FileError::BadChunk { index: 1 })
        );
        // A chunk repeated in place of another.
        let (h, mut cs) = chunks(&blob, SMALL);
        cs[2] = cs[0].clone();
        assert_eq!(
            decrypt(&key, &join(&h, &cs)),
            Err(FileError::BadChunk { index: 2 })
        );
    }

    #[test]
    fn extension_is_detected() {
        let key = FileKey::generate(&mut test_rng(1));
        // A whole number of chunks: the final chunk is full.
        let (blob, _) = encrypt(&key, &data(3 * SMALL as usize), SMALL, 6);
        let (h, mut cs) = chunks(&blob, SMALL);
        cs.push(cs[1].clone());
        assert_eq!(decrypt(&key, &join(&h, &cs)), Err(FileError::Extended));
        let mut more = blob.clone();
        more.push(0);
        assert_eq!(decrypt(&key, &more), Err(FileError::Extended));
        // A short final chunk followed by junk no longer authenticates at all.
        let (blob, _) = encrypt(&key, &data(150), SMALL, 6);
        let mut more = blob.clone();
        more.extend_from_slice(&[0; 30]);
        assert_eq!(decrypt(&key, &more), Err(FileError::BadChunk { index: 2 }));
    }

    #[test]
    fn flipped_bytes_and_wrong_keys_are_detected() {
        let key = FileKey::generate(&mut test_rng(1));
        let (blob, _) = encrypt(&key, &data(200), SMALL, 7);
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let err = decrypt(&key, &bad).unwrap_err();
            match i {
                0 => assert_eq!(err, FileError::Header(DecodeError::UnsupportedVersion(0))),
                // The chunk size field: either no longer a valid size, or a valid one
                // that the header-bound chunks no longer authenticate under.
                1..=4 => assert!(
                    matches!(err, FileError::Header(_) | FileError::BadChunk { index: 0 }),
                    "byte {i}: {err:?}"
                ),
                5..=11 => assert_eq!(err, FileError::BadChunk { index: 0 }, "byte {i}"),
                _ => {
                    let index = ((i - 12) / (SMALL as usize + TAG_LEN)) as u64;
                    assert_eq!(err, FileError::BadChunk { index }, "byte {i}");
                }
            }
        }
        let other = FileKey::generate(&mut test_rng(2));
        assert_eq!(
            decrypt(&other, &blob),
            Err(FileError::BadChunk { index: 0 })
        );
    }

    #[test]
    fn push_api_checks_lengths_and_order() {
        let key = FileKey::generate(&mut test_rng(1));
        let mut enc = ChunkEncryptor::new(&key, SMALL, &mut test_rng(2)).unwrap();
        let mut out = vec![0u8; SMALL as usize + TAG_LEN];
        assert_eq!(
            enc.encrypt_chunk(&[1; 10], false, &mut out),
            Err(FileError::ChunkLength { index: 0 })
        );
        assert_eq!(
            enc.encrypt_chunk(&[1; 10], true, &mut out[..20]),
            Err(FileError::BufferTooSmall)
        );
        let n = enc.encrypt_chunk(&[1; 10], true, &mut out).unwrap();
        assert_eq!(
            enc.encrypt_chunk(&[], true, &mut out),
            Err(FileError::Finished)
        );
        let header = enc.header().encode();

        let mut dec = ChunkDecryptor::new(&key, &header).unwrap();
        let mut plain = vec![0u8; SMALL as usize];
        assert_eq!(dec.finish(), Err(FileError::Truncated));
        let too_long = vec![0u8; SMALL as usize + TAG_LEN + 1];
        assert_eq!(
            dec.decrypt_chunk(&too_long, false, &mut plain),
            Err(FileError::ChunkLength { index: 0 })
        );
        assert_eq!(
            dec.decrypt_chunk(&out[..n], true, &mut plain[..5]),
            Err(FileError::BufferTooSmall)
        );
        assert_eq!(dec.decrypt_chunk(&out[..n], true, &mut plain), Ok(10));
        assert_eq!(&plain[..10], &[1; 10]);
        assert_eq!(dec.finish(), Ok(()));
        assert_eq!(
            dec.decrypt_chunk(&out[..n], true, &mut plain),
            Err(FileError::Extended)
        );

        assert!(matches!(
            ChunkEncryptor::new(&key, MIN_CHUNK_SIZE - 1, &mut test_rng(2)),
            Err(FileError::Header(_))
        ));
        assert!(matches!(
            ChunkEncryptor::new(&key, MAX_CHUNK_SIZE + 1, &mut test_rng(2)),
            Err(FileError::Header(_))
        ));
        let mut bad = header;
        bad[1..5].copy_from_slice(&(MAX_CHUNK_SIZE + 1).to_be_bytes());
        assert_eq!(
            ChunkDecryptor::new(&key, &bad).map(|_| ()),
            Err(FileError::Header(DecodeError::InvalidField("chunk size")))
        );
    }

    #[test]
    fn an_empty_chunk_only_makes_an_empty_file() {
        let key = FileKey::generate(&mut test_rng(1));
        let mut enc = ChunkEncryptor::new(&key, SMALL, &mut test_rng(2)).unwrap();
        let mut out = vec![0u8; SMALL as usize + TAG_LEN];
        let first = enc
            .encrypt_chunk(&data(SMALL as usize), false, &mut out)
            .unwrap();
        let first = out[..first].to_vec();
        assert_eq!(
            enc.encrypt_chunk(&[], true, &mut out),
            Err(FileError::ChunkLength { index: 1 })
        );
        let mut dec = ChunkDecryptor::new(&key, &enc.header().encode()).unwrap();
        let mut plain = vec![0u8; SMALL as usize];
        dec.decrypt_chunk(&first, false, &mut plain).unwrap();
        assert_eq!(
            dec.decrypt_chunk(&[0u8; TAG_LEN], true, &mut plain),
            Err(FileError::ChunkLength { index: 1 })
        );
        // An empty file is one empty final chunk, and round-trips.
        let (blob, summary) = encrypt(&key, &[], SMALL, 3);
        assert_eq!(blob.len(), STREAM_HEADER_LEN + TAG_LEN);
        assert_eq!(summary.plaintext_len, 0);
        let mut d = DecryptWriter::new(Vec::new(), &key);
        d.write_all(&blob).unwrap();
        assert!(d.finish().unwrap().0.is_empty());
    }

    #[test]
    fn a_poisoned_decryptor_stays_failed() {
        let key = FileKey::generate(&mut test_rng(1));
        let (mut blob, _) = encrypt(&key, &data(200), SMALL, 8);
        blob[20] ^= 1;
        let mut d = DecryptWriter::new(Vec::new(), &key);
        assert!(d.write_all(&blob).is_err());
        assert_eq!(
            d.write(&[0]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(matches!(
            d.finish(),
            Err(StreamError::File(FileError::BadChunk { index: 0 }))
        ));
    }

    /// A writer that takes `room` bytes and then fails.
    struct FailingSink {
        room: usize,
    }

    impl Write for FailingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if buf.len() > self.room {
                return Err(io::Error::other("disk full"));
            }
            self.room -= buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_decryptor_whose_output_failed_stays_failed() {
        let key = FileKey::generate(&mut test_rng(1));
        let (blob, _) = encrypt(&key, &data(300), SMALL, 8);
        let mut d = DecryptWriter::new(FailingSink { room: 0 }, &key);
        // The first full chunk is decrypted and its output write fails.
        assert_eq!(d.write_all(&blob).unwrap_err().kind(), io::ErrorKind::Other);
        // Carrying on would leave a hole in the plaintext: refused from now on.
        assert_eq!(
            d.write(&[0]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(matches!(
            d.finish(),
            Err(StreamError::File(FileError::OutputFailed))
        ));
    }

    #[test]
    fn summaries_match_their_attachment() {
        let key = FileKey::generate(&mut test_rng(1));
        let plain = data(100);
        let (blob, summary) = encrypt(&key, &plain, SMALL, 9);
        let mut a = crate::body::Attachment {
            file_id: "f".into(),
            file_key: key.clone(),
            name: "n".into(),
            media_type: "text/plain".into(),
            size: 100,
            blob_sha256: blob_sha256(&blob),
            chunk_size: SMALL,
        };
        let mut d = DecryptWriter::new(Vec::new(), &key);
        d.write_all(&blob).unwrap();
        let (_, received) = d.finish().unwrap();
        assert_eq!(received, summary);
        assert!(a.matches(&received));
        a.size = 101;
        assert!(!a.matches(&received));
    }

    #[test]
    fn debug_prints_no_key() {
        let key = FileKey::from_bytes([0xab; 32]);
        assert!(!format!("{key:?}").contains("ab"));
        assert_eq!(key, FileKey::from_bytes([0xab; 32]));
        assert_ne!(key, FileKey::from_bytes([0xac; 32]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn files_round_trip(n in 0usize..1000, chunk in MIN_CHUNK_SIZE..300, seed: u64) {
            let key = FileKey::generate(&mut test_rng(seed));
            let plain = data(n);
            let (blob, summary) = encrypt(&key, &plain, chunk, seed);
            prop_assert_eq!(summary.chunk_size, chunk);
            prop_assert_eq!(decrypt(&key, &blob).unwrap(), plain);
        }

        #[test]
        fn stream_headers_round_trip(chunk in MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE, prefix: [u8; 7]) {
            let h = StreamHeader { chunk_size: chunk, nonce_prefix: prefix };
            prop_assert_eq!(StreamHeader::decode(&h.encode()).unwrap(), h);
        }
    }
}

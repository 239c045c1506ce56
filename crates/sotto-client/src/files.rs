//! Files (C8, E7): streaming upload and download, plain or end-to-end encrypted.
//!
//! Nothing here holds a whole file in memory: a file is read, encrypted and sent a
//! chunk at a time, and a download is decrypted and written a chunk at a time. A
//! download goes to a temporary file beside the target, which is renamed into place only
//! once everything was checked, so a failed or tampered transfer leaves no output.
//!
//! In a plaintext room a file is announced by an ordinary text message that refers to
//! it as `<file:ID>` ([`file_message`], [`file_reference`]); in an encrypted room by the
//! [`Attachment`] inside an encrypted message (docs/protocol.md §7.2, §8).

use crate::api::{check, seg};
use crate::client::Client;
use crate::error::{Error, Result};
use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use sotto_api::FileInfo;
use sotto_api::rooms::Room;
use sotto_crypto::file::{
    DEFAULT_CHUNK_SIZE, FileSummary, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, STREAM_HEADER_LEN, TAG_LEN,
};
use sotto_crypto::{Attachment, DecryptWriter, EncryptWriter, FileKey, os_rng};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

/// The media type of files whose type is unknown, and of every encrypted blob.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Bytes read from disk per step of a plain upload.
const READ_STEP: usize = 64 * 1024;

/// Pieces of a body waiting to be sent: with [`READ_STEP`]-sized pieces, an upload
/// holds a few hundred KiB at most.
const QUEUE: usize = 4;

/// Longest attachment name (docs/protocol.md §7.2), in UTF-8 bytes.
const MAX_ATTACHMENT_NAME: usize = 1024;

impl Client {
    /// Uploads `path` to a plaintext room, with its file name and a media type guessed
    /// from its extension. `progress(done, total)` is called as bytes leave. Refused
    /// when the server says the room is encrypted; announce the file with
    /// [`file_message`].
    pub async fn upload_plain(
        &self,
        room: &str,
        path: &Path,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<FileInfo> {
        let about: Room = self
            .api()
            .get(&format!("/api/v1/rooms/{}", seg(room)))
            .await?;
        if about.encrypted {
            return Err(Error::Invalid(
                "the room is end-to-end encrypted: its files must be encrypted too".into(),
            ));
        }
        let name = file_name(path)?;
        let mut file = open(path).await?;
        let total = file_len(&file, path).await?;
        let (tx, body) = body_channel();
        let request = self
            .api()
            .request(Method::POST, &format!("/api/v1/rooms/{}/files", seg(room)))
            .query(&[("name", name.as_str())])
            .header(CONTENT_TYPE, media_type(path))
            .header(CONTENT_LENGTH, total)
            .body(body)
            .send();
        let feed = feed_plain(tx.clone(), &mut file, path, total, &mut progress);
        let (info, ()) = upload(request, tx, feed).await?;
        if info.size != total {
            return Err(Error::protocol("the server stored another size than sent"));
        }
        Ok(info)
    }

    /// Uploads `path` to an encrypted room (E7): a fresh file key, chunks encrypted as
    /// they stream, and neither the name nor the real type sent to the server. The
    /// returned attachment carries the name, media type, size, blob hash, chunk size,
    /// file id and key; put it into an encrypted message to announce the file.
    /// `progress(done, total)` counts plaintext bytes.
    pub async fn upload_encrypted(
        &self,
        room: &str,
        path: &Path,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<Attachment> {
        let name = file_name(path)?;
        if name.len() > MAX_ATTACHMENT_NAME {
            return Err(Error::Invalid(format!(
                "file name longer than {MAX_ATTACHMENT_NAME} bytes"
            )));
        }
        let mut file = open(path).await?;
        let total = file_len(&file, path).await?;
        let blob_len = blob_len(total, DEFAULT_CHUNK_SIZE)
            .ok_or_else(|| Error::Invalid("file too large to encrypt".into()))?;
        let key = FileKey::generate(&mut os_rng());
        let (tx, body) = body_channel();
        let request = self
            .api()
            .request(Method::POST, &format!("/api/v1/rooms/{}/files", seg(room)))
            .header(CONTENT_TYPE, OCTET_STREAM)
            .header(CONTENT_LENGTH, blob_len)
            .body(body)
            .send();
        let feed = feed_encrypted(tx.clone(), &key, &mut file, path, total, &mut progress);
        let (info, summary) = upload(request, tx, feed).await?;
        let summary = summary.ok_or_else(|| Error::Transport("the upload ended early".into()))?;
        if info.size != summary.blob_len || summary.blob_len != blob_len {
            return Err(Error::protocol("the server stored another size than sent"));
        }
        Ok(Attachment {
            file_id: info.id,
            file_key: key,
            name,
            media_type: media_type(path).to_owned(),
            size: summary.plaintext_len,
            blob_sha256: summary.blob_sha256,
            chunk_size: summary.chunk_size,
        })
    }

    /// A file's metadata (name, type, size, room, uploader).
    pub async fn file_info(&self, file_id: &str) -> Result<FileInfo> {
        self.api()
            .get(&format!("/api/v1/files/{}", seg(file_id)))
            .await
    }

    /// Downloads a plaintext room's file to `out` (replacing any file there) and
    /// returns its size. `progress(done, total)` counts bytes received (`total` is the
    /// announced length).
    pub async fn download_plain(
        &self,
        file_id: &str,
        out: &Path,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<u64> {
        let answer = self.fetch(file_id).await?;
        let total = answer.content_length();
        let mut part = PartFile::create(out).await?;
        let mut stream = answer.bytes_stream();
        let mut done = 0u64;
        progress(0, total.unwrap_or(0));
        while let Some(piece) = stream.next().await {
            let piece = piece?;
            done += piece.len() as u64;
            if total.is_some_and(|t| done > t) {
                return Err(Error::protocol("the server sent more than it announced"));
            }
            part.write(&piece).await?;
            progress(done, total.unwrap_or(done));
        }
        if total.is_some_and(|t| done != t) {
            return Err(Error::Transport("the download ended early".into()));
        }
        part.commit(out).await?;
        Ok(done)
    }

    /// Downloads an encrypted room's file to `out` (replacing any file there),
    /// decrypting as it streams. The file appears only when the whole stream
    /// authenticated and its size, blob hash and chunk size match `attachment`; a
    /// tampered blob or a wrong key leaves no output file. `progress(done, total)`
    /// counts plaintext bytes.
    pub async fn download_encrypted(
        &self,
        attachment: &Attachment,
        out: &Path,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<()> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&attachment.chunk_size) {
            return Err(Error::protocol(
                "the attachment's chunk size is out of range",
            ));
        }
        let expected = blob_len(attachment.size, attachment.chunk_size)
            .ok_or_else(|| Error::protocol("the attachment's size is out of range"))?;
        let answer = self.fetch(&attachment.file_id).await?;
        if answer.content_length().is_some_and(|n| n != expected) {
            return Err(corrupted(
                "the stored file's size does not match the attachment",
            ));
        }
        let mut part = PartFile::create(out).await?;
        let spool = Spool::default();
        let mut dec = DecryptWriter::new(spool.clone(), &attachment.file_key);
        let mut stream = answer.bytes_stream();
        let (mut received, mut done) = (0u64, 0u64);
        progress(0, attachment.size);
        while let Some(piece) = stream.next().await {
            let piece = piece?;
            received += piece.len() as u64;
            // A blob longer than the attachment allows is refused before it fills a disk.
            if received > expected {
                return Err(corrupted(
                    "the stored file is longer than the attachment says",
                ));
            }
            dec.write_all(&piece).map_err(refused)?;
            let plain = spool.take();
            done += plain.len() as u64;
            part.write(&plain).await?;
            progress(done, attachment.size);
        }
        let (_, summary) = dec.finish().map_err(|e| refused(e.to_string()))?;
        let plain = spool.take();
        done += plain.len() as u64;
        part.write(&plain).await?;
        if !attachment.matches(&summary) {
            return Err(corrupted(
                "the file does not match its attachment (size, hash or chunk size)",
            ));
        }
        progress(done, attachment.size);
        part.commit(out).await
    }

    /// `GET` a file's bytes: the answer, once it is known to be a success.
    async fn fetch(&self, file_id: &str) -> Result<reqwest::Response> {
        let path = format!("/api/v1/files/{}/content", seg(file_id));
        check(self.api().request(Method::GET, &path).send().await?).await
    }
}

/// The text announcing an uploaded file in a plaintext room:
/// `NAME (SIZE) <file:ID>`. [`file_reference`] finds the id in it again.
pub fn file_message(info: &FileInfo) -> String {
    let name = info.name.as_deref().unwrap_or("file");
    format!("{name} ({}) <file:{}>", human_size(info.size), info.id)
}

/// The file id a plaintext message refers to: the last `<file:ID>` in `text` whose
/// `ID` is 1–64 characters of `A-Z a-z 0-9 . _ : -` (the protocol's id alphabet).
/// The last one counts, so a name or comment before it cannot redirect a download.
pub fn file_reference(text: &str) -> Option<&str> {
    const OPEN: &str = "<file:";
    let mut found = None;
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        if let Some(end) = after.find('>') {
            let id = &after[..end];
            if is_file_id(id) {
                found = Some(id);
            }
        }
        rest = after;
    }
    found
}

/// The media type for a file name, from its extension; [`OCTET_STREAM`] when unknown.
pub fn media_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => OCTET_STREAM,
    }
}

/// The size of the encrypted blob of `size` plaintext bytes (docs/protocol.md §8.1):
/// `12 + size + 16·max(1, ceil(size / chunk_size))`, or `None` past the format's limits.
pub fn blob_len(size: u64, chunk_size: u32) -> Option<u64> {
    let chunk = u64::from(chunk_size);
    if chunk == 0 {
        return None;
    }
    let chunks = size.div_ceil(chunk).max(1);
    if chunks > 1 << 32 {
        return None;
    }
    (STREAM_HEADER_LEN as u64)
        .checked_add(size)?
        .checked_add(chunks.checked_mul(TAG_LEN as u64)?)
}

fn is_file_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// `1.5 MiB`, `300 B`: for people, not for parsing.
fn human_size(size: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if size < 1024 {
        return format!("{size} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is all that is shown
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A file decryption failure: what the server sent is not the file the message
/// describes.
fn refused(e: impl std::fmt::Display) -> Error {
    corrupted(format!("it does not decrypt: {e}"))
}

fn corrupted(why: impl Into<String>) -> Error {
    Error::Corrupted(why.into())
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::Invalid(format!("not a file name: {}", path.display())))
}

async fn open(path: &Path) -> Result<tokio::fs::File> {
    tokio::fs::File::open(path)
        .await
        .map_err(Error::storage(format!("opening {}", path.display())))
}

async fn file_len(file: &tokio::fs::File, path: &Path) -> Result<u64> {
    let meta = file
        .metadata()
        .await
        .map_err(Error::storage(format!("reading {}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!("not a file: {}", path.display())));
    }
    Ok(meta.len())
}

/// Reads 1 to `buf.len()` bytes, but no more than `left`; a file that ends before its
/// announced length is an error (it changed while being sent).
async fn read_some(
    file: &mut tokio::fs::File,
    buf: &mut [u8],
    left: u64,
    path: &Path,
) -> Result<usize> {
    let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
    let mut got = 0;
    while got < want {
        let n = file
            .read(&mut buf[got..want])
            .await
            .map_err(Error::storage(format!("reading {}", path.display())))?;
        if n == 0 {
            return Err(Error::Invalid(format!(
                "{} got shorter while it was being sent",
                path.display()
            )));
        }
        got += n;
    }
    Ok(got)
}

type Piece = std::result::Result<Bytes, std::io::Error>;

/// A request body fed through a small queue, so reading the file and sending it run
/// side by side with bounded memory.
fn body_channel() -> (mpsc::Sender<Piece>, reqwest::Body) {
    let (tx, rx) = mpsc::channel::<Piece>(QUEUE);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    (tx, reqwest::Body::wrap_stream(stream))
}

/// Queues a piece; `false` when the request is gone (it failed or was answered early).
async fn send(tx: &mpsc::Sender<Piece>, piece: impl Into<Bytes>) -> bool {
    tx.send(Ok(piece.into())).await.is_ok()
}

/// Runs an upload: the request and `feed`, which queues the body on a clone of `tx`,
/// side by side; then the server's answer. A failed feed ends the body with an error,
/// so the server sees an interrupted upload and stores nothing.
async fn upload<T>(
    request: impl Future<Output = reqwest::Result<reqwest::Response>>,
    tx: mpsc::Sender<Piece>,
    feed: impl Future<Output = Result<T>>,
) -> Result<(FileInfo, T)> {
    let (answer, fed) = futures_util::future::join(request, async move {
        let out = feed.await;
        if out.is_err() {
            let _ = tx
                .send(Err(std::io::Error::other("upload abandoned")))
                .await;
        }
        drop(tx);
        out
    })
    .await;
    let fed = fed?;
    let info = check(answer?).await?.json().await?;
    Ok((info, fed))
}

/// Queues a plain file's bytes.
async fn feed_plain(
    tx: mpsc::Sender<Piece>,
    file: &mut tokio::fs::File,
    path: &Path,
    total: u64,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<()> {
    progress(0, total);
    let mut done = 0u64;
    let mut buf = vec![0u8; READ_STEP];
    while done < total {
        let n = read_some(file, &mut buf, total - done, path).await?;
        if !send(&tx, Bytes::copy_from_slice(&buf[..n])).await {
            return Ok(());
        }
        done += n as u64;
        progress(done, total);
    }
    Ok(())
}

/// Queues a file's encrypted blob, encrypting a chunk at a time; the blob's summary,
/// or `None` when the request ended before the whole blob was queued.
async fn feed_encrypted(
    tx: mpsc::Sender<Piece>,
    key: &FileKey,
    file: &mut tokio::fs::File,
    path: &Path,
    total: u64,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Option<FileSummary>> {
    let cannot = |e: &dyn std::fmt::Display| Error::Invalid(format!("cannot encrypt: {e}"));
    let spool = Spool::default();
    let mut enc = EncryptWriter::new(spool.clone(), key, DEFAULT_CHUNK_SIZE, &mut os_rng())
        .map_err(|e| cannot(&e))?;
    progress(0, total);
    let mut done = 0u64;
    let mut buf = Zeroizing::new(vec![0u8; DEFAULT_CHUNK_SIZE as usize]);
    while done < total {
        let n = read_some(file, &mut buf, total - done, path).await?;
        enc.write_all(&buf[..n]).map_err(|e| cannot(&e))?;
        done += n as u64;
        if !send(&tx, spool.take()).await {
            return Ok(None);
        }
        progress(done, total);
    }
    let (_, summary) = enc.finish().map_err(|e| cannot(&e))?;
    if !send(&tx, spool.take()).await {
        return Ok(None);
    }
    Ok(Some(summary))
}

/// Where a stream adapter writes, drained after every step.
#[derive(Clone, Default)]
struct Spool(Arc<Mutex<Vec<u8>>>);

impl Spool {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Spool {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A download in progress: a new file beside the target, removed unless committed.
struct PartFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl PartFile {
    async fn create(target: &Path) -> Result<Self> {
        let name = target
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("not a file name: {}", target.display())))?;
        // Unique within the process; `create_new` refuses anything already there.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // A shortened name keeps the temporary name within file-name length limits.
        let short: String = name.to_string_lossy().chars().take(64).collect();
        let part = format!(
            ".{short}.{}-{}.part",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = target.with_file_name(part);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(Error::storage(format!("creating {}", path.display())))?;
        Ok(Self {
            path,
            file: Some(file),
        })
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Invalid("download already finished".into()))?;
        file.write_all(data)
            .await
            .map_err(Error::storage(format!("writing {}", self.path.display())))
    }

    /// Makes the file durable and gives it the target's name.
    async fn commit(mut self, target: &Path) -> Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()
                .await
                .map_err(Error::storage(format!("writing {}", self.path.display())))?;
            file.sync_all()
                .await
                .map_err(Error::storage(format!("writing {}", self.path.display())))?;
        }
        tokio::fs::rename(&self.path, target)
            .await
            .map_err(Error::storage(format!("saving {}", target.display())))?;
        // Renamed: nothing left to remove.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, name: Option<&str>, size: u64) -> FileInfo {
        FileInfo {
            id: id.into(),
            room_id: "r".into(),
            uploader_id: "u".into(),
            name: name.map(Into::into),
            content_type: OCTET_STREAM.into(),
            size,
            created_at: 0,
        }
    }

    #[test]
    fn references_round_trip() {
        let text = file_message(&info("f_1-a.B:2", Some("report.pdf"), 1536));
        assert_eq!(text, "report.pdf (1.5 KiB) <file:f_1-a.B:2>");
        assert_eq!(file_reference(&text), Some("f_1-a.B:2"));
        let with_comment = format!("see this\n{text}");
        assert_eq!(file_reference(&with_comment), Some("f_1-a.B:2"));
    }

    #[test]
    fn the_last_valid_reference_counts() {
        let text = file_message(&info("real", Some("<file:fake>.txt"), 10));
        assert_eq!(file_reference(&text), Some("real"));
        assert_eq!(file_reference("<file:a b> <file:>"), None);
        assert_eq!(file_reference("no file here"), None);
        assert_eq!(file_reference("<file:x"), None);
        assert_eq!(file_reference(&format!("<file:{}>", "a".repeat(65))), None);
        assert_eq!(file_reference("<file:ok> <file:bad/>"), Some("ok"));
    }

    #[test]
    fn blob_lengths_follow_the_stream_format() {
        assert_eq!(blob_len(0, 64), Some(12 + 16));
        assert_eq!(blob_len(64, 64), Some(12 + 64 + 16));
        assert_eq!(blob_len(65, 64), Some(12 + 65 + 32));
        assert_eq!(blob_len(u64::MAX, 64), None);
        assert_eq!(blob_len(1, 0), None);
    }

    #[test]
    fn media_types_are_guessed_from_extensions() {
        assert_eq!(media_type(Path::new("a/B.PNG")), "image/png");
        assert_eq!(media_type(Path::new("notes.txt")), "text/plain");
        assert_eq!(media_type(Path::new("x.unknown")), OCTET_STREAM);
        assert_eq!(media_type(Path::new("Makefile")), OCTET_STREAM);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(200 * 1024 * 1024), "200.0 MiB");
    }
}

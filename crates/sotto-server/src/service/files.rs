//! C8 files. Access follows the room a file was posted in, with the rules of its message
//! history: members only; a private room's files do not exist for anyone else (`NotFound`),
//! a public room's are `Forbidden` to non-members. The uploader or a room owner deletes.
//!
//! The bytes stream from the request into the blob store and back out; the size cap
//! (`files.max_size_bytes`) is enforced while streaming. In encrypted rooms the bytes are
//! ciphertext made by clients; the server stores them like any other.

use super::{Actor, RoomService, ServiceError, SettingsService, now_ms, tokens};
use crate::store::{BlobStore, ByteStream, FileRecord, FileStore, MemberRecord, PutError};
use sotto_api::FileInfo;
use std::sync::Arc;

/// Longest file name, in characters.
pub const NAME_MAX_CHARS: usize = 255;
/// Longest media type, in bytes.
pub const CONTENT_TYPE_MAX_BYTES: usize = 255;
/// The media type of an upload that declares none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Files: metadata in a [`FileStore`], bytes in a [`BlobStore`] under the same id.
pub struct FileService {
    rooms: Arc<RoomService>,
    files: Arc<dyn FileStore>,
    blobs: Arc<dyn BlobStore>,
    settings: Arc<SettingsService>,
}

/// What an upload says about itself, besides its bytes.
#[derive(Clone, Debug, Default)]
pub struct Upload {
    /// File name, if given.
    pub name: Option<String>,
    /// Media type, if given.
    pub content_type: Option<String>,
    /// The size the client announced (`Content-Length`), if any.
    pub declared_size: Option<u64>,
}

/// A file to send: its metadata and its bytes.
pub struct Download {
    /// Metadata (the size is the stream's length).
    pub info: FileInfo,
    /// The bytes.
    pub content: ByteStream,
}

/// A file name: trimmed, 1–255 characters; no control or bidirectional-override
/// characters (which disguise extensions), no path separators, not `.` or `..`.
pub fn file_name(n: &str) -> Result<String, ServiceError> {
    let n = n.trim();
    let count = n.chars().count();
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if count == 0
        || count > NAME_MAX_CHARS
        || n == "."
        || n == ".."
        || n.chars()
            .any(|c| c.is_control() || bidi(c) || c == '/' || c == '\\')
    {
        return Err(ServiceError::InvalidInput(format!(
            "name: 1–{NAME_MAX_CHARS} characters, no control characters or path separators, not '.' or '..'"
        )));
    }
    Ok(n.to_owned())
}

/// A media type: `type/subtype` of token characters, optionally followed by `;`
/// parameters, all printable ASCII, at most 255 bytes.
pub fn content_type(t: &str) -> Result<String, ServiceError> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    let t = t.trim();
    let essence = t.split(';').next().unwrap_or("");
    let ok = t.len() <= CONTENT_TYPE_MAX_BYTES
        && t.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && essence
            .trim()
            .split_once('/')
            .is_some_and(|(a, b)| token(a) && token(b));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(ServiceError::InvalidInput(format!(
            "Content-Type: a media type such as text/plain, at most {CONTENT_TYPE_MAX_BYTES} printable ASCII bytes"
        )))
    }
}

fn view(f: &FileRecord) -> FileInfo {
    FileInfo {
        id: f.id.clone(),
        room_id: f.room_id.clone(),
        uploader_id: f.uploader_id.clone(),
        name: f.name.clone(),
        content_type: f.content_type.clone(),
        size: u64::try_from(f.size).unwrap_or(0),
        created_at: f.created_at,
    }
}

fn too_large(max: u64) -> ServiceError {
    ServiceError::TooLarge(format!(
        "file: at most {max} bytes (the files.max_size_bytes setting)"
    ))
}

impl FileService {
    /// Over the room rules, the stores and the settings (for the size cap).
    pub fn new(
        rooms: Arc<RoomService>,
        files: Arc<dyn FileStore>,
        blobs: Arc<dyn BlobStore>,
        settings: Arc<SettingsService>,
    ) -> Self {
        Self {
            rooms,
            files,
            blobs,
            settings,
        }
    }

    /// Stores a file posted in `room_id` (members only). Access and the request's
    /// metadata are checked before any byte is read.
    pub async fn upload(
        &self,
        actor: &Actor,
        room_id: &str,
        upload: Upload,
        data: ByteStream,
    ) -> Result<FileInfo, ServiceError> {
        let (room, me) = self.rooms.member_of(actor, room_id).await?;
        let name = upload.name.as_deref().map(file_name).transpose()?;
        let content_type = match upload.content_type.as_deref() {
            Some(t) => content_type(t)?,
            None => DEFAULT_CONTENT_TYPE.to_owned(),
        };
        let max = self
            .settings
            .get(&Actor::Operator)
            .await?
            .files_max_size_bytes;
        if upload.declared_size.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        let id = tokens::new_id()?;
        let size = match self.blobs.put(&id, data, max).await {
            Ok(size) => size,
            Err(PutError::TooLarge(max)) => return Err(too_large(max)),
            Err(PutError::Source(_)) => {
                return Err(ServiceError::InvalidInput(
                    "body: the upload could not be read to its end".into(),
                ));
            }
            Err(PutError::Store(e)) => return Err(e.into()),
        };
        let record = FileRecord {
            id,
            room_id: room.id,
            uploader_id: me.user_id,
            name,
            content_type,
            size: i64::try_from(size).map_err(|_| too_large(max))?,
            created_at: now_ms(),
        };
        if let Err(e) = self.files.insert_file(&record).await {
            self.remove_blob(&record.id).await;
            return Err(e.into());
        }
        tracing::info!(file_id = %record.id, room_id = %record.room_id, size, "file uploaded");
        Ok(view(&record))
    }

    /// The file and the caller's membership of its room; `NotFound` for files the caller
    /// may not know of.
    async fn readable(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(FileRecord, MemberRecord), ServiceError> {
        let file = self
            .files
            .file(id)
            .await?
            .ok_or(ServiceError::NotFound("file"))?;
        match self.rooms.member_of(actor, &file.room_id).await {
            Ok((_, me)) => Ok((file, me)),
            Err(ServiceError::NotFound(_)) => Err(ServiceError::NotFound("file")),
            Err(e) => Err(e),
        }
    }

    /// A file's metadata (members of its room).
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<FileInfo, ServiceError> {
        Ok(view(&self.readable(actor, id).await?.0))
    }

    /// A file's metadata and bytes (members of its room).
    pub async fn download(&self, actor: &Actor, id: &str) -> Result<Download, ServiceError> {
        let (file, _) = self.readable(actor, id).await?;
        let content = self.blobs.open(&file.id).await?.ok_or_else(|| {
            ServiceError::Internal(format!("blob of file {} is missing", file.id))
        })?;
        Ok(Download {
            info: view(&file),
            content,
        })
    }

    /// Deletes a file: its uploader or an owner of its room, while a member.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<(), ServiceError> {
        let (file, me) = self.readable(actor, id).await?;
        if file.uploader_id != me.user_id && !me.owner {
            return Err(ServiceError::Forbidden(
                "only the uploader or a room owner may delete a file",
            ));
        }
        // Metadata first: once it is gone the file cannot be reached, even if the blob
        // outlives a failure below.
        if !self.files.delete_file(id).await? {
            return Err(ServiceError::NotFound("file"));
        }
        self.remove_blob(id).await;
        tracing::info!(file_id = %id, room_id = %file.room_id, "file deleted");
        Ok(())
    }

    async fn remove_blob(&self, id: &str) {
        if let Err(e) = self.blobs.delete(id).await {
            tracing::warn!(file_id = %id, error = %e, "removing a blob failed; it is unreachable");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(file_name("  report.pdf ").unwrap(), "report.pdf");
        assert!(file_name(&"é".repeat(255)).is_ok());
        for bad in [
            "",
            "  ",
            ".",
            "..",
            "a/b",
            "..\\x",
            "a\u{0}b",
            "a\nb",
            "a\u{85}b",
            "invoice\u{202e}fdp.exe",
            &"x".repeat(256),
        ] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_types() {
        for good in [
            "text/plain",
            "image/png",
            "text/plain; charset=utf-8",
            "application/vnd.oasis.opendocument.text",
        ] {
            assert_eq!(content_type(good).unwrap(), good);
        }
        for bad in [
            "",
            "text",
            "/plain",
            "text/",
            "te xt/plain",
            "text/plain\r\nx: y",
            "text/plaïn",
            &format!("text/{}", "x".repeat(251)),
        ] {
            assert!(content_type(bad).is_err(), "{bad:?}");
        }
    }
}

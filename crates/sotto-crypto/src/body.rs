//! The plaintext inside a message envelope: text, references, mentions and the
//! attachments with the keys that open their files.

use crate::VERSION;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::file::{FileKey, FileSummary, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::ids::{MessageId, RoomId, UserId};
use std::collections::BTreeSet;
use std::fmt;

/// Longest attachment name, in UTF-8 bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest media type, in bytes.
pub const MAX_MEDIA_TYPE_LEN: usize = 255;
/// Most attachments in one message.
pub const MAX_ATTACHMENTS: usize = 64;

/// One file attached to a message: where the server keeps the encrypted blob, and
/// what a member needs to fetch, check and decrypt it.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The server's id of the uploaded blob (same alphabet as user and room ids).
    pub file_id: String,
    /// The file's own random key (see [`crate::file`]).
    pub file_key: FileKey,
    /// The file's name as the sender chose it.
    pub name: String,
    /// The media type, such as `image/png`.
    pub media_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the whole encrypted blob, stream header included.
    pub blob_sha256: [u8; 32],
    /// Plaintext bytes per chunk, as in the blob's stream header.
    pub chunk_size: u32,
}

impl Attachment {
    /// Whether a downloaded blob is the one this attachment describes: same
    /// plaintext size, blob SHA-256 and chunk size (checked after
    /// [`crate::file::DecryptWriter::finish`] succeeds).
    pub fn matches(&self, summary: &FileSummary) -> bool {
        self.size == summary.plaintext_len
            && self.blob_sha256 == summary.blob_sha256
            && self.chunk_size == summary.chunk_size
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Name and type are private to the room; show only what the server sees too.
        f.debug_struct("Attachment")
            .field("file_id", &self.file_id)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The decrypted content of a message.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageBody {
    /// The room, repeated from the header so a moved envelope is noticed.
    pub room: RoomId,
    /// The sender, repeated from the header so a re-attributed envelope is noticed.
    pub sender: UserId,
    /// The message text (UTF-8, may be empty).
    pub text: String,
    /// The message this one answers.
    pub reply_to: Option<MessageId>,
    /// The message this one replaces (an edit).
    pub edit_of: Option<MessageId>,
    /// Users mentioned, in byte order of their ids.
    pub mentions: BTreeSet<UserId>,
    /// Attached files, in the sender's order.
    pub attachments: Vec<Attachment>,
}

impl fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageBody")
            .field("room", &self.room)
            .field("sender", &self.sender)
            .field("text_len", &self.text.len())
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

impl MessageBody {
    /// A text message with no references, mentions or attachments.
    pub fn text(room: RoomId, sender: UserId, text: impl Into<String>) -> Self {
        Self {
            room,
            sender,
            text: text.into(),
            reply_to: None,
            edit_of: None,
            mentions: BTreeSet::new(),
            attachments: Vec::new(),
        }
    }

    /// The canonical encoding, after checking every field against its limits.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        let mut w = Writer::new();
        w.u8(VERSION);
        self.room.encode(&mut w);
        self.sender.encode(&mut w);
        let text = self.text.as_bytes();
        if u32::try_from(text.len()).is_err() {
            return Err(DecodeError::InvalidField("text"));
        }
        w.bytes32(text);
        encode_ref(&mut w, self.reply_to);
        encode_ref(&mut w, self.edit_of);
        let mentions = u16::try_from(self.mentions.len())
            .map_err(|_| DecodeError::InvalidField("mentions"))?;
        w.u16(mentions);
        for m in &self.mentions {
            m.encode(&mut w);
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(DecodeError::InvalidField("attachments"));
        }
        w.u8(self.attachments.len() as u8);
        for a in &self.attachments {
            encode_attachment(&mut w, a)?;
        }
        Ok(w.finish())
    }

    /// Decodes and checks a body encoded by [`MessageBody::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let room = RoomId::decode(&mut r)?;
        let sender = UserId::decode(&mut r)?;
        let text = std::str::from_utf8(r.bytes32()?)
            .map_err(|_| DecodeError::InvalidField("text"))?
            .to_owned();
        let reply_to = decode_ref(&mut r)?;
        let edit_of = decode_ref(&mut r)?;
        let mut mentions = BTreeSet::new();
        for _ in 0..r.u16()? {
            let m = UserId::decode(&mut r)?;
            // Strictly increasing order keeps the encoding unique.
            if mentions.last().is_some_and(|last| *last >= m) {
                return Err(DecodeError::InvalidField("mentions"));
            }
            mentions.insert(m);
        }
        let count = usize::from(r.u8()?);
        if count > MAX_ATTACHMENTS {
            return Err(DecodeError::InvalidField("attachments"));
        }
        let mut attachments = Vec::with_capacity(count);
        for _ in 0..count {
            attachments.push(decode_attachment(&mut r)?);
        }
        r.finish()?;
        Ok(Self {
            room,
            sender,
            text,
            reply_to,
            edit_of,
            mentions,
            attachments,
        })
    }
}

fn encode_ref(w: &mut Writer, id: Option<MessageId>) {
    match id {
        None => w.u8(0),
        Some(id) => w.u8(1).raw(id.as_bytes()),
    };
}

fn decode_ref(r: &mut Reader<'_>) -> Result<Option<MessageId>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(MessageId(r.array()?))),
        _ => Err(DecodeError::InvalidField("message reference")),
    }
}

fn valid_file_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= crate::ids::MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN
}

fn valid_media_type(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_MEDIA_TYPE_LEN && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn valid_chunk_size(n: u32) -> bool {
    (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&n)
}

fn encode_attachment(w: &mut Writer, a: &Attachment) -> Result<(), DecodeError> {
    if !valid_file_id(&a.file_id) {
        return Err(DecodeError::InvalidField("file id"));
    }
    if !valid_name(&a.name) {
        return Err(DecodeError::InvalidField("file name"));
    }
    if !valid_media_type(&a.media_type) {
        return Err(DecodeError::InvalidField("media type"));
    }
    if !valid_chunk_size(a.chunk_size) {
        return Err(DecodeError::InvalidField("chunk size"));
    }
    w.bytes8(a.file_id.as_bytes())
        .raw(a.file_key.as_bytes())
        .bytes16(a.name.as_bytes())
        .bytes8(a.media_type.as_bytes())
        .u64(a.size)
        .raw(&a.blob_sha256)
        .u32(a.chunk_size);
    Ok(())
}

fn decode_attachment(r: &mut Reader<'_>) -> Result<Attachment, DecodeError> {
    let text = |raw: &[u8], what| {
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidField(what))
    };
    let file_id = text(r.bytes8()?, "file id")?;
    if !valid_file_id(&file_id) {
        return Err(DecodeError::InvalidField("file id"));
    }
    let file_key = FileKey::from_bytes(r.array()?);
    let name = text(r.bytes16()?, "file name")?;
    if !valid_name(&name) {
        return Err(DecodeError::InvalidField("file name"));
    }
    let media_type = text(r.bytes8()?, "media type")?;
    if !valid_media_type(&media_type) {
        return Err(DecodeError::InvalidField("media type"));
    }
    let size = r.u64()?;
    let blob_sha256 = r.array()?;
    let chunk_size = r.u32()?;
    if !valid_chunk_size(chunk_size) {
        return Err(DecodeError::InvalidField("chunk size"));
    }
    Ok(Attachment {
        file_id,
        file_key,
        name,
        media_type,
        size,
        blob_sha256,
        chunk_size,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._:-]{1,64}"
    }

    fn attachment_strategy() -> impl Strategy<Value = Attachment> {
        (
            id_strategy(),
            any::<[u8; 32]>(),
            "\\PC{1,40}",
            "[a-z]{1,10}/[a-z0-9.+-]{1,20}",
            any::<u64>(),
            any::<[u8; 32]>(),
            MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE,
        )
            .prop_map(
                |(file_id, key, name, media_type, size, blob_sha256, chunk_size)| Attachment {
                    file_id,
                    file_key: FileKey::from_bytes(key),
                    name,
                    media_type,
                    size,
                    blob_sha256,
                    chunk_size,
                },
            )
    }

    pub(crate) fn body_strategy() -> impl Strategy<Value = MessageBody> {
        (
            id_strategy(),
            id_strategy(),
            "\\PC{0,300}",
            proptest::option::of(any::<[u8; 16]>()),
            proptest::option::of(any::<[u8; 16]>()),
            proptest::collection::btree_set(id_strategy(), 0..5),
            proptest::collection::vec(attachment_strategy(), 0..3),
        )
            .prop_map(|(room, sender, text, reply, edit, mentions, attachments)| {
                MessageBody {
                    room: RoomId::new(room).unwrap(),
                    sender: UserId::new(sender).unwrap(),
                    text,
                    reply_to: reply.map(MessageId),
                    edit_of: edit.map(MessageId),
                    mentions: mentions
                        .into_iter()
                        .map(|m| UserId::new(m).unwrap())
                        .collect(),
                    attachments,
                }
            })
    }

    proptest! {
        #[test]
        fn body_round_trips(body in body_strategy()) {
            let bytes = body.encode().unwrap();
            prop_assert_eq!(MessageBody::decode(&bytes).unwrap(), body);
        }

        #[test]
        fn hostile_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = MessageBody::decode(&bytes);
        }
    }

    fn sample() -> MessageBody {
        let mut b = MessageBody::text(
            RoomId::new("r1").unwrap(),
            UserId::new("alice").unwrap(),
            "hi",
        );
        b.mentions.insert(UserId::new("bob").unwrap());
        b.mentions.insert(UserId::new("carol").unwrap());
        b.attachments.push(Attachment {
            file_id: "f1".into(),
            file_key: FileKey::from_bytes([7; 32]),
            name: "a.png".into(),
            media_type: "image/png".into(),
            size: 10,
            blob_sha256: [1; 32],
            chunk_size: 65536,
        });
        b
    }

    #[test]
    fn out_of_order_mentions_are_refused() {
        let bytes = sample().encode().unwrap();
        // Swap "bob" and "carol" by hand: both are encoded after the two references.
        let pos = bytes.windows(4).position(|w| w == b"\x03bob").unwrap();
        let mut bad = bytes[..pos].to_vec();
        bad.extend_from_slice(b"\x05carol\x03bob");
        bad.extend_from_slice(&bytes[pos + 10..]);
        assert_eq!(
            MessageBody::decode(&bad),
            Err(DecodeError::InvalidField("mentions"))
        );
    }

    #[test]
    fn invalid_fields_are_refused_both_ways() {
        let mut b = sample();
        b.attachments[0].chunk_size = MIN_CHUNK_SIZE - 1;
        assert_eq!(b.encode(), Err(DecodeError::InvalidField("chunk size")));
        let mut b = sample();
        b.attachments[0].name = String::new();
        assert_eq!(b.encode(), Err(DecodeError::InvalidField("file name")));
        let mut b = sample();
        b.attachments[0].media_type = "image/\u{7f}".into();
        assert_eq!(b.encode(), Err(DecodeError::InvalidField("media type")));
        let mut b = sample();
        b.attachments[0].file_id = "f 1".into();
        assert_eq!(b.encode(), Err(DecodeError::InvalidField("file id")));

        let good = sample().encode().unwrap();
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last - 3] = 0xff; // chunk size far above the maximum
        assert_eq!(
            MessageBody::decode(&bad),
            Err(DecodeError::InvalidField("chunk size"))
        );
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(MessageBody::decode(&bad), Err(DecodeError::TrailingBytes));
        assert_eq!(
            MessageBody::decode(&good[..good.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(
            MessageBody::decode(&bad),
            Err(DecodeError::UnsupportedVersion(2))
        );
        // The reply reference flag is 0 or 1 only; it follows version, ids and text.
        let mut bad = good.clone();
        let flag = 1 + 3 + 6 + 4 + 2;
        assert_eq!(bad[flag], 0);
        bad[flag] = 2;
        assert_eq!(
            MessageBody::decode(&bad),
            Err(DecodeError::InvalidField("message reference"))
        );
    }

    #[test]
    fn debug_hides_text_and_keys() {
        let mut b = sample();
        b.text = "secret words".into();
        let shown = format!("{b:?}");
        assert!(!shown.contains("secret"));
        assert!(!shown.contains("a.png"));
        assert!(!shown.contains("0707"));
    }
}

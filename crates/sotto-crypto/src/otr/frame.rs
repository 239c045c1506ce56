//! The OTR wire frames and the padded message body inside a data frame.
//!
//! Every frame starts with the version byte, a kind byte and the 16-byte session id,
//! so the server can route it by session without parsing the rest.

use super::OtrError;
use crate::VERSION;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::ids::{OtrSessionId, RoomId, UserId};
use std::fmt;
use zeroize::Zeroizing;

/// Largest encoded message body (before padding): 4 MiB.
pub const MAX_BODY_LEN: usize = 4 * 1024 * 1024;
/// Longest file name, in UTF-8 bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;
/// Smallest padded body.
const MIN_PADDED_LEN: usize = 256;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

const KIND_OFFER: u8 = 1;
const KIND_ACCEPT: u8 = 2;
const KIND_CONFIRM: u8 = 3;
const KIND_DECLINE: u8 = 4;
const KIND_DATA: u8 = 5;
const KIND_REFRESH: u8 = 6;
const KIND_END: u8 = 7;

const BODY_TEXT: u8 = 1;
const BODY_FILE: u8 = 2;

/// An invitation to a handshake (also the content of a refresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The session the handshake is for.
    pub session: OtrSessionId,
    /// The direct-message room the session belongs to.
    pub room: RoomId,
    /// Who starts this handshake.
    pub initiator: UserId,
    /// Who is asked to answer.
    pub responder: UserId,
    /// The initiator's fresh X25519 ephemeral public key.
    pub ephemeral: [u8; 32],
}

/// The responder's answer: its ephemeral key and its confirmation MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The session the handshake is for.
    pub session: OtrSessionId,
    /// The responder's fresh X25519 ephemeral public key.
    pub ephemeral: [u8; 32],
    /// HMAC-SHA-256 proving the responder derived the same keys.
    pub mac: [u8; 32],
}

/// The initiator's key confirmation, with its first ratchet public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// The session the handshake is for.
    pub session: OtrSessionId,
    /// The initiator's first ratchet public key.
    pub ratchet_key: [u8; 32],
    /// HMAC-SHA-256 proving the initiator derived the same keys.
    pub mac: [u8; 32],
}

/// A ratchet message header, bound into the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's current ratchet public key.
    pub ratchet_key: [u8; 32],
    /// How many messages the sender sent in its previous sending chain.
    pub previous_chain_len: u32,
    /// The message's number in the current sending chain.
    pub number: u32,
}

/// An encrypted message.
#[derive(Clone, PartialEq, Eq)]
pub struct Data {
    /// The session the message belongs to.
    pub session: OtrSessionId,
    /// The ratchet header.
    pub header: Header,
    /// AES-256-GCM ciphertext of the padded body, with its tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data")
            .field("session", &self.session)
            .field("header", &self.header)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// One OTR frame, as relayed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Starts a session.
    Offer(Offer),
    /// Accepts an offer or a refresh.
    Accept(Accept),
    /// Completes a handshake.
    Confirm(Confirm),
    /// Declines an offer.
    Decline(OtrSessionId),
    /// Carries one message.
    Data(Data),
    /// Starts a new handshake for an existing session.
    Refresh(Offer),
    /// Ends the session on both sides.
    End(OtrSessionId),
}

impl Frame {
    /// The session the frame belongs to, for routing.
    pub fn session(&self) -> OtrSessionId {
        match self {
            Frame::Offer(o) | Frame::Refresh(o) => o.session,
            Frame::Accept(a) => a.session,
            Frame::Confirm(c) => c.session,
            Frame::Data(d) => d.session,
            Frame::Decline(s) | Frame::End(s) => *s,
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let kind = match self {
            Frame::Offer(_) => KIND_OFFER,
            Frame::Accept(_) => KIND_ACCEPT,
            Frame::Confirm(_) => KIND_CONFIRM,
            Frame::Decline(_) => KIND_DECLINE,
            Frame::Data(_) => KIND_DATA,
            Frame::Refresh(_) => KIND_REFRESH,
            Frame::End(_) => KIND_END,
        };
        w.u8(VERSION).u8(kind).raw(self.session().as_bytes());
        match self {
            Frame::Offer(o) | Frame::Refresh(o) => {
                o.room.encode(&mut w);
                o.initiator.encode(&mut w);
                o.responder.encode(&mut w);
                w.raw(&o.ephemeral);
            }
            Frame::Accept(a) => {
                w.raw(&a.ephemeral).raw(&a.mac);
            }
            Frame::Confirm(c) => {
                w.raw(&c.ratchet_key).raw(&c.mac);
            }
            Frame::Data(d) => {
                encode_header(&mut w, &d.header);
                w.bytes32(&d.ciphertext);
            }
            Frame::Decline(_) | Frame::End(_) => {}
        }
        w.finish()
    }

    /// Parses a frame, refusing anything not in canonical form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let kind = r.u8()?;
        let session = OtrSessionId(r.array()?);
        let frame = match kind {
            KIND_OFFER | KIND_REFRESH => {
                let offer = Offer {
                    session,
                    room: RoomId::decode(&mut r)?,
                    initiator: UserId::decode(&mut r)?,
                    responder: UserId::decode(&mut r)?,
                    ephemeral: r.array()?,
                };
                if offer.initiator == offer.responder {
                    return Err(DecodeError::InvalidField("offer to oneself"));
                }
                if kind == KIND_OFFER {
                    Frame::Offer(offer)
                } else {
                    Frame::Refresh(offer)
                }
            }
            KIND_ACCEPT => Frame::Accept(Accept {
                session,
                ephemeral: r.array()?,
                mac: r.array()?,
            }),
            KIND_CONFIRM => Frame::Confirm(Confirm {
                session,
                ratchet_key: r.array()?,
                mac: r.array()?,
            }),
            KIND_DECLINE => Frame::Decline(session),
            KIND_DATA => {
                let header = decode_header(&mut r)?;
                let ciphertext = r.bytes32()?;
                if !valid_ciphertext_len(ciphertext.len()) {
                    return Err(DecodeError::InvalidField("ciphertext length"));
                }
                Frame::Data(Data {
                    session,
                    header,
                    ciphertext: ciphertext.to_vec(),
                })
            }
            KIND_END => Frame::End(session),
            _ => return Err(DecodeError::InvalidField("frame kind")),
        };
        r.finish()?;
        Ok(frame)
    }
}

fn encode_header(w: &mut Writer, h: &Header) {
    w.raw(&h.ratchet_key)
        .u32(h.previous_chain_len)
        .u32(h.number);
}

fn decode_header(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
    Ok(Header {
        ratchet_key: r.array()?,
        previous_chain_len: r.u32()?,
        number: r.u32()?,
    })
}

/// The header's canonical bytes (ratchet key, previous chain length, number).
pub(crate) fn header_bytes(h: &Header) -> Vec<u8> {
    let mut w = Writer::new();
    encode_header(&mut w, h);
    w.finish()
}

/// A ciphertext is a padded body (a power of two from 256 bytes up to the body
/// limit) plus the tag; anything else cannot have come from an honest sender.
fn valid_ciphertext_len(len: usize) -> bool {
    let Some(padded) = len.checked_sub(TAG_LEN) else {
        return false;
    };
    (MIN_PADDED_LEN..=MAX_BODY_LEN).contains(&padded) && padded.is_power_of_two()
}

/// The padded length of a body of `len` bytes: the next power of two, at least 256.
pub(crate) fn padded_len(len: usize) -> usize {
    len.max(MIN_PADDED_LEN).next_power_of_two()
}

/// What an OTR message carries.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// A text message.
    Text(String),
    /// A small file sent off the record through the live connection.
    File {
        /// The file's name (1 to 255 UTF-8 bytes).
        name: String,
        /// Its media type (1 to 255 printable ASCII characters).
        media_type: String,
        /// Its content.
        bytes: Vec<u8>,
    },
}

impl fmt::Debug for Body {
    // Message content is private: show only its shape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Text(t) => write!(f, "Text({} bytes)", t.len()),
            Body::File { bytes, .. } => write!(f, "File({} bytes)", bytes.len()),
        }
    }
}

impl Body {
    /// The body's canonical encoding followed by zero padding to its bucket size.
    pub(crate) fn encode_padded(&self) -> Result<Zeroizing<Vec<u8>>, OtrError> {
        let len = 2 + match self {
            Body::Text(t) => 4 + t.len(),
            Body::File {
                name,
                media_type,
                bytes,
            } => {
                if name.is_empty() || name.len() > MAX_FILE_NAME_LEN {
                    return Err(OtrError::Body(DecodeError::InvalidField("file name")));
                }
                if !valid_media_type(media_type.as_bytes()) {
                    return Err(OtrError::Body(DecodeError::InvalidField("media type")));
                }
                1 + name.len() + 1 + media_type.len() + 4 + bytes.len()
            }
        };
        if len > MAX_BODY_LEN {
            return Err(OtrError::BodyTooLarge);
        }
        let mut out = Zeroizing::new(Vec::with_capacity(padded_len(len)));
        out.push(VERSION);
        match self {
            Body::Text(t) => {
                out.push(BODY_TEXT);
                push32(&mut out, t.as_bytes());
            }
            Body::File {
                name,
                media_type,
                bytes,
            } => {
                out.push(BODY_FILE);
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                out.push(media_type.len() as u8);
                out.extend_from_slice(media_type.as_bytes());
                push32(&mut out, bytes);
            }
        }
        out.resize(padded_len(len), 0);
        Ok(out)
    }

    /// Parses a padded body, refusing any padding that is not exactly the zeros an
    /// honest sender adds.
    pub(crate) fn decode_padded(padded: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(padded);
        r.version(VERSION)?;
        let body = match r.u8()? {
            BODY_TEXT => {
                let t = std::str::from_utf8(r.bytes32()?)
                    .map_err(|_| DecodeError::InvalidField("text"))?;
                Body::Text(t.to_owned())
            }
            BODY_FILE => {
                let name = r.bytes8()?;
                if name.is_empty() {
                    return Err(DecodeError::InvalidField("file name"));
                }
                let name = std::str::from_utf8(name)
                    .map_err(|_| DecodeError::InvalidField("file name"))?
                    .to_owned();
                let media_type = r.bytes8()?;
                if !valid_media_type(media_type) {
                    return Err(DecodeError::InvalidField("media type"));
                }
                let media_type = String::from_utf8_lossy(media_type).into_owned();
                Body::File {
                    name,
                    media_type,
                    bytes: r.bytes32()?.to_vec(),
                }
            }
            _ => return Err(DecodeError::InvalidField("body kind")),
        };
        let pad = r.remaining();
        let used = padded.len() - pad.len();
        if padded.len() != padded_len(used) || pad.iter().any(|&b| b != 0) {
            return Err(DecodeError::InvalidField("padding"));
        }
        Ok(body)
    }
}

fn push32(out: &mut Vec<u8>, v: &[u8]) {
    // Bodies are at most MAX_BODY_LEN, far below u32::MAX.
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v);
}

fn valid_media_type(t: &[u8]) -> bool {
    !t.is_empty() && t.len() <= 255 && t.iter().all(|b| (0x21..=0x7e).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._:-]{1,64}"
    }

    fn offer() -> impl Strategy<Value = Offer> {
        (any::<[u8; 16]>(), id(), id(), id(), any::<[u8; 32]>()).prop_filter_map(
            "distinct users",
            |(s, room, a, b, e)| {
                (a != b).then(|| Offer {
                    session: OtrSessionId(s),
                    room: RoomId::new(room).unwrap(),
                    initiator: UserId::new(a).unwrap(),
                    responder: UserId::new(b).unwrap(),
                    ephemeral: e,
                })
            },
        )
    }

    fn frame() -> impl Strategy<Value = Frame> {
        let sid = any::<[u8; 16]>().prop_map(OtrSessionId);
        prop_oneof![
            offer().prop_map(Frame::Offer),
            offer().prop_map(Frame::Refresh),
            (sid.clone(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(
                |(session, ephemeral, mac)| Frame::Accept(Accept {
                    session,
                    ephemeral,
                    mac
                })
            ),
            (sid.clone(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(
                |(session, ratchet_key, mac)| {
                    Frame::Confirm(Confirm {
                        session,
                        ratchet_key,
                        mac,
                    })
                }
            ),
            sid.clone().prop_map(Frame::Decline),
            sid.clone().prop_map(Frame::End),
            (
                sid,
                any::<[u8; 32]>(),
                any::<u32>(),
                any::<u32>(),
                8u32..11,
                any::<u8>()
            )
                .prop_map(
                    |(session, ratchet_key, previous_chain_len, number, exp, fill)| {
                        Frame::Data(Data {
                            session,
                            header: Header {
                                ratchet_key,
                                previous_chain_len,
                                number,
                            },
                            ciphertext: vec![fill; (1usize << exp) + TAG_LEN],
                        })
                    }
                ),
        ]
    }

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            ".{0,600}".prop_map(Body::Text),
            (
                ".{1,60}",
                "[!-~]{1,40}",
                proptest::collection::vec(any::<u8>(), 0..2000)
            )
                .prop_filter_map("name fits", |(name, media_type, bytes)| {
                    (name.len() <= MAX_FILE_NAME_LEN).then_some(Body::File {
                        name,
                        media_type,
                        bytes,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip(f in frame()) {
            prop_assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn bodies_round_trip_padded_to_a_power_of_two(b in body()) {
            let padded = b.encode_padded().unwrap();
            prop_assert!(padded.len() >= 256 && padded.len().is_power_of_two());
            prop_assert_eq!(Body::decode_padded(&padded).unwrap(), b);
        }

        #[test]
        fn hostile_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Frame::decode(&bytes);
            let _ = Body::decode_padded(&bytes);
        }
    }

    #[test]
    fn bad_frames_get_precise_errors() {
        let end = Frame::End(OtrSessionId([7; 16])).encode();
        let mut v = end.clone();
        v[0] = 2;
        assert_eq!(Frame::decode(&v), Err(DecodeError::UnsupportedVersion(2)));
        let mut v = end.clone();
        v[1] = 9;
        assert_eq!(
            Frame::decode(&v),
            Err(DecodeError::InvalidField("frame kind"))
        );
        assert_eq!(Frame::decode(&end[..17]), Err(DecodeError::Truncated));
        let mut v = end.clone();
        v.push(0);
        assert_eq!(Frame::decode(&v), Err(DecodeError::TrailingBytes));
        // A ciphertext whose length is not a padded bucket plus tag.
        let data = Frame::Data(Data {
            session: OtrSessionId([1; 16]),
            header: Header {
                ratchet_key: [2; 32],
                previous_chain_len: 0,
                number: 0,
            },
            ciphertext: vec![0; 300],
        });
        assert_eq!(
            Frame::decode(&data.encode()),
            Err(DecodeError::InvalidField("ciphertext length"))
        );
        let self_offer = Frame::Offer(Offer {
            session: OtrSessionId([1; 16]),
            room: RoomId::new("dm").unwrap(),
            initiator: UserId::new("a").unwrap(),
            responder: UserId::new("a").unwrap(),
            ephemeral: [9; 32],
        });
        assert_eq!(
            Frame::decode(&self_offer.encode()),
            Err(DecodeError::InvalidField("offer to oneself"))
        );
    }

    #[test]
    fn bad_bodies_get_precise_errors() {
        let good = Body::Text("hi".into()).encode_padded().unwrap();
        let mut v = good.to_vec();
        v[44] = 1;
        assert_eq!(
            Body::decode_padded(&v),
            Err(DecodeError::InvalidField("padding"))
        );
        let mut v = good.to_vec();
        v.extend_from_slice(&[0; 256]);
        assert_eq!(
            Body::decode_padded(&v),
            Err(DecodeError::InvalidField("padding"))
        );
        let mut v = good.to_vec();
        v[1] = 3;
        assert_eq!(
            Body::decode_padded(&v),
            Err(DecodeError::InvalidField("body kind"))
        );
        let mut v = good.to_vec();
        v[6] = 0xff;
        assert_eq!(
            Body::decode_padded(&v),
            Err(DecodeError::InvalidField("text"))
        );
        let big = Body::File {
            name: "a.bin".into(),
            media_type: "application/octet-stream".into(),
            bytes: vec![0; MAX_BODY_LEN],
        };
        assert_eq!(big.encode_padded().unwrap_err(), OtrError::BodyTooLarge);
        let bad_type = Body::File {
            name: "a".into(),
            media_type: "text plain".into(),
            bytes: vec![],
        };
        assert_eq!(
            bad_type.encode_padded().unwrap_err(),
            OtrError::Body(DecodeError::InvalidField("media type"))
        );
        // The largest file that fits is exactly at the limit and pads to 4 MiB.
        let name = "f".to_string();
        let media_type = "a/b".to_string();
        let fits = MAX_BODY_LEN - (2 + 1 + name.len() + 1 + media_type.len() + 4);
        let max = Body::File {
            name,
            media_type,
            bytes: vec![1; fits],
        };
        assert_eq!(max.encode_padded().unwrap().len(), MAX_BODY_LEN);
    }

    #[test]
    fn debug_hides_content() {
        let shown = format!("{:?}", Body::Text("secret words".into()));
        assert!(!shown.contains("secret"));
    }
}

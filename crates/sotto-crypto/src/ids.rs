//! Identifiers that the protocol binds into signatures and associated data.

use crate::encoding::{DecodeError, Reader, Writer};
use std::fmt;

/// Longest user or room id, in bytes.
pub const MAX_ID_LEN: usize = 64;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `s`: 1 to 64 bytes of ASCII letters, digits, `-`, `_`, `.` or `:`.
            pub fn new(s: impl Into<String>) -> Result<Self, DecodeError> {
                let s = s.into();
                if valid_id(&s) { Ok(Self(s)) } else { Err(DecodeError::InvalidField($what)) }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub(crate) fn encode(&self, w: &mut Writer) {
                w.bytes8(self.0.as_bytes());
            }

            pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let raw = r.bytes8()?;
                let s = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidField($what))?;
                Self::new(s)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A user's stable id, as the server assigns it.
    UserId,
    "user id"
);
text_id!(
    /// A room's stable id, as the server assigns it.
    RoomId,
    "room id"
);

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A fresh random id.
            pub fn random(rng: &mut impl rand_core::CryptoRng) -> Self {
                let mut b = [0u8; 16];
                rng.fill_bytes(&mut b);
                Self(b)
            }

            /// The id's bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// The id as 32 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                self.0.iter().map(|b| format!("{b:02x}")).collect()
            }

            /// Parses 32 hex digits.
            pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
                let bytes = s.as_bytes();
                // `from_str_radix` alone would also take a `+` sign ("+a" is 10).
                if bytes.len() != 32 || !bytes.iter().all(u8::is_ascii_hexdigit) {
                    return Err(DecodeError::InvalidField(stringify!($name)));
                }
                let mut out = [0u8; 16];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                        .map_err(|_| DecodeError::InvalidField(stringify!($name)))?;
                }
                Ok(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

random_id!(
    /// A message's id: 16 random bytes chosen by the sender.
    MessageId
);
random_id!(
    /// A room key epoch's id: 16 random bytes chosen by whoever starts the epoch.
    EpochId
);
random_id!(
    /// An OTR session's id: 16 random bytes chosen by the initiator.
    OtrSessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_only_the_documented_alphabet() {
        assert!(UserId::new("u_01HZX.a:b-c").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a b").is_err());
        assert!(UserId::new("é").is_err());
        assert!(RoomId::new("r".repeat(64)).is_ok());
        assert!(RoomId::new("r".repeat(65)).is_err());
    }

    #[test]
    fn random_ids_round_trip_through_hex() {
        let id = MessageId([0xab; 16]);
        assert_eq!(MessageId::from_hex(&id.to_hex()).unwrap(), id);
        assert!(MessageId::from_hex("zz").is_err());
        assert!(MessageId::from_hex(&"é".repeat(16)).is_err());
        assert!(MessageId::from_hex(&"+a".repeat(16)).is_err());
    }
}

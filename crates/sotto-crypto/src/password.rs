//! The encryption password that protects a user's key backup.
//!
//! A client generates one for a new user (12 words from the BIP-39 English list); users
//! may later choose their own. Every password is NFC-normalised and UTF-8 encoded before
//! it reaches the KDF, so the same password typed on any keyboard, in any script, with
//! precomposed or decomposed accents, unlocks the same backup.

use std::fmt;
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// Number of words in a generated password (12 × 11 bits = 132 bits).
pub const GENERATED_WORDS: usize = 12;

/// Why a password the user typed was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PasswordError {
    /// The password is empty.
    #[error("the encryption password is empty")]
    Empty,
}

/// An encryption password, held in its NFC-normalised form. Zeroized on drop; `Debug`
/// prints nothing of it.
pub struct EncryptionPassword(Zeroizing<String>);

impl EncryptionPassword {
    /// A fresh password: 12 words from the BIP-39 English list, joined by single
    /// ASCII spaces.
    ///
    /// Each word takes two bytes from `rng`, read big-endian, of which the low 11 bits
    /// index the 2048-word list. 2048 divides 65536, so every word is exactly uniform.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let words = bip39::Language::English.word_list();
        // Room for the longest words (8 letters) and spaces, so the buffer never
        // reallocates and leaves no copy of the password behind.
        let mut text = Zeroizing::new(String::with_capacity(GENERATED_WORDS * 9));
        for i in 0..GENERATED_WORDS {
            let mut two = Zeroizing::new([0u8; 2]);
            rng.fill_bytes(two.as_mut());
            let index = usize::from(u16::from_be_bytes(*two) & 0x07ff);
            if i > 0 {
                text.push(' ');
            }
            // `index < 2048` by the mask, so `get` always succeeds.
            text.push_str(words.get(index).copied().unwrap_or_default());
        }
        Self(text)
    }

    /// A password the user typed, normalised to NFC. Any script is accepted; only the
    /// empty password is refused. Nothing is trimmed.
    pub fn from_user(text: &str) -> Result<Self, PasswordError> {
        // NFC is at most three times longer than its input (UAX #15), so this buffer
        // never reallocates and leaves no stray copy of the password.
        let mut normalised = Zeroizing::new(String::with_capacity(text.len().saturating_mul(3)));
        normalised.extend(text.nfc());
        if normalised.is_empty() {
            return Err(PasswordError::Empty);
        }
        Ok(Self(normalised))
    }

    /// The password as text (NFC), for showing a generated password to its user once.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bytes the KDF takes: the UTF-8 encoding of the NFC form.
    pub fn kdf_input(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for EncryptionPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionPassword(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;

    #[test]
    fn generated_passwords_are_twelve_list_words() {
        let list = bip39::Language::English.word_list();
        let mut rng = test_rng(7);
        let a = EncryptionPassword::generate(&mut rng);
        let b = EncryptionPassword::generate(&mut rng);
        assert_ne!(a.as_str(), b.as_str());
        let words: Vec<&str> = a.as_str().split(' ').collect();
        assert_eq!(words.len(), GENERATED_WORDS);
        assert!(words.iter().all(|w| list.contains(w)));
        assert!(a.as_str().is_ascii());
        // A generated password is already NFC, so typing it back gives the same bytes.
        assert_eq!(
            EncryptionPassword::from_user(a.as_str())
                .unwrap()
                .kdf_input(),
            a.kdf_input()
        );
    }

    /// A generator that yields fixed bytes, to pin the index rule down.
    struct Fixed(u8);
    impl rand_core::TryRng for Fixed {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(u32::from_be_bytes([self.0; 4]))
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(u64::from_be_bytes([self.0; 8]))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            dst.fill(self.0);
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Fixed {}

    #[test]
    fn word_index_is_the_low_eleven_bits_of_two_big_endian_bytes() {
        let list = bip39::Language::English.word_list();
        // 0xffff & 0x07ff = 2047, the last word; 0x0000 gives the first.
        let last = EncryptionPassword::generate(&mut Fixed(0xff));
        assert_eq!(last.as_str(), [list[2047]; 12].join(" "));
        let first = EncryptionPassword::generate(&mut Fixed(0x00));
        assert_eq!(first.as_str(), [list[0]; 12].join(" "));
        // 0x0101 & 0x07ff = 257.
        let mid = EncryptionPassword::generate(&mut Fixed(0x01));
        assert_eq!(mid.as_str(), [list[257]; 12].join(" "));
    }

    #[test]
    fn empty_is_refused_and_nothing_is_trimmed() {
        assert_eq!(
            EncryptionPassword::from_user("").unwrap_err(),
            PasswordError::Empty
        );
        assert_eq!(
            EncryptionPassword::from_user(" pw ").unwrap().as_str(),
            " pw "
        );
    }

    #[test]
    fn decomposed_and_precomposed_forms_give_the_same_bytes() {
        let nfc = "caf\u{e9}";
        let nfd = "cafe\u{301}";
        assert_ne!(nfc.as_bytes(), nfd.as_bytes());
        let a = EncryptionPassword::from_user(nfc).unwrap();
        let b = EncryptionPassword::from_user(nfd).unwrap();
        assert_eq!(a.kdf_input(), b.kdf_input());
        assert_eq!(a.kdf_input(), "café".as_bytes());
    }

    #[test]
    fn debug_shows_nothing() {
        let p = EncryptionPassword::from_user("hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}

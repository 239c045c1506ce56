//! Length-hiding padding for message bodies.
//!
//! A body is padded to a bucket size before encryption, so the ciphertext shows only
//! which bucket the message falls in. Buckets are the powers of two from 256 bytes to
//! 64 KiB, then the multiples of 64 KiB up to [`MAX_PADDED_LEN`].
//!
//! `padded = data ‖ 0x80 ‖ 0x00 * k`, with `k` the smallest count that makes the length
//! a bucket. Stripping is unambiguous: remove trailing zeros, then exactly one `0x80`.
//! There is always at least the `0x80`, so even an empty body pads to 256 bytes.

use thiserror::Error;

/// The smallest bucket.
pub const MIN_BUCKET: usize = 256;
/// Above this size, buckets are multiples of it rather than powers of two.
pub const LARGE_BUCKET_STEP: usize = 64 * 1024;
/// The largest padded length (16 steps of 64 KiB, 1 MiB).
pub const MAX_PADDED_LEN: usize = 16 * LARGE_BUCKET_STEP;
/// The longest data that can be padded (one byte goes to the `0x80` marker).
pub const MAX_DATA_LEN: usize = MAX_PADDED_LEN - 1;

const MARKER: u8 = 0x80;

/// Why padding could not be added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PaddingError {
    /// The data is longer than [`MAX_DATA_LEN`].
    #[error("data too long to pad")]
    TooLong,
    /// The padded length is not a bucket size, or the marker is missing.
    #[error("padding is malformed")]
    Malformed,
}

/// The bucket a padded message of `data_len` bytes occupies: the smallest bucket that
/// holds `data_len + 1` bytes.
pub fn bucket_len(data_len: usize) -> Result<usize, PaddingError> {
    let need = data_len.checked_add(1).ok_or(PaddingError::TooLong)?;
    if need > MAX_PADDED_LEN {
        return Err(PaddingError::TooLong);
    }
    if need <= LARGE_BUCKET_STEP {
        Ok(need.next_power_of_two().max(MIN_BUCKET))
    } else {
        Ok(need.div_ceil(LARGE_BUCKET_STEP) * LARGE_BUCKET_STEP)
    }
}

/// Whether `len` is one of the bucket sizes.
pub fn is_bucket(len: usize) -> bool {
    if (MIN_BUCKET..=LARGE_BUCKET_STEP).contains(&len) {
        len.is_power_of_two()
    } else {
        len > LARGE_BUCKET_STEP && len <= MAX_PADDED_LEN && len.is_multiple_of(LARGE_BUCKET_STEP)
    }
}

/// Appends the marker and zeros to `data`, making its length a bucket size.
pub fn pad(data: &mut Vec<u8>) -> Result<(), PaddingError> {
    let target = bucket_len(data.len())?;
    data.push(MARKER);
    data.resize(target, 0);
    Ok(())
}

/// The data inside a padded buffer, after checking that the length is a bucket and
/// that the padding is exactly `0x80` followed by zeros.
pub fn unpad(padded: &[u8]) -> Result<&[u8], PaddingError> {
    if !is_bucket(padded.len()) {
        return Err(PaddingError::Malformed);
    }
    let end = padded
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(PaddingError::Malformed)?;
    match padded.get(end) {
        Some(&MARKER) => Ok(padded.get(..end).ok_or(PaddingError::Malformed)?),
        _ => Err(PaddingError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_edges() {
        assert_eq!(bucket_len(0), Ok(256));
        assert_eq!(bucket_len(255), Ok(256));
        assert_eq!(bucket_len(256), Ok(512));
        assert_eq!(bucket_len(1000), Ok(1024));
        assert_eq!(bucket_len(65535), Ok(65536));
        assert_eq!(bucket_len(65536), Ok(131072));
        assert_eq!(bucket_len(131072), Ok(196608));
        assert_eq!(bucket_len(MAX_DATA_LEN), Ok(MAX_PADDED_LEN));
        assert_eq!(bucket_len(MAX_DATA_LEN + 1), Err(PaddingError::TooLong));
        assert!(!is_bucket(128));
        assert!(!is_bucket(300));
        assert!(is_bucket(196608));
        assert!(!is_bucket(MAX_PADDED_LEN + LARGE_BUCKET_STEP));
    }

    #[test]
    fn malformed_padding_is_refused() {
        let mut p = b"hello".to_vec();
        pad(&mut p).unwrap();
        // No marker: all zeros after the data.
        let mut bad = p.clone();
        bad[5] = 0;
        assert_eq!(unpad(&bad), Err(PaddingError::Malformed));
        // Junk in the zero run.
        let mut bad = p.clone();
        bad[200] = 1;
        assert_eq!(unpad(&bad), Err(PaddingError::Malformed));
        // Not a bucket length.
        assert_eq!(unpad(&p[..255]), Err(PaddingError::Malformed));
        assert_eq!(unpad(&[0u8; 256]), Err(PaddingError::Malformed));
        assert_eq!(unpad(&[]), Err(PaddingError::Malformed));
    }

    proptest! {
        #[test]
        fn pad_round_trips(data in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            let mut p = data.clone();
            pad(&mut p).unwrap();
            prop_assert!(is_bucket(p.len()));
            prop_assert_eq!(p.len(), bucket_len(data.len()).unwrap());
            prop_assert_eq!(unpad(&p).unwrap(), &data[..]);
        }
    }
}

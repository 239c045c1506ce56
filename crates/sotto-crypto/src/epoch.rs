//! A room key of one epoch: the symmetric key every message of that epoch is sealed
//! under, and the random id that names the epoch.

use crate::ids::EpochId;
use std::fmt;
use zeroize::Zeroizing;

/// Length of a room key.
pub const EPOCH_KEY_LEN: usize = 32;

/// The secret key of one room epoch. Zeroized on drop; `Debug` shows only the epoch id.
#[derive(Clone)]
pub struct EpochKey {
    epoch: EpochId,
    key: Zeroizing<[u8; EPOCH_KEY_LEN]>,
}

impl EpochKey {
    /// A new epoch: a fresh random id and key.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let epoch = EpochId::random(rng);
        let mut key = Zeroizing::new([0u8; EPOCH_KEY_LEN]);
        rng.fill_bytes(key.as_mut());
        Self { epoch, key }
    }

    /// An epoch key from its parts (after opening a room-key box).
    pub fn from_parts(epoch: EpochId, key: [u8; EPOCH_KEY_LEN]) -> Self {
        Self { epoch, key: Zeroizing::new(key) }
    }

    /// The epoch's id.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// The secret key bytes.
    pub fn key_bytes(&self) -> &[u8; EPOCH_KEY_LEN] {
        &self.key
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

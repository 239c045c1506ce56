#![no_main]
//! Hostile bytes into `IdentityKeys::from_bytes`: a typed error or keys, never a panic.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sotto_crypto::IdentityKeys::from_bytes(data);
});

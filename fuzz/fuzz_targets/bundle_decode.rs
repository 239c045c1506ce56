#![no_main]
//! Hostile bytes into `PublicBundle::decode`: a typed error or a bundle, never a panic.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sotto_crypto::PublicBundle::decode(data);
});

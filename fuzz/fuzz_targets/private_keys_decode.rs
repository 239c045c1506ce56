#![no_main]
//! Hostile bytes into the `private_keys_decode` entry point (`fuzz/entries.rs`): never a panic.

#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entries::private_keys_decode(data);
});

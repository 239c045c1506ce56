#![no_main]
//! Hostile bytes into the `message_body_decode` entry point (`fuzz/entries.rs`): never a panic.

#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entries::message_body_decode(data);
});

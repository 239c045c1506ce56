#![no_main]
//! Hostile bytes into the `otr_handle` entry point (`fuzz/entries.rs`): never a panic.

#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entries::otr_handle(data);
});

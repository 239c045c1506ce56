//! Deterministic protocol vectors, made from fixed seeds.
//!
//! Shared by `examples/vectors.rs` (which writes `testdata/vectors/sotto/`) and
//! `tests/sotto_vectors.rs` (which regenerates them, compares byte for byte, and opens
//! the committed files the way a second implementation would).

#![allow(dead_code, unreachable_pub)]

pub mod backup;
pub mod bundle;
pub mod messages;
pub mod otr;
pub mod rooms;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One vector file: its name under `testdata/vectors/sotto/` and its content.
pub struct Vector {
    pub file: &'static str,
    pub json: Value,
}

/// Every vector, in file-name order.
pub fn generate_all() -> Vec<Vector> {
    let mut all = Vec::new();
    all.extend(bundle::generate());
    all.extend(backup::generate());
    all.extend(rooms::generate());
    all.extend(messages::generate());
    all.extend(otr::generate());
    all.sort_by_key(|v| v.file);
    all
}

/// Checks a committed vector file independently of how it was generated.
pub fn check(file: &str, json: &Value) -> Result<(), String> {
    bundle::check(file, json)
        .or_else(|e| if e == UNKNOWN { backup::check(file, json) } else { Err(e) })
        .or_else(|e| if e == UNKNOWN { rooms::check(file, json) } else { Err(e) })
        .or_else(|e| if e == UNKNOWN { messages::check(file, json) } else { Err(e) })
        .or_else(|e| if e == UNKNOWN { otr::check(file, json) } else { Err(e) })
}

/// What a module's `check` answers for a file that is not its own.
pub const UNKNOWN: &str = "unknown vector file";

/// The file's text as committed: pretty JSON and a final newline.
pub fn render(json: &Value) -> String {
    let mut s = serde_json::to_string_pretty(json).expect("vectors serialize");
    s.push('\n');
    s
}

/// A ChaCha20 generator seeded with SHA-256 of `label`, so each vector's randomness
/// is fixed and independent of the others.
pub fn rng(label: &str) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(Sha256::digest(label.as_bytes()).into())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: impl AsRef<[u8]>) -> Value {
    Value::String(hex::encode(bytes))
}

/// The bytes behind a hex field, or a message naming the field.
pub fn unhex(json: &Value, field: &str) -> Result<Vec<u8>, String> {
    let s = json[field].as_str().ok_or_else(|| format!("missing field {field}"))?;
    hex::decode(s).map_err(|e| format!("field {field}: {e}"))
}

/// A text field, or a message naming the field.
pub fn text<'a>(json: &'a Value, field: &str) -> Result<&'a str, String> {
    json[field].as_str().ok_or_else(|| format!("missing field {field}"))
}

/// Fails with `what` unless `cond` holds.
pub fn ensure(cond: bool, what: &str) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.to_string()) }
}

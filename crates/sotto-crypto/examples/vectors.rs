//! Writes the deterministic protocol vectors.
//!
//! `cargo run -p sotto-crypto --example vectors` rewrites `testdata/vectors/sotto/`;
//! the test `sotto_vectors` fails until the committed files match.

#[path = "../vectors/mod.rs"]
mod vectors;

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/sotto");
    std::fs::create_dir_all(&dir)?;
    for v in vectors::generate_all() {
        std::fs::write(dir.join(v.file), vectors::render(&v.json))?;
        println!("wrote {}", v.file);
    }
    Ok(())
}

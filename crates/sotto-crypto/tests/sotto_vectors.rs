//! The committed protocol vectors are exactly what the crate produces, and each one
//! opens and verifies the way a second implementation would have to.

#[path = "../vectors/mod.rs"]
mod vectors;

use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/sotto")
}

#[test]
fn committed_vectors_are_reproduced_byte_for_byte() {
    let generated = vectors::generate_all();
    assert!(!generated.is_empty());
    for v in &generated {
        let path = dir().join(v.file);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `cargo run -p sotto-crypto --example vectors`", path.display()));
        assert!(
            committed == vectors::render(&v.json),
            "{} differs from what the crate produces: the format changed",
            v.file
        );
    }
    let on_disk = std::fs::read_dir(dir()).unwrap().count();
    assert_eq!(on_disk, generated.len(), "a vector file is stale or missing");
}

#[test]
fn committed_vectors_check_out() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        vectors::check(&name, &json).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

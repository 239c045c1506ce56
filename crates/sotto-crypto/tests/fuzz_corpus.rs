//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the same entry
//! points the fuzz targets call (`fuzz/entries.rs`), so the ordinary test run exercises
//! every seed: each must be accepted or refused with a typed error, never panic. Seeds
//! whose name starts with `valid` must be accepted; every other committed seed is
//! malformed and must be refused.
//!
//! Adding a fuzz target: an entry in `fuzz/entries.rs`, `fuzz/fuzz_targets/<name>.rs`,
//! its `[[bin]]` in `fuzz/Cargo.toml`, and `fuzz/corpus/<name>/` with a `valid` seed.
//! The tests here fail until all exist.

// The entry points are `pub` for the fuzz targets that share this file.
#[allow(unreachable_pub, clippy::type_complexity)]
#[path = "../../../fuzz/entries.rs"]
mod entries;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

#[test]
fn every_target_has_a_source_a_corpus_and_an_entry_point() {
    let entries: BTreeSet<String> = entries::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let sources: BTreeSet<String> = names(&fuzz_dir().join("fuzz_targets"))
        .into_iter()
        .map(|n| n.trim_end_matches(".rs").to_owned())
        .collect();
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    assert_eq!(
        entries, sources,
        "fuzz/entries.rs and fuzz/fuzz_targets differ"
    );
    assert_eq!(
        entries,
        names(&fuzz_dir().join("corpus")),
        "corpus directories differ"
    );
    for t in &entries {
        assert!(
            manifest.contains(&format!("name = \"{t}\"")),
            "{t} has no [[bin]]"
        );
    }
}

#[test]
fn every_seed_is_handled_without_panic() {
    let corpus = fuzz_dir().join("corpus");
    for (target, run) in entries::TARGETS {
        let dir = corpus.join(target);
        let seeds = names(&dir);
        assert!(seeds.contains("valid"), "{target}: no `valid` seed");
        for seed in seeds {
            let accepted = run(&std::fs::read(dir.join(&seed)).unwrap());
            if seed.starts_with("valid") {
                assert!(
                    accepted,
                    "{target}/{seed} is no longer accepted: refresh the seed"
                );
            } else {
                assert!(!accepted, "{target}/{seed} is malformed but was accepted");
            }
        }
    }
}

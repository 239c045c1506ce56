//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the same entry
//! points the fuzz targets call, so the ordinary test run exercises every seed: each must
//! decode or be refused with a typed error, never panic. Seeds whose name starts with
//! `valid` must decode; every other committed seed is a malformed input and must be refused.
//!
//! Adding a fuzz target: add `fuzz/fuzz_targets/<name>.rs`, its `[[bin]]` in
//! `fuzz/Cargo.toml`, a seed directory `fuzz/corpus/<name>/` with a `valid` seed, and a
//! line in `entry` below. The test fails until all four exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The entry point of each fuzz target: whether the bytes were accepted.
fn entry(target: &str) -> Option<fn(&[u8]) -> bool> {
    Some(match target {
        "bundle_decode" => |d| sotto_crypto::PublicBundle::decode(d).is_ok(),
        "private_keys_decode" => |d| sotto_crypto::IdentityKeys::from_bytes(d).is_ok(),
        _ => return None,
    })
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn names(dir: &Path, strip_rs: bool) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .map(|n| {
            if strip_rs {
                n.trim_end_matches(".rs").to_owned()
            } else {
                n
            }
        })
        .collect()
}

#[test]
fn every_target_has_a_corpus_and_an_entry_point() {
    let targets = names(&fuzz_dir().join("fuzz_targets"), true);
    let corpora = names(&fuzz_dir().join("corpus"), false);
    assert!(!targets.is_empty());
    assert_eq!(
        targets, corpora,
        "fuzz targets and corpus directories differ"
    );
    for t in &targets {
        assert!(
            entry(t).is_some(),
            "no entry point for fuzz target {t} in this test"
        );
    }
}

#[test]
fn every_seed_is_handled_without_panic() {
    let corpus = fuzz_dir().join("corpus");
    let mut replayed = 0;
    for target in names(&corpus, false) {
        let run = entry(&target).unwrap_or_else(|| panic!("unknown fuzz target {target}"));
        let dir = corpus.join(&target);
        let seeds = names(&dir, false);
        assert!(seeds.contains("valid"), "{target}: no `valid` seed");
        for seed in seeds {
            let data = std::fs::read(dir.join(&seed)).unwrap();
            let accepted = run(&data);
            if seed.starts_with("valid") {
                assert!(
                    accepted,
                    "{target}/{seed} no longer decodes: refresh the seed"
                );
            } else {
                assert!(!accepted, "{target}/{seed} is malformed but was accepted");
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0);
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The checked-in samples directory.
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples")
}

/// The verdict codes of an `*.expected.jsonl` golden file, in record order.
pub fn expected_codes(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["verdict"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The verdict codes of a verdicts file or stream (JSON lines with a `code` field).
pub fn verdict_codes(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// How many entries of `dir` have a name `matches` accepts (leftover partial uploads,
/// staging directories).
pub fn count_entries(dir: &Path, matches: impl Fn(&str) -> bool) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| matches(&e.as_ref().unwrap().file_name().to_string_lossy()))
        .count()
}

/// A fresh clearing store made from a dataset's `NAME.params/`, opened as an engine.
pub fn fresh_store(params: &Path) -> (tempfile::TempDir, microcash::engine::Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    microcash::dataset::init_store_from_params(params, &store).unwrap();
    let engine =
        microcash::engine::Engine::open(&store, microcash::spentset::SpentSetConfig::default())
            .unwrap();
    (tmp, engine)
}

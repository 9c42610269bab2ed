//! The fuzz corpus, replayed without the fuzzer: every committed seed and
//! every crash kept as a regression (`fuzz/corpus/<target>/`) goes through
//! the same function its fuzz target runs, so `cargo test` catches a
//! regression even where nobody runs `cargo fuzz`.

#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

#[test]
fn every_fuzz_corpus_input_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    for (target, run) in harness::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{}: the seed corpus is missing", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "fuzz corpus inputs that fail their target: {failures:#?}");
}

/// The replay would pass vacuously if the harness's checks could not fail:
/// a refusal that names no field must trip them.
#[test]
fn the_harness_fails_on_a_refusal_without_a_field() {
    use livechat::http::error::ApiError;
    use livechat::service::Error;
    let unnamed = [ApiError::UnsupportedMediaType, ApiError::Service(Error::Validation(Default::default()))];
    for err in unnamed {
        assert!(std::panic::catch_unwind(|| harness::assert_names_fields(&err, &"input")).is_err(), "{err:?}");
    }
    let named = ApiError::field("limit", "must be an integer");
    assert!(std::panic::catch_unwind(|| harness::assert_names_fields(&named, &"input")).is_ok());
}

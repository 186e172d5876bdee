//! The fuzz targets' seed corpus (`fuzz/corpus`), replayed as an ordinary test: every input,
//! including those a fuzzer once found to crash, returns without panicking.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use cutover_engine::fuzzing;

/// A fuzz target's harness.
type Harness = fn(&[u8]);

#[test]
fn the_seed_corpus_passes_every_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let targets: [(&str, Harness); 3] =
        [("mapping", fuzzing::mapping), ("schema", fuzzing::schema), ("expression", fuzzing::expression)];
    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packs");
    for (target, harness) in targets {
        let mut inputs: Vec<_> = std::fs::read_dir(root.join(target)).unwrap().map(|e| e.unwrap().path()).collect();
        inputs.sort();
        // The packs' own files seed the corpus too (`cargo fuzz run schema fuzz/corpus/schema packs/omikai …`).
        let own = match target {
            "mapping" => vec!["omikai/mapping.toml", "tpch/mapping.toml"],
            "schema" => vec!["omikai/v1.sql", "omikai/v2.sql", "tpch/v1.sql", "tpch/v2.sql"],
            _ => Vec::new(),
        };
        inputs.extend(own.iter().map(|f| packs.join(f)));
        assert!(inputs.len() >= 5, "{target}: the seed corpus is missing");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(outcome.is_ok(), "{target}: {} panicked", input.display());
        }
    }
}

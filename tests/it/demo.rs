//! `tartan demo`'s synthetic comparison says what the demo claims (issue 11, item 5): at the
//! demo's own settings META-TARTAN beats fine-tuning and weights the related corpus at least
//! 0.05 above the noise one. docs/RESULTS.md has seeds 0-19. Seeds 1 and 2 are checked
//! because they failed at the demo's earlier settings (related 0.02 below noise), seed 5 as one
//! that always passed.

use tartan::cli::demo::{Row, run_strategy, synthetic_config};
use tartan::config::Strategy;

fn weight(row: &Row, task: &str) -> f64 {
    row.weights.iter().find(|w| w.task == task).unwrap_or_else(|| panic!("no weight for {task}")).last
}

#[test]
fn the_demo_ranks_meta_tartan_and_the_related_corpus_first() {
    for seed in [1, 2, 5] {
        let dir = tempfile::tempdir().unwrap();
        let base = synthetic_config(seed, dir.path()).unwrap();
        let finetune = run_strategy(&base, Strategy::Finetune, dir.path()).unwrap();
        let meta = run_strategy(&base, Strategy::MetaTartan, dir.path()).unwrap();
        let (m, f) = (meta.result.test.as_ref().unwrap().accuracy, finetune.result.test.as_ref().unwrap().accuracy);
        assert!(m > f, "seed {seed}: META-TARTAN test accuracy {m} is not above fine-tuning's {f}");
        let (related, noise) = (weight(&meta, "related"), weight(&meta, "noise"));
        assert!(related >= noise + 0.05, "seed {seed}: related {related:.3} is not 0.05 above noise {noise:.3}");
    }
}

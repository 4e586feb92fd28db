//! End-to-end training on a tiny BERT and a synthetic task (no downloads, no ../shared).

use crate::common::latest_checkpoint;
use crate::common::tiny::{tiny_config, tiny_setup};
use burn::module::Module;
use burn::tensor::Device;
use tartan::data::task::Split;
use tartan::train::checkpoints::checkpoints;
use tartan::train::evaluate::evaluate;
use tartan::train::metrics::Scores;
use tartan::train::plan::Phase;
use tartan::train::records::{Record, read_records};
use tartan::train::saved_model::load_model;
use tartan::train::strategy::{self, Start};
use tartan::train::trainer::Trainer;

#[test]
fn finetune_learns_and_the_saved_model_reloads() {
    let setup = tiny_setup(1);
    let run = setup.path("run");
    let result = Trainer::new(tiny_config(&setup, &run, &[]), Phase::Main, false).unwrap().run().unwrap();
    let test = result.test.clone().unwrap();
    // 4 balanced topics: chance is 0.25.
    assert!(test.accuracy > 0.5, "test accuracy {} is not clearly above chance", test.accuracy);

    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "tartan.json"] {
        assert!(run.join("best").join(f).exists(), "best/{f} missing");
    }
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(resolved.contains("lr = 0.005"), "resolved config not saved:\n{resolved}");
    let records = read_records(&run).unwrap();
    assert!(records.iter().any(|r| matches!(r, Record::Eval { .. })), "no evaluation logged");

    // The best checkpoint loads back and scores exactly as the run reported.
    let again = best_scores_on(&setup, &run, "test.jsonl");
    assert_eq!(again.accuracy, test.accuracy);
    assert_eq!(again.confusion, test.confusion);
}

#[test]
fn same_seed_gives_identical_runs_and_another_seed_does_not() {
    let setup = tiny_setup(2);
    let extra = ["train.max_steps=30", "eval.every_steps=15"];
    let run = |name: &str, seed: &str| {
        let mut sets = extra.to_vec();
        sets.push(seed);
        Trainer::new(tiny_config(&setup, &setup.path(name), &sets), Phase::Main, false).unwrap().run().unwrap()
    };
    let a = run("a", "seed=5");
    let b = run("b", "seed=5");
    run("c", "seed=6");
    assert_eq!(a.dev, b.dev);
    assert_eq!(a.test, b.test);
    // Everything logged at the steps but the speed.
    let log = |n: &str| -> Vec<Record> {
        read_records(&setup.path(n))
            .unwrap()
            .into_iter()
            .filter_map(|r| match r {
                Record::Train { step, lr, head_lr, loss, grad_norm, dev_loss, tasks, .. } => {
                    Some(Record::Train { step, lr, head_lr, loss, grad_norm, steps_per_s: 0.0, dev_loss, tasks })
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(log("a"), log("b"), "losses differ between runs with the same seed");
    assert_ne!(log("a"), log("c"), "a different seed gave the same losses");
}

#[test]
fn interrupted_and_resumed_run_ends_like_an_uninterrupted_one() {
    let setup = tiny_setup(3);
    let extra = ["train.max_steps=24", "eval.every_steps=8", "seed=9"];
    let full =
        Trainer::new(tiny_config(&setup, &setup.path("full"), &extra), Phase::Main, false).unwrap().run().unwrap();

    let resumed_dir = setup.path("resumed");
    let mut first = Trainer::new(tiny_config(&setup, &resumed_dir, &extra), Phase::Main, false).unwrap();
    first.run_until(13).unwrap();
    drop(first);
    let mut second = Trainer::new(tiny_config(&setup, &resumed_dir, &extra), Phase::Main, true).unwrap();
    let resumed = second.run().unwrap();

    assert_eq!(resumed.steps, full.steps);
    assert_eq!(resumed.best_step, full.best_step);
    let (a, b) = (full.test.unwrap(), resumed.test.unwrap());
    assert_eq!(a.confusion, b.confusion);
    let weights = |run: &str| {
        tartan::model::weights::read_plain(&latest_checkpoint(&setup.path(run)).unwrap().join("model.safetensors"))
            .unwrap()
    };
    let (wa, wb) = (weights("full"), weights("resumed"));
    assert_eq!(wa.len(), wb.len());
    for (k, (_, va)) in &wa {
        let vb = &wb[k].1;
        let diff = va.iter().zip(vb).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "{k} differs by {diff} after resume");
    }
}

#[test]
fn a_diverging_run_skips_non_finite_steps_then_stops_and_keeps_the_last_good_checkpoint() {
    let setup = tiny_setup(4);
    let run = setup.path("nan");
    let cfg = tiny_config(
        &setup,
        &run,
        &[
            "train.max_steps=40",
            "eval.every_steps=5",
            "train.clip_norm=0",
            "train.lr=1e30",
            "train.head_lr=1e30",
            "train.warmup_ratio=0",
        ],
    );
    let err = format!("{:#}", Trainer::new(cfg, Phase::Main, false).unwrap().run().unwrap_err());
    assert!(err.contains("non-finite") || err.contains("not finite"), "{err}");
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    // Whatever was saved is finite.
    if let Some(checkpoint) = latest_checkpoint(&run) {
        let saved = tartan::model::weights::read_plain(&checkpoint.join("model.safetensors")).unwrap();
        assert!(
            saved.values().all(|(_, v)| v.iter().all(|x| x.is_finite())),
            "a non-finite checkpoint was written; log:\n{log}"
        );
    }
}

#[test]
fn checkpoints_follow_their_cadence_and_only_the_latest_are_kept() {
    let setup = tiny_setup(5);
    let run = setup.path("run");
    let extra = ["train.max_steps=24", "eval.every_steps=8", "checkpoint.every_steps=5", "checkpoint.keep=2"];
    let steps = || checkpoints(&run).unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>();
    let mut first = Trainer::new(tiny_config(&setup, &run, &extra), Phase::Main, false).unwrap();
    first.run_until(12).unwrap();
    drop(first);
    // Saved at 5 and 10, and at 12 on stopping; two kept.
    assert_eq!(steps(), vec![10, 12]);
    Trainer::new(tiny_config(&setup, &run, &extra), Phase::Main, true).unwrap().run().unwrap();
    assert_eq!(steps(), vec![20, 24]);
    assert!(run.join("best/model.safetensors").exists(), "best/ is kept apart from the rotation");
}

/// Dev scores logged by the main phase at its evaluations.
fn main_dev_accuracies(run: &std::path::Path) -> Vec<f64> {
    read_records(run)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Eval { split, accuracy, .. } if split == "dev" => Some(accuracy),
            _ => None,
        })
        .collect()
}

/// Scores of the run's `best/` model, reloaded from disk, on the setup's `split_file`.
fn best_scores_on(setup: &crate::common::tiny::TinySetup, run: &std::path::Path, split_file: &str) -> Scores {
    let device = Device::flex();
    let saved = load_model(&run.join("best"), &device).unwrap();
    let split = Split::load(&setup.path(split_file), &saved.labels, &saved.pretrained.tokenizer, saved.info.max_length)
        .unwrap();
    evaluate(&saved.model.valid(), &split, &saved.labels, 64, saved.pretrained.tokenizer.pad_id, &device)
}

#[test]
fn the_final_stage_replaces_best_only_when_dev_improves() {
    let setup = tiny_setup(6);
    // A main phase of 3 steps leaves plenty for the final stage to gain at a useful lr; with
    // an evaluation every 3 steps, patience 5 lets it train past its warm-up (dev 0.27, 0.24,
    // then 0.42 and up at seed 6).
    let base = ["train.max_steps=3", "eval.every_steps=3", "final_finetune.epochs=2", "final_finetune.patience=5"];
    let run = setup.path("improves");
    let cfg = tiny_config(&setup, &run, &[&base[..], &["final_finetune.lr=5e-3"]].concat());
    let result = strategy::run(&cfg, Start::Fresh).unwrap();
    let last = result.final_finetune.clone().expect("the final stage ran");
    let main_dev = main_dev_accuracies(&run)[0];
    assert!(last.best_step.is_some(), "the final stage did not improve dev from {main_dev}");
    let dev = result.dev.as_ref().unwrap().accuracy;
    assert!(dev > main_dev, "run result {dev} is not the improved {main_dev}");
    assert_eq!(dev, best_scores_on(&setup, &run, "dev.jsonl").accuracy, "best/ is not the final stage's model");
    assert!(run.join("final-finetune/results.json").exists());
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert!(saved["final_finetune"]["best_step"].is_u64(), "{saved}");

    // At a learning rate too small to change anything, dev cannot improve: best/ stays.
    let run = setup.path("same");
    let cfg = tiny_config(&setup, &run, &[&base[..], &["final_finetune.lr=1e-12"]].concat());
    let result = strategy::run(&cfg, Start::Fresh).unwrap();
    assert_eq!(result.final_finetune.as_ref().unwrap().best_step, None);
    let main_dev = main_dev_accuracies(&run)[0];
    assert_eq!(result.dev.as_ref().unwrap().accuracy, main_dev);
    assert_eq!(best_scores_on(&setup, &run, "dev.jsonl").accuracy, main_dev);
}

/// The MLM-head warm-up trains the MLM head alone (encoder and classifier come out of it
/// bit-identical to a run without it), logs each window, and stops at the first window that
/// improves on the one before by less than `min_improvement`.
#[test]
fn mlm_warmup_fits_the_head_alone_and_stops_at_the_plateau() {
    let setup = tiny_setup(7);
    let related = setup.path("related.txt").display().to_string();
    let checkpoint = |name: &str, mode: &str| {
        let run = setup.path(name);
        let sets = [
            "strategy=mt-tartan".to_string(),
            format!("aux=[{{name=\"related\", file=\"{related}\"}}]"),
            "train.max_steps=1".into(),
            format!("mlm_warmup.mode={mode}"),
            "mlm_warmup.max_steps=400".into(),
            "mlm_warmup.window=20".into(),
            "mlm_warmup.min_improvement=0.005".into(),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        Trainer::new(tiny_config(&setup, &run, &sets), Phase::Main, false).unwrap().save_checkpoint().unwrap();
        let tensors = tartan::model::weights::read_plain(&latest_checkpoint(&run).unwrap().join("model.safetensors"));
        (run, tensors.unwrap())
    };
    let (_, off) = checkpoint("cold", "off");
    let (run, on) = checkpoint("warm", "on");
    for (name, value) in &on {
        if name.starts_with("mlm.") {
            assert_ne!(value, &off[name], "{name} did not train");
        } else {
            assert_eq!(value, &off[name], "{name} changed during the warm-up");
        }
    }
    let windows: Vec<(u64, f64)> = read_records(&run)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::MlmWarmup { step, loss, .. } => Some((step as u64, loss)),
            _ => None,
        })
        .collect();
    assert!(windows.len() >= 2 && windows.iter().enumerate().all(|(i, w)| w.0 == 20 * (i as u64 + 1)), "{windows:?}");
    let improved = |pair: &[(u64, f64)]| pair[0].1 - pair[1].1 >= 0.005 * pair[0].1;
    let pairs: Vec<&[(u64, f64)]> = windows.windows(2).collect();
    assert!(pairs[..pairs.len() - 1].iter().all(|p| improved(p)), "went on past a plateau: {windows:?}");
    assert!(!improved(pairs[pairs.len() - 1]) || windows.last().unwrap().0 == 400, "stopped early: {windows:?}");
}

/// With `eval.test = false` test is not scored during training, but the run's result has the
/// test scores of its best model, equal to scoring `best/` afterwards.
#[test]
fn test_is_scored_once_on_the_best_model_when_eval_test_is_off() {
    let setup = tiny_setup(8);
    let run = setup.path("once");
    let result =
        strategy::run(&tiny_config(&setup, &run, &["train.max_steps=50", "eval.test=false"]), Start::Fresh).unwrap();
    let records = read_records(&run).unwrap();
    let test_scores = records.iter().filter(|r| matches!(r, Record::Eval { split, .. } if split == "test")).count();
    assert_eq!(test_scores, 1, "{records:?}");
    assert_eq!(result.test.unwrap().accuracy, best_scores_on(&setup, &run, "test.jsonl").accuracy);
}

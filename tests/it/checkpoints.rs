//! Checkpoint layouts: sharded weights, the Hub cache, and what `best/` holds.

use crate::common::tiny::{tiny_config, tiny_setup};
use burn::tensor::Device;
use tartan::model::hub;
use tartan::model::weights::{hf_tensors, read_plain, to_safetensors_bytes};
use tartan::train::plan::Phase;
use tartan::train::pretrained::Pretrained;
use tartan::train::trainer::Trainer;

#[test]
fn sharded_checkpoint_loads_like_a_single_file() {
    let setup = tiny_setup(31);
    let single = Pretrained::from_dir(&setup.model).unwrap();
    let (encoder, mlm) = single.load(true, 0, &Device::flex()).unwrap();
    let all = read_plain(&setup.model.join("model.safetensors")).unwrap();

    let sharded = setup.path("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(setup.model.join(f), sharded.join(f)).unwrap();
    }
    let (mut first, mut second, mut map) = (vec![], vec![], serde_json::Map::new());
    for (i, (k, (shape, values))) in all.iter().enumerate() {
        let (list, file) = if i % 2 == 0 {
            (&mut first, "model-00001-of-00002.safetensors")
        } else {
            (&mut second, "model-00002-of-00002.safetensors")
        };
        list.push((k.clone(), shape.clone(), values.clone()));
        map.insert(k.clone(), serde_json::json!(file));
    }
    std::fs::write(sharded.join("model-00001-of-00002.safetensors"), to_safetensors_bytes(&first).unwrap()).unwrap();
    std::fs::write(sharded.join("model-00002-of-00002.safetensors"), to_safetensors_bytes(&second).unwrap()).unwrap();
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();

    let (enc2, mlm2) = Pretrained::from_dir(&sharded).unwrap().load(true, 0, &Device::flex()).unwrap();
    assert_eq!(hf_tensors(&encoder, "", None), hf_tensors(&enc2, "", None));
    let family = Some(single.config.family);
    assert_eq!(hf_tensors(mlm.as_ref().unwrap(), "", family), hf_tensors(mlm2.as_ref().unwrap(), "", family));
}

#[test]
fn hub_ids_resolve_from_the_cache_and_offline_misses_say_where_they_looked() {
    let setup = tiny_setup(32);
    let cache_dir = setup.path("hf-cache");
    let cache = hf_hub::Cache::new(cache_dir.clone());
    let err = hub::resolve_in("someone/tiny-bert", &cache, true).unwrap_err().to_string();
    assert!(
        err.contains("not in the Hugging Face cache at") && err.contains(&cache_dir.display().to_string()),
        "{err}"
    );
    assert!(err.contains("HF_HUB_OFFLINE") && err.contains("huggingface-cli download someone/tiny-bert"), "{err}");

    // The standard cache layout: models--org--name/snapshots/<rev>/ and refs/main.
    let repo = cache_dir.join("models--someone--tiny-bert");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(setup.model.join(f), snapshot.join(f)).unwrap();
    }
    let dir = hub::resolve_in("someone/tiny-bert", &cache, true).unwrap();
    assert_eq!(dir, snapshot);
    Pretrained::from_dir(&dir).unwrap().load(false, 0, &Device::flex()).unwrap();
}

#[test]
fn gradient_accumulation_and_early_stopping_work() {
    let setup = tiny_setup(33);
    let run = setup.path("accum");
    let cfg = tiny_config(
        &setup,
        &run,
        &[
            "train.grad_accum=2",
            "train.batch_size=8",
            "eval.every_steps=5",
            "eval.patience=2",
            "train.lr=1e-9",
            "train.head_lr=1e-9",
        ],
    );
    let result = Trainer::new(cfg, Phase::Main, false).unwrap().run().unwrap();
    // With a learning rate of 1e-9 nothing improves after the first evaluation: the run stops
    // after `patience` more evaluations, long before its 250 steps.
    assert_eq!(result.steps, 15, "early stopping did not stop the run at step 15");
    assert_eq!(result.best_step, Some(5));
}

/// A crash inside a checkpoint swap leaves `checkpoint-<step>.old` (the previous complete one)
/// or a half-written `.staged` folder; resuming finds the complete ones only.
#[test]
fn resume_finds_complete_checkpoints_after_a_crash_mid_swap() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, complete: bool| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        if complete {
            std::fs::write(d.join("state.json"), "{}").unwrap();
        }
    };
    make("checkpoint-5", true);
    make("checkpoint-12.old", true);
    make("checkpoint-13.staged", false);
    make("checkpoint-x", true);
    tartan::train::checkpoints::recover_checkpoints(dir.path()).unwrap();
    let found = tartan::train::checkpoints::checkpoints(dir.path()).unwrap();
    let steps: Vec<usize> = found.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, vec![5, 12]);
    assert!(dir.path().join("checkpoint-12/state.json").exists(), "the .old folder was not put back");
    assert!(!dir.path().join("checkpoint-13.staged").exists(), "staged leftovers were not removed");
}

//! A tiny BERT and the synthetic task on disk, so training tests need no download.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use tartan::config::RunConfig;
use tartan::data::synthetic::{generate, vocabulary, word_level_tokenizer, write_jsonl};
use tartan::model::{Bert, MlmHead, ModelConfig};
use tartan::train::saved_model::save_pretrained;

pub struct TinySetup {
    pub dir: tempfile::TempDir,
    pub model: PathBuf,
}

impl TinySetup {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Writes `model/` (a random 2-layer BERT with an MLM head), `train/dev/test.jsonl`,
/// `related.txt` and `noise.txt` into a temporary folder.
pub fn tiny_setup(seed: u64) -> TinySetup {
    let dir = tempfile::tempdir().unwrap();
    let task = generate(seed, 400, 200, 400);
    write_jsonl(&dir.path().join("train.jsonl"), &task.train).unwrap();
    write_jsonl(&dir.path().join("dev.jsonl"), &task.dev).unwrap();
    write_jsonl(&dir.path().join("test.jsonl"), &task.test).unwrap();
    std::fs::write(dir.path().join("related.txt"), task.related.join("\n")).unwrap();
    std::fs::write(dir.path().join("noise.txt"), task.noise.join("\n")).unwrap();
    let tokenizer = word_level_tokenizer(&vocabulary()).unwrap();
    let config = ModelConfig::tiny_bert(tokenizer.vocab_size(), 32, 2, 4, 64);
    let device = Device::flex();
    let encoder = Bert::new(&config, seed, &device);
    let mlm = MlmHead::new(&config, seed, &device);
    let model = dir.path().join("model");
    save_pretrained(&model, &encoder, Some(&mlm), &config, &tokenizer, None).unwrap();
    TinySetup { dir, model }
}

/// A fine-tuning config over the tiny setup; `extra` are `--set` style overrides.
pub fn tiny_config(setup: &TinySetup, run: &Path, extra: &[&str]) -> RunConfig {
    RunConfig::load(None, &tiny_sets(setup, run, extra)).unwrap()
}

/// `tiny_config` as `--set` overrides, for runs through the binary.
pub fn tiny_sets(setup: &TinySetup, run: &Path, extra: &[&str]) -> Vec<String> {
    let p = |n: &str| setup.path(n).display().to_string();
    let mut sets: Vec<String> = vec![
        format!("model.name={}", setup.model.display()),
        "model.max_length=32".into(),
        format!("task.train={}", p("train.jsonl")),
        format!("task.dev={}", p("dev.jsonl")),
        format!("task.test={}", p("test.jsonl")),
        format!("output_dir={}", run.display()),
        "train.batch_size=16".into(),
        "train.epochs=10".into(),
        "train.lr=5e-3".into(),
        "train.head_lr=5e-3".into(),
        "eval.every_steps=25".into(),
        "eval.batch_size=100".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    sets
}

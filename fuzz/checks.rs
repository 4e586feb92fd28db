#![allow(dead_code)] // each fuzz target uses one of these checks
//! What each fuzz target checks, shared with `tests/it/fuzz_regressions.rs`, which replays the
//! seeds and every input a fuzzer once crashed on. Each function takes arbitrary bytes and
//! must return (an error is fine) without panicking, overflowing or running out of memory.

use tartan::model::ModelConfig;

/// The end-task reader and the label map.
pub fn jsonl(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.jsonl");
    std::fs::write(&path, data).unwrap();
    if let Ok(examples) = tartan::data::jsonl::read_jsonl(&path) {
        assert!(!examples.is_empty());
        if let Ok(labels) = tartan::data::LabelMap::from_train(&examples, &path) {
            labels.ids(&examples, &path).unwrap();
        }
    }
}

/// The run configuration: TOML, unknown-key suggestions, validation; what a run saves must
/// load back as the same configuration.
pub fn run_config(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    std::fs::write(&path, data).unwrap();
    if let Ok(config) = tartan::config::RunConfig::load(Some(&path), &[]) {
        std::fs::write(&path, config.to_toml()).unwrap();
        let again = tartan::config::RunConfig::load(Some(&path), &[]).unwrap();
        assert_eq!(again.to_toml(), config.to_toml());
    }
}

/// A model folder: `config.json` (the input up to the first NUL byte) and `model.safetensors`
/// (the rest), loaded as encoder and MLM head. A config that would build a large model is
/// parsed but then replaced by a tiny one, so the fuzzer explores the loader, not the allocator.
pub fn model_files(data: &[u8]) {
    let (config_bytes, weights) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let parsed = std::str::from_utf8(config_bytes).ok().and_then(|t| ModelConfig::from_json(t).ok());
    let small = |c: &ModelConfig| {
        c.vocab_size <= 512
            && c.hidden_size <= 64
            && c.num_hidden_layers <= 2
            && c.intermediate_size <= 256
            && c.max_position_embeddings <= 128
            && c.type_vocab_size <= 4
    };
    let config = parsed.filter(small).unwrap_or_else(|| ModelConfig::tiny_bert(64, 16, 1, 2, 32));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.safetensors"), weights).unwrap();
    let device = burn::tensor::Device::flex();
    let _ = tartan::model::weights::load_pretrained(dir.path(), &config, true, 0, &device);
}

/// A pickled checkpoint: the input as `pytorch_model.bin` beside the config of the pickle
/// fixtures (tests/fixtures/pickle/), loaded as encoder and MLM head. Besides not panicking,
/// it must never run what the pickle asks for, which tests/pickle.rs checks on its fixtures.
pub fn pickle_file(data: &[u8]) {
    let config = ModelConfig::from_json(include_str!("../tests/fixtures/pickle/config.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), data).unwrap();
    let device = burn::tensor::Device::flex();
    let _ = tartan::model::weights::load_pretrained(dir.path(), &config, true, 0, &device);
}

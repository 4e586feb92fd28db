//! A trained model on disk: the encoder in Hugging Face layout (config.json,
//! model.safetensors with HF key names, tokenizer.json) plus the end-task head and label map,
//! so `transformers` loads it as an encoder and `tartan eval`/`predict` load all of it.

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::pretrained::Pretrained;
use crate::data::{LabelMap, TextTokenizer};
use crate::fsutil::{replace_dir, staging_dir, write_atomic};
use crate::model::export::write_encoder;
use crate::model::weights::{load_plain, plain_tensors, read_plain, to_safetensors_bytes};
use crate::model::{Bert, ClassificationHead, MlmHead, ModelConfig, TartanModel};

/// `tartan.json` in a saved model: what is needed to use the head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadInfo {
    pub labels: Vec<String>,
    pub max_length: usize,
    pub head_dropout: f64,
}

pub fn save_model(
    dest: &Path,
    model: &TartanModel,
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
    labels: &LabelMap,
    max_length: usize,
    head_dropout: f64,
) -> Result<()> {
    let staged = staging_dir(dest)?;
    write_encoder_files(&staged, &model.encoder, model.mlm.as_ref(), config, tokenizer)?;
    write_atomic(&staged.join("head.safetensors"), &to_safetensors_bytes(&plain_tensors(&model.classifier))?)?;
    let info = HeadInfo { labels: labels.labels.clone(), max_length, head_dropout };
    write_atomic(&staged.join("tartan.json"), serde_json::to_string_pretty(&info)?.as_bytes())?;
    replace_dir(&staged, dest)
}

/// A pretrained encoder (and MLM head) in Hugging Face layout: what `tartan train` starts from.
pub fn save_pretrained(
    dest: &Path,
    encoder: &Bert,
    mlm: Option<&MlmHead>,
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
) -> Result<()> {
    let staged = staging_dir(dest)?;
    write_encoder_files(&staged, encoder, mlm, config, tokenizer)?;
    replace_dir(&staged, dest)
}

/// The encoder files plus the tokenizer, so the folder is a complete HF checkpoint.
fn write_encoder_files(
    dir: &Path,
    encoder: &Bert,
    mlm: Option<&MlmHead>,
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
) -> Result<()> {
    write_encoder(dir, encoder, mlm, config)?;
    tokenizer.save(&dir.join("tokenizer.json"))
}

/// A model saved by `save_model`, ready for evaluation or further training.
pub struct SavedModel {
    pub model: TartanModel,
    pub pretrained: Pretrained,
    pub labels: LabelMap,
    pub info: HeadInfo,
}

pub fn load_model(dir: &Path, device: &Device) -> Result<SavedModel> {
    let info_path = dir.join("tartan.json");
    let info: HeadInfo = serde_json::from_str(
        &std::fs::read_to_string(&info_path)
            .with_context(|| format!("{} is not a model saved by tartan (no tartan.json)", dir.display()))?,
    )
    .with_context(|| format!("{} is not valid", info_path.display()))?;
    let pretrained = Pretrained::from_dir(dir)?;
    let (encoder, mlm) = pretrained.load(false, device)?;
    let hidden = pretrained.config.hidden_size;
    let head = ClassificationHead::new(hidden, info.labels.len(), info.head_dropout, device);
    let classifier = load_plain(head, read_plain(&dir.join("head.safetensors"))?, "head.safetensors")?;
    let labels = LabelMap { labels: info.labels.clone() };
    Ok(SavedModel { model: TartanModel::new(encoder, classifier, mlm), pretrained, labels, info })
}

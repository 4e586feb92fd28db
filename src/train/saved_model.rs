//! A trained model on disk, a complete Hugging Face `*ForSequenceClassification` checkpoint:
//! `config.json` with the label maps, `model.safetensors` with the encoder and the end-task
//! head under `transformers`' names, and the tokenizer files, so
//! `pipeline("text-classification", model=dir)` uses it as it is. `tartan.json` adds what
//! tartan needs on top (labels, max length, head dropout) and marks the folder as tartan's.

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::pretrained::Pretrained;
use crate::data::{LabelMap, TextTokenizer};
use crate::fsutil::{replace_dir, staging_dir, write_atomic};
use crate::model::export::{write_classifier, write_encoder};
use crate::model::weights::{load_hf_head, load_plain, read_plain};
use crate::model::{Bert, ClassificationHead, MlmHead, ModelConfig, TartanModel};

/// `tartan.json` in a saved model: what is needed to use the head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadInfo {
    pub labels: Vec<String>,
    pub max_length: usize,
    pub head_dropout: f64,
}

/// Writes `model`'s encoder and end-task head to `dest`, replacing it atomically. `source` is
/// the checkpoint the model came from, whose tokenizer and tokenizer files it keeps.
pub fn save_model(dest: &Path, model: &TartanModel, source: &Pretrained, info: &HeadInfo) -> Result<()> {
    let staged = staging_dir(dest)?;
    write_classifier(&staged, &model.encoder, &model.classifier, &source.config, &info.labels, info.head_dropout)?;
    source.tokenizer.save_hf(&staged, Some(&source.dir), Some(info.max_length))?;
    write_atomic(&staged.join("tartan.json"), serde_json::to_string_pretty(info)?.as_bytes())?;
    replace_dir(&staged, dest)
}

/// A pretrained encoder (and MLM head) in Hugging Face layout: what `tartan train` starts from.
/// `source` is the folder whose tokenizer files to keep, if any.
pub fn save_pretrained(
    dest: &Path,
    encoder: &Bert,
    mlm: Option<&MlmHead>,
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
    source: Option<&Path>,
) -> Result<()> {
    let staged = staging_dir(dest)?;
    write_encoder(&staged, encoder, mlm, config)?;
    tokenizer.save_hf(&staged, source, None)?;
    replace_dir(&staged, dest)
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
    let (encoder, mlm) = pretrained.load(false, 0, device)?;
    let classifier = load_classifier(&pretrained, info.labels.len(), info.head_dropout, device)?;
    let labels = LabelMap { labels: info.labels.clone() };
    Ok(SavedModel { model: TartanModel::new(encoder, classifier, mlm), pretrained, labels, info })
}

/// The end-task head of a saved model: from `model.safetensors`, or from `head.safetensors`
/// (keyed by burn path) in folders saved before the head moved there.
pub fn load_classifier(
    saved: &Pretrained,
    n_labels: usize,
    dropout: f64,
    device: &Device,
) -> Result<ClassificationHead> {
    // The seed is moot: the saved head's weights replace the drawn ones.
    let head = ClassificationHead::new(saved.config.hidden_size, n_labels, dropout, 0, device);
    let old = saved.dir.join("head.safetensors");
    if old.exists() {
        return load_plain(head, read_plain(&old)?, &old.display().to_string());
    }
    load_hf_head(&saved.dir, saved.config.family, head)
}

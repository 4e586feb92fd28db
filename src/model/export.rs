//! Writing a model in the Hugging Face layout `weights.rs` reads: the checkpoint's own
//! `config.json` with `architectures` set, and `model.safetensors` with HF key names. An
//! encoder (and MLM head) loads in `transformers` as `AutoModel` (or `AutoModelForMaskedLM`);
//! an encoder with the end-task head as `AutoModelForSequenceClassification`.

use std::path::Path;

use anyhow::Result;

use super::bert::Bert;
use super::config::{Family, ModelConfig};
use super::heads::{ClassificationHead, MlmHead};
use super::weights::{hf_head_tensors, hf_tensors, to_safetensors_bytes};
use crate::fsutil::write_atomic;

/// Writes `config.json` and `model.safetensors` of `encoder` (and `mlm`) into `dir`.
pub fn write_encoder(dir: &Path, encoder: &Bert, mlm: Option<&MlmHead>, config: &ModelConfig) -> Result<()> {
    let family = config.family;
    let mut raw = config.raw.clone();
    let (prefix, arch) = match (mlm, family) {
        // With an MLM head the keys carry the base-model prefix, as `*ForMaskedLM` saves them,
        // so both `AutoModel` and `AutoModelForMaskedLM` find their weights.
        (Some(_), Family::Bert) => ("bert.", "BertForMaskedLM"),
        (Some(_), Family::Roberta) => ("roberta.", "RobertaForMaskedLM"),
        (None, Family::Bert) => ("", "BertModel"),
        (None, Family::Roberta) => ("", "RobertaModel"),
    };
    raw["architectures"] = serde_json::json!([arch]);
    let mut tensors = hf_tensors(encoder, prefix, None);
    if let Some(mlm) = mlm {
        tensors.extend(hf_tensors(mlm, "", Some(family)));
    }
    write_atomic(&dir.join("config.json"), serde_json::to_string_pretty(&raw)?.as_bytes())?;
    write_atomic(&dir.join("model.safetensors"), &to_safetensors_bytes(&tensors)?)
}

/// Writes `encoder` with the end-task `head` as a `*ForSequenceClassification` checkpoint:
/// `config.json` with the label maps (`labels` by class index) and the head's dropout as
/// `classifier_dropout`, and `model.safetensors` with the base-model prefix and the
/// head under `transformers`' names. No MLM head: the classifier does not use it, and
/// `transformers` would warn about every unused key.
pub fn write_classifier(
    dir: &Path,
    encoder: &Bert,
    head: &ClassificationHead,
    config: &ModelConfig,
    labels: &[String],
    head_dropout: f64,
) -> Result<()> {
    let family = config.family;
    let mut raw = config.raw.clone();
    let arch = match family {
        Family::Bert => "BertForSequenceClassification",
        Family::Roberta => "RobertaForSequenceClassification",
    };
    let id2label: serde_json::Map<String, serde_json::Value> =
        labels.iter().enumerate().map(|(i, l)| (i.to_string(), serde_json::json!(l))).collect();
    let label2id: serde_json::Map<String, serde_json::Value> =
        labels.iter().enumerate().map(|(i, l)| (l.clone(), serde_json::json!(i))).collect();
    raw["architectures"] = serde_json::json!([arch]);
    raw["id2label"] = id2label.into();
    raw["label2id"] = label2id.into();
    raw["problem_type"] = serde_json::json!("single_label_classification");
    raw["classifier_dropout"] = serde_json::json!(head_dropout);
    let mut tensors = hf_tensors(encoder, family.prefix(), None);
    tensors.extend(hf_head_tensors(head, family));
    write_atomic(&dir.join("config.json"), serde_json::to_string_pretty(&raw)?.as_bytes())?;
    write_atomic(&dir.join("model.safetensors"), &to_safetensors_bytes(&tensors)?)
}

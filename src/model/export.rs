//! Writing an encoder (and MLM head) in the Hugging Face layout `weights.rs` reads: the
//! checkpoint's own `config.json` with `architectures` set, and `model.safetensors` with HF
//! key names, so `transformers` loads it as `AutoModel` (or `AutoModelForMaskedLM`).

use std::path::Path;

use anyhow::Result;

use super::bert::Bert;
use super::config::{Family, ModelConfig};
use super::heads::MlmHead;
use super::weights::{hf_tensors, to_safetensors_bytes};
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

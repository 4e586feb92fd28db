//! The encoder's hyper-parameters, read from a Hugging Face `config.json`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Which checkpoint family a model belongs to. The two differ only in key prefixes, the MLM
/// head's key names and how position ids are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Bert,
    Roberta,
}

impl Family {
    /// The prefix `*ForMaskedLM` / `*ForSequenceClassification` checkpoints put before encoder keys.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert.",
            Family::Roberta => "roberta.",
        }
    }
}

/// The fields of `config.json` the encoder needs; everything else is kept verbatim in `raw`
/// so a saved checkpoint carries the user's config unchanged.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub pad_token_id: usize,
    pub raw: serde_json::Value,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "gelu")]
    hidden_act: String,
    #[serde(default = "p01")]
    hidden_dropout_prob: f64,
    #[serde(default = "p01")]
    attention_probs_dropout_prob: f64,
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    #[serde(default = "eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn gelu() -> String {
    "gelu".into()
}
fn p01() -> f64 {
    0.1
}
fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read model config {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("in model config {}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let raw: serde_json::Value = serde_json::from_str(text).context("config.json is not valid JSON")?;
        let c: RawConfig = serde_json::from_value(raw.clone()).context(
            "config.json lacks a field a BERT/RoBERTa encoder needs (model_type, vocab_size, hidden_size, ...)",
        )?;
        let family = match c.model_type.as_str() {
            "bert" => Family::Bert,
            "roberta" | "xlm-roberta" | "camembert" => Family::Roberta,
            other => bail!(
                "model_type `{other}` is not supported: tartan loads BERT and RoBERTa-family encoders (model_type bert, roberta, xlm-roberta, camembert)"
            ),
        };
        check(&c)?;
        let pad_token_id = c.pad_token_id.unwrap_or(match family {
            Family::Bert => 0,
            Family::Roberta => 1,
        });
        if pad_token_id >= c.vocab_size {
            bail!("pad_token_id {pad_token_id} is outside the vocabulary (vocab_size {})", c.vocab_size);
        }
        Ok(Self {
            family,
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            hidden_dropout_prob: c.hidden_dropout_prob,
            attention_probs_dropout_prob: c.attention_probs_dropout_prob,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            layer_norm_eps: c.layer_norm_eps,
            pad_token_id,
            raw,
        })
    }

    /// The longest input the position embeddings allow. RoBERTa spends `pad_token_id + 1`
    /// positions before the first token.
    pub fn max_input_length(&self) -> usize {
        match self.family {
            Family::Bert => self.max_position_embeddings,
            Family::Roberta => self.max_position_embeddings.saturating_sub(self.pad_token_id + 1),
        }
    }

    /// A small BERT built from scratch (tests and the demo).
    pub fn tiny_bert(vocab_size: usize, hidden: usize, layers: usize, heads: usize, max_len: usize) -> Self {
        let raw = serde_json::json!({
            "architectures": ["BertForMaskedLM"],
            "model_type": "bert",
            "vocab_size": vocab_size,
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": hidden * 4,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": max_len,
            "type_vocab_size": 2,
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
            "position_embedding_type": "absolute",
        });
        Self::from_json(&raw.to_string()).expect("the built-in tiny config is valid")
    }
}

/// What tartan's encoder implements, and sizes and probabilities that make sense.
fn check(c: &RawConfig) -> Result<()> {
    if c.hidden_act != "gelu" {
        bail!(
            "hidden_act `{}` is not supported: only the exact (erf) `gelu` of BERT/RoBERTa is implemented",
            c.hidden_act
        );
    }
    if let Some(kind) = c.position_embedding_type.as_deref()
        && kind != "absolute"
    {
        bail!("position_embedding_type `{kind}` is not supported: only `absolute` position embeddings are implemented");
    }
    if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
        bail!("hidden_size {} is not a multiple of num_attention_heads {}", c.hidden_size, c.num_attention_heads);
    }
    for (key, size) in [
        ("vocab_size", c.vocab_size),
        ("hidden_size", c.hidden_size),
        ("intermediate_size", c.intermediate_size),
        ("max_position_embeddings", c.max_position_embeddings),
        ("type_vocab_size", c.type_vocab_size),
    ] {
        if size == 0 {
            bail!("{key} is 0; a BERT/RoBERTa encoder needs at least 1");
        }
    }
    for (key, p) in [
        ("hidden_dropout_prob", c.hidden_dropout_prob),
        ("attention_probs_dropout_prob", c.attention_probs_dropout_prob),
    ] {
        if !(0.0..1.0).contains(&p) {
            bail!("{key} is {p}; a dropout probability must be in [0, 1)");
        }
    }
    if !(c.layer_norm_eps > 0.0 && c.layer_norm_eps.is_finite()) {
        bail!("layer_norm_eps is {}; it must be a small positive number such as 1e-12", c.layer_norm_eps);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `model_files` fuzz target: a dropout probability of 5.1 used to panic
    /// inside burn when the encoder was built.
    #[test]
    fn impossible_values_in_config_json_are_errors_naming_the_key() {
        let base = ModelConfig::tiny_bert(64, 16, 1, 2, 32).raw;
        for (key, value, expected) in [
            ("hidden_dropout_prob", serde_json::json!(5.1), "hidden_dropout_prob is 5.1"),
            ("attention_probs_dropout_prob", serde_json::json!(-0.5), "attention_probs_dropout_prob"),
            ("vocab_size", serde_json::json!(0), "vocab_size is 0"),
            ("layer_norm_eps", serde_json::json!(0.0), "layer_norm_eps"),
            ("pad_token_id", serde_json::json!(64), "pad_token_id 64 is outside"),
            ("num_attention_heads", serde_json::json!(3), "not a multiple"),
        ] {
            let mut raw = base.clone();
            raw[key] = value;
            let err = ModelConfig::from_json(&raw.to_string()).unwrap_err().to_string();
            assert!(err.contains(expected), "{key}: {err}");
        }
        assert!(ModelConfig::from_json(&base.to_string()).is_ok());
    }
}

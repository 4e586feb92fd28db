//! Tokenization through the checkpoint's own `tokenizer.json` (HF `tokenizers`).

use std::collections::HashSet;
use std::path::Path;

use crate::fsutil::write_atomic;
use anyhow::{Context, Result, anyhow};
use tokenizers::{PaddingParams, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

pub struct TextTokenizer {
    inner: Tokenizer,
    pub pad_id: u32,
    pub mask_id: Option<u32>,
    /// Ids of special tokens (CLS, SEP, PAD, ...), never chosen for masking.
    pub special_ids: HashSet<u32>,
}

impl TextTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| anyhow!("cannot load tokenizer {}: {e}", path.display()))?;
        Self::new(inner).with_context(|| format!("in tokenizer {}", path.display()))
    }

    pub fn new(mut inner: Tokenizer) -> Result<Self> {
        // Padding is ours (per batch, to the longest); a tokenizer.json that pads would pad every
        // sequence to a fixed length.
        let padding: Option<PaddingParams> = inner.get_padding().cloned();
        inner.with_padding(None);
        let id = |t: &str| inner.token_to_id(t);
        let pad_id = padding
            .map(|p| p.pad_id)
            .or_else(|| id("[PAD]"))
            .or_else(|| id("<pad>"))
            .ok_or_else(|| anyhow!("the tokenizer has no padding token ([PAD] or <pad>)"))?;
        let mask_id = id("[MASK]").or_else(|| id("<mask>"));
        let special_ids = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .chain(std::iter::once(pad_id))
            .collect();
        Ok(Self { inner, pad_id, mask_id, special_ids })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Token ids with the model's special tokens, truncated to `max_len`.
    pub fn encode_batch(&self, texts: &[&str], max_len: usize) -> Result<Vec<Vec<u32>>> {
        let mut tok = self.inner.clone();
        tok.with_truncation(Some(TruncationParams {
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| anyhow!("cannot truncate to {max_len} tokens: {e}"))?;
        let enc = tok.encode_batch(texts.to_vec(), true).map_err(|e| anyhow!("tokenization failed: {e}"))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner.save(path, false).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json` into
    /// `dir`, what `AutoTokenizer` reads. The two small files are those of `source` (the
    /// checkpoint the model came from) when it has them, else derived from the tokenizer;
    /// `max_length`, when given, becomes `model_max_length`, where `truncation=True` cuts.
    pub fn save_hf(&self, dir: &Path, source: Option<&Path>, max_length: Option<usize>) -> Result<()> {
        self.save(&dir.join("tokenizer.json"))?;
        let from_source = |name: &str| source.map_or(Ok(None), |s| read_object(&s.join(name)));
        let specials = from_source(SPECIAL_TOKENS_MAP)?.unwrap_or_else(|| self.special_tokens());
        let mut config = match from_source(TOKENIZER_CONFIG)? {
            Some(config) => config,
            None => {
                // The generic class loads tokenizer.json as it is, whatever its model (WordPiece,
                // BPE, the demo's word-level one).
                let mut config = specials.clone();
                config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
                config
            }
        };
        if let Some(n) = max_length {
            config.insert("model_max_length".into(), n.into());
        }
        for (name, object) in [(SPECIAL_TOKENS_MAP, specials), (TOKENIZER_CONFIG, config)] {
            write_atomic(&dir.join(name), serde_json::to_string_pretty(&object)?.as_bytes())?;
        }
        Ok(())
    }

    /// `transformers`' special-token roles, filled with the BERT or RoBERTa token the
    /// vocabulary has for each.
    fn special_tokens(&self) -> serde_json::Map<String, serde_json::Value> {
        SPECIAL_ROLES
            .iter()
            .filter_map(|(role, tokens)| {
                let token = tokens.iter().find(|t| self.inner.token_to_id(t).is_some())?;
                Some((role.to_string(), serde_json::Value::from(*token)))
            })
            .collect()
    }
}

const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
const SPECIAL_TOKENS_MAP: &str = "special_tokens_map.json";

/// Each role and the tokens that fill it in BERT (`[CLS]`, ...) and RoBERTa (`<s>`, ...)
/// vocabularies; RoBERTa's sequence start and end are also its `bos` and `eos`.
const SPECIAL_ROLES: [(&str, &[&str]); 7] = [
    ("bos_token", &["<s>"]),
    ("eos_token", &["</s>"]),
    ("unk_token", &["[UNK]", "<unk>"]),
    ("sep_token", &["[SEP]", "</s>"]),
    ("pad_token", &["[PAD]", "<pad>"]),
    ("cls_token", &["[CLS]", "<s>"]),
    ("mask_token", &["[MASK]", "<mask>"]),
];

/// A JSON object from `path`, or `None` when there is no such file.
fn read_object(path: &Path) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map(Some).with_context(|| {
        format!(
            "{} is not a JSON object; fix it, or remove it and tartan derives one from tokenizer.json",
            path.display()
        )
    })
}

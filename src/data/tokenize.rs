//! Tokenization through the checkpoint's own `tokenizer.json` (HF `tokenizers`).

use std::collections::HashSet;
use std::path::Path;

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
}

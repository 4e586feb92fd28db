//! A pretrained checkpoint in Hugging Face layout: its folder, `config.json` and tokenizer,
//! loaded on demand. It pairs the model with its tokenizer, which is why it lives above both.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::Device;

use crate::data::TextTokenizer;
use crate::model::weights::{self, LoadReport};
use crate::model::{Bert, MlmHead, ModelConfig, hub};

/// A pretrained checkpoint in Hugging Face layout, resolved but not yet loaded.
pub struct Pretrained {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub tokenizer: TextTokenizer,
}

impl Pretrained {
    pub fn open(spec: &str) -> Result<Self> {
        let dir = hub::resolve(spec)?;
        Self::from_dir(&dir)
    }

    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        if tokenizer.vocab_size() > config.vocab_size {
            bail!(
                "{}: the tokenizer has {} tokens but config.json's vocab_size is {}; they belong to different models",
                dir.display(),
                tokenizer.vocab_size(),
                config.vocab_size
            );
        }
        Ok(Self { dir: dir.to_path_buf(), config, tokenizer })
    }

    /// Encoder and (when `with_mlm`) MLM head with the checkpoint's weights; an MLM head the
    /// checkpoint lacks is drawn from `seed`.
    pub fn load(&self, with_mlm: bool, seed: u64, device: &Device) -> Result<(Bert, Option<MlmHead>)> {
        let (encoder, mlm, _report) = self.load_reporting(with_mlm, seed, device)?;
        Ok((encoder, mlm))
    }

    /// `load`, with what the loading found (unused keys, an MLM head initialised fresh).
    pub fn load_reporting(
        &self,
        with_mlm: bool,
        seed: u64,
        device: &Device,
    ) -> Result<(Bert, Option<MlmHead>, LoadReport)> {
        weights::load_pretrained(&self.dir, &self.config, with_mlm, seed, device)
    }
}

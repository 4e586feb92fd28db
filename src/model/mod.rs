//! Encoders, heads and weight loading.

pub mod bert;
pub mod config;
pub mod dropout;
pub mod heads;
pub mod hub;
pub mod weights;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::module::Module;
use burn::tensor::Device;

pub use bert::{Bert, EncoderInput};
pub use config::{Family, ModelConfig};
pub use heads::{ClassificationHead, MlmHead};

use crate::data::TextTokenizer;

/// The shared encoder with the end-task head and, when an MLM objective is used, the MLM head.
/// Parameters under `encoder.` are "the shared encoder" of META-TARTAN's cosines; the rest are
/// heads, with their own optimizer settings.
#[derive(Module, Debug)]
pub struct TartanModel {
    pub encoder: Bert,
    pub classifier: ClassificationHead,
    pub mlm: Option<MlmHead>,
}

/// Whether a parameter path belongs to the shared encoder.
pub fn is_encoder_param(path: &str) -> bool {
    path.starts_with("encoder.")
}

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

    /// Encoder and (when `with_mlm`) MLM head with the checkpoint's weights.
    pub fn load(&self, with_mlm: bool, device: &Device) -> Result<(Bert, Option<MlmHead>)> {
        let (encoder, mlm, _report) = weights::load_pretrained(&self.dir, &self.config, with_mlm, device)?;
        Ok((encoder, mlm))
    }
}

/// Switches every dropout of a module on or off while keeping autodiff (evaluation of a
/// training copy, parity tests, the dev-head fit of META-TARTAN). `Module::valid` would also
/// drop autodiff.
pub fn set_dropout<M: Module>(module: M, on: bool) -> M {
    struct Dropouts(bool);
    impl burn::module::ModuleMapper for Dropouts {
        fn map_flag(
            &mut self,
            flag: burn::module::Param<burn::module::Flag>,
        ) -> burn::module::Param<burn::module::Flag> {
            flag.with_value(self.0)
        }
    }
    module.map(&mut Dropouts(on))
}

//! Encoders, heads and weight loading.

pub mod bert;
pub mod config;
pub mod dropout;
pub mod export;
pub mod heads;
pub mod hub;
pub mod init;
pub mod kernels;
pub mod precision;
pub mod weights;

use anyhow::{Result, bail};
use burn::module::Module;
use serde::{Deserialize, Serialize};

pub use bert::{Bert, EncoderInput};
pub use config::{Family, ModelConfig};
pub use heads::{ClassificationHead, MlmHead};
pub use precision::Precision;

use crate::validate::{at_least_one, fraction};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// A folder in Hugging Face layout, or a Hub id.
    pub name: String,
    /// Tokens per end-task example, special tokens included.
    pub max_length: usize,
    /// Dropout of the classification head.
    pub head_dropout: f64,
    /// How the head's Linear(h, h) starts: `random` (the TARTAN reference's head), or `pooler`,
    /// copying the checkpoint's pretrained pooler when it has one (as
    /// `BertForSequenceClassification`). On all-MiniLM-L6-v2, whose pooler is unused by its
    /// training, `pooler` was worse (docs/RESULTS.md).
    pub head_init: HeadInit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadInit {
    Pooler,
    Random,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self { name: String::new(), max_length: 512, head_dropout: 0.1, head_init: HeadInit::Random }
    }
}

impl ModelSection {
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            bail!("model.name is not set: give a model folder or a Hub id");
        }
        at_least_one("model.max_length", self.max_length)?;
        fraction("model.head_dropout", self.head_dropout)
    }
}

/// The shared encoder with the end-task head and, when an MLM objective is used, the MLM head.
/// Parameters under `encoder.` are "the shared encoder" of META-TARTAN's cosines; the rest are
/// heads, with their own optimizer settings.
#[derive(Module, Debug)]
pub struct TartanModel {
    pub encoder: Bert,
    pub classifier: ClassificationHead,
    pub mlm: Option<MlmHead>,
}

impl TartanModel {
    /// Puts the parts together; the head's dropout joins the encoder's mask stream, so one
    /// `reseed_dropout` per step fixes every mask of the model.
    pub fn new(encoder: Bert, mut classifier: ClassificationHead, mlm: Option<MlmHead>) -> Self {
        classifier.dropout.seed = encoder.dropout_seed().clone();
        Self { encoder, classifier, mlm }
    }

    /// This model computing in `precision` (the encoder's matmuls and, through it, the MLM
    /// head's); the parameters stay f32.
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { encoder: self.encoder.with_precision(precision), ..self }
    }

    /// Starts the dropout masks of a training step: they depend on `seed` alone.
    pub fn reseed_dropout(&self, seed: u64) {
        self.encoder.dropout_seed().reseed(seed);
    }
}

/// Whether a parameter path belongs to the shared encoder.
pub fn is_encoder_param(path: &str) -> bool {
    path.starts_with("encoder.")
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

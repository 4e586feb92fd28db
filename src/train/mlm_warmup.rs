//! The MLM-head warm-up: a freshly initialised MLM head is fitted, with the encoder frozen, on
//! the phase's corpora before they train the shared encoder (`[mlm_warmup]` in the config,
//! on by default when the checkpoint had no MLM head, as all-MiniLM-L6-v2).
//!
//! Only the head's transform and bias train; the decoder stays tied to the word embeddings,
//! which do not move. The encoder runs without autodiff, so a warm-up step costs a forward
//! pass, not a training step.

use anyhow::Result;
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::plan::TrainSection;
use crate::model::TartanModel;
use crate::objectives::mlm::MaskedLm;
use crate::optim::{AdamW, AdamWConfig, GradBuffer, Group, ParamGroups};
use crate::validate::{at_least_one, fraction, positive};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmupMode {
    /// Only when the checkpoint has no MLM head of its own.
    Auto,
    On,
    Off,
}

/// Fitting a fresh MLM head before its corpus trains the shared encoder. A random head's
/// loss is ~10 nats on every token: its gradients are large and tell the encoder nothing
/// about the text, and they pull it away from the end-task (docs/RESULTS.md). The head's
/// transform and bias are fitted on the phase's corpora with the encoder frozen (the decoder
/// stays tied to the word embeddings) until the loss plateaus or `max_steps` is spent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlmWarmupSection {
    /// `auto` (when the checkpoint had no MLM head), `on` or `off`.
    pub mode: WarmupMode,
    /// Head updates at most (one batch of every corpus each).
    pub max_steps: usize,
    /// AdamW learning rate of the head during the warm-up (constant).
    pub lr: f64,
    /// Steps over which the loss is averaged to judge the plateau.
    pub window: usize,
    /// Stop when a window's mean loss is less than this fraction below the previous window's.
    pub min_improvement: f64,
}

impl Default for MlmWarmupSection {
    fn default() -> Self {
        // Measured on ACL-ARC's task text with all-MiniLM-L6-v2 (docs/RESULTS.md): at lr 1e-3
        // the 30,522 biases move too slowly (loss 6.3 after 500 steps); at 1e-2 the loss falls
        // from ~10.4 to 6.1 by step 500 and flattens near 6.0.
        Self { mode: WarmupMode::Auto, max_steps: 1000, lr: 1e-2, window: 100, min_improvement: 0.02 }
    }
}

impl MlmWarmupSection {
    pub fn validate(&self) -> Result<()> {
        positive("mlm_warmup.lr", self.lr)?;
        at_least_one("mlm_warmup.window", self.window)?;
        fraction("mlm_warmup.min_improvement", self.min_improvement)
    }
}

/// What the warm-up did, for the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupWindow {
    /// Warm-up steps done at the end of the window.
    pub step: usize,
    /// Mean MLM loss (summed over the corpora) and masked-token accuracy over the window.
    pub loss: f64,
    pub accuracy: f64,
}

/// Fits `model`'s MLM head on `corpora` until a window's mean loss improves by less than
/// `cfg.min_improvement` (relative) or `cfg.max_steps` are done; `on_window` sees every window.
pub fn warm_up(
    mut model: TartanModel,
    corpora: &mut [MaskedLm],
    cfg: &MlmWarmupSection,
    train: &TrainSection,
    device: &Device,
    mut on_window: impl FnMut(WarmupWindow) -> Result<()>,
) -> Result<TartanModel> {
    let Some(mut head) = model.mlm.take() else { return Ok(model) };
    let frozen = model.encoder.valid();
    let word = model.encoder.embeddings.word_embeddings.weight.val().detach();
    let groups = ParamGroups::new(&head, |_| 0);
    let group = Group { lr: cfg.lr, weight_decay: train.head_weight_decay };
    let mut optim =
        AdamW::new(AdamWConfig { beta1: train.beta1, beta2: train.beta2, eps: train.eps, groups: vec![group] });
    let (mut sum, mut correct, mut previous) = (0.0, 0.0, None::<f64>);
    let n_corpora = corpora.len() as f64;
    for step in 1..=cfg.max_steps {
        let mut grads = GradBuffer::default();
        for corpus in corpora.iter_mut() {
            let out = corpus.next_head_loss(&frozen, &head, word.clone(), device)?;
            sum += out.loss.clone().into_scalar::<f32>() as f64;
            correct += out.accuracy.unwrap_or(0.0) / n_corpora;
            grads.add(&head, &out.loss.backward());
        }
        head = optim.step(head, grads, 1.0, &groups);
        if step % cfg.window == 0 || step == cfg.max_steps {
            let n = (step - 1) % cfg.window + 1;
            let window = WarmupWindow { step, loss: sum / n as f64, accuracy: correct / n as f64 };
            on_window(window)?;
            let plateau = previous.is_some_and(|p| p - window.loss < cfg.min_improvement * p);
            (sum, correct, previous) = (0.0, 0.0, Some(window.loss));
            if plateau {
                break;
            }
        }
    }
    model.mlm = Some(head);
    Ok(model)
}

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

use super::grads::GradBuffer;
use super::optimizer::{AdamW, AdamWConfig, Group};
use crate::config::{MlmWarmupSection, TrainSection};
use crate::model::TartanModel;
use crate::model::weights::param_paths;
use crate::objectives::mlm::MaskedLm;

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
    let paths = param_paths(&head);
    let group = Group { lr: cfg.lr, weight_decay: train.head_weight_decay };
    let mut optim =
        AdamW::new(AdamWConfig { beta1: train.beta1, beta2: train.beta2, eps: train.eps, encoder: group, heads: group });
    let (mut sum, mut correct, mut previous) = (0.0, 0.0, None::<f64>);
    let n_corpora = corpora.len() as f64;
    for step in 1..=cfg.max_steps {
        let mut grads = GradBuffer::default();
        for corpus in corpora.iter_mut() {
            let out = corpus.next_head_loss(&frozen, &head, word.clone(), device)?;
            sum += out.loss.clone().into_scalar::<f32>() as f64;
            correct += out.stats.iter().filter(|(k, _)| *k == "mlm_accuracy").map(|(_, v)| v).sum::<f64>() / n_corpora;
            grads.add(&head, &out.loss.backward());
        }
        head = optim.step(head, grads, 1.0, &paths);
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

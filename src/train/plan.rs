//! What one phase of a run does, decided once from the configuration: learning rates, steps,
//! warm-up, evaluation and checkpoint cadence, patience and data sources. Pure: the optimizer,
//! the loop and the log all read the same `PhasePlan`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::strategy::Strategy;
use crate::config::RunConfig;
use crate::model::Precision;
use crate::optim::{Group, linear_schedule};
use crate::validate::{at_least_one, fraction, non_negative, positive};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub batch_size: usize,
    pub grad_accum: usize,
    pub epochs: usize,
    /// Optimizer steps; 0 means `epochs` over the end-task's training set.
    pub max_steps: usize,
    /// Learning rate of the shared encoder.
    pub lr: f64,
    /// Learning rate of the heads.
    pub head_lr: f64,
    pub weight_decay: f64,
    pub head_weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Fraction of the optimizer steps spent warming up linearly; then linear decay to 0.
    pub warmup_ratio: f64,
    /// Maximum global gradient norm; 0 turns clipping off.
    pub clip_norm: f64,
    /// Clip the encoder's and the heads' gradients each to `clip_norm` (TARTAN reference),
    /// rather than all parameters together (Hugging Face Trainer).
    pub clip_separately: bool,
    /// Consecutive steps with a non-finite loss or gradient tolerated (each skipped) before
    /// the run stops.
    pub max_nonfinite_steps: usize,
    pub log_every: usize,
    /// Group examples of similar length into batches (less padding, faster); false: plain
    /// shuffled batches.
    pub bucket: bool,
    /// What the encoder's matmuls compute in: `f32`, or `bf16` with f32 master weights
    /// (`model::precision`). It changes the numbers, so a resume must keep it (fingerprint).
    pub precision: Precision,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            batch_size: 32,
            grad_accum: 1,
            epochs: 3,
            max_steps: 0,
            lr: 1e-4,
            head_lr: 1e-3,
            weight_decay: 0.01,
            head_weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-6,
            warmup_ratio: 0.06,
            clip_norm: 1.0,
            clip_separately: true,
            max_nonfinite_steps: 5,
            log_every: 10,
            bucket: true,
            precision: Precision::F32,
        }
    }
}

impl TrainSection {
    pub fn validate(&self) -> Result<()> {
        at_least_one("train.batch_size", self.batch_size)?;
        at_least_one("train.grad_accum", self.grad_accum)?;
        at_least_one("train.log_every", self.log_every)?;
        at_least_one("train.max_nonfinite_steps", self.max_nonfinite_steps)?;
        if self.epochs == 0 && self.max_steps == 0 {
            bail!("train.epochs and train.max_steps are both 0: nothing to train");
        }
        positive("train.lr", self.lr)?;
        positive("train.head_lr", self.head_lr)?;
        non_negative("train.weight_decay", self.weight_decay)?;
        non_negative("train.head_weight_decay", self.head_weight_decay)?;
        fraction("train.beta1", self.beta1)?;
        fraction("train.beta2", self.beta2)?;
        positive("train.eps", self.eps)?;
        fraction("train.warmup_ratio", self.warmup_ratio)?;
        non_negative("train.clip_norm", self.clip_norm)
    }
}

/// Continued masked-LM pre-training of strategy pretrain-finetune (TAPT, DAPT, DAPT+TAPT):
/// one phase per auxiliary corpus, in the order given, then fine-tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainSection {
    /// Optimizer steps per corpus; 0 means the end-task's fine-tuning budget.
    pub steps: usize,
    pub lr: f64,
}

impl Default for PretrainSection {
    fn default() -> Self {
        Self { steps: 0, lr: 1e-4 }
    }
}

impl PretrainSection {
    pub fn validate(&self) -> Result<()> {
        positive("pretrain.lr", self.lr)
    }
}

/// The optional last stage of the TARTAN reference, after any strategy: the best model is
/// fine-tuned on the end-task alone at a small learning rate and replaces `best/` only if the
/// dev metric improves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinalFinetuneSection {
    /// Epochs over the end-task at most; 0 turns the stage off.
    pub epochs: usize,
    /// Learning rate of encoder and head.
    pub lr: f64,
    /// Stop after this many evaluations without a better dev metric.
    pub patience: usize,
}

impl Default for FinalFinetuneSection {
    fn default() -> Self {
        Self { epochs: 0, lr: 5e-6, patience: 3 }
    }
}

impl FinalFinetuneSection {
    pub fn validate(&self) -> Result<()> {
        positive("final_finetune.lr", self.lr)?;
        at_least_one("final_finetune.patience", self.patience)
    }
}

/// Which part of a run a trainer does: strategy pretrain-finetune first runs one masked-LM
/// phase per auxiliary corpus, then the main phase every strategy has, then (when
/// `final_finetune.epochs` > 0) the end-task alone, starting from the main phase's best model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pretrain(usize),
    Main,
    FinalFinetune,
}

/// AdamW group numbers of `PhasePlan`'s groups.
pub const ENCODER: usize = 0;
pub const HEADS: usize = 1;

/// Everything a phase needs to know before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct PhasePlan {
    pub phase: Phase,
    pub run_dir: PathBuf,
    /// The model the phase starts from: the configured one, or the previous phase's result.
    pub model_source: String,
    /// Peak learning rate and weight decay of the shared encoder and of the heads.
    pub encoder: Group,
    pub heads: Group,
    pub total_steps: usize,
    pub warmup_steps: usize,
    pub eval_every: usize,
    pub checkpoint_every: usize,
    /// Evaluations without a better dev metric before stopping; 0 never stops early.
    pub patience: usize,
    /// Whether the end-task trains in this phase, and which auxiliary corpora do.
    pub end_task: bool,
    pub aux: Vec<usize>,
    /// Whether the phase evaluates and selects on the end-task (not masked-LM pre-training).
    pub evaluates: bool,
}

impl PhasePlan {
    /// The plan of `phase`; `train_examples` is the size of the end-task training set it
    /// draws from (after any hold-out), which fixes an epoch.
    pub fn new(cfg: &RunConfig, phase: Phase, train_examples: usize) -> Self {
        let t = &cfg.train;
        let epoch = train_examples.div_ceil(t.batch_size).div_ceil(t.grad_accum).max(1);
        let budget = if t.max_steps > 0 { t.max_steps } else { t.epochs * epoch };
        let group = |lr, weight_decay| Group { lr, weight_decay };
        let (encoder, heads, total_steps, patience) = match phase {
            Phase::Pretrain(_) => (
                group(cfg.pretrain.lr, t.weight_decay),
                group(cfg.pretrain.lr, t.head_weight_decay),
                if cfg.pretrain.steps > 0 { cfg.pretrain.steps } else { budget },
                0,
            ),
            Phase::Main => {
                (group(t.lr, t.weight_decay), group(t.head_lr, t.head_weight_decay), budget, cfg.eval.patience)
            }
            Phase::FinalFinetune => (
                group(cfg.final_finetune.lr, t.weight_decay),
                group(cfg.final_finetune.lr, t.head_weight_decay),
                cfg.final_finetune.epochs * epoch,
                cfg.final_finetune.patience,
            ),
        };
        let eval_every = if cfg.eval.every_steps > 0 { cfg.eval.every_steps } else { epoch };
        let aux = match (phase, cfg.strategy) {
            (Phase::Pretrain(i), _) => vec![i],
            (Phase::Main, Strategy::MtTartan | Strategy::MetaTartan) => (0..cfg.aux.len()).collect(),
            _ => vec![],
        };
        Self {
            phase,
            run_dir: run_dir(cfg, phase),
            model_source: model_source(cfg, phase),
            encoder,
            heads,
            total_steps,
            warmup_steps: (t.warmup_ratio * total_steps as f64) as usize,
            eval_every,
            checkpoint_every: if cfg.checkpoint.every_steps > 0 { cfg.checkpoint.every_steps } else { eval_every },
            patience,
            end_task: !matches!(phase, Phase::Pretrain(_)),
            aux,
            evaluates: !matches!(phase, Phase::Pretrain(_)),
        }
    }

    /// The schedule's factor for the update after `step` updates.
    pub fn lr_factor(&self, step: usize) -> f64 {
        linear_schedule(step, self.warmup_steps, self.total_steps)
    }

    /// The learning rates (encoder, heads) of the update after `step` updates.
    pub fn lrs(&self, step: usize) -> (f64, f64) {
        let f = self.lr_factor(step);
        (self.encoder.lr * f, self.heads.lr * f)
    }
}

/// The folder a phase writes.
pub fn run_dir(cfg: &RunConfig, phase: Phase) -> PathBuf {
    match phase {
        Phase::Main => cfg.output_dir.clone(),
        Phase::Pretrain(i) => cfg.output_dir.join(format!("pretrain-{}", cfg.aux[i].name)),
        Phase::FinalFinetune => cfg.output_dir.join("final-finetune"),
    }
}

/// The model a phase starts from: the configured one, or the previous phase's result.
pub fn model_source(cfg: &RunConfig, phase: Phase) -> String {
    let previous = match (phase, cfg.strategy) {
        (Phase::Pretrain(0), _) => None,
        (Phase::Pretrain(i), _) => Some(i - 1),
        (Phase::Main, Strategy::PretrainFinetune) => Some(cfg.aux.len() - 1),
        (Phase::Main, _) => None,
        (Phase::FinalFinetune, _) => return cfg.output_dir.join("best").display().to_string(),
    };
    match previous {
        Some(i) => run_dir(cfg, Phase::Pretrain(i)).join("model").display().to_string(),
        None => cfg.model.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::mlm::AuxCorpus;

    fn config(strategy: Strategy) -> RunConfig {
        let mut cfg = RunConfig { strategy, output_dir: PathBuf::from("runs/x"), ..RunConfig::default() };
        cfg.model.name = "m".into();
        cfg.train.batch_size = 32;
        cfg.train.epochs = 3;
        cfg.pretrain.lr = 2e-4;
        cfg.pretrain.steps = 50;
        cfg.final_finetune.epochs = 2;
        cfg.final_finetune.lr = 5e-6;
        cfg.aux = ["tapt", "dapt"]
            .iter()
            .map(|n| AuxCorpus { name: n.to_string(), file: PathBuf::from(format!("{n}.txt")), ..AuxCorpus::default() })
            .collect();
        cfg
    }

    #[test]
    fn each_phase_gets_its_own_learning_rates_budget_and_sources() {
        let cfg = config(Strategy::PretrainFinetune);
        // 100 examples at batch 32: 4 steps an epoch.
        let main = PhasePlan::new(&cfg, Phase::Main, 100);
        assert_eq!((main.encoder.lr, main.heads.lr, main.total_steps), (1e-4, 1e-3, 12));
        assert_eq!(main.model_source, "runs/x/pretrain-dapt/model");
        assert!(main.end_task && main.aux.is_empty() && main.evaluates);
        let pre = PhasePlan::new(&cfg, Phase::Pretrain(1), 100);
        assert_eq!((pre.encoder.lr, pre.heads.lr, pre.total_steps), (2e-4, 2e-4, 50));
        assert_eq!((pre.encoder.weight_decay, pre.heads.weight_decay), (0.01, 0.1));
        assert_eq!(pre.run_dir, PathBuf::from("runs/x/pretrain-dapt"));
        assert_eq!(pre.model_source, "runs/x/pretrain-tapt/model");
        assert!(!pre.end_task && pre.aux == vec![1] && !pre.evaluates);
        let last = PhasePlan::new(&cfg, Phase::FinalFinetune, 100);
        assert_eq!((last.encoder.lr, last.heads.lr, last.total_steps, last.patience), (5e-6, 5e-6, 8, 3));
        assert_eq!(last.model_source, "runs/x/best");
        let meta = PhasePlan::new(&config(Strategy::MetaTartan), Phase::Main, 100);
        assert_eq!(meta.aux, vec![0, 1]);
        assert_eq!(meta.model_source, "m");
    }

    /// The learning rate logged is the one the optimizer uses, in every phase.
    #[test]
    fn learning_rates_follow_the_schedule_of_the_phase() {
        let mut cfg = config(Strategy::PretrainFinetune);
        cfg.train.warmup_ratio = 0.1;
        let pre = PhasePlan::new(&cfg, Phase::Pretrain(0), 100);
        assert_eq!(pre.warmup_steps, 5);
        assert_eq!(pre.lrs(0), (0.0, 0.0));
        let (enc, head) = pre.lrs(5);
        assert!((enc - 2e-4).abs() < 1e-15 && (head - 2e-4).abs() < 1e-15);
        let last = PhasePlan::new(&cfg, Phase::FinalFinetune, 100);
        let (enc, head) = last.lrs(4);
        assert!((enc - 5e-6 * 4.0 / 8.0).abs() < 1e-15 && enc == head, "{enc} {head}");
    }

    #[test]
    fn cadences_default_to_an_epoch_and_accumulation_shortens_it() {
        let mut cfg = config(Strategy::Finetune);
        cfg.train.grad_accum = 2;
        let plan = PhasePlan::new(&cfg, Phase::Main, 100);
        assert_eq!((plan.eval_every, plan.checkpoint_every, plan.total_steps), (2, 2, 6));
        cfg.eval.every_steps = 5;
        cfg.checkpoint.every_steps = 7;
        let plan = PhasePlan::new(&cfg, Phase::Main, 100);
        assert_eq!((plan.eval_every, plan.checkpoint_every), (5, 7));
    }
}

//! Building a trainer for one phase of a run: its plan, data, model, objectives, weighting
//! and optimizer; then, for a resume, its last checkpoint, or else the MLM-head warm-up.

use anyhow::{Context, Result, bail};

use super::mlm_warmup::{WarmupMode, warm_up};
use super::plan::{ENCODER, HEADS, Phase, PhasePlan};
use super::pretrained::Pretrained;
use super::records::{MetricsLog, Record};
use super::saved_model::load_classifier;
use super::strategy::Strategy;
use super::trainer::{Clock, TrainState, Trainer};
use crate::config::RunConfig;
use crate::data::TaskData;
use crate::data::task::Split;
use crate::device::DeviceKind;
use crate::fsutil::write_atomic;
use crate::model::weights::init_head_from_pooler;
use crate::model::{ClassificationHead, HeadInit, Precision, TartanModel, is_encoder_param};
use crate::objectives::Objective;
use crate::objectives::classification::Classification;
use crate::objectives::mlm::{MaskedLm, MlmSource};
use crate::optim::{AdamW, AdamWConfig, ParamGroups};
use crate::weighting::Weighting;
use crate::weighting::fixed::Fixed;
use crate::weighting::meta::{MetaSource, MetaTartan};

impl Trainer {
    /// Sets up one phase of a run; with `resume`, continues from its last checkpoint.
    pub fn new(cfg: RunConfig, phase: Phase, resume: bool) -> Result<Self> {
        let run_dir = super::plan::run_dir(&cfg, phase);
        std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create run folder {}", run_dir.display()))?;
        let pretrained = Pretrained::open(&super::plan::model_source(&cfg, phase))?;
        check_lengths(&cfg, &pretrained)?;
        let (task, meta_dev) = load_task(&cfg, &pretrained)?;
        let plan = PhasePlan::new(&cfg, phase, task.train.len());

        let device = crate::device::resolve(cfg.device)?.autodiff();
        let (model, warm_up_head) = build_model(&cfg, phase, &plan, &pretrained, task.labels.len(), &device)?;
        let (objectives, mut warmup_corpora) = objectives(&cfg, &plan, &task, &pretrained, warm_up_head)?;
        let pad = pretrained.tokenizer.pad_id;
        let weighting = weighting(&cfg, phase, &model, meta_dev, objectives.len(), task.labels.len(), pad)?;
        let optim = AdamW::new(AdamWConfig {
            beta1: cfg.train.beta1,
            beta2: cfg.train.beta2,
            eps: cfg.train.eps,
            groups: vec![plan.encoder, plan.heads],
        });
        let groups = param_groups(&model);
        let encoder_ids = encoder_ids(&model);

        write_atomic(&run_dir.join("config.toml"), cfg.to_toml().as_bytes())?;
        let mut state = TrainState::default();
        let checkpoint = if resume { super::checkpoints::latest(&run_dir)? } else { None };
        if let Some((step, _)) = &checkpoint {
            state.step = *step;
        }
        let log = MetricsLog::open(&run_dir, state.step)?;
        let mut trainer = Self {
            cfg,
            plan,
            device,
            pretrained,
            task,
            model,
            objectives,
            weighting,
            optim,
            groups,
            encoder_ids,
            state,
            clock: Clock::resume(0.0),
            log,
        };
        match checkpoint {
            Some((_, dir)) => trainer.restore_checkpoint(&dir)?,
            None if resume => {
                tracing::info!("{} has no checkpoint yet: starting from the beginning", run_dir.display())
            }
            None => {}
        }
        if trainer.state.step == 0 && !warmup_corpora.is_empty() {
            trainer.warm_up_mlm_head(&mut warmup_corpora)?;
        }
        Ok(trainer)
    }

    /// Fits the fresh MLM head with the encoder frozen before training starts.
    fn warm_up_mlm_head(&mut self, corpora: &mut [MaskedLm]) -> Result<()> {
        let cfg = &self.cfg.mlm_warmup;
        tracing::info!("MLM-head warm-up: up to {} steps on {} corpora, encoder frozen", cfg.max_steps, corpora.len());
        let log = &self.log;
        self.model = warm_up(self.model.clone(), corpora, cfg, &self.cfg.train, &self.device, |w| {
            tracing::info!(
                "MLM-head warm-up step {}: loss {:.3}, masked-token accuracy {:.3}",
                w.step,
                w.loss,
                w.accuracy
            );
            log.write(&Record::MlmWarmup { step: w.step, loss: w.loss, accuracy: w.accuracy })
        })?;
        Ok(())
    }
}

/// The model of the phase, at `cfg.train.precision`, and whether its fresh MLM head is to be
/// warmed up first.
fn build_model(
    cfg: &RunConfig,
    phase: Phase,
    plan: &PhasePlan,
    pretrained: &Pretrained,
    n_labels: usize,
    device: &burn::tensor::Device,
) -> Result<(TartanModel, bool)> {
    let with_mlm = !plan.aux.is_empty();
    if with_mlm && pretrained.tokenizer.mask_id.is_none() {
        bail!(
            "the tokenizer of {} has no mask token ([MASK] or <mask>), which masked-LM needs",
            pretrained.dir.display()
        );
    }
    let (encoder, mlm, loaded) = pretrained.load_reporting(with_mlm, cfg.seed, device)?;
    let warm_up_head = with_mlm
        && match cfg.mlm_warmup.mode {
            WarmupMode::Auto => loaded.mlm_head_initialised,
            WarmupMode::On => true,
            WarmupMode::Off => false,
        };
    let classifier = classifier(cfg, phase, pretrained, n_labels, device)?;
    let model = TartanModel::new(encoder, classifier, mlm).with_precision(cfg.train.precision);
    if cfg.train.precision == Precision::Bf16 && cfg.device == DeviceKind::Cpu {
        tracing::warn!("{BF16_ON_CPU}");
    }
    Ok((model, warm_up_head))
}

/// The objectives a phase trains, and the corpora its MLM-head warm-up reads.
type Objectives = (Vec<Box<dyn Objective>>, Vec<MaskedLm>);

/// The phase's objectives (end-task first, then each corpus' masked-LM) and, with
/// `warm_up_head`, each corpus again for the MLM-head warm-up.
fn objectives(
    cfg: &RunConfig,
    plan: &PhasePlan,
    task: &TaskData,
    pretrained: &Pretrained,
    warm_up_head: bool,
) -> Result<Objectives> {
    let t = &cfg.train;
    let pad = pretrained.tokenizer.pad_id;
    let mut objectives: Vec<Box<dyn Objective>> = Vec::new();
    if plan.end_task {
        objectives.push(Box::new(Classification::new(task.train.clone(), t.batch_size, cfg.seed, pad, t.bucket)));
    }
    let cache_dir = cfg.cache_dir();
    let source = MlmSource {
        tokenizer: &pretrained.tokenizer,
        vocab_size: pretrained.config.vocab_size,
        max_length: cfg.model.max_length,
        batch_size: t.batch_size,
        bucket: t.bucket,
        cache_dir: &cache_dir,
    };
    let mut warmup_corpora = Vec::new();
    for &i in &plan.aux {
        objectives.push(Box::new(MaskedLm::open(&cfg.aux[i], &source, cfg.seed)?));
        if warm_up_head {
            // Its own batch streams, so the main phase sees the batches it would without it.
            warmup_corpora.push(MaskedLm::open(&cfg.aux[i], &source, cfg.seed ^ 0x3a7e_11ed)?);
        }
    }
    Ok((objectives, warmup_corpora))
}

/// Why bf16 on the CPU is allowed but not advised: burn-flex widens bf16 matmul operands to
/// f32 and rounds the result back, so it only adds casts (docs/BENCHMARKS.md has the figures).
const BF16_ON_CPU: &str = "train.precision = \"bf16\" on the CPU is for correctness checks: burn-flex computes \
     bf16 matmuls in f32 plus casts, so it is slower than f32 there (docs/BENCHMARKS.md)";

fn check_lengths(cfg: &RunConfig, pretrained: &Pretrained) -> Result<()> {
    let limit = pretrained.config.max_input_length();
    for (what, len) in std::iter::once(("model.max_length", cfg.model.max_length))
        .chain(cfg.aux.iter().map(|a| ("aux block_size", a.block_size)))
    {
        if len > limit {
            bail!("{what} = {len} is beyond the model's {limit} position embeddings; set it to at most {limit}");
        }
    }
    Ok(())
}

/// The task's splits and, for META-TARTAN, the data its dev gradient comes from.
fn load_task(cfg: &RunConfig, pretrained: &Pretrained) -> Result<(TaskData, Option<Split>)> {
    let mut task = TaskData::load(
        &cfg.task.train,
        cfg.task.dev.as_deref(),
        cfg.task.test.as_deref(),
        &pretrained.tokenizer,
        cfg.model.max_length,
    )?;
    let meta_dev = match (cfg.strategy, cfg.meta.source) {
        (Strategy::MetaTartan, MetaSource::TrainHoldout) => {
            if cfg.meta.holdout >= task.train.len() {
                bail!(
                    "meta.holdout = {} would hold out all {} training examples of {}: set it below {}",
                    cfg.meta.holdout,
                    task.train.len(),
                    cfg.task.train.display(),
                    task.train.len()
                );
            }
            let held = task.train.hold_out(cfg.meta.holdout, cfg.seed);
            tracing::info!("META-TARTAN's dev gradient uses {} examples held out of train", held.len());
            Some(held)
        }
        (Strategy::MetaTartan, MetaSource::Dev) => task.dev.clone(),
        _ => None,
    };
    tracing::info!(
        "task: {} labels, {} train / {} dev / {} test examples",
        task.labels.len(),
        task.train.len(),
        task.dev.as_ref().map_or(0, |s| s.len()),
        task.test.as_ref().map_or(0, |s| s.len())
    );
    Ok((task, meta_dev))
}

/// A fresh head, the previous phase's (final stage), or one from the checkpoint's pooler.
fn classifier(
    cfg: &RunConfig,
    phase: Phase,
    pretrained: &Pretrained,
    n_labels: usize,
    device: &burn::tensor::Device,
) -> Result<ClassificationHead> {
    if phase == Phase::FinalFinetune {
        return load_classifier(pretrained, n_labels, cfg.model.head_dropout, device);
    }
    let head =
        ClassificationHead::new(pretrained.config.hidden_size, n_labels, cfg.model.head_dropout, cfg.seed, device);
    if cfg.model.head_init == HeadInit::Pooler && phase == Phase::Main {
        let (head, from_pooler) = init_head_from_pooler(&pretrained.dir, pretrained.config.family, head)?;
        if from_pooler {
            tracing::info!("the head's dense layer starts from the checkpoint's pooler");
        }
        return Ok(head);
    }
    Ok(head)
}

fn weighting(
    cfg: &RunConfig,
    phase: Phase,
    model: &TartanModel,
    meta_dev: Option<Split>,
    n_tasks: usize,
    n_labels: usize,
    pad: u32,
) -> Result<Box<dyn Weighting>> {
    Ok(match (phase, cfg.strategy) {
        (Phase::Main, Strategy::MtTartan) => Box::new(Fixed::new(cfg.fixed_weights())),
        (Phase::Main, Strategy::MetaTartan) => {
            let dev = meta_dev.context("META-TARTAN needs meta-dev data")?;
            let grad_accum = cfg.train.grad_accum;
            Box::new(MetaTartan::new(cfg.meta.clone(), n_tasks, grad_accum, model, dev, n_labels, pad, cfg.seed)?)
        }
        _ => Box::new(Fixed::new(vec![1.0; n_tasks])),
    })
}

/// AdamW's groups: the shared encoder, and the heads.
pub(super) fn param_groups(model: &TartanModel) -> ParamGroups {
    ParamGroups::new(model, |path| if is_encoder_param(path) { ENCODER } else { HEADS })
}

/// The parameters of the shared encoder, which META-TARTAN's cosines and the separate
/// clipping are over.
pub(super) fn encoder_ids(model: &TartanModel) -> std::collections::HashSet<burn::module::ParamId> {
    crate::params::param_paths(model).into_iter().filter(|(_, p)| is_encoder_param(p)).map(|(id, _)| id).collect()
}

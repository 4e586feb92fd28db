//! The training loop shared by every strategy: each optimizer step draws one batch per
//! objective (per micro-batch), adds their weighted gradients, clips, updates, and lets the
//! weighting strategy see every task's gradient. Evaluation, model selection, early stopping,
//! checkpoints and resume live here too.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::{Module, ParamId};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::checkpoint::{save_model, save_pretrained};
use super::evaluate::evaluate;
use super::fsutil::{recover_dir, replace_dir, staging_dir, write_atomic};
use super::grads::GradBuffer;
use super::metrics::Scores;
use super::optimizer::{AdamW, AdamWConfig, Group, linear_schedule};
use crate::config::{HeadInit, MetaSource, RunConfig, Strategy, WarmupMode};
use crate::data::TaskData;
use crate::data::batch::DataPosition;
use crate::data::corpus::Corpus;
use crate::data::masking::Masker;
use crate::model::weights::{
    init_head_from_pooler, load_plain, param_paths, plain_tensors, read_plain, to_safetensors_bytes,
};
use crate::model::{ClassificationHead, Pretrained, TartanModel, is_encoder_param};
use crate::objectives::Objective;
use crate::objectives::classification::Classification;
use crate::objectives::mlm::MaskedLm;
use crate::weighting::Weighting;
use crate::weighting::fixed::Fixed;
use crate::weighting::meta::{MetaTartan, name_figures};

/// Everything about a run's progress that is not a tensor, saved with each checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainState {
    pub step: usize,
    pub best_metric: Option<f64>,
    pub best_step: Option<usize>,
    pub evals_since_best: usize,
    pub nonfinite_in_a_row: usize,
    pub positions: Vec<DataPosition>,
    pub weighting: serde_json::Value,
    pub finished: bool,
    /// Dev and test scores of the model saved as `best/`.
    pub best_scores: Option<(Option<Scores>, Option<Scores>)>,
}

/// Final figures of a run, also written to `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub metric: String,
    pub best_step: Option<usize>,
    pub dev: Option<Scores>,
    pub test: Option<Scores>,
    pub steps: usize,
    pub train_seconds: f64,
    /// The last end-task-only stage, when configured; its model is the run's result only if
    /// it improved the dev metric (`best_step` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_finetune: Option<Box<RunResult>>,
}

pub struct Trainer {
    cfg: RunConfig,
    phase: Phase,
    run_dir: PathBuf,
    device: Device,
    pretrained: Pretrained,
    task: TaskData,
    model: TartanModel,
    objectives: Vec<Box<dyn Objective>>,
    weighting: Box<dyn Weighting>,
    optim: AdamW,
    paths: HashMap<ParamId, String>,
    encoder_ids: HashSet<ParamId>,
    state: TrainState,
    total_steps: usize,
    warmup_steps: usize,
    eval_every: usize,
    checkpoint_every: usize,
    log: File,
}

enum StepOutcome {
    Updated { losses: Vec<f64>, grad_norm: f64, lr_factor: f64, extra: HashMap<String, f64> },
    Skipped(String),
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

impl Phase {
    pub fn run_dir(self, cfg: &RunConfig) -> PathBuf {
        match self {
            Phase::Main => cfg.output_dir.clone(),
            Phase::Pretrain(i) => cfg.output_dir.join(format!("pretrain-{}", cfg.aux[i].name)),
            Phase::FinalFinetune => cfg.output_dir.join("final-finetune"),
        }
    }

    /// The model this phase starts from: the configured one, or the previous phase's result.
    fn model_source(self, cfg: &RunConfig) -> String {
        let previous = match (self, cfg.strategy) {
            (Phase::Pretrain(0), _) => None,
            (Phase::Pretrain(i), _) => Some(i - 1),
            (Phase::Main, Strategy::PretrainFinetune) => Some(cfg.aux.len() - 1),
            (Phase::Main, _) => None,
            (Phase::FinalFinetune, _) => return cfg.output_dir.join("best").display().to_string(),
        };
        match previous {
            Some(i) => Phase::Pretrain(i).run_dir(cfg).join("model").display().to_string(),
            None => cfg.model.name.clone(),
        }
    }
}

impl Trainer {
    /// Sets up one phase of a run; with `resume`, continues from its last checkpoint.
    pub fn new(cfg: RunConfig, phase: Phase, resume: bool) -> Result<Self> {
        let run_dir = phase.run_dir(&cfg);
        std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create run folder {}", run_dir.display()))?;
        let pretrained = Pretrained::open(&phase.model_source(&cfg))?;
        let limit = pretrained.config.max_input_length();
        for (what, len) in std::iter::once(("model.max_length", cfg.model.max_length))
            .chain(cfg.aux.iter().map(|a| ("aux block_size", a.block_size)))
        {
            if len > limit {
                bail!("{what} = {len} is beyond the model's {limit} position embeddings; set it to at most {limit}");
            }
        }
        let mut task = TaskData::load(
            &cfg.task.train,
            cfg.task.dev.as_deref(),
            cfg.task.test.as_deref(),
            &pretrained.tokenizer,
            cfg.model.max_length,
        )?;
        let meta_dev = match (cfg.strategy, cfg.meta.source) {
            (Strategy::MetaTartan, MetaSource::TrainHoldout) => {
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

        let aux_used: Vec<usize> = match (phase, cfg.strategy) {
            (Phase::Pretrain(i), _) => vec![i],
            (Phase::Main, Strategy::MtTartan | Strategy::MetaTartan) => (0..cfg.aux.len()).collect(),
            _ => vec![],
        };
        let device = crate::device::resolve(cfg.device)?.autodiff();
        device.seed(cfg.seed);
        let with_mlm = !aux_used.is_empty();
        if with_mlm && pretrained.tokenizer.mask_id.is_none() {
            bail!(
                "the tokenizer of {} has no mask token ([MASK] or <mask>), which masked-LM needs",
                pretrained.dir.display()
            );
        }
        let (encoder, mlm, loaded) =
            crate::model::weights::load_pretrained(&pretrained.dir, &pretrained.config, with_mlm, &device)?;
        let warm_up_head = with_mlm
            && match cfg.mlm_warmup.mode {
                WarmupMode::Auto => loaded.mlm_head_initialised,
                WarmupMode::On => true,
                WarmupMode::Off => false,
            };
        let mut classifier =
            ClassificationHead::new(pretrained.config.hidden_size, task.labels.len(), cfg.model.head_dropout, &device);
        if phase == Phase::FinalFinetune {
            let file = pretrained.dir.join("head.safetensors");
            classifier = load_plain(classifier, read_plain(&file)?, &file.display().to_string())?;
        } else if cfg.model.head_init == HeadInit::Pooler && phase == Phase::Main {
            let (head, from_pooler) = init_head_from_pooler(&pretrained.dir, pretrained.config.family, classifier)?;
            classifier = head;
            if from_pooler {
                tracing::info!("the head's dense layer starts from the checkpoint's pooler");
            }
        }
        let model = TartanModel { encoder, classifier, mlm };

        let t = &cfg.train;
        let pad = pretrained.tokenizer.pad_id;
        let end_task = Classification::new(task.train.clone(), t.batch_size, cfg.seed, pad, t.bucket);
        let end_task_steps = end_task.batches_per_epoch().div_ceil(t.grad_accum);
        let mut objectives: Vec<Box<dyn Objective>> = Vec::new();
        if !matches!(phase, Phase::Pretrain(_)) {
            objectives.push(Box::new(end_task));
        }
        let mut warmup_corpora = Vec::new();
        for &i in &aux_used {
            objectives.push(Box::new(masked_lm(&cfg, i, &pretrained, cfg.seed)?));
            if warm_up_head {
                // Its own batch streams, so the main phase sees the batches it would without it.
                warmup_corpora.push(masked_lm(&cfg, i, &pretrained, cfg.seed ^ 0x3a7e_11ed)?);
            }
        }
        let weighting: Box<dyn Weighting> = match (phase, cfg.strategy) {
            (Phase::Main, Strategy::MtTartan) => Box::new(Fixed(cfg.fixed_weights())),
            (Phase::Main, Strategy::MetaTartan) => {
                let dev = meta_dev.context("META-TARTAN needs meta-dev data")?;
                Box::new(MetaTartan::new(
                    cfg.meta.clone(),
                    objectives.len(),
                    t.grad_accum,
                    &model,
                    dev,
                    task.labels.len(),
                    pad,
                    cfg.seed,
                ))
            }
            _ => Box::new(Fixed(vec![1.0; objectives.len()])),
        };

        let (lr, head_lr) = match phase {
            Phase::Pretrain(_) => (cfg.pretrain.lr, cfg.pretrain.lr),
            Phase::Main => (t.lr, t.head_lr),
            Phase::FinalFinetune => (cfg.final_finetune.lr, cfg.final_finetune.lr),
        };
        let optim = AdamW::new(AdamWConfig {
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.eps,
            encoder: Group { lr, weight_decay: t.weight_decay },
            heads: Group { lr: head_lr, weight_decay: t.head_weight_decay },
        });
        let budget = if t.max_steps > 0 { t.max_steps } else { t.epochs * end_task_steps };
        let total_steps = match phase {
            Phase::Pretrain(_) if cfg.pretrain.steps > 0 => cfg.pretrain.steps,
            Phase::FinalFinetune => cfg.final_finetune.epochs * end_task_steps,
            _ => budget,
        };
        let warmup_steps = (t.warmup_ratio * total_steps as f64) as usize;
        let eval_every = if cfg.eval.every_steps > 0 { cfg.eval.every_steps } else { end_task_steps };
        let checkpoint_every = if cfg.checkpoint.every_steps > 0 { cfg.checkpoint.every_steps } else { eval_every };
        let paths = param_paths(&model);
        let encoder_ids = paths.iter().filter(|(_, p)| is_encoder_param(p)).map(|(id, _)| *id).collect();

        write_atomic(&run_dir.join("config.toml"), cfg.to_toml().as_bytes())?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(run_dir.join("metrics.jsonl"))
            .with_context(|| format!("cannot open {}", run_dir.join("metrics.jsonl").display()))?;

        let mut trainer = Self {
            cfg,
            phase,
            run_dir,
            device,
            pretrained,
            task,
            model,
            objectives,
            weighting,
            optim,
            paths,
            encoder_ids,
            state: TrainState::default(),
            total_steps,
            warmup_steps,
            eval_every,
            checkpoint_every,
            log,
        };
        if resume {
            trainer.restore_checkpoint()?;
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
        let model = super::mlm_warmup::warm_up(self.model.clone(), corpora, cfg, &self.cfg.train, &self.device, |w| {
            tracing::info!("MLM-head warm-up step {}: loss {:.3}, masked-token accuracy {:.3}", w.step, w.loss, w.accuracy);
            let entry = json!({"type": "mlm_warmup", "step": w.step, "loss": w.loss, "mlm_accuracy": w.accuracy});
            writeln!(&*log, "{entry}").context("cannot append to metrics.jsonl (is the disk full?)")
        })?;
        self.model = model;
        Ok(())
    }

    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    /// The dev metric the final stage must beat to replace `best/`: the main phase's best.
    /// A resumed trainer keeps the value saved with its checkpoint.
    pub fn set_baseline(&mut self, dev_metric: Option<f64>) {
        if self.state.step == 0 {
            self.state.best_metric = dev_metric;
        }
    }

    /// Trains to the end (or early stop) and scores the best checkpoint.
    pub fn run(&mut self) -> Result<RunResult> {
        let started = Instant::now();
        self.run_until(self.total_steps)?;
        if let Phase::Pretrain(_) = self.phase {
            let model = &self.model;
            save_pretrained(
                &self.run_dir.join("model"),
                &model.encoder,
                model.mlm.as_ref(),
                &self.pretrained.config,
                &self.pretrained.tokenizer,
            )?;
            let result = RunResult {
                metric: "mlm".into(),
                best_step: None,
                dev: None,
                test: None,
                steps: self.state.step,
                train_seconds: started.elapsed().as_secs_f64(),
                final_finetune: None,
            };
            write_atomic(&self.run_dir.join("results.json"), serde_json::to_string_pretty(&result)?.as_bytes())?;
            return Ok(result);
        }
        self.score_best_on_test()?;
        let result = self.final_result(started.elapsed().as_secs_f64())?;
        // The run folder's results.json marks the whole run finished: the strategy writes it.
        if self.phase == Phase::FinalFinetune {
            write_atomic(&self.run_dir.join("results.json"), serde_json::to_string_pretty(&result)?.as_bytes())?;
        }
        Ok(result)
    }

    /// Trains until optimizer step `limit`; stopping before the end saves a checkpoint.
    pub fn run_until(&mut self, limit: usize) -> Result<()> {
        let limit = limit.min(self.total_steps);
        let bar = ProgressBar::new(self.total_steps as u64).with_position(self.state.step as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}]")
                .expect("valid progress template"),
        );
        let mut window = (Instant::now(), self.state.step);
        while self.state.step < limit && !self.state.finished {
            if super::stop_requested() {
                bar.abandon();
                self.save_checkpoint()?;
                bail!(
                    "interrupted at step {}; a checkpoint is saved. Continue with `tartan train --resume {}`",
                    self.state.step,
                    self.run_dir.display()
                );
            }
            // Dropout masks depend on (seed, step) only, so a resumed run draws the same ones.
            let step_seed = self.cfg.seed.wrapping_mul(1_000_003).wrapping_add(self.state.step as u64);
            self.device.seed(step_seed);
            crate::model::dropout::reseed(step_seed);
            let outcome = self.train_step()?;
            self.state.step += 1;
            let step = self.state.step;
            match outcome {
                StepOutcome::Skipped(why) => {
                    self.state.nonfinite_in_a_row += 1;
                    tracing::warn!("step {step} skipped: {why}");
                    self.write_log_ref(json!({"type": "skipped", "step": step, "reason": why}))?;
                    if self.state.nonfinite_in_a_row >= self.cfg.train.max_nonfinite_steps {
                        bail!(
                            "{} steps in a row had a non-finite loss or gradient (last: {why}); stopping. Lower train.lr or check the data; the last good checkpoint is kept",
                            self.state.nonfinite_in_a_row
                        );
                    }
                }
                StepOutcome::Updated { losses, grad_norm, lr_factor, extra } => {
                    self.state.nonfinite_in_a_row = 0;
                    let total_loss: f64 = losses.iter().sum::<f64>();
                    bar.set_position(step as u64);
                    bar.set_message(format!("loss {:.4}", total_loss));
                    if step.is_multiple_of(self.cfg.train.log_every) || step == self.total_steps {
                        let rate = (step - window.1) as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
                        window = (Instant::now(), step);
                        let names: Vec<String> = self.objectives.iter().map(|o| o.name().to_string()).collect();
                        let weights = self.weighting.weights();
                        let mut entry = json!({
                            "type": "train", "step": step, "lr": self.cfg.train.lr * lr_factor,
                            "loss": total_loss, "grad_norm": grad_norm, "steps_per_s": rate,
                            "losses": names.iter().cloned().zip(losses.iter().copied()).collect::<HashMap<_, _>>(),
                            "weights": names.iter().cloned().zip(weights).collect::<HashMap<_, _>>(),
                        });
                        for (k, v) in extra {
                            entry[k.as_str()] = json!(v);
                        }
                        self.write_log_ref(entry)?;
                        if bar.is_hidden() {
                            tracing::info!("step {step}/{}: loss {total_loss:.4}, {rate:.2} steps/s", self.total_steps);
                        }
                    }
                }
            }
            if step.is_multiple_of(self.eval_every) || step == self.total_steps {
                if !matches!(self.phase, Phase::Pretrain(_)) {
                    self.evaluate_and_select(step)?;
                }
                self.write_charts();
            }
            if step.is_multiple_of(self.checkpoint_every) || step == self.total_steps || self.state.finished {
                self.save_checkpoint()?;
            }
        }
        bar.finish_and_clear();
        // Stopping between checkpoints saves one; at a checkpoint step the loop just did.
        if self.state.step < self.total_steps
            && !self.state.finished
            && !self.state.step.is_multiple_of(self.checkpoint_every)
        {
            self.save_checkpoint()?;
        }
        Ok(())
    }

    fn train_step(&mut self) -> Result<StepOutcome> {
        let accum = self.cfg.train.grad_accum;
        let weights = self.weighting.weights();
        let mut buffer = GradBuffer::default();
        let mut losses = vec![0.0; self.objectives.len()];
        let mut extra: HashMap<String, f64> = HashMap::new();
        for _ in 0..accum {
            self.weighting.begin_micro_step(&self.model, &self.device)?;
            for (i, objective) in self.objectives.iter_mut().enumerate() {
                let out = objective.next_loss(&self.model, &self.device)?;
                let value = out.loss.clone().into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    return Ok(StepOutcome::Skipped(format!("{} loss is {value}", objective.name())));
                }
                losses[i] += value / accum as f64;
                for (k, v) in &out.stats {
                    *extra.entry(format!("{k}.{}", objective.name())).or_default() += v / accum as f64;
                }
                let grads = out.loss.mul_scalar(weights[i] / accum as f64).backward();
                self.weighting.observe(i, &self.model, &grads);
                buffer.add(&self.model, &grads);
            }
        }
        let encoder_ids = &self.encoder_ids;
        let grad_norm =
            buffer.clip(self.cfg.train.clip_norm, self.cfg.train.clip_separately, |id| encoder_ids.contains(id));
        if !grad_norm.is_finite() {
            return Ok(StepOutcome::Skipped(format!("gradient norm is {grad_norm}")));
        }
        let lr_factor = linear_schedule(self.state.step, self.warmup_steps, self.total_steps);
        self.model = self.optim.step(self.model.clone(), buffer, lr_factor, &self.paths);
        let names: Vec<String> = self.objectives.iter().map(|o| o.name().to_string()).collect();
        extra.extend(name_figures(self.weighting.end_step(), &names));
        Ok(StepOutcome::Updated { losses, grad_norm, lr_factor, extra })
    }

    fn evaluate_and_select(&mut self, step: usize) -> Result<()> {
        let metric = self.cfg.metric();
        let eval_model = self.model.valid();
        let plain = self.device.clone().without_autodiff();
        let bs = self.cfg.eval.batch_size;
        let pad = self.pretrained.tokenizer.pad_id;
        let mut dev_value = None;
        let mut scored: (Option<Scores>, Option<Scores>) = (None, None);
        for (name, split) in
            [("dev", self.task.dev.as_ref()), ("test", self.task.test.as_ref().filter(|_| self.cfg.eval.test))]
        {
            let Some(split) = split else { continue };
            let scores = evaluate(&eval_model, split, &self.task.labels, bs, pad, &plain);
            tracing::info!("step {step} {name}: accuracy {:.4}, macro-F1 {:.4}", scores.accuracy, scores.macro_f1);
            self.write_log_ref(json!({"type": "eval", "step": step, "split": name, "accuracy": scores.accuracy, "macro_f1": scores.macro_f1, "micro_f1": scores.micro_f1}))?;
            if name == "dev" {
                dev_value = Some(scores.get(metric));
                scored.0 = Some(scores);
            } else {
                scored.1 = Some(scores);
            }
        }
        // Without dev data the latest model is the one kept.
        let improved = match (dev_value, self.state.best_metric) {
            (Some(v), Some(best)) => v > best,
            (Some(_), None) | (None, _) => true,
        };
        if improved {
            self.state.best_metric = dev_value;
            self.state.best_step = Some(step);
            self.state.best_scores = Some(scored);
            self.state.evals_since_best = 0;
            self.save_best()?;
        } else {
            self.state.evals_since_best += 1;
            let patience = match self.phase {
                Phase::FinalFinetune => self.cfg.final_finetune.patience,
                _ => self.cfg.eval.patience,
            };
            if patience > 0 && self.state.evals_since_best >= patience {
                tracing::info!("no better dev {metric:?} in {patience} evaluations: stopping early");
                self.state.finished = true;
            }
        }
        Ok(())
    }

    /// Charts are a view of metrics.jsonl; failing to draw one never stops training.
    fn write_charts(&self) {
        if let Err(e) = crate::report::write_run_charts(&self.run_dir, self.cfg.metric().key()) {
            tracing::warn!("could not draw the charts of {}: {e:#}", self.run_dir.display());
        }
    }

    fn save_best(&self) -> Result<()> {
        self.check_finite(&plain_tensors(&self.model))?;
        // The final stage writes here only when it beats the main phase's model on dev.
        save_model(
            &self.cfg.output_dir.join("best"),
            &self.model,
            &self.pretrained.config,
            &self.pretrained.tokenizer,
            &self.task.labels,
            self.cfg.model.max_length,
            self.cfg.model.head_dropout,
        )
    }

    /// With `eval.test = false` the test split is scored once, on the model this phase kept
    /// as `best/`, instead of at every evaluation.
    fn score_best_on_test(&mut self) -> Result<()> {
        let (Some(test), Some((_, None))) = (self.task.test.as_ref(), self.state.best_scores.as_ref()) else {
            return Ok(());
        };
        if self.cfg.eval.test || self.state.best_step.is_none() {
            return Ok(());
        }
        let plain = self.device.clone().without_autodiff();
        let best = super::checkpoint::load_model(&self.cfg.output_dir.join("best"), &plain)?;
        let scores =
            evaluate(&best.model, test, &self.task.labels, self.cfg.eval.batch_size, self.pretrained.tokenizer.pad_id, &plain);
        let step = self.state.best_step.unwrap_or_default();
        tracing::info!("best model (step {step}) on test: accuracy {:.4}, macro-F1 {:.4}", scores.accuracy, scores.macro_f1);
        self.write_log_ref(json!({"type": "eval", "step": step, "split": "test", "accuracy": scores.accuracy, "macro_f1": scores.macro_f1, "micro_f1": scores.micro_f1}))?;
        if let Some(best) = self.state.best_scores.as_mut() {
            best.1 = Some(scores);
        }
        Ok(())
    }

    /// Scores of the best model, as measured when it was saved.
    fn final_result(&self, seconds: f64) -> Result<RunResult> {
        let (dev, test) = self.state.best_scores.clone().unwrap_or((None, None));
        let result = RunResult {
            metric: self.cfg.metric().key().to_string(),
            best_step: self.state.best_step,
            dev,
            test,
            steps: self.state.step,
            train_seconds: seconds,
            final_finetune: None,
        };
        self.write_log_ref(json!({"type": "final", "best_step": result.best_step,
            "dev": result.dev.as_ref().map(|s| json!({"accuracy": s.accuracy, "macro_f1": s.macro_f1})),
            "test": result.test.as_ref().map(|s| json!({"accuracy": s.accuracy, "macro_f1": s.macro_f1}))}))?;
        Ok(result)
    }

    /// Refuses to save parameters that are not all finite, so a diverged run never replaces
    /// the last good checkpoint.
    fn check_finite(&self, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
        if let Some((name, _, _)) = tensors.iter().find(|(_, _, v)| v.iter().any(|x| !x.is_finite())) {
            bail!(
                "parameter {name} is not finite at step {}; nothing was saved and the last good checkpoint is kept. Lower train.lr and resume",
                self.state.step
            );
        }
        Ok(())
    }

    /// Writes `checkpoint-<step>/` (model, optimizer moments, loop state) atomically, then
    /// drops the oldest beyond `checkpoint.keep`.
    pub fn save_checkpoint(&mut self) -> Result<()> {
        self.state.positions = self.objectives.iter().map(|o| o.position()).collect();
        self.state.weighting = self.weighting.state();
        let dest = self.run_dir.join(format!("checkpoint-{}", self.state.step));
        let tensors = plain_tensors(&self.model);
        self.check_finite(&tensors)?;
        let staged = staging_dir(&dest)?;
        write_atomic(&staged.join("model.safetensors"), &to_safetensors_bytes(&tensors)?)?;
        write_atomic(
            &staged.join("optimizer.safetensors"),
            &to_safetensors_bytes(&self.optim.state_tensors(&self.paths))?,
        )?;
        let state = json!({"train": self.state, "optimizer_steps": self.optim.steps()});
        write_atomic(&staged.join("state.json"), serde_json::to_string_pretty(&state)?.as_bytes())?;
        replace_dir(&staged, &dest)?;
        let saved = checkpoints(&self.run_dir)?;
        for (_, old) in &saved[..saved.len().saturating_sub(self.cfg.checkpoint.keep)] {
            std::fs::remove_dir_all(old)
                .with_context(|| format!("cannot remove the old checkpoint {}", old.display()))?;
        }
        Ok(())
    }

    /// Continues from the latest `checkpoint-<step>/` if the run has one; a run that never saved
    /// one starts over.
    fn restore_checkpoint(&mut self) -> Result<()> {
        recover_checkpoints(&self.run_dir)?;
        let Some((_, dir)) = checkpoints(&self.run_dir)?.pop() else {
            tracing::info!("{} has no checkpoint yet: starting from the beginning", self.run_dir.display());
            return Ok(());
        };
        let state_file = dir.join("state.json");
        let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file)?)
            .with_context(|| format!("{} is not valid JSON", state_file.display()))?;
        self.state = serde_json::from_value(state["train"].clone())
            .with_context(|| format!("{} is not a tartan checkpoint state", state_file.display()))?;
        let steps = state["optimizer_steps"].as_u64().unwrap_or(0);
        self.model = load_plain(self.model.clone(), read_plain(&dir.join("model.safetensors"))?, "checkpoint model")?;
        self.paths = param_paths(&self.model);
        self.encoder_ids = self.paths.iter().filter(|(_, p)| is_encoder_param(p)).map(|(id, _)| *id).collect();
        self.optim.load_state(steps, &read_plain(&dir.join("optimizer.safetensors"))?, &self.paths, &self.device)?;
        for (o, p) in self.objectives.iter_mut().zip(&self.state.positions) {
            o.seek(*p);
        }
        self.weighting.load_state(&self.state.weighting)?;
        tracing::info!("resumed {} at step {}", self.run_dir.display(), self.state.step);
        Ok(())
    }

    fn write_log_ref(&self, entry: serde_json::Value) -> Result<()> {
        let mut f = &self.log;
        writeln!(f, "{entry}").context("cannot append to metrics.jsonl (is the disk full?)")?;
        Ok(())
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }
}

/// The masked-LM objective on auxiliary corpus `i`, its batches drawn with `seed`.
fn masked_lm(cfg: &RunConfig, i: usize, pretrained: &Pretrained, seed: u64) -> Result<MaskedLm> {
    let a = &cfg.aux[i];
    let block = if a.block_size > 0 { a.block_size } else { cfg.model.max_length };
    let corpus = Corpus::open(&a.name, &a.file, &pretrained.tokenizer, block, &cfg.cache_dir())?;
    let masker = Masker {
        prob: a.mask_prob,
        mask_id: pretrained.tokenizer.mask_id.context("masked-LM needs the tokenizer's mask token")?,
        vocab_size: pretrained.config.vocab_size as u32,
        special: pretrained.tokenizer.special_ids.clone(),
    };
    let batch = if a.batch_size > 0 { a.batch_size } else { cfg.train.batch_size };
    Ok(MaskedLm::new(corpus, batch, masker, pretrained.tokenizer.pad_id, seed, cfg.train.bucket))
}

/// The complete `checkpoint-<step>/` folders of a run, oldest first. Read-only, so it is safe
/// to call while another process trains in the folder.
pub fn checkpoints(run_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut found: Vec<(usize, PathBuf)> = checkpoint_names(run_dir)?
        .into_iter()
        .filter_map(|name| Some((name.strip_prefix("checkpoint-")?.parse().ok()?, run_dir.join(&name))))
        .filter(|(_, dir): &(usize, PathBuf)| dir.join("state.json").exists())
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// Puts back each checkpoint that a crash inside `replace_dir` left as `checkpoint-<step>.old`
/// and removes half-written `.staged` folders.
pub fn recover_checkpoints(run_dir: &Path) -> Result<()> {
    for name in checkpoint_names(run_dir)? {
        if let Some(base) = name.strip_suffix(".old").or_else(|| name.strip_suffix(".staged")) {
            recover_dir(&run_dir.join(base))?;
        }
    }
    Ok(())
}

fn checkpoint_names(run_dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", run_dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.with_context(|| format!("cannot list {}", run_dir.display()))?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("checkpoint-") {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

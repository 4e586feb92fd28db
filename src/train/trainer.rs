//! The training loop shared by every strategy: each optimizer step draws one batch per
//! objective (per micro-batch), adds their weighted gradients, clips, updates, and lets the
//! weighting strategy see every task's gradient. How a trainer is built is in `setup.rs`;
//! evaluation and model selection in `selection.rs`; checkpoints in `checkpoints.rs`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::module::ParamId;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::metrics::Scores;
use super::plan::{Phase, PhasePlan};
use super::pretrained::Pretrained;
use super::records::{MetricsLog, Record, RunResult, TaskStep};
use crate::config::RunConfig;
use crate::data::TaskData;
use crate::data::batch::DataPosition;
use crate::model::TartanModel;
use crate::objectives::Objective;
use crate::optim::{AdamW, GradBuffer, ParamGroups};
use crate::weighting::{StepFigures, Weighting};

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
    /// Seconds spent on the phase up to this checkpoint, over every process that trained it
    /// (checkpoints of older builds lack it: their time before the resume is not known).
    #[serde(default)]
    pub seconds: f64,
}

/// A phase's training time over every process that trained it: the seconds saved with the
/// checkpoint it resumed from, plus this process's since it restored that checkpoint.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    before: f64,
    since: Instant,
}

impl Clock {
    pub(super) fn resume(before: f64) -> Self {
        Self { before, since: Instant::now() }
    }

    pub(super) fn seconds(&self) -> f64 {
        self.before + self.since.elapsed().as_secs_f64()
    }
}

pub struct Trainer {
    pub(super) cfg: RunConfig,
    pub(super) plan: PhasePlan,
    pub(super) device: Device,
    pub(super) pretrained: Pretrained,
    pub(super) task: TaskData,
    pub(super) model: TartanModel,
    pub(super) objectives: Vec<Box<dyn Objective>>,
    pub(super) weighting: Box<dyn Weighting>,
    pub(super) optim: AdamW,
    pub(super) groups: ParamGroups,
    pub(super) encoder_ids: HashSet<ParamId>,
    pub(super) state: TrainState,
    pub(super) clock: Clock,
    pub(super) log: MetricsLog,
}

/// The seed of the dropout masks of the step that starts after `step` finished ones, in a run
/// with seed `seed`. Masks depend on (seed, step) only, so a resumed run draws the ones an
/// uninterrupted run would. `bench/tartan_masks.py` has the same formula for PyTorch runs that
/// draw our masks.
pub fn dropout_step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(step as u64)
}

/// The bar of a phase's optimizer steps; hidden when stderr is not a terminal, where the loop
/// logs a line per logged step instead.
fn progress_bar(total: usize, at: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64).with_position(at as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("valid progress template"),
    );
    bar
}

enum StepOutcome {
    Updated(Update),
    Skipped(String),
}

/// What an optimizer step that updated the model reports: each objective's loss (and
/// accuracy, where it has one), the gradient norm before clipping and the weighting's figures.
struct Update {
    losses: Vec<f64>,
    accuracies: Vec<Option<f64>>,
    grad_norm: f64,
    figures: StepFigures,
}

impl Update {
    fn loss(&self) -> f64 {
        self.losses.iter().sum()
    }
}

/// Steps per second between logged steps.
struct Pace {
    since: Instant,
    step: usize,
}

impl Pace {
    fn start(step: usize) -> Self {
        Self { since: Instant::now(), step }
    }

    /// The pace since the last lap, which now ends at `step`.
    fn lap(&mut self, step: usize) -> f64 {
        let pace = (step - self.step) as f64 / self.since.elapsed().as_secs_f64().max(1e-9);
        *self = Self::start(step);
        pace
    }
}

impl Trainer {
    pub fn total_steps(&self) -> usize {
        self.plan.total_steps
    }

    pub fn run_dir(&self) -> &Path {
        &self.plan.run_dir
    }

    /// The dev metric the final stage must beat to replace `best/`: the main phase's best.
    /// A resumed trainer keeps the value saved with its checkpoint.
    pub fn set_baseline(&mut self, dev_metric: Option<f64>) {
        if self.state.step == 0 {
            self.state.best_metric = dev_metric;
        }
    }

    /// Trains to the end (or early stop) and reports the phase's result.
    pub fn run(&mut self) -> Result<RunResult> {
        self.run_until(self.plan.total_steps)?;
        if let Phase::Pretrain(_) = self.plan.phase {
            self.save_pretrained_model()?;
            let result = RunResult {
                metric: "mlm".into(),
                best_step: None,
                dev: None,
                test: None,
                steps: self.state.step,
                train_seconds: self.clock.seconds(),
                final_finetune: None,
            };
            result.write(&self.plan.run_dir)?;
            return Ok(result);
        }
        self.score_best_on_test()?;
        let result = self.final_result(self.clock.seconds())?;
        // The run folder's results.json marks the whole run finished: the strategy writes it.
        if self.plan.phase == Phase::FinalFinetune {
            result.write(&self.plan.run_dir)?;
        }
        Ok(result)
    }

    /// Trains until optimizer step `limit`; stopping before the end saves a checkpoint.
    pub fn run_until(&mut self, limit: usize) -> Result<()> {
        let total = self.plan.total_steps;
        let limit = limit.min(total);
        let bar = progress_bar(total, self.state.step);
        let mut pace = Pace::start(self.state.step);
        while self.state.step < limit && !self.state.finished {
            if super::stop_requested() {
                bar.abandon();
                return self.interrupted();
            }
            self.model.reseed_dropout(dropout_step_seed(self.cfg.seed, self.state.step));
            let lrs = self.plan.lrs(self.state.step);
            let outcome = self.train_step()?;
            self.state.step += 1;
            let step = self.state.step;
            match outcome {
                StepOutcome::Skipped(why) => self.skipped(step, why)?,
                StepOutcome::Updated(update) => {
                    self.state.nonfinite_in_a_row = 0;
                    bar.set_position(step as u64);
                    bar.set_message(format!("loss {:.4}", update.loss()));
                    if step.is_multiple_of(self.cfg.train.log_every) || step == total {
                        self.log_step(step, lrs, &update, pace.lap(step), bar.is_hidden())?;
                    }
                }
            }
            if step.is_multiple_of(self.plan.eval_every) || step == total {
                if self.plan.evaluates {
                    self.evaluate_and_select(step)?;
                }
                self.write_charts();
            }
            if step.is_multiple_of(self.plan.checkpoint_every) || step == total || self.state.finished {
                self.save_checkpoint()?;
            }
        }
        bar.finish_and_clear();
        // Stopping between checkpoints saves one; at a checkpoint step the loop just did.
        if self.state.step < total
            && !self.state.finished
            && !self.state.step.is_multiple_of(self.plan.checkpoint_every)
        {
            self.save_checkpoint()?;
        }
        Ok(())
    }

    /// Ctrl-C or SIGTERM: save where the run stands and say how to go on.
    fn interrupted(&mut self) -> Result<()> {
        self.save_checkpoint()?;
        bail!(
            "interrupted at step {}; a checkpoint is saved. Continue with `tartan train --resume {}`",
            self.state.step,
            self.cfg.output_dir.display()
        )
    }

    /// One line of metrics.jsonl for a logged step; a log line too when the bar is hidden.
    fn log_step(
        &mut self,
        step: usize,
        (lr, head_lr): (f64, f64),
        u: &Update,
        steps_per_s: f64,
        say: bool,
    ) -> Result<()> {
        let tasks = self.task_steps(u);
        let (loss, grad_norm, dev_loss) = (u.loss(), u.grad_norm, u.figures.dev_loss);
        self.log.write(&Record::Train { step, lr, head_lr, loss, grad_norm, steps_per_s, dev_loss, tasks })?;
        if say {
            tracing::info!("step {step}/{}: loss {loss:.4}, {steps_per_s:.2} steps/s", self.plan.total_steps);
        }
        Ok(())
    }

    fn skipped(&mut self, step: usize, why: String) -> Result<()> {
        self.state.nonfinite_in_a_row += 1;
        tracing::warn!("step {step} skipped: {why}");
        self.log.write(&Record::Skipped { step, reason: why.clone() })?;
        if self.state.nonfinite_in_a_row >= self.cfg.train.max_nonfinite_steps {
            // Only a checkpoint on disk can be resumed from; good steps since it are lost.
            let kept = match super::checkpoints::checkpoints(&self.plan.run_dir)?.pop() {
                Some((at, _)) => format!(
                    "the last good checkpoint (step {at}) is kept: `tartan train --resume {}` with other settings continues from it",
                    self.cfg.output_dir.display()
                ),
                None => "no checkpoint was saved".into(),
            };
            bail!(
                "{} steps in a row had a non-finite loss or gradient (last: {why}); stopping. Check the learning rates, the optimizer settings and the data; {kept}",
                self.state.nonfinite_in_a_row
            );
        }
        Ok(())
    }

    fn train_step(&mut self) -> Result<StepOutcome> {
        let accum = self.cfg.train.grad_accum;
        let weights = self.weighting.weights();
        let mut buffer = GradBuffer::default();
        let mut losses = vec![0.0; self.objectives.len()];
        let mut accuracies = vec![None; self.objectives.len()];
        for _ in 0..accum {
            self.weighting.begin_micro_step(&self.model, &self.device)?;
            for (i, objective) in self.objectives.iter_mut().enumerate() {
                let out = objective.next_loss(&self.model, &self.device)?;
                let value = out.loss.clone().into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    return Ok(StepOutcome::Skipped(format!("{} loss is {value}", objective.name())));
                }
                losses[i] += value / accum as f64;
                if let Some(a) = out.accuracy {
                    *accuracies[i].get_or_insert(0.0) += a / accum as f64;
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
        let lr_factor = self.plan.lr_factor(self.state.step);
        self.model = self.optim.step(self.model.clone(), buffer, lr_factor, &self.groups);
        Ok(StepOutcome::Updated(Update { losses, accuracies, grad_norm, figures: self.weighting.end_step() }))
    }

    /// Each objective's figures of a logged step, by name.
    fn task_steps(&self, u: &Update) -> BTreeMap<String, TaskStep> {
        let weights = self.weighting.weights();
        let figure = |i: usize| u.figures.tasks.get(i).copied().unwrap_or_default();
        self.objectives
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let step = TaskStep {
                    loss: u.losses[i],
                    weight: weights[i],
                    accuracy: u.accuracies[i],
                    cos: figure(i).cos,
                    grad_norm: figure(i).grad_norm,
                    logit: figure(i).logit,
                };
                (o.name().to_string(), step)
            })
            .collect()
    }

    /// Charts are a view of metrics.jsonl; failing to draw one never stops training.
    fn write_charts(&self) {
        if let Err(e) = super::charts::write_run_charts(&self.plan.run_dir, &self.plan.run_dir, self.cfg.metric().key())
        {
            tracing::warn!("could not draw the charts of {}: {e:#}", self.plan.run_dir.display());
        }
    }
}

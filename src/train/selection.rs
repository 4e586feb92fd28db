//! Evaluation and model selection: scoring dev (and test) at an evaluation, keeping the best
//! model by the dev metric as `best/`, stopping early, and the phase's final result.

use anyhow::Result;
use burn::module::Module;
use serde::{Deserialize, Serialize};

use super::evaluate::evaluate;
use super::records::{Record, RunResult};
use super::saved_model::{HeadInfo, load_model, save_model};
use super::trainer::Trainer;
use crate::model::weights::plain_tensors;
use crate::validate::at_least_one;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Evaluate every this many optimizer steps; 0 means once per epoch.
    pub every_steps: usize,
    pub batch_size: usize,
    /// Stop after this many evaluations without a better dev metric; 0 never stops early.
    pub patience: usize,
    /// Also evaluate on test at each evaluation (reported, never used for selection).
    pub test: bool,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self { every_steps: 0, batch_size: 64, patience: 0, test: true }
    }
}

impl EvalSection {
    pub fn validate(&self) -> Result<()> {
        at_least_one("eval.batch_size", self.batch_size)
    }
}

impl Trainer {
    pub(super) fn evaluate_and_select(&mut self, step: usize) -> Result<()> {
        let metric = self.cfg.metric();
        let eval_model = self.model.valid();
        let plain = self.device.clone().without_autodiff();
        let bs = self.cfg.eval.batch_size;
        let pad = self.pretrained.tokenizer.pad_id;
        let test = self.task.test.as_ref().filter(|_| self.cfg.eval.test);
        let mut scored = (None, None);
        for (name, split) in [("dev", self.task.dev.as_ref()), ("test", test)] {
            let Some(split) = split else { continue };
            let scores = evaluate(&eval_model, split, &self.task.labels, bs, pad, &plain);
            tracing::info!("step {step} {name}: accuracy {:.4}, macro-F1 {:.4}", scores.accuracy, scores.macro_f1);
            self.log.write(&Record::eval(step, name, &scores))?;
            if name == "dev" { scored.0 = Some(scores) } else { scored.1 = Some(scores) }
        }
        let dev_value = scored.0.as_ref().map(|s| s.get(metric));
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
            let patience = self.plan.patience;
            if patience > 0 && self.state.evals_since_best >= patience {
                tracing::info!("no better dev {} in {patience} evaluations: stopping early", metric.key());
                self.state.finished = true;
            }
        }
        Ok(())
    }

    fn save_best(&self) -> Result<()> {
        self.check_finite(&plain_tensors(&self.model))?;
        // The final stage writes here only when it beats the main phase's model on dev.
        let info = HeadInfo {
            labels: self.task.labels.labels.clone(),
            max_length: self.cfg.model.max_length,
            head_dropout: self.cfg.model.head_dropout,
        };
        save_model(&self.cfg.output_dir.join("best"), &self.model, &self.pretrained, &info)
    }

    /// With `eval.test = false` the test split is scored once, on the model this phase kept
    /// as `best/`, instead of at every evaluation.
    pub(super) fn score_best_on_test(&mut self) -> Result<()> {
        let (Some(test), Some(step)) = (self.task.test.as_ref(), self.state.best_step) else { return Ok(()) };
        if self.cfg.eval.test || self.state.best_scores.as_ref().is_some_and(|s| s.1.is_some()) {
            return Ok(());
        }
        let plain = self.device.clone().without_autodiff();
        let best = load_model(&self.cfg.output_dir.join("best"), &plain)?;
        let (bs, pad) = (self.cfg.eval.batch_size, self.pretrained.tokenizer.pad_id);
        // Scored in the precision the dev scores that chose it were measured in.
        let model = best.model.with_precision(self.cfg.train.precision);
        let scores = evaluate(&model.valid(), test, &self.task.labels, bs, pad, &plain);
        tracing::info!(
            "best model (step {step}) on test: accuracy {:.4}, macro-F1 {:.4}",
            scores.accuracy,
            scores.macro_f1
        );
        self.log.write(&Record::eval(step, "test", &scores))?;
        if let Some(best) = self.state.best_scores.as_mut() {
            best.1 = Some(scores);
        }
        Ok(())
    }

    /// Scores of the best model, as measured when it was saved.
    pub(super) fn final_result(&self, seconds: f64) -> Result<RunResult> {
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
        self.log.write(&Record::Final {
            best_step: result.best_step,
            dev: result.dev.as_ref().map(Into::into),
            test: result.test.as_ref().map(Into::into),
        })?;
        Ok(result)
    }
}

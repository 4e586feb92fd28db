//! A run's charts, drawn from its `metrics.jsonl` while it trains and again by `tartan
//! report`: losses and dev/test metric, task weights (multi-task runs), the MLM-head warm-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::records::{Record, read_records};
use crate::plot::{Panel, Series, draw};

/// The logged history of one run.
#[derive(Debug, Default)]
pub struct RunLog {
    /// Per name (`loss.tapt`, `weight.end-task`, ...), the (step, value) points.
    pub train: BTreeMap<String, Vec<(f64, f64)>>,
    /// Per split (`dev`, `test`) and metric (`accuracy`, `macro_f1`), the (step, value) points.
    pub eval: BTreeMap<(String, String), Vec<(f64, f64)>>,
}

impl RunLog {
    pub fn read(run_dir: &Path) -> Result<Self> {
        Ok(Self::from_records(&read_records(run_dir)?))
    }

    pub fn from_records(records: &[Record]) -> Self {
        let mut log = RunLog::default();
        let mut put = |name: String, step: usize, value: Option<f64>| {
            if let Some(v) = value {
                log.train.entry(name).or_default().push((step as f64, v));
            }
        };
        for r in records {
            match r {
                Record::Train { step, tasks, dev_loss, lr, head_lr, steps_per_s, .. } => {
                    put("lr".into(), *step, Some(*lr));
                    put("steps_per_s".into(), *step, Some(*steps_per_s));
                    put("head_lr".into(), *step, Some(*head_lr));
                    put("dev_loss".into(), *step, *dev_loss);
                    for (name, t) in tasks {
                        put(format!("loss.{name}"), *step, Some(t.loss));
                        put(format!("weight.{name}"), *step, Some(t.weight));
                        put(format!("accuracy.{name}"), *step, t.accuracy);
                        put(format!("cos.{name}"), *step, t.cos);
                        put(format!("grad_norm.{name}"), *step, t.grad_norm);
                    }
                }
                Record::MlmWarmup { step, loss, accuracy } => {
                    put("warmup.loss".into(), *step, Some(*loss));
                    put("warmup.accuracy".into(), *step, Some(*accuracy));
                }
                Record::Eval { step, split, accuracy, macro_f1, micro_f1 } => {
                    for (metric, x) in [("accuracy", accuracy), ("macro_f1", macro_f1), ("micro_f1", micro_f1)] {
                        log.eval.entry((split.clone(), metric.to_string())).or_default().push((*step as f64, *x));
                    }
                }
                Record::Skipped { .. } | Record::Final { .. } => {}
            }
        }
        log
    }

    /// The series whose names start with `prefix`, named by the rest (`loss.` -> per task).
    pub fn series(&self, prefix: &str) -> Vec<Series> {
        self.train
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|name| Series::line(name, v.clone())))
            .collect()
    }

    /// Dev and test values of `metric` over the run.
    pub fn metric_series(&self, metric: &str) -> Vec<Series> {
        self.eval
            .iter()
            .filter(|((_, m), _)| m == metric)
            .map(|((split, _), v)| Series::line(split.clone(), v.clone()))
            .collect()
    }
}

/// The name charts give a run: two path components tell runs apart in a sweep
/// (`meta-tartan/seed0`) and elsewhere (`chemprot/meta-tartan`), where the last one alone
/// would not.
pub fn run_name(run_dir: &Path) -> String {
    let dir = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
    let parts: Vec<String> =
        dir.components().rev().take(2).map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// Writes `losses.{png,svg}` and, when there is more than one task, `weights.{png,svg}`
/// (task weights above, dev/test metric below) of the run in `run_dir` into `dest`.
pub fn write_run_charts(run_dir: &Path, dest: &Path, metric: &str) -> Result<Vec<PathBuf>> {
    let log = RunLog::read(run_dir)?;
    let name = run_name(run_dir);
    let metric_label = metric.replace('_', "-");
    let mut written = Vec::new();
    let mut losses =
        vec![Panel { title: "Training loss per task".into(), y_label: "loss".into(), series: log.series("loss.") }];
    let evals = log.metric_series(metric);
    if !evals.is_empty() {
        losses.push(Panel {
            title: format!("Evaluation {metric_label}"),
            y_label: metric_label.clone(),
            series: evals,
        });
    }
    written.push(draw(&dest.join("losses"), &format!("{name}: losses"), "optimizer step", &losses)?);
    let weights = log.series("weight.");
    if weights.len() > 1 {
        let mut panels = vec![Panel { title: "Task weights".into(), y_label: "weight".into(), series: weights }];
        panels.push(Panel {
            title: format!("Dev and test {metric_label}"),
            y_label: metric_label,
            series: log.metric_series(metric),
        });
        written.push(draw(&dest.join("weights"), &format!("{name}: task weights"), "optimizer step", &panels)?);
    }
    let warmup = log.series("warmup.");
    if !warmup.is_empty() {
        let (loss, accuracy): (Vec<Series>, Vec<Series>) = warmup.into_iter().partition(|s| s.name == "loss");
        let panels = [
            Panel { title: "MLM loss (mean over the window)".into(), y_label: "loss".into(), series: loss },
            Panel { title: "Masked-token accuracy".into(), y_label: "accuracy".into(), series: accuracy },
        ];
        written.push(draw(
            &dest.join("mlm-warmup"),
            &format!("{name}: MLM-head warm-up, encoder frozen"),
            "warm-up step",
            &panels,
        )?);
    }
    Ok(written)
}

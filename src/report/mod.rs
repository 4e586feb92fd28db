//! Reading a run's `metrics.jsonl` and drawing its charts.

pub mod charts;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use charts::{Panel, Series, draw};

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
        let path = run_dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut log = RunLog::default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let step = v["step"].as_f64().unwrap_or(0.0);
            match v["type"].as_str() {
                Some("train") => {
                    for (group, prefix) in [("losses", "loss"), ("weights", "weight")] {
                        for (name, value) in v[group].as_object().into_iter().flatten() {
                            if let Some(x) = value.as_f64() {
                                log.train.entry(format!("{prefix}.{name}")).or_default().push((step, x));
                            }
                        }
                    }
                }
                Some("eval") => {
                    let split = v["split"].as_str().unwrap_or("?").to_string();
                    for metric in ["accuracy", "macro_f1", "micro_f1"] {
                        if let Some(x) = v[metric].as_f64() {
                            log.eval.entry((split.clone(), metric.to_string())).or_default().push((step, x));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(log)
    }

    fn series(&self, prefix: &str) -> Vec<Series> {
        self.train
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix).map(|name| Series { name: name.to_string(), points: v.clone() })
            })
            .collect()
    }

    fn metric_series(&self, metric: &str) -> Vec<Series> {
        self.eval
            .iter()
            .filter(|((_, m), _)| m == metric)
            .map(|((split, _), v)| Series { name: split.clone(), points: v.clone() })
            .collect()
    }
}

/// Writes `losses.{png,svg}` and, when there is more than one task, `weights.{png,svg}`
/// (task weights above, dev/test metric below) into `run_dir`.
pub fn write_run_charts(run_dir: &Path, metric: &str) -> Result<Vec<PathBuf>> {
    let log = RunLog::read(run_dir)?;
    // Two path components tell runs apart in a sweep (`meta-tartan/seed0`) and elsewhere
    // (`chemprot/meta-tartan`), where the last one alone would not.
    let parts: Vec<String> =
        run_dir.components().rev().take(2).map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
    let name = parts.into_iter().rev().collect::<Vec<_>>().join("/");
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
    draw(&run_dir.join("losses"), &format!("{name}: losses"), "optimizer step", &losses)?;
    written.push(run_dir.join("losses.png"));
    let weights = log.series("weight.");
    if weights.len() > 1 {
        let mut panels = vec![Panel { title: "Task weights".into(), y_label: "weight".into(), series: weights }];
        panels.push(Panel {
            title: format!("Dev and test {metric_label}"),
            y_label: metric_label,
            series: log.metric_series(metric),
        });
        draw(&run_dir.join("weights"), &format!("{name}: task weights"), "optimizer step", &panels)?;
        written.push(run_dir.join("weights.png"));
    }
    Ok(written)
}

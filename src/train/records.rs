//! What a run writes for others to read: one typed record per line of `metrics.jsonl`, and
//! the final `results.json`. The loop writes them; report/, the demo and the tests read them
//! back with the same types.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::metrics::Scores;
use crate::fsutil::write_atomic;

/// One objective's figures at a logged step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStep {
    /// Its loss, averaged over the step's micro-batches.
    pub loss: f64,
    /// Its weight in the step's sum.
    pub weight: f64,
    /// Masked-token accuracy (masked-LM objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// META-TARTAN: cosine of its gradient with the dev gradient over the shared encoder, the
    /// norm of its weighted gradient there (also MT-TARTAN), and its weight's logit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit: Option<f64>,
}

/// A line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A logged optimizer step.
    Train {
        step: usize,
        /// Learning rates used by the step's update: shared encoder and heads.
        lr: f64,
        head_lr: f64,
        /// Weighted sum of the objectives' losses.
        loss: f64,
        /// Gradient norm over all parameters before clipping.
        grad_norm: f64,
        steps_per_s: f64,
        /// META-TARTAN: the dev loss behind the meta-gradient.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dev_loss: Option<f64>,
        /// Per objective (`end-task`, `tapt`, ...).
        tasks: BTreeMap<String, TaskStep>,
    },
    /// Scores on a split at an evaluation.
    Eval { step: usize, split: String, accuracy: f64, macro_f1: f64, micro_f1: f64 },
    /// A step with a non-finite loss or gradient, not applied.
    Skipped { step: usize, reason: String },
    /// A window of the MLM-head warm-up (steps of the warm-up, before step 1).
    MlmWarmup { step: usize, loss: f64, accuracy: f64 },
    /// The phase's result.
    Final { best_step: Option<usize>, dev: Option<Brief>, test: Option<Brief> },
}

/// The headline scores of a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Brief {
    pub accuracy: f64,
    pub macro_f1: f64,
}

impl From<&Scores> for Brief {
    fn from(s: &Scores) -> Self {
        Self { accuracy: s.accuracy, macro_f1: s.macro_f1 }
    }
}

impl Record {
    pub fn eval(step: usize, split: &str, s: &Scores) -> Self {
        Record::Eval { step, split: split.into(), accuracy: s.accuracy, macro_f1: s.macro_f1, micro_f1: s.micro_f1 }
    }

    /// Whether the record belongs to a run that stopped after `step` updates: what a resume
    /// from that step keeps.
    fn kept_at(&self, step: usize) -> bool {
        match self {
            Record::Train { step: s, .. } | Record::Eval { step: s, .. } | Record::Skipped { step: s, .. } => {
                *s <= step
            }
            // The warm-up precedes step 1 and is not redone by a resume from a checkpoint.
            Record::MlmWarmup { .. } => step > 0,
            Record::Final { .. } => false,
        }
    }
}

/// Final figures of a run, also written to `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub metric: String,
    pub best_step: Option<usize>,
    pub dev: Option<Scores>,
    pub test: Option<Scores>,
    pub steps: usize,
    /// Training time over every phase (TAPT's masked-LM phases included) and every process
    /// that trained the run; a resumed run counts its time before the interruption up to the
    /// checkpoint it resumed from.
    pub train_seconds: f64,
    /// The last end-task-only stage, when configured; its model is the run's result only if
    /// it improved the dev metric (`best_step` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_finetune: Option<Box<RunResult>>,
}

impl RunResult {
    pub fn read(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join("results.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} has no results.json (not finished?)", run_dir.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    pub fn write(&self, run_dir: &Path) -> Result<()> {
        write_atomic(&run_dir.join("results.json"), serde_json::to_string_pretty(self)?.as_bytes())
    }
}

/// The files that record a finished run without its weights.
pub const RUN_RECORDS: [&str; 3] = ["config.toml", "results.json", "metrics.jsonl"];

/// Copies a run's records from `from` to `to` (created), each atomically; `results.json` last,
/// since it is what marks the copy finished.
pub fn copy_run_records(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for name in RUN_RECORDS.iter().filter(|n| **n != "results.json").chain(&["results.json"]) {
        let bytes =
            std::fs::read(from.join(name)).with_context(|| format!("cannot read {}", from.join(name).display()))?;
        write_atomic(&to.join(name), &bytes)?;
    }
    Ok(())
}

/// `metrics.jsonl` of a run folder, open for appending.
pub struct MetricsLog {
    file: File,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens the log of `run_dir` to continue a run that has made `step` updates: records a
    /// resumed run will write again (later steps, the final record, a warm-up it redoes) are
    /// dropped first, so every step appears once however often the run was interrupted.
    pub fn open(run_dir: &Path, step: usize) -> Result<Self> {
        let path = run_dir.join("metrics.jsonl");
        if path.exists() {
            let kept: Vec<String> = read_records(run_dir)?
                .iter()
                .filter(|r| r.kept_at(step))
                .map(|r| serde_json::to_string(r).expect("records serialise"))
                .collect();
            let text = if kept.is_empty() { String::new() } else { kept.join("\n") + "\n" };
            write_atomic(&path, text.as_bytes())?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self { file, path })
    }

    pub fn write(&self, record: &Record) -> Result<()> {
        let mut f = &self.file;
        writeln!(f, "{}", serde_json::to_string(record)?)
            .with_context(|| format!("cannot append to {} (is the disk full?)", self.path.display()))
    }
}

/// Every record of a run's `metrics.jsonl`, in order. A line that does not parse (the last
/// one, cut short by a crash) is skipped.
pub fn read_records(run_dir: &Path) -> Result<Vec<Record>> {
    let path = run_dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(step: usize) -> Record {
        let tasks =
            BTreeMap::from([("end-task".to_string(), TaskStep { loss: 1.0, weight: 1.0, ..Default::default() })]);
        Record::Train {
            step,
            lr: 1e-4,
            head_lr: 1e-3,
            loss: 1.0,
            grad_norm: 2.0,
            steps_per_s: 3.0,
            dev_loss: None,
            tasks,
        }
    }

    #[test]
    fn records_round_trip_with_their_type_tag() {
        let line = serde_json::to_string(&train(3)).unwrap();
        assert!(line.starts_with("{\"type\":\"train\",\"step\":3,"), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), train(3));
        let warm = Record::MlmWarmup { step: 100, loss: 6.0, accuracy: 0.1 };
        assert!(serde_json::to_string(&warm).unwrap().contains("\"type\":\"mlm_warmup\""));
    }

    #[test]
    fn reopening_at_a_step_drops_what_the_resumed_run_writes_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = MetricsLog::open(dir.path(), 0).unwrap();
        log.write(&Record::MlmWarmup { step: 100, loss: 6.0, accuracy: 0.1 }).unwrap();
        for s in 1..=4 {
            log.write(&train(s)).unwrap();
        }
        log.write(&Record::Final { best_step: Some(2), dev: None, test: None }).unwrap();
        drop(log);
        let log = MetricsLog::open(dir.path(), 2).unwrap();
        log.write(&train(3)).unwrap();
        let steps: Vec<String> = read_records(dir.path())
            .unwrap()
            .iter()
            .map(|r| match r {
                Record::Train { step, .. } => format!("t{step}"),
                Record::MlmWarmup { .. } => "w".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(steps, ["w", "t1", "t2", "t3"]);
        MetricsLog::open(dir.path(), 0).unwrap();
        assert!(read_records(dir.path()).unwrap().is_empty(), "a restart from step 0 keeps nothing");
    }
}

//! A tokenized end-task: label map plus train/dev/test splits.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::jsonl::{LabelMap, read_jsonl};
use super::tokenize::TextTokenizer;
use crate::validate::non_negative;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Accuracy,
    MacroF1,
    MicroF1,
}

impl Metric {
    /// The name used in config files and metrics.jsonl.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::MacroF1 => "macro_f1",
            Metric::MicroF1 => "micro_f1",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskSection {
    pub train: PathBuf,
    pub dev: Option<PathBuf>,
    pub test: Option<PathBuf>,
    /// Model selection metric; ChemProt uses accuracy, ACL-ARC and SciERC macro-F1.
    pub metric: Option<Metric>,
    /// The end-task's weight under mt-tartan; unset: 1/(1+K) for K auxiliary corpora.
    pub weight: Option<f64>,
}

impl TaskSection {
    pub fn validate(&self) -> Result<()> {
        if self.train.as_os_str().is_empty() {
            bail!("task.train is not set: give the end-task's training JSONL file");
        }
        if let Some(w) = self.weight {
            non_negative("task.weight", w)?;
        }
        Ok(())
    }

    /// The task's name: the folder holding its training file (`chemprot`, `citation_intent`).
    pub fn name(&self) -> String {
        let folder = self.train.parent().and_then(|p| p.file_name());
        folder.map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "task".into())
    }

    /// The selection metric: accuracy unless set.
    pub fn metric(&self) -> Metric {
        self.metric.unwrap_or(Metric::Accuracy)
    }
}

/// One tokenized split.
#[derive(Debug, Clone)]
pub struct Split {
    pub path: PathBuf,
    pub ids: Vec<Vec<u32>>,
    pub labels: Vec<usize>,
}

impl Split {
    /// Reads and tokenizes `path` with a known label map (dev, test, or data for `tartan eval`).
    pub fn load(path: &Path, labels: &LabelMap, tok: &TextTokenizer, max_len: usize) -> Result<Self> {
        let raw = read_jsonl(path)?;
        let label_ids = labels.ids(&raw, path)?;
        Self::tokenize(path, &raw.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(), label_ids, tok, max_len)
    }

    fn tokenize(path: &Path, texts: &[&str], labels: Vec<usize>, tok: &TextTokenizer, max_len: usize) -> Result<Self> {
        Ok(Self { path: path.to_path_buf(), ids: tok.encode_batch(texts, max_len)?, labels })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn lengths(&self) -> Vec<usize> {
        self.ids.iter().map(Vec::len).collect()
    }

    /// Splits off the last `n` examples (after a seeded shuffle) as a held-out slice.
    pub fn hold_out(&mut self, n: usize, seed: u64) -> Split {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let (keep, held) = order.split_at(self.len().saturating_sub(n));
        let take = |idx: &[usize]| Split {
            path: self.path.clone(),
            ids: idx.iter().map(|&i| self.ids[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        };
        let held = take(held);
        *self = take(keep);
        held
    }
}

#[derive(Debug, Clone)]
pub struct TaskData {
    pub labels: LabelMap,
    pub train: Split,
    pub dev: Option<Split>,
    pub test: Option<Split>,
}

impl TaskData {
    /// Reads the splits; the label set comes from train and every dev/test label must be in it.
    pub fn load(
        train: &Path,
        dev: Option<&Path>,
        test: Option<&Path>,
        tok: &TextTokenizer,
        max_len: usize,
    ) -> Result<Self> {
        let raw = read_jsonl(train)?;
        let labels = LabelMap::from_train(&raw, train)?;
        let ids = labels.ids(&raw, train)?;
        let train_split =
            Split::tokenize(train, &raw.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(), ids, tok, max_len)?;
        let load = |p: Option<&Path>| p.map(|p| Split::load(p, &labels, tok, max_len)).transpose();
        Ok(Self { dev: load(dev)?, test: load(test)?, train: train_split, labels })
    }
}

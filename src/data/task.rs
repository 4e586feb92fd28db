//! A tokenized end-task: label map plus train/dev/test splits.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::jsonl::{LabelMap, read_jsonl};
use super::tokenize::TextTokenizer;

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

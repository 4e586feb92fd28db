//! What a run folder's checkpoints and records depend on, recorded in `fingerprint.json` when
//! the run starts and compared on resume: the strategy, the compute precision, the model's
//! shape and tokenizer, the label set, and the text of each auxiliary corpus. Resuming with any
//! of them changed would load a checkpoint into a model it does not fit, or mix two setups in
//! one run; the refusal says what changed. Paths, budgets and learning rates are not part of
//! it: a resume may move files or extend a run.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::pretrained::Pretrained;
use super::strategy::Strategy;
use crate::config::RunConfig;
use crate::data::corpus::content_digest;
use crate::data::{LabelMap, read_jsonl};
use crate::fsutil::{sha256_hex, write_atomic};
use crate::model::Precision;

const FILE: &str = "fingerprint.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub strategy: String,
    /// `train.precision`: bf16 and f32 runs differ in every number. Fingerprints written
    /// before the setting existed are f32 runs.
    #[serde(default)]
    pub precision: Precision,
    pub model: ModelPrint,
    pub labels: Vec<String>,
    /// The corpora the strategy trains on, in order (none for `finetune`).
    pub corpora: Vec<CorpusPrint>,
}

/// The model's shape (what its checkpoint tensors must fit) and its tokenizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrint {
    pub family: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// SHA-256 of `tokenizer.json`.
    pub tokenizer_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusPrint {
    pub name: String,
    pub bytes: u64,
    /// SHA-256 of the file, as `sha256sum` prints it.
    pub sha256: String,
}

impl Fingerprint {
    /// The fingerprint of `cfg`'s setup: reads the model's config and tokenizer, the training
    /// file's labels, and every corpus the strategy uses.
    pub fn of(cfg: &RunConfig) -> Result<Self> {
        let pretrained = Pretrained::open(&cfg.model.name)?;
        let c = &pretrained.config;
        let tokenizer = pretrained.dir.join("tokenizer.json");
        let model = ModelPrint {
            family: format!("{:?}", c.family).to_lowercase(),
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            max_position_embeddings: c.max_position_embeddings,
            tokenizer_sha256: std::fs::File::open(&tokenizer)
                .and_then(sha256_hex)
                .with_context(|| format!("cannot read {}", tokenizer.display()))?,
        };
        let train = read_jsonl(&cfg.task.train)?;
        let labels = LabelMap::from_train(&train, &cfg.task.train)?.labels;
        let used = if cfg.strategy == Strategy::Finetune { &[][..] } else { &cfg.aux[..] };
        let corpora = used
            .iter()
            .map(|a| {
                let (bytes, sha256) =
                    content_digest(&a.file).with_context(|| format!("auxiliary corpus `{}`", a.name))?;
                Ok(CorpusPrint { name: a.name.clone(), bytes, sha256 })
            })
            .collect::<Result<_>>()?;
        Ok(Self { strategy: cfg.strategy.name().to_string(), precision: cfg.train.precision, model, labels, corpora })
    }

    pub fn write(&self, run_dir: &Path) -> Result<()> {
        write_atomic(&run_dir.join(FILE), serde_json::to_string_pretty(self)?.as_bytes())
    }

    /// The fingerprint recorded in `run_dir`, if the run has one (runs started before
    /// fingerprints were recorded have none).
    pub fn read(run_dir: &Path) -> Result<Option<Self>> {
        let path = run_dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let print = serde_json::from_str(&text).with_context(|| {
            format!("{} is not a tartan fingerprint; if it was damaged, delete it and resume", path.display())
        })?;
        Ok(Some(print))
    }

    /// Refuses to resume the run in `run_dir` with this setup if it was started with another.
    pub fn check_resume(&self, run_dir: &Path) -> Result<()> {
        let Some(saved) = Self::read(run_dir)? else { return Ok(()) };
        let changes = saved.changes_to(self);
        if !changes.is_empty() {
            bail!(
                "{} was started with another setup than the one given now, and its checkpoints and records belong to that one: {}. \
                 Resume with the setup recorded in {}, or start a new run in another output_dir (or `--overwrite` to discard this one)",
                run_dir.display(),
                changes.join("; "),
                run_dir.join(FILE).display()
            );
        }
        Ok(())
    }

    /// What differs from `saved` (this) to `now`, one item per change.
    fn changes_to(&self, now: &Self) -> Vec<String> {
        let mut out = Vec::new();
        if self.strategy != now.strategy {
            out.push(format!("strategy: {} -> {}", self.strategy, now.strategy));
        }
        if self.precision != now.precision {
            out.push(format!("train.precision: {} -> {}", self.precision.name(), now.precision.name()));
        }
        out.extend(self.model.changes_to(&now.model));
        if self.labels != now.labels {
            out.push(format!("labels: {} -> {}", self.labels.join(", "), now.labels.join(", ")));
        }
        let names = |c: &[CorpusPrint]| {
            let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
            if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
        };
        if names(&self.corpora) != names(&now.corpora) {
            out.push(format!("corpora: {} -> {}", names(&self.corpora), names(&now.corpora)));
        } else {
            for (a, b) in self.corpora.iter().zip(&now.corpora).filter(|(a, b)| a != b) {
                out.push(format!("corpus `{}`: its text changed ({} -> {} bytes)", a.name, a.bytes, b.bytes));
            }
        }
        out
    }
}

impl ModelPrint {
    fn changes_to(&self, now: &Self) -> Vec<String> {
        let fields = |m: &Self| {
            [
                ("family", m.family.clone()),
                ("vocab_size", m.vocab_size.to_string()),
                ("hidden_size", m.hidden_size.to_string()),
                ("num_hidden_layers", m.num_hidden_layers.to_string()),
                ("num_attention_heads", m.num_attention_heads.to_string()),
                ("intermediate_size", m.intermediate_size.to_string()),
                ("max_position_embeddings", m.max_position_embeddings.to_string()),
            ]
        };
        let mut out: Vec<String> = fields(self)
            .into_iter()
            .zip(fields(now))
            .filter(|((_, a), (_, b))| a != b)
            .map(|((key, a), (_, b))| format!("model: {key} {a} -> {b}"))
            .collect();
        if self.tokenizer_sha256 != now.tokenizer_sha256 {
            out.push("model: its tokenizer.json changed".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print() -> Fingerprint {
        Fingerprint {
            strategy: "mt-tartan".into(),
            precision: Precision::F32,
            model: ModelPrint {
                family: "bert".into(),
                vocab_size: 10,
                hidden_size: 32,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                intermediate_size: 128,
                max_position_embeddings: 64,
                tokenizer_sha256: "a".into(),
            },
            labels: vec!["x".into(), "y".into()],
            corpora: vec![CorpusPrint { name: "tapt".into(), bytes: 5, sha256: "b".into() }],
        }
    }

    #[test]
    fn each_change_is_named_and_an_unchanged_setup_has_none() {
        let saved = print();
        assert!(saved.changes_to(&print()).is_empty());
        let mut now = print();
        now.strategy = "meta-tartan".into();
        now.precision = Precision::Bf16;
        now.model.num_hidden_layers = 3;
        now.model.tokenizer_sha256 = "c".into();
        now.labels.push("z".into());
        now.corpora[0].sha256 = "d".into();
        assert_eq!(
            saved.changes_to(&now),
            [
                "strategy: mt-tartan -> meta-tartan",
                "train.precision: f32 -> bf16",
                "model: num_hidden_layers 2 -> 3",
                "model: its tokenizer.json changed",
                "labels: x, y -> x, y, z",
                "corpus `tapt`: its text changed (5 -> 5 bytes)",
            ]
        );
        now.corpora.clear();
        assert_eq!(saved.changes_to(&now).last().unwrap(), "corpora: tapt -> (none)");
    }

    #[test]
    fn a_fingerprint_from_before_precision_reads_as_f32() {
        let mut old = serde_json::to_value(print()).unwrap();
        old.as_object_mut().unwrap().remove("precision");
        let read: Fingerprint = serde_json::from_value(old).unwrap();
        assert_eq!(read, print());
    }
}

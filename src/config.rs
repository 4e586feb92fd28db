//! The run configuration: one TOML file, `--set key=value` overrides, every setting with one
//! default here. The resolved configuration is saved in each run folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::device::DeviceKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// End-task only.
    #[serde(rename = "finetune")]
    Finetune,
    /// MLM on the auxiliary corpora first (TAPT/DAPT/DAPT+TAPT, by which corpora are given),
    /// then end-task fine-tuning.
    #[serde(rename = "pretrain-finetune")]
    PretrainFinetune,
    /// End-task and auxiliary objectives together with fixed weights.
    #[serde(rename = "mt-tartan")]
    MtTartan,
    /// End-task and auxiliary objectives with weights learned from the dev gradient.
    #[serde(rename = "meta-tartan")]
    MetaTartan,
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// A folder in Hugging Face layout, or a Hub id.
    pub name: String,
    /// Tokens per end-task example, special tokens included.
    pub max_length: usize,
    /// Dropout of the classification head.
    pub head_dropout: f64,
    /// How the head's Linear(h, h) starts: `random` (the TARTAN reference's head), or `pooler`,
    /// copying the checkpoint's pretrained pooler when it has one (as
    /// `BertForSequenceClassification`). On all-MiniLM-L6-v2, whose pooler is unused by its
    /// training, `pooler` was worse (docs/RESULTS.md).
    pub head_init: HeadInit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadInit {
    Pooler,
    Random,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self { name: String::new(), max_length: 512, head_dropout: 0.1, head_init: HeadInit::Random }
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

/// An auxiliary corpus: a text file, one example per line, used with masked-LM.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuxCorpus {
    /// Names the objective in logs and plots (`tapt`, `dapt`, ...).
    pub name: String,
    pub file: PathBuf,
    /// Lines per batch; 0 means train.batch_size.
    pub batch_size: usize,
    /// Tokens per line (special tokens included); 0 means model.max_length.
    pub block_size: usize,
    pub mask_prob: f64,
    /// Fixed weight under mt-tartan; unset: 1/(1+K).
    pub weight: Option<f64>,
}

impl Default for AuxCorpus {
    fn default() -> Self {
        Self { name: String::new(), file: PathBuf::new(), batch_size: 0, block_size: 0, mask_prob: 0.15, weight: None }
    }
}

/// Continued masked-LM pre-training of strategy pretrain-finetune (TAPT, DAPT, DAPT+TAPT):
/// one phase per auxiliary corpus, in the order given, then fine-tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainSection {
    /// Optimizer steps per corpus; 0 means the end-task's fine-tuning budget.
    pub steps: usize,
    pub lr: f64,
}

impl Default for PretrainSection {
    fn default() -> Self {
        Self { steps: 0, lr: 1e-4 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetaSource {
    /// The dev split, as the reference code (dev then also selects the model).
    Dev,
    /// A held-out slice of train (`meta.holdout` examples), keeping dev clean for selection.
    TrainHoldout,
}

/// META-TARTAN's settings (reference values by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaSection {
    /// Learning rate of plain SGD on the task logits.
    pub lr: f64,
    /// Update the task weights every this many optimizer steps.
    pub update_every: usize,
    /// Examples the fresh dev head is fitted on (fixed for the run).
    pub dev_head_sample: usize,
    /// Examples in the batch whose loss gives the dev gradient.
    pub dev_batch: usize,
    pub dev_head_lr: f64,
    pub dev_head_weight_decay: f64,
    /// AdamW steps of the dev-head fit at most.
    pub dev_head_iters: usize,
    /// The fit stops when the loss changes by less than this.
    pub dev_head_tol: f64,
    pub source: MetaSource,
    /// Train examples held out when source = "train-holdout".
    pub holdout: usize,
}

impl Default for MetaSection {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            update_every: 1,
            dev_head_sample: 32,
            dev_batch: 64,
            dev_head_lr: 1e-3,
            dev_head_weight_decay: 0.1,
            dev_head_iters: 10,
            dev_head_tol: 1e-3,
            source: MetaSource::Dev,
            holdout: 256,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub batch_size: usize,
    pub grad_accum: usize,
    pub epochs: usize,
    /// Optimizer steps; 0 means `epochs` over the end-task's training set.
    pub max_steps: usize,
    /// Learning rate of the shared encoder.
    pub lr: f64,
    /// Learning rate of the heads.
    pub head_lr: f64,
    pub weight_decay: f64,
    pub head_weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Fraction of the optimizer steps spent warming up linearly; then linear decay to 0.
    pub warmup_ratio: f64,
    /// Maximum global gradient norm; 0 turns clipping off.
    pub clip_norm: f64,
    /// Clip the encoder's and the heads' gradients each to `clip_norm` (TARTAN reference),
    /// rather than all parameters together (Hugging Face Trainer).
    pub clip_separately: bool,
    /// Consecutive steps with a non-finite loss or gradient tolerated (each skipped) before
    /// the run stops.
    pub max_nonfinite_steps: usize,
    pub log_every: usize,
    /// Group examples of similar length into batches (less padding, faster); false: plain
    /// shuffled batches.
    pub bucket: bool,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            batch_size: 32,
            grad_accum: 1,
            epochs: 3,
            max_steps: 0,
            lr: 1e-4,
            head_lr: 1e-3,
            weight_decay: 0.01,
            head_weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-6,
            warmup_ratio: 0.06,
            clip_norm: 1.0,
            clip_separately: true,
            max_nonfinite_steps: 5,
            log_every: 10,
            bucket: true,
        }
    }
}

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

/// Checkpoints for resuming a run (`checkpoint-<step>/`, as Hugging Face Trainer names them).
/// `best/`, the best model by dev metric, is kept apart and always.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// Save every this many optimizer steps; 0 means at each evaluation.
    pub every_steps: usize,
    /// How many of the most recent checkpoints are kept.
    pub keep: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self { every_steps: 0, keep: 1 }
    }
}

/// The optional last stage of the TARTAN reference, after any strategy: the best model is
/// fine-tuned on the end-task alone at a small learning rate and replaces `best/` only if the
/// dev metric improves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinalFinetuneSection {
    /// Epochs over the end-task at most; 0 turns the stage off.
    pub epochs: usize,
    /// Learning rate of encoder and head.
    pub lr: f64,
    /// Stop after this many evaluations without a better dev metric.
    pub patience: usize,
}

impl Default for FinalFinetuneSection {
    fn default() -> Self {
        Self { epochs: 0, lr: 5e-6, patience: 3 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmupMode {
    /// Only when the checkpoint has no MLM head of its own.
    Auto,
    On,
    Off,
}

/// Fitting a fresh MLM head before its corpus trains the shared encoder. A random head's
/// loss is ~10 nats on every token: its gradients are large and tell the encoder nothing
/// about the text, and they pull it away from the end-task (docs/RESULTS.md). The head's
/// transform and bias are fitted on the phase's corpora with the encoder frozen (the decoder
/// stays tied to the word embeddings) until the loss plateaus or `max_steps` is spent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlmWarmupSection {
    /// `auto` (when the checkpoint had no MLM head), `on` or `off`.
    pub mode: WarmupMode,
    /// Head updates at most (one batch of every corpus each).
    pub max_steps: usize,
    /// AdamW learning rate of the head during the warm-up (constant).
    pub lr: f64,
    /// Steps over which the loss is averaged to judge the plateau.
    pub window: usize,
    /// Stop when a window's mean loss is less than this fraction below the previous window's.
    pub min_improvement: f64,
}

impl Default for MlmWarmupSection {
    fn default() -> Self {
        // Measured on ACL-ARC's task text with all-MiniLM-L6-v2 (docs/RESULTS.md): at lr 1e-3
        // the 30,522 biases move too slowly (loss 6.3 after 500 steps); at 1e-2 the loss falls
        // from ~10.4 to 6.1 by step 500 and flattens near 6.0.
        Self { mode: WarmupMode::Auto, max_steps: 1000, lr: 1e-2, window: 100, min_improvement: 0.02 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub strategy: Strategy,
    pub seed: u64,
    /// Where the run computes: `cpu` or `cuda` (the first GPU; a binary built with `--features
    /// cuda`). `--device` overrides it.
    pub device: DeviceKind,
    pub output_dir: PathBuf,
    pub model: ModelSection,
    pub task: TaskSection,
    pub train: TrainSection,
    pub eval: EvalSection,
    pub checkpoint: CheckpointSection,
    pub final_finetune: FinalFinetuneSection,
    pub mlm_warmup: MlmWarmupSection,
    /// Where tokenized corpora are cached; unset: `<output_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    pub aux: Vec<AuxCorpus>,
    pub pretrain: PretrainSection,
    pub meta: MetaSection,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Finetune,
            seed: 0,
            device: DeviceKind::Cpu,
            output_dir: PathBuf::from("runs/default"),
            model: ModelSection::default(),
            task: TaskSection::default(),
            train: TrainSection::default(),
            eval: EvalSection::default(),
            checkpoint: CheckpointSection::default(),
            final_finetune: FinalFinetuneSection::default(),
            mlm_warmup: MlmWarmupSection::default(),
            cache_dir: None,
            aux: vec![],
            pretrain: PretrainSection::default(),
            meta: MetaSection::default(),
        }
    }
}

impl RunConfig {
    /// Reads a TOML file, applies `key=value` overrides (dotted keys, TOML values; a bare word
    /// is taken as a string) and checks the result.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let mut doc: toml::Table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read config {}", p.display()))?;
                text.parse().map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            }
            None => toml::Table::new(),
        };
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        let where_ = path.map(|p| p.display().to_string()).unwrap_or_else(|| "--set".into());
        check_keys(&doc, &toml::Value::try_from(RunConfig::default())?, "", &where_)?;
        let config: RunConfig =
            toml::Value::Table(doc).try_into().map_err(|e| anyhow::anyhow!("{where_}: {}", e.to_string().trim()))?;
        config.validate()?;
        Ok(config)
    }

    /// This configuration with `key=value` overrides applied, as `--set` does on a file.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self> {
        let mut doc: toml::Table = self.to_toml().parse().context("the configuration serialises to TOML")?;
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        check_keys(&doc, &toml::Value::try_from(RunConfig::default())?, "", "--set")?;
        let config: RunConfig =
            toml::Value::Table(doc).try_into().map_err(|e| anyhow::anyhow!("--set: {}", e.to_string().trim()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        if self.model.name.is_empty() {
            bail!("model.name is not set: give a model folder or a Hub id");
        }
        if self.task.train.as_os_str().is_empty() {
            bail!("task.train is not set: give the end-task's training JSONL file");
        }
        for (name, v) in [
            ("train.batch_size", t.batch_size),
            ("train.grad_accum", t.grad_accum),
            ("eval.batch_size", self.eval.batch_size),
            ("model.max_length", self.model.max_length),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if t.epochs == 0 && t.max_steps == 0 {
            bail!("train.epochs and train.max_steps are both 0: nothing to train");
        }
        if !(0.0..1.0).contains(&t.warmup_ratio) {
            bail!("train.warmup_ratio must be in [0, 1), got {}", t.warmup_ratio);
        }
        for (name, v) in [("train.lr", t.lr), ("train.head_lr", t.head_lr)] {
            if !(v > 0.0 && v.is_finite()) {
                bail!("{name} must be positive, got {v}");
            }
        }
        if !(0.0..1.0).contains(&self.model.head_dropout) {
            bail!("model.head_dropout must be in [0, 1), got {}", self.model.head_dropout);
        }
        if self.checkpoint.keep == 0 {
            bail!("checkpoint.keep must be at least 1: the latest checkpoint is what a run resumes from");
        }
        let f = &self.final_finetune;
        if f.epochs > 0 {
            if self.task.dev.is_none() {
                bail!(
                    "final_finetune needs dev data to decide whether it improved: set task.dev or final_finetune.epochs = 0"
                );
            }
            if !(f.lr > 0.0 && f.lr.is_finite()) {
                bail!("final_finetune.lr must be positive, got {}", f.lr);
            }
        }
        let w = &self.mlm_warmup;
        if !(w.lr > 0.0 && w.lr.is_finite()) {
            bail!("mlm_warmup.lr must be positive, got {}", w.lr);
        }
        if w.window == 0 {
            bail!("mlm_warmup.window must be at least 1");
        }
        if !(0.0..1.0).contains(&w.min_improvement) {
            bail!("mlm_warmup.min_improvement must be in [0, 1), got {}", w.min_improvement);
        }
        if self.eval.patience > 0 && self.task.dev.is_none() {
            bail!("eval.patience needs dev data to watch: set task.dev or eval.patience = 0");
        }
        if self.strategy == Strategy::MetaTartan && self.meta.source == MetaSource::Dev && self.task.dev.is_none() {
            bail!(
                "strategy meta-tartan takes its meta-gradient from dev data: set task.dev, or meta.source = \"train-holdout\""
            );
        }
        if self.strategy != Strategy::Finetune && self.aux.is_empty() {
            bail!("strategy {} needs at least one [[aux]] corpus (name and file)", self.strategy_name());
        }
        let mut names = std::collections::HashSet::new();
        for (i, a) in self.aux.iter().enumerate() {
            if a.name.is_empty() || a.file.as_os_str().is_empty() {
                bail!("aux corpus {} needs a `name` and a `file`", i + 1);
            }
            if a.name == "end-task" || !names.insert(a.name.as_str()) {
                bail!("aux corpus name `{}` is used twice (or is reserved): give each corpus its own name", a.name);
            }
            if !(a.mask_prob > 0.0 && a.mask_prob < 1.0) {
                bail!("aux `{}`: mask_prob must be in (0, 1), got {}", a.name, a.mask_prob);
            }
            if let Some(w) = a.weight.filter(|w| !(*w >= 0.0 && w.is_finite())) {
                bail!("aux `{}`: weight must be a non-negative number, got {w}", a.name);
            }
        }
        let m = &self.meta;
        for (name, v) in [
            ("meta.update_every", m.update_every),
            ("meta.dev_head_sample", m.dev_head_sample),
            ("meta.dev_batch", m.dev_batch),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if m.source == MetaSource::TrainHoldout && m.holdout < 2 {
            bail!("meta.holdout must hold at least 2 examples when meta.source = \"train-holdout\"");
        }
        Ok(())
    }

    pub fn strategy_name(&self) -> String {
        toml::Value::try_from(self.strategy).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }

    /// Fixed task weights for mt-tartan: end-task first, then each corpus; 1/(1+K) unless given.
    pub fn fixed_weights(&self) -> Vec<f64> {
        let equal = 1.0 / (1 + self.aux.len()) as f64;
        std::iter::once(self.task.weight.unwrap_or(equal))
            .chain(self.aux.iter().map(|a| a.weight.unwrap_or(equal)))
            .collect()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.output_dir.join("cache"))
    }

    pub fn metric(&self) -> Metric {
        self.task.metric.unwrap_or(Metric::Accuracy)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration serialises")
    }
}

fn apply_override(doc: &mut toml::Table, item: &str) -> Result<()> {
    let (key, value) = item
        .split_once('=')
        .with_context(|| format!("--set `{item}`: expected key=value, e.g. --set train.lr=5e-5"))?;
    let value: toml::Value = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut table = doc;
    for part in &parts[..parts.len() - 1] {
        table = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("--set `{item}`: `{part}` is not a section"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Rejects keys the configuration does not have, suggesting the closest valid one.
fn check_keys(doc: &toml::Table, schema: &toml::Value, prefix: &str, where_: &str) -> Result<()> {
    let Some(schema) = schema.as_table() else { return Ok(()) };
    for (key, value) in doc {
        let full = format!("{prefix}{key}");
        match schema.get(key) {
            Some(sub) if sub.is_table() => {
                if let Some(t) = value.as_table() {
                    check_keys(t, sub, &format!("{full}."), where_)?;
                }
            }
            Some(sub) if sub.is_array() => {
                if let (Some(items), Some(item_schema)) =
                    (value.as_array(), ARRAY_ITEMS.iter().find(|(k, _)| *k == full).map(|(_, f)| f()))
                {
                    for item in items.iter().filter_map(|i| i.as_table()) {
                        check_keys(item, &item_schema, &format!("{full}."), where_)?;
                    }
                }
            }
            Some(_) => {}
            None if OPTIONAL_KEYS.contains(&full.as_str()) => {}
            None => {
                let candidates = schema
                    .keys()
                    .map(|k| format!("{prefix}{k}"))
                    .chain(OPTIONAL_KEYS.iter().filter(|k| k.starts_with(prefix)).map(|k| k.to_string()));
                let best = candidates.min_by_key(|c| strsim::levenshtein(c, &full));
                match best {
                    Some(b) => bail!(
                        "{where_}: unknown setting `{full}`; did you mean `{b}`? (docs/CONFIG.md lists every setting)"
                    ),
                    None => bail!("{where_}: unknown setting `{full}` (docs/CONFIG.md lists every setting)"),
                }
            }
        }
    }
    Ok(())
}

/// Settings whose default is "unset", so they are absent from the serialised defaults.
const OPTIONAL_KEYS: [&str; 6] = ["task.dev", "task.test", "task.metric", "task.weight", "cache_dir", "aux.weight"];

/// Arrays of tables and the schema of one item.
type ItemSchema = fn() -> toml::Value;
const ARRAY_ITEMS: [(&str, ItemSchema); 1] =
    [("aux", || toml::Value::try_from(AuxCorpus::default()).expect("serialisable"))];

/// Every setting as (dotted key, default rendered as TOML, or "unset"), for docs/CONFIG.md.
pub fn documented_settings() -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(&format!("{prefix}{k}."), v, out);
                }
            }
            toml::Value::Array(a) if a.is_empty() => {
                let key = prefix.trim_end_matches('.');
                if let Some((_, item)) = ARRAY_ITEMS.iter().find(|(k, _)| *k == key) {
                    walk(prefix, &item(), out);
                }
            }
            other => out.push((prefix.trim_end_matches('.').to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", &toml::Value::try_from(RunConfig::default()).expect("serialisable"), &mut out);
    out.extend(OPTIONAL_KEYS.iter().map(|k| (k.to_string(), "unset".to_string())));
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, sets: &[&str]) -> Result<RunConfig> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("run.toml");
        std::fs::write(&p, text)?;
        RunConfig::load(Some(&p), &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    const MIN: &str = "[model]\nname = \"m\"\n[task]\ntrain = \"t.jsonl\"\n";

    #[test]
    fn overrides_and_defaults() {
        let c = load(MIN, &["train.lr=5e-5", "seed=3", "task.metric=macro_f1", "output_dir=runs/x"]).unwrap();
        assert_eq!(c.train.lr, 5e-5);
        assert_eq!(c.seed, 3);
        assert_eq!(c.metric(), Metric::MacroF1);
        assert_eq!(c.output_dir, PathBuf::from("runs/x"));
        assert_eq!(c.train.batch_size, 32);
    }

    #[test]
    fn unknown_key_suggests_the_nearest() {
        let err = load(MIN, &["train.learning_rat=1"]).unwrap_err().to_string();
        assert!(err.contains("unknown setting `train.learning_rat`"), "{err}");
        let err = load(&format!("{MIN}[train]\nbach_size = 3\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("did you mean `train.batch_size`"), "{err}");
    }

    #[test]
    fn wrong_types_and_sizes_are_errors() {
        let err = load(MIN, &["train.batch_size=\"big\""]).unwrap_err().to_string();
        assert!(err.contains("batch_size"), "{err}");
        let err = load(MIN, &["train.batch_size=0"]).unwrap_err().to_string();
        assert!(err.contains("train.batch_size must be at least 1"), "{err}");
        let err = load(MIN, &["train.batch_size=-2"]).unwrap_err().to_string();
        assert!(err.contains("batch_size"), "{err}");
    }

    #[test]
    fn device_is_cpu_or_cuda() {
        assert_eq!(load(MIN, &[]).unwrap().device, DeviceKind::Cpu);
        assert_eq!(load(MIN, &["device=cuda"]).unwrap().device, DeviceKind::Cuda);
        let err = load(MIN, &["device=gpu"]).unwrap_err().to_string();
        assert!(err.contains("unknown variant `gpu`") && err.contains("`cuda`"), "{err}");
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = load(MIN, &["train.epochs=7"]).unwrap();
        let back: RunConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back.train.epochs, 7);
        assert_eq!(back.model.name, "m");
    }
}

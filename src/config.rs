//! The run configuration: one TOML file, `--set key=value` overrides, every setting with one
//! default. Each component owns its section (its fields, defaults and checks); this file puts
//! them together, reads and checks the whole, and adds the checks that span sections. It sits
//! with train/: only train/, report/ and cli/ import it. The resolved configuration is saved
//! in each run folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use crate::data::task::{Metric, TaskSection};
pub use crate::device::DeviceKind;
pub use crate::model::{HeadInit, ModelSection, Precision};
pub use crate::objectives::mlm::AuxCorpus;
pub use crate::train::checkpoints::CheckpointSection;
pub use crate::train::mlm_warmup::{MlmWarmupSection, WarmupMode};
pub use crate::train::plan::{FinalFinetuneSection, PretrainSection, TrainSection};
pub use crate::train::selection::EvalSection;
pub use crate::train::strategy::Strategy;
pub use crate::weighting::meta::{MetaSection, MetaSource};

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
    /// Corpora of the base config this run is without (absent from `aux`), as `tartan sweep
    /// --leave-one-out` sets it: the report compares the run with the one that has them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
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
            left_out: vec![],
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

    /// Every section's own checks, then those that span sections.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.task.validate()?;
        self.train.validate()?;
        self.eval.validate()?;
        self.checkpoint.validate()?;
        self.pretrain.validate()?;
        self.mlm_warmup.validate()?;
        self.meta.validate()?;
        for (i, a) in self.aux.iter().enumerate() {
            a.validate(i)?;
        }
        if self.final_finetune.epochs > 0 {
            self.final_finetune.validate()?;
            if self.task.dev.is_none() {
                bail!(
                    "final_finetune needs dev data to decide whether it improved: set task.dev or final_finetune.epochs = 0"
                );
            }
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
        for a in &self.aux {
            if a.name == "end-task" || !names.insert(a.name.as_str()) {
                bail!("aux corpus name `{}` is used twice (or is reserved): give each corpus its own name", a.name);
            }
        }
        if let Some(name) = self.left_out.iter().find(|n| names.contains(n.as_str())) {
            bail!("left_out names `{name}`, which [[aux]] also has: a corpus is either used or left out");
        }
        Ok(())
    }

    pub fn strategy_name(&self) -> String {
        self.strategy.name().to_string()
    }

    /// The strategy, and the corpora left out if any: a row of the comparison table.
    pub fn label(&self) -> String {
        match self.left_out.as_slice() {
            [] => self.strategy_name(),
            names => format!("{} without {}", self.strategy_name(), names.join(", ")),
        }
    }

    /// Fixed task weights for mt-tartan: end-task first, then each corpus; 1/(1+K) unless given.
    pub fn fixed_weights(&self) -> Vec<f64> {
        let equal = 1.0 / (1 + self.aux.len()) as f64;
        std::iter::once(self.task.weight.unwrap_or(equal))
            .chain(self.aux.iter().map(|a| a.weight.unwrap_or(equal)))
            .collect()
    }

    /// This configuration with every relative path made absolute against the working
    /// directory: what a run folder's `config.toml` holds, so that `--resume` works from any
    /// directory. `model.name` changes only if it names an existing folder (else it is a Hub
    /// id).
    pub fn with_absolute_paths(&self) -> Result<Self> {
        let abs = |p: &Path| -> Result<PathBuf> {
            if p.as_os_str().is_empty() {
                return Ok(p.to_path_buf());
            }
            std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))
        };
        let mut c = self.clone();
        c.output_dir = abs(&c.output_dir)?;
        c.cache_dir = c.cache_dir.as_deref().map(abs).transpose()?;
        c.task.train = abs(&c.task.train)?;
        c.task.dev = c.task.dev.as_deref().map(abs).transpose()?;
        c.task.test = c.task.test.as_deref().map(abs).transpose()?;
        for a in &mut c.aux {
            a.file = abs(&a.file)?;
        }
        if Path::new(&c.model.name).is_dir() {
            c.model.name = abs(Path::new(&c.model.name))?.display().to_string();
        }
        Ok(c)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.output_dir.join("cache"))
    }

    pub fn metric(&self) -> Metric {
        self.task.metric()
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
const OPTIONAL_KEYS: [&str; 7] =
    ["task.dev", "task.test", "task.metric", "task.weight", "cache_dir", "aux.weight", "left_out"];

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
                match ARRAY_ITEMS.iter().find(|(k, _)| *k == key) {
                    Some((_, item)) => walk(prefix, &item(), out),
                    None => out.push((key.to_string(), "[]".to_string())),
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
    fn precision_is_f32_or_bf16() {
        assert_eq!(load(MIN, &[]).unwrap().train.precision, Precision::F32);
        assert_eq!(load(MIN, &["train.precision=bf16"]).unwrap().train.precision, Precision::Bf16);
        let err = load(&format!("{MIN}[train]\nprecision = \"fp16\"\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("unknown variant `fp16`") && err.contains("`f32`") && err.contains("`bf16`"), "{err}");
        assert!(err.contains("train.precision"), "the error names the key: {err}");
    }

    #[test]
    fn absolute_paths_resolve_against_the_working_directory_and_hub_ids_stay() {
        let c = load(MIN, &["output_dir=runs/x", "aux=[{name = \"a\", file = \"a.txt\"}]", "model.name=src"]).unwrap();
        let abs = c.with_absolute_paths().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(abs.output_dir, cwd.join("runs/x"));
        assert_eq!(abs.task.train, cwd.join("t.jsonl"));
        assert_eq!(abs.aux[0].file, cwd.join("a.txt"));
        assert_eq!(abs.model.name, cwd.join("src").display().to_string());
        assert_eq!(load(MIN, &[]).unwrap().with_absolute_paths().unwrap().model.name, "m");
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = load(MIN, &["train.epochs=7"]).unwrap();
        let back: RunConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back.train.epochs, 7);
        assert_eq!(back.model.name, "m");
    }
}

//! `tartan demo`: the comparison of fine-tuning, MT-TARTAN and META-TARTAN on a synthetic task
//! that needs no download (a word-level tokenizer and a small BERT are built on the spot), or,
//! with `--model` and `--task`, on real data.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use crate::config::{AuxCorpus, Metric, RunConfig, Strategy};
use crate::data::synthetic::{generate, word_level_tokenizer, write_jsonl};
use crate::device::DeviceKind;
use crate::model::{Bert, MlmHead, ModelConfig};
use crate::train::records::RunResult;
use crate::train::saved_model::save_pretrained;
use crate::train::strategy::Start;

#[derive(Args)]
pub struct DemoArgs {
    /// Folder for the data, the model and the three runs.
    #[arg(long, default_value = "runs/demo")]
    pub output: PathBuf,
    /// Seeds the synthetic task, the model and the runs (docs/RESULTS.md has seeds 0-19).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A real model (folder or Hub id) instead of the synthetic one; needs --task.
    #[arg(long, requires = "task")]
    pub model: Option<String>,
    /// A task folder with train/dev/test.jsonl, train.txt (TAPT) and optionally
    /// domain.1xTAPT.txt (DAPT), as in ../shared/datasets/<task>.
    #[arg(long, requires = "model")]
    pub task: Option<PathBuf>,
    /// Optimizer steps per run on real data.
    #[arg(long, default_value_t = 60, value_parser = super::at_least_one)]
    pub steps: usize,
    /// Selection metric on real data.
    #[arg(long, value_parser = ["accuracy", "macro_f1", "micro_f1"], default_value = "accuracy")]
    pub metric: String,
    /// Override a setting of every run, e.g. `--set meta.lr=1` (repeatable; docs/CONFIG.md).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where the runs compute.
    #[arg(long, value_enum)]
    pub device: Option<DeviceKind>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let mut base = match (&args.model, &args.task) {
        (Some(model), Some(task)) => real_config(model, task, &args)?,
        _ => synthetic_config(args.seed, &args.output)?,
    }
    .with_overrides(&args.set)?;
    base.device = args.device.unwrap_or(base.device);
    let rows = [Strategy::Finetune, Strategy::MtTartan, Strategy::MetaTartan]
        .into_iter()
        .map(|strategy| run_strategy(&base, strategy, &args.output))
        .collect::<Result<Vec<_>>>()?;
    print_table(&rows, base.metric());
    println!("\nCharts: {}/<strategy>/weights.png and losses.png", args.output.display());
    Ok(())
}

/// One strategy's outcome in the comparison.
pub struct Row {
    pub strategy: String,
    pub result: RunResult,
    pub weights: Vec<TaskWeight>,
}

/// A task's weight at the end of the run and its mean over the run.
pub struct TaskWeight {
    pub task: String,
    pub last: f64,
    pub mean: f64,
}

/// Trains `base` with `strategy` (fine-tuning without the corpora) into `output/<strategy>`.
pub fn run_strategy(base: &RunConfig, strategy: Strategy, output: &Path) -> Result<Row> {
    let mut cfg = base.clone();
    cfg.strategy = strategy;
    if strategy == Strategy::Finetune {
        cfg.aux.clear();
    }
    cfg.output_dir = output.join(cfg.strategy_name());
    cfg.validate()?;
    eprintln!("== {} ==", cfg.strategy_name());
    let result = crate::train::strategy::run(&cfg, Start::Overwrite)?;
    Ok(Row { strategy: cfg.strategy_name(), result, weights: final_weights(&cfg.output_dir) })
}

/// Writes the synthetic task, its tokenizer and a fresh tiny BERT under `output`, and returns
/// the demo's run settings for them.
pub fn synthetic_config(seed: u64, output: &Path) -> Result<RunConfig> {
    let data = output.join("data");
    std::fs::create_dir_all(&data)?;
    let task = generate(seed, 400, 200, 400);
    write_jsonl(&data.join("train.jsonl"), &task.train)?;
    write_jsonl(&data.join("dev.jsonl"), &task.dev)?;
    write_jsonl(&data.join("test.jsonl"), &task.test)?;
    std::fs::write(data.join("related.txt"), task.related.join("\n"))?;
    std::fs::write(data.join("noise.txt"), task.noise.join("\n"))?;
    // "Training" a word-level tokenizer is collecting the words of the text it will see.
    let texts = task
        .train
        .iter()
        .chain(&task.dev)
        .chain(&task.test)
        .map(|e| e.text.as_str())
        .chain(task.related.iter().map(String::as_str))
        .chain(task.noise.iter().map(String::as_str));
    let words: BTreeSet<&str> = texts.flat_map(str::split_whitespace).collect();
    let words: Vec<String> = words.into_iter().map(String::from).collect();
    let tokenizer = word_level_tokenizer(&words)?;
    let config = ModelConfig::tiny_bert(tokenizer.vocab_size(), 32, 2, 4, 64);
    // Built on the CPU to be saved; the runs load it on their device.
    let device = crate::device::resolve(DeviceKind::Cpu)?;
    let model = output.join("model");
    let (encoder, mlm) = (Bert::new(&config, seed, &device), MlmHead::new(&config, seed, &device));
    save_pretrained(&model, &encoder, Some(&mlm), &config, &tokenizer, None)?;
    eprintln!(
        "synthetic task: 4 topics, {} words; a 2-layer BERT (hidden 32) from scratch in {}",
        words.len(),
        model.display()
    );

    let mut cfg = RunConfig { seed, ..RunConfig::default() };
    cfg.model.name = model.display().to_string();
    cfg.model.max_length = 32;
    cfg.task.train = data.join("train.jsonl");
    cfg.task.dev = Some(data.join("dev.jsonl"));
    cfg.task.test = Some(data.join("test.jsonl"));
    cfg.train.batch_size = 32;
    cfg.train.epochs = 10;
    cfg.train.lr = 5e-3;
    cfg.train.head_lr = 5e-3;
    cfg.train.log_every = 5;
    cfg.eval.every_steps = 25;
    cfg.eval.batch_size = 100;
    // The corpus ranking rests on a cosine difference of about 0.03 per step. In this tiny
    // model the token-type row, added to every token, held 20-50% of each gradient's squared
    // norm and swung each cosine by about 0.2 per step, so it is left out; the whole dev split
    // (200) as the dev batch and batches of 32 quiet the rest (docs/RESULTS.md, "The
    // synthetic demo": related at least 0.05 above noise in 19 of seeds 0-19, from 7 of 0-9).
    cfg.meta.exclude_from_cosine = vec!["embeddings.token_type_embeddings".into()];
    cfg.meta.dev_batch = 200;
    cfg.aux = vec![aux("related", data.join("related.txt")), aux("noise", data.join("noise.txt"))];
    Ok(cfg)
}

fn real_config(model: &str, task: &Path, args: &DemoArgs) -> Result<RunConfig> {
    let mut cfg = RunConfig { seed: args.seed, ..RunConfig::default() };
    cfg.model.name = model.to_string();
    cfg.model.max_length = 128;
    cfg.task.train = task.join("train.jsonl");
    cfg.task.dev = Some(task.join("dev.jsonl"));
    cfg.task.test = Some(task.join("test.jsonl"));
    cfg.task.metric = Some(match args.metric.as_str() {
        "macro_f1" => Metric::MacroF1,
        "micro_f1" => Metric::MicroF1,
        _ => Metric::Accuracy,
    });
    cfg.train.batch_size = 16;
    cfg.train.max_steps = args.steps;
    cfg.eval.every_steps = (args.steps / 3).max(1);
    cfg.aux = vec![aux("tapt", task.join("train.txt"))];
    if task.join("domain.1xTAPT.txt").exists() {
        cfg.aux.push(aux("dapt", task.join("domain.1xTAPT.txt")));
    }
    Ok(cfg)
}

fn aux(name: &str, file: PathBuf) -> AuxCorpus {
    AuxCorpus { name: name.into(), file, ..AuxCorpus::default() }
}

/// Per task: the final weight and the mean weight over the run.
fn final_weights(run: &Path) -> Vec<TaskWeight> {
    let Ok(log) = crate::train::charts::RunLog::read(run) else { return vec![] };
    log.train
        .iter()
        .filter_map(|(k, v)| {
            let mean = v.iter().map(|p| p.1).sum::<f64>() / v.len().max(1) as f64;
            Some(TaskWeight { task: k.strip_prefix("weight.")?.to_string(), last: v.last()?.1, mean })
        })
        .collect()
}

fn print_table(rows: &[Row], metric: Metric) {
    let key = metric.key();
    println!("\n| strategy | dev {key} | test {key} | task weights: final (mean over the run) |");
    println!("| --- | --- | --- | --- |");
    for Row { strategy, result, weights } in rows {
        let score = |s: &Option<crate::train::metrics::Scores>| {
            s.as_ref().map_or("-".into(), |s| format!("{:.3}", s.get(metric)))
        };
        let w: Vec<String> = weights.iter().map(|w| format!("{} {:.3} ({:.3})", w.task, w.last, w.mean)).collect();
        println!("| {strategy} | {} | {} | {} |", score(&result.dev), score(&result.test), w.join(", "));
    }
}

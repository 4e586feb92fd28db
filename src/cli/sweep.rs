//! `tartan sweep`: every (task config, strategy, seed) combination, one run folder each;
//! finished runs are skipped and interrupted ones resumed; then the comparison `tartan report
//! --overview` writes (`report.md`, `results.md/.csv/.json`, the charts across runs).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use crate::config::{DeviceKind, RunConfig, Strategy};
use crate::report::comparison::table_markdown;
use crate::report::summary::{Detail, RunSummary, write_report};
use crate::runlock::RunFolderInUse;
use crate::train::records::copy_run_records;
use crate::train::run_folder::held_run;
use crate::train::strategy::Start;

#[derive(Args)]
pub struct SweepArgs {
    /// One base config per task (its [[aux]] corpora serve the TARTAN strategies).
    #[arg(long = "config", required = true)]
    pub configs: Vec<PathBuf>,
    #[arg(long, value_delimiter = ',', default_value = "finetune,mt-tartan,meta-tartan")]
    pub strategies: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    pub seeds: Vec<u64>,
    /// Overrides applied to every run, e.g. `--set train.max_steps=50`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[arg(long, default_value = "runs/sweep")]
    pub output: PathBuf,
    /// Do every config and strategy of a seed before the next seed (a partial sweep then has
    /// whole rows of the table).
    #[arg(long)]
    pub seed_major: bool,
    /// A folder (committed, say under docs/) that keeps each finished run's records
    /// (`config.toml`, `results.json`, `metrics.jsonl`, no weights): runs found there count as
    /// finished, so a sweep resumes on a machine that no longer has its run folders.
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Where to compute; overrides the configs' `device`.
    #[arg(long, value_enum)]
    pub device: Option<DeviceKind>,
    /// Also run each strategy but finetune once without each [[aux]] corpus of a config with
    /// two or more, in `<task>/<strategy>-without-<corpus>/seed<N>`, so `tartan report` shows
    /// each corpus' score with and without it (with one corpus, finetune is the run without).
    #[arg(long)]
    pub leave_one_out: bool,
}

pub fn run(args: SweepArgs) -> Result<()> {
    crate::cli::train::install_ctrlc();
    let mut runs = Vec::new();
    let mut pending = Vec::new();
    for cfg in run_configs(&args)? {
        let dir = &cfg.output_dir;
        let name = dir.strip_prefix(&args.output).unwrap_or(dir).to_path_buf();
        if let Some(archive) = &args.archive
            && !dir.join("results.json").exists()
            && archive.join(&name).join("results.json").exists()
        {
            tracing::info!(
                "{} is finished in the archive {}; restoring its records",
                name.display(),
                archive.display()
            );
            copy_run_records(&archive.join(&name), dir)?;
        }
        if dir.join("results.json").exists() {
            tracing::info!("{} is finished; skipping it", dir.display());
        } else {
            tracing::info!("== {} ==", name.display());
            let start = if held_run(dir)?.is_some() { Start::Resume } else { Start::Fresh };
            match crate::train::strategy::run(&cfg, start) {
                Ok(_) => {}
                // Several sweeps over one grid share it out: each takes the runs no other holds.
                Err(e) if e.downcast_ref::<RunFolderInUse>().is_some() => {
                    tracing::info!("{} is in progress in another process; skipping it", dir.display());
                    pending.push(dir.clone());
                    continue;
                }
                Err(e) => return Err(e.context(format!("run {}", dir.display()))),
            }
        }
        if let Some(archive) = &args.archive {
            copy_run_records(dir, &archive.join(&name))?;
        }
        runs.push(RunSummary::read(dir)?);
    }
    let report = write_report(&runs, &args.output, Detail::Overview)?;
    println!("{}\nThe comparison with its charts: {}", table_markdown(&runs), report.display());
    if !pending.is_empty() {
        println!(
            "{} runs were still in progress in other processes; run the sweep again once they finish for the full table",
            pending.len()
        );
    }
    Ok(())
}

/// The runs in the order they are done: per config, strategy, then seed; with `--seed-major`,
/// every config and strategy of the first seed before the next seed.
fn grid(args: &SweepArgs) -> Vec<(&PathBuf, &str, u64)> {
    let mut out = Vec::new();
    for config in &args.configs {
        for strategy in &args.strategies {
            for &seed in &args.seeds {
                out.push((config, strategy.as_str(), seed));
            }
        }
    }
    if args.seed_major {
        // A stable sort keeps the config and strategy order within a seed.
        out.sort_by_key(|r| args.seeds.iter().position(|s| *s == r.2));
    }
    out
}

/// Every run's configuration, in the order of `grid`; with `--leave-one-out`, each run of a
/// strategy with several corpora is followed by its runs without one of them.
fn run_configs(args: &SweepArgs) -> Result<Vec<RunConfig>> {
    let mut out = Vec::new();
    for (config, strategy, seed) in grid(args) {
        let cfg = run_config(args, config, strategy, seed)?;
        let variants = if args.leave_one_out && cfg.strategy != Strategy::Finetune && cfg.aux.len() > 1 {
            cfg.aux.iter().map(|a| without(args, &cfg, &a.name)).collect::<Result<Vec<_>>>()?
        } else {
            vec![]
        };
        out.push(cfg);
        out.extend(variants);
    }
    Ok(out)
}

/// One run's configuration: the base config with the strategy and seed set, in
/// `<output>/<task>/<strategy>/seed<N>`.
fn run_config(args: &SweepArgs, config: &Path, strategy: &str, seed: u64) -> Result<RunConfig> {
    let mut sets = args.set.clone();
    sets.push(format!("strategy=\"{strategy}\""));
    sets.push(format!("seed={seed}"));
    let mut cfg = RunConfig::load(Some(config), &sets)?;
    if cfg.strategy == Strategy::Finetune {
        cfg.aux.clear();
    }
    cfg.device = args.device.unwrap_or(cfg.device);
    cfg.output_dir = args.output.join(cfg.task.name()).join(strategy).join(format!("seed{seed}"));
    cfg.validate()?;
    Ok(cfg)
}

/// `cfg` without its corpus `name`, in `<output>/<task>/<strategy>-without-<name>/seed<N>`.
fn without(args: &SweepArgs, cfg: &RunConfig, name: &str) -> Result<RunConfig> {
    let mut variant = cfg.clone();
    variant.aux.retain(|a| a.name != name);
    variant.left_out.push(name.to_string());
    let folder = format!("{}-without-{name}", cfg.strategy_name());
    variant.output_dir = args.output.join(cfg.task.name()).join(folder).join(format!("seed{}", cfg.seed));
    variant.validate()?;
    Ok(variant)
}

//! `tartan sweep`: every (task config, strategy, seed) combination, one run folder each;
//! finished runs are skipped and interrupted ones resumed; then the results table as Markdown,
//! CSV and JSON.

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::config::{RunConfig, Strategy};
use crate::device::DeviceKind;
use crate::runlock::RunFolderInUse;
use crate::report::summary::{RunSummary, mean_std, table, table_markdown};
use crate::train::fsutil::write_atomic;

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
    /// Where to compute; overrides the configs' `device`.
    #[arg(long, value_enum)]
    pub device: Option<DeviceKind>,
}

pub fn run(args: SweepArgs) -> Result<()> {
    crate::cli::train::install_ctrlc();
    let mut runs = Vec::new();
    let mut pending = Vec::new();
    for config in &args.configs {
        for strategy in &args.strategies {
            for seed in &args.seeds {
                let mut sets = args.set.clone();
                sets.push(format!("strategy=\"{strategy}\""));
                sets.push(format!("seed={seed}"));
                let mut cfg = RunConfig::load(Some(config), &sets)?;
                if cfg.strategy == Strategy::Finetune {
                    cfg.aux.clear();
                }
                let task = cfg
                    .task
                    .train
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "task".into());
                cfg.device = args.device.unwrap_or(cfg.device);
                cfg.output_dir = args.output.join(&task).join(strategy).join(format!("seed{seed}"));
                cfg.validate()?;
                if cfg.output_dir.join("results.json").exists() {
                    tracing::info!("{} is finished; skipping it", cfg.output_dir.display());
                } else {
                    tracing::info!("== {task} / {strategy} / seed {seed} ==");
                    let resume = cfg.output_dir.join("config.toml").exists();
                    match crate::train::strategy::run(&cfg, resume) {
                        Ok(_) => {}
                        // Several sweeps over one grid share it out: each takes the runs no
                        // other one holds.
                        Err(e) if e.downcast_ref::<RunFolderInUse>().is_some() => {
                            tracing::info!("{} is in progress in another process; skipping it", cfg.output_dir.display());
                            pending.push(cfg.output_dir.clone());
                            continue;
                        }
                        Err(e) => return Err(e.context(format!("run {}", cfg.output_dir.display()))),
                    }
                }
                runs.push(RunSummary::read(&cfg.output_dir)?);
            }
        }
    }
    let md = table_markdown(&runs);
    write_atomic(&args.output.join("results.md"), md.as_bytes())?;
    let mut csv = String::from("strategy,task,split,mean,std,n,values\n");
    let mut json = serde_json::Map::new();
    for ((strategy, task), (dev, test)) in table(&runs) {
        for (split, values) in [("dev", &dev), ("test", &test)] {
            let (mean, std) = if values.is_empty() { (f64::NAN, f64::NAN) } else { mean_std(values) };
            let list: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
            let _ = writeln!(csv, "{strategy},{task},{split},{mean:.2},{std:.2},{},{}", values.len(), list.join(";"));
            json.insert(
                format!("{strategy}/{task}/{split}"),
                serde_json::json!({"mean": mean, "std": std, "values": values}),
            );
        }
    }
    write_atomic(&args.output.join("results.csv"), csv.as_bytes())?;
    write_atomic(&args.output.join("results.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!("{md}");
    if !pending.is_empty() {
        println!("{} runs were still in progress in other processes; run the sweep again once they finish for the full table", pending.len());
    }
    Ok(())
}

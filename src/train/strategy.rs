//! Runs a strategy: its masked-LM phases (pretrain-finetune), then the main phase.

use anyhow::{Result, bail};

use super::trainer::{Phase, RunResult, Trainer};
use crate::config::{RunConfig, Strategy};

/// Trains every phase of `cfg`'s strategy; with `resume`, finished phases are skipped and an
/// interrupted one continues from its checkpoint.
pub fn run(cfg: &RunConfig, resume: bool) -> Result<RunResult> {
    if resume && !cfg.output_dir.join("config.toml").exists() {
        bail!("{} is not a run folder (no config.toml) to resume", cfg.output_dir.display());
    }
    let mut phases: Vec<Phase> = Vec::new();
    if cfg.strategy == Strategy::PretrainFinetune {
        phases.extend((0..cfg.aux.len()).map(Phase::Pretrain));
    }
    phases.push(Phase::Main);
    let mut last = None;
    for phase in phases {
        let done = phase.run_dir(cfg).join("results.json");
        if resume && phase != Phase::Main && done.exists() {
            tracing::info!("{} is finished; skipping it", phase.run_dir(cfg).display());
            continue;
        }
        let mut trainer = Trainer::new(cfg.clone(), phase, resume)?;
        tracing::info!("{phase:?}: {} optimizer steps into {}", trainer.total_steps(), trainer.run_dir().display());
        last = Some(trainer.run()?);
    }
    Ok(last.expect("the main phase always runs"))
}

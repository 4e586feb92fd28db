//! Runs a strategy: its masked-LM phases (pretrain-finetune), the main phase, and the optional
//! final end-task-only stage.

use anyhow::{Result, bail};

use super::fsutil::write_atomic;
use super::trainer::{Phase, RunResult, Trainer};
use crate::config::{RunConfig, Strategy};
use crate::runlock::RunLock;

/// Trains every phase of `cfg`'s strategy and writes `results.json`, which marks the run
/// finished; with `resume`, finished phases are skipped and an interrupted one continues from
/// its checkpoint.
pub fn run(cfg: &RunConfig, resume: bool) -> Result<RunResult> {
    if resume && !cfg.output_dir.join("config.toml").exists() {
        bail!("{} is not a run folder (no config.toml) to resume", cfg.output_dir.display());
    }
    let _lock = RunLock::acquire(&cfg.output_dir)?;
    if cfg.strategy == Strategy::PretrainFinetune {
        for phase in (0..cfg.aux.len()).map(Phase::Pretrain) {
            if resume && phase.run_dir(cfg).join("results.json").exists() {
                tracing::info!("{} is finished; skipping it", phase.run_dir(cfg).display());
                continue;
            }
            run_phase(cfg, phase, resume, None)?;
        }
    }
    let mut result = run_phase(cfg, Phase::Main, resume, None)?;
    if cfg.final_finetune.epochs > 0 {
        let baseline = result.dev.as_ref().map(|s| s.get(cfg.metric()));
        let last = run_phase(cfg, Phase::FinalFinetune, resume, baseline)?;
        if last.best_step.is_some() {
            tracing::info!("the final fine-tuning stage improved dev {}: its model is now best/", cfg.metric().key());
            result.dev = last.dev.clone();
            result.test = last.test.clone();
        } else {
            tracing::info!("the final fine-tuning stage did not improve dev {}: best/ is kept", cfg.metric().key());
        }
        result.train_seconds += last.train_seconds;
        result.final_finetune = Some(Box::new(last));
    }
    write_atomic(&cfg.output_dir.join("results.json"), serde_json::to_string_pretty(&result)?.as_bytes())?;
    Ok(result)
}

fn run_phase(cfg: &RunConfig, phase: Phase, resume: bool, baseline: Option<f64>) -> Result<RunResult> {
    let mut trainer = Trainer::new(cfg.clone(), phase, resume)?;
    if phase == Phase::FinalFinetune {
        trainer.set_baseline(baseline);
    }
    tracing::info!("{phase:?}: {} optimizer steps into {}", trainer.total_steps(), trainer.run_dir().display());
    trainer.run()
}

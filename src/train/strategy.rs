//! Runs a strategy: its masked-LM phases (pretrain-finetune), the main phase, and the optional
//! final end-task-only stage.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;
use super::plan::{Phase, run_dir};
use super::records::RunResult;
use super::run_folder::{clear_run, refuse_held_run};
use super::trainer::Trainer;
use crate::config::RunConfig;
use crate::fsutil::write_atomic;
use crate::runlock::RunLock;

/// Declared in the paper's order, which tables sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

impl Strategy {
    /// The name used in configs, folders and tables (`finetune`, `meta-tartan`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Finetune => "finetune",
            Strategy::PretrainFinetune => "pretrain-finetune",
            Strategy::MtTartan => "mt-tartan",
            Strategy::MetaTartan => "meta-tartan",
        }
    }
}

/// How a run starts in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run; a folder that already holds one is refused.
    Fresh,
    /// Continues the run in the folder: finished phases are skipped, an interrupted one
    /// continues from its checkpoint. Its setup must be the one it started with.
    Resume,
    /// Discards the run in the folder (tartan's files only) and starts a new one.
    Overwrite,
}

/// Trains every phase of `cfg`'s strategy and writes `results.json`, which marks the run
/// finished. The run folder is locked for the whole run; its `config.toml` and
/// `fingerprint.json` are written once the first phase is set up.
pub fn run(cfg: &RunConfig, start: Start) -> Result<RunResult> {
    let cfg = &cfg.with_absolute_paths()?;
    let _lock = RunLock::acquire(&cfg.output_dir)?;
    match start {
        Start::Fresh => refuse_held_run(&cfg.output_dir)?,
        Start::Overwrite => clear_run(&cfg.output_dir)?,
        Start::Resume => {}
    }
    let print = Fingerprint::of(cfg)?;
    if start == Start::Resume {
        print.check_resume(&cfg.output_dir)?;
    }
    let resume = start == Start::Resume;
    // The run's training time is every phase's.
    let mut pretrain_seconds = 0.0;
    if cfg.strategy == Strategy::PretrainFinetune {
        for phase in (0..cfg.aux.len()).map(Phase::Pretrain) {
            let dir = run_dir(cfg, phase);
            if resume && dir.join("results.json").exists() {
                tracing::info!("{} is finished; skipping it", dir.display());
                pretrain_seconds += RunResult::read(&dir)?.train_seconds;
                continue;
            }
            pretrain_seconds += run_phase(cfg, phase, resume, None, &print)?.train_seconds;
        }
    }
    let mut result = run_phase(cfg, Phase::Main, resume, None, &print)?;
    result.train_seconds += pretrain_seconds;
    if cfg.final_finetune.epochs > 0 {
        let baseline = result.dev.as_ref().map(|s| s.get(cfg.metric()));
        let last = run_phase(cfg, Phase::FinalFinetune, resume, baseline, &print)?;
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
    result.write(&cfg.output_dir)?;
    Ok(result)
}

fn run_phase(
    cfg: &RunConfig,
    phase: Phase,
    resume: bool,
    baseline: Option<f64>,
    print: &Fingerprint,
) -> Result<RunResult> {
    let mut trainer = Trainer::new(cfg.clone(), phase, resume)?;
    // Recorded only once a phase could be set up, so a run that fails to start (a bad corpus,
    // say) leaves no run behind to refuse or resume.
    write_atomic(&cfg.output_dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    print.write(&cfg.output_dir)?;
    if phase == Phase::FinalFinetune {
        trainer.set_baseline(baseline);
    }
    tracing::info!("{phase:?}: {} optimizer steps into {}", trainer.total_steps(), trainer.run_dir().display());
    trainer.run()
}

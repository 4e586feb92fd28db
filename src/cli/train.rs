use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::config::RunConfig;
use crate::device::DeviceKind;
use crate::train::strategy::Start;

#[derive(Args)]
pub struct TrainArgs {
    /// Run configuration (TOML); see docs/CONFIG.md.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override a setting, e.g. `--set train.lr=5e-5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue the run in this folder from its last checkpoint, with its saved config.toml
    /// (and any --set); it trains in this folder wherever it was moved or copied.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Where to compute; overrides the config's `device`.
    #[arg(long, value_enum)]
    pub device: Option<DeviceKind>,
    /// Discard the run in output_dir, if there is one (tartan's files only), and start anew.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let (mut cfg, start) = match &args.resume {
        Some(dir) => (resumed_config(dir, &args.set)?, Start::Resume),
        None => {
            let start = if args.overwrite { Start::Overwrite } else { Start::Fresh };
            (RunConfig::load(args.config.as_deref(), &args.set)?, start)
        }
    };
    cfg.device = args.device.unwrap_or(cfg.device);
    install_ctrlc();
    let result = crate::train::strategy::run(&cfg, start)?;
    println!("{}", serde_json::to_string_pretty(&summary(&result))?);
    Ok(())
}

/// The saved configuration of the run in `dir`, with `sets` applied, training in `dir`.
fn resumed_config(dir: &std::path::Path, sets: &[String]) -> Result<RunConfig> {
    if sets.iter().any(|s| s.split('=').next().is_some_and(|k| k.trim() == "output_dir")) {
        bail!(
            "--resume {} trains in that folder: output_dir cannot be set. To continue the run elsewhere, copy the folder and resume the copy",
            dir.display()
        );
    }
    let saved = dir.join("config.toml");
    if !saved.is_file() {
        bail!(
            "{} is not a run folder to resume (it has no config.toml); give the output_dir of a run `tartan train` started",
            dir.display()
        );
    }
    let mut cfg = RunConfig::load(Some(&saved), sets)?;
    cfg.output_dir = dir.to_path_buf();
    Ok(cfg)
}

fn summary(r: &crate::train::records::RunResult) -> serde_json::Value {
    let pick = |s: &Option<crate::train::metrics::Scores>| {
        s.as_ref().map(|s| serde_json::json!({"accuracy": s.accuracy, "macro_f1": s.macro_f1, "micro_f1": s.micro_f1}))
    };
    let last = r.final_finetune.as_ref().map(|f| {
        serde_json::json!({"improved_dev": f.best_step.is_some(), "best_step": f.best_step, "steps": f.steps, "train_seconds": f.train_seconds})
    });
    serde_json::json!({"metric": r.metric, "best_step": r.best_step, "steps": r.steps, "train_seconds": r.train_seconds, "dev": pick(&r.dev), "test": pick(&r.test), "final_finetune": last})
}

/// Ctrl-C, SIGTERM (schedulers, `docker stop`) or SIGHUP (a closed terminal): the first saves a
/// checkpoint at the end of the current step and stops; a second exits at once.
pub fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if crate::train::stop_requested() {
            eprintln!("\nsecond interrupt: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt (Ctrl-C, SIGTERM or SIGHUP): saving a checkpoint after this step (interrupt again to exit at once)"
        );
        crate::train::request_stop();
    });
}

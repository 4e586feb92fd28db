use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::config::RunConfig;

#[derive(Args)]
pub struct TrainArgs {
    /// Run configuration (TOML); see docs/CONFIG.md.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override a setting, e.g. `--set train.lr=5e-5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue the run in this folder from its last checkpoint (uses its saved config.toml).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let (config_path, resume) = match &args.resume {
        Some(dir) => (Some(dir.join("config.toml")), true),
        None => (args.config.clone(), false),
    };
    let cfg = RunConfig::load(config_path.as_deref(), &args.set)?;
    install_ctrlc();
    let result = crate::train::strategy::run(&cfg, resume)?;
    println!("{}", serde_json::to_string_pretty(&summary(&result))?);
    Ok(())
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

//! `tartan export RUN DEST`: a finished run's model (its `best/`) as a complete Hugging Face
//! `*ForSequenceClassification` folder. A `best/` written before the head moved into
//! `model.safetensors` comes out in the current layout.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use crate::train::saved_model::{load_model, save_model};

#[derive(Args)]
pub struct ExportArgs {
    /// A run folder (its `best/` is exported) or a saved model folder itself.
    pub run: PathBuf,
    /// Where the model goes; it must not exist, or hold an earlier export (replaced).
    pub dest: PathBuf,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let source = model_folder(&args.run)?;
    if args.dest.exists() && !args.dest.join("tartan.json").exists() {
        bail!(
            "{} exists and is not a model saved by tartan; choose a new folder (export never overwrites other files)",
            args.dest.display()
        );
    }
    if !args.run.join("results.json").exists() && args.run.join("config.toml").exists() {
        tracing::warn!(
            "{} has no results.json: the run is unfinished, exporting its best model so far",
            args.run.display()
        );
    }
    // Exporting copies weights: the CPU holds them whatever device trained the run.
    let device = crate::device::resolve(crate::device::DeviceKind::Cpu)?;
    let saved = load_model(&source, &device)?;
    save_model(&args.dest, &saved.model, &saved.pretrained, &saved.info)?;
    println!("{}", args.dest.display());
    Ok(())
}

/// The saved model of `run`: `run/best`, or `run` when it is one.
fn model_folder(run: &Path) -> Result<PathBuf> {
    if run.join("best").join("tartan.json").exists() {
        Ok(run.join("best"))
    } else if run.join("tartan.json").exists() {
        Ok(run.to_path_buf())
    } else {
        bail!(
            "{} is neither a run folder with a best/ model nor a saved model (no tartan.json); a run writes best/ at its first evaluation",
            run.display()
        )
    }
}

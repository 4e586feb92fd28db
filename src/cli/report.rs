use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::report::summary::{RunSummary, write_report};

#[derive(Args)]
pub struct ReportArgs {
    /// Finished run folders (each with config.toml and results.json).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The folder report.md is written into (created if missing).
    #[arg(long, default_value = "report")]
    pub output: PathBuf,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let runs: Vec<RunSummary> = args.runs.iter().map(|d| RunSummary::read(d)).collect::<Result<_>>()?;
    let path = write_report(&runs, &args.output)?;
    println!("{}", path.display());
    Ok(())
}

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::report::summary::{Detail, RunSummary, write_report};

#[derive(Args)]
pub struct ReportArgs {
    /// Run folders (config.toml and results.json; a run still training, without results.json,
    /// is reported from its metrics.jsonl so far and left out of the comparisons).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The folder report.md is written into (created if missing).
    #[arg(long, default_value = "report")]
    pub output: PathBuf,
    /// Only the comparison (tables, charts across runs, one line per run), without a section
    /// and charts per run: small enough to commit for a whole study.
    #[arg(long)]
    pub overview: bool,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let runs: Vec<RunSummary> = args.runs.iter().map(|d| RunSummary::read(d)).collect::<Result<_>>()?;
    let detail = if args.overview { Detail::Overview } else { Detail::PerRun };
    let path = write_report(&runs, &args.output, detail)?;
    println!("{}", path.display());
    Ok(())
}

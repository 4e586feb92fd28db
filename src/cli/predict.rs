use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::Args;

use crate::device::DeviceKind;
use crate::train::evaluate::{argmax, predict_probs};
use crate::train::saved_model::load_model;

#[derive(Args)]
pub struct PredictArgs {
    /// A model saved by `tartan train` (e.g. runs/x/best).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL with a `text` field per line; `-` or absent reads stdin.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Examples per batch.
    #[arg(long, default_value_t = 64, value_parser = super::at_least_one)]
    pub batch_size: usize,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let device = crate::device::resolve(args.device)?;
    let saved = load_model(&args.model, &device)?;
    let (name, reader): (String, Box<dyn BufRead>) = match args.input.as_deref() {
        None => ("stdin".into(), Box::new(std::io::stdin().lock())),
        Some(p) if p.as_os_str() == "-" => ("stdin".into(), Box::new(std::io::stdin().lock())),
        Some(p) => (
            p.display().to_string(),
            Box::new(std::io::BufReader::new(
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
            )),
        ),
    };
    let mut texts = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}:{}: cannot read the line (invalid UTF-8?)", i + 1))?;
        let line = line.trim_start_matches('\u{feff}');
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{name}:{}: not valid JSON", i + 1))?;
        match v.get("text").and_then(|t| t.as_str()) {
            Some(t) => texts.push(t.to_string()),
            None => bail!("{name}:{}: expected an object with a string `text`", i + 1),
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids = saved.pretrained.tokenizer.encode_batch(&refs, saved.info.max_length)?;
    let probs = predict_probs(&saved.model.valid(), &ids, args.batch_size, saved.pretrained.tokenizer.pad_id, &device);
    let mut out = std::io::stdout().lock();
    for p in probs {
        let label = saved.labels.name(argmax(&p));
        let by_label: serde_json::Map<String, serde_json::Value> =
            saved.labels.labels.iter().zip(&p).map(|(l, v)| (l.clone(), serde_json::json!(v))).collect();
        writeln!(out, "{}", serde_json::json!({"label": label, "probabilities": by_label}))?;
    }
    Ok(())
}

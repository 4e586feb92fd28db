//! `tartan bench`: timings of the training step, forward-only evaluation and META-TARTAN
//! steps on MiniLM with ChemProt batches. One workload per process, so the peak RSS it
//! reports (VmHWM) belongs to that workload alone.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::{AuxCorpus, RunConfig, Strategy};
use crate::data::batch::{BatchStream, labels_tensor};
use crate::data::corpus::Corpus;
use crate::data::masking::Masker;
use crate::data::read_jsonl;
use crate::loss::cross_entropy;
use crate::model::{ClassificationHead, EncoderInput, TartanModel};
use crate::optim::GradBuffer;
use crate::optim::{AdamW, AdamWConfig, Group, ParamGroups};
use crate::train::plan::Phase;
use crate::train::pretrained::Pretrained;
use crate::train::trainer::Trainer;

#[derive(Clone, Copy, ValueEnum)]
pub enum Workload {
    /// One fine-tune optimizer step (forward, backward, AdamW) on a 16 x 128 batch.
    Step,
    /// Forward pass without autodiff on a 16 x 128 batch.
    Forward,
    /// Training throughput over one epoch of ChemProt train (examples/s), batch 32, bucketed.
    Epoch,
    /// Evaluation throughput over ChemProt dev (examples/s), batch 64, no autodiff.
    Eval,
    /// One META-TARTAN optimizer step with `--aux` TAPT corpora (batches of 16).
    Meta,
    /// An auxiliary corpus of `--mb` megabytes (ChemProt's domain text repeated): tokenizing
    /// it into the cache, reopening the cache, and one epoch of masked batches of 16.
    Corpus,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub workload: Workload,
    #[arg(long, default_value = "../shared/models/all-MiniLM-L6-v2")]
    pub model: String,
    #[arg(long, default_value = "../shared/datasets/chemprot")]
    pub task: PathBuf,
    /// Timed repetitions (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Auxiliary corpora for `meta`.
    #[arg(long, default_value_t = 1)]
    pub aux: usize,
    /// Corpus size for `corpus`, in megabytes.
    #[arg(long, default_value_t = 100)]
    pub mb: usize,
    /// Tiny sizes for a CI smoke run.
    #[arg(long)]
    pub smoke: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let (batch, len) = if args.smoke { (2, 16) } else { (16, 128) };
    let median = |secs: f64| serde_json::json!({ "median": secs });
    let (name, mut report) = match args.workload {
        Workload::Step => (format!("train step {batch}x{len}"), median(step_or_forward(&args, batch, len)?)),
        Workload::Forward => (format!("forward {batch}x{len}"), median(step_or_forward(&args, batch, len)?)),
        Workload::Epoch => {
            ("training examples/s over a ChemProt epoch (batch 32)".into(), median(train_epoch(&args, len)?))
        }
        Workload::Eval => {
            ("evaluation examples/s over ChemProt dev (batch 64)".into(), median(eval_throughput(&args, len)?))
        }
        Workload::Meta => {
            (format!("meta-tartan step, {} aux, batches of {batch}", args.aux), median(meta(&args, batch, len)?))
        }
        Workload::Corpus => ("auxiliary corpus: tokenize, cache, masked batches of 16".into(), corpus(&args, len)?),
    };
    report["workload"] = name.into();
    report["peak_rss_mb"] = peak_rss_mb().into();
    report["threads"] = cpu_threads().into();
    println!("{report}");
    Ok(())
}

fn batch_texts(args: &BenchArgs, n: usize) -> Result<Vec<(String, String)>> {
    let rows = read_jsonl(&args.task.join("train.jsonl"))?;
    Ok(rows.into_iter().take(n).map(|r| (r.text, r.label)).collect())
}

/// Token ids of `n` training texts padded with real tokens to exactly `len`, as a fixed shape.
fn fixed_batch(p: &Pretrained, texts: &[(String, String)], len: usize) -> Result<Vec<Vec<u32>>> {
    let refs: Vec<&str> = texts.iter().map(|t| t.0.as_str()).collect();
    let mut ids = p.tokenizer.encode_batch(&refs, len)?;
    for seq in &mut ids {
        let sep = *seq.last().context("empty sequence")?;
        while seq.len() < len {
            seq.insert(seq.len() - 1, seq[1]);
        }
        *seq.last_mut().expect("non-empty") = sep;
    }
    Ok(ids)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn step_or_forward(args: &BenchArgs, batch: usize, len: usize) -> Result<f64> {
    let p = Pretrained::open(&args.model)?;
    let texts = batch_texts(args, batch)?;
    let ids = fixed_batch(&p, &texts, len)?;
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let labels: Vec<usize> = (0..batch).map(|i| i % 13).collect();
    let forward = matches!(args.workload, Workload::Forward);
    let device = if forward { crate::device::compute() } else { crate::device::compute().autodiff() };
    device.seed(0);
    let (encoder, _) = p.load(false, &device)?;
    let classifier = ClassificationHead::new(p.config.hidden_size, 13, 0.1, &device);
    let mut model = TartanModel::new(encoder, classifier, None);
    let groups = ParamGroups::new(&model, |_| 0);
    let g = Group { lr: 5e-5, weight_decay: 0.01 };
    let mut opt = AdamW::new(AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, groups: vec![g] });
    let mut times = Vec::new();
    for rep in 0..=args.reps {
        let start = Instant::now();
        let input = EncoderInput::pad(&seqs, p.tokenizer.pad_id, &device);
        if forward {
            let logits = model.classifier.forward(model.encoder.forward(&input));
            let _ = logits.into_data();
        } else {
            let loss =
                cross_entropy(model.classifier.forward(model.encoder.forward(&input)), labels_tensor(&labels, &device));
            let mut buf = GradBuffer::default();
            buf.add(&model, &loss.backward());
            model = opt.step(model, buf, 1.0, &groups);
            let _ = model.classifier.out_proj.bias.as_ref().map(|b| b.val().into_data());
        }
        if rep > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(median(times))
}

fn train_epoch(args: &BenchArgs, len: usize) -> Result<f64> {
    let run = tempfile_dir()?;
    let mut cfg = RunConfig { output_dir: run.clone(), ..RunConfig::default() };
    cfg.model.name = args.model.clone();
    cfg.model.max_length = len;
    cfg.task.train = args.task.join("train.jsonl");
    cfg.train.batch_size = if args.smoke { 4 } else { 32 };
    cfg.train.epochs = 1;
    if args.smoke {
        cfg.train.max_steps = 4;
    }
    cfg.train.log_every = 1_000_000;
    cfg.eval.every_steps = 1_000_000;
    cfg.validate()?;
    let mut trainer = Trainer::new(cfg.clone(), Phase::Main, false)?;
    let steps = trainer.total_steps();
    let start = Instant::now();
    trainer.run_until(steps.saturating_sub(1))?;
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&run);
    Ok((steps.saturating_sub(1) * cfg.train.batch_size) as f64 / seconds)
}

fn eval_throughput(args: &BenchArgs, len: usize) -> Result<f64> {
    let p = Pretrained::open(&args.model)?;
    let rows = read_jsonl(&args.task.join("dev.jsonl"))?;
    let n = if args.smoke { 64 } else { rows.len() };
    let refs: Vec<&str> = rows.iter().take(n).map(|r| r.text.as_str()).collect();
    let device = crate::device::compute();
    let start = Instant::now();
    let ids = p.tokenizer.encode_batch(&refs, len)?;
    let (encoder, _) = p.load(false, &device)?;
    let model = TartanModel::new(encoder, ClassificationHead::new(p.config.hidden_size, 13, 0.0, &device), None);
    crate::train::evaluate::predict_probs(&model.valid(), &ids, 64, p.tokenizer.pad_id, &device);
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn meta(args: &BenchArgs, batch: usize, len: usize) -> Result<f64> {
    if args.aux == 0 {
        bail!("--aux must be at least 1");
    }
    let run = tempfile_dir()?;
    let mut cfg = RunConfig { strategy: Strategy::MetaTartan, output_dir: run.clone(), ..RunConfig::default() };
    cfg.model.name = args.model.clone();
    cfg.model.max_length = len;
    cfg.task.train = args.task.join("train.jsonl");
    cfg.task.dev = Some(args.task.join("dev.jsonl"));
    cfg.train.batch_size = batch;
    cfg.train.max_steps = args.reps + 1;
    cfg.train.log_every = 1000;
    cfg.eval.every_steps = 1_000_000;
    cfg.eval.test = false;
    cfg.meta.dev_batch = if args.smoke { 4 } else { 64 };
    cfg.meta.dev_head_sample = if args.smoke { 4 } else { 32 };
    cfg.aux = (0..args.aux)
        .map(|i| AuxCorpus {
            name: format!("tapt{i}"),
            file: args.task.join("train.txt"),
            batch_size: batch,
            block_size: len,
            ..AuxCorpus::default()
        })
        .collect();
    cfg.validate()?;
    let mut trainer = Trainer::new(cfg, Phase::Main, false)?;
    trainer.run_until(1)?;
    let mut times = Vec::new();
    for step in 2..=args.reps + 1 {
        let start = Instant::now();
        trainer.run_until(step)?;
        times.push(start.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&run);
    Ok(median(times))
}

/// Tokenization, cache and batching throughput of a large auxiliary corpus.
fn corpus(args: &BenchArgs, len: usize) -> Result<serde_json::Value> {
    let p = Pretrained::open(&args.model)?;
    let dir = tempfile_dir()?;
    let domain = args.task.join("domain.1xTAPT.txt");
    let source = std::fs::read_to_string(&domain).with_context(|| format!("cannot read {}", domain.display()))?;
    let target = if args.smoke { 1 << 16 } else { args.mb << 20 };
    let file = dir.join("corpus.txt");
    let mut text = String::with_capacity(target + source.len());
    while text.len() < target {
        text.push_str(&source);
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    std::fs::write(&file, &text)?;
    let (bytes, cache) = (text.len(), dir.join("cache"));
    drop(text);

    let start = Instant::now();
    let corpus = Corpus::open("bench", &file, &p.tokenizer, len, &cache)?;
    let tokenize_s = start.elapsed().as_secs_f64();
    drop(corpus);
    let start = Instant::now();
    let corpus = Corpus::open("bench", &file, &p.tokenizer, len, &cache)?;
    let reopen_s = start.elapsed().as_secs_f64();

    let masker = Masker::for_tokenizer(&p.tokenizer, p.config.vocab_size, 0.15)?;
    let device = crate::device::compute();
    let mut stream = BatchStream::new(corpus.lengths(), 16, 0, true);
    let mut rng = StdRng::seed_from_u64(0);
    let batches = stream.batches_per_epoch();
    let start = Instant::now();
    for _ in 0..batches {
        let seqs: Vec<Vec<u32>> = stream.next_batch().into_iter().map(|i| corpus.get(i)).collect::<Result<_>>()?;
        let masked = masker.mask(&seqs, &mut rng);
        let refs: Vec<&[u32]> = masked.input.iter().map(Vec::as_slice).collect();
        let _ = EncoderInput::pad(&refs, p.tokenizer.pad_id, &device);
    }
    let batch_s = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    let mb = bytes as f64 / (1 << 20) as f64;
    Ok(serde_json::json!({
        "megabytes": mb, "lines": corpus.len(),
        "tokenize_s": tokenize_s, "tokenize_mb_per_s": mb / tokenize_s, "tokenize_lines_per_s": corpus.len() as f64 / tokenize_s,
        "cache_reopen_s": reopen_s,
        "masked_batches": batches, "batching_s": batch_s, "batches_per_s": batches as f64 / batch_s,
    }))
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tartan-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Peak resident set size of this process in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The threads the kernels ran on: rayon's pool, which follows `RAYON_NUM_THREADS` (the CPU
/// count alone reported 2 for one-thread runs).
fn cpu_threads() -> usize {
    rayon::current_num_threads()
}

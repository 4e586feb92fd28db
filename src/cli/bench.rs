//! `tartan bench`: timings of the training step, forward-only evaluation and META-TARTAN
//! steps on MiniLM with ChemProt batches, on the CPU or a GPU (`--device`), and a check of a
//! GPU's logits and gradients against the CPU's; `--precision bf16` times or checks bf16
//! compute (`train.precision`). One workload per process, so the peak RSS it
//! reports (VmHWM) belongs to that workload alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::{AuxCorpus, RunConfig, Strategy, WarmupMode};
use crate::data::batch::{BatchStream, labels_tensor};
use crate::data::corpus::Corpus;
use crate::data::masking::Masker;
use crate::data::read_jsonl;
use crate::device::DeviceKind;
use crate::loss::cross_entropy;
use crate::model::weights::hf_grads;
use crate::model::{ClassificationHead, EncoderInput, Precision, TartanModel, set_dropout};
use crate::optim::GradBuffer;
use crate::optim::{AdamW, AdamWConfig, Group, ParamGroups};
use crate::params::TensorMap;
use crate::train::plan::Phase;
use crate::train::pretrained::Pretrained;
use crate::train::records::{Record, read_records};
use crate::train::trainer::Trainer;

#[derive(Clone, Copy, ValueEnum)]
pub enum Workload {
    /// One fine-tune optimizer step (forward, backward, AdamW) on a 16 x 128 batch.
    Step,
    /// Forward pass without autodiff on a 16 x 128 batch.
    Forward,
    /// Logits, loss and encoder gradients of one 16 x 128 batch (dropout off) on `--device`
    /// against the CPU's: relative L2 errors.
    Parity,
    /// Training throughput over one epoch of ChemProt train (examples/s), batch 32, bucketed.
    Epoch,
    /// Evaluation throughput over ChemProt dev (examples/s), batch 64, no autodiff.
    Eval,
    /// One META-TARTAN optimizer step with `--aux` TAPT corpora, batches of 16 x 128: every
    /// end-task, dev and corpus text is repeated until it fills 128 tokens, so each batch has
    /// one fixed shape whatever the sampler picks (bench/torch_bench.py builds the same texts).
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
    #[arg(long, default_value_t = 5, value_parser = super::at_least_one)]
    pub reps: usize,
    /// Auxiliary corpora for `meta`.
    #[arg(long, default_value_t = 1, value_parser = super::at_least_one)]
    pub aux: usize,
    /// Corpus size for `corpus`, in megabytes.
    #[arg(long, default_value_t = 100, value_parser = super::at_least_one)]
    pub mb: usize,
    /// Tiny sizes for a CI smoke run.
    #[arg(long)]
    pub smoke: bool,
    /// Examples per batch of `step`, `forward`, `parity` and `meta` (default 16).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Tokens per example (default 128; `corpus`: the block size).
    #[arg(long)]
    pub len: Option<usize>,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// What the encoder's matmuls compute in (`train.precision`); `parity` runs the device in
    /// it against the CPU in f32.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let (batch, len) = if args.smoke { (2, 16) } else { (16, 128) };
    let (batch, len) = (args.batch.unwrap_or(batch), args.len.unwrap_or(len));
    if batch == 0 || len < 3 {
        bail!("--batch must be at least 1 and --len at least 3 (special tokens and one word)");
    }
    let median = |secs: f64| serde_json::json!({ "median": secs });
    let timed = |times: Vec<f64>| serde_json::json!({ "median": median_of(times.clone()), "times": times });
    let (name, mut report) = match args.workload {
        Workload::Step => (format!("train step {batch}x{len}"), timed(step_or_forward(&args, batch, len)?)),
        Workload::Forward => (format!("forward {batch}x{len}"), timed(step_or_forward(&args, batch, len)?)),
        Workload::Parity => (format!("{} against cpu, {batch}x{len}", args.device.name()), parity(&args, batch, len)?),
        Workload::Epoch => {
            ("training examples/s over a ChemProt epoch (batch 32)".into(), median(train_epoch(&args, len)?))
        }
        Workload::Eval => {
            ("evaluation examples/s over ChemProt dev (batch 64)".into(), median(eval_throughput(&args, len)?))
        }
        Workload::Meta => {
            (format!("meta-tartan step, {} aux, batches of {batch}x{len}", args.aux), timed(meta(&args, batch, len)?))
        }
        Workload::Corpus => ("auxiliary corpus: tokenize, cache, masked batches of 16".into(), corpus(&args, len)?),
    };
    report["workload"] = name.into();
    report["device"] = args.device.name().into();
    report["precision"] = args.precision.name().into();
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

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds of each timed repetition.
fn step_or_forward(args: &BenchArgs, batch: usize, len: usize) -> Result<Vec<f64>> {
    let p = Pretrained::open(&args.model)?;
    let texts = batch_texts(args, batch)?;
    let ids = fixed_batch(&p, &texts, len)?;
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let labels: Vec<usize> = (0..batch).map(|i| i % 13).collect();
    let forward = matches!(args.workload, Workload::Forward);
    let device = crate::device::resolve(args.device)?;
    let device = if forward { device } else { device.autodiff() };
    let (encoder, _) = p.load(false, 0, &device)?;
    let classifier = ClassificationHead::new(p.config.hidden_size, 13, 0.1, 0, &device);
    let mut model = TartanModel::new(encoder, classifier, None).with_precision(args.precision);
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
    Ok(times)
}

/// What one device makes of the batch: logits, loss, and the encoder's gradients by checkpoint key.
type Outputs = (Vec<f32>, f32, TensorMap);

fn parity(args: &BenchArgs, batch: usize, len: usize) -> Result<serde_json::Value> {
    let p = Pretrained::open(&args.model)?;
    let ids = fixed_batch(&p, &batch_texts(args, batch)?, len)?;
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let labels: Vec<usize> = (0..batch).map(|i| i % 13).collect();
    let target = crate::device::resolve(args.device)?.autodiff();
    let cpu = crate::device::resolve(DeviceKind::Cpu)?.autodiff();
    let run = |device: &Device, precision: Precision| -> Result<Outputs> {
        let (encoder, _) = p.load(false, 0, device)?;
        let encoder = set_dropout(encoder, false).with_precision(precision);
        // The same seed draws the same head on every device.
        let head = ClassificationHead::new(p.config.hidden_size, 13, 0.0, 0, device);
        let logits = head.forward(encoder.forward(&EncoderInput::pad(&seqs, p.tokenizer.pad_id, device)));
        let loss = cross_entropy(logits.clone(), labels_tensor(&labels, device));
        let grads = hf_grads(&encoder, &loss.backward());
        let logits = logits.into_data().try_into_vec::<f32>().map_err(|e| anyhow!("logits: {e:?}"))?;
        Ok((logits, loss.into_scalar::<f32>(), grads))
    };
    let (want, got) = (run(&cpu, Precision::F32)?, run(&target, args.precision)?);
    let (mut diff, mut norm, mut worst) = (0.0, 0.0, (0.0, String::new()));
    for (key, (_, g)) in &got.2 {
        let (_, w) = want.2.get(key).with_context(|| format!("no CPU gradient for {key}"))?;
        let (d, n) = sq_diff_and_norm(g, w);
        (diff, norm) = (diff + d, norm + n);
        let rel = (d / n.max(f64::MIN_POSITIVE)).sqrt();
        if rel > worst.0 {
            worst = (rel, key.clone());
        }
    }
    let (ld, ln) = sq_diff_and_norm(&got.0, &want.0);
    Ok(serde_json::json!({
        "logits_rel_l2": (ld / ln).sqrt(),
        "loss_cpu": want.1, "loss_device": got.1,
        "grads_rel_l2": (diff / norm).sqrt(), "parameters": got.2.len(),
        "worst_parameter": worst.1, "worst_parameter_rel_l2": worst.0,
    }))
}

/// Squared L2 distance between `a` and `b`, and `b`'s squared L2 norm, summed in f64.
fn sq_diff_and_norm(a: &[f32], b: &[f32]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(d, n), (&x, &y)| {
        let (x, y) = (x as f64, y as f64);
        (d + (x - y).powi(2), n + y * y)
    })
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
    cfg.device = args.device;
    cfg.train.precision = args.precision;
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
    let device = crate::device::resolve(args.device)?;
    let start = Instant::now();
    let ids = p.tokenizer.encode_batch(&refs, len)?;
    let (encoder, _) = p.load(false, 0, &device)?;
    let model = TartanModel::new(encoder, ClassificationHead::new(p.config.hidden_size, 13, 0.0, 0, &device), None)
        .with_precision(args.precision);
    crate::train::evaluate::predict_probs(&model.valid(), &ids, 64, p.tokenizer.pad_id, &device);
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Examples in each file `meta` trains on; every batch of the step fits in them.
const META_ROWS: usize = 64;

/// Seconds of each timed META-TARTAN step.
fn meta(args: &BenchArgs, batch: usize, len: usize) -> Result<Vec<f64>> {
    let run = tempfile_dir()?;
    let cfg = meta_config(args, &run, batch, len)?;
    let mut trainer = Trainer::new(cfg, Phase::Main, false)?;
    trainer.run_until(args.reps + 1)?;
    // Each step's log entry holds its rate over exactly that step (the loop restarts the clock
    // after every entry); step 1 is the warm-up.
    let times: Vec<f64> = read_records(&run)?
        .iter()
        .filter_map(|r| match r {
            Record::Train { step, steps_per_s, .. } if *step >= 2 => Some(1.0 / steps_per_s),
            _ => None,
        })
        .collect();
    let _ = std::fs::remove_dir_all(&run);
    if times.len() != args.reps {
        bail!("expected {} timed steps in metrics.jsonl, found {}", args.reps, times.len());
    }
    Ok(times)
}

/// The META-TARTAN run `meta` times, in `run`: the task's train and dev texts and its TAPT
/// lines, each filled to `len` tokens, `--aux` copies of the corpus, no warm-up.
fn meta_config(args: &BenchArgs, run: &Path, batch: usize, len: usize) -> Result<RunConfig> {
    let p = Pretrained::open(&args.model)?;
    let data = run.join("data");
    std::fs::create_dir_all(&data)?;
    let jsonl = |source: &str, target: &str| -> Result<PathBuf> {
        let texts: Vec<String> = read_jsonl(&args.task.join(source))?.into_iter().map(|r| r.text).collect();
        let mut out = String::new();
        for (i, text) in filled_texts(&p, &texts, len)?.into_iter().enumerate() {
            out.push_str(&serde_json::json!({ "text": text, "label": (i % 13).to_string() }).to_string());
            out.push('\n');
        }
        let path = data.join(target);
        std::fs::write(&path, out)?;
        Ok(path)
    };
    let mut cfg = RunConfig { strategy: Strategy::MetaTartan, output_dir: run.to_path_buf(), ..RunConfig::default() };
    cfg.model.name = args.model.clone();
    cfg.model.max_length = len;
    cfg.task.train = jsonl("train.jsonl", "train.jsonl")?;
    cfg.task.dev = Some(jsonl("dev.jsonl", "dev.jsonl")?);
    let lines = std::fs::read_to_string(args.task.join("train.txt"))
        .with_context(|| format!("cannot read {}", args.task.join("train.txt").display()))?;
    let lines: Vec<String> = lines.lines().map(str::to_string).collect();
    let corpus = data.join("corpus.txt");
    std::fs::write(&corpus, filled_texts(&p, &lines, len)?.join("\n") + "\n")?;
    cfg.train.batch_size = batch;
    // Stopping short of the last step keeps its evaluation and the checkpoint that
    // `run_until` saves on return out of the timed steps.
    cfg.train.max_steps = args.reps + 2;
    cfg.train.log_every = 1;
    cfg.eval.every_steps = 1_000_000;
    cfg.eval.test = false;
    // Fitting the fresh MLM head first only delays the timed steps (up to 1,000 forward passes).
    cfg.mlm_warmup.mode = WarmupMode::Off;
    cfg.device = args.device;
    cfg.train.precision = args.precision;
    cfg.meta.dev_batch = if args.smoke { 4 } else { 64 };
    cfg.meta.dev_head_sample = if args.smoke { 4 } else { 32 };
    cfg.aux = (0..args.aux)
        .map(|i| AuxCorpus {
            name: format!("tapt{i}"),
            file: corpus.clone(),
            batch_size: batch,
            block_size: len,
            ..AuxCorpus::default()
        })
        .collect();
    cfg.validate()?;
    Ok(cfg)
}

/// The first `META_ROWS` non-blank `texts`, each repeated (joined by a space) until it has at
/// least `len` tokens with the special ones, so that truncation leaves exactly `len` real tokens.
fn filled_texts(p: &Pretrained, texts: &[String], len: usize) -> Result<Vec<String>> {
    let count = |s: &str| -> Result<usize> {
        let enc = p.tokenizer.inner().encode(s, true).map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))?;
        Ok(enc.get_ids().len())
    };
    let mut out = Vec::new();
    for text in texts.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).take(META_ROWS) {
        let mut filled = text.to_string();
        while count(&filled)? < len {
            filled.push(' ');
            filled.push_str(text);
        }
        out.push(filled);
    }
    if out.len() < META_ROWS {
        bail!("need {META_ROWS} texts to fill the META-TARTAN batches, found {}", out.len());
    }
    Ok(out)
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
    let device = crate::device::resolve(args.device)?;
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

/// The threads burn-flex's kernels and matmuls run on: rayon's global pool, which
/// `RAYON_NUM_THREADS` sizes (default: one per CPU).
fn cpu_threads() -> usize {
    rayon::current_num_threads()
}

//! Masked-LM on an auxiliary corpus (TAPT-MLM on the task's text, DAPT-MLM on domain text).

use std::hash::{Hash, Hasher};

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{Objective, ObjectiveLoss};
use crate::data::TextTokenizer;
use crate::data::batch::{BatchStream, DataPosition};
use crate::data::corpus::Corpus;
use crate::data::masking::Masker;
use crate::loss::cross_entropy;
use crate::model::{Bert, EncoderInput, MlmHead, TartanModel};
use crate::validate::non_negative;

/// An auxiliary corpus: a text file, one example per line, used with masked-LM.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuxCorpus {
    /// Names the objective in logs and plots (`tapt`, `dapt`, ...).
    pub name: String,
    pub file: PathBuf,
    /// Lines per batch; 0 means train.batch_size.
    pub batch_size: usize,
    /// Tokens per line (special tokens included); 0 means model.max_length.
    pub block_size: usize,
    pub mask_prob: f64,
    /// Fixed weight under mt-tartan; unset: 1/(1+K).
    pub weight: Option<f64>,
}

impl Default for AuxCorpus {
    fn default() -> Self {
        Self { name: String::new(), file: PathBuf::new(), batch_size: 0, block_size: 0, mask_prob: 0.15, weight: None }
    }
}

impl AuxCorpus {
    pub fn validate(&self, index: usize) -> Result<()> {
        if self.name.is_empty() || self.file.as_os_str().is_empty() {
            bail!("aux corpus {} needs a `name` and a `file`", index + 1);
        }
        if !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            bail!("aux `{}`: mask_prob must be in (0, 1), got {}", self.name, self.mask_prob);
        }
        if let Some(w) = self.weight {
            non_negative(&format!("aux `{}`: weight", self.name), w)?;
        }
        Ok(())
    }
}

/// What the masked-LM objectives of a phase are built from besides their `[[aux]]` section.
pub struct MlmSource<'a> {
    pub tokenizer: &'a TextTokenizer,
    /// The model's vocabulary (random replacement tokens are drawn from it).
    pub vocab_size: usize,
    /// Defaults of a corpus' block size and batch size (`model.max_length`, `train.batch_size`).
    pub max_length: usize,
    pub batch_size: usize,
    pub bucket: bool,
    pub cache_dir: &'a Path,
}

pub struct MaskedLm {
    corpus: Corpus,
    stream: BatchStream,
    masker: Masker,
    pad_id: u32,
    seed: u64,
}

impl MaskedLm {
    /// The objective on corpus `aux`, its batches and masks drawn with `seed`: the one place
    /// that opens a corpus and builds its masker.
    pub fn open(aux: &AuxCorpus, source: &MlmSource, seed: u64) -> Result<Self> {
        let block = if aux.block_size > 0 { aux.block_size } else { source.max_length };
        let corpus = Corpus::open(&aux.name, &aux.file, source.tokenizer, block, source.cache_dir)?;
        let masker = Masker::for_tokenizer(source.tokenizer, source.vocab_size, aux.mask_prob)?;
        let batch = if aux.batch_size > 0 { aux.batch_size } else { source.batch_size };
        Ok(Self::new(corpus, batch, masker, source.tokenizer.pad_id, seed, source.bucket))
    }

    pub fn new(corpus: Corpus, batch_size: usize, masker: Masker, pad_id: u32, seed: u64, bucket: bool) -> Self {
        let stream = BatchStream::new(corpus.lengths(), batch_size, seed ^ name_hash(&corpus.name), bucket);
        Self { corpus, stream, masker, pad_id, seed }
    }

    /// The masking randomness of a batch depends only on (seed, corpus, position), so a
    /// resumed run masks exactly as an uninterrupted one.
    fn rng_for(&self, position: DataPosition) -> StdRng {
        let mut h = std::hash::DefaultHasher::new();
        (self.seed, &self.corpus.name, position.epoch, position.batch).hash(&mut h);
        StdRng::seed_from_u64(h.finish())
    }
}

impl MaskedLm {
    /// The next batch, masked, on `device`.
    fn next_masked(&mut self, device: &Device) -> Result<MaskedBatch> {
        let mut rng = self.rng_for(self.stream.position());
        let idx = self.stream.next_batch();
        let seqs: Vec<Vec<u32>> = idx.iter().map(|&i| self.corpus.get(i)).collect::<Result<_>>()?;
        let masked = self.masker.mask(&seqs, &mut rng);
        let refs: Vec<&[u32]> = masked.input.iter().map(Vec::as_slice).collect();
        let n = masked.positions.len();
        let positions: Vec<i64> = masked.positions.iter().map(|&p| p as i64).collect();
        Ok(MaskedBatch {
            input: EncoderInput::pad(&refs, self.pad_id, device),
            positions: Tensor::from_data(TensorData::new(positions, [n]), device),
            targets: masked.targets.iter().map(|&t| t as i64).collect(),
        })
    }

    /// The loss of the MLM head alone on the next batch, the encoder frozen: `frozen` runs
    /// without autodiff (a `valid()` copy) and only the masked positions' states reach
    /// `head`, which trains; `word` is the tied decoder, detached. The MLM-head warm-up.
    pub fn next_head_loss(
        &mut self,
        frozen: &Bert,
        head: &MlmHead,
        word: Tensor<2>,
        device: &Device,
    ) -> Result<ObjectiveLoss> {
        let batch = self.next_masked(&device.clone().without_autodiff())?;
        let [b, s] = batch.input.input_ids.dims();
        let hidden = frozen.forward(&batch.input);
        let picked = hidden.reshape([b * s, frozen.hidden_size()]).select(0, batch.positions.clone());
        let picked = Tensor::<2>::from_data(picked.into_data(), device);
        Ok(batch.loss(head.forward_picked(picked, word, frozen.precision()), device))
    }
}

/// A masked batch: the encoder's input, the flat positions of the chosen tokens and their
/// original ids.
struct MaskedBatch {
    input: EncoderInput,
    positions: Tensor<1, Int>,
    targets: Vec<i64>,
}

impl MaskedBatch {
    /// Cross-entropy of `logits` at the chosen positions, with the share predicted right.
    fn loss(&self, logits: Tensor<2>, device: &Device) -> ObjectiveLoss {
        let n = self.targets.len();
        let predicted: Vec<i64> = logits.clone().argmax(1).into_data_as::<i64>().try_to_vec().unwrap_or_default();
        let correct = predicted.iter().zip(&self.targets).filter(|(p, t)| p == t).count();
        let loss = cross_entropy(logits, Tensor::from_data(TensorData::new(self.targets.clone(), [n]), device));
        ObjectiveLoss { loss, accuracy: Some(correct as f64 / n.max(1) as f64) }
    }
}

fn name_hash(name: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

impl Objective for MaskedLm {
    fn name(&self) -> &str {
        &self.corpus.name
    }

    fn next_loss(&mut self, model: &TartanModel, device: &Device) -> Result<ObjectiveLoss> {
        let head = model.mlm.as_ref().context("an MLM objective needs the model's MLM head")?;
        let batch = self.next_masked(device)?;
        let hidden = model.encoder.forward(&batch.input);
        let word = model.encoder.embeddings.word_embeddings.weight.val();
        Ok(batch.loss(head.forward_at(hidden, batch.positions.clone(), word, model.encoder.precision()), device))
    }

    fn stream(&self) -> &BatchStream {
        &self.stream
    }

    fn stream_mut(&mut self) -> &mut BatchStream {
        &mut self.stream
    }
}

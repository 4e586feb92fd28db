//! Masked-LM on an auxiliary corpus (TAPT-MLM on the task's text, DAPT-MLM on domain text).

use std::hash::{Hash, Hasher};

use anyhow::{Context, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::loss::cross_entropy;
use super::{Objective, ObjectiveLoss};
use crate::data::batch::{BatchStream, DataPosition, collate};
use crate::data::corpus::Corpus;
use crate::data::masking::Masker;
use crate::model::{Bert, EncoderInput, MlmHead, TartanModel};

pub struct MaskedLm {
    corpus: Corpus,
    stream: BatchStream,
    masker: Masker,
    pad_id: u32,
    seed: u64,
}

impl MaskedLm {
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
            input: collate(&refs, self.pad_id, device),
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
        Ok(batch.loss(head.forward_picked(picked, word), device))
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
        ObjectiveLoss { loss, stats: vec![("mlm_accuracy", correct as f64 / n.max(1) as f64)] }
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
        Ok(batch.loss(head.forward_at(hidden, batch.positions.clone(), word), device))
    }

    fn stream(&self) -> &BatchStream {
        &self.stream
    }

    fn stream_mut(&mut self) -> &mut BatchStream {
        &mut self.stream
    }
}

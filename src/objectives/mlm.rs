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
use crate::model::TartanModel;

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
        let mut rng = self.rng_for(self.stream.position());
        let idx = self.stream.next_batch();
        let seqs: Vec<Vec<u32>> = idx.iter().map(|&i| self.corpus.get(i)).collect::<Result<_>>()?;
        let masked = self.masker.mask(&seqs, &mut rng);
        let refs: Vec<&[u32]> = masked.input.iter().map(Vec::as_slice).collect();
        let input = collate(&refs, self.pad_id, device);
        let n = masked.positions.len();
        let positions: Vec<i64> = masked.positions.iter().map(|&p| p as i64).collect();
        let targets: Vec<i64> = masked.targets.iter().map(|&t| t as i64).collect();
        let hidden = model.encoder.forward(&input);
        let word = model.encoder.embeddings.word_embeddings.weight.val();
        let logits =
            head.forward_at(hidden, Tensor::<1, Int>::from_data(TensorData::new(positions, [n]), device), word);
        let predicted: Vec<i64> = logits.clone().argmax(1).into_data_as::<i64>().try_to_vec().unwrap_or_default();
        let correct = predicted.iter().zip(&targets).filter(|(p, t)| p == t).count();
        let loss = cross_entropy(logits, Tensor::from_data(TensorData::new(targets, [n]), device));
        Ok(ObjectiveLoss { loss, stats: vec![("mlm_accuracy", correct as f64 / n.max(1) as f64)] })
    }

    fn stream(&self) -> &BatchStream {
        &self.stream
    }

    fn stream_mut(&mut self) -> &mut BatchStream {
        &mut self.stream
    }
}

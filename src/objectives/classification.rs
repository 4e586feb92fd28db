//! The end-task: sequence classification with cross-entropy.

use anyhow::Result;
use burn::tensor::Device;

use super::{Objective, ObjectiveLoss};
use crate::data::batch::{BatchStream, labels_tensor};
use crate::data::task::Split;
use crate::loss::cross_entropy;
use crate::model::{EncoderInput, TartanModel};

pub struct Classification {
    data: Split,
    stream: BatchStream,
    pad_id: u32,
}

impl Classification {
    pub fn new(data: Split, batch_size: usize, seed: u64, pad_id: u32, bucket: bool) -> Self {
        let stream = BatchStream::new(data.lengths(), batch_size, seed, bucket);
        Self { data, stream, pad_id }
    }
}

impl Objective for Classification {
    fn name(&self) -> &str {
        "end-task"
    }

    fn next_loss(&mut self, model: &TartanModel, device: &Device) -> Result<ObjectiveLoss> {
        let idx = self.stream.next_batch();
        let seqs: Vec<&[u32]> = idx.iter().map(|&i| self.data.ids[i].as_slice()).collect();
        let labels: Vec<usize> = idx.iter().map(|&i| self.data.labels[i]).collect();
        let input = EncoderInput::pad(&seqs, self.pad_id, device);
        let logits = model.classifier.forward(model.encoder.forward(&input));
        let loss = cross_entropy(logits, labels_tensor(&labels, device));
        Ok(ObjectiveLoss { loss, accuracy: None })
    }

    fn stream(&self) -> &BatchStream {
        &self.stream
    }

    fn stream_mut(&mut self) -> &mut BatchStream {
        &mut self.stream
    }
}

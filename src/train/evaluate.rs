//! Prediction and evaluation without autodiff, in length-sorted batches.

use burn::tensor::Device;
use burn::tensor::activation::softmax;

use super::metrics::Scores;
use crate::data::LabelMap;
use crate::data::batch::eval_batches;
use crate::data::task::Split;
use crate::model::{EncoderInput, TartanModel};

/// Class probabilities for each sequence, in input order. `model` should be `valid()`.
pub fn predict_probs(
    model: &TartanModel,
    ids: &[Vec<u32>],
    batch_size: usize,
    pad_id: u32,
    device: &Device,
) -> Vec<Vec<f32>> {
    let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
    let mut out = vec![Vec::new(); ids.len()];
    for batch in eval_batches(&lengths, batch_size) {
        let seqs: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
        let input = EncoderInput::pad(&seqs, pad_id, device);
        let probs = softmax(model.classifier.forward(model.encoder.forward(&input)), 1);
        let [_, k] = probs.dims();
        let values: Vec<f32> = probs.into_data().try_to_vec().expect("f32 probabilities");
        for (row, &i) in batch.iter().enumerate() {
            out[i] = values[row * k..(row + 1) * k].to_vec();
        }
    }
    out
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
}

pub fn evaluate(
    model: &TartanModel,
    split: &Split,
    labels: &LabelMap,
    batch_size: usize,
    pad_id: u32,
    device: &Device,
) -> Scores {
    let probs = predict_probs(model, &split.ids, batch_size, pad_id, device);
    let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    Scores::compute(&split.labels, &pred, &labels.labels)
}

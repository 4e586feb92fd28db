//! Dropout whose mask is drawn with a fast generator, in parallel, from a seed the training
//! loop sets every step.
//!
//! burn's `Dropout::forward` samples one f32 per element from a ChaCha generator on one
//! thread: on MiniLM that was ~17% of a training step. Masks here depend only on (step seed,
//! index of the dropout call within the step, position), so runs stay reproducible and a
//! resumed run draws the masks an uninterrupted one would.

use std::sync::Mutex;

use burn::nn::Dropout;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rayon::prelude::*;

/// (seed of the current step, dropout calls made in it).
static STATE: Mutex<(u64, u64)> = Mutex::new((0, 0));

/// Starts a step's mask stream; the trainer calls this before every step.
pub fn reseed(seed: u64) {
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = (seed, 0);
}

fn next_call_seed() -> u64 {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    s.1 += 1;
    splitmix(s.0 ^ splitmix(s.1))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `layer`'s dropout applied to `x`: active only in training mode on an autodiff device, as
/// burn's own; kept values are scaled by `1 / (1 - p)`.
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if !layer.training.is_enabled() || !x.device().is_autodiff() || layer.prob == 0.0 {
        return x;
    }
    let shape = x.shape();
    let n = shape.num_elements();
    let keep = 1.0 - layer.prob;
    let threshold = (keep * 4_294_967_296.0) as u64;
    let scale = (1.0 / keep) as f32;
    let seed = next_call_seed();
    const CHUNK: usize = 1 << 16;
    let mut mask = vec![0f32; n];
    mask.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| {
        let mut rng = SmallRng::seed_from_u64(seed ^ splitmix(i as u64));
        for m in chunk.iter_mut() {
            *m = if (rng.next_u32() as u64) < threshold { scale } else { 0.0 };
        }
    });
    let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &x.device());
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;
    use burn::tensor::Device;

    #[test]
    fn keeps_the_expected_share_scales_and_repeats_with_the_seed() {
        let device = Device::flex().autodiff();
        let layer = DropoutConfig::new(0.1).init();
        let x = Tensor::<2>::ones([300, 1000], &device);
        reseed(7);
        let a: Vec<f32> = dropout(&layer, x.clone()).into_data().try_to_vec().unwrap();
        let kept = a.iter().filter(|v| **v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.9).abs() < 0.003, "kept {kept}");
        assert!(a.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.9).abs() < 1e-6));
        let b: Vec<f32> = dropout(&layer, x.clone()).into_data().try_to_vec().unwrap();
        assert_ne!(a, b, "two calls in a step drew the same mask");
        reseed(7);
        let again: Vec<f32> = dropout(&layer, x.clone()).into_data().try_to_vec().unwrap();
        assert_eq!(a, again);
        let plain = Tensor::<2>::ones([3, 3], &Device::flex());
        let out: Vec<f32> = dropout(&layer, plain).into_data().try_to_vec().unwrap();
        assert!(out.iter().all(|v| *v == 1.0), "dropout is off without autodiff");
    }
}

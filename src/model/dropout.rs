//! Dropout whose mask is a counter hash of a seed the training loop sets every step, computed
//! in parallel and vectorised.
//!
//! burn's `Dropout::forward` samples one f32 per element from a ChaCha generator on one
//! thread: on MiniLM that was ~17% of a training step. Masks here depend only on (step seed,
//! index of the dropout call within the step, position), so runs stay reproducible and a
//! resumed run draws the masks an uninterrupted one would. Every dropout of one model shares
//! one `DropoutSeed` (the model owns it; two models in a process never share a stream).
//!
//! On flex the mask is never stored: [`apply_mask`] scales the input in place, and the
//! backward redraws the same mask from the seed for the gradient (`kernels::dropout`). A
//! stored mask cost an allocation, a fill and two multiply passes per call, with the
//! attention probabilities' 16 x 12 x 128 x 128 the largest.

use std::sync::{Arc, Mutex};

use burn::module::{Flag, Module, Param};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::kernels;
use crate::simd::multiversion;

/// The mask stream of one model: (seed of the current step, dropout calls made in it).
#[derive(Debug, Clone, Default)]
pub struct DropoutSeed(Arc<Mutex<(u64, u64)>>);

impl DropoutSeed {
    /// Starts a step's mask stream; the trainer calls this before every step.
    pub fn reseed(&self, seed: u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (seed, 0);
    }

    fn next_call_seed(&self) -> u64 {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.1 += 1;
        splitmix(s.0 ^ splitmix(s.1))
    }
}

/// A dropout layer: active only in training mode on an autodiff device, as burn's own; kept
/// values are scaled by `1 / (1 - p)`. `training` is the flag `set_dropout` switches.
#[derive(Module, Debug)]
pub struct Dropout {
    pub prob: f64,
    pub training: Param<Flag>,
    #[module(skip)]
    pub(crate) seed: DropoutSeed,
}

impl Dropout {
    /// # Panics
    /// On a probability outside [0, 1); configs are validated before models are built.
    pub fn new(prob: f64, seed: &DropoutSeed) -> Self {
        assert!(prob.is_finite() && (0.0..1.0).contains(&prob), "dropout probability {prob} outside [0, 1)");
        Self { prob, training: Param::from_bool(true), seed: seed.clone() }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !self.training.is_enabled() || !x.device().is_autodiff() || self.prob == 0.0 {
            return x;
        }
        kernels::dropout(x, Mask { seed: self.seed.next_call_seed(), prob: self.prob })
    }
}

/// One dropout call's mask. Element `j` of chunk `i` (chunks of [`MASK_CHUNK`] values) is
/// kept when `fmix32(fmix32(j + lo) ^ hi)` is below `(1 - prob) * 2^32`, with `(hi, lo)` the
/// halves of `splitmix(seed ^ splitmix(i))`: a counter hash (murmur3's finaliser, a bijection,
/// twice) that vectorises, where a sequential generator (xoshiro, one `u32` per element) was
/// 7.6% of a META-TARTAN step once the backward started redrawing the mask.
#[derive(Debug, Clone, Copy)]
pub struct Mask {
    pub seed: u64,
    pub prob: f64,
}

const MASK_CHUNK: usize = 1 << 16;

/// `values *= mask` (kept values times `1 / (1 - p)`, dropped ones times 0), in parallel.
pub fn apply_mask(values: &mut [f32], mask: Mask) {
    let keep = 1.0 - mask.prob;
    // `prob` > 0, so the threshold is below 2^32.
    let threshold = (keep * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let scale = (1.0 / keep) as f32;
    values.par_chunks_mut(MASK_CHUNK).enumerate().for_each(|(i, chunk)| {
        let key = splitmix(mask.seed ^ splitmix(i as u64));
        mask_chunk(chunk, key as u32, (key >> 32) as u32, threshold, scale);
    });
}

multiversion! {
    fn mask_chunk(values: &mut [f32], lo: u32, hi: u32, threshold: u32, scale: f32) {
        for (j, v) in values.iter_mut().enumerate() {
            let h = fmix32(fmix32((j as u32).wrapping_add(lo)) ^ hi);
            *v *= if h < threshold { scale } else { 0.0 };
        }
    }
}

#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// `x * mask` as plain tensor operations, for backends without the fused op.
pub fn apply_mask_composed<const D: usize>(x: Tensor<D>, mask: Mask) -> Tensor<D> {
    let shape = x.shape();
    let mut m = vec![1f32; shape.num_elements()];
    apply_mask(&mut m, mask);
    let m = Tensor::<D>::from_data(TensorData::new(m, shape), &x.device()).cast(x.dtype());
    x * m
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn keeps_the_expected_share_scales_and_repeats_with_the_seed() {
        let device = Device::flex().autodiff();
        let seed = DropoutSeed::default();
        let layer = Dropout::new(0.1, &seed);
        let x = Tensor::<2>::ones([300, 1000], &device);
        seed.reseed(7);
        let a: Vec<f32> = layer.forward(x.clone()).into_data().try_to_vec().unwrap();
        let kept = a.iter().filter(|v| **v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.9).abs() < 0.003, "kept {kept}");
        assert!(a.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.9).abs() < 1e-6));
        // Neighbours are independent: both kept 0.81 of the time, both dropped 0.01.
        let pairs = |both: fn(bool, bool) -> bool| {
            a.windows(2).filter(|w| both(w[0] != 0.0, w[1] != 0.0)).count() as f64 / (a.len() - 1) as f64
        };
        assert!((pairs(|x, y| x && y) - 0.81).abs() < 0.004, "both kept {}", pairs(|x, y| x && y));
        assert!((pairs(|x, y| !x && !y) - 0.01).abs() < 0.002, "both dropped {}", pairs(|x, y| !x && !y));
        // Each 2^16-value chunk draws its own pattern.
        assert_ne!(a[..1000], a[MASK_CHUNK..MASK_CHUNK + 1000]);
        let b: Vec<f32> = layer.forward(x.clone()).into_data().try_to_vec().unwrap();
        assert_ne!(a, b, "two calls in a step drew the same mask");
        seed.reseed(7);
        let again: Vec<f32> = layer.forward(x.clone()).into_data().try_to_vec().unwrap();
        assert_eq!(a, again);
        let plain = Tensor::<2>::ones([3, 3], &Device::flex());
        let out: Vec<f32> = layer.forward(plain).into_data().try_to_vec().unwrap();
        assert!(out.iter().all(|v| *v == 1.0), "dropout is off without autodiff");
    }

    #[test]
    fn two_models_have_their_own_streams() {
        let device = Device::flex().autodiff();
        let (s1, s2) = (DropoutSeed::default(), DropoutSeed::default());
        let (a, b) = (Dropout::new(0.5, &s1), Dropout::new(0.5, &s2));
        let x = Tensor::<2>::ones([64, 64], &device);
        s1.reseed(3);
        s2.reseed(3);
        let first: Vec<f32> = a.forward(x.clone()).into_data().try_to_vec().unwrap();
        // Another model's call in between does not move this one's stream.
        let _ = b.forward(x.clone());
        let second: Vec<f32> = b.forward(x.clone()).into_data().try_to_vec().unwrap();
        s1.reseed(3);
        assert_eq!(first, a.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap());
        assert_ne!(first, second);
    }
}

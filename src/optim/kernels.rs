//! Fused kernels of the optimizer step, on burn-flex's f32 storage read and written in place:
//! AdamW in one pass per parameter (instead of ~10 tensor operations that each allocate), and
//! f64 dot products and squared norms without a host copy of the gradients. The work is split
//! across rayon's threads in fixed chunks ([`CHUNK`]), so partial sums are added in the same
//! order for any thread count and results do not depend on it.
//!
//! These run on the inner (non-autodiff) tensors of the optimizer, so they need no backward and
//! reach flex's storage directly (`Tensor::try_into_primitive::<Flex>`). Another backend (the
//! `cuda` feature) or dtype takes the plain tensor composition, which computes the same values.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, Tensor};
use rayon::prelude::*;

use crate::simd::{CHUNK, multiversion};

/// Whether `t` is an f32 tensor of the flex backend (not autodiff).
fn on_flex(t: &Tensor<1>) -> bool {
    t.dtype() == DType::F32 && t.clone().try_into_primitive::<Flex>().is_ok()
}

/// The flex primitive of `t`, laid out contiguously over exactly its elements.
fn primitive(t: Tensor<1>) -> FlexTensor {
    let p = t.try_into_primitive::<Flex>().expect("checked by on_flex");
    match p.layout().contiguous_offsets() {
        Some(_) => p,
        None => p.to_contiguous(),
    }
}

fn values(p: &FlexTensor) -> &[f32] {
    p.as_slice::<f32>().expect("contiguous f32")
}

/// Mutable values of `p`, in place when it is the only handle on its storage (else a copy).
fn values_mut(p: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = p.layout().contiguous_offsets().expect("contiguous");
    &mut p.storage_mut::<f32>()[start..end]
}

fn tensor(p: FlexTensor) -> Tensor<1> {
    Tensor::from_primitive::<Flex>(p)
}

/// `sum a_i b_i` in f64 (exact products, f64 sums).
pub fn dot(a: &Tensor<1>, b: &Tensor<1>) -> f64 {
    assert_eq!(a.dims(), b.dims(), "dot of tensors of different lengths");
    if on_flex(a) && on_flex(b) {
        let (pa, pb) = (primitive(a.clone()), primitive(b.clone()));
        return dot_slices(values(&pa), values(&pb));
    }
    host_dot(a, b)
}

/// `sum a_i^2` in f64.
pub fn sq_norm(a: &Tensor<1>) -> f64 {
    if on_flex(a) {
        let pa = primitive(a.clone());
        let x = values(&pa);
        return dot_slices(x, x);
    }
    host_dot(a, a)
}

/// The portable reduction: a host copy of both tensors.
fn host_dot(a: &Tensor<1>, b: &Tensor<1>) -> f64 {
    let (a, b) = (a.to_data(), b.to_data());
    let (a, b) = (a.as_slice::<f32>().expect("f32"), b.as_slice::<f32>().expect("f32"));
    dot_slices(a, b)
}

fn dot_slices(a: &[f32], b: &[f32]) -> f64 {
    if a.len() <= CHUNK {
        return dot_chunk(a, b);
    }
    let parts: Vec<f64> = a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)).map(|(x, y)| dot_chunk(x, y)).collect();
    parts.iter().sum()
}

multiversion! {
    /// 16 f64 lanes, summed pairwise at the end.
    fn dot_chunk(a: &[f32], b: &[f32]) -> f64 {
        const L: usize = 16;
        let mut acc = [0f64; L];
        let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
        let mut tail = 0f64;
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            tail += *x as f64 * *y as f64;
        }
        for (x, y) in ca.zip(cb) {
            for i in 0..L {
                acc[i] += x[i] as f64 * y[i] as f64;
            }
        }
        let mut w = L;
        while w > 1 {
            w /= 2;
            for i in 0..w {
                acc[i] += acc[i + w];
            }
        }
        acc[0] + tail
    }
}

/// `t * factor`, in place when `t` is the only handle on its storage. The factor is rounded
/// to f32 first, as `mul_scalar` does.
pub fn scale(t: Tensor<1>, factor: f64) -> Tensor<1> {
    if !on_flex(&t) {
        return t.mul_scalar(factor);
    }
    let mut p = primitive(t);
    let f = factor as f32;
    values_mut(&mut p).par_chunks_mut(CHUNK).for_each(|x| scale_chunk(x, f));
    tensor(p)
}

multiversion! {
    fn scale_chunk(x: &mut [f32], f: f32) {
        for v in x {
            *v *= f;
        }
    }
}

/// The scalars of one AdamW update of one parameter, as `torch.optim.AdamW` computes them.
#[derive(Debug, Clone, Copy)]
pub struct AdamWScalars {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub lr: f64,
    pub weight_decay: f64,
    /// `1 - beta1^t` and `1 - beta2^t`.
    pub bias1: f64,
    pub bias2: f64,
}

/// The same scalars rounded to f32, as the tensor composition rounds them.
#[derive(Clone, Copy)]
struct F32Scalars {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    sqrt_bias2: f32,
    eps: f32,
    decay: f32,
    step: f32,
}

impl AdamWScalars {
    fn f32(&self) -> F32Scalars {
        F32Scalars {
            beta1: self.beta1 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            sqrt_bias2: self.bias2.sqrt() as f32,
            eps: self.eps as f32,
            decay: (1.0 - self.lr * self.weight_decay) as f32,
            step: (self.lr / self.bias1) as f32,
        }
    }
}

/// One element, in the composition's order of f32 operations (so the result is the same to
/// the bit): `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
/// `p = (1 - lr wd) p - (lr / bias1) m / (sqrt(v) / sqrt(bias2) + eps)`.
#[inline(always)]
fn adamw_element(p: f32, g: f32, m: &mut f32, v: &mut f32, s: &F32Scalars) -> f32 {
    let m1 = *m * s.beta1 + g * s.one_minus_beta1;
    let v1 = *v * s.beta2 + (g * g) * s.one_minus_beta2;
    *m = m1;
    *v = v1;
    let denom = v1.sqrt() / s.sqrt_bias2 + s.eps;
    p * s.decay - (m1 / denom) * s.step
}

multiversion! {
    fn adamw_in_place(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &F32Scalars) {
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            p[i] = adamw_element(p[i], g[i], &mut m[i], &mut v[i], s);
        }
    }
}

multiversion! {
    fn adamw_copy(p: &[f32], out: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &F32Scalars) {
        let n = out.len();
        let (p, g, m, v) = (&p[..n], &g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            out[i] = adamw_element(p[i], g[i], &mut m[i], &mut v[i], s);
        }
    }
}

/// One AdamW update of a flat parameter `p` with gradient `g` and moments `(m, v)` (zeros
/// when `None`, the first step). Returns the new parameter and moments.
pub fn adamw(
    p: Tensor<1>,
    g: Tensor<1>,
    moments: Option<(Tensor<1>, Tensor<1>)>,
    s: &AdamWScalars,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let flex = on_flex(&p) && on_flex(&g) && moments.as_ref().is_none_or(|(m, v)| on_flex(m) && on_flex(v));
    if !flex {
        return adamw_composed(p, g, moments, s);
    }
    let n = g.dims()[0];
    let g = primitive(g);
    let (mut m, mut v) = match moments {
        Some((m, v)) => (primitive(m), primitive(v)),
        None => (FlexTensor::zeros(Shape::new([n]), DType::F32), FlexTensor::zeros(Shape::new([n]), DType::F32)),
    };
    let mut p = primitive(p);
    let s = s.f32();
    let gs = values(&g);
    let (ms, vs) = (values_mut(&mut m), values_mut(&mut v));
    let exclusive = p.is_unique() && p.layout().contiguous_offsets() == Some((0, n));
    let p = if exclusive {
        let ps = values_mut(&mut p);
        ps.par_chunks_mut(CHUNK)
            .zip(gs.par_chunks(CHUNK))
            .zip(ms.par_chunks_mut(CHUNK).zip(vs.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| adamw_in_place(p, g, m, v, &s));
        p
    } else {
        let mut out = FlexTensor::zeros(Shape::new([n]), DType::F32);
        let os = values_mut(&mut out);
        os.par_chunks_mut(CHUNK)
            .zip(values(&p).par_chunks(CHUNK))
            .zip(gs.par_chunks(CHUNK).zip(ms.par_chunks_mut(CHUNK).zip(vs.par_chunks_mut(CHUNK))))
            .for_each(|((o, p), (g, (m, v)))| adamw_copy(p, o, g, m, v, &s));
        out
    };
    (tensor(p), tensor(m), tensor(v))
}

/// The same update as tensor operations, for backends other than flex.
fn adamw_composed(
    p: Tensor<1>,
    g: Tensor<1>,
    moments: Option<(Tensor<1>, Tensor<1>)>,
    s: &AdamWScalars,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let (m, v) = moments.unwrap_or_else(|| (g.zeros_like(), g.zeros_like()));
    let m = m.mul_scalar(s.beta1) + g.clone().mul_scalar(1.0 - s.beta1);
    let v = v.mul_scalar(s.beta2) + g.square().mul_scalar(1.0 - s.beta2);
    let denom = v.clone().sqrt().div_scalar(s.bias2.sqrt()).add_scalar(s.eps);
    let p = p.mul_scalar(1.0 - s.lr * s.weight_decay) - m.clone().div(denom).mul_scalar(s.lr / s.bias1);
    (p, m, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t(values: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &Device::flex())
    }

    fn v(t: &Tensor<1>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02
            })
            .collect()
    }

    /// The fused update equals the composition bit for bit, in place or not, first step or not,
    /// across chunk boundaries.
    #[test]
    fn fused_adamw_equals_the_composition_exactly() {
        let n = 3 * CHUNK + 17;
        let s = AdamWScalars {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-6,
            lr: 3e-5,
            weight_decay: 0.01,
            bias1: 1.0 - 0.9f64.powi(3),
            bias2: 1.0 - 0.98f64.powi(3),
        };
        let (p, g, m, vv) = (noise(n, 1), noise(n, 2), noise(n, 3), noise(n, 4));
        let vv: Vec<f32> = vv.iter().map(|x| x * x).collect();
        for first in [true, false] {
            let moments = |f: bool| (!f).then(|| (t(&m), t(&vv)));
            let want = adamw_composed(t(&p), t(&g), moments(first), &s);
            // Shared parameter storage (copy path) and exclusive storage (in place).
            let shared = t(&p);
            let got_copy = adamw(shared.clone(), t(&g), moments(first), &s);
            let got_in_place = adamw(t(&p), t(&g), moments(first), &s);
            for got in [got_copy, got_in_place] {
                assert_eq!(v(&got.0), v(&want.0), "parameter");
                assert_eq!(v(&got.1), v(&want.1), "first moment");
                assert_eq!(v(&got.2), v(&want.2), "second moment");
            }
            assert_eq!(v(&shared), p, "a shared parameter is not written in place");
        }
    }

    #[test]
    fn dot_and_norm_in_f64() {
        let n = 5 * CHUNK + 3;
        let (a, b) = (noise(n, 5), noise(n, 6));
        let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let got = dot(&t(&a), &t(&b));
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
        let want: f64 = a.iter().map(|x| *x as f64 * *x as f64).sum();
        assert!((sq_norm(&t(&a)) - want).abs() <= 1e-12 * want);
        assert_eq!(sq_norm(&t(&[3.0, 4.0])), 25.0);
    }

    #[test]
    fn scale_is_mul_scalar() {
        let a = noise(2 * CHUNK + 5, 7);
        let shared = t(&a);
        assert_eq!(v(&scale(shared.clone(), 0.37)), v(&t(&a).mul_scalar(0.37)));
        assert_eq!(v(&shared), a, "a shared tensor is not scaled in place");
    }
}

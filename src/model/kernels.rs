//! Fused model ops, one pass forward and one backward each, vectorised and split across
//! threads: exact (erf) GELU, the attention softmax with its scale and padding bias, the
//! Linear layers' bias add, dropout (its mask redrawn for the backward), and LayerNorm.
//!
//! They plug into burn 0.22 as a backend extension: `#[backend_extension(Flex, Autodiff)]`
//! generates the `Dispatch` routing of the [`Kernels`] trait, implemented here for `Flex`
//! (forward only: evaluation and the dev-head features) and for `Autodiff<Flex, C>` (forward
//! plus a handwritten backward registered with burn-autodiff's `Backward` / `OpsKind`). The
//! tensor-level functions ([`gelu`], [`attention_softmax`], [`LayerNorm`]) call the extension
//! on f32 flex tensors and fall back to the plain burn composition on any other backend (the
//! `cuda` feature); `tests/it/kernels.rs` checks values and gradients against that
//! composition. All three compute in f32 and return f32 whatever their input's dtype: a bf16
//! input (`train.precision = "bf16"`) is widened first, as autocast keeps these ops in f32
//! (bf16's 8-bit mantissa loses the small differences that softmax and LayerNorm are about).
//!
//! burn-autodiff composes softmax (max, sub, exp, sum, div) and LayerNorm (~8 ops) out of
//! separately differentiated operations, each a full pass that allocates and whose backward is
//! more passes; flex's own GELU calls libm's scalar `erff` on one thread.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::module::{Module, Param};
use burn::tensor::activation;
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};
use rayon::prelude::*;

use super::dropout::{Mask, apply_mask, apply_mask_composed};
use super::precision::full;
use crate::simd::{self, multiversion};

/// The fused ops; see the module documentation.
#[backend_extension(Flex, Autodiff)]
pub trait Kernels: Backend {
    /// `x Φ(x)` elementwise.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `softmax(scores * scale + bias)` over the last dimension; `scores` is `[b, h, q, k]`,
    /// `bias` `[b, 1, 1, k]` (a constant: no gradient flows to it).
    fn fused_attention_softmax(scores: FloatTensor<Self>, bias: FloatTensor<Self>, scale: f64) -> FloatTensor<Self>;
    /// `x` times a dropout mask drawn from `seed` (see [`Mask`]).
    fn fused_dropout(x: FloatTensor<Self>, seed: u64, prob: f64) -> FloatTensor<Self>;
    /// `x + bias` with `bias` `[d]` added to every row of `x` `[.., d]`.
    fn fused_bias_add(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
    /// LayerNorm over the last dimension with scale `gamma` and shift `beta`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// Whether the fused ops apply: an f32 tensor on flex (with or without autodiff).
fn fusable<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// Exact GELU, `x * 0.5 * (1 + erf(x / sqrt 2))`, in f32.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let x = full(x);
    if !fusable(&x) {
        return activation::gelu(x);
    }
    Tensor::from_dispatch(Dispatch::fused_gelu(x.into_dispatch()))
}

/// `softmax(scores * scale + bias, 3)`, the attention probabilities in f32, with `bias` the
/// additive padding mask `[b, 1, 1, k]`.
pub fn attention_softmax(scores: Tensor<4>, bias: Tensor<4>, scale: f64) -> Tensor<4> {
    let (scores, bias) = (full(scores), full(bias));
    let [b, _, _, k] = scores.dims();
    assert_eq!(bias.dims(), [b, 1, 1, k], "attention bias must be [batch, 1, 1, keys]");
    if !fusable(&scores) || !fusable(&bias) {
        return activation::softmax(scores.mul_scalar(scale) + bias, 3);
    }
    Tensor::from_dispatch(Dispatch::fused_attention_softmax(scores.into_dispatch(), bias.into_dispatch(), scale))
}

/// `x` times `mask`, in place on `x`'s storage when it holds it alone; the backward applies
/// the same mask, redrawn, to the gradient.
pub fn dropout<const D: usize>(x: Tensor<D>, mask: Mask) -> Tensor<D> {
    if !fusable(&x) {
        return apply_mask_composed(x, mask);
    }
    Tensor::from_dispatch(Dispatch::fused_dropout(x.into_dispatch(), mask.seed, mask.prob))
}

/// `x + bias` over the last dimension, in place on `x`'s storage when it holds it alone (a
/// Linear's fresh output). Its backward sums the gradient's rows in parallel; burn-autodiff's
/// broadcast add sums one dimension at a time on one thread, ~5% of a training step.
pub fn bias_add<const D: usize>(x: Tensor<D>, bias: Tensor<1>) -> Tensor<D> {
    assert_eq!(x.dims()[D - 1], bias.dims()[0], "bias length must equal the last dimension");
    if !fusable(&x) || !fusable(&bias) {
        return x + bias.unsqueeze();
    }
    Tensor::from_dispatch(Dispatch::fused_bias_add(x.into_dispatch(), bias.into_dispatch()))
}

/// LayerNorm over the last dimension, as `burn::nn::LayerNorm` (same parameter names, so the
/// same checkpoint keys), computed by the fused op.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    #[module(skip)]
    pub epsilon: f64,
}

impl LayerNorm {
    /// Scale 1, shift 0.
    pub fn new(d: usize, epsilon: f64, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            epsilon,
        }
    }

    /// LayerNorm of `x`, in f32.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = full(x);
        let (gamma, beta) = (self.gamma.val(), self.beta.val());
        if !fusable(&x) || !fusable(&gamma) || !fusable(&beta) {
            return layer_norm_composed(x, gamma, beta, self.epsilon);
        }
        Tensor::from_dispatch(Dispatch::fused_layer_norm(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            self.epsilon,
        ))
    }
}

/// LayerNorm as plain tensor operations (the definition the fused op is checked against).
pub fn layer_norm_composed<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f64) -> Tensor<D> {
    let mean = x.clone().mean_dim(D - 1);
    let centered = x - mean;
    let var = centered.clone().square().mean_dim(D - 1);
    let normed = centered / var.add_scalar(epsilon).sqrt();
    normed * gamma.unsqueeze() + beta.unsqueeze()
}

// ---------------------------------------------------------------------------------------------
// Flex: forward only.

impl Kernels for Flex {
    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        gelu_forward(x)
    }

    fn fused_attention_softmax(scores: FlexTensor, bias: FlexTensor, scale: f64) -> FlexTensor {
        softmax_forward(scores, &bias, scale as f32)
    }

    fn fused_dropout(x: FlexTensor, seed: u64, prob: f64) -> FlexTensor {
        dropout_apply(x, Mask { seed, prob })
    }

    fn fused_bias_add(x: FlexTensor, bias: FlexTensor) -> FlexTensor {
        bias_add_forward(x, &bias)
    }

    fn fused_layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> FlexTensor {
        layer_norm_forward(x, &gamma, &beta, epsilon as f32, false).0
    }
}

// ---------------------------------------------------------------------------------------------
// Autodiff<Flex>: forward plus a handwritten backward.

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(parent) = parent {
            grads.register::<Flex>(parent.id, gelu_backward(&ops.state, grad));
        }
    }
}

#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    /// The output (the probabilities) and the scale.
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<(FlexTensor, f32), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(parent) = parent {
            let (probs, scale) = ops.state;
            grads.register::<Flex>(parent.id, softmax_backward(&probs, grad, scale));
        }
    }
}

#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    /// The mask, redrawn for the gradient.
    type State = Mask;

    fn backward(self, ops: Ops<Mask, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(parent) = parent {
            grads.register::<Flex>(parent.id, dropout_apply(grad, ops.state));
        }
    }
}

#[derive(Debug)]
struct BiasAddBackward;

impl Backward<Flex, 2> for BiasAddBackward {
    type State = ();

    fn backward(self, ops: Ops<(), 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pbias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(p) = pbias {
            grads.register::<Flex>(p.id, column_sums(&grad));
        }
        if let Some(p) = px {
            grads.register::<Flex>(p.id, grad);
        }
    }
}

#[derive(Debug)]
struct LayerNormBackward;

/// What LayerNorm's backward needs: the normalised input, 1/std per row, and gamma.
#[derive(Debug, Clone)]
struct LayerNormState {
    normed: FlexTensor,
    rstd: Arc<Vec<f32>>,
    gamma: FlexTensor,
}

impl Backward<Flex, 3> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<LayerNormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pgamma, pbeta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let (dx, dgamma, dbeta) =
            layer_norm_backward(&s.normed, &s.rstd, &s.gamma, grad, px.is_some(), pgamma.is_some() || pbeta.is_some());
        if let (Some(p), Some(dx)) = (px, dx) {
            grads.register::<Flex>(p.id, dx);
        }
        if let Some((dgamma, dbeta)) = dgamma.zip(dbeta) {
            if let Some(p) = pgamma {
                grads.register::<Flex>(p.id, dgamma);
            }
            if let Some(p) = pbeta {
                grads.register::<Flex>(p.id, dbeta);
            }
        }
    }
}

impl<C: CheckpointStrategy> Kernels for Autodiff<Flex, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match GeluBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = gelu_forward(x.clone());
                prep.finish(x, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(gelu_forward(x)),
        }
    }

    fn fused_attention_softmax(scores: FloatTensor<Self>, bias: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        let bias = bias.into_primitive();
        let (scores, node) = scores.into_parts();
        let scale = scale as f32;
        match SoftmaxBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let probs = softmax_forward(scores, &bias, scale);
                prep.finish((probs.clone(), scale), probs)
            }
            OpsKind::UnTracked(prep) => prep.finish(softmax_forward(scores, &bias, scale)),
        }
    }

    fn fused_dropout(x: FloatTensor<Self>, seed: u64, prob: f64) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        let mask = Mask { seed, prob };
        match DropoutBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(mask, dropout_apply(x, mask)),
            OpsKind::UnTracked(prep) => prep.finish(dropout_apply(x, mask)),
        }
    }

    fn fused_bias_add(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, nx) = x.into_parts();
        let (bias, nb) = bias.into_parts();
        BiasAddBackward.prepare::<C>([nx, nb]).compute_bound().stateless(bias_add_forward(x, &bias))
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let (x, nx) = x.into_parts();
        let (gamma, ng) = gamma.into_parts();
        let (beta, nb) = beta.into_parts();
        match LayerNormBackward.prepare::<C>([nx, ng, nb]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, saved) = layer_norm_forward(x, &gamma, &beta, epsilon as f32, true);
                let (normed, rstd) = saved.expect("saved for backward");
                prep.finish(LayerNormState { normed, rstd: Arc::new(rstd), gamma }, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(layer_norm_forward(x, &gamma, &beta, epsilon as f32, false).0),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels on flex storage.

/// Rows per rayon task for the row-wise kernels (softmax, LayerNorm).
const ROWS_PER_TASK: usize = 64;

fn contiguous(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "fused kernels take f32");
    let n = t.layout().num_elements();
    match t.layout().contiguous_offsets() {
        Some((_, _)) if t.bytes().len() == n * 4 && t.layout().start_offset() == 0 => t,
        _ => t.to_contiguous(),
    }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32")
}

fn new_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `f` on `x`'s values: in place when `x` holds its storage alone (a fresh op output), else on
/// a copy, so a tensor held elsewhere is never written.
fn in_place_or_copy(x: FlexTensor, f: impl Fn(&mut [f32])) -> FlexTensor {
    let mut x = contiguous(x);
    if let Some(v) = x.try_storage_mut::<f32>() {
        f(v);
        return x;
    }
    let mut out = values(&x).to_vec();
    f(&mut out);
    new_tensor(out, x.layout().shape().clone())
}

/// `f` over `x`'s values into a new tensor, or in place when `x` holds its storage alone.
fn map_chunks(x: FlexTensor, in_place: fn(&mut [f32]), copy: fn(&[f32], &mut [f32])) -> FlexTensor {
    let mut x = contiguous(x);
    if let Some(values) = x.try_storage_mut::<f32>() {
        values.par_chunks_mut(simd::CHUNK).for_each(in_place);
        return x;
    }
    let shape = x.layout().shape().clone();
    let src = values(&x);
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(simd::CHUNK).zip(src.par_chunks(simd::CHUNK)).for_each(|(o, i)| copy(i, o));
    new_tensor(out, shape)
}

multiversion! {
    fn gelu_in_place(x: &mut [f32]) {
        for v in x {
            *v = simd::gelu(*v);
        }
    }
}

multiversion! {
    fn gelu_copy(x: &[f32], y: &mut [f32]) {
        for (y, x) in y.iter_mut().zip(x) {
            *y = simd::gelu(*x);
        }
    }
}

multiversion! {
    /// `g *= gelu'(x)`.
    fn gelu_grad_in_place(x: &[f32], g: &mut [f32]) {
        for (g, x) in g.iter_mut().zip(x) {
            *g *= simd::gelu_grad(*x);
        }
    }
}

multiversion! {
    fn gelu_grad_copy(x: &[f32], g: &[f32], out: &mut [f32]) {
        let n = out.len();
        let (x, g) = (&x[..n], &g[..n]);
        for i in 0..n {
            out[i] = g[i] * simd::gelu_grad(x[i]);
        }
    }
}

fn gelu_forward(x: FlexTensor) -> FlexTensor {
    map_chunks(x, gelu_in_place, gelu_copy)
}

fn gelu_backward(x: &FlexTensor, grad: FlexTensor) -> FlexTensor {
    let x = contiguous(x.clone());
    let xs = values(&x);
    let mut grad = contiguous(grad);
    if let Some(g) = grad.try_storage_mut::<f32>() {
        g.par_chunks_mut(simd::CHUNK).zip(xs.par_chunks(simd::CHUNK)).for_each(|(g, x)| gelu_grad_in_place(x, g));
        return grad;
    }
    let gs = values(&grad);
    let mut out = vec![0f32; gs.len()];
    out.par_chunks_mut(simd::CHUNK)
        .zip(xs.par_chunks(simd::CHUNK).zip(gs.par_chunks(simd::CHUNK)))
        .for_each(|(o, (x, g))| gelu_grad_copy(x, g, o));
    new_tensor(out, x.layout().shape().clone())
}

/// Whole rows of width `d` per rayon task, about [`simd::CHUNK`] values.
fn row_chunk(d: usize) -> usize {
    (simd::CHUNK / d).max(1) * d
}

multiversion! {
    /// `rows[i] += bias` for every row of width `bias.len()`.
    fn add_bias_rows(rows: &mut [f32], bias: &[f32]) {
        for row in rows.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += *b;
            }
        }
    }
}

multiversion! {
    /// `acc += row` for every row of width `acc.len()`.
    fn sum_rows_into(rows: &[f32], acc: &mut [f32]) {
        for row in rows.chunks_exact(acc.len()) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += *v;
            }
        }
    }
}

fn dropout_apply(x: FlexTensor, mask: Mask) -> FlexTensor {
    in_place_or_copy(x, |v| apply_mask(v, mask))
}

fn bias_add_forward(x: FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let bias = contiguous(bias.clone());
    let b = values(&bias);
    let chunk = row_chunk(b.len());
    in_place_or_copy(x, |v| v.par_chunks_mut(chunk).for_each(|rows| add_bias_rows(rows, b)))
}

/// The sum of `grad`'s rows (over every dimension but the last). Each task sums its rows, and
/// the partial sums are added in order, so the result does not depend on the thread count.
fn column_sums(grad: &FlexTensor) -> FlexTensor {
    let grad = contiguous(grad.clone());
    let shape = grad.layout().shape();
    let d = shape[shape.num_dims() - 1];
    let partials: Vec<Vec<f32>> = values(&grad)
        .par_chunks(row_chunk(d))
        .map(|rows| {
            let mut acc = vec![0f32; d];
            sum_rows_into(rows, &mut acc);
            acc
        })
        .collect();
    let mut total = vec![0f32; d];
    for p in &partials {
        sum_rows_into(p, &mut total);
    }
    new_tensor(total, Shape::new([d]))
}

/// Sum of `x`, in 16 lanes.
#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Maximum of `x`, in 16 lanes.
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b));
    for c in chunks {
        for i in 0..16 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter().fold(tail, |a, b| a.max(*b))
}

/// Sum of `x * y`, in 16 lanes.
#[inline(always)]
fn lane_dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (cx, cy) = (x.chunks_exact(16), y.chunks_exact(16));
    let tail: f32 = cx.remainder().iter().zip(cy.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in cx.zip(cy) {
        for i in 0..16 {
            acc[i] += a[i] * b[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// Rows of scores replaced by the softmax of `scores * scale + bias`; rows `[first_row,
    /// ...)` of the whole tensor, `rows_per_bias` consecutive rows sharing one bias row.
    fn softmax_rows(rows: &mut [f32], bias: &[f32], k: usize, first_row: usize, rows_per_bias: usize, scale: f32) {
        for (r, o) in rows.chunks_exact_mut(k).enumerate() {
            let b = (first_row + r) / rows_per_bias;
            let bias = &bias[b * k..(b + 1) * k];
            for j in 0..k {
                o[j] = o[j] * scale + bias[j];
            }
            let max = lane_max(o);
            for v in o.iter_mut() {
                *v = simd::exp(*v - max);
            }
            let inv = 1.0 / lane_sum(o);
            for v in o.iter_mut() {
                *v *= inv;
            }
        }
    }
}

multiversion! {
    /// `g = scale * y * (g - sum(g * y))` per row, in place.
    fn softmax_grad_rows(y: &[f32], g: &mut [f32], k: usize, scale: f32) {
        for (y, g) in y.chunks_exact(k).zip(g.chunks_exact_mut(k)) {
            let dot = lane_dot(g, y);
            for j in 0..k {
                g[j] = scale * y[j] * (g[j] - dot);
            }
        }
    }
}

/// In place when `scores` holds its storage alone (a matmul's fresh output), which saves
/// allocating and zero-filling a 16 x 12 x 128 x 128 buffer per layer.
fn softmax_forward(scores: FlexTensor, bias: &FlexTensor, scale: f32) -> FlexTensor {
    let bias = contiguous(bias.clone());
    let shape = scores.layout().shape();
    let k = shape[shape.num_dims() - 1];
    let b = values(&bias);
    let rows_per_bias = shape.num_elements() / b.len();
    let chunk = ROWS_PER_TASK * k;
    in_place_or_copy(scores, |v| {
        v.par_chunks_mut(chunk).enumerate().for_each(|(i, rows)| {
            softmax_rows(rows, b, k, i * ROWS_PER_TASK, rows_per_bias, scale);
        })
    })
}

fn softmax_backward(probs: &FlexTensor, grad: FlexTensor, scale: f32) -> FlexTensor {
    let probs = contiguous(probs.clone());
    let k = probs.layout().shape()[probs.layout().num_dims() - 1];
    let mut grad = contiguous(grad);
    let chunk = ROWS_PER_TASK * k;
    let y = values(&probs);
    // `storage_mut` copies the gradient only if another handle shares it.
    let g = grad.storage_mut::<f32>();
    g.par_chunks_mut(chunk).zip(y.par_chunks(chunk)).for_each(|(g, y)| softmax_grad_rows(y, g, k, scale));
    grad
}

multiversion! {
    /// LayerNorm rows of `x` into `out`; with `normed` / `rstd`, also the normalised values
    /// and 1/std per row for the backward.
    fn layer_norm_rows(x: &[f32], out: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32, normed: Option<&mut [f32]>, rstd: Option<&mut [f32]>) {
        let (mut normed, mut rstd) = (normed, rstd);
        let d = gamma.len();
        let inv_d = 1.0 / d as f32;
        for (r, (x, o)) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            let mean = lane_sum(x) * inv_d;
            for j in 0..d {
                o[j] = x[j] - mean;
            }
            let var = lane_dot(o, o) * inv_d;
            let rs = 1.0 / (var + eps).sqrt();
            if let Some(n) = normed.as_deref_mut() {
                let n = &mut n[r * d..(r + 1) * d];
                for j in 0..d {
                    n[j] = o[j] * rs;
                }
            }
            if let Some(s) = rstd.as_deref_mut() {
                s[r] = rs;
            }
            for j in 0..d {
                o[j] = o[j] * rs * gamma[j] + beta[j];
            }
        }
    }
}

/// LayerNorm forward; with `save`, also the normalised input and 1/std per row.
fn layer_norm_forward(
    x: FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    eps: f32,
    save: bool,
) -> (FlexTensor, Option<(FlexTensor, Vec<f32>)>) {
    let x = contiguous(x);
    let (gamma, beta) = (contiguous(gamma.clone()), contiguous(beta.clone()));
    let shape = x.layout().shape().clone();
    let (xs, g, b) = (values(&x), values(&gamma), values(&beta));
    let d = g.len();
    let rows = xs.len() / d;
    let mut out = vec![0f32; xs.len()];
    let chunk = ROWS_PER_TASK * d;
    if !save {
        out.par_chunks_mut(chunk)
            .zip(xs.par_chunks(chunk))
            .for_each(|(o, x)| layer_norm_rows(x, o, g, b, eps, None, None));
        return (new_tensor(out, shape), None);
    }
    let mut normed = vec![0f32; xs.len()];
    let mut rstd = vec![0f32; rows];
    out.par_chunks_mut(chunk)
        .zip(xs.par_chunks(chunk))
        .zip(normed.par_chunks_mut(chunk).zip(rstd.par_chunks_mut(ROWS_PER_TASK)))
        .for_each(|((o, x), (n, s))| layer_norm_rows(x, o, g, b, eps, Some(n), Some(s)));
    (new_tensor(out, shape.clone()), Some((new_tensor(normed, shape), rstd)))
}

multiversion! {
    /// For rows of `dy` (in place, becoming dx when `want_dx`): accumulate `dgamma += dy * normed`
    /// and `dbeta += dy`, then `dx = rstd (dy gamma - mean(dy gamma) - normed mean(dy gamma normed))`.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_grad_rows(dy: &mut [f32], normed: &[f32], rstd: &[f32], gamma: &[f32], dgamma: &mut [f32], dbeta: &mut [f32], want_dx: bool, want_params: bool) {
        let d = gamma.len();
        let inv_d = 1.0 / d as f32;
        let mut scaled = vec![0f32; d];
        for (r, (dy, n)) in dy.chunks_exact_mut(d).zip(normed.chunks_exact(d)).enumerate() {
            if want_params {
                for j in 0..d {
                    dgamma[j] += dy[j] * n[j];
                    dbeta[j] += dy[j];
                }
            }
            if want_dx {
                for j in 0..d {
                    scaled[j] = dy[j] * gamma[j];
                }
                let mean = lane_sum(&scaled) * inv_d;
                let mean_n = lane_dot(&scaled, n) * inv_d;
                let rs = rstd[r];
                for j in 0..d {
                    dy[j] = rs * (scaled[j] - mean - n[j] * mean_n);
                }
            }
        }
    }
}

type LayerNormGrads = (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>);

/// `(dx, dgamma, dbeta)` from the output gradient.
fn layer_norm_backward(
    normed: &FlexTensor,
    rstd: &[f32],
    gamma: &FlexTensor,
    grad: FlexTensor,
    want_dx: bool,
    want_params: bool,
) -> LayerNormGrads {
    let normed = contiguous(normed.clone());
    let gamma = contiguous(gamma.clone());
    let (n, g) = (values(&normed), values(&gamma));
    let d = g.len();
    let mut grad = contiguous(grad);
    let chunk = ROWS_PER_TASK * d;
    let dy = grad.storage_mut::<f32>();
    // Per-task partial sums of dgamma / dbeta, added in task order: the same result for any
    // number of threads.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dy
        .par_chunks_mut(chunk)
        .zip(n.par_chunks(chunk).zip(rstd.par_chunks(ROWS_PER_TASK)))
        .map(|(dy, (n, rs))| {
            let (mut dgamma, mut dbeta) = (vec![0f32; d], vec![0f32; d]);
            layer_norm_grad_rows(dy, n, rs, g, &mut dgamma, &mut dbeta, want_dx, want_params);
            (dgamma, dbeta)
        })
        .collect();
    let params = want_params.then(|| {
        let (mut dgamma, mut dbeta) = (vec![0f32; d], vec![0f32; d]);
        for (pg, pb) in &partials {
            for j in 0..d {
                dgamma[j] += pg[j];
                dbeta[j] += pb[j];
            }
        }
        (new_tensor(dgamma, Shape::new([d])), new_tensor(dbeta, Shape::new([d])))
    });
    let (dgamma, dbeta) = params.unzip();
    (want_dx.then_some(grad), dgamma, dbeta)
}

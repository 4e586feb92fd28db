//! The dtype the encoder's matmuls compute in (`train.precision`). burn 0.22 has no autocast,
//! so bf16 is explicit casts at the few places that decide it: [`Precision::linear`] and
//! [`Precision::matmul`] cast their operands to the compute dtype, and [`full`] brings a result
//! back to f32. Everything else stays f32 as torch's autocast keeps it: the parameters and
//! AdamW's moments (the master weights), the residual stream, softmax, LayerNorm, GELU (the
//! fused kernels widen their input), the classification head and the losses, and so
//! everything META-TARTAN does with gradients. The embeddings stay f32 too: a lookup and a sum
//! going straight into LayerNorm, with no matmul for bf16 to speed up. A cast is
//! differentiated by casting the gradient back (burn-autodiff's `float_cast`), so each f32
//! parameter receives an f32 gradient.

use burn::nn::Linear;
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use super::kernels;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Linear layers, the attention matmuls and the MLM decoder in bf16, the rest in f32.
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// `x` in the compute dtype (no-op when it already is).
    fn cast<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        x.cast(self.dtype())
    }

    /// `layer(x)` in the compute dtype: input, weight and bias are cast, so the parameters
    /// stay f32 and their gradients come back f32 through the cast. The result stays in the
    /// compute dtype, for a following matmul; [`full`] widens it.
    ///
    /// The leading dimensions are folded into rows, so the product is one `[rows, d_in] @
    /// [d_in, d_out]` matmul: burn's `linear` keeps a `[b, s, d]` input batched, which on flex
    /// is `b` smaller products forward and, backward, `b` weight gradients summed afterwards
    /// (16 x 128 rows: 384 -> 1536 took 9.3 ms batched against 7.6 ms folded).
    pub fn linear<const D: usize>(self, layer: &Linear, x: Tensor<D>) -> Tensor<D> {
        let mut dims = x.dims();
        let rows = dims[..D - 1].iter().product();
        let folded = self.cast(x).reshape([rows, dims[D - 1]]);
        let mut y = folded.matmul(self.cast(layer.weight.val()));
        if let Some(bias) = &layer.bias {
            y = kernels::bias_add(y, self.cast(bias.val()));
        }
        dims[D - 1] = y.dims()[1];
        y.reshape(dims)
    }

    /// `a @ b` in the compute dtype.
    pub fn matmul<const D: usize>(self, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
        self.cast(a).matmul(self.cast(b))
    }
}

/// `x` in f32: the dtype of the residual stream, the normalisations and the losses.
pub fn full<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.cast(FloatDType::F32)
}

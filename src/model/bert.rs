//! BERT / RoBERTa encoder. Field names follow the Hugging Face checkpoint keys
//! (`embeddings.word_embeddings.weight`, `encoder.layer.3.attention.self.query.weight`, ...),
//! so that the key mapping in `weights.rs` stays a handful of renames.
#![allow(non_snake_case)] // `LayerNorm` fields match the checkpoint keys.

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::config::{Family, ModelConfig};
use super::dropout::{Dropout, DropoutSeed};
use super::init::Init;
use super::kernels::{self, LayerNorm};
use super::precision::{Precision, full};

/// One padded batch as the encoder sees it; masks are 1 for tokens and 0 for padding.
#[derive(Debug, Clone)]
pub struct EncoderInput {
    pub input_ids: Tensor<2, Int>,
    pub attention_mask: Tensor<2, Int>,
    pub token_type_ids: Tensor<2, Int>,
}

impl EncoderInput {
    /// Token id sequences padded with `pad_id` to the longest one, with their mask.
    pub fn pad(seqs: &[&[u32]], pad_id: u32, device: &Device) -> Self {
        let b = seqs.len();
        let s = seqs.iter().map(|x| x.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![pad_id as i64; b * s];
        let mut mask = vec![0i64; b * s];
        for (row, seq) in seqs.iter().enumerate() {
            for (col, &t) in seq.iter().enumerate() {
                ids[row * s + col] = t as i64;
                mask[row * s + col] = 1;
            }
        }
        let int = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, s]), device);
        Self { input_ids: int(ids), attention_mask: int(mask), token_type_ids: Tensor::<2, Int>::zeros([b, s], device) }
    }
}

pub(crate) fn layer_norm(d: usize, eps: f64, device: &Device) -> LayerNorm {
    LayerNorm::new(d, eps, device)
}

#[derive(Module, Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub LayerNorm: LayerNorm,
    pub dropout: Dropout,
    #[module(skip)]
    family: Family,
    #[module(skip)]
    pad_token_id: usize,
}

impl Embeddings {
    fn new(c: &ModelConfig, seed: &DropoutSeed, init: &mut Init, device: &Device) -> Self {
        Self {
            word_embeddings: init.hf_embedding(c.vocab_size, c.hidden_size, device),
            position_embeddings: init.hf_embedding(c.max_position_embeddings, c.hidden_size, device),
            token_type_embeddings: init.hf_embedding(c.type_vocab_size, c.hidden_size, device),
            LayerNorm: layer_norm(c.hidden_size, c.layer_norm_eps, device),
            dropout: Dropout::new(c.hidden_dropout_prob, seed),
            family: c.family,
            pad_token_id: c.pad_token_id,
        }
    }

    fn forward(&self, input: &EncoderInput) -> Tensor<3> {
        let [batch, seq] = input.input_ids.dims();
        let device = input.input_ids.device();
        let positions = match self.family {
            Family::Bert => Tensor::<1, Int>::arange(0..seq as i64, &device).unsqueeze::<2>().repeat_dim(0, batch),
            // RoBERTa counts positions from pad_token_id + 1 and gives padding pad_token_id.
            Family::Roberta => {
                let mask = input.attention_mask.clone();
                mask.clone().cumsum(1).mul(mask).add_scalar(self.pad_token_id as i64)
            }
        };
        let x = self.word_embeddings.forward(input.input_ids.clone())
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(input.token_type_ids.clone());
        self.dropout.forward(self.LayerNorm.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub dropout: Dropout,
    #[module(skip)]
    num_heads: usize,
}

impl SelfAttention {
    /// `mask_bias` is 0 for tokens and a large negative number for padding, shape `[b, 1, 1, s]`.
    /// The result is in `p`'s compute dtype; the softmax is f32 whatever `p`.
    fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>, p: Precision) -> Tensor<3> {
        let [b, s, h] = x.dims();
        let head_dim = h / self.num_heads;
        let split = |t: Tensor<3>| t.reshape([b, s, self.num_heads, head_dim]).swap_dims(1, 2);
        let q = split(p.linear(&self.query, x.clone()));
        let k = split(p.linear(&self.key, x.clone()));
        let v = split(p.linear(&self.value, x));
        let scores = p.matmul(q, k.transpose());
        let probs = self.dropout.forward(kernels::attention_softmax(scores, mask_bias, 1.0 / (head_dim as f64).sqrt()));
        p.matmul(probs, v).swap_dims(1, 2).reshape([b, s, h])
    }
}

/// A dense layer, dropout, residual and LayerNorm: `attention.output` and `output` in HF.
#[derive(Module, Debug)]
pub struct ResidualOutput {
    pub dense: Linear,
    pub LayerNorm: LayerNorm,
    pub dropout: Dropout,
}

impl ResidualOutput {
    fn new(d_in: usize, c: &ModelConfig, seed: &DropoutSeed, init: &mut Init, device: &Device) -> Self {
        Self {
            dense: init.hf_linear(d_in, c.hidden_size, device),
            LayerNorm: layer_norm(c.hidden_size, c.layer_norm_eps, device),
            dropout: Dropout::new(c.hidden_dropout_prob, seed),
        }
    }

    /// The dense layer in `p`'s compute dtype; dropout, residual and LayerNorm in f32.
    fn forward(&self, x: Tensor<3>, residual: Tensor<3>, p: Precision) -> Tensor<3> {
        self.LayerNorm.forward(self.dropout.forward(full(p.linear(&self.dense, x))) + residual)
    }
}

#[derive(Module, Debug)]
pub struct Attention {
    /// `attention.self` in the checkpoint (`self` is a Rust keyword).
    pub self_: SelfAttention,
    pub output: ResidualOutput,
}

#[derive(Module, Debug)]
pub struct Intermediate {
    pub dense: Linear,
}

#[derive(Module, Debug)]
pub struct Layer {
    pub attention: Attention,
    pub intermediate: Intermediate,
    pub output: ResidualOutput,
}

impl Layer {
    fn new(c: &ModelConfig, seed: &DropoutSeed, init: &mut Init, device: &Device) -> Self {
        let h = c.hidden_size;
        Self {
            attention: Attention {
                self_: SelfAttention {
                    query: init.hf_linear(h, h, device),
                    key: init.hf_linear(h, h, device),
                    value: init.hf_linear(h, h, device),
                    dropout: Dropout::new(c.attention_probs_dropout_prob, seed),
                    num_heads: c.num_attention_heads,
                },
                output: ResidualOutput::new(h, c, seed, init, device),
            },
            intermediate: Intermediate { dense: init.hf_linear(h, c.intermediate_size, device) },
            output: ResidualOutput::new(c.intermediate_size, c, seed, init, device),
        }
    }

    fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>, p: Precision) -> Tensor<3> {
        let attended = self.attention.self_.forward(x.clone(), mask_bias, p);
        let x = self.attention.output.forward(attended, x, p);
        let inner = kernels::gelu(p.linear(&self.intermediate.dense, x.clone()));
        self.output.forward(inner, x, p)
    }
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub layer: Vec<Layer>,
}

/// `BertModel` / `RobertaModel` without the pooler (TARTAN's heads read the CLS vector).
#[derive(Module, Debug)]
pub struct Bert {
    pub embeddings: Embeddings,
    pub encoder: Encoder,
    /// What the layers' matmuls compute in (`train.precision`); the output is f32 either way.
    #[module(skip)]
    precision: Precision,
}

impl Bert {
    /// An encoder initialised as Hugging Face's from `seed`. Its dropouts share one mask
    /// stream, which the encoder owns.
    pub fn new(c: &ModelConfig, seed: u64, device: &Device) -> Self {
        Self::build(c, &mut Init::new(seed, "encoder"), device)
    }

    /// An encoder of zeros, for loading a checkpoint into: loading replaces every parameter.
    pub fn placeholder(c: &ModelConfig, device: &Device) -> Self {
        Self::build(c, &mut Init::placeholder(), device)
    }

    fn build(c: &ModelConfig, init: &mut Init, device: &Device) -> Self {
        let masks = DropoutSeed::default();
        let embeddings = Embeddings::new(c, &masks, init, device);
        Self {
            embeddings,
            encoder: Encoder { layer: (0..c.num_hidden_layers).map(|_| Layer::new(c, &masks, init, device)).collect() },
            precision: Precision::F32,
        }
    }

    /// This encoder computing in `precision`; its parameters stay f32.
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The mask stream of this encoder's dropouts.
    pub fn dropout_seed(&self) -> &DropoutSeed {
        &self.embeddings.dropout.seed
    }

    pub fn hidden_size(&self) -> usize {
        self.embeddings.word_embeddings.weight.lazy_shape().dims::<2>()[1]
    }

    /// The last layer's hidden states, `[batch, seq, hidden]`.
    pub fn forward(&self, input: &EncoderInput) -> Tensor<3> {
        self.run(input, |_| {})
    }

    /// The embeddings output followed by every layer's output, as HF's `output_hidden_states`.
    pub fn forward_all(&self, input: &EncoderInput) -> Vec<Tensor<3>> {
        let mut all = Vec::with_capacity(self.encoder.layer.len() + 1);
        let last = self.run(input, |h| all.push(h.clone()));
        all.push(last);
        all
    }

    fn run(&self, input: &EncoderInput, mut each_but_last: impl FnMut(&Tensor<3>)) -> Tensor<3> {
        let mut x = self.embeddings.forward(input);
        let mask_bias = attention_bias(&input.attention_mask);
        for layer in &self.encoder.layer {
            each_but_last(&x);
            x = layer.forward(x, mask_bias.clone(), self.precision);
        }
        x
    }
}

/// Additive attention bias as in HF: 0 where attended, the most negative f32 on padding.
fn attention_bias(mask: &Tensor<2, Int>) -> Tensor<4> {
    let [b, s] = mask.dims();
    mask.clone().float().neg().add_scalar(1.0).mul_scalar(f32::MIN).reshape([b, 1, 1, s])
}

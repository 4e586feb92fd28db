//! Task heads on top of the shared encoder.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Int, Tensor};

use super::bert::layer_norm;
use super::config::ModelConfig;
use super::dropout::{Dropout, DropoutSeed};
use super::init::Init;
use super::kernels::{self, LayerNorm};
use super::precision::{Precision, full};

/// TARTAN's end-task head: CLS of the last layer -> dropout -> Linear(h, h) + tanh -> dropout ->
/// Linear(h, n_labels). Names follow `RobertaClassificationHead`. It computes in f32 whatever
/// `train.precision`: two small matmuls on one vector per example, feeding the loss.
///
/// Both Linear layers start as `torch.nn.Linear` does (weights and biases uniform in
/// ±1/sqrt(fan_in)), which is what the reference's allennlp head and the PyTorch fine-tune
/// figure use. The Hugging Face encoder init (normal, std 0.02, zero bias) measured 10 points
/// worse on ChemProt at lr 5e-5 after one epoch (docs/RESULTS.md): the small tanh layer's
/// gradient reaches the encoder scaled down by its weights.
#[derive(Module, Debug)]
pub struct ClassificationHead {
    pub dense: Linear,
    pub out_proj: Linear,
    pub dropout: Dropout,
}

impl ClassificationHead {
    /// A fresh head drawn from `seed` (`model::init`: the same weights on every backend).
    pub fn new(hidden: usize, n_labels: usize, dropout: f64, seed: u64, device: &Device) -> Self {
        let init = &mut Init::new(seed, "classifier");
        Self {
            dense: init.torch_linear(hidden, hidden, device),
            out_proj: init.torch_linear(hidden, n_labels, device),
            dropout: Dropout::new(dropout, &DropoutSeed::default()),
        }
    }

    /// Logits `[batch, n_labels]` from the encoder's last hidden states `[batch, seq, hidden]`.
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        self.forward_features(cls_vector(hidden))
    }

    /// Logits from CLS vectors `[batch, hidden]`, e.g. features computed once without autodiff.
    pub fn forward_features(&self, cls: Tensor<2>) -> Tensor<2> {
        let x = self.dense.forward(self.dropout.forward(cls)).tanh();
        self.out_proj.forward(self.dropout.forward(x))
    }
}

/// The hidden state of the first token (`[CLS]` / `<s>`), `[batch, hidden]`.
pub fn cls_vector(hidden: Tensor<3>) -> Tensor<2> {
    let [b, _, h] = hidden.dims();
    hidden.narrow(1, 0, 1).reshape([b, h])
}

/// Masked-LM head shared by BERT (`cls.predictions.transform.*`, `cls.predictions.bias`) and
/// RoBERTa (`lm_head.dense`, `lm_head.layer_norm`, `lm_head.bias`): dense + GELU + LayerNorm,
/// then the decoder tied to the word embeddings, plus a bias.
#[derive(Module, Debug)]
pub struct MlmHead {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    pub bias: Param<Tensor<1>>,
}

impl MlmHead {
    /// A fresh head as Hugging Face initialises one, drawn from `seed`; the decoder is the
    /// word embeddings.
    pub fn new(c: &ModelConfig, seed: u64, device: &Device) -> Self {
        Self {
            dense: Init::new(seed, "mlm_head").hf_linear(c.hidden_size, c.hidden_size, device),
            layer_norm: layer_norm(c.hidden_size, c.layer_norm_eps, device),
            bias: Param::from_tensor(Tensor::zeros([c.vocab_size], device)),
        }
    }

    /// Vocabulary logits `[n, vocab]` at the `positions` (flat indices into `batch * seq`).
    /// Only the masked positions go through the decoder, which is where the cost is.
    pub fn forward_at(
        &self,
        hidden: Tensor<3>,
        positions: Tensor<1, Int>,
        word_embeddings: Tensor<2>,
        p: Precision,
    ) -> Tensor<2> {
        let [b, s, h] = hidden.dims();
        self.forward_picked(hidden.reshape([b * s, h]).select(0, positions), word_embeddings, p)
    }

    /// Vocabulary logits `[n, vocab]` (f32) from the hidden states `[n, hidden]` of masked
    /// positions; the dense layer and the decoder compute in `p`'s dtype.
    pub fn forward_picked(&self, picked: Tensor<2>, word_embeddings: Tensor<2>, p: Precision) -> Tensor<2> {
        let x = self.layer_norm.forward(kernels::gelu(p.linear(&self.dense, picked)));
        full(p.matmul(x, word_embeddings.transpose())) + self.bias.val().unsqueeze::<2>()
    }
}

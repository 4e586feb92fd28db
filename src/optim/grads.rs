//! Accumulated gradients, flattened per parameter, with the reductions the loop needs
//! (global norms, dot products) summed in f64 where the gradients lie (`kernels`), without
//! host copies.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{Gradients, Tensor};
use indexmap::IndexMap;

use super::kernels;

/// Gradients of one optimizer step, keyed by parameter, in the module's visiting order so
/// that f64 sums over them are the same from run to run (a `HashMap`'s order is random).
#[derive(Default, Clone)]
pub struct GradBuffer {
    grads: IndexMap<ParamId, Tensor<1>>,
}

impl GradBuffer {
    /// Adds the gradients of `module`'s parameters found in `grads`.
    pub fn add<M: Module>(&mut self, module: &M, grads: &Gradients) {
        struct Add<'a> {
            grads: &'a Gradients,
            into: &'a mut IndexMap<ParamId, Tensor<1>>,
        }
        impl ModuleVisitor for Add<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let Some(g) = param.val().grad(self.grads) else { return };
                let n = g.shape().num_elements();
                let g = g.reshape([n]);
                match self.into.get_mut(&param.id) {
                    // Moved out (not cloned) so that the sum can reuse its storage.
                    Some(acc) => {
                        let sum = std::mem::replace(acc, g.clone());
                        *acc = sum + g;
                    }
                    None => {
                        self.into.insert(param.id, g);
                    }
                }
            }
        }
        module.visit(&mut Add { grads, into: &mut self.grads });
    }

    pub fn get(&self, id: &ParamId) -> Option<&Tensor<1>> {
        self.grads.get(id)
    }

    pub fn remove(&mut self, id: &ParamId) -> Option<Tensor<1>> {
        self.grads.shift_remove(id)
    }

    /// Keeps only the parameters `keep` selects.
    pub fn retain(&mut self, keep: impl Fn(&ParamId) -> bool) {
        self.grads.retain(|id, _| keep(id));
    }

    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// Squared L2 norm over the parameters `keep` selects.
    pub fn sq_norm(&self, keep: impl Fn(&ParamId) -> bool) -> f64 {
        self.grads.iter().filter(|(id, _)| keep(id)).map(|(_, g)| kernels::sq_norm(g)).sum()
    }

    /// Dot product with `other` over the parameters `keep` selects (absent in either: 0).
    pub fn dot(&self, other: &GradBuffer, keep: impl Fn(&ParamId) -> bool) -> f64 {
        self.grads
            .iter()
            .filter(|(id, _)| keep(id))
            .filter_map(|(id, g)| other.grads.get(id).map(|o| kernels::dot(g, o)))
            .sum()
    }

    /// Clips the global L2 norm to `max_norm` (0: no clipping), over all parameters together
    /// (`torch.nn.utils.clip_grad_norm_`) or, with `separately`, over the encoder's
    /// (`is_encoder`) and the other parameters each on their own (the TARTAN reference).
    /// Returns the norm over all parameters before clipping.
    pub fn clip(&mut self, max_norm: f64, separately: bool, is_encoder: impl Fn(&ParamId) -> bool) -> f64 {
        let enc_sq = self.sq_norm(&is_encoder);
        let head_sq = self.sq_norm(|id| !is_encoder(id));
        if max_norm > 0.0 {
            let factor = |sq: f64| (max_norm / (sq.sqrt() + 1e-6)).min(1.0);
            if separately {
                let (fe, fh) = (factor(enc_sq), factor(head_sq));
                self.scale(fe, |id| is_encoder(id) && fe < 1.0);
                self.scale(fh, |id| !is_encoder(id) && fh < 1.0);
            } else {
                let f = factor(enc_sq + head_sq);
                self.scale(f, |_| f < 1.0);
            }
        }
        (enc_sq + head_sq).sqrt()
    }

    /// Multiplies the parameters `keep` selects by `factor` (in place where the buffer holds
    /// the only handle on a gradient).
    pub fn scale(&mut self, factor: f64, keep: impl Fn(&ParamId) -> bool) {
        let grads = std::mem::take(&mut self.grads);
        self.grads = grads
            .into_iter()
            .map(|(id, g)| if keep(&id) { (id, kernels::scale(g, factor)) } else { (id, g) })
            .collect();
    }
}

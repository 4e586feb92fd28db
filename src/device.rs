//! Where tensors live: the first CUDA GPU when built with `--features cuda`, otherwise
//! burn-flex on the CPU.

use burn::tensor::Device;

pub fn compute() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Device::flex()
    }
}

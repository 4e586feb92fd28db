//! Optimisation primitives: AdamW with parameter groups, the per-step gradient buffer with its
//! f64 reductions and clipping, the learning-rate schedule, and the fused kernels under them.

pub mod adamw;
pub mod grads;
pub mod kernels;
pub mod schedule;

pub use adamw::{AdamW, AdamWConfig, Group, ParamGroups};
pub use grads::GradBuffer;
pub use schedule::linear_schedule;

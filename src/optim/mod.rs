//! Optimisation primitives: AdamW with parameter groups, the per-step gradient buffer with its
//! f64 reductions and clipping, and the learning-rate schedule.

pub mod adamw;
pub mod grads;
pub mod schedule;

pub use adamw::{AdamW, AdamWConfig, Group, ParamGroups};
pub use grads::{GradBuffer, host_dot};
pub use schedule::linear_schedule;

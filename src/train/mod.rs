//! The training loop and what it needs: optimizer, schedule, evaluation, checkpoints.

pub mod checkpoint;
pub mod evaluate;
pub mod fsutil;
pub mod grads;
pub mod metrics;
pub mod mlm_warmup;
pub mod optimizer;
pub mod strategy;
pub mod trainer;

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks a running loop to save a checkpoint and stop (the Ctrl-C handler calls this).
pub fn request_stop() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

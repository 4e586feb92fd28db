//! Training: a phase's plan, the loop and its step, evaluation and model selection,
//! checkpoints, the MLM-head warm-up, the strategies that chain phases, and what a run writes
//! (records, charts, saved models, the fingerprint of its setup) and owns in its folder.

pub mod charts;
pub mod checkpoints;
pub mod evaluate;
pub mod fingerprint;
pub mod metrics;
pub mod mlm_warmup;
pub mod plan;
pub mod pretrained;
pub mod records;
pub mod run_folder;
pub mod saved_model;
pub mod selection;
mod setup;
pub mod strategy;
pub mod trainer;

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the signal handler (Ctrl-C, SIGTERM, SIGHUP): signals reach the whole process, so
/// this is the one process-wide flag; every running loop saves a checkpoint and stops.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks a running loop to save a checkpoint and stop.
pub fn request_stop() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

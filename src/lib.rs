//! tartan: end-task aware training (TARTAN, Dery et al. 2022) of BERT/RoBERTa encoders.

// Primitives, imported by every layer above.
pub mod device;
pub mod fsutil;
pub mod loss;
pub mod optim;
pub mod params;
pub mod plot;
pub mod runlock;
pub mod simd;
pub mod validate;

pub mod data;
pub mod model;

pub mod cli;
pub mod config;
pub mod objectives;
pub mod report;
pub mod train;
pub mod weighting;

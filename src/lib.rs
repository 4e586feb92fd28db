//! tartan: end-task aware training (TARTAN, Dery et al. 2022) of BERT/RoBERTa encoders.

pub mod data;
pub mod device;
pub mod model;

pub mod cli;
pub mod config;
pub mod objectives;
pub mod report;
pub mod runlock;
pub mod train;
pub mod weighting;

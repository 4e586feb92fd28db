//! The integration tests, one binary: linking the library once instead of once per file saves
//! most of their build time (docs/ARCHITECTURE.md has the figures). One file per subject.

mod bad_input;
mod checkpoints;
mod common;
mod config_doc;
mod data;
mod demo;
mod export;
mod faults;
mod flex_matmul;
mod fuzz_regressions;
mod kernels;
mod layers;
mod multitask;
mod parity;
mod pickle;
mod precision;
mod run_folders;
mod soak;
mod sweep;
mod training;

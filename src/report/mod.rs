//! Reports over finished runs: a Markdown summary, each run's charts and, for several runs,
//! the comparison table in the paper's layout with charts across runs; for TARTAN runs, what
//! each auxiliary corpus did.

pub mod auxiliary;
pub mod charts;
pub mod comparison;
pub mod summary;

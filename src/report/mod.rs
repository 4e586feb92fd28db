//! Reports over finished runs: a Markdown summary, each run's charts and, for several runs,
//! the comparison table in the paper's layout; for TARTAN runs, what each auxiliary corpus did.

pub mod auxiliary;
pub mod summary;

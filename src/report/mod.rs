//! Reports over finished runs: a Markdown summary, each run's charts and, for several runs,
//! the comparison table in the paper's layout.

pub mod summary;

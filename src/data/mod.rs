//! Reading, tokenizing, masking and batching text.

pub mod batch;
pub mod corpus;
pub mod jsonl;
pub mod masking;
pub mod synthetic;
pub mod task;
pub mod tokenize;

pub use jsonl::{LabelMap, RawExample, read_jsonl};
pub use task::TaskData;
pub use tokenize::TextTokenizer;

//! End-task data: JSONL with a `text` and a `label` per line (other fields ignored).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::fsutil::open_regular;

/// One labelled example as read from disk; `line` is 1-based, for error messages.
#[derive(Debug, Clone)]
pub struct RawExample {
    pub text: String,
    pub label: String,
    pub line: usize,
}

/// End-task files are read into memory whole; one larger than this is taken for a mistake.
pub const MAX_JSONL_BYTES: u64 = 4 << 30;

/// Reads a JSONL end-task file. Blank lines are skipped; a UTF-8 BOM and CRLF line ends are
/// accepted; numeric and boolean labels are read as strings (`3`, `true`), so `3` and `"3"`
/// are one label. Anything else malformed is an error naming the file, the line and the
/// offending value.
pub fn read_jsonl(path: &Path) -> Result<Vec<RawExample>> {
    let mut bytes = Vec::new();
    open_regular(path, MAX_JSONL_BYTES, "end-task data (JSONL, read into memory whole)")?
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut out = Vec::new();
    for (i, raw_line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let at = || format!("{}:{line_no}", path.display());
        let line = std::str::from_utf8(raw_line).map_err(|e| {
            anyhow::anyhow!(
                "{}: invalid UTF-8 at byte {} of the line; re-encode the file as UTF-8",
                at(),
                e.valid_up_to()
            )
        })?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}: not valid JSON ({e}): {}", at(), preview(line)))?;
        let obj = value.as_object().ok_or_else(|| {
            anyhow::anyhow!("{}: expected a JSON object with `text` and `label`, got {}", at(), preview(line))
        })?;
        let text = match obj.get("text") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => bail!("{}: `text` must be a string, got {}", at(), preview(&other.to_string())),
            None => bail!("{}: missing field `text` (each line needs `text` and `label`)", at()),
        };
        if text.trim().is_empty() {
            bail!("{}: `text` is empty; remove the line or give it text", at());
        }
        let label = match obj.get("label") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::Bool(b)) => b.to_string(),
            Some(other) => {
                bail!("{}: `label` must be a string, a number or a boolean, got {}", at(), preview(&other.to_string()))
            }
            None => bail!("{}: missing field `label` (each line needs `text` and `label`)", at()),
        };
        out.push(RawExample { text, label, line: line_no });
    }
    if out.is_empty() {
        bail!("{} holds no examples; expected one JSON object per line with `text` and `label`", path.display());
    }
    Ok(out)
}

fn preview(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("`{s}`")
    } else {
        format!("`{}...`", s.chars().take(MAX).collect::<String>())
    }
}

/// The label set, taken from train and sorted, so label ids never depend on file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMap {
    pub labels: Vec<String>,
}

impl LabelMap {
    pub fn from_train(examples: &[RawExample], path: &Path) -> Result<Self> {
        let labels: BTreeSet<&str> = examples.iter().map(|e| e.label.as_str()).collect();
        if labels.len() < 2 {
            bail!(
                "{} has a single label ({}): a classifier needs at least two classes",
                path.display(),
                labels.iter().next().copied().unwrap_or("")
            );
        }
        Ok(Self { labels: labels.into_iter().map(String::from).collect() })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn id(&self, label: &str) -> Option<usize> {
        self.labels.binary_search_by(|l| l.as_str().cmp(label)).ok()
    }

    pub fn name(&self, id: usize) -> &str {
        &self.labels[id]
    }

    /// Label ids of `examples`; a label unseen in train is an error naming file and line.
    pub fn ids(&self, examples: &[RawExample], path: &Path) -> Result<Vec<usize>> {
        examples
            .iter()
            .map(|e| {
                self.id(&e.label).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}:{}: label `{}` does not occur in the training data (known labels: {})",
                        path.display(),
                        e.line,
                        e.label,
                        self.labels.join(", ")
                    )
                })
            })
            .collect()
    }
}

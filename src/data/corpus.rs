//! Auxiliary text corpora: one example per line, tokenized once into a cache on disk and read
//! back batch by batch, so only the line offsets live in memory. A line with no token that
//! masked-LM could mask (only special or unknown tokens, say emoji) is left out: a batch of
//! such lines would have no loss.
//!
//! Cache layout (`<cache_dir>/<name>-<key>.tokens` and `.offsets`): token ids as little-endian
//! u32, and one u64 end offset per example. The key hashes the corpus file's content, the
//! tokenizer and the block size, so any change to them re-tokenizes.

use std::fs::File;
use std::hash::Hasher;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::tokenize::TextTokenizer;
use crate::fsutil::{open_regular, sha256_hex, write_atomic};

/// A corpus file larger than this is taken for a mistake (the largest DAPT corpus of the
/// TARTAN and DAPT papers is under 50 GB).
pub const MAX_CORPUS_BYTES: u64 = 256 << 30;

pub struct Corpus {
    pub name: String,
    tokens: File,
    /// End offset (in tokens) of each example; example `i` spans `ends[i-1]..ends[i]`.
    ends: Vec<u64>,
}

/// Lines are tokenized this many at a time (bounded memory for any corpus size).
const CHUNK: usize = 4096;

impl Corpus {
    pub fn open(name: &str, path: &Path, tok: &TextTokenizer, block_size: usize, cache_dir: &Path) -> Result<Self> {
        let key = cache_key(path, tok, block_size).with_context(|| format!("auxiliary corpus `{name}`"))?;
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("cannot create cache folder {}", cache_dir.display()))?;
        let base = cache_dir.join(format!("{name}-{key:016x}"));
        let (tokens_path, offsets_path) = (base.with_extension("tokens"), base.with_extension("offsets"));
        if !offsets_path.exists() {
            tracing::info!("tokenizing corpus `{name}` ({}) into {}", path.display(), cache_dir.display());
            let (lines, kept) = build_cache(path, tok, block_size, &tokens_path, &offsets_path)?;
            let at = || format!("auxiliary corpus `{name}` ({})", path.display());
            if lines == 0 {
                bail!("{} has no non-empty line", at());
            }
            if kept == 0 {
                bail!(
                    "{} has no line with a token to mask: every token is special or unknown to the tokenizer ([UNK]), as with emoji-only text; give text in the model's vocabulary",
                    at()
                );
            }
            if kept < lines {
                tracing::warn!(
                    "{}: {} of {lines} lines have no token to mask (only special or unknown tokens) and are left out",
                    at(),
                    lines - kept
                );
            }
        }
        let mut raw = Vec::new();
        File::open(&offsets_path)?.read_to_end(&mut raw)?;
        let ends: Vec<u64> = raw.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        let tokens = File::open(&tokens_path).with_context(|| format!("cannot open {}", tokens_path.display()))?;
        Ok(Self { name: name.to_string(), tokens, ends })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn lengths(&self) -> Vec<usize> {
        (0..self.len()).map(|i| (self.ends[i] - self.start(i)) as usize).collect()
    }

    fn start(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    /// Token ids of example `i`, read from the cache file.
    pub fn get(&self, i: usize) -> Result<Vec<u32>> {
        let (start, end) = (self.start(i), self.ends[i]);
        let mut buf = vec![0u8; ((end - start) * 4) as usize];
        self.tokens.read_exact_at(&mut buf, start * 4).context("reading the corpus token cache")?;
        Ok(buf.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
    }
}

/// The size and SHA-256 of a corpus file, which must be a regular file (a FIFO or a device is
/// refused before anything is read).
pub fn content_digest(path: &Path) -> Result<(u64, String)> {
    let file = open_regular(path, MAX_CORPUS_BYTES, "an auxiliary corpus")?;
    let bytes = file.metadata().with_context(|| format!("cannot inspect {}", path.display()))?.len();
    let digest = sha256_hex(file).with_context(|| format!("cannot read auxiliary corpus {}", path.display()))?;
    Ok((bytes, digest))
}

fn cache_key(path: &Path, tok: &TextTokenizer, block_size: usize) -> Result<u64> {
    let mut h = std::hash::DefaultHasher::new();
    h.write(content_digest(path)?.1.as_bytes());
    h.write(tok.inner().to_string(false).map_err(|e| anyhow::anyhow!("{e}"))?.as_bytes());
    h.write_usize(block_size);
    // Caches written before lines without a token to mask were left out hold them.
    h.write(b"unmaskable lines left out");
    Ok(h.finish())
}

/// Tokenizes the corpus into the cache; returns the number of non-empty lines and of those
/// kept (with a token to mask). Writes nothing when none is kept.
fn build_cache(
    path: &Path,
    tok: &TextTokenizer,
    block_size: usize,
    tokens_path: &Path,
    offsets_path: &Path,
) -> Result<(usize, usize)> {
    let reader = BufReader::new(open_regular(path, MAX_CORPUS_BYTES, "an auxiliary corpus")?);
    let tmp_tokens: PathBuf = tokens_path.with_extension("tokens.partial");
    let mut out = BufWriter::new(File::create(&tmp_tokens)?);
    let mut ends: Vec<u8> = Vec::new();
    let (mut total, mut lines) = (0u64, 0usize);
    let mut chunk: Vec<String> = Vec::with_capacity(CHUNK);
    let mut flush = |chunk: &mut Vec<String>, out: &mut BufWriter<File>| -> Result<()> {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for ids in tok.encode_batch(&refs, block_size)? {
            if ids.iter().all(|t| tok.special_ids.contains(t)) {
                continue;
            }
            for t in &ids {
                out.write_all(&t.to_le_bytes())?;
            }
            total += ids.len() as u64;
            ends.extend_from_slice(&total.to_le_bytes());
        }
        chunk.clear();
        Ok(())
    };
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        let text = std::str::from_utf8(&line).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}: invalid UTF-8 at byte {}; re-encode the file as UTF-8",
                path.display(),
                i + 1,
                e.valid_up_to()
            )
        })?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        lines += 1;
        chunk.push(text.to_string());
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut out)?;
        }
    }
    flush(&mut chunk, &mut out)?;
    let kept = ends.len() / 8;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    if kept == 0 {
        std::fs::remove_file(&tmp_tokens)?;
        return Ok((lines, 0));
    }
    std::fs::rename(&tmp_tokens, tokens_path)?;
    // The offsets file is written last: its presence marks a complete cache.
    write_atomic(offsets_path, &ends)?;
    Ok((lines, kept))
}

//! A synthetic end-task with known structure, for the demo and for tests that must not
//! download anything.
//!
//! Each label is a topic with its own words. Labelled training sentences use only the first
//! few words of each topic; dev and test sentences use all of them, so a classifier trained on
//! the labelled data alone cannot know most topic words. The `related` corpus shows every topic
//! word beside its topic mates (what masked-LM on it can teach); the `noise` corpus is random
//! words. An end-task aware method should learn to weight `related` above `noise`.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::jsonl::RawExample;
use super::tokenize::TextTokenizer;

pub const TOPICS: usize = 4;
const TOPIC_WORDS: usize = 16;
const SEEN_WORDS: usize = 2;
const FILLERS: usize = 20;

pub struct SyntheticTask {
    pub train: Vec<RawExample>,
    pub dev: Vec<RawExample>,
    pub test: Vec<RawExample>,
    pub related: Vec<String>,
    pub noise: Vec<String>,
}

fn topic_word(topic: usize, j: usize) -> String {
    format!("{}{j}", ["amber", "basil", "cobalt", "denim"][topic])
}

/// Mostly topic words (so masked-LM on such text is dominated by learnable topic structure),
/// a few fillers.
fn sentence(rng: &mut StdRng, topic: usize, words_per_topic: usize) -> String {
    let len = rng.random_range(8..13);
    (0..len)
        .map(|_| {
            if rng.random_bool(0.7) {
                topic_word(topic, rng.random_range(0..words_per_topic))
            } else {
                format!("f{}", rng.random_range(0..FILLERS))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn labelled(rng: &mut StdRng, n: usize, words_per_topic: usize, first_line: usize) -> Vec<RawExample> {
    (0..n)
        .map(|i| {
            let topic = rng.random_range(0..TOPICS);
            RawExample {
                text: sentence(rng, topic, words_per_topic),
                label: format!("topic{topic}"),
                line: first_line + i,
            }
        })
        .collect()
}

/// Every word the task and corpora use, for building a vocabulary.
pub fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = (0..TOPICS).flat_map(|t| (0..TOPIC_WORDS).map(move |j| topic_word(t, j))).collect();
    v.extend((0..FILLERS).map(|j| format!("f{j}")));
    v
}

pub fn generate(seed: u64, n_train: usize, n_eval: usize, n_corpus: usize) -> SyntheticTask {
    let mut rng = StdRng::seed_from_u64(seed);
    let train = labelled(&mut rng, n_train, SEEN_WORDS, 1);
    let dev = labelled(&mut rng, n_eval, TOPIC_WORDS, 1);
    let test = labelled(&mut rng, n_eval, TOPIC_WORDS, 1);
    let related = (0..n_corpus)
        .map(|_| {
            let topic = rng.random_range(0..TOPICS);
            sentence(&mut rng, topic, TOPIC_WORDS)
        })
        .collect();
    let vocab = vocabulary();
    let noise = (0..n_corpus)
        .map(|_| {
            let len = rng.random_range(10..16);
            (0..len)
                .map(|_| vocab.choose(&mut rng).expect("non-empty vocabulary").clone())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    SyntheticTask { train, dev, test, related, noise }
}

/// A word-level tokenizer over `words` with BERT's special tokens and `[CLS] x [SEP]`
/// framing, written as `tokenizer.json` text so it saves and loads like any HF tokenizer.
pub fn word_level_tokenizer(words: &[String]) -> anyhow::Result<TextTokenizer> {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut vocab = serde_json::Map::new();
    for (i, w) in specials.iter().map(|s| s.to_string()).chain(words.iter().cloned()).enumerate() {
        vocab.insert(w, serde_json::json!(i));
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    });
    let inner: tokenizers::Tokenizer =
        json.to_string().parse().map_err(|e| anyhow::anyhow!("building the word-level tokenizer: {e}"))?;
    TextTokenizer::new(inner)
}

/// Writes examples as JSONL (`text`, `label`).
pub fn write_jsonl(path: &std::path::Path, examples: &[RawExample]) -> anyhow::Result<()> {
    let lines: Vec<String> =
        examples.iter().map(|e| serde_json::json!({"text": e.text, "label": e.label}).to_string()).collect();
    std::fs::write(path, lines.join("\n") + "\n")?;
    Ok(())
}

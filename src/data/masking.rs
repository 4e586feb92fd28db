//! BERT/RoBERTa masking: of the non-special, non-padding tokens, choose each with probability
//! `p` (default 0.15); a chosen token becomes the mask token 80% of the time, a random token
//! 10%, and stays 10%. The loss is computed on chosen tokens only.

use std::collections::HashSet;

use rand::Rng;

use super::tokenize::TextTokenizer;

#[derive(Debug, Clone)]
pub struct Masked {
    /// The input with chosen tokens replaced.
    pub input: Vec<Vec<u32>>,
    /// Flat positions (`row * seq_len + col`, padded length) of chosen tokens, row-major.
    pub positions: Vec<usize>,
    /// The original token at each chosen position.
    pub targets: Vec<u32>,
}

pub struct Masker {
    pub prob: f64,
    pub mask_id: u32,
    pub vocab_size: u32,
    pub special: HashSet<u32>,
}

impl Masker {
    /// BERT/RoBERTa masking with `tok`'s mask and special tokens over a vocabulary of
    /// `vocab_size` (the model's, which may exceed the tokenizer's).
    pub fn for_tokenizer(tok: &TextTokenizer, vocab_size: usize, prob: f64) -> anyhow::Result<Self> {
        let mask_id = tok.mask_id.ok_or_else(|| {
            anyhow::anyhow!("the tokenizer has no mask token ([MASK] or <mask>), which masked-LM needs")
        })?;
        Ok(Self { prob, mask_id, vocab_size: vocab_size as u32, special: tok.special_ids.clone() })
    }

    pub fn mask(&self, seqs: &[Vec<u32>], rng: &mut impl Rng) -> Masked {
        let width = seqs.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut input = seqs.to_vec();
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        for (row, seq) in input.iter_mut().enumerate() {
            for (col, t) in seq.iter_mut().enumerate() {
                if self.special.contains(t) || !rng.random_bool(self.prob) {
                    continue;
                }
                positions.push(row * width + col);
                targets.push(*t);
                let r: f64 = rng.random();
                if r < 0.8 {
                    *t = self.mask_id;
                } else if r < 0.9 {
                    *t = rng.random_range(0..self.vocab_size);
                }
            }
        }
        // A batch with nothing chosen would have no loss; take one eligible token.
        if positions.is_empty() {
            let eligible: Vec<(usize, usize)> = input
                .iter()
                .enumerate()
                .flat_map(|(r, s)| {
                    s.iter().enumerate().filter(|(_, t)| !self.special.contains(t)).map(move |(c, _)| (r, c))
                })
                .collect();
            if !eligible.is_empty() {
                let (r, c) = eligible[rng.random_range(0..eligible.len())];
                positions.push(r * width + c);
                targets.push(input[r][c]);
                input[r][c] = self.mask_id;
            }
        }
        Masked { input, positions, targets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn masking_statistics_follow_bert() {
        let masker = Masker { prob: 0.15, mask_id: 4, vocab_size: 1000, special: [0, 1, 2, 3, 4].into() };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let (mut eligible, mut chosen, mut masked, mut kept, mut random) = (0usize, 0usize, 0usize, 0usize, 0usize);
        for b in 0..400 {
            // [CLS] tokens... [SEP] then padding-free rows of varied length.
            let seqs: Vec<Vec<u32>> = (0..8)
                .map(|r| {
                    std::iter::once(2)
                        .chain((0..(20 + (b + r) % 30)).map(|i| 5 + ((i * 7 + r * 13 + b) % 900) as u32))
                        .chain(std::iter::once(3))
                        .collect()
                })
                .collect();
            let width = seqs.iter().map(Vec::len).max().unwrap();
            eligible += seqs.iter().map(|s| s.len() - 2).sum::<usize>();
            let m = masker.mask(&seqs, &mut rng);
            for (p, target) in m.positions.iter().zip(&m.targets) {
                let (r, c) = (p / width, p % width);
                assert!(c > 0 && c < seqs[r].len() - 1, "a special token was chosen");
                assert_eq!(seqs[r][c], *target);
                chosen += 1;
                match m.input[r][c] {
                    4 => masked += 1,
                    t if t == *target => kept += 1,
                    _ => random += 1,
                }
            }
        }
        let rate = chosen as f64 / eligible as f64;
        assert!((rate - 0.15).abs() < 0.005, "chosen rate {rate}");
        let f = |n: usize| n as f64 / chosen as f64;
        assert!((f(masked) - 0.8).abs() < 0.01, "mask share {}", f(masked));
        // A random token equals the original 1/1000 of the time, so "kept" is ~10.01%.
        assert!((f(kept) - 0.1).abs() < 0.01, "kept share {}", f(kept));
        assert!((f(random) - 0.1).abs() < 0.01, "random share {}", f(random));
    }

    #[test]
    fn a_batch_always_has_a_target() {
        let masker = Masker { prob: 0.0, mask_id: 4, vocab_size: 10, special: [0, 2, 3].into() };
        let m = masker.mask(&[vec![2, 7, 3]], &mut rand::rngs::StdRng::seed_from_u64(1));
        assert_eq!(m.positions, vec![1]);
        assert_eq!(m.targets, vec![7]);
        assert_eq!(m.input[0][1], 4);
    }
}

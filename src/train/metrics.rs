//! Classification metrics: accuracy, macro/micro F1, per-label precision/recall/F1 and the
//! confusion matrix. Macro-F1 averages over the labels that occur in gold or predictions,
//! as scikit-learn's `f1_score(average="macro")`.

use serde::{Deserialize, Serialize};

use crate::data::task::Metric;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabelScores {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub micro_f1: f64,
    pub per_label: Vec<LabelScores>,
    /// `confusion[gold][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub n: usize,
}

impl Scores {
    pub fn compute(gold: &[usize], pred: &[usize], labels: &[String]) -> Self {
        let k = labels.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (&g, &p) in gold.iter().zip(pred) {
            confusion[g][p] += 1;
        }
        let n = gold.len();
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let mut per_label = Vec::with_capacity(k);
        let mut f1_sum = 0.0;
        let mut present = 0;
        for i in 0..k {
            let tp = confusion[i][i];
            let support: usize = confusion[i].iter().sum();
            let predicted: usize = (0..k).map(|g| confusion[g][i]).sum();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            if support > 0 || predicted > 0 {
                f1_sum += f1;
                present += 1;
            }
            per_label.push(LabelScores { label: labels[i].clone(), precision, recall, f1, support });
        }
        let accuracy = ratio(correct, n);
        Self {
            accuracy,
            macro_f1: if present == 0 { 0.0 } else { f1_sum / present as f64 },
            // Single-label classification: every example has one gold and one predicted label,
            // so micro precision = micro recall = accuracy.
            micro_f1: accuracy,
            per_label,
            confusion,
            n,
        }
    }

    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Accuracy => self.accuracy,
            Metric::MacroF1 => self.macro_f1,
            Metric::MicroF1 => self.micro_f1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scikit_learn_on_a_small_case() {
        // sklearn: accuracy_score = 0.5, f1_score(macro) over labels {0,1,2} = 0.4555...
        let gold = [0, 0, 1, 1, 2, 2];
        let pred = [0, 1, 1, 1, 0, 2];
        let labels: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let s = Scores::compute(&gold, &pred, &labels);
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // per label: a p=1/2 r=1/2 f=.5; b p=2/3 r=1 f=.8; c p=1 r=1/2 f=2/3; d absent.
        let expected = (0.5 + 0.8 + 2.0 / 3.0) / 3.0;
        assert!((s.macro_f1 - expected).abs() < 1e-12, "{}", s.macro_f1);
        assert_eq!(s.confusion[0], vec![1, 1, 0, 0]);
        assert_eq!(s.per_label[3].support, 0);
        assert!((s.micro_f1 - s.accuracy).abs() < 1e-12);
    }
}

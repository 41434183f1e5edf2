//! Confusion matrix, the scores derived from it, and ROC-AUC.

use ndarray::{AsArray, Dimension, Ix2};
use serde::{Deserialize, Serialize};

use super::{MetricError, check_shapes};

/// How per-class precision, recall or F1 are combined into one number.
///
/// The classes taken into account are those present in the truth *or* the prediction, as
/// scikit-learn does when it is not given an explicit label list: a class that never occurs does
/// not pull the macro average down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// The unweighted mean of the per-class values.
    Macro,
    /// Counts pooled over classes before dividing (equals accuracy for single-label data).
    Micro,
    /// The per-class values weighted by each class's number of true samples.
    Weighted,
}

/// Counts of (true class, predicted class) pairs.
///
/// Rows are true classes, columns are predicted classes (scikit-learn's layout).
///
/// **Zero division:** a ratio whose denominator is zero (precision of a class never predicted,
/// recall of a class never present) is `0.0`, as scikit-learn's `zero_division=0`.
///
/// ```
/// use delira::training::metrics::{Average, ConfusionMatrix};
///
/// let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], 3).unwrap();
/// assert_eq!(cm.count(0, 1), 1);
/// assert_eq!(cm.accuracy(), 0.6);
/// assert_eq!(cm.recall(1), 1.0);
/// assert_eq!(cm.precision(1), 2.0 / 3.0);
/// assert_eq!(cm.precision(2), 0.0); // never predicted: zero division gives 0
/// assert_eq!(cm.balanced_accuracy(), (0.5 + 1.0 + 0.0) / 3.0);
/// assert_eq!(cm.f1_average(Average::Micro), 0.6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// The matrix of label arrays of equal shape (slices, vectors or arrays of any dimension).
    pub fn from_labels<'a, T, D>(
        truth: impl AsArray<'a, T, D>,
        prediction: impl AsArray<'a, T, D>,
        classes: usize,
    ) -> Result<Self, MetricError>
    where
        T: 'a + Copy + Into<i64>,
        D: Dimension,
    {
        let mut matrix = Self::new(classes);
        matrix.add(truth, prediction)?;
        Ok(matrix)
    }

    /// Adds the pairs of two label arrays of equal shape; on error nothing is added.
    pub fn add<'a, T, D>(
        &mut self,
        truth: impl AsArray<'a, T, D>,
        prediction: impl AsArray<'a, T, D>,
    ) -> Result<(), MetricError>
    where
        T: 'a + Copy + Into<i64>,
        D: Dimension,
    {
        let (truth, prediction) = (truth.into(), prediction.into());
        check_shapes("confusion matrix", truth.shape(), prediction.shape())?;

        let mut pairs = Vec::with_capacity(truth.len());
        for (&t, &p) in truth.iter().zip(prediction.iter()) {
            let t = class_index("confusion matrix", t.into(), self.classes)?;
            let p = class_index("confusion matrix", p.into(), self.classes)?;
            pairs.push(t * self.classes + p);
        }
        for cell in pairs {
            self.counts[cell] += 1;
        }
        Ok(())
    }

    /// Adds another matrix's counts.
    ///
    /// # Panics
    ///
    /// If the two matrices have different numbers of classes.
    #[track_caller]
    pub fn merge(&mut self, other: &Self) {
        assert_eq!(
            self.classes, other.classes,
            "confusion matrices differ in class count"
        );
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How often class `truth` was predicted as `predicted`.
    ///
    /// # Panics
    ///
    /// If either class is `>= classes()`.
    #[track_caller]
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        assert!(
            truth < self.classes && predicted < self.classes,
            "class out of range"
        );
        self.counts[truth * self.classes + predicted]
    }

    /// The number of pairs counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The fraction of correct predictions; `0.0` when empty.
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes).map(|c| self.tp(c)).sum();
        ratio(correct, self.total())
    }

    /// The mean recall over the classes present in the truth (scikit-learn's
    /// `balanced_accuracy_score`); `0.0` when empty.
    pub fn balanced_accuracy(&self) -> f64 {
        let present: Vec<usize> = (0..self.classes).filter(|&c| self.support(c) > 0).collect();
        if present.is_empty() {
            return 0.0;
        }
        present.iter().map(|&c| self.recall(c)).sum::<f64>() / present.len() as f64
    }

    /// True positives / predicted positives of one class.
    pub fn precision(&self, class: usize) -> f64 {
        ratio(self.tp(class), self.predicted(class))
    }

    /// True positives / actual positives of one class.
    pub fn recall(&self, class: usize) -> f64 {
        ratio(self.tp(class), self.support(class))
    }

    /// The harmonic mean of precision and recall of one class.
    pub fn f1(&self, class: usize) -> f64 {
        let tp = self.tp(class);
        ratio(2 * tp, self.predicted(class) + self.support(class))
    }

    /// The number of true samples of a class.
    pub fn support(&self, class: usize) -> u64 {
        self.counts[class * self.classes..(class + 1) * self.classes]
            .iter()
            .sum()
    }

    /// Precision averaged over classes.
    pub fn precision_average(&self, average: Average) -> f64 {
        self.averaged(average, Self::precision, |tp, predicted, _| {
            ratio(tp, predicted)
        })
    }

    /// Recall averaged over classes.
    pub fn recall_average(&self, average: Average) -> f64 {
        self.averaged(average, Self::recall, |tp, _, support| ratio(tp, support))
    }

    /// F1 averaged over classes (the macro value is the mean of per-class F1, as scikit-learn).
    pub fn f1_average(&self, average: Average) -> f64 {
        self.averaged(average, Self::f1, |tp, predicted, support| {
            ratio(2 * tp, predicted + support)
        })
    }

    fn averaged(
        &self,
        average: Average,
        per_class: fn(&Self, usize) -> f64,
        pooled: fn(u64, u64, u64) -> f64,
    ) -> f64 {
        let active: Vec<usize> = (0..self.classes)
            .filter(|&c| self.support(c) + self.predicted(c) > 0)
            .collect();
        if active.is_empty() {
            return 0.0;
        }
        match average {
            Average::Macro => {
                active.iter().map(|&c| per_class(self, c)).sum::<f64>() / active.len() as f64
            }
            Average::Weighted => {
                let total: u64 = active.iter().map(|&c| self.support(c)).sum();
                let weighted: f64 = active
                    .iter()
                    .map(|&c| per_class(self, c) * self.support(c) as f64)
                    .sum();
                if total == 0 {
                    0.0
                } else {
                    weighted / total as f64
                }
            }
            Average::Micro => {
                let sum = |f: &dyn Fn(usize) -> u64| active.iter().map(|&c| f(c)).sum::<u64>();
                pooled(
                    sum(&|c| self.tp(c)),
                    sum(&|c| self.predicted(c)),
                    sum(&|c| self.support(c)),
                )
            }
        }
    }

    fn tp(&self, class: usize) -> u64 {
        self.counts[class * self.classes + class]
    }

    fn predicted(&self, class: usize) -> u64 {
        (0..self.classes)
            .map(|t| self.counts[t * self.classes + class])
            .sum()
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

pub(super) fn class_index(
    what: &'static str,
    label: i64,
    classes: usize,
) -> Result<usize, MetricError> {
    usize::try_from(label)
        .ok()
        .filter(|&c| c < classes)
        .ok_or(MetricError::ClassOutOfRange {
            what,
            label,
            classes,
        })
}

/// The area under the ROC curve of a binary problem (truth labels 0 or 1, a score per sample,
/// higher meaning "more likely 1").
///
/// Tied scores form one threshold, and the curve is integrated with the trapezoid rule over the
/// distinct thresholds, as scikit-learn's `roc_auc_score` does; a tie between a positive and a
/// negative therefore counts one half. The area is computed from integer counts, so it is exact
/// up to one final division.
///
/// ```
/// let auc = delira::training::metrics::roc_auc(&[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8]).unwrap();
/// assert_eq!(auc, 0.75);
/// let tied = delira::training::metrics::roc_auc(&[0, 1], &[0.5, 0.5]).unwrap();
/// assert_eq!(tied, 0.5);
/// ```
pub fn roc_auc<'a, T, S>(truth: &[T], scores: &'a [S]) -> Result<f64, MetricError>
where
    T: Copy + Into<i64>,
    S: 'a + Copy + Into<f64>,
{
    check_shapes("roc-auc", &[truth.len()], &[scores.len()])?;
    let mut positives = Vec::with_capacity(truth.len());
    for &t in truth {
        positives.push(class_index("roc-auc", t.into(), 2)? == 1);
    }
    let scores: Vec<f64> = scores.iter().map(|&s| s.into()).collect();
    binary_auc(&positives, &scores, 1)
}

/// The macro average of one-vs-rest ROC-AUC over all classes (scikit-learn's
/// `roc_auc_score(multi_class="ovr", average="macro")`).
///
/// `scores` has one row per sample and one column per class. Every class must occur at least
/// once in the truth and be missing from at least one sample.
///
/// ```
/// use ndarray::array;
/// let scores = array![[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1]];
/// let auc = delira::training::metrics::roc_auc_ovr(&[0, 1, 2, 0], &scores).unwrap();
/// // Per class: 2.5 of 4 pairs ordered (one tie), 2 of 3, 3 of 3.
/// assert!((auc - (0.625 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-15);
/// ```
pub fn roc_auc_ovr<'a, T: Copy + Into<i64>>(
    truth: &[T],
    scores: impl AsArray<'a, f64, Ix2>,
) -> Result<f64, MetricError> {
    let scores = scores.into();
    let (samples, classes) = scores.dim();
    check_shapes("roc-auc", &[truth.len(), classes], &[samples, classes])?;
    let mut labels = Vec::with_capacity(truth.len());
    for &t in truth {
        labels.push(class_index("roc-auc", t.into(), classes)?);
    }

    let mut sum = 0.0;
    for class in 0..classes {
        let positives: Vec<bool> = labels.iter().map(|&l| l == class).collect();
        let column: Vec<f64> = scores.column(class).to_vec();
        sum += binary_auc(&positives, &column, class)?;
    }
    Ok(sum / classes as f64)
}

fn binary_auc(positives: &[bool], scores: &[f64], class: usize) -> Result<f64, MetricError> {
    if let Some(position) = scores.iter().position(|s| !s.is_finite()) {
        return Err(MetricError::NotFinite {
            what: "roc-auc",
            value: scores[position],
            position,
        });
    }
    let total_positive = positives.iter().filter(|&&p| p).count();
    let total_negative = positives.len() - total_positive;
    if total_positive == 0 || total_negative == 0 {
        return Err(MetricError::OneSided {
            class,
            positives: total_positive,
            negatives: total_negative,
        });
    }

    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    // Twice the area in units of one (positive, negative) pair, accumulated per threshold.
    let (mut tp, mut fp, mut twice_area) = (0_u64, 0_u64, 0_u128);
    let mut i = 0;
    while i < order.len() {
        let (tp_before, fp_before) = (tp, fp);
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]] == threshold {
            if positives[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        twice_area += u128::from(fp - fp_before) * u128::from(tp + tp_before);
    }
    Ok(twice_area as f64 / (2.0 * total_positive as f64 * total_negative as f64))
}

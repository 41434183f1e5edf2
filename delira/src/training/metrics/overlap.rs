//! Dice and `IoU` per class of label maps.

use ndarray::{AsArray, Dimension};

use super::classification::class_index;
use super::{MetricError, check_shapes};

/// The Dice coefficient `2|T∩P| / (|T| + |P|)` of every class `0..classes` of two label maps.
///
/// **Empty classes.** A class absent from both truth and prediction has no defined overlap: its
/// entry is `None` and [`mean_defined`] skips it. A class present in only one of them scores
/// `0.0`.
///
/// MONAI's `DiceMetric` behaves differently: with its default `ignore_empty=True` every class whose
/// *truth* is empty is NaN, so a false-positive prediction of an absent structure goes unnoticed;
/// with `ignore_empty=False`, both-empty scores 1. We count false positives on an absent class as
/// the error they are, and we do not reward agreeing on absence with a perfect score, which would
/// inflate the mean for small structures that are missing in many images. Callers who want
/// MONAI's `ignore_empty=False` convention write `.unwrap_or(1.0)`.
///
/// ```
/// use delira::training::metrics::{dice_per_class, mean_defined};
///
/// let truth = [0, 0, 1, 1, 1, 0];
/// let prediction = [0, 1, 1, 1, 0, 3];
/// let dice = dice_per_class(&truth, &prediction, 4).unwrap();
/// assert_eq!(dice, [Some(2.0 * 1.0 / 5.0), Some(2.0 * 2.0 / 6.0), None, Some(0.0)]);
/// assert_eq!(mean_defined(&dice[1..]), Some((2.0 / 3.0 + 0.0) / 2.0));
/// ```
pub fn dice_per_class<'a, T, D>(
    truth: impl AsArray<'a, T, D>,
    prediction: impl AsArray<'a, T, D>,
    classes: usize,
) -> Result<Vec<Option<f64>>, MetricError>
where
    T: 'a + Copy + Into<i64>,
    D: Dimension,
{
    let counts = overlap_counts("dice", truth, prediction, classes)?;
    Ok(counts
        .iter()
        .map(|c| {
            let denominator = c.truth + c.prediction;
            (denominator > 0).then(|| 2.0 * c.both as f64 / denominator as f64)
        })
        .collect())
}

/// The intersection over union (Jaccard index) `|T∩P| / |T∪P|` of every class `0..classes`.
///
/// The empty-class rule is the one of [`dice_per_class`]: absent from both is `None`, absent from
/// one is `0.0`.
///
/// ```
/// let iou = delira::training::metrics::iou_per_class(&[0, 0, 1, 1], &[0, 1, 1, 1], 3).unwrap();
/// assert_eq!(iou, [Some(0.5), Some(2.0 / 3.0), None]);
/// ```
pub fn iou_per_class<'a, T, D>(
    truth: impl AsArray<'a, T, D>,
    prediction: impl AsArray<'a, T, D>,
    classes: usize,
) -> Result<Vec<Option<f64>>, MetricError>
where
    T: 'a + Copy + Into<i64>,
    D: Dimension,
{
    let counts = overlap_counts("iou", truth, prediction, classes)?;
    Ok(counts
        .iter()
        .map(|c| {
            let union = c.truth + c.prediction - c.both;
            (union > 0).then(|| c.both as f64 / union as f64)
        })
        .collect())
}

/// The mean of the defined values; `None` when none is defined.
///
/// ```
/// use delira::training::metrics::mean_defined;
/// assert_eq!(mean_defined(&[Some(1.0), None, Some(0.5)]), Some(0.75));
/// assert_eq!(mean_defined(&[None, None]), None);
/// ```
pub fn mean_defined(values: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = values.iter().flatten().copied().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

#[derive(Clone, Copy, Default)]
struct ClassCounts {
    truth: u64,
    prediction: u64,
    both: u64,
}

fn overlap_counts<'a, T, D>(
    what: &'static str,
    truth: impl AsArray<'a, T, D>,
    prediction: impl AsArray<'a, T, D>,
    classes: usize,
) -> Result<Vec<ClassCounts>, MetricError>
where
    T: 'a + Copy + Into<i64>,
    D: Dimension,
{
    let (truth, prediction) = (truth.into(), prediction.into());
    check_shapes(what, truth.shape(), prediction.shape())?;

    let mut counts = vec![ClassCounts::default(); classes];
    for (&t, &p) in truth.iter().zip(prediction.iter()) {
        let t = class_index(what, t.into(), classes)?;
        let p = class_index(what, p.into(), classes)?;
        counts[t].truth += 1;
        counts[p].prediction += 1;
        if t == p {
            counts[t].both += 1;
        }
    }
    Ok(counts)
}

//! Metrics computed on `ndarray` predictions, independent of the backend.
//!
//! - Classification: [`ConfusionMatrix`] with accuracy, balanced accuracy and
//!   precision / recall / F1 per class or averaged ([`Average`]); [`roc_auc`] and
//!   [`roc_auc_ovr`].
//! - Segmentation overlap: [`dice_per_class`], [`iou_per_class`].
//! - Segmentation surfaces: [`hausdorff95`], [`average_surface_distance`], in millimetres
//!   through the voxel spacing.
//! - Regression: [`mean_absolute_error`], [`mean_squared_error`].
//! - Per-sample metrics of a training step for the trainer: the [`Metric`] trait with
//!   [`Accuracy`], [`Dice`] and [`RegressionError`] (MAE, MSE).
//! - Averaging over an epoch: [`RunningMean`] and [`MetricMeans`] weight every batch by its
//!   number of samples, so an epoch's value is the mean over samples, not over batches.
//!
//! # Undefined values
//!
//! A metric that has no meaning for the input (Dice of a class absent from both prediction and
//! truth, a surface distance without any surface) is `None`, never a made-up number. The
//! `*_mean` helpers skip `None` values. Each function states its rule.

mod batch;
mod classification;
mod overlap;
mod running;
mod surface;

pub use batch::{Accuracy, Dice, ErrorKind, Metric, RegressionError};
pub use classification::{Average, ConfusionMatrix, roc_auc, roc_auc_ovr};
pub use overlap::{dice_per_class, iou_per_class, mean_defined};
pub use running::{MetricMeans, RunningMean};
pub use surface::{
    SurfaceDistances, average_surface_distance, euclidean_distance_transform, hausdorff95,
    surface_distances,
};

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    /// Truth and prediction differ in length or shape.
    #[error("{what}: truth has shape {truth:?} but prediction has shape {prediction:?}")]
    ShapeMismatch {
        /// Which metric.
        what: &'static str,
        /// The truth's shape.
        truth: Vec<usize>,
        /// The prediction's shape.
        prediction: Vec<usize>,
    },
    /// There is nothing to average.
    #[error("{what}: the input is empty; pass at least one sample")]
    Empty {
        /// Which metric.
        what: &'static str,
    },
    /// A label lies outside `0..classes`.
    #[error("{what}: label {label} is outside 0..{classes}; raise `classes` or fix the labels")]
    ClassOutOfRange {
        /// Which metric.
        what: &'static str,
        /// The offending label.
        label: i64,
        /// The number of classes.
        classes: usize,
    },
    /// ROC-AUC needs both a positive and a negative sample.
    #[error(
        "roc-auc is undefined for class {class}: it has {positives} positive and {negatives} \
         negative samples; both must be present"
    )]
    OneSided {
        /// The class (1 for the binary case).
        class: usize,
        /// Number of positive samples.
        positives: usize,
        /// Number of negative samples.
        negatives: usize,
    },
    /// A score or value is NaN or infinite.
    #[error("{what}: value {value} at position {position} is not finite")]
    NotFinite {
        /// Which metric.
        what: &'static str,
        /// The value.
        value: f64,
        /// Its flat position.
        position: usize,
    },
    /// A prediction or batch field the metric reads is missing.
    #[error("{what}: there is no field `{field}`; available: {available:?}")]
    MissingField {
        /// Which metric.
        what: &'static str,
        /// The field it reads.
        field: String,
        /// The fields that exist.
        available: Vec<String>,
    },
    /// A batch field holds the wrong type of values.
    #[error("{what}: field `{field}` does not hold {expected}; point the metric at another field")]
    FieldKind {
        /// Which metric.
        what: &'static str,
        /// The field.
        field: String,
        /// What the metric needs.
        expected: &'static str,
    },
    /// The voxel spacing does not fit the volume.
    #[error(
        "voxel spacing {spacing:?} does not fit a volume with {ndim} axes; give one positive, \
         finite spacing per axis"
    )]
    Spacing {
        /// The spacing given.
        spacing: Vec<f64>,
        /// The number of axes of the volume.
        ndim: usize,
    },
}

fn check_shapes(
    what: &'static str,
    truth: &[usize],
    prediction: &[usize],
) -> Result<(), MetricError> {
    if truth == prediction {
        Ok(())
    } else {
        Err(MetricError::ShapeMismatch {
            what,
            truth: truth.to_vec(),
            prediction: prediction.to_vec(),
        })
    }
}

/// Mean absolute error over all elements.
///
/// ```
/// use ndarray::array;
/// let truth = array![1.0_f32, 2.0, 3.0];
/// let prediction = array![1.5_f32, 2.0, 1.0];
/// let mae = delira::training::metrics::mean_absolute_error(&truth, &prediction).unwrap();
/// assert!((mae - 2.5 / 3.0).abs() < 1e-12);
/// ```
pub fn mean_absolute_error<'a, T: 'a + Copy + Into<f64>, D: ndarray::Dimension>(
    truth: impl ndarray::AsArray<'a, T, D>,
    prediction: impl ndarray::AsArray<'a, T, D>,
) -> Result<f64, MetricError> {
    mean_of_errors("mean absolute error", truth, prediction, f64::abs)
}

/// Mean squared error over all elements.
///
/// ```
/// use ndarray::array;
/// let truth = array![1.0_f64, 2.0, 3.0];
/// let prediction = array![1.5_f64, 2.0, 1.0];
/// let mse = delira::training::metrics::mean_squared_error(&truth, &prediction).unwrap();
/// assert!((mse - 4.25 / 3.0).abs() < 1e-12);
/// ```
pub fn mean_squared_error<'a, T: 'a + Copy + Into<f64>, D: ndarray::Dimension>(
    truth: impl ndarray::AsArray<'a, T, D>,
    prediction: impl ndarray::AsArray<'a, T, D>,
) -> Result<f64, MetricError> {
    mean_of_errors("mean squared error", truth, prediction, |d| d * d)
}

fn mean_of_errors<'a, T: 'a + Copy + Into<f64>, D: ndarray::Dimension>(
    what: &'static str,
    truth: impl ndarray::AsArray<'a, T, D>,
    prediction: impl ndarray::AsArray<'a, T, D>,
    error: impl Fn(f64) -> f64,
) -> Result<f64, MetricError> {
    let (truth, prediction) = (truth.into(), prediction.into());
    check_shapes(what, truth.shape(), prediction.shape())?;
    if truth.is_empty() {
        return Err(MetricError::Empty { what });
    }

    let sum: f64 = ndarray::Zip::from(&truth)
        .and(&prediction)
        .fold(0.0, |sum, &t, &p| sum + error(p.into() - t.into()));
    Ok(sum / truth.len() as f64)
}

//! Metrics of a training or evaluation step: one value per sample of the batch.

use ndarray::{ArrayD, ArrayViewD, Axis};

use super::{MetricError, dice_per_class, mean_absolute_error, mean_defined, mean_squared_error};
use crate::backend::StepOutput;
use crate::data::{Batch, BatchField};

/// A metric of a step's predictions against the batch's targets, one value per sample.
///
/// The trainer averages every reported value over the samples of an epoch (with
/// [`MetricMeans`](super::MetricMeans)), so batches of unequal size weigh by their samples. A
/// sample whose value is undefined (the Dice of a class absent from both maps) reports `NaN`,
/// which the average leaves out.
///
/// ```
/// use delira::backend::StepOutput;
/// use delira::data::{Batch, Record};
/// use delira::training::metrics::{Accuracy, Metric};
/// use ndarray::{ArrayD, arr0};
///
/// let batch = Batch::collate([0_i64, 1, 1].map(|y| Record::new().with("y", arr0(y).into_dyn()))).unwrap();
/// let mut output = StepOutput::default();
/// let logits = ArrayD::from_shape_vec(vec![3, 2], vec![2.0, 1.0, 0.0, 3.0, 5.0, 4.0]).unwrap();
/// output.predictions.insert("logits".into(), logits);
/// let values = Accuracy::new("logits", "y").per_sample(&output, &batch).unwrap();
/// assert_eq!(values, [("accuracy".to_owned(), vec![1.0, 1.0, 0.0])]);
/// ```
pub trait Metric: Send {
    /// The metric's name (its values may carry derived names, e.g. `dice_1`, `dice_mean`).
    fn name(&self) -> &str;

    /// For every name reported, one value per sample of `batch`, in batch order.
    fn per_sample(
        &self,
        output: &StepOutput,
        batch: &Batch,
    ) -> Result<Vec<(String, Vec<f64>)>, MetricError>;
}

fn prediction<'a>(
    what: &'static str,
    output: &'a StepOutput,
    name: &str,
) -> Result<&'a ArrayD<f32>, MetricError> {
    output
        .prediction(name)
        .ok_or_else(|| MetricError::MissingField {
            what,
            field: name.to_owned(),
            available: output.predictions.keys().cloned().collect(),
        })
}

fn batch_field<'a>(
    what: &'static str,
    batch: &'a Batch,
    name: &str,
) -> Result<&'a BatchField, MetricError> {
    batch.get(name).ok_or_else(|| MetricError::MissingField {
        what,
        field: name.to_owned(),
        available: batch.names().map(str::to_owned).collect(),
    })
}

fn i64_field<'a>(
    what: &'static str,
    batch: &'a Batch,
    name: &str,
) -> Result<&'a ArrayD<i64>, MetricError> {
    match batch_field(what, batch, name)? {
        BatchField::I64(a) => Ok(a),
        _ => Err(MetricError::FieldKind {
            what,
            field: name.to_owned(),
            expected: "i64 labels",
        }),
    }
}

fn f32_field<'a>(
    what: &'static str,
    batch: &'a Batch,
    name: &str,
) -> Result<&'a ArrayD<f32>, MetricError> {
    match batch_field(what, batch, name)? {
        BatchField::F32(a) => Ok(a),
        _ => Err(MetricError::FieldKind {
            what,
            field: name.to_owned(),
            expected: "f32 values",
        }),
    }
}

/// The class of the largest logit along axis 1 (`[batch, classes, ...]` → `[batch, ...]`); the
/// first among equal maxima.
fn argmax_classes(what: &'static str, logits: &ArrayD<f32>) -> Result<ArrayD<i64>, MetricError> {
    if logits.ndim() < 2 || logits.shape()[1] == 0 {
        return Err(MetricError::ShapeMismatch {
            what,
            truth: vec![],
            prediction: logits.shape().to_vec(),
        });
    }
    Ok(logits.map_axis(Axis(1), |scores| {
        let mut best = 0;
        for (class, &score) in scores.iter().enumerate() {
            if score > scores[best] {
                best = class;
            }
        }
        best as i64
    }))
}

fn check_batch(
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

/// Per sample, the share of positions whose largest logit is the true class: for classifier
/// logits `[batch, classes]` against labels `[batch]` a sample scores 0 or 1; for segmentation
/// logits `[batch, classes, ...]` against label maps `[batch, ...]`, the voxel accuracy.
/// Reported as `accuracy`.
#[derive(Clone, Debug)]
pub struct Accuracy {
    prediction: String,
    target: String,
}

impl Accuracy {
    /// Accuracy of the prediction `prediction` (logits) against the `i64` batch field `target`.
    pub fn new(prediction: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            prediction: prediction.into(),
            target: target.into(),
        }
    }
}

impl Metric for Accuracy {
    fn name(&self) -> &'static str {
        "accuracy"
    }

    fn per_sample(
        &self,
        output: &StepOutput,
        batch: &Batch,
    ) -> Result<Vec<(String, Vec<f64>)>, MetricError> {
        let what = "accuracy";
        let predicted = argmax_classes(what, prediction(what, output, &self.prediction)?)?;
        let truth = i64_field(what, batch, &self.target)?;
        check_batch(what, truth.shape(), predicted.shape())?;
        let values = truth
            .outer_iter()
            .zip(predicted.outer_iter())
            .map(|(t, p)| {
                let hits = t.iter().zip(&p).filter(|(a, b)| a == b).count();
                hits as f64 / t.len().max(1) as f64
            })
            .collect();
        Ok(vec![("accuracy".to_owned(), values)])
    }
}

/// Per sample, the Dice coefficient of every class of the predicted label map (largest logit of
/// `[batch, classes, ...]`) against the `i64` label map `[batch, ...]`, with
/// [`dice_per_class`]'s rule for empty classes. Reported as `dice_<class>` and `dice_mean` (the
/// mean of the sample's defined classes); class 0 (background) is left out unless
/// [`Dice::with_background`] is used.
#[derive(Clone, Debug)]
pub struct Dice {
    classes: usize,
    prediction: String,
    target: String,
    background: bool,
}

impl Dice {
    /// Dice of `classes` classes of the prediction `prediction` against the field `target`.
    pub fn new(classes: usize, prediction: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            classes,
            prediction: prediction.into(),
            target: target.into(),
            background: false,
        }
    }

    /// The same metric reporting class 0 and counting it in the mean.
    #[must_use]
    pub fn with_background(mut self) -> Self {
        self.background = true;
        self
    }
}

impl Metric for Dice {
    fn name(&self) -> &'static str {
        "dice"
    }

    fn per_sample(
        &self,
        output: &StepOutput,
        batch: &Batch,
    ) -> Result<Vec<(String, Vec<f64>)>, MetricError> {
        let what = "dice";
        let predicted = argmax_classes(what, prediction(what, output, &self.prediction)?)?;
        let truth = i64_field(what, batch, &self.target)?;
        check_batch(what, truth.shape(), predicted.shape())?;

        let first = usize::from(!self.background);
        let mut per_class = vec![Vec::with_capacity(batch.len()); self.classes];
        let mut means = Vec::with_capacity(batch.len());
        for (t, p) in truth.outer_iter().zip(predicted.outer_iter()) {
            let dice = dice_per_class(&t, &p, self.classes)?;
            let reported = dice.get(first..).unwrap_or(&[]);
            for (values, value) in per_class.iter_mut().skip(first).zip(reported) {
                values.push(value.unwrap_or(f64::NAN));
            }
            means.push(mean_defined(reported).unwrap_or(f64::NAN));
        }
        let mut out: Vec<(String, Vec<f64>)> = per_class
            .into_iter()
            .enumerate()
            .skip(first)
            .map(|(class, values)| (format!("dice_{class}"), values))
            .collect();
        out.push(("dice_mean".to_owned(), means));
        Ok(out)
    }
}

/// Which error [`RegressionError`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Mean absolute error, reported as `mae`.
    Absolute,
    /// Mean squared error, reported as `mse`.
    Squared,
}

/// Per sample, the mean absolute or squared error of an `f32` prediction against the `f32`
/// batch field of the same shape.
#[derive(Clone, Debug)]
pub struct RegressionError {
    kind: ErrorKind,
    prediction: String,
    target: String,
}

impl RegressionError {
    /// The mean absolute error (`mae`) of `prediction` against `target`.
    pub fn absolute(prediction: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Absolute,
            prediction: prediction.into(),
            target: target.into(),
        }
    }

    /// The mean squared error (`mse`) of `prediction` against `target`.
    pub fn squared(prediction: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Squared,
            prediction: prediction.into(),
            target: target.into(),
        }
    }
}

impl RegressionError {
    fn reported(&self) -> &'static str {
        match self.kind {
            ErrorKind::Absolute => "mae",
            ErrorKind::Squared => "mse",
        }
    }
}

impl Metric for RegressionError {
    fn name(&self) -> &'static str {
        self.reported()
    }

    fn per_sample(
        &self,
        output: &StepOutput,
        batch: &Batch,
    ) -> Result<Vec<(String, Vec<f64>)>, MetricError> {
        let what = self.reported();
        let predicted = prediction(what, output, &self.prediction)?;
        let truth = f32_field(what, batch, &self.target)?;
        check_batch(what, truth.shape(), predicted.shape())?;
        let values = truth
            .outer_iter()
            .zip(predicted.outer_iter())
            .map(
                |(t, p): (ArrayViewD<'_, f32>, ArrayViewD<'_, f32>)| match self.kind {
                    ErrorKind::Absolute => mean_absolute_error(&t, &p),
                    ErrorKind::Squared => mean_squared_error(&t, &p),
                },
            )
            .collect::<Result<Vec<f64>, MetricError>>()?;
        Ok(vec![(what.to_owned(), values)])
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, arr0};

    use super::*;
    use crate::data::Record;

    #[test]
    fn dice_per_sample_of_segmentation_logits() {
        // Two samples of 4 voxels, 3 classes; logits pick the class with value 1.
        let predicted = [[0, 1, 1, 2], [0, 0, 0, 0]];
        let truth = [[0, 1, 2, 2], [0, 0, 1, 0]];
        let mut logits = ArrayD::<f32>::zeros(vec![2, 3, 4]);
        for (s, row) in predicted.iter().enumerate() {
            for (v, &c) in row.iter().enumerate() {
                logits[[s, c, v]] = 1.0;
            }
        }
        let batch = Batch::collate(truth.iter().map(|t| {
            Record::new().with(
                "label",
                ArrayD::from_shape_vec(vec![4], t.to_vec()).unwrap(),
            )
        }))
        .unwrap();
        let mut output = StepOutput::default();
        output.predictions.insert("logits".into(), logits);
        let values = Dice::new(3, "logits", "label")
            .per_sample(&output, &batch)
            .unwrap();
        // Sample 0: class 1 2·1/(1+2), class 2 2·1/(2+1). Sample 1: class 1 0/(1+0) = 0,
        // class 2 absent from both: NaN, left out of the sample's mean.
        assert_eq!(values[0].0, "dice_1");
        assert_eq!(values[0].1, [2.0 / 3.0, 0.0]);
        assert_eq!(values[1].0, "dice_2");
        assert_eq!(values[1].1[0], 2.0 / 3.0);
        assert!(values[1].1[1].is_nan());
        assert_eq!(values[2], ("dice_mean".to_owned(), vec![2.0 / 3.0, 0.0]));
    }

    #[test]
    fn regression_errors_per_sample() {
        let batch = Batch::collate([[1.0_f32, 2.0], [0.0, 0.0]].map(|t| {
            Record::new().with("t", ArrayD::from_shape_vec(vec![2], t.to_vec()).unwrap())
        }))
        .unwrap();
        let mut output = StepOutput::default();
        let p = ArrayD::from_shape_vec(vec![2, 2], vec![2.0_f32, 2.0, -1.0, 3.0]).unwrap();
        output.predictions.insert("out".into(), p);
        let mae = RegressionError::absolute("out", "t")
            .per_sample(&output, &batch)
            .unwrap();
        assert_eq!(mae, [("mae".to_owned(), vec![0.5, 2.0])]);
        let mse = RegressionError::squared("out", "t")
            .per_sample(&output, &batch)
            .unwrap();
        assert_eq!(mse, [("mse".to_owned(), vec![0.5, 5.0])]);
    }

    #[test]
    fn a_missing_prediction_lists_the_available_ones() {
        let batch = Batch::collate([Record::new().with("y", arr0(1_i64).into_dyn())]).unwrap();
        let error = Accuracy::new("probs", "y")
            .per_sample(&StepOutput::default(), &batch)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "accuracy: there is no field `probs`; available: []"
        );
    }
}

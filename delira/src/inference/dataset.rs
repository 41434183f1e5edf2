//! Batched prediction over a dataset.

use ndarray::ArrayD;

use super::{BoxError, InferenceError, Predict};
use crate::data::{Dataset, Loader, LoaderConfig, Sample, Sampler, SequentialSampler};

/// Predicts every sample the loader delivers in epoch 0 and hands each prediction to `sink`
/// with the sample's dataset index, in the loader's order.
///
/// The float field `input` of each batch, `[batch, ...]`, goes to the predictor as it is; the
/// output must have the batch size as its first axis, and `sink` receives one sample's part of it
/// (the output without the batch axis). Loading runs on the loader's worker threads while the
/// predictor works on the current batch. The first error (from the loader, the predictor or the
/// sink) ends the run.
///
/// ```
/// use delira::data::{FnDataset, Loader, LoaderConfig, Record, SequentialSampler};
/// use delira::inference::predict_loader;
/// use ndarray::{ArrayD, ArrayViewD, IxDyn};
///
/// let data = FnDataset::new(5, |i| Ok(Record::new().with("x", ArrayD::from_elem(IxDyn(&[2]), i as f32))));
/// let config = LoaderConfig::builder().batch_size(2).workers(1).build();
/// let loader = Loader::new(data, SequentialSampler::new(5), config)?;
/// let mut sum = |x: ArrayViewD<f32>| Ok::<_, std::convert::Infallible>(x.sum_axis(ndarray::Axis(1)));
/// let mut seen = Vec::new();
/// predict_loader(&loader, "x", &mut sum, |index, p: ArrayD<f32>| {
///     seen.push((index, p[[]]));
///     Ok::<_, std::convert::Infallible>(())
/// })?;
/// assert_eq!(seen, [(0, 0.0), (1, 2.0), (2, 4.0), (3, 6.0), (4, 8.0)]);
/// # Ok::<(), delira::inference::InferenceError>(())
/// ```
pub fn predict_loader<D, S, P, F, E>(
    loader: &Loader<D, S>,
    input: &str,
    predictor: &mut P,
    mut sink: F,
) -> Result<(), InferenceError>
where
    D: Dataset + 'static,
    D::Item: Sample,
    S: Sampler,
    P: Predict + ?Sized,
    F: FnMut(usize, ArrayD<f32>) -> Result<(), E>,
    E: Into<BoxError>,
{
    for batch in loader.epoch(0) {
        let batch = batch?;
        let first = batch.indices().first().copied().unwrap_or(0);
        let Some(x) = batch.f32(input) else {
            return Err(InferenceError::MissingField {
                index: first,
                field: input.to_owned(),
                available: batch.names().map(str::to_owned).collect(),
            });
        };
        let output = predictor.predict(x.view())?;
        if output.shape().first() != Some(&batch.len()) {
            return Err(InferenceError::OutputShape {
                input: x.shape().to_vec(),
                found: output.shape().to_vec(),
                expected: format!("{} (the batch size) as the first axis", batch.len()),
            });
        }
        tracing::debug!(samples = ?batch.indices(), "batch predicted");
        for (&index, prediction) in batch.indices().iter().zip(output.outer_iter()) {
            sink(index, prediction.to_owned()).map_err(|e| InferenceError::Sink {
                index,
                cause: e.into(),
            })?;
        }
    }
    Ok(())
}

/// The prediction of every sample of `dataset`, in dataset order: [`predict_loader`] over a
/// loader with a [`SequentialSampler`] and `config` (whose `drop_last` is ignored, so that every
/// sample is predicted).
///
/// ```
/// use delira::data::{FnDataset, LoaderConfig, Record};
/// use delira::inference::predict_dataset;
/// use ndarray::{ArrayD, ArrayViewD, IxDyn};
///
/// let data = FnDataset::new(3, |i| Ok(Record::new().with("x", ArrayD::from_elem(IxDyn(&[1, 2]), i as f32))));
/// let config = LoaderConfig::builder().batch_size(2).build();
/// let mut plus_one = |x: ArrayViewD<f32>| Ok::<_, std::convert::Infallible>(x.mapv(|v| v + 1.0));
/// let predictions = predict_dataset(data, config, "x", &mut plus_one)?;
/// assert_eq!(predictions[2], ArrayD::from_elem(IxDyn(&[1, 2]), 3.0_f32));
/// # Ok::<(), delira::inference::InferenceError>(())
/// ```
pub fn predict_dataset<D, P>(
    dataset: D,
    config: LoaderConfig,
    input: &str,
    predictor: &mut P,
) -> Result<Vec<ArrayD<f32>>, InferenceError>
where
    D: Dataset + 'static,
    D::Item: Sample,
    P: Predict + ?Sized,
{
    let len = dataset.len();
    let mut config = config;
    config.drop_last = false;
    let loader = Loader::new(dataset, SequentialSampler::new(len), config)?;
    let mut predictions = Vec::with_capacity(len);
    predict_loader(&loader, input, predictor, |_, prediction| {
        predictions.push(prediction);
        Ok::<_, std::convert::Infallible>(())
    })?;
    Ok(predictions)
}

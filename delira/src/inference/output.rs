//! Network outputs as probabilities and label maps on the input image's grid.

use ndarray::{ArrayD, Axis, IxDyn};

use super::InferenceError;
use crate::io::{LabelMap, Volume};

/// The softmax over the channel axis: at every voxel, `exp(x_k − m) / Σ_j exp(x_j − m)` with
/// `m` the voxel's largest value (so large logits do not overflow). The affine is kept. A NaN (or
/// an infinite logit) makes its voxel's probabilities NaN.
///
/// ```
/// use delira::inference::softmax;
/// use delira::io::{Affine, Volume};
/// use ndarray::{ArrayD, IxDyn};
///
/// let logits = ArrayD::from_shape_vec(IxDyn(&[2, 1, 2]), vec![0.0, 1000.0, 2_f32.ln(), 1000.0]).unwrap();
/// let p = softmax(&Volume::new(logits, Affine::IDENTITY));
/// assert!((p.data()[[0, 0, 0]] - 1.0 / 3.0).abs() < 1e-7);
/// assert!((p.data()[[1, 0, 0]] - 2.0 / 3.0).abs() < 1e-7);
/// assert_eq!(p.data()[[0, 0, 1]], 0.5);
/// ```
#[must_use]
pub fn softmax(logits: &Volume<f32>) -> Volume<f32> {
    let data = logits.data();
    let max = data.fold_axis(Axis(0), f32::NEG_INFINITY, |&m, &v| {
        if v.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(v)
        }
    });
    let mut exp = data.to_owned();
    for mut channel in exp.outer_iter_mut() {
        channel.zip_mut_with(&max, |v, &m| *v = (*v - m).exp());
    }
    let total = exp.sum_axis(Axis(0));
    for mut channel in exp.outer_iter_mut() {
        channel.zip_mut_with(&total, |v, &t| *v /= t);
    }
    Volume::new(exp, *logits.affine())
}

/// The label map of the channel with the largest value at each voxel, `[1, spatial...]`, with the
/// prediction's affine.
///
/// Ties go to the lowest channel index. A NaN never wins over a number; a voxel where every
/// channel is NaN gets label 0. Fails when there are no channels or more than 65 536 (labels are
/// `u16`).
///
/// ```
/// use delira::inference::argmax;
/// use delira::io::{Affine, Volume};
/// use ndarray::{ArrayD, IxDyn};
///
/// // Three channels over 4 voxels: a clear winner, a tie, a NaN, all NaN.
/// let scores = vec![
///     0.1, 0.5, f32::NAN, f32::NAN, // channel 0
///     0.7, 0.5, 0.2, f32::NAN, // channel 1
///     0.2, 0.1, 0.3, f32::NAN, // channel 2
/// ];
/// let volume = Volume::new(ArrayD::from_shape_vec(IxDyn(&[3, 4, 1]), scores).unwrap(), Affine::IDENTITY);
/// let labels = argmax(&volume)?;
/// assert_eq!(labels.volume().data().iter().copied().collect::<Vec<u16>>(), [1, 0, 2, 0]);
/// # Ok::<(), delira::inference::InferenceError>(())
/// ```
pub fn argmax(prediction: &Volume<f32>) -> Result<LabelMap, InferenceError> {
    let data = prediction.data();
    let channels = data.shape()[0];
    if channels == 0 || channels > usize::from(u16::MAX) + 1 {
        return Err(InferenceError::InputShape {
            found: data.shape().to_vec(),
            problem: format!(
                "argmax needs between 1 and 65536 channels (labels are u16), got {channels}"
            ),
        });
    }

    let mut spatial = vec![1];
    spatial.extend_from_slice(prediction.spatial_shape());
    let mut best = data.index_axis(Axis(0), 0).insert_axis(Axis(0)).to_owned();
    let mut labels = ArrayD::<u16>::zeros(IxDyn(&spatial));
    for (k, channel) in data.outer_iter().enumerate().skip(1) {
        let channel = channel.insert_axis(Axis(0));
        ndarray::Zip::from(&mut best)
            .and(&mut labels)
            .and(&channel)
            .for_each(|b, l, &v| {
                if v > *b || (b.is_nan() && !v.is_nan()) {
                    *b = v;
                    *l = k as u16;
                }
            });
    }
    Ok(LabelMap::new(labels, *prediction.affine()))
}

/// A prediction `[K, spatial...]` placed on the grid of the image it was made from: the image's
/// affine, after checking that the spatial shapes agree. Use it for predictions that come back
/// as plain arrays (from [`predict_dataset`](super::predict_dataset)), then write them with
/// [`save_volume`](crate::io::save_volume) or, after [`argmax`],
/// [`save_labels`](crate::io::save_labels).
///
/// ```
/// use delira::inference::with_geometry;
/// use delira::io::{Affine, Volume};
/// use ndarray::{ArrayD, IxDyn};
///
/// let image: Volume<f32> =
///     Volume::new(ArrayD::zeros(IxDyn(&[1, 4, 5, 6])), Affine::from_spacing([1.0, 1.0, 2.5]));
/// let placed = with_geometry(ArrayD::zeros(IxDyn(&[3, 4, 5, 6])), &image)?;
/// assert_eq!(placed.affine(), image.affine());
/// assert!(with_geometry(ArrayD::zeros(IxDyn(&[3, 4, 5, 7])), &image).is_err());
/// # Ok::<(), delira::inference::InferenceError>(())
/// ```
pub fn with_geometry<T>(
    prediction: ArrayD<f32>,
    reference: &Volume<T>,
) -> Result<Volume<f32>, InferenceError> {
    if prediction.shape().get(1..) != Some(reference.spatial_shape()) {
        return Err(InferenceError::InputShape {
            found: prediction.shape().to_vec(),
            problem: format!(
                "a prediction for an image of spatial shape {:?} needs shape [K, {}]",
                reference.spatial_shape(),
                reference
                    .spatial_shape()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(Volume::new(prediction, *reference.affine()))
}

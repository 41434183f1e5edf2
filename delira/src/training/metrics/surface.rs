//! Surface distances between segmentation masks, in millimetres.
//!
//! The **surface** of a mask is the set of its voxels that have at least one face neighbour
//! (6-connectivity in 3D) outside the mask or outside the image, which is the boundary MONAI
//! obtains with `binary_erosion(mask) ^ mask`. Distances between surfaces come from an exact
//! Euclidean distance transform that honours anisotropic voxel spacing.

use ndarray::{ArrayD, ArrayViewD, AsArray, Axis, Dimension, IxDyn};

use super::{MetricError, check_shapes};

/// The distances from every surface voxel of one mask to the nearest surface voxel of the other.
#[derive(Debug, Clone, PartialEq)]
pub struct SurfaceDistances {
    /// One distance per surface voxel of the prediction, in flat (row-major) order.
    pub prediction_to_truth: Vec<f64>,
    /// One distance per surface voxel of the truth, in flat (row-major) order.
    pub truth_to_prediction: Vec<f64>,
}

/// The directed surface distances of two masks, or `None` when either mask is empty.
pub fn surface_distances<'a, D: Dimension>(
    truth: impl AsArray<'a, bool, D>,
    prediction: impl AsArray<'a, bool, D>,
    spacing: &[f64],
) -> Result<Option<SurfaceDistances>, MetricError> {
    let (truth, prediction) = (truth.into().into_dyn(), prediction.into().into_dyn());
    check_shapes("surface distance", truth.shape(), prediction.shape())?;
    check_spacing(spacing, truth.ndim())?;

    let truth_surface = surface(&truth);
    let prediction_surface = surface(&prediction);
    if !truth_surface.iter().any(|&s| s) || !prediction_surface.iter().any(|&s| s) {
        return Ok(None);
    }

    let to_truth = squared_distance_transform(&truth_surface.view(), spacing);
    let to_prediction = squared_distance_transform(&prediction_surface.view(), spacing);
    let sample = |from: &ArrayD<bool>, field: &ArrayD<f64>| -> Vec<f64> {
        from.iter()
            .zip(field.iter())
            .filter(|(s, _)| **s)
            .map(|(_, d)| d.sqrt())
            .collect()
    };
    Ok(Some(SurfaceDistances {
        prediction_to_truth: sample(&prediction_surface, &to_truth),
        truth_to_prediction: sample(&truth_surface, &to_prediction),
    }))
}

/// The 95th-percentile Hausdorff distance of two masks, in the unit of `spacing`.
///
/// Each directed set of surface distances gives its 95th percentile (linear interpolation, as
/// `NumPy`'s default), and the larger of the two is the result, as MONAI's
/// `compute_hausdorff_distance(percentile=95)`.
///
/// **Empty masks.** Both empty: `None` (undefined, skipped by means). Exactly one empty:
/// `Some(f64::INFINITY)` — there is no surface to measure against, and a missed or hallucinated
/// structure is the worst possible result. (MONAI returns NaN when the truth is empty and infinity
/// when only the prediction is.)
///
/// ```
/// use ndarray::Array2;
/// use delira::training::metrics::hausdorff95;
///
/// // Two single voxels 3 rows apart on a grid with 2 mm rows and 1 mm columns.
/// let mut truth = Array2::from_elem((5, 5), false);
/// let mut prediction = truth.clone();
/// truth[[0, 2]] = true;
/// prediction[[3, 2]] = true;
/// assert_eq!(hausdorff95(&truth, &prediction, &[2.0, 1.0]).unwrap(), Some(6.0));
/// ```
pub fn hausdorff95<'a, D: Dimension>(
    truth: impl AsArray<'a, bool, D>,
    prediction: impl AsArray<'a, bool, D>,
    spacing: &[f64],
) -> Result<Option<f64>, MetricError> {
    let (truth, prediction) = (truth.into(), prediction.into());
    let Some(distances) = distances_or_empty_rule(&truth, &prediction, spacing)? else {
        return Ok(empty_rule(&truth, &prediction));
    };
    Ok(Some(
        percentile(distances.prediction_to_truth, 95.0)
            .max(percentile(distances.truth_to_prediction, 95.0)),
    ))
}

/// The average symmetric surface distance of two masks, in the unit of `spacing`: the mean over
/// the surface voxels of *both* masks of the distance to the other mask's surface.
///
/// This is the classic pooled definition (Heimann et al., 2009). MONAI's
/// `SurfaceDistanceMetric(symmetric=True)` instead averages the two directed means, which differs
/// when the surfaces have different numbers of voxels. Empty masks follow [`hausdorff95`].
///
/// ```
/// use ndarray::Array1;
/// use delira::training::metrics::average_surface_distance;
///
/// // Truth: voxels 0..=1 (surface: both); prediction: voxel 4. Spacing 0.5.
/// let truth = Array1::from(vec![true, true, false, false, false]);
/// let prediction = Array1::from(vec![false, false, false, false, true]);
/// let assd = average_surface_distance(&truth, &prediction, &[0.5]).unwrap().unwrap();
/// // prediction → truth: 1.5; truth → prediction: 2.0 and 1.5.
/// assert!((assd - (1.5 + 2.0 + 1.5) / 3.0).abs() < 1e-15);
/// ```
pub fn average_surface_distance<'a, D: Dimension>(
    truth: impl AsArray<'a, bool, D>,
    prediction: impl AsArray<'a, bool, D>,
    spacing: &[f64],
) -> Result<Option<f64>, MetricError> {
    let (truth, prediction) = (truth.into(), prediction.into());
    let Some(distances) = distances_or_empty_rule(&truth, &prediction, spacing)? else {
        return Ok(empty_rule(&truth, &prediction));
    };
    let count = distances.prediction_to_truth.len() + distances.truth_to_prediction.len();
    let sum: f64 = distances
        .prediction_to_truth
        .iter()
        .chain(&distances.truth_to_prediction)
        .sum();
    Ok(Some(sum / count as f64))
}

fn distances_or_empty_rule<D: Dimension>(
    truth: &ndarray::ArrayView<'_, bool, D>,
    prediction: &ndarray::ArrayView<'_, bool, D>,
    spacing: &[f64],
) -> Result<Option<SurfaceDistances>, MetricError> {
    surface_distances(truth.view(), prediction.view(), spacing)
}

fn empty_rule<D: Dimension>(
    truth: &ndarray::ArrayView<'_, bool, D>,
    prediction: &ndarray::ArrayView<'_, bool, D>,
) -> Option<f64> {
    let truth_empty = !truth.iter().any(|&v| v);
    let prediction_empty = !prediction.iter().any(|&v| v);
    if truth_empty && prediction_empty {
        None
    } else {
        Some(f64::INFINITY)
    }
}

/// The Euclidean distance from every voxel to the nearest `true` voxel of `features`, with
/// `spacing` giving the size of a voxel along each axis (infinity everywhere when there is no
/// feature).
///
/// Exact: the separable lower-envelope algorithm of Felzenszwalb and Huttenlocher (2012), one
/// pass per axis, with parabolas placed at physical positions.
///
/// ```
/// use ndarray::array;
/// let features = array![[false, false, false], [false, false, true]];
/// let edt = delira::training::metrics::euclidean_distance_transform(&features, &[3.0, 4.0]).unwrap();
/// assert_eq!(edt[[0, 0]], (3.0_f64.powi(2) + 8.0_f64.powi(2)).sqrt());
/// assert_eq!(edt[[0, 2]], 3.0);
/// assert_eq!(edt[[1, 2]], 0.0);
/// ```
pub fn euclidean_distance_transform<'a, D: Dimension>(
    features: impl AsArray<'a, bool, D>,
    spacing: &[f64],
) -> Result<ArrayD<f64>, MetricError> {
    let features = features.into().into_dyn();
    check_spacing(spacing, features.ndim())?;
    Ok(squared_distance_transform(&features, spacing).mapv_into(f64::sqrt))
}

fn check_spacing(spacing: &[f64], ndim: usize) -> Result<(), MetricError> {
    if spacing.len() == ndim && spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        Ok(())
    } else {
        Err(MetricError::Spacing {
            spacing: spacing.to_vec(),
            ndim,
        })
    }
}

/// Mask voxels with a face neighbour outside the mask or outside the image.
fn surface(mask: &ArrayViewD<'_, bool>) -> ArrayD<bool> {
    let shape = mask.shape().to_vec();
    let ndim = shape.len();
    // A row-major copy, so that neighbours are at fixed offsets.
    let inside: Vec<bool> = mask.iter().copied().collect();
    let mut strides = vec![1; ndim];
    for axis in (0..ndim.saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }

    let mut out = vec![false; inside.len()];
    let mut coordinate = vec![0; ndim];
    for flat in 0..inside.len() {
        if inside[flat] {
            out[flat] = (0..ndim).any(|axis| {
                let at = coordinate[axis];
                at == 0
                    || at + 1 == shape[axis]
                    || !inside[flat - strides[axis]]
                    || !inside[flat + strides[axis]]
            });
        }
        for axis in (0..ndim).rev() {
            coordinate[axis] += 1;
            if coordinate[axis] < shape[axis] {
                break;
            }
            coordinate[axis] = 0;
        }
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out)
        .unwrap_or_else(|_| unreachable!("one output per input voxel"))
}

fn squared_distance_transform(features: &ArrayViewD<'_, bool>, spacing: &[f64]) -> ArrayD<f64> {
    let mut field = features.mapv(|f| if f { 0.0 } else { f64::INFINITY });
    let longest = field.shape().iter().copied().max().unwrap_or(0);
    let mut scratch = LowerEnvelope::with_capacity(longest);
    for (axis, &step) in spacing.iter().enumerate() {
        for mut lane in field.lanes_mut(Axis(axis)) {
            let values: Vec<f64> = lane.to_vec();
            scratch.transform(&values, step);
            for (out, &d) in lane.iter_mut().zip(&scratch.output) {
                *out = d;
            }
        }
    }
    field
}

/// Buffers for the 1D squared distance transform of sampled functions.
struct LowerEnvelope {
    vertices: Vec<usize>,
    boundaries: Vec<f64>,
    output: Vec<f64>,
}

impl LowerEnvelope {
    fn with_capacity(n: usize) -> Self {
        Self {
            vertices: Vec::with_capacity(n),
            boundaries: Vec::with_capacity(n + 1),
            output: Vec::with_capacity(n),
        }
    }

    /// `output[p] = min_q ((p - q) * step)^2 + f[q]`, over the `q` with finite `f[q]`.
    fn transform(&mut self, f: &[f64], step: f64) {
        self.vertices.clear();
        self.boundaries.clear();
        self.output.clear();
        let position = |q: usize| q as f64 * step;

        for (q, &value) in f.iter().enumerate() {
            if !value.is_finite() {
                continue;
            }
            let x = position(q);
            let mut crossing = f64::NEG_INFINITY;
            while let Some(&v) = self.vertices.last() {
                let xv = position(v);
                crossing = ((value + x * x) - (f[v] + xv * xv)) / (2.0 * (x - xv));
                if crossing <= *self.boundaries.last().unwrap_or(&f64::NEG_INFINITY) {
                    self.vertices.pop();
                    self.boundaries.pop();
                    crossing = f64::NEG_INFINITY;
                } else {
                    break;
                }
            }
            self.vertices.push(q);
            self.boundaries.push(crossing);
        }

        if self.vertices.is_empty() {
            self.output.resize(f.len(), f64::INFINITY);
            return;
        }
        let mut k = 0;
        for p in 0..f.len() {
            let x = position(p);
            while k + 1 < self.vertices.len() && self.boundaries[k + 1] < x {
                k += 1;
            }
            let v = self.vertices[k];
            let dx = x - position(v);
            self.output.push(dx * dx + f[v]);
        }
    }
}

/// `NumPy`'s default (linear) percentile of unsorted values; the input must not be empty.
fn percentile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (values.len() - 1) as f64 * q / 100.0;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let t = rank - lower as f64;
    values[lower] + (values[upper] - values[lower]) * t
}

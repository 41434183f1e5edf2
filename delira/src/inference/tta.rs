//! Test-time augmentation by flip averaging.

use ndarray::{ArrayD, ArrayViewD, Axis};

use super::{InferenceError, Predict, check_output};

/// A predictor that also predicts on flipped copies of its input, flips each prediction back and
/// averages them: test-time augmentation for networks that should not care about mirroring.
///
/// Each flip is a set of spatial axes (0 = the first spatial axis, which is axis 2 of the batch
/// `[batch, C, spatial...]`); the empty set is the input as it is. The flipped input reaches the
/// wrapped predictor as a reversed view (no copy). Every prediction must have the input's batch
/// size and spatial shape (`[batch, K, spatial...]`); the result is their mean, summed in the
/// order of the flips and divided by their number.
///
/// Wrap a network in it before handing it to [`SlidingWindow`](super::SlidingWindow) to average
/// every window, as nnU-Net's mirroring does.
///
/// ```
/// use delira::inference::{FlipAveraging, Predict};
/// use ndarray::{ArrayD, ArrayViewD, IxDyn};
///
/// // A network that ignores its input and outputs the coordinate along the first spatial axis.
/// let ramp = |x: ArrayViewD<f32>| {
///     let shape = x.shape().to_vec();
///     Ok::<_, std::convert::Infallible>(ArrayD::from_shape_fn(IxDyn(&shape), |i| i[2] as f32))
/// };
/// let mut averaged = FlipAveraging::all_subsets(ramp, &[0, 1]);
/// assert_eq!(averaged.flips(), [vec![], vec![0], vec![1], vec![0, 1]]);
///
/// // x and its mirror 4 - x average to 2 everywhere on an axis of 5 voxels.
/// let out = averaged.predict(ArrayD::zeros(IxDyn(&[1, 1, 5, 3])).view())?;
/// assert_eq!(out, ArrayD::from_elem(IxDyn(&[1, 1, 5, 3]), 2.0_f32));
/// # Ok::<(), delira::inference::InferenceError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FlipAveraging<P> {
    inner: P,
    flips: Vec<Vec<usize>>,
}

impl<P> FlipAveraging<P> {
    /// Averages over the given flips; each is a set of spatial axes (sorted, repeats removed).
    pub fn new(inner: P, flips: Vec<Vec<usize>>) -> Self {
        let flips = flips
            .into_iter()
            .map(|mut axes| {
                axes.sort_unstable();
                axes.dedup();
                axes
            })
            .collect();
        Self { inner, flips }
    }

    /// Averages over every subset of `axes` (2ⁿ flips), in binary counting order: the input
    /// itself, then `axes[0]`, `axes[1]`, `axes[0]` with `axes[1]`, and so on.
    pub fn all_subsets(inner: P, axes: &[usize]) -> Self {
        let flips = (0..1_usize << axes.len())
            .map(|bits| {
                axes.iter()
                    .enumerate()
                    .filter(|(i, _)| bits >> i & 1 == 1)
                    .map(|(_, &a)| a)
                    .collect()
            })
            .collect();
        Self::new(inner, flips)
    }

    /// The flips averaged over, in order.
    pub fn flips(&self) -> &[Vec<usize>] {
        &self.flips
    }

    /// The wrapped predictor.
    pub fn into_inner(self) -> P {
        self.inner
    }
}

impl<P: Predict> Predict for FlipAveraging<P> {
    fn predict(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>, InferenceError> {
        let spatial = input.ndim().saturating_sub(2);
        if let Some(axis) = self.flips.iter().flatten().find(|&&a| a >= spatial) {
            return Err(InferenceError::InputShape {
                found: input.shape().to_vec(),
                problem: format!(
                    "flip axis {axis} does not exist; the input has {spatial} spatial axes \
                     after `[batch, C]`"
                ),
            });
        }
        if self.flips.is_empty() {
            return Err(InferenceError::Config(
                "flip averaging over no flip; give at least one set of axes (the empty set is \
                 the input itself)"
                    .to_owned(),
            ));
        }

        let mut sum: Option<ArrayD<f32>> = None;
        for axes in &self.flips {
            let mut flipped = input.view();
            for &a in axes {
                flipped.invert_axis(Axis(a + 2));
            }
            let mut output = self.inner.predict(flipped)?;
            let channels = sum.as_ref().map(|s| s.shape()[1]);
            check_output(input.shape(), output.shape(), channels)?;
            for &a in axes {
                output.invert_axis(Axis(a + 2));
            }
            match &mut sum {
                None => sum = Some(output.as_standard_layout().into_owned()),
                Some(sum) => *sum += &output,
            }
        }
        let count = self.flips.len() as f32;
        let mut mean = sum.unwrap_or_default();
        mean.mapv_inplace(|v| v / count);
        Ok(mean)
    }
}

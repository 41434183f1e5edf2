//! Sliding-window inference over whole volumes.

use std::borrow::Cow;

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use serde::{Deserialize, Serialize};
use typed_builder::TypedBuilder;

use super::{InferenceError, Predict, check_output};
use crate::io::Volume;

/// How the predictions of overlapping windows are weighted where they meet.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Blend {
    /// Each window's voxels weigh `Π exp(-(i_a - c_a)² / (2 σ_a²))` over the spatial axes `a`,
    /// where `c_a = (w_a - 1) / 2` is the window's centre and `σ_a = sigma_scale · w_a`, so a
    /// window's border, where a network sees the least context, counts little.
    Gaussian {
        /// σ as a fraction of the window size; nnU-Net uses 1/8.
        sigma_scale: f64,
    },
    /// Every voxel of every window weighs 1: overlapping predictions are averaged plainly.
    Constant,
}

impl Default for Blend {
    /// Gaussian with σ = window / 8, as nnU-Net.
    fn default() -> Self {
        Self::Gaussian { sigma_scale: 0.125 }
    }
}

/// Sliding-window inference: the volume is tiled into overlapping windows, the windows are
/// predicted in batches, and the predictions are blended into one of the volume's size.
///
/// # Window positions
///
/// Along each spatial axis of size `n` with window `w` (see [`window_starts`]): when `n ≤ w` the
/// axis is padded to `w` with `pad_value` (⌊(w − n)/2⌋ voxels before, the rest after; cropped off
/// the result) and one window covers it. Otherwise the target step is `w · (1 − overlap)` voxels
/// (at least 1), the number of windows is `m = ⌈(n − w) / step⌉ + 1`, and window `i` starts at
/// `round(i · (n − w) / (m − 1))`, rounding halves to even. The first window starts at 0, the last
/// ends flush with the border, and the windows are spread evenly, so neighbours overlap by at
/// least the requested fraction (unless the one-voxel minimum step applies). This is nnU-Net's rule (`compute_steps_for_sliding_window` with
/// `tile_step_size = 1 − overlap`). Windows run in row-major order of their positions (last axis
/// fastest), `batch_size` at a time.
///
/// # Blending
///
/// Each voxel's prediction is `Σ g(v − s) p_s(v − s) / Σ g(v − s)` over the windows `s` that
/// contain it, with `g` the window weight of [`Blend`]. The sums run in one pass per window over
/// the prediction; nothing is allocated per voxel. Where a Gaussian weight underflows to 0 it is
/// raised to the smallest nonzero weight, so every voxel has a positive total. The Gaussian's
/// centre is the exact middle of the window, `(w − 1)/2`, so the weights are symmetric (nnU-Net
/// centres on `⌊w / 2⌋` and samples a truncated discrete filter instead).
///
/// # Network contract
///
/// The predictor receives `[windows, C, w...]` and must return `[windows, K, w...]` with the same
/// `K` every time; the result has shape `[K, spatial...]`.
///
/// ```
/// use delira::inference::{Blend, SlidingWindow};
/// use ndarray::{ArrayD, ArrayViewD, IxDyn};
///
/// let sliding: SlidingWindow =
///     serde_json::from_str(r#"{ "window": [4, 4], "overlap": 0.5, "blend": "constant" }"#).unwrap();
/// assert_eq!(sliding, SlidingWindow::builder().window(vec![4, 4]).blend(Blend::Constant).build());
///
/// // A network that outputs 1 everywhere, on a 1-channel 10 × 3 image (the second axis padded).
/// let mut ones = |x: ArrayViewD<f32>| {
///     let mut shape = x.shape().to_vec();
///     shape[1] = 1;
///     Ok::<_, std::convert::Infallible>(ArrayD::from_elem(IxDyn(&shape), 1.0_f32))
/// };
/// let out = sliding.run_array(&mut ones, ArrayD::zeros(IxDyn(&[1, 10, 3])).view())?;
/// assert_eq!(out, ArrayD::from_elem(IxDyn(&[1, 10, 3]), 1.0_f32));
/// assert_eq!(sliding.positions(&[10, 3])?, [vec![0, 0], vec![2, 0], vec![4, 0], vec![6, 0]]);
/// # Ok::<(), delira::inference::InferenceError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct SlidingWindow {
    /// The window's spatial size, one entry per spatial axis.
    pub window: Vec<usize>,
    /// The fraction of a window shared with its neighbour, `0 ≤ overlap < 1`.
    #[builder(default = 0.5)]
    #[serde(default = "default_overlap")]
    pub overlap: f64,
    /// Windows per call of the network.
    #[builder(default = 1)]
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How overlapping predictions are weighted.
    #[builder(default)]
    #[serde(default)]
    pub blend: Blend,
    /// The value of the voxels added where the volume is smaller than the window.
    #[builder(default)]
    #[serde(default)]
    pub pad_value: f32,
}

fn default_overlap() -> f64 {
    0.5
}

fn default_batch_size() -> usize {
    1
}

/// The start of every window along one axis of `size` voxels, for windows of `window` voxels
/// that overlap by the fraction `overlap` (the rule is described at [`SlidingWindow`]). An axis
/// not larger than the window has the single start 0 (it is padded to the window).
///
/// ```
/// use delira::inference::window_starts;
///
/// assert_eq!(window_starts(110, 64, 0.5), [0, 23, 46]);
/// assert_eq!(window_starts(128, 64, 0.5), [0, 32, 64]);
/// assert_eq!(window_starts(10, 4, 0.0), [0, 3, 6]);
/// assert_eq!(window_starts(3, 4, 0.5), [0]);
/// ```
///
/// # Panics
/// If `window` is 0 or `overlap` is not in `[0, 1)`.
#[track_caller]
#[must_use]
pub fn window_starts(size: usize, window: usize, overlap: f64) -> Vec<usize> {
    assert!(window > 0, "the window must have at least one voxel");
    assert!(
        (0.0..1.0).contains(&overlap),
        "the overlap must be in [0, 1), got {overlap}"
    );
    if size <= window {
        return vec![0];
    }
    let span = size - window;
    let target = (window as f64 * (1.0 - overlap)).max(1.0);
    let count = (span as f64 / target).ceil() as usize + 1;
    let step = span as f64 / (count - 1) as f64;
    (0..count)
        .map(|i| ((step * i as f64).round_ties_even() as usize).min(span))
        .collect()
}

impl SlidingWindow {
    /// The start of every window over a volume of this spatial shape, in the order they are
    /// predicted.
    pub fn positions(&self, spatial: &[usize]) -> Result<Vec<Vec<usize>>, InferenceError> {
        self.validate(spatial)?;
        let per_axis: Vec<Vec<usize>> = spatial
            .iter()
            .zip(&self.window)
            .map(|(&n, &w)| window_starts(n, w, self.overlap))
            .collect();
        let mut positions = Vec::new();
        let mut index = vec![0; per_axis.len()];
        'all: loop {
            positions.push(index.iter().zip(&per_axis).map(|(&i, s)| s[i]).collect());
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < per_axis[axis].len() {
                    continue 'all;
                }
                index[axis] = 0;
            }
            return Ok(positions);
        }
    }

    /// The prediction of a whole volume, `[K, spatial...]`, with the volume's affine.
    pub fn run<P: Predict + ?Sized>(
        &self,
        predictor: &mut P,
        volume: &Volume<f32>,
    ) -> Result<Volume<f32>, InferenceError> {
        let prediction = self.run_array(predictor, volume.data().view())?;
        let shape = prediction.shape().to_vec();
        Volume::try_new(prediction, *volume.affine()).ok_or_else(|| InferenceError::OutputShape {
            input: volume.data().shape().to_vec(),
            found: shape,
            expected: "[K, x, y] or [K, x, y, z]".to_owned(),
        })
    }

    /// The prediction of a whole channel-first array `[C, spatial...]` (any number of spatial
    /// axes, any memory layout), as `[K, spatial...]` in standard layout.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "a view is a borrowed handle; taking it by value matches `Predict` and ndarray"
    )]
    pub fn run_array<P: Predict + ?Sized>(
        &self,
        predictor: &mut P,
        input: ArrayViewD<'_, f32>,
    ) -> Result<ArrayD<f32>, InferenceError> {
        let Some((&channels, spatial)) = input.shape().split_first() else {
            return Err(InferenceError::InputShape {
                found: Vec::new(),
                problem: "sliding-window inference needs `[C, spatial...]`".to_owned(),
            });
        };
        let positions = self.positions(spatial)?;
        let padded_shape: Vec<usize> = spatial
            .iter()
            .zip(&self.window)
            .map(|(&n, &w)| n.max(w))
            .collect();
        let pad_before: Vec<usize> = padded_shape
            .iter()
            .zip(spatial)
            .map(|(&p, &n)| (p - n) / 2)
            .collect();
        tracing::debug!(
            shape = ?input.shape(),
            window = ?self.window,
            windows = positions.len(),
            "sliding-window inference"
        );

        let image = Grid::padded(&input, &padded_shape, &pad_before, self.pad_value)?;
        let weights = self.weights();
        let mut acc = Accumulator::new(&padded_shape);
        let window_volume: usize = self.window.iter().product();
        let mut batch = Vec::new();
        for chunk in positions.chunks(self.batch_size) {
            batch.clear();
            batch.reserve(chunk.len() * channels * window_volume);
            for start in chunk {
                image.copy_window(start, &self.window, &mut batch);
            }
            let mut batch_shape = vec![chunk.len(), channels];
            batch_shape.extend_from_slice(&self.window);
            let view =
                ArrayViewD::from_shape(IxDyn(&batch_shape), &batch).map_err(|e| internal(&e))?;
            let output = predictor.predict(view)?;
            check_output(&batch_shape, output.shape(), acc.channels())?;
            let output = output.as_standard_layout();
            let output = output.as_slice().ok_or_else(|| internal(&"layout"))?;
            let per_window = output.len() / chunk.len();
            if per_window == 0 {
                // No output channel: nothing to blend.
                continue;
            }
            for (start, prediction) in chunk.iter().zip(output.chunks_exact(per_window)) {
                acc.add(start, &self.window, prediction, &weights);
            }
        }
        acc.finish(&pad_before, spatial)
    }

    /// A predictor of whole volumes: each item of a batch `[batch, C, spatial...]` is predicted
    /// by sliding windows over it with `inner`, and the results are stacked,
    /// `[batch, K, spatial...]`. With it, [`predict_dataset`](super::predict_dataset) predicts
    /// datasets of whole images of any size (with `batch_size` 1 when their sizes differ).
    ///
    /// ```
    /// use delira::inference::{Predict, SlidingWindow};
    /// use ndarray::{ArrayD, ArrayViewD, IxDyn};
    ///
    /// let sliding = SlidingWindow::builder().window(vec![4, 4]).build();
    /// let mut negate = |x: ArrayViewD<f32>| Ok::<_, std::convert::Infallible>(x.mapv(|v| -v));
    /// let mut whole = sliding.tiled(&mut negate);
    /// let batch = ArrayD::from_elem(IxDyn(&[2, 1, 9, 7]), 3.0_f32);
    /// let out = whole.predict(batch.view())?;
    /// assert_eq!(out.shape(), [2, 1, 9, 7]);
    /// assert!(out.iter().all(|&v| (v + 3.0).abs() < 1e-6));
    /// # Ok::<(), delira::inference::InferenceError>(())
    /// ```
    pub fn tiled<P: Predict>(&self, inner: P) -> Tiled<'_, P> {
        Tiled {
            sliding: self,
            inner,
        }
    }

    fn validate(&self, spatial: &[usize]) -> Result<(), InferenceError> {
        let config = |problem: String| Err(InferenceError::Config(problem));
        if self.window.len() != spatial.len() {
            return Err(InferenceError::InputShape {
                found: spatial.to_vec(),
                problem: format!(
                    "the window {:?} has {} axes but the input has {} spatial axes",
                    self.window,
                    self.window.len(),
                    spatial.len()
                ),
            });
        }
        if spatial.is_empty() || self.window.contains(&0) {
            return config(format!(
                "window {:?}: every spatial axis needs a window of at least 1 voxel",
                self.window
            ));
        }
        if !(0.0..1.0).contains(&self.overlap) {
            return config(format!(
                "`overlap` is {}; it must be at least 0 and below 1",
                self.overlap
            ));
        }
        if self.batch_size == 0 {
            return config("`batch_size` is 0; set it to 1 or more".to_owned());
        }
        if let Blend::Gaussian { sigma_scale } = self.blend
            && !(sigma_scale.is_finite() && sigma_scale > 0.0)
        {
            return config(format!(
                "`sigma_scale` is {sigma_scale}; it must be a positive number (nnU-Net uses 0.125)"
            ));
        }
        Ok(())
    }

    /// The weight of every voxel of a window, in standard layout.
    fn weights(&self) -> Vec<f32> {
        let volume: usize = self.window.iter().product();
        let Blend::Gaussian { sigma_scale } = self.blend else {
            return vec![1.0; volume];
        };
        let per_axis: Vec<Vec<f64>> = self
            .window
            .iter()
            .map(|&w| {
                let centre = (w as f64 - 1.0) / 2.0;
                let sigma = sigma_scale * w as f64;
                (0..w)
                    .map(|i| (-(i as f64 - centre).powi(2) / (2.0 * sigma * sigma)).exp())
                    .collect()
            })
            .collect();
        let mut weights = vec![1.0_f64; volume];
        let mut repeat = volume;
        for axis in &per_axis {
            // Standard layout: axis `a` changes every `repeat / len` voxels.
            repeat /= axis.len();
            for (i, w) in weights.iter_mut().enumerate() {
                *w *= axis[(i / repeat) % axis.len()];
            }
        }
        let mut weights: Vec<f32> = weights.into_iter().map(|w| w as f32).collect();
        let smallest = weights
            .iter()
            .copied()
            .filter(|&w| w > 0.0)
            .fold(f32::INFINITY, f32::min);
        for w in &mut weights {
            if *w <= 0.0 {
                *w = smallest;
            }
        }
        weights
    }
}

fn internal(cause: &dyn std::fmt::Display) -> InferenceError {
    InferenceError::Config(format!("internal sliding-window error: {cause}"))
}

/// The standard-layout strides of a shape, in elements.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    strides
}

/// Calls `f(row, offset)` for every row (all axes but the last) of a box of shape `outer × last`
/// inside a standard-layout array with the strides `strides` (of the box's leading axes), where
/// `base` is the offset of the box's first voxel; rows come in standard order.
fn for_each_row(outer: &[usize], strides: &[usize], base: usize, mut f: impl FnMut(usize, usize)) {
    if outer.contains(&0) {
        return;
    }
    let mut index = vec![0; outer.len()];
    let mut offset = base;
    let mut row = 0;
    'rows: loop {
        f(row, offset);
        row += 1;
        for a in (0..outer.len()).rev() {
            index[a] += 1;
            offset += strides[a];
            if index[a] < outer[a] {
                continue 'rows;
            }
            offset -= strides[a] * outer[a];
            index[a] = 0;
        }
        return;
    }
}

/// The input, padded, in standard layout: `[C, padded...]`.
struct Grid<'a> {
    data: Cow<'a, [f32]>,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl<'a> Grid<'a> {
    fn padded(
        input: &ArrayViewD<'a, f32>,
        padded: &[usize],
        before: &[usize],
        value: f32,
    ) -> Result<Self, InferenceError> {
        let mut shape = vec![input.shape()[0]];
        shape.extend_from_slice(padded);
        let strides = strides(&shape);
        if shape == input.shape() {
            // No padding: read a standard-layout input in place, copy any other once.
            let data = match input.to_slice() {
                Some(slice) => Cow::Borrowed(slice),
                None => Cow::Owned(input.iter().copied().collect()),
            };
            return Ok(Self {
                data,
                shape,
                strides,
            });
        }
        let source = input.as_standard_layout();
        let source = source.as_slice().ok_or_else(|| internal(&"layout"))?;

        let mut data = vec![value; shape.iter().product()];
        let (last, outer) = input.shape().split_last().unwrap_or((&1, &[]));
        let base: usize = before.iter().zip(&strides[1..]).map(|(b, s)| b * s).sum();
        let leading = &strides[..strides.len() - 1];
        for_each_row(outer, leading, base, |row, offset| {
            data[offset..offset + last].copy_from_slice(&source[row * last..(row + 1) * last]);
        });
        Ok(Self {
            data: Cow::Owned(data),
            shape,
            strides,
        })
    }

    /// Appends the window at `start` (all channels) to `out`, in standard layout.
    fn copy_window(&self, start: &[usize], window: &[usize], out: &mut Vec<f32>) {
        let mut outer = vec![self.shape[0]];
        outer.extend_from_slice(&window[..window.len() - 1]);
        let last = window[window.len() - 1];
        let base: usize = start
            .iter()
            .zip(&self.strides[1..])
            .map(|(s, t)| s * t)
            .sum();
        let leading = &self.strides[..self.strides.len() - 1];
        for_each_row(&outer, leading, base, |_, offset| {
            out.extend_from_slice(&self.data[offset..offset + last]);
        });
    }
}

/// The weighted sums of the predictions and of the weights, over the padded grid.
struct Accumulator {
    spatial: Vec<usize>,
    sums: Vec<f32>,
    weights: Vec<f32>,
    channels: Option<usize>,
}

impl Accumulator {
    fn new(spatial: &[usize]) -> Self {
        Self {
            spatial: spatial.to_vec(),
            sums: Vec::new(),
            weights: vec![0.0; spatial.iter().product()],
            channels: None,
        }
    }

    fn channels(&self) -> Option<usize> {
        self.channels
    }

    /// Adds one window's prediction `[K, window...]` (standard layout) with its weights.
    fn add(&mut self, start: &[usize], window: &[usize], prediction: &[f32], weights: &[f32]) {
        let volume = self.weights.len();
        let window_volume: usize = window.iter().product();
        let channels = prediction.len() / window_volume;
        if self.channels.is_none() {
            self.channels = Some(channels);
            self.sums = vec![0.0; channels * volume];
        }

        let last = window[window.len() - 1];
        let spatial_strides = strides(&self.spatial);
        let base: usize = start.iter().zip(&spatial_strides).map(|(s, t)| s * t).sum();
        let outer = &window[..window.len() - 1];
        let leading = &spatial_strides[..spatial_strides.len() - 1];
        for_each_row(outer, leading, base, |row, offset| {
            let w = &weights[row * last..(row + 1) * last];
            for (sum, &w) in self.weights[offset..offset + last].iter_mut().zip(w) {
                *sum += w;
            }
            for k in 0..channels {
                let p = &prediction[k * window_volume + row * last..][..last];
                let sums = &mut self.sums[k * volume + offset..][..last];
                for ((sum, &p), &w) in sums.iter_mut().zip(p).zip(w) {
                    *sum += p * w;
                }
            }
        });
    }

    /// Divides by the weights and crops the padding off: `[K, size...]`.
    fn finish(mut self, before: &[usize], size: &[usize]) -> Result<ArrayD<f32>, InferenceError> {
        let volume = self.weights.len();
        let channels = self.channels.unwrap_or(0);
        for k in 0..channels {
            let sums = &mut self.sums[k * volume..(k + 1) * volume];
            for (sum, &w) in sums.iter_mut().zip(&self.weights) {
                *sum /= w;
            }
        }

        let mut shape = vec![channels];
        shape.extend_from_slice(size);
        let data = if size == self.spatial.as_slice() {
            self.sums
        } else {
            let mut padded = vec![channels];
            padded.extend_from_slice(&self.spatial);
            let strides = strides(&padded);
            let (last, outer) = shape.split_last().unwrap_or((&1, &[]));
            let base: usize = before.iter().zip(&strides[1..]).map(|(b, s)| b * s).sum();
            let mut data = Vec::with_capacity(shape.iter().product());
            for_each_row(outer, &strides[..strides.len() - 1], base, |_, offset| {
                data.extend_from_slice(&self.sums[offset..offset + last]);
            });
            data
        };
        ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| internal(&e))
    }
}

/// A predictor of whole volumes by sliding windows; see [`SlidingWindow::tiled`].
#[derive(Debug)]
pub struct Tiled<'a, P> {
    sliding: &'a SlidingWindow,
    inner: P,
}

impl<P: Predict> Predict for Tiled<'_, P> {
    fn predict(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>, InferenceError> {
        if input.ndim() < 2 {
            return Err(InferenceError::InputShape {
                found: input.shape().to_vec(),
                problem: "whole-volume prediction needs `[batch, C, spatial...]`".to_owned(),
            });
        }
        let outputs = input
            .outer_iter()
            .map(|item| self.sliding.run_array(&mut self.inner, item))
            .collect::<Result<Vec<_>, _>>()?;
        let views: Vec<_> = outputs.iter().map(|o| o.view()).collect();
        ndarray::stack(ndarray::Axis(0), &views).map_err(|e| internal(&e))
    }
}

//! Prediction: batched over a dataset, with flip averaging, and by sliding window over whole
//! volumes; predictions written back with the input image's geometry.
//!
//! Everything here is backend-agnostic: a network is anything that implements [`Predict`], a
//! function from a batch of inputs `[batch, C, spatial...]` to a batch of outputs
//! `[batch, K, spatial...]` (closures implement it). The pieces compose:
//!
//! - [`SlidingWindow`] tiles a whole 2D or 3D [`Volume`](crate::io::Volume) into overlapping
//!   windows, predicts them in batches and blends the window predictions with Gaussian (or
//!   constant) weights into one prediction of the volume's shape and affine;
//! - [`FlipAveraging`] wraps a predictor into one that also predicts on flipped inputs, flips the
//!   predictions back and averages them (test-time augmentation); wrap the network before handing
//!   it to the sliding window to average every window;
//! - [`predict_loader`] and [`predict_dataset`] run a [`Loader`](crate::data::Loader) over a
//!   dataset and predict the named input field of every sample, in dataset order
//!   ([`SlidingWindow::tiled`] makes a predictor of whole images for them);
//! - [`softmax`], [`argmax`] and [`with_geometry`] turn outputs into probabilities and label maps
//!   on the input image's grid, ready for [`save_volume`](crate::io::save_volume) and
//!   [`save_labels`](crate::io::save_labels).
//!
//! # A network as a predictor
//!
//! A backend [`Network`](crate::backend::Network) plugs in through [`NetworkPredictor`]: it puts
//! the input array into a [`Batch`](crate::data::Batch) under the network's input field name,
//! runs the network's eval step and returns the named prediction.
//!
//! # Example
//!
//! ```
//! use delira::inference::{Blend, SlidingWindow, argmax};
//! use delira::io::{Affine, Volume};
//! use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, concatenate};
//!
//! // A 1-channel 3D image of 20 × 12 × 9 voxels: value = x.
//! let image = Volume::new(
//!     ArrayD::from_shape_fn(IxDyn(&[1, 20, 12, 9]), |i| i[1] as f32),
//!     Affine::from_spacing([2.0, 2.0, 3.0]),
//! );
//! // A "network" with two output channels: the input and 10 minus the input.
//! let mut network = |x: ArrayViewD<f32>| {
//!     let other = x.mapv(|v| 10.0 - v);
//!     concatenate(Axis(1), &[x.view(), other.view()])
//! };
//! let sliding = SlidingWindow::builder().window(vec![8, 8, 8]).overlap(0.5).batch_size(4).build();
//! let prediction = sliding.run(&mut network, &image)?;
//! assert_eq!(prediction.data().shape(), [2, 20, 12, 9]);
//! assert_eq!(prediction.affine(), image.affine());
//! assert!((prediction.data()[[0, 13, 5, 4]] - 13.0).abs() < 1e-5);
//!
//! // Class 1 wins where x < 5, class 0 where x > 5; a tie (x = 5) goes to the lower class.
//! let labels = argmax(&prediction)?;
//! assert_eq!(labels.volume().data()[[0, 4, 0, 0]], 1);
//! assert_eq!(labels.volume().data()[[0, 5, 0, 0]], 0);
//! assert_eq!(labels.volume().data()[[0, 6, 0, 0]], 0);
//! # Ok::<(), delira::inference::InferenceError>(())
//! ```

mod dataset;
mod network;
mod output;
mod tta;
mod window;

pub use dataset::{predict_dataset, predict_loader};
pub use network::NetworkPredictor;
pub use output::{argmax, softmax, with_geometry};
pub use tta::FlipAveraging;
pub use window::{Blend, SlidingWindow, Tiled, window_starts};

use ndarray::{ArrayD, ArrayViewD};

use crate::data::LoaderError;
use crate::io::IoError;

/// A boxed error from a network or another predictor.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a prediction failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferenceError {
    /// The network (the predictor's function) returned an error.
    #[error("the network failed: {0}")]
    Network(BoxError),
    /// A setting cannot work.
    #[error("invalid inference setting: {0}")]
    Config(String),
    /// The input does not have the shape the setting needs.
    #[error("input of shape {found:?} does not fit: {problem}")]
    InputShape {
        /// The input's shape.
        found: Vec<usize>,
        /// What was expected, with the values involved.
        problem: String,
    },
    /// The network returned an output of the wrong shape.
    #[error(
        "the network returned shape {found:?} for an input of shape {input:?}; expected \
         {expected}"
    )]
    OutputShape {
        /// The input's shape.
        input: Vec<usize>,
        /// The output's shape.
        found: Vec<usize>,
        /// The shape expected, in words (`K` is free unless fixed by an earlier output).
        expected: String,
    },
    /// A sample has no float field of the input name.
    #[error("sample {index} has no f32 field `{field}`; its fields are {available:?}")]
    MissingField {
        /// The dataset index of the sample.
        index: usize,
        /// The requested field name.
        field: String,
        /// The fields the batch has.
        available: Vec<String>,
    },
    /// The loader could not deliver a batch.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// A prediction could not be written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The callback that received a prediction failed.
    #[error("the prediction of sample {index} could not be handled: {cause}")]
    Sink {
        /// The dataset index of the sample.
        index: usize,
        /// What went wrong.
        cause: BoxError,
    },
}

/// A network seen from inference: a batch of inputs in, a batch of outputs out.
///
/// The input has shape `[batch, C, spatial...]` and may have any memory layout (flip averaging
/// passes reversed views); the output must have shape `[batch, K, spatial...]`, with the same
/// batch size and (for the sliding window and flip averaging) the same spatial shape. `K`, the
/// number of output channels, is the network's business.
///
/// Closures `FnMut(ArrayViewD<f32>) -> Result<ArrayD<f32>, E>` implement it for any error type
/// that converts into a boxed error (every `std::error::Error + Send + Sync`, and `String`).
///
/// ```
/// use delira::inference::Predict;
/// use ndarray::{ArrayD, ArrayViewD, IxDyn};
///
/// let mut double = |x: ArrayViewD<f32>| Ok::<_, std::convert::Infallible>(x.mapv(|v| 2.0 * v));
/// let input = ArrayD::from_elem(IxDyn(&[1, 1, 2, 2]), 1.5_f32);
/// assert_eq!(double.predict(input.view())?, ArrayD::from_elem(IxDyn(&[1, 1, 2, 2]), 3.0_f32));
/// # Ok::<(), delira::inference::InferenceError>(())
/// ```
pub trait Predict {
    /// The outputs for a batch of inputs.
    fn predict(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>, InferenceError>;
}

impl<F, E> Predict for F
where
    F: FnMut(ArrayViewD<'_, f32>) -> Result<ArrayD<f32>, E>,
    E: Into<BoxError>,
{
    fn predict(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>, InferenceError> {
        self(input).map_err(|e| InferenceError::Network(e.into()))
    }
}

/// Checks that `output` is `[batch, K, spatial...]` for `input` `[batch, C, spatial...]`, with `K`
/// equal to `channels` when given.
fn check_output(
    input: &[usize],
    output: &[usize],
    channels: Option<usize>,
) -> Result<(), InferenceError> {
    if input.len() < 2 {
        return Err(InferenceError::InputShape {
            found: input.to_vec(),
            problem: "a network input needs shape `[batch, C, spatial...]`".to_owned(),
        });
    }
    let fits = output.len() == input.len()
        && output[0] == input[0]
        && output[2..] == input[2..]
        && channels.is_none_or(|k| output[1] == k);
    if fits {
        return Ok(());
    }
    let k = channels.map_or_else(|| "K".to_owned(), |k| k.to_string());
    let spatial: Vec<String> = input[2..].iter().map(ToString::to_string).collect();
    Err(InferenceError::OutputShape {
        input: input.to_vec(),
        found: output.to_vec(),
        expected: format!("[{}, {k}, {}]", input[0], spatial.join(", ")),
    })
}

//! The boundary between delira and a deep-learning library.
//!
//! Everything before the network (datasets, loaders, augmentation) and after it (metrics, logging,
//! checkpoints) works on `ndarray`; a backend only has to run *steps*. The [`Network`] trait is
//! that step-level contract: a train step on a [`Batch`] (forward, losses, backward, optimizer
//! step), an eval step, the learning rate, the whole state (weights and optimizer state) as named
//! arrays, the parameter count and the device. It fits eager PyTorch as well as a TensorFlow graph
//! that is built once and run once per step.
//!
//! Optimizers and losses are named generically ([`OptimizerConfig`], [`LossConfig`]) and each
//! backend implements them. The backends themselves sit behind cargo features: `torch` enables
//! the module `backend::torch` (needs libtorch, see `scripts/provision-libtorch`).
//!
//! ```
//! use delira::backend::{AdamConfig, LossConfig, OptimizerConfig};
//!
//! let optimizer: OptimizerConfig = AdamConfig::builder().lr(3e-4).weight_decay(1e-5).build().into();
//! assert_eq!(optimizer.learning_rate(), 3e-4);
//!
//! let loss: LossConfig = serde_json::from_str(r#"{"dice_ce": {"smooth": 1.0}}"#).unwrap();
//! assert_eq!(loss.name(), "dice_ce");
//! ```

mod config;
mod error;
mod state;
#[cfg(feature = "torch")]
#[cfg_attr(docsrs, doc(cfg(feature = "torch")))]
pub mod torch;

use std::collections::BTreeMap;
use std::fmt;

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::data::Batch;

pub use config::{
    AdamConfig, AdamWConfig, BceWithLogitsConfig, CrossEntropyConfig, DiceCeConfig, DiceConfig,
    FocalConfig, LossConfig, OptimizerConfig, SgdConfig,
};
pub use error::{BackendError, ShapeMismatch, StateMismatch};
pub use state::{State, StateArray};

/// The name under which a step reports the loss that was optimised (the sum of all terms).
pub const TOTAL_LOSS: &str = "loss";

/// A network with its losses and optimizer, driven one step at a time.
///
/// Implemented by each backend (for a model declared with `#[delira::model]`, the macro writes the
/// implementation). The trainer, metrics and checkpoints are written against this trait only.
pub trait Network {
    /// One training step on `batch`: forward pass in training mode, losses, backward pass,
    /// optimizer step. Returns the loss values (before the update) and the predictions.
    fn train_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError>;

    /// One evaluation step on `batch`: forward pass in evaluation mode, losses where the batch
    /// holds the targets, no gradient and no update.
    fn eval_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError>;

    /// The learning rate the next step will use (of the first optimizer where there are several).
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate of every optimizer (schedules call this between steps).
    fn set_learning_rate(&mut self, lr: f64);

    /// The whole state, weights and optimizer state (moments, step counters), as named arrays
    /// with stable names. Importing it into a network of the same architecture reproduces both its
    /// predictions and its next step exactly.
    fn export_state(&self) -> Result<State, BackendError>;

    /// Replaces the whole state with `state`. Fails, changing nothing, when names are missing or
    /// unexpected or an array has the wrong shape or type; the error lists every such entry.
    fn import_state(&mut self, state: &State) -> Result<(), BackendError>;

    /// The number of trainable scalar parameters.
    fn parameter_count(&self) -> usize;

    /// Where the network's tensors live.
    fn device(&self) -> Device;
}

/// What one step produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepOutput {
    /// Loss values by name: [`TOTAL_LOSS`] is the optimised total; the terms of a composite loss
    /// (for example `dice` and `cross_entropy`) may follow under their own names.
    pub losses: BTreeMap<String, f64>,
    /// Network outputs by name (logits, probabilities), batch axis first.
    pub predictions: BTreeMap<String, ArrayD<f32>>,
}

impl StepOutput {
    /// The optimised total loss, if the step computed one.
    #[must_use]
    pub fn loss(&self) -> Option<f64> {
        self.losses.get(TOTAL_LOSS).copied()
    }

    /// The prediction called `name`.
    #[must_use]
    pub fn prediction(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.predictions.get(name)
    }
}

/// Where tensors live and computations run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// The host processor.
    #[default]
    Cpu,
    /// The CUDA device with this index.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// The deep-learning libraries delira can drive, each behind its cargo feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// PyTorch through `tch` (cargo feature `torch`).
    Torch,
    /// TensorFlow through `tensorflow` (cargo feature `tensorflow`).
    Tensorflow,
}

impl BackendKind {
    /// The backend's name, as written in configurations.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Torch => "torch",
            Self::Tensorflow => "tensorflow",
        }
    }

    /// Whether this build of delira includes the backend.
    #[must_use]
    pub fn is_enabled(self) -> bool {
        match self {
            Self::Torch => cfg!(feature = "torch"),
            // TODO(the TensorFlow backend lands): test its cargo feature here.
            Self::Tensorflow => false,
        }
    }

    /// `Ok` when the backend is compiled in; otherwise an error that names the cargo feature.
    ///
    /// ```
    /// use delira::backend::BackendKind;
    ///
    /// let result = BackendKind::Tensorflow.require();
    /// assert_eq!(result.is_ok(), BackendKind::Tensorflow.is_enabled());
    /// ```
    pub fn require(self) -> Result<(), BackendError> {
        if self.is_enabled() {
            Ok(())
        } else {
            Err(BackendError::NotEnabled {
                backend: self.name(),
            })
        }
    }
}

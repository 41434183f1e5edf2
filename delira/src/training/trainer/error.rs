//! Why a training run failed.

use std::path::PathBuf;

use crate::backend::BackendError;
use crate::data::LoaderError;
use crate::logging::LoggingError;
use crate::training::callbacks::CallbackError;
use crate::training::checkpoint::CheckpointError;
use crate::training::metrics::MetricError;
use crate::training::schedule::ScheduleError;

/// Why a [`Trainer`](super::Trainer) could not train, evaluate or resume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The configuration cannot work.
    #[error("invalid trainer configuration: {0}")]
    Config(String),
    /// The loader could not deliver a batch.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// The network failed on a batch.
    #[error("{phase} step failed at epoch {epoch}, step {step} (samples {samples:?})")]
    Step {
        /// `training` or `validation`.
        phase: &'static str,
        /// The epoch.
        epoch: u64,
        /// The optimizer step (the one attempted, counted from 1, for training).
        step: u64,
        /// The dataset indices of the batch.
        samples: Vec<usize>,
        /// The backend's error.
        #[source]
        source: Box<BackendError>,
    },
    /// A training step reported no total loss.
    #[error(
        "the training step at epoch {epoch}, step {step} reported no `loss`; the network must \
         return its optimised total under `backend::TOTAL_LOSS`"
    )]
    NoLoss {
        /// The epoch.
        epoch: u64,
        /// The step attempted.
        step: u64,
    },
    /// The training loss was NaN or infinite and the policy is to stop.
    #[error(
        "non-finite loss {loss} at epoch {epoch}, step {step} (batch {batch}, samples \
         {samples:?}); lower the learning rate, check the data, or set `non_finite` to \
         `skip_batch`"
    )]
    NonFiniteLoss {
        /// The epoch.
        epoch: u64,
        /// The step attempted, counted from 1.
        step: u64,
        /// The batch's position in the epoch.
        batch: u64,
        /// The dataset indices of the batch.
        samples: Vec<usize>,
        /// The loss value.
        loss: f64,
    },
    /// A metric failed.
    #[error("metric `{metric}` failed at epoch {epoch}")]
    Metric {
        /// The metric's name.
        metric: String,
        /// The epoch.
        epoch: u64,
        /// The metric's error.
        #[source]
        source: MetricError,
    },
    /// A metric reported a number of values different from the batch's samples.
    #[error(
        "metric `{metric}` reported {found} values of `{name}` for a batch of {expected} samples; \
         report one value per sample"
    )]
    MetricLength {
        /// The metric's name.
        metric: String,
        /// The reported value's name.
        name: String,
        /// The number of values.
        found: usize,
        /// The batch's samples.
        expected: usize,
    },
    /// The monitored metric is not among the epoch's metrics.
    #[error(
        "the monitored metric `{metric}` is missing at epoch {epoch}; available: {available:?}"
    )]
    MissingMonitor {
        /// The monitored name.
        metric: String,
        /// The epoch.
        epoch: u64,
        /// The metrics of the epoch.
        available: Vec<String>,
    },
    /// A callback failed.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The learning-rate schedule failed.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A metric sink failed.
    #[error(transparent)]
    Logging(#[from] LoggingError),
    /// The network's state could not be exported or restored.
    #[error("network state of checkpoint `{path}`")]
    State {
        /// The checkpoint folder.
        path: PathBuf,
        /// The backend's error.
        #[source]
        source: Box<BackendError>,
    },
    /// The checkpoint was written by a run with another configuration or other data.
    #[error(
        "checkpoint `{path}` was written with a different {what} fingerprint (`{saved}`, this run \
         `{current}`); resume with the same {what} or start a new run folder"
    )]
    FingerprintMismatch {
        /// The checkpoint folder.
        path: PathBuf,
        /// `configuration` or `data`.
        what: &'static str,
        /// The checkpoint's fingerprint.
        saved: String,
        /// This run's fingerprint.
        current: String,
    },
    /// A checkpoint manifest lacks what the trainer stored in it.
    #[error("checkpoint `{path}` has no usable trainer state: {problem}")]
    Manifest {
        /// The checkpoint folder.
        path: PathBuf,
        /// What is missing or wrong.
        problem: String,
    },
}

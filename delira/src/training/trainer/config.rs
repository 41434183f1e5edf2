//! The trainer's configuration and its report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use typed_builder::TypedBuilder;

use crate::training::Mode;
use crate::training::checkpoint::{BestMetric, CheckpointPolicy};

/// How a [`Trainer`](super::Trainer) runs. Unknown keys are rejected.
///
/// ```
/// use delira::training::{Mode, MonitorConfig, NonFinitePolicy, TrainerConfig};
///
/// let built = TrainerConfig::builder()
///     .epochs(20)
///     .monitor(Some(MonitorConfig::new("valid/dice_mean", Mode::Max)))
///     .build();
/// let parsed: TrainerConfig = serde_json::from_str(
///     r#"{ "epochs": 20, "monitor": { "metric": "valid/dice_mean", "mode": "max" } }"#,
/// ).unwrap();
/// assert_eq!(built, parsed);
/// assert_eq!((built.validate_every, built.non_finite), (1, NonFinitePolicy::Stop));
/// assert!(serde_json::from_str::<TrainerConfig>(r#"{ "epochs": 2, "epoch": 3 }"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// The number of epochs to train (may be raised when resuming).
    pub epochs: u64,
    /// Validate at the end of every n-th epoch and at the last epoch (default 1).
    #[builder(default = 1)]
    #[serde(default = "one")]
    pub validate_every: u64,
    /// The metric that decides the best model (and the best checkpoint), if any.
    #[builder(default)]
    #[serde(default)]
    pub monitor: Option<MonitorConfig>,
    /// What a NaN or infinite training loss does (default: stop with an error).
    #[builder(default)]
    #[serde(default)]
    pub non_finite: NonFinitePolicy,
    /// When checkpoints are written and which are kept.
    #[builder(default)]
    #[serde(default)]
    pub checkpoint: CheckpointPolicy,
    /// The run's seed, recorded in the configuration fingerprint. The trainer draws no random
    /// numbers itself: loaders and augmentation draw from streams keyed by their own seeds and
    /// by (epoch, sample), so the sampler position fixes every draw of a resumed run.
    #[builder(default)]
    #[serde(default)]
    pub seed: u64,
}

fn one() -> u64 {
    1
}

/// The monitored metric: its name in the epoch metrics (`valid/dice_mean`, `train/loss`, ...),
/// whether smaller or larger is better, and the smallest change that counts as improvement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// The metric's name, with its `train/` or `valid/` prefix.
    pub metric: String,
    /// Whether smaller or larger is better.
    pub mode: Mode,
    /// The smallest change that counts as improvement (default 0).
    #[serde(default)]
    pub min_delta: f64,
}

impl MonitorConfig {
    /// Monitors `metric` in direction `mode`, any improvement counting.
    pub fn new(metric: impl Into<String>, mode: Mode) -> Self {
        Self {
            metric: metric.into(),
            mode,
            min_delta: 0.0,
        }
    }
}

/// What a NaN or infinite training loss does. Either way the event is logged (`error` or
/// `warn`) with the epoch, step and batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonFinitePolicy {
    /// Stop the run with [`TrainError::NonFiniteLoss`](super::TrainError::NonFiniteLoss) (the
    /// default). The last checkpoint, written before the bad step, stays intact.
    #[default]
    Stop,
    /// Undo the step (the network's state before the batch is restored) and go on with the next
    /// batch; the count is reported in [`FitReport::skipped_batches`]. Costs one state export
    /// per step.
    SkipBatch,
}

/// The metrics of one epoch, each averaged over samples.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochRecord {
    /// The epoch, counted from 0.
    pub epoch: u64,
    /// Training metrics (`loss`, and the metrics' names), without prefix.
    #[serde(with = "crate::training::checkpoint::json_float_map")]
    pub train: BTreeMap<String, f64>,
    /// Validation metrics, empty at epochs without validation.
    #[serde(with = "crate::training::checkpoint::json_float_map")]
    pub valid: BTreeMap<String, f64>,
}

impl EpochRecord {
    /// Both maps in one, with `train/` and `valid/` prefixes: the names that callbacks, the
    /// monitor and the sinks see.
    pub fn prefixed(&self) -> BTreeMap<String, f64> {
        let train = self.train.iter().map(|(k, v)| (format!("train/{k}"), *v));
        let valid = self.valid.iter().map(|(k, v)| (format!("valid/{k}"), *v));
        train.chain(valid).collect()
    }
}

/// What a finished (or stopped) run did.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Completed epochs, counted over the whole run (resumed runs included).
    pub epochs_run: u64,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Why the run stopped before its last epoch (a callback's reason), if it did.
    pub stopped: Option<String>,
    /// The best value of the monitored metric.
    pub best: Option<BestMetric>,
    /// Every completed epoch's metrics, in order.
    pub history: Vec<EpochRecord>,
    /// Batches skipped for a non-finite loss ([`NonFinitePolicy::SkipBatch`]).
    pub skipped_batches: u64,
}

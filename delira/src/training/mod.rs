//! Training: the [`Trainer`] loop, metrics, learning-rate schedules, callbacks and checkpoint
//! files.
//!
//! Everything here works on plain numbers and `ndarray` arrays, after the network: the same code
//! serves every backend.

pub mod callbacks;
pub mod checkpoint;
pub mod metrics;
mod monitor;
pub mod schedule;
pub mod trainer;

pub use metrics::Metric;
pub use monitor::{BestTracker, Mode};
pub use trainer::{
    BEST_DIR, BatchSource, CHECKPOINTS_DIR, EpochRecord, FitReport, MonitorConfig, NonFinitePolicy,
    TrainError, Trainer, TrainerConfig,
};

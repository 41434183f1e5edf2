//! Callbacks: user code that runs at fixed points of training.
//!
//! A [`Callback`] has six hooks — training, epoch and iteration, each at begin and end — that
//! all receive a [`CallbackContext`]: the epoch and step counters, the latest metrics, and two
//! levers, [`CallbackContext::request_stop`] and [`CallbackContext::set_lr`]. Every callback
//! also saves and restores its state as JSON, so a resumed run continues exactly where the
//! checkpoint left it. A [`CallbackList`] calls them in order and keeps their states by name.
//!
//! Two callbacks come with the crate: [`EarlyStopping`] and [`LrScheduler`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use delira::training::Mode;
//! use delira::training::callbacks::{Callback, CallbackContext, EarlyStopping, EarlyStoppingConfig};
//!
//! let config = EarlyStoppingConfig { monitor: "val_loss".into(), mode: Mode::Min, patience: 2, min_delta: 0.0 };
//! let mut stopper = EarlyStopping::new(config);
//! let mut stopped_at = None;
//! for (epoch, loss) in [1.0, 0.5, 0.7, 0.6, 0.4].into_iter().enumerate() {
//!     let metrics = BTreeMap::from([("val_loss".to_owned(), loss)]);
//!     let mut ctx = CallbackContext::new(epoch as u64, 0, &metrics, 0.1);
//!     stopper.on_epoch_end(&mut ctx).unwrap();
//!     if ctx.stop_requested().is_some() {
//!         stopped_at = Some(epoch);
//!         break;
//!     }
//! }
//! assert_eq!(stopped_at, Some(3)); // epochs 2 and 3 did not improve on epoch 1
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::monitor::{BestTracker, Mode};
use super::schedule::{Schedule, ScheduleError, ScheduleState};

/// Why a callback failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The monitored metric was not among the metrics of the epoch.
    #[error(
        "callback `{callback}` monitors `{metric}`, which epoch {epoch} did not report; \
         available: {available:?}"
    )]
    MissingMetric {
        /// The callback's name.
        callback: String,
        /// The metric it needs.
        metric: String,
        /// The epoch.
        epoch: u64,
        /// The metrics that were reported.
        available: Vec<String>,
    },
    /// A saved state does not fit the callback.
    #[error("cannot restore the state of callback `{callback}`: {problem}")]
    State {
        /// The callback's name.
        callback: String,
        /// What is wrong.
        problem: String,
    },
    /// Two callbacks share a name, so their states could not be told apart.
    #[error("two callbacks are named `{0}`; give each a distinct name")]
    DuplicateName(String),
    /// The learning-rate schedule failed.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// Any other failure of a user callback.
    #[error("callback `{callback}` failed: {message}")]
    Other {
        /// The callback's name.
        callback: String,
        /// What happened.
        message: String,
    },
}

/// What a hook sees of the run, and what it may change.
#[derive(Debug)]
pub struct CallbackContext<'a> {
    /// The epoch, counted from 0.
    pub epoch: u64,
    /// Optimizer steps taken since the start of training.
    pub step: u64,
    /// The latest metrics: of the batch at iteration end, of the epoch at epoch end (training
    /// and validation, e.g. `loss` and `val_loss`), empty where none exist yet.
    pub metrics: &'a BTreeMap<String, f64>,
    lr: f64,
    new_lr: Option<f64>,
    stop: Option<String>,
}

impl<'a> CallbackContext<'a> {
    /// A context with the current learning rate `lr`.
    pub fn new(epoch: u64, step: u64, metrics: &'a BTreeMap<String, f64>, lr: f64) -> Self {
        Self {
            epoch,
            step,
            metrics,
            lr,
            new_lr: None,
            stop: None,
        }
    }

    /// The learning rate in effect (including a change made by an earlier callback).
    pub fn lr(&self) -> f64 {
        self.new_lr.unwrap_or(self.lr)
    }

    /// Sets the learning rate for the next optimizer steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.new_lr = Some(lr);
    }

    /// The learning rate a callback asked for, if any.
    pub fn requested_lr(&self) -> Option<f64> {
        self.new_lr
    }

    /// Asks the trainer to stop after this hook, with a reason for the log.
    pub fn request_stop(&mut self, reason: impl Into<String>) {
        self.stop = Some(reason.into());
    }

    /// The reason given by a callback that asked to stop.
    pub fn stop_requested(&self) -> Option<&str> {
        self.stop.as_deref()
    }
}

/// Code run at fixed points of training. Every hook does nothing by default.
pub trait Callback: Send {
    /// The name under which the callback's state is saved; unique within a run.
    fn name(&self) -> &str;

    /// Before the first epoch (also after resuming).
    fn on_train_begin(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let _ = ctx;
        Ok(())
    }

    /// After the last epoch, or after a stop was requested.
    fn on_train_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let _ = ctx;
        Ok(())
    }

    /// Before an epoch's first batch.
    fn on_epoch_begin(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let _ = ctx;
        Ok(())
    }

    /// After an epoch's training and (when it ran) validation, with the epoch's metrics.
    fn on_epoch_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let _ = ctx;
        Ok(())
    }

    /// Before a training batch.
    fn on_iteration_begin(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let _ = ctx;
        Ok(())
    }

    /// After a training batch's optimizer step, with the batch's metrics.
    fn on_iteration_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let _ = ctx;
        Ok(())
    }

    /// The state to save in a checkpoint (`null` for a stateless callback).
    fn state(&self) -> Value {
        Value::Null
    }

    /// Restores a state returned by [`Callback::state`].
    fn load_state(&mut self, state: Value) -> Result<(), CallbackError> {
        let _ = state;
        Ok(())
    }
}

/// Which hook to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// [`Callback::on_train_begin`].
    TrainBegin,
    /// [`Callback::on_train_end`].
    TrainEnd,
    /// [`Callback::on_epoch_begin`].
    EpochBegin,
    /// [`Callback::on_epoch_end`].
    EpochEnd,
    /// [`Callback::on_iteration_begin`].
    IterationBegin,
    /// [`Callback::on_iteration_end`].
    IterationEnd,
}

/// Callbacks run in the order they were added.
#[derive(Default)]
pub struct CallbackList {
    callbacks: Vec<Box<dyn Callback>>,
}

impl std::fmt::Debug for CallbackList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.callbacks.iter().map(|c| c.name()))
            .finish()
    }
}

impl CallbackList {
    /// Adds a callback; its name must be new.
    pub fn push(&mut self, callback: Box<dyn Callback>) -> Result<(), CallbackError> {
        if self.callbacks.iter().any(|c| c.name() == callback.name()) {
            return Err(CallbackError::DuplicateName(callback.name().to_owned()));
        }
        self.callbacks.push(callback);
        Ok(())
    }

    /// The number of callbacks.
    pub fn len(&self) -> usize {
        self.callbacks.len()
    }

    /// Whether there is no callback.
    pub fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
    }

    /// Runs one hook of every callback in order; stops at the first error.
    pub fn run(&mut self, hook: Hook, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        for callback in &mut self.callbacks {
            match hook {
                Hook::TrainBegin => callback.on_train_begin(ctx)?,
                Hook::TrainEnd => callback.on_train_end(ctx)?,
                Hook::EpochBegin => callback.on_epoch_begin(ctx)?,
                Hook::EpochEnd => callback.on_epoch_end(ctx)?,
                Hook::IterationBegin => callback.on_iteration_begin(ctx)?,
                Hook::IterationEnd => callback.on_iteration_end(ctx)?,
            }
        }
        Ok(())
    }

    /// Every callback's state, by name.
    pub fn states(&self) -> BTreeMap<String, Value> {
        self.callbacks
            .iter()
            .map(|c| (c.name().to_owned(), c.state()))
            .collect()
    }

    /// Restores every callback's state; a callback without a saved state is an error, since the
    /// resumed run would silently start it afresh.
    pub fn load_states(
        &mut self,
        mut states: BTreeMap<String, Value>,
    ) -> Result<(), CallbackError> {
        for callback in &mut self.callbacks {
            let state = states
                .remove(callback.name())
                .ok_or_else(|| CallbackError::State {
                    callback: callback.name().to_owned(),
                    problem: "the checkpoint holds no state for it; was it added after the \
                          checkpoint was written?"
                        .to_owned(),
                })?;
            callback.load_state(state)?;
        }
        Ok(())
    }
}

/// The settings of [`EarlyStopping`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// The epoch metric to watch, e.g. `val_loss`.
    pub monitor: String,
    /// Whether smaller or larger is better.
    pub mode: Mode,
    /// Epochs without improvement after which training stops.
    pub patience: u64,
    /// The smallest change that counts as improvement (default 0).
    #[serde(default)]
    pub min_delta: f64,
}

/// Stops training after `patience` consecutive epochs without improvement of the monitored
/// metric by more than `min_delta`.
///
/// The first epoch always improves (see [`BestTracker`]); with patience `p`, a run whose best
/// epoch is `b` stops at the end of epoch `b + p`.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    state: EarlyStoppingState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EarlyStoppingState {
    best: BestTracker,
    best_epoch: Option<u64>,
    epochs_without_improvement: u64,
}

impl EarlyStopping {
    /// Early stopping with the given settings.
    pub fn new(config: EarlyStoppingConfig) -> Self {
        let best = BestTracker::new(config.mode, config.min_delta);
        Self {
            config,
            state: EarlyStoppingState {
                best,
                best_epoch: None,
                epochs_without_improvement: 0,
            },
        }
    }

    /// The best value so far and the epoch it was reached.
    pub fn best(&self) -> Option<(f64, u64)> {
        self.state.best.best().zip(self.state.best_epoch)
    }

    /// Consecutive epochs without improvement.
    pub fn epochs_without_improvement(&self) -> u64 {
        self.state.epochs_without_improvement
    }
}

impl Callback for EarlyStopping {
    fn name(&self) -> &'static str {
        "early_stopping"
    }

    fn on_epoch_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let value = monitored(self.name(), &self.config.monitor, ctx)?;
        if self.state.best.update(value) {
            self.state.best_epoch = Some(ctx.epoch);
            self.state.epochs_without_improvement = 0;
        } else {
            self.state.epochs_without_improvement += 1;
        }
        if self.state.epochs_without_improvement >= self.config.patience {
            let best = self.state.best.best().unwrap_or(f64::NAN);
            tracing::info!(
                epoch = ctx.epoch,
                monitor = %self.config.monitor,
                best,
                best_epoch = self.state.best_epoch,
                "early stopping"
            );
            ctx.request_stop(format!(
                "`{}` has not improved for {} epochs (best {best} at epoch {:?})",
                self.config.monitor, self.state.epochs_without_improvement, self.state.best_epoch
            ));
        }
        Ok(())
    }

    fn state(&self) -> Value {
        serde_json::to_value(&self.state).unwrap_or(Value::Null)
    }

    fn load_state(&mut self, state: Value) -> Result<(), CallbackError> {
        self.state = serde_json::from_value(state).map_err(|e| CallbackError::State {
            callback: self.name().to_owned(),
            problem: e.to_string(),
        })?;
        Ok(())
    }
}

fn monitored(
    callback: &str,
    metric: &str,
    ctx: &CallbackContext<'_>,
) -> Result<f64, CallbackError> {
    ctx.metrics
        .get(metric)
        .copied()
        .ok_or_else(|| CallbackError::MissingMetric {
            callback: callback.to_owned(),
            metric: metric.to_owned(),
            epoch: ctx.epoch,
            available: ctx.metrics.keys().cloned().collect(),
        })
}

/// Drives a learning-rate [`Schedule`]: steps it after every iteration and epoch and sets the
/// resulting learning rate.
///
/// Reduce-on-plateau reads the metric named by `monitor` at each epoch end.
#[derive(Debug, Clone)]
pub struct LrScheduler {
    schedule: Schedule,
    monitor: Option<String>,
}

impl LrScheduler {
    /// A callback around `schedule`; `monitor` names the metric a plateau schedule watches.
    pub fn new(schedule: Schedule, monitor: Option<String>) -> Self {
        Self { schedule, monitor }
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}

impl Callback for LrScheduler {
    fn name(&self) -> &'static str {
        "lr_scheduler"
    }

    fn on_train_begin(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        ctx.set_lr(self.schedule.lr());
        Ok(())
    }

    fn on_iteration_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        if self.schedule.per_iteration() {
            ctx.set_lr(self.schedule.step_iteration()?);
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        if self.schedule.per_iteration() {
            return Ok(());
        }
        let value = match &self.monitor {
            Some(metric) => Some(monitored(self.name(), metric, ctx)?),
            None => None,
        };
        ctx.set_lr(self.schedule.step_epoch(value)?);
        Ok(())
    }

    fn state(&self) -> Value {
        serde_json::to_value(self.schedule.state()).unwrap_or(Value::Null)
    }

    fn load_state(&mut self, state: Value) -> Result<(), CallbackError> {
        let state: ScheduleState =
            serde_json::from_value(state).map_err(|e| CallbackError::State {
                callback: self.name().to_owned(),
                problem: e.to_string(),
            })?;
        self.schedule.load_state(state)?;
        Ok(())
    }
}

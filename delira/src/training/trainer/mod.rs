//! The training loop: epochs over a training loader, validation, metrics, callbacks, schedules,
//! checkpoints and exact resume.
//!
//! A [`Trainer`] drives any [`Network`] over batches from any [`BatchSource`] (every
//! [`Loader`] is one, so transforms and augmentation run on the loader's worker threads).
//!
//! # An epoch
//!
//! 1. `on_epoch_begin` hooks; then for every training batch: `on_iteration_begin`, the network's
//!    train step, the losses and [`Metric`]s of the step added to sample-weighted means
//!    ([`MetricMeans`]: a last, smaller batch weighs by its samples), a per-iteration schedule
//!    step, `on_iteration_end`, and a checkpoint every `every_steps` steps when the policy says so.
//! 2. Validation at every `validate_every`-th epoch and at the last one: the loader's batches of
//!    epoch 0 (the same samples and draws every time) through the eval step, averaged the same way.
//! 3. The epoch's metrics under `train/<name>` and `valid/<name>`: the monitored metric updates
//!    the best value (any first value is the best, negative ones too) and, when it improved, the
//!    best model under `<run_dir>/best/`; per-epoch schedules step (reduce-on-plateau only at
//!    epochs with validation); `on_epoch_end` hooks (early stopping asks to stop here); sinks;
//!    a checkpoint under `<run_dir>/checkpoints/` when the [`CheckpointPolicy`] says so, always
//!    at the last epoch and when stopping.
//!
//! A non-finite training loss stops the run with an error naming epoch, step and samples, or with
//! [`NonFinitePolicy::SkipBatch`] undoes the step and goes on, counting it.
//!
//! # Exact resume
//!
//! A checkpoint holds the network's whole state (weights and optimizer state), the schedule's and
//! every callback's state, the best value, the epoch, step and batch counters (the sampler
//! position), the partial sums of the epoch's means, the history, the logger step and fingerprints
//! of the configuration and the data. [`Trainer::resume`] reads the newest checkpoint (a damaged
//! one is an error unless [`Trainer::with_fallback`] allows the previous one), checks the
//! fingerprints and continues with the next batch of the interrupted epoch. Delira's random
//! streams are keyed by (seed, epoch, sample, purpose), so the sampler position fixes every later
//! draw: a run killed at any step and resumed ends with the same weights and metrics, bit for bit
//! on CPU, as the run that was never stopped. (A backend's own random generator, e.g. for dropout,
//! is outside that promise unless the network exports it in its state.)
//!
//! ```
//! use delira::data::{FnDataset, Loader, LoaderConfig, Record, SequentialSampler};
//! use delira::testing::LinearNetwork;
//! use delira::training::metrics::Accuracy;
//! use delira::training::{Mode, MonitorConfig, Trainer, TrainerConfig};
//! use ndarray::{ArrayD, arr0};
//!
//! // Two separable classes: y = 1 where x0 > x1.
//! let data = FnDataset::new(10, |i| {
//!     let x = [i as f32 / 10.0, 1.0 - i as f32 / 10.0];
//!     let y = i64::from(x[0] > x[1]);
//!     Ok(Record::new().with("x", ArrayD::from_shape_vec(vec![2], x.to_vec()).unwrap()).with("y", arr0(y).into_dyn()))
//! });
//! let train = Loader::new(data, SequentialSampler::new(10), LoaderConfig::builder().batch_size(4).build()).unwrap();
//!
//! let run_dir = std::env::temp_dir().join(format!("delira-doc-trainer-{}", std::process::id()));
//! let config = TrainerConfig::builder()
//!     .epochs(30)
//!     .monitor(Some(MonitorConfig::new("train/loss", Mode::Min)))
//!     .build();
//! let mut trainer = Trainer::new(LinearNetwork::classifier(2, 2, 1), config, &run_dir)
//!     .with_metric(Accuracy::new("logits", "y"));
//! let report = trainer.fit(&train, None).unwrap();
//!
//! assert_eq!((report.epochs_run, report.steps), (30, 90)); // 3 batches (4 + 4 + 2) per epoch
//! let last = &report.history[29].train;
//! assert!(last["loss"] < report.history[0].train["loss"]);
//! assert_eq!(last["accuracy"], 1.0);
//! assert_eq!(report.best.unwrap().epoch, 29);
//! assert!(run_dir.join("best").is_dir() && run_dir.join("checkpoints").is_dir());
//! # std::fs::remove_dir_all(&run_dir).unwrap();
//! ```

mod config;
mod error;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use config::{EpochRecord, FitReport, MonitorConfig, NonFinitePolicy, TrainerConfig};
pub use error::TrainError;

use super::callbacks::{Callback, CallbackContext, CallbackError, CallbackList, Hook};
use super::checkpoint::{
    BestMetric, Checkpoint, CheckpointPolicy, CheckpointWriter, Fallback, Kept, Manifest,
    fingerprint_json,
};
use super::metrics::{Metric, MetricMeans};
use super::monitor::{BestTracker, Mode};
use super::schedule::{Schedule, ScheduleConfig};
use crate::backend::{Network, State};
use crate::data::{Batch, Dataset, Loader, LoaderError, Sample, Sampler};
use crate::logging::progress::Progress;
use crate::logging::{CsvSink, JsonLinesSink, MetricSink, Sinks, TensorBoardWriter};

/// The sub-folder of the run folder that holds the checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The sub-folder of the run folder that holds the best model (as a checkpoint).
pub const BEST_DIR: &str = "best";
const TRAINER_STATE: &str = "trainer";

/// Where a trainer gets its batches: every [`Loader`] is one.
pub trait BatchSource {
    /// The number of batches per epoch.
    fn num_batches(&self) -> usize;

    /// The batches of `epoch` from batch number `first` on (see [`Loader::epoch_from`]).
    fn batches_from(
        &self,
        epoch: u64,
        first: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch, LoaderError>> + '_>;
}

impl<D, S> BatchSource for Loader<D, S>
where
    D: Dataset + 'static,
    D::Item: Sample,
    S: Sampler,
{
    fn num_batches(&self) -> usize {
        Loader::num_batches(self)
    }

    fn batches_from(
        &self,
        epoch: u64,
        first: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch, LoaderError>> + '_> {
        Box::new(self.epoch_from(epoch, first))
    }
}

/// A checkpoint the policy knows about, as kept in the trainer's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptEntry {
    name: String,
    step: u64,
    metric: Option<f64>,
}

/// The trainer's counters and partial sums: everything besides the network, the schedule and the
/// callbacks that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunState {
    epoch: u64,
    step: u64,
    batch_in_epoch: u64,
    epoch_complete: bool,
    train_means: MetricMeans,
    skipped: u64,
    history: Vec<EpochRecord>,
    tracker: Option<BestTracker>,
    best: Option<BestMetric>,
    lr: f64,
    stopped: Option<String>,
    kept: Vec<KeptEntry>,
}

/// The training loop (see the [module docs](self)).
pub struct Trainer<N: Network> {
    network: N,
    config: TrainerConfig,
    run_dir: PathBuf,
    metrics: Vec<Box<dyn Metric>>,
    callbacks: CallbackList,
    setup_error: Option<CallbackError>,
    schedule: Option<Schedule>,
    sinks: Sinks,
    fingerprint: String,
    progress: bool,
    fallback: Fallback,
}

impl<N: Network> std::fmt::Debug for Trainer<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("run_dir", &self.run_dir)
            .field(
                "metrics",
                &self.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .field("callbacks", &self.callbacks)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl<N: Network> Trainer<N> {
    /// A trainer of `network` writing its checkpoints and logs under `run_dir`.
    pub fn new(network: N, config: TrainerConfig, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            network,
            config,
            run_dir: run_dir.into(),
            metrics: Vec::new(),
            callbacks: CallbackList::default(),
            setup_error: None,
            schedule: None,
            sinks: Sinks::default(),
            fingerprint: String::new(),
            progress: false,
            fallback: Fallback::Refuse,
        }
    }

    /// Adds a metric, computed on training and validation steps.
    #[must_use]
    pub fn with_metric(mut self, metric: impl Metric + 'static) -> Self {
        self.metrics.push(Box::new(metric));
        self
    }

    /// Adds a callback; hooks run in the order callbacks were added. A name used twice is
    /// reported by the next `fit`, `resume` or `evaluate`.
    #[must_use]
    pub fn with_callback(mut self, callback: impl Callback + 'static) -> Self {
        if let Err(error) = self.callbacks.push(Box::new(callback)) {
            self.setup_error.get_or_insert(error);
        }
        self
    }

    /// Sets the learning-rate schedule, starting from the network's current learning rate.
    /// Reduce-on-plateau watches the monitored metric, which must then be configured.
    pub fn with_schedule(mut self, schedule: ScheduleConfig) -> Result<Self, TrainError> {
        let plateau = matches!(schedule, ScheduleConfig::ReduceOnPlateau { .. });
        if plateau && self.config.monitor.is_none() {
            return Err(TrainError::Config(
                "a `reduce_on_plateau` schedule watches the monitored metric, and none is set; \
                 set `monitor`"
                    .to_owned(),
            ));
        }
        self.schedule = Some(Schedule::new(schedule, self.network.learning_rate())?);
        Ok(self)
    }

    /// Adds a metric sink: every step's loss (`train/step_loss`), the learning rate and the
    /// epochs' metrics go to it, at the optimizer step as logger step. A failing sink is logged
    /// and does not stop the run.
    #[must_use]
    pub fn with_sink(mut self, sink: impl MetricSink + 'static) -> Self {
        self.sinks = std::mem::take(&mut self.sinks).with(sink);
        self
    }

    /// Adds the standard sinks of a run folder: `metrics.csv`, `metrics.jsonl` and TensorBoard
    /// events under `tensorboard/`. They append, so a resumed run continues the same files (the
    /// steps between the checkpoint and the interruption then appear twice).
    pub fn with_default_sinks(self) -> Result<Self, TrainError> {
        let csv = CsvSink::create(self.run_dir.join("metrics.csv"))?;
        let jsonl = JsonLinesSink::create(self.run_dir.join("metrics.jsonl"))?;
        let tensorboard = TensorBoardWriter::create(self.run_dir.join("tensorboard"))?;
        Ok(self.with_sink(csv).with_sink(jsonl).with_sink(tensorboard))
    }

    /// Sets the fingerprint of the data (file list, split, preprocessing): a run is resumed only
    /// with the same one. The configuration's fingerprint is taken by the trainer itself (all of
    /// [`TrainerConfig`] but `epochs`, which may be raised to train longer).
    #[must_use]
    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = fingerprint.into();
        self
    }

    /// Shows progress bars (or plain lines when stderr is no terminal) with loss, rate, time
    /// left and data stall; off by default.
    #[must_use]
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Which checkpoint [`Trainer::resume`] uses when the newest is damaged (default
    /// [`Fallback::Refuse`]: an error).
    #[must_use]
    pub fn with_fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// The network.
    pub fn network(&self) -> &N {
        &self.network
    }

    /// The network, to change.
    pub fn network_mut(&mut self) -> &mut N {
        &mut self.network
    }

    /// The network, giving up the trainer.
    pub fn into_network(self) -> N {
        self.network
    }

    /// The configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// The run folder.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Trains from the start (epoch 0, step 0) with the network as it is. A run folder that
    /// already holds checkpoints is refused (a later resume could pick up the old run's).
    pub fn fit(
        &mut self,
        train: &dyn BatchSource,
        valid: Option<&dyn BatchSource>,
    ) -> Result<FitReport, TrainError> {
        self.prepare()?;
        let writer = CheckpointWriter::new(self.run_dir.join(CHECKPOINTS_DIR));
        if let Some(existing) = writer.latest()? {
            return Err(TrainError::RunExists {
                checkpoint: existing.path,
            });
        }
        if let Some(schedule) = &self.schedule {
            // The schedule's first rate (one-cycle and warm-up start below the base rate).
            self.network.set_learning_rate(schedule.lr());
        }
        let state = RunState {
            epoch: 0,
            step: 0,
            batch_in_epoch: 0,
            epoch_complete: false,
            train_means: MetricMeans::default(),
            skipped: 0,
            history: Vec::new(),
            tracker: self
                .config
                .monitor
                .as_ref()
                .map(|m| BestTracker::new(m.mode, m.min_delta)),
            best: None,
            lr: self.network.learning_rate(),
            stopped: None,
            kept: Vec::new(),
        };
        self.run(state, train, valid)
    }

    /// Continues the run from the newest checkpoint under `<run_dir>/checkpoints`: network,
    /// schedule, callbacks, counters and partial means restored, the interrupted epoch continued
    /// with its next batch. A finished run returns its report without training (unless `epochs`
    /// was raised).
    pub fn resume(
        &mut self,
        train: &dyn BatchSource,
        valid: Option<&dyn BatchSource>,
    ) -> Result<FitReport, TrainError> {
        self.prepare()?;
        let writer = CheckpointWriter::new(self.run_dir.join(CHECKPOINTS_DIR));
        let (entry, checkpoint) = writer.read_latest(self.fallback)?;
        let state = self.restore(&entry.path, &checkpoint)?;
        tracing::info!(
            path = %entry.path.display(),
            epoch = state.epoch,
            step = state.step,
            batch = state.batch_in_epoch,
            "resuming"
        );
        self.run(state, train, valid)
    }

    /// The mean metrics (loss and metrics, sample-weighted) of the network on `loader`'s batches
    /// of epoch 0, without training.
    pub fn evaluate(
        &mut self,
        loader: &dyn BatchSource,
    ) -> Result<BTreeMap<String, f64>, TrainError> {
        self.prepare()?;
        self.evaluate_at(loader, 0, 0)
    }

    /// Loads the best model written so far (under `<run_dir>/best`) into the network.
    pub fn load_best(&mut self) -> Result<(), TrainError> {
        let writer = CheckpointWriter::new(self.run_dir.join(BEST_DIR));
        let (entry, checkpoint) = writer.read_latest(Fallback::Refuse)?;
        self.import_tensors(&entry.path, &checkpoint.tensors)
    }

    /// Loads the model of the newest checkpoint (under `<run_dir>/checkpoints`, the one a resume
    /// would continue from) into the network; only the network's state, not the run's.
    pub fn load_newest(&mut self) -> Result<(), TrainError> {
        let writer = CheckpointWriter::new(self.run_dir.join(CHECKPOINTS_DIR));
        let (entry, checkpoint) = writer.read_latest(self.fallback)?;
        self.import_tensors(&entry.path, &checkpoint.tensors)
    }

    fn prepare(&mut self) -> Result<(), TrainError> {
        if let Some(error) = self.setup_error.take() {
            return Err(error.into());
        }
        if self.config.validate_every == 0 {
            return Err(TrainError::Config(
                "`validate_every` is 0; set it to 1 or more".to_owned(),
            ));
        }
        Ok(())
    }

    fn config_fingerprint(&self) -> Result<String, TrainError> {
        let mut value = serde_json::to_value(&self.config)
            .map_err(|e| TrainError::Config(format!("cannot encode the configuration: {e}")))?;
        if let Some(object) = value.as_object_mut() {
            object.remove("epochs");
        }
        Ok(fingerprint_json(&value)?)
    }

    fn run(
        &mut self,
        mut state: RunState,
        train: &dyn BatchSource,
        valid: Option<&dyn BatchSource>,
    ) -> Result<FitReport, TrainError> {
        let epochs = self.config.epochs;
        let mut progress = self.progress.then(|| Progress::new(epochs));
        let empty = BTreeMap::new();
        if let Some(reason) = self.hook(Hook::TrainBegin, state.epoch, state.step, &empty)? {
            state.stopped.get_or_insert(reason);
        }

        while state.epoch < epochs && state.stopped.is_none() {
            let span = crate::logging::epoch_span(state.epoch, epochs);
            let _entered = span.enter();
            self.train_epoch(&mut state, train, progress.as_mut())?;
            self.end_epoch(&mut state, valid, progress.as_mut())?;
        }

        self.hook(Hook::TrainEnd, state.epoch, state.step, &empty)?;
        self.sinks.flush().ok();
        if let Some(progress) = &progress {
            progress.finish();
        }
        Ok(FitReport {
            epochs_run: state.history.len() as u64,
            steps: state.step,
            stopped: state.stopped,
            best: state.best,
            history: state.history,
            skipped_batches: state.skipped,
        })
    }

    /// Runs one hook of every callback; applies a requested learning rate and returns a
    /// requested stop.
    fn hook(
        &mut self,
        hook: Hook,
        epoch: u64,
        step: u64,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<Option<String>, TrainError> {
        if self.callbacks.is_empty() {
            return Ok(None);
        }
        let mut ctx = CallbackContext::new(epoch, step, metrics, self.network.learning_rate());
        self.callbacks.run(hook, &mut ctx)?;
        if let Some(lr) = ctx.requested_lr() {
            self.network.set_learning_rate(lr);
        }
        Ok(ctx.stop_requested().map(str::to_owned))
    }

    fn train_epoch(
        &mut self,
        state: &mut RunState,
        train: &dyn BatchSource,
        mut progress: Option<&mut Progress>,
    ) -> Result<(), TrainError> {
        let epoch = state.epoch;
        if state.batch_in_epoch == 0 {
            state.train_means.clear();
            if let Some(reason) =
                self.hook(Hook::EpochBegin, epoch, state.step, &BTreeMap::new())?
            {
                state.stopped.get_or_insert(reason);
                return Ok(());
            }
        }
        if let Some(progress) = progress.as_deref_mut() {
            progress.start_epoch(epoch, train.num_batches() as u64);
        }
        let skip = self.config.non_finite == NonFinitePolicy::SkipBatch;
        let batches = train.batches_from(epoch, state.batch_in_epoch as usize);
        let mut waiting_since = Instant::now();
        for next in batches {
            let waiting = waiting_since.elapsed();
            let computing_since = Instant::now();
            let batch = next?;
            let attempted = state.step + 1;
            if let Some(reason) =
                self.hook(Hook::IterationBegin, epoch, state.step, &BTreeMap::new())?
            {
                state.stopped.get_or_insert(reason);
                break;
            }

            let snapshot = if skip {
                Some(self.export_state()?)
            } else {
                None
            };
            let output = self
                .network
                .train_step(&batch)
                .map_err(|source| TrainError::Step {
                    phase: "training",
                    epoch,
                    step: attempted,
                    samples: batch.indices().to_vec(),
                    source: Box::new(source),
                })?;
            state.batch_in_epoch += 1;
            let loss = output.loss().ok_or(TrainError::NoLoss {
                epoch,
                step: attempted,
            })?;
            if !loss.is_finite() {
                self.non_finite(state, &batch, loss, snapshot)?;
                waiting_since = Instant::now();
                continue;
            }

            state.step = attempted;
            self.record_step(state, &output, &batch)?;
            let stop = if self.callbacks.is_empty() {
                None
            } else {
                self.hook(Hook::IterationEnd, epoch, state.step, &output.losses)?
            };
            self.sinks.scalar("train/step_loss", state.step, loss).ok();
            if let Some(progress) = progress.as_deref_mut() {
                progress.batch(loss, batch.len(), waiting, computing_since.elapsed());
            }
            tracing::debug!(epoch, step = state.step, loss, "step");
            if self.config.checkpoint.write_at_step(state.step) {
                self.write_checkpoint(state, None)?;
            }
            if let Some(reason) = stop {
                state.stopped.get_or_insert(reason);
                break;
            }
            waiting_since = Instant::now();
        }
        Ok(())
    }

    /// A non-finite loss at the batch just trained: an error under [`NonFinitePolicy::Stop`];
    /// under [`NonFinitePolicy::SkipBatch`] the state from before the batch (`snapshot`) is
    /// restored and the batch counted.
    fn non_finite(
        &mut self,
        state: &mut RunState,
        batch: &Batch,
        loss: f64,
        snapshot: Option<State>,
    ) -> Result<(), TrainError> {
        let (epoch, step, position) = (state.epoch, state.step + 1, state.batch_in_epoch - 1);
        let samples = batch.indices().to_vec();
        let Some(snapshot) = snapshot else {
            tracing::error!(
                epoch,
                step,
                batch = position,
                loss,
                ?samples,
                "non-finite loss; stopping"
            );
            return Err(TrainError::NonFiniteLoss {
                epoch,
                step,
                batch: position,
                samples,
                loss,
            });
        };
        self.network
            .import_state(&snapshot)
            .map_err(|source| TrainError::State {
                path: self.run_dir.clone(),
                source: Box::new(source),
            })?;
        state.skipped += 1;
        tracing::warn!(
            epoch,
            step,
            batch = position,
            loss,
            ?samples,
            skipped = state.skipped,
            "non-finite loss; batch skipped"
        );
        Ok(())
    }

    /// Adds a finished step's losses and metrics to the epoch's means and steps a
    /// per-iteration schedule.
    fn record_step(
        &mut self,
        state: &mut RunState,
        output: &crate::backend::StepOutput,
        batch: &Batch,
    ) -> Result<(), TrainError> {
        for (name, value) in &output.losses {
            state.train_means.add(name, *value, batch.len());
        }
        add_metrics(
            &self.metrics,
            &mut state.train_means,
            output,
            batch,
            state.epoch,
        )?;
        if let Some(schedule) = self.schedule.as_mut().filter(|s| s.per_iteration()) {
            let lr = schedule.step_iteration()?;
            self.network.set_learning_rate(lr);
        }
        Ok(())
    }

    fn end_epoch(
        &mut self,
        state: &mut RunState,
        valid: Option<&dyn BatchSource>,
        progress: Option<&mut Progress>,
    ) -> Result<(), TrainError> {
        let epoch = state.epoch;
        let epochs = self.config.epochs;
        let due = (epoch + 1).is_multiple_of(self.config.validate_every) || epoch + 1 >= epochs;
        let validated = match valid {
            Some(valid) if due || state.stopped.is_some() => {
                Some(self.evaluate_at(valid, epoch, state.step)?)
            }
            _ => None,
        };
        let record = EpochRecord {
            epoch,
            train: state.train_means.means(),
            valid: validated.clone().unwrap_or_default(),
        };
        let metrics = record.prefixed();

        let (monitored, improved) = self.monitor(state, &metrics, validated.is_some())?;
        if let Some(schedule) = self.schedule.as_mut().filter(|s| !s.per_iteration()) {
            let plateau = matches!(schedule.config(), ScheduleConfig::ReduceOnPlateau { .. });
            if !plateau || monitored.is_some() {
                let lr = schedule.step_epoch(monitored)?;
                self.network.set_learning_rate(lr);
            }
        }
        if let Some(reason) = self.hook(Hook::EpochEnd, epoch, state.step, &metrics)? {
            state.stopped.get_or_insert(reason);
        }

        for (tag, value) in &metrics {
            self.sinks.scalar(tag, state.step, *value).ok();
        }
        self.sinks
            .scalar("lr", state.step, self.network.learning_rate())
            .ok();
        self.sinks.flush().ok();
        if let Some(progress) = progress {
            progress.finish_epoch(&metrics);
        }
        tracing::info!(epoch, step = state.step, ?metrics, "epoch done");

        state.history.push(record);
        state.epoch_complete = true;
        state.lr = self.network.learning_rate();
        if improved {
            self.write_best(state)?;
        }
        let policy = &self.config.checkpoint;
        if policy.write_at_epoch_end(epoch, epochs, improved) || state.stopped.is_some() {
            self.write_checkpoint(state, monitored)?;
        }
        state.epoch += 1;
        state.batch_in_epoch = 0;
        state.epoch_complete = false;
        state.train_means.clear();
        Ok(())
    }

    /// The monitored value of the epoch, if any, and whether it improved on the best.
    fn monitor(
        &self,
        state: &mut RunState,
        metrics: &BTreeMap<String, f64>,
        validated: bool,
    ) -> Result<(Option<f64>, bool), TrainError> {
        let (Some(monitor), Some(tracker)) = (&self.config.monitor, state.tracker.as_mut()) else {
            return Ok((None, false));
        };
        let Some(&value) = metrics.get(&monitor.metric) else {
            if validated || !monitor.metric.starts_with("valid/") {
                return Err(TrainError::MissingMonitor {
                    metric: monitor.metric.clone(),
                    epoch: state.epoch,
                    available: metrics.keys().cloned().collect(),
                });
            }
            return Ok((None, false));
        };
        let improved = tracker.update(value);
        if improved {
            state.best = Some(BestMetric {
                metric: monitor.metric.clone(),
                mode: monitor.mode,
                value,
                epoch: state.epoch,
            });
        }
        Ok((Some(value), improved))
    }

    fn evaluate_at(
        &mut self,
        loader: &dyn BatchSource,
        epoch: u64,
        step: u64,
    ) -> Result<BTreeMap<String, f64>, TrainError> {
        let mut means = MetricMeans::default();
        for next in loader.batches_from(0, 0) {
            let batch = next?;
            let output = self
                .network
                .eval_step(&batch)
                .map_err(|source| TrainError::Step {
                    phase: "validation",
                    epoch,
                    step,
                    samples: batch.indices().to_vec(),
                    source: Box::new(source),
                })?;
            for (name, value) in &output.losses {
                means.add(name, *value, batch.len());
            }
            add_metrics(&self.metrics, &mut means, &output, &batch, epoch)?;
        }
        Ok(means.means())
    }

    fn export_state(&self) -> Result<State, TrainError> {
        self.network
            .export_state()
            .map_err(|source| TrainError::State {
                path: self.run_dir.clone(),
                source: Box::new(source),
            })
    }

    fn checkpoint(&self, state: &RunState) -> Result<Checkpoint, TrainError> {
        let tensors =
            self.export_state()?
                .to_safetensors()
                .map_err(|source| TrainError::State {
                    path: self.run_dir.clone(),
                    source: Box::new(source),
                })?;
        let trainer_state = serde_json::to_value(state).map_err(|e| TrainError::Manifest {
            path: self.run_dir.clone(),
            problem: format!("cannot encode the trainer state: {e}"),
        })?;
        let manifest = Manifest {
            epoch: state.epoch,
            step: state.step,
            batch_in_epoch: state.batch_in_epoch,
            epoch_complete: state.epoch_complete,
            metrics: state
                .history
                .last()
                .map(EpochRecord::prefixed)
                .unwrap_or_default(),
            best: state.best.clone(),
            schedule: self.schedule.as_ref().map(Schedule::state),
            callbacks: self.callbacks.states(),
            random_streams: BTreeMap::new(),
            logger_step: state.step,
            config_fingerprint: self.config_fingerprint()?,
            data_fingerprint: self.fingerprint.clone(),
            extra: BTreeMap::from([(TRAINER_STATE.to_owned(), trainer_state)]),
        };
        Ok(Checkpoint { manifest, tensors })
    }

    /// Writes a checkpoint of the current state and deletes what the policy no longer keeps.
    fn write_checkpoint(
        &mut self,
        state: &mut RunState,
        monitored: Option<f64>,
    ) -> Result<(), TrainError> {
        // Per-iteration schedules and callbacks change the rate inside epochs.
        state.lr = self.network.learning_rate();
        let writer = CheckpointWriter::new(self.run_dir.join(CHECKPOINTS_DIR));
        let name = Checkpoint::folder_name(state.epoch, state.step);
        state.kept.retain(|k| k.name != name);
        state.kept.push(KeptEntry {
            name,
            step: state.step,
            metric: monitored,
        });
        writer.write(&self.checkpoint(state)?)?;

        let kept: Vec<Kept> = state
            .kept
            .iter()
            .map(|k| Kept {
                name: k.name.clone(),
                step: k.step,
                metric: k.metric,
            })
            .collect();
        let mode = self.config.monitor.as_ref().map_or(Mode::Min, |m| m.mode);
        let delete = policy_deletions(&self.config.checkpoint, &kept, mode);
        writer.delete(&delete)?;
        state.kept.retain(|k| !delete.contains(&k.name));
        Ok(())
    }

    /// Replaces the best model under `<run_dir>/best` with the current state.
    fn write_best(&self, state: &RunState) -> Result<(), TrainError> {
        let writer = CheckpointWriter::new(self.run_dir.join(BEST_DIR));
        let written = writer.write(&self.checkpoint(state)?)?;
        let older: Vec<String> = writer
            .list()?
            .into_iter()
            .filter(|e| e.path != written)
            .filter_map(|e| e.path.file_name()?.to_str().map(str::to_owned))
            .collect();
        writer.delete(&older)?;
        Ok(())
    }

    fn import_tensors(&mut self, path: &Path, tensors: &[u8]) -> Result<(), TrainError> {
        let state_error = |source| TrainError::State {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let network_state =
            State::from_safetensors(tensors, &path.display().to_string()).map_err(state_error)?;
        self.network
            .import_state(&network_state)
            .map_err(state_error)
    }

    /// Restores network, schedule and callbacks from `checkpoint` and returns the run state to
    /// continue from.
    fn restore(&mut self, path: &Path, checkpoint: &Checkpoint) -> Result<RunState, TrainError> {
        let manifest = &checkpoint.manifest;
        let mismatch = |what, saved: &str, current: &str| TrainError::FingerprintMismatch {
            path: path.to_owned(),
            what,
            saved: saved.to_owned(),
            current: current.to_owned(),
        };
        let config = self.config_fingerprint()?;
        if manifest.config_fingerprint != config {
            return Err(mismatch(
                "configuration",
                &manifest.config_fingerprint,
                &config,
            ));
        }
        if manifest.data_fingerprint != self.fingerprint {
            return Err(mismatch(
                "data",
                &manifest.data_fingerprint,
                &self.fingerprint,
            ));
        }
        let manifest_error = |problem: String| TrainError::Manifest {
            path: path.to_owned(),
            problem,
        };
        let saved = manifest
            .extra
            .get(TRAINER_STATE)
            .ok_or_else(|| manifest_error("the `trainer` entry is missing".to_owned()))?;
        let mut state: RunState = serde_json::from_value(saved.clone())
            .map_err(|e| manifest_error(format!("the `trainer` entry is unreadable: {e}")))?;

        match (self.schedule.as_mut(), &manifest.schedule) {
            (Some(schedule), Some(saved)) => schedule.load_state(saved.clone())?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(manifest_error(
                    "it holds no learning-rate schedule, but one is set; resume without \
                     `with_schedule`"
                        .to_owned(),
                ));
            }
            (None, Some(saved)) => {
                return Err(manifest_error(format!(
                    "it holds a `{}` learning-rate schedule; add it with `with_schedule`",
                    saved.kind
                )));
            }
        }
        self.callbacks.load_states(manifest.callbacks.clone())?;
        self.import_tensors(path, &checkpoint.tensors)?;
        self.network.set_learning_rate(state.lr);

        let root = self.run_dir.join(CHECKPOINTS_DIR);
        state.kept.retain(|k| root.join(&k.name).is_dir());
        if state.epoch_complete {
            state.epoch += 1;
            state.batch_in_epoch = 0;
            state.epoch_complete = false;
            state.train_means.clear();
        }
        Ok(state)
    }
}

fn policy_deletions(policy: &CheckpointPolicy, kept: &[Kept], mode: Mode) -> Vec<String> {
    policy.to_delete(kept, mode)
}

/// Adds every metric's per-sample values of one step to `means`; NaN (undefined) values are
/// left out.
fn add_metrics(
    metrics: &[Box<dyn Metric>],
    means: &mut MetricMeans,
    output: &crate::backend::StepOutput,
    batch: &Batch,
    epoch: u64,
) -> Result<(), TrainError> {
    for metric in metrics {
        let values = metric
            .per_sample(output, batch)
            .map_err(|source| TrainError::Metric {
                metric: metric.name().to_owned(),
                epoch,
                source,
            })?;
        for (name, values) in values {
            if values.len() != batch.len() {
                return Err(TrainError::MetricLength {
                    metric: metric.name().to_owned(),
                    name,
                    found: values.len(),
                    expected: batch.len(),
                });
            }
            for value in values.into_iter().filter(|v| !v.is_nan()) {
                means.add(&name, value, 1);
            }
        }
    }
    Ok(())
}

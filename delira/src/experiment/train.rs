//! The settings every declared experiment has, and the one place that drives the trainer for a
//! fold.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ndarray::Axis;
use serde::{Deserialize, Serialize};

use super::{ExperimentError, FoldResult};
use crate::backend::{AdamConfig, CrossEntropyConfig, LossConfig, Network, OptimizerConfig, State};
use crate::data::split::{Fold, SplitConfig};
use crate::data::{DataError, Dataset, IndexSampler, Loader, LoaderConfig, RandomSampler, Sample};
use crate::logging::{CsvSink, JsonLinesSink, TensorBoardWriter};
use crate::random::Stream;
use crate::training::callbacks::{EarlyStopping, EarlyStoppingConfig};
use crate::training::checkpoint::CheckpointPolicy;
use crate::training::schedule::ScheduleConfig;
use crate::training::{FitReport, Metric, MonitorConfig, Trainer, TrainerConfig};

/// How batches are loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderSettings {
    /// Samples per batch (default 4).
    pub batch_size: usize,
    /// Worker threads (default 0: load on the training thread).
    pub workers: usize,
    /// Whether a training epoch drops its last batch when it is smaller than `batch_size`
    /// (default false; test and validation parts keep every sample).
    pub drop_last: bool,
}

impl Default for LoaderSettings {
    fn default() -> Self {
        Self {
            batch_size: 4,
            workers: 0,
            drop_last: false,
        }
    }
}

/// A metric sink of a fold's folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// `metrics.csv`.
    Csv,
    /// `metrics.jsonl`.
    Jsonl,
    /// TensorBoard events under `tensorboard/`.
    Tensorboard,
}

/// The settings of an experiment that the runtime reads; `experiment!{}` generates a
/// configuration with these fields whose defaults are the declared values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)]
pub struct Settings {
    /// Epochs per fold (default 10).
    pub epochs: u64,
    /// The run's seed: sampling order, augmentation, splits (default 0).
    pub seed: u64,
    /// Batch loading.
    pub loader: LoaderSettings,
    /// How the data is split into folds (default 5-fold).
    pub split: SplitConfig,
    /// The optimizer (default Adam), handed to the model's constructor.
    pub optimizer: OptimizerConfig,
    /// The loss (default cross-entropy), handed to the model's constructor.
    pub loss: LossConfig,
    /// The learning-rate schedule, if any.
    pub schedule: Option<ScheduleConfig>,
    /// The metric that picks the best model, if any.
    pub monitor: Option<MonitorConfig>,
    /// Epochs without improvement of the monitored metric before a fold stops, if any.
    pub early_stopping: Option<u64>,
    /// When checkpoints are written and which are kept.
    pub checkpoint: CheckpointPolicy,
    /// Validate every n-th epoch (default 1).
    pub validate_every: u64,
    /// The metric sinks of each fold's folder (default all three).
    pub sinks: Vec<SinkKind>,
    /// Whether progress bars are drawn (default false).
    pub progress: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            epochs: 10,
            seed: 0,
            loader: LoaderSettings::default(),
            split: SplitConfig::default(),
            optimizer: OptimizerConfig::Adam(AdamConfig::default()),
            loss: LossConfig::CrossEntropy(CrossEntropyConfig::default()),
            schedule: None,
            monitor: None,
            early_stopping: None,
            checkpoint: CheckpointPolicy::default(),
            validate_every: 1,
            sinks: vec![SinkKind::Csv, SinkKind::Jsonl, SinkKind::Tensorboard],
            progress: false,
        }
    }
}

/// A transform of training samples (augmentation), with its random stream.
pub type Transform<T> = Arc<dyn Fn(T, &mut Stream) -> Result<T, DataError> + Send + Sync>;

/// One fold to train: the data, the fold's indices, its folder and the settings.
pub struct FoldJob<'a, D: Dataset> {
    /// The whole dataset (the fold's parts are indices into it).
    pub data: Arc<D>,
    /// The fold's number.
    pub fold: usize,
    /// Its indices.
    pub indices: &'a Fold,
    /// Its folder (the trainer's run folder).
    pub dir: &'a Path,
    /// The settings.
    pub settings: &'a Settings,
    /// The data fingerprint (a fold resumes only on the same data).
    pub fingerprint: &'a str,
    /// The augmentation of training samples, if any.
    pub augment: Option<Transform<D::Item>>,
}

impl<D> FoldJob<'_, D>
where
    D: Dataset + 'static,
    D::Item: Sample,
{
    /// A loader over `indices`: shuffled by the run's seed for training (with the augmentation),
    /// in order otherwise.
    pub fn loader(
        &self,
        indices: &[usize],
        train: bool,
    ) -> Result<Loader<Arc<D>, Box<dyn crate::data::Sampler>>, ExperimentError> {
        self.loader_of(indices, train, self.settings.loader.batch_size)
    }

    fn loader_of(
        &self,
        indices: &[usize],
        train: bool,
        batch_size: usize,
    ) -> Result<Loader<Arc<D>, Box<dyn crate::data::Sampler>>, ExperimentError> {
        let loader = &self.settings.loader;
        let config = LoaderConfig::builder()
            .batch_size(batch_size)
            .workers(loader.workers)
            .seed(self.settings.seed)
            .drop_last(train && loader.drop_last)
            .build();
        let sampler: Box<dyn crate::data::Sampler> = if train {
            Box::new(RandomSampler::new(indices.to_vec(), self.settings.seed))
        } else {
            Box::new(IndexSampler::new(indices.to_vec()))
        };
        let mut made =
            Loader::new(Arc::clone(&self.data), sampler, config).map_err(|e| self.failed(&e))?;
        if let (true, Some(augment)) = (train, &self.augment) {
            let augment = Arc::clone(augment);
            made = made.with_transform(move |item, stream| augment(item, stream));
        }
        Ok(made)
    }

    fn failed(&self, error: &dyn std::fmt::Display) -> ExperimentError {
        ExperimentError::Fold {
            fold: self.fold,
            message: error.to_string(),
        }
    }

    /// A trainer of `network` for this fold, with the settings' monitor, checkpoint policy,
    /// schedule, early stopping and sinks, and `metrics`.
    pub fn trainer<N: Network>(
        &self,
        network: N,
        metrics: Vec<Box<dyn Metric>>,
    ) -> Result<Trainer<N>, ExperimentError> {
        let s = self.settings;
        let config = TrainerConfig::builder()
            .epochs(s.epochs)
            .validate_every(s.validate_every)
            .monitor(s.monitor.clone())
            .checkpoint(s.checkpoint.clone())
            .seed(s.seed)
            .build();
        let mut trainer = Trainer::new(network, config, self.dir)
            .with_fingerprint(self.fingerprint)
            .with_progress(s.progress);
        for metric in metrics {
            trainer = trainer.with_metric(Boxed(metric));
        }
        if let Some(schedule) = &s.schedule {
            trainer = trainer
                .with_schedule(schedule.clone())
                .map_err(|e| self.failed(&e))?;
        }
        if let Some(patience) = s.early_stopping {
            let monitor = s.monitor.as_ref().ok_or_else(|| {
                self.failed(&"`early_stopping` needs a `monitor`; declare `monitor: min(valid.loss)` or similar")
            })?;
            trainer = trainer.with_callback(EarlyStopping::new(EarlyStoppingConfig {
                monitor: monitor.metric.clone(),
                mode: monitor.mode,
                patience,
                min_delta: monitor.min_delta,
            }));
        }
        for sink in &s.sinks {
            let dir = self.dir;
            trainer = match sink {
                SinkKind::Csv => trainer.with_sink(
                    CsvSink::create(dir.join("metrics.csv")).map_err(|e| self.failed(&e))?,
                ),
                SinkKind::Jsonl => trainer.with_sink(
                    JsonLinesSink::create(dir.join("metrics.jsonl"))
                        .map_err(|e| self.failed(&e))?,
                ),
                SinkKind::Tensorboard => trainer.with_sink(
                    TensorBoardWriter::create(dir.join("tensorboard"))
                        .map_err(|e| self.failed(&e))?,
                ),
            };
        }
        Ok(trainer)
    }

    /// Trains the fold (or resumes it from its newest checkpoint), loads the best model when a
    /// metric is monitored, and evaluates it on the fold's test part: the fold's result holds
    /// those test metrics and the learning curves. Returns the trainer too, holding the model.
    pub fn run<N: Network>(
        &self,
        network: N,
        metrics: Vec<Box<dyn Metric>>,
        resume: bool,
    ) -> Result<(FoldResult, Trainer<N>), ExperimentError> {
        let train = self.loader(&self.indices.train, true)?;
        let valid = if self.indices.validation.is_empty() {
            None
        } else {
            Some(self.loader(&self.indices.validation, false)?)
        };
        let mut trainer = self.trainer(network, metrics)?;
        let valid_source = valid
            .as_ref()
            .map(|v| v as &dyn crate::training::BatchSource);
        let report = if resume {
            trainer.resume(&train, valid_source)
        } else {
            trainer.fit(&train, valid_source)
        }
        .map_err(|e| self.failed(&e))?;
        if report.best.is_some() {
            trainer.load_best().map_err(|e| self.failed(&e))?;
        }
        let metrics = self.evaluate_test(&mut trainer)?;
        Ok((fold_result(self.fold, metrics, &report), trainer))
    }

    /// A trainer holding the model an earlier run of this fold ended with: the best one when a
    /// metric is monitored, else the newest checkpoint's.
    pub fn best<N: Network>(
        &self,
        network: N,
        metrics: Vec<Box<dyn Metric>>,
    ) -> Result<Trainer<N>, ExperimentError> {
        let mut trainer = self.trainer(network, metrics)?;
        if self.settings.monitor.is_some() {
            trainer.load_best()
        } else {
            trainer.load_newest()
        }
        .map_err(|e| self.failed(&e))?;
        Ok(trainer)
    }

    /// Writes the outputs of `network` for every sample of the fold's test part under `dir`
    /// (created if needed): `<index>.safetensors` per sample, named by its dataset index, holding
    /// every prediction of the network's [eval step](Network::eval_step) under its name, `f32`,
    /// without the batch axis. Each sample is predicted alone (a batch of one), so that its
    /// outputs do not depend on the samples it would share a batch with. Returns the number of
    /// files written.
    pub fn write_predictions<N: Network>(
        &self,
        network: &mut N,
        dir: &Path,
    ) -> Result<usize, ExperimentError> {
        std::fs::create_dir_all(dir).map_err(ExperimentError::io(dir))?;
        if self.indices.test.is_empty() {
            return Ok(0);
        }
        let loader = self.loader_of(&self.indices.test, false, 1)?;
        let mut written = 0;
        for batch in loader.epoch(0) {
            let batch = batch.map_err(|e| self.failed(&e))?;
            let index = batch.indices().first().copied().unwrap_or_default();
            let output = network
                .eval_step(&batch)
                .map_err(|e| self.failed(&format!("predicting sample {index}: {e}")))?;
            let mut state = State::new();
            for (name, prediction) in output.predictions {
                if prediction.shape().first() != Some(&1) {
                    return Err(self.failed(&format!(
                        "prediction `{name}` of sample {index} has shape {:?}; a network's \
                         outputs have the batch axis first (1 for one sample)",
                        prediction.shape()
                    )));
                }
                state.insert(name, prediction.index_axis_move(Axis(0), 0));
            }
            state
                .save(dir.join(format!("{index}.safetensors")))
                .map_err(|e| self.failed(&e))?;
            tracing::trace!(index, "prediction written");
            written += 1;
        }
        tracing::info!(fold = self.fold, samples = written, dir = %dir.display(), "predictions written");
        Ok(written)
    }

    /// The trainer's loss and metrics on the fold's test part (none when it is empty).
    pub fn evaluate_test<N: Network>(
        &self,
        trainer: &mut Trainer<N>,
    ) -> Result<BTreeMap<String, f64>, ExperimentError> {
        if self.indices.test.is_empty() {
            return Ok(BTreeMap::new());
        }
        let test = self.loader(&self.indices.test, false)?;
        trainer.evaluate(&test).map_err(|e| self.failed(&e))
    }
}

fn fold_result(fold: usize, metrics: BTreeMap<String, f64>, report: &FitReport) -> FoldResult {
    let mut history: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for record in &report.history {
        for (tag, value) in record.prefixed() {
            history.entry(tag).or_default().push((record.epoch, value));
        }
    }
    FoldResult {
        fold,
        metrics,
        history,
        epochs: report.epochs_run,
        stopped: report.stopped.clone(),
    }
}

/// A boxed metric as a metric (the trainer takes them by value).
struct Boxed(Box<dyn Metric>);

impl Metric for Boxed {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn per_sample(
        &self,
        output: &crate::backend::StepOutput,
        batch: &crate::data::Batch,
    ) -> Result<Vec<(String, Vec<f64>)>, crate::training::metrics::MetricError> {
        self.0.per_sample(output, batch)
    }
}

//! The threaded loader: samples loaded and transformed on worker threads, delivered as batches in
//! sampler order.
//!
//! # How an epoch runs
//!
//! [`Loader::epoch`] asks the sampler for the epoch's order, cuts it into batches and starts
//! `workers` threads. The consumer hands out the samples of the first `prefetch` batches; each
//! worker takes one sample at a time, loads it (`Dataset::get`), transforms it, and the worker that
//! completes a batch collates it. The consumer delivers batches strictly in order, holding back
//! any that finish early, and hands out the next batch's samples each time it delivers one, so at
//! most `prefetch` batches (`prefetch × batch_size` samples) are loaded ahead of the consumer,
//! whatever the size of the dataset.
//!
//! # Determinism
//!
//! The transform of sample `i` in epoch `e` draws from
//! `StreamKey::new(seed).epoch(e).sample(i).purpose("transform")`, a stream that depends on
//! nothing else. With `workers` = 0, 1 or 16, an epoch yields bit-identical batches.
//!
//! # Failures
//!
//! An error from `get` or from the transform, or a panic in either, ends the epoch: batches before
//! the failing one are delivered, then one [`LoaderError`] that names the sample's dataset index
//! and the cause, then nothing. Work on later batches is abandoned at once; a worker that is in the
//! middle of a sample finishes that sample first (a thread cannot be interrupted), then stops. The
//! threads are joined when the epoch iterator is exhausted or dropped, so none outlives it.
//!
//! # Data stall
//!
//! [`Epoch::stats`] reports, for every batch, how long the consumer waited inside `next` for it:
//! the time the training loop sat idle because data was not ready. With `workers = 0` the stall is
//! the whole loading time; with enough workers it falls to almost nothing.

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use typed_builder::TypedBuilder;

use super::batch::{Batch, CollateError, Sample};
use super::dataset::{DataError, Dataset};
use super::sampler::{BatchSampler, Sampler};
use crate::random::{Stream, StreamKey};

/// How a [`Loader`] batches and loads.
///
/// The order of samples is the sampler's business (sequential, random, weighted, ...); the
/// loader only cuts that order into batches.
///
/// ```
/// use delira::data::LoaderConfig;
///
/// let built = LoaderConfig::builder().batch_size(4).workers(2).build();
/// let parsed: LoaderConfig = serde_json::from_str(r#"{ "batch_size": 4, "workers": 2 }"#).unwrap();
/// assert_eq!(built, parsed);
/// assert_eq!((built.prefetch, built.seed, built.drop_last), (2, 0, false));
/// assert!(serde_json::from_str::<LoaderConfig>(r#"{ "batch_size": 4, "wrokers": 2 }"#).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// Samples per batch (at least 1).
    pub batch_size: usize,
    /// Worker threads; 0 loads on the thread that iterates, without prefetching.
    #[builder(default)]
    #[serde(default)]
    pub workers: usize,
    /// Batches loaded ahead of the one the consumer holds (at least 1 with workers). Workers share
    /// the samples of these batches, so `prefetch × batch_size` should be at least `workers` to
    /// keep every worker busy.
    #[builder(default = default_prefetch())]
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// The seed of the transform's random streams.
    #[builder(default)]
    #[serde(default)]
    pub seed: u64,
    /// Whether a final batch shorter than `batch_size` is left out.
    #[builder(default)]
    #[serde(default)]
    pub drop_last: bool,
}

fn default_prefetch() -> usize {
    2
}

/// Why a loader could not deliver a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoaderError {
    /// The configuration cannot work.
    #[error("invalid loader configuration: {0}")]
    Config(String),
    /// The dataset or the transform returned an error for a sample.
    #[error("sample {index} (batch {batch} of epoch {epoch}) failed: {cause}")]
    Sample {
        /// The sample's dataset index.
        index: usize,
        /// The batch's position in the epoch.
        batch: usize,
        /// The epoch.
        epoch: u64,
        /// What went wrong.
        cause: DataError,
    },
    /// The dataset or the transform panicked on a sample.
    #[error("sample {index} (batch {batch} of epoch {epoch}) panicked: {message}")]
    Panic {
        /// The sample's dataset index.
        index: usize,
        /// The batch's position in the epoch.
        batch: usize,
        /// The epoch.
        epoch: u64,
        /// The panic's message.
        message: String,
    },
    /// The samples of a batch could not be stacked.
    #[error("batch {batch} of epoch {epoch} (samples {indices:?}) could not be collated: {cause}")]
    Collate {
        /// The batch's position in the epoch.
        batch: usize,
        /// The epoch.
        epoch: u64,
        /// The samples' dataset indices.
        indices: Vec<usize>,
        /// What did not agree.
        cause: CollateError,
    },
    /// Turning the samples of a batch into fields panicked.
    #[error(
        "batch {batch} of epoch {epoch} (samples {indices:?}) panicked while collating: {message}"
    )]
    CollatePanic {
        /// The batch's position in the epoch.
        batch: usize,
        /// The epoch.
        epoch: u64,
        /// The samples' dataset indices.
        indices: Vec<usize>,
        /// The panic's message.
        message: String,
    },
    /// A worker thread could not be started.
    #[error("a loader worker thread could not be started: {0}; lower `workers`")]
    Spawn(String),
    /// Every worker thread ended before the batch arrived (which delivered errors should make
    /// impossible; reported rather than waiting for ever).
    #[error("the loader's worker threads ended before batch {batch} was delivered")]
    WorkersLost {
        /// The batch that was awaited.
        batch: usize,
    },
}

/// A sample transform: the sample and its own random stream in, the transformed sample out.
type Transform<T> = dyn Fn(T, &mut Stream) -> Result<T, DataError> + Send + Sync;

/// Loads and transforms the sample at a dataset index, for one epoch.
type LoadFn<T> = dyn Fn(usize) -> Result<T, DataError> + Send + Sync;

/// Batches of a dataset in the order of a sampler, loaded on worker threads.
///
/// ```
/// use delira::data::{Dataset, FnDataset, Loader, LoaderConfig, Record, SequentialSampler};
/// use delira::random::Stream;
/// use ndarray::ArrayD;
///
/// let data = FnDataset::new(10, |i| Ok(Record::new().with("x", ArrayD::from_elem(vec![2], i as f32))));
/// let config = LoaderConfig::builder().batch_size(4).workers(2).seed(7).build();
/// let loader = Loader::new(data, SequentialSampler::new(10), config)
///     .unwrap()
///     .with_transform(|mut record: Record, stream: &mut Stream| {
///         let noise = stream.uniform(0.0, 0.5) as f32;
///         if let Some(delira::data::Value::F32(x)) = record.get_mut("x") {
///             x.mapv_inplace(|v| v + noise);
///         }
///         Ok(record)
///     });
/// let mut epoch = loader.epoch(0);
/// let batches: Vec<_> = epoch.by_ref().map(Result::unwrap).collect();
/// assert_eq!(batches.len(), 3);
/// assert_eq!(batches[2].indices(), [8, 9]);
/// let x = batches[0].f32("x").unwrap();
/// assert_eq!(x.shape(), [4, 2]);
/// assert!(x[[3, 0]] >= 3.0 && x[[3, 0]] < 3.5);
/// assert_eq!(epoch.stats().stalls().len(), 3);
/// ```
pub struct Loader<D: Dataset, S> {
    dataset: Arc<D>,
    batches: BatchSampler<S>,
    config: LoaderConfig,
    transform: Option<Arc<Transform<D::Item>>>,
}

impl<D, S> Loader<D, S>
where
    D: Dataset + 'static,
    D::Item: Sample,
    S: Sampler,
{
    /// A loader of `dataset` in the order of `sampler`.
    ///
    /// Fails with [`LoaderError::Config`] if `batch_size` is 0, or `prefetch` is 0 with workers.
    pub fn new(dataset: D, sampler: S, config: LoaderConfig) -> Result<Self, LoaderError> {
        if config.batch_size == 0 {
            return Err(LoaderError::Config(
                "`batch_size` is 0; set it to 1 or more".to_owned(),
            ));
        }
        if config.workers > 0 && config.prefetch == 0 {
            return Err(LoaderError::Config(format!(
                "`prefetch` is 0 with {} workers; set it to 1 or more",
                config.workers
            )));
        }
        Ok(Self {
            dataset: Arc::new(dataset),
            batches: BatchSampler::new(sampler, config.batch_size, config.drop_last),
            config,
            transform: None,
        })
    }

    /// The same loader with `transform` applied to every sample after loading, on the worker
    /// threads. The stream of sample `i` in epoch `e` is
    /// `StreamKey::new(seed).epoch(e).sample(i).purpose("transform").stream()`.
    #[must_use]
    pub fn with_transform<F>(mut self, transform: F) -> Self
    where
        F: Fn(D::Item, &mut Stream) -> Result<D::Item, DataError> + Send + Sync + 'static,
    {
        self.transform = Some(Arc::new(transform));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The dataset.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// The number of batches in each epoch.
    pub fn num_batches(&self) -> usize {
        self.batches.num_batches()
    }

    /// The batches of `epoch`, in sampler order; worker threads start at once.
    #[must_use = "the epoch's worker threads start at once; iterate the epoch to receive its batches"]
    pub fn epoch(&self, epoch: u64) -> Epoch<D::Item> {
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch` from batch number `first` on, for resuming an interrupted epoch:
    /// they are identical to the same batches of [`Loader::epoch`], and keep their numbers in
    /// errors. A `first` beyond the end gives an empty epoch.
    ///
    /// ```
    /// use delira::data::{FnDataset, Loader, LoaderConfig, Record, SequentialSampler};
    /// use ndarray::arr0;
    ///
    /// let data = FnDataset::new(10, |i| Ok(Record::new().with("i", arr0(i as i64).into_dyn())));
    /// let config = LoaderConfig::builder().batch_size(3).workers(1).build();
    /// let loader = Loader::new(data, SequentialSampler::new(10), config).unwrap();
    /// let rest: Vec<Vec<usize>> =
    ///     loader.epoch_from(0, 2).map(|b| b.unwrap().indices().to_vec()).collect();
    /// assert_eq!(rest, [vec![6, 7, 8], vec![9]]);
    /// ```
    #[must_use = "the epoch's worker threads start at once; iterate the epoch to receive its batches"]
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Epoch<D::Item> {
        let dataset = Arc::clone(&self.dataset);
        let transform = self.transform.clone();
        let seed = self.config.seed;
        let load: Arc<LoadFn<D::Item>> = Arc::new(move |index| {
            let item = dataset.get(index)?;
            match &transform {
                Some(transform) => {
                    let key = StreamKey::new(seed).epoch(epoch).sample(index as u64);
                    transform(item, &mut key.purpose("transform").stream())
                }
                None => Ok(item),
            }
        });
        tracing::info!(
            epoch,
            batches = self.num_batches(),
            workers = self.config.workers,
            "loader epoch starts"
        );
        Epoch::start(
            epoch,
            self.batches.epoch_batches(epoch),
            first,
            load,
            &self.config,
        )
    }
}

/// How long the consumer waited for each batch of an epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochStats {
    stalls: Vec<Duration>,
    elapsed: Duration,
}

impl EpochStats {
    /// The wait inside `next` for each item delivered so far, in order.
    pub fn stalls(&self) -> &[Duration] {
        &self.stalls
    }

    /// The sum of the waits.
    pub fn total_stall(&self) -> Duration {
        self.stalls.iter().sum()
    }

    /// The time from the start of the epoch to the delivery of the last item so far.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The share of the elapsed time that the consumer spent waiting, between 0 and 1.
    pub fn stall_fraction(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        (self.total_stall().as_secs_f64() / self.elapsed.as_secs_f64()).min(1.0)
    }
}

/// The batches of one epoch, as an iterator of `Result<Batch, LoaderError>`.
///
/// Yields the batches in sampler order; after an error, yields nothing more. Dropping it stops
/// and joins the worker threads.
pub struct Epoch<T: Sample> {
    number: u64,
    plan: Vec<Vec<usize>>,
    next: usize,
    done: bool,
    mode: Mode<T>,
    started: Instant,
    stats: EpochStats,
}

enum Mode<T: Sample> {
    Inline(Arc<LoadFn<T>>),
    Threads(Workers<T>),
    Failed(Option<LoaderError>),
}

impl<T: Sample> Epoch<T> {
    fn start(
        epoch: u64,
        plan: Vec<Vec<usize>>,
        first: usize,
        load: Arc<LoadFn<T>>,
        config: &LoaderConfig,
    ) -> Self {
        let first = first.min(plan.len());
        let mode = if config.workers == 0 {
            Mode::Inline(load)
        } else {
            match Workers::spawn(load, epoch, config, &plan, first) {
                Ok(workers) => Mode::Threads(workers),
                Err(error) => Mode::Failed(Some(error)),
            }
        };
        Self {
            number: epoch,
            plan,
            next: first,
            done: false,
            mode,
            started: Instant::now(),
            stats: EpochStats::default(),
        }
    }

    /// The stall of every item delivered so far.
    pub fn stats(&self) -> &EpochStats {
        &self.stats
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.number
    }

    /// The number of batches the epoch yields when nothing fails.
    pub fn num_batches(&self) -> usize {
        self.plan.len()
    }

    fn finish(&mut self) {
        self.done = true;
        if let Mode::Threads(workers) = &mut self.mode {
            workers.stop();
        }
    }
}

impl<T: Sample> Iterator for Epoch<T> {
    type Item = Result<Batch, LoaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let waiting = Instant::now();
        let batch = self.next;
        if batch >= self.plan.len() && !matches!(self.mode, Mode::Failed(Some(_))) {
            self.finish();
            return None;
        }
        let result = match &mut self.mode {
            Mode::Failed(error) => Err(error.take()?),
            Mode::Inline(load) => load_batch(load.as_ref(), self.number, batch, &self.plan[batch]),
            Mode::Threads(workers) => workers.receive(batch, &self.plan),
        };
        let stall = waiting.elapsed();

        self.next += 1;
        self.stats.stalls.push(stall);
        self.stats.elapsed = self.started.elapsed();
        tracing::debug!(
            epoch = self.number,
            batch,
            stall_us = stall.as_micros() as u64,
            ok = result.is_ok(),
            "batch delivered"
        );
        if result.is_err() {
            self.finish();
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.mode {
            _ if self.done => (0, Some(0)),
            Mode::Failed(_) => (1, Some(1)),
            _ => (0, Some(self.plan.len() - self.next)),
        }
    }
}

impl<T: Sample> Drop for Epoch<T> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Loads one sample, turning a panic into an error.
fn load_sample<T>(
    load: &LoadFn<T>,
    epoch: u64,
    batch: usize,
    index: usize,
) -> Result<T, LoaderError> {
    match catch_unwind(AssertUnwindSafe(|| load(index))) {
        Ok(Ok(item)) => Ok(item),
        Ok(Err(cause)) => Err(LoaderError::Sample {
            index,
            batch,
            epoch,
            cause,
        }),
        Err(payload) => Err(LoaderError::Panic {
            index,
            batch,
            epoch,
            message: panic_message(payload.as_ref()),
        }),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a text message".to_owned()
    }
}

/// Loads and collates a whole batch on the calling thread.
fn load_batch<T: Sample>(
    load: &LoadFn<T>,
    epoch: u64,
    batch: usize,
    indices: &[usize],
) -> Result<Batch, LoaderError> {
    let samples = indices
        .iter()
        .map(|&index| load_sample(load, epoch, batch, index))
        .collect::<Result<Vec<T>, _>>()?;
    collate(epoch, batch, indices, samples)
}

fn collate<T: Sample>(
    epoch: u64,
    batch: usize,
    indices: &[usize],
    samples: Vec<T>,
) -> Result<Batch, LoaderError> {
    match catch_unwind(AssertUnwindSafe(|| Batch::collate(samples))) {
        Ok(Ok(collated)) => Ok(collated.with_indices(indices.to_vec())),
        Ok(Err(cause)) => Err(LoaderError::Collate {
            batch,
            epoch,
            indices: indices.to_vec(),
            cause,
        }),
        Err(payload) => Err(LoaderError::CollatePanic {
            batch,
            epoch,
            indices: indices.to_vec(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// One sample to load: its batch, its place in the batch and its dataset index.
#[derive(Clone, Copy)]
struct Task {
    batch: usize,
    slot: usize,
    index: usize,
}

/// A batch whose samples are being loaded.
struct Pending<T> {
    indices: Vec<usize>,
    samples: Vec<Option<T>>,
    missing: usize,
}

/// What the consumer and the workers share.
struct Shared<T> {
    load: Arc<LoadFn<T>>,
    epoch: u64,
    /// Workers skip samples of batches at or beyond this number; lowered to stop work.
    limit: AtomicUsize,
    pending: Mutex<HashMap<usize, Pending<T>>>,
}

type Delivery = (usize, Result<Batch, LoaderError>);

/// The worker threads of one epoch, seen from the consumer.
struct Workers<T> {
    shared: Arc<Shared<T>>,
    tasks: Option<Sender<Task>>,
    results: Receiver<Delivery>,
    /// Batches that arrived before their turn.
    early: BTreeMap<usize, Result<Batch, LoaderError>>,
    handles: Vec<JoinHandle<()>>,
    issued: usize,
    prefetch: usize,
}

impl<T: Sample> Workers<T> {
    fn spawn(
        load: Arc<LoadFn<T>>,
        epoch: u64,
        config: &LoaderConfig,
        plan: &[Vec<usize>],
        first: usize,
    ) -> Result<Self, LoaderError> {
        let count = config.workers;
        let shared = Arc::new(Shared {
            load,
            epoch,
            limit: AtomicUsize::new(usize::MAX),
            pending: Mutex::new(HashMap::new()),
        });
        let (task_tx, task_rx) = crossbeam_channel::unbounded::<Task>();
        let (result_tx, result_rx) = crossbeam_channel::unbounded::<Delivery>();
        let mut workers = Self {
            shared,
            tasks: Some(task_tx),
            results: result_rx,
            early: BTreeMap::new(),
            handles: Vec::with_capacity(count),
            issued: first,
            prefetch: config.prefetch,
        };
        for k in 0..count {
            let shared = Arc::clone(&workers.shared);
            let tasks = task_rx.clone();
            let results = result_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("delira-loader-{k}"))
                .spawn(move || work(&shared, &tasks, &results));
            match spawned {
                Ok(handle) => workers.handles.push(handle),
                // Dropping `workers` stops and joins the threads already started.
                Err(error) => return Err(LoaderError::Spawn(error.to_string())),
            }
        }
        workers.top_up(first, plan);
        Ok(workers)
    }

    /// Hands out the samples of every batch up to `prefetch` beyond the `delivered` ones.
    fn top_up(&mut self, delivered: usize, plan: &[Vec<usize>]) {
        let Some(tasks) = &self.tasks else { return };
        let target = plan.len().min(delivered + self.prefetch);
        while self.issued < target {
            let batch = self.issued;
            let indices = &plan[batch];
            self.shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    batch,
                    Pending {
                        indices: indices.clone(),
                        samples: indices.iter().map(|_| None).collect(),
                        missing: indices.len(),
                    },
                );
            for (slot, &index) in indices.iter().enumerate() {
                // The workers hold the receiver until `stop`, so sending cannot fail here.
                let _ = tasks.send(Task { batch, slot, index });
            }
            self.issued += 1;
        }
    }

    /// Waits for batch `batch`, keeping batches that arrive early.
    fn receive(&mut self, batch: usize, plan: &[Vec<usize>]) -> Result<Batch, LoaderError> {
        let result = loop {
            if let Some(result) = self.early.remove(&batch) {
                break result;
            }
            match self.results.recv() {
                Ok((arrived, result)) => {
                    if result.is_err() {
                        // Nothing after a failed batch will be delivered: stop loading it.
                        self.shared.limit.fetch_min(arrived + 1, Ordering::SeqCst);
                    }
                    self.early.entry(arrived).or_insert(result);
                }
                Err(_) => return Err(LoaderError::WorkersLost { batch }),
            }
        };
        if result.is_ok() {
            self.top_up(batch + 1, plan);
        }
        result
    }
}

impl<T> Workers<T> {
    /// Abandons the remaining work and joins the threads.
    fn stop(&mut self) {
        self.shared.limit.store(0, Ordering::SeqCst);
        self.tasks = None;
        for handle in self.handles.drain(..) {
            // A worker catches every panic of user code; a failed join has nothing to report.
            let _ = handle.join();
        }
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl<T> Drop for Workers<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A worker's loop: take a sample, load it, place it; collate the batch it completes.
///
/// Everything a task does runs under `catch_unwind` (user code may panic even while a sample is
/// dropped), so a worker never dies with a batch half done, which would leave the consumer
/// waiting for it.
fn work<T: Sample>(shared: &Shared<T>, tasks: &Receiver<Task>, results: &Sender<Delivery>) {
    while let Ok(task) = tasks.recv() {
        let (batch, index) = (task.batch, task.index);
        let delivery = match catch_unwind(AssertUnwindSafe(|| run_task(shared, task))) {
            Ok(Some(delivery)) => delivery,
            Ok(None) => continue,
            Err(payload) => (
                batch,
                Err(LoaderError::Panic {
                    index,
                    batch,
                    epoch: shared.epoch,
                    message: panic_message(payload.as_ref()),
                }),
            ),
        };
        if results.send(delivery).is_err() {
            return;
        }
    }
}

/// Loads one sample; returns the batch it completes, or its error.
fn run_task<T: Sample>(shared: &Shared<T>, task: Task) -> Option<Delivery> {
    if task.batch >= shared.limit.load(Ordering::SeqCst) {
        return None;
    }
    let item = match load_sample(shared.load.as_ref(), shared.epoch, task.batch, task.index) {
        Ok(item) => item,
        Err(error) => return Some((task.batch, Err(error))),
    };
    if task.batch >= shared.limit.load(Ordering::SeqCst) {
        return None;
    }

    let done = {
        let mut pending = shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = pending.get_mut(&task.batch)?;
        entry.samples[task.slot] = Some(item);
        entry.missing -= 1;
        if entry.missing > 0 {
            return None;
        }
        pending.remove(&task.batch)?
    };
    let samples = done.samples.into_iter().flatten().collect();
    let collated = collate(shared.epoch, task.batch, &done.indices, samples);
    Some((task.batch, collated))
}

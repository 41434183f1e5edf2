//! Logging: `tracing` setup for executables, metric sinks, progress bars and plots.
//!
//! - The library emits `tracing` spans ([`experiment_span`], [`fold_span`], [`epoch_span`]) and
//!   events only. Executables and examples call [`install_subscriber`] once; library code never
//!   installs a subscriber.
//! - Training metrics go to [`MetricSink`]s: [`TensorBoardWriter`] (event files that TensorBoard
//!   reads: scalars, images, histograms), [`CsvSink`] and [`JsonLinesSink`]. [`Sinks`] fans one
//!   call out to several.
//! - [`progress`] shows epoch and batch bars on a terminal and plain log lines elsewhere.
//! - [`plot`] draws learning curves and confusion matrices as PNG files.

mod csv;
pub mod plot;
pub mod progress;
mod tensorboard;

use ndarray::{Array3, ArrayView2, ArrayView3, AsArray, Ix2};

pub use csv::{CsvSink, JsonLinesSink};
pub use tensorboard::{TensorBoardWriter, crc32c, masked_crc32c};

/// Why a metric could not be logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// Writing a file failed.
    #[error("log file `{path}`: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An image has a shape a sink cannot store.
    #[error(
        "image `{tag}` has shape {shape:?}; expected [height, width, channels] with 1, 3 or 4 channels and a non-zero size"
    )]
    ImageShape {
        /// The tag.
        tag: String,
        /// The shape given.
        shape: Vec<usize>,
    },
    /// Encoding an image or a plot failed.
    #[error("cannot encode `{what}`: {message}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The encoder's message.
        message: String,
    },
}

/// A destination for training metrics, addressed by tag and step.
///
/// Text sinks store scalars only; their `image` and `histogram` do nothing, as documented on
/// each sink.
pub trait MetricSink: Send {
    /// Records one scalar value.
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LoggingError>;

    /// Records an 8-bit image of shape `[height, width, channels]` (1 = grey, 3 = RGB,
    /// 4 = RGBA).
    fn image(
        &mut self,
        tag: &str,
        step: u64,
        image: ArrayView3<'_, u8>,
    ) -> Result<(), LoggingError>;

    /// Records the distribution of `values` (non-finite values are left out).
    fn histogram(&mut self, tag: &str, step: u64, values: &[f64]) -> Result<(), LoggingError>;

    /// Writes everything buffered so far to its destination.
    fn flush(&mut self) -> Result<(), LoggingError>;
}

/// Several sinks behind one: each call goes to every sink, in order; the first error is returned
/// after all sinks were called.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<Box<dyn MetricSink>>,
}

impl Sinks {
    /// Adds a sink.
    #[must_use]
    pub fn with(mut self, sink: impl MetricSink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    fn each(
        &mut self,
        mut call: impl FnMut(&mut dyn MetricSink) -> Result<(), LoggingError>,
    ) -> Result<(), LoggingError> {
        let mut first_error = None;
        for sink in &mut self.sinks {
            if let Err(error) = call(sink.as_mut()) {
                tracing::warn!(%error, "metric sink failed");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl MetricSink for Sinks {
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LoggingError> {
        self.each(|s| s.scalar(tag, step, value))
    }

    fn image(
        &mut self,
        tag: &str,
        step: u64,
        image: ArrayView3<'_, u8>,
    ) -> Result<(), LoggingError> {
        self.each(|s| s.image(tag, step, image))
    }

    fn histogram(&mut self, tag: &str, step: u64, values: &[f64]) -> Result<(), LoggingError> {
        self.each(|s| s.histogram(tag, step, values))
    }

    fn flush(&mut self) -> Result<(), LoggingError> {
        self.each(|s| s.flush())
    }
}

/// A grey 8-bit image `[height, width, 1]` from a 2D slice, scaled linearly so that its minimum
/// is 0 and its maximum 255 (a constant slice is all 0; non-finite values are 0).
///
/// ```
/// let slice = ndarray::array![[0.0_f32, 1.0], [2.0, 4.0]];
/// let image = delira::logging::grey_image(&slice);
/// assert_eq!(image.shape(), [2, 2, 1]);
/// assert_eq!(image.iter().copied().collect::<Vec<u8>>(), [0, 64, 128, 255]);
/// ```
pub fn grey_image<'a>(slice: impl AsArray<'a, f32, Ix2>) -> Array3<u8> {
    let slice: ArrayView2<'a, f32> = slice.into();
    let finite = slice.iter().copied().filter(|v| v.is_finite());
    let (low, high) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let range = high - low;
    let (rows, cols) = slice.dim();
    Array3::from_shape_fn((rows, cols, 1), |(r, c, _)| {
        let v = slice[[r, c]];
        if !v.is_finite() || range <= 0.0 {
            0
        } else {
            (((v - low) / range) * 255.0).round() as u8
        }
    })
}

/// Installs a `tracing` subscriber that prints to stderr, filtered by the `RUST_LOG`
/// environment variable (default `info`). For executables and examples only: the library never
/// calls it. Returns `false` when a global subscriber was already installed.
pub fn install_subscriber() -> bool {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok()
}

/// The `info` span of one experiment run, with its name and seed as fields. The trainer enters
/// it around everything a run does, so every event inside carries them.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Clone, Default)]
/// struct Buffer(Arc<Mutex<Vec<u8>>>);
/// impl std::io::Write for Buffer {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let buffer = Buffer::default();
/// let writer = buffer.clone();
/// let subscriber = tracing_subscriber::fmt()
///     .with_writer(move || writer.clone())
///     .with_ansi(false)
///     .without_time()
///     .finish();
/// tracing::subscriber::with_default(subscriber, || {
///     let _experiment = delira::logging::experiment_span("brain_tissue", 42).entered();
///     let _fold = delira::logging::fold_span(1, 4).entered();
///     let _epoch = delira::logging::epoch_span(3, 30).entered();
///     tracing::info!(loss = 0.5, "epoch done");
/// });
/// let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
/// assert!(text.contains(
///     "experiment{name=\"brain_tissue\" seed=42}:fold{fold=1 folds=4}:epoch{epoch=3 epochs=30}: "
/// ), "{text}");
/// assert!(text.contains("epoch done loss=0.5"), "{text}");
/// ```
pub fn experiment_span(name: &str, seed: u64) -> tracing::Span {
    tracing::info_span!("experiment", name, seed)
}

/// The `info` span of one cross-validation fold (`fold` counted from 0, of `folds`).
pub fn fold_span(fold: usize, folds: usize) -> tracing::Span {
    tracing::info_span!("fold", fold, folds)
}

/// The `info` span of one epoch (`epoch` counted from 0, of `epochs`).
pub fn epoch_span(epoch: u64, epochs: u64) -> tracing::Span {
    tracing::info_span!("epoch", epoch, epochs)
}

//! Progress display: epoch and batch bars on a terminal, plain lines elsewhere.
//!
//! [`Progress`] is fed the timing of every batch — how long the step waited for data and how
//! long it computed — and shows the sample-weighted mean loss, the rate in samples per second,
//! the time left in the epoch and the *data stall*: the share of time spent waiting for the
//! loader, which says whether more loader workers would help. Timings are passed in rather than
//! measured here, so the display is a pure function of what the trainer reports.
//!
//! On a terminal (stderr) it draws two `indicatif` bars; otherwise — a log file, CI — it writes
//! one plain line every tenth of an epoch and one per finished epoch.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::training::metrics::RunningMean;

/// The statistics of the batches of one epoch so far.
///
/// ```
/// use std::time::Duration;
/// use delira::logging::progress::EpochStats;
///
/// let mut stats = EpochStats::new(4);
/// stats.batch(0.5, 8, Duration::from_millis(100), Duration::from_millis(300));
/// stats.batch(1.0, 8, Duration::from_millis(300), Duration::from_millis(300));
/// assert_eq!(stats.loss(), Some(0.75));
/// assert_eq!(stats.samples_per_second(), 16.0);       // 16 samples in 1 s
/// assert_eq!(stats.data_stall(), 0.4);               // 0.4 s of 1 s waiting for data
/// assert_eq!(stats.eta(), Duration::from_secs(1));     // 2 batches left at 0.5 s each
/// assert_eq!(stats.summary(), "loss 0.7500 | 16.0 samples/s | eta 1s | data stall 40%");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    batches: u64,
    done: u64,
    samples: u64,
    loss: RunningMean,
    waiting: Duration,
    computing: Duration,
}

impl EpochStats {
    /// Statistics for an epoch of `batches` batches.
    pub fn new(batches: u64) -> Self {
        Self {
            batches,
            done: 0,
            samples: 0,
            loss: RunningMean::default(),
            waiting: Duration::ZERO,
            computing: Duration::ZERO,
        }
    }

    /// Records one batch: its mean loss, its size, the time spent waiting for it and the time of
    /// its step.
    pub fn batch(&mut self, loss: f64, samples: usize, waiting: Duration, computing: Duration) {
        self.done += 1;
        self.samples += samples as u64;
        self.loss.add(loss, samples);
        self.waiting += waiting;
        self.computing += computing;
    }

    /// Batches done.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// The mean loss over the samples so far.
    pub fn loss(&self) -> Option<f64> {
        self.loss.mean()
    }

    /// Samples per second of elapsed (waiting + computing) time.
    pub fn samples_per_second(&self) -> f64 {
        let elapsed = self.elapsed().as_secs_f64();
        if elapsed > 0.0 {
            self.samples as f64 / elapsed
        } else {
            0.0
        }
    }

    /// The share of elapsed time spent waiting for data, in [0, 1].
    pub fn data_stall(&self) -> f64 {
        let elapsed = self.elapsed().as_secs_f64();
        if elapsed > 0.0 {
            self.waiting.as_secs_f64() / elapsed
        } else {
            0.0
        }
    }

    /// The expected time left in the epoch at the mean time per batch so far.
    pub fn eta(&self) -> Duration {
        if self.done == 0 {
            return Duration::ZERO;
        }
        let left = self.batches.saturating_sub(self.done);
        self.elapsed().mul_f64(left as f64 / self.done as f64)
    }

    /// One line: loss, rate, time left, data stall.
    pub fn summary(&self) -> String {
        let loss = self
            .loss()
            .map_or_else(|| "-".to_owned(), |l| format!("{l:.4}"));
        format!(
            "loss {loss} | {:.1} samples/s | eta {} | data stall {:.0}%",
            self.samples_per_second(),
            format_duration(self.eta()),
            self.data_stall() * 100.0
        )
    }

    fn elapsed(&self) -> Duration {
        self.waiting + self.computing
    }
}

fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64().round() as u64;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A writer shared with the caller (tests read what was written).
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

enum Display {
    Bars {
        _multi: MultiProgress,
        epochs: ProgressBar,
        batches: ProgressBar,
    },
    Lines {
        out: SharedWriter,
    },
}

/// Epoch and batch progress of a training run.
pub struct Progress {
    display: Display,
    epochs: u64,
    epoch: u64,
    stats: EpochStats,
    next_line: u64,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("epoch", &self.epoch)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines on stderr otherwise.
    pub fn new(epochs: u64) -> Self {
        if std::io::stderr().is_terminal() {
            Self::bars(epochs, ProgressDrawTarget::stderr())
        } else {
            Self::lines(epochs, Arc::new(Mutex::new(std::io::stderr())))
        }
    }

    /// Bars drawn to `target`.
    pub fn bars(epochs: u64, target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let style = |template: &str| {
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
        };
        let epoch_bar = multi.add(ProgressBar::new(epochs));
        epoch_bar.set_style(style("epoch {pos}/{len} [{bar:30}] {msg}"));
        let batch_bar = multi.add(ProgressBar::new(0));
        batch_bar.set_style(style("batch {pos}/{len} [{bar:30}] {msg}"));
        let display = Display::Bars {
            _multi: multi,
            epochs: epoch_bar,
            batches: batch_bar,
        };
        Self {
            display,
            epochs,
            epoch: 0,
            stats: EpochStats::new(0),
            next_line: 0,
        }
    }

    /// Plain lines written to `out`.
    pub fn lines(epochs: u64, out: SharedWriter) -> Self {
        Self {
            display: Display::Lines { out },
            epochs,
            epoch: 0,
            stats: EpochStats::new(0),
            next_line: 0,
        }
    }

    /// Starts epoch `epoch` (from 0) of `batches` batches.
    pub fn start_epoch(&mut self, epoch: u64, batches: u64) {
        self.epoch = epoch;
        self.stats = EpochStats::new(batches);
        self.next_line = batches.div_ceil(10).max(1);
        if let Display::Bars {
            epochs,
            batches: bar,
            ..
        } = &self.display
        {
            epochs.set_position(epoch);
            bar.set_length(batches);
            bar.set_position(0);
            bar.set_message("");
        }
    }

    /// Records one batch (see [`EpochStats::batch`]).
    pub fn batch(&mut self, loss: f64, samples: usize, waiting: Duration, computing: Duration) {
        self.stats.batch(loss, samples, waiting, computing);
        match &self.display {
            Display::Bars { batches, .. } => {
                batches.set_position(self.stats.done());
                batches.set_message(self.stats.summary());
            }
            Display::Lines { out } => {
                let done = self.stats.done();
                if done.is_multiple_of(self.next_line) || done == self.stats.batches {
                    let line = format!(
                        "epoch {}/{} batch {done}/{} | {}",
                        self.epoch + 1,
                        self.epochs,
                        self.stats.batches,
                        self.stats.summary()
                    );
                    write_line(out, &line);
                }
            }
        }
    }

    /// The statistics of the current epoch.
    pub fn stats(&self) -> &EpochStats {
        &self.stats
    }

    /// Ends the epoch, showing its metrics (`name value` pairs, in name order).
    pub fn finish_epoch(&mut self, metrics: &BTreeMap<String, f64>) {
        let shown: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        let shown = shown.join(" | ");
        match &self.display {
            Display::Bars { epochs, .. } => {
                epochs.set_position(self.epoch + 1);
                epochs.set_message(shown);
            }
            Display::Lines { out } => {
                write_line(
                    out,
                    &format!("epoch {}/{} done | {shown}", self.epoch + 1, self.epochs),
                );
            }
        }
    }

    /// Removes the bars (after the last epoch).
    pub fn finish(&self) {
        if let Display::Bars {
            epochs, batches, ..
        } = &self.display
        {
            batches.finish_and_clear();
            epochs.finish();
        }
    }
}

fn write_line(out: &SharedWriter, line: &str) {
    // Progress output is advisory: a closed stderr must not abort training.
    if let Ok(mut out) = out.lock() {
        let _ = writeln!(out, "{line}");
    }
}

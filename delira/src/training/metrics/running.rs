//! Sample-weighted means accumulated over an epoch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A mean over samples, fed batch by batch.
///
/// Each batch contributes its mean weighted by its number of samples, so an epoch whose last
/// batch is smaller gets the true per-sample mean, not the mean of batch means. The state is
/// serialisable, so a checkpoint written mid-epoch resumes the same sums.
///
/// ```
/// use delira::training::metrics::RunningMean;
///
/// let mut loss = RunningMean::default();
/// loss.add(1.0, 4); // a batch of 4 samples with mean loss 1.0
/// loss.add(4.0, 1); // a last batch of 1 sample
/// assert_eq!(loss.mean(), Some(8.0 / 5.0)); // not (1.0 + 4.0) / 2
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningMean {
    sum: f64,
    samples: u64,
}

impl RunningMean {
    /// Adds a batch's mean value over `samples` samples (a batch of 0 samples adds nothing).
    pub fn add(&mut self, batch_mean: f64, samples: usize) {
        if samples > 0 {
            self.sum += batch_mean * samples as f64;
            self.samples += samples as u64;
        }
    }

    /// The mean over all samples added; `None` before the first sample.
    pub fn mean(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.sum / self.samples as f64)
    }

    /// The number of samples added.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

/// Several named [`RunningMean`]s, as collected for one epoch (`"loss"`, `"dice"`, ...).
///
/// ```
/// use delira::training::metrics::MetricMeans;
///
/// let mut means = MetricMeans::default();
/// means.add("loss", 0.5, 3);
/// means.add("loss", 2.0, 1);
/// means.add("dice", 0.75, 4);
/// let epoch = means.means();
/// assert_eq!(epoch["loss"], 3.5 / 4.0);
/// assert_eq!(epoch["dice"], 0.75);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricMeans {
    means: BTreeMap<String, RunningMean>,
}

impl MetricMeans {
    /// Adds a batch's mean value of the metric `name` over `samples` samples.
    pub fn add(&mut self, name: &str, batch_mean: f64, samples: usize) {
        self.means
            .entry(name.to_owned())
            .or_default()
            .add(batch_mean, samples);
    }

    /// The running mean of one metric, if any batch reported it.
    pub fn get(&self, name: &str) -> Option<&RunningMean> {
        self.means.get(name)
    }

    /// The mean of every metric that has at least one sample, by name.
    pub fn means(&self) -> BTreeMap<String, f64> {
        self.means
            .iter()
            .filter_map(|(name, mean)| mean.mean().map(|m| (name.clone(), m)))
            .collect()
    }

    /// Forgets everything (at the start of an epoch).
    pub fn clear(&mut self) {
        self.means.clear();
    }
}

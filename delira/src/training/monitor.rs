//! The monitored metric: which direction is better, and the best value seen so far.

use serde::{Deserialize, Serialize};

/// Whether a smaller or a larger value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Smaller is better (a loss).
    Min,
    /// Larger is better (Dice, accuracy).
    Max,
}

/// The best value of a monitored metric so far.
///
/// It starts with no value, so the first finite value always becomes the best — whatever its
/// sign or size (a starting value of `0.0` would reject a negative first loss under `Max`, or any
/// positive one under `Min`). A candidate must beat the best by more than `min_delta` to count as
/// an improvement. NaN never improves.
///
/// ```
/// use delira::training::{BestTracker, Mode};
///
/// let mut best = BestTracker::new(Mode::Max, 0.0);
/// assert!(best.update(-3.5)); // any first value is the best, negative too
/// assert!(!best.update(-4.0));
/// assert!(best.update(-1.0));
/// assert_eq!(best.best(), Some(-1.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BestTracker {
    mode: Mode,
    min_delta: f64,
    best: Option<f64>,
}

impl BestTracker {
    /// A tracker without a best value yet; `min_delta` is used as its absolute value.
    pub fn new(mode: Mode, min_delta: f64) -> Self {
        Self {
            mode,
            min_delta: min_delta.abs(),
            best: None,
        }
    }

    /// The direction of improvement.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The best value so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// Whether `value` would improve on the best, without recording it.
    pub fn improves(&self, value: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        match (self.best, self.mode) {
            (None, _) => true,
            (Some(best), Mode::Min) => value < best - self.min_delta,
            (Some(best), Mode::Max) => value > best + self.min_delta,
        }
    }

    /// Records `value` and says whether it became the new best.
    pub fn update(&mut self, value: f64) -> bool {
        let improved = self.improves(value);
        if improved {
            self.best = Some(value);
        }
        improved
    }
}

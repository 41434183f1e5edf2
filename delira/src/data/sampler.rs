//! Samplers: the order in which a loader visits dataset indices, epoch by epoch.
//!
//! A sampler is a pure function of the epoch: it holds no cursor, so a run resumed in epoch `e`
//! asks for `epoch_indices(e)` and gets exactly the order the uninterrupted run used.
//!
//! Samplers over a list of dataset indices (a fold's training part, say) compose with
//! [`split`](super::split): [`IndexSampler`] keeps the given order, [`RandomSampler`] permutes it
//! or draws from it with replacement, [`WeightedSampler`] draws in proportion to per-sample
//! weights, and [`ClassBalancedSampler`] makes every class equally likely. Random samplers draw
//! from [`StreamKey::new(seed).epoch(epoch).purpose("sampler")`](StreamKey), so an epoch's order
//! depends on nothing but the seed and the epoch. [`SamplerConfig`] declares one of them.

use serde::{Deserialize, Serialize};
use typed_builder::TypedBuilder;

use crate::random::{Stream, StreamKey};

/// The order of dataset indices within each epoch.
pub trait Sampler: Send + Sync {
    /// The dataset indices to visit in `epoch`, in order.
    fn epoch_indices(&self, epoch: u64) -> Vec<usize>;

    /// How many indices each epoch yields.
    fn len(&self) -> usize;

    /// Whether an epoch yields no index.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<S: Sampler + ?Sized> Sampler for Box<S> {
    fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        (**self).epoch_indices(epoch)
    }

    fn len(&self) -> usize {
        (**self).len()
    }
}

impl<S: Sampler + ?Sized> Sampler for std::sync::Arc<S> {
    fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        (**self).epoch_indices(epoch)
    }

    fn len(&self) -> usize {
        (**self).len()
    }
}

/// `0, 1, ..., n - 1` in every epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequentialSampler {
    n: usize,
}

impl SequentialSampler {
    /// A sampler over `0..n`.
    pub fn new(n: usize) -> Self {
        Self { n }
    }
}

impl Sampler for SequentialSampler {
    fn epoch_indices(&self, _epoch: u64) -> Vec<usize> {
        (0..self.n).collect()
    }

    fn len(&self) -> usize {
        self.n
    }
}

/// Groups a sampler's indices into batches.
///
/// ```
/// use delira::data::{BatchSampler, SequentialSampler};
///
/// let batches = BatchSampler::new(SequentialSampler::new(600), 7, false);
/// assert_eq!(batches.num_batches(), 86);
/// assert_eq!(batches.epoch_batches(0).last().unwrap().len(), 5);
/// assert_eq!(BatchSampler::new(SequentialSampler::new(600), 7, true).num_batches(), 85);
/// ```
#[derive(Clone, Debug)]
pub struct BatchSampler<S> {
    sampler: S,
    batch_size: usize,
    drop_last: bool,
}

impl<S: Sampler> BatchSampler<S> {
    /// Batches of `batch_size` indices; with `drop_last`, a shorter final batch is left out.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn new(sampler: S, batch_size: usize, drop_last: bool) -> Self {
        assert!(batch_size > 0, "the batch size must be at least 1");
        Self {
            sampler,
            batch_size,
            drop_last,
        }
    }

    /// The batches of `epoch`, in order.
    pub fn epoch_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        let indices = self.sampler.epoch_indices(epoch);
        let mut batches: Vec<Vec<usize>> = indices
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        if self.drop_last && batches.last().is_some_and(|b| b.len() < self.batch_size) {
            batches.pop();
        }
        batches
    }

    /// The number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.sampler.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The underlying sampler.
    pub fn sampler(&self) -> &S {
        &self.sampler
    }
}

/// What can go wrong when making a sampler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    /// A weight is negative, infinite or NaN.
    #[error("weight {index} is {value}; weights must be finite and non-negative")]
    BadWeight {
        /// The position of the weight.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// Every weight of the sampled indices is zero.
    #[error(
        "all {count} weights of the sampled indices are zero; give at least one a positive weight"
    )]
    AllZero {
        /// The number of sampled indices.
        count: usize,
    },
    /// The weights of the sampled indices sum to more than the largest `f64`.
    #[error("the weights of the {count} sampled indices sum to infinity; scale them down")]
    InfiniteTotal {
        /// The number of sampled indices.
        count: usize,
    },
    /// Nothing to draw from.
    #[error("cannot draw from an empty index list; give at least one index")]
    Empty,
    /// A sampled index has no weight or label.
    #[error("index {index} has no {what}: only {len} were given; give one per dataset sample")]
    IndexOutOfRange {
        /// The dataset index.
        index: usize,
        /// `weights` or `labels`.
        what: &'static str,
        /// The number of weights or labels given.
        len: usize,
    },
    /// A sampler that needs weights or labels was configured without them.
    #[error("the {sampler} sampler needs {needed}; pass them to `SamplerConfig::build`")]
    Missing {
        /// The sampler kind.
        sampler: &'static str,
        /// `weights` or `labels`.
        needed: &'static str,
    },
}

fn sampler_stream(seed: u64, epoch: u64) -> Stream {
    StreamKey::new(seed)
        .epoch(epoch)
        .purpose("sampler")
        .stream()
}

/// A random order of given dataset indices, drawn anew each epoch from `(seed, epoch)`: a
/// permutation, or `draws` independent uniform draws with replacement.
///
/// ```
/// use delira::data::{RandomSampler, Sampler};
///
/// let sampler = RandomSampler::new(vec![10, 11, 12, 13], 7);
/// let mut order = sampler.epoch_indices(0);
/// assert_eq!(order, sampler.epoch_indices(0));
/// order.sort_unstable();
/// assert_eq!(order, [10, 11, 12, 13]);
///
/// let draws = RandomSampler::with_replacement(vec![10, 11], 5, 7);
/// assert_eq!(draws.len(), 5);
/// assert!(draws.epoch_indices(3).iter().all(|i| [10, 11].contains(i)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomSampler {
    indices: Vec<usize>,
    draws: Option<usize>,
    seed: u64,
}

impl RandomSampler {
    /// A permutation of `indices` per epoch.
    pub fn new(indices: Vec<usize>, seed: u64) -> Self {
        Self {
            indices,
            draws: None,
            seed,
        }
    }

    /// `draws` uniform draws from `indices` per epoch, with replacement (none when `indices` is
    /// empty).
    pub fn with_replacement(indices: Vec<usize>, draws: usize, seed: u64) -> Self {
        Self {
            indices,
            draws: Some(draws),
            seed,
        }
    }
}

impl Sampler for RandomSampler {
    fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        let mut stream = sampler_stream(self.seed, epoch);
        match self.draws {
            None => {
                let mut order = self.indices.clone();
                stream.shuffle(&mut order);
                order
            }
            Some(_) if self.indices.is_empty() => Vec::new(),
            Some(draws) => {
                let n = self.indices.len() as u64;
                (0..draws)
                    .map(|_| self.indices[stream.below(n) as usize])
                    .collect()
            }
        }
    }

    fn len(&self) -> usize {
        match self.draws {
            None => self.indices.len(),
            Some(_) if self.indices.is_empty() => 0,
            Some(draws) => draws,
        }
    }
}

/// `draws` draws per epoch from given dataset indices, with replacement, each index with
/// probability proportional to its weight.
///
/// Weights are given per dataset sample (`weights[i]` for index `i`); they need not sum to one.
/// Draws use the cumulative weights and a binary search, so a zero weight is never drawn.
///
/// ```
/// use delira::data::{Sampler, WeightedSampler};
///
/// let weights = [0.0, 3.0, 1.0, 5.0];
/// let sampler = WeightedSampler::new(&[0, 1, 2], &weights, 1000, 1).unwrap();
/// let draws = sampler.epoch_indices(0);
/// let ones = draws.iter().filter(|&&i| i == 1).count();
/// assert!(!draws.contains(&0) && !draws.contains(&3));
/// assert!((700..800).contains(&ones)); // 3 / (3 + 1) of 1000
/// assert!(WeightedSampler::new(&[0], &[-1.0], 1, 1).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedSampler {
    indices: Vec<usize>,
    cumulative: Vec<f64>,
    draws: usize,
    seed: u64,
}

impl WeightedSampler {
    /// Draws from `indices` with the weights `weights[index]`.
    pub fn new(
        indices: &[usize],
        weights: &[f64],
        draws: usize,
        seed: u64,
    ) -> Result<Self, SamplerError> {
        if let Some((index, &value)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(SamplerError::BadWeight { index, value });
        }
        if indices.is_empty() {
            return Err(SamplerError::Empty);
        }

        // Zero-weight indices are dropped: they can never be drawn.
        let mut kept = Vec::with_capacity(indices.len());
        let mut cumulative = Vec::with_capacity(indices.len());
        let mut total = 0.0;
        for &index in indices {
            let w = *weights.get(index).ok_or(SamplerError::IndexOutOfRange {
                index,
                what: "weights",
                len: weights.len(),
            })?;
            if w > 0.0 {
                total += w;
                kept.push(index);
                cumulative.push(total);
            }
        }
        if kept.is_empty() {
            return Err(SamplerError::AllZero {
                count: indices.len(),
            });
        }
        if !total.is_finite() {
            return Err(SamplerError::InfiniteTotal {
                count: indices.len(),
            });
        }
        Ok(Self {
            indices: kept,
            cumulative,
            draws,
            seed,
        })
    }
}

impl Sampler for WeightedSampler {
    fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        let mut stream = sampler_stream(self.seed, epoch);
        let total = self.cumulative[self.cumulative.len() - 1];
        let last = self.indices.len() - 1;
        (0..self.draws)
            .map(|_| {
                let u = stream.next_f64() * total;
                // Rounding can make u equal to the total; the last index takes that case.
                let k = self.cumulative.partition_point(|&c| c <= u).min(last);
                self.indices[k]
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.draws
    }
}

/// `draws` draws per epoch from given dataset indices, with replacement, every class equally
/// likely and every index equally likely within its class (weight `1 / count(class)`).
///
/// Labels are given per dataset sample (`labels[i]` for index `i`). Each draw picks a class
/// uniformly, then one of its indices uniformly.
///
/// ```
/// use delira::data::{ClassBalancedSampler, Sampler};
///
/// // Nine samples of class 0, one of class 1.
/// let labels = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// let sampler = ClassBalancedSampler::new(&(0..10).collect::<Vec<_>>(), &labels, 1000, 3).unwrap();
/// let rare = sampler.epoch_indices(0).iter().filter(|&&i| i == 9).count();
/// assert!((450..550).contains(&rare));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassBalancedSampler {
    classes: Vec<Vec<usize>>,
    draws: usize,
    seed: u64,
}

impl ClassBalancedSampler {
    /// Draws from `indices` balanced over the classes `labels[index]`.
    pub fn new<L: Ord>(
        indices: &[usize],
        labels: &[L],
        draws: usize,
        seed: u64,
    ) -> Result<Self, SamplerError> {
        if indices.is_empty() {
            return Err(SamplerError::Empty);
        }
        let mut by_class: std::collections::BTreeMap<&L, Vec<usize>> =
            std::collections::BTreeMap::new();
        for &index in indices {
            let label = labels.get(index).ok_or(SamplerError::IndexOutOfRange {
                index,
                what: "labels",
                len: labels.len(),
            })?;
            by_class.entry(label).or_default().push(index);
        }
        Ok(Self {
            classes: by_class.into_values().collect(),
            draws,
            seed,
        })
    }

    /// The number of classes among the sampled indices.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

impl Sampler for ClassBalancedSampler {
    fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        let mut stream = sampler_stream(self.seed, epoch);
        let c = self.classes.len() as u64;
        (0..self.draws)
            .map(|_| {
                let members = &self.classes[stream.below(c) as usize];
                members[stream.below(members.len() as u64) as usize]
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.draws
    }
}

/// Which sampler orders the indices of an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// The given indices in order.
    Sequential,
    /// A permutation of the given indices per epoch (the default).
    #[default]
    Random,
    /// Uniform draws with replacement.
    RandomWithReplacement,
    /// Draws proportional to per-sample weights.
    Weighted,
    /// Draws with every class equally likely.
    ClassBalanced,
}

impl SamplerKind {
    fn name(self) -> &'static str {
        match self {
            Self::Sequential => "sequential",
            Self::Random => "random",
            Self::RandomWithReplacement => "random_with_replacement",
            Self::Weighted => "weighted",
            Self::ClassBalanced => "class_balanced",
        }
    }
}

/// A declared sampler, for the loader and experiment layers.
///
/// Defaults: a random permutation, seed 0, and as many draws as indices for the samplers that
/// draw with replacement.
///
/// ```
/// use delira::data::{Sampler, SamplerConfig, SamplerKind};
///
/// let config: SamplerConfig = serde_json::from_str(r#"{"kind": "class_balanced", "draws": 6}"#).unwrap();
/// assert_eq!(config, SamplerConfig::builder().kind(SamplerKind::ClassBalanced).draws(6).build());
/// let sampler = config.build(vec![0, 1, 2], None, Some(&["a", "b", "b"])).unwrap();
/// assert_eq!(sampler.len(), 6);
/// assert!(serde_json::from_str::<SamplerConfig>(r#"{"kind": "random", "shuffle": true}"#).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    /// Which sampler (default random).
    #[builder(default)]
    #[serde(default)]
    pub kind: SamplerKind,
    /// The seed of the sampler (default 0).
    #[builder(default)]
    #[serde(default)]
    pub seed: u64,
    /// Draws per epoch for the samplers that draw with replacement (default: the number of
    /// indices); the sequential and random samplers ignore it.
    #[builder(default, setter(strip_option))]
    #[serde(default)]
    pub draws: Option<usize>,
}

impl SamplerConfig {
    /// The configured sampler over `indices` (a fold's training indices, say). `weights` and
    /// `labels` are per dataset sample; only the weighted and class-balanced samplers need them.
    pub fn build<L: Ord>(
        &self,
        indices: Vec<usize>,
        weights: Option<&[f64]>,
        labels: Option<&[L]>,
    ) -> Result<Box<dyn Sampler>, SamplerError> {
        let draws = self.draws.unwrap_or(indices.len());
        let missing = |needed| SamplerError::Missing {
            sampler: self.kind.name(),
            needed,
        };
        Ok(match self.kind {
            SamplerKind::Sequential => Box::new(IndexSampler { indices }),
            SamplerKind::Random => Box::new(RandomSampler::new(indices, self.seed)),
            SamplerKind::RandomWithReplacement => {
                Box::new(RandomSampler::with_replacement(indices, draws, self.seed))
            }
            SamplerKind::Weighted => {
                let weights = weights.ok_or_else(|| missing("weights"))?;
                Box::new(WeightedSampler::new(&indices, weights, draws, self.seed)?)
            }
            SamplerKind::ClassBalanced => {
                let labels = labels.ok_or_else(|| missing("labels"))?;
                Box::new(ClassBalancedSampler::new(
                    &indices, labels, draws, self.seed,
                )?)
            }
        })
    }
}

/// Given indices, in the given order, every epoch.
///
/// ```
/// use delira::data::{IndexSampler, Sampler};
///
/// let sampler = IndexSampler::new(vec![4, 2, 9]);
/// assert_eq!(sampler.epoch_indices(5), [4, 2, 9]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSampler {
    indices: Vec<usize>,
}

impl IndexSampler {
    /// A sampler over `indices`, in that order.
    pub fn new(indices: Vec<usize>) -> Self {
        Self { indices }
    }
}

impl Sampler for IndexSampler {
    fn epoch_indices(&self, _epoch: u64) -> Vec<usize> {
        self.indices.clone()
    }

    fn len(&self) -> usize {
        self.indices.len()
    }
}

//! Samplers: the order in which a loader visits dataset indices, epoch by epoch.
//!
//! A sampler is a pure function of the epoch: it holds no cursor, so a run resumed in epoch `e`
//! asks for `epoch_indices(e)` and gets exactly the order the uninterrupted run used.

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
        Self { sampler, batch_size, drop_last }
    }

    /// The batches of `epoch`, in order.
    pub fn epoch_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        let indices = self.sampler.epoch_indices(epoch);
        let mut batches: Vec<Vec<usize>> =
            indices.chunks(self.batch_size).map(<[usize]>::to_vec).collect();
        if self.drop_last && batches.last().is_some_and(|b| b.len() < self.batch_size) {
            batches.pop();
        }
        batches
    }

    /// The number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.sampler.len();
        if self.drop_last { n / self.batch_size } else { n.div_ceil(self.batch_size) }
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

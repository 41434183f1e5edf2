//! The [`Dataset`] trait.

use std::sync::Arc;

/// Why a dataset could not produce a sample.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The index lies outside the dataset.
    #[error("index {index} is out of range for a dataset of {len} samples")]
    OutOfRange {
        /// The requested index.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// Reading a file failed.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// A dataset inside a wrapper ([`Subset`](super::Subset), [`Concat`](super::Concat)) failed;
    /// `index` is the index in that inner dataset, which differs from the one asked of the wrapper.
    #[error("{wrapper} at inner index {index}: {cause}")]
    Inner {
        /// Which inner dataset: `"subset"`, `"first part of concat"`, ...
        wrapper: &'static str,
        /// The index in the inner dataset.
        index: usize,
        /// The inner dataset's error.
        cause: Box<DataError>,
    },
    /// A [`CachedDataset`](super::CachedDataset) with [`CacheBudget::ErrorAbove`](super::CacheBudget)
    /// cannot keep one more sample.
    #[error(
        "caching sample {index} ({size} bytes) would exceed the cache budget of {budget} bytes \
         ({used} bytes in use); raise the budget or use `CacheBudget::EvictAbove`"
    )]
    CacheFull {
        /// The sample that did not fit.
        index: usize,
        /// Its estimated size in bytes.
        size: usize,
        /// The bytes already cached.
        used: usize,
        /// The budget in bytes.
        budget: usize,
    },
    /// A sample alone is larger than a [`CachedDataset`](super::CachedDataset)'s budget.
    #[error(
        "sample {index} ({size} bytes) is larger than the whole cache budget of {budget} bytes; \
         raise the budget or leave this dataset uncached"
    )]
    SampleTooLarge {
        /// The sample that did not fit.
        index: usize,
        /// Its estimated size in bytes.
        size: usize,
        /// The budget in bytes.
        budget: usize,
    },
    /// Any other failure, described by the code that produced it.
    #[error("{0}")]
    Other(String),
    /// A failure with an underlying cause.
    #[error("{context}")]
    Source {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DataError {
    /// An error from a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::Other(message.into())
    }
}

/// An indexable, fallible collection of samples.
///
/// `get` takes `&self` and the trait requires `Send + Sync`, so one dataset serves all worker
/// threads of a loader at once.
pub trait Dataset: Send + Sync {
    /// The type of one sample.
    type Item;

    /// The number of samples.
    fn len(&self) -> usize;

    /// Whether the dataset holds no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample at `index`, loaded or computed.
    fn get(&self, index: usize) -> Result<Self::Item, DataError>;
}

impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        (**self).len()
    }

    fn get(&self, index: usize) -> Result<Self::Item, DataError> {
        (**self).get(index)
    }
}

impl<D: Dataset + ?Sized> Dataset for &D {
    type Item = D::Item;

    fn len(&self) -> usize {
        (**self).len()
    }

    fn get(&self, index: usize) -> Result<Self::Item, DataError> {
        (**self).get(index)
    }
}

impl<D: Dataset + ?Sized> Dataset for Box<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        (**self).len()
    }

    fn get(&self, index: usize) -> Result<Self::Item, DataError> {
        (**self).get(index)
    }
}

/// A dataset of `len` samples computed by a function of the index.
///
/// ```
/// use delira::data::{Dataset, FnDataset};
///
/// let squares = FnDataset::new(4, |i| Ok(i * i));
/// assert_eq!(squares.get(3).unwrap(), 9);
/// assert!(squares.get(4).is_err());
/// ```
pub struct FnDataset<F> {
    len: usize,
    f: F,
}

impl<F> FnDataset<F> {
    /// A dataset whose sample `i` is `f(i)`, for `i` in `0..len`.
    pub fn new(len: usize, f: F) -> Self {
        Self { len, f }
    }
}

impl<T, F> Dataset for FnDataset<F>
where
    F: Fn(usize) -> Result<T, DataError> + Send + Sync,
{
    type Item = T;

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, index: usize) -> Result<T, DataError> {
        if index >= self.len {
            return Err(DataError::OutOfRange {
                index,
                len: self.len,
            });
        }
        (self.f)(index)
    }
}

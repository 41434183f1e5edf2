//! Small wrappers that compose datasets: lazy loading, subsets, concatenation and mapping.
//!
//! Each wrapper is itself a [`Dataset`], so they nest: `LazyDataset` → `.subset(train)` →
//! `.cached(budget)` → `.map(f)`. None of them loads anything at construction; a sample is
//! loaded when `get` asks for it (except through a [`CachedDataset`](super::CachedDataset), which
//! keeps what it loaded).

use super::cache::{CacheBudget, CachedDataset};
use super::dataset::{DataError, Dataset};

/// A dataset that holds only a list of items (paths, subject records, ...) and loads the sample
/// for an item each time it is asked for it.
///
/// It keeps no loaded data: two calls of `get(i)` load twice. Wrap it with
/// [`DatasetExt::cached`] to load each sample once.
///
/// ```
/// use delira::data::{Dataset, LazyDataset};
///
/// let files = vec!["a.txt".to_owned(), "bb.txt".to_owned()];
/// let lengths = LazyDataset::new(files, |name: &String| Ok(name.len()));
/// assert_eq!(lengths.len(), 2);
/// assert_eq!(lengths.get(1).unwrap(), 6);
/// assert_eq!(lengths.items()[0], "a.txt");
/// ```
pub struct LazyDataset<I, F> {
    items: Vec<I>,
    load: F,
}

impl<I, F> LazyDataset<I, F> {
    /// A dataset whose sample `i` is `load(&items[i])`.
    pub fn new(items: Vec<I>, load: F) -> Self {
        Self { items, load }
    }

    /// The items, in index order.
    pub fn items(&self) -> &[I] {
        &self.items
    }
}

impl<I, T, F> Dataset for LazyDataset<I, F>
where
    I: Send + Sync,
    F: Fn(&I) -> Result<T, DataError> + Send + Sync,
{
    type Item = T;

    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize) -> Result<T, DataError> {
        let item = self.items.get(index).ok_or(DataError::OutOfRange {
            index,
            len: self.items.len(),
        })?;
        (self.load)(item)
    }
}

/// The samples of a dataset at chosen indices, in the order given.
///
/// Index `i` of the subset is index `indices[i]` of the inner dataset. Indices may repeat. A
/// subset loads nothing by itself: a subset of a lazy dataset stays lazy.
///
/// ```
/// use delira::data::{Dataset, DatasetExt, FnDataset};
///
/// let tens = FnDataset::new(5, |i| Ok(10 * i)).subset(vec![4, 0, 2]).unwrap();
/// assert_eq!(tens.len(), 3);
/// assert_eq!(tens.get(0).unwrap(), 40);
/// assert_eq!(tens.indices(), [4, 0, 2]);
/// let err = FnDataset::new(5, |i| Ok(i)).subset(vec![1, 5]).err().unwrap();
/// assert_eq!(err.to_string(), "index 5 is out of range for a dataset of 5 samples");
/// ```
pub struct Subset<D> {
    dataset: D,
    indices: Vec<usize>,
}

impl<D: Dataset> Subset<D> {
    /// The subset of `dataset` at `indices`.
    ///
    /// Fails with [`DataError::OutOfRange`], naming the first offending index and the dataset's
    /// length, when an index is not below `dataset.len()`.
    pub fn new(dataset: D, indices: Vec<usize>) -> Result<Self, DataError> {
        let len = dataset.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(DataError::OutOfRange { index, len });
        }
        Ok(Self { dataset, indices })
    }
}

impl<D> Subset<D> {
    /// The inner dataset's indices, in subset order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The inner dataset.
    pub fn inner(&self) -> &D {
        &self.dataset
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    type Item = D::Item;

    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<D::Item, DataError> {
        let &inner = self.indices.get(index).ok_or(DataError::OutOfRange {
            index,
            len: self.indices.len(),
        })?;
        self.dataset.get(inner).map_err(|cause| DataError::Inner {
            wrapper: "subset",
            index: inner,
            cause: Box::new(cause),
        })
    }
}

/// Two datasets of the same sample type, one after the other.
///
/// Indices `0..first.len()` are the first dataset's; index `first.len() + j` is index `j` of the
/// second. Chain [`DatasetExt::concat`] for more parts.
///
/// ```
/// use delira::data::{Dataset, DatasetExt, FnDataset};
///
/// let both = FnDataset::new(2, |i| Ok(i)).concat(FnDataset::new(3, |i| Ok(100 + i)));
/// assert_eq!(both.len(), 5);
/// let all: Vec<usize> = (0..5).map(|i| both.get(i).unwrap()).collect();
/// assert_eq!(all, [0, 1, 100, 101, 102]);
/// ```
pub struct Concat<A, B> {
    first: A,
    second: B,
}

impl<A, B> Concat<A, B> {
    /// `first` followed by `second`.
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }

    /// The two parts.
    pub fn parts(&self) -> (&A, &B) {
        (&self.first, &self.second)
    }
}

impl<A, B> Dataset for Concat<A, B>
where
    A: Dataset,
    B: Dataset<Item = A::Item>,
{
    type Item = A::Item;

    fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    fn get(&self, index: usize) -> Result<A::Item, DataError> {
        let split = self.first.len();
        let (result, wrapper, inner) = if index < split {
            (self.first.get(index), "first part of concat", index)
        } else if index - split < self.second.len() {
            let inner = index - split;
            (self.second.get(inner), "second part of concat", inner)
        } else {
            return Err(DataError::OutOfRange {
                index,
                len: self.len(),
            });
        };
        result.map_err(|cause| DataError::Inner {
            wrapper,
            index: inner,
            cause: Box::new(cause),
        })
    }
}

/// A dataset whose samples are those of another, passed through a fallible function.
///
/// The function runs on every access (on the loader's worker threads when loaded through a
/// [`Loader`](super::Loader)). It draws no random numbers; random transforms belong to the
/// loader, which gives each sample its own stream.
///
/// ```
/// use delira::data::{DataError, Dataset, DatasetExt, FnDataset};
///
/// let halves = FnDataset::new(4, |i| Ok(i)).map(|i| {
///     if i % 2 == 0 { Ok(i / 2) } else { Err(DataError::msg(format!("{i} is odd"))) }
/// });
/// assert_eq!(halves.get(2).unwrap(), 1);
/// assert_eq!(halves.get(3).unwrap_err().to_string(), "3 is odd");
/// ```
pub struct MapDataset<D, F> {
    dataset: D,
    f: F,
}

impl<D, F> MapDataset<D, F> {
    /// `dataset` with `f` applied to each sample.
    pub fn new(dataset: D, f: F) -> Self {
        Self { dataset, f }
    }

    /// The inner dataset.
    pub fn inner(&self) -> &D {
        &self.dataset
    }
}

impl<D, F, U> Dataset for MapDataset<D, F>
where
    D: Dataset,
    F: Fn(D::Item) -> Result<U, DataError> + Send + Sync,
{
    type Item = U;

    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn get(&self, index: usize) -> Result<U, DataError> {
        (self.f)(self.dataset.get(index)?)
    }
}

/// Wrapper constructors as methods on every [`Dataset`].
///
/// ```
/// use delira::data::{CacheBudget, Dataset, DatasetExt, FnDataset};
///
/// let data = FnDataset::new(10, |i| Ok(vec![i as f32; 4]))
///     .subset(vec![9, 8, 7])
///     .unwrap()
///     .cached(CacheBudget::Unlimited)
///     .map(|v| Ok(v.iter().sum::<f32>()));
/// assert_eq!(data.get(0).unwrap(), 36.0);
/// assert_eq!(data.len(), 3);
/// ```
pub trait DatasetExt: Dataset + Sized {
    /// The samples at `indices`; see [`Subset`].
    fn subset(self, indices: Vec<usize>) -> Result<Subset<Self>, DataError> {
        Subset::new(self, indices)
    }

    /// Each sample loaded once and kept within `budget`; see [`CachedDataset`].
    fn cached(self, budget: CacheBudget) -> CachedDataset<Self>
    where
        Self::Item: Clone + super::ByteSize + Send + Sync,
    {
        CachedDataset::new(self, budget)
    }

    /// Each sample passed through `f`; see [`MapDataset`].
    fn map<F, U>(self, f: F) -> MapDataset<Self, F>
    where
        F: Fn(Self::Item) -> Result<U, DataError> + Send + Sync,
    {
        MapDataset::new(self, f)
    }

    /// This dataset followed by `other`; see [`Concat`].
    fn concat<B: Dataset<Item = Self::Item>>(self, other: B) -> Concat<Self, B> {
        Concat::new(self, other)
    }
}

impl<D: Dataset> DatasetExt for D {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FnDataset;

    #[test]
    fn subset_error_keeps_the_inner_index() {
        let failing = FnDataset::new(6, |i| {
            if i == 4 {
                Err(DataError::msg("unreadable"))
            } else {
                Ok(i)
            }
        });
        let subset = failing.subset(vec![1, 4]).unwrap();
        let err = subset.get(1).unwrap_err();
        assert_eq!(err.to_string(), "subset at inner index 4: unreadable");
        assert!(matches!(err, DataError::Inner { index: 4, .. }));
        assert_eq!(
            subset.get(2).unwrap_err().to_string(),
            "index 2 is out of range for a dataset of 2 samples"
        );
    }

    #[test]
    fn concat_names_the_part_and_rejects_the_end() {
        let a = FnDataset::new(2, Ok);
        let b = FnDataset::new(1, |_| Err::<usize, _>(DataError::msg("broken")));
        let both = a.concat(b);
        assert_eq!(
            both.get(2).unwrap_err().to_string(),
            "second part of concat at inner index 0: broken"
        );
        assert_eq!(
            both.get(3).unwrap_err().to_string(),
            "index 3 is out of range for a dataset of 3 samples"
        );
    }
}

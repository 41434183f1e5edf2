//! A dataset that loads each sample once and keeps it, within an optional memory budget.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use ndarray::{ArrayBase, Dimension, RawData};
use serde::{Deserialize, Serialize};

use super::batch::{Record, Value};
use super::dataset::{DataError, Dataset};
use crate::io::{Affine, LabelMap, Volume};

/// An estimate of the memory a value holds, in bytes: its own inline size plus the heap buffers
/// it owns.
///
/// [`CachedDataset`] uses it to keep a memory budget. The estimate counts array elements, string
/// bytes and vector contents; it ignores allocator overhead and unused capacity of vectors, so it
/// is a lower bound close to the truth for the large arrays that matter. `#[derive(Dataset)]`
/// implements it for sample structs field by field; implement it by hand for other types by
/// summing the fields' sizes.
///
/// ```
/// use delira::data::ByteSize;
/// use ndarray::ArrayD;
///
/// let image = ArrayD::<f32>::zeros(vec![1, 64, 64, 64]);
/// assert!(image.byte_size() >= 4 * 64 * 64 * 64);
/// assert!(image.byte_size() < 4 * 64 * 64 * 64 + 256);
/// assert_eq!(7_u32.byte_size(), 4);
/// ```
pub trait ByteSize {
    /// The estimated size in bytes.
    fn byte_size(&self) -> usize;
}

macro_rules! inline_byte_size {
    ($($t:ty),*) => {
        $(impl ByteSize for $t {
            fn byte_size(&self) -> usize {
                std::mem::size_of::<$t>()
            }
        })*
    };
}

inline_byte_size!(
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    ()
);

impl ByteSize for String {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<String>() + self.len()
    }
}

impl<T: ByteSize> ByteSize for Vec<T> {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Vec<T>>() + self.iter().map(ByteSize::byte_size).sum::<usize>()
    }
}

impl<T: ByteSize> ByteSize for Option<T> {
    fn byte_size(&self) -> usize {
        // The payload's own size counts its inline part, which the option's size contains.
        let payload = self
            .as_ref()
            .map_or(0, |value| value.byte_size() - std::mem::size_of::<T>());
        std::mem::size_of::<Self>() + payload
    }
}

impl<T: ByteSize> ByteSize for Box<T> {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>() + (**self).byte_size()
    }
}

impl<T: ByteSize, const N: usize> ByteSize for [T; N] {
    fn byte_size(&self) -> usize {
        self.iter().map(ByteSize::byte_size).sum()
    }
}

macro_rules! tuple_byte_size {
    ($($name:ident),+) => {
        impl<$($name: ByteSize),+> ByteSize for ($($name,)+) {
            #[allow(non_snake_case)]
            fn byte_size(&self) -> usize {
                let ($($name,)+) = self;
                0 $(+ $name.byte_size())+
            }
        }
    };
}

tuple_byte_size!(A);
tuple_byte_size!(A, B);
tuple_byte_size!(A, B, C);
tuple_byte_size!(A, B, C, E);
tuple_byte_size!(A, B, C, E, F);
tuple_byte_size!(A, B, C, E, F, G);

/// Arrays of plain elements: the elements plus the array header (shape, strides).
impl<S, D> ByteSize for ArrayBase<S, D>
where
    S: RawData,
    S::Elem: Copy,
    D: Dimension,
{
    fn byte_size(&self) -> usize {
        // A dynamic shape keeps its shape and strides on the heap.
        let header = 2 * self.ndim() * std::mem::size_of::<usize>();
        std::mem::size_of::<Self>() + header + self.len() * std::mem::size_of::<S::Elem>()
    }
}

impl ByteSize for Affine {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

impl<T: Copy> ByteSize for Volume<T> {
    fn byte_size(&self) -> usize {
        self.data().byte_size() + std::mem::size_of::<Affine>()
    }
}

impl ByteSize for LabelMap {
    fn byte_size(&self) -> usize {
        self.0.byte_size()
    }
}

impl ByteSize for Value {
    fn byte_size(&self) -> usize {
        match self {
            Self::F32(a) => a.byte_size(),
            Self::I64(a) => a.byte_size(),
            Self::Text(t) => t.byte_size(),
        }
    }
}

impl ByteSize for Record {
    fn byte_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .iter()
                .map(|(name, value)| std::mem::size_of::<String>() + name.len() + value.byte_size())
                .sum::<usize>()
    }
}

/// How much a [`CachedDataset`] may keep, and what it does when a new sample does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheBudget {
    /// Keep every sample.
    Unlimited,
    /// Keep at most this many bytes; a sample that does not fit is an error
    /// ([`DataError::CacheFull`]). Use it when the whole dataset is expected to fit, so that a
    /// mistake in that expectation shows at once.
    ErrorAbove(usize),
    /// Keep at most this many bytes; to make room, drop the least recently used samples, which
    /// are loaded again on their next access.
    EvictAbove(usize),
}

/// Counters of a [`CachedDataset`], for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls of the inner dataset's `get`.
    pub loads: u64,
    /// Accesses answered from the cache.
    pub hits: u64,
    /// Samples dropped to make room.
    pub evictions: u64,
    /// Samples held now.
    pub entries: usize,
    /// Estimated bytes held now.
    pub bytes: usize,
}

/// A dataset that loads each sample from the inner dataset on its first access and answers later
/// accesses from memory.
///
/// Safe to share between threads: when several threads ask for the same sample at once, one
/// loads it and the others wait for it, so a sample is never loaded twice at the same time. A
/// failed load is not cached; the next access tries again. Sizes come from [`ByteSize`]; the
/// budget counts the samples kept, not those being loaded or already handed to callers.
///
/// `get` returns a clone of the kept sample, so the wrapped type should be cheap to clone relative
/// to loading it (arrays are copied in memory, which is far faster than decoding a file).
///
/// ```
/// use delira::data::{CacheBudget, Dataset, DatasetExt, FnDataset};
///
/// // Samples of 1 000 f32 each (about 4 kB); room for two of them.
/// let data = FnDataset::new(3, |i| Ok(vec![i as f32; 1000])).cached(CacheBudget::EvictAbove(9000));
/// data.get(0).unwrap();
/// data.get(1).unwrap();
/// data.get(0).unwrap(); // a hit; sample 1 is now the least recently used
/// data.get(2).unwrap(); // evicts sample 1
/// let stats = data.stats();
/// assert_eq!((stats.loads, stats.hits, stats.evictions, stats.entries), (3, 1, 1, 2));
/// ```
pub struct CachedDataset<D: Dataset> {
    dataset: D,
    budget: CacheBudget,
    state: Mutex<CacheState<D::Item>>,
    /// Signalled whenever a load finishes, successfully or not.
    loaded: Condvar,
}

struct CacheState<T> {
    slots: Vec<Slot<T>>,
    /// Least recently used first: access tick → index.
    recency: BTreeMap<u64, usize>,
    tick: u64,
    stats: CacheStats,
}

enum Slot<T> {
    Empty,
    Loading,
    Ready {
        item: Arc<T>,
        size: usize,
        tick: u64,
    },
}

impl<D> CachedDataset<D>
where
    D: Dataset,
    D::Item: Clone + ByteSize + Send + Sync,
{
    /// `dataset` with each sample kept after its first load, within `budget`.
    pub fn new(dataset: D, budget: CacheBudget) -> Self {
        let slots = (0..dataset.len()).map(|_| Slot::Empty).collect();
        Self {
            dataset,
            budget,
            state: Mutex::new(CacheState {
                slots,
                recency: BTreeMap::new(),
                tick: 0,
                stats: CacheStats::default(),
            }),
            loaded: Condvar::new(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// The budget.
    pub fn budget(&self) -> CacheBudget {
        self.budget
    }

    /// The inner dataset.
    pub fn inner(&self) -> &D {
        &self.dataset
    }

    /// The state stays consistent even if a thread panicked while holding the lock: no user code
    /// runs under it.
    fn lock(&self) -> MutexGuard<'_, CacheState<D::Item>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `index` is ready (returns it) or empty (claims it for loading, returns `None`).
    fn claim_or_take(&self, index: usize) -> Option<Arc<D::Item>> {
        let mut state = self.lock();
        loop {
            match state.slots[index] {
                Slot::Ready { ref item, tick, .. } => {
                    let item = Arc::clone(item);
                    state.tick += 1;
                    let now = state.tick;
                    state.recency.remove(&tick);
                    state.recency.insert(now, index);
                    if let Slot::Ready { tick, .. } = &mut state.slots[index] {
                        *tick = now;
                    }
                    state.stats.hits += 1;
                    return Some(item);
                }
                Slot::Loading => {
                    state = self
                        .loaded
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Slot::Empty => {
                    state.slots[index] = Slot::Loading;
                    state.stats.loads += 1;
                    return None;
                }
            }
        }
    }

    /// Stores a freshly loaded sample, making room or failing as the budget says.
    fn store(&self, index: usize, item: Arc<D::Item>) -> Result<(), DataError> {
        let size = item.byte_size();
        let mut state = self.lock();
        let limit = match self.budget {
            CacheBudget::Unlimited => usize::MAX,
            CacheBudget::ErrorAbove(budget) | CacheBudget::EvictAbove(budget) => budget,
        };
        if size > limit {
            return Err(DataError::SampleTooLarge {
                index,
                size,
                budget: limit,
            });
        }
        if let CacheBudget::ErrorAbove(budget) = self.budget
            && state.stats.bytes + size > budget
        {
            return Err(DataError::CacheFull {
                index,
                size,
                used: state.stats.bytes,
                budget,
            });
        }
        while state.stats.bytes + size > limit {
            let Some((_, victim)) = state.recency.pop_first() else {
                break;
            };
            if let Slot::Ready { size, .. } =
                std::mem::replace(&mut state.slots[victim], Slot::Empty)
            {
                state.stats.bytes -= size;
                state.stats.entries -= 1;
                state.stats.evictions += 1;
            }
        }

        state.tick += 1;
        let tick = state.tick;
        state.recency.insert(tick, index);
        state.slots[index] = Slot::Ready { item, size, tick };
        state.stats.bytes += size;
        state.stats.entries += 1;
        Ok(())
    }
}

/// Puts a claimed slot back to empty unless the load completed, so that a failed or panicking
/// load never leaves other threads waiting for ever.
struct Claim<'a, D: Dataset>
where
    D::Item: Clone + ByteSize + Send + Sync,
{
    cache: &'a CachedDataset<D>,
    index: usize,
}

impl<D: Dataset> Drop for Claim<'_, D>
where
    D::Item: Clone + ByteSize + Send + Sync,
{
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        if matches!(state.slots[self.index], Slot::Loading) {
            state.slots[self.index] = Slot::Empty;
        }
        drop(state);
        self.cache.loaded.notify_all();
    }
}

impl<D> Dataset for CachedDataset<D>
where
    D: Dataset,
    D::Item: Clone + ByteSize + Send + Sync,
{
    type Item = D::Item;

    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn get(&self, index: usize) -> Result<D::Item, DataError> {
        let len = self.dataset.len();
        if index >= len {
            return Err(DataError::OutOfRange { index, len });
        }
        if let Some(item) = self.claim_or_take(index) {
            return Ok((*item).clone());
        }

        let claim = Claim { cache: self, index };
        let item = Arc::new(self.dataset.get(index)?);
        let stored = self.store(index, Arc::clone(&item));
        drop(claim);
        stored?;
        // One copy stays in the cache, one goes to the caller.
        Ok((*item).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DatasetExt, FnDataset};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn sizes_of_samples() {
        let volume = Volume::new(
            ndarray::ArrayD::<f32>::zeros(vec![1, 4, 4, 4]),
            Affine::IDENTITY,
        );
        let array_bytes = volume.data().byte_size();
        assert!(array_bytes >= 64 * 4);
        assert_eq!(volume.byte_size(), array_bytes + 128);
        assert_eq!("abc".to_owned().byte_size(), 24 + 3);
        assert_eq!((1_u8, 2_u64).byte_size(), 9);
        assert_eq!(vec![1_u16, 2, 3].byte_size(), 24 + 6);
        assert_eq!(Some("ab".to_owned()).byte_size(), 24 + 2);
        assert_eq!(Some(1_u32).byte_size(), 8);
        assert_eq!(None::<u32>.byte_size(), 8);
        let record = Record::new().with("id", "s1");
        assert_eq!(
            record.byte_size(),
            std::mem::size_of::<Record>() + 24 + 2 + 24 + 2
        );
    }

    #[test]
    fn concurrent_first_accesses_load_once() {
        let loads = AtomicUsize::new(0);
        let data = FnDataset::new(4, |i| {
            loads.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(vec![i as u32; 8])
        })
        .cached(CacheBudget::Unlimited);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for i in 0..4 {
                        assert_eq!(data.get(i).unwrap(), vec![i as u32; 8]);
                    }
                });
            }
        });
        assert_eq!(loads.load(Ordering::SeqCst), 4);
        let stats = data.stats();
        assert_eq!((stats.loads, stats.hits), (4, 28));
    }

    #[test]
    fn a_panicking_load_releases_its_claim() {
        let calls = AtomicUsize::new(0);
        let data = FnDataset::new(1, |_| {
            assert!(calls.fetch_add(1, Ordering::SeqCst) > 0, "first load fails");
            Ok(5_u32)
        })
        .cached(CacheBudget::Unlimited);
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| data.get(0)));
        assert!(first.is_err());
        assert_eq!(data.get(0).unwrap(), 5);
        assert_eq!(data.stats().loads, 2);
    }
}

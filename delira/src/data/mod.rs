//! Datasets, splits, samplers, and the threaded loader.
//!
//! The data flow runs one way: a [`Dataset`] produces samples; a split chooses which indices
//! belong to training, validation and test; a sampler orders them; the [`Loader`] loads and
//! transforms them on worker threads and collates them into [`Batch`]es of named arrays.

mod batch;
mod cache;
mod dataset;
mod loader;
mod sampler;
pub mod split;
mod wrappers;

pub use batch::{Batch, BatchField, CollateError, Record, Sample, Value};
pub use cache::{ByteSize, CacheBudget, CacheStats, CachedDataset};
pub use dataset::{DataError, Dataset, FnDataset};
pub use loader::{Epoch, EpochStats, Loader, LoaderConfig, LoaderError};
pub use sampler::{
    BatchSampler, ClassBalancedSampler, IndexSampler, RandomSampler, Sampler, SamplerConfig,
    SamplerError, SamplerKind, SequentialSampler, WeightedSampler,
};
pub use wrappers::{Concat, DatasetExt, LazyDataset, MapDataset, Subset};

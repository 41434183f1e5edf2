//! Datasets, splits, samplers, and the threaded loader.
//!
//! The data flow runs one way: a [`Dataset`] produces samples; a split chooses which indices
//! belong to training, validation and test; a sampler orders them; the [`Loader`] loads and
//! transforms them on worker threads and collates them into [`Batch`]es of named arrays.

mod batch;
mod dataset;
mod sampler;
pub mod split;

pub use batch::{Batch, BatchField, CollateError, Record, Sample, Value};
pub use dataset::{DataError, Dataset, FnDataset};
pub use sampler::{
    BatchSampler, ClassBalancedSampler, IndexSampler, RandomSampler, Sampler, SamplerConfig,
    SamplerError, SamplerKind, SequentialSampler, WeightedSampler,
};

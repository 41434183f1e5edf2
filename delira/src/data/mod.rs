//! Datasets, splits, samplers, and the threaded loader.
//!
//! The data flow runs one way: a [`Dataset`] produces samples; a split chooses which indices
//! belong to training, validation and test; a sampler orders them; the [`Loader`] loads and
//! transforms them on worker threads and collates them into [`Batch`]es of named arrays.

mod batch;
mod cache;
mod dataset;
mod fields;
mod loader;
mod patches;
mod sampler;
pub mod split;
pub(crate) mod subjects;
mod wrappers;

pub use batch::{Batch, BatchField, CollateError, Record, Sample, Value};
pub use cache::{ByteSize, CacheBudget, CacheStats, CachedDataset};
pub use dataset::{DataError, Dataset, FnDataset};
pub use fields::{
    CastField, ChannelAxis, ChannelField, ClassField, Dtype, FieldError, FieldInfo, FieldKind,
    GroupField, ImageField, Normalize, NormalizeField, Role, SampleField, Source, SubjectIdField,
    WeightField,
};
pub use loader::{Epoch, EpochStats, Loader, LoaderConfig, LoaderError};
pub use patches::{PatchConfig, PatchDataset, PatchError, PatchSlots, PatchSource, PatchWindow};
pub use sampler::{
    BatchSampler, ClassBalancedSampler, IndexSampler, RandomSampler, Sampler, SamplerConfig,
    SamplerError, SamplerKind, SequentialSampler, WeightedSampler,
};
pub use subjects::{
    DeclaredSample, SUBJECT_COLUMN, SUBJECT_TABLE, SubjectDataset, SubjectEntry, SubjectError,
};
pub use wrappers::{Concat, DatasetExt, LazyDataset, MapDataset, Subset};

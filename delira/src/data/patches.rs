//! Random patches of whole volumes, with foreground oversampling (see [`PatchDataset`]).

use std::ops::Range;
use std::sync::Arc;

use ndarray::{ArrayD, Dimension, Slice, arr0};
use serde::{Deserialize, Serialize};
use typed_builder::TypedBuilder;

use super::batch::{Record, Value};
use super::dataset::{DataError, Dataset};
use super::loader::{Loader, LoaderConfig, LoaderError};
use super::sampler::Sampler;
use crate::random::{Stream, StreamKey};

/// Why a patch source or dataset cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The image is not `[C, spatial...]` over the label map's grid.
    #[error(
        "the image has shape {image:?} but the label map has {labels:?}; the image must be \
         `[C, spatial...]` over the label map's spatial shape"
    )]
    Shape {
        /// The image's shape.
        image: Vec<usize>,
        /// The label map's shape.
        labels: Vec<usize>,
    },
    /// The region has the wrong number of axes or reaches outside the volume.
    #[error("the region {region:?} does not fit a volume of spatial shape {shape:?}")]
    Region {
        /// The region, one range per spatial axis.
        region: Vec<Range<usize>>,
        /// The volume's spatial shape.
        shape: Vec<usize>,
    },
    /// A patch does not fit a source's region.
    #[error(
        "source {source_index}: a patch of size {size:?} does not fit its region {region:?}; use \
         smaller patches or a larger region"
    )]
    TooSmall {
        /// The source's position in the list.
        source_index: usize,
        /// The patch size.
        size: Vec<usize>,
        /// The source's region.
        region: Vec<Range<usize>>,
    },
    /// A setting cannot work.
    #[error("invalid patch setting: {0}")]
    Config(String),
}

/// How patches are cut.
///
/// ```
/// use delira::data::PatchConfig;
///
/// let parsed: PatchConfig = serde_json::from_str(r#"{"size": [32, 32, 32], "foreground_p": 0.33}"#).unwrap();
/// assert_eq!(parsed, PatchConfig::builder().size(vec![32, 32, 32]).foreground_p(0.33).build());
/// assert_eq!((parsed.background, parsed.image.as_str(), parsed.label.as_str()), (0, "image", "label"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct PatchConfig {
    /// The patch size per spatial axis.
    pub size: Vec<usize>,
    /// The probability that a patch is centred on a foreground voxel (nnU-Net uses 0.33).
    #[builder(default)]
    #[serde(default)]
    pub foreground_p: f64,
    /// The label that is not foreground.
    #[builder(default)]
    #[serde(default)]
    pub background: i64,
    /// The seed of the fixed patches that [`Dataset::get`] returns (loaders use their own seed).
    #[builder(default)]
    #[serde(default)]
    pub seed: u64,
    /// The name of the image field of a patch record.
    #[builder(default = default_image(), setter(into))]
    #[serde(default = "default_image")]
    pub image: String,
    /// The name of the label field of a patch record.
    #[builder(default = default_label(), setter(into))]
    #[serde(default = "default_label")]
    pub label: String,
}

fn default_image() -> String {
    "image".to_owned()
}

fn default_label() -> String {
    "label".to_owned()
}

/// A volume to cut patches from, restricted to a box.
#[derive(Clone, Debug)]
pub struct PatchSource {
    image: Arc<ArrayD<f32>>,
    labels: Arc<ArrayD<i64>>,
    region: Vec<Range<usize>>,
    /// Flat indices (row-major over the label map) of the foreground voxels inside the region.
    foreground: Vec<usize>,
    background: Option<i64>,
}

impl PatchSource {
    /// A source over the whole volume: `image` is `[C, spatial...]`, `labels` is `[spatial...]`.
    pub fn new(image: Arc<ArrayD<f32>>, labels: Arc<ArrayD<i64>>) -> Result<Self, PatchError> {
        if image.ndim() != labels.ndim() + 1 || image.shape()[1..] != *labels.shape() {
            return Err(PatchError::Shape {
                image: image.shape().to_vec(),
                labels: labels.shape().to_vec(),
            });
        }
        let region = labels.shape().iter().map(|&n| 0..n).collect();
        Ok(Self {
            image,
            labels,
            region,
            foreground: Vec::new(),
            background: None,
        })
    }

    /// The same source with every window inside `region` (one range per spatial axis).
    pub fn within(mut self, region: Vec<Range<usize>>) -> Result<Self, PatchError> {
        let shape = self.labels.shape();
        let fits = region.len() == shape.len()
            && region
                .iter()
                .zip(shape)
                .all(|(r, &n)| r.start < r.end && r.end <= n);
        if !fits {
            return Err(PatchError::Region {
                region,
                shape: shape.to_vec(),
            });
        }
        self.region = region;
        self.background = None;
        Ok(self)
    }

    /// The box every window lies in.
    pub fn region(&self) -> &[Range<usize>] {
        &self.region
    }

    /// The number of foreground voxels inside the region (known once the source is part of a
    /// [`PatchDataset`], which fixes the background label; 0 before).
    pub fn foreground_voxels(&self) -> usize {
        self.foreground.len()
    }

    /// Lists the foreground voxels inside the region.
    fn index_foreground(&mut self, background: i64) {
        if self.background == Some(background) {
            return;
        }
        let shape = self.labels.shape().to_vec();
        let region = &self.region;
        self.foreground = self
            .labels
            .indexed_iter()
            .filter(|(index, label)| {
                **label != background
                    && index.slice().iter().zip(region).all(|(i, r)| r.contains(i))
            })
            .map(|(index, _)| flat_index(index.slice(), &shape))
            .collect();
        self.background = Some(background);
    }
}

fn flat_index(index: &[usize], shape: &[usize]) -> usize {
    index
        .iter()
        .zip(shape)
        .fold(0, |flat, (&i, &n)| flat * n + i)
}

fn unflatten(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &n) in index.iter_mut().zip(shape).rev() {
        *i = flat % n;
        flat /= n;
    }
    index
}

/// Where a patch was cut: the source and the window's first voxel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchWindow {
    /// The source's position in the dataset's list.
    pub source: usize,
    /// The first voxel of the window, per spatial axis.
    pub start: Vec<usize>,
    /// Whether the window was centred on a foreground voxel.
    pub foreground: bool,
}

/// Patch slots over a list of sources, each drawing a random patch.
///
/// Whole 3D volumes rarely fit a network's batch; training cuts fixed-size windows out of them.
/// Uniform windows mostly show background when the structures of interest are small, so a patch is
/// centred on a foreground voxel with probability `foreground_p` (nnU-Net's "oversampling") and
/// placed uniformly otherwise.
///
/// A [`PatchSource`] is one volume — an image `[C, spatial...]` and its label map `[spatial...]`,
/// shared through `Arc` so that several sources can cut from one volume — restricted to a box
/// (a [`region`](PatchSource::within)) that every window must lie in: a spatial block of a
/// cross-validation fold, say, so that no training patch sees a voxel of the held-out block.
/// A [`PatchDataset`] holds the sources and a number of patch *slots* per epoch; slot `i` cuts
/// from source `i % sources`.
///
/// # Randomness
///
/// A window is drawn from a [`Stream`] and from nothing else. [`PatchDataset::loader`] draws the
/// window of slot `i` in epoch `e` from the loader's transform stream of that sample (seed, `e`,
/// `i`), so every epoch sees new patches, identical for any number of workers and after a resume.
/// As a plain [`Dataset`], `get(i)` returns the patch of the stream
/// `StreamKey::new(seed).sample(i).purpose("patch")`: the same patch every time (a fixed
/// validation set of patches, for example).
///
/// ```
/// use std::sync::Arc;
/// use delira::data::{Dataset, PatchConfig, PatchDataset, PatchSource, SequentialSampler, LoaderConfig};
/// use ndarray::{ArrayD, IxDyn};
///
/// // A 1-channel 20 × 20 × 20 volume whose only foreground voxel is (15, 4, 9).
/// let image = Arc::new(ArrayD::<f32>::zeros(IxDyn(&[1, 20, 20, 20])));
/// let mut labels = ArrayD::<i64>::zeros(IxDyn(&[20, 20, 20]));
/// labels[[15, 4, 9]] = 2;
/// let source = PatchSource::new(image, Arc::new(labels))?;
///
/// // 8³ patches, always centred on foreground where possible.
/// let config = PatchConfig::builder().size(vec![8, 8, 8]).foreground_p(1.0).build();
/// let patches = PatchDataset::new(vec![source], config, 6)?;
/// let loader = patches.loader(SequentialSampler::new(6), LoaderConfig::builder().batch_size(3).build(), |r, _| Ok(r))?;
/// for batch in loader.epoch(0) {
///     let label = batch?.i64("label").unwrap().to_owned();
///     assert_eq!(label.shape(), [3, 8, 8, 8]);
///     // every patch holds the foreground voxel
///     for patch in label.outer_iter() {
///         assert_eq!(patch.iter().filter(|&&l| l == 2).count(), 1);
///     }
/// }
/// // The window is centred on the voxel: start 15 - 4 = 11, then clamped to fit the volume.
/// let window = patches.window(0, &mut delira::random::StreamKey::new(1).stream());
/// assert_eq!(window.start, [11, 0, 5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct PatchDataset {
    sources: Arc<[PatchSource]>,
    config: PatchConfig,
    len: usize,
}

impl PatchDataset {
    /// `len` patch slots per epoch over `sources`.
    ///
    /// Fails when there is no source, `len` is 0, `foreground_p` is not in `[0, 1]`, the patch
    /// size has the wrong number of axes or a zero, or a patch does not fit a source's region.
    pub fn new(
        mut sources: Vec<PatchSource>,
        config: PatchConfig,
        len: usize,
    ) -> Result<Self, PatchError> {
        if sources.is_empty() || len == 0 {
            return Err(PatchError::Config(format!(
                "{} sources and {len} patches per epoch; give at least one of each",
                sources.len()
            )));
        }
        if !(0.0..=1.0).contains(&config.foreground_p) {
            return Err(PatchError::Config(format!(
                "`foreground_p` is {}; use a probability in [0, 1]",
                config.foreground_p
            )));
        }
        for (index, source) in sources.iter_mut().enumerate() {
            let fits = config.size.len() == source.region.len()
                && config
                    .size
                    .iter()
                    .zip(&source.region)
                    .all(|(&s, r)| s > 0 && s <= r.len());
            if !fits {
                return Err(PatchError::TooSmall {
                    source_index: index,
                    size: config.size.clone(),
                    region: source.region.clone(),
                });
            }
            source.index_foreground(config.background);
        }
        Ok(Self {
            sources: sources.into(),
            config,
            len,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PatchConfig {
        &self.config
    }

    /// The sources.
    pub fn sources(&self) -> &[PatchSource] {
        &self.sources
    }

    /// The window of slot `index`, drawn from `stream`: centred on a uniformly chosen foreground
    /// voxel of the region with probability `foreground_p` (then moved, as little as possible, to
    /// lie inside the region), otherwise uniform over all windows inside the region. A region
    /// without foreground always gives a uniform window.
    pub fn window(&self, index: usize, stream: &mut Stream) -> PatchWindow {
        let source_index = index % self.sources.len();
        let source = &self.sources[source_index];
        let size = &self.config.size;
        let on_foreground = stream.bernoulli(self.config.foreground_p);

        if on_foreground && !source.foreground.is_empty() {
            let pick = stream.below(source.foreground.len() as u64) as usize;
            let centre = unflatten(source.foreground[pick], source.labels.shape());
            let start = centre
                .iter()
                .zip(size)
                .zip(&source.region)
                .map(|((&c, &s), r)| c.saturating_sub(s / 2).clamp(r.start, r.end - s))
                .collect();
            return PatchWindow {
                source: source_index,
                start,
                foreground: true,
            };
        }
        let start = size
            .iter()
            .zip(&source.region)
            .map(|(&s, r)| r.start + stream.below((r.len() - s + 1) as u64) as usize)
            .collect();
        PatchWindow {
            source: source_index,
            start,
            foreground: false,
        }
    }

    /// The patch of `window` as a record: the image `[C, size...]` and the labels `[size...]`
    /// under the configured names.
    pub fn cut(&self, window: &PatchWindow) -> Result<Record, DataError> {
        let source = self
            .sources
            .get(window.source)
            .ok_or(DataError::OutOfRange {
                index: window.source,
                len: self.sources.len(),
            })?;
        let size = &self.config.size;
        let fits = window.start.len() == size.len()
            && window
                .start
                .iter()
                .zip(size)
                .zip(source.labels.shape())
                .all(|((&a, &s), &n)| a + s <= n);
        if !fits {
            return Err(DataError::msg(format!(
                "a patch of size {size:?} at {:?} does not fit source {} of spatial shape {:?}",
                window.start,
                window.source,
                source.labels.shape()
            )));
        }
        let range = |axis: usize| {
            let a = window.start[axis];
            Slice::from(a..a + size[axis])
        };
        let image = source
            .image
            .slice_each_axis(|ax| match ax.axis.index() {
                0 => Slice::from(..),
                axis => range(axis - 1),
            })
            .to_owned();
        let labels = source
            .labels
            .slice_each_axis(|ax| range(ax.axis.index()))
            .to_owned();
        Ok(Record::new()
            .with(self.config.image.clone(), image)
            .with(self.config.label.clone(), labels))
    }

    /// The patch of slot `index` drawn from `stream`.
    pub fn draw(&self, index: usize, stream: &mut Stream) -> Result<Record, DataError> {
        self.cut(&self.window(index, stream))
    }

    /// A loader of fresh patches every epoch: the window of slot `i` in epoch `e` comes from the
    /// loader's transform stream of that sample (the loader's seed, `e`, `i`); `augment` then
    /// transforms the patch with a stream derived from the same one (`|record, _| Ok(record)`
    /// for none). The sampler chooses slots in `0..len`.
    pub fn loader<S, F>(
        &self,
        sampler: S,
        config: LoaderConfig,
        augment: F,
    ) -> Result<Loader<PatchSlots, S>, LoaderError>
    where
        S: Sampler,
        F: Fn(Record, &mut Stream) -> Result<Record, DataError> + Send + Sync + 'static,
    {
        if let Some(bad) = sampler
            .epoch_indices(0)
            .into_iter()
            .find(|&i| i >= self.len)
        {
            return Err(LoaderError::Config(format!(
                "the sampler yields slot {bad} but the patch dataset has {} slots; sample from \
                 `0..{}`",
                self.len, self.len
            )));
        }
        let patches = self.clone();
        let slots = PatchSlots { len: self.len };
        Ok(
            Loader::new(slots, sampler, config)?.with_transform(move |slot, stream| {
                let index = slot_index(&slot)?;
                let mut window_stream = Stream::from_seed(stream.next_u64());
                let record = patches.draw(index, &mut window_stream)?;
                augment(record, stream)
            }),
        )
    }
}

impl Dataset for PatchDataset {
    type Item = Record;

    fn len(&self) -> usize {
        self.len
    }

    /// The fixed patch of slot `index` (see [`PatchDataset`]).
    fn get(&self, index: usize) -> Result<Record, DataError> {
        if index >= self.len {
            return Err(DataError::OutOfRange {
                index,
                len: self.len,
            });
        }
        let key = StreamKey::new(self.config.seed)
            .sample(index as u64)
            .purpose("patch");
        self.draw(index, &mut key.stream())
    }
}

/// The field of a slot record that holds the slot's index.
const SLOT: &str = "patch_slot";

/// The patch slots of a [`PatchDataset`] as its [`loader`](PatchDataset::loader) sees them: each
/// item is a record holding only the slot's index, which the loader's transform replaces by the
/// patch drawn for the epoch.
#[derive(Clone, Copy, Debug)]
pub struct PatchSlots {
    len: usize,
}

impl Dataset for PatchSlots {
    type Item = Record;

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, index: usize) -> Result<Record, DataError> {
        if index >= self.len {
            return Err(DataError::OutOfRange {
                index,
                len: self.len,
            });
        }
        Ok(Record::new().with(SLOT, arr0(index as i64).into_dyn()))
    }
}

fn slot_index(record: &Record) -> Result<usize, DataError> {
    match record.get(SLOT) {
        Some(Value::I64(a)) if a.ndim() == 0 => a
            .first()
            .map(|&i| i as usize)
            .ok_or_else(|| DataError::msg("an empty patch slot")),
        _ => Err(DataError::msg(format!(
            "a patch slot record has no scalar `{SLOT}` field"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use ndarray::IxDyn;

    use super::*;

    fn volume(shape: &[usize], foreground: &[&[usize]]) -> PatchSource {
        let mut labels = ArrayD::<i64>::zeros(IxDyn(shape));
        for &voxel in foreground {
            labels[IxDyn(voxel)] = 1;
        }
        let mut image_shape = vec![2];
        image_shape.extend_from_slice(shape);
        // Channel c holds 1000 c + the flat index, so a cut shows where it came from.
        let image = ArrayD::from_shape_fn(IxDyn(&image_shape), |i| {
            let flat = flat_index(&i.slice()[1..], shape);
            (1000 * i[0] + flat) as f32
        });
        PatchSource::new(Arc::new(image), Arc::new(labels)).unwrap()
    }

    fn config(size: &[usize], p: f64) -> PatchConfig {
        PatchConfig::builder()
            .size(size.to_vec())
            .foreground_p(p)
            .build()
    }

    #[test]
    fn cut_copies_the_window_of_image_and_labels() {
        let patches =
            PatchDataset::new(vec![volume(&[6, 5], &[&[3, 2]])], config(&[2, 3], 0.0), 1).unwrap();
        let window = PatchWindow {
            source: 0,
            start: vec![3, 1],
            foreground: false,
        };
        let record = patches.cut(&window).unwrap();
        let Some(Value::F32(image)) = record.get("image") else {
            panic!("no image")
        };
        assert_eq!(image.shape(), [2, 2, 3]);
        // (3, 1) is flat 16; channel 1 adds 1000.
        assert_eq!(image[[0, 0, 0]], 16.0);
        assert_eq!(image[[1, 1, 2]], 1000.0 + 23.0);
        let Some(Value::I64(labels)) = record.get("label") else {
            panic!("no labels")
        };
        assert_eq!(labels.shape(), [2, 3]);
        assert_eq!(labels.sum(), 1);
        assert_eq!(labels[[0, 1]], 1);
    }

    #[test]
    fn windows_stay_inside_the_region() {
        let source = volume(&[30, 30, 30], &[&[1, 1, 1], &[28, 28, 28], &[12, 20, 7]])
            .within(vec![0..30, 10..30, 5..17])
            .unwrap();
        let patches = PatchDataset::new(vec![source], config(&[8, 8, 8], 0.5), 1).unwrap();
        // Only the third voxel lies inside the region.
        assert_eq!(patches.sources()[0].foreground_voxels(), 1);
        let mut stream = StreamKey::new(3).stream();
        for _ in 0..500 {
            let w = patches.window(0, &mut stream);
            assert!(w.start[0] + 8 <= 30);
            assert!((10..=22).contains(&w.start[1]));
            assert!((5..=9).contains(&w.start[2]));
            if w.foreground {
                // centred on (12, 20, 7), clamped into the region along z
                assert_eq!(w.start, [8, 16, 5]);
            }
        }
    }

    #[test]
    fn foreground_rate_follows_p() {
        // One foreground voxel in the middle of 40 voxels; 4-voxel windows: 4 of the 37 uniform
        // windows hold it.
        let source = volume(&[40], &[&[20]]);
        let patches = PatchDataset::new(vec![source], config(&[4], 0.3), 1).unwrap();
        let draws = 20_000;
        let mut stream = StreamKey::new(11).stream();
        let mut hits = 0;
        let mut centred = 0;
        for _ in 0..draws {
            let w = patches.window(0, &mut stream);
            centred += usize::from(w.foreground);
            hits += usize::from((w.start[0]..w.start[0] + 4).contains(&20));
        }
        let expected = 0.3 + 0.7 * 4.0 / 37.0;
        let rate = hits as f64 / f64::from(draws);
        // binomial standard deviation is about 0.0035
        assert!((rate - expected).abs() < 0.015, "{rate} vs {expected}");
        let centred = centred as f64 / f64::from(draws);
        assert!((centred - 0.3).abs() < 0.015, "{centred}");
    }

    #[test]
    fn no_foreground_means_uniform() {
        let patches = PatchDataset::new(vec![volume(&[5], &[])], config(&[3], 1.0), 1).unwrap();
        let mut counts = [0_u32; 3];
        let mut stream = StreamKey::new(5).stream();
        for _ in 0..3000 {
            let w = patches.window(0, &mut stream);
            assert!(!w.foreground);
            counts[w.start[0]] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn slots_cycle_through_sources_and_get_is_fixed() {
        let sources = vec![volume(&[10], &[&[2]]), volume(&[12], &[&[9]])];
        let patches = PatchDataset::new(sources, config(&[4], 0.5), 5).unwrap();
        let mut stream = StreamKey::new(1).stream();
        let sources: Vec<usize> = (0..5)
            .map(|i| patches.window(i, &mut stream).source)
            .collect();
        assert_eq!(sources, [0, 1, 0, 1, 0]);
        assert_eq!(patches.get(3).unwrap(), patches.get(3).unwrap());
        assert!(matches!(
            patches.get(5),
            Err(DataError::OutOfRange { index: 5, len: 5 })
        ));
    }

    #[test]
    fn bad_settings_are_errors() {
        let image = Arc::new(ArrayD::<f32>::zeros(IxDyn(&[1, 4, 4])));
        let labels = Arc::new(ArrayD::<i64>::zeros(IxDyn(&[4, 5])));
        let err = PatchSource::new(image, labels).unwrap_err();
        assert!(err.to_string().contains("[1, 4, 4]"), "{err}");

        let err = volume(&[4, 4], &[]).within(vec![0..4, 2..5]).unwrap_err();
        assert!(matches!(err, PatchError::Region { .. }), "{err}");

        let small = volume(&[10, 10], &[]).within(vec![0..10, 0..3]).unwrap();
        let err = PatchDataset::new(vec![small], config(&[4, 4], 0.0), 1).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("source 0: a patch of size [4, 4]"),
            "{err}"
        );

        let err = PatchDataset::new(vec![volume(&[8], &[])], config(&[4], 1.5), 1).unwrap_err();
        assert!(err.to_string().contains("`foreground_p` is 1.5"), "{err}");
    }

    #[test]
    fn loader_patches_do_not_depend_on_workers() {
        let sources = vec![volume(&[16, 16, 16], &[&[3, 4, 5], &[10, 12, 2]])];
        let patches = PatchDataset::new(sources, config(&[6, 6, 6], 0.5), 10).unwrap();
        let epoch = |workers: usize, epoch: u64| {
            let config = LoaderConfig::builder()
                .batch_size(3)
                .workers(workers)
                .seed(9)
                .build();
            let loader = patches
                .loader(
                    super::super::SequentialSampler::new(10),
                    config,
                    |mut r, s| {
                        let shift = s.uniform(0.0, 1.0) as f32;
                        if let Some(Value::F32(a)) = r.get_mut("image") {
                            a.mapv_inplace(|v| v + shift);
                        }
                        Ok(r)
                    },
                )
                .unwrap();
            loader
                .epoch(epoch)
                .map(|b| b.unwrap().f32("image").unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let serial = epoch(0, 0);
        assert_eq!(serial, epoch(3, 0));
        assert_ne!(serial, epoch(0, 1));
        assert_eq!(serial.len(), 4);
    }

    #[test]
    fn loader_rejects_slots_beyond_the_dataset() {
        let patches = PatchDataset::new(vec![volume(&[8], &[])], config(&[4], 0.0), 3).unwrap();
        let config = LoaderConfig::builder().batch_size(2).build();
        let Err(err) = patches.loader(super::super::SequentialSampler::new(4), config, |r, _| {
            Ok(r)
        }) else {
            panic!("a sampler beyond the slots was accepted")
        };
        assert!(err.to_string().contains("slot 3"), "{err}");
    }
}

//! Augmentation of 2D and 3D samples: fused, seeded, fast.
//!
//! A transform acts on a whole sample: every image and label map of the sample receives the same
//! spatial draw, so images and labels stay aligned. Images are interpolated (linear, or cubic as
//! an option), label maps by nearest neighbour — no label appears that was not in the input —
//! and fields that are neither (scalars, metadata) are not touched. Any number of channels,
//! channel axis first, 2D (`[C, x, y]`) and 3D (`[C, x, y, z]`).
//!
//! A before/after picture of a mid-slice of the MNI ICBM152 T1 template is in the repository at
//! `docs/augment-preview.png` (shown in the README); `cargo run --release --example
//! augment_preview` writes it.
//!
//! # Transforms
//!
//! | kind | transforms |
//! |---|---|
//! | spatial | [`affine`](AffineSpec), [`elastic`](ElasticSpec), [`flip`](FlipSpec), [`rot90`](Rot90Spec), [`crop`](CropSpec), [`pad`](PadSpec), [`resize`](ResizeSpec), [`zoom`](ZoomSpec), [`spacing`](SpacingSpec) |
//! | intensity | Gaussian and Rician [noise](NoiseSpec), [bias field](BiasFieldSpec), [gamma](GammaSpec), [contrast](ContrastSpec), [brightness](BrightnessSpec), [Gaussian blur](BlurSpec), z-score, [range](RangeNormalizeSpec), [percentile clip](PercentileClipSpec), [clip](ClipSpec) |
//! | composition | sequence, [maybe](MaybeSpec) (probability `p`), [one of](OneOfSpec) |
//!
//! # Order and composition
//!
//! A [`Pipeline`] applies its transforms in the order listed, as if each one transformed the
//! output of the previous one. Consecutive spatial transforms are **composed into one
//! coordinate map and the sample is resampled once**: output voxel `p` takes the input value at
//! `M₁(M₂(…Mₙ(p)))`, where each `Mₖ` maps an output index of transform `k` to an index of its
//! input (affine matrices multiply into one; an elastic displacement sits between two of them).
//! Consecutive point-wise intensity transforms run as **one fused pass** over memory. A spatial
//! transform that follows an intensity transform (or the reverse) starts a new resampling or
//! pass, so listing all spatial transforms first is fastest. A second elastic deformation in
//! one run of spatial transforms resamples once more.
//!
//! Spatial transforms come in two kinds:
//!
//! - *Deformations* ([`affine`](AffineSpec), [`elastic`](ElasticSpec)) move the content in
//!   physical space on an unchanged grid: the affine of each volume stays. They act in
//!   millimetres about the volume centre along the voxel axes, so anisotropic spacing is
//!   respected (a 10° rotation of a 1 × 1 × 3 mm volume is a 10° rotation of the anatomy).
//! - *Grid changes* ([`flip`](FlipSpec), [`rot90`](Rot90Spec), [`crop`](CropSpec),
//!   [`pad`](PadSpec), [`resize`](ResizeSpec), [`zoom`](ZoomSpec), [`spacing`](SpacingSpec))
//!   choose a new voxel grid over the same content: each volume's affine is updated so that every
//!   voxel keeps its physical position (a crop by 3 voxels shifts the affine's translation by
//!   3 voxel steps; a flip negates a column). The array changes as a network sees it, the
//!   anatomy in millimetres does not.
//!
//! When the composed map is an integer index permutation (flips, rot90, crops, pads, 90°
//! rotations on an isotropic grid, in any combination), values are copied, not interpolated,
//! so the result is bit-exact; identity parameters leave the sample untouched. Positions
//! outside the input take the pipeline's fill value (0 unless set with [`Pipeline::fill`]) in
//! images and label 0 in label maps; positions within 10⁻³ voxel of the border count as
//! inside.
//!
//! # Randomness
//!
//! Every transform draws from the sample's [`Stream`]: same stream, same output, whatever the
//! number of threads. A pipeline takes one 64-bit word from the stream and gives each transform
//! node its own sub-stream, keyed by the node's position in the tree (depth-first order), so a
//! transform's draws never depend on how many values another transform drew, nor on whether a
//! [`maybe`](MaybeSpec) before it fired; adding a transform at the end leaves the draws of
//! the others unchanged. Noise is drawn per chunk of 4096 voxels from streams keyed by the
//! chunk's position, so it is the same on one thread or sixteen.
//!
//! ```
//! use delira::augment::{AffineSpec, CropSpec, FlipSpec, GammaSpec, Pipeline, Transform};
//! use delira::io::{Affine, LabelMap, Volume};
//! use delira::random::StreamKey;
//! use ndarray::ArrayD;
//!
//! let image = Volume::new(
//!     ArrayD::from_shape_fn(vec![1, 16, 16, 8], |i| (i[1] + i[2] + i[3]) as f32),
//!     Affine::from_spacing([1.0, 1.0, 2.0]),
//! );
//! let labels = LabelMap::new(
//!     ArrayD::from_shape_fn(vec![1, 16, 16, 8], |i| u16::from(i[1] > 7) * 3),
//!     Affine::from_spacing([1.0, 1.0, 2.0]),
//! );
//! let mut sample = (image, labels);
//!
//! let pipeline = Pipeline::new([
//!     AffineSpec::default().rotate_deg(15.0).scale(0.9, 1.1).into(),
//!     FlipSpec::new([0, 1]).into(),
//!     CropSpec::center([12, 12, 8]).into(),
//!     GammaSpec { gamma: [0.8, 1.25] }.into(),
//! ]);
//! let mut stream = StreamKey::new(42).sample(7).purpose("augment").stream();
//! pipeline.apply(&mut sample, &mut stream).unwrap();
//!
//! assert_eq!(sample.0.data().shape(), [1, 12, 12, 8]);
//! assert_eq!(sample.1.volume().data().shape(), [1, 12, 12, 8]);
//! // no new label appears
//! assert!(sample.1.labels().iter().all(|l| [0, 3].contains(l)));
//! // the crop moved the grid: the affine keeps the spacing
//! assert_eq!(sample.0.spacing(), [1.0, 1.0, 2.0]);
//! ```

mod intensity;
mod plan;
mod resample;
mod run;
mod spec;

pub use spec::{
    AffineSpec, BiasFieldSpec, BlurSpec, BrightnessSpec, ClipSpec, ContrastSpec, CropMode,
    CropSpec, ElasticSpec, FlipSpec, GammaSpec, Interpolation, MaybeSpec, NoiseSpec, OneOfSpec,
    PadSpec, PercentileClipSpec, Range, RangeNormalizeSpec, ResizeSpec, Rot90Spec, SpacingSpec,
    Transform, ZoomSpec,
};

use serde::{Deserialize, Serialize};

use crate::io::{LabelMap, Volume};
use crate::random::Stream;

/// One spatial field of a sample, as augmentation sees it.
#[derive(Debug)]
pub enum SpatialField<'a> {
    /// An image: resampled with linear (or cubic) interpolation; intensity transforms apply.
    Image(&'a mut Volume<f32>),
    /// A label map: resampled by nearest neighbour; intensity transforms never touch it.
    Labels(&'a mut LabelMap),
}

/// A sample whose images and label maps can be augmented together.
///
/// `#[derive(Dataset)]` implements it; fields that are neither images nor label maps (scalars,
/// class labels, metadata) are not listed and stay untouched. It is implemented here for a
/// single image, a single label map, and an `(image, labels)` pair.
pub trait Augmentable {
    /// The sample's images and label maps, in declaration order.
    fn spatial_fields(&mut self) -> Vec<SpatialField<'_>>;
}

impl Augmentable for Volume<f32> {
    fn spatial_fields(&mut self) -> Vec<SpatialField<'_>> {
        vec![SpatialField::Image(self)]
    }
}

impl Augmentable for LabelMap {
    fn spatial_fields(&mut self) -> Vec<SpatialField<'_>> {
        vec![SpatialField::Labels(self)]
    }
}

impl Augmentable for (Volume<f32>, LabelMap) {
    fn spatial_fields(&mut self) -> Vec<SpatialField<'_>> {
        vec![
            SpatialField::Image(&mut self.0),
            SpatialField::Labels(&mut self.1),
        ]
    }
}

impl Augmentable for Vec<Volume<f32>> {
    fn spatial_fields(&mut self) -> Vec<SpatialField<'_>> {
        self.iter_mut().map(SpatialField::Image).collect()
    }
}

/// Why a sample could not be augmented.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AugmentError {
    /// The fields of a sample do not share one spatial shape.
    #[error(
        "field {index} has spatial shape {found:?} but field 0 has {expected:?}; the images and \
         label maps of a sample must share one grid"
    )]
    ShapeMismatch {
        /// The position of the offending field.
        index: usize,
        /// The shape of the first field.
        expected: Vec<usize>,
        /// The shape of the offending field.
        found: Vec<usize>,
    },
    /// A field has no voxels.
    #[error("a field has spatial shape {shape:?}; augmentation needs at least one voxel per axis")]
    Empty {
        /// The shape found.
        shape: Vec<usize>,
    },
    /// The first field's affine gives a voxel spacing that is zero or not finite.
    #[error("the voxel spacing {spacing:?} is not positive; fix the affine of the first field")]
    Spacing {
        /// The spacing found.
        spacing: Vec<f64>,
    },
    /// A transform would produce an output grid too large to allocate.
    #[error(
        "the output grid {shape:?} has more than {limit} voxels; check the sizes of crop, pad, resize, zoom and spacing"
    )]
    TooLarge {
        /// The output shape.
        shape: Vec<usize>,
        /// The most voxels per channel.
        limit: u64,
    },
    /// A transform's parameters do not fit the sample or each other.
    #[error("`{transform}`: {problem}")]
    Parameter {
        /// The transform, as named in a pipeline spec.
        transform: &'static str,
        /// What is wrong, with the values found.
        problem: String,
    },
}

/// A sequence of transforms with the settings of its resampling.
///
/// Serialisable, with unknown keys rejected:
///
/// ```
/// use delira::augment::{Interpolation, Pipeline};
///
/// let p: Pipeline = serde_json::from_str(
///     r#"{"transforms": [{"affine": {"rotate_deg": [[-10, 10], [0, 0], [0, 0]]}}, "z_score"],
///         "interpolation": "cubic"}"#,
/// )
/// .unwrap();
/// assert_eq!(p.transforms.len(), 2);
/// assert_eq!(p.interpolation, Interpolation::Cubic);
/// assert_eq!(p.fill, 0.0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The transforms, applied in order.
    pub transforms: Vec<Transform>,
    /// The interpolation of images (label maps always use nearest neighbour).
    #[serde(default)]
    pub interpolation: Interpolation,
    /// The image value outside the input grid.
    #[serde(default)]
    pub fill: f32,
}

impl Pipeline {
    /// A pipeline of the given transforms, linear interpolation, fill value 0.
    #[must_use]
    pub fn new(transforms: impl IntoIterator<Item = Transform>) -> Self {
        Self {
            transforms: transforms.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Appends a transform.
    #[must_use]
    pub fn then(mut self, transform: impl Into<Transform>) -> Self {
        self.transforms.push(transform.into());
        self
    }

    /// Sets the interpolation of images.
    #[must_use]
    pub fn interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self
    }

    /// Sets the image value outside the input grid.
    #[must_use]
    pub fn fill(mut self, fill: f32) -> Self {
        self.fill = fill;
        self
    }

    /// Augments a sample in place with draws from `stream` (one word of it is consumed).
    pub fn apply<A: Augmentable + ?Sized>(
        &self,
        sample: &mut A,
        stream: &mut Stream,
    ) -> Result<(), AugmentError> {
        run::run(
            &self.transforms,
            self.interpolation,
            self.fill,
            sample,
            stream,
        )
    }
}

impl Transform {
    /// Applies this transform alone (linear interpolation, fill value 0); see
    /// [`Pipeline::apply`].
    pub fn apply<A: Augmentable + ?Sized>(
        &self,
        sample: &mut A,
        stream: &mut Stream,
    ) -> Result<(), AugmentError> {
        run::run(
            std::slice::from_ref(self),
            Interpolation::Linear,
            0.0,
            sample,
            stream,
        )
    }
}

//! Declarative descriptions of transforms: serialisable, with builders for Rust code.

use serde::{Deserialize, Serialize};

/// A closed interval `[low, high]` from which a parameter is drawn uniformly per sample; equal
/// bounds give a fixed value.
pub type Range = [f64; 2];

/// How images are interpolated when resampled (label maps always use nearest neighbour).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Trilinear (bilinear in 2D).
    #[default]
    Linear,
    /// Catmull–Rom cubic convolution (interpolating, no prefilter; may overshoot at edges).
    Cubic,
    /// Nearest neighbour, as for label maps (for images that hold codes rather than
    /// intensities).
    Nearest,
}

/// One transform, or a composition of transforms.
///
/// The serialised form is externally tagged in snake case, and every parameter struct rejects
/// unknown keys:
///
/// ```
/// use delira::augment::Transform;
///
/// let t: Transform = serde_json::from_str(
///     r#"{"sequence": [{"flip": {"axes": [0], "p": 0.5}}, {"gamma": {"gamma": [0.8, 1.25]}}]}"#,
/// )
/// .unwrap();
/// assert!(matches!(t, Transform::Sequence(ref ts) if ts.len() == 2));
/// assert!(serde_json::from_str::<Transform>(r#"{"flip": {"axis": [0]}}"#).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Transform {
    /// Rotation, scaling, shear and translation about the volume centre, in millimetres.
    Affine(AffineSpec),
    /// A smooth random deformation from displacements on a coarse control grid.
    Elastic(ElasticSpec),
    /// Mirroring along spatial axes.
    Flip(FlipSpec),
    /// Rotation by multiples of 90° in a plane of two spatial axes.
    Rot90(Rot90Spec),
    /// A crop to a fixed size (padding axes that are too short).
    Crop(CropSpec),
    /// Padding to a minimum size, centred.
    Pad(PadSpec),
    /// Resampling to a fixed shape over the same field of view.
    Resize(ResizeSpec),
    /// Resampling by a random factor over the same field of view.
    Zoom(ZoomSpec),
    /// Resampling to a target voxel spacing.
    Spacing(SpacingSpec),
    /// Additive Gaussian noise.
    GaussianNoise(NoiseSpec),
    /// Rician noise (the magnitude of complex Gaussian noise added to the signal).
    RicianNoise(NoiseSpec),
    /// A smooth multiplicative intensity inhomogeneity.
    BiasField(BiasFieldSpec),
    /// A gamma curve over the channel's intensity range.
    Gamma(GammaSpec),
    /// Scaling of the intensities about their mean.
    Contrast(ContrastSpec),
    /// Multiplication and shift of the intensities.
    Brightness(BrightnessSpec),
    /// Gaussian smoothing with a width in millimetres.
    GaussianBlur(BlurSpec),
    /// Per-channel normalisation to zero mean and unit standard deviation.
    ZScore,
    /// Per-channel linear mapping of `[min, max]` onto `[low, high]`.
    RangeNormalize(RangeNormalizeSpec),
    /// Per-channel clipping to two percentiles of the intensities.
    PercentileClip(PercentileClipSpec),
    /// Clipping to fixed bounds.
    Clip(ClipSpec),
    /// The transforms in order.
    Sequence(Vec<Transform>),
    /// A transform applied with a probability.
    Maybe(MaybeSpec),
    /// Exactly one of several transforms, drawn by weight.
    OneOf(OneOfSpec),
}

macro_rules! into_transform {
    ($($spec:ident => $variant:ident),* $(,)?) => {
        $(impl From<$spec> for Transform {
            fn from(spec: $spec) -> Self {
                Self::$variant(spec)
            }
        })*
    };
}

into_transform! {
    AffineSpec => Affine, ElasticSpec => Elastic, FlipSpec => Flip, Rot90Spec => Rot90,
    CropSpec => Crop, PadSpec => Pad, ResizeSpec => Resize, ZoomSpec => Zoom,
    SpacingSpec => Spacing, BiasFieldSpec => BiasField, GammaSpec => Gamma,
    ContrastSpec => Contrast, BrightnessSpec => Brightness, BlurSpec => GaussianBlur,
    RangeNormalizeSpec => RangeNormalize, PercentileClipSpec => PercentileClip,
    ClipSpec => Clip, MaybeSpec => Maybe, OneOfSpec => OneOf,
}

impl Transform {
    /// Wraps the transform so that it applies with probability `p`.
    #[must_use]
    pub fn with_probability(self, p: f64) -> Self {
        Self::Maybe(MaybeSpec {
            p,
            transform: Box::new(self),
        })
    }
}

/// Parameters of [`Transform::Affine`].
///
/// The forward map of a point `x` (millimetres from the volume centre, along the voxel axes) is
/// `R · H · S · x + t`: scaling `S`, then shear `H`, then the rotations `R = R₂ · R₁ · R₀` about
/// the spatial axes, then the translation `t`. A 2D volume rotates in its plane by the angle
/// drawn for axis 2 (the normal of the plane) and ignores the other two.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AffineSpec {
    /// Rotation angle in degrees about each spatial axis.
    pub rotate_deg: [Range; 3],
    /// An isotropic scale factor (ignored when `scale_per_axis` is set).
    pub scale: Range,
    /// An independent scale factor per spatial axis.
    pub scale_per_axis: Option<[Range; 3]>,
    /// Shear factors for the axis pairs `(0, 1)`, `(0, 2)`, `(1, 2)` (entry `H[a][b]`).
    pub shear: [Range; 3],
    /// Translation in millimetres along each spatial axis.
    pub translate_mm: [Range; 3],
}

impl Default for AffineSpec {
    fn default() -> Self {
        Self {
            rotate_deg: [[0.0; 2]; 3],
            scale: [1.0, 1.0],
            scale_per_axis: None,
            shear: [[0.0; 2]; 3],
            translate_mm: [[0.0; 2]; 3],
        }
    }
}

impl AffineSpec {
    /// Rotation drawn from `[-max_deg, max_deg]` about every axis.
    #[must_use]
    pub fn rotate_deg(mut self, max_deg: f64) -> Self {
        self.rotate_deg = [[-max_deg, max_deg]; 3];
        self
    }

    /// Rotation drawn from the given ranges, one per axis.
    #[must_use]
    pub fn rotate_deg_per_axis(mut self, ranges: [Range; 3]) -> Self {
        self.rotate_deg = ranges;
        self
    }

    /// An isotropic scale factor drawn from `[low, high]`.
    #[must_use]
    pub fn scale(mut self, low: f64, high: f64) -> Self {
        self.scale = [low, high];
        self.scale_per_axis = None;
        self
    }

    /// One scale factor per axis.
    #[must_use]
    pub fn scale_per_axis(mut self, ranges: [Range; 3]) -> Self {
        self.scale_per_axis = Some(ranges);
        self
    }

    /// Shear factors drawn from `[-max, max]` for every axis pair.
    #[must_use]
    pub fn shear(mut self, max: f64) -> Self {
        self.shear = [[-max, max]; 3];
        self
    }

    /// Translation drawn from `[-max_mm, max_mm]` along every axis.
    #[must_use]
    pub fn translate_mm(mut self, max_mm: f64) -> Self {
        self.translate_mm = [[-max_mm, max_mm]; 3];
        self
    }
}

/// Parameters of [`Transform::Elastic`].
///
/// Each control point of a regular grid spanning the volume (`control_points` per axis) gets a
/// displacement whose components are normal with a standard deviation `sigma_mm` (drawn per
/// sample from the range) in millimetres. A cubic B-spline interpolates the displacements to
/// every voxel, so the field is smooth; B-spline smoothing makes the voxel displacements
/// somewhat smaller than the control-point ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticSpec {
    /// Control points per spatial axis, from 2 to 64.
    pub control_points: usize,
    /// Standard deviation of the control-point displacements in millimetres.
    pub sigma_mm: Range,
}

impl Default for ElasticSpec {
    fn default() -> Self {
        Self {
            control_points: 6,
            sigma_mm: [0.0, 4.0],
        }
    }
}

/// Parameters of [`Transform::Flip`]: each listed axis flips independently with probability `p`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlipSpec {
    /// The spatial axes (0-based, channel axis excluded).
    pub axes: Vec<usize>,
    /// The probability of flipping each axis.
    #[serde(default = "half")]
    pub p: f64,
}

fn half() -> f64 {
    0.5
}

impl FlipSpec {
    /// Flips of the listed axes, each with probability one half.
    #[must_use]
    pub fn new(axes: impl Into<Vec<usize>>) -> Self {
        Self {
            axes: axes.into(),
            p: 0.5,
        }
    }

    /// Sets the probability of each flip.
    #[must_use]
    pub fn p(mut self, p: f64) -> Self {
        self.p = p;
        self
    }
}

/// Parameters of [`Transform::Rot90`]: rotation by `k · 90°` in the plane of two spatial axes,
/// as `numpy.rot90(data, k, axes)` does (from the first axis towards the second).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rot90Spec {
    /// The plane.
    pub axes: [usize; 2],
    /// The number of quarter turns; drawn uniformly from `0..4` when absent.
    #[serde(default)]
    pub k: Option<u32>,
}

/// Where a crop window is placed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CropMode {
    /// Centred: the window starts at `(n - size) / 2` (integer division).
    Center,
    /// Uniform over all windows that fit.
    Random,
    /// With probability `p`, a window that contains a voxel of label `class` (of the first label
    /// map), centred on it as far as the volume allows; otherwise (or when the class is absent) a
    /// random window.
    Label {
        /// The label the window must contain.
        class: u16,
        /// The probability of a window on the class.
        p: f64,
    },
}

/// Parameters of [`Transform::Crop`]. Axes shorter than `size` are padded, centred, with the
/// fill value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropSpec {
    /// The output size per spatial axis.
    pub size: Vec<usize>,
    /// Where the window goes.
    #[serde(default = "center")]
    pub mode: CropMode,
}

fn center() -> CropMode {
    CropMode::Center
}

impl CropSpec {
    /// A centred crop.
    #[must_use]
    pub fn center(size: impl Into<Vec<usize>>) -> Self {
        Self {
            size: size.into(),
            mode: CropMode::Center,
        }
    }

    /// A crop at a uniformly random position.
    #[must_use]
    pub fn random(size: impl Into<Vec<usize>>) -> Self {
        Self {
            size: size.into(),
            mode: CropMode::Random,
        }
    }

    /// A crop that contains label `class` with probability `p`.
    #[must_use]
    pub fn label(size: impl Into<Vec<usize>>, class: u16, p: f64) -> Self {
        Self {
            size: size.into(),
            mode: CropMode::Label { class, p },
        }
    }
}

/// Parameters of [`Transform::Pad`]: axes shorter than `size` grow to it, with
/// `(size - n) / 2` (integer division) fill voxels before the data; longer axes stay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PadSpec {
    /// The minimum output size per spatial axis.
    pub size: Vec<usize>,
}

/// Parameters of [`Transform::Resize`]: the output shape; the field of view stays (voxel
/// corners align, the centre is fixed) and the spacing changes to match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeSpec {
    /// The output size per spatial axis.
    pub shape: Vec<usize>,
}

/// Parameters of [`Transform::Zoom`]: every axis is resized to `round(n · factor)` voxels
/// (at least one), with one factor drawn per sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoomSpec {
    /// The factor range.
    pub factor: Range,
}

/// Parameters of [`Transform::Spacing`]: the output spacing; the centre of the volume stays and
/// the shape becomes `round(n · old / new)` (at least one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpacingSpec {
    /// The target spacing in millimetres per spatial axis.
    pub spacing_mm: Vec<f64>,
}

/// Parameters of [`Transform::GaussianNoise`] and [`Transform::RicianNoise`].
///
/// The normal draws come from a fast tabulated inverse distribution function (4096 equal-mass
/// cells, uniform within each), which matches the normal law closely but bounds the draws to
/// about ±4.1 σ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseSpec {
    /// The standard deviation, drawn per sample.
    pub std: Range,
}

/// Parameters of [`Transform::BiasField`]: the channel is multiplied by `exp(P(x))`, where `P`
/// is a polynomial of total degree `order` in coordinates scaled to `[-1, 1]` whose
/// coefficients (the constant one excluded) are drawn from `[-magnitude, magnitude]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BiasFieldSpec {
    /// The total degree, at most 5.
    pub order: u32,
    /// The coefficient bound.
    pub magnitude: f64,
}

impl Default for BiasFieldSpec {
    fn default() -> Self {
        Self {
            order: 3,
            magnitude: 0.3,
        }
    }
}

/// Parameters of [`Transform::Gamma`]: `x ↦ min + (max - min) · ((x - min) / (max - min))^γ`
/// with the channel's `min` and `max`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GammaSpec {
    /// The exponent range.
    pub gamma: Range,
}

/// Parameters of [`Transform::Contrast`]: `x ↦ mean + factor · (x - mean)` with the channel's
/// mean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContrastSpec {
    /// The factor range.
    pub factor: Range,
}

/// Parameters of [`Transform::Brightness`]: `x ↦ multiply · x + add`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrightnessSpec {
    /// The factor range.
    pub multiply: Range,
    /// The shift range.
    pub add: Range,
}

impl Default for BrightnessSpec {
    fn default() -> Self {
        Self {
            multiply: [1.0, 1.0],
            add: [0.0, 0.0],
        }
    }
}

/// Parameters of [`Transform::GaussianBlur`]: a separable Gaussian of the given width in
/// millimetres (converted per axis with the voxel spacing), truncated at 3 σ, with mirrored
/// borders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlurSpec {
    /// The standard deviation in millimetres.
    pub sigma_mm: Range,
}

/// Parameters of [`Transform::RangeNormalize`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeNormalizeSpec {
    /// Where the channel minimum goes.
    pub low: f64,
    /// Where the channel maximum goes.
    pub high: f64,
}

/// Parameters of [`Transform::PercentileClip`] (percentiles in `[0, 100]`, interpolated
/// linearly between order statistics as `numpy.percentile` does by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentileClipSpec {
    /// The lower percentile.
    pub lower: f64,
    /// The upper percentile.
    pub upper: f64,
}

/// Parameters of [`Transform::Clip`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipSpec {
    /// The lower bound.
    pub min: f64,
    /// The upper bound.
    pub max: f64,
}

/// Parameters of [`Transform::Maybe`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaybeSpec {
    /// The probability of applying the transform.
    pub p: f64,
    /// The transform.
    pub transform: Box<Transform>,
}

/// Parameters of [`Transform::OneOf`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneOfSpec {
    /// The candidates.
    pub transforms: Vec<Transform>,
    /// Relative weights, one per candidate; equal when absent.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
}

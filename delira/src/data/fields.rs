//! The fields of a declared sample: their roles, how they are loaded, preprocessed and collated.
//!
//! `#[derive(Dataset)]` describes every field of the struct with a [`FieldInfo`] and loads it
//! through [`SampleField`]. The marker traits ([`ImageField`], [`WeightField`], ...) let the
//! compiler reject a role on a type that cannot carry it, at the field's type.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, Axis};

use super::{ByteSize, Value};
use crate::augment::SpatialField;
use crate::io::{IoError, LabelMap, Volume};

/// What a field is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Read by the network (`#[input]`).
    Input,
    /// Compared with the network's output (`#[target]`).
    Target,
    /// Carried along untouched, such as a subject identifier (`#[meta]`).
    Meta,
    /// The weight of the sample in the loss (`#[weight]`).
    Weight,
    /// The group that must not be split across folds, such as a patient or a site (`#[group]`).
    Group,
    /// The class used to stratify splits (`#[class]`).
    Class,
}

/// What kind of data a field holds; it decides how augmentation treats the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldKind {
    /// A [`Volume<f32>`]: interpolated by spatial transforms, changed by intensity transforms.
    Image,
    /// A [`LabelMap`]: resampled by nearest neighbour, never changed by intensity transforms.
    Labels,
    /// A floating-point number, untouched by augmentation.
    Float,
    /// An integer, untouched by augmentation.
    Int,
    /// Text, untouched by augmentation.
    Text,
}

impl FieldKind {
    /// Whether spatial augmentation moves the field together with the others of its kind.
    #[must_use]
    pub fn is_spatial(self) -> bool {
        matches!(self, Self::Image | Self::Labels)
    }

    /// Whether the field is read from a file rather than from a value in a table.
    #[must_use]
    pub fn is_file(self) -> bool {
        self.is_spatial()
    }
}

/// Intensity normalisation of an image, per channel, applied when the image is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Normalize {
    /// Intensities as stored in the file (after the file's scaling).
    #[default]
    None,
    /// `(x - mean) / std` over all voxels of the channel; a constant channel becomes 0.
    ZScore,
    /// As [`ZScore`](Self::ZScore) with mean and std taken over the non-zero voxels only, and
    /// zero voxels kept at zero: for brain-masked images whose background is 0.
    ZScoreNonZero,
    /// `(x - min) / (max - min)`, into `[0, 1]`; a constant channel becomes 0.
    MinMax,
}

/// The array type a field has in a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Dtype {
    /// The field type's own: `f32` for images and floats, `i64` for label maps and integers.
    #[default]
    Auto,
    /// `f32`, for example a binary mask as the target of a sigmoid output.
    F32,
    /// `i64`.
    I64,
}

/// Where the channels of an image file are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ChannelAxis {
    /// As the reader gives them: single-channel 3D files, or the 4th axis of 4D files.
    #[default]
    First,
    /// The file's last axis holds the channels (a 2D multi-channel image stored as `x × y × c`):
    /// it is moved to the front.
    Last,
}

/// One field of a declared sample, as `#[derive(Dataset)]` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// The Rust field name; also the field's name in a batch.
    pub name: &'static str,
    /// What the field is for.
    pub role: Role,
    /// What the field holds.
    pub kind: FieldKind,
    /// The file-name template in a folder-per-subject layout (`{subject}` stands for the
    /// subject's folder name).
    pub nifti: Option<&'static str>,
    /// The column in a CSV manifest or subject table.
    pub column: &'static str,
    /// Whether the field holds the subject identifier (the folder name, or the id column).
    pub subject_id: bool,
    /// Whether the field is the class label that stratified splits use.
    pub class: bool,
    /// Intensity normalisation at load time.
    pub normalize: Normalize,
    /// The array type in a batch.
    pub dtype: Dtype,
    /// Where the channels of the file are.
    pub channel_axis: ChannelAxis,
}

impl FieldInfo {
    /// A field with the given name, role and kind, and every option at its default (the column
    /// named after the field).
    #[must_use]
    pub const fn new(name: &'static str, role: Role, kind: FieldKind) -> Self {
        Self {
            name,
            role,
            kind,
            nifti: None,
            column: name,
            subject_id: false,
            class: matches!(role, Role::Class),
            normalize: Normalize::None,
            dtype: Dtype::Auto,
            channel_axis: ChannelAxis::First,
        }
    }

    /// Whether the value comes from a table column (not a file, not the subject id).
    #[must_use]
    pub fn is_tabular(&self) -> bool {
        !self.kind.is_file() && !self.subject_id
    }
}

/// Where a field's value comes from for one subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file to read.
    File(PathBuf),
    /// A value written as text (a table cell or the subject id).
    Text(String),
}

/// Why one field of one subject could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// Reading the file failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file was read but its content does not fit the field.
    #[error("{0}")]
    Invalid(String),
    /// A text value could not be parsed into the field's type.
    #[error("value `{value}` is not {expected}")]
    Parse {
        /// The text found.
        value: String,
        /// What was expected, such as "an integer".
        expected: &'static str,
    },
    /// The field's type needs a file but got a value, or the other way round.
    #[error("expected {expected}, got {found:?}")]
    Source {
        /// What the field needs.
        expected: &'static str,
        /// What it got.
        found: Source,
    },
}

/// A type that can be a field of a `#[derive(Dataset)]` sample.
///
/// Implemented for [`Volume<f32>`], [`LabelMap`], `f32`, `f64`, the integer types that convert
/// to `i64` without loss (`i8` to `i64`, `u8` to `u32`), `bool` and `String`. Its [`ByteSize`]
/// lets the derived sample report its memory to a [`CachedDataset`](super::CachedDataset).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a dataset sample",
    label = "unsupported field type",
    note = "a field is a `Volume<f32>`, a `LabelMap`, a number, a `bool` or a `String`"
)]
pub trait SampleField: ByteSize + Sized + Send + 'static {
    /// What the type holds.
    const KIND: FieldKind;

    /// Loads the value from its source, preprocessed as `info` says.
    fn load(source: &Source, info: &FieldInfo) -> Result<Self, FieldError>;

    /// The value as it goes into a batch.
    fn into_value(self, info: &FieldInfo) -> Value;

    /// The field as spatial augmentation sees it; `None` for fields that augmentation leaves
    /// untouched.
    fn spatial(&mut self) -> Option<SpatialField<'_>> {
        None
    }
}

/// A field type that a `nifti` file fills: [`Volume<f32>`] or [`LabelMap`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an image type",
    label = "a `nifti` file cannot fill this field",
    note = "a `nifti` file template fills a `Volume<f32>` or a `LabelMap`; remove `nifti` for \
            other fields"
)]
pub trait ImageField: SampleField {}

/// A field type whose file can hold channels: [`Volume<f32>`] or [`LabelMap`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no channel axis",
    label = "`channel_axis` needs a `Volume<f32>` or a `LabelMap`",
    note = "`channel_axis` says where an image file keeps its channels; remove it for other fields"
)]
pub trait ChannelField: SampleField {}

/// A field type that can be normalised: [`Volume<f32>`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be normalised",
    label = "`normalize` needs a `Volume<f32>`",
    note = "intensity normalisation applies to images; label maps and scalars keep their values"
)]
pub trait NormalizeField: SampleField {}

/// A field type whose batch dtype can be chosen: [`LabelMap`] and the integer types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` keeps its own dtype",
    label = "`dtype` does not apply to this type",
    note = "`dtype` applies to label maps and integer fields, which can be collated as `f32`"
)]
pub trait CastField: SampleField {}

/// A field type that can be a sample weight: `f32` or `f64`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a sample weight",
    label = "a weight is a floating-point number",
    note = "declare the weight as `f32` or `f64`"
)]
pub trait WeightField: SampleField {}

/// A field type that can be a class label: an integer type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a class label",
    label = "a class label is an integer",
    note = "declare the class label as an integer type such as `i64`"
)]
pub trait ClassField: SampleField {}

/// A field type that can be a group id: `String` or an integer type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a group id",
    label = "a group id is text or an integer",
    note = "declare the group id as `String` or an integer type such as `i64`"
)]
pub trait GroupField: SampleField {}

/// A field type that can hold the subject id: `String`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold the subject id",
    label = "the subject id is text",
    note = "declare the subject id as `String`"
)]
pub trait SubjectIdField: SampleField {}

fn file_of<'a>(source: &'a Source, expected: &'static str) -> Result<&'a Path, FieldError> {
    match source {
        Source::File(path) => Ok(path),
        Source::Text(_) => Err(FieldError::Source {
            expected,
            found: source.clone(),
        }),
    }
}

fn text_of<'a>(source: &'a Source, expected: &'static str) -> Result<&'a str, FieldError> {
    match source {
        Source::Text(text) => Ok(text.trim()),
        Source::File(_) => Err(FieldError::Source {
            expected,
            found: source.clone(),
        }),
    }
}

/// Moves the last axis of single-channel data `[1, x, y, c]` to the front: `[c, x, y]`.
fn channels_last_to_first<T>(data: ArrayD<T>) -> Result<ArrayD<T>, FieldError> {
    let shape = data.shape().to_vec();
    if shape[0] != 1 || shape.len() != 4 {
        return Err(FieldError::Invalid(format!(
            "`channel_axis = \"last\"` needs a single-channel 3D file (read as [1, x, y, c]), got \
             shape {shape:?}"
        )));
    }
    let mut data = data.index_axis_move(Axis(0), 0);
    data.swap_axes(0, 2);
    data.swap_axes(1, 2);
    Ok(data)
}

fn read_volume(path: &Path, info: &FieldInfo) -> Result<Volume<f32>, FieldError> {
    let volume = crate::io::load_volume(path)?;
    if info.channel_axis == ChannelAxis::First {
        return Ok(volume);
    }
    let (data, affine) = volume.into_parts();
    let data = channels_last_to_first(data)?;
    let shape = data.shape().to_vec();
    Volume::try_new(data, affine).ok_or_else(|| {
        FieldError::Invalid(format!(
            "channels-last data of shape {shape:?} is not an image"
        ))
    })
}

/// Normalises each channel of `data` (shape `[channels, ...]`) in place.
pub(crate) fn normalize(data: &mut ArrayD<f32>, how: Normalize) {
    for mut channel in data.axis_iter_mut(Axis(0)) {
        match how {
            Normalize::None => {}
            Normalize::ZScore | Normalize::ZScoreNonZero => {
                let nonzero = how == Normalize::ZScoreNonZero;
                let (mut n, mut sum) = (0usize, 0f64);
                for &x in channel.iter().filter(|&&x| !nonzero || x != 0.0) {
                    n += 1;
                    sum += f64::from(x);
                }
                if n == 0 {
                    continue;
                }
                let mean = sum / n as f64;
                let var = channel
                    .iter()
                    .filter(|&&x| !nonzero || x != 0.0)
                    .map(|&x| (f64::from(x) - mean).powi(2))
                    .sum::<f64>()
                    / n as f64;
                let std = var.sqrt();
                let scale = if std > 0.0 { 1.0 / std } else { 0.0 };
                channel.map_inplace(|x| {
                    if !nonzero || *x != 0.0 {
                        *x = ((f64::from(*x) - mean) * scale) as f32;
                    }
                });
            }
            Normalize::MinMax => {
                let (lo, hi) = channel
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                let range = hi - lo;
                let scale = if range > 0.0 { 1.0 / range } else { 0.0 };
                channel.map_inplace(|x| *x = (*x - lo) * scale);
            }
        }
    }
}

impl SampleField for Volume<f32> {
    const KIND: FieldKind = FieldKind::Image;

    fn load(source: &Source, info: &FieldInfo) -> Result<Self, FieldError> {
        let path = file_of(source, "an image file")?;
        let mut volume = read_volume(path, info)?;
        normalize(volume.data_mut(), info.normalize);
        Ok(volume)
    }

    fn into_value(self, info: &FieldInfo) -> Value {
        let data = self.into_parts().0;
        match info.dtype {
            Dtype::I64 => Value::I64(data.mapv(|x| x.round() as i64)),
            Dtype::Auto | Dtype::F32 => Value::F32(data),
        }
    }

    fn spatial(&mut self) -> Option<SpatialField<'_>> {
        Some(SpatialField::Image(self))
    }
}

impl ImageField for Volume<f32> {}
impl ChannelField for Volume<f32> {}
impl NormalizeField for Volume<f32> {}

impl SampleField for LabelMap {
    const KIND: FieldKind = FieldKind::Labels;

    fn load(source: &Source, info: &FieldInfo) -> Result<Self, FieldError> {
        let path = file_of(source, "a label file")?;
        let labels = crate::io::load_labels(path)?;
        if info.channel_axis == ChannelAxis::First {
            return Ok(labels);
        }
        let (data, affine) = labels.0.into_parts();
        let data = channels_last_to_first(data)?;
        let shape = data.shape().to_vec();
        Volume::try_new(data, affine).map(LabelMap).ok_or_else(|| {
            FieldError::Invalid(format!(
                "channels-last labels of shape {shape:?} are not an image"
            ))
        })
    }

    fn into_value(self, info: &FieldInfo) -> Value {
        let data = self.0.into_parts().0;
        match info.dtype {
            Dtype::F32 => Value::F32(data.mapv(f32::from)),
            Dtype::Auto | Dtype::I64 => Value::I64(data.mapv(i64::from)),
        }
    }

    fn spatial(&mut self) -> Option<SpatialField<'_>> {
        Some(SpatialField::Labels(self))
    }
}

impl ImageField for LabelMap {}
impl ChannelField for LabelMap {}
impl CastField for LabelMap {}

macro_rules! float_field {
    ($($t:ty),*) => {$(
        impl SampleField for $t {
            const KIND: FieldKind = FieldKind::Float;

            fn load(source: &Source, _info: &FieldInfo) -> Result<Self, FieldError> {
                let text = text_of(source, "a number")?;
                text.parse().map_err(|_| FieldError::Parse {
                    value: text.to_owned(),
                    expected: "a number",
                })
            }

            fn into_value(self, _info: &FieldInfo) -> Value {
                Value::F32(ndarray::arr0(self as f32).into_dyn())
            }
        }
    )*};
}

float_field!(f32, f64);

impl WeightField for f32 {}
impl WeightField for f64 {}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl SampleField for $t {
            const KIND: FieldKind = FieldKind::Int;

            fn load(source: &Source, _info: &FieldInfo) -> Result<Self, FieldError> {
                let text = text_of(source, "an integer")?;
                text.parse().map_err(|_| FieldError::Parse {
                    value: text.to_owned(),
                    expected: concat!("an integer of type `", stringify!($t), "`"),
                })
            }

            fn into_value(self, info: &FieldInfo) -> Value {
                match info.dtype {
                    Dtype::F32 => Value::F32(ndarray::arr0(i64::from(self) as f32).into_dyn()),
                    Dtype::Auto | Dtype::I64 => {
                        Value::I64(ndarray::arr0(i64::from(self)).into_dyn())
                    }
                }
            }
        }

        impl CastField for $t {}
        impl ClassField for $t {}
        impl GroupField for $t {}
    )*};
}

// Only types that convert to `i64` without loss: a batch holds integers as `i64`.
int_field!(i8, i16, i32, i64, u8, u16, u32);

impl SampleField for bool {
    const KIND: FieldKind = FieldKind::Int;

    fn load(source: &Source, _info: &FieldInfo) -> Result<Self, FieldError> {
        let text = text_of(source, "a boolean")?;
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(FieldError::Parse {
                value: text.to_owned(),
                expected: "a boolean (`true`/`false`, `1`/`0`, `yes`/`no`)",
            }),
        }
    }

    fn into_value(self, info: &FieldInfo) -> Value {
        match info.dtype {
            Dtype::F32 => Value::F32(ndarray::arr0(f32::from(u8::from(self))).into_dyn()),
            Dtype::Auto | Dtype::I64 => Value::I64(ndarray::arr0(i64::from(self)).into_dyn()),
        }
    }
}

impl CastField for bool {}
impl ClassField for bool {}

impl SampleField for String {
    const KIND: FieldKind = FieldKind::Text;

    fn load(source: &Source, _info: &FieldInfo) -> Result<Self, FieldError> {
        text_of(source, "text").map(str::to_owned)
    }

    fn into_value(self, _info: &FieldInfo) -> Value {
        Value::Text(self)
    }
}

impl GroupField for String {}
impl SubjectIdField for String {}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn array(shape: &[usize], values: Vec<f32>) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
    }

    #[test]
    fn zscore_per_channel() {
        // Channel 0: 1, 2, 3, 4 (mean 2.5, population std sqrt(1.25)); channel 1 constant.
        let mut data = array(&[2, 2, 2], vec![1.0, 2.0, 3.0, 4.0, 7.0, 7.0, 7.0, 7.0]);
        normalize(&mut data, Normalize::ZScore);
        let s = 1.25f64.sqrt();
        let expected: Vec<f32> = [-1.5, -0.5, 0.5, 1.5]
            .iter()
            .map(|d| (d / s) as f32)
            .chain([0.0; 4])
            .collect();
        assert_eq!(data.as_slice().unwrap(), expected.as_slice());
    }

    #[test]
    fn zscore_nonzero_keeps_background() {
        // Non-zero voxels 2 and 4: mean 3, std 1.
        let mut data = array(&[1, 2, 2], vec![0.0, 2.0, 0.0, 4.0]);
        normalize(&mut data, Normalize::ZScoreNonZero);
        assert_eq!(data.as_slice().unwrap(), [0.0, -1.0, 0.0, 1.0]);
    }

    #[test]
    fn minmax_maps_to_unit_range() {
        let mut data = array(&[1, 1, 4], vec![-2.0, 0.0, 2.0, 6.0]);
        normalize(&mut data, Normalize::MinMax);
        assert_eq!(data.as_slice().unwrap(), [0.0, 0.25, 0.5, 1.0]);
    }

    #[test]
    fn channels_last_moves_to_front() {
        // A 2 × 3 image with 2 channels stored as x × y × c, read as [1, 2, 3, 2].
        let data = ArrayD::from_shape_fn(IxDyn(&[1, 2, 3, 2]), |i| {
            (i[1] * 100 + i[2] * 10 + i[3]) as f32
        });
        let moved = channels_last_to_first(data).unwrap();
        assert_eq!(moved.shape(), [2, 2, 3]);
        assert_eq!(moved[[1, 1, 2]], 121.0);
        assert_eq!(moved[[0, 0, 1]], 10.0);

        let two_channels = ArrayD::<f32>::zeros(IxDyn(&[2, 2, 3, 2]));
        assert_eq!(
            channels_last_to_first(two_channels)
                .unwrap_err()
                .to_string(),
            "`channel_axis = \"last\"` needs a single-channel 3D file (read as [1, x, y, c]), got \
             shape [2, 2, 3, 2]"
        );
    }

    #[test]
    fn scalars_parse_and_collate() {
        let info = FieldInfo::new("label", Role::Class, FieldKind::Int);
        let label = i64::load(&Source::Text(" 3 ".into()), &info).unwrap();
        assert_eq!(
            label.into_value(&info),
            Value::I64(ndarray::arr0(3).into_dyn())
        );
        let err = i64::load(&Source::Text("three".into()), &info).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value `three` is not an integer of type `i64`"
        );
        let as_float = FieldInfo {
            dtype: Dtype::F32,
            ..info
        };
        assert_eq!(
            3u8.into_value(&as_float),
            Value::F32(ndarray::arr0(3.0).into_dyn())
        );
    }
}

//! NIfTI-1 and NIfTI-2 files: reading and writing.
//!
//! # Reading
//!
//! [`load_volume`] gives real values as a [`Volume<f32>`](crate::io::Volume), [`load_labels`] a
//! [`LabelMap`], and [`read`] the header and the voxels in their stored type for users who need
//! raw values. All three accept
//!
//! - single files, `.nii` and `.nii.gz`, and `.hdr`/`.img` pairs, also gzipped (`.hdr.gz` with
//!   `.img.gz`; either name of a pair may be given). Compression is recognised by content, not by
//!   name;
//! - NIfTI-1 and NIfTI-2, little- and big-endian (detected from `sizeof_hdr`), any `vox_offset`,
//!   header extensions (kept as raw code and bytes);
//! - every integer and float datatype; RGB24, RGBA32 and complex voxels are read by [`read`],
//!   while [`load_volume`] and [`load_labels`] reject them with an error, having no single real
//!   value per voxel.
//!
//! Real values follow nibabel's `get_fdata()`: `value · scl_slope + scl_inter` computed in `f64`,
//! then rounded to `f32`. A slope of 0 or a non-finite slope means "no scaling"; a non-finite
//! intercept counts as 0. Fractional scaling of integer data is kept, never truncated.
//!
//! The affine follows the standard (see [`Header::affine`]): the sform when its code is positive,
//! else the qform (quaternion, offsets, voxel sizes and qfac = `pixdim[0]`, where 0 counts as +1),
//! else a diagonal of the voxel sizes.
//!
//! # Axes
//!
//! Spatial axes stay in file order and the voxels keep the file's memory layout (the first axis
//! is the fastest), so a [`Volume`](crate::io::Volume) of shape `[channels, x, y, z]` is read
//! without reordering any bytes:
//!
//! | file `dim` | volume shape |
//! |---|---|
//! | `x, y` (2D) | `[1, x, y]` |
//! | `x, y, z` | `[1, x, y, z]` |
//! | `x, y, z, t` | `[t, x, y, z]` (time points or components as channels) |
//! | `x, y, z, t, 1, ...` | as 4D: trailing axes of size 1 are dropped |
//!
//! Axes past `dim[0]` are ignored, as the standard says.
//!
//! # Bad files
//!
//! A truncated file, dimensions that need more bytes than the file holds (or than its gzip
//! stream can inflate to), absurd sizes, an unknown datatype, corrupt or truncated gzip data and
//! a wrong magic all give an [`IoError`] that names the file and the problem. Buffers are sized
//! only after the header's sizes have been checked against the file, so a lying header cannot
//! cause a large allocation.
//!
//! # Writing
//!
//! [`save_volume`] and [`save_labels`] write a little-endian NIfTI-1 file (NIfTI-2 when a
//! dimension exceeds 32767), `.nii` or `.nii.gz` by the name's extension, with the sform set to
//! the affine and the qform set to the same transform when it has no shear (both with code 2,
//! "aligned"). The file is written under a temporary name, synced and renamed, so a failed write
//! never leaves a partial file. Images are stored as `float32`, labels as `uint8` when every label
//! is below 256, else `uint16`. A multi-channel volume is written as 4D (`[x, y, z, channels]`;
//! a 2D one as `[x, y, 1, channels]`).
//!
//! # Example
//!
//! ```
//! use delira::io::{Affine, Volume, load_volume, save_volume};
//! use ndarray::{ArrayD, IxDyn};
//!
//! let dir = std::env::temp_dir().join(format!("delira-nifti-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("ramp.nii.gz");
//!
//! // One channel of 4 × 3 × 2 voxels, value = x + 10 y + 100 z, 2 mm voxels.
//! let data = ArrayD::from_shape_fn(IxDyn(&[1, 4, 3, 2]), |i| (i[1] + 10 * i[2] + 100 * i[3]) as f32);
//! let volume = Volume::new(data, Affine::from_spacing([2.0, 2.0, 2.0]));
//! save_volume(&path, &volume)?;
//!
//! let back = load_volume(&path)?;
//! assert_eq!(back.data()[[0, 3, 2, 1]], 123.0);
//! assert_eq!(back, volume);
//!
//! // The raw view: the header, the chosen affine and the stored values.
//! let image = delira::io::nifti::read(&path)?;
//! assert_eq!(image.header.sform_code, 2);
//! assert_eq!(image.data.shape(), [4, 3, 2]);
//! assert_eq!(image.affine.spacing(), [2.0, 2.0, 2.0]);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod convert;
mod header;
mod source;
mod write;

pub use header::{DataType, Endian, Extension, Header, Version};

use std::path::Path;

use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use crate::io::{Affine, IoError, LabelMap, Volume};
use source::{Raw, format_error, read_raw};

/// Voxels in their stored type, with the shape `dim[1..=dim[0]]` and the file's layout (the first
/// axis is the fastest in memory).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Data {
    /// `uint8`.
    U8(ArrayD<u8>),
    /// `int8`.
    I8(ArrayD<i8>),
    /// `int16`.
    I16(ArrayD<i16>),
    /// `uint16`.
    U16(ArrayD<u16>),
    /// `int32`.
    I32(ArrayD<i32>),
    /// `uint32`.
    U32(ArrayD<u32>),
    /// `int64`.
    I64(ArrayD<i64>),
    /// `uint64`.
    U64(ArrayD<u64>),
    /// `float32`.
    F32(ArrayD<f32>),
    /// `float64`.
    F64(ArrayD<f64>),
    /// `complex64`: `[real, imaginary]`.
    Complex64(ArrayD<[f32; 2]>),
    /// `complex128`: `[real, imaginary]`.
    Complex128(ArrayD<[f64; 2]>),
    /// `rgb24`: `[red, green, blue]`.
    Rgb24(ArrayD<[u8; 3]>),
    /// `rgba32`: `[red, green, blue, alpha]`.
    Rgba32(ArrayD<[u8; 4]>),
}

impl Data {
    /// The shape, `dim[1..=dim[0]]`.
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::U8(a) => a.shape(),
            Self::I8(a) => a.shape(),
            Self::I16(a) => a.shape(),
            Self::U16(a) => a.shape(),
            Self::I32(a) => a.shape(),
            Self::U32(a) => a.shape(),
            Self::I64(a) => a.shape(),
            Self::U64(a) => a.shape(),
            Self::F32(a) => a.shape(),
            Self::F64(a) => a.shape(),
            Self::Complex64(a) => a.shape(),
            Self::Complex128(a) => a.shape(),
            Self::Rgb24(a) => a.shape(),
            Self::Rgba32(a) => a.shape(),
        }
    }
}

/// A NIfTI image as stored: the header, the affine chosen by the standard's rules and the voxels
/// in their stored type (unscaled; apply [`Header::scaling`] for real values).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NiftiImage {
    /// The parsed header, extensions included.
    pub header: Header,
    /// The voxel-to-millimetre affine ([`Header::affine`]).
    pub affine: Affine,
    /// The stored voxels.
    pub data: Data,
}

/// Reads a NIfTI file with its voxels in their stored type.
///
/// See the [module documentation](self) for the files accepted.
pub fn read(path: impl AsRef<Path>) -> Result<NiftiImage, IoError> {
    let path = path.as_ref();
    let raw = read_raw(path)?;
    let shape = raw.header.shape().map_err(|p| format_error(path, p))?;
    let (bytes, endian) = (raw.voxels(), raw.header.endian);
    let data = match raw.header.datatype {
        DataType::U8 => Data::U8(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::I8 => Data::I8(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::I16 => Data::I16(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::U16 => Data::U16(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::I32 => Data::I32(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::U32 => Data::U32(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::I64 => Data::I64(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::U64 => Data::U64(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::F32 => Data::F32(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::F64 => Data::F64(fortran(path, &shape, convert::values(bytes, endian))?),
        DataType::Complex64 => {
            Data::Complex64(fortran(path, &shape, convert::tuples(bytes, endian))?)
        }
        DataType::Complex128 => {
            Data::Complex128(fortran(path, &shape, convert::tuples(bytes, endian))?)
        }
        DataType::Rgb24 => Data::Rgb24(fortran(path, &shape, convert::tuples(bytes, endian))?),
        DataType::Rgba32 => Data::Rgba32(fortran(path, &shape, convert::tuples(bytes, endian))?),
    };
    Ok(NiftiImage {
        affine: raw.header.affine(),
        header: raw.header,
        data,
    })
}

/// An array of `shape` over values in file order (first axis fastest).
fn fortran<T>(path: &Path, shape: &[usize], values: Vec<T>) -> Result<ArrayD<T>, IoError> {
    let len = values.len();
    ArrayD::from_shape_vec(IxDyn(shape).f(), values).map_err(|_| {
        format_error(
            path,
            format!("{len} voxels do not fill the shape {shape:?}"),
        )
    })
}

/// The spatial shape and the number of channels of a volume read from a file of `shape`.
fn volume_layout(path: &Path, shape: &[usize]) -> Result<(Vec<usize>, usize), IoError> {
    match shape {
        [x, y] => Ok((vec![*x, *y], 1)),
        [x, y, z] => Ok((vec![*x, *y, *z], 1)),
        [x, y, z, t, rest @ ..] if rest.iter().all(|&n| n == 1) => Ok((vec![*x, *y, *z], *t)),
        _ => Err(format_error(
            path,
            format!(
                "shape {shape:?} is not an image of 2 to 4 axes; read it with \
                 `delira::io::nifti::read`"
            ),
        )),
    }
}

/// Values in file order as a channel-first array `[channels, spatial...]`, without copying.
fn channel_first<T>(
    path: &Path,
    spatial: &[usize],
    channels: usize,
    values: Vec<T>,
) -> Result<ArrayD<T>, IoError> {
    let mut shape = spatial.to_vec();
    shape.push(channels);
    let n = spatial.len();
    let axes: Vec<usize> = std::iter::once(n).chain(0..n).collect();
    Ok(fortran(path, &shape, values)?.permuted_axes(IxDyn(&axes)))
}

fn prepare(path: &Path) -> Result<(Raw, Vec<usize>, usize), IoError> {
    let raw = read_raw(path)?;
    let shape = raw.header.shape().map_err(|p| format_error(path, p))?;
    let (spatial, channels) = volume_layout(path, &shape)?;
    Ok((raw, spatial, channels))
}

fn not_scalar(path: &Path, datatype: DataType) -> IoError {
    format_error(
        path,
        format!(
            "{} voxels have no single real value; read them with `delira::io::nifti::read`",
            datatype.name()
        ),
    )
}

/// Reads a NIfTI file as real values, scaling applied.
///
/// See the [module documentation](self) for the files accepted and the shape of the result.
pub fn load_volume(path: impl AsRef<Path>) -> Result<Volume<f32>, IoError> {
    let path = path.as_ref();
    let (raw, spatial, channels) = prepare(path)?;
    let header = &raw.header;
    let values = convert::to_real(
        raw.voxels(),
        header.datatype,
        header.endian,
        header.scaling(),
    )
    .ok_or_else(|| not_scalar(path, header.datatype))?;
    let data = channel_first(path, &spatial, channels, values)?;
    Ok(Volume::new(data, header.affine()))
}

/// Reads a NIfTI file of labels: integer data, or float data whose values are all integers,
/// each (after scaling) from 0 to 65535.
///
/// See the [module documentation](self) for the files accepted and the shape of the result.
pub fn load_labels(path: impl AsRef<Path>) -> Result<LabelMap, IoError> {
    let path = path.as_ref();
    let (raw, spatial, channels) = prepare(path)?;
    let header = &raw.header;
    let labels = convert::to_labels(
        raw.voxels(),
        header.datatype,
        header.endian,
        header.scaling(),
    )
    .ok_or_else(|| not_scalar(path, header.datatype))?
    .map_err(|bad| {
        let mut index = Vec::with_capacity(spatial.len() + 1);
        let mut rest = bad.index;
        for &n in spatial.iter().chain([&channels]) {
            index.push(rest % n);
            rest /= n;
        }
        format_error(
            path,
            format!(
                "voxel {index:?} holds {}, which is not a label (an integer from 0 to \
                     65535); load it with `load_volume`",
                bad.value
            ),
        )
    })?;
    let data = channel_first(path, &spatial, channels, labels)?;
    Ok(LabelMap::new(data, header.affine()))
}

/// The file dimensions of a channel-first array shape, and its voxels in file order.
fn file_layout<T: Copy>(data: &ArrayD<T>) -> (Vec<usize>, Vec<T>) {
    let shape = data.shape();
    let (channels, spatial) = (shape[0], &shape[1..]);
    let mut dims = spatial.to_vec();
    if channels > 1 {
        if dims.len() == 2 {
            dims.push(1);
        }
        dims.push(channels);
    }
    // Iterating `[channels, z, y, x]` in logical order visits x fastest: the file order.
    let mut axes: Vec<usize> = vec![0];
    axes.extend((1..shape.len()).rev());
    let values = data
        .view()
        .permuted_axes(IxDyn(&axes))
        .iter()
        .copied()
        .collect();
    (dims, values)
}

/// Writes a volume as `float32`, to `.nii` or `.nii.gz` by the name's extension.
///
/// See the [module documentation](self) for what is written.
pub fn save_volume(path: impl AsRef<Path>, volume: &Volume<f32>) -> Result<(), IoError> {
    let (dims, values) = file_layout(volume.data());
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write::write_image(path.as_ref(), &dims, DataType::F32, &bytes, volume.affine())
}

/// Writes a label map as `uint8` (every label below 256) or `uint16`, to `.nii` or `.nii.gz` by
/// the name's extension.
pub fn save_labels(path: impl AsRef<Path>, labels: &LabelMap) -> Result<(), IoError> {
    let volume = labels.volume();
    let (dims, values) = file_layout(volume.data());
    let (datatype, bytes) = if values.iter().all(|&l| l < 256) {
        (DataType::U8, values.iter().map(|&l| l as u8).collect())
    } else {
        let bytes: Vec<u8> = values.iter().flat_map(|l| l.to_le_bytes()).collect();
        (DataType::U16, bytes)
    };
    write::write_image(path.as_ref(), &dims, datatype, &bytes, volume.affine())
}

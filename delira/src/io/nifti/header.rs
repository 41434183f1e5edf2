//! The NIfTI-1 and NIfTI-2 headers: parsing, the datatype table, and the affine rules.

use crate::io::Affine;

/// Size of a NIfTI-1 header in bytes (its `sizeof_hdr`).
pub const NIFTI1_HEADER_SIZE: usize = 348;
/// Size of a NIfTI-2 header in bytes (its `sizeof_hdr`).
pub const NIFTI2_HEADER_SIZE: usize = 540;

/// The version of the NIfTI format a header follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// NIfTI-1: 348-byte header, 16-bit dimensions, 32-bit floats.
    Nifti1,
    /// NIfTI-2: 540-byte header, 64-bit dimensions, 64-bit floats.
    Nifti2,
}

/// The byte order of a file, detected from its `sizeof_hdr` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

/// The type of the stored voxels (the header's `datatype` code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataType {
    /// `DT_UINT8` (2).
    U8,
    /// `DT_INT8` (256).
    I8,
    /// `DT_INT16` (4).
    I16,
    /// `DT_UINT16` (512).
    U16,
    /// `DT_INT32` (8).
    I32,
    /// `DT_UINT32` (768).
    U32,
    /// `DT_INT64` (1024).
    I64,
    /// `DT_UINT64` (1280).
    U64,
    /// `DT_FLOAT32` (16).
    F32,
    /// `DT_FLOAT64` (64).
    F64,
    /// `DT_COMPLEX64` (32): pairs of `f32` (real, imaginary).
    Complex64,
    /// `DT_COMPLEX128` (1792): pairs of `f64` (real, imaginary).
    Complex128,
    /// `DT_RGB24` (128): three `u8` per voxel.
    Rgb24,
    /// `DT_RGBA32` (2304): four `u8` per voxel.
    Rgba32,
}

impl DataType {
    /// The type for a `datatype` code, or `None` for an unknown or unsupported code (binary,
    /// 128-bit floats and 256-bit complex numbers are not supported).
    pub fn from_code(code: i16) -> Option<Self> {
        Some(match code {
            2 => Self::U8,
            256 => Self::I8,
            4 => Self::I16,
            512 => Self::U16,
            8 => Self::I32,
            768 => Self::U32,
            1024 => Self::I64,
            1280 => Self::U64,
            16 => Self::F32,
            64 => Self::F64,
            32 => Self::Complex64,
            1792 => Self::Complex128,
            128 => Self::Rgb24,
            2304 => Self::Rgba32,
            _ => return None,
        })
    }

    /// The `datatype` code.
    pub fn code(self) -> i16 {
        match self {
            Self::U8 => 2,
            Self::I8 => 256,
            Self::I16 => 4,
            Self::U16 => 512,
            Self::I32 => 8,
            Self::U32 => 768,
            Self::I64 => 1024,
            Self::U64 => 1280,
            Self::F32 => 16,
            Self::F64 => 64,
            Self::Complex64 => 32,
            Self::Complex128 => 1792,
            Self::Rgb24 => 128,
            Self::Rgba32 => 2304,
        }
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::Rgb24 => 3,
            Self::I32 | Self::U32 | Self::F32 | Self::Rgba32 => 4,
            Self::I64 | Self::U64 | Self::F64 | Self::Complex64 => 8,
            Self::Complex128 => 16,
        }
    }

    /// Whether the voxels are single real numbers (not colours or complex numbers).
    pub fn is_scalar(self) -> bool {
        !matches!(
            self,
            Self::Complex64 | Self::Complex128 | Self::Rgb24 | Self::Rgba32
        )
    }

    /// The lowercase name used in messages, such as `int16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::U16 => "uint16",
            Self::I32 => "int32",
            Self::U32 => "uint32",
            Self::I64 => "int64",
            Self::U64 => "uint64",
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::Complex64 => "complex64",
            Self::Complex128 => "complex128",
            Self::Rgb24 => "rgb24",
            Self::Rgba32 => "rgba32",
        }
    }
}

/// A header extension, kept as its code and raw bytes (`esize - 8` of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// The extension's `ecode` (for example 4 = AFNI, 6 = comment, 32 = `CIfTI`).
    pub code: i32,
    /// The content, without the 8 bytes of `esize` and `ecode`.
    pub data: Vec<u8>,
}

/// A parsed NIfTI-1 or NIfTI-2 header, with every number widened to 64 bits.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Header {
    /// NIfTI-1 or NIfTI-2.
    pub version: Version,
    /// The byte order of the header and data.
    pub endian: Endian,
    /// Whether header and data share one file (magic `n+1` / `n+2`) rather than a `.hdr`/`.img`
    /// pair (`ni1` / `ni2`).
    pub single_file: bool,
    /// `dim`: `dim[0]` is the number of axes, `dim[1..=dim[0]]` their sizes.
    pub dim: [i64; 8],
    /// The stored voxel type.
    pub datatype: DataType,
    /// `pixdim`: `pixdim[0]` is qfac, `pixdim[1..]` the voxel sizes.
    pub pixdim: [f64; 8],
    /// Byte offset of the voxel data in the data file.
    pub vox_offset: u64,
    /// `scl_slope` as stored (see [`Header::scaling`] for the rules applied).
    pub scl_slope: f64,
    /// `scl_inter` as stored.
    pub scl_inter: f64,
    /// `qform_code`: 0 = no quaternion transform.
    pub qform_code: i32,
    /// `sform_code`: 0 = no affine rows.
    pub sform_code: i32,
    /// `quatern_b`, `quatern_c`, `quatern_d`.
    pub quatern: [f64; 3],
    /// `qoffset_x`, `qoffset_y`, `qoffset_z`.
    pub qoffset: [f64; 3],
    /// `srow_x`, `srow_y`, `srow_z`.
    pub srow: [[f64; 4]; 3],
    /// `xyzt_units`.
    pub xyzt_units: i32,
    /// `intent_code`.
    pub intent_code: i32,
    /// `descrip`, up to its first NUL byte.
    pub descrip: String,
    /// The header extensions, in file order.
    pub extensions: Vec<Extension>,
}

/// Reads little- or big-endian numbers from a header buffer.
struct Fields<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Fields<'_> {
    fn raw<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[at..at + N]);
        if self.endian == Endian::Big {
            out.reverse();
        }
        out
    }

    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.raw(at))
    }

    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.raw(at))
    }

    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.raw(at))
    }

    fn f32(&self, at: usize) -> f64 {
        f64::from(f32::from_le_bytes(self.raw(at)))
    }

    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.raw(at))
    }

    fn text(&self, at: usize, len: usize) -> String {
        let field = &self.bytes[at..at + len];
        let end = field.iter().position(|&b| b == 0).unwrap_or(len);
        String::from_utf8_lossy(&field[..end]).into_owned()
    }
}

/// The version and byte order announced by the first four bytes (`sizeof_hdr`), or a problem.
pub(crate) fn detect(first: &[u8]) -> Result<(Version, Endian), String> {
    let Some(start) = first.get(..4) else {
        return Err(format!(
            "file too short for a NIfTI header: {} bytes",
            first.len()
        ));
    };
    let start: [u8; 4] = [start[0], start[1], start[2], start[3]];
    for endian in [Endian::Little, Endian::Big] {
        let size = match endian {
            Endian::Little => i32::from_le_bytes(start),
            Endian::Big => i32::from_be_bytes(start),
        };
        match size {
            348 => return Ok((Version::Nifti1, endian)),
            540 => return Ok((Version::Nifti2, endian)),
            _ => {}
        }
    }
    Err(format!(
        "not a NIfTI file: `sizeof_hdr` is {} (little-endian), expected 348 or 540",
        i32::from_le_bytes(start)
    ))
}

impl Header {
    /// The header size in bytes for this version.
    pub fn size(&self) -> usize {
        match self.version {
            Version::Nifti1 => NIFTI1_HEADER_SIZE,
            Version::Nifti2 => NIFTI2_HEADER_SIZE,
        }
    }

    /// Parses the fixed part of a header (without extensions) from at least
    /// [`NIFTI1_HEADER_SIZE`] or [`NIFTI2_HEADER_SIZE`] bytes.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let (version, endian) = detect(bytes)?;
        let needed = match version {
            Version::Nifti1 => NIFTI1_HEADER_SIZE,
            Version::Nifti2 => NIFTI2_HEADER_SIZE,
        };
        if bytes.len() < needed {
            return Err(format!(
                "header truncated: {} of {needed} bytes present",
                bytes.len()
            ));
        }
        let f = Fields { bytes, endian };
        match version {
            Version::Nifti1 => Self::parse_v1(&f),
            Version::Nifti2 => Self::parse_v2(&f),
        }
    }

    fn parse_v1(f: &Fields<'_>) -> Result<Self, String> {
        let single_file = match &f.bytes[344..348] {
            b"n+1\0" => true,
            b"ni1\0" => false,
            other => {
                return Err(format!(
                    "bad NIfTI-1 magic {other:?}; expected `n+1` or `ni1`"
                ));
            }
        };
        let vox_offset = f.f32(108);
        if !(vox_offset.is_finite() && vox_offset >= 0.0 && vox_offset < 2f64.powi(62)) {
            return Err(format!("invalid `vox_offset` {vox_offset}"));
        }
        Ok(Self {
            version: Version::Nifti1,
            endian: f.endian,
            single_file,
            dim: std::array::from_fn(|i| i64::from(f.i16(40 + 2 * i))),
            datatype: datatype(f.i16(70))?,
            pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
            vox_offset: vox_offset as u64,
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            qform_code: i32::from(f.i16(252)),
            sform_code: i32::from(f.i16(254)),
            quatern: std::array::from_fn(|i| f.f32(256 + 4 * i)),
            qoffset: std::array::from_fn(|i| f.f32(268 + 4 * i)),
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
            xyzt_units: i32::from(f.bytes[123]),
            intent_code: i32::from(f.i16(68)),
            descrip: f.text(148, 80),
            extensions: Vec::new(),
        })
    }

    fn parse_v2(f: &Fields<'_>) -> Result<Self, String> {
        let single_file = match &f.bytes[4..12] {
            b"n+2\0\r\n\x1a\n" => true,
            b"ni2\0\r\n\x1a\n" => false,
            other => {
                return Err(format!(
                    "bad NIfTI-2 magic {other:?}; expected `n+2` or `ni2`"
                ));
            }
        };
        let vox_offset = f.i64(168);
        let Ok(vox_offset) = u64::try_from(vox_offset) else {
            return Err(format!("invalid `vox_offset` {vox_offset}"));
        };
        Ok(Self {
            version: Version::Nifti2,
            endian: f.endian,
            single_file,
            dim: std::array::from_fn(|i| f.i64(16 + 8 * i)),
            datatype: datatype(f.i16(12))?,
            pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
            vox_offset,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern: std::array::from_fn(|i| f.f64(352 + 8 * i)),
            qoffset: std::array::from_fn(|i| f.f64(376 + 8 * i)),
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
            xyzt_units: f.i32(500),
            intent_code: f.i32(504),
            descrip: f.text(240, 80),
            extensions: Vec::new(),
        })
    }

    /// Reads the extensions that follow the header in `bytes` (the header file, or the start of
    /// a single file up to `vox_offset`). Stops at the first malformed entry, as nibabel does.
    pub(crate) fn parse_extensions(&mut self, bytes: &[u8]) {
        let start = self.size();
        if bytes.get(start).is_none_or(|&flag| flag == 0) {
            return;
        }
        let f = Fields {
            bytes,
            endian: self.endian,
        };
        let mut at = start + 4;
        while at + 8 <= bytes.len() {
            let (size, code) = (f.i32(at), f.i32(at + 4));
            let Ok(size) = usize::try_from(size) else {
                break;
            };
            if size < 8 || at + size > bytes.len() {
                tracing::warn!(at, size, "stopping at a malformed NIfTI header extension");
                break;
            }
            self.extensions.push(Extension {
                code,
                data: bytes[at + 8..at + size].to_vec(),
            });
            at += size;
        }
    }

    /// The sizes of the data axes, `dim[1..=dim[0]]`; entries past `dim[0]` are ignored, as the
    /// standard says.
    pub fn shape(&self) -> Result<Vec<usize>, String> {
        let ndim = self.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(format!("`dim[0]` is {ndim}; expected 1 to 7 axes"));
        }
        self.dim[1..=ndim as usize]
            .iter()
            .enumerate()
            .map(|(axis, &n)| {
                usize::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("`dim[{}]` is {n}; sizes must be positive", axis + 1))
            })
            .collect()
    }

    /// The number of voxels and of data bytes the header announces, computed without overflow.
    pub fn data_size(&self) -> Result<(usize, u64), String> {
        let shape = self.shape()?;
        let too_big = || {
            format!(
                "dimensions {shape:?} of {} are absurdly large (more than 2^64 bytes)",
                self.datatype.name()
            )
        };
        let voxels = shape
            .iter()
            .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64))
            .ok_or_else(too_big)?;
        let bytes = voxels
            .checked_mul(self.datatype.size() as u64)
            .ok_or_else(too_big)?;
        let voxels = usize::try_from(voxels).map_err(|_| too_big())?;
        Ok((voxels, bytes))
    }

    /// The scaling `(slope, intercept)` that turns stored values into real values: `None` when
    /// the slope is 0 or not finite (the standard's "no scaling"), or when it is the identity.
    /// A non-finite intercept counts as 0.
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let slope = self.scl_slope;
        if slope == 0.0 || !slope.is_finite() || !self.datatype.is_scalar() {
            return None;
        }
        let inter = if self.scl_inter.is_finite() {
            self.scl_inter
        } else {
            0.0
        };
        (slope != 1.0 || inter != 0.0).then_some((slope, inter))
    }

    /// The voxel-to-millimetre affine by the standard's rules: the `srow` rows when
    /// `sform_code > 0`, else the quaternion transform when `qform_code > 0`, else a diagonal of
    /// the voxel sizes (`pixdim[1..=3]`).
    ///
    /// In the quaternion transform `pixdim[0]` is `qfac`: a negative value flips the third axis,
    /// anything else (including the 0 of many writers) counts as +1; a voxel size that is not
    /// positive counts as 1. The last rule differs from nibabel, which centres and flips a file
    /// with neither transform.
    pub fn affine(&self) -> Affine {
        if self.sform_code > 0 {
            let s = &self.srow;
            return Affine([s[0], s[1], s[2], [0.0, 0.0, 0.0, 1.0]]);
        }
        let zooms: [f64; 3] = std::array::from_fn(|i| positive_or_one(self.pixdim[i + 1]));
        if self.qform_code > 0 {
            let qfac = if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
            let r = quaternion_rotation(self.quatern);
            let scale = [zooms[0], zooms[1], zooms[2] * qfac];
            let row = |i: usize| {
                [
                    r[i][0] * scale[0],
                    r[i][1] * scale[1],
                    r[i][2] * scale[2],
                    self.qoffset[i],
                ]
            };
            return Affine([row(0), row(1), row(2), [0.0, 0.0, 0.0, 1.0]]);
        }
        Affine::from_spacing(zooms)
    }
}

fn datatype(code: i16) -> Result<DataType, String> {
    DataType::from_code(code).ok_or_else(|| match code {
        1 => "datatype 1 (binary, one bit per voxel) is not supported".to_owned(),
        1536 | 2048 => {
            format!("datatype {code} (128-bit float or 256-bit complex) is not supported")
        }
        _ => format!("unknown datatype code {code}"),
    })
}

fn positive_or_one(v: f64) -> f64 {
    if v > 0.0 && v.is_finite() { v } else { 1.0 }
}

/// The rotation matrix of the unit quaternion `(a, b, c, d)` with `a = sqrt(1 - b² - c² - d²)`
/// (0 when rounding makes the sum exceed 1; the quaternion is normalised either way).
pub(crate) fn quaternion_rotation([b, c, d]: [f64; 3]) -> [[f64; 3]; 3] {
    let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
    let norm = a * a + b * b + c * c + d * d;
    if norm < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / norm;
    let (bs, cs, ds) = (b * s, c * s, d * s);
    [
        [1.0 - (c * cs + d * ds), b * cs - a * ds, b * ds + a * cs],
        [b * cs + a * ds, 1.0 - (b * bs + d * ds), c * ds - a * bs],
        [b * ds - a * cs, c * ds + a * bs, 1.0 - (b * bs + c * cs)],
    ]
}

/// The quaternion `(b, c, d)` (with `a >= 0`) of a proper rotation matrix.
pub(crate) fn rotation_quaternion(r: &[[f64; 3]; 3]) -> [f64; 3] {
    let trace = r[0][0] + r[1][1] + r[2][2];
    let (a, b, c, d) = if trace > 0.0 {
        let s = 0.5 / (trace + 1.0).sqrt();
        (
            0.25 / s,
            (r[2][1] - r[1][2]) * s,
            (r[0][2] - r[2][0]) * s,
            (r[1][0] - r[0][1]) * s,
        )
    } else if r[0][0] > r[1][1] && r[0][0] > r[2][2] {
        let s = 2.0 * (1.0 + r[0][0] - r[1][1] - r[2][2]).sqrt();
        (
            (r[2][1] - r[1][2]) / s,
            0.25 * s,
            (r[0][1] + r[1][0]) / s,
            (r[0][2] + r[2][0]) / s,
        )
    } else if r[1][1] > r[2][2] {
        let s = 2.0 * (1.0 + r[1][1] - r[0][0] - r[2][2]).sqrt();
        (
            (r[0][2] - r[2][0]) / s,
            (r[0][1] + r[1][0]) / s,
            0.25 * s,
            (r[1][2] + r[2][1]) / s,
        )
    } else {
        let s = 2.0 * (1.0 + r[2][2] - r[0][0] - r[1][1]).sqrt();
        (
            (r[1][0] - r[0][1]) / s,
            (r[0][2] + r[2][0]) / s,
            (r[1][2] + r[2][1]) / s,
            0.25 * s,
        )
    };
    if a < 0.0 { [-b, -c, -d] } else { [b, c, d] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternion_round_trip() {
        // A rotation of 30 degrees about z, then 20 about x.
        let (cz, sz) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let (cx, sx) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
        let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
        let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
        let r: [[f64; 3]; 3] = std::array::from_fn(|i| {
            std::array::from_fn(|j| (0..3).map(|k| rx[i][k] * rz[k][j]).sum())
        });
        let back = quaternion_rotation(rotation_quaternion(&r));
        for i in 0..3 {
            for j in 0..3 {
                assert!((back[i][j] - r[i][j]).abs() < 1e-12, "{back:?} != {r:?}");
            }
        }
    }

    #[test]
    fn identity_quaternion_is_identity() {
        assert_eq!(
            quaternion_rotation([0.0, 0.0, 0.0]),
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        );
        // b = 1: a rotation of 180 degrees about x.
        assert_eq!(
            quaternion_rotation([1.0, 0.0, 0.0]),
            [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]
        );
    }

    #[test]
    fn datatype_codes_round_trip() {
        for code in [
            2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1792, 2304,
        ] {
            assert_eq!(DataType::from_code(code).map(DataType::code), Some(code));
        }
        assert_eq!(DataType::from_code(3), None);
    }
}

//! Writing `.nii` and `.nii.gz` files: little-endian, NIfTI-1 (NIfTI-2 when a dimension does not
//! fit in 16 bits), sform and qform from the affine, through a temporary file and a rename.

use std::path::Path;

use super::header::{DataType, NIFTI1_HEADER_SIZE, NIFTI2_HEADER_SIZE, rotation_quaternion};
use super::source::format_error;
use crate::io::{Affine, IoError};

/// The code written for both transforms: `NIFTI_XFORM_ALIGNED_ANAT`, "aligned to some anatomy".
const XFORM_ALIGNED: i32 = 2;
/// `xyzt_units`: millimetres.
const UNITS_MM: u8 = 2;

/// The quaternion form of an affine: rotation `(b, c, d)`, offset, voxel sizes and qfac, or
/// `None` when the affine has shear (a quaternion holds only rotations and scalings).
struct Qform {
    quatern: [f64; 3],
    offset: [f64; 3],
    zooms: [f64; 3],
    qfac: f64,
}

fn qform(affine: &Affine) -> Option<Qform> {
    let m = &affine.0;
    let zooms = affine.spacing();
    if zooms.iter().any(|&z| !(z > 0.0 && z.is_finite())) {
        return None;
    }
    let mut r: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| m[i][j] / zooms[j]));
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    for row in &mut r {
        row[2] *= qfac;
    }
    let orthonormal = (0..3).all(|a| {
        (0..3).all(|b| {
            let dot: f64 = (0..3).map(|k| r[k][a] * r[k][b]).sum();
            (dot - f64::from(u8::from(a == b))).abs() < 1e-5
        })
    });
    orthonormal.then(|| Qform {
        quatern: rotation_quaternion(&r),
        offset: [m[0][3], m[1][3], m[2][3]],
        zooms,
        qfac,
    })
}

/// A little-endian header under construction.
struct Bytes(Vec<u8>);

impl Bytes {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

/// The header bytes (with the 4-byte extension flag, all zero) for voxel data of `dims` and
/// `datatype` placed by `affine`.
fn header_bytes(dims: &[usize], datatype: DataType, affine: &Affine) -> Vec<u8> {
    let nifti2 = dims.iter().any(|&n| n > i16::MAX as usize);
    let q = qform(affine);
    let zooms = q.as_ref().map_or_else(|| affine.spacing(), |q| q.zooms);
    let mut pixdim = [1.0f64; 8];
    pixdim[0] = q.as_ref().map_or(1.0, |q| q.qfac);
    pixdim[1..4].copy_from_slice(&zooms);
    let mut dim = [1i64; 8];
    dim[0] = dims.len() as i64;
    for (d, &n) in dim[1..].iter_mut().zip(dims) {
        *d = n as i64;
    }
    let qform_code = if q.is_some() { XFORM_ALIGNED } else { 0 };
    let (quatern, qoffset) = q
        .as_ref()
        .map_or(([0.0; 3], [0.0; 3]), |q| (q.quatern, q.offset));
    let bitpix = (datatype.size() * 8) as i16;

    if nifti2 {
        let mut h = Bytes(vec![0; NIFTI2_HEADER_SIZE + 4]);
        h.put(0, &(NIFTI2_HEADER_SIZE as i32).to_le_bytes());
        h.put(4, b"n+2\0\r\n\x1a\n");
        h.put(12, &datatype.code().to_le_bytes());
        h.put(14, &bitpix.to_le_bytes());
        for i in 0..8 {
            h.put(16 + 8 * i, &dim[i].to_le_bytes());
            h.put(104 + 8 * i, &pixdim[i].to_le_bytes());
        }
        h.put(168, &((NIFTI2_HEADER_SIZE + 4) as i64).to_le_bytes());
        h.put(176, &1f64.to_le_bytes());
        h.put(240, b"delira");
        h.put(344, &qform_code.to_le_bytes());
        h.put(348, &XFORM_ALIGNED.to_le_bytes());
        for i in 0..3 {
            h.put(352 + 8 * i, &quatern[i].to_le_bytes());
            h.put(376 + 8 * i, &qoffset[i].to_le_bytes());
            for c in 0..4 {
                h.put(400 + 32 * i + 8 * c, &affine.0[i][c].to_le_bytes());
            }
        }
        h.put(500, &i32::from(UNITS_MM).to_le_bytes());
        return h.0;
    }

    let mut h = Bytes(vec![0; NIFTI1_HEADER_SIZE + 4]);
    h.put(0, &(NIFTI1_HEADER_SIZE as i32).to_le_bytes());
    h.put(38, b"r");
    h.put(70, &datatype.code().to_le_bytes());
    h.put(72, &bitpix.to_le_bytes());
    for i in 0..8 {
        h.put(40 + 2 * i, &(dim[i] as i16).to_le_bytes());
        h.put(76 + 4 * i, &(pixdim[i] as f32).to_le_bytes());
    }
    h.put(108, &((NIFTI1_HEADER_SIZE + 4) as f32).to_le_bytes());
    h.put(112, &1f32.to_le_bytes());
    h.put(123, &[UNITS_MM]);
    h.put(148, b"delira");
    h.put(252, &(qform_code as i16).to_le_bytes());
    h.put(254, &(XFORM_ALIGNED as i16).to_le_bytes());
    for i in 0..3 {
        h.put(256 + 4 * i, &(quatern[i] as f32).to_le_bytes());
        h.put(268 + 4 * i, &(qoffset[i] as f32).to_le_bytes());
        for c in 0..4 {
            h.put(280 + 16 * i + 4 * c, &(affine.0[i][c] as f32).to_le_bytes());
        }
    }
    h.put(344, b"n+1\0");
    h.0
}

fn is_gzip_name(path: &Path) -> Result<bool, IoError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let (base, gzip) = match name.strip_suffix(".gz") {
        Some(base) => (base, true),
        None => (name.as_str(), false),
    };
    if base
        .strip_suffix(".nii")
        .is_some_and(|stem| !stem.is_empty())
    {
        Ok(gzip)
    } else {
        Err(format_error(
            path,
            "cannot tell the format from the name; use a `.nii` or `.nii.gz` extension",
        ))
    }
}

/// Writes a single-file NIfTI image whose voxel bytes (little-endian, file order) are `data`.
pub(crate) fn write_image(
    path: &Path,
    dims: &[usize],
    datatype: DataType,
    data: &[u8],
    affine: &Affine,
) -> Result<(), IoError> {
    let gzip = is_gzip_name(path)?;
    let mut file = header_bytes(dims, datatype, affine);
    file.extend_from_slice(data);
    let file = if gzip {
        let mut compressor = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
        let mut out = vec![0; compressor.gzip_compress_bound(file.len())];
        let n = compressor
            .gzip_compress(&file, &mut out)
            .map_err(|e| format_error(path, format!("gzip compression failed: {e}")))?;
        out.truncate(n);
        out
    } else {
        file
    };
    write_atomically(path, &file)
}

/// [`crate::io::write_atomically`], with the error naming the file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    crate::io::write_atomically(path, bytes).map_err(|source| IoError::File {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qform_of_a_flipped_rotated_affine() {
        let mut a = Affine::from_spacing([2.0, 3.0, 4.0]);
        a.0[0][0] = -2.0;
        a.0[0][3] = 10.0;
        let q = qform(&a).unwrap();
        assert_eq!(q.zooms, [2.0, 3.0, 4.0]);
        // det < 0: qfac = -1, and the remaining rotation is 180 degrees about y.
        assert_eq!(q.qfac, -1.0);
        assert_eq!(q.offset, [10.0, 0.0, 0.0]);
        assert!((q.quatern[1].abs() - 1.0).abs() < 1e-12, "{:?}", q.quatern);
    }

    #[test]
    fn sheared_affine_has_no_qform() {
        let mut a = Affine::IDENTITY;
        a.0[0][1] = 0.5;
        assert!(qform(&a).is_none());
    }
}

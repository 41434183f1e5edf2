//! NIfTI reading and writing, checked against nibabel.
//!
//! - Real files written by other tools (provisioned by `scripts/provision-data`) against
//!   nibabel's reading of them, voxel by voxel.
//! - Odd headers written here byte by byte, against hand-computed values and, through the
//!   project's Python environment, against nibabel.
//! - Bad files: an error that names the file and the problem.
//! - Written files read back, by delira and by nibabel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use delira::io::nifti::{self, Data, DataType, Endian, Version};
use delira::io::save_volume;
use delira::io::{Affine, IoError, LabelMap, Volume, load_labels, load_volume, save_labels};
use ndarray::{ArrayD, IxDyn};
use serde_json::Value as Json;

// ---------------------------------------------------------------------------------------------
// Helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The provisioned data folder; a missing one fails the test with the fix.
fn data_dir() -> PathBuf {
    let dir = root().join("data");
    assert!(
        dir.join("reference").join("STAMP").is_file(),
        "the real NIfTI test files and nibabel's references are missing under {}; run \
         `scripts/provision-data` (scripts/test does)",
        dir.display()
    );
    dir
}

/// A fresh folder removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("delira-nifti-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What nibabel reads from `path` (shape, affine, q/sform, `get_fdata()` in file order).
fn nibabel(path: &Path) -> Json {
    let python = root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Python environment with nibabel is missing at {}; run `scripts/provision-data`",
        python.display()
    );
    let out = Command::new(python)
        .arg(root().join("scripts/nibabel_reference.py"))
        .arg("--dump")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nibabel could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json_matrix(value: &Json) -> Vec<Vec<f64>> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn json_shape(value: &Json) -> Vec<usize> {
    value["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

#[track_caller]
fn assert_affine(actual: &Affine, expected: &[Vec<f64>], tolerance: f64) {
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (actual.0[r][c] - expected[r][c]).abs() <= tolerance,
                "affine {:?} differs from {expected:?} at [{r}][{c}]",
                actual.0
            );
        }
    }
}

/// The voxels of a channel-first volume in file order (x fastest, channels slowest).
fn file_order<T: Copy>(data: &ArrayD<T>) -> Vec<T> {
    let mut axes = vec![0];
    axes.extend((1..data.ndim()).rev());
    data.view()
        .permuted_axes(IxDyn(&axes))
        .iter()
        .copied()
        .collect()
}

/// Asserts that `f32` values equal nibabel's `f64` values rounded to `f32` (NaN equals NaN).
#[track_caller]
fn assert_values(actual: &[f32], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: voxel count");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            a == e as f32 || (a.is_nan() && e.is_nan()),
            "{what}: voxel {i} is {a}, nibabel reads {e}"
        );
    }
}

fn nibabel_voxels(dump: &Json) -> Vec<f64> {
    dump["voxels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_f64()
                .unwrap_or_else(|| v.as_str().unwrap().parse().unwrap())
        })
        .collect()
}

#[track_caller]
fn assert_error(result: Result<impl std::fmt::Debug, IoError>, path: &Path, words: &[&str]) {
    let error = result
        .expect_err("a bad file must give an error")
        .to_string();
    assert!(
        error.contains(&path.display().to_string()),
        "`{error}` does not name the file"
    );
    for word in words {
        assert!(error.contains(word), "`{error}` does not say `{word}`");
    }
}

// ---------------------------------------------------------------------------------------------
// Real files against nibabel

fn reference_voxels(dir: &Path, info: &Json) -> Vec<f64> {
    let bytes = std::fs::read(dir.join(info["voxels"].as_str().unwrap())).unwrap();
    match info["voxel_type"].as_str().unwrap() {
        "u8" => bytes.iter().map(|&v| f64::from(v)).collect(),
        "i16" => bytes
            .chunks_exact(2)
            .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        "f32" => bytes
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        "f64" => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        other => panic!("unknown reference voxel type {other}"),
    }
}

#[test]
fn real_files_match_nibabel() {
    let data = data_dir();
    let references = data.join("reference");
    let mut checked = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&references)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for json in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let info: Json = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        let file = data.join(info["file"].as_str().unwrap());
        let what = file.display().to_string();
        let shape = json_shape(&info);
        let affine = json_matrix(&info["affine"]);

        let image = nifti::read(&file).unwrap();
        assert_eq!(image.data.shape(), shape, "{what}: shape");
        assert_affine(&image.affine, &affine, 1e-6);
        assert_eq!(
            image.header.version == Version::Nifti2,
            info["nifti2"].as_bool().unwrap()
        );
        assert_eq!(
            image.header.datatype.name(),
            info["datatype"].as_str().unwrap()
        );

        let volume = load_volume(&file).unwrap();
        assert_affine(volume.affine(), &affine, 1e-6);
        let channels = shape.get(3).copied().unwrap_or(1);
        let mut expected_shape = vec![channels];
        expected_shape.extend(&shape[..3]);
        assert_eq!(
            volume.data().shape(),
            expected_shape,
            "{what}: volume shape"
        );
        let expected = reference_voxels(&references, &info);
        assert_values(&file_order(volume.data()), &expected, &what);

        if info["datatype"] == "uint8" {
            let labels = load_labels(&file).unwrap();
            let labels: Vec<f32> = file_order(labels.volume().data())
                .iter()
                .map(|&l| f32::from(l))
                .collect();
            assert_values(&labels, &expected, &what);
        }
        checked.push(info["file"].as_str().unwrap().to_owned());
    }
    // Every file of DATA.md was provisioned and checked.
    assert_eq!(
        checked,
        [
            "colin27/ch2.nii.gz",
            "colin27/ch2bet.nii.gz",
            "mni/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
            "mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
            "mni/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
            "nibabel/anatomical.nii",
            "nibabel/example4d.nii.gz",
            "nibabel/example_nifti2.nii.gz",
            "nibabel/functional.nii",
            "nibabel/reoriented_anat_moved.nii",
            "nibabel/standard.nii.gz",
        ]
    );
}

#[test]
fn real_file_details() {
    let data = data_dir();
    // Scaling: functional.nii is int16 with slope 0.075407 and intercept 3100.76.
    let functional = nifti::read(data.join("nibabel/functional.nii")).unwrap();
    let (slope, inter) = functional.header.scaling().unwrap();
    assert!(
        (slope - 0.075_407).abs() < 1e-6 && (inter - 3100.76).abs() < 1e-2,
        "{slope} {inter}"
    );
    assert!(matches!(functional.data, Data::I16(_)));

    // Big-endian files.
    let anatomical = nifti::read(data.join("nibabel/anatomical.nii")).unwrap();
    assert_eq!(anatomical.header.endian, Endian::Big);
    let moved = nifti::read(data.join("nibabel/reoriented_anat_moved.nii")).unwrap();
    assert!(matches!(moved.data, Data::F32(_)));

    // Extensions and offsets.
    let example = nifti::read(data.join("nibabel/example4d.nii.gz")).unwrap();
    assert_eq!(example.header.vox_offset, 416);
    assert_eq!(example.header.extensions.len(), 2);
    assert_eq!(example.header.pixdim[4], 2000.0);
    let nifti2 = nifti::read(data.join("nibabel/example_nifti2.nii.gz")).unwrap();
    assert_eq!(
        (nifti2.header.version, nifti2.header.vox_offset),
        (Version::Nifti2, 608)
    );
    assert!(!nifti2.header.extensions.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Odd headers written byte by byte

/// A NIfTI-1 or NIfTI-2 header assembled field by field, in either byte order.
struct Hdr {
    bytes: Vec<u8>,
    big: bool,
    nifti2: bool,
}

impl Hdr {
    /// A NIfTI-1 single-file header: `dims`, the datatype, unit voxels, `vox_offset` 352, no
    /// scaling, no transform.
    fn v1(dims: &[i64], datatype: DataType, big: bool) -> Self {
        let mut h = Self {
            bytes: vec![0; 352],
            big,
            nifti2: false,
        };
        h.i32(0, 348).bytes(344, b"n+1\0").f32(108, 352.0);
        h.i16(70, datatype.code())
            .i16(72, (datatype.size() * 8) as i16);
        h.dims(dims);
        for i in 1..8 {
            h.pixdim(i, 1.0);
        }
        h
    }

    /// A NIfTI-2 single-file header, as [`Hdr::v1`], `vox_offset` 544.
    fn v2(dims: &[i64], datatype: DataType, big: bool) -> Self {
        let mut h = Self {
            bytes: vec![0; 544],
            big,
            nifti2: true,
        };
        h.i32(0, 540).bytes(4, b"n+2\0\r\n\x1a\n").i64(168, 544);
        h.i16(12, datatype.code())
            .i16(14, (datatype.size() * 8) as i16);
        h.dims(dims);
        for i in 1..8 {
            h.pixdim(i, 1.0);
        }
        h
    }

    fn put(&mut self, at: usize, mut raw: Vec<u8>) -> &mut Self {
        if self.big {
            raw.reverse();
        }
        if self.bytes.len() < at + raw.len() {
            self.bytes.resize(at + raw.len(), 0);
        }
        self.bytes[at..at + raw.len()].copy_from_slice(&raw);
        self
    }

    fn bytes(&mut self, at: usize, raw: &[u8]) -> &mut Self {
        if self.bytes.len() < at + raw.len() {
            self.bytes.resize(at + raw.len(), 0);
        }
        self.bytes[at..at + raw.len()].copy_from_slice(raw);
        self
    }

    fn i16(&mut self, at: usize, v: i16) -> &mut Self {
        self.put(at, v.to_le_bytes().to_vec())
    }

    fn i32(&mut self, at: usize, v: i32) -> &mut Self {
        self.put(at, v.to_le_bytes().to_vec())
    }

    fn i64(&mut self, at: usize, v: i64) -> &mut Self {
        self.put(at, v.to_le_bytes().to_vec())
    }

    fn f32(&mut self, at: usize, v: f32) -> &mut Self {
        self.put(at, v.to_le_bytes().to_vec())
    }

    fn f64(&mut self, at: usize, v: f64) -> &mut Self {
        self.put(at, v.to_le_bytes().to_vec())
    }

    /// A float field: `f32` at `v1` in NIfTI-1, `f64` at `v2` in NIfTI-2.
    fn float(&mut self, v1: usize, v2: usize, v: f64) -> &mut Self {
        if self.nifti2 {
            self.f64(v2, v)
        } else {
            self.f32(v1, v as f32)
        }
    }

    fn dims(&mut self, dims: &[i64]) -> &mut Self {
        let mut all = [1i64; 8];
        all[0] = dims.len() as i64;
        all[1..=dims.len()].copy_from_slice(dims);
        self.dim_raw(all)
    }

    fn dim_raw(&mut self, dim: [i64; 8]) -> &mut Self {
        for (i, d) in dim.into_iter().enumerate() {
            if self.nifti2 {
                self.i64(16 + 8 * i, d);
            } else {
                self.i16(40 + 2 * i, d as i16);
            }
        }
        self
    }

    fn pixdim(&mut self, i: usize, v: f64) -> &mut Self {
        self.float(76 + 4 * i, 104 + 8 * i, v)
    }

    fn scaling(&mut self, slope: f64, inter: f64) -> &mut Self {
        self.float(112, 176, slope).float(116, 184, inter)
    }

    fn codes(&mut self, qform: i16, sform: i16) -> &mut Self {
        if self.nifti2 {
            self.i32(344, qform.into()).i32(348, sform.into())
        } else {
            self.i16(252, qform).i16(254, sform)
        }
    }

    fn quaternion(&mut self, bcd: [f64; 3], offset: [f64; 3]) -> &mut Self {
        for i in 0..3 {
            self.float(256 + 4 * i, 352 + 8 * i, bcd[i]);
            self.float(268 + 4 * i, 376 + 8 * i, offset[i]);
        }
        self
    }

    fn srow(&mut self, rows: [[f64; 4]; 3]) -> &mut Self {
        for (r, row) in rows.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                self.float(280 + 16 * r + 4 * c, 400 + 32 * r + 8 * c, v);
            }
        }
        self
    }

    fn vox_offset(&mut self, offset: usize) -> &mut Self {
        if self.nifti2 {
            self.i64(168, offset as i64)
        } else {
            self.f32(108, offset as f32)
        }
    }

    /// The header followed by `data` at `vox_offset`.
    fn with_data(&self, data: &[u8]) -> Vec<u8> {
        let offset = if self.nifti2 {
            let raw: [u8; 8] = self.bytes[168..176].try_into().unwrap();
            if self.big {
                i64::from_be_bytes(raw) as usize
            } else {
                i64::from_le_bytes(raw) as usize
            }
        } else {
            let raw: [u8; 4] = self.bytes[108..112].try_into().unwrap();
            (if self.big {
                f32::from_be_bytes(raw)
            } else {
                f32::from_le_bytes(raw)
            }) as usize
        };
        let mut file = self.bytes.clone();
        file.resize(offset.max(file.len()), 0);
        file.extend_from_slice(data);
        file
    }
}

fn le_i16(values: &[i16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn le_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Loads `path` and checks the values in file order and the affine, against the expected ones
/// and against nibabel.
#[track_caller]
fn check_file(path: &Path, expected: &[f32], affine: &[[f64; 4]; 4]) {
    let volume = load_volume(path).unwrap();
    let values = file_order(volume.data());
    assert_eq!(values.len(), expected.len());
    for (i, (a, e)) in values.iter().zip(expected).enumerate() {
        assert!(
            a == e || (a.is_nan() && e.is_nan()),
            "voxel {i}: {a} != {e}"
        );
    }
    let affine: Vec<Vec<f64>> = affine.iter().map(|r| r.to_vec()).collect();
    assert_affine(volume.affine(), &affine, 1e-6);

    let dump = nibabel(path);
    assert_values(&values, &nibabel_voxels(&dump), "nibabel");
    // With neither transform, nibabel centres the grid and flips x instead of following the
    // standard's diagonal; otherwise it agrees.
    if dump["sform_code"].as_i64() > Some(0) || dump["qform_code"].as_i64() > Some(0) {
        assert_affine(volume.affine(), &json_matrix(&dump["affine"]), 1e-6);
    }
}

const UNIT: [[f64; 4]; 4] = Affine::IDENTITY.0;

#[test]
fn scaling_rules() {
    let dir = TempDir::new("scaling");
    let stored = [0i16, 1, -3, 7, 100, -32768];
    let data = le_i16(&stored);
    let plain: Vec<f32> = stored.iter().map(|&v| f32::from(v)).collect();
    let file = |name: &str, slope: f64, inter: f64| {
        let mut h = Hdr::v1(&[3, 2, 1], DataType::I16, false);
        h.scaling(slope, inter);
        dir.file(name, &h.with_data(&data))
    };

    // A slope of 0 or NaN means no scaling: the intercept is ignored too.
    check_file(&file("slope0.nii", 0.0, 5.0), &plain, &UNIT);
    check_file(&file("slope_nan.nii", f64::NAN, 5.0), &plain, &UNIT);
    check_file(&file("slope_inf.nii", f64::INFINITY, 5.0), &plain, &UNIT);

    // A fractional slope on integers is applied in f64, never truncated.
    let scaled: Vec<f32> = stored
        .iter()
        .map(|&v| (f64::from(v) * 0.25 - 1.5) as f32)
        .collect();
    assert_eq!(scaled[..3], [-1.5, -1.25, -2.25]);
    check_file(&file("fraction.nii", 0.25, -1.5), &scaled, &UNIT);

    // Labels of scaled data: 1 * 0.25 - 1.5 is not a label.
    let bad = file("labels.nii", 0.25, -1.5);
    assert_error(
        load_labels(&bad),
        &bad,
        &["voxel [0, 0, 0, 0]", "-1.5", "not a label"],
    );
}

#[test]
fn transforms_follow_the_standard() {
    let dir = TempDir::new("transforms");
    let data = le_i16(&[1, 2, 3, 4, 5, 6]);
    let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let half = std::f64::consts::FRAC_1_SQRT_2;
    let zoomed = |h: &mut Hdr, qfac: f64| {
        h.pixdim(0, qfac)
            .pixdim(1, 2.0)
            .pixdim(2, 3.0)
            .pixdim(3, 4.0);
    };

    // qform only, 90 degrees about z, qfac -1: the third column is flipped.
    let mut h = Hdr::v1(&[3, 2, 1], DataType::I16, false);
    zoomed(&mut h, -1.0);
    h.codes(1, 0)
        .quaternion([0.0, 0.0, half], [10.0, 20.0, 30.0]);
    let qform = [
        [0.0, -3.0, 0.0, 10.0],
        [2.0, 0.0, 0.0, 20.0],
        [0.0, 0.0, -4.0, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    check_file(&dir.file("qform.nii", &h.with_data(&data)), &values, &qform);

    // pixdim[0] = 0 counts as +1.
    zoomed(&mut h, 0.0);
    let mut unflipped = qform;
    unflipped[2][2] = 4.0;
    let path = dir.file("qfac0.nii", &h.with_data(&data));
    let volume = load_volume(&path).unwrap();
    assert_affine(volume.affine(), &unflipped.map(|r| r.to_vec()), 1e-6);

    // sform only.
    let sform = [
        [0.0, 0.0, 1.5, -7.0],
        [-2.0, 0.0, 0.0, 3.0],
        [0.0, 2.5, 0.25, 8.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let mut h = Hdr::v1(&[3, 2, 1], DataType::I16, false);
    h.codes(0, 4).srow([sform[0], sform[1], sform[2]]);
    check_file(&dir.file("sform.nii", &h.with_data(&data)), &values, &sform);

    // Both codes set and disagreeing: the sform wins.
    zoomed(&mut h, -1.0);
    h.codes(1, 2)
        .quaternion([0.0, 0.0, half], [10.0, 20.0, 30.0]);
    check_file(&dir.file("both.nii", &h.with_data(&data)), &values, &sform);
    let image = nifti::read(dir.0.join("both.nii")).unwrap();
    assert_eq!((image.header.qform_code, image.header.sform_code), (1, 2));

    // Neither: the diagonal of the voxel sizes (nibabel differs here: it centres and flips x).
    let mut h = Hdr::v1(&[3, 2, 1], DataType::I16, false);
    zoomed(&mut h, 1.0);
    let path = dir.file("none.nii", &h.with_data(&data));
    assert_eq!(
        *load_volume(&path).unwrap().affine(),
        Affine::from_spacing([2.0, 3.0, 4.0])
    );
}

/// Values of every scalar datatype, in both byte orders, both versions.
#[test]
fn every_datatype_and_byte_order() {
    type Encode = fn(f64, bool) -> Vec<u8>;
    let dir = TempDir::new("datatypes");
    let values: [f64; 6] = [0.0, 1.0, 7.0, 100.0, 3.0, 120.0];
    let signed: [f64; 6] = [0.0, -1.0, 7.0, -100.0, 3.0, 120.0];
    macro_rules! enc {
        ($t:ty) => {
            (|v: f64, big: bool| {
                if big {
                    (v as $t).to_be_bytes().to_vec()
                } else {
                    (v as $t).to_le_bytes().to_vec()
                }
            }) as Encode
        };
    }
    let cases: [(DataType, Encode, &[f64; 6]); 10] = [
        (DataType::U8, enc!(u8), &values),
        (DataType::I8, enc!(i8), &signed),
        (DataType::I16, enc!(i16), &signed),
        (DataType::U16, enc!(u16), &values),
        (DataType::I32, enc!(i32), &signed),
        (DataType::U32, enc!(u32), &values),
        (DataType::I64, enc!(i64), &signed),
        (DataType::U64, enc!(u64), &values),
        (DataType::F32, enc!(f32), &signed),
        (DataType::F64, enc!(f64), &signed),
    ];
    for (datatype, encode, vals) in cases {
        for big in [false, true] {
            for nifti2 in [false, true] {
                let mut h = if nifti2 {
                    Hdr::v2(&[3, 2], datatype, big)
                } else {
                    Hdr::v1(&[3, 2], datatype, big)
                };
                h.codes(0, 1).srow([
                    [2.0, 0.0, 0.0, 1.0],
                    [0.0, 3.0, 0.0, 2.0],
                    [0.0, 0.0, 4.0, 3.0],
                ]);
                let data: Vec<u8> = vals.iter().flat_map(|&v| encode(v, big)).collect();
                let name = format!(
                    "{}-{}-{}.nii",
                    datatype.name(),
                    if big { "be" } else { "le" },
                    if nifti2 { 2 } else { 1 }
                );
                let path = dir.file(&name, &h.with_data(&data));

                let image = nifti::read(&path).unwrap();
                assert_eq!(image.header.datatype, datatype);
                assert_eq!(
                    image.header.endian,
                    if big { Endian::Big } else { Endian::Little }
                );
                assert_eq!(image.data.shape(), [3, 2], "{name}");
                // A 2D file is a 2D volume with one channel.
                let volume = load_volume(&path).unwrap();
                assert_eq!(volume.data().shape(), [1, 3, 2], "{name}");
                let expected: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
                assert_eq!(file_order(volume.data()), expected, "{name}");
                assert_eq!(volume.affine().0[1], [0.0, 3.0, 0.0, 2.0], "{name}");
                if vals == &values {
                    let labels = load_labels(&path).unwrap();
                    let labels: Vec<f32> = file_order(labels.volume().data())
                        .iter()
                        .map(|&l| f32::from(l))
                        .collect();
                    assert_eq!(labels, expected, "{name}");
                }
            }
        }
    }
    // nibabel agrees on one of each version and order.
    for name in [
        "int16-be-1.nii",
        "float64-be-2.nii",
        "uint64-le-2.nii",
        "int8-le-1.nii",
    ] {
        let path = dir.0.join(name);
        let dump = nibabel(&path);
        assert_eq!(json_shape(&dump), [3, 2]);
        assert_values(
            &file_order(load_volume(&path).unwrap().data()),
            &nibabel_voxels(&dump),
            name,
        );
        assert_affine(
            load_volume(&path).unwrap().affine(),
            &json_matrix(&dump["affine"]),
            1e-12,
        );
    }
}

#[test]
fn raw_values_keep_their_type() {
    let dir = TempDir::new("raw");
    let mut h = Hdr::v1(&[2, 2], DataType::I32, true);
    h.scaling(2.0, 1.0);
    let data: Vec<u8> = [-5i32, 70000, 3, i32::MIN]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let path = dir.file("raw.nii", &h.with_data(&data));
    let image = nifti::read(&path).unwrap();
    let Data::I32(raw) = &image.data else {
        panic!("int32 expected, got {:?}", image.data)
    };
    // Unscaled, in file order along the first axis.
    assert_eq!(raw[[0, 0]], -5);
    assert_eq!(raw[[1, 0]], 70000);
    assert_eq!(raw[[1, 1]], i32::MIN);
    assert_eq!(image.header.scaling(), Some((2.0, 1.0)));
    let volume = load_volume(&path).unwrap();
    assert_eq!(
        file_order(volume.data()),
        [-9.0, 140_001.0, 7.0, -4_294_967_295.0]
    );
}

#[test]
fn pairs_and_gzip() {
    let dir = TempDir::new("pairs");
    let values: Vec<f32> = (0..24).map(|v| v as f32 * 0.5).collect();
    let data = le_f32(&values);
    let mut h = Hdr::v1(&[2, 3, 4], DataType::F32, false);
    h.bytes(344, b"ni1\0").vox_offset(0);
    h.pixdim(1, 1.5).codes(0, 1).srow([
        [1.5, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ]);
    let affine = [
        [1.5, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];

    let header = dir.file("pair.hdr", &h.bytes);
    let image = dir.file("pair.img", &data);
    check_file(&header, &values, &affine);
    assert_eq!(load_volume(&image).unwrap(), load_volume(&header).unwrap());
    assert!(!nifti::read(&header).unwrap().header.single_file);

    let header = dir.file("zipped.hdr.gz", &gzip(&h.bytes));
    dir.file("zipped.img.gz", &gzip(&data));
    check_file(&header, &values, &affine);

    // A single gzipped file, and one made of two gzip members.
    let file = {
        let mut h = Hdr::v1(&[2, 3, 4], DataType::F32, false);
        h.codes(0, 1).srow([
            [1.5, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
        ]);
        h.with_data(&data)
    };
    check_file(&dir.file("single.nii.gz", &gzip(&file)), &values, &affine);
    let mut members = gzip(&file[..400]);
    members.extend(gzip(&file[400..]));
    check_file(&dir.file("members.nii.gz", &members), &values, &affine);
    // A missing image of a pair names the image file.
    let lonely = dir.file("lonely.hdr", &h.bytes);
    assert_error(
        load_volume(&lonely),
        &dir.0.join("lonely.img"),
        &["No such file"],
    );
}

#[test]
fn trailing_dimensions_and_odd_dim0() {
    let dir = TempDir::new("dims");
    let values: Vec<i16> = (0..24).collect();
    let expected: Vec<f32> = values.iter().map(|&v| f32::from(v)).collect();

    // dim[0] = 3 with dim[4] = 5: axes past dim[0] are ignored.
    let mut h = Hdr::v1(&[2, 3, 4], DataType::I16, false);
    h.dim_raw([3, 2, 3, 4, 5, 6, 1, 1]);
    let path = dir.file("dim0.nii", &h.with_data(&le_i16(&values)));
    assert_eq!(nifti::read(&path).unwrap().data.shape(), [2, 3, 4]);
    check_file(&path, &expected, &UNIT);

    // 5 axes with trailing size 1: a 4D volume, time points as channels.
    let h = Hdr::v1(&[2, 3, 2, 2, 1], DataType::I16, false);
    let path = dir.file("five.nii", &h.with_data(&le_i16(&values)));
    let volume = load_volume(&path).unwrap();
    assert_eq!(volume.data().shape(), [2, 2, 3, 2]);
    assert_eq!(volume.data()[[1, 1, 2, 0]], 17.0); // x=1, y=2, z=0, t=1: 1 + 2*2 + 12
    assert_eq!(file_order(volume.data()), expected);

    // A real fifth axis is not an image.
    let h = Hdr::v1(&[2, 3, 2, 1, 2], DataType::I16, false);
    let path = dir.file("five_real.nii", &h.with_data(&le_i16(&values)));
    assert_error(
        load_volume(&path),
        &path,
        &["shape [2, 3, 2, 1, 2]", "nifti::read"],
    );
    assert_eq!(nifti::read(&path).unwrap().data.shape(), [2, 3, 2, 1, 2]);
}

#[test]
fn nan_voxels_extensions_and_offsets() {
    let dir = TempDir::new("extensions");
    let values = [1.0, f32::NAN, -0.5, f32::INFINITY];
    let mut h = Hdr::v1(&[2, 2, 1], DataType::F32, false);
    // Two extensions (a comment and an unknown code) and the data well after them.
    h.bytes(348, &[1, 0, 0, 0]);
    h.i32(352, 32)
        .i32(356, 6)
        .bytes(360, b"a comment, padded to 24");
    // The last extension runs up to `vox_offset`, as nibabel requires.
    h.i32(384, 640).i32(388, 99).bytes(392, b"12345678");
    h.vox_offset(1024);
    let path = dir.file("ext.nii", &h.with_data(&le_f32(&values)));
    check_file(&path, &values, &UNIT);
    let image = nifti::read(&path).unwrap();
    assert_eq!(image.header.extensions.len(), 2);
    assert_eq!(image.header.extensions[0].code, 6);
    assert_eq!(&image.header.extensions[0].data[..9], b"a comment");
    assert_eq!(
        (
            image.header.extensions[1].code,
            &image.header.extensions[1].data[..8]
        ),
        (99, &b"12345678"[..])
    );
    assert_error(load_labels(&path), &path, &["voxel [1, 0, 0, 0]", "NaN"]);

    // NIfTI-2 with an extension, big-endian, gzipped.
    let mut h = Hdr::v2(&[2, 2, 1], DataType::F32, true);
    h.bytes(540, &[1, 0, 0, 0]);
    h.i32(544, 32).i32(548, 4).bytes(552, b"afni....");
    h.vox_offset(576).codes(0, 2).srow([
        [-1.0, 0.0, 0.0, 5.0],
        [0.0, 1.0, 0.0, 6.0],
        [0.0, 0.0, 1.0, 7.0],
    ]);
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let path = dir.file("ext2.nii.gz", &gzip(&h.with_data(&data)));
    let affine = [
        [-1.0, 0.0, 0.0, 5.0],
        [0.0, 1.0, 0.0, 6.0],
        [0.0, 0.0, 1.0, 7.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    check_file(&path, &values, &affine);
    let image = nifti::read(&path).unwrap();
    assert_eq!(
        (image.header.version, image.header.endian),
        (Version::Nifti2, Endian::Big)
    );
    assert_eq!(image.header.extensions[0].code, 4);
}

#[test]
fn colour_and_complex_voxels() {
    let dir = TempDir::new("colour");
    let h = Hdr::v1(&[2, 1, 1], DataType::Rgb24, false);
    let path = dir.file("rgb.nii", &h.with_data(&[255, 0, 10, 1, 2, 3]));
    let Data::Rgb24(rgb) = nifti::read(&path).unwrap().data else {
        panic!("rgb24 expected")
    };
    assert_eq!(
        rgb.iter().copied().collect::<Vec<_>>(),
        [[255, 0, 10], [1, 2, 3]]
    );
    assert_error(
        load_volume(&path),
        &path,
        &["rgb24 voxels have no single real value"],
    );
    assert_error(load_labels(&path), &path, &["rgb24"]);

    let h = Hdr::v1(&[2, 1, 1], DataType::Complex64, true);
    let data: Vec<u8> = [1.5f32, -2.0, 0.0, 4.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let path = dir.file("complex.nii", &h.with_data(&data));
    let Data::Complex64(c) = nifti::read(&path).unwrap().data else {
        panic!("complex64 expected")
    };
    assert_eq!(
        c.iter().copied().collect::<Vec<_>>(),
        [[1.5, -2.0], [0.0, 4.0]]
    );
    assert_error(load_volume(&path), &path, &["complex64"]);
}

// ---------------------------------------------------------------------------------------------
// Bad files

#[test]
fn bad_files_name_the_file_and_the_problem() {
    let dir = TempDir::new("bad");
    let good = Hdr::v1(&[4, 4, 4], DataType::I16, false).with_data(&le_i16(&[7; 64]));
    assert_eq!(
        load_volume(dir.file("good.nii", &good))
            .unwrap()
            .data()
            .len(),
        64
    );

    let path = dir.file("truncated.nii", &good[..good.len() - 1]);
    assert_error(
        load_volume(&path),
        &path,
        &[
            "data truncated",
            "need 128 bytes from offset 352",
            "479 bytes",
        ],
    );

    let path = dir.file("short_header.nii", &good[..200]);
    assert_error(
        load_volume(&path),
        &path,
        &["header truncated", "200 of 348"],
    );

    let path = dir.file("empty.nii", &[]);
    assert_error(load_volume(&path), &path, &["too short"]);

    // Dimensions that need far more bytes than present.
    let mut h = Hdr::v1(&[1000, 1000, 1000], DataType::F64, false);
    let path = dir.file("huge.nii", &h.with_data(&[0; 64]));
    assert_error(
        load_volume(&path),
        &path,
        &["data truncated", "8000000000 bytes"],
    );
    let path = dir.file("huge.nii.gz", &gzip(&h.with_data(&[0; 64])));
    assert_error(
        load_volume(&path),
        &path,
        &["more than", "gzip bytes can inflate to"],
    );
    // Zero or negative sizes.
    h.dim_raw([3, 4, 0, 4, 1, 1, 1, 1]);
    let path = dir.file("zero.nii", &h.with_data(&[0; 64]));
    assert_error(load_volume(&path), &path, &["`dim[2]` is 0"]);
    h.dim_raw([9, 4, 4, 4, 1, 1, 1, 1]);
    let path = dir.file("dim0.nii", &h.with_data(&[0; 64]));
    assert_error(load_volume(&path), &path, &["`dim[0]` is 9"]);

    // 2^31 per axis (NIfTI-2): overflows 64 bits, refused before any allocation.
    let h = Hdr::v2(&[1 << 31, 1 << 31, 1 << 31], DataType::I16, false);
    let path = dir.file("absurd.nii", &h.with_data(&[0; 64]));
    assert_error(nifti::read(&path), &path, &["absurdly large"]);
    let h = Hdr::v2(&[1 << 31, 1 << 31], DataType::I16, false);
    let path = dir.file("absurd.nii.gz", &gzip(&h.with_data(&[0; 64])));
    assert_error(
        load_volume(&path),
        &path,
        &["more than", "gzip bytes can inflate to"],
    );
    let path = dir.file("absurd2.nii", &h.with_data(&[0; 64]));
    assert_error(load_volume(&path), &path, &["data truncated"]);

    let mut h = Hdr::v1(&[4, 4, 4], DataType::I16, false);
    h.i16(70, 3);
    let path = dir.file("datatype.nii", &h.with_data(&le_i16(&[7; 64])));
    assert_error(load_volume(&path), &path, &["unknown datatype code 3"]);
    h.i16(70, 1536);
    let path = dir.file("float128.nii", &h.with_data(&le_i16(&[7; 64])));
    assert_error(
        load_volume(&path),
        &path,
        &["datatype 1536", "not supported"],
    );

    let mut h = Hdr::v1(&[4, 4, 4], DataType::I16, false);
    h.bytes(344, b"n+3\0");
    let path = dir.file("magic.nii", &h.with_data(&le_i16(&[7; 64])));
    assert_error(load_volume(&path), &path, &["bad NIfTI-1 magic"]);
    let path = dir.file(
        "not_nifti.nii",
        b"P5 2 2 255\n\x01\x02\x03\x04 a PGM picture, not NIfTI",
    );
    assert_error(
        load_volume(&path),
        &path,
        &["not a NIfTI file", "`sizeof_hdr`"],
    );

    // Gzip damage: corrupt bytes in the middle, or cut short.
    let zipped = gzip(
        &Hdr::v1(&[64, 64, 16], DataType::I16, false).with_data(&le_i16(
            &(0..65536).map(|v| (v % 331) as i16).collect::<Vec<_>>(),
        )),
    );
    let mut corrupt = zipped.clone();
    let middle = corrupt.len() / 2;
    for b in &mut corrupt[middle..middle + 16] {
        *b ^= 0x5a;
    }
    let path = dir.file("corrupt.nii.gz", &corrupt);
    assert_error(load_volume(&path), &path, &["gzip"]);
    let path = dir.file("cut.nii.gz", &zipped[..zipped.len() / 2]);
    assert_error(load_volume(&path), &path, &["truncated"]);
    let path = dir.file("cut_header.nii.gz", &zipped[..12]);
    assert_error(load_volume(&path), &path, &["gzip"]);

    let missing = dir.0.join("missing.nii");
    assert!(matches!(load_volume(&missing), Err(IoError::File { .. })));
}

// ---------------------------------------------------------------------------------------------
// Writing

fn oblique() -> Affine {
    // A rotation of 30 degrees about z, 2 × 3 × 1.5 mm voxels, x flipped, and an offset.
    let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    Affine([
        [-2.0 * c, -3.0 * s, 0.0, 12.5],
        [-2.0 * s, 3.0 * c, 0.0, -40.0],
        [0.0, 0.0, 1.5, 7.25],
        [0.0, 0.0, 0.0, 1.0],
    ])
}

fn f32_affine(a: &Affine) -> Vec<Vec<f64>> {
    a.0.iter()
        .map(|r| r.iter().map(|&v| f64::from(v as f32)).collect())
        .collect()
}

#[test]
fn write_read_round_trips() {
    let dir = TempDir::new("roundtrip");
    let affine = oblique();
    // 3D with one channel, 4D with three, 2D with one.
    for (n, shape) in [&[1usize, 5, 4, 3][..], &[3, 5, 4, 3], &[1, 6, 7]]
        .into_iter()
        .enumerate()
    {
        let data = ArrayD::from_shape_fn(IxDyn(shape), |i| {
            (0..shape.len())
                .map(|a| i[a] as f32 * 10f32.powi(a as i32))
                .sum::<f32>()
                * 0.125
                - 3.0
        });
        let volume = Volume::new(data, affine);
        for ext in ["nii", "nii.gz"] {
            let path = dir.0.join(format!("volume{n}.{ext}"));
            save_volume(&path, &volume).unwrap();
            let back = load_volume(&path).unwrap();
            assert_eq!(back.data(), volume.data(), "{path:?}");
            assert_affine(back.affine(), &f32_affine(&affine), 0.0);

            // nibabel reads the same values, shape and affine, and a qform equal to the sform.
            let dump = nibabel(&path);
            let mut file_shape: Vec<usize> = shape[1..].to_vec();
            if shape[0] > 1 {
                file_shape.push(shape[0]);
            }
            assert_eq!(json_shape(&dump), file_shape, "{path:?}");
            assert_values(
                &file_order(volume.data()),
                &nibabel_voxels(&dump),
                "nibabel",
            );
            assert_affine(back.affine(), &json_matrix(&dump["affine"]), 0.0);
            assert_affine(&affine, &json_matrix(&dump["qform"]), 1e-5);
            assert_eq!(
                (dump["qform_code"].as_i64(), dump["sform_code"].as_i64()),
                (Some(2), Some(2))
            );
        }
    }
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");

    // A 2D volume of two channels is written as x, y, 1, channels.
    let two = Volume::new(
        ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| {
            (i[0] * 100 + i[1] * 10 + i[2]) as f32
        }),
        Affine::IDENTITY,
    );
    let path = dir.0.join("two.nii");
    save_volume(&path, &two).unwrap();
    let back = load_volume(&path).unwrap();
    assert_eq!(back.data().shape(), [2, 3, 4, 1]);
    assert_eq!(back.data()[[1, 2, 3, 0]], 123.0);

    // A name without a NIfTI extension is refused.
    let path = dir.0.join("volume.png");
    assert_error(save_volume(&path, &two), &path, &["`.nii` or `.nii.gz`"]);
    assert_error(
        save_volume(dir.0.join("no/such/folder.nii"), &two),
        &dir.0.join("no/such/folder.nii"),
        &["No such file"],
    );
}

#[test]
fn labels_round_trip_as_uint8_or_uint16() {
    let dir = TempDir::new("labels");
    let small = ArrayD::from_shape_fn(IxDyn(&[1, 4, 3, 2]), |i| {
        (i[1] + i[2] * 4 + i[3] * 12) as u16 * 10
    });
    let large = small.mapv(|l| l * 200);
    for (name, labels, datatype) in [
        ("small.nii.gz", small, "uint8"),
        ("large.nii", large, "uint16"),
    ] {
        let map = LabelMap::new(labels, Affine::from_spacing([1.0, 2.0, 3.0]));
        let path = dir.0.join(name);
        save_labels(&path, &map).unwrap();
        let back = load_labels(&path).unwrap();
        assert_eq!(back, map);
        let dump = nibabel(&path);
        assert_eq!(dump["datatype"], datatype);
        let expected: Vec<f32> = file_order(map.volume().data())
            .iter()
            .map(|&l| f32::from(l))
            .collect();
        assert_values(&expected, &nibabel_voxels(&dump), name);
    }
}

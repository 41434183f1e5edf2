//! The MNI ICBM152 2009a template at 2 mm: T1, tissue labels and the four spatial blocks.

use std::error::Error;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use delira::io::{self, Affine, Volume};
use ndarray::{Array3, ArrayView3, Axis, Ix3};

/// The three template files in `data/mni/` (`scripts/provision-data`).
pub const T1: &str = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz";
pub const GM: &str = "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz";
pub const WM: &str = "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz";

/// The three template files in `dir`, in the order T1, GM, WM.
pub fn files(dir: &Path) -> [std::path::PathBuf; 3] {
    [T1, GM, WM].map(|name| dir.join(name))
}

/// Label 1: cerebrospinal fluid and other tissue inside the brain mask.
pub const OTHER: i64 = 1;
/// Label 2: grey matter.
pub const GREY: i64 = 2;
/// Label 3: white matter.
pub const WHITE: i64 = 3;
/// Labels 0 (outside the brain) to 3.
pub const CLASSES: usize = 4;

/// The template at 2 mm: a T1 image scaled by the 99th percentile inside the brain (clamped to
/// `[0, 1.5]`) and labels 0 (outside the brain), 1 (CSF and other), 2 (GM), 3 (WM); the four
/// spatial blocks that make the folds.
pub struct Template {
    /// The scaled T1 image.
    pub t1: Array3<f32>,
    /// The tissue labels.
    pub labels: Array3<i64>,
    /// Four boxes that tile the grid, cut at the median y and z of the brain.
    pub blocks: Vec<[Range<usize>; 3]>,
    /// The voxel-to-world affine of the 2 mm grid (see [`halved_affine`]).
    pub affine: Affine,
}

/// Reads the three MNI files in `dir` and derives the 2 mm template.
pub fn load_template(dir: &Path) -> Result<Template, Box<dyn Error>> {
    let started = Instant::now();
    let read = |name: &str| -> Result<Volume<f32>, Box<dyn Error>> {
        io::load_volume(dir.join(name)).map_err(|e| {
            format!("{e}; run `scripts/provision-data` to fetch the MNI template").into()
        })
    };
    let (t1, gm, wm) = (read(T1)?, read(GM)?, read(WM)?);
    let affine = halved_affine(t1.affine());
    let (t1, gm, wm) = (halve(&t1)?, halve(&gm)?, halve(&wm)?);

    let labels = Array3::from_shape_fn(t1.raw_dim(), |v| {
        if t1[v] <= 0.0 {
            return 0;
        }
        let other = (255.0 - gm[v] - wm[v]).max(0.0);
        if gm[v] >= wm[v] && gm[v] >= other {
            GREY
        } else if wm[v] > gm[v] && wm[v] >= other {
            WHITE
        } else {
            OTHER
        }
    });
    let mask = labels.mapv(|l| l > 0);
    let t1 = scale_inside(&t1, &mask);
    let blocks = spatial_blocks(&labels);
    println!(
        "MNI ICBM152 2009a at 2 mm: {:?} in {:.1} s; voxels per label 0..=3: {:?}",
        t1.shape(),
        started.elapsed().as_secs_f64(),
        (0..4)
            .map(|l| labels.iter().filter(|&&x| x == l).count())
            .collect::<Vec<_>>()
    );
    Ok(Template {
        t1,
        labels,
        blocks,
        affine,
    })
}

/// The affine of the grid [`halve`] makes from a grid with `affine`: 2 mm voxel `i` is the mean
/// of 1 mm voxels `2i` and `2i + 1`, so its centre is at 1 mm index `2i + 0.5`.
pub fn halved_affine(affine: &Affine) -> Affine {
    let mut step = Affine::from_spacing([2.0; 3]);
    for row in step.0.iter_mut().take(3) {
        row[3] = 0.5;
    }
    affine.compose(&step)
}

/// The mean of every 2 × 2 × 2 block of the first channel (1 mm to 2 mm; an odd last plane is
/// dropped).
pub fn halve(volume: &Volume<f32>) -> Result<Array3<f32>, Box<dyn Error>> {
    let data = volume
        .data()
        .index_axis(Axis(0), 0)
        .into_dimensionality::<Ix3>()?;
    let (x, y, z) = data.dim();
    let mut out = Array3::<f32>::zeros((x / 2, y / 2, z / 2));
    for ((i, j, k), v) in data.indexed_iter() {
        if let Some(cell) = out.get_mut((i / 2, j / 2, k / 2)) {
            *cell += v / 8.0;
        }
    }
    Ok(out)
}

/// `image` divided by its 99th percentile inside `mask`, clamped to `[0, 1.5]`: the intensity
/// normalisation of every input, template or unseen brain.
pub fn scale_inside(image: &Array3<f32>, mask: &Array3<bool>) -> Array3<f32> {
    let mut inside: Vec<f32> = image
        .iter()
        .zip(mask)
        .filter(|&(_, &m)| m)
        .map(|(&v, _)| v)
        .collect();
    inside.sort_unstable_by(f32::total_cmp);
    let q99 = inside
        .get(((inside.len() as f64 - 1.0) * 0.99) as usize)
        .copied()
        .unwrap_or(1.0)
        .max(f32::EPSILON);
    image.mapv(|v| (v / q99).clamp(0.0, 1.5))
}

/// Four boxes that tile the grid, cut at the median y and z of the brain voxels (label > 0):
/// `[y low, z low]`, `[y low, z high]`, `[y high, z low]`, `[y high, z high]`.
fn spatial_blocks(labels: &Array3<i64>) -> Vec<[Range<usize>; 3]> {
    let median = |axis: usize| {
        let mut values: Vec<usize> = labels
            .indexed_iter()
            .filter(|&(_, &l)| l > 0)
            .map(|((x, y, z), _)| [x, y, z][axis])
            .collect();
        values.sort_unstable();
        values.get(values.len() / 2).copied().unwrap_or(0)
    };
    let (my, mz) = (median(1), median(2));
    let (nx, ny, nz) = labels.dim();
    let mut blocks = Vec::new();
    for ys in [0..my, my..ny] {
        for zs in [0..mz, mz..nz] {
            blocks.push([0..nx, ys.clone(), zs]);
        }
    }
    blocks
}

/// The part of `array` inside `block`.
pub fn crop<'a, T>(array: &'a Array3<T>, block: &[Range<usize>; 3]) -> ArrayView3<'a, T> {
    array.slice(ndarray::s![
        block[0].clone(),
        block[1].clone(),
        block[2].clone()
    ])
}

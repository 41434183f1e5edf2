//! Transfer to an unseen brain: Colin27 (`ch2bet`, brain-extracted, 1 mm).

use std::error::Error;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use delira::backend::Network;
use delira::io::{self, LabelMap};
use ndarray::{Array2, Array3, ArrayD, Axis, IxDyn};

use crate::baseline::Thresholds;
use crate::evaluate::{predict, tissue_labels};
use crate::template::{GREY, WHITE, halve, scale_inside};
use crate::train::Params;

/// Colin27 at 2 mm, scaled as the template is (99th percentile inside its mask).
pub struct Colin {
    /// The scaled image.
    pub t1: Array3<f32>,
    /// The brain mask at 2 mm: at least half of the eight 1 mm voxels are inside `ch2bet > 0`.
    pub mask: Array3<bool>,
    /// The 1 mm image as read (its grid and affine are those of the written prediction).
    pub original: io::Volume<f32>,
}

/// Reads `ch2bet.nii.gz` from `dir` and prepares it.
pub fn load(dir: &Path) -> Result<Colin, Box<dyn Error>> {
    let original = io::load_volume(dir.join("ch2bet.nii.gz")).map_err(|e| {
        format!("{e}; run `scripts/provision-data` to fetch Colin27 (Debian's mricron-data)")
    })?;
    let inside = original.map(|&v| if v > 0.0 { 1.0_f32 } else { 0.0 });
    let mask = halve(&inside)?.mapv(|f| f >= 0.5);
    let t1 = halve(&original)?;
    let t1 = scale_inside(&t1, &mask);
    let t1 = ndarray::Zip::from(&t1)
        .and(&mask)
        .map_collect(|&v, &m| if m { v } else { 0.0 });
    Ok(Colin { t1, mask, original })
}

/// The fraction of mask voxels labelled grey or white matter.
pub fn tissue_fraction(labels: &Array3<i64>, mask: &Array3<bool>) -> f64 {
    let inside = mask.iter().filter(|&&m| m).count();
    let tissue = labels
        .iter()
        .zip(mask)
        .filter(|&(&l, &m)| m && (l == GREY || l == WHITE))
        .count();
    tissue as f64 / inside.max(1) as f64
}

/// The threshold rule's labels of Colin27.
pub fn threshold_labels(colin: &Colin, thresholds: Thresholds) -> Array3<i64> {
    ndarray::Zip::from(&colin.t1)
        .and(&colin.mask)
        .map_collect(|&v, &m| if m { thresholds.label(v) } else { 0 })
}

/// The network's labels of Colin27 (2 mm).
pub fn segment<N: Network>(
    network: &mut N,
    colin: &Colin,
    params: &Params,
) -> Result<Array3<i64>, Box<dyn Error>> {
    let logits = predict(network, &colin.t1.view(), params)?;
    Ok(tissue_labels(&logits, &colin.mask.view()))
}

/// Writes the 2 mm labels on the 1 mm grid of the input (each 2 mm voxel to its eight 1 mm
/// voxels, an odd last plane taking the label of the one before), with the input's affine.
pub fn write_prediction(
    colin: &Colin,
    labels: &Array3<i64>,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let shape = colin.original.spatial_shape().to_vec();
    let (nx, ny, nz) = labels.dim();
    let fine = ArrayD::from_shape_fn(IxDyn(&[1, shape[0], shape[1], shape[2]]), |i| {
        let at = |v: usize, n: usize| (v / 2).min(n - 1);
        labels[[at(i[1], nx), at(i[2], ny), at(i[3], nz)]] as u16
    });
    io::save_labels(path, &LabelMap::new(fine, *colin.original.affine()))?;
    Ok(())
}

/// An axial mid-slice PNG: the image in grey, grey matter tinted red, white matter blue; the
/// threshold rule's labels on the left, the network's on the right.
pub fn write_overlay(
    colin: &Colin,
    network: &Array3<i64>,
    threshold: &Array3<i64>,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let z = colin.t1.dim().2 / 2;
    let panel = |labels: &Array3<i64>| -> Array2<[u8; 3]> {
        let image = colin.t1.index_axis(Axis(2), z);
        let labels = labels.index_axis(Axis(2), z);
        Array2::from_shape_fn(image.dim(), |(x, y)| {
            let g = (image[[x, y]] / 1.2 * 255.0).clamp(0.0, 255.0);
            let tint = |c: [f32; 3]| c.map(|c| (0.55 * g + 0.45 * c) as u8);
            match labels[[x, y]] {
                GREY => tint([255.0, 60.0, 40.0]),
                WHITE => tint([60.0, 140.0, 255.0]),
                _ => [g as u8; 3],
            }
        })
    };
    let panels = [panel(threshold), panel(network)];
    // Rows run from anterior (top) to posterior, columns from the subject's left to right
    // (neurological view of an RAS grid), upscaled 3x.
    let (nx, ny) = panels[0].dim();
    let scale = 3;
    let (width, height) = (2 * nx * scale + scale, ny * scale);
    let mut pixels = vec![0_u8; width * height * 3];
    for (p, panel) in panels.iter().enumerate() {
        for row in 0..height {
            for col in 0..nx * scale {
                let (x, y) = (col / scale, ny - 1 - row / scale);
                let at = (row * width + p * (nx * scale + scale) + col) * 3;
                pixels[at..at + 3].copy_from_slice(&panel[[x, y]]);
            }
        }
    }
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&pixels)?;
    Ok(())
}

//! Writes `docs/augment-preview.png`: the axial mid-slice of the MNI ICBM152 T1 template
//! before and after an augmentation pipeline, and the augmented tissue labels over the
//! augmented image (they stay aligned).
//!
//! Needs `scripts/provision-data` (the template lives in `data/mni/`).
//!
//! ```text
//! cargo run --release --example augment_preview
//! ```

use std::error::Error;
use std::fs::File;
use std::io::BufWriter;

use delira::augment::{
    AffineSpec, BiasFieldSpec, ElasticSpec, FlipSpec, GammaSpec, NoiseSpec, Pipeline, Transform,
};
use delira::io::{LabelMap, Volume, load_volume};
use delira::random::StreamKey;
use ndarray::{Array2, ArrayView2, Axis};

const MNI: &str = "data/mni/mni_icbm152_";
const SUFFIX: &str = "_tal_nlin_sym_09a_converted.nii.gz";

fn main() -> Result<(), Box<dyn Error>> {
    let t1 = load_volume(format!("{MNI}t1{SUFFIX}"))?;
    let gm = load_volume(format!("{MNI}gm{SUFFIX}"))?;
    let wm = load_volume(format!("{MNI}wm{SUFFIX}"))?;
    // tissue labels: 1 grey matter, 2 white matter, where that tissue's probability (stored as
    // 0..=255) exceeds one half and the other's
    let labels = gm
        .data()
        .iter()
        .zip(wm.data())
        .map(|(&g, &w)| match (g, w) {
            (g, w) if g > 127.5 && g >= w => 1,
            (g, w) if w > 127.5 && w > g => 2,
            _ => 0,
        })
        .collect::<Vec<u16>>();
    let labels = ndarray::ArrayD::from_shape_vec(gm.data().raw_dim(), labels)?;
    let labels = LabelMap::new(labels.as_standard_layout().into_owned(), *gm.affine());
    let original = t1.clone();

    let pipeline = Pipeline::new([
        AffineSpec::default()
            .rotate_deg_per_axis([[0.0, 0.0], [0.0, 0.0], [20.0, 20.0]])
            .scale(0.9, 0.9)
            .into(),
        ElasticSpec {
            control_points: 7,
            sigma_mm: [6.0, 6.0],
        }
        .into(),
        FlipSpec::new([0]).p(1.0).into(),
        BiasFieldSpec {
            order: 3,
            magnitude: 0.3,
        }
        .into(),
        GammaSpec { gamma: [1.4, 1.4] }.into(),
        Transform::GaussianNoise(NoiseSpec { std: [3.0, 3.0] }),
    ]);
    let mut sample = (t1, labels);
    let mut stream = StreamKey::new(2026).sample(0).purpose("augment").stream();
    pipeline.apply(&mut sample, &mut stream)?;

    let before = mid_axial(&original);
    let after = mid_axial(&sample.0);
    let label_slice = mid_axial(&sample.1.0.map(|&l| f32::from(l)));
    let panels = [gray(&before), gray(&after), overlay(&after, &label_slice)];
    write_png("docs/augment-preview.png", &panels)?;
    println!(
        "wrote docs/augment-preview.png ({} × {} per panel)",
        before.ncols(),
        before.nrows()
    );
    Ok(())
}

/// The middle axial slice of channel 0 as rows (anterior up) × columns (left to right).
fn mid_axial(v: &Volume<f32>) -> Array2<f32> {
    let data = v.data().index_axis(Axis(0), 0);
    let z = data.shape()[2] / 2;
    let slice: ArrayView2<'_, f32> = data
        .index_axis(Axis(2), z)
        .into_dimensionality()
        .expect("a 3D volume");
    // [x, y] -> rows are y from the top (anterior), columns are x
    let mut out = slice.t().to_owned();
    out.invert_axis(Axis(0));
    out
}

/// RGB pixels of an intensity slice scaled between its 1st and 99.5th percentiles.
fn gray(slice: &Array2<f32>) -> Array2<[u8; 3]> {
    let mut values: Vec<f32> = slice.iter().copied().collect();
    values.sort_by(f32::total_cmp);
    let lo = values[values.len() / 100];
    let hi = values[values.len() * 995 / 1000];
    slice.mapv(|v| {
        let g = ((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0;
        [g as u8; 3]
    })
}

/// The image in gray with grey matter tinted green and white matter tinted blue.
fn overlay(image: &Array2<f32>, labels: &Array2<f32>) -> Array2<[u8; 3]> {
    let mut out = gray(image);
    for (px, &l) in out.iter_mut().zip(labels) {
        let tint = match l as u16 {
            1 => [40, 200, 80],
            2 => [60, 120, 230],
            _ => continue,
        };
        *px = std::array::from_fn(|c| ((u16::from(px[c]) + 2 * tint[c]) / 3) as u8);
    }
    out
}

fn write_png(path: &str, panels: &[Array2<[u8; 3]>]) -> Result<(), Box<dyn Error>> {
    let gap = 4;
    let height = panels.iter().map(Array2::nrows).max().unwrap_or(0);
    let width: usize = panels.iter().map(|p| p.ncols() + gap).sum::<usize>() - gap;
    let mut pixels = vec![255_u8; width * height * 3];
    let mut left = 0;
    for panel in panels {
        for ((r, c), px) in panel.indexed_iter() {
            let at = (r * width + left + c) * 3;
            pixels[at..at + 3].copy_from_slice(px);
        }
        left += panel.ncols() + gap;
    }
    std::fs::create_dir_all("docs")?;
    let mut encoder = png::Encoder::new(
        BufWriter::new(File::create(path)?),
        u32::try_from(width)?,
        u32::try_from(height)?,
    );
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&pixels)?;
    Ok(())
}

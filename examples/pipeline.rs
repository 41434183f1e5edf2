//! The data pipeline on real NIfTI volumes, end to end.
//!
//! Loads the MNI ICBM152 2009a template (T1 and grey/white-matter probability maps, provisioned by
//! `scripts/provision-data`), derives tissue labels at 2 mm, cuts 32³ training patches from four
//! spatial blocks of the brain, splits the patches into four folds by block (so no block is in two
//! folds: the template is left/right symmetric, and only a spatial split does not leak), and runs
//! one epoch of the first fold's training patches through the threaded loader with a random
//! augmentation. It prints shapes, fold sizes and timings.
//!
//! ```sh
//! scripts/provision-data
//! cargo run --release --example pipeline            # or: scripts/example
//! cargo run --release --example pipeline -- DIR     # another folder with the three MNI files
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use delira::data::split::group_kfold;
use delira::data::{BatchSampler, FnDataset, Loader, LoaderConfig, RandomSampler, Record, Value};
use delira::io::{self, Volume};
use delira::random::Stream;
use ndarray::{Array3, ArrayD, Axis, Ix3, s};

const T1: &str = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz";
const GM: &str = "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz";
const WM: &str = "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz";

const PATCH: usize = 32;
const STRIDE: usize = 16;
const FOLDS: usize = 4;
const SEED: u64 = 42;

/// The template at 2 mm: a T1 image scaled to `[0, 1]` and labels 0 (outside the brain),
/// 1 (CSF and other), 2 (grey matter), 3 (white matter).
struct Template {
    t1: Array3<f32>,
    labels: Array3<i64>,
}

/// A 32³ patch: its corner in the 2 mm grid and the spatial block it lies in.
#[derive(Clone, Copy, Debug)]
struct Patch {
    corner: [usize; 3],
    block: usize,
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("data/mni"), PathBuf::from);
    let template = Arc::new(load_template(&dir)?);
    let (patches, medians) = cut_patches(&template.labels);
    println!(
        "patches: {} of {PATCH}³ (stride {STRIDE}) in four blocks cut at y = {}, z = {}",
        patches.len(),
        medians[0],
        medians[1]
    );

    let blocks: Vec<usize> = patches.iter().map(|p| p.block).collect();
    let split = group_kfold(&blocks, FOLDS, SEED)?;
    let split_file = std::env::temp_dir().join("delira-pipeline-split.json");
    split.save(&split_file)?;
    println!("\n fold  train  test  held-out block");
    for (k, fold) in split.folds().iter().enumerate() {
        let held_out = blocks[fold.test[0]];
        println!(
            "{k:>5}  {:>5}  {:>4}  {held_out}",
            fold.train.len(),
            fold.test.len()
        );
    }
    println!("split saved to {}", split_file.display());

    run_loader(&template, patches, &split.folds()[0].train)
}

/// Reads the three MNI files and derives the 2 mm template.
fn load_template(dir: &Path) -> Result<Template, Box<dyn Error>> {
    let started = Instant::now();
    let read = |name: &str| -> Result<Volume<f32>, Box<dyn Error>> {
        let path = dir.join(name);
        io::load_volume(&path).map_err(|e| {
            format!("{e}; run `scripts/provision-data` to fetch the MNI template").into()
        })
    };
    let (t1, gm, wm) = (read(T1)?, read(GM)?, read(WM)?);
    let megabytes = 3.0 * t1.data().len() as f64 / 1e6;
    println!(
        "read 3 volumes of {:?} at {:?} mm in {:.0} ms ({:.0} Mvoxel/s, gzip included)",
        t1.spatial_shape(),
        t1.spacing(),
        started.elapsed().as_secs_f64() * 1e3,
        megabytes / started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let (t1, gm, wm) = (halve(&t1)?, halve(&gm)?, halve(&wm)?);
    let labels = Array3::from_shape_fn(t1.raw_dim(), |v| {
        if t1[v] <= 0.0 {
            return 0;
        }
        let other = (255.0 - gm[v] - wm[v]).max(0.0);
        if gm[v] >= wm[v] && gm[v] >= other {
            2
        } else if wm[v] > gm[v] && wm[v] >= other {
            3
        } else {
            1
        }
    });
    let scale = percentile_inside(&t1, &labels, 0.99);
    let t1 = t1.mapv(|v| (v / scale).clamp(0.0, 1.5));
    let counts = (0..4).map(|l| labels.iter().filter(|&&x| x == l).count());
    println!(
        "2 mm template {:?} in {:.0} ms; voxels per label 0..=3: {:?}",
        t1.shape(),
        started.elapsed().as_secs_f64() * 1e3,
        counts.collect::<Vec<_>>()
    );
    Ok(Template { t1, labels })
}

/// The mean of every 2 × 2 × 2 block (a 1 mm volume to 2 mm; an odd last plane is dropped).
fn halve(volume: &Volume<f32>) -> Result<Array3<f32>, Box<dyn Error>> {
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

/// The `q`-quantile of the image inside the brain (label > 0).
fn percentile_inside(image: &Array3<f32>, labels: &Array3<i64>, q: f64) -> f32 {
    let mut inside: Vec<f32> = image
        .iter()
        .zip(labels)
        .filter(|&(_, &l)| l > 0)
        .map(|(&v, _)| v)
        .collect();
    inside.sort_unstable_by(f32::total_cmp);
    inside
        .get(((inside.len() as f64 - 1.0) * q) as usize)
        .copied()
        .unwrap_or(1.0)
        .max(f32::EPSILON)
}

/// Patches that lie wholly inside one of four blocks, cut at the median y and z of the brain,
/// and hold at least 10% brain; and the two medians.
fn cut_patches(labels: &Array3<i64>) -> (Vec<Patch>, [usize; 2]) {
    let brain: Vec<[usize; 3]> = labels
        .indexed_iter()
        .filter(|&(_, &l)| l > 0)
        .map(|((x, y, z), _)| [x, y, z])
        .collect();
    let median = |axis: usize| {
        let mut values: Vec<usize> = brain.iter().map(|v| v[axis]).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    let (my, mz) = (median(1), median(2));
    let (nx, ny, nz) = labels.dim();

    let mut patches = Vec::new();
    for (block, (ys, zs)) in [
        ((0, my), (0, mz)),
        ((0, my), (mz, nz)),
        ((my, ny), (0, mz)),
        ((my, ny), (mz, nz)),
    ]
    .into_iter()
    .enumerate()
    {
        for x in corners(0, nx) {
            for y in corners(ys.0, ys.1) {
                for z in corners(zs.0, zs.1) {
                    let window = labels.slice(s![x..x + PATCH, y..y + PATCH, z..z + PATCH]);
                    let inside = window.iter().filter(|&&l| l > 0).count();
                    if inside * 10 >= window.len() {
                        patches.push(Patch {
                            corner: [x, y, z],
                            block,
                        });
                    }
                }
            }
        }
    }
    (patches, [my, mz])
}

/// Patch corners from `lo` with the stride, plus one flush with `hi`, for patches inside `lo..hi`.
fn corners(lo: usize, hi: usize) -> Vec<usize> {
    if hi < lo + PATCH {
        return Vec::new();
    }
    let mut corners: Vec<usize> = (lo..=hi - PATCH).step_by(STRIDE).collect();
    if corners.last() != Some(&(hi - PATCH)) {
        corners.push(hi - PATCH);
    }
    corners
}

/// One epoch of the training patches of a fold through the loader, with a random flip and
/// intensity scaling drawn from each sample's own stream.
fn run_loader(
    template: &Arc<Template>,
    patches: Vec<Patch>,
    train: &[usize],
) -> Result<(), Box<dyn Error>> {
    let source = Arc::clone(template);
    let dataset = FnDataset::new(patches.len(), move |i| {
        let Patch {
            corner: [x, y, z],
            block,
        } = patches[i];
        let window = s![x..x + PATCH, y..y + PATCH, z..z + PATCH];
        let image = source.t1.slice(window).insert_axis(Axis(0)).to_owned();
        let labels = source.labels.slice(window).to_owned();
        Ok(Record::new()
            .with("image", image.into_dyn())
            .with("labels", labels.into_dyn())
            .with("block", format!("block {block}")))
    });

    let config = LoaderConfig::builder()
        .batch_size(4)
        .workers(2)
        .prefetch(4)
        .seed(SEED)
        .build();
    let sampler = RandomSampler::new(train.to_vec(), SEED);
    let batches = BatchSampler::new(sampler.clone(), config.batch_size, config.drop_last);
    let loader = Loader::new(dataset, sampler, config)?
        .with_transform(|record, stream| Ok(augment(record, stream)));
    println!(
        "\nfold 0: {} training patches, {} batches of 4 on 2 worker threads",
        train.len(),
        batches.num_batches()
    );

    let started = Instant::now();
    let mut epoch = loader.epoch(0);
    let mut first = true;
    let mut samples = 0;
    for batch in epoch.by_ref() {
        let batch = batch?;
        if first {
            let image = batch.f32("image").ok_or("the batch has no `image` field")?;
            let labels = batch
                .i64("labels")
                .ok_or("the batch has no `labels` field")?;
            println!(
                "first batch: image {:?} f32, labels {:?} i64, samples {:?} from {:?}",
                image.shape(),
                labels.shape(),
                batch.indices(),
                batch.text("block").unwrap_or_default()
            );
            first = false;
        }
        samples += batch.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = epoch.stats();
    println!(
        "epoch 0: {samples} samples in {:.0} ms ({:.0} samples/s); the consumer waited {:.0} ms \
         for data ({:.0}% stall)",
        elapsed * 1e3,
        samples as f64 / elapsed,
        stats.total_stall().as_secs_f64() * 1e3,
        stats.stall_fraction() * 100.0
    );
    Ok(())
}

/// A random flip along x (image and labels together) and a random intensity scale.
fn augment(mut record: Record, stream: &mut Stream) -> Record {
    let flip = stream.bernoulli(0.5);
    let scale = stream.uniform(0.9, 1.1) as f32;
    for name in ["image", "labels"] {
        match record.get_mut(name) {
            Some(Value::F32(a)) => flip_x(a, flip, 1).mapv_inplace(|v| v * scale),
            Some(Value::I64(a)) => {
                flip_x(a, flip, 0);
            }
            _ => {}
        }
    }
    record
}

/// Reverses `axis` of `array` in place when `flip` is set.
fn flip_x<T: Clone>(array: &mut ArrayD<T>, flip: bool, axis: usize) -> &mut ArrayD<T> {
    if flip {
        array.invert_axis(Axis(axis));
        *array = array.as_standard_layout().into_owned();
    }
    array
}

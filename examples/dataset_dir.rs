//! A dataset of brain scans laid out one folder per subject, declared in ten lines, loaded lazily
//! and cached, and fed to the loader.
//!
//! ```sh
//! cargo run --example dataset_dir -- ROOT   # ROOT/<subject>/{t1,tissue}.nii.gz
//! cargo run --example dataset_dir           # a demo layout cut from the MNI template
//! ```
//!
//! The demo needs the template: `scripts/provision-data` puts it in `data/mni/`.

use std::error::Error;
use std::path::{Path, PathBuf};

use delira::Dataset;
use delira::data::{
    CacheBudget, Dataset as _, DatasetExt, Loader, LoaderConfig, SequentialSampler,
};
use delira::io::{Affine, LabelMap, Volume};

/// One subject: a T1 image, its tissue labels, and the folder name.
#[derive(Dataset, Clone)]
struct Subject {
    #[input(nifti = "t1.nii.gz", normalize = "zscore_nonzero")]
    t1: Volume<f32>,
    #[target(nifti = "tissue.nii.gz")]
    tissue: LabelMap,
    #[meta(subject)]
    id: String,
}

fn main() -> Result<(), Box<dyn Error>> {
    let root = match std::env::args_os().nth(1) {
        Some(root) => PathBuf::from(root),
        None => demo_layout()?,
    };

    let subjects = Subject::load_dir(&root)?;
    println!("{} subjects in {}", subjects.len(), root.display());
    let count = subjects.len();
    let subjects = subjects.cached(CacheBudget::EvictAbove(512 << 20));

    let config = LoaderConfig::builder().batch_size(2).workers(2).build();
    let loader = Loader::new(subjects, SequentialSampler::new(count), config)?;
    for epoch in 0..2 {
        for batch in loader.epoch(epoch) {
            let batch = batch?;
            let t1 = batch.f32("t1").ok_or("no field `t1`")?;
            let tissue = batch.i64("tissue").ok_or("no field `tissue`")?;
            println!(
                "epoch {epoch}: {:?}  t1 {:?}  tissue {:?}",
                batch.text("id").unwrap_or_default(),
                t1.shape(),
                tissue.shape()
            );
        }
    }
    let stats = loader.dataset().stats();
    println!(
        "files read {} times, cache hits {}, {} bytes cached",
        stats.loads, stats.hits, stats.bytes
    );
    Ok(())
}

/// Four 32³ crops of the MNI template with tissue labels (0 outside the brain, then the argmax
/// of other / grey matter / white matter), written as `subject-N/{t1,tissue}.nii.gz`.
fn demo_layout() -> Result<PathBuf, Box<dyn Error>> {
    let mni = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mni");
    let read = |name: &str| {
        let path = mni.join(format!(
            "mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
        ));
        delira::io::load_volume(&path).map_err(|e| {
            format!("{e}; run `scripts/provision-data` for the MNI template, or give a folder")
        })
    };
    let (t1, gm, wm) = (read("t1")?, read("gm")?, read("wm")?);

    let root = std::env::temp_dir().join("delira-example-dataset-dir");
    for (i, origin) in [[60, 80, 60], [100, 80, 60], [60, 120, 80], [100, 120, 80]]
        .into_iter()
        .enumerate()
    {
        let folder = root.join(format!("subject-{}", i + 1));
        std::fs::create_dir_all(&folder)?;
        let (t, g, w) = (crop(&t1, origin), crop(&gm, origin), crop(&wm, origin));
        let labels = ndarray::Zip::from(t.data())
            .and(g.data())
            .and(w.data())
            .map_collect(|&t, &g, &w| {
                let other = (255.0 - g - w).max(0.0);
                match () {
                    () if t == 0.0 => 0u16,
                    () if other >= g && other >= w => 1,
                    () if g >= w => 2,
                    () => 3,
                }
            });
        delira::io::save_volume(folder.join("t1.nii.gz"), &t)?;
        delira::io::save_labels(
            folder.join("tissue.nii.gz"),
            &LabelMap::new(labels, *t.affine()),
        )?;
    }
    Ok(root)
}

fn crop(volume: &Volume<f32>, [x, y, z]: [usize; 3]) -> Volume<f32> {
    const SIZE: usize = 32;
    let data = volume
        .data()
        .slice(ndarray::s![.., x..x + SIZE, y..y + SIZE, z..z + SIZE])
        .to_owned()
        .into_dyn();
    let mut shift = Affine::IDENTITY;
    for (axis, offset) in [x, y, z].into_iter().enumerate() {
        shift.0[axis][3] = offset as f64;
    }
    Volume::new(data, volume.affine().compose(&shift))
}

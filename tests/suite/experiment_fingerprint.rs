//! The data fingerprint of a run: the content of every sample by default, files streamed, a
//! declared `fingerprint:`, and a job refused when the data changed under its run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use delira::data::{DataError, Dataset, FnDataset, Record};
use delira::experiment::{Experiment as _, ExperimentError, Fingerprint, Manifest};
use delira::testing::LinearNetwork;
use ndarray::{ArrayD, IxDyn, ShapeBuilder as _, arr0};

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("delira-fingerprint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Sample `i` of the tiny dataset: an `f32` image `[1, 2]` = `[i + 0.25, 2i - 1.5]`, an `i64`
/// label `7i - 3` and a text id `s{i}`.
fn tiny_sample(i: usize) -> Record {
    let v = i as f32;
    Record::new()
        .with(
            "image",
            ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![v + 0.25, 2.0 * v - 1.5]).unwrap(),
        )
        .with("label", arr0(7 * i as i64 - 3).into_dyn())
        .with("id", format!("s{i}"))
}

/// The tiny dataset with its samples in `order`.
fn tiny(order: [usize; 3]) -> FnDataset<impl Fn(usize) -> Result<Record, DataError> + Send + Sync> {
    FnDataset::new(3, move |k| Ok(tiny_sample(order[k])))
}

fn fingerprint_of<D>(data: &D) -> String
where
    D: Dataset,
    D::Item: delira::data::Sample,
{
    Fingerprint::new().dataset(data, false).unwrap().finish()
}

#[test]
fn the_fingerprint_of_a_fixed_dataset_is_known() {
    // Computed independently from the layout documented on `Fingerprint` (Python's `hashlib` and
    // `struct` with explicit little-endian formats), so the value holds in every process and on
    // every platform, whatever its byte order.
    assert_eq!(
        fingerprint_of(&tiny([0, 1, 2])),
        "cce218f112094a74f5c0ad57bdc690edeb33ef0849ad9496c437309ed89dc857"
    );
    // The same samples in another order are other data.
    assert_eq!(
        fingerprint_of(&tiny([2, 1, 0])),
        "030a4edaf2a781a90b1746d1785419fd133cb71b5b3b19201b3c7d4eccd97a46"
    );
    // A dataset is its samples, one after the other.
    let by_hand = (0..3)
        .fold(
            Fingerprint::new().text("delira.samples.v1").number(3),
            |f, i| f.sample(tiny_sample(i)),
        )
        .finish();
    assert_eq!(by_hand, fingerprint_of(&tiny([0, 1, 2])));
}

#[test]
fn the_fingerprint_follows_the_content_not_its_layout() {
    let reference = fingerprint_of(&tiny([0, 1, 2]));
    let variant = |change: fn(usize, Record) -> Record| {
        fingerprint_of(&FnDataset::new(3, move |i| Ok(change(i, tiny_sample(i)))))
    };

    // Fields assembled in another order: the same sample.
    let reordered = variant(|i, _| {
        let sample = tiny_sample(i);
        let mut fields: Vec<_> = delira::data::Sample::into_fields(sample);
        fields.reverse();
        fields
            .into_iter()
            .fold(Record::new(), |r, (name, value)| r.with(name, value))
    });
    assert_eq!(reordered, reference);

    // One value of one sample changed.
    let nudged = variant(|i, sample| {
        if i != 1 {
            return sample;
        }
        let Some(delira::data::Value::F32(image)) = sample.get("image") else {
            unreachable!("the tiny samples have an f32 image");
        };
        let mut image = image.clone();
        image[[0, 1]] += 1e-6;
        sample.with("image", image)
    });
    assert_ne!(nudged, reference);

    // The same values in another shape, a label of another type, another id.
    let reshaped = variant(|_, sample| {
        let Some(delira::data::Value::F32(image)) = sample.get("image") else {
            unreachable!("the tiny samples have an f32 image");
        };
        let flat = image.clone().into_shape_with_order(IxDyn(&[2, 1])).unwrap();
        sample.with("image", flat)
    });
    let retyped = variant(|i, sample| sample.with("label", arr0(7.0 * i as f32 - 3.0).into_dyn()));
    let renamed = variant(|i, sample| sample.with("id", format!("t{i}")));
    for other in [&reshaped, &retyped, &renamed] {
        assert_ne!(other, &reference);
    }

    // An array stored column-major: its memory in another order, its values the same.
    let values = |i: IxDyn| (i[0] * 10 + i[1]) as f32;
    let row_major = ArrayD::from_shape_fn(IxDyn(&[2, 3]), values);
    let column_major = ArrayD::from_shape_fn(IxDyn(&[2, 3]).f(), values);
    assert!(column_major.as_slice().is_none());
    assert_eq!(column_major, row_major);
    let single = |image: ArrayD<f32>| {
        let data = FnDataset::new(1, move |_| Ok(Record::new().with("image", image.clone())));
        fingerprint_of(&data)
    };
    assert_eq!(single(column_major), single(row_major.clone()));
    // Its transpose holds the same bytes in memory, but other values at each index.
    assert_ne!(single(row_major.clone().reversed_axes()), single(row_major));
}

#[test]
fn a_sample_that_cannot_be_read_is_named() {
    let data = FnDataset::new(4, |i| {
        if i == 2 {
            Err(DataError::msg("`case-2.nii.gz` is truncated"))
        } else {
            Ok(tiny_sample(i))
        }
    });
    let err = Fingerprint::new().dataset(&data, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`data`: sample 2 cannot be read for the data fingerprint: `case-2.nii.gz` is truncated"
    );
}

#[test]
fn files_are_fingerprinted_by_name_and_streamed_content() {
    let dir = scratch("files");
    std::fs::create_dir_all(dir.join("cases/b")).unwrap();
    // Larger than the read buffer and not a multiple of it.
    let big: Vec<u8> = (0..700_001_u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.join("cases/image.bin"), &big).unwrap();
    std::fs::write(dir.join("cases/b/labels.csv"), "id,label\n1,2\n").unwrap();

    let file = Fingerprint::new()
        .file(dir.join("cases/image.bin"))
        .unwrap()
        .finish();
    assert_eq!(
        file,
        Fingerprint::new().text("image.bin").bytes(&big).finish()
    );

    let files = Fingerprint::new()
        .files([dir.join("cases/b/labels.csv"), dir.join("cases/image.bin")])
        .unwrap()
        .finish();
    let expected = Fingerprint::new()
        .text("labels.csv")
        .bytes(b"id,label\n1,2\n")
        .text("image.bin")
        .bytes(&big)
        .finish();
    assert_eq!(files, expected);

    // A folder: relative paths with `/`, in order; moving it keeps the fingerprint.
    let folder = Fingerprint::new()
        .folder(dir.join("cases"))
        .unwrap()
        .finish();
    let expected = Fingerprint::new()
        .text("b/labels.csv")
        .bytes(b"id,label\n1,2\n")
        .text("image.bin")
        .bytes(&big)
        .finish();
    assert_eq!(folder, expected);
    std::fs::rename(dir.join("cases"), dir.join("moved")).unwrap();
    assert_eq!(
        Fingerprint::new()
            .folder(dir.join("moved"))
            .unwrap()
            .finish(),
        folder
    );

    let missing = dir.join("cases/image.bin");
    let err = Fingerprint::new().file(&missing).unwrap_err();
    assert!(
        matches!(&err, ExperimentError::Io { path, .. } if path == &missing),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The bits of an `f32` added to the first coordinate of sample 5 of `drifting_points` (0: the
/// original data). Only `a_job_on_changed_data_is_refused` changes it.
static DRIFT: AtomicU32 = AtomicU32::new(0);

/// 12 points in two classes; sample 5 moves by `DRIFT`.
#[allow(clippy::unnecessary_wraps)]
fn drifting_points()
-> Result<FnDataset<impl Fn(usize) -> Result<Record, DataError> + Send + Sync>, DataError> {
    let drift = f32::from_bits(DRIFT.load(Ordering::SeqCst));
    Ok(FnDataset::new(12, move |i: usize| {
        let t = i as f32 / 12.0 * std::f32::consts::TAU;
        let (x, y) = (
            t.cos() * 2.0 + if i == 5 { drift } else { 0.0 },
            t.sin() * 2.0,
        );
        Ok(Record::new()
            .with("x", ArrayD::from_shape_vec(vec![2], vec![x, y]).unwrap())
            .with("y", arr0(i64::from(x + y > 0.0)).into_dyn()))
    }))
}

delira::experiment! {
    name: drifting,
    data: drifting_points()?,
    model: |config| LinearNetwork::classifier(2, 2, config.seed).with_sgd(0.5, 0.0),
    split: kfold(3),
    loader: { batch_size: 4 },
    epochs: 1,
    seed: 5,
    sinks: [csv],
}

#[test]
fn a_job_on_changed_data_is_refused() {
    let runs = scratch("drift");
    let runs_arg = runs.to_str().unwrap();
    let job = |command: &str, fold: &str| {
        drifting::cli([
            "drifting", command, "--fold", fold, "--runs", runs_arg, "--run-id", "r",
        ])
    };
    job("train", "0").unwrap();
    let manifest = Manifest::load(&runs.join("drifting/r/manifest.json")).unwrap();
    let original = fingerprint_of(&drifting_points().unwrap());
    assert_eq!(manifest.data_fingerprint, original);
    let config = drifting::Config::default();
    assert_eq!(
        drifting::Experiment.data(&config).unwrap(),
        (12, original.clone())
    );

    // One value of one sample changes: every later job of the run is refused, naming both.
    DRIFT.store(0.125_f32.to_bits(), Ordering::SeqCst);
    let changed = fingerprint_of(&drifting_points().unwrap());
    assert_ne!(changed, original);
    let expected = format!(
        "error: the data changed since run `{}` began: its fingerprint was {original} and is now \
         {changed}; start a new run, or restore the data the run was made from",
        runs.join("drifting/r").display()
    );
    assert_eq!(job("train", "1").unwrap_err(), expected);
    assert_eq!(job("predict", "0").unwrap_err(), expected);
    assert!(!runs.join("drifting/r/fold-1").exists());

    // The data restored, the run goes on.
    DRIFT.store(0, Ordering::SeqCst);
    job("train", "1").unwrap();
    assert!(runs.join("drifting/r/fold-1/result.json").is_file());
    std::fs::remove_dir_all(&runs).unwrap();
}

delira::experiment! {
    name: declared_fingerprint,
    data: drifting_points()?,
    model: |config| LinearNetwork::classifier(2, 2, config.seed),
    split: kfold(2),
    epochs: 1,
    sinks: [csv],
    fingerprint: |data| Fingerprint::new().text("twelve points").number(data.len() as u64),
}

#[test]
fn a_declared_fingerprint_replaces_reading_the_samples() {
    let config = declared_fingerprint::Config::default();
    let expected = Fingerprint::new().text("twelve points").number(12).finish();
    assert_eq!(
        declared_fingerprint::Experiment.data(&config).unwrap(),
        (12, expected.clone())
    );

    let runs = scratch("declared");
    let folds = declared_fingerprint::kfold(config, &runs, Some("r"));
    assert_eq!(folds.unwrap().folds().len(), 2);
    let manifest = Manifest::load(&runs.join("declared_fingerprint/r/manifest.json")).unwrap();
    assert_eq!(manifest.data_fingerprint, expected);
    std::fs::remove_dir_all(&runs).unwrap();
}

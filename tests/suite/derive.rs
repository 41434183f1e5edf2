//! `#[derive(Dataset)]`: roles, collation, augmentation fields, and the loaders on real files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use delira::Dataset;
use delira::augment::{Augmentable, SpatialField};
use delira::data::{
    Batch, ByteSize, Dataset as _, DeclaredSample, Dtype, FieldKind, Normalize, Role, Sample, Value,
};
use delira::io::{Affine, LabelMap, Volume};
use ndarray::{ArrayD, IxDyn};

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("delira-derive-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Tabular samples: features as input, and every non-image role.
#[derive(Dataset, Debug, PartialEq)]
struct Patient {
    #[input]
    age: f32,
    #[target(class)]
    diagnosis: i64,
    #[weight]
    weight: f64,
    #[group(column = "site_id")]
    site: String,
    #[meta(subject)]
    id: String,
}

#[test]
fn fields_describe_roles_kinds_and_columns() {
    let fields = Patient::FIELDS;
    let summary: Vec<_> = fields
        .iter()
        .map(|f| (f.name, f.role, f.kind, f.column))
        .collect();
    assert_eq!(
        summary,
        [
            ("age", Role::Input, FieldKind::Float, "age"),
            ("diagnosis", Role::Target, FieldKind::Int, "diagnosis"),
            ("weight", Role::Weight, FieldKind::Float, "weight"),
            ("site", Role::Group, FieldKind::Text, "site_id"),
            ("id", Role::Meta, FieldKind::Text, "id"),
        ]
    );
    assert!(fields[1].class && !fields[0].class);
    assert!(fields[4].subject_id);
    let targets: Vec<_> = Patient::fields_with(Role::Target).map(|f| f.name).collect();
    assert_eq!(targets, ["diagnosis"]);
}

#[test]
fn csv_manifest_loads_values_and_exposes_groups_and_classes() {
    let dir = scratch("csv");
    let manifest = dir.join("patients.csv");
    write(
        &manifest,
        "id,age,diagnosis,weight,site_id\n\
         p1,61.5,1,0.5,A\n\
         p2,47,0,1.0,B\n\
         p3,70.25,1,2,A\n",
    );
    let patients = Patient::load_csv(&manifest).unwrap();
    assert_eq!(patients.len(), 3);
    assert_eq!(patients.ids().collect::<Vec<_>>(), ["p1", "p2", "p3"]);
    assert_eq!(patients.classes(), Some(vec![1, 0, 1]));
    assert_eq!(
        patients.groups(),
        Some(vec!["A".into(), "B".into(), "A".into()])
    );
    assert_eq!(
        patients.get(2).unwrap(),
        Patient {
            age: 70.25,
            diagnosis: 1,
            weight: 2.0,
            site: "A".into(),
            id: "p3".into(),
        }
    );

    let batch = Batch::collate((0..3).map(|i| patients.get(i).unwrap())).unwrap();
    assert_eq!(
        batch.names().collect::<Vec<_>>(),
        ["age", "diagnosis", "weight", "site", "id"]
    );
    assert_eq!(
        batch.f32("age").unwrap().as_slice().unwrap(),
        [61.5, 47.0, 70.25]
    );
    assert_eq!(
        batch.i64("diagnosis").unwrap().as_slice().unwrap(),
        [1, 0, 1]
    );
    assert_eq!(
        batch.f32("weight").unwrap().as_slice().unwrap(),
        [0.5, 1.0, 2.0]
    );
    assert_eq!(batch.text("site").unwrap(), ["A", "B", "A"]);
    assert_eq!(batch.text("id").unwrap(), ["p1", "p2", "p3"]);
}

#[test]
fn manifest_groups_and_classes_drive_grouped_and_stratified_splits() {
    use delira::data::split::{KFoldConfig, SplitTargets};

    let dir = scratch("csv-split");
    let manifest = dir.join("patients.csv");
    let mut text = String::from("id,age,diagnosis,weight,site_id\n");
    for i in 0..12 {
        // Six sites of two patients; diagnoses alternate.
        writeln!(text, "p{i},{},{},1,site{}", 40 + i, i % 2, i / 2).unwrap();
    }
    write(&manifest, &text);
    let patients = Patient::load_csv(&manifest).unwrap();
    let targets = SplitTargets::new(patients.len())
        .with_groups(&patients.groups().unwrap())
        .unwrap()
        .with_labels(&patients.classes().unwrap())
        .unwrap();
    let split = KFoldConfig::builder()
        .k(3)
        .group(true)
        .build()
        .split(&targets)
        .unwrap();
    let groups = patients.groups().unwrap();
    for fold in split.folds() {
        assert_eq!(fold.test.len(), 4);
        for &t in &fold.test {
            assert!(
                fold.train.iter().all(|&r| groups[r] != groups[t]),
                "a site in two parts"
            );
        }
    }
}

#[test]
fn csv_errors_name_the_subject_and_the_field() {
    let dir = scratch("csv-errors");
    let manifest = dir.join("m.csv");
    write(&manifest, "id,age,diagnosis,weight\np1,61.5,1,0.5\n");
    let err = Patient::load_csv(&manifest).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` has no column `site_id` for field `site`; add the column, or name another one \
             with `column = \"...\"` in the field's attribute",
            manifest.display()
        )
    );

    write(
        &manifest,
        "id,age,diagnosis,weight,site_id\np1,61.5,1,0.5,A\np2,old,0,1,B\n",
    );
    let err = Patient::load_csv(&manifest).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "subject `p2`: field `age` has value `old` in `{}`, not a number",
            manifest.display()
        )
    );

    write(
        &manifest,
        "id,age,diagnosis,weight,site_id\np1,61.5,,0.5,A\n",
    );
    let err = Patient::load_csv(&manifest).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "subject `p1`: field `diagnosis` is empty in `{}`",
            manifest.display()
        )
    );
}

/// An image sample, built in memory: roles, collation and augmentation fields.
#[derive(Dataset)]
struct Scan {
    #[input(nifti = "t1.nii.gz", normalize = "zscore_nonzero")]
    t1: Volume<f32>,
    #[target(nifti = "{subject}_seg.nii.gz")]
    seg: LabelMap,
    #[target(nifti = "mask.nii.gz", dtype = "f32")]
    mask: LabelMap,
    #[meta(subject)]
    id: String,
}

fn scan(value: f32) -> Scan {
    let affine = Affine::from_spacing([2.0, 2.0, 2.0]);
    Scan {
        t1: Volume::new(ArrayD::from_elem(IxDyn(&[1, 2, 3, 4]), value), affine),
        seg: LabelMap::new(ArrayD::from_elem(IxDyn(&[1, 2, 3, 4]), 2), affine),
        mask: LabelMap::new(ArrayD::from_elem(IxDyn(&[1, 2, 3, 4]), 1), affine),
        id: format!("s{value}"),
    }
}

#[test]
fn image_fields_collate_with_their_dtypes() {
    let info = &Scan::FIELDS[0];
    assert_eq!(
        (info.kind, info.normalize),
        (FieldKind::Image, Normalize::ZScoreNonZero)
    );
    assert_eq!(Scan::FIELDS[1].nifti, Some("{subject}_seg.nii.gz"));
    assert_eq!(Scan::FIELDS[2].dtype, Dtype::F32);

    let fields = scan(3.0).into_fields();
    assert_eq!(
        fields[0].1,
        Value::F32(ArrayD::from_elem(IxDyn(&[1, 2, 3, 4]), 3.0))
    );
    assert_eq!(
        fields[1].1,
        Value::I64(ArrayD::from_elem(IxDyn(&[1, 2, 3, 4]), 2))
    );
    assert_eq!(
        fields[2].1,
        Value::F32(ArrayD::from_elem(IxDyn(&[1, 2, 3, 4]), 1.0))
    );
    assert_eq!(fields[3], ("id".to_owned(), Value::Text("s3".into())));

    let batch = Batch::collate([scan(1.0), scan(2.0)]).unwrap();
    assert_eq!(batch.f32("t1").unwrap().shape(), [2, 1, 2, 3, 4]);
    assert_eq!(batch.i64("seg").unwrap().shape(), [2, 1, 2, 3, 4]);
    assert_eq!(batch.f32("mask").unwrap().shape(), [2, 1, 2, 3, 4]);
    assert_eq!(batch.f32("t1").unwrap()[[1, 0, 1, 2, 3]], 2.0);
    assert_eq!(Scan::FIELDS.len(), 4);
    // Each volume: its array struct, shape and strides of 4 axes, the voxels, and the affine;
    // 24 voxels of f32, twice 24 of u16, and the two bytes of "s1".
    let array = std::mem::size_of::<ArrayD<f32>>() + 2 * 4 * 8;
    let affine = std::mem::size_of::<Affine>();
    let expected = 3 * (array + affine) + 24 * 4 + 2 * 24 * 2 + std::mem::size_of::<String>() + 2;
    assert_eq!(scan(1.0).byte_size(), expected);
}

#[test]
fn augmentation_sees_images_and_label_maps_in_declaration_order() {
    let mut s = scan(1.0);
    let kinds: Vec<&str> = s
        .spatial_fields()
        .iter()
        .map(|f| match f {
            SpatialField::Image(_) => "image",
            SpatialField::Labels(_) => "labels",
        })
        .collect();
    assert_eq!(kinds, ["image", "labels", "labels"]);
    // The references point at the fields themselves.
    if let SpatialField::Image(v) = &mut s.spatial_fields()[0] {
        v.data_mut().fill(7.0);
    }
    assert!(s.t1.data().iter().all(|&x| x == 7.0));
}

#[test]
fn folder_layout_reports_a_missing_file_with_subject_and_field() {
    let dir = scratch("dir-missing");
    for (subject, files) in [
        ("a", &["t1.nii.gz", "a_seg.nii.gz", "mask.nii.gz"][..]),
        ("b", &["t1.nii.gz", "mask.nii.gz"][..]),
    ] {
        for file in files {
            write(&dir.join(subject).join(file), "");
        }
    }
    let err = Scan::load_dir(&dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "subject `b`: file `{}` of field `seg` does not exist",
            dir.join("b").join("b_seg.nii.gz").display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// End to end on real volumes: the MNI ICBM152 template, cropped into three subjects.

/// A brain scan as a user declares it.
#[derive(Dataset, Clone, Debug, PartialEq)]
struct Brain {
    #[input(nifti = "t1.nii.gz", normalize = "zscore_nonzero")]
    t1: Volume<f32>,
    #[target(nifti = "{subject}_tissue.nii.gz")]
    tissue: LabelMap,
    #[group(column = "site")]
    site: String,
    #[meta(subject)]
    id: String,
}

const CROP: usize = 16;
/// Where the three subjects' crops start in the template, all inside the brain.
const ORIGINS: [[usize; 3]; 3] = [[70, 90, 70], [90, 110, 60], [100, 80, 80]];

fn mni(name: &str) -> Volume<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/mni")
        .join(format!(
            "mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
        ));
    assert!(
        path.is_file(),
        "{} is missing; run `scripts/provision-data` (scripts/test does)",
        path.display()
    );
    delira::io::load_volume(&path).unwrap()
}

fn crop(volume: &Volume<f32>, origin: [usize; 3]) -> Volume<f32> {
    let [x, y, z] = origin;
    let data = volume
        .data()
        .slice(ndarray::s![.., x..x + CROP, y..y + CROP, z..z + CROP])
        .to_owned()
        .into_dyn();
    let mut shift = Affine::IDENTITY;
    for (axis, &o) in origin.iter().enumerate() {
        shift.0[axis][3] = o as f64;
    }
    Volume::new(data, volume.affine().compose(&shift))
}

/// Tissue labels as in DATA.md: 0 outside the brain, else the argmax of (other, GM, WM) + 1.
fn tissue(t1: &Volume<f32>, gm: &Volume<f32>, wm: &Volume<f32>) -> LabelMap {
    let mut labels = ArrayD::<u16>::zeros(t1.data().raw_dim());
    ndarray::Zip::from(&mut labels)
        .and(t1.data())
        .and(gm.data())
        .and(wm.data())
        .for_each(|l, &t, &g, &w| {
            if t != 0.0 {
                let other = (255.0 - g - w).max(0.0);
                *l = if other >= g && other >= w {
                    1
                } else if g >= w {
                    2
                } else {
                    3
                };
            }
        });
    LabelMap::new(labels, *t1.affine())
}

/// `(x - mean) / std` over the non-zero voxels, computed here independently of the runtime.
fn zscore_nonzero(data: &ArrayD<f32>) -> ArrayD<f32> {
    let nonzero: Vec<f64> = data
        .iter()
        .filter(|&&x| x != 0.0)
        .map(|&x| f64::from(x))
        .collect();
    let n = nonzero.len() as f64;
    let mean = nonzero.iter().sum::<f64>() / n;
    let std = (nonzero.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    data.mapv(|x| {
        if x == 0.0 {
            0.0
        } else {
            ((f64::from(x) - mean) / std) as f32
        }
    })
}

/// Writes the three subjects in a folder-per-subject layout; returns the crops.
fn brain_layout(dir: &Path) -> Vec<(Volume<f32>, LabelMap)> {
    let (t1, gm, wm) = (mni("t1"), mni("gm"), mni("wm"));
    let mut table = String::from("subject,site\n");
    let mut crops = Vec::new();
    for (i, &origin) in ORIGINS.iter().enumerate() {
        let id = format!("sub-{:02}", i + 1);
        let (t, labels) = (
            crop(&t1, origin),
            tissue(&crop(&t1, origin), &crop(&gm, origin), &crop(&wm, origin)),
        );
        std::fs::create_dir_all(dir.join(&id)).unwrap();
        delira::io::save_volume(dir.join(&id).join("t1.nii.gz"), &t).unwrap();
        delira::io::save_labels(dir.join(&id).join(format!("{id}_tissue.nii.gz")), &labels)
            .unwrap();
        writeln!(table, "{id},{}", ["A", "B", "A"][i]).unwrap();
        crops.push((t, labels));
    }
    // A hidden folder is not a subject.
    std::fs::create_dir_all(dir.join(".cache")).unwrap();
    write(&dir.join("subjects.csv"), &table);
    crops
}

#[test]
fn real_volumes_load_lazily_and_cached_and_feed_the_loader() {
    use delira::data::{CacheBudget, DatasetExt, Loader, LoaderConfig, SequentialSampler};

    let dir = scratch("brains");
    let crops = brain_layout(&dir);

    let brains = Brain::load_dir(&dir).unwrap();
    assert_eq!(
        brains.ids().collect::<Vec<_>>(),
        ["sub-01", "sub-02", "sub-03"]
    );
    assert_eq!(
        brains.groups(),
        Some(vec!["A".into(), "B".into(), "A".into()])
    );
    assert_eq!(brains.classes(), None);

    for (i, (t1, tissue)) in crops.iter().enumerate() {
        let brain = brains.get(i).unwrap();
        assert_eq!(brain.t1.data().shape(), [1, CROP, CROP, CROP]);
        assert_eq!(brain.t1.affine(), t1.affine());
        let expected = zscore_nonzero(t1.data());
        let worst = brain
            .t1
            .data()
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-5,
            "subject {i}: normalised T1 differs by {worst}"
        );
        assert_eq!(brain.tissue, *tissue, "subject {i}");
        assert!(
            brain.tissue.labels().len() >= 3,
            "the crops hold several tissues"
        );
        assert_eq!(brain.id, format!("sub-{:02}", i + 1));
    }

    // Cached: each subject read once.
    let cached = brains.clone().cached(CacheBudget::Unlimited);
    let first = cached.get(2).unwrap();
    assert_eq!(cached.get(2).unwrap(), first);
    assert_eq!(first, brains.get(2).unwrap());
    let stats = cached.stats();
    assert_eq!((stats.loads, stats.hits, stats.entries), (1, 1, 1));
    assert_eq!(stats.bytes, first.byte_size());

    // Fed to the loader: batches of the right shapes and values.
    let config = LoaderConfig::builder().batch_size(2).workers(1).build();
    let loader = Loader::new(cached, SequentialSampler::new(3), config).unwrap();
    let batches: Vec<Batch> = loader.epoch(0).map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        batches[0].f32("t1").unwrap().shape(),
        [2, 1, CROP, CROP, CROP]
    );
    assert_eq!(
        batches[0].i64("tissue").unwrap().shape(),
        [2, 1, CROP, CROP, CROP]
    );
    assert_eq!(
        batches[1].f32("t1").unwrap().shape(),
        [1, 1, CROP, CROP, CROP]
    );
    assert_eq!(batches[0].text("id").unwrap(), ["sub-01", "sub-02"]);
    assert_eq!(batches[1].text("site").unwrap(), ["A"]);
    let second = brains.get(1).unwrap();
    assert_eq!(
        batches[0]
            .f32("t1")
            .unwrap()
            .index_axis(ndarray::Axis(0), 1),
        second.t1.data().view()
    );
    assert_eq!(
        batches[0]
            .i64("tissue")
            .unwrap()
            .index_axis(ndarray::Axis(0), 1),
        second.tissue.volume().data().mapv(i64::from).view()
    );
}

#[test]
fn a_missing_subject_row_or_an_unreadable_file_names_the_subject() {
    let dir = scratch("brains-errors");
    brain_layout(&dir);
    std::fs::remove_file(dir.join("subjects.csv")).unwrap();
    let err = Brain::load_dir(&dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "field `site` takes a value per subject but `{}` does not exist; add it with the \
             columns `subject` and `site`",
            dir.join("subjects.csv").display()
        )
    );
    // An image field without a template cannot be found in a folder.
    let err = Photo::load_dir(&dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `rgb` has no file-name template; add one to its attribute, such as \
         `nifti = \"rgb.nii.gz\"`"
    );

    write(
        &dir.join("subjects.csv"),
        "subject,site\nsub-01,A\nsub-03,A\n",
    );
    let err = Brain::load_dir(&dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "subject `sub-02` has a folder but no row in `{}`; add a row for it",
            dir.join("subjects.csv").display()
        )
    );

    write(
        &dir.join("subjects.csv"),
        "subject,site\nsub-01,A\nsub-02,B\nsub-03,A\n",
    );
    write(&dir.join("sub-03").join("t1.nii.gz"), "not a NIfTI file");
    let brains = Brain::load_dir(&dir).unwrap();
    let err = brains.get(2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot load field `t1` of subject `sub-03`"
    );
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("t1.nii.gz"), "{source}");
}

/// A 2D multi-channel image stored as `x × y × c`, listed in a CSV manifest.
#[derive(Dataset, Debug)]
struct Photo {
    #[input(channel_axis = "last", normalize = "minmax")]
    rgb: Volume<f32>,
    #[target(dtype = "f32")]
    mask: LabelMap,
    #[target(class)]
    label: bool,
}

#[test]
fn csv_manifest_with_image_paths_channels_last_and_minmax() {
    let dir = scratch("photos");
    // Voxel (x, y) of channel c holds 100 c + 10 x + y; x < 4, y < 3, c < 2.
    let stored = ArrayD::from_shape_fn(IxDyn(&[1, 4, 3, 2]), |i| {
        (100 * i[3] + 10 * i[1] + i[2]) as f32
    });
    std::fs::create_dir_all(dir.join("images")).unwrap();
    delira::io::save_volume(
        dir.join("images/a.nii"),
        &Volume::new(stored, Affine::IDENTITY),
    )
    .unwrap();
    let mask = ArrayD::from_shape_fn(IxDyn(&[1, 4, 3]), |i| u16::from(i[1] >= 2));
    delira::io::save_labels(
        dir.join("images/a-mask.nii"),
        &LabelMap::new(mask, Affine::IDENTITY),
    )
    .unwrap();
    write(
        &dir.join("photos.csv"),
        "rgb,mask,label\nimages/a.nii,images/a-mask.nii,yes\nimages/a.nii,images/a-mask.nii,0\n",
    );

    let photos = Photo::load_csv(dir.join("photos.csv")).unwrap();
    assert_eq!(photos.ids().collect::<Vec<_>>(), ["row 1", "row 2"]);
    assert_eq!(photos.classes(), Some(vec![1, 0]));
    let photo = photos.get(0).unwrap();
    assert!(photo.label);
    // The stored last axis became the channel axis; each channel spans 0..=32 before scaling
    // (10 x + y with x < 4, y < 3), so min-max gives (10 x + y) / 32.
    let rgb = photo.rgb.data();
    assert_eq!(rgb.shape(), [2, 4, 3]);
    for c in 0..2 {
        for x in 0..4 {
            for y in 0..3 {
                assert_eq!(
                    rgb[[c, x, y]],
                    (10 * x + y) as f32 / 32.0,
                    "({c}, {x}, {y})"
                );
            }
        }
    }
    let fields = photo.into_fields();
    let Value::F32(mask) = &fields[1].1 else {
        panic!("the mask collates as f32, got {:?}", fields[1].1.kind());
    };
    assert_eq!(mask.shape(), [1, 4, 3]);
    assert_eq!(mask.iter().filter(|&&m| m == 1.0).count(), 2 * 3); // x in {2, 3}, every y
    assert_eq!(fields[2].1, Value::I64(ndarray::arr0(1).into_dyn()));
}

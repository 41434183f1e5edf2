//! `#[derive(Dataset)]`: roles, collation, augmentation fields, and the loaders on real files.

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

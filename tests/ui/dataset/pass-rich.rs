//! Every role and option of `#[derive(Dataset)]` in one sample type, and the generated API used.
#![deny(missing_docs, unused)]

use delira::Dataset;
use delira::data::{Dataset as _, DeclaredSample, SubjectDataset, SubjectError};
use delira::io::{LabelMap, Volume};

/// A subject with every role.
#[derive(Dataset)]
pub struct Subject {
    #[input(nifti = "{subject}_t1.nii.gz", normalize = "zscore_nonzero")]
    t1: Volume<f32>,
    #[input(nifti = "rgb.nii.gz", normalize = "minmax", channel_axis = "last")]
    photo: Volume<f32>,
    #[target(nifti = "seg.nii.gz", dtype = "i64")]
    seg: LabelMap,
    #[target(nifti = "mask.nii.gz", dtype = "f32")]
    mask: LabelMap,
    #[target(class, column = "diagnosis")]
    label: i64,
    #[input(dtype = "f32")]
    sex: u8,
    #[weight]
    weight: f32,
    #[group(column = "site_id")]
    site: String,
    #[meta(subject)]
    id: String,
    #[meta(column = "scanner")]
    scanner: String,
}

type Image = Volume<f32>;

/// Type aliases are judged by the type they stand for.
#[derive(Dataset)]
struct Aliased {
    #[input(nifti = "t1.nii.gz")]
    t1: Image,
}

fn load(root: &std::path::Path) -> Result<SubjectDataset<Subject>, SubjectError> {
    let subjects = Subject::load_dir(root)?;
    let _: Option<Vec<i64>> = subjects.classes();
    let _: Option<Vec<String>> = subjects.groups();
    let _ = Aliased::load_csv(root.join("manifest.csv"))?;
    Ok(subjects)
}

fn main() {
    assert_eq!(Subject::FIELDS.len(), 10);
    assert_eq!(Aliased::FIELDS.len(), 1);
    if let Ok(subjects) = load(std::path::Path::new("/nonexistent")) {
        let _ = subjects.get(0).map(|s| (s.t1, s.photo, s.seg, s.mask, s.label, s.sex, s.weight, s.site, s.id, s.scanner));
    }
}

use delira::Dataset;
use delira::io::{LabelMap, Volume};

#[derive(Dataset)]
struct Subject {
    #[input(nifti = "t1.nii.gz")]
    t1: Volume<f32>,
    #[target(nifti = "seg.nii.gz", dtype = "u8")]
    seg: LabelMap,
}

fn main() {}

use delira::Dataset;
use delira::io::{LabelMap, Volume};

// Every attribute mistake of one struct is reported in one compile.
#[derive(Dataset)]
struct Subject {
    #[input(nifti = "t1.nii.gz", nifti = "t2.nii.gz")]
    t1: Volume<f32>,
    #[target(nifti = "seg.nii.gz", colum = "seg")]
    seg: LabelMap,
    age: f32,
}

fn main() {}

use delira::Dataset;
use delira::io::LabelMap;

#[derive(Dataset)]
struct Subject {
    #[target(nifti = "seg.nii.gz")]
    seg: LabelMap,
}

fn main() {}

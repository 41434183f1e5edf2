use delira::Dataset;
use delira::io::Volume;

#[derive(Dataset)]
struct Subject {
    #[input(nifti = "t1.nii.gz")]
    t1: Volume<f32>,
    #[target(nifti = "label.nii.gz")]
    label: i64,
}

fn main() {}

use delira::Dataset;
use delira::io::Volume;

#[derive(Dataset)]
struct Subject {
    #[input(nifti = "t1.nii.gz")]
    t1: Volume<f32>,
    #[meta(normalize = "zscore")]
    id: String,
}

fn main() {}

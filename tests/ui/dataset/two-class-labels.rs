use delira::Dataset;
use delira::io::Volume;

#[derive(Dataset)]
struct Subject {
    #[input(nifti = "t1.nii.gz")]
    t1: Volume<f32>,
    #[target(class)]
    diagnosis: i64,
    #[class]
    sex: i64,
}

fn main() {}

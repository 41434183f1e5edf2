use delira::Dataset;
use delira::io::Volume;

#[derive(Dataset)]
struct Subject {
    #[input(nifti = "t1.nii.gz")]
    t1: Volume<f32>,
    #[weight]
    weight: f32,
    #[weight(column = "w2")]
    other: f32,
}

fn main() {}

use delira::Dataset;
use delira::io::Volume;

#[derive(Dataset)]
struct Subject {
    #[input(nifti = "")]
    t1: Volume<f32>,
}

fn main() {}

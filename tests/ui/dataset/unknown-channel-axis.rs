use delira::Dataset;
use delira::io::Volume;

#[derive(Dataset)]
struct Subject {
    #[input(nifti = "rgb.nii.gz", channel_axis = "0")]
    photo: Volume<f32>,
}

fn main() {}

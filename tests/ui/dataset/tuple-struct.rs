use delira::Dataset;
use delira::io::Volume;

#[derive(Dataset)]
struct Subject(#[input] Volume<f32>);

fn main() {}

use delira::Dataset;

#[derive(Dataset)]
struct Subject {
    #[input]
    features: Vec<f32>,
}

fn main() {}

use delira::Dataset;

#[derive(Dataset)]
enum Subject {
    Healthy,
    Patient,
}

fn main() {}

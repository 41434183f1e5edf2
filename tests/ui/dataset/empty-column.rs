use delira::Dataset;

#[derive(Dataset)]
struct Subject {
    #[input(column = "")]
    age: f32,
}

fn main() {}

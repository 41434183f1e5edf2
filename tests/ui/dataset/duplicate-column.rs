use delira::Dataset;

#[derive(Dataset)]
struct Subject {
    #[input]
    age: f32,
    #[target(column = "age")]
    score: f32,
}

fn main() {}

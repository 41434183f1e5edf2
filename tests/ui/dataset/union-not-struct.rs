use delira::Dataset;

#[derive(Dataset)]
union Subject {
    age: f32,
    id: u32,
}

fn main() {}

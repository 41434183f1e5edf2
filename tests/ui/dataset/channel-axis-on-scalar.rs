use delira::Dataset;

#[derive(Dataset)]
struct Subject {
    #[input(channel_axis = "last")]
    age: f32,
}

fn main() {}

use delira::Dataset;

#[derive(Dataset)]
struct Subject<T> {
    #[input]
    value: T,
}

fn main() {}

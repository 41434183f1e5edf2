// Stand-ins for the layer types: the mistake is reported before any type is needed.

#[delira::model(backend = "torch")]
struct Net<T> {
    #[layer(conv3d(1, 8, 3))]
    conv: T,
}

fn main() {}

// Stand-ins for the layer types: the mistake is reported before any type is needed.
#[allow(dead_code)]
struct BatchNorm;

#[delira::model(backend = "torch")]
struct Net {
    #[layer(batch_norm3d(8, eps = "1e-5"))]
    norm: BatchNorm,
}

fn main() {}

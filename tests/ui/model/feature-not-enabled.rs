// Stand-ins for the layer types: the mistake is reported before any type is needed.
#[allow(dead_code)]
struct Conv3D;
#[allow(dead_code)]
struct BatchNorm;

// Run only without the `torch` feature: the declaration is right, the backend is missing.
#[delira::model(backend = "torch")]
struct Net {
    #[layer(conv3d(1, 8, 3))]
    conv: Conv3D,
    #[layer(batch_norm3d(8))]
    norm: BatchNorm,
}

fn main() {}

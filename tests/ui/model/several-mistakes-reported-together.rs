// Stand-ins for the layer types: the mistake is reported before any type is needed.
#[allow(dead_code)]
struct Conv3D;
#[allow(dead_code)]
struct BatchNorm;

#[delira::model(backend = "torch", ouput = "logits")]
struct Net {
    #[layer(conv3d(1, 8, 3, pading = 1))]
    conv: Conv3D,
    #[layer(batchnorm3d(8))]
    norm: BatchNorm,
    #[layer(conv3d(8, 0, 1))]
    head: Conv3D,
    depth: usize,
}

fn main() {}

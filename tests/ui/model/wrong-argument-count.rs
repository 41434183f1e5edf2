// Stand-ins for the layer types: the mistake is reported before any type is needed.
#[allow(dead_code)]
struct Conv3D;

#[delira::model(backend = "torch")]
struct Net {
    #[layer(conv3d(1, 8))]
    conv: Conv3D,
}

fn main() {}

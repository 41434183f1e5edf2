// Stand-ins for the layer types: the mistake is reported before any type is needed.
#[allow(dead_code)]
struct Conv3D;

#[delira::model(backend = "torch")]
fn net() -> Conv3D {
    Conv3D
}

fn main() {}

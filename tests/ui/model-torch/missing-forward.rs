use delira::backend::torch::tch::nn;

#[delira::model(backend = "torch")]
pub struct Net {
    #[layer(conv3d(1, 8, 3, padding = 1))]
    conv: nn::Conv3D,
}

fn main() {}

use delira::backend::torch::TorchModel;
use delira::backend::torch::tch::{Tensor, nn, nn::Module};

pub struct Spec {
    pub channels: f32,
}

#[delira::model(backend = "torch", config = Spec)]
pub struct Net {
    #[layer(conv3d(1, config.channels, 3))]
    conv: nn::Conv3D,
}

impl TorchModel for Net {
    fn forward(&self, input: &Tensor, _train: bool) -> Tensor {
        self.conv.forward(input)
    }
}

fn main() {}

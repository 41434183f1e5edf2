use delira::backend::torch::TorchModel;
use delira::backend::torch::tch::{Tensor, nn, nn::Module};

#[delira::model(backend = "torch")]
pub struct Net {
    #[layer(conv2d(1, 8, 3, padding = 1))]
    conv: nn::Conv3D,
}

impl TorchModel for Net {
    fn forward(&self, input: &Tensor, _train: bool) -> Tensor {
        self.conv.forward(input)
    }
}

fn main() {}

//! A residual classification CNN (He et al. 2016) for 2D and 3D images.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};
use typed_builder::TypedBuilder;

use super::Norm;
use crate::backend::BackendError;
use crate::backend::torch::TorchModel;

/// The shape of a [`ResNetClassifier`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// 2 or 3 spatial dimensions.
    #[builder(default = 3)]
    #[serde(default = "three")]
    pub spatial_dims: usize,
    /// Input channels.
    pub in_channels: i64,
    /// Output logits, one per class.
    pub classes: i64,
    /// Channels of each stage; every stage after the first halves the resolution.
    #[builder(default = vec![16, 32, 64])]
    #[serde(default = "widths")]
    pub widths: Vec<i64>,
    /// Residual blocks per stage.
    #[builder(default = 1)]
    #[serde(default = "one")]
    pub blocks: usize,
    /// The normalisation after each convolution.
    #[builder(default = Norm::Batch)]
    #[serde(default = "batch")]
    pub norm: Norm,
}

fn three() -> usize {
    3
}

fn one() -> usize {
    1
}

fn widths() -> Vec<i64> {
    vec![16, 32, 64]
}

fn batch() -> Norm {
    Norm::Batch
}

impl ResNetConfig {
    /// Checks that the shape can be built.
    pub fn validate(&self) -> Result<(), BackendError> {
        let fail = |problem: String| {
            Err(BackendError::Config {
                what: "resnet",
                problem,
            })
        };
        if !(2..=3).contains(&self.spatial_dims) {
            return fail(format!("spatial_dims is {}; use 2 or 3", self.spatial_dims));
        }
        if self.in_channels < 1 || self.classes < 1 || self.blocks < 1 {
            return fail(format!(
                "in_channels {}, classes {} and blocks {} must be positive",
                self.in_channels, self.classes, self.blocks
            ));
        }
        if self.widths.is_empty() || self.widths.iter().any(|&w| w < 1) {
            return fail(format!(
                "widths {:?} must be positive, at least one",
                self.widths
            ));
        }
        Ok(())
    }
}

fn conv(
    p: nn::Path<'_>,
    dims: usize,
    input: i64,
    output: i64,
    kernel: i64,
    stride: i64,
    bias: bool,
) -> Box<dyn nn::Module> {
    let config = nn::ConvConfig {
        stride,
        padding: kernel / 2,
        bias,
        ..Default::default()
    };
    if dims == 3 {
        Box::new(nn::conv3d(p, input, output, kernel, config))
    } else {
        Box::new(nn::conv2d(p, input, output, kernel, config))
    }
}

fn norm(p: nn::Path<'_>, dims: usize, kind: Norm, channels: i64) -> Option<Box<dyn nn::ModuleT>> {
    match (kind, dims) {
        (Norm::Batch, 3) => Some(Box::new(nn::batch_norm3d(
            p,
            channels,
            nn::BatchNormConfig::default(),
        ))),
        (Norm::Batch, _) => Some(Box::new(nn::batch_norm2d(
            p,
            channels,
            nn::BatchNormConfig::default(),
        ))),
        (Norm::Instance, _) => Some(Box::new(nn::group_norm(
            p,
            channels,
            channels,
            nn::GroupNormConfig::default(),
        ))),
        (Norm::None, _) => None,
    }
}

fn apply(norm: Option<&dyn nn::ModuleT>, x: Tensor, train: bool) -> Tensor {
    match norm {
        Some(n) => n.forward_t(&x, train),
        None => x,
    }
}

/// A convolution and its optional normalisation.
type ConvNorm = (Box<dyn nn::Module>, Option<Box<dyn nn::ModuleT>>);

/// conv-norm-relu-conv-norm plus a shortcut (a strided 1×1 convolution where the shape changes),
/// then relu.
#[derive(Debug)]
struct Residual {
    conv1: Box<dyn nn::Module>,
    norm1: Option<Box<dyn nn::ModuleT>>,
    conv2: Box<dyn nn::Module>,
    norm2: Option<Box<dyn nn::ModuleT>>,
    shortcut: Option<ConvNorm>,
}

impl Residual {
    fn new(p: &nn::Path<'_>, c: &ResNetConfig, input: i64, output: i64, stride: i64) -> Self {
        let dims = c.spatial_dims;
        let bias = c.norm == Norm::None;
        let shortcut = (stride != 1 || input != output).then(|| {
            (
                conv(
                    p / "shortcut" / "conv",
                    dims,
                    input,
                    output,
                    1,
                    stride,
                    bias,
                ),
                norm(p / "shortcut" / "norm", dims, c.norm, output),
            )
        });
        Self {
            conv1: conv(p / "conv1", dims, input, output, 3, stride, bias),
            norm1: norm(p / "norm1", dims, c.norm, output),
            conv2: conv(p / "conv2", dims, output, output, 3, 1, bias),
            norm2: norm(p / "norm2", dims, c.norm, output),
            shortcut,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = apply(self.norm1.as_deref(), self.conv1.forward(x), train).relu();
        let y = apply(self.norm2.as_deref(), self.conv2.forward(&y), train);
        let skip = match &self.shortcut {
            Some((conv, norm)) => apply(norm.as_deref(), conv.forward(x), train),
            None => x.shallow_clone(),
        };
        (y + skip).relu()
    }
}

/// A residual CNN: a 3×3(×3) stem, stages of residual blocks (each stage after the first starts
/// with stride 2), global average pooling and a linear layer to one logit per class.
///
/// Variable names: `stem.conv.weight`, `stem.norm.*`, `stage.<s>.<b>.conv1.weight`,
/// `....norm1.*`, `....shortcut.conv.weight`, `head.weight`, `head.bias`.
#[derive(Debug)]
pub struct ResNetClassifier {
    stem: ConvNorm,
    blocks: Vec<Residual>,
    head: nn::Linear,
}

impl ResNetClassifier {
    /// Creates the variables under `p`.
    pub fn new(p: &nn::Path<'_>, config: &ResNetConfig) -> Result<Self, BackendError> {
        config.validate()?;
        let c = config;
        let dims = c.spatial_dims;
        let stem = (
            conv(
                p / "stem" / "conv",
                dims,
                c.in_channels,
                c.widths[0],
                3,
                1,
                c.norm == Norm::None,
            ),
            norm(p / "stem" / "norm", dims, c.norm, c.widths[0]),
        );
        let mut blocks = Vec::new();
        let mut channels = c.widths[0];
        for (stage, &width) in c.widths.iter().enumerate() {
            for block in 0..c.blocks {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                blocks.push(Residual::new(
                    &(p / "stage" / stage / block),
                    c,
                    channels,
                    width,
                    stride,
                ));
                channels = width;
            }
        }
        let head = nn::linear(p / "head", channels, c.classes, nn::LinearConfig::default());
        Ok(Self { stem, blocks, head })
    }
}

impl TorchModel for ResNetClassifier {
    fn forward(&self, input: &Tensor, train: bool) -> Tensor {
        let mut x = apply(self.stem.1.as_deref(), self.stem.0.forward(input), train).relu();
        for block in &self.blocks {
            x = block.forward(&x, train);
        }
        let spatial: Vec<i64> = (2..x.dim() as i64).collect();
        nn::Module::forward(
            &self.head,
            &x.mean_dim(spatial.as_slice(), false, Kind::Float),
        )
    }
}

//! U-Net (Ronneberger et al. 2015) for 2D and 3D images.

use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};
use typed_builder::TypedBuilder;

use crate::backend::BackendError;
use crate::backend::torch::TorchModel;

/// The normalisation after each convolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Batch normalisation (running statistics in evaluation mode).
    Batch,
    /// Instance normalisation with a learned scale and shift per channel; the usual choice for
    /// the small batches of 3D segmentation.
    #[default]
    Instance,
    /// None: the convolutions get a bias instead.
    None,
}

/// The shape of a [`UNet`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct UNetConfig {
    /// 2 or 3 spatial dimensions.
    #[builder(default = 3)]
    #[serde(default = "three")]
    pub spatial_dims: usize,
    /// Input channels.
    pub in_channels: i64,
    /// Output channels: one logit per class.
    pub classes: i64,
    /// Resolution levels; the input's spatial sizes must be divisible by `2^(depth - 1)`.
    #[builder(default = 3)]
    #[serde(default = "three")]
    pub depth: usize,
    /// Channels of the first level; each level below doubles them.
    #[builder(default = 8)]
    #[serde(default = "eight")]
    pub base: i64,
    /// The normalisation after each convolution.
    #[builder(default)]
    #[serde(default)]
    pub norm: Norm,
}

fn three() -> usize {
    3
}

fn eight() -> i64 {
    8
}

impl UNetConfig {
    /// Checks that the shape can be built.
    pub fn validate(&self) -> Result<(), BackendError> {
        let fail = |problem: String| {
            Err(BackendError::Config {
                what: "unet",
                problem,
            })
        };
        if !(2..=3).contains(&self.spatial_dims) {
            return fail(format!("spatial_dims is {}; use 2 or 3", self.spatial_dims));
        }
        if self.in_channels < 1 || self.classes < 1 || self.base < 1 {
            return fail(format!(
                "in_channels {}, classes {} and base {} must be positive",
                self.in_channels, self.classes, self.base
            ));
        }
        if !(1..=8).contains(&self.depth) {
            return fail(format!("depth is {}; use 1 to 8 levels", self.depth));
        }
        Ok(())
    }

    /// The channels of level `level` (0 is the full resolution).
    #[must_use]
    pub fn channels(&self, level: usize) -> i64 {
        self.base << level
    }
}

/// A convolution, a normalisation and a ReLU.
#[derive(Debug)]
struct ConvNormRelu {
    conv: Box<dyn nn::Module>,
    norm: Option<Box<dyn nn::ModuleT>>,
}

impl ConvNormRelu {
    fn new(p: &nn::Path<'_>, config: &UNetConfig, input: i64, output: i64) -> Self {
        let conv_config = nn::ConvConfig {
            padding: 1,
            bias: config.norm == Norm::None,
            ..Default::default()
        };
        let conv: Box<dyn nn::Module> = if config.spatial_dims == 3 {
            Box::new(nn::conv3d(p / "conv", input, output, 3, conv_config))
        } else {
            Box::new(nn::conv2d(p / "conv", input, output, 3, conv_config))
        };
        let norm: Option<Box<dyn nn::ModuleT>> = match (config.norm, config.spatial_dims) {
            (Norm::Batch, 3) => Some(Box::new(nn::batch_norm3d(
                p / "norm",
                output,
                nn::BatchNormConfig::default(),
            ))),
            (Norm::Batch, _) => Some(Box::new(nn::batch_norm2d(
                p / "norm",
                output,
                nn::BatchNormConfig::default(),
            ))),
            (Norm::Instance, _) => Some(Box::new(nn::group_norm(
                p / "norm",
                output,
                output,
                nn::GroupNormConfig::default(),
            ))),
            (Norm::None, _) => None,
        };
        Self { conv, norm }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.conv.forward(x);
        let y = match &self.norm {
            Some(norm) => norm.forward_t(&y, train),
            None => y,
        };
        y.relu()
    }
}

/// Two [`ConvNormRelu`]s.
#[derive(Debug)]
struct DoubleConv(ConvNormRelu, ConvNormRelu);

impl DoubleConv {
    fn new(p: &nn::Path<'_>, config: &UNetConfig, input: i64, output: i64) -> Self {
        Self(
            ConvNormRelu::new(&(p / "0"), config, input, output),
            ConvNormRelu::new(&(p / "1"), config, output, output),
        )
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.1.forward(&self.0.forward(x, train), train)
    }
}

/// A U-Net: an encoder of [`UNetConfig::depth`] levels (two 3×3(×3) convolutions each, max-pooled
/// between levels), a decoder that upsamples with transposed convolutions and concatenates the
/// encoder's features, and a 1×1(×1) convolution to one logit per class.
///
/// Variable names: `encoder.<level>.<0|1>.conv.weight`, `....norm.weight`,
/// `up.<level>.weight`, `decoder.<level>.<0|1>...`, `head.weight`, `head.bias`.
#[derive(Debug)]
pub struct UNet {
    config: UNetConfig,
    encoder: Vec<DoubleConv>,
    up: Vec<Box<dyn nn::Module>>,
    decoder: Vec<DoubleConv>,
    head: Box<dyn nn::Module>,
}

impl UNet {
    /// Creates the variables under `p`.
    pub fn new(p: &nn::Path<'_>, config: &UNetConfig) -> Result<Self, BackendError> {
        config.validate()?;
        let c = config;
        let encoder = (0..c.depth)
            .map(|level| {
                let input = if level == 0 {
                    c.in_channels
                } else {
                    c.channels(level - 1)
                };
                DoubleConv::new(&(p / "encoder" / level), c, input, c.channels(level))
            })
            .collect();
        let mut up: Vec<Box<dyn nn::Module>> = Vec::new();
        let mut decoder = Vec::new();
        for level in 0..c.depth - 1 {
            let (wide, narrow) = (c.channels(level + 1), c.channels(level));
            let transpose = nn::ConvTransposeConfig {
                stride: 2,
                ..Default::default()
            };
            let path = p / "up" / level;
            up.push(if c.spatial_dims == 3 {
                Box::new(nn::conv_transpose3d(path, wide, narrow, 2, transpose))
            } else {
                Box::new(nn::conv_transpose2d(path, wide, narrow, 2, transpose))
            });
            decoder.push(DoubleConv::new(
                &(p / "decoder" / level),
                c,
                2 * narrow,
                narrow,
            ));
        }
        let head: Box<dyn nn::Module> = if c.spatial_dims == 3 {
            Box::new(nn::conv3d(
                p / "head",
                c.channels(0),
                c.classes,
                1,
                nn::ConvConfig::default(),
            ))
        } else {
            Box::new(nn::conv2d(
                p / "head",
                c.channels(0),
                c.classes,
                1,
                nn::ConvConfig::default(),
            ))
        };
        Ok(Self {
            config: config.clone(),
            encoder,
            up,
            decoder,
            head,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    fn pool(&self, x: &Tensor) -> Tensor {
        if self.config.spatial_dims == 3 {
            x.max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false)
        } else {
            x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
        }
    }
}

impl TorchModel for UNet {
    fn forward(&self, input: &Tensor, train: bool) -> Tensor {
        let mut skips = Vec::with_capacity(self.encoder.len());
        let mut x = input.shallow_clone();
        for (level, block) in self.encoder.iter().enumerate() {
            if level > 0 {
                x = self.pool(&x);
            }
            x = block.forward(&x, train);
            skips.push(x.shallow_clone());
        }
        skips.pop();
        for level in (0..self.decoder.len()).rev() {
            let upsampled = self.up[level].forward(&x);
            let skip = &skips[level];
            x = self.decoder[level].forward(&Tensor::cat(&[skip, &upsampled], 1), train);
        }
        self.head.forward(&x)
    }
}

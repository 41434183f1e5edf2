//! Layers of `tch::nn` built from checked arguments: what `#[delira::model]` calls for each
//! `#[layer(...)]`, usable by hand as well.
//!
//! `tch` panics deep inside libtorch when a layer gets a size of zero or less; here every
//! argument is checked first and a bad one is an error that names the layer, the argument and the
//! value. Arguments take any integer type (a configuration may hold `usize` or `i64`).
//!
//! ```
//! use delira::backend::torch::layers::{ConvOptions, Layer};
//! use delira::backend::torch::tch::{Device, nn};
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let layer = Layer::new("enc", "conv3d");
//! let options = ConvOptions { padding: 1, ..ConvOptions::default() };
//! let conv = layer.conv3d(&(vs.root() / "enc"), 1, 8, 3, options).unwrap();
//! assert_eq!(conv.ws.size(), [8, 1, 3, 3, 3]);
//!
//! let error = layer.size("out_channels", 0_usize).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "layer `enc` (`conv3d`): `out_channels` is 0; use a positive number"
//! );
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};

use tch::nn;

use crate::backend::BackendError;

/// A layer being built: its name (the struct field, and the first component of its variables'
/// names) and kind, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The layer's name.
    pub name: &'static str,
    /// Its kind (`conv3d`, `module`, ...).
    pub kind: &'static str,
}

/// An integer layer argument of any primitive integer type.
pub trait LayerInt: Copy + std::fmt::Display {
    /// The value as `i64`, `None` when it does not fit.
    fn to_i64(self) -> Option<i64>;
}

macro_rules! layer_int {
    ($($t:ty),*) => {$(
        impl LayerInt for $t {
            fn to_i64(self) -> Option<i64> {
                i64::try_from(self).ok()
            }
        }
    )*};
}

layer_int!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// Options of a convolution (`conv1d`, `conv2d`, `conv3d`), with PyTorch's defaults.
#[derive(Clone, Copy, Debug)]
pub struct ConvOptions {
    /// Step between windows (default 1).
    pub stride: i64,
    /// Padding on each side of every spatial axis (default 0).
    pub padding: i64,
    /// Spacing between kernel elements (default 1).
    pub dilation: i64,
    /// Blocked connections from input to output channels (default 1).
    pub groups: i64,
    /// Whether the layer adds a learned bias (default `true`).
    pub bias: bool,
    /// How the padding is filled (default zeros).
    pub padding_mode: nn::PaddingMode,
}

impl Default for ConvOptions {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
            padding_mode: nn::PaddingMode::Zeros,
        }
    }
}

/// Options of a transposed convolution, with PyTorch's defaults.
#[derive(Clone, Copy, Debug)]
pub struct ConvTransposeOptions {
    /// Upsampling factor (default 1).
    pub stride: i64,
    /// Implicit zero padding removed from each side (default 0).
    pub padding: i64,
    /// Extra size added to one side of the output (default 0).
    pub output_padding: i64,
    /// Spacing between kernel elements (default 1).
    pub dilation: i64,
    /// Blocked connections from input to output channels (default 1).
    pub groups: i64,
    /// Whether the layer adds a learned bias (default `true`).
    pub bias: bool,
}

impl Default for ConvTransposeOptions {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            output_padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
        }
    }
}

/// Options of a linear layer.
#[derive(Clone, Copy, Debug)]
pub struct LinearOptions {
    /// Whether the layer adds a learned bias (default `true`).
    pub bias: bool,
}

impl Default for LinearOptions {
    fn default() -> Self {
        Self { bias: true }
    }
}

/// Options of a batch normalisation, with PyTorch's defaults.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormOptions {
    /// Added to the variance (default 1e-5).
    pub eps: f64,
    /// Weight of the current batch in the running statistics (default 0.1).
    pub momentum: f64,
    /// Whether the layer has a learned scale and shift (default `true`).
    pub affine: bool,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        }
    }
}

/// Options of a group or instance normalisation.
#[derive(Clone, Copy, Debug)]
pub struct NormOptions {
    /// Added to the variance (default 1e-5).
    pub eps: f64,
    /// Whether the layer has a learned scale and shift per channel.
    pub affine: bool,
}

impl NormOptions {
    /// PyTorch's defaults for `GroupNorm`: a learned scale and shift.
    #[must_use]
    pub fn group() -> Self {
        Self {
            eps: 1e-5,
            affine: true,
        }
    }

    /// PyTorch's defaults for `InstanceNorm`: no learned scale and shift.
    #[must_use]
    pub fn instance() -> Self {
        Self {
            eps: 1e-5,
            affine: false,
        }
    }
}

/// Options of an embedding table.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbeddingOptions {
    /// An index whose vector gets no gradient (default none).
    pub padding_idx: Option<i64>,
    /// Sparse gradients (default `false`).
    pub sparse: bool,
    /// Gradients scaled by the inverse frequency of the words in the batch (default `false`).
    pub scale_grad_by_freq: bool,
}

impl Layer {
    /// The layer `name` of kind `kind`.
    #[must_use]
    pub const fn new(name: &'static str, kind: &'static str) -> Self {
        Self { name, kind }
    }

    /// An error about this layer.
    #[must_use]
    pub fn error(self, problem: impl Into<String>) -> BackendError {
        BackendError::Layer {
            name: self.name,
            kind: self.kind,
            problem: problem.into(),
        }
    }

    /// A size (channels, kernel size, stride, ...): at least 1.
    pub fn size(self, argument: &str, value: impl LayerInt) -> Result<i64, BackendError> {
        match value.to_i64() {
            Some(v) if v >= 1 => Ok(v),
            _ => Err(self.error(format!("`{argument}` is {value}; use a positive number"))),
        }
    }

    /// An offset (padding, an index): at least 0.
    pub fn offset(self, argument: &str, value: impl LayerInt) -> Result<i64, BackendError> {
        match value.to_i64() {
            Some(v) if v >= 0 => Ok(v),
            _ => Err(self.error(format!(
                "`{argument}` is {value}; use zero or a positive number"
            ))),
        }
    }

    /// A finite, non-negative number (eps, momentum).
    pub fn float(self, argument: &str, value: impl Into<f64>) -> Result<f64, BackendError> {
        let v: f64 = value.into();
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(self.error(format!(
                "`{argument}` is {v}; use a finite number of at least 0"
            )))
        }
    }

    fn groups(self, groups: i64, channels: &[(&str, i64)]) -> Result<(), BackendError> {
        for &(name, count) in channels {
            if count % groups != 0 {
                return Err(self.error(format!(
                    "`groups` is {groups} but `{name}` is {count}; use a number of groups that \
                     divides it"
                )));
            }
        }
        Ok(())
    }

    /// A 1D convolution.
    pub fn conv1d(
        self,
        path: &nn::Path<'_>,
        in_channels: i64,
        out_channels: i64,
        kernel_size: i64,
        options: ConvOptions,
    ) -> Result<nn::Conv1D, BackendError> {
        let config = self.conv_config(in_channels, out_channels, kernel_size, options)?;
        self.build(|| nn::conv1d(path, in_channels, out_channels, kernel_size, config))
    }

    /// A 2D convolution.
    pub fn conv2d(
        self,
        path: &nn::Path<'_>,
        in_channels: i64,
        out_channels: i64,
        kernel_size: i64,
        options: ConvOptions,
    ) -> Result<nn::Conv2D, BackendError> {
        let config = self.conv_config(in_channels, out_channels, kernel_size, options)?;
        self.build(|| nn::conv2d(path, in_channels, out_channels, kernel_size, config))
    }

    /// A 3D convolution.
    pub fn conv3d(
        self,
        path: &nn::Path<'_>,
        in_channels: i64,
        out_channels: i64,
        kernel_size: i64,
        options: ConvOptions,
    ) -> Result<nn::Conv3D, BackendError> {
        let config = self.conv_config(in_channels, out_channels, kernel_size, options)?;
        self.build(|| nn::conv3d(path, in_channels, out_channels, kernel_size, config))
    }

    fn conv_config(
        self,
        in_channels: i64,
        out_channels: i64,
        kernel_size: i64,
        o: ConvOptions,
    ) -> Result<nn::ConvConfig, BackendError> {
        self.check_sizes(&[
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
            ("stride", o.stride),
            ("dilation", o.dilation),
            ("groups", o.groups),
        ])?;
        self.offset("padding", o.padding)?;
        self.groups(
            o.groups,
            &[("in_channels", in_channels), ("out_channels", out_channels)],
        )?;
        Ok(nn::ConvConfig {
            stride: o.stride,
            padding: o.padding,
            dilation: o.dilation,
            groups: o.groups,
            bias: o.bias,
            padding_mode: o.padding_mode,
            ..nn::ConvConfig::default()
        })
    }

    /// A 1D transposed convolution.
    pub fn conv_transpose1d(
        self,
        path: &nn::Path<'_>,
        in_channels: i64,
        out_channels: i64,
        kernel_size: i64,
        options: ConvTransposeOptions,
    ) -> Result<nn::ConvTranspose1D, BackendError> {
        let config = self.transpose_config(in_channels, out_channels, kernel_size, options)?;
        self.build(|| nn::conv_transpose1d(path, in_channels, out_channels, kernel_size, config))
    }

    /// A 2D transposed convolution.
    pub fn conv_transpose2d(
        self,
        path: &nn::Path<'_>,
        in_channels: i64,
        out_channels: i64,
        kernel_size: i64,
        options: ConvTransposeOptions,
    ) -> Result<nn::ConvTranspose2D, BackendError> {
        let config = self.transpose_config(in_channels, out_channels, kernel_size, options)?;
        self.build(|| nn::conv_transpose2d(path, in_channels, out_channels, kernel_size, config))
    }

    /// A 3D transposed convolution.
    pub fn conv_transpose3d(
        self,
        path: &nn::Path<'_>,
        in_channels: i64,
        out_channels: i64,
        kernel_size: i64,
        options: ConvTransposeOptions,
    ) -> Result<nn::ConvTranspose3D, BackendError> {
        let config = self.transpose_config(in_channels, out_channels, kernel_size, options)?;
        self.build(|| nn::conv_transpose3d(path, in_channels, out_channels, kernel_size, config))
    }

    fn transpose_config(
        self,
        in_channels: i64,
        out_channels: i64,
        kernel_size: i64,
        o: ConvTransposeOptions,
    ) -> Result<nn::ConvTransposeConfig, BackendError> {
        self.check_sizes(&[
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
            ("stride", o.stride),
            ("dilation", o.dilation),
            ("groups", o.groups),
        ])?;
        self.offset("padding", o.padding)?;
        self.offset("output_padding", o.output_padding)?;
        if o.output_padding >= o.stride.max(o.dilation) {
            return Err(self.error(format!(
                "`output_padding` is {} with `stride` {} and `dilation` {}; use less than the \
                 larger of the two",
                o.output_padding, o.stride, o.dilation
            )));
        }
        self.groups(
            o.groups,
            &[("in_channels", in_channels), ("out_channels", out_channels)],
        )?;
        Ok(nn::ConvTransposeConfig {
            stride: o.stride,
            padding: o.padding,
            output_padding: o.output_padding,
            dilation: o.dilation,
            groups: o.groups,
            bias: o.bias,
            ..nn::ConvTransposeConfig::default()
        })
    }

    /// A linear (fully connected) layer.
    pub fn linear(
        self,
        path: &nn::Path<'_>,
        in_features: i64,
        out_features: i64,
        options: LinearOptions,
    ) -> Result<nn::Linear, BackendError> {
        self.check_sizes(&[("in_features", in_features), ("out_features", out_features)])?;
        let config = nn::LinearConfig {
            bias: options.bias,
            ..nn::LinearConfig::default()
        };
        self.build(|| nn::linear(path, in_features, out_features, config))
    }

    /// A batch normalisation over `(N, C, L)` inputs.
    pub fn batch_norm1d(
        self,
        path: &nn::Path<'_>,
        channels: i64,
        options: BatchNormOptions,
    ) -> Result<nn::BatchNorm, BackendError> {
        let config = self.batch_norm_config(channels, options)?;
        self.build(|| nn::batch_norm1d(path, channels, config))
    }

    /// A batch normalisation over `(N, C, H, W)` inputs.
    pub fn batch_norm2d(
        self,
        path: &nn::Path<'_>,
        channels: i64,
        options: BatchNormOptions,
    ) -> Result<nn::BatchNorm, BackendError> {
        let config = self.batch_norm_config(channels, options)?;
        self.build(|| nn::batch_norm2d(path, channels, config))
    }

    /// A batch normalisation over `(N, C, D, H, W)` inputs.
    pub fn batch_norm3d(
        self,
        path: &nn::Path<'_>,
        channels: i64,
        options: BatchNormOptions,
    ) -> Result<nn::BatchNorm, BackendError> {
        let config = self.batch_norm_config(channels, options)?;
        self.build(|| nn::batch_norm3d(path, channels, config))
    }

    fn batch_norm_config(
        self,
        channels: i64,
        o: BatchNormOptions,
    ) -> Result<nn::BatchNormConfig, BackendError> {
        self.check_sizes(&[("channels", channels)])?;
        let eps = self.float("eps", o.eps)?;
        let momentum = self.float("momentum", o.momentum)?;
        if momentum > 1.0 {
            return Err(self.error(format!(
                "`momentum` is {momentum}; use a number from 0 to 1"
            )));
        }
        Ok(nn::BatchNormConfig {
            eps,
            momentum,
            affine: o.affine,
            ..nn::BatchNormConfig::default()
        })
    }

    /// A group normalisation of `channels` in `groups` groups.
    pub fn group_norm(
        self,
        path: &nn::Path<'_>,
        groups: i64,
        channels: i64,
        options: NormOptions,
    ) -> Result<nn::GroupNorm, BackendError> {
        self.check_sizes(&[("groups", groups), ("channels", channels)])?;
        self.groups(groups, &[("channels", channels)])?;
        let config = nn::GroupNormConfig {
            eps: self.float("eps", options.eps)?,
            affine: options.affine,
            ..nn::GroupNormConfig::default()
        };
        self.build(|| nn::group_norm(path, groups, channels, config))
    }

    /// An instance normalisation: every channel of every sample normalised over its spatial
    /// axes (a group normalisation with one channel per group; no running statistics).
    pub fn instance_norm(
        self,
        path: &nn::Path<'_>,
        channels: i64,
        options: NormOptions,
    ) -> Result<nn::GroupNorm, BackendError> {
        self.group_norm(path, channels, channels, options)
    }

    /// An embedding table of `count` vectors of `dim` values.
    pub fn embedding(
        self,
        path: &nn::Path<'_>,
        count: i64,
        dim: i64,
        options: EmbeddingOptions,
    ) -> Result<nn::Embedding, BackendError> {
        self.check_sizes(&[("num_embeddings", count), ("embedding_dim", dim)])?;
        let padding_idx = match options.padding_idx {
            Some(index) if !(0..count).contains(&index) => {
                return Err(self.error(format!(
                    "`padding_idx` is {index} but the table has {count} entries; use an index \
                     below {count}"
                )));
            }
            Some(index) => index,
            // What libtorch reads as "no padding index".
            None => -1,
        };
        let config = nn::EmbeddingConfig {
            padding_idx,
            sparse: options.sparse,
            scale_grad_by_freq: options.scale_grad_by_freq,
            ..nn::EmbeddingConfig::default()
        };
        self.build(|| nn::embedding(path, count, dim, config))
    }

    /// A user module: runs `build`, turning a panic inside it (a size libtorch refuses) into an
    /// error that names the layer.
    pub fn module<T>(
        self,
        build: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.build(build)?
    }

    fn check_sizes(self, sizes: &[(&str, i64)]) -> Result<(), BackendError> {
        for &(name, value) in sizes {
            self.size(name, value)?;
        }
        Ok(())
    }

    fn build<T>(self, build: impl FnOnce() -> T) -> Result<T, BackendError> {
        catch_unwind(AssertUnwindSafe(build)).map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            self.error(format!(
                "building it failed in the native library: {message}"
            ))
        })
    }
}

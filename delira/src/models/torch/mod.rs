//! Reference networks written with `tch` (cargo feature `torch`).

mod classifier;
mod dcgan;
mod unet;

pub use classifier::{ResNetClassifier, ResNetConfig};
pub use dcgan::{Dcgan, DcganConfig, Discriminator, Generator};
pub use unet::{Norm, UNet, UNetConfig};

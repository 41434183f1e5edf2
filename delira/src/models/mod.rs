//! Reference networks, per backend.
//!
//! `models::torch` (cargo feature `torch`): a U-Net for 2D and 3D segmentation, a residual
//! classification CNN and a DCGAN.

#[cfg(feature = "torch")]
#[cfg_attr(docsrs, doc(cfg(feature = "torch")))]
pub mod torch;

//! Augmentation of 2D and 3D samples.
//!
//! A transform acts on a whole sample: every image and label map of the sample receives the same
//! spatial draw, so images and labels stay aligned.

use crate::io::{LabelMap, Volume};

/// One spatial field of a sample, as augmentation sees it.
#[derive(Debug)]
pub enum SpatialField<'a> {
    /// An image: resampled with linear (or cubic) interpolation; intensity transforms apply.
    Image(&'a mut Volume<f32>),
    /// A label map: resampled by nearest neighbour; intensity transforms never touch it.
    Labels(&'a mut LabelMap),
}

/// A sample whose images and label maps can be augmented together.
///
/// `#[derive(Dataset)]` implements it; fields that are neither images nor label maps (scalars,
/// class labels, metadata) are not listed and stay untouched.
pub trait Augmentable {
    /// The sample's images and label maps, in declaration order.
    fn spatial_fields(&mut self) -> Vec<SpatialField<'_>>;
}

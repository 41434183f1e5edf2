//! Images with spatial metadata.

use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

/// A 4 × 4 affine that maps voxel indices `(i, j, k, 1)` to physical coordinates in millimetres
/// (the NIfTI / nibabel convention, RAS+ world space).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine(pub [[f64; 4]; 4]);

impl Affine {
    /// The identity: voxel index equals millimetres.
    pub const IDENTITY: Self = Self([
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);

    /// A diagonal affine with the given voxel spacing and no offset.
    #[must_use]
    pub fn from_spacing(spacing: [f64; 3]) -> Self {
        let mut m = Self::IDENTITY.0;
        for (axis, s) in spacing.into_iter().enumerate() {
            m[axis][axis] = s;
        }
        Self(m)
    }

    /// The length in millimetres of one voxel step along each of the three index axes (the norms
    /// of the first three columns).
    #[must_use]
    pub fn spacing(&self) -> [f64; 3] {
        let m = &self.0;
        std::array::from_fn(|c| (0..3).map(|r| m[r][c] * m[r][c]).sum::<f64>().sqrt())
    }

    /// The product `self · other`.
    #[must_use]
    pub fn compose(&self, other: &Self) -> Self {
        let (a, b) = (&self.0, &other.0);
        Self(std::array::from_fn(|r| {
            std::array::from_fn(|c| (0..4).map(|k| a[r][k] * b[k][c]).sum())
        }))
    }

    /// The physical position of a voxel index.
    #[must_use]
    pub fn apply(&self, index: [f64; 3]) -> [f64; 3] {
        let m = &self.0;
        std::array::from_fn(|r| {
            m[r][0] * index[0] + m[r][1] * index[1] + m[r][2] * index[2] + m[r][3]
        })
    }
}

impl Default for Affine {
    fn default() -> Self {
        Self::IDENTITY
    }
}

/// An image: an array of shape `[channels, x, y]` (2D) or `[channels, x, y, z]` (3D), and the
/// affine that places its voxels in physical space.
///
/// The channel axis comes first; a single-channel image has one channel. The array may have any
/// memory layout (a NIfTI file is read without reordering its bytes, so its first spatial axis is
/// the fastest in memory).
#[derive(Clone, Debug, PartialEq)]
pub struct Volume<T> {
    data: ArrayD<T>,
    affine: Affine,
}

impl<T> Volume<T> {
    /// A volume from channel-first data and an affine.
    ///
    /// # Panics
    /// If `data` has fewer than 3 or more than 4 axes (channels plus two or three spatial axes).
    #[track_caller]
    pub fn new(data: ArrayD<T>, affine: Affine) -> Self {
        assert!(
            (3..=4).contains(&data.ndim()),
            "a volume needs shape [channels, x, y] or [channels, x, y, z], got {:?}",
            data.shape()
        );
        Self { data, affine }
    }

    /// A volume from channel-first data and an affine, or `None` when the number of axes is not 3
    /// or 4.
    pub fn try_new(data: ArrayD<T>, affine: Affine) -> Option<Self> {
        (3..=4)
            .contains(&data.ndim())
            .then_some(Self { data, affine })
    }

    /// The data, `[channels, spatial...]`.
    #[must_use]
    pub fn data(&self) -> &ArrayD<T> {
        &self.data
    }

    /// The data, mutably.
    pub fn data_mut(&mut self) -> &mut ArrayD<T> {
        &mut self.data
    }

    /// The data and the affine, by value.
    #[must_use]
    pub fn into_parts(self) -> (ArrayD<T>, Affine) {
        (self.data, self.affine)
    }

    /// The affine from voxel indices to millimetres.
    #[must_use]
    pub fn affine(&self) -> &Affine {
        &self.affine
    }

    /// Replaces the affine.
    pub fn set_affine(&mut self, affine: Affine) {
        self.affine = affine;
    }

    /// The number of channels.
    #[must_use]
    pub fn channels(&self) -> usize {
        self.data.shape()[0]
    }

    /// The spatial shape (2 or 3 sizes).
    #[must_use]
    pub fn spatial_shape(&self) -> &[usize] {
        &self.data.shape()[1..]
    }

    /// The number of spatial axes, 2 or 3.
    #[must_use]
    pub fn spatial_ndim(&self) -> usize {
        self.data.ndim() - 1
    }

    /// The voxel spacing in millimetres along each spatial axis.
    #[must_use]
    pub fn spacing(&self) -> Vec<f64> {
        self.affine.spacing()[..self.spatial_ndim()].to_vec()
    }

    /// The same geometry with other data of the same shape.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    #[must_use]
    pub fn with_data<U>(&self, data: ArrayD<U>) -> Volume<U> {
        assert_eq!(
            data.shape(),
            self.data.shape(),
            "replacement data must keep the shape"
        );
        Volume {
            data,
            affine: self.affine,
        }
    }

    /// Converts every voxel.
    #[must_use]
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Volume<U> {
        Volume {
            data: self.data.map(f),
            affine: self.affine,
        }
    }
}

impl<T: Clone + Default> Volume<T> {
    /// A volume of zeros (the type's default) with the given channel-first shape.
    ///
    /// # Panics
    /// If `shape` has fewer than 3 or more than 4 entries.
    #[track_caller]
    #[must_use]
    pub fn zeros(shape: &[usize], affine: Affine) -> Self {
        Self::new(ArrayD::default(IxDyn(shape)), affine)
    }
}

/// Integer labels on a voxel grid, such as a tissue segmentation.
///
/// Augmentation resamples a label map by nearest neighbour, so no label appears that was not
/// there before. Labels are stored as `u16` (enough for atlas label sets such as FreeSurfer's)
/// and become `i64` in a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMap(pub Volume<u16>);

impl LabelMap {
    /// A label map from channel-first labels and an affine.
    ///
    /// # Panics
    /// As [`Volume::new`].
    #[track_caller]
    #[must_use]
    pub fn new(labels: ArrayD<u16>, affine: Affine) -> Self {
        Self(Volume::new(labels, affine))
    }

    /// The underlying volume.
    #[must_use]
    pub fn volume(&self) -> &Volume<u16> {
        &self.0
    }

    /// The sorted distinct labels present.
    #[must_use]
    pub fn labels(&self) -> Vec<u16> {
        let mut seen = vec![false; 1 << 16];
        for &l in &self.0.data {
            seen[usize::from(l)] = true;
        }
        (0..=u16::MAX).filter(|&l| seen[usize::from(l)]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_is_column_norm() {
        let mut a = Affine::from_spacing([2.0, 3.0, 1.5]);
        // Rotate the first axis by 90 degrees in the x-y plane: the spacing stays.
        a.0[0][0] = 0.0;
        a.0[1][0] = 2.0;
        assert_eq!(a.spacing(), [2.0, 3.0, 1.5]);
    }

    #[test]
    fn compose_with_identity_is_identity() {
        let a = Affine::from_spacing([2.0, 3.0, 1.5]);
        assert_eq!(a.compose(&Affine::IDENTITY), a);
        assert_eq!(a.apply([1.0, 1.0, 2.0]), [2.0, 3.0, 3.0]);
    }

    #[test]
    fn label_set_is_sorted_and_distinct() {
        let labels = ArrayD::from_shape_vec(vec![1, 2, 2], vec![3u16, 0, 3, 1]).unwrap();
        assert_eq!(LabelMap::new(labels, Affine::IDENTITY).labels(), [0, 1, 3]);
    }
}

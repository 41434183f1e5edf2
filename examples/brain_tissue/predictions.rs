//! The `predict:` hook of the experiment: the held-out block's segmentation as NIfTI.

use std::error::Error;
use std::ops::Range;
use std::path::Path;

use delira::backend::Network;
use delira::io::{self, LabelMap};
use ndarray::{Array3, ArrayD, IxDyn, s};

use crate::evaluate::{predict_block, tissue_labels};
use crate::template::crop;
use crate::train::BrainPatches;

/// The file the hook writes in the fold's predictions folder.
pub const SEGMENTATION: &str = "held_out_tissue.nii.gz";

/// The `predict:` hook: the fold's test slots name one block; the network segments it as the
/// `test:` hook does ([`predict_block`], labels inside the brain mask) and the labels are written
/// to [`SEGMENTATION`] in `dir` on the template's 2 mm grid and affine, 0 outside the block.
pub fn write_held_out<N: Network>(
    network: &mut N,
    data: &BrainPatches,
    slots: &[usize],
    dir: &Path,
) -> Result<(), Box<dyn Error>> {
    let template = &data.template;
    let block = &template.blocks[data.block_of_slots(slots)?];
    let logits = predict_block(network, &template.t1, block, &data.params)?;
    let mask = crop(&template.labels, block).mapv(|t| t > 0);
    let labels = tissue_labels(&logits, &mask.view());
    let map = on_grid(template.t1.dim(), block, &labels)?;
    let path = dir.join(SEGMENTATION);
    io::save_labels(&path, &LabelMap::new(map, template.affine))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// A `[1, x, y, z]` label map of the grid `shape`: `labels` inside `block`, 0 elsewhere.
pub fn on_grid(
    shape: (usize, usize, usize),
    block: &[Range<usize>; 3],
    labels: &Array3<i64>,
) -> Result<ArrayD<u16>, Box<dyn Error>> {
    let lengths = [block[0].len(), block[1].len(), block[2].len()];
    if labels.shape() != lengths
        || block[0].end > shape.0
        || block[1].end > shape.1
        || block[2].end > shape.2
    {
        return Err(format!(
            "labels of shape {:?} do not fill block {block:?} of the grid {shape:?}",
            labels.shape()
        )
        .into());
    }
    let mut map = ArrayD::<u16>::zeros(IxDyn(&[1, shape.0, shape.1, shape.2]));
    let label = |l: i64| u16::try_from(l).map_err(|_| format!("label {l} is not a u16"));
    let converted = labels
        .iter()
        .map(|&l| label(l))
        .collect::<Result<Vec<_>, _>>()?;
    let converted = Array3::from_shape_vec(labels.raw_dim(), converted)?;
    map.slice_mut(s![0, block[0].clone(), block[1].clone(), block[2].clone()])
        .assign(&converted);
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::halved_affine;
    use delira::io::Affine;

    #[test]
    fn block_labels_land_in_the_block_and_zeros_elsewhere() {
        let block = [0..4, 2..5, 1..3];
        let labels = Array3::from_shape_fn((4, 3, 2), |(x, y, z)| ((x + y + z) % 3 + 1) as i64);
        let map = on_grid((4, 6, 5), &block, &labels).unwrap();
        assert_eq!(map.shape(), &[1, 4, 6, 5]);
        for ((_, x, y, z), &v) in map
            .indexed_iter()
            .map(|(i, v)| ((i[0], i[1], i[2], i[3]), v))
        {
            let inside = block[1].contains(&y) && block[2].contains(&z);
            let expected = if inside {
                labels[[x, y - 2, z - 1]] as u16
            } else {
                0
            };
            assert_eq!(v, expected, "voxel ({x}, {y}, {z})");
        }
        assert_eq!(map.iter().filter(|&&v| v > 0).count(), 24);
        assert!(on_grid((4, 4, 5), &block, &labels).is_err());
        assert!(on_grid((4, 6, 5), &[0..4, 2..5, 1..4], &labels).is_err());
    }

    #[test]
    fn the_2mm_grid_is_centred_between_the_1mm_voxels_it_averages() {
        // A 1 mm grid at (-98, -134, -72) mm, as the MNI template's.
        let mut fine = Affine::IDENTITY;
        fine.0[0][3] = -98.0;
        fine.0[1][3] = -134.0;
        fine.0[2][3] = -72.0;
        let coarse = halved_affine(&fine);
        assert_eq!(coarse.spacing(), [2.0, 2.0, 2.0]);
        // 2 mm voxel 0 averages 1 mm voxels 0 and 1: its centre lies halfway between them.
        assert_eq!(coarse.apply([0.0; 3]), [-97.5, -133.5, -71.5]);
        assert_eq!(coarse.apply([10.0, 20.0, 30.0]), [-77.5, -93.5, -11.5]);
    }
}

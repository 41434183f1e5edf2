//! Whole-block segmentation by sliding windows and its scores inside the brain; the `test:` hook
//! of the experiment.

use std::collections::BTreeMap;
use std::error::Error;

use delira::backend::Network;
use delira::inference::{FlipAveraging, NetworkPredictor, SlidingWindow};
use delira::io::{Affine, Volume};
use delira::training::metrics::{ConfusionMatrix, dice_per_class};
use std::ops::Range;

use ndarray::{Array3, Array4, ArrayView3, Axis};

use crate::baseline;
use crate::template::{CLASSES, OTHER, WHITE, crop};
use crate::train::{BrainPatches, Params};

/// Dice of CSF/other, GM and WM and the voxel accuracy, inside the brain mask.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scores {
    /// Dice of labels 1, 2, 3.
    pub dice: [f64; 3],
    /// The fraction of brain voxels labelled correctly.
    pub accuracy: f64,
}

impl Scores {
    /// The mean Dice of the three tissues.
    pub fn mean_dice(&self) -> f64 {
        self.dice.iter().sum::<f64>() / 3.0
    }
}

/// The scores of `prediction` against `truth` over the voxels where `truth` > 0.
pub fn score(
    truth: &ArrayView3<'_, i64>,
    prediction: &ArrayView3<'_, i64>,
) -> Result<Scores, Box<dyn Error>> {
    let (t, p): (Vec<i64>, Vec<i64>) = truth
        .iter()
        .zip(prediction.iter())
        .filter(|&(&t, _)| t > 0)
        .map(|(&t, &p)| (t, p))
        .unzip();
    let dice = dice_per_class(&t, &p, CLASSES)?;
    let matrix = ConfusionMatrix::from_labels(&t, &p, CLASSES)?;
    let value = |label: i64| dice[label as usize].unwrap_or(0.0);
    Ok(Scores {
        dice: [value(OTHER), value(OTHER + 1), value(WHITE)],
        accuracy: matrix.accuracy(),
    })
}

/// The class scores of `network` for every voxel of `image` (a whole block or brain), by sliding
/// `params.patch`³ windows with Gaussian blending, each window's scores averaged over its mirror
/// images along every combination of the training flips (`params.flip_axes`: test-time
/// augmentation matching the training, two images for the default left/right flip, eight for all
/// three axes): `[4, x, y, z]`.
pub fn predict<N: Network>(
    network: &mut N,
    image: &ArrayView3<'_, f32>,
    params: &Params,
) -> Result<ndarray::Array4<f32>, Box<dyn Error>> {
    let volume = Volume::new(
        image.to_owned().insert_axis(Axis(0)).into_dyn(),
        Affine::from_spacing([2.0; 3]),
    );
    let sliding = SlidingWindow::builder()
        .window(vec![params.patch; 3])
        .overlap(0.5)
        .batch_size(4)
        .build();
    let mut predictor = FlipAveraging::new(
        NetworkPredictor::new(network, "image", "logits"),
        flip_sets(&params.flip_axes),
    );
    let logits = sliding.run(&mut predictor, &volume)?;
    Ok(logits.into_parts().0.into_dimensionality()?)
}

/// Every subset of `axes` (repeats removed), the empty one first: the flips of test-time
/// augmentation.
pub fn flip_sets(axes: &[usize]) -> Vec<Vec<usize>> {
    let mut axes = axes.to_vec();
    axes.sort_unstable();
    axes.dedup();
    (0..1_usize << axes.len())
        .map(|mask| {
            axes.iter()
                .enumerate()
                .filter(|&(i, _)| mask >> i & 1 == 1)
                .map(|(_, &axis)| axis)
                .collect()
        })
        .collect()
}

/// The class scores of `network` for every voxel of `block` of `image` ([`predict`]): the sliding
/// windows run over the block widened by half a patch on every side (within the grid), so that
/// voxels at a cut face see the image beyond it as context rather than zero padding; the scores
/// are then cut back to the block. Only the image is read beyond the block, never labels.
/// `[4, x, y, z]`.
pub fn predict_block<N: Network>(
    network: &mut N,
    image: &Array3<f32>,
    block: &[Range<usize>; 3],
    params: &Params,
) -> Result<Array4<f32>, Box<dyn Error>> {
    let margin = params.patch / 2;
    let shape = image.shape();
    let wide: [Range<usize>; 3] = std::array::from_fn(|axis| {
        block[axis].start.saturating_sub(margin)..(block[axis].end + margin).min(shape[axis])
    });
    let logits = predict(network, &crate::template::crop(image, &wide), params)?;
    let inner = std::array::from_fn::<_, 3, _>(|axis| {
        let offset = block[axis].start - wide[axis].start;
        offset..offset + block[axis].len()
    });
    Ok(logits
        .slice(ndarray::s![
            ..,
            inner[0].clone(),
            inner[1].clone(),
            inner[2].clone()
        ])
        .to_owned())
}

/// Labels inside `mask`: the best of the three tissues (the mask is given, as it is to the
/// threshold rule); 0 outside.
pub fn tissue_labels(logits: &ndarray::Array4<f32>, mask: &ArrayView3<'_, bool>) -> Array3<i64> {
    let mut labels = Array3::<i64>::zeros(mask.raw_dim());
    for ((index, &inside), label) in mask.indexed_iter().zip(labels.iter_mut()) {
        if inside {
            let (x, y, z) = index;
            let mut best = OTHER;
            for class in OTHER + 1..=WHITE {
                if logits[[class as usize, x, y, z]] > logits[[best as usize, x, y, z]] {
                    best = class;
                }
            }
            *label = best;
        }
    }
    labels
}

/// The names of the test metrics of the network (`prefix` "") and of the threshold rule
/// (`prefix` "rule_"), in the order of [`Scores`].
fn named(prefix: &str, scores: &Scores) -> [(String, f64); 4] {
    [
        (format!("{prefix}dice_other"), scores.dice[0]),
        (format!("{prefix}dice_gm"), scores.dice[1]),
        (format!("{prefix}dice_wm"), scores.dice[2]),
        (format!("{prefix}accuracy"), scores.accuracy),
    ]
}

/// The scores of the network and of the threshold rule named `prefix` in `metrics`.
pub fn scores_of(metrics: &BTreeMap<String, f64>, prefix: &str) -> Scores {
    let get = |name: &str| {
        metrics
            .get(&format!("{prefix}{name}"))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Scores {
        dice: [get("dice_other"), get("dice_gm"), get("dice_wm")],
        accuracy: get("accuracy"),
    }
}

/// The `test:` hook: the fold's test slots name one block; the network segments it by sliding
/// windows (see [`predict_block`]) and the two-threshold rule, fitted on the three other blocks,
/// labels it too. Metrics: the network's `dice_other`, `dice_gm`, `dice_wm`, `accuracy`, the
/// rule's under `rule_`, and `block`, the held-out block.
pub fn held_out<N: Network>(
    network: &mut N,
    data: &BrainPatches,
    slots: &[usize],
) -> Result<BTreeMap<String, f64>, Box<dyn Error>> {
    let template = &data.template;
    let block = data.block_of_slots(slots)?;
    let held_out = &template.blocks[block];

    let training = template
        .blocks
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != block);
    let thresholds = baseline::fit(training.flat_map(|(_, b)| {
        crop(&template.t1, b)
            .into_iter()
            .copied()
            .zip(crop(&template.labels, b).into_iter().copied())
            .collect::<Vec<_>>()
    }));
    let truth = crop(&template.labels, held_out);
    let image = crop(&template.t1, held_out);
    let rule = ndarray::Zip::from(&image)
        .and(&truth)
        .map_collect(|&v, &t| if t > 0 { thresholds.label(v) } else { 0 });
    let baseline = score(&truth, &rule.view())?;

    let logits = predict_block(network, &template.t1, held_out, &data.params)?;
    let prediction = tissue_labels(&logits, &truth.mapv(|t| t > 0).view());
    let network = score(&truth, &prediction.view())?;
    let mut metrics: BTreeMap<String, f64> = named("", &network)
        .into_iter()
        .chain(named("rule_", &baseline))
        .collect();
    metrics.insert("block".to_owned(), block as f64);
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::flip_sets;

    #[test]
    fn test_time_flips_are_every_combination_of_the_training_flips() {
        assert_eq!(flip_sets(&[0]), [vec![], vec![0]]);
        assert_eq!(flip_sets(&[]), [Vec::<usize>::new()]);
        assert_eq!(
            flip_sets(&[2, 0, 2]),
            [vec![], vec![0], vec![2], vec![0, 2]]
        );
        let all = flip_sets(&[0, 1, 2]);
        assert_eq!(all.len(), 8);
        assert_eq!(all[7], [0, 1, 2]);
    }
}

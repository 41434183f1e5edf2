//! The two-threshold intensity rule the network has to beat.
//!
//! Inside the brain mask, T1 below `low` is CSF/other, between `low` and `high` grey matter, from
//! `high` on white matter. The two thresholds are fitted on training voxels only, maximising the
//! voxel accuracy exactly over a fine grid of intensities.

use crate::template::{GREY, OTHER, WHITE};

/// Intensity bins of the search over the scaled range `[0, 1.5]`.
const BINS: usize = 3000;
const RANGE: f32 = 1.5;

/// Two intensity thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Below: CSF/other.
    pub low: f32,
    /// From here on: white matter.
    pub high: f32,
}

impl Thresholds {
    /// The label of a brain voxel of intensity `value`.
    pub fn label(self, value: f32) -> i64 {
        if value < self.low {
            OTHER
        } else if value < self.high {
            GREY
        } else {
            WHITE
        }
    }
}

fn bin(value: f32) -> usize {
    ((value / RANGE * BINS as f32) as usize).min(BINS - 1)
}

/// The thresholds that label the most of `voxels` (intensity, label 1..=3) correctly; thresholds
/// lie on bin edges, so a value's label depends only on its bin.
pub fn fit(voxels: impl IntoIterator<Item = (f32, i64)>) -> Thresholds {
    // counts[c][b]: voxels of class c + 1 in bin b
    let mut counts = vec![[0_i64; 3]; BINS];
    for (value, label) in voxels {
        if (OTHER..=WHITE).contains(&label) {
            counts[bin(value)][(label - OTHER) as usize] += 1;
        }
    }
    // Thresholds at edges i <= j: correct = other[..i] + grey[i..j] + white[j..]
    //   = (other[..i] - grey[..i]) + (grey[..j] - white[..j]) + white total.
    let mut prefix = [0_i64; 3];
    let (mut best_left, mut best_left_at) = (0_i64, 0_usize);
    let (mut best, mut best_at) = (i64::MIN, (0, 0));
    for edge in 0..=BINS {
        let left = prefix[0] - prefix[1];
        if left > best_left {
            (best_left, best_left_at) = (left, edge);
        }
        let total = best_left + prefix[1] - prefix[2];
        if total > best {
            (best, best_at) = (total, (best_left_at, edge));
        }
        if let Some(c) = counts.get(edge) {
            for (p, n) in prefix.iter_mut().zip(c) {
                *p += n;
            }
        }
    }
    let edge = |e: usize| e as f32 * RANGE / BINS as f32;
    Thresholds {
        low: edge(best_at.0),
        high: edge(best_at.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_separates_three_clean_classes() {
        let voxels = [(0.1, 1), (0.2, 1), (0.5, 2), (0.55, 2), (0.9, 3), (1.2, 3)];
        let t = fit(voxels);
        assert!(t.low > 0.2 && t.low <= 0.5, "{t:?}");
        assert!(t.high > 0.55 && t.high <= 0.9, "{t:?}");
        assert!(voxels.iter().all(|&(v, l)| t.label(v) == l));
    }
}

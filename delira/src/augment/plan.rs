//! The composed coordinate map of a chain of spatial transforms.
//!
//! All index maps here work in *internal* coordinates: three spatial axes, where a 2D volume
//! `[x, y]` is seen as `[1, x, y]` (a dummy leading axis of size 1). The fastest-varying output
//! axis is then always the last one, for 2D and 3D alike.

use crate::io::Affine;

/// A 4 × 4 homogeneous matrix in internal index coordinates.
pub(crate) type M4 = [[f64; 4]; 4];

pub(crate) const IDENTITY: M4 = Affine::IDENTITY.0;

pub(crate) fn mul(a: &M4, b: &M4) -> M4 {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..4).map(|k| a[r][k] * b[k][c]).sum()))
}

pub(crate) fn apply(m: &M4, p: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3])
}

pub(crate) fn translation(t: [f64; 3]) -> M4 {
    let mut m = IDENTITY;
    for (r, v) in t.into_iter().enumerate() {
        m[r][3] = v;
    }
    m
}

pub(crate) fn diagonal(d: [f64; 3]) -> M4 {
    let mut m = IDENTITY;
    for (r, v) in d.into_iter().enumerate() {
        m[r][r] = v;
    }
    m
}

/// The inverse by Gauss–Jordan elimination with partial pivoting, or `None` when singular.
pub(crate) fn inverse(m: &M4) -> Option<M4> {
    let mut a = *m;
    let mut inv = IDENTITY;
    for col in 0..4 {
        let pivot = (col..4).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        for c in 0..4 {
            a[col][c] /= p;
            inv[col][c] /= p;
        }
        for r in (0..4).filter(|&r| r != col) {
            let f = a[r][col];
            if f != 0.0 {
                for c in 0..4 {
                    a[r][c] -= f * a[col][c];
                    inv[r][c] -= f * inv[col][c];
                }
            }
        }
    }
    Some(inv)
}

/// `floor(v)` for `|v| < 2^20`, without the library call that `f64::floor` is on baseline
/// x86-64.
#[inline]
pub(crate) fn floor_to_i64(v: f64) -> i64 {
    const SHIFT: f64 = 1_048_576.0;
    (v + SHIFT) as i64 - SHIFT as i64
}

/// `m` with every entry rounded, when all entries lie within `1e-9` of integers.
pub(crate) fn integral(m: &M4) -> Option<M4> {
    m.iter()
        .flatten()
        .all(|v| (v - v.round()).abs() < 1e-9)
        .then(|| m.map(|row| row.map(f64::round)))
}

/// The permutation from internal axes to the volume's own spatial axes (`[x, y, z]` for 3D;
/// `[dummy, x, y] -> [x, y, dummy]` for 2D), as a map of index vectors.
pub(crate) fn internal_to_volume(ndim: usize) -> M4 {
    if ndim == 3 {
        IDENTITY
    } else {
        // volume (x, y, z) = internal (1, 2, 0)
        [
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }
}

/// The internal axis of a spatial axis of the volume.
pub(crate) fn internal_axis(ndim: usize, axis: usize) -> usize {
    axis + 3 - ndim
}

/// A dense displacement field on a grid, in internal index units: `field[c]` holds the shift
/// along internal axis `c` for each voxel (standard layout of `shape`).
#[derive(Debug)]
pub(crate) struct Displacement {
    pub shape: [usize; 3],
    pub field: [Vec<f32>; 3],
}

impl Displacement {
    /// The displacement at an integral grid position (zero outside the grid).
    fn at_index(&self, p: [i64; 3]) -> [f64; 3] {
        let s = self.shape;
        if (0..3).any(|a| p[a] < 0 || p[a] >= s[a] as i64) {
            return [0.0; 3];
        }
        let i = (p[0] as usize * s[1] + p[1] as usize) * s[2] + p[2] as usize;
        std::array::from_fn(|c| f64::from(self.field[c][i]))
    }

    /// The displacement at any position, by trilinear interpolation (zero outside the grid).
    pub(crate) fn at(&self, y: [f64; 3]) -> [f64; 3] {
        let base = y.map(floor_to_i64);
        let t: [f64; 3] = std::array::from_fn(|a| y[a] - base[a] as f64);
        let mut d = [0.0; 3];
        for corner in 0..8_usize {
            let bit = |a: usize| (corner >> (2 - a)) & 1;
            let w: f64 = (0..3)
                .map(|a| if bit(a) == 1 { t[a] } else { 1.0 - t[a] })
                .product();
            if w == 0.0 {
                continue;
            }
            let v = self.at_index(std::array::from_fn(|a| base[a] + bit(a) as i64));
            for c in 0..3 {
                d[c] += w * v[c];
            }
        }
        d
    }
}

/// The pending spatial work: output voxel `p` samples the input at
/// `pre · (y + d(y))` with `y = post · p` (or `post · p` without a displacement).
#[derive(Debug)]
pub(crate) struct SpatialPlan {
    /// The shape of the input grid.
    pub in_shape: [usize; 3],
    /// The spacing of the input grid along internal axes (1 for the dummy axis of 2D).
    in_spacing: [f64; 3],
    /// The shape of the current output grid.
    pub shape: [usize; 3],
    pub pre: M4,
    pub displacement: Option<Displacement>,
    pub post: M4,
    /// The product of the grid changes alone (crop, pad, flip, rot90, resize, spacing); the
    /// volumes' affines are multiplied by it.
    pub grid: M4,
}

impl SpatialPlan {
    pub(crate) fn new(shape: [usize; 3], spacing: [f64; 3]) -> Self {
        Self {
            in_shape: shape,
            in_spacing: spacing,
            shape,
            pre: IDENTITY,
            displacement: None,
            post: IDENTITY,
            grid: IDENTITY,
        }
    }

    /// The voxel spacing of the current output grid. Grid changes are axis-aligned (a signed
    /// permutation times a diagonal), so each column of `grid` has one non-zero entry.
    pub(crate) fn spacing(&self) -> [f64; 3] {
        std::array::from_fn(|c| {
            (0..3)
                .map(|r| self.grid[r][c].abs() * self.in_spacing[r])
                .sum()
        })
    }

    /// Changes the output grid: output index `o` of the new grid is index `m · o` of the
    /// current one.
    pub(crate) fn change_grid(&mut self, m: &M4, shape: [usize; 3]) {
        self.post = mul(&self.post, m);
        self.grid = mul(&self.grid, m);
        self.shape = shape;
    }

    /// Moves the content on an unchanged grid: output index `o` samples index `m · o` of the
    /// current content.
    pub(crate) fn deform(&mut self, m: &M4) {
        self.post = mul(&self.post, m);
    }

    /// Adds a displacement field defined on the current output grid.
    ///
    /// # Panics
    /// If the plan already holds one (the caller resamples first).
    pub(crate) fn displace(&mut self, d: Displacement) {
        assert!(self.displacement.is_none(), "one displacement per plan");
        self.pre = mul(&self.pre, &self.post);
        self.post = IDENTITY;
        self.displacement = Some(d);
    }

    /// Whether the plan leaves every field exactly as it is.
    pub(crate) fn is_identity(&self) -> bool {
        self.displacement.is_none() && self.post == IDENTITY && self.shape == self.in_shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_general_matrix() {
        let m = [
            [0.0, 2.0, 0.5, 3.0],
            [1.0, 0.0, 0.0, -1.0],
            [0.0, 0.3, 4.0, 2.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let inv = inverse(&m).unwrap();
        let p = mul(&m, &inv);
        for r in 0..4 {
            for c in 0..4 {
                let want = if r == c { 1.0 } else { 0.0 };
                assert!((p[r][c] - want).abs() < 1e-12, "{p:?}");
            }
        }
    }

    #[test]
    fn integral_rounds_only_near_integers() {
        let mut m = IDENTITY;
        m[0][1] = 1e-17;
        assert_eq!(integral(&m), Some(IDENTITY));
        m[0][3] = 0.5;
        assert_eq!(integral(&m), None);
    }

    #[test]
    fn grid_spacing_follows_permutations_and_scales() {
        let mut plan = SpatialPlan::new([4, 6, 8], [1.0, 2.0, 3.0]);
        // swap axes 1 and 2, then double the resolution of the new axis 1
        let swap = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        plan.change_grid(&swap, [4, 8, 6]);
        plan.change_grid(&diagonal([1.0, 0.5, 1.0]), [4, 16, 6]);
        assert_eq!(plan.spacing(), [1.0, 1.5, 2.0]);
    }

    #[test]
    fn displacement_interpolates_linearly() {
        let d = Displacement {
            shape: [1, 1, 2],
            field: [vec![0.0, 0.0], vec![0.0, 0.0], vec![1.0, 3.0]],
        };
        assert_eq!(d.at([0.0, 0.0, 0.25])[2], 1.5);
        assert_eq!(d.at([0.0, 0.0, 5.0])[2], 0.0);
    }
}

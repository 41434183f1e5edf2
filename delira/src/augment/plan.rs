//! The composed coordinate map of a chain of spatial transforms.
//!
//! All index maps here work in *internal* coordinates: three spatial axes, where a 2D volume
//! `[x, y]` is seen as `[1, x, y]` (a dummy leading axis of size 1). The fastest-varying output
//! axis is then always the last one, for 2D and 3D alike.

use std::sync::OnceLock;

use crate::io::Affine;

/// The most control points per axis of a B-spline displacement.
pub(crate) const MAX_CONTROL_POINTS: usize = 64;

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

/// A displacement field on a grid, in internal index units: component `c` is the shift along
/// internal axis `c`.
///
/// Either dense, or a coarse grid of control values upsampled by a clamped cubic B-spline along
/// each axis. The spline is evaluated row by row along the last axis (the control values
/// contracted with the weights of the two fixed indices, then the 1D spline along the row), and
/// a dense copy is built the same way, only for readers that need random access.
#[derive(Debug)]
pub(crate) struct Displacement {
    pub shape: [usize; 3],
    kind: FieldKind,
}

#[derive(Debug)]
enum FieldKind {
    /// Built by the tests only (the library draws splines).
    #[cfg_attr(not(test), allow(dead_code))]
    Dense([Vec<f32>; 3]),
    Spline {
        /// The control values per component, standard layout of `coarse_shape`.
        coarse: [Vec<f32>; 3],
        coarse_shape: [usize; 3],
        /// Per axis and grid index: four control indices (clamped) and their weights.
        taps: [Vec<[(usize, f64); 4]>; 3],
        /// The same weights along the last axis, per control index: the first grid index it
        /// reaches and its weights from there on (taps that clamp to one index summed).
        bands: Vec<(usize, Vec<f64>)>,
        dense: OnceLock<[Vec<f32>; 3]>,
    },
}

/// The clamped cubic B-spline taps that upsample `k` control points to `n` samples.
fn spline_taps(k: usize, n: usize) -> Vec<[(usize, f64); 4]> {
    (0..n)
        .map(|i| {
            if k == 1 {
                return [(0, 1.0), (0, 0.0), (0, 0.0), (0, 0.0)];
            }
            let t = if n > 1 {
                i as f64 * (k - 1) as f64 / (n - 1) as f64
            } else {
                0.0
            };
            let j = t.floor();
            let f = t - j;
            let w = [
                (1.0 - f).powi(3) / 6.0,
                (3.0 * f.powi(3) - 6.0 * f * f + 4.0) / 6.0,
                (-3.0 * f.powi(3) + 3.0 * f * f + 3.0 * f + 1.0) / 6.0,
                f.powi(3) / 6.0,
            ];
            std::array::from_fn(|d| {
                let src = (j as i64 + d as i64 - 1).clamp(0, k as i64 - 1) as usize;
                (src, w[d])
            })
        })
        .collect()
}

impl Displacement {
    /// A dense field (`field[c]` in standard layout of `shape`).
    #[cfg(test)]
    pub(crate) fn dense(shape: [usize; 3], field: [Vec<f32>; 3]) -> Self {
        Self {
            shape,
            kind: FieldKind::Dense(field),
        }
    }

    /// The B-spline upsampling of control values (`coarse[c]` in standard layout of
    /// `coarse_shape`) to `shape`.
    pub(crate) fn spline(
        shape: [usize; 3],
        coarse_shape: [usize; 3],
        coarse: [Vec<f32>; 3],
    ) -> Self {
        Self {
            shape,
            kind: FieldKind::Spline {
                coarse,
                coarse_shape,
                taps: std::array::from_fn(|a| spline_taps(coarse_shape[a], shape[a])),
                bands: spline_bands(coarse_shape[2], shape[2]),
                dense: OnceLock::new(),
            },
        }
    }

    /// The displacement of the grid row `[p0, p1, ..]`: `out[c][p2]` for every `p2` (each `out[c]`
    /// as long as the last axis).
    pub(crate) fn row(&self, p0: usize, p1: usize, out: &mut [Vec<f32>; 3]) {
        let n2 = self.shape[2];
        let k = (p0 * self.shape[1] + p1) * n2;
        match &self.kind {
            FieldKind::Dense(field) => {
                for (o, f) in out.iter_mut().zip(field) {
                    o[..n2].copy_from_slice(&f[k..k + n2]);
                }
            }
            FieldKind::Spline {
                coarse,
                coarse_shape,
                taps,
                bands,
                ..
            } => spline_row(coarse, *coarse_shape, taps, bands, [p0, p1], out),
        }
    }

    /// The dense field, built on first use for a spline.
    fn field(&self) -> &[Vec<f32>; 3] {
        match &self.kind {
            FieldKind::Dense(field) => field,
            FieldKind::Spline {
                coarse,
                coarse_shape,
                taps,
                bands,
                dense,
            } => dense.get_or_init(|| {
                let [n0, n1, n2] = self.shape;
                let mut field: [Vec<f32>; 3] = std::array::from_fn(|_| vec![0.0; n0 * n1 * n2]);
                let mut row: [Vec<f32>; 3] = std::array::from_fn(|_| vec![0.0; n2]);
                for p0 in 0..n0 {
                    for p1 in 0..n1 {
                        spline_row(coarse, *coarse_shape, taps, bands, [p0, p1], &mut row);
                        let k = (p0 * n1 + p1) * n2;
                        for (f, r) in field.iter_mut().zip(&row) {
                            f[k..k + n2].copy_from_slice(r);
                        }
                    }
                }
                field
            }),
        }
    }

    /// The displacement at an integral grid position (zero outside the grid).
    pub(crate) fn at_index(&self, p: [i64; 3]) -> [f64; 3] {
        let s = self.shape;
        if (0..3).any(|a| p[a] < 0 || p[a] >= s[a] as i64) {
            return [0.0; 3];
        }
        let i = (p[0] as usize * s[1] + p[1] as usize) * s[2] + p[2] as usize;
        let field = self.field();
        std::array::from_fn(|c| f64::from(field[c][i]))
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

/// The weights of [`spline_taps`] regrouped per control index: for each, the first sample it
/// reaches and its weights on the following samples.
fn spline_bands(k: usize, n: usize) -> Vec<(usize, Vec<f64>)> {
    let mut dense = vec![vec![0.0; n]; k];
    for (i, taps) in spline_taps(k, n).into_iter().enumerate() {
        for (c, w) in taps {
            dense[c][i] += w;
        }
    }
    dense
        .into_iter()
        .map(|w| {
            let first = w.iter().position(|&w| w != 0.0).unwrap_or(0);
            let last = w.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
            (first, w[first..last].to_vec())
        })
        .collect()
}

/// One row of a B-spline field along the last axis: the control values contracted with the
/// weights of `p0` and `p1`, then the 1D spline along the row, in double precision (one
/// multiply-add per control index and sample in its band, a loop that vectorises).
fn spline_row(
    coarse: &[Vec<f32>; 3],
    [_, k1, k2]: [usize; 3],
    taps: &[Vec<[(usize, f64); 4]>; 3],
    bands: &[(usize, Vec<f64>)],
    [p0, p1]: [usize; 2],
    out: &mut [Vec<f32>; 3],
) {
    let n2 = taps[2].len();
    let mut acc = vec![0.0_f64; n2];
    for (values, out) in coarse.iter().zip(out.iter_mut()) {
        let mut line = [0.0_f64; MAX_CONTROL_POINTS];
        for &(a, wa) in &taps[0][p0] {
            for &(b, wb) in &taps[1][p1] {
                let w = wa * wb;
                let start = (a * k1 + b) * k2;
                for (l, &v) in line.iter_mut().zip(&values[start..start + k2]) {
                    *l += w * f64::from(v);
                }
            }
        }
        acc.fill(0.0);
        for (&l, (first, weights)) in line.iter().zip(bands) {
            for (a, &w) in acc[*first..*first + weights.len()].iter_mut().zip(weights) {
                *a += w * l;
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = a as f32;
        }
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
        let d = Displacement::dense([1, 1, 2], [vec![0.0, 0.0], vec![0.0, 0.0], vec![1.0, 3.0]]);
        assert_eq!(d.at([0.0, 0.0, 0.25])[2], 1.5);
        assert_eq!(d.at([0.0, 0.0, 5.0])[2], 0.0);
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn spline_rows_equal_the_tensor_product_b_spline() {
        let (coarse_shape, shape) = ([3, 4, 5], [7, 9, 11]);
        let n: usize = coarse_shape.iter().product();
        let values: [Vec<f32>; 3] = std::array::from_fn(|c| {
            (0..n)
                .map(|i| ((i * 37 + c * 11) % 17) as f32 * 0.25 - 2.0)
                .collect()
        });
        let d = Displacement::spline(shape, coarse_shape, values.clone());
        // the cubic B-spline basis, by hand: weights of the four taps at fraction f
        let basis = |f: f64| {
            [
                (1.0 - f).powi(3) / 6.0,
                (4.0 - 6.0 * f * f + 3.0 * f.powi(3)) / 6.0,
                (1.0 + 3.0 * f + 3.0 * f * f - 3.0 * f.powi(3)) / 6.0,
                f.powi(3) / 6.0,
            ]
        };
        let axis = |a: usize, i: usize| {
            let t = i as f64 * (coarse_shape[a] - 1) as f64 / (shape[a] - 1) as f64;
            let j = t.floor();
            let w = basis(t - j);
            let k = coarse_shape[a] as i64 - 1;
            (0..4).map(move |q| ((j as i64 + q - 1).clamp(0, k) as usize, w[q as usize]))
        };
        let mut row: [Vec<f32>; 3] = std::array::from_fn(|_| vec![0.0; shape[2]]);
        for p0 in 0..shape[0] {
            for p1 in 0..shape[1] {
                d.row(p0, p1, &mut row);
                for p2 in 0..shape[2] {
                    for c in 0..3 {
                        let mut want = 0.0;
                        for (a, wa) in axis(0, p0) {
                            for (b, wb) in axis(1, p1) {
                                for (e, we) in axis(2, p2) {
                                    let i = (a * coarse_shape[1] + b) * coarse_shape[2] + e;
                                    want += wa * wb * we * f64::from(values[c][i]);
                                }
                            }
                        }
                        let got = row[c][p2];
                        assert!((f64::from(got) - want).abs() < 1e-6, "{got} vs {want}");
                        // the dense copy holds exactly the row values
                        let dense = d.at_index([p0 as i64, p1 as i64, p2 as i64])[c];
                        assert_eq!(dense, f64::from(got));
                    }
                }
            }
        }
    }
}

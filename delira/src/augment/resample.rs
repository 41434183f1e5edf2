//! Resampling every field of a sample once through a composed coordinate map.
//!
//! The output is produced row by row along the fastest output axis: the input coordinates of a
//! row are computed once (an affine map adds a constant step per voxel) and shared by every
//! channel of every field. Rows of one output slab (fixed first internal axis) form one rayon
//! task, so the work splits across cores without any per-voxel allocation.

use std::ops::Range;

use ndarray::{ArrayD, ArrayView4, Axis, CowArray, Ix4};
use rayon::prelude::*;

use super::plan::{self, Displacement, M4, SpatialPlan};
use super::spec::Interpolation;

/// Output voxels per block along the fastest axis (whole rows of up to this length: measured
/// faster than shorter blocks on 128³, the per-row work outweighing the cache reuse of blocks).
const ROW_BLOCK: usize = 256;

/// Positions this close outside the input grid still count as inside (they absorb the rounding
/// of single-precision coordinates at the border).
const EDGE_TOLERANCE: f32 = 1e-3;

/// One field's data seen as `[channels, n0, n1, n2]` in internal axes, with element strides.
pub(crate) struct Source<'a, T> {
    data: CowArray<'a, T, Ix4>,
}

impl<'a, T: Clone> Source<'a, T> {
    /// The field's data (`[C, x, y]` or `[C, x, y, z]`), without copying when its strides are
    /// non-negative and its elements contiguous (C or Fortran order alike).
    pub(crate) fn new(data: &'a ArrayD<T>) -> Self {
        let view = if data.ndim() == 3 {
            data.view().insert_axis(Axis(1))
        } else {
            data.view()
        };
        let view: ArrayView4<'a, T> = view
            .into_dimensionality()
            .expect("volumes have 3 or 4 axes by construction");
        let contiguous =
            view.strides().iter().all(|&s| s >= 0) && view.as_slice_memory_order().is_some();
        let data = if contiguous {
            CowArray::from(view)
        } else {
            CowArray::from(view.as_standard_layout().into_owned())
        };
        Self { data }
    }

    fn channels(&self) -> usize {
        self.data.shape()[0]
    }

    fn dims(&self) -> [usize; 3] {
        let s = self.data.shape();
        [s[1], s[2], s[3]]
    }

    fn strides(&self) -> [usize; 3] {
        let s = self.data.strides();
        [s[1] as usize, s[2] as usize, s[3] as usize]
    }

    /// The elements of channel `c`, starting at its voxel `[0, 0, 0]`.
    fn channel(&self, c: usize) -> &[T] {
        let all = self
            .data
            .as_slice_memory_order()
            .expect("contiguous by construction");
        &all[c * self.data.strides()[0] as usize..]
    }
}

/// The output of a resampling: for each field, its channels in standard layout
/// `[C, m0, m1, m2]`.
pub(crate) struct Resampled {
    pub images: Vec<Vec<f32>>,
    pub labels: Vec<Vec<u16>>,
}

/// How the output coordinates of one row are produced.
enum Mode<'p> {
    /// An integral affine map without displacement: a pure index permutation, copied exactly.
    Exact(M4),
    /// Any other map: interpolated.
    General(&'p SpatialPlan),
}

/// One output slab (fixed first internal index): the rows of every channel of every field.
struct Job<'o> {
    i0: usize,
    images: Vec<&'o mut [f32]>,
    labels: Vec<&'o mut [u16]>,
}

/// Resamples all fields through `plan`; images with `interpolation` and `fill` outside the
/// input, labels by nearest neighbour with label 0 outside.
pub(crate) fn resample(
    plan: &SpatialPlan,
    images: &[Source<'_, f32>],
    labels: &[Source<'_, u16>],
    interpolation: Interpolation,
    fill: f32,
) -> Resampled {
    resample_with(plan, images, labels, interpolation, fill, true)
}

/// [`resample`], with AVX2 code only when `simd` is set and the processor has it (the tests run
/// both paths to check that they agree bit for bit).
fn resample_with(
    plan: &SpatialPlan,
    images: &[Source<'_, f32>],
    labels: &[Source<'_, u16>],
    interpolation: Interpolation,
    fill: f32,
    simd: bool,
) -> Resampled {
    let [m0, m1, m2] = plan.shape;
    let slab = m1 * m2;
    let mut image_out: Vec<Vec<f32>> = images
        .iter()
        .map(|s| vec![0.0; s.channels() * m0 * slab])
        .collect();
    let mut label_out: Vec<Vec<u16>> = labels
        .iter()
        .map(|s| vec![0; s.channels() * m0 * slab])
        .collect();

    let mut jobs: Vec<Job<'_>> = (0..m0)
        .map(|i0| Job {
            i0,
            images: Vec::new(),
            labels: Vec::new(),
        })
        .collect();
    for out in &mut image_out {
        for (k, chunk) in out.chunks_mut(slab).enumerate() {
            jobs[k % m0].images.push(chunk);
        }
    }
    for out in &mut label_out {
        for (k, chunk) in out.chunks_mut(slab).enumerate() {
            jobs[k % m0].labels.push(chunk);
        }
    }

    let mode = match (&plan.displacement, plan::integral(&plan.post)) {
        (None, Some(m)) => Mode::Exact(m),
        _ => Mode::General(plan),
    };
    jobs.into_par_iter().for_each(|mut job| match &mode {
        Mode::Exact(m) => exact_slab(m, [m1, m2], images, labels, &mut job, fill),
        Mode::General(plan) => {
            let args = (
                plan,
                [m1, m2],
                images,
                labels,
                &mut job,
                interpolation,
                fill,
            );
            #[cfg(target_arch = "x86_64")]
            if simd && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor supports AVX2, checked just above.
                unsafe {
                    general_slab_avx2(args.0, args.1, args.2, args.3, args.4, args.5, args.6);
                };
                return;
            }
            let _ = simd;
            general_slab(args.0, args.1, args.2, args.3, args.4, args.5, args.6);
        }
    });
    Resampled {
        images: image_out,
        labels: label_out,
    }
}

/// The `(field, channel)` pairs of a list of sources, in the order the jobs hold their slabs.
fn channels_of<'s, T: Clone>(sources: &'s [Source<'_, T>]) -> impl Iterator<Item = &'s [T]> {
    sources
        .iter()
        .flat_map(|s| (0..s.channels()).map(move |c| s.channel(c)))
}

fn exact_slab(
    m: &M4,
    [m1, m2]: [usize; 2],
    images: &[Source<'_, f32>],
    labels: &[Source<'_, u16>],
    job: &mut Job<'_>,
    fill: f32,
) {
    let step: [i64; 3] = std::array::from_fn(|r| m[r][2] as i64);
    let image_geometry = geometry_of(images);
    let label_geometry = geometry_of(labels);
    let mut offsets = vec![usize::MAX; m2];
    for i1 in 0..m1 {
        let start = plan::apply(m, [job.i0 as f64, i1 as f64, 0.0]).map(|v| v as i64);
        let row = i1 * m2..(i1 + 1) * m2;
        let mut current = None;
        for ((slab, src), &geometry) in job
            .images
            .iter_mut()
            .zip(channels_of(images))
            .zip(&image_geometry)
        {
            if current != Some(geometry) {
                fill_offsets(&mut offsets, start, step, geometry);
                current = Some(geometry);
            }
            copy_row(&mut slab[row.clone()], src, &offsets, fill);
        }
        for ((slab, src), &geometry) in job
            .labels
            .iter_mut()
            .zip(channels_of(labels))
            .zip(&label_geometry)
        {
            if current != Some(geometry) {
                fill_offsets(&mut offsets, start, step, geometry);
                current = Some(geometry);
            }
            copy_row(&mut slab[row.clone()], src, &offsets, 0);
        }
    }
}

/// The dims and strides of each channel of a list of sources, in job order.
fn geometry_of<T: Clone>(sources: &[Source<'_, T>]) -> Vec<([usize; 3], [usize; 3])> {
    sources
        .iter()
        .flat_map(|s| (0..s.channels()).map(|_| (s.dims(), s.strides())))
        .collect()
}

fn fill_offsets(
    offsets: &mut [usize],
    start: [i64; 3],
    step: [i64; 3],
    (dims, strides): ([usize; 3], [usize; 3]),
) {
    for (i2, o) in offsets.iter_mut().enumerate() {
        let p: [i64; 3] = std::array::from_fn(|a| start[a] + i2 as i64 * step[a]);
        let inside = (0..3).all(|a| p[a] >= 0 && (p[a] as usize) < dims[a]);
        *o = if inside {
            (0..3).map(|a| p[a] as usize * strides[a]).sum()
        } else {
            usize::MAX
        };
    }
}

fn copy_row<T: Copy>(out: &mut [T], src: &[T], offsets: &[usize], fill: T) {
    for (o, &off) in out.iter_mut().zip(offsets) {
        *o = if off == usize::MAX { fill } else { src[off] };
    }
}

/// Input coordinates of one output row, one slice per internal axis.
struct RowCoords {
    u: [Vec<f32>; 3],
    /// The displacement of the current grid row, and which row that is.
    displacement: [Vec<f32>; 3],
    displacement_row: Option<[usize; 2]>,
}

impl RowCoords {
    fn new(len: usize) -> Self {
        Self {
            u: std::array::from_fn(|_| vec![0.0; len]),
            displacement: std::array::from_fn(|_| Vec::new()),
            displacement_row: None,
        }
    }

    /// The coordinates of output voxels `[i0, i1, z0 .. z0 + len]`.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn compute(&mut self, plan: &SpatialPlan, [i0, i1, z0]: [usize; 3], len: usize) {
        let start = plan::apply(&plan.post, [i0 as f64, i1 as f64, z0 as f64]);
        let step: [f64; 3] = std::array::from_fn(|r| plan.post[r][2]);
        match &plan.displacement {
            None => {
                for (a, u) in self.u.iter_mut().enumerate() {
                    // `i32` converts to `f64` in one vector instruction, `usize` does not
                    for (i2, v) in (0_i32..).zip(&mut u[..len]) {
                        *v = (start[a] + f64::from(i2) * step[a]) as f32;
                    }
                }
            }
            Some(d) => match plan::integral(&plan.post) {
                Some(m) => self.displaced_on_grid(&m, d, &plan.pre, [i0, i1, z0], len),
                None => {
                    for i2 in 0..len {
                        let y: [f64; 3] = std::array::from_fn(|a| start[a] + i2 as f64 * step[a]);
                        let dy = d.at(y);
                        let x = plan::apply(&plan.pre, std::array::from_fn(|a| y[a] + dy[a]));
                        for (u, x) in self.u.iter_mut().zip(x) {
                            u[i2] = x as f32;
                        }
                    }
                }
            },
        }
    }

    /// The coordinates of a row when the displacement grid is reached through an integral map:
    /// every position is a grid point, found by integer steps.
    fn displaced_on_grid(
        &mut self,
        m: &M4,
        d: &Displacement,
        pre: &M4,
        [i0, i1, z0]: [usize; 3],
        len: usize,
    ) {
        let start = plan::apply(m, [i0 as f64, i1 as f64, z0 as f64]).map(|v| v as i64);
        let step: [i64; 3] = std::array::from_fn(|r| m[r][2] as i64);
        let s = d.shape;
        let row_inside = (0..2).all(|a| start[a] >= 0 && start[a] < s[a] as i64);
        if step[0] == 0 && step[1] == 0 && step[2].abs() == 1 && row_inside {
            // the output row runs along a grid row (possibly reversed): its displacement is one
            // row of the field
            let p = [start[0] as usize, start[1] as usize];
            if self.displacement_row != Some(p) {
                for v in &mut self.displacement {
                    v.resize(s[2], 0.0);
                }
                d.row(p[0], p[1], &mut self.displacement);
                self.displacement_row = Some(p);
            }
            let y: [f64; 2] = std::array::from_fn(|a| start[a] as f64);
            let [d0, d1, d2] = &self.displacement;
            // the voxels whose grid position lies inside the field: one interval of the row
            let (n2, s2) = (s[2] as i64, start[2]);
            let (lo, hi) = if step[2] == 1 {
                (-s2, n2 - s2)
            } else {
                (s2 - n2 + 1, s2 + 1)
            };
            let (lo, hi) = (
                lo.clamp(0, len as i64) as usize,
                hi.clamp(0, len as i64) as usize,
            );
            let hi = hi.max(lo);
            let [u0, u1, u2] = &mut self.u;
            let mut put = |i2: usize, z: [f64; 3]| {
                let x = plan::apply(pre, z);
                u0[i2] = x[0] as f32;
                u1[i2] = x[1] as f32;
                u2[i2] = x[2] as f32;
            };
            for i2 in (0..lo).chain(hi..len) {
                put(i2, [y[0], y[1], (s2 + i2 as i64 * step[2]) as f64]);
            }
            for i2 in lo..hi {
                let p2 = s2 + i2 as i64 * step[2];
                let k = p2 as usize;
                put(
                    i2,
                    [
                        y[0] + f64::from(d0[k]),
                        y[1] + f64::from(d1[k]),
                        p2 as f64 + f64::from(d2[k]),
                    ],
                );
            }
            return;
        }
        for i2 in 0..len {
            let p: [i64; 3] = std::array::from_fn(|a| start[a] + i2 as i64 * step[a]);
            let y = p.map(|v| v as f64);
            let dy = d.at_index(p);
            let x = plan::apply(pre, std::array::from_fn(|a| y[a] + dy[a]));
            for (u, x) in self.u.iter_mut().zip(x) {
                u[i2] = x as f32;
            }
        }
    }
}

/// [`general_slab`] compiled for AVX2: the same operations (no fused multiply-add), so the same
/// bits, with wider vector code where the compiler finds it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn general_slab_avx2(
    plan: &SpatialPlan,
    m: [usize; 2],
    images: &[Source<'_, f32>],
    labels: &[Source<'_, u16>],
    job: &mut Job<'_>,
    interpolation: Interpolation,
    fill: f32,
) {
    general_slab(plan, m, images, labels, job, interpolation, fill);
}

#[allow(clippy::inline_always)]
#[inline(always)]
fn general_slab(
    plan: &SpatialPlan,
    [m1, m2]: [usize; 2],
    images: &[Source<'_, f32>],
    labels: &[Source<'_, u16>],
    job: &mut Job<'_>,
    interpolation: Interpolation,
    fill: f32,
) {
    let mut coords = RowCoords::new(ROW_BLOCK.min(m2));
    let mut fast = FastRow::new(ROW_BLOCK.min(m2));
    let image_channels: Vec<(&[f32], Geometry)> =
        channels_of(images).zip(geometry_of(images)).collect();
    let label_channels: Vec<(&[u16], Geometry)> =
        channels_of(labels).zip(geometry_of(labels)).collect();
    // blocks of rows along the fastest axis, all of one block's rows before the next
    for z0 in (0..m2).step_by(ROW_BLOCK) {
        let len = ROW_BLOCK.min(m2 - z0);
        for i1 in 0..m1 {
            coords.compute(plan, [job.i0, i1, z0], len);
            let row = i1 * m2 + z0..i1 * m2 + z0 + len;
            general_row(
                &mut coords,
                &mut fast,
                len,
                row,
                &image_channels,
                &label_channels,
                job,
                interpolation,
                fill,
            );
        }
    }
}

/// The dims and strides of one channel.
type Geometry = ([usize; 3], [usize; 3]);

/// Per-voxel work of a row shared by every channel of one geometry, for the voxels that lie
/// inside the input (the fast path).
struct FastRow {
    /// The geometry the offsets below were computed for.
    geometry: Option<Geometry>,
    /// Element offset of the lower corner of each voxel's interpolation cell.
    corner: Vec<u32>,
    /// Fractions along the three axes.
    t: [Vec<f32>; 3],
    /// Element offset of each voxel's nearest neighbour.
    nearest: Vec<u32>,
    /// Whether `nearest` is up to date for `geometry`.
    has_nearest: bool,
    /// Whether `corner` and `t` are up to date for `geometry`.
    has_linear: bool,
    /// Per voxel: inside the input, see [`FastRow::inside`].
    flags: Vec<bool>,
    /// The dims the inside range below was found for, and the range.
    range: Option<([usize; 3], Range<usize>)>,
}

impl FastRow {
    fn new(len: usize) -> Self {
        Self {
            geometry: None,
            corner: vec![0; len],
            t: std::array::from_fn(|_| vec![0.0; len]),
            nearest: vec![0; len],
            has_nearest: false,
            has_linear: false,
            flags: vec![false; len],
            range: None,
        }
    }

    /// Forgets everything computed for the previous row.
    fn next_row(&mut self) {
        self.geometry = None;
        self.range = None;
    }

    fn select(&mut self, geometry: Geometry) {
        if self.geometry != Some(geometry) {
            self.geometry = Some(geometry);
            self.has_linear = false;
            self.has_nearest = false;
        }
    }

    /// The range of voxels of the row that lie inside the input: every coordinate in
    /// `[0, dim - 1)` along axes longer than 1 (so that both neighbours of each linear cell
    /// exist) and exactly 0 along axes of size 1. Empty unless every voxel between the first and
    /// the last such voxel is such a voxel (then the whole row takes the checked path).
    // `&` between the comparisons keeps the loops branch-free, so that they vectorise
    #[allow(clippy::needless_bitwise_bool, clippy::inline_always)]
    #[inline(always)]
    fn inside(&mut self, u: [&[f32]; 3], dims: [usize; 3]) -> Range<usize> {
        if let Some((d, r)) = &self.range
            && *d == dims
        {
            return r.clone();
        }
        let len = u[0].len();
        let flags = &mut self.flags[..len];
        flags.fill(true);
        for (u, &dim) in u.iter().zip(&dims) {
            if dim == 1 {
                for (f, &x) in flags.iter_mut().zip(*u) {
                    *f &= x == 0.0;
                }
            } else {
                let hi = (dim - 1) as f32;
                for (f, &x) in flags.iter_mut().zip(*u) {
                    *f &= (x >= 0.0) & (x < hi);
                }
            }
        }
        let start = flags.iter().position(|&f| f).unwrap_or(len);
        let end = flags.iter().rposition(|&f| f).map_or(start, |e| e + 1);
        let range = if flags[start..end].iter().all(|&f| f) {
            start..end
        } else {
            0..0
        };
        self.range = Some((dims, range.clone()));
        range
    }

    /// The cell corners and fractions of the voxels in `range` (inside, see
    /// [`FastRow::inside`]; offsets below 2^31, see [`fast_path_fits`]).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn linear(&mut self, u: [&[f32]; 3], range: Range<usize>) {
        if self.has_linear {
            return;
        }
        let Some((_, strides)) = self.geometry else {
            return;
        };
        let s = strides.map(|s| s as u32);
        let n = range.len();
        let [t0, t1, t2] = &mut self.t;
        let (t0, t1, t2) = (
            &mut t0[range.clone()],
            &mut t1[range.clone()],
            &mut t2[range.clone()],
        );
        let corner = &mut self.corner[range.clone()];
        let [x, y, z] = u.map(|u| &u[range.clone()]);
        // equal lengths stated once, so that the loop below runs without bounds checks
        let (t0, t1, t2, corner) = (&mut t0[..n], &mut t1[..n], &mut t2[..n], &mut corner[..n]);
        let (x, y, z) = (&x[..n], &y[..n], &z[..n]);
        for i in 0..n {
            // SAFETY: inside coordinates are finite, non-negative and below `dim - 1`, which is
            // below 2^31 (`fast_path_fits`); truncation is then the floor.
            let [ix, iy, iz] = [x[i], y[i], z[i]].map(|v| unsafe { v.to_int_unchecked::<i32>() });
            t0[i] = x[i] - ix as f32;
            t1[i] = y[i] - iy as f32;
            t2[i] = z[i] - iz as f32;
            corner[i] = (ix.cast_unsigned())
                .wrapping_mul(s[0])
                .wrapping_add(iy.cast_unsigned().wrapping_mul(s[1]))
                .wrapping_add(iz.cast_unsigned().wrapping_mul(s[2]));
        }
        self.has_linear = true;
    }

    /// The nearest-neighbour offsets of the voxels in `range` (same precondition as
    /// [`FastRow::linear`]).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn nearest(&mut self, u: [&[f32]; 3], range: Range<usize>) {
        if self.has_nearest {
            return;
        }
        let Some((_, strides)) = self.geometry else {
            return;
        };
        let s = strides.map(|s| s as u32);
        let n = range.len();
        let nearest = &mut self.nearest[range.clone()][..n];
        let [x, y, z] = u.map(|u| &u[range.clone()][..n]);
        for i in 0..n {
            // SAFETY: inside coordinates are finite, non-negative and below `dim - 1`, so one
            // half more stays below 2^31 (`fast_path_fits`); truncation then rounds.
            let [ix, iy, iz] = [x[i], y[i], z[i]]
                .map(|v| unsafe { (v + 0.5).to_int_unchecked::<i32>() }.cast_unsigned());
            nearest[i] = ix
                .wrapping_mul(s[0])
                .wrapping_add(iy.wrapping_mul(s[1]))
                .wrapping_add(iz.wrapping_mul(s[2]));
        }
        self.has_nearest = true;
    }
}

/// Whether a channel of `geometry` can take the fast path: every offset it may be read at lies
/// below the length of its data and below 2^31 (offsets are computed in 32 bits).
fn fast_path_fits((dims, strides): Geometry, len: usize) -> bool {
    let last: usize = (0..3).map(|a| (dims[a] - 1) * strides[a]).sum();
    last < len && last < 1 << 31
}

/// The coordinates of the voxels in `r`.
fn part<'u>(u: &'u [Vec<f32>; 3], r: &Range<usize>) -> [&'u [f32]; 3] {
    std::array::from_fn(|a| &u[a][r.clone()])
}

#[allow(clippy::too_many_arguments)]
#[allow(clippy::inline_always)]
#[inline(always)]
fn general_row(
    coords: &mut RowCoords,
    fast: &mut FastRow,
    len: usize,
    row: Range<usize>,
    image_channels: &[(&[f32], Geometry)],
    label_channels: &[(&[u16], Geometry)],
    job: &mut Job<'_>,
    interpolation: Interpolation,
    fill: f32,
) {
    fast.next_row();
    let all = 0..len;
    let u = &coords.u;
    for (slab, &(src, geometry)) in job.images.iter_mut().zip(image_channels) {
        let out = &mut slab[row.clone()];
        let (dims, strides) = geometry;
        let inside = if matches!(interpolation, Interpolation::Linear)
            && fast_path_fits(geometry, src.len())
        {
            fast.inside(part(u, &all), dims)
        } else {
            0..0
        };
        if !inside.is_empty() {
            fast.select(geometry);
            fast.linear(part(u, &all), inside.clone());
            linear_row_inside(
                &mut out[inside.clone()],
                src,
                fast,
                geometry,
                inside.clone(),
            );
        }
        for r in [0..inside.start, inside.end..len] {
            if r.is_empty() {
                continue;
            }
            let (out, u) = (&mut out[r.clone()], part(u, &r));
            match interpolation {
                Interpolation::Linear => linear_row(out, src, dims, strides, u, fill),
                Interpolation::Cubic => cubic_row(out, src, dims, strides, u, fill),
                Interpolation::Nearest => nearest_row(out, src, dims, strides, u, fill),
            }
        }
    }
    for (slab, &(src, geometry)) in job.labels.iter_mut().zip(label_channels) {
        let out = &mut slab[row.clone()];
        let (dims, strides) = geometry;
        let inside = if fast_path_fits(geometry, src.len()) {
            fast.inside(part(u, &all), dims)
        } else {
            0..0
        };
        if !inside.is_empty() {
            fast.select(geometry);
            fast.nearest(part(u, &all), inside.clone());
            for &k in fast.nearest[inside.clone()].iter().step_by(16) {
                prefetch(src, k as usize);
            }
            for (o, &k) in out[inside.clone()]
                .iter_mut()
                .zip(&fast.nearest[inside.clone()])
            {
                // SAFETY: every coordinate lies in `[0, dim - 1)` (or is 0 on axes of size 1,
                // where the rounded index is 0), so each rounded index is at most `dim - 1` and
                // `k` at most the last offset of the channel, below `src.len()`
                // (`fast_path_fits`).
                *o = unsafe { *src.get_unchecked(k as usize) };
            }
        }
        for r in [0..inside.start, inside.end..len] {
            if !r.is_empty() {
                nearest_row(&mut out[r.clone()], src, dims, strides, part(u, &r), 0);
            }
        }
    }
}

/// Trilinear interpolation of the voxels in `range` (inside, see [`FastRow::inside`]) from the
/// corners and fractions in `fast`: the same operations as [`linear_row`], without the checks.
#[allow(clippy::inline_always)]
#[inline(always)]
fn linear_row_inside(
    out: &mut [f32],
    src: &[f32],
    fast: &FastRow,
    (dims, strides): Geometry,
    range: Range<usize>,
) {
    // no upper neighbour along axes of size 1 (the fraction there is 0)
    let step: [usize; 3] = std::array::from_fn(|a| if dims[a] > 1 { strides[a] } else { 0 });
    let [dx, dy, dz] = step;
    let n = range.len();
    let out = &mut out[..n];
    let corner = &fast.corner[range.clone()][..n];
    let [tx, ty, tz] = std::array::from_fn(|a| &fast.t[a][range.clone()][..n]);
    // the row's cache lines requested up front, so that their misses overlap instead of
    // stalling the gathers one after another (every 8th voxel: a line holds 16 values and a row
    // advances about one value per voxel along the fastest axis)
    for &b in corner.iter().step_by(8) {
        let b = b as usize;
        for k in [0, dy, dx, dx + dy] {
            prefetch(src, b + k);
        }
    }
    for i in 0..n {
        let b = corner[i] as usize;
        // SAFETY: the lower corner has index at most `dim - 2` along each axis longer than 1 and
        // 0 along the others, so `b + dx + dy + dz` is at most the last offset of the channel,
        // below `src.len()` (`fast_path_fits`, checked by the caller).
        let at = |k: usize| unsafe { *src.get_unchecked(k) };
        let c00 = lerp(at(b), at(b + dz), tz[i]);
        let c01 = lerp(at(b + dy), at(b + dy + dz), tz[i]);
        let c10 = lerp(at(b + dx), at(b + dx + dz), tz[i]);
        let c11 = lerp(at(b + dx + dy), at(b + dx + dy + dz), tz[i]);
        out[i] = lerp(lerp(c00, c01, ty[i]), lerp(c10, c11, ty[i]), tx[i]);
    }
}

/// The position clamped into the grid, or `None` when it lies outside (beyond the tolerance).
#[inline]
fn inside(u: f32, dim: usize) -> Option<f32> {
    let hi = (dim - 1) as f32;
    (u >= -EDGE_TOLERANCE && u <= hi + EDGE_TOLERANCE).then(|| u.clamp(0.0, hi))
}

/// Asks the processor to bring the cache line of `data[at]` closer (a hint: no effect on any
/// result, and harmless for any `at`, which is never dereferenced).
#[inline(always)]
#[allow(clippy::inline_always)]
fn prefetch<T>(data: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = data.as_ptr().wrapping_add(at).cast::<i8>();
        // SAFETY: a prefetch never faults and never changes memory, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

#[inline]
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

#[allow(clippy::inline_always)]
#[inline(always)]
fn linear_row(
    out: &mut [f32],
    src: &[f32],
    dims: [usize; 3],
    strides: [usize; 3],
    u: [&[f32]; 3],
    fill: f32,
) {
    for (v, o) in out.iter_mut().enumerate() {
        let (Some(x), Some(y), Some(z)) = (
            inside(u[0][v], dims[0]),
            inside(u[1][v], dims[1]),
            inside(u[2][v], dims[2]),
        ) else {
            *o = fill;
            continue;
        };
        // non-negative after clamping: truncation is the floor (`floor` is a library call
        // without SSE4.1)
        let (ix, iy, iz) = (x as i32 as usize, y as i32 as usize, z as i32 as usize);
        let (tx, ty, tz) = (x - ix as f32, y - iy as f32, z - iz as f32);
        let dx = if ix + 1 < dims[0] { strides[0] } else { 0 };
        let dy = if iy + 1 < dims[1] { strides[1] } else { 0 };
        let dz = if iz + 1 < dims[2] { strides[2] } else { 0 };
        let b = ix * strides[0] + iy * strides[1] + iz * strides[2];
        let c00 = lerp(src[b], src[b + dz], tz);
        let c01 = lerp(src[b + dy], src[b + dy + dz], tz);
        let c10 = lerp(src[b + dx], src[b + dx + dz], tz);
        let c11 = lerp(src[b + dx + dy], src[b + dx + dy + dz], tz);
        *o = lerp(lerp(c00, c01, ty), lerp(c10, c11, ty), tx);
    }
}

/// Catmull–Rom weights of the taps at offsets -1, 0, 1, 2 for a fraction `t`.
#[inline]
fn cubic_weights(t: f32) -> [f32; 4] {
    let (t2, t3) = (t * t, t * t * t);
    [
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    ]
}

/// The four tap offsets (edge-clamped) and weights along one axis.
#[inline]
fn cubic_axis(x: f32, dim: usize, stride: usize) -> ([usize; 4], [f32; 4]) {
    // non-negative after clamping: truncation is the floor
    let i = i64::from(x as i32);
    let w = cubic_weights(x - i as f32);
    let hi = dim as i64 - 1;
    let off = std::array::from_fn(|k| (i + k as i64 - 1).clamp(0, hi) as usize * stride);
    (off, w)
}

#[allow(clippy::inline_always)]
#[inline(always)]
fn cubic_row(
    out: &mut [f32],
    src: &[f32],
    dims: [usize; 3],
    strides: [usize; 3],
    u: [&[f32]; 3],
    fill: f32,
) {
    for (v, o) in out.iter_mut().enumerate() {
        let (Some(x), Some(y), Some(z)) = (
            inside(u[0][v], dims[0]),
            inside(u[1][v], dims[1]),
            inside(u[2][v], dims[2]),
        ) else {
            *o = fill;
            continue;
        };
        let (ox, wx) = cubic_axis(x, dims[0], strides[0]);
        let (oy, wy) = cubic_axis(y, dims[1], strides[1]);
        let (oz, wz) = cubic_axis(z, dims[2], strides[2]);
        let mut acc = 0.0;
        for a in 0..4 {
            if wx[a] == 0.0 {
                continue;
            }
            let mut ay = 0.0;
            for b in 0..4 {
                if wy[b] == 0.0 {
                    continue;
                }
                let base = ox[a] + oy[b];
                let az: f32 = (0..4).map(|c| wz[c] * src[base + oz[c]]).sum();
                ay += wy[b] * az;
            }
            acc += wx[a] * ay;
        }
        *o = acc;
    }
}

#[allow(clippy::inline_always)]
#[inline(always)]
fn nearest_row<T: Copy>(
    out: &mut [T],
    src: &[T],
    dims: [usize; 3],
    strides: [usize; 3],
    u: [&[f32]; 3],
    fill: T,
) {
    for (v, o) in out.iter_mut().enumerate() {
        let (Some(x), Some(y), Some(z)) = (
            inside(u[0][v], dims[0]),
            inside(u[1][v], dims[1]),
            inside(u[2][v], dims[2]),
        ) else {
            *o = fill;
            continue;
        };
        // non-negative after clamping: adding one half and truncating rounds
        let off = (x + 0.5) as i32 as usize * strides[0]
            + (y + 0.5) as i32 as usize * strides[1]
            + (z + 0.5) as i32 as usize * strides[2];
        *o = src[off];
    }
}

#[cfg(test)]
mod tests {
    use ndarray::IxDyn;

    use super::*;

    #[test]
    fn catmull_rom_weights_sum_to_one_and_interpolate() {
        for t in [0.0, 0.25, 0.5, 0.9] {
            let w = cubic_weights(t);
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
        // a linear ramp is reproduced exactly: sum w_k (k - 1) = t
        let w = cubic_weights(0.3);
        let ramp: f32 = w
            .iter()
            .enumerate()
            .map(|(k, w)| w * (k as f32 - 1.0))
            .sum();
        assert!((ramp - 0.3).abs() < 1e-6);
    }

    #[test]
    fn linear_row_blends_neighbours_and_fills_outside() {
        let src = [0.0, 10.0, 20.0];
        let u = [
            vec![0.0, 0.0, 0.0],
            vec![0.0, 0.0, 0.0],
            vec![0.5, 2.0, 2.6],
        ];
        let mut out = [0.0; 3];
        linear_row(
            &mut out,
            &src,
            [1, 1, 3],
            [3, 3, 1],
            part(&u, &(0..3)),
            -1.0,
        );
        assert_eq!(out, [5.0, 20.0, -1.0]);
    }

    /// A volume of `shape` (with `channels`) filled from a stream: smooth plus noise for images.
    fn random_image(stream: &mut crate::random::Stream, shape: [usize; 4]) -> ArrayD<f32> {
        ArrayD::from_shape_fn(IxDyn(&shape), |i| {
            (i[1] as f32 * 0.3).sin() * 10.0 + i[3] as f32 * 0.5 + stream.next_f32()
        })
    }

    #[test]
    fn the_avx2_and_the_generic_path_agree_bit_for_bit() {
        use crate::random::Stream;
        let mut stream = Stream::from_seed(11);
        let shape = [2, 19, 23, 37];
        let image = random_image(&mut stream, shape);
        // Fortran order for the second image: other strides, same values
        let fortran = image.t().as_standard_layout().into_owned().reversed_axes();
        assert!(fortran.as_slice().is_none());
        let labels = ArrayD::from_shape_fn(IxDyn(&shape), |_| (stream.next_u64() % 5) as u16);
        let images = [Source::new(&image), Source::new(&fortran)];
        let label_sources = [Source::new(&labels)];
        let dims = [shape[1], shape[2], shape[3]];
        let mut checked = 0;
        for trial in 0..6 {
            let mut plan = SpatialPlan::new(dims, [1.0; 3]);
            // a random rotation, scaling and shift about the centre
            let (s, c) = stream.uniform(-0.5, 0.5).sin_cos();
            let k = stream.uniform(0.8, 1.3);
            let mut m = plan::IDENTITY;
            m[0][0] = c * k;
            m[0][2] = -s * k;
            m[2][0] = s * k;
            m[2][2] = c * k;
            m[1][1] = k;
            for r in 0..3 {
                m[r][3] = stream.uniform(-3.0, 3.0) + dims[r] as f64 * (1.0 - k) / 2.0;
            }
            plan.deform(&m);
            if trial % 2 == 1 {
                let field = std::array::from_fn(|_| {
                    (0..dims.iter().product::<usize>())
                        .map(|_| stream.uniform(-2.0, 2.0) as f32)
                        .collect()
                });
                plan.displace(Displacement::dense(dims, field));
                if trial == 3 {
                    // a flip after the displacement: the grid path of the coordinates
                    let mut flip = plan::IDENTITY;
                    flip[2][2] = -1.0;
                    flip[2][3] = (dims[2] - 1) as f64;
                    plan.change_grid(&flip, dims);
                }
            }
            for interpolation in [
                Interpolation::Linear,
                Interpolation::Cubic,
                Interpolation::Nearest,
            ] {
                let a = resample_with(&plan, &images, &label_sources, interpolation, -7.0, true);
                let b = resample_with(&plan, &images, &label_sources, interpolation, -7.0, false);
                for (x, y) in a.images.iter().zip(&b.images) {
                    let bits = |v: &Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(x), bits(y), "trial {trial}, {interpolation:?}");
                    // both images hold the same values, in different layouts
                    checked += x.iter().filter(|&&v| v != -7.0).count();
                }
                assert_eq!(a.images[0], a.images[1]);
                assert_eq!(a.labels, b.labels, "trial {trial}");
            }
        }
        // most voxels were interpolated, not filled
        assert!(checked > 6 * 3 * 2 * image.len() / 4, "{checked}");
    }
}

//! Intensity transforms: a fused point-wise chain, plus the few that need neighbourhoods or
//! positions (blur, bias field).
//!
//! Consecutive point-wise steps run as one pass over memory: the channel is cut into chunks that
//! fit the L1 cache, and every step runs over a chunk before the next chunk is loaded. Steps that
//! need channel statistics (z-score, range, gamma, contrast) obtain them analytically when the
//! earlier steps were affine in the intensity, and from one extra read pass otherwise.

use std::sync::OnceLock;

use ndarray::{ArrayViewMutD, Axis};
use rayon::prelude::*;

use crate::random::Stream;

/// Elements per chunk of a fused pass (16 KiB of `f32`); fixed, so that the noise of a chunk
/// depends on its position only, never on the number of threads.
const CHUNK: usize = 4096;

/// An intensity step with its random parameters drawn.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    ZScore,
    Range { low: f64, high: f64 },
    Contrast { factor: f64 },
    Scale { multiply: f64, add: f64 },
    Gamma { gamma: f64 },
    Noise { std: f64, seed: u64 },
    Rician { std: f64, seed: u64 },
    Clip { min: f64, max: f64 },
    PercentileClip { lower: f64, upper: f64 },
    Blur { sigma_mm: f64 },
    Bias { order: u32, coefficients: Vec<f64> },
}

/// A resolved point-wise operation (statistics already substituted).
#[derive(Clone, Copy, Debug)]
enum Op {
    Affine { a: f32, b: f32 },
    Gamma { gamma: f32, low: f32, range: f32 },
    Noise { std: f32, seed: u64 },
    Rician { std: f32, seed: u64 },
    Clip { min: f32, max: f32 },
}

/// What is known about the current values of a channel.
#[derive(Clone, Copy, Debug, Default)]
struct Known {
    moments: Option<(f64, f64)>,
    range: Option<(f64, f64)>,
}

impl Known {
    fn affine(self, a: f64, b: f64) -> Self {
        Self {
            moments: self.moments.map(|(m, s)| (a * m + b, a.abs() * s)),
            range: self.range.map(|(lo, hi)| {
                let (x, y) = (a * lo + b, a * hi + b);
                (x.min(y), x.max(y))
            }),
        }
    }
}

/// Runs `steps` on one channel (`spacing` in millimetres per spatial axis). `key` identifies
/// the channel among all channels of the sample, for the noise streams.
pub(crate) fn run_channel(
    mut channel: ArrayViewMutD<'_, f32>,
    spacing: &[f64],
    steps: &[Step],
    key: u64,
) {
    let mut known = Known::default();
    let mut chain: Vec<Op> = Vec::new();
    for step in steps {
        match *step {
            Step::ZScore => {
                let (mean, std) = moments(&mut channel, &mut chain, &mut known);
                let a = if std > 0.0 { 1.0 / std } else { 1.0 };
                push_affine(&mut chain, &mut known, a, -mean * a);
            }
            Step::Range { low, high } => {
                let (min, max) = range(&mut channel, &mut chain, &mut known);
                let a = if max > min {
                    (high - low) / (max - min)
                } else {
                    0.0
                };
                push_affine(&mut chain, &mut known, a, low - min * a);
            }
            Step::Contrast { factor } => {
                let (mean, _) = moments(&mut channel, &mut chain, &mut known);
                push_affine(&mut chain, &mut known, factor, mean * (1.0 - factor));
            }
            Step::Scale { multiply, add } => push_affine(&mut chain, &mut known, multiply, add),
            Step::Gamma { gamma } => {
                let (min, max) = range(&mut channel, &mut chain, &mut known);
                if max > min && gamma != 1.0 {
                    chain.push(Op::Gamma {
                        gamma: gamma as f32,
                        low: min as f32,
                        range: (max - min) as f32,
                    });
                    known.moments = None;
                }
            }
            Step::Noise { std, seed } => {
                chain.push(Op::Noise {
                    std: std as f32,
                    seed: mix(seed, key),
                });
                known = Known::default();
            }
            Step::Rician { std, seed } => {
                chain.push(Op::Rician {
                    std: std as f32,
                    seed: mix(seed, key),
                });
                known = Known::default();
            }
            Step::Clip { min, max } => push_clip(&mut chain, &mut known, min, max),
            Step::PercentileClip { lower, upper } => {
                flush(&mut channel, &mut chain);
                let (min, max) = percentiles(&channel, lower, upper);
                push_clip(&mut chain, &mut known, min, max);
            }
            Step::Blur { sigma_mm } => {
                flush(&mut channel, &mut chain);
                blur(&mut channel, spacing, sigma_mm);
                known = Known::default();
            }
            Step::Bias {
                order,
                ref coefficients,
            } => {
                flush(&mut channel, &mut chain);
                bias(&mut channel, order, coefficients);
                known = Known::default();
            }
        }
    }
    flush(&mut channel, &mut chain);
}

fn push_affine(chain: &mut Vec<Op>, known: &mut Known, a: f64, b: f64) {
    *known = known.affine(a, b);
    if let Some(Op::Affine { a: a0, b: b0 }) = chain.last_mut() {
        // (a·(a0·x + b0) + b) folds into one multiply-add
        let (a1, b1) = (a * f64::from(*a0), a * f64::from(*b0) + b);
        *a0 = a1 as f32;
        *b0 = b1 as f32;
    } else if a != 1.0 || b != 0.0 {
        chain.push(Op::Affine {
            a: a as f32,
            b: b as f32,
        });
    }
}

fn push_clip(chain: &mut Vec<Op>, known: &mut Known, min: f64, max: f64) {
    chain.push(Op::Clip {
        min: min as f32,
        max: max as f32,
    });
    known.moments = None;
    known.range = known
        .range
        .map(|(lo, hi)| (lo.clamp(min, max), hi.clamp(min, max)));
}

fn moments(
    channel: &mut ArrayViewMutD<'_, f32>,
    chain: &mut Vec<Op>,
    known: &mut Known,
) -> (f64, f64) {
    if let Some(m) = known.moments {
        return m;
    }
    flush(channel, chain);
    let s = stats(channel);
    *known = Known {
        moments: Some((s.mean, s.std)),
        range: Some((s.min, s.max)),
    };
    (s.mean, s.std)
}

fn range(
    channel: &mut ArrayViewMutD<'_, f32>,
    chain: &mut Vec<Op>,
    known: &mut Known,
) -> (f64, f64) {
    if let Some(r) = known.range {
        return r;
    }
    flush(channel, chain);
    let (min, max) = min_max(channel);
    known.range = Some((min, max));
    (min, max)
}

/// The minimum and maximum of a channel (one read pass, lighter than [`stats`]).
fn min_max(channel: &ArrayViewMutD<'_, f32>) -> (f64, f64) {
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    let mut fold = |chunk: &[f32]| {
        let (lo, hi) = lane_min_max(chunk);
        min = min.min(lo);
        max = max.max(hi);
    };
    match channel.as_slice_memory_order() {
        Some(data) => fold(data),
        None => fold(&channel.iter().copied().collect::<Vec<_>>()),
    }
    (f64::from(min), f64::from(max))
}

fn lane_min_max(data: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, checked just above.
        return unsafe { lane_min_max_avx2(data) };
    }
    lane_min_max_generic(data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lane_min_max_avx2(data: &[f32]) -> (f32, f32) {
    lane_min_max_generic(data)
}

/// Lanes of the running minimum and maximum: four vectors of eight, so that consecutive
/// comparisons do not wait for each other.
const LANES: usize = 32;

/// `min(m, x)` that keeps `m` when `x` is NaN: one `minps`, unlike `f32::min`.
#[inline]
fn lane_min(m: f32, x: f32) -> f32 {
    if x < m { x } else { m }
}

/// `max(m, x)` that keeps `m` when `x` is NaN: one `maxps`.
#[inline]
fn lane_max(m: f32, x: f32) -> f32 {
    if x > m { x } else { m }
}

// Independent lanes so that the loop vectorises; inlined into the AVX2 wrapper. NaNs are
// skipped, as `f32::min` and `f32::max` skip them.
#[allow(clippy::inline_always)]
#[inline(always)]
fn lane_min_max_generic(data: &[f32]) -> (f32, f32) {
    let mut min = [f32::INFINITY; LANES];
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut lanes = data.chunks_exact(LANES);
    for block in &mut lanes {
        for j in 0..LANES {
            min[j] = lane_min(min[j], block[j]);
            max[j] = lane_max(max[j], block[j]);
        }
    }
    for &x in lanes.remainder() {
        min[0] = lane_min(min[0], x);
        max[0] = lane_max(max[0], x);
    }
    (
        min.iter().copied().fold(f32::INFINITY, f32::min),
        max.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    )
}

/// Runs the pending chain over the channel in one pass and empties it.
fn flush(channel: &mut ArrayViewMutD<'_, f32>, chain: &mut Vec<Op>) {
    if chain.is_empty() {
        return;
    }
    if let Some(data) = channel.as_slice_memory_order_mut() {
        run_chain(data, chain);
    } else {
        let mut data: Vec<f32> = channel.iter().copied().collect();
        run_chain(&mut data, chain);
        for (v, d) in channel.iter_mut().zip(data) {
            *v = d;
        }
    }
    chain.clear();
}

fn run_chain(data: &mut [f32], chain: &[Op]) {
    let noisy = chain
        .iter()
        .any(|op| matches!(op, Op::Noise { .. } | Op::Rician { .. }));
    let buffers = || {
        if noisy {
            (vec![0.0_f32; CHUNK], vec![0.0_f32; CHUNK])
        } else {
            (Vec::new(), Vec::new())
        }
    };
    // rayon tasks of TASK chunks (a task per 16 KiB chunk costs more than a clip of it); each
    // chunk keeps its own index, so the noise does not depend on the split
    data.par_chunks_mut(CHUNK * TASK).enumerate().for_each_init(
        buffers,
        |(real, imaginary), (t, task)| {
            for (k, chunk) in task.chunks_mut(CHUNK).enumerate() {
                apply_chain(chunk, chain, (t * TASK + k) as u64, real, imaginary);
            }
        },
    );
}

/// Chunks per rayon task of a fused pass.
const TASK: usize = 16;

/// Runs the chain over one chunk, with AVX2 code where the processor has it.
///
/// Both versions perform the same IEEE operations in the same order (no fused multiply-add is
/// ever requested, and Rust does not contract on its own), so results are bit-identical on any
/// x86-64 processor; AVX2 only makes the vectorised loops twice as wide.
fn apply_chain(chunk: &mut [f32], chain: &[Op], k: u64, real: &mut [f32], imaginary: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor supports AVX-512F, checked just above.
        unsafe { apply_chain_avx512(chunk, chain, k, real, imaginary) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, checked just above.
        unsafe { apply_chain_avx2(chunk, chain, k, real, imaginary) };
        return;
    }
    apply_chain_generic(chunk, chain, k, real, imaginary);
}

/// [`apply_chain_generic`] with 16-lane vectors (the same operations, so the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn apply_chain_avx512(
    chunk: &mut [f32],
    chain: &[Op],
    k: u64,
    real: &mut [f32],
    imaginary: &mut [f32],
) {
    apply_chain_generic(chunk, chain, k, real, imaginary);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_chain_avx2(
    chunk: &mut [f32],
    chain: &[Op],
    k: u64,
    real: &mut [f32],
    imaginary: &mut [f32],
) {
    apply_chain_generic(chunk, chain, k, real, imaginary);
}

// Inlined into the AVX2 wrapper, so that its loops are compiled for AVX2 there.
#[allow(clippy::inline_always)]
#[inline(always)]
fn apply_chain_generic(
    chunk: &mut [f32],
    chain: &[Op],
    k: u64,
    real: &mut [f32],
    imaginary: &mut [f32],
) {
    for op in chain {
        apply_op(chunk, *op, k, real, imaginary);
    }
}

#[allow(clippy::inline_always)]
#[inline(always)]
fn apply_op(chunk: &mut [f32], op: Op, k: u64, normals: &mut [f32], imaginary: &mut [f32]) {
    match op {
        Op::Affine { a, b } => chunk.iter_mut().for_each(|x| *x = *x * a + b),
        Op::Clip { min, max } => chunk
            .iter_mut()
            .for_each(|x| *x = lane_min(max, lane_max(min, *x))),
        Op::Gamma { gamma, low, range } => {
            let inv = 1.0 / range;
            for x in chunk.iter_mut() {
                let u = lane_max(0.0, (*x - low) * inv);
                *x = fast_pow(u, gamma) * range + low;
            }
        }
        Op::Noise { std, seed } => {
            let n = &mut normals[..chunk.len()];
            fill_normals(n, mix(seed, k));
            for (x, z) in chunk.iter_mut().zip(n.iter()) {
                *x += z * std;
            }
        }
        Op::Rician { std, seed } => {
            let n = &mut normals[..chunk.len()];
            fill_normals(n, mix(seed, k));
            let m = &mut imaginary[..chunk.len()];
            fill_normals(m, mix(seed ^ 0x5249_4349_414e, k));
            for ((x, re), im) in chunk.iter_mut().zip(n.iter()).zip(m.iter()) {
                let r = re * std + *x;
                let i = im * std;
                *x = (r * r + i * i).sqrt();
            }
        }
    }
}

/// Mixes two words into a seed (`SplitMix64` finaliser of a combination).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const TABLE_BITS: u32 = 12;
const CELLS: usize = 1 << TABLE_BITS;

/// The normal quantiles at the cell boundaries `i / 4096`, with the two unbounded tail cells
/// closed so that each keeps the tail's conditional mean.
fn quantiles() -> &'static [f32; CELLS + 1] {
    static TABLE: OnceLock<Box<[f32; CELLS + 1]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut q: Box<[f32; CELLS + 1]> = vec![0.0_f32; CELLS + 1]
            .into_boxed_slice()
            .try_into()
            .expect("a slice of CELLS + 1 elements");
        for (i, v) in q.iter_mut().enumerate().take(CELLS).skip(1) {
            *v = normal_quantile(i as f64 / CELLS as f64) as f32;
        }
        let edge = normal_quantile(1.0 / CELLS as f64);
        let density = (-0.5 * edge * edge).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let tail_mean = -density * CELLS as f64;
        q[0] = (2.0 * tail_mean - edge) as f32;
        q[CELLS] = -q[0];
        q
    })
}

/// Fills `out` with standard normal draws from the stream seeded by `seed`.
///
/// Two passes: the serial generator writes the raw bits, then a loop without dependencies between
/// elements turns them into normals (table look-ups the compiler can vectorise).
fn fill_normals(out: &mut [f32], seed: u64) {
    let q = quantiles();
    let mut stream = Stream::from_seed(seed);
    let mut pairs = out.chunks_exact_mut(2);
    for pair in &mut pairs {
        let bits = stream.next_u64();
        pair[0] = f32::from_bits(bits as u32);
        pair[1] = f32::from_bits((bits >> 32) as u32);
    }
    if let [last] = pairs.into_remainder() {
        *last = f32::from_bits(stream.next_u64() as u32);
    }
    for v in out.iter_mut() {
        let bits = v.to_bits();
        // below CELLS: the top TABLE_BITS bits of 32
        let cell = (bits >> (32 - TABLE_BITS)) as usize;
        let t = (bits & ((1 << (32 - TABLE_BITS)) - 1)) as f32
            * (1.0 / (1 << (32 - TABLE_BITS)) as f32);
        let (lo, hi) = (q[cell], q[cell + 1]);
        *v = (hi - lo) * t + lo;
    }
}

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.2e-9, refined by one Halley step).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// `2^y` for `y` in about `[-126, 127]`, relative error below 3e-7; branch-free so that loops
/// over it vectorise.
///
/// `y = n + f` with `n` an integer and `|f| <= 1/2`; `2^f` is a degree-5 polynomial fitted to
/// minimise the relative error on that interval (7.5e-8 before single-precision rounding).
#[allow(clippy::inline_always)]
#[inline(always)]
pub(crate) fn fast_exp2(y: f32) -> f32 {
    // Adding 1.5 · 2^23 rounds y to an integer n held in the low mantissa bits; this stays in
    // vector registers, where `round` and float-to-int casts would not.
    const MAGIC: f32 = 12_582_912.0;
    let y = y.clamp(-126.0, 127.0);
    let shifted = y + MAGIC;
    let n = shifted - MAGIC;
    let f = y - n;
    let p = 1.000_000_1
        + f * (0.693_146_94
            + f * (0.240_221_2 + f * (0.055_507_135 + f * (0.009_675_542 + f * 0.001_327_646_7))));
    let exponent = shifted
        .to_bits()
        .wrapping_sub(MAGIC.to_bits())
        .wrapping_add(127)
        << 23;
    p * f32::from_bits(exponent)
}

/// `log2(x)` for normal positive `x`, absolute error below 3e-7; branch-free.
///
/// `x = 2^e · m` with `m` in `[√½, √2)`; with `t = (m - 1) / (m + 1)`, `log2 m = t · Q(t²)` and
/// `Q` is a quadratic fitted to minimise the absolute error for `|t| <= 3 - 2√2` (7.6e-8
/// before single-precision rounding).
#[allow(clippy::inline_always)]
#[inline(always)]
pub(crate) fn fast_log2(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    // move the mantissa into [sqrt(1/2), sqrt(2)) so that the polynomial stays short
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e += i32::from(big);
    let t = (m - 1.0) / (m + 1.0);
    let s = t * t;
    e as f32 + t * (2.885_390_5 + s * (0.961_588_4 + s * 0.595_778_1))
}

/// `u^g` for `u >= 0` (0 for `u = 0` or subnormal `u`): relative error below 2e-6 for `u` in
/// `[1e-6, 1]` and `g` in `[0.5, 2]` (tested against `powf` in double precision), most of it the
/// rounding of `g · log2 u` in single precision.
#[allow(clippy::inline_always)]
#[inline(always)]
pub(crate) fn fast_pow(u: f32, g: f32) -> f32 {
    let r = fast_exp2(g * fast_log2(u));
    if u < f32::MIN_POSITIVE { 0.0 } else { r }
}

/// Mean, standard deviation, minimum and maximum of a channel.
#[derive(Clone, Copy, Debug)]
struct Stats {
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
}

fn stats(channel: &ArrayViewMutD<'_, f32>) -> Stats {
    let partial = partial_stats;
    let parts: Vec<_> = if let Some(data) = channel.as_slice_memory_order() {
        data.par_chunks(CHUNK * 16).map(partial).collect()
    } else {
        let data: Vec<f32> = channel.iter().copied().collect();
        data.chunks(CHUNK * 16).map(partial).collect()
    };
    let (mut sum, mut sq, mut min, mut max) = (0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY);
    for (s, q, lo, hi) in parts {
        sum += s;
        sq += q;
        min = min.min(lo);
        max = max.max(hi);
    }
    let n = channel.len().max(1) as f64;
    let mean = sum / n;
    Stats {
        mean,
        std: (sq / n - mean * mean).max(0.0).sqrt(),
        min: f64::from(min),
        max: f64::from(max),
    }
}

/// Sum, sum of squares, minimum and maximum of a run of values, with AVX2 code where the
/// processor has it (the same operations in the same order, so the same bits).
fn partial_stats(data: &[f32]) -> (f64, f64, f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, checked just above.
        return unsafe { partial_stats_avx2(data) };
    }
    partial_stats_generic(data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn partial_stats_avx2(data: &[f32]) -> (f64, f64, f32, f32) {
    partial_stats_generic(data)
}

/// Independent lanes per accumulator, so that the loop vectorises (a single running sum is a
/// serial chain the compiler may not reorder); sums in double precision.
#[allow(clippy::inline_always)]
#[inline(always)]
fn partial_stats_generic(data: &[f32]) -> (f64, f64, f32, f32) {
    const N: usize = 16;
    let mut sum = [0.0_f64; N];
    let mut sq = [0.0_f64; N];
    let mut min = [f32::INFINITY; N];
    let mut max = [f32::NEG_INFINITY; N];
    let mut lanes = data.chunks_exact(N);
    for block in &mut lanes {
        for j in 0..N {
            let x = block[j];
            sum[j] += f64::from(x);
            sq[j] += f64::from(x) * f64::from(x);
            min[j] = lane_min(min[j], x);
            max[j] = lane_max(max[j], x);
        }
    }
    for (j, &x) in lanes.remainder().iter().enumerate() {
        sum[j] += f64::from(x);
        sq[j] += f64::from(x) * f64::from(x);
        min[j] = lane_min(min[j], x);
        max[j] = lane_max(max[j], x);
    }
    (
        sum.iter().sum::<f64>(),
        sq.iter().sum::<f64>(),
        min.iter().copied().fold(f32::INFINITY, f32::min),
        max.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    )
}

/// Two percentiles with linear interpolation between order statistics.
fn percentiles(channel: &ArrayViewMutD<'_, f32>, lower: f64, upper: f64) -> (f64, f64) {
    let mut values: Vec<f32> = channel.iter().copied().collect();
    if values.is_empty() {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    let mut at = |p: f64| {
        let pos = (p / 100.0).clamp(0.0, 1.0) * (values.len() - 1) as f64;
        let k = pos.floor() as usize;
        let (_, &mut below, rest) = values.select_nth_unstable_by(k, f32::total_cmp);
        let above = rest.iter().copied().min_by(f32::total_cmp).unwrap_or(below);
        let t = pos - k as f64;
        f64::from(below) + t * (f64::from(above) - f64::from(below))
    };
    (at(lower), at(upper))
}

/// Separable Gaussian smoothing with mirrored borders (`d c b a | a b c d`).
fn blur(channel: &mut ArrayViewMutD<'_, f32>, spacing: &[f64], sigma_mm: f64) {
    for (axis, &step) in spacing.iter().enumerate() {
        let sigma = sigma_mm / step;
        if sigma.is_nan() || sigma < 0.1 {
            continue;
        }
        let radius = (3.0 * sigma).ceil() as usize;
        let mut kernel: Vec<f64> = (0..=2 * radius)
            .map(|i| {
                let d = i as f64 - radius as f64;
                (-0.5 * d * d / (sigma * sigma)).exp()
            })
            .collect();
        let total: f64 = kernel.iter().sum();
        for k in &mut kernel {
            *k /= total;
        }

        let n = channel.shape()[axis];
        let mut line = vec![0.0_f32; n];
        for mut lane in channel.lanes_mut(Axis(axis)) {
            line.iter_mut().zip(lane.iter()).for_each(|(l, v)| *l = *v);
            for (i, out) in lane.iter_mut().enumerate() {
                let mut acc = 0.0_f64;
                for (k, w) in kernel.iter().enumerate() {
                    let j = mirror(i as i64 + k as i64 - radius as i64, n);
                    acc += w * f64::from(line[j]);
                }
                *out = acc as f32;
            }
        }
    }
}

fn mirror(i: i64, n: usize) -> usize {
    let n = n as i64;
    let period = 2 * n;
    let mut j = i.rem_euclid(period);
    if j >= n {
        j = period - 1 - j;
    }
    j as usize
}

/// The exponents `(i, j, k)` of the monomials of total degree `1..=order` in `dims` variables,
/// in a fixed order.
pub(crate) fn bias_terms(order: u32, dims: usize) -> Vec<[u32; 3]> {
    let mut terms = Vec::new();
    for total in 1..=order {
        for i in 0..=total {
            for j in 0..=total - i {
                let k = total - i - j;
                let t = [i, j, k];
                if t[dims..].iter().all(|&e| e == 0) {
                    terms.push(t);
                }
            }
        }
    }
    terms
}

/// Multiplies the channel by `exp(Σ c · x^i y^j z^k)` with coordinates scaled to `[-1, 1]`.
fn bias(channel: &mut ArrayViewMutD<'_, f32>, order: u32, coefficients: &[f64]) {
    let dims = channel.ndim();
    let terms = bias_terms(order, dims);
    let shape = channel.shape().to_vec();
    let coordinate = |axis: usize, i: usize| {
        if shape[axis] > 1 {
            2.0 * i as f64 / (shape[axis] - 1) as f64 - 1.0
        } else {
            0.0
        }
    };
    for (index, v) in channel.indexed_iter_mut() {
        let mut x = [0.0_f64; 3];
        for (a, x) in x.iter_mut().enumerate().take(dims) {
            *x = coordinate(a, index[a]);
        }
        let p: f64 = terms
            .iter()
            .zip(coefficients)
            .map(|(t, c)| c * (0..dims).map(|a| x[a].powi(t[a] as i32)).product::<f64>())
            .sum();
        *v *= p.exp() as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest relative error of `fast_pow` against `f32::powf` over `u` in `[1e-6, 1]`
    /// (every 997th float there, plus the values the old test used).
    fn max_pow_error(g: f32) -> f64 {
        let mut worst = 0.0_f64;
        let (lo, hi) = (1e-6_f32.to_bits(), 1.0_f32.to_bits());
        let grid = (lo..=hi).step_by(997).map(f32::from_bits);
        for u in grid.chain((1..1000).map(|i| i as f32 / 999.0)) {
            let want = f64::from(u).powf(f64::from(g));
            let got = f64::from(fast_pow(u, g));
            worst = worst.max((got - want).abs() / want);
        }
        worst
    }

    #[test]
    fn fast_pow_matches_powf() {
        for g in [0.5_f32, 0.7, 0.8, 1.2, 1.25, 1.5, 2.0] {
            let worst = max_pow_error(g);
            eprintln!("gamma {g}: max relative error {worst:e}");
            assert!(worst < 2e-6, "{g}: {worst}");
            assert_eq!(fast_pow(0.0, g), 0.0);
            assert_eq!(fast_pow(1e-40, g), 0.0);
        }
    }

    #[test]
    fn fast_exp2_and_log2_are_accurate() {
        for i in -12_000..=12_000 {
            let y = i as f32 * 0.01;
            let want = f64::from(y).exp2();
            let got = f64::from(fast_exp2(y));
            assert!((got - want).abs() <= 3e-7 * want, "2^{y}: {got} vs {want}");
        }
        for k in 1..200_000 {
            let x = k as f32 * 0.013;
            let want = f64::from(x).log2();
            let got = f64::from(fast_log2(x));
            // the polynomial error plus the rounding of a result of magnitude up to 12
            assert!(
                (got - want).abs() <= 2e-7 + 6e-8 * want.abs(),
                "log2 {x}: {got} vs {want}"
            );
        }
        // exact at powers of two
        assert_eq!(fast_log2(8.0), 3.0);
        assert_eq!(fast_log2(0.25), -2.0);
    }

    #[test]
    fn normal_quantile_matches_known_values() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
        assert!((normal_quantile(0.001) + 3.090_232_306_167_813_5).abs() < 1e-8);
    }

    #[test]
    fn tabulated_normals_have_unit_moments() {
        let mut v = vec![0.0_f32; 1 << 20];
        fill_normals(&mut v, 7);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        let kurt = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(4))
            .sum::<f64>()
            / n
            / (var * var);
        assert!(mean.abs() < 0.005, "{mean}");
        assert!((var - 1.0).abs() < 0.01, "{var}");
        assert!((kurt - 3.0).abs() < 0.05, "{kurt}");
        // the fraction beyond 1.96 sigma is 5 %
        let beyond = v.iter().filter(|x| x.abs() > 1.96).count() as f64 / n;
        assert!((beyond - 0.05).abs() < 0.002, "{beyond}");
    }

    #[test]
    fn two_pass_normals_equal_the_direct_draws() {
        // each 64-bit draw gives two normals, low half first; the cell is the top 12 bits of
        // 32 and the rest interpolates linearly within the cell
        let q = quantiles();
        let direct = |bits: u32| {
            let cell = (bits >> 20) as usize;
            let t = (bits & 0xf_ffff) as f32 / 1_048_576.0;
            (q[cell + 1] - q[cell]) * t + q[cell]
        };
        for len in [0, 1, 2, 7, 4096] {
            let mut got = vec![0.0_f32; len];
            fill_normals(&mut got, 99);
            let mut stream = Stream::from_seed(99);
            let mut want = Vec::new();
            while want.len() < len {
                let bits = stream.next_u64();
                want.push(direct(bits as u32));
                want.push(direct((bits >> 32) as u32));
            }
            want.truncate(len);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn the_avx2_and_the_generic_path_agree_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut stream = Stream::from_seed(5);
            // a length that leaves remainders for every lane count
            let data: Vec<f32> = (0..CHUNK - 13)
                .map(|_| (stream.next_f64() * 8.0 - 3.0) as f32)
                .collect();
            let chain = [
                Op::Affine { a: 0.7, b: 0.4 },
                Op::Gamma {
                    gamma: 1.37,
                    low: -1.7,
                    range: 5.6,
                },
                Op::Noise { std: 0.3, seed: 9 },
                Op::Rician { std: 0.2, seed: 4 },
                Op::Clip {
                    min: -0.5,
                    max: 2.5,
                },
            ];
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (mut a, mut b) = (data.clone(), data.clone());
            let buffers = || (vec![0.0; CHUNK], vec![0.0; CHUNK]);
            let (mut re, mut im) = buffers();
            apply_chain_generic(&mut a, &chain, 3, &mut re, &mut im);
            let (mut re, mut im) = buffers();
            // SAFETY: the processor supports AVX2, checked above.
            unsafe { apply_chain_avx2(&mut b, &chain, 3, &mut re, &mut im) };
            assert_eq!(bits(&a), bits(&b));
            assert_ne!(bits(&a), bits(&data));
            if std::arch::is_x86_feature_detected!("avx512f") {
                let mut c = data.clone();
                let (mut re, mut im) = buffers();
                // SAFETY: the processor supports AVX-512F, checked just above.
                unsafe { apply_chain_avx512(&mut c, &chain, 3, &mut re, &mut im) };
                assert_eq!(bits(&a), bits(&c));
            }

            let generic = partial_stats_generic(&data);
            // SAFETY: as above.
            let avx2 = unsafe { partial_stats_avx2(&data) };
            assert_eq!(generic.0.to_bits(), avx2.0.to_bits());
            assert_eq!(generic.1.to_bits(), avx2.1.to_bits());
            assert_eq!((generic.2, generic.3), (avx2.2, avx2.3));
            // SAFETY: as above.
            assert_eq!(lane_min_max_generic(&data), unsafe {
                lane_min_max_avx2(&data)
            });
            let (lo, hi) = lane_min_max_generic(&data);
            assert_eq!(lo, data.iter().copied().fold(f32::INFINITY, f32::min));
            assert_eq!(hi, data.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        }
    }

    #[test]
    fn mirror_reflects_at_both_ends() {
        let got: Vec<usize> = (-3..7).map(|i| mirror(i, 4)).collect();
        assert_eq!(got, [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn bias_terms_count_monomials() {
        // degree 1..=3 in 3 variables: 3 + 6 + 10; in 2 variables: 2 + 3 + 4
        assert_eq!(bias_terms(3, 3).len(), 19);
        assert_eq!(bias_terms(3, 2).len(), 9);
    }
}

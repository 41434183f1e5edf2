//! Augmentation throughput on one core: a 1 × 128³ `f32` image with a `u16` label map.
//!
//! (a) elastic + affine + flip, (b) affine only, (c) z-score + gamma + noise + clip, and the
//! single point-wise operations (on the image alone, as numpy's per-operation timings).
//! `scripts/bench-augment` runs the batchgenerators, MONAI and numpy equivalents next to these.
//!
//! Times are the CPU time of the process (`CLOCK_PROCESS_CPUTIME_ID`), not wall time: the work
//! runs on a one-thread rayon pool, so this is the time of one core, and it stays meaningful
//! when other processes share the machine (the comparison script measures Python the same way).

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use delira::augment::{
    AffineSpec, Augmentable, ClipSpec, ElasticSpec, FlipSpec, GammaSpec, NoiseSpec, Pipeline,
    Transform,
};
use delira::io::{Affine, LabelMap, Volume};
use delira::random::StreamKey;
use ndarray::{ArrayD, IxDyn};

const N: usize = 128;

fn sample() -> (Volume<f32>, LabelMap) {
    let image = ArrayD::from_shape_fn(IxDyn(&[1, N, N, N]), |i| {
        let (x, y, z) = (i[1] as f32, i[2] as f32, i[3] as f32);
        (x * 0.05).sin() * 100.0 + (y * 0.07).cos() * 50.0 + z * 0.3 + 200.0
    });
    let labels = ArrayD::from_shape_fn(IxDyn(&[1, N, N, N]), |i| {
        let d2: usize = (1..4).map(|a| (i[a] as isize - 64).pow(2) as usize).sum();
        u16::from(d2 < 40 * 40) + u16::from(d2 < 20 * 20)
    });
    (
        Volume::new(image, Affine::IDENTITY),
        LabelMap::new(labels, Affine::IDENTITY),
    )
}

fn pipelines() -> Vec<(&'static str, Pipeline)> {
    // the parameters of batchgenerators' SpatialTransform in scripts/bench-augment
    let affine = AffineSpec::default().rotate_deg(15.0).scale(0.85, 1.25);
    vec![
        (
            "a_elastic_affine_flip",
            Pipeline::new([
                affine.clone().into(),
                ElasticSpec {
                    control_points: 6,
                    sigma_mm: [10.0, 10.0],
                }
                .into(),
                FlipSpec::new([0, 1, 2]).into(),
            ]),
        ),
        ("b_affine", Pipeline::new([affine.into()])),
        (
            "c_zscore_gamma_noise_clip",
            Pipeline::new([
                Transform::ZScore,
                GammaSpec { gamma: [0.7, 1.5] }.into(),
                Transform::GaussianNoise(NoiseSpec { std: [0.1, 0.1] }),
                ClipSpec {
                    min: -3.0,
                    max: 3.0,
                }
                .into(),
            ]),
        ),
    ]
}

/// Single point-wise operations, each alone, for the per-operation comparison with numpy.
fn single_operations() -> Vec<(&'static str, Pipeline)> {
    vec![
        ("op_zscore", Pipeline::new([Transform::ZScore])),
        (
            "op_gamma",
            Pipeline::new([GammaSpec { gamma: [1.2, 1.2] }.into()]),
        ),
        (
            "op_noise",
            Pipeline::new([Transform::GaussianNoise(NoiseSpec { std: [0.1, 0.1] })]),
        ),
        (
            "op_clip",
            Pipeline::new([ClipSpec {
                min: -3.0,
                max: 3.0,
            }
            .into()]),
        ),
    ]
}

/// The CPU time consumed by the whole process.
struct CpuTime;

fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        process_cpu_time()
    }

    fn end(&self, start: Duration) -> Duration {
        process_cpu_time().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // nanoseconds, like wall time
        WallTime.formatter()
    }
}

fn bench(c: &mut Criterion<CpuTime>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let input = sample();
    let mut group = c.benchmark_group("augment_128");
    group.throughput(Throughput::Elements((N * N * N) as u64));
    group.sample_size(20);
    for (name, pipeline) in pipelines() {
        timed(&mut group, &pool, name, &pipeline, &input);
    }
    // numpy's per-operation timings work on the image alone: so do these
    for (name, pipeline) in single_operations() {
        timed(&mut group, &pool, name, &pipeline, &input.0);
    }
    group.finish();
}

fn timed<S: Augmentable + Clone + Send>(
    group: &mut BenchmarkGroup<'_, CpuTime>,
    pool: &rayon::ThreadPool,
    name: &str,
    pipeline: &Pipeline,
    input: &S,
) {
    let mut seed = 0;
    group.bench_function(name, |b| {
        b.iter_batched(
            || input.clone(),
            |mut s| {
                seed += 1;
                let mut stream = StreamKey::new(1).sample(seed).stream();
                pool.install(|| pipeline.apply(&mut s, &mut stream))
                    .expect("the pipeline fits the sample");
                s
            },
            // a fresh copy right before each timed call, as the numpy comparison resets its
            // array right before each operation (batches of inputs prepared ahead would leave
            // the timed one colder in cache than numpy's)
            criterion::BatchSize::PerIteration,
        );
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);

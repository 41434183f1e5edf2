//! Loader throughput with 0, 1 and 2 worker threads on a synthetic dataset, and the data stall.
//!
//! Each sample is a 1 × 64³ float volume computed voxel by voxel (a stand-in for decoding a
//! NIfTI file); the transform applies a random gamma (a stand-in for augmentation). Criterion
//! measures whole epochs (throughput in samples/s). Then one epoch per worker count runs against
//! a simulated training step and prints the share of time the consumer waited for data. The step
//! sleeps for a fixed time, as a training thread does while it waits for a GPU step to finish.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use delira::data::{DataError, FnDataset, Loader, LoaderConfig, Record, SequentialSampler, Value};
use delira::random::Stream;
use ndarray::ArrayD;

const SAMPLES: usize = 32;
const BATCH: usize = 4;
const SIDE: usize = 64;

#[allow(clippy::unnecessary_wraps)] // the signature of a dataset function
fn synthetic(i: usize) -> Result<Record, DataError> {
    let phase = i as f32 * 0.1;
    let image = ArrayD::from_shape_fn(vec![1, SIDE, SIDE, SIDE], |d| {
        let (x, y, z) = (d[1] as f32, d[2] as f32, d[3] as f32);
        (0.1 * x + phase).sin() * (0.07 * y).cos() + 0.01 * z
    });
    Ok(Record::new()
        .with("image", image)
        .with("label", ndarray::arr0(i as i64 % 4).into_dyn()))
}

#[allow(clippy::unnecessary_wraps)] // the signature of a loader transform
fn random_gamma(mut sample: Record, stream: &mut Stream) -> Result<Record, DataError> {
    let gamma = stream.uniform(0.7, 1.5) as f32;
    if let Some(Value::F32(image)) = sample.get_mut("image") {
        image.mapv_inplace(|v| v.abs().powf(gamma));
    }
    Ok(sample)
}

fn loader(workers: usize) -> Loader<impl delira::data::Dataset<Item = Record>, SequentialSampler> {
    let config = LoaderConfig::builder()
        .batch_size(BATCH)
        .workers(workers)
        .prefetch(2)
        .seed(1)
        .build();
    Loader::new(
        FnDataset::new(SAMPLES, synthetic),
        SequentialSampler::new(SAMPLES),
        config,
    )
    .expect("a valid configuration")
    .with_transform(random_gamma)
}

fn checksum(batch: &delira::data::Batch) -> f32 {
    batch.f32("image").map_or(0.0, |image| image.sum())
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("loader_epoch");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for workers in [0, 1, 2] {
        let loader = loader(workers);
        group.bench_function(format!("workers_{workers}"), |b| {
            b.iter(|| {
                let total: f32 = loader
                    .epoch(0)
                    .map(|batch| checksum(&batch.expect("no failure")))
                    .sum();
                black_box(total)
            });
        });
    }
    group.finish();
}

/// A training step that waits for an accelerator: a fixed sleep, plus reading the batch.
fn training_step(batch: &delira::data::Batch, step: Duration) -> f32 {
    std::thread::sleep(step);
    checksum(batch)
}

fn stall(_: &mut Criterion) {
    let step = Duration::from_millis(60);
    println!("\nloader stall: {SAMPLES} samples of 1x{SIDE}^3 f32, batch {BATCH}, step = {step:?}");
    for workers in [0, 1, 2] {
        let loader = loader(workers);
        let start = Instant::now();
        let mut epoch = loader.epoch(0);
        let total: f32 = epoch
            .by_ref()
            .map(|batch| training_step(&batch.expect("no failure"), step))
            .sum();
        black_box(total);
        let elapsed = start.elapsed();
        let stats = epoch.stats();
        println!(
            "  workers {workers}: {:.1} samples/s with the step, stall {:.1} ms of {:.1} ms ({:.0} %)",
            SAMPLES as f64 / elapsed.as_secs_f64(),
            stats.total_stall().as_secs_f64() * 1e3,
            stats.elapsed().as_secs_f64() * 1e3,
            100.0 * stats.stall_fraction(),
        );
    }
}

criterion_group!(benches, throughput, stall);
criterion_main!(benches);

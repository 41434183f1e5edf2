//! Throughput of the segmentation metrics on a 96³ volume, in voxels per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use delira::training::metrics::{dice_per_class, euclidean_distance_transform, hausdorff95};
use ndarray::Array3;
use std::hint::black_box;

const SIDE: usize = 96;

/// A ball of radius `r` voxels centred at `c` (anisotropic spacing is applied by the metrics).
fn ball(c: [f64; 3], r: f64) -> Array3<bool> {
    Array3::from_shape_fn((SIDE, SIDE, SIDE), |(x, y, z)| {
        let d = [x as f64 - c[0], y as f64 - c[1], z as f64 - c[2]];
        d.iter().map(|v| v * v).sum::<f64>() <= r * r
    })
}

fn surface(c: &mut Criterion) {
    let truth = ball([48.0, 48.0, 48.0], 30.0);
    let prediction = ball([51.0, 46.0, 48.0], 28.0);
    let spacing = [1.0, 1.0, 2.5];
    let labels_truth = truth.mapv(i64::from);
    let labels_prediction = prediction.mapv(i64::from);

    let mut g = c.benchmark_group("segmentation_metrics");
    g.throughput(Throughput::Elements((SIDE * SIDE * SIDE) as u64));
    g.sample_size(10);
    g.bench_function("edt_96", |b| {
        b.iter(|| euclidean_distance_transform(black_box(&truth), &spacing).unwrap());
    });
    g.bench_function("hausdorff95_96", |b| {
        b.iter(|| hausdorff95(black_box(&truth), black_box(&prediction), &spacing).unwrap());
    });
    g.bench_function("dice_96", |b| {
        b.iter(|| {
            dice_per_class(black_box(&labels_truth), black_box(&labels_prediction), 2).unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, surface);
criterion_main!(benches);

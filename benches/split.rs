//! Throughput of splits and samplers on dataset-sized index lists.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use delira::data::split::{self, KFoldConfig, SplitTargets};
use delira::data::{ClassBalancedSampler, RandomSampler, Sampler, WeightedSampler};
use std::hint::black_box;

const N: usize = 100_000;

fn splits(c: &mut Criterion) {
    let labels: Vec<usize> = (0..N).map(|i| (i * 7919) % 5).collect();
    let groups: Vec<usize> = (0..N).map(|i| (i * 104_729) % 2_000).collect();
    let mut g = c.benchmark_group("split");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("kfold_5", |b| {
        b.iter(|| split::kfold(black_box(N), 5, 1).unwrap());
    });
    g.bench_function("stratified_kfold_5", |b| {
        b.iter(|| split::stratified_kfold(black_box(&labels), 5, 1).unwrap());
    });
    g.bench_function("group_kfold_5", |b| {
        b.iter(|| split::group_kfold(black_box(&groups), 5, 1).unwrap());
    });
    let targets = SplitTargets::new(N)
        .with_labels(&labels)
        .unwrap()
        .with_groups(&groups)
        .unwrap();
    let config = KFoldConfig::builder()
        .k(5)
        .stratify(true)
        .group(true)
        .build();
    g.bench_function("stratified_group_kfold_5", |b| {
        b.iter(|| config.split(black_box(&targets)).unwrap());
    });
    g.finish();
}

fn samplers(c: &mut Criterion) {
    let indices: Vec<usize> = (0..N).collect();
    let weights: Vec<f64> = (0..N).map(|i| 1.0 + (i % 10) as f64).collect();
    let labels: Vec<usize> = (0..N).map(|i| i % 7).collect();
    let mut g = c.benchmark_group("sampler");
    g.throughput(Throughput::Elements(N as u64));
    let random = RandomSampler::new(indices.clone(), 1);
    g.bench_function("random_permutation", |b| {
        b.iter(|| random.epoch_indices(black_box(3)));
    });
    let weighted = WeightedSampler::new(&indices, &weights, N, 1).unwrap();
    g.bench_function("weighted", |b| {
        b.iter(|| weighted.epoch_indices(black_box(3)));
    });
    let balanced = ClassBalancedSampler::new(&indices, &labels, N, 1).unwrap();
    g.bench_function("class_balanced", |b| {
        b.iter(|| balanced.epoch_indices(black_box(3)));
    });
    g.finish();
}

criterion_group!(benches, splits, samplers);
criterion_main!(benches);

//! Throughput of sliding-window inference: a 1 × 128³ volume, 64³ windows, overlap 0.5
//! (27 windows), with an identity network, so the figure is the cost of tiling and blending.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use delira::inference::{Blend, FlipAveraging, SlidingWindow};
use delira::io::{Affine, Volume};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use std::convert::Infallible;
use std::hint::black_box;

const SIZE: usize = 128;

#[expect(
    clippy::needless_pass_by_value,
    clippy::unnecessary_wraps,
    reason = "the signature of a network as `Predict` takes it"
)]
fn identity(x: ArrayViewD<f32>) -> Result<ArrayD<f32>, Infallible> {
    Ok(x.to_owned())
}

fn sliding_window(c: &mut Criterion) {
    let data = ArrayD::from_shape_fn(IxDyn(&[1, SIZE, SIZE, SIZE]), |i| {
        (i[1] + 2 * i[2] + 3 * i[3]) as f32
    });
    let volume = Volume::new(data, Affine::IDENTITY);
    let mut g = c.benchmark_group("sliding_window_128");
    g.throughput(Throughput::Elements((SIZE * SIZE * SIZE) as u64));
    g.sample_size(10);
    for (name, blend, batch_size) in [
        ("gaussian_batch_1", Blend::default(), 1),
        ("gaussian_batch_4", Blend::default(), 4),
        ("constant_batch_4", Blend::Constant, 4),
    ] {
        let sliding = SlidingWindow::builder()
            .window(vec![64, 64, 64])
            .overlap(0.5)
            .batch_size(batch_size)
            .blend(blend)
            .build();
        g.bench_function(name, |b| {
            b.iter(|| sliding.run(&mut identity, black_box(&volume)).unwrap());
        });
    }
    let sliding = SlidingWindow::builder()
        .window(vec![64, 64, 64])
        .batch_size(4)
        .build();
    let mut tta = FlipAveraging::all_subsets(identity, &[0, 1, 2]);
    g.bench_function("gaussian_batch_4_flips_8", |b| {
        b.iter(|| sliding.run(&mut tta, black_box(&volume)).unwrap());
    });
    g.finish();
}

criterion_group!(benches, sliding_window);
criterion_main!(benches);

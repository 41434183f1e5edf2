//! Step time of the reference 3D U-Net through delira's `Network` trait, next to the same network
//! written in plain `tch` (built-in `nn::Adam`, losses inline).
//!
//! `cargo run --release --features torch --example unet3d_step_time [steps] [batch]`
//! (one thread, batches of 1×32³ patches, 4 classes, Dice + cross-entropy, Adam).

use std::time::Instant;

use delira::backend::torch::tch::{self, Device, Kind, Tensor, nn, nn::OptimizerConfig as _};
use delira::backend::torch::{TorchModel, TorchNetwork};
use delira::backend::{AdamConfig, DiceCeConfig, Network};
use delira::data::{Batch, Record};
use delira::models::torch::{Norm, UNet, UNetConfig};
use ndarray::ArrayD;

const SIDE: usize = 32;
const CLASSES: i64 = 4;

fn config() -> UNetConfig {
    UNetConfig::builder()
        .in_channels(1)
        .classes(CLASSES)
        .depth(3)
        .base(8)
        .norm(Norm::Instance)
        .build()
}

fn batch(size: usize) -> Batch {
    let samples = (0..size).map(|s| {
        let image = ArrayD::from_shape_fn(vec![1, SIDE, SIDE, SIDE], |i| {
            ((i[1] * 7 + i[2] * 3 + i[3] + s) % 13) as f32 / 13.0
        });
        let label = ArrayD::from_shape_fn(vec![SIDE, SIDE, SIDE], |i| {
            ((i[0] / 8 + i[1] / 8 + i[2] / 8 + s) % CLASSES as usize) as i64
        });
        Record::new().with("image", image).with("label", label)
    });
    Batch::collate(samples).expect("samples of one shape")
}

/// Milliseconds per step: the median of `steps` timed steps after two warm-up steps.
fn time(steps: usize, mut step: impl FnMut() -> f64) -> (f64, f64) {
    let mut last = 0.0;
    for _ in 0..2 {
        last = step();
    }
    let mut times: Vec<f64> = (0..steps)
        .map(|_| {
            let start = Instant::now();
            last = step();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], last)
}

/// The same loss as delira's `dice_ce` (smooth 1e-5, weights 1), written inline.
fn plain_dice_ce(logits: &Tensor, target: &Tensor) -> Tensor {
    let probs = logits.softmax(1, Kind::Float);
    let truth = probs
        .zeros_like()
        .scatter_value(1, &target.unsqueeze(1), 1.0);
    let axes = [0_i64, 2, 3, 4];
    let inter = (&probs * &truth).sum_dim_intlist(&axes[..], false, Kind::Float);
    let total = probs.sum_dim_intlist(&axes[..], false, Kind::Float)
        + truth.sum_dim_intlist(&axes[..], false, Kind::Float);
    let dice = -((inter * 2.0 + 1e-5) / (total + 1e-5)).mean(Kind::Float) + 1.0;
    let ce = logits
        .log_softmax(1, Kind::Float)
        .gather(1, &target.unsqueeze(1), false)
        .mean(Kind::Float);
    dice - ce
}

fn main() {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    tch::set_num_threads(1);
    let batch = batch(size);

    let mut net = TorchNetwork::new(
        delira::backend::Device::Cpu,
        |p| UNet::new(p, &config()),
        AdamConfig::builder().lr(1e-3).build().into(),
        DiceCeConfig::default().into(),
    )
    .expect("a valid configuration");
    let (delira_ms, delira_loss) = time(steps, || {
        net.train_step(&batch)
            .expect("a valid batch")
            .loss()
            .unwrap_or(f64::NAN)
    });

    // Plain tch: the same layers (delira's UNet builds them with tch::nn), built-in Adam.
    let vs = nn::VarStore::new(Device::Cpu);
    let model = UNet::new(&vs.root(), &config()).expect("a valid configuration");
    let mut adam = nn::Adam::default().build(&vs, 1e-3).expect("an optimizer");
    let image = batch.f32("image").expect("an image field");
    let label = batch.i64("label").expect("a label field");
    let dims = |s: &[usize]| s.iter().map(|&d| d as i64).collect::<Vec<_>>();
    let x =
        Tensor::from_slice(image.as_slice().expect("contiguous")).view(&dims(image.shape())[..]);
    let y =
        Tensor::from_slice(label.as_slice().expect("contiguous")).view(&dims(label.shape())[..]);
    let (plain_ms, plain_loss) = time(steps, || {
        let logits = model.forward(&x, true);
        let loss = plain_dice_ce(&logits, &y);
        adam.backward_step(&loss);
        // Read the logits back as delira's step does, so both measure the same work.
        let _host = Vec::<f32>::try_from(logits.detach().flatten(0, -1)).expect("floats");
        loss.double_value(&[])
    });

    println!(
        "3D U-Net (depth 3, base 8, instance norm, {} parameters), batch {size}×1×{SIDE}³, \
         {CLASSES} classes, 1 thread, median of {steps} steps:",
        net.parameter_count()
    );
    println!("  delira Network::train_step  {delira_ms:8.1} ms  (last loss {delira_loss:.4})");
    println!("  plain tch                   {plain_ms:8.1} ms  (last loss {plain_loss:.4})");
}

//! A small training run for the suite's kill-and-resume test (`training_resume`): random sampling,
//! two loader workers, random augmentation, checkpoints every 3 steps.
//!
//! `trainer-probe <run_dir> <linear|unet> [step_delay_ms]`
//!
//! Starts a new run, or resumes it when `<run_dir>/checkpoints` exists. Prints `step <n>` after
//! every optimizer step (before that step's checkpoint is written) and, at the end, writes the
//! network's state to `<run_dir>/final.safetensors` and the report's history to
//! `<run_dir>/history.json`. The `unet` network (a 2D U-Net through libtorch) needs the `torch`
//! feature.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use delira::backend::Network;
use delira::data::RandomSampler;
use delira::data::{FnDataset, Loader, LoaderConfig, Record, SequentialSampler, Value};
use delira::random::Stream;
use delira::training::callbacks::{Callback, CallbackContext, CallbackError};
use delira::training::checkpoint::CheckpointPolicy;
use delira::training::metrics::{Accuracy, Dice};
use delira::training::{BatchSource, Mode, MonitorConfig, Trainer, TrainerConfig};
use ndarray::{ArrayD, arr0};

const SAMPLES: usize = 22;
const SIDE: usize = 8;

/// Prints every step, and slows steps down so that a kill lands at a chosen step.
struct StepPrinter {
    delay: Duration,
}

impl Callback for StepPrinter {
    fn name(&self) -> &'static str {
        "step_printer"
    }

    fn on_iteration_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "step {}", ctx.step)
            .and_then(|()| out.flush())
            .map_err(|e| CallbackError::Other {
                callback: "step_printer".to_owned(),
                message: e.to_string(),
            })?;
        std::thread::sleep(self.delay);
        Ok(())
    }
}

fn linear_record(i: usize) -> Record {
    let x: Vec<f32> = (0..6)
        .map(|f| ((i * 7 + f * 3) % 11) as f32 / 11.0 - 0.5)
        .collect();
    let y = ((i * 5) % 3) as i64;
    Record::new()
        .with("x", ArrayD::from_shape_vec(vec![6], x).unwrap_or_default())
        .with("y", arr0(y).into_dyn())
}

fn image_record(i: usize) -> Record {
    let image = ArrayD::from_shape_fn(vec![1, SIDE, SIDE], |p| {
        ((p[1] * 3 + p[2] + i) % 7) as f32 / 7.0
    });
    let label = ArrayD::from_shape_fn(vec![SIDE, SIDE], |p| {
        i64::from((p[0] + i) % SIDE >= SIDE / 2) + i64::from(p[1] >= SIDE / 2)
    });
    Record::new().with("image", image).with("label", label)
}

/// Random noise on every float field and, for images, a random left-right flip of image and
/// label together.
fn augment(mut record: Record, stream: &mut Stream) -> Record {
    let flip = stream.bernoulli(0.5);
    for name in ["x", "image"] {
        if let Some(Value::F32(a)) = record.get_mut(name) {
            a.mapv_inplace(|v| v + (stream.normal() * 0.05) as f32);
            if flip && name == "image" {
                a.invert_axis(ndarray::Axis(2));
            }
        }
    }
    if flip && let Some(Value::I64(label)) = record.get_mut("label") {
        label.invert_axis(ndarray::Axis(1));
    }
    record
}

fn run<N: Network>(
    network: N,
    metric_classes: Option<usize>,
    dir: &Path,
    delay: Duration,
) -> Result<(), String> {
    let make = if metric_classes.is_some() {
        image_record
    } else {
        linear_record
    };
    let train_config = LoaderConfig::builder()
        .batch_size(4)
        .workers(2)
        .seed(11)
        .build();
    let sampler = RandomSampler::new((0..SAMPLES).collect(), 5);
    let train = Loader::new(
        FnDataset::new(SAMPLES, move |i| Ok(make(i))),
        sampler,
        train_config,
    )
    .map_err(|e| e.to_string())?
    .with_transform(|record, stream| Ok(augment(record, stream)));
    let valid_config = LoaderConfig::builder().batch_size(5).workers(1).build();
    let valid = Loader::new(
        FnDataset::new(8, move |i| Ok(make(i + 100))),
        SequentialSampler::new(8),
        valid_config,
    )
    .map_err(|e| e.to_string())?;

    let config = TrainerConfig::builder()
        .epochs(4)
        .monitor(Some(MonitorConfig::new("valid/loss", Mode::Min)))
        .checkpoint(CheckpointPolicy {
            every_epochs: 1,
            every_steps: Some(3),
            keep_last: 2,
            keep_best: true,
        })
        .build();
    let trainer = Trainer::new(network, config, dir)
        .with_callback(StepPrinter { delay })
        .with_fingerprint("trainer-probe");
    let mut trainer = match metric_classes {
        Some(classes) => trainer.with_metric(Dice::new(classes, "logits", "label")),
        None => trainer.with_metric(Accuracy::new("logits", "y")),
    };
    let valid: Option<&dyn BatchSource> = Some(&valid);
    let report = if dir.join("checkpoints").exists() {
        trainer.resume(&train, valid)
    } else {
        trainer.fit(&train, valid)
    }
    .map_err(|e| e.to_string())?;

    trainer
        .network()
        .export_state()
        .and_then(|state| state.save(dir.join("final.safetensors")))
        .map_err(|e| e.to_string())?;
    let history = serde_json::to_string_pretty(&report.history).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("history.json"), history).map_err(|e| e.to_string())?;
    println!("done after {} steps", report.steps);
    Ok(())
}

#[cfg(feature = "torch")]
fn unet() -> Result<impl Network, String> {
    use delira::backend::torch::{TorchNetwork, tch};
    use delira::backend::{AdamConfig, DiceCeConfig};
    use delira::models::torch::{Norm, UNet, UNetConfig};

    tch::set_num_threads(1);
    tch::manual_seed(3);
    let config = UNetConfig::builder()
        .spatial_dims(2)
        .in_channels(1)
        .classes(3)
        .depth(2)
        .base(4)
        .norm(Norm::Instance)
        .build();
    TorchNetwork::new(
        delira::backend::Device::Cpu,
        |p| UNet::new(p, &config),
        AdamConfig::builder().lr(1e-2).build().into(),
        DiceCeConfig::default().into(),
    )
    .map_err(|e| e.to_string())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(kind)) = (args.next(), args.next()) else {
        eprintln!("usage: trainer-probe <run_dir> <linear|unet> [step_delay_ms]");
        std::process::exit(2);
    };
    let delay = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(0));
    let dir = PathBuf::from(dir);
    let result = match kind.as_str() {
        "linear" => {
            let net = delira::testing::LinearNetwork::classifier(6, 3, 1).with_sgd(0.2, 0.9);
            let net = net.with_fields("x", "y", "logits");
            run(net, None, &dir, delay)
        }
        #[cfg(feature = "torch")]
        "unet" => unet().and_then(|net| run(net, Some(3), &dir, delay)),
        other => Err(format!(
            "unknown network `{other}`; use `linear` or `unet` (with the `torch` feature)"
        )),
    };
    if let Err(error) = result {
        eprintln!("trainer-probe: {error}");
        std::process::exit(1);
    }
}

//! The trainer's per-step overhead: the reference 3D U-Net of `unet3d_step_time` trained on the
//! same pre-made batches by `delira::training::Trainer` and by two hand-written loops, in
//! interleaved rounds.
//!
//! `cargo run --release --features torch --example trainer_overhead [rounds] [steps] [batch]`
//!
//! Each round is one trainer epoch of `steps` batches (timed from `on_epoch_begin` to
//! `on_epoch_end`, so it includes everything the trainer does per step: callbacks, loss means,
//! the NaN check, sinks, progress bookkeeping), then, inside the same `on_epoch_end` hook, the
//! same `steps` batches through
//!
//! - a hand loop over the same `TorchNetwork`'s `train_step` (the trainer's own overhead), and
//! - a hand-written `tch` loop: the same layers, tensors made from the same `ndarray` batches,
//!   the `dice_ce` loss written inline, `tch`'s built-in Adam.
//!
//! The first round warms up and is left out; the medians of the other rounds are printed.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use delira::backend::torch::tch::{self, Device, Kind, Tensor, nn, nn::OptimizerConfig as _};
use delira::backend::torch::{TorchModel, TorchNetwork};
use delira::backend::{
    AdamConfig, BackendError, DiceCeConfig, Network, State, StepOutput, TOTAL_LOSS,
};
use delira::data::{Batch, LoaderError, Record};
use delira::models::torch::{Norm, UNet, UNetConfig};
use delira::training::callbacks::{Callback, CallbackContext, CallbackError};
use delira::training::checkpoint::CheckpointPolicy;
use delira::training::{BatchSource, Trainer, TrainerConfig};
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

fn network() -> TorchNetwork<UNet> {
    TorchNetwork::new(
        delira::backend::Device::Cpu,
        |p| UNet::new(p, &config()),
        AdamConfig::builder().lr(1e-3).build().into(),
        DiceCeConfig::default().into(),
    )
    .expect("a valid configuration")
}

fn batch(size: usize, seed: usize) -> Batch {
    let samples = (0..size).map(|s| {
        let image = ArrayD::from_shape_fn(vec![1, SIDE, SIDE, SIDE], |i| {
            ((i[1] * 7 + i[2] * 3 + i[3] + s + seed) % 13) as f32 / 13.0
        });
        let label = ArrayD::from_shape_fn(vec![SIDE, SIDE, SIDE], |i| {
            ((i[0] / 8 + i[1] / 8 + i[2] / 8 + s + seed) % CLASSES as usize) as i64
        });
        Record::new().with("image", image).with("label", label)
    });
    Batch::collate(samples).expect("samples of one shape")
}

/// The same pre-made batches every epoch.
struct Premade(Vec<Batch>);

impl BatchSource for Premade {
    fn num_batches(&self) -> usize {
        self.0.len()
    }

    fn batches_from(
        &self,
        _epoch: u64,
        first: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch, LoaderError>> + '_> {
        Box::new(self.0.iter().skip(first).cloned().map(Ok))
    }
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

/// A plain `tch` training setup.
struct Plain {
    _vs: nn::VarStore,
    model: UNet,
    adam: nn::Optimizer,
}

impl Plain {
    fn new() -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = UNet::new(&vs.root(), &config()).expect("a valid configuration");
        let adam = nn::Adam::default().build(&vs, 1e-3).expect("an optimizer");
        Self {
            _vs: vs,
            model,
            adam,
        }
    }

    fn step(&mut self, batch: &Batch) -> f64 {
        let image = batch.f32("image").expect("an image field");
        let label = batch.i64("label").expect("a label field");
        let dims = |s: &[usize]| s.iter().map(|&d| d as i64).collect::<Vec<_>>();
        let x = Tensor::from_slice(image.as_slice().expect("contiguous"))
            .view(&dims(image.shape())[..]);
        let y = Tensor::from_slice(label.as_slice().expect("contiguous"))
            .view(&dims(label.shape())[..]);
        let logits = self.model.forward(&x, true);
        let loss = plain_dice_ce(&logits, &y);
        self.adam.backward_step(&loss);
        // Read the logits back as delira's step does, so both do the same work.
        let _host = Vec::<f32>::try_from(logits.detach().flatten(0, -1)).expect("floats");
        loss.double_value(&[])
    }
}

/// Per round, seconds per step as (wall clock, CPU time of this thread) of: the trainer, the hand
/// loop over `Network::train_step`, plain `tch`.
type Rounds = Arc<Mutex<Vec<[(f64, f64); 3]>>>;

/// The CPU time of the calling thread, in seconds. With one libtorch thread every step runs on
/// the calling thread, so this ignores the time other processes of a shared machine take.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the `timespec` it is given, which outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "the thread CPU clock is readable");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Wall clock and thread CPU time at one moment.
fn now() -> (Instant, f64) {
    (Instant::now(), thread_cpu())
}

fn per_step(start: (Instant, f64), steps: f64) -> (f64, f64) {
    (
        start.0.elapsed().as_secs_f64() / steps,
        (thread_cpu() - start.1) / steps,
    )
}

/// Times the trainer's epochs and, at each epoch end, runs the two hand loops on the same batches.
struct Interleave {
    batches: Premade,
    network: TorchNetwork<UNet>,
    plain: Plain,
    epoch_start: Option<(Instant, f64)>,
    rounds: Rounds,
}

impl Callback for Interleave {
    fn name(&self) -> &'static str {
        "interleave"
    }

    fn on_epoch_begin(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        self.epoch_start = Some(now());
        Ok(())
    }

    fn on_epoch_end(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        let steps = self.batches.num_batches() as f64;
        let trainer = self
            .epoch_start
            .map_or((f64::NAN, f64::NAN), |s| per_step(s, steps));

        // Both hand loops take their batches from the same source as the trainer.
        let start = now();
        for batch in self.batches.batches_from(0, 0) {
            let batch = batch.expect("a pre-made batch");
            let output = self.network.train_step(&batch).expect("a valid batch");
            assert!(output.loss().is_some_and(f64::is_finite));
        }
        let hand = per_step(start, steps);

        let start = now();
        for batch in self.batches.batches_from(0, 0) {
            let batch = batch.expect("a pre-made batch");
            assert!(self.plain.step(&batch).is_finite());
        }
        let plain = per_step(start, steps);
        self.rounds
            .lock()
            .expect("not poisoned")
            .push([trainer, hand, plain]);
        self.epoch_start = None;
        Ok(())
    }
}

/// A network whose step costs nothing: what remains of a trainer step is the trainer's own work.
struct Idle;

impl Network for Idle {
    fn train_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        self.eval_step(batch)
    }

    fn eval_step(&mut self, _batch: &Batch) -> Result<StepOutput, BackendError> {
        let mut output = StepOutput::default();
        output.losses.insert(TOTAL_LOSS.to_owned(), 0.5);
        Ok(output)
    }

    fn learning_rate(&self) -> f64 {
        0.1
    }

    fn set_learning_rate(&mut self, _lr: f64) {}

    fn export_state(&self) -> Result<State, BackendError> {
        Ok(State::new())
    }

    fn import_state(&mut self, _state: &State) -> Result<(), BackendError> {
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        0
    }

    fn device(&self) -> delira::backend::Device {
        delira::backend::Device::Cpu
    }
}

/// Times the epochs of a trainer.
struct EpochTimer {
    start: Option<(Instant, f64)>,
    steps: f64,
    rounds: Rounds,
}

impl Callback for EpochTimer {
    fn name(&self) -> &'static str {
        "epoch_timer"
    }

    fn on_epoch_begin(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        self.start = Some(now());
        Ok(())
    }

    fn on_epoch_end(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        if let Some(start) = self.start.take() {
            let time = per_step(start, self.steps);
            self.rounds.lock().expect("not poisoned").push([time; 3]);
        }
        Ok(())
    }
}

/// The trainer's own time per step (wall clock, thread CPU), measured with a network that does
/// nothing on small pre-made batches (the batches are cloned per step, as for the U-Net).
fn idle_step(steps: usize, policy: &CheckpointPolicy) -> (f64, f64) {
    let batches: Vec<Batch> = (0..steps)
        .map(|i| {
            let record = Record::new().with("v", ndarray::arr0(i as f32).into_dyn());
            Batch::collate([record]).expect("one sample")
        })
        .collect();
    let rounds: Rounds = Arc::default();
    let timer = EpochTimer {
        start: None,
        steps: steps as f64,
        rounds: Arc::clone(&rounds),
    };
    let run_dir = std::env::temp_dir().join(format!("delira-trainer-idle-{}", std::process::id()));
    let config = TrainerConfig::builder()
        .epochs(5)
        .checkpoint(policy.clone())
        .build();
    let mut trainer = Trainer::new(Idle, config, &run_dir).with_callback(timer);
    trainer.fit(&Premade(batches), None).expect("training runs");
    std::fs::remove_dir_all(&run_dir).ok();
    let rounds = rounds.lock().expect("not poisoned");
    (
        median(rounds[1..].iter().map(|r| r[0].0).collect()),
        median(rounds[1..].iter().map(|r| r[0].1).collect()),
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let steps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    tch::set_num_threads(1);
    tch::manual_seed(0);

    let batches: Vec<Batch> = (0..steps).map(|seed| batch(size, seed)).collect();
    let times: Rounds = Arc::default();
    let interleave = Interleave {
        batches: Premade(batches.clone()),
        network: network(),
        plain: Plain::new(),
        epoch_start: None,
        rounds: Arc::clone(&times),
    };
    let run_dir =
        std::env::temp_dir().join(format!("delira-trainer-overhead-{}", std::process::id()));
    // No checkpoint inside the timed epochs: the policy writes only after the last one.
    let policy = CheckpointPolicy {
        every_epochs: u64::MAX,
        every_steps: None,
        keep_last: 1,
        keep_best: false,
    };
    let idle = idle_step(10_000, &policy);
    let config = TrainerConfig::builder()
        .epochs(rounds)
        .checkpoint(policy)
        .build();
    let mut trainer = Trainer::new(network(), config, &run_dir).with_callback(interleave);
    let report = trainer.fit(&Premade(batches), None).expect("training runs");
    std::fs::remove_dir_all(&run_dir).ok();

    let rounds = times.lock().expect("not poisoned");
    let measured = &rounds[1..];
    println!(
        "3D U-Net (depth 3, base 8, instance norm, {} parameters), batch {size}×1×{SIDE}³, \
         {CLASSES} classes, 1 thread; {} interleaved rounds of {steps} steps (first left out); \
         ms per step, wall clock / CPU time of the training thread:",
        trainer.network().parameter_count(),
        measured.len()
    );
    let ms = |(wall, cpu): (f64, f64)| format!("{:6.1} / {:6.1}", wall * 1e3, cpu * 1e3);
    for (i, r) in measured.iter().enumerate() {
        println!(
            "  round {}: trainer {}  hand loop {}  plain tch {}",
            i + 1,
            ms(r[0]),
            ms(r[1]),
            ms(r[2])
        );
    }
    let column = |i: usize| {
        (
            median(measured.iter().map(|r| r[i].0).collect()),
            median(measured.iter().map(|r| r[i].1).collect()),
        )
    };
    let (trainer_s, hand_s, plain_s) = (column(0), column(1), column(2));
    println!("  medians: Trainer::fit {}", ms(trainer_s));
    println!(
        "           hand loop over Network::train_step {}",
        ms(hand_s)
    );
    println!("           hand-written plain tch loop {}", ms(plain_s));
    let percent = |a: f64, b: f64| (a / b - 1.0) * 100.0;
    for (what, pick) in [("wall clock", 0), ("thread CPU time", 1)] {
        let get = |t: (f64, f64)| if pick == 0 { t.0 } else { t.1 };
        println!(
            "  trainer overhead ({what}): {:+.2} % vs the hand loop over the same network, \
             {:+.2} % vs plain tch",
            percent(get(trainer_s), get(hand_s)),
            percent(get(trainer_s), get(plain_s))
        );
    }
    println!(
        "  the trainer's own work per step (a network that does nothing, 10 000 steps): \
         {:.2} µs wall / {:.2} µs CPU = {:.4} % of the U-Net step",
        idle.0 * 1e6,
        idle.1 * 1e6,
        idle.1 / trainer_s.1 * 100.0
    );
    let last_loss = report.history.last().map_or(f64::NAN, |r| r.train["loss"]);
    println!(
        "  ({} steps trained by the trainer, last epoch loss {last_loss:.4})",
        report.steps
    );
}

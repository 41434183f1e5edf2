//! The trainer: sample-weighted averages, the monitor, validation cadence, early stopping,
//! schedules, non-finite losses, checkpoints and resume (in-process; the killed-process resume is
//! in `training_resume`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use delira::backend::{BackendError, Device, Network, State, StepOutput, TOTAL_LOSS};
use delira::data::{Batch, FnDataset, Loader, LoaderConfig, Record, SequentialSampler};
use delira::testing::LinearNetwork;
use delira::training::callbacks::{EarlyStopping, EarlyStoppingConfig};
use delira::training::checkpoint::{
    CheckpointPolicy, CheckpointWriter, Fallback, MANIFEST_FILE, TENSORS_FILE,
};
use delira::training::metrics::{Accuracy, RegressionError};
use delira::training::schedule::ScheduleConfig;
use delira::training::{
    FitReport, Mode, MonitorConfig, NonFinitePolicy, TrainError, Trainer, TrainerConfig,
};
use ndarray::{ArrayD, arr0};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("delira-trainer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// What a [`Scripted`] network saw, shared with the test.
#[derive(Debug, Default)]
struct Seen {
    train_batches: Vec<Vec<usize>>,
    lrs: Vec<f64>,
}

/// A network that does not learn: its training loss is the batch mean of the field `v`, its
/// prediction `out` is `v`, and its validation loss follows a script (one value per eval call)
/// or, without one, is the batch mean of `v` too. It can fail at a chosen step, like a crash.
struct Scripted {
    seen: Arc<Mutex<Seen>>,
    lr: f64,
    steps: i64,
    evals: i64,
    valid_losses: Vec<f64>,
    fail_at_step: Option<i64>,
}

impl Scripted {
    fn new(valid_losses: &[f64]) -> (Self, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let net = Self {
            seen: Arc::clone(&seen),
            lr: 0.1,
            steps: 0,
            evals: 0,
            valid_losses: valid_losses.to_vec(),
            fail_at_step: None,
        };
        (net, seen)
    }

    fn output(batch: &Batch, loss: f64) -> StepOutput {
        let v = batch.f32("v").unwrap().clone();
        let mut out = StepOutput::default();
        out.losses.insert(TOTAL_LOSS.to_owned(), loss);
        out.predictions.insert("out".to_owned(), v);
        out
    }
}

fn mean_v(batch: &Batch) -> f64 {
    let v = batch.f32("v").unwrap();
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
}

impl Network for Scripted {
    fn train_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        if self.fail_at_step == Some(self.steps + 1) {
            return Err(BackendError::Target {
                problem: "injected failure".to_owned(),
            });
        }
        let mut seen = self.seen.lock().unwrap();
        seen.train_batches.push(batch.indices().to_vec());
        seen.lrs.push(self.lr);
        self.steps += 1;
        Ok(Self::output(batch, mean_v(batch)))
    }

    fn eval_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        let loss = match self.valid_losses.len() {
            0 => mean_v(batch),
            n => self.valid_losses[(self.evals as usize).min(n - 1)],
        };
        self.evals += 1;
        Ok(Self::output(batch, loss))
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn export_state(&self) -> Result<State, BackendError> {
        let mut state = State::new();
        state.insert("steps", ArrayD::from_elem(vec![], self.steps));
        state.insert("evals", ArrayD::from_elem(vec![], self.evals));
        state.insert("lr", ArrayD::from_elem(vec![], self.lr));
        Ok(state)
    }

    fn import_state(&mut self, state: &State) -> Result<(), BackendError> {
        self.export_state()?.check(state)?;
        self.steps = state.i64("steps").unwrap()[[]];
        self.evals = state.i64("evals").unwrap()[[]];
        self.lr = state.f64("lr").unwrap()[[]];
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        0
    }

    fn device(&self) -> Device {
        Device::Cpu
    }
}

type ValuesLoader = Loader<
    FnDataset<Box<dyn Fn(usize) -> Result<Record, delira::data::DataError> + Send + Sync>>,
    SequentialSampler,
>;

fn loader(values: &[f32], batch_size: usize) -> ValuesLoader {
    let values = values.to_vec();
    let n = values.len();
    let get: Box<dyn Fn(usize) -> Result<Record, delira::data::DataError> + Send + Sync> =
        Box::new(move |i| {
            Ok(Record::new()
                .with("v", arr0(values[i]).into_dyn())
                .with("t", arr0(0.0_f32).into_dyn()))
        });
    let config = LoaderConfig::builder().batch_size(batch_size).build();
    Loader::new(FnDataset::new(n, get), SequentialSampler::new(n), config).unwrap()
}

fn config(epochs: u64) -> TrainerConfig {
    TrainerConfig::builder().epochs(epochs).build()
}

#[test]
fn epoch_means_weigh_batches_by_their_samples() {
    // Batches [1, 2], [3, 4], [10]: batch means 1.5, 3.5, 10. Their plain mean would be 5; the
    // mean over samples is 20 / 5 = 4.
    let train = loader(&[1.0, 2.0, 3.0, 4.0, 10.0], 2);
    // Validation batches [2, 4, 6], [20]: over samples 32 / 4 = 8 (not (4 + 20) / 2 = 12).
    let valid = loader(&[2.0, 4.0, 6.0, 20.0], 3);
    let (net, _) = Scripted::new(&[]);
    let mut trainer = Trainer::new(net, config(1), scratch("weighted"))
        .with_metric(RegressionError::absolute("out", "t"));
    let report = trainer.fit(&train, Some(&valid)).unwrap();

    let epoch = &report.history[0];
    assert_eq!(epoch.train["loss"], 4.0);
    assert_eq!(epoch.train["mae"], 4.0);
    assert_eq!(epoch.valid["loss"], 8.0);
    assert_eq!(epoch.valid["mae"], 8.0);
    assert_eq!(trainer.evaluate(&valid).unwrap()["mae"], 8.0);
    assert_eq!((report.epochs_run, report.steps), (1, 3));
}

#[test]
fn a_negative_first_value_can_be_the_best_and_best_and_last_are_kept() {
    let dir = scratch("negative-best");
    let train = loader(&[1.0, 2.0], 2);
    let (net, _) = Scripted::new(&[-5.0, -7.0, -6.0]);
    let config = TrainerConfig::builder()
        .epochs(3)
        .monitor(Some(MonitorConfig::new("valid/loss", Mode::Max)))
        .checkpoint(CheckpointPolicy {
            every_epochs: 1,
            every_steps: None,
            keep_last: 1,
            keep_best: true,
        })
        .build();
    let mut trainer = Trainer::new(net, config, &dir);
    let report = trainer.fit(&train, Some(&train)).unwrap();

    let best = report.best.unwrap();
    assert_eq!(
        (best.value, best.epoch, best.metric.as_str()),
        (-5.0, 0, "valid/loss")
    );
    // Kept: the best checkpoint (epoch 0) and the last one (epoch 2); epoch 1 was deleted.
    let names: Vec<String> = CheckpointWriter::new(dir.join("checkpoints"))
        .list()
        .unwrap()
        .iter()
        .map(|e| e.path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["epoch-00000-step-000000001", "epoch-00002-step-000000003"]
    );
    let best_models = CheckpointWriter::new(dir.join("best")).list().unwrap();
    assert_eq!(best_models.len(), 1);
    assert_eq!((best_models[0].epoch, best_models[0].step), (0, 1));

    // The best model is the network after epoch 0: one step taken, one evaluation.
    trainer.load_best().unwrap();
    assert_eq!(trainer.network().steps, 1);
    assert_eq!(trainer.network().evals, 1);
}

#[test]
fn validation_runs_every_n_epochs_and_at_the_last() {
    let train = loader(&[1.0], 1);
    let (net, _) = Scripted::new(&[]);
    let config = TrainerConfig::builder().epochs(5).validate_every(2).build();
    let report = Trainer::new(net, config, scratch("every"))
        .fit(&train, Some(&train))
        .unwrap();
    let validated: Vec<bool> = report.history.iter().map(|r| !r.valid.is_empty()).collect();
    assert_eq!(validated, [false, true, false, true, true]);
}

#[test]
fn early_stopping_stops_at_the_exact_epoch() {
    let train = loader(&[1.0], 1);
    // Best at epoch 1 (0.5); epochs 2 and 3 do not improve: with patience 2 the run stops at the
    // end of epoch 3, although epoch 4 would have improved.
    let (net, _) = Scripted::new(&[1.0, 0.5, 0.7, 0.6, 0.4, 0.3]);
    let stopper = EarlyStopping::new(EarlyStoppingConfig {
        monitor: "valid/loss".to_owned(),
        mode: Mode::Min,
        patience: 2,
        min_delta: 0.0,
    });
    let mut trainer = Trainer::new(net, config(10), scratch("early")).with_callback(stopper);
    let report = trainer.fit(&train, Some(&train)).unwrap();
    assert_eq!(report.epochs_run, 4);
    assert_eq!(report.history.last().unwrap().epoch, 3);
    let reason = report.stopped.unwrap();
    assert!(
        reason.contains("`valid/loss` has not improved for 2 epochs"),
        "{reason}"
    );
}

#[test]
fn a_per_epoch_schedule_changes_the_rate_between_epochs() {
    let train = loader(&[1.0, 2.0], 1);
    let (net, seen) = Scripted::new(&[]);
    let schedule = ScheduleConfig::Step {
        step_size: 1,
        gamma: 0.5,
    };
    let mut trainer = Trainer::new(net, config(3), scratch("epoch-schedule"))
        .with_schedule(schedule)
        .unwrap();
    trainer.fit(&train, None).unwrap();
    assert_eq!(
        seen.lock().unwrap().lrs,
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    );
}

#[test]
fn a_per_iteration_schedule_changes_the_rate_between_steps() {
    let train = loader(&[1.0; 5], 1);
    let (net, seen) = Scripted::new(&[]);
    // One cycle over 5 steps: up from 1/10 to 1 in steps 0..=2, down to 1/1000 in steps 2..=4.
    let schedule = ScheduleConfig::OneCycle {
        max_lr: 1.0,
        total_steps: 5,
        pct_start: 0.6,
        div_factor: 10.0,
        final_div_factor: 100.0,
        three_phase: false,
    };
    let mut trainer = Trainer::new(net, config(1), scratch("iteration-schedule"))
        .with_schedule(schedule)
        .unwrap();
    trainer.fit(&train, None).unwrap();
    let lrs = seen.lock().unwrap().lrs.clone();
    let expected = [0.1, 0.55, 1.0, 0.5005, 0.001];
    assert_eq!(lrs.len(), 5);
    for (lr, want) in lrs.iter().zip(expected) {
        assert!((lr - want).abs() < 1e-12, "{lrs:?}");
    }
}

#[test]
fn a_nan_loss_stops_the_run_naming_epoch_and_step() {
    let train = loader(&[1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0], 2);
    let (net, _) = Scripted::new(&[]);
    let error = Trainer::new(net, config(2), scratch("nan-stop"))
        .fit(&train, None)
        .unwrap_err();
    assert!(matches!(
        error,
        TrainError::NonFiniteLoss {
            epoch: 0,
            step: 3,
            batch: 2,
            ..
        }
    ));
    assert!(
        error
            .to_string()
            .starts_with("non-finite loss NaN at epoch 0, step 3 (batch 2, samples [4, 5]);"),
        "{error}"
    );
}

#[test]
fn skipping_a_nan_batch_counts_it_and_undoes_the_step() {
    // The scripted network: the NaN batch is left out of the mean and the count.
    let train = loader(&[1.0, 2.0, f32::NAN, 4.0, 5.0, 6.0], 2);
    let (net, _) = Scripted::new(&[]);
    let config = TrainerConfig::builder()
        .epochs(2)
        .non_finite(NonFinitePolicy::SkipBatch)
        .build();
    let report = Trainer::new(net, config, scratch("nan-skip"))
        .fit(&train, None)
        .unwrap();
    assert_eq!((report.skipped_batches, report.steps), (2, 4));
    assert_eq!(
        report.history[1].train["loss"],
        (1.0 + 2.0 + 5.0 + 6.0) / 4.0
    );

    // A learning network: the skipped step leaves no trace, as if the batch were not there.
    let x = [
        [1.0_f32, 0.0],
        [0.0, 1.0],
        [f32::NAN, 1.0],
        [1.0, 1.0],
        [0.5, 0.0],
        [0.0, 0.2],
    ];
    let records = move |i: usize| {
        Ok(Record::new()
            .with("x", ArrayD::from_shape_vec(vec![2], x[i].to_vec()).unwrap())
            .with("y", arr0((i % 2) as i64).into_dyn()))
    };
    let data = FnDataset::new(6, records);
    let loader_config = LoaderConfig::builder().batch_size(2).build();
    let train = Loader::new(data, SequentialSampler::new(6), loader_config).unwrap();
    let config = TrainerConfig::builder()
        .epochs(1)
        .non_finite(NonFinitePolicy::SkipBatch)
        .build();
    let mut trainer = Trainer::new(
        LinearNetwork::classifier(2, 2, 4),
        config,
        scratch("nan-skip-linear"),
    );
    assert_eq!(trainer.fit(&train, None).unwrap().skipped_batches, 1);

    let mut by_hand = LinearNetwork::classifier(2, 2, 4);
    let batches: Vec<Batch> = train.epoch(0).map(Result::unwrap).collect();
    by_hand.train_step(&batches[0]).unwrap();
    by_hand.train_step(&batches[2]).unwrap();
    assert_eq!(trainer.network(), &by_hand);
}

/// Trains the scripted network for 3 epochs of 5 batches with a checkpoint every 2 steps, failing
/// at `fail_at_step` when given.
fn run_scripted(
    dir: &PathBuf,
    fail_at_step: Option<i64>,
) -> (Result<FitReport, TrainError>, Arc<Mutex<Seen>>) {
    let train = loader(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 2);
    let (mut net, seen) = Scripted::new(&[3.0, 1.0, 2.0]);
    net.fail_at_step = fail_at_step;
    let config = TrainerConfig::builder()
        .epochs(3)
        .monitor(Some(MonitorConfig::new("valid/loss", Mode::Min)))
        .checkpoint(CheckpointPolicy {
            every_epochs: 1,
            every_steps: Some(2),
            keep_last: 2,
            keep_best: true,
        })
        .build();
    let stopper = EarlyStopping::new(EarlyStoppingConfig {
        monitor: "valid/loss".to_owned(),
        mode: Mode::Min,
        patience: 5,
        min_delta: 0.0,
    });
    let mut trainer = Trainer::new(net, config, dir)
        .with_callback(stopper)
        .with_fingerprint("nine values")
        .with_schedule(ScheduleConfig::Exponential { gamma: 0.5 })
        .unwrap();
    let report = if fail_at_step.is_some() || !dir.join("checkpoints").exists() {
        trainer.fit(&train, Some(&train))
    } else {
        trainer.resume(&train, Some(&train))
    };
    (report, seen)
}

#[test]
fn resuming_mid_epoch_continues_with_the_next_batch() {
    let (whole, whole_seen) = run_scripted(&scratch("resume-whole"), None);
    let whole = whole.unwrap();

    // Step 8 is batch 2 of epoch 1 (5 batches per epoch); the last checkpoint is at step 6.
    let dir = scratch("resume-crash");
    let (crashed, _) = run_scripted(&dir, Some(8));
    let error = crashed.unwrap_err();
    assert!(
        matches!(
            error,
            TrainError::Step {
                epoch: 1,
                step: 8,
                ..
            }
        ),
        "{error}"
    );
    let (resumed, resumed_seen) = run_scripted(&dir, None);
    let resumed = resumed.unwrap();

    // Step 7 (batch 1 of epoch 1, samples [2, 3]) is the first one after the checkpoint.
    let seen = resumed_seen.lock().unwrap();
    assert_eq!(seen.train_batches[0], [2, 3]);
    let whole_seen = whole_seen.lock().unwrap();
    assert_eq!(seen.train_batches[..], whole_seen.train_batches[6..]);
    assert_eq!(seen.lrs[..], whole_seen.lrs[6..]);
    assert_eq!(resumed, whole);
}

#[test]
fn a_damaged_newest_checkpoint_is_an_error_and_the_previous_is_used_on_request() {
    let (whole, _) = run_scripted(&scratch("damaged-whole"), None);
    let dir = scratch("damaged");
    let (crashed, _) = run_scripted(&dir, Some(8));
    assert!(crashed.is_err());
    let writer = CheckpointWriter::new(dir.join("checkpoints"));
    let newest = writer.latest().unwrap().unwrap();
    assert_eq!((newest.epoch, newest.step), (1, 6));
    let tensors = newest.path.join(TENSORS_FILE);
    let mut bytes = std::fs::read(&tensors).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&tensors, bytes).unwrap();

    let (refused, _) = run_scripted(&dir, None);
    let message = refused.unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "the newest checkpoint `{}` is damaged (checkpoint file `{}` is damaged: checksum",
            newest.path.display(),
            tensors.display()
        )),
        "{message}"
    );

    // With the fallback, the run resumes from step 4 and still ends exactly as the whole run.
    let train = loader(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 2);
    let (net, seen) = Scripted::new(&[3.0, 1.0, 2.0]);
    let config = TrainerConfig::builder()
        .epochs(3)
        .monitor(Some(MonitorConfig::new("valid/loss", Mode::Min)))
        .checkpoint(CheckpointPolicy {
            every_epochs: 1,
            every_steps: Some(2),
            keep_last: 2,
            keep_best: true,
        })
        .build();
    let stopper = EarlyStopping::new(EarlyStoppingConfig {
        monitor: "valid/loss".to_owned(),
        mode: Mode::Min,
        patience: 5,
        min_delta: 0.0,
    });
    let mut trainer = Trainer::new(net, config, &dir)
        .with_callback(stopper)
        .with_fingerprint("nine values")
        .with_schedule(ScheduleConfig::Exponential { gamma: 0.5 })
        .unwrap()
        .with_fallback(Fallback::Previous);
    let resumed = trainer.resume(&train, Some(&train)).unwrap();
    // The previous checkpoint is the end of epoch 0 (step 5): epoch 1 starts afresh.
    assert_eq!(seen.lock().unwrap().train_batches[0], [0, 1]);
    assert_eq!(resumed, whole.unwrap());
}

#[test]
fn a_fingerprint_mismatch_is_a_clear_error() {
    let dir = scratch("fingerprint");
    let train = loader(&[1.0, 2.0], 1);
    let (net, _) = Scripted::new(&[]);
    Trainer::new(net, config(1), &dir)
        .with_fingerprint("split A")
        .fit(&train, None)
        .unwrap();

    let (net, _) = Scripted::new(&[]);
    let error = Trainer::new(net, config(2), &dir)
        .with_fingerprint("split B")
        .resume(&train, None)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.ends_with(
            "was written with a different data fingerprint (`split A`, this run `split B`); \
             resume with the same data or start a new run folder"
        ),
        "{message}"
    );

    let (net, _) = Scripted::new(&[]);
    let changed = TrainerConfig::builder().epochs(2).seed(5).build();
    let error = Trainer::new(net, changed, &dir)
        .with_fingerprint("split A")
        .resume(&train, None)
        .unwrap_err();
    assert!(matches!(
        error,
        TrainError::FingerprintMismatch {
            what: "configuration",
            ..
        }
    ));

    // Raising `epochs` is allowed: the run continues with epoch 1.
    let (net, seen) = Scripted::new(&[]);
    let report = Trainer::new(net, config(2), &dir)
        .with_fingerprint("split A")
        .resume(&train, None)
        .unwrap();
    assert_eq!((report.epochs_run, report.steps), (2, 4));
    assert_eq!(seen.lock().unwrap().train_batches, [vec![0], vec![1]]);
    assert!(
        dir.join("checkpoints")
            .join("epoch-00001-step-000000004")
            .join(MANIFEST_FILE)
            .is_file()
    );
}

#[test]
fn accuracy_of_a_trained_classifier_is_averaged_over_samples() {
    // 3 samples in batches of 2 and 1: a network that classifies sample 2 wrongly scores 2/3
    // (the mean of batch accuracies would be (1 + 0) / 2).
    let x = [[1.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0]];
    let y = [0_i64, 1, 1];
    let data = FnDataset::new(3, move |i: usize| {
        Ok(Record::new()
            .with("x", ArrayD::from_shape_vec(vec![2], x[i].to_vec()).unwrap())
            .with("y", arr0(y[i]).into_dyn()))
    });
    let valid = Loader::new(
        data,
        SequentialSampler::new(3),
        LoaderConfig::builder().batch_size(2).build(),
    )
    .unwrap();
    // Weights that send x0 to class 0 and x1 to class 1.
    let mut net = LinearNetwork::classifier(2, 2, 0);
    let mut state = net.export_state().unwrap();
    state.insert(
        "weight",
        ndarray::array![[1.0_f32, 0.0], [0.0, 1.0]].into_dyn(),
    );
    net.import_state(&state).unwrap();
    let mut trainer =
        Trainer::new(net, config(1), scratch("accuracy")).with_metric(Accuracy::new("logits", "y"));
    let metrics = trainer.evaluate(&valid).unwrap();
    assert_eq!(metrics["accuracy"], 2.0 / 3.0);
}

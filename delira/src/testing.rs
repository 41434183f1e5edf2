//! Test doubles: a small network in pure Rust that needs no native library.
//!
//! [`LinearNetwork`] implements [`Network`] with plain `ndarray` code: a linear layer trained by
//! SGD with momentum, either as a softmax classifier (cross-entropy on `i64` class labels) or as
//! a regressor (mean squared error on `f32` targets). Its whole state — weights, momentum buffers,
//! step counter and learning rate — is exportable, so it exercises the trainer's checkpoints and
//! exact resume in `cargo test` without the `torch` feature. It is deterministic: the same
//! batches give bit-identical weights on every run. It lives in the library (not behind a
//! feature) so that documentation examples and downstream tests can use it too; it is not meant
//! for real models.
//!
//! ```
//! use delira::backend::Network;
//! use delira::data::{Batch, Record};
//! use delira::testing::LinearNetwork;
//! use ndarray::{ArrayD, arr0};
//!
//! let mut net = LinearNetwork::classifier(2, 2, 7).with_sgd(0.5, 0.0);
//! let samples = [([1.0_f32, 0.0], 0_i64), ([0.0, 1.0], 1)].map(|(x, y)| {
//!     Record::new()
//!         .with("x", ArrayD::from_shape_vec(vec![2], x.to_vec()).unwrap())
//!         .with("y", arr0(y).into_dyn())
//! });
//! let batch = Batch::collate(samples).unwrap();
//! let first = net.train_step(&batch).unwrap().loss().unwrap();
//! for _ in 0..20 {
//!     net.train_step(&batch).unwrap();
//! }
//! let last = net.eval_step(&batch).unwrap().loss().unwrap();
//! assert!(last < first / 4.0, "{first} -> {last}");
//! ```

use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis, Ix1, Ix2};

use crate::backend::{BackendError, Device, Network, State, StepOutput, TOTAL_LOSS};
use crate::data::{Batch, BatchField};
use crate::random::StreamKey;

/// What a [`LinearNetwork`] learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearTask {
    /// Softmax over `outputs` classes, cross-entropy against `i64` labels of shape `[batch]`.
    Classification,
    /// Mean squared error against `f32` targets of shape `[batch, outputs]`.
    Regression,
}

/// A linear layer trained by SGD with momentum, in pure Rust (see the [module docs](self)).
///
/// Reads the `f32` input field (default `x`, shape `[batch, features]`) and the target field
/// (default `y`); reports its output (default `logits` for a classifier, `output` for a
/// regressor) with shape `[batch, outputs]`. The loss is the mean over the batch (and over the
/// outputs for a regressor). State names: `weight`, `bias`, `momentum.weight`, `momentum.bias`
/// (`f32`), `steps` (`i64`) and `lr` (`f64`).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearNetwork {
    task: LinearTask,
    weight: Array2<f32>,
    bias: Array1<f32>,
    velocity_weight: Array2<f32>,
    velocity_bias: Array1<f32>,
    steps: i64,
    lr: f64,
    momentum: f32,
    input: String,
    target: String,
    output: String,
}

impl LinearNetwork {
    /// A softmax classifier of `features` inputs into `classes` classes, its weights drawn
    /// uniformly from `±1/sqrt(features)` by a stream keyed by `seed`.
    pub fn classifier(features: usize, classes: usize, seed: u64) -> Self {
        Self::new(
            LinearTask::Classification,
            features,
            classes,
            seed,
            "logits",
        )
    }

    /// A linear regressor of `features` inputs onto `outputs` values, initialised as
    /// [`LinearNetwork::classifier`].
    pub fn regressor(features: usize, outputs: usize, seed: u64) -> Self {
        Self::new(LinearTask::Regression, features, outputs, seed, "output")
    }

    fn new(task: LinearTask, features: usize, outputs: usize, seed: u64, output: &str) -> Self {
        let mut stream = StreamKey::new(seed).purpose("linear_network_init").stream();
        let bound = 1.0 / (features.max(1) as f64).sqrt();
        let weight = Array2::from_shape_simple_fn((outputs, features), || {
            stream.uniform(-bound, bound) as f32
        });
        Self {
            task,
            weight,
            bias: Array1::zeros(outputs),
            velocity_weight: Array2::zeros((outputs, features)),
            velocity_bias: Array1::zeros(outputs),
            steps: 0,
            lr: 0.1,
            momentum: 0.9,
            input: "x".to_owned(),
            target: "y".to_owned(),
            output: output.to_owned(),
        }
    }

    /// The same network with learning rate `lr` and momentum `momentum` (defaults 0.1 and 0.9).
    #[must_use]
    pub fn with_sgd(mut self, lr: f64, momentum: f32) -> Self {
        self.lr = lr;
        self.momentum = momentum;
        self
    }

    /// The same network reading `input` and `target` and reporting `output`.
    #[must_use]
    pub fn with_fields(
        mut self,
        input: impl Into<String>,
        target: impl Into<String>,
        output: impl Into<String>,
    ) -> Self {
        self.input = input.into();
        self.target = target.into();
        self.output = output.into();
        self
    }

    /// The weights, shape `[outputs, features]`.
    pub fn weight(&self) -> &Array2<f32> {
        &self.weight
    }

    /// The bias, shape `[outputs]`.
    pub fn bias(&self) -> &Array1<f32> {
        &self.bias
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> i64 {
        self.steps
    }

    fn input<'a>(&self, batch: &'a Batch) -> Result<ArrayView2<'a, f32>, BackendError> {
        let array = match field(batch, &self.input)? {
            BatchField::F32(a) => a,
            other => return Err(kind_error(&self.input, "f32", other)),
        };
        let features = self.weight.ncols();
        array
            .view()
            .into_dimensionality::<Ix2>()
            .ok()
            .filter(|x| x.ncols() == features)
            .ok_or_else(|| BackendError::Shape {
                field: self.input.clone(),
                found: array.shape().to_vec(),
                expected: format!("expected [batch, {features}]"),
            })
    }

    fn forward(&self, x: &ArrayView2<'_, f32>) -> Array2<f32> {
        x.dot(&self.weight.t()) + &self.bias
    }

    /// The loss (mean over the batch) and its gradient with respect to the outputs.
    fn loss(
        &self,
        batch: &Batch,
        outputs: &Array2<f32>,
    ) -> Result<(f64, Array2<f32>), BackendError> {
        let n = outputs.nrows();
        match self.task {
            LinearTask::Classification => {
                let labels = match field(batch, &self.target)? {
                    BatchField::I64(a) => a,
                    other => return Err(kind_error(&self.target, "i64", other)),
                };
                let labels = labels
                    .view()
                    .into_dimensionality::<Ix1>()
                    .ok()
                    .filter(|l| l.len() == n)
                    .ok_or_else(|| BackendError::Shape {
                        field: self.target.clone(),
                        found: labels.shape().to_vec(),
                        expected: format!("expected [{n}], one class label per sample"),
                    })?;
                cross_entropy(outputs, labels.as_slice().unwrap_or(&labels.to_vec()))
            }
            LinearTask::Regression => {
                let target = match field(batch, &self.target)? {
                    BatchField::F32(a) => a,
                    other => return Err(kind_error(&self.target, "f32", other)),
                };
                if target.shape() != outputs.shape() {
                    return Err(BackendError::Shape {
                        field: self.target.clone(),
                        found: target.shape().to_vec(),
                        expected: format!("expected {:?}, the output's shape", outputs.shape()),
                    });
                }
                let target = target.view().into_dimensionality::<Ix2>().map_err(|e| {
                    BackendError::Target {
                        problem: e.to_string(),
                    }
                })?;
                let count = outputs.len().max(1) as f32;
                let diff = outputs - &target;
                let loss = diff
                    .iter()
                    .map(|&d| f64::from(d) * f64::from(d))
                    .sum::<f64>()
                    / f64::from(count);
                Ok((loss, diff.mapv(|d| 2.0 * d / count)))
            }
        }
    }

    fn step_output(&self, loss: Option<f64>, outputs: Array2<f32>) -> StepOutput {
        let mut out = StepOutput::default();
        if let Some(loss) = loss {
            out.losses.insert(TOTAL_LOSS.to_owned(), loss);
        }
        out.predictions
            .insert(self.output.clone(), outputs.into_dyn());
        out
    }
}

fn cross_entropy(
    outputs: &Array2<f32>,
    labels: &[i64],
) -> Result<(f64, Array2<f32>), BackendError> {
    let (n, classes) = outputs.dim();
    let mut grad = Array2::<f32>::zeros((n, classes));
    let mut total = 0.0_f64;
    for (i, (row, &label)) in outputs.outer_iter().zip(labels).enumerate() {
        let class = usize::try_from(label)
            .ok()
            .filter(|&c| c < classes)
            .ok_or_else(|| BackendError::Target {
                problem: format!(
                    "class label {label} of sample {i} is outside 0..{classes}; fix the labels \
                     or raise the number of classes"
                ),
            })?;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f64> = row.iter().map(|&z| f64::from(z - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        total += sum.ln() - f64::from(row[class] - max);
        for (c, e) in exp.iter().enumerate() {
            let p = e / sum;
            let onehot = if c == class { 1.0 } else { 0.0 };
            grad[[i, c]] = ((p - onehot) / n as f64) as f32;
        }
    }
    Ok((total / n.max(1) as f64, grad))
}

fn field<'a>(batch: &'a Batch, name: &str) -> Result<&'a BatchField, BackendError> {
    batch.get(name).ok_or_else(|| BackendError::MissingField {
        field: name.to_owned(),
        available: batch.names().map(str::to_owned).collect(),
    })
}

fn kind_error(name: &str, expected: &'static str, found: &BatchField) -> BackendError {
    BackendError::FieldKind {
        field: name.to_owned(),
        expected,
        found: match found {
            BatchField::F32(_) => "f32",
            BatchField::I64(_) => "i64",
            BatchField::Text(_) => "text",
        },
    }
}

impl Network for LinearNetwork {
    fn train_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        let x = self.input(batch)?;
        let outputs = self.forward(&x);
        let (loss, grad) = self.loss(batch, &outputs)?;

        let grad_weight = grad.t().dot(&x);
        let grad_bias = grad.sum_axis(Axis(0));
        let (momentum, lr) = (self.momentum, self.lr as f32);
        self.velocity_weight
            .zip_mut_with(&grad_weight, |v, &g| *v = momentum * *v + g);
        self.velocity_bias
            .zip_mut_with(&grad_bias, |v, &g| *v = momentum * *v + g);
        self.weight
            .zip_mut_with(&self.velocity_weight, |w, &v| *w -= lr * v);
        self.bias
            .zip_mut_with(&self.velocity_bias, |b, &v| *b -= lr * v);
        self.steps += 1;
        Ok(self.step_output(Some(loss), outputs))
    }

    fn eval_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        let x = self.input(batch)?;
        let outputs = self.forward(&x);
        let loss = match batch.get(&self.target) {
            Some(_) => Some(self.loss(batch, &outputs)?.0),
            None => None,
        };
        Ok(self.step_output(loss, outputs))
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn export_state(&self) -> Result<State, BackendError> {
        let mut state = State::new();
        state.insert("weight", self.weight.clone().into_dyn());
        state.insert("bias", self.bias.clone().into_dyn());
        state.insert("momentum.weight", self.velocity_weight.clone().into_dyn());
        state.insert("momentum.bias", self.velocity_bias.clone().into_dyn());
        state.insert("steps", ArrayD::from_elem(vec![], self.steps));
        state.insert("lr", ArrayD::from_elem(vec![], self.lr));
        Ok(state)
    }

    fn import_state(&mut self, state: &State) -> Result<(), BackendError> {
        self.export_state()?.check(state)?;
        let f32_2 = |name: &str| -> Result<Array2<f32>, BackendError> {
            state
                .f32(name)
                .and_then(|a| a.clone().into_dimensionality::<Ix2>().ok())
                .ok_or_else(|| missing(name))
        };
        let f32_1 = |name: &str| -> Result<Array1<f32>, BackendError> {
            state
                .f32(name)
                .and_then(|a| a.clone().into_dimensionality::<Ix1>().ok())
                .ok_or_else(|| missing(name))
        };
        let weight = f32_2("weight")?;
        let bias = f32_1("bias")?;
        let velocity_weight = f32_2("momentum.weight")?;
        let velocity_bias = f32_1("momentum.bias")?;
        let steps = state
            .i64("steps")
            .and_then(|a| a.iter().next().copied())
            .ok_or_else(|| missing("steps"))?;
        let lr = state
            .f64("lr")
            .and_then(|a| a.iter().next().copied())
            .ok_or_else(|| missing("lr"))?;

        (self.weight, self.bias) = (weight, bias);
        (self.velocity_weight, self.velocity_bias) = (velocity_weight, velocity_bias);
        (self.steps, self.lr) = (steps, lr);
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    fn device(&self) -> Device {
        Device::Cpu
    }
}

fn missing(name: &str) -> BackendError {
    BackendError::Format {
        origin: "linear network state".to_owned(),
        problem: format!("entry `{name}` is missing or has the wrong shape"),
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, arr0};

    use super::*;
    use crate::data::Record;

    fn batch(rows: &[([f32; 2], i64)]) -> Batch {
        Batch::collate(rows.iter().map(|(x, y)| {
            Record::new()
                .with("x", ArrayD::from_shape_vec(vec![2], x.to_vec()).unwrap())
                .with("y", arr0(*y).into_dyn())
        }))
        .unwrap()
    }

    #[test]
    fn one_step_matches_the_hand_computed_gradient() {
        let mut net = LinearNetwork::classifier(2, 2, 0).with_sgd(1.0, 0.0);
        net.weight.fill(0.0);
        let out = net.train_step(&batch(&[([1.0, 2.0], 1)])).unwrap();
        // Zero weights: p = [0.5, 0.5], loss ln 2, gradient (p - onehot) x = [0.5, -0.5] x.
        assert!((out.loss().unwrap() - std::f64::consts::LN_2).abs() < 1e-12);
        assert_eq!(net.weight, ndarray::array![[-0.5, -1.0], [0.5, 1.0]]);
        assert_eq!(net.bias, ndarray::array![-0.5, 0.5]);
    }

    #[test]
    fn state_round_trips_and_continues_identically() {
        let data = batch(&[([1.0, 2.0], 1), ([0.5, -1.0], 0)]);
        let mut a = LinearNetwork::classifier(2, 2, 3);
        a.train_step(&data).unwrap();
        let mut b = LinearNetwork::classifier(2, 2, 99);
        b.import_state(&a.export_state().unwrap()).unwrap();
        a.train_step(&data).unwrap();
        b.train_step(&data).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_label_out_of_range_names_the_sample() {
        let mut net = LinearNetwork::classifier(2, 2, 0);
        let error = net
            .train_step(&batch(&[([1.0, 2.0], 0), ([1.0, 2.0], 5)]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "class label 5 of sample 1 is outside 0..2; fix the labels or raise the number of \
             classes"
        );
    }
}

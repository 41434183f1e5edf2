//! A model written with `tch::nn`, joined to its optimizer and loss: the step-level trait.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tch::{Tensor, nn};

use super::convert::{f32_tensor, i64_tensor, tensor_to_f32};
use super::declared::{DeclaredModel, ModelSummary};
use super::{Loss, Optimizer, delira_device, native, tch_device};
use crate::backend::{
    BackendError, Device, LossConfig, Network, OptimizerConfig, State, StateArray, StepOutput,
    TOTAL_LOSS,
};
use crate::data::{Batch, BatchField};

/// A network's forward pass, written against `tch`.
///
/// `train` tells layers whose behaviour differs (batch norm, dropout) which mode to use. For a
/// model declared with `#[delira::model(backend = "torch")]`, this is the part written by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no forward pass",
    label = "this model needs `impl TorchModel for {Self}`",
    note = "write `impl delira::backend::torch::TorchModel for {Self} {{ fn forward(&self, \
            input: &Tensor, train: bool) -> Tensor {{ ... }} }}`"
)]
pub trait TorchModel: Send {
    /// The network's output for `input`.
    fn forward(&self, input: &Tensor, train: bool) -> Tensor;
}

/// Which batch fields a network reads and under which name its output is reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields {
    /// The float field fed to the network.
    pub input: String,
    /// The field the loss compares the output with.
    pub target: String,
    /// The name of the output in [`StepOutput::predictions`].
    pub output: String,
}

impl Default for Fields {
    /// `image` in, `label` as the target, `logits` out.
    fn default() -> Self {
        Self {
            input: "image".to_owned(),
            target: "label".to_owned(),
            output: "logits".to_owned(),
        }
    }
}

/// A [`TorchModel`] with its variables, optimizer and loss: a [`Network`].
///
/// State names: `model.<variable>` for every variable of the model (weights and buffers such as
/// batch-norm statistics) and `optimizer.<entry>` for the optimizer (see [`Optimizer`]).
pub struct TorchNetwork<M> {
    vs: nn::VarStore,
    model: M,
    optimizer: Optimizer,
    loss: Loss,
    fields: Fields,
}

impl<M> std::fmt::Debug for TorchNetwork<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchNetwork")
            .field("device", &self.vs.device())
            .field("optimizer", &self.optimizer)
            .field("loss", &self.loss)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl<M: TorchModel> TorchNetwork<M> {
    /// Builds the model's variables on `device` through `build`, and the optimizer over its
    /// trainable variables.
    pub fn new(
        device: Device,
        build: impl FnOnce(&nn::Path<'_>) -> Result<M, BackendError>,
        optimizer: OptimizerConfig,
        loss: LossConfig,
    ) -> Result<Self, BackendError> {
        let vs = nn::VarStore::new(tch_device(device)?);
        let model = build(&vs.root())?;
        let optimizer = Optimizer::for_var_store(optimizer, &vs)?;
        Ok(Self {
            vs,
            model,
            optimizer,
            loss: Loss::new(loss)?,
            fields: Fields::default(),
        })
    }

    /// The network of a model declared with `#[delira::model]`: its layers built from `config`
    /// at the root of a new variable store on `device`, reading and reporting the batch fields
    /// the declaration names.
    pub fn declared(
        device: Device,
        config: &M::Config,
        optimizer: OptimizerConfig,
        loss: LossConfig,
    ) -> Result<Self, BackendError>
    where
        M: DeclaredModel,
    {
        Ok(Self::new(device, |p| M::build(p, config), optimizer, loss)?.with_fields(M::fields()))
    }

    /// The table of the declared model's layers, variables and parameter counts.
    #[must_use]
    pub fn summary(&self) -> ModelSummary
    where
        M: DeclaredModel,
    {
        ModelSummary::of::<M>(&self.vs)
    }

    /// The batch fields the network reads and reports.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The same network reading and reporting other batch fields.
    #[must_use]
    pub fn with_fields(mut self, fields: Fields) -> Self {
        self.fields = fields;
        self
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model's variables.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    fn input(&self, batch: &Batch) -> Result<Tensor, BackendError> {
        match field(batch, &self.fields.input)? {
            BatchField::F32(a) => f32_tensor(a, self.vs.device()),
            other => Err(kind_error(&self.fields.input, "f32", other)),
        }
    }

    fn target(&self, batch: &Batch) -> Result<Tensor, BackendError> {
        let name = &self.fields.target;
        match field(batch, name)? {
            BatchField::I64(a) => i64_tensor(a, self.vs.device()),
            BatchField::F32(a) if !self.loss.takes_class_indices() => {
                f32_tensor(a, self.vs.device())
            }
            other => Err(kind_error(
                name,
                if self.loss.takes_class_indices() {
                    "i64"
                } else {
                    "f32"
                },
                other,
            )),
        }
    }

    /// The forward pass; a panic inside `tch` (a shape the layers cannot take) becomes an error.
    fn forward(&self, input: &Tensor, train: bool) -> Result<Tensor, BackendError> {
        catch_unwind(AssertUnwindSafe(|| self.model.forward(input, train))).map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            BackendError::Native {
                operation: format!(
                    "the forward pass on `{}` of shape {:?}",
                    self.fields.input,
                    input.size()
                ),
                message,
            }
        })
    }

    fn output(
        &self,
        prediction: &Tensor,
        target: Option<&Tensor>,
    ) -> Result<(StepOutput, Option<Tensor>), BackendError> {
        let mut out = StepOutput::default();
        let mut total = None;
        if let Some(target) = target {
            let value = self.loss.compute(prediction, target)?;
            out.losses
                .insert(TOTAL_LOSS.to_owned(), scalar(&value.total)?);
            for (name, term) in &value.terms {
                out.losses.insert((*name).to_owned(), scalar(term)?);
            }
            total = Some(value.total);
        }
        out.predictions
            .insert(self.fields.output.clone(), tensor_to_f32(prediction)?);
        Ok((out, total))
    }
}

fn scalar(t: &Tensor) -> Result<f64, BackendError> {
    t.f_double_value(&[])
        .map_err(native("reading a loss value"))
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

impl<M: TorchModel> Network for TorchNetwork<M> {
    fn train_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        let input = self.input(batch)?;
        let target = self.target(batch)?;
        let prediction = self.forward(&input, true)?;
        let (out, total) = self.output(&prediction, Some(&target))?;
        let total = total.unwrap_or_else(|| unreachable!("a target was given"));
        self.optimizer.zero_grad();
        total.f_backward().map_err(native("the backward pass"))?;
        self.optimizer.step()?;
        Ok(out)
    }

    fn eval_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        let _guard = tch::no_grad_guard();
        let input = self.input(batch)?;
        let target = match batch.get(&self.fields.target) {
            Some(_) => Some(self.target(batch)?),
            None => None,
        };
        let prediction = self.forward(&input, false)?;
        Ok(self.output(&prediction, target.as_ref())?.0)
    }

    fn learning_rate(&self) -> f64 {
        self.optimizer.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.optimizer.set_learning_rate(lr);
    }

    fn export_state(&self) -> Result<State, BackendError> {
        let mut state = State::new();
        state.extend_prefixed("model.", var_store_state(&self.vs)?);
        state.extend_prefixed("optimizer.", self.optimizer.export_state()?);
        Ok(state)
    }

    fn import_state(&mut self, state: &State) -> Result<(), BackendError> {
        self.export_state()?.check(state)?;
        import_var_store_state(&self.vs, &state.with_prefix("model."))?;
        self.optimizer
            .import_state(&state.with_prefix("optimizer."))
    }

    fn parameter_count(&self) -> usize {
        self.vs
            .trainable_variables()
            .iter()
            .map(Tensor::numel)
            .sum()
    }

    fn device(&self) -> Device {
        delira_device(self.vs.device())
    }
}

/// Every variable of `vs` (trainable or not) as `f32`/`i64` arrays under its path name.
pub fn var_store_state(vs: &nn::VarStore) -> Result<State, BackendError> {
    let mut state = State::new();
    for (name, t) in vs.variables() {
        let array = match t.kind() {
            tch::Kind::Int64 | tch::Kind::Int => StateArray::I64(super::tensor_to_i64(&t)?),
            _ => StateArray::F32(tensor_to_f32(&t)?),
        };
        state.insert(name, array);
    }
    Ok(state)
}

/// Copies `state` into the variables of `vs`; checks every entry before changing anything.
pub fn import_var_store_state(vs: &nn::VarStore, state: &State) -> Result<(), BackendError> {
    var_store_state(vs)?.check(state)?;
    let device = vs.device();
    for (name, mut t) in vs.variables() {
        let source = match state.get(&name) {
            Some(StateArray::F32(a)) => f32_tensor(a, device)?,
            Some(StateArray::I64(a)) => i64_tensor(a, device)?,
            _ => unreachable!("checked above"),
        };
        tch::no_grad(|| t.f_copy_(&source)).map_err(native("restoring a variable"))?;
    }
    Ok(())
}

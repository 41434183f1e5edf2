//! Optimizers over tensors we own, so their whole state can be saved and restored.
//!
//! The updates follow PyTorch's `torch.optim` formulas (the single-tensor implementation),
//! operation by operation. Gradients are zeroed rather than dropped between steps, as with
//! PyTorch's `zero_grad(set_to_none=False)`: a parameter that received no gradient in a step is
//! updated with a zero gradient.

use tch::Tensor;

use super::convert::{f32_tensor, tensor_to_f32};
use super::native;
use crate::backend::{
    AdamConfig, AdamWConfig, BackendError, OptimizerConfig, SgdConfig, State, StateArray,
};

/// Moment buffers of one parameter.
struct Slots {
    /// SGD momentum buffer, or Adam's first moment.
    first: Option<Tensor>,
    /// Adam's second moment.
    second: Option<Tensor>,
    /// AMSGrad's running maximum of the second moment.
    max_second: Option<Tensor>,
}

/// An optimizer (SGD, Adam or AdamW) over named parameter tensors.
///
/// State names, relative to the optimizer: `step` (the number of updates made), `lr`, and per
/// parameter `momentum_buffer.<name>` (SGD with momentum) or `exp_avg.<name>`,
/// `exp_avg_sq.<name>` and `max_exp_avg_sq.<name>` (Adam/AdamW, the last with AMSGrad only).
pub struct Optimizer {
    config: OptimizerConfig,
    lr: f64,
    step: i64,
    params: Vec<(String, Tensor)>,
    slots: Vec<Slots>,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("config", &self.config)
            .field("lr", &self.lr)
            .field("step", &self.step)
            .field("params", &self.params.len())
            .finish_non_exhaustive()
    }
}

impl Optimizer {
    /// An optimizer over `params` (shallow handles to the parameters, which must require
    /// gradients), with all moments at zero.
    pub fn new(
        config: OptimizerConfig,
        params: Vec<(String, Tensor)>,
    ) -> Result<Self, BackendError> {
        config.validate()?;
        let zeros = |t: &Tensor| {
            tch::no_grad(|| t.f_zeros_like()).map_err(native("allocating optimizer state"))
        };
        let mut slots = Vec::with_capacity(params.len());
        for (_, p) in &params {
            let slot = match &config {
                OptimizerConfig::Sgd(c) => Slots {
                    first: (c.momentum != 0.0).then(|| zeros(p)).transpose()?,
                    second: None,
                    max_second: None,
                },
                OptimizerConfig::Adam(AdamConfig { amsgrad, .. })
                | OptimizerConfig::AdamW(AdamWConfig { amsgrad, .. }) => Slots {
                    first: Some(zeros(p)?),
                    second: Some(zeros(p)?),
                    max_second: amsgrad.then(|| zeros(p)).transpose()?,
                },
            };
            slots.push(slot);
        }
        Ok(Self {
            lr: config.learning_rate(),
            config,
            step: 0,
            params,
            slots,
        })
    }

    /// An optimizer over the trainable variables of `vs`, in name order.
    pub fn for_var_store(
        config: OptimizerConfig,
        vs: &tch::nn::VarStore,
    ) -> Result<Self, BackendError> {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Self::new(config, params)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The learning rate of the next update.
    #[must_use]
    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate of the next updates.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The number of updates made so far.
    #[must_use]
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Zeroes every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Updates every parameter that has a gradient.
    pub fn step(&mut self) -> Result<(), BackendError> {
        self.step += 1;
        let result = tch::no_grad(|| {
            for ((_, p), slots) in self.params.iter_mut().zip(&mut self.slots) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                match &self.config {
                    OptimizerConfig::Sgd(c) => sgd(c, self.lr, self.step, p, grad, slots)?,
                    OptimizerConfig::Adam(c) => {
                        let hyper = AdamHyper {
                            betas: c.betas,
                            eps: c.eps,
                            weight_decay: c.weight_decay,
                            decoupled: false,
                        };
                        adam(&hyper, self.lr, self.step, p, grad, slots)?;
                    }
                    OptimizerConfig::AdamW(c) => {
                        let hyper = AdamHyper {
                            betas: c.betas,
                            eps: c.eps,
                            weight_decay: c.weight_decay,
                            decoupled: true,
                        };
                        adam(&hyper, self.lr, self.step, p, grad, slots)?;
                    }
                }
            }
            Ok::<(), tch::TchError>(())
        });
        result.map_err(native("the optimizer step"))
    }

    fn slot_tensors(&self) -> impl Iterator<Item = (String, &Tensor)> {
        self.params
            .iter()
            .zip(&self.slots)
            .flat_map(|((name, _), slots)| {
                let (first, second) = match self.config {
                    OptimizerConfig::Sgd(_) => ("momentum_buffer", "exp_avg_sq"),
                    _ => ("exp_avg", "exp_avg_sq"),
                };
                [
                    (first, slots.first.as_ref()),
                    (second, slots.second.as_ref()),
                    ("max_exp_avg_sq", slots.max_second.as_ref()),
                ]
                .into_iter()
                .filter_map(move |(kind, t)| Some((format!("{kind}.{name}"), t?)))
            })
    }

    /// The optimizer's whole state: step counter, learning rate and every moment buffer.
    pub fn export_state(&self) -> Result<State, BackendError> {
        let mut state = State::new();
        state.insert("step", ndarray::arr0(self.step).into_dyn());
        state.insert("lr", ndarray::arr0(self.lr).into_dyn());
        for (name, t) in self.slot_tensors() {
            state.insert(name, tensor_to_f32(t)?);
        }
        Ok(state)
    }

    /// Restores a state from [`Optimizer::export_state`]; checks every entry before changing
    /// anything.
    pub fn import_state(&mut self, state: &State) -> Result<(), BackendError> {
        self.export_state()?.check(state)?;
        for (name, slot) in self.slot_tensors() {
            let Some(StateArray::F32(values)) = state.get(&name) else {
                unreachable!("checked above");
            };
            let source = f32_tensor(values, slot.device())?;
            let mut target = slot.shallow_clone();
            tch::no_grad(|| target.f_copy_(&source))
                .map_err(native("restoring optimizer state"))?;
        }
        if let (Some(step), Some(lr)) = (state.i64("step"), state.f64("lr")) {
            self.step = step.sum();
            self.lr = lr.sum();
        }
        Ok(())
    }
}

/// `torch.optim.SGD`, one parameter.
fn sgd(
    c: &SgdConfig,
    lr: f64,
    step: i64,
    p: &mut Tensor,
    grad: Tensor,
    slots: &mut Slots,
) -> Result<(), tch::TchError> {
    let mut g = grad;
    if c.weight_decay != 0.0 {
        g = g.f_add(&p.f_mul_scalar(c.weight_decay)?)?;
    }
    if let Some(buf) = slots.first.as_mut() {
        if step == 1 {
            buf.f_copy_(&g)?;
        } else {
            let _ = buf.f_mul_scalar_(c.momentum)?;
            let _ = buf.f_add_(&g.f_mul_scalar(1.0 - c.dampening)?)?;
        }
        g = if c.nesterov {
            g.f_add(&buf.f_mul_scalar(c.momentum)?)?
        } else {
            buf.shallow_clone()
        };
    }
    let _ = p.f_sub_(&g.f_mul_scalar(lr)?)?;
    Ok(())
}

struct AdamHyper {
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
}

/// `torch.optim.Adam` / `torch.optim.AdamW`, one parameter.
fn adam(
    h: &AdamHyper,
    lr: f64,
    step: i64,
    p: &mut Tensor,
    grad: Tensor,
    slots: &mut Slots,
) -> Result<(), tch::TchError> {
    let (beta1, beta2) = h.betas;
    let mut g = grad;
    if h.weight_decay != 0.0 {
        if h.decoupled {
            let _ = p.f_mul_scalar_(1.0 - lr * h.weight_decay)?;
        } else {
            g = g.f_add(&p.f_mul_scalar(h.weight_decay)?)?;
        }
    }
    let (Some(m), Some(v)) = (slots.first.as_mut(), slots.second.as_mut()) else {
        unreachable!("adam slots are allocated at construction");
    };
    let _ = m.f_lerp_(&g, 1.0 - beta1)?;
    let _ = v.f_mul_scalar_(beta2)?;
    let _ = v.f_add_(&g.f_mul(&g)?.f_mul_scalar(1.0 - beta2)?)?;

    // As in PyTorch, the bias corrections are computed in double precision (`beta ** step`).
    let bias_correction1 = 1.0 - beta1.powf(step as f64);
    let bias_correction2_sqrt = (1.0 - beta2.powf(step as f64)).sqrt();
    let step_size = lr / bias_correction1;
    let second = match slots.max_second.as_mut() {
        Some(max) => {
            let larger = max.f_maximum(v)?;
            max.f_copy_(&larger)?;
            max.shallow_clone()
        }
        None => v.shallow_clone(),
    };
    let denom = second
        .f_sqrt()?
        .f_div_scalar(bias_correction2_sqrt)?
        .f_add_scalar(h.eps)?;
    let _ = p.f_sub_(&m.f_div(&denom)?.f_mul_scalar(step_size)?)?;
    Ok(())
}

//! Learning-rate schedules with PyTorch's semantics.
//!
//! A [`Schedule`] is built from a serialisable [`ScheduleConfig`] and the optimizer's base
//! learning rate. The trainer calls [`Schedule::step_epoch`] after every epoch and
//! [`Schedule::step_iteration`] after every optimizer step; each schedule reacts to the one it is
//! defined on (one-cycle per iteration, all others per epoch) and ignores the other, and
//! [`Schedule::lr`] is the learning rate to use next. [`Schedule::state`] and
//! [`Schedule::load_state`] carry its counters through a checkpoint.
//!
//! The curves follow `torch.optim.lr_scheduler` (PyTorch 2.x): `StepLR`, `MultiStepLR`,
//! `ExponentialLR`, `CosineAnnealingLR`, `CosineAnnealingWarmRestarts`, `OneCycleLR`
//! (`anneal_strategy="cos"`), `LinearLR` followed by another schedule as `SequentialLR` does, and
//! `ReduceLROnPlateau`. Where PyTorch evaluates a recurrence whose closed form is documented,
//! this module evaluates the closed form; the two agree to rounding (tests hold them to 1e-12).
//! One-cycle's momentum cycling belongs to the optimizer and is not part of this module.
//!
//! ```
//! use delira::training::schedule::{Schedule, ScheduleConfig};
//!
//! let config: ScheduleConfig =
//!     serde_json::from_str(r#"{"kind": "step", "step_size": 2, "gamma": 0.5}"#).unwrap();
//! let mut schedule = Schedule::new(config, 0.1).unwrap();
//! let mut lrs = vec![schedule.lr()];
//! for _ in 0..4 {
//!     lrs.push(schedule.step_epoch(None).unwrap());
//! }
//! assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.025]);
//! ```

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::monitor::Mode;

/// Why a schedule could not be built, stepped or restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A configuration value breaks its rule.
    #[error("schedule `{kind}`: `{key}` = {value} is invalid; {rule}")]
    Invalid {
        /// The schedule kind.
        kind: &'static str,
        /// The offending key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        rule: &'static str,
    },
    /// Reduce-on-plateau was stepped without the monitored value.
    #[error(
        "schedule `reduce_on_plateau` needs the monitored metric at epoch {epoch}; pass it to \
         `step_epoch` (is validation running every epoch?)"
    )]
    MissingMetric {
        /// The epoch being ended.
        epoch: u64,
    },
    /// One-cycle was stepped past its total number of steps.
    #[error(
        "schedule `one_cycle` was stepped {steps} times but has {total_steps} total steps; raise \
         `total_steps` to epochs × batches per epoch"
    )]
    PastEnd {
        /// Steps taken, this one included.
        steps: u64,
        /// The configured total.
        total_steps: u64,
    },
    /// A saved state belongs to a different schedule.
    #[error("saved schedule state is for `{saved}` but the schedule is `{current}`")]
    StateMismatch {
        /// The kind in the saved state.
        saved: String,
        /// The kind of this schedule.
        current: String,
    },
}

/// Whether reduce-on-plateau's threshold is relative to the best value or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Better means beyond `best * (1 ∓ threshold)`.
    #[default]
    Rel,
    /// Better means beyond `best ∓ threshold`.
    Abs,
}

/// A learning-rate schedule, as written in an experiment's configuration.
///
/// Defaults are PyTorch's. Unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ScheduleConfig {
    /// The base learning rate throughout.
    Constant,
    /// `base · gamma^⌊epoch / step_size⌋` (`StepLR`).
    Step {
        /// Epochs between decays.
        step_size: u64,
        /// Decay factor (default 0.1).
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `base · gamma^(number of milestones ≤ epoch)` (`MultiStepLR`).
    MultiStep {
        /// Epochs at which to decay, increasing.
        milestones: Vec<u64>,
        /// Decay factor (default 0.1).
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `base · gamma^epoch` (`ExponentialLR`).
    Exponential {
        /// Decay factor per epoch.
        gamma: f64,
    },
    /// `eta_min + (base − eta_min)(1 + cos(π·epoch / t_max)) / 2` (`CosineAnnealingLR`).
    CosineAnnealing {
        /// Half period in epochs.
        t_max: u64,
        /// Lowest learning rate (default 0).
        #[serde(default)]
        eta_min: f64,
    },
    /// Cosine annealing restarted after `t_0` epochs, the period growing by `t_mult` at each
    /// restart (`CosineAnnealingWarmRestarts`).
    CosineWarmRestarts {
        /// Epochs until the first restart.
        t_0: u64,
        /// Growth factor of the period (default 1).
        #[serde(default = "default_t_mult")]
        t_mult: u64,
        /// Lowest learning rate (default 0).
        #[serde(default)]
        eta_min: f64,
    },
    /// The one-cycle policy, stepped per iteration (`OneCycleLR`, cosine annealing).
    OneCycle {
        /// Peak learning rate.
        max_lr: f64,
        /// Total optimizer steps (epochs × batches per epoch).
        total_steps: u64,
        /// Fraction of steps spent increasing (default 0.3).
        #[serde(default = "default_pct_start")]
        pct_start: f64,
        /// Start at `max_lr / div_factor` (default 25).
        #[serde(default = "default_div_factor")]
        div_factor: f64,
        /// End at `max_lr / div_factor / final_div_factor` (default 1e4).
        #[serde(default = "default_final_div_factor")]
        final_div_factor: f64,
        /// Use three phases (up, down to the start, down to the end) instead of two.
        #[serde(default)]
        three_phase: bool,
    },
    /// A linear factor from `start_factor` to `end_factor` over `epochs` (`LinearLR`), then the
    /// schedule `then` started afresh (`SequentialLR` with one milestone).
    LinearWarmup {
        /// Factor of the base rate at epoch 0 (default 1/3).
        #[serde(default = "default_start_factor")]
        start_factor: f64,
        /// Factor reached after `epochs` (default 1).
        #[serde(default = "default_end_factor")]
        end_factor: f64,
        /// Length of the warm-up in epochs (default 5).
        #[serde(default = "default_warmup_epochs")]
        epochs: u64,
        /// The schedule after the warm-up (default: keep the end factor).
        #[serde(default)]
        then: Option<Box<ScheduleConfig>>,
    },
    /// Multiply the rate by `factor` when the monitored metric has not improved for more than
    /// `patience` epochs (`ReduceLROnPlateau`).
    ReduceOnPlateau {
        /// Direction of improvement (default min).
        #[serde(default = "default_mode")]
        mode: Mode,
        /// Reduction factor, in (0, 1) (default 0.1).
        #[serde(default = "default_gamma")]
        factor: f64,
        /// Epochs without improvement tolerated (default 10).
        #[serde(default = "default_patience")]
        patience: u64,
        /// Improvement threshold (default 1e-4).
        #[serde(default = "default_threshold")]
        threshold: f64,
        /// Relative or absolute threshold (default relative).
        #[serde(default)]
        threshold_mode: ThresholdMode,
        /// Epochs to wait after a reduction before counting again (default 0).
        #[serde(default)]
        cooldown: u64,
        /// Lowest learning rate (default 0).
        #[serde(default)]
        min_lr: f64,
        /// Reductions smaller than this are skipped (default 1e-8).
        #[serde(default = "default_eps")]
        eps: f64,
    },
}

fn default_gamma() -> f64 {
    0.1
}
fn default_t_mult() -> u64 {
    1
}
fn default_pct_start() -> f64 {
    0.3
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}
fn default_start_factor() -> f64 {
    1.0 / 3.0
}
fn default_end_factor() -> f64 {
    1.0
}
fn default_warmup_epochs() -> u64 {
    5
}
fn default_mode() -> Mode {
    Mode::Min
}
fn default_patience() -> u64 {
    10
}
fn default_threshold() -> f64 {
    1e-4
}
fn default_eps() -> f64 {
    1e-8
}

impl ScheduleConfig {
    /// The `kind` tag of this configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Step { .. } => "step",
            Self::MultiStep { .. } => "multi_step",
            Self::Exponential { .. } => "exponential",
            Self::CosineAnnealing { .. } => "cosine_annealing",
            Self::CosineWarmRestarts { .. } => "cosine_warm_restarts",
            Self::OneCycle { .. } => "one_cycle",
            Self::LinearWarmup { .. } => "linear_warmup",
            Self::ReduceOnPlateau { .. } => "reduce_on_plateau",
        }
    }

    fn validate(&self) -> Result<(), ScheduleError> {
        let kind = self.kind();
        let invalid = |key, value: &dyn std::fmt::Display, rule| {
            Err(ScheduleError::Invalid {
                kind,
                key,
                value: value.to_string(),
                rule,
            })
        };
        let positive = "must be greater than 0";
        match self {
            Self::Step { step_size: 0, .. } => invalid("step_size", &0, positive),
            Self::MultiStep { milestones, .. } if milestones.windows(2).any(|w| w[0] >= w[1]) => {
                invalid(
                    "milestones",
                    &format!("{milestones:?}"),
                    "must be strictly increasing",
                )
            }
            Self::CosineAnnealing { t_max: 0, .. } => invalid("t_max", &0, positive),
            Self::CosineWarmRestarts { t_0: 0, .. } => invalid("t_0", &0, positive),
            Self::CosineWarmRestarts { t_mult: 0, .. } => {
                invalid("t_mult", &0, "must be 1 or more")
            }
            Self::OneCycle { total_steps: 0, .. } => invalid("total_steps", &0, positive),
            Self::OneCycle { pct_start, .. } if !(*pct_start > 0.0 && *pct_start < 1.0) => {
                invalid("pct_start", pct_start, "must lie in (0, 1)")
            }
            Self::LinearWarmup { epochs: 0, .. } => invalid("epochs", &0, positive),
            Self::LinearWarmup { start_factor, .. }
                if !(*start_factor > 0.0 && *start_factor <= 1.0) =>
            {
                invalid("start_factor", start_factor, "must lie in (0, 1]")
            }
            Self::LinearWarmup {
                then: Some(then), ..
            } => match **then {
                Self::OneCycle { .. } | Self::LinearWarmup { .. } => invalid(
                    "then",
                    &then.kind(),
                    "must not be `one_cycle` or `linear_warmup`, which warm up by themselves",
                ),
                _ => then.validate(),
            },
            Self::ReduceOnPlateau { factor, .. } if !(*factor > 0.0 && *factor < 1.0) => {
                invalid("factor", factor, "must lie in (0, 1)")
            }
            _ => Ok(()),
        }
    }
}

/// The counters of a schedule, saved in checkpoints.
///
/// Unused fields stay at their defaults for schedules that do not need them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleState {
    /// The schedule's kind, checked on load.
    pub kind: String,
    /// Epochs stepped.
    pub epoch: u64,
    /// Iterations stepped.
    pub iteration: u64,
    /// The current learning rate (reduce-on-plateau only keeps it as state).
    pub lr: f64,
    /// Reduce-on-plateau: the best metric, `None` before the first.
    pub best: Option<f64>,
    /// Reduce-on-plateau: epochs without improvement.
    pub bad_epochs: u64,
    /// Reduce-on-plateau: cooldown epochs left.
    pub cooldown_left: u64,
    /// Warm restarts: epochs since the last restart.
    pub cycle_epoch: u64,
    /// Warm restarts: the current period.
    pub cycle_length: u64,
    /// Warm-up: the state of the schedule that follows.
    pub then: Option<Box<ScheduleState>>,
}

/// A learning-rate schedule in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    config: ScheduleConfig,
    base_lr: f64,
    state: ScheduleState,
    then: Option<Box<Schedule>>,
}

impl Schedule {
    /// A schedule at epoch 0 for an optimizer whose base learning rate is `base_lr`
    /// (one-cycle derives its own rates from `max_lr`).
    pub fn new(config: ScheduleConfig, base_lr: f64) -> Result<Self, ScheduleError> {
        config.validate()?;
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            return Err(ScheduleError::Invalid {
                kind: config.kind(),
                key: "base_lr",
                value: base_lr.to_string(),
                rule: "must be finite and not negative",
            });
        }
        let then = match &config {
            ScheduleConfig::LinearWarmup {
                then, end_factor, ..
            } => {
                let next = then.as_deref().cloned().unwrap_or(ScheduleConfig::Constant);
                let next_base = if then.is_some() {
                    base_lr
                } else {
                    base_lr * end_factor
                };
                Some(Box::new(Self::new(next, next_base)?))
            }
            _ => None,
        };
        let cycle_length = match config {
            ScheduleConfig::CosineWarmRestarts { t_0, .. } => t_0,
            _ => 0,
        };
        let state = ScheduleState {
            kind: config.kind().to_owned(),
            lr: base_lr,
            cycle_length,
            then: then.as_ref().map(|t| Box::new(t.state())),
            ..ScheduleState::default()
        };
        Ok(Self {
            config,
            base_lr,
            state,
            then,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// Whether the schedule advances per iteration rather than per epoch.
    pub fn per_iteration(&self) -> bool {
        matches!(self.config, ScheduleConfig::OneCycle { .. })
    }

    /// The learning rate to use now.
    pub fn lr(&self) -> f64 {
        let base = self.base_lr;
        let epoch = self.state.epoch;
        match &self.config {
            ScheduleConfig::Constant => base,
            ScheduleConfig::Step { step_size, gamma } => base * powu(*gamma, epoch / step_size),
            ScheduleConfig::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= epoch).count() as u64;
                base * powu(*gamma, passed)
            }
            ScheduleConfig::Exponential { gamma } => base * powu(*gamma, epoch),
            ScheduleConfig::CosineAnnealing { t_max, eta_min } => {
                cosine(base, *eta_min, epoch as f64 / *t_max as f64)
            }
            ScheduleConfig::CosineWarmRestarts { eta_min, .. } => cosine(
                base,
                *eta_min,
                self.state.cycle_epoch as f64 / self.state.cycle_length as f64,
            ),
            ScheduleConfig::OneCycle { .. } => self.one_cycle_lr(),
            ScheduleConfig::LinearWarmup {
                start_factor,
                end_factor,
                epochs,
                ..
            } => {
                if epoch < *epochs {
                    let progress = epoch as f64 / *epochs as f64;
                    base * (start_factor + (end_factor - start_factor) * progress)
                } else {
                    self.then.as_ref().map_or(base, |then| then.lr())
                }
            }
            ScheduleConfig::ReduceOnPlateau { .. } => self.state.lr,
        }
    }

    /// Ends an epoch; `monitored` is the monitored metric of this epoch (needed by
    /// reduce-on-plateau, ignored by the others). Returns the learning rate for the next epoch.
    pub fn step_epoch(&mut self, monitored: Option<f64>) -> Result<f64, ScheduleError> {
        if self.per_iteration() {
            return Ok(self.lr());
        }
        if let ScheduleConfig::ReduceOnPlateau { .. } = self.config {
            let value = monitored.ok_or(ScheduleError::MissingMetric {
                epoch: self.state.epoch,
            })?;
            self.plateau_step(value);
        }
        self.state.epoch += 1;
        if let ScheduleConfig::CosineWarmRestarts { t_mult, .. } = self.config {
            self.state.cycle_epoch += 1;
            if self.state.cycle_epoch >= self.state.cycle_length {
                self.state.cycle_epoch -= self.state.cycle_length;
                self.state.cycle_length *= t_mult;
            }
        }
        if let ScheduleConfig::LinearWarmup { epochs, .. } = self.config
            && self.state.epoch > epochs
            && let Some(then) = self.then.as_mut()
        {
            then.step_epoch(monitored)?;
            self.state.then = Some(Box::new(then.state()));
        }
        Ok(self.lr())
    }

    /// Ends an optimizer step. Returns the learning rate for the next step.
    pub fn step_iteration(&mut self) -> Result<f64, ScheduleError> {
        if let ScheduleConfig::OneCycle { total_steps, .. } = self.config {
            let steps = self.state.iteration + 1;
            // PyTorch lets the step count reach `total_steps` (the rate is then past the end of
            // the curve) and refuses the step after it.
            if steps > total_steps {
                return Err(ScheduleError::PastEnd { steps, total_steps });
            }
            self.state.iteration = steps;
        }
        Ok(self.lr())
    }

    /// The counters to save.
    pub fn state(&self) -> ScheduleState {
        let mut state = self.state.clone();
        state.lr = self.lr();
        state
    }

    /// Restores counters saved by [`Schedule::state`] from a schedule of the same kind.
    pub fn load_state(&mut self, state: ScheduleState) -> Result<(), ScheduleError> {
        if state.kind != self.config.kind() {
            return Err(ScheduleError::StateMismatch {
                saved: state.kind,
                current: self.config.kind().to_owned(),
            });
        }
        if let (Some(then), Some(saved)) = (self.then.as_mut(), state.then.clone()) {
            then.load_state(*saved)?;
        }
        self.state = state;
        Ok(())
    }

    fn plateau_step(&mut self, value: f64) {
        let ScheduleConfig::ReduceOnPlateau {
            mode,
            factor,
            patience,
            threshold,
            threshold_mode,
            cooldown,
            min_lr,
            eps,
        } = self.config
        else {
            return;
        };
        let state = &mut self.state;
        let better = match state.best {
            // PyTorch starts from ±inf, which any finite value beats.
            None => !value.is_nan(),
            Some(best) => match (mode, threshold_mode) {
                (Mode::Min, ThresholdMode::Rel) => value < best * (1.0 - threshold),
                (Mode::Min, ThresholdMode::Abs) => value < best - threshold,
                (Mode::Max, ThresholdMode::Rel) => value > best * (threshold + 1.0),
                (Mode::Max, ThresholdMode::Abs) => value > best + threshold,
            },
        };
        if better {
            state.best = Some(value);
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
        }
        if state.cooldown_left > 0 {
            state.cooldown_left -= 1;
            state.bad_epochs = 0;
        }
        if state.bad_epochs > patience {
            let reduced = (state.lr * factor).max(min_lr);
            if state.lr - reduced > eps {
                state.lr = reduced;
            }
            state.cooldown_left = cooldown;
            state.bad_epochs = 0;
        }
    }

    fn one_cycle_lr(&self) -> f64 {
        let ScheduleConfig::OneCycle {
            max_lr,
            total_steps,
            pct_start,
            div_factor,
            final_div_factor,
            three_phase,
        } = self.config
        else {
            return self.base_lr;
        };
        let initial = max_lr / div_factor;
        let minimum = initial / final_div_factor;
        let total = total_steps as f64;
        let phases: Vec<(f64, f64, f64)> = if three_phase {
            vec![
                (pct_start * total - 1.0, initial, max_lr),
                (2.0 * pct_start * total - 2.0, max_lr, initial),
                (total - 1.0, initial, minimum),
            ]
        } else {
            vec![
                (pct_start * total - 1.0, initial, max_lr),
                (total - 1.0, max_lr, minimum),
            ]
        };

        let step = self.state.iteration as f64;
        let mut start_step = 0.0;
        for (i, &(end_step, start_lr, end_lr)) in phases.iter().enumerate() {
            if step <= end_step || i + 1 == phases.len() {
                let pct = (step - start_step) / (end_step - start_step);
                return end_lr + (start_lr - end_lr) / 2.0 * ((PI * pct).cos() + 1.0);
            }
            start_step = end_step;
        }
        minimum
    }
}

fn cosine(base: f64, eta_min: f64, fraction: f64) -> f64 {
    eta_min + (base - eta_min) * (1.0 + (PI * fraction).cos()) / 2.0
}

fn powu(base: f64, exponent: u64) -> f64 {
    base.powi(i32::try_from(exponent).unwrap_or(i32::MAX))
}

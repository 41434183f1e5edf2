//! Optimizers and losses, named generically; each backend implements them.
//!
//! Every configuration deserialises from the experiment file (unknown keys rejected, missing keys
//! take the PyTorch defaults) and is built in code with a builder.

use serde::{Deserialize, Serialize};
use typed_builder::TypedBuilder;

use super::error::BackendError;

/// An optimizer and its hyper-parameters. Updates follow PyTorch's formulas exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent, optionally with (Nesterov) momentum and weight decay.
    Sgd(SgdConfig),
    /// Adam, with L2 weight decay added to the gradient.
    Adam(AdamConfig),
    /// Adam with decoupled weight decay.
    #[serde(rename = "adamw")]
    AdamW(AdamWConfig),
}

/// Stochastic gradient descent (`torch.optim.SGD`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// The learning rate.
    #[builder(default = 1e-3)]
    pub lr: f64,
    /// The momentum factor; 0 for plain gradient descent.
    #[builder(default)]
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer.
    #[builder(default)]
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    #[builder(default)]
    pub weight_decay: f64,
    /// Nesterov momentum (needs a positive momentum and zero dampening).
    #[builder(default)]
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// Adam (`torch.optim.Adam`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// The learning rate.
    #[builder(default = 1e-3)]
    pub lr: f64,
    /// Decay rates of the first and second moment estimates.
    #[builder(default = (0.9, 0.999))]
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    #[builder(default = 1e-8)]
    pub eps: f64,
    /// L2 penalty added to the gradient.
    #[builder(default)]
    pub weight_decay: f64,
    /// Use the maximum of past second moments (AMSGrad).
    #[builder(default)]
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// Adam with decoupled weight decay (`torch.optim.AdamW`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// The learning rate.
    #[builder(default = 1e-3)]
    pub lr: f64,
    /// Decay rates of the first and second moment estimates.
    #[builder(default = (0.9, 0.999))]
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    #[builder(default = 1e-8)]
    pub eps: f64,
    /// Decoupled weight decay: each step multiplies the weights by `1 - lr * weight_decay`.
    #[builder(default = 1e-2)]
    pub weight_decay: f64,
    /// Use the maximum of past second moments (AMSGrad).
    #[builder(default)]
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl From<SgdConfig> for OptimizerConfig {
    fn from(c: SgdConfig) -> Self {
        Self::Sgd(c)
    }
}

impl From<AdamConfig> for OptimizerConfig {
    fn from(c: AdamConfig) -> Self {
        Self::Adam(c)
    }
}

impl From<AdamWConfig> for OptimizerConfig {
    fn from(c: AdamWConfig) -> Self {
        Self::AdamW(c)
    }
}

impl OptimizerConfig {
    /// The optimizer's name as written in configurations (`sgd`, `adam`, `adamw`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd(_) => "sgd",
            Self::Adam(_) => "adam",
            Self::AdamW(_) => "adamw",
        }
    }

    /// The configured learning rate.
    #[must_use]
    pub fn learning_rate(&self) -> f64 {
        match self {
            Self::Sgd(c) => c.lr,
            Self::Adam(c) => c.lr,
            Self::AdamW(c) => c.lr,
        }
    }

    /// Checks the ranges PyTorch checks (non-negative rates, betas in `[0, 1)`, Nesterov only with
    /// momentum and no dampening).
    pub fn validate(&self) -> Result<(), BackendError> {
        let what = self.name();
        let fail = |problem: String| Err(BackendError::Config { what, problem });
        let lr = self.learning_rate();
        if !(lr >= 0.0 && lr.is_finite()) {
            return fail(format!(
                "learning rate {lr} must be finite and non-negative"
            ));
        }
        match self {
            Self::Sgd(c) => {
                if c.momentum < 0.0 || c.weight_decay < 0.0 || c.dampening < 0.0 {
                    return fail(format!(
                        "momentum {}, dampening {} and weight decay {} must be non-negative",
                        c.momentum, c.dampening, c.weight_decay
                    ));
                }
                if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
                    return fail(format!(
                        "nesterov needs a positive momentum and zero dampening, got momentum {} \
                         and dampening {}",
                        c.momentum, c.dampening
                    ));
                }
            }
            Self::Adam(AdamConfig {
                betas,
                eps,
                weight_decay,
                ..
            })
            | Self::AdamW(AdamWConfig {
                betas,
                eps,
                weight_decay,
                ..
            }) => {
                for beta in [betas.0, betas.1] {
                    if !(0.0..1.0).contains(&beta) {
                        return fail(format!("beta {beta} must lie in [0, 1)"));
                    }
                }
                if *eps < 0.0 || *weight_decay < 0.0 {
                    return fail(format!(
                        "eps {eps} and weight decay {weight_decay} must be non-negative"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A loss and its parameters.
///
/// Classification and segmentation losses take logits `[N, C, ...]` and class indices
/// `[N, ...]` (`i64`); `bce_with_logits`, `mse` and `l1` take a float target of the prediction's
/// shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LossConfig {
    /// Softmax cross-entropy, optionally class-weighted, with an index to ignore.
    CrossEntropy(CrossEntropyConfig),
    /// Sigmoid binary cross-entropy on logits.
    BceWithLogits(BceWithLogitsConfig),
    /// Soft Dice loss over softmax probabilities, `1 - mean over classes of the Dice score`.
    Dice(DiceConfig),
    /// Dice loss plus cross-entropy, weighted.
    DiceCe(DiceCeConfig),
    /// Focal loss (Lin et al. 2017) over softmax probabilities.
    Focal(FocalConfig),
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    L1,
}

/// Cross-entropy (`torch.nn.CrossEntropyLoss` with mean reduction).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(default, deny_unknown_fields)]
pub struct CrossEntropyConfig {
    /// One weight per class; the mean is weighted by the target's class weights.
    #[builder(default, setter(strip_option))]
    pub weights: Option<Vec<f64>>,
    /// A target value that contributes neither to the loss nor to the mean.
    #[builder(default, setter(strip_option))]
    pub ignore_index: Option<i64>,
}

/// Binary cross-entropy on logits (`torch.nn.BCEWithLogitsLoss` with mean reduction).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(default, deny_unknown_fields)]
pub struct BceWithLogitsConfig {
    /// Weight of the positive term (`pos_weight`), for unbalanced targets.
    #[builder(default, setter(strip_option))]
    pub pos_weight: Option<f64>,
}

/// Soft Dice loss.
///
/// For each class `c`, with probabilities `p` and one-hot target `t` summed over the batch and all
/// voxels: `dice_c = (2 Σ p t + smooth) / (Σ p + Σ t + smooth)`; the loss is `1 - mean_c dice_c`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(default, deny_unknown_fields)]
pub struct DiceConfig {
    /// Added to numerator and denominator; keeps classes absent from both finite.
    #[builder(default = 1e-5)]
    pub smooth: f64,
    /// Whether class 0 takes part in the mean.
    #[builder(default = true)]
    pub include_background: bool,
}

impl Default for DiceConfig {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// Dice plus cross-entropy: `dice_weight * dice + ce_weight * cross_entropy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(default, deny_unknown_fields)]
pub struct DiceCeConfig {
    /// Dice smoothing, see [`DiceConfig::smooth`].
    #[builder(default = 1e-5)]
    pub smooth: f64,
    /// Whether class 0 takes part in the Dice mean.
    #[builder(default = true)]
    pub include_background: bool,
    /// Weight of the Dice term.
    #[builder(default = 1.0)]
    pub dice_weight: f64,
    /// Weight of the cross-entropy term.
    #[builder(default = 1.0)]
    pub ce_weight: f64,
    /// Class weights of the cross-entropy term.
    #[builder(default, setter(strip_option))]
    pub weights: Option<Vec<f64>>,
}

impl Default for DiceCeConfig {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// Focal loss: `-alpha_t (1 - p_t)^gamma log p_t`, averaged over all elements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(default, deny_unknown_fields)]
pub struct FocalConfig {
    /// The focusing parameter; 0 gives cross-entropy.
    #[builder(default = 2.0)]
    pub gamma: f64,
    /// One weight per class (`alpha_t` is the target class's); none weighs all classes 1.
    #[builder(default, setter(strip_option))]
    pub alpha: Option<Vec<f64>>,
}

impl Default for FocalConfig {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl LossConfig {
    /// The loss's name as written in configurations.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::CrossEntropy(_) => "cross_entropy",
            Self::BceWithLogits(_) => "bce_with_logits",
            Self::Dice(_) => "dice",
            Self::DiceCe(_) => "dice_ce",
            Self::Focal(_) => "focal",
            Self::Mse => "mse",
            Self::L1 => "l1",
        }
    }

    /// Checks parameter ranges; `classes` (when known) is checked against per-class weights.
    pub fn validate(&self, classes: Option<usize>) -> Result<(), BackendError> {
        let what = self.name();
        let fail = |problem: String| Err(BackendError::Config { what, problem });
        let weights = match self {
            Self::CrossEntropy(c) => c.weights.as_deref(),
            Self::DiceCe(c) => c.weights.as_deref(),
            Self::Focal(c) => c.alpha.as_deref(),
            _ => None,
        };
        if let Some(w) = weights {
            if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return fail(format!(
                    "class weights {w:?} must be finite and non-negative"
                ));
            }
            if let Some(classes) = classes.filter(|c| *c != w.len()) {
                return fail(format!(
                    "{} class weights given for {classes} classes; give one weight per class",
                    w.len()
                ));
            }
        }
        let smooth = match self {
            Self::Dice(c) => Some(c.smooth),
            Self::DiceCe(c) => Some(c.smooth),
            _ => None,
        };
        if let Some(s) = smooth.filter(|s| !(s.is_finite() && *s >= 0.0)) {
            return fail(format!("smooth {s} must be finite and non-negative"));
        }
        if let Self::Focal(c) = self
            && !(c.gamma.is_finite() && c.gamma >= 0.0)
        {
            return fail(format!("gamma {} must be finite and non-negative", c.gamma));
        }
        Ok(())
    }
}

impl From<CrossEntropyConfig> for LossConfig {
    fn from(c: CrossEntropyConfig) -> Self {
        Self::CrossEntropy(c)
    }
}

impl From<BceWithLogitsConfig> for LossConfig {
    fn from(c: BceWithLogitsConfig) -> Self {
        Self::BceWithLogits(c)
    }
}

impl From<DiceConfig> for LossConfig {
    fn from(c: DiceConfig) -> Self {
        Self::Dice(c)
    }
}

impl From<DiceCeConfig> for LossConfig {
    fn from(c: DiceCeConfig) -> Self {
        Self::DiceCe(c)
    }
}

impl From<FocalConfig> for LossConfig {
    fn from(c: FocalConfig) -> Self {
        Self::Focal(c)
    }
}

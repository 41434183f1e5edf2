//! The losses of [`LossConfig`], written with differentiable tensor operations.

use tch::{Kind, Tensor};

use super::native;
use crate::backend::{
    BackendError, BceWithLogitsConfig, CrossEntropyConfig, DiceCeConfig, FocalConfig, LossConfig,
};

/// A configured loss.
///
/// ```no_run
/// # // Needs libtorch at run time.
/// use delira::backend::torch::{Loss, tch::{Kind, Tensor}};
/// use delira::backend::LossConfig;
///
/// let loss = Loss::new(LossConfig::Mse).unwrap();
/// let value = loss
///     .compute(&Tensor::from_slice(&[1.0_f32, 3.0]), &Tensor::from_slice(&[0.0_f32, 1.0]))
///     .unwrap();
/// assert_eq!(value.total.double_value(&[]), 2.5);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    config: LossConfig,
}

/// A computed loss: the total to optimise and, for composite losses, its terms.
#[derive(Debug)]
pub struct LossValue {
    /// The scalar to differentiate.
    pub total: Tensor,
    /// Named terms (unweighted), for logging; empty for a single-term loss.
    pub terms: Vec<(&'static str, Tensor)>,
}

impl Loss {
    /// Checks the configuration and builds the loss.
    pub fn new(config: LossConfig) -> Result<Self, BackendError> {
        config.validate(None)?;
        Ok(Self { config })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &LossConfig {
        &self.config
    }

    /// Whether the target holds class indices (`i64`) rather than values of the prediction's
    /// shape.
    #[must_use]
    pub fn takes_class_indices(&self) -> bool {
        matches!(
            self.config,
            LossConfig::CrossEntropy(_)
                | LossConfig::Dice(_)
                | LossConfig::DiceCe(_)
                | LossConfig::Focal(_)
        )
    }

    /// The loss of `prediction` against `target`.
    ///
    /// Class-index losses take logits `[N, C, ...]` and an integer target `[N, ...]` (or
    /// `[N, 1, ...]`); the others a float target of the prediction's shape.
    pub fn compute(&self, prediction: &Tensor, target: &Tensor) -> Result<LossValue, BackendError> {
        let single = |total| LossValue {
            total,
            terms: Vec::new(),
        };
        if !self.takes_class_indices() {
            let target = target
                .f_to_kind(prediction.kind())
                .map_err(native("converting the target"))?;
            same_shape(prediction, &target)?;
            let diff = prediction - &target;
            return Ok(single(match &self.config {
                LossConfig::BceWithLogits(c) => bce_with_logits(c, prediction, &target),
                LossConfig::Mse => diff.square().mean(None),
                _ => diff.abs().mean(None),
            }));
        }

        let classes = class_count(prediction)?;
        self.config.validate(Some(classes))?;
        let target = class_target(prediction, target, classes)?;
        check_classes(&target, classes, ignore_index(&self.config))?;
        Ok(match &self.config {
            LossConfig::CrossEntropy(c) => single(cross_entropy(c, prediction, &target)),
            LossConfig::Dice(c) => {
                single(dice(c.smooth, c.include_background, prediction, &target))
            }
            LossConfig::DiceCe(c) => dice_ce(c, prediction, &target),
            LossConfig::Focal(c) => single(focal(c, prediction, &target)),
            _ => unreachable!("class-index losses are matched above"),
        })
    }
}

fn ignore_index(config: &LossConfig) -> Option<i64> {
    match config {
        LossConfig::CrossEntropy(c) => c.ignore_index,
        _ => None,
    }
}

fn shape_of(t: &Tensor) -> Vec<usize> {
    t.size().iter().map(|&d| d as usize).collect()
}

fn same_shape(prediction: &Tensor, target: &Tensor) -> Result<(), BackendError> {
    if prediction.size() == target.size() {
        Ok(())
    } else {
        Err(BackendError::Shape {
            field: "target".to_owned(),
            found: shape_of(target),
            expected: format!(
                "the loss needs the prediction's shape {:?}",
                shape_of(prediction)
            ),
        })
    }
}

fn class_count(prediction: &Tensor) -> Result<usize, BackendError> {
    let size = prediction.size();
    if size.len() < 2 || size[1] < 1 {
        return Err(BackendError::Shape {
            field: "prediction".to_owned(),
            found: shape_of(prediction),
            expected: "a class-index loss needs logits of shape [batch, classes, ...]".to_owned(),
        });
    }
    Ok(size[1] as usize)
}

/// The target as `[N, ...]` integers matching the prediction's batch and spatial axes.
fn class_target(
    prediction: &Tensor,
    target: &Tensor,
    classes: usize,
) -> Result<Tensor, BackendError> {
    let size = prediction.size();
    let mut expected = size.clone();
    expected.remove(1);
    let mut t = target.shallow_clone();
    let tsize = t.size();
    if tsize.len() == size.len() && tsize.get(1) == Some(&1) {
        t = t.squeeze_dim(1);
    }
    if t.size() != expected {
        return Err(BackendError::Shape {
            field: "target".to_owned(),
            found: shape_of(target),
            expected: format!(
                "logits of shape {:?} ({classes} classes) need class indices of shape {expected:?}",
                shape_of(prediction)
            ),
        });
    }
    t.f_to_kind(Kind::Int64)
        .map_err(native("converting the target to class indices"))
}

fn check_classes(target: &Tensor, classes: usize, ignore: Option<i64>) -> Result<(), BackendError> {
    let valid = match ignore {
        Some(i) => target.ne(i),
        None => target.ones_like().to_kind(Kind::Bool),
    };
    let out_of_range = (target.lt(0).logical_or(&target.ge(classes as i64))).logical_and(&valid);
    if out_of_range.any().int64_value(&[]) == 0 {
        return Ok(());
    }
    let bad = target.masked_select(&out_of_range).int64_value(&[0]);
    Err(BackendError::Target {
        problem: format!(
            "the target holds class {bad} but the prediction has {classes} classes (0 to {}); \
             check the label map or the network's number of classes",
            classes - 1
        ),
    })
}

fn weight_tensor(weights: &[f64], like: &Tensor) -> Tensor {
    Tensor::from_slice(weights)
        .to_kind(like.kind())
        .to_device(like.device())
}

/// `torch.nn.functional.cross_entropy` with class weights and an ignored index, mean reduction.
fn cross_entropy(c: &CrossEntropyConfig, logits: &Tensor, target: &Tensor) -> Tensor {
    let log_probs = logits.log_softmax(1, logits.kind());
    let valid = match c.ignore_index {
        Some(i) => target.ne(i),
        None => target.ones_like().to_kind(Kind::Bool),
    };
    let safe = target.where_scalarother(&valid, 0);
    let picked = log_probs
        .gather(1, &safe.unsqueeze(1), false)
        .squeeze_dim(1);
    let mut weight = valid.to_kind(logits.kind());
    if let Some(w) = &c.weights {
        weight *= weight_tensor(w, logits)
            .index_select(0, &safe.flatten(0, -1))
            .view_as(&safe);
    }
    -(picked * &weight).sum(logits.kind()) / weight.sum(logits.kind())
}

/// `torch.nn.BCEWithLogitsLoss`, mean reduction, optional `pos_weight`.
fn bce_with_logits(c: &BceWithLogitsConfig, logits: &Tensor, target: &Tensor) -> Tensor {
    // log(1 + exp(-x)) computed stably; the positive term weighted by pos_weight.
    let softplus_neg = (-logits).softplus();
    let positive_weight = match c.pos_weight {
        Some(w) => target * (w - 1.0) + 1.0,
        None => target.ones_like(),
    };
    ((target.ones_like() - target) * logits + positive_weight * softplus_neg).mean(None)
}

fn one_hot(target: &Tensor, like: &Tensor) -> Tensor {
    like.zeros_like()
        .scatter_value(1, &target.unsqueeze(1), 1.0)
}

/// Soft Dice over softmax probabilities, classes' scores averaged.
fn dice(smooth: f64, include_background: bool, logits: &Tensor, target: &Tensor) -> Tensor {
    let probs = logits.softmax(1, logits.kind());
    let truth = one_hot(target, &probs);
    let axes: Vec<i64> = (0..logits.dim() as i64).filter(|&a| a != 1).collect();
    let intersection = (&probs * &truth).sum_dim_intlist(axes.as_slice(), false, logits.kind());
    let total = probs.sum_dim_intlist(axes.as_slice(), false, logits.kind())
        + truth.sum_dim_intlist(axes.as_slice(), false, logits.kind());
    let score = (intersection * 2.0 + smooth) / (total + smooth);
    let classes = score.size()[0];
    let score = if include_background || classes == 1 {
        score
    } else {
        score.narrow(0, 1, classes - 1)
    };
    -score.mean(None) + 1.0
}

fn dice_ce(c: &DiceCeConfig, logits: &Tensor, target: &Tensor) -> LossValue {
    let d = dice(c.smooth, c.include_background, logits, target);
    let ce_config = CrossEntropyConfig {
        weights: c.weights.clone(),
        ignore_index: None,
    };
    let ce = cross_entropy(&ce_config, logits, target);
    LossValue {
        total: &d * c.dice_weight + &ce * c.ce_weight,
        terms: vec![("dice", d), ("cross_entropy", ce)],
    }
}

/// Focal loss over softmax probabilities, mean over all elements.
fn focal(c: &FocalConfig, logits: &Tensor, target: &Tensor) -> Tensor {
    let log_probs = logits.log_softmax(1, logits.kind());
    let log_pt = log_probs
        .gather(1, &target.unsqueeze(1), false)
        .squeeze_dim(1);
    let pt = log_pt.exp();
    let modulating = (-&pt + 1.0).pow_tensor_scalar(c.gamma);
    let mut loss = -(modulating * &log_pt);
    if let Some(alpha) = &c.alpha {
        let alpha_t = weight_tensor(alpha, logits)
            .index_select(0, &target.flatten(0, -1))
            .view_as(target);
        loss *= alpha_t;
    }
    loss.mean(None)
}

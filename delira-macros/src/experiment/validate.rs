//! Every rule of `experiment!{}` in one place: required and repeated keys, the options of each
//! value, and the rules that join keys (early stopping needs a monitor, a monitored validation
//! metric needs a validation part).

use proc_macro2::Span;
use syn::{Expr, Ident, LitInt};

use super::parse::{Call, Field, Input, Monitor, Value};
use crate::diag::Errors;

/// A checked experiment, ready for code generation.
pub struct Experiment {
    pub name: Ident,
    pub backend: String,
    pub data: Expr,
    pub model: Expr,
    pub split: Split,
    pub loader: Vec<Field>,
    pub augment: Option<Expr>,
    pub optimizer: Option<(Ident, Vec<Field>)>,
    pub schedule: Option<Expr>,
    pub loss: Option<(Ident, Vec<Field>)>,
    pub metrics: Vec<Expr>,
    pub monitor: Option<(Ident, String)>,
    pub early_stopping: Option<LitInt>,
    pub epochs: Option<LitInt>,
    pub seed: Option<LitInt>,
    pub checkpoint: Vec<Field>,
    pub sinks: Option<Vec<Ident>>,
    pub test: Option<Expr>,
    pub overfit_steps: Option<Expr>,
    pub overfit_loss: Option<Expr>,
    pub params: Option<Box<syn::Type>>,
    pub fingerprint: Option<Expr>,
    pub predict: Option<Expr>,
}

/// The declared split.
pub struct Split {
    /// `kfold` or `holdout`.
    pub kind: Ident,
    /// `k` (k-fold) or the test fraction (holdout).
    pub size: Option<Expr>,
    pub groups: Option<Expr>,
    pub labels: Option<Expr>,
    pub validation: Option<Expr>,
    pub shuffle: Option<Expr>,
}

#[derive(Default)]
struct Slots {
    name: Option<Ident>,
    backend: Option<Ident>,
    data: Option<Expr>,
    model: Option<Expr>,
    split: Option<Call>,
    loader: Option<Vec<Field>>,
    augment: Option<Expr>,
    optimizer: Option<Call>,
    schedule: Option<Expr>,
    loss: Option<Call>,
    metrics: Option<Vec<Expr>>,
    monitor: Option<Monitor>,
    early_stopping: Option<LitInt>,
    epochs: Option<LitInt>,
    seed: Option<LitInt>,
    checkpoint: Option<Vec<Field>>,
    sinks: Option<Vec<Ident>>,
    test: Option<Expr>,
    overfit: Option<Vec<Field>>,
    params: Option<Box<syn::Type>>,
    fingerprint: Option<Expr>,
    predict: Option<Expr>,
}

impl Slots {
    /// The entries by key; a repeated key is an error.
    fn fill(input: Input, errors: &mut Errors) -> Self {
        let mut s = Self::default();
        for entry in input.entries {
            let key = &entry.key;
            match entry.value {
                Value::Name(v) => put(&mut s.name, key, v, errors),
                Value::Backend(v) => put(&mut s.backend, key, v, errors),
                Value::Data(v) => put(&mut s.data, key, v, errors),
                Value::Model(v) => put(&mut s.model, key, v, errors),
                Value::Split(v) => put(&mut s.split, key, v, errors),
                Value::Loader(v) => put(&mut s.loader, key, v, errors),
                Value::Augment(v) => put(&mut s.augment, key, v, errors),
                Value::Optimizer(v) => put(&mut s.optimizer, key, v, errors),
                Value::Schedule(v) => put(&mut s.schedule, key, v, errors),
                Value::Loss(v) => put(&mut s.loss, key, v, errors),
                Value::Metrics(v) => put(&mut s.metrics, key, v, errors),
                Value::Monitor(v) => put(&mut s.monitor, key, v, errors),
                Value::EarlyStopping(v) => put(&mut s.early_stopping, key, v, errors),
                Value::Epochs(v) => put(&mut s.epochs, key, v, errors),
                Value::Seed(v) => put(&mut s.seed, key, v, errors),
                Value::Checkpoint(v) => put(&mut s.checkpoint, key, v, errors),
                Value::Sinks(v) => put(&mut s.sinks, key, v, errors),
                Value::Test(v) => put(&mut s.test, key, v, errors),
                Value::Overfit(v) => put(&mut s.overfit, key, v, errors),
                Value::Fingerprint(v) => put(&mut s.fingerprint, key, v, errors),
                Value::Predict(v) => put(&mut s.predict, key, v, errors),
                Value::Params(v) => put(&mut s.params, key, v, errors),
            }
        }
        s
    }
}

fn put<T>(slot: &mut Option<T>, key: &Ident, value: T, errors: &mut Errors) {
    if slot.is_some() {
        errors.at(key.span(), format!("`{key}` is given twice; keep one"));
    } else {
        *slot = Some(value);
    }
}

/// Checks the parsed input; `None` when something required is missing or wrong (the errors say
/// what).
pub fn validate(input: Input, errors: &mut Errors) -> Option<Experiment> {
    let s = Slots::fill(input, errors);
    let loader = checked_fields(
        s.loader,
        "loader",
        &["batch_size", "workers", "drop_last"],
        errors,
    );
    let checkpoint = checked_fields(
        s.checkpoint,
        "checkpoint",
        &["every_epochs", "every_steps", "keep_last", "keep_best"],
        errors,
    );
    let overfit = checked_fields(s.overfit, "overfit", &["steps", "loss"], errors);
    let optimizer = s.optimizer.map(|c| named_only(c, "optimizer", errors));
    let loss = s.loss.map(|c| named_only(c, "loss", errors));
    let split = s.split.map(|c| split(c, errors));
    let monitor_declared = s.monitor.is_some();
    let sinks = s.sinks.map(|sinks| unique_sinks(sinks, errors));
    for (key, lit) in [("epochs", &s.epochs), ("early_stopping", &s.early_stopping)] {
        if let Some(lit) = lit
            && lit.base10_parse::<u64>().ok() == Some(0)
        {
            errors.at(lit.span(), format!("`{key}` is 0; give 1 or more"));
        }
    }
    let monitor = s.monitor.and_then(|m| monitor(&m, errors));
    closure_arity(s.fingerprint.as_ref(), "fingerprint", &["data"], errors);
    closure_arity(
        s.predict.as_ref(),
        "predict",
        &["network", "data", "indices", "dir"],
        errors,
    );
    joint_rules(
        s.early_stopping.as_ref(),
        monitor_declared,
        monitor.as_ref(),
        split.as_ref(),
        errors,
    );

    let name = required(
        s.name,
        "name",
        "name the experiment: `name: brain_tissue`",
        errors,
    );
    let data = required(
        s.data,
        "data",
        "declare the dataset: `data: patches()?`",
        errors,
    );
    let model = required(
        s.model,
        "model",
        "declare the network: `model: |config| MyNet::new(config.optimizer.clone())`",
        errors,
    );
    let backend = s
        .backend
        .map_or_else(|| "native".to_owned(), |b| b.to_string());
    let (overfit_steps, overfit_loss) = overfit_settings(overfit);
    Some(Experiment {
        name: name?,
        backend,
        data: data?,
        model: model?,
        split: split.unwrap_or_else(default_split),
        loader,
        augment: s.augment,
        optimizer,
        schedule: s.schedule,
        loss,
        metrics: s.metrics.unwrap_or_default(),
        monitor,
        early_stopping: s.early_stopping,
        epochs: s.epochs,
        seed: s.seed,
        checkpoint,
        sinks,
        test: s.test,
        overfit_steps,
        overfit_loss,
        params: s.params,
        fingerprint: s.fingerprint,
        predict: s.predict,
    })
}

/// A closure given for `key` must take the arguments `names` (a function's name is checked by
/// the compiler instead).
fn closure_arity(value: Option<&Expr>, key: &str, names: &[&str], errors: &mut Errors) {
    let Some(Expr::Closure(closure)) = value else {
        return;
    };
    let given = closure.inputs.len();
    if given != names.len() {
        let s = if names.len() == 1 { "" } else { "s" };
        errors.at(
            syn::spanned::Spanned::span(&closure.or1_token),
            format!(
                "`{key}` takes {} argument{s}, `|{}|`; this closure takes {given}",
                names.len(),
                names.join(", ")
            ),
        );
    }
}

fn required<T>(slot: Option<T>, key: &str, fix: &str, errors: &mut Errors) -> Option<T> {
    if slot.is_none() {
        errors.at(Span::call_site(), format!("missing `{key}`; {fix}"));
    }
    slot
}

fn default_split() -> Split {
    Split {
        kind: Ident::new("kfold", Span::call_site()),
        size: None,
        groups: None,
        labels: None,
        validation: None,
        shuffle: None,
    }
}

fn checked_fields(
    fields: Option<Vec<Field>>,
    what: &str,
    valid: &[&str],
    errors: &mut Errors,
) -> Vec<Field> {
    let fields = fields.unwrap_or_default();
    let mut seen: Vec<String> = Vec::new();
    for field in &fields {
        let key = field.key.to_string();
        if !valid.contains(&key.as_str()) {
            errors.at(
                field.key.span(),
                format!(
                    "unknown `{what}` option `{key}`; expected one of {}",
                    listed(valid)
                ),
            );
        } else if seen.contains(&key) {
            errors.at(
                field.key.span(),
                format!("`{what}` option `{key}` is given twice; keep one"),
            );
        }
        seen.push(key);
    }
    fields
}

fn listed(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn named_only(call: Call, what: &str, errors: &mut Errors) -> (Ident, Vec<Field>) {
    if let Some(first) = call.positional.first() {
        errors.at(
            syn::spanned::Spanned::span(first),
            format!(
                "`{what}: {}(...)` takes named settings only; write `{}(lr = 1e-3)`-style `key = value` pairs",
                call.name, call.name
            ),
        );
    }
    (call.name, call.named)
}

fn split(call: Call, errors: &mut Errors) -> Split {
    let what = if call.name == "kfold" {
        "the number of folds, `kfold(5)`"
    } else {
        "the test fraction, `holdout(0.2)`"
    };
    if call.positional.len() > 1 {
        errors.at(
            syn::spanned::Spanned::span(&call.positional[1]),
            format!("`{}` takes one positional argument, {what}", call.name),
        );
    }
    if call.name == "kfold"
        && let Some(Expr::Lit(lit)) = call.positional.first()
        && let syn::Lit::Int(k) = &lit.lit
        && k.base10_parse::<u64>().is_ok_and(|k| k < 2)
    {
        errors.at(
            k.span(),
            format!("k-fold needs at least 2 folds, got {k}; use `holdout(0.2)` for one split"),
        );
    }
    let mut split = Split {
        kind: call.name,
        size: call.positional.into_iter().next(),
        groups: None,
        labels: None,
        validation: None,
        shuffle: None,
    };
    for field in call.named {
        let slot = match field.key.to_string().as_str() {
            "groups" => &mut split.groups,
            "labels" => &mut split.labels,
            "validation" => &mut split.validation,
            "shuffle" if split.kind == "kfold" => &mut split.shuffle,
            other => {
                let valid: &[&str] = if split.kind == "kfold" {
                    &["groups", "labels", "validation", "shuffle"]
                } else {
                    &["groups", "labels", "validation"]
                };
                errors.at(
                    field.key.span(),
                    format!(
                        "unknown `{}` option `{other}`; expected one of {}",
                        split.kind,
                        listed(valid)
                    ),
                );
                continue;
            }
        };
        if slot.is_some() {
            errors.at(
                field.key.span(),
                format!("`{}` is given twice; keep one", field.key),
            );
        }
        *slot = Some(field.value);
    }
    if let (Some(_), Some(labels)) = (&split.groups, &split.labels) {
        errors.at(
            syn::spanned::Spanned::span(labels),
            "a split is grouped or stratified, not both; keep `groups` or `labels`",
        );
    }
    split
}

fn unique_sinks(sinks: Vec<Ident>, errors: &mut Errors) -> Vec<Ident> {
    let mut seen: Vec<String> = Vec::new();
    for sink in &sinks {
        let name = sink.to_string();
        if seen.contains(&name) {
            errors.at(
                sink.span(),
                format!("sink `{name}` is listed twice; keep one"),
            );
        }
        seen.push(name);
    }
    sinks
}

fn monitor(monitor: &Monitor, errors: &mut Errors) -> Option<(Ident, String)> {
    let part = monitor.part.to_string();
    if part != "train" && part != "valid" {
        errors.at(
            monitor.part.span(),
            format!(
                "unknown part `{part}`; expected `train` or `valid`, as in `max(valid.dice_mean)`"
            ),
        );
        return None;
    }
    Some((monitor.mode.clone(), format!("{part}/{}", monitor.metric)))
}

fn joint_rules(
    early_stopping: Option<&LitInt>,
    monitor_declared: bool,
    monitor: Option<&(Ident, String)>,
    split: Option<&Split>,
    errors: &mut Errors,
) {
    if let (Some(patience), false) = (early_stopping, monitor_declared) {
        errors.at(
            patience.span(),
            "`early_stopping` needs a metric to watch; add `monitor: min(valid.loss)` or similar",
        );
    }
    let has_validation = split.is_some_and(|s| s.validation.is_some());
    if let Some((mode, metric)) = monitor
        && metric.starts_with("valid/")
        && !has_validation
    {
        errors.at(
            mode.span(),
            format!(
                "`{metric}` needs a validation part; add `validation = 0.2` to `split`, or monitor a `train` metric"
            ),
        );
    }
}

fn overfit_settings(fields: Vec<Field>) -> (Option<Expr>, Option<Expr>) {
    let mut steps = None;
    let mut loss = None;
    for field in fields {
        if field.key == "steps" {
            steps = Some(field.value);
        } else if field.key == "loss" {
            loss = Some(field.value);
        }
    }
    (steps, loss)
}

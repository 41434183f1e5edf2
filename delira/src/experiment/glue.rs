//! Helpers for the code `experiment!{}` generates: they give the user's closures their argument
//! types and turn the user's values into the runtime's. Not a public API.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ExperimentError, Settings, Transform};
use crate::backend::Network;
use crate::data::DataError;
use crate::random::Stream;

/// What a `model:` declaration may give: a network, or a result holding one.
pub trait ModelOutput {
    /// The network.
    type Network: Network;

    /// The network, or why there is none.
    fn into_network(self) -> Result<Self::Network, String>;
}

impl<N: Network> ModelOutput for N {
    type Network = N;

    fn into_network(self) -> Result<N, String> {
        Ok(self)
    }
}

impl<N: Network, E: Display> ModelOutput for Result<N, E> {
    type Network = N;

    fn into_network(self) -> Result<N, String> {
        self.map_err(|e| e.to_string())
    }
}

fn model_error(message: String) -> ExperimentError {
    ExperimentError::Declared {
        what: "model",
        message,
    }
}

/// Calls a `model: |config| ...` closure.
pub fn model_from<C, R: ModelOutput>(
    config: &C,
    make: impl FnOnce(&C) -> R,
) -> Result<R::Network, ExperimentError> {
    make(config).into_network().map_err(model_error)
}

/// Takes a `model: expr` value.
pub fn model_value<R: ModelOutput>(value: R) -> Result<R::Network, ExperimentError> {
    value.into_network().map_err(model_error)
}

/// Calls a `groups = |data| ...` or `labels = |data| ...` closure.
pub fn from_data<D: ?Sized, R>(data: &D, read: impl FnOnce(&D) -> R) -> R {
    read(data)
}

/// Takes an `augment:` transform.
pub fn transform<T, F>(augment: F) -> Transform<T>
where
    F: Fn(T, &mut Stream) -> Result<T, DataError> + Send + Sync + 'static,
{
    std::sync::Arc::new(augment)
}

/// Calls a `test: |network, data, indices| ...` closure.
pub fn test_with<N, D: ?Sized, E: Display>(
    network: &mut N,
    data: &D,
    indices: &[usize],
    test: impl FnOnce(&mut N, &D, &[usize]) -> Result<BTreeMap<String, f64>, E>,
) -> Result<BTreeMap<String, f64>, ExperimentError> {
    test(network, data, indices).map_err(|e| ExperimentError::Declared {
        what: "test",
        message: e.to_string(),
    })
}

/// What a `data: |config| ...` closure may give: a dataset, or a result holding one.
pub trait DataOutput {
    /// The dataset.
    type Data: crate::data::Dataset;

    /// The dataset, or why there is none.
    fn into_data(self) -> Result<Self::Data, String>;
}

impl<D: crate::data::Dataset> DataOutput for D {
    type Data = D;

    fn into_data(self) -> Result<D, String> {
        Ok(self)
    }
}

impl<D: crate::data::Dataset, E: Display> DataOutput for Result<D, E> {
    type Data = D;

    fn into_data(self) -> Result<D, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Calls a `data: |config| ...` closure.
pub fn data_from<C, R: DataOutput>(
    config: &C,
    make: impl FnOnce(&C) -> R,
) -> Result<R::Data, ExperimentError> {
    make(config)
        .into_data()
        .map_err(|message| ExperimentError::Declared {
            what: "data",
            message,
        })
}

/// A compile-time check that a `params:` type can be part of the configuration; generated code
/// names it at the user's type so that a missing trait is reported there.
pub fn assert_params<P>()
where
    P: Default + Clone + std::fmt::Debug + Serialize + DeserializeOwned,
{
}

/// The configuration of an experiment with `params:` as it serialises: the settings' keys, then
/// the table `params`.
#[derive(Serialize)]
struct WithParams<'a, P> {
    #[serde(flatten)]
    settings: &'a Settings,
    params: &'a P,
}

/// Serialises the settings and the `params` table of a configuration as one table.
pub fn serialize_with_params<S: Serializer, P: Serialize>(
    settings: &Settings,
    params: &P,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    WithParams { settings, params }.serialize(serializer)
}

/// Reads a configuration with a `params` table: the table (its type's `Default` when absent),
/// and every other key into the settings, whose checks (unknown keys, types) apply.
pub fn deserialize_with_params<'de, D, P>(deserializer: D) -> Result<(Settings, P), D::Error>
where
    D: Deserializer<'de>,
    P: Default + DeserializeOwned,
{
    let mut table = toml::Table::deserialize(deserializer)?;
    let params = match table.remove("params") {
        Some(value) => P::deserialize(value)
            .map_err(|e| D::Error::custom(format!("in `params`: {}", e.message())))?,
        None => P::default(),
    };
    let settings = Settings::deserialize(toml::Value::Table(table))
        .map_err(|e| D::Error::custom(e.message()))?;
    Ok((settings, params))
}

/// Whether two `params` values serialise alike (their type need not be `PartialEq`).
pub fn same_params<P: Serialize>(a: &P, b: &P) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// What a `fingerprint:` declaration may give: the fingerprint as text, a
/// [`Fingerprint`](super::Fingerprint), or a result holding either.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a data fingerprint",
    label = "`fingerprint:` gives a `String`, a `&str` or a `delira::experiment::Fingerprint`, or a `Result` holding one"
)]
pub trait FingerprintOutput {
    /// The fingerprint, or why there is none.
    fn into_fingerprint(self) -> Result<String, String>;
}

impl FingerprintOutput for String {
    fn into_fingerprint(self) -> Result<String, String> {
        Ok(self)
    }
}

impl FingerprintOutput for &str {
    fn into_fingerprint(self) -> Result<String, String> {
        Ok(self.to_owned())
    }
}

impl FingerprintOutput for super::Fingerprint {
    fn into_fingerprint(self) -> Result<String, String> {
        Ok(self.finish())
    }
}

impl<T: FingerprintOutput, E: Display> FingerprintOutput for Result<T, E> {
    fn into_fingerprint(self) -> Result<String, String> {
        self.map_err(|e| e.to_string())?.into_fingerprint()
    }
}

fn fingerprint_error(message: String) -> ExperimentError {
    ExperimentError::Declared {
        what: "fingerprint",
        message,
    }
}

/// The error of a `fingerprint: expr` expression.
pub fn fingerprint_failed(error: &dyn Display) -> ExperimentError {
    fingerprint_error(error.to_string())
}

/// Takes a `fingerprint: expr` value.
pub fn fingerprint_value<F: FingerprintOutput>(value: F) -> Result<String, ExperimentError> {
    value.into_fingerprint().map_err(fingerprint_error)
}

/// Calls a `fingerprint: |data| ...` closure.
pub fn fingerprint_from<D: ?Sized, F: FingerprintOutput>(
    data: &D,
    make: impl FnOnce(&D) -> F,
) -> Result<String, ExperimentError> {
    make(data).into_fingerprint().map_err(fingerprint_error)
}

/// The fingerprint of every sample of `data` (without a `fingerprint:` declaration).
pub fn data_fingerprint<D>(data: &D, progress: bool) -> Result<String, ExperimentError>
where
    D: crate::data::Dataset + ?Sized,
    D::Item: crate::data::Sample,
{
    Ok(super::Fingerprint::new().dataset(data, progress)?.finish())
}

/// What a `predict:` hook may return: nothing, or a result.
#[diagnostic::on_unimplemented(
    message = "a `predict:` hook returns `()` or a `Result<(), E>`, not `{Self}`",
    label = "write the hook's outputs to files under `dir` and return `Ok(())`"
)]
pub trait HookOutput {
    /// Why the hook failed, if it did.
    fn into_result(self) -> Result<(), String>;
}

impl HookOutput for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> HookOutput for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Calls a `predict: |network, data, indices, dir| ...` hook.
pub fn predict_with<N, D: ?Sized, R: HookOutput>(
    network: &mut N,
    data: &D,
    indices: &[usize],
    dir: &std::path::Path,
    hook: impl FnOnce(&mut N, &D, &[usize], &std::path::Path) -> R,
) -> Result<(), ExperimentError> {
    hook(network, data, indices, dir)
        .into_result()
        .map_err(|message| ExperimentError::Declared {
            what: "predict",
            message,
        })
}

/// The error of a `data:` expression.
pub fn data_error(error: &dyn Display) -> ExperimentError {
    ExperimentError::Declared {
        what: "data",
        message: error.to_string(),
    }
}

/// Takes an `augment:` transform of the samples of `data`.
pub fn transform_for<D, F>(data: &D, augment: F) -> Transform<D::Item>
where
    D: crate::data::Dataset + ?Sized,
    F: Fn(D::Item, &mut Stream) -> Result<D::Item, DataError> + Send + Sync + 'static,
{
    let _ = data;
    std::sync::Arc::new(augment)
}

/// Calls an `augment: |data| ...` closure, which makes the transform of the samples of `data`.
pub fn transform_made<D, M, F>(data: &D, make: M) -> Transform<D::Item>
where
    D: crate::data::Dataset + ?Sized,
    M: FnOnce(&D) -> F,
    F: Fn(D::Item, &mut Stream) -> Result<D::Item, DataError> + Send + Sync + 'static,
{
    std::sync::Arc::new(make(data))
}

/// Writes `fold-K/test.json`.
pub fn write_test_metrics(
    dir: &std::path::Path,
    metrics: &BTreeMap<String, f64>,
) -> Result<(), ExperimentError> {
    let path = dir.join("test.json");
    let text = serde_json::to_string_pretty(metrics).map_err(|e| ExperimentError::Damaged {
        path: path.clone(),
        message: e.to_string(),
    })?;
    crate::io::write_atomically(&path, text.as_bytes()).map_err(ExperimentError::io(&path))
}

/// The result of the fold a `train` or `resume` command trained.
pub fn first_fold(
    outcome: super::Outcome,
    fold: usize,
) -> Result<super::FoldResult, ExperimentError> {
    match outcome {
        super::Outcome::Trained { folds, .. } => folds.into_iter().next(),
        _ => None,
    }
    .ok_or(ExperimentError::NoSuchFold { fold, folds: 0 })
}

/// The summary a `kfold` command wrote.
pub fn summary_of(
    outcome: super::Outcome,
    runs: &std::path::Path,
) -> Result<super::Summary, ExperimentError> {
    match outcome {
        super::Outcome::Trained {
            summary: Some(summary),
            ..
        } => Ok(summary),
        _ => Err(ExperimentError::NoResults {
            path: runs.to_owned(),
        }),
    }
}

/// An error with its causes, one per line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, "\n  caused by: {cause}");
        source = cause.source();
    }
    text
}

/// Prints what a command did, or its error, and gives the exit code.
pub fn finish(result: Result<super::Outcome, String>) -> std::process::ExitCode {
    match result {
        Ok(outcome) => {
            println!("{}", describe(&outcome));
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A few lines on what a command did.
pub fn describe(outcome: &super::Outcome) -> String {
    match outcome {
        super::Outcome::Trained {
            run,
            folds,
            summary,
        } => {
            let mut text = format!("run {}", run.display());
            for fold in folds {
                let metrics: Vec<String> = fold
                    .metrics
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                let _ = write!(text, "\nfold {}: {}", fold.fold, metrics.join(", "));
            }
            if let Some(summary) = summary {
                text.push('\n');
                text.push_str(&summary.to_markdown(&[]));
            }
            text
        }
        super::Outcome::Predicted { dir } => format!(
            "test metrics in {}, predictions in {}",
            dir.join("test.json").display(),
            dir.join(super::PREDICTIONS_DIR).display()
        ),
        super::Outcome::Reported(summary) => summary.to_markdown(&[]),
        super::Outcome::Config(text) => text.clone(),
    }
}

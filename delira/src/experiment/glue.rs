//! Helpers for the code `experiment!{}` generates: they give the user's closures their argument
//! types and turn the user's values into the runtime's. Not a public API.

use std::collections::BTreeMap;
use std::fmt::Display;

use super::{ExperimentError, Transform};
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

/// The error of a `data:` expression.
pub fn data_error(error: &dyn Display) -> ExperimentError {
    ExperimentError::Declared {
        what: "data",
        message: error.to_string(),
    }
}

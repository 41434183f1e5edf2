//! Errors of the backends.

use std::fmt;
use std::path::PathBuf;

use super::Device;

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The batch lacks a field the network reads.
    #[error("the batch has no field `{field}`; it holds {available:?}")]
    MissingField {
        /// The field the network reads.
        field: String,
        /// The fields the batch holds.
        available: Vec<String>,
    },
    /// A batch field has the wrong element type.
    #[error("batch field `{field}` holds {found} values but the network needs {expected}")]
    FieldKind {
        /// The field's name.
        field: String,
        /// The type the network needs.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A batch field or network output has a shape the network cannot use.
    #[error("`{field}` has shape {found:?}; {expected}")]
    Shape {
        /// The field or output's name.
        field: String,
        /// The shape found.
        found: Vec<usize>,
        /// What was expected, in words.
        expected: String,
    },
    /// A target holds values the loss cannot use.
    #[error("{problem}")]
    Target {
        /// What is wrong, with the values.
        problem: String,
    },
    /// A state to import does not fit the network.
    #[error(transparent)]
    State(#[from] StateMismatch),
    /// A state file could not be read or written.
    #[error("cannot access state file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state file or buffer is not a valid safetensors state.
    #[error("state {origin} is damaged or not a safetensors file: {problem}")]
    Format {
        /// The file, or a description of the buffer.
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// A device was requested that this machine or build cannot use.
    #[error("device {device} is not available; {reason}")]
    Device {
        /// The requested device.
        device: Device,
        /// Why, and what to do instead.
        reason: String,
    },
    /// An optimizer, loss or layer configuration is invalid.
    #[error("invalid {what} configuration: {problem}")]
    Config {
        /// The configured thing (`sgd`, `dice`, ...).
        what: &'static str,
        /// What is wrong, with the values.
        problem: String,
    },
    /// A layer of a model cannot be built from its arguments.
    #[error("layer `{name}` (`{kind}`): {problem}")]
    Layer {
        /// The layer's name (its field in a `#[delira::model]` struct).
        name: &'static str,
        /// Its kind (`conv3d`, `module`, ...).
        kind: &'static str,
        /// What is wrong, with the values.
        problem: String,
    },
    /// The backend is not compiled in.
    #[error("the `{backend}` backend is not compiled in; enable the cargo feature `{backend}`")]
    NotEnabled {
        /// The backend's (and its feature's) name.
        backend: &'static str,
    },
    /// The native library reported an error.
    #[error("{operation} failed in the native library: {message}")]
    Native {
        /// What was being done.
        operation: String,
        /// The library's message.
        message: String,
    },
}

/// An array of a state whose shape or type differs from the network's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The entry's name.
    pub name: String,
    /// The network's shape and element type.
    pub expected: (Vec<usize>, &'static str),
    /// The state's shape and element type.
    pub found: (Vec<usize>, &'static str),
}

/// Every difference between a state and the entries a network expects.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct StateMismatch {
    /// Names the network expects but the state lacks.
    pub missing: Vec<String>,
    /// Names in the state the network does not know.
    pub unexpected: Vec<String>,
    /// Entries present in both with a different shape or element type.
    pub mismatched: Vec<ShapeMismatch>,
}

impl StateMismatch {
    /// Whether the state fits (no difference at all).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for StateMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the state does not fit the network")?;
        if !self.missing.is_empty() {
            write!(f, "; missing entries {:?}", self.missing)?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; unexpected entries {:?}", self.unexpected)?;
        }
        for m in &self.mismatched {
            write!(
                f,
                "; `{}` is {} {:?} but the network has {} {:?}",
                m.name, m.found.1, m.found.0, m.expected.1, m.expected.0
            )?;
        }
        f.write_str("; was it saved from a network of another architecture or configuration?")
    }
}

//! The whole state of a network as named arrays, and its safetensors form.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, View};

use super::error::{BackendError, ShapeMismatch, StateMismatch};

/// One array of a [`State`].
#[derive(Clone, Debug, PartialEq)]
pub enum StateArray {
    /// Single-precision values: weights, optimizer moments.
    F32(ArrayD<f32>),
    /// Double-precision values.
    F64(ArrayD<f64>),
    /// Integers: step counters, batch-norm sample counts.
    I64(ArrayD<i64>),
}

impl StateArray {
    /// The array's shape.
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::F32(a) => a.shape(),
            Self::F64(a) => a.shape(),
            Self::I64(a) => a.shape(),
        }
    }

    /// The element type's name (`f32`, `f64`, `i64`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::F32(_) => "f32",
            Self::F64(_) => "f64",
            Self::I64(_) => "i64",
        }
    }

    fn dtype(&self) -> Dtype {
        match self {
            Self::F32(_) => Dtype::F32,
            Self::F64(_) => Dtype::F64,
            Self::I64(_) => Dtype::I64,
        }
    }

    fn le_bytes(&self) -> Vec<u8> {
        match self {
            Self::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::F64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::I64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl From<ArrayD<f32>> for StateArray {
    fn from(a: ArrayD<f32>) -> Self {
        Self::F32(a)
    }
}

impl From<ArrayD<f64>> for StateArray {
    fn from(a: ArrayD<f64>) -> Self {
        Self::F64(a)
    }
}

impl From<ArrayD<i64>> for StateArray {
    fn from(a: ArrayD<i64>) -> Self {
        Self::I64(a)
    }
}

/// Named arrays holding everything a network needs to continue exactly where it was: weights,
/// buffers (batch-norm statistics), optimizer moments and step counters.
///
/// Names are stable (`encoder.0.conv.weight`, `optimizer.exp_avg.encoder.0.conv.weight`,
/// `optimizer.step`) and iteration is in name order, so a saved file does not depend on the order
/// in which layers were created.
///
/// ```
/// use delira::backend::State;
/// use ndarray::ArrayD;
///
/// let mut state = State::new();
/// state.insert("conv.weight", ArrayD::from_elem(vec![2, 1, 3], 0.5_f32));
/// state.insert("optimizer.step", ndarray::arr0(7_i64).into_dyn());
///
/// let bytes = state.to_safetensors().unwrap();
/// let back = State::from_safetensors(&bytes, "memory").unwrap();
/// assert_eq!(back, state);
/// assert_eq!(back.i64("optimizer.step").unwrap().sum(), 7);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    entries: BTreeMap<String, StateArray>,
}

struct Entry<'a>(&'a StateArray, Vec<u8>);

impl View for Entry<'_> {
    fn dtype(&self) -> Dtype {
        self.0.dtype()
    }

    fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.1)
    }

    fn data_len(&self) -> usize {
        self.1.len()
    }
}

impl State {
    /// An empty state.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the entry `name`, replacing one of the same name.
    pub fn insert(&mut self, name: impl Into<String>, array: impl Into<StateArray>) {
        self.entries.insert(name.into(), array.into());
    }

    /// The entry `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&StateArray> {
        self.entries.get(name)
    }

    /// Removes and returns the entry `name`.
    pub fn remove(&mut self, name: &str) -> Option<StateArray> {
        self.entries.remove(name)
    }

    /// The `f32` entry `name`, if there is one of that type.
    #[must_use]
    pub fn f32(&self, name: &str) -> Option<&ArrayD<f32>> {
        match self.entries.get(name) {
            Some(StateArray::F32(a)) => Some(a),
            _ => None,
        }
    }

    /// The `f64` entry `name`, if there is one of that type.
    #[must_use]
    pub fn f64(&self, name: &str) -> Option<&ArrayD<f64>> {
        match self.entries.get(name) {
            Some(StateArray::F64(a)) => Some(a),
            _ => None,
        }
    }

    /// The `i64` entry `name`, if there is one of that type.
    #[must_use]
    pub fn i64(&self, name: &str) -> Option<&ArrayD<i64>> {
        match self.entries.get(name) {
            Some(StateArray::I64(a)) => Some(a),
            _ => None,
        }
    }

    /// The number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the state has no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &StateArray)> {
        self.entries.iter().map(|(n, a)| (n.as_str(), a))
    }

    /// The names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Moves every entry of `other` into this state under `prefix` + its name.
    pub fn extend_prefixed(&mut self, prefix: &str, other: State) {
        for (name, array) in other.entries {
            self.entries.insert(format!("{prefix}{name}"), array);
        }
    }

    /// The entries whose names start with `prefix`, with the prefix removed.
    #[must_use]
    pub fn with_prefix(&self, prefix: &str) -> State {
        let entries = self
            .entries
            .iter()
            .filter_map(|(n, a)| Some((n.strip_prefix(prefix)?.to_owned(), a.clone())))
            .collect();
        State { entries }
    }

    /// Every difference between `self` (what a network expects) and `incoming`: missing and
    /// unexpected names, and entries whose shape or element type differ.
    pub fn check(&self, incoming: &State) -> Result<(), StateMismatch> {
        let mut mismatch = StateMismatch::default();
        for (name, expected) in &self.entries {
            match incoming.entries.get(name) {
                None => mismatch.missing.push(name.clone()),
                Some(found)
                    if found.shape() != expected.shape() || found.kind() != expected.kind() =>
                {
                    mismatch.mismatched.push(ShapeMismatch {
                        name: name.clone(),
                        expected: (expected.shape().to_vec(), expected.kind()),
                        found: (found.shape().to_vec(), found.kind()),
                    });
                }
                Some(_) => {}
            }
        }
        mismatch.unexpected = incoming
            .entries
            .keys()
            .filter(|n| !self.entries.contains_key(*n))
            .cloned()
            .collect();
        if mismatch.is_empty() {
            Ok(())
        } else {
            Err(mismatch)
        }
    }

    /// The state in the safetensors format.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, BackendError> {
        let views = self
            .entries
            .iter()
            .map(|(name, array)| (name.as_str(), Entry(array, array.le_bytes())));
        safetensors::serialize(views, None).map_err(|e| BackendError::Format {
            origin: "being written".to_owned(),
            problem: e.to_string(),
        })
    }

    /// Reads a state from safetensors bytes; `origin` names the source in errors.
    pub fn from_safetensors(bytes: &[u8], origin: &str) -> Result<Self, BackendError> {
        let format = |problem: String| BackendError::Format {
            origin: origin.to_owned(),
            problem,
        };
        let tensors =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
        let mut state = State::new();
        for (name, view) in tensors.iter() {
            let shape = IxDyn(view.shape());
            let data = view.data();
            let array = match view.dtype() {
                Dtype::F32 => StateArray::F32(from_le(shape, data, f32::from_le_bytes)),
                Dtype::F64 => StateArray::F64(from_le(shape, data, f64::from_le_bytes)),
                Dtype::I64 => StateArray::I64(from_le(shape, data, i64::from_le_bytes)),
                other => {
                    return Err(format(format!(
                        "entry `{name}` has element type {other:?}; only f32, f64 and i64 are \
                         supported"
                    )));
                }
            };
            state.insert(name, array);
        }
        Ok(state)
    }

    /// Writes the state to `path` as safetensors, through a temporary file that is synced and then
    /// renamed, so an interrupted write never damages an existing file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), BackendError> {
        let path = path.as_ref();
        let io = |source| BackendError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = self.to_safetensors()?;
        crate::io::write_atomically(path, &bytes).map_err(io)
    }

    /// Reads a state written by [`State::save`] (or any safetensors file of f32/f64/i64 arrays).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| BackendError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_safetensors(&bytes, &path.display().to_string())
    }
}

fn from_le<T, const N: usize>(shape: IxDyn, data: &[u8], read: fn([u8; N]) -> T) -> ArrayD<T> {
    let values: Vec<T> = data
        .chunks_exact(N)
        .map(|chunk| {
            let mut bytes = [0; N];
            bytes.copy_from_slice(chunk);
            read(bytes)
        })
        .collect();
    // safetensors checked that the data length matches the shape and element size.
    ArrayD::from_shape_vec(shape, values).unwrap_or_else(|_| unreachable!("length checked"))
}

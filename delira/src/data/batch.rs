//! Samples as named arrays, and their collation into batches.

use ndarray::{ArrayD, Axis, IxDyn};

/// One named field of a sample: an array of floats or integers, or a piece of text (metadata).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Floating-point data: images, probabilities, regression targets.
    F32(ArrayD<f32>),
    /// Integer data: label maps, class indices.
    I64(ArrayD<i64>),
    /// Text that travels with the sample unchanged, such as a subject identifier.
    Text(String),
}

impl Value {
    /// The array's shape; empty for text.
    #[must_use]
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::F32(a) => a.shape(),
            Self::I64(a) => a.shape(),
            Self::Text(_) => &[],
        }
    }

    /// The name of the variant, for error messages.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::F32(_) => "f32",
            Self::I64(_) => "i64",
            Self::Text(_) => "text",
        }
    }
}

impl From<ArrayD<f32>> for Value {
    fn from(a: ArrayD<f32>) -> Self {
        Self::F32(a)
    }
}

impl From<ArrayD<i64>> for Value {
    fn from(a: ArrayD<i64>) -> Self {
        Self::I64(a)
    }
}

/// A volume's channel-first data (its affine stays behind: a batch holds arrays only).
impl From<crate::io::Volume<f32>> for Value {
    fn from(volume: crate::io::Volume<f32>) -> Self {
        Self::F32(volume.into_parts().0)
    }
}

/// A label map's channel-first labels, widened to `i64` as losses expect.
impl From<crate::io::LabelMap> for Value {
    fn from(labels: crate::io::LabelMap) -> Self {
        Self::I64(labels.0.into_parts().0.mapv(i64::from))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

/// A sample that can be collated: it turns into named [`Value`]s.
///
/// `#[derive(Dataset)]` implements it for annotated structs; [`Record`] implements it for samples
/// assembled at run time.
pub trait Sample: Send + 'static {
    /// The sample's fields, in a fixed order.
    fn into_fields(self) -> Vec<(String, Value)>;
}

/// A sample as an ordered list of named values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    fields: Vec<(String, Value)>,
}

impl Record {
    /// An empty record.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The record with one more field; a field of the same name is replaced.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets a field, replacing one of the same name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    /// The field called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The field called `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.fields
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v))
    }
}

impl Sample for Record {
    fn into_fields(self) -> Vec<(String, Value)> {
        self.fields
    }
}

/// Why samples could not be stacked into a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CollateError {
    /// No sample was given.
    #[error("cannot collate an empty list of samples")]
    Empty,
    /// A field's shape differs between two samples.
    #[error(
        "field `{field}` has shape {found:?} in sample {position} of the batch but {expected:?} in \
         sample 0; crop, pad or resample the samples to one shape"
    )]
    Shape {
        /// The field's name.
        field: String,
        /// The shape in the first sample.
        expected: Vec<usize>,
        /// The differing shape.
        found: Vec<usize>,
        /// The position of the differing sample within the batch.
        position: usize,
    },
    /// A field's type differs between two samples.
    #[error(
        "field `{field}` is {found} in sample {position} of the batch but {expected} in sample 0"
    )]
    Kind {
        /// The field's name.
        field: String,
        /// The kind in the first sample.
        expected: &'static str,
        /// The differing kind.
        found: &'static str,
        /// The position of the differing sample within the batch.
        position: usize,
    },
    /// The samples do not have the same field names.
    #[error("sample {position} of the batch has fields {found:?} but sample 0 has {expected:?}")]
    Fields {
        /// The field names of the first sample.
        expected: Vec<String>,
        /// The field names of the differing sample.
        found: Vec<String>,
        /// The position of the differing sample within the batch.
        position: usize,
    },
}

/// A batch of samples: each field stacked along a new leading axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    fields: Vec<(String, BatchField)>,
    indices: Vec<usize>,
}

/// One field of a [`Batch`].
#[derive(Clone, Debug, PartialEq)]
pub enum BatchField {
    /// Stacked floats, shape `[batch, ...]`.
    F32(ArrayD<f32>),
    /// Stacked integers, shape `[batch, ...]`.
    I64(ArrayD<i64>),
    /// One text per sample.
    Text(Vec<String>),
}

impl Batch {
    /// Stacks samples field by field. The samples must have the same field names in the same
    /// order, and each field the same type and shape in every sample.
    pub fn collate<S: Sample>(samples: impl IntoIterator<Item = S>) -> Result<Self, CollateError> {
        let samples: Vec<Vec<(String, Value)>> =
            samples.into_iter().map(Sample::into_fields).collect();
        let n = samples.len();
        let first = samples.first().ok_or(CollateError::Empty)?;
        let names: Vec<String> = first.iter().map(|(name, _)| name.clone()).collect();
        for (position, sample) in samples.iter().enumerate().skip(1) {
            if sample.len() != names.len() || sample.iter().zip(&names).any(|((a, _), b)| a != b) {
                return Err(CollateError::Fields {
                    expected: names,
                    found: sample.iter().map(|(name, _)| name.clone()).collect(),
                    position,
                });
            }
        }

        let mut columns: Vec<Vec<Value>> =
            (0..names.len()).map(|_| Vec::with_capacity(n)).collect();
        for sample in samples {
            for (column, (_, value)) in columns.iter_mut().zip(sample) {
                column.push(value);
            }
        }
        let fields = names
            .into_iter()
            .zip(columns)
            .map(|(name, column)| {
                let field = stack(&name, column)?;
                Ok((name, field))
            })
            .collect::<Result<_, CollateError>>()?;
        Ok(Self {
            fields,
            indices: (0..n).collect(),
        })
    }

    /// The same batch, labelled with the dataset indices of its samples.
    #[must_use]
    pub fn with_indices(mut self, indices: Vec<usize>) -> Self {
        self.indices = indices;
        self
    }

    /// The dataset indices of the samples, in batch order.
    #[must_use]
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no sample (never true for a collated batch).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The field called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&BatchField> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }

    /// The float field called `name`, if there is one of that type.
    #[must_use]
    pub fn f32(&self, name: &str) -> Option<&ArrayD<f32>> {
        match self.get(name) {
            Some(BatchField::F32(a)) => Some(a),
            _ => None,
        }
    }

    /// The integer field called `name`, if there is one of that type.
    #[must_use]
    pub fn i64(&self, name: &str) -> Option<&ArrayD<i64>> {
        match self.get(name) {
            Some(BatchField::I64(a)) => Some(a),
            _ => None,
        }
    }

    /// The text field called `name`, if there is one of that type.
    #[must_use]
    pub fn text(&self, name: &str) -> Option<&[String]> {
        match self.get(name) {
            Some(BatchField::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// The field names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(n, _)| n.as_str())
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &BatchField)> {
        self.fields.iter().map(|(n, f)| (n.as_str(), f))
    }
}

fn stack(name: &str, column: Vec<Value>) -> Result<BatchField, CollateError> {
    let expected_kind = column[0].kind();
    let expected_shape = column[0].shape().to_vec();
    for (position, value) in column.iter().enumerate().skip(1) {
        if value.kind() != expected_kind {
            return Err(CollateError::Kind {
                field: name.to_owned(),
                expected: expected_kind,
                found: value.kind(),
                position,
            });
        }
        if value.shape() != expected_shape.as_slice() {
            return Err(CollateError::Shape {
                field: name.to_owned(),
                expected: expected_shape,
                found: value.shape().to_vec(),
                position,
            });
        }
    }

    Ok(match expected_kind {
        "f32" => BatchField::F32(stack_arrays(
            &expected_shape,
            column.into_iter().map(|v| match v {
                Value::F32(a) => a,
                _ => unreachable!("kinds were checked above"),
            }),
        )),
        "i64" => BatchField::I64(stack_arrays(
            &expected_shape,
            column.into_iter().map(|v| match v {
                Value::I64(a) => a,
                _ => unreachable!("kinds were checked above"),
            }),
        )),
        _ => BatchField::Text(
            column
                .into_iter()
                .map(|v| match v {
                    Value::Text(t) => t,
                    _ => unreachable!("kinds were checked above"),
                })
                .collect(),
        ),
    })
}

/// Copies arrays of one shape into a new C-ordered array with a leading batch axis.
fn stack_arrays<T: Clone + Default>(
    shape: &[usize],
    arrays: impl ExactSizeIterator<Item = ArrayD<T>>,
) -> ArrayD<T> {
    let mut full = vec![arrays.len()];
    full.extend_from_slice(shape);
    let mut out = ArrayD::<T>::default(IxDyn(&full));
    for (mut slot, array) in out.axis_iter_mut(Axis(0)).zip(arrays) {
        slot.assign(&array);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Affine, LabelMap, Volume};

    #[test]
    fn volumes_and_label_maps_become_values() {
        let labels = ArrayD::from_shape_vec(vec![1, 2, 2], vec![0u16, 3, 65535, 1]).unwrap();
        let value = Value::from(LabelMap::new(labels, Affine::IDENTITY));
        let expected = ArrayD::from_shape_vec(vec![1, 2, 2], vec![0i64, 3, 65535, 1]).unwrap();
        assert_eq!(value, Value::I64(expected));

        let image = ArrayD::from_shape_vec(vec![1, 1, 2], vec![0.5f32, -2.0]).unwrap();
        let value = Value::from(Volume::new(image.clone(), Affine::IDENTITY));
        assert_eq!(value, Value::F32(image));
    }
}

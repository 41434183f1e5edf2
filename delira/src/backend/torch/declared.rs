//! Models declared with `#[delira::model(backend = "torch")]`: the trait the macro implements,
//! and the printable summary of a model's layers.

use std::fmt;

use tch::nn;

use super::network::Fields;
#[cfg(doc)]
use super::network::TorchModel;
use crate::backend::BackendError;

/// A layer as declared: its name (the struct field), its kind and the declaration as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The field's name, which is also the first component of its variables' names.
    pub name: &'static str,
    /// `conv3d`, `batch_norm3d`, ..., or `module` for a user sub-module.
    pub kind: &'static str,
    /// The field's type as written (`nn::Conv3D`, `DoubleConv`).
    pub ty: &'static str,
}

/// A model whose layers were declared with `#[delira::model(backend = "torch")]`; the macro
/// implements this trait. The forward pass is the user's [`TorchModel`] implementation, which
/// the generated `network` requires (not a supertrait here: a missing one is then one error, at
/// the struct's name, instead of one per generated item).
pub trait DeclaredModel: Sized {
    /// The configuration the layers' arguments read (`()` when the model declares none).
    type Config;

    /// The struct's name.
    const NAME: &'static str;

    /// The layers, in declaration order.
    const LAYERS: &'static [LayerInfo];

    /// The batch fields the model reads and writes, as declared (`input`, `target`, `output`).
    fn fields() -> Fields;

    /// Builds every layer under `path`, layer `x` under `path / "x"`.
    fn build(path: &nn::Path<'_>, config: &Self::Config) -> Result<Self, BackendError>;
}

/// One variable of a layer in a [`ModelSummary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryVariable {
    /// The name below the layer (`weight`, `0.conv.bias`).
    pub name: String,
    /// The tensor's shape.
    pub shape: Vec<i64>,
    /// Whether the optimizer trains it (running statistics are not trained).
    pub trainable: bool,
}

impl SummaryVariable {
    /// The number of scalars.
    #[must_use]
    pub fn count(&self) -> usize {
        self.shape.iter().map(|&d| d.max(0) as usize).product()
    }
}

/// One layer of a [`ModelSummary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryLayer {
    /// The layer's name.
    pub name: String,
    /// Its kind as declared, or `module <Type>` for a user sub-module.
    pub kind: String,
    /// Its variables, sorted by name.
    pub variables: Vec<SummaryVariable>,
}

impl SummaryLayer {
    /// Trainable scalars of the layer.
    #[must_use]
    pub fn parameter_count(&self) -> usize {
        self.variables
            .iter()
            .filter(|v| v.trainable)
            .map(SummaryVariable::count)
            .sum()
    }
}

/// A table of a model's layers: name, kind, every variable's shape and count, and the totals.
/// Printed with `Display`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSummary {
    /// The model's name.
    pub model: String,
    /// The layers in declaration order; variables outside every declared layer come last, under
    /// the layer name `(other)`.
    pub layers: Vec<SummaryLayer>,
}

impl ModelSummary {
    /// The summary of the model `M` whose variables are in `vs` (built at its root).
    #[must_use]
    pub fn of<M: DeclaredModel>(vs: &nn::VarStore) -> Self {
        Self::from_var_store(M::NAME, M::LAYERS, vs)
    }

    /// The summary of the variables of `vs`, grouped by `layers` (by the first component of
    /// each variable's name).
    #[must_use]
    pub fn from_var_store(model: &str, layers: &[LayerInfo], vs: &nn::VarStore) -> Self {
        let mut variables: Vec<(String, SummaryVariable)> = vs
            .variables()
            .into_iter()
            .map(|(name, tensor)| {
                let (layer, rest) = name.split_once('.').unwrap_or((name.as_str(), ""));
                let variable = SummaryVariable {
                    name: rest.to_owned(),
                    shape: tensor.size(),
                    trainable: tensor.requires_grad(),
                };
                (layer.to_owned(), variable)
            })
            .collect();
        variables.sort_by(|a, b| a.1.name.cmp(&b.1.name));

        let mut summary: Vec<SummaryLayer> = layers
            .iter()
            .map(|info| SummaryLayer {
                name: info.name.to_owned(),
                kind: if info.kind == "module" {
                    format!("module {}", info.ty)
                } else {
                    info.kind.to_owned()
                },
                variables: Vec::new(),
            })
            .collect();
        let mut other = Vec::new();
        for (layer, mut variable) in variables {
            if let Some(l) = summary.iter_mut().find(|l| l.name == layer) {
                l.variables.push(variable);
            } else {
                variable.name = format!("{layer}.{}", variable.name);
                other.push(variable);
            }
        }
        if !other.is_empty() {
            summary.push(SummaryLayer {
                name: "(other)".to_owned(),
                kind: String::new(),
                variables: other,
            });
        }
        Self {
            model: model.to_owned(),
            layers: summary,
        }
    }

    /// Trainable scalars of the whole model.
    #[must_use]
    pub fn parameter_count(&self) -> usize {
        self.layers.iter().map(SummaryLayer::parameter_count).sum()
    }

    /// Scalars that are not trained (running statistics).
    #[must_use]
    pub fn buffer_count(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| &l.variables)
            .filter(|v| !v.trainable)
            .map(SummaryVariable::count)
            .sum()
    }
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows: Vec<[String; 5]> = vec![[
            "layer".into(),
            "kind".into(),
            "variable".into(),
            "shape".into(),
            "count".into(),
        ]];
        for layer in &self.layers {
            if layer.variables.is_empty() {
                rows.push([
                    layer.name.clone(),
                    layer.kind.clone(),
                    "-".into(),
                    String::new(),
                    "0".into(),
                ]);
            }
            for (i, v) in layer.variables.iter().enumerate() {
                let (name, kind) = if i == 0 {
                    (layer.name.clone(), layer.kind.clone())
                } else {
                    (String::new(), String::new())
                };
                let count = if v.trainable {
                    v.count().to_string()
                } else {
                    format!("({})", v.count())
                };
                rows.push([name, kind, v.name.clone(), format!("{:?}", v.shape), count]);
            }
        }
        let mut widths = [0; 5];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }

        writeln!(f, "{}", self.model)?;
        for row in &rows {
            let line = format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:>w4$}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        write!(
            f,
            "{} trainable parameters in {} layers",
            self.parameter_count(),
            self.layers.iter().filter(|l| l.name != "(other)").count()
        )?;
        let buffers = self.buffer_count();
        if buffers > 0 {
            write!(
                f,
                "; {buffers} values in buffers (in parentheses), not trained"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Mistakes of `#[delira::model]` that only the compiler sees once the macro has expanded (a
    /// missing forward pass, a layer of another type than its field): they need the backend.
    /// They run from this crate because trybuild enables the features of the crate it runs from,
    /// and the suite's crate has no library to forward them through. The macro's own
    /// diagnostics are in `tests/ui/model/`, run by the suite.
    #[test]
    fn model_diagnostics_with_the_backend() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui/model-torch");
        let cases = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "rs")
            })
            .count();
        assert!(
            cases >= 3,
            "the compile-fail cases went missing from {}",
            dir.display()
        );
        trybuild::TestCases::new().compile_fail("../tests/ui/model-torch/*.rs");
    }
}

//! The checks behind the tests that `experiment!{}` generates, usable on their own: each returns
//! what it measured, or a message that says what went wrong.

use std::collections::BTreeSet;
use std::path::Path;

use crate::backend::Network;
use crate::data::split::{Split, SplitKind};
use crate::data::{Batch, Sample, Value};
use crate::random::{Stream, StreamKey};

/// The network's evaluation step on `batch`: it must accept the batch (field names, shapes,
/// types) and give a finite loss. Returns the loss (NaN when the step reports none).
pub fn data_fits_model<N: Network>(network: &mut N, batch: &Batch) -> Result<f64, String> {
    let output = network
        .eval_step(batch)
        .map_err(|e| format!("the network does not take the data's first batch: {e}"))?;
    match output.loss() {
        Some(loss) if !loss.is_finite() => Err(format!("the first batch gives a loss of {loss}")),
        Some(loss) => Ok(loss),
        None => Ok(f64::NAN),
    }
}

/// Trains `steps` steps on one batch and evaluates it: the loss must fall below `threshold`
/// (default: a tenth of the first loss). Returns the first and the last loss.
pub fn overfit_one_batch<N: Network>(
    network: &mut N,
    batch: &Batch,
    steps: usize,
    threshold: Option<f64>,
) -> Result<(f64, f64), String> {
    let loss = |n: &mut N| -> Result<f64, String> {
        n.eval_step(batch)
            .map_err(|e| e.to_string())?
            .loss()
            .ok_or_else(|| "the network reports no loss".to_owned())
    };
    let first = loss(network)?;
    for _ in 0..steps {
        network.train_step(batch).map_err(|e| e.to_string())?;
    }
    let last = loss(network)?;
    let threshold = threshold.unwrap_or(first / 10.0);
    if last < threshold {
        Ok((first, last))
    } else {
        Err(format!(
            "after {steps} steps on one batch the loss is {last} (from {first}), not below {threshold}; \
             raise `overfit: {{ steps: .. }}` or the learning rate"
        ))
    }
}

/// Saves `trained`'s state to a safetensors file under `dir`, loads it into `fresh` and checks
/// that the states are equal and that both give bit-identical predictions and losses on `batch`.
pub fn checkpoint_round_trip<N: Network>(
    trained: &mut N,
    fresh: &mut N,
    batch: &Batch,
    dir: &Path,
) -> Result<(), String> {
    let state = trained.export_state().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join("round-trip.safetensors");
    state.save(&path).map_err(|e| e.to_string())?;
    let loaded = crate::backend::State::load(&path).map_err(|e| e.to_string())?;
    fresh.import_state(&loaded).map_err(|e| e.to_string())?;
    if fresh.export_state().map_err(|e| e.to_string())? != state {
        return Err("the state read back differs from the state written".to_owned());
    }
    let a = trained.eval_step(batch).map_err(|e| e.to_string())?;
    let b = fresh.eval_step(batch).map_err(|e| e.to_string())?;
    if a != b {
        return Err("the network read back predicts differently".to_owned());
    }
    Ok(())
}

/// Trains two networks made alike on the same batches: their states must end bit-identical.
pub fn seeded_runs_repeat<N: Network>(
    a: &mut N,
    b: &mut N,
    batches: &[Batch],
) -> Result<(), String> {
    for (step, batch) in batches.iter().enumerate() {
        let la = a.train_step(batch).map_err(|e| e.to_string())?.losses;
        let lb = b.train_step(batch).map_err(|e| e.to_string())?.losses;
        if la != lb {
            return Err(format!("step {step}: losses {la:?} and {lb:?} differ"));
        }
    }
    if a.export_state().map_err(|e| e.to_string())?
        != b.export_state().map_err(|e| e.to_string())?
    {
        return Err(format!(
            "after {} steps the two networks' states differ",
            batches.len()
        ));
    }
    Ok(())
}

/// Augments `sample` twice with the stream of `(seed, sample index 0)`: the results must be
/// equal (augmentation is a function of its stream), and image and label maps must stay on one
/// grid: every integer array of two or more axes (a label map) keeps the spatial shape of every
/// float array (an image, channels first), before and after, and takes no label value that it
/// did not have (labels are moved, never interpolated).
pub fn augmentation_keeps_alignment<T: Sample + Clone>(
    sample: &T,
    augment: &dyn Fn(T, &mut Stream) -> Result<T, crate::data::DataError>,
    seed: u64,
) -> Result<(), String> {
    let stream = || {
        StreamKey::new(seed)
            .sample(0)
            .purpose("augment-check")
            .stream()
    };
    let before = sample.clone().into_fields();
    let once = augment(sample.clone(), &mut stream())
        .map_err(|e| e.to_string())?
        .into_fields();
    let twice = augment(sample.clone(), &mut stream())
        .map_err(|e| e.to_string())?
        .into_fields();
    if once != twice {
        return Err("the same stream gave two different augmentations".to_owned());
    }
    same_grid(&before).map_err(|e| format!("before augmentation: {e}"))?;
    same_grid(&once).map_err(|e| format!("after augmentation: {e}"))?;
    for ((name, old), (_, new)) in before.iter().zip(&once) {
        if let (Value::I64(old), Value::I64(new)) = (old, new) {
            let known: BTreeSet<i64> = old.iter().copied().collect();
            if let Some(v) = new.iter().find(|v| !known.contains(v)) {
                return Err(format!(
                    "label map `{name}` took the value {v}, which it did not hold before"
                ));
            }
        }
    }
    Ok(())
}

fn same_grid(fields: &[(String, Value)]) -> Result<(), String> {
    for (label, l) in fields {
        let Value::I64(l) = l else { continue };
        if l.ndim() < 2 {
            continue;
        }
        for (image, i) in fields {
            let Value::F32(i) = i else { continue };
            if i.ndim() < l.ndim() {
                continue;
            }
            let spatial = &i.shape()[i.ndim() - l.ndim()..];
            if spatial != l.shape() {
                return Err(format!(
                    "`{image}` has spatial shape {spatial:?} but `{label}` has {:?}",
                    l.shape()
                ));
            }
        }
    }
    Ok(())
}

/// Within each fold, train, validation and test are disjoint and cover every sample; for k-fold,
/// the test parts are disjoint and cover every sample.
pub fn folds_partition(split: &Split) -> Result<(), String> {
    let n = split.n();
    let mut tested = vec![0_usize; n];
    for (k, fold) in split.folds().iter().enumerate() {
        let mut seen = vec![false; n];
        for &i in fold.train.iter().chain(&fold.validation).chain(&fold.test) {
            let slot = seen
                .get_mut(i)
                .ok_or_else(|| format!("fold {k}: index {i} is not below {n}"))?;
            if *slot {
                return Err(format!("fold {k}: sample {i} is in two parts"));
            }
            *slot = true;
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(format!("fold {k}: sample {i} is in no part"));
        }
        for &i in &fold.test {
            tested[i] += 1;
        }
    }
    if split.kind() == SplitKind::KFold
        && let Some(i) = tested.iter().position(|&t| t != 1)
    {
        return Err(format!(
            "sample {i} is tested in {} folds, not 1",
            tested[i]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::split;

    #[test]
    fn splits_made_by_delira_partition() {
        folds_partition(&split::kfold(10, 3, 1).unwrap()).unwrap();
        folds_partition(&split::holdout(10, 0.3, 1).unwrap()).unwrap();
    }
}

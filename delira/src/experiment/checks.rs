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

    use crate::data::Record;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn splits_made_by_delira_partition() {
        folds_partition(&split::kfold(10, 3, 1).unwrap()).unwrap();
        folds_partition(&split::holdout(10, 0.3, 1).unwrap()).unwrap();
    }

    #[test]
    fn a_sample_in_two_folds_tests_is_found() {
        // `Split::new` refuses such folds; a file edited by hand can still hold them.
        let mut value = serde_json::to_value(split::kfold(4, 2, 1).unwrap()).unwrap();
        let first = value["folds"][0].clone();
        value["folds"][1] = first.clone();
        let split: Split = serde_json::from_value(value).unwrap();
        let tested_twice = first["test"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(0));
        let err = folds_partition(&split).unwrap_err();
        let times = if tested_twice { 2 } else { 0 };
        assert_eq!(err, format!("sample 0 is tested in {times} folds, not 1"));

        let mut value = serde_json::to_value(split::kfold(4, 2, 1).unwrap()).unwrap();
        value["folds"][0]["train"] = serde_json::json!([]);
        let split: Split = serde_json::from_value(value).unwrap();
        assert!(
            folds_partition(&split)
                .unwrap_err()
                .contains("is in no part")
        );
    }

    fn image_and_labels() -> Record {
        Record::new()
            .with(
                "image",
                ArrayD::from_shape_fn(IxDyn(&[1, 2, 3]), |i| (i[1] * 3 + i[2]) as f32),
            )
            .with(
                "labels",
                ArrayD::from_shape_fn(IxDyn(&[2, 3]), |i| (i[0] + i[1]) as i64 % 2),
            )
    }

    fn field(record: &Record, name: &str) -> Value {
        record.get(name).cloned().unwrap()
    }

    #[test]
    fn alignment_holds_for_a_joint_flip_and_fails_for_three_mistakes() {
        // Flipping both along the last axis keeps them aligned.
        let flip = |r: Record, _: &mut Stream| {
            let (Value::F32(i), Value::I64(l)) = (field(&r, "image"), field(&r, "labels")) else {
                unreachable!()
            };
            let mut i = i;
            let mut l = l;
            i.invert_axis(ndarray::Axis(2));
            l.invert_axis(ndarray::Axis(1));
            Ok(Record::new().with("image", i).with("labels", l))
        };
        augmentation_keeps_alignment(&image_and_labels(), &flip, 1).unwrap();

        // The label map cropped: no longer on the image's grid.
        let crop = |r: Record, _: &mut Stream| {
            let Value::I64(l) = field(&r, "labels") else {
                unreachable!()
            };
            let cropped = l.slice(ndarray::s![.., 0..2]).to_owned().into_dyn();
            Ok(Record::new()
                .with("image", field(&r, "image"))
                .with("labels", cropped))
        };
        let err = augmentation_keeps_alignment(&image_and_labels(), &crop, 1).unwrap_err();
        assert_eq!(
            err,
            "after augmentation: `image` has spatial shape [2, 3] but `labels` has [2, 2]"
        );

        // Labels interpolated: a value appears that no voxel held.
        let blur = |r: Record, _: &mut Stream| {
            let Value::I64(l) = field(&r, "labels") else {
                unreachable!()
            };
            Ok(Record::new()
                .with("image", field(&r, "image"))
                .with("labels", l.mapv(|v| v * 2)))
        };
        let err = augmentation_keeps_alignment(&image_and_labels(), &blur, 1).unwrap_err();
        assert_eq!(
            err,
            "label map `labels` took the value 2, which it did not hold before"
        );

        // Not a function of the stream.
        let calls = std::sync::atomic::AtomicU64::new(0);
        let drift = |r: Record, _: &mut Stream| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Value::F32(i) = field(&r, "image") else {
                unreachable!()
            };
            Ok(Record::new()
                .with("image", i.mapv(|v| v + n as f32))
                .with("labels", field(&r, "labels")))
        };
        let err = augmentation_keeps_alignment(&image_and_labels(), &drift, 1).unwrap_err();
        assert_eq!(err, "the same stream gave two different augmentations");
    }

    #[test]
    fn a_network_that_does_not_learn_fails_the_overfit_check() {
        use crate::testing::LinearNetwork;
        let batch = crate::data::Batch::collate([0_i64, 1].map(|y| {
            Record::new()
                .with("x", ArrayD::from_elem(IxDyn(&[2]), 1.0_f32))
                .with("y", ndarray::arr0(y).into_dyn())
        }))
        .unwrap();
        // The same input with both labels: the loss cannot fall below ln 2.
        let mut net = LinearNetwork::classifier(2, 2, 1).with_sgd(0.5, 0.0);
        let err = overfit_one_batch(&mut net, &batch, 20, Some(0.5)).unwrap_err();
        assert!(
            err.starts_with("after 20 steps on one batch the loss is 0.69"),
            "{err}"
        );

        let mut a = LinearNetwork::classifier(2, 2, 1);
        let mut b = LinearNetwork::classifier(2, 2, 2);
        let err = seeded_runs_repeat(&mut a, &mut b, &[batch]).unwrap_err();
        assert!(err.starts_with("step 0: losses"), "{err}");
    }
}

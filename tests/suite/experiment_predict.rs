//! `predict --fold K`: every network output of each test sample written under the fold's folder,
//! next to its metrics, then the declared `predict:` hook.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use delira::backend::{Network, State};
use delira::data::split::Split;
use delira::data::{Batch, DataError, Dataset, FnDataset, Record};
use delira::experiment::Outcome;
use delira::testing::LinearNetwork;
use delira::training::checkpoint::{CheckpointWriter, Fallback};
use ndarray::{ArrayD, Axis, arr0};

/// 15 points in two classes on either side of x0 = x1.
#[allow(clippy::unnecessary_wraps)]
fn points()
-> Result<FnDataset<impl Fn(usize) -> Result<Record, DataError> + Send + Sync>, DataError> {
    Ok(FnDataset::new(15, |i: usize| {
        let t = i as f32 / 15.0 * std::f32::consts::TAU + 0.1;
        let (x, y) = (t.cos() * 2.0, t.sin() * 2.0);
        Ok(Record::new()
            .with("x", ArrayD::from_shape_vec(vec![2], vec![x, y]).unwrap())
            .with("y", arr0(i64::from(x > y)).into_dyn()))
    }))
}

delira::experiment! {
    name: predicted,
    data: points()?,
    model: |config| LinearNetwork::classifier(2, 2, config.seed).with_sgd(0.5, 0.0),
    split: kfold(3),
    loader: { batch_size: 4 },
    epochs: 3,
    seed: 9,
    sinks: [csv],
    predict: |network, data, indices, dir| write_classes(network, data, indices, dir),
}

/// The declared hook, a stand-in for a domain output such as a label map: the predicted class
/// of every test sample, one `index,class` line each, in `classes.csv`.
fn write_classes<D>(
    network: &mut LinearNetwork,
    data: &D,
    indices: &[usize],
    dir: &Path,
) -> Result<(), String>
where
    D: Dataset<Item = Record>,
{
    let mut text = String::new();
    for &index in indices {
        let sample = data.get(index).map_err(|e| e.to_string())?;
        let batch = Batch::collate([sample]).map_err(|e| e.to_string())?;
        let output = network.eval_step(&batch).map_err(|e| e.to_string())?;
        let logits = &output.predictions["logits"];
        let class = u8::from(logits[[0, 1]] > logits[[0, 0]]);
        writeln!(text, "{index},{class}").map_err(|e| e.to_string())?;
    }
    std::fs::write(dir.join("classes.csv"), text).map_err(|e| e.to_string())
}

/// The model of the newest checkpoint under `root` in a network like `network`.
fn restored(mut network: LinearNetwork, root: &Path) -> LinearNetwork {
    let (entry, checkpoint) = CheckpointWriter::new(root)
        .read_latest(Fallback::Refuse)
        .unwrap();
    let state = State::from_safetensors(&checkpoint.tensors, &entry.path.display().to_string());
    network.import_state(&state.unwrap()).unwrap();
    network
}

/// Checks that `predictions` holds `<index>.safetensors` for each of `test` (and the files named
/// in `others`, nothing else), each equal to the eval step of `network` on that sample alone.
/// Returns the written logits, by index.
pub fn assert_predictions<D>(
    predictions: &Path,
    network: &mut LinearNetwork,
    data: &D,
    test: &[usize],
    others: &[&str],
) -> Vec<(usize, ArrayD<f32>)>
where
    D: Dataset<Item = Record>,
{
    let files: BTreeSet<String> = std::fs::read_dir(predictions)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut expected: BTreeSet<String> = test.iter().map(|i| format!("{i}.safetensors")).collect();
    expected.extend(others.iter().map(ToString::to_string));
    assert_eq!(files, expected);

    let mut written = Vec::new();
    for &index in test {
        let state = State::load(predictions.join(format!("{index}.safetensors"))).unwrap();
        assert_eq!(state.names().collect::<Vec<_>>(), ["logits"]);
        let batch = Batch::collate([data.get(index).unwrap()]).unwrap();
        let output = network.eval_step(&batch).unwrap();
        let alone = output.predictions["logits"]
            .index_axis(Axis(0), 0)
            .to_owned();
        let logits = state.f32("logits").unwrap();
        assert_eq!(logits.shape(), [2]);
        assert_eq!(logits, &alone, "sample {index}");
        written.push((index, logits.clone()));
    }
    written
}

#[test]
fn predict_writes_every_output_then_calls_the_hook() {
    let runs = std::env::temp_dir().join(format!("delira-predict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runs);
    let config = predicted::Config::default();
    let trained = predicted::run(config.clone(), &runs, Some("r"), 1).unwrap();

    let outcome = predicted::cli([
        "predicted",
        "predict",
        "--fold",
        "1",
        "--runs",
        runs.to_str().unwrap(),
        "--run-id",
        "r",
    ])
    .unwrap();
    let fold = runs.join("predicted/r/fold-1");
    assert_eq!(outcome, Outcome::Predicted { dir: fold.clone() });

    // Nothing is monitored: the model is the newest checkpoint's, the one training ended with,
    // so the test metrics are the fold's.
    let metrics: std::collections::BTreeMap<String, f64> =
        serde_json::from_str(&std::fs::read_to_string(fold.join("test.json")).unwrap()).unwrap();
    assert_eq!(metrics, trained.metrics);
    let split = Split::load(runs.join("predicted/r/split.json")).unwrap();
    let test = &split.folds()[1].test;
    assert_eq!(test.len(), 5);
    let fresh = LinearNetwork::classifier(2, 2, config.seed).with_sgd(0.5, 0.0);
    let mut network = restored(fresh.clone(), &fold.join("checkpoints"));
    assert_ne!(network.weight(), fresh.weight());
    let data = points().unwrap();
    let written = assert_predictions(
        &fold.join("predictions"),
        &mut network,
        &data,
        test,
        &["classes.csv"],
    );

    // The hook ran with the test indices on the same model: its classes are the written logits'
    // argmax.
    let mut classes = String::new();
    for (index, logits) in &written {
        writeln!(classes, "{index},{}", u8::from(logits[1] > logits[0])).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(fold.join("predictions/classes.csv")).unwrap(),
        classes
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

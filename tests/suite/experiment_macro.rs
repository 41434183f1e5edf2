//! `experiment!{}` end to end with the pure-Rust test network: the generated configuration,
//! command line, k-fold run and report (the generated tests run as tests of this module).

use std::collections::BTreeMap;

use delira::backend::{Network as _, State};
use delira::data::Dataset;
use delira::data::{DataError, FnDataset, Record, Value};
use delira::experiment::Outcome;
use delira::random::Stream;
use delira::testing::LinearNetwork;
use delira::training::checkpoint::{CheckpointWriter, Fallback};
use delira::training::metrics::Accuracy;
use ndarray::{ArrayD, arr0};

/// 24 points in two classes on either side of x0 + x1 = 0 (so a linear classifier separates
/// them), grouped in 4 blocks of 6 by index. Fallible like a real loader, to show `data: f()?`.
#[allow(clippy::unnecessary_wraps)]
fn points()
-> Result<FnDataset<impl Fn(usize) -> Result<Record, DataError> + Send + Sync>, DataError> {
    Ok(FnDataset::new(24, |i: usize| {
        let t = i as f32 / 24.0 * std::f32::consts::TAU;
        let (x, y) = (t.cos() * 2.0, t.sin() * 2.0);
        let class = i64::from(x + y > 0.0);
        Ok(Record::new()
            .with("x", ArrayD::from_shape_vec(vec![2], vec![x, y]).unwrap())
            .with("y", arr0(class).into_dyn()))
    }))
}

delira::experiment! {
    name: toy_points,
    backend: native,
    data: points()?,
    model: |config| LinearNetwork::classifier(2, 2, config.seed)
        .with_sgd(config.optimizer.learning_rate(), 0.0),
    split: kfold(4, groups = |data| (0..data.len()).map(|i| i / 6).collect::<Vec<_>>(), validation = 0.2),
    loader: { batch_size: 6, workers: 0 },
    optimizer: sgd(lr = 0.5),
    loss: cross_entropy,
    metrics: [Accuracy::new("logits", "y")],
    monitor: min(valid.loss),
    early_stopping: 5,
    epochs: 4,
    seed: 3,
    checkpoint: { keep_last: 1 },
    sinks: [csv],
    overfit: { steps: 200, loss: 0.1 },
    augment: jitter,
}

/// Moves a point by up to ±0.05 on each axis, from the sample's own stream (a transform takes
/// the sample by value).
#[allow(clippy::needless_pass_by_value)]
fn jitter(sample: Record, stream: &mut Stream) -> Result<Record, DataError> {
    let (Some(Value::F32(x)), Some(y)) = (sample.get("x"), sample.get("y")) else {
        return Err(DataError::Other("a point needs `x` and `y`".to_owned()));
    };
    let moved = x.mapv(|v| v + stream.uniform(-0.05, 0.05) as f32);
    Ok(Record::new().with("x", moved).with("y", y.clone()))
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("delira-macro-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_config_defaults_to_the_declared_values() {
    let config = toy_points::Config::default();
    assert_eq!(
        (config.epochs, config.seed, config.early_stopping),
        (4, 3, Some(5))
    );
    assert_eq!((config.loader.batch_size, config.loader.workers), (6, 0));
    assert_eq!(config.optimizer.learning_rate(), 0.5);
    assert_eq!(config.checkpoint.keep_last, 1);
    assert_eq!(config.monitor.as_ref().unwrap().metric, "valid/loss");
    let delira::data::split::SplitConfig::KFold(split) = config.split else {
        panic!("k-fold declared");
    };
    assert_eq!((split.k, split.seed, split.group), (4, 3, true));

    // Serialisable, unknown keys rejected, builder from the declared values.
    let text = delira::config::to_string(&config, delira::config::Format::Toml).unwrap();
    let back: toy_points::Config =
        delira::config::from_str(&text, delira::config::Format::Toml).unwrap();
    assert_eq!(back, config);
    let err =
        delira::config::from_str::<toy_points::Config>("epoch = 3", delira::config::Format::Toml)
            .unwrap_err();
    assert_eq!(err.key(), Some("epoch"));
    let built = toy_points::Config::builder().epochs(9).build();
    assert_eq!((built.epochs, built.seed), (9, 3));
}

#[test]
fn kfold_through_the_command_line() {
    let runs = scratch("kfold");
    let runs_arg = runs.to_str().unwrap();
    let outcome = toy_points::cli([
        "toy", "kfold", "--runs", runs_arg, "--run-id", "a", "--set", "epochs=3",
    ])
    .unwrap();
    let Outcome::Trained {
        run,
        folds,
        summary,
    } = outcome
    else {
        panic!("kfold trains");
    };
    assert_eq!(folds.len(), 4);
    // Grouped by blocks of 6: each fold tests exactly one block.
    let split = delira::data::split::Split::load(run.join("split.json")).unwrap();
    for fold in split.folds() {
        let blocks: std::collections::BTreeSet<usize> = fold.test.iter().map(|i| i / 6).collect();
        assert_eq!((blocks.len(), fold.test.len()), (1, 6));
    }
    for result in &folds {
        assert_eq!(result.epochs, 3);
        assert!(
            result.metrics.contains_key("accuracy"),
            "{:?}",
            result.metrics
        );
        assert_eq!(result.history["train/loss"].len(), 3);
    }
    let summary = summary.unwrap();
    let accuracy: Vec<f64> = folds.iter().map(|f| f.metrics["accuracy"]).collect();
    let mean = accuracy.iter().sum::<f64>() / 4.0;
    assert!((summary.stats("accuracy").unwrap().mean - mean).abs() < 1e-12);
    assert!(run.join("fold-2/metrics.csv").is_file());
    assert!(run.join("fold-2/checkpoints").is_dir());
    assert!(run.join("report.html").is_file());

    // Resume a fold alone (it is finished: the same result comes back), then test it.
    let resumed = toy_points::resume(&runs, Some("a"), 1).unwrap();
    assert_eq!(resumed.metrics, folds[1].metrics);
    let tested = toy_points::test(&runs, Some("a"), 1).unwrap();
    let written: BTreeMap<String, f64> =
        serde_json::from_str(&std::fs::read_to_string(tested).unwrap()).unwrap();
    assert_eq!(written, folds[1].metrics);
    // Next to them, the outputs of the best model (a metric is monitored) on each test sample.
    let fold = run.join("fold-1");
    let (entry, best) = CheckpointWriter::new(fold.join("best"))
        .read_latest(Fallback::Refuse)
        .unwrap();
    let mut network = LinearNetwork::classifier(2, 2, 3);
    let state = State::from_safetensors(&best.tensors, &entry.path.display().to_string());
    network.import_state(&state.unwrap()).unwrap();
    crate::experiment_predict::assert_predictions(
        &fold.join("predictions"),
        &mut network,
        &points().unwrap(),
        &split.folds()[1].test,
        &[],
    );

    let err = toy_points::cli(["toy", "config", "--set", "loader.batchsize=2"]).unwrap_err();
    assert!(
        err.contains("unknown configuration key `loader.batchsize`"),
        "{err}"
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

/// The parameters of `toy_params`: how many points, and a scale of the jitter.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PointParams {
    points: usize,
    jitter: f64,
    label: String,
}

impl Default for PointParams {
    fn default() -> Self {
        Self {
            points: 16,
            jitter: 0.05,
            label: "circle".to_owned(),
        }
    }
}

/// `n` points on the circle, in two classes, grouped in 4 blocks by index.
fn circle(n: usize) -> FnDataset<impl Fn(usize) -> Result<Record, DataError> + Send + Sync> {
    FnDataset::new(n, move |i: usize| {
        let t = i as f32 / n as f32 * std::f32::consts::TAU;
        let (x, y) = (t.cos() * 2.0, t.sin() * 2.0);
        Ok(Record::new()
            .with("x", ArrayD::from_shape_vec(vec![2], vec![x, y]).unwrap())
            .with("y", arr0(i64::from(x + y > 0.0)).into_dyn()))
    })
}

/// A jitter of the configured size, made from the dataset (the `augment: |data| ...` form).
fn jitter_of(
    size: f64,
) -> impl Fn(Record, &mut Stream) -> Result<Record, DataError> + Send + Sync + 'static {
    move |sample, stream| {
        let (Some(Value::F32(x)), Some(y)) = (sample.get("x"), sample.get("y")) else {
            return Err(DataError::Other("a point needs `x` and `y`".to_owned()));
        };
        let moved = x.mapv(|v| v + stream.uniform(-size, size) as f32);
        Ok(Record::new().with("x", moved).with("y", y.clone()))
    }
}

delira::experiment! {
    name: toy_params,
    data: |config| circle(config.params.points),
    model: |config| LinearNetwork::classifier(2, 2, config.seed)
        .with_sgd(config.optimizer.learning_rate(), 0.0),
    split: kfold(4, groups = |data| (0..data.len()).map(|i| i * 4 / data.len()).collect::<Vec<_>>()),
    loader: { batch_size: 4, drop_last: true },
    optimizer: sgd(lr = 0.5),
    metrics: [Accuracy::new("logits", "y")],
    epochs: 2,
    seed: 5,
    sinks: [csv],
    overfit: { steps: 200, loss: 0.2 },
    augment: |data| jitter_of(if data.len() > 100 { 0.01 } else { 0.05 }),
    params: PointParams,
}

#[test]
fn params_are_part_of_the_configuration() {
    let config = toy_params::Config::default();
    assert_eq!(
        (config.params.points, config.params.jitter, config.epochs),
        (16, 0.05, 2)
    );
    assert!(config.loader.drop_last);

    // `config` prints the table `[params]`; its keys are dotted keys of `--set`.
    let Outcome::Config(text) = toy_params::cli([
        "toy",
        "config",
        "--set",
        "params.points=20",
        "--set",
        "params.label=ring",
    ])
    .unwrap() else {
        panic!("config prints");
    };
    assert!(
        text.contains("[params]\npoints = 20\njitter = 0.05\nlabel = \"ring\"\n"),
        "{text}"
    );
    let back: toy_params::Config =
        delira::config::from_str(&text, delira::config::Format::Toml).unwrap();
    assert_eq!(
        (back.params.points, back.params.label.as_str()),
        (20, "ring")
    );
    assert_eq!(back.epochs, 2);
    assert_ne!(back, config);
    let same = toy_params::Config::builder()
        .params(PointParams {
            points: 20,
            label: "ring".to_owned(),
            ..PointParams::default()
        })
        .build();
    assert_eq!(back, same);

    // Unknown keys are rejected, in the settings and in `params`.
    let err = toy_params::cli(["toy", "config", "--set", "params.point=3"]).unwrap_err();
    assert!(
        err.starts_with("error: unknown configuration key `params.point`; valid keys: "),
        "{err}"
    );
    assert!(
        err.contains("params.jitter, params.label, params.points"),
        "{err}"
    );
    let err = delira::config::from_str::<toy_params::Config>(
        "epochs = 3\n[params]\npoint = 3",
        delira::config::Format::Toml,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `point`"), "{err}");
    let err = toy_params::cli(["toy", "config", "--set", "epoch=3"]).unwrap_err();
    assert!(err.contains("unknown configuration key `epoch`"), "{err}");
}

#[test]
fn a_config_file_changes_only_the_keys_it_holds() {
    let dir = scratch("params-file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("more.toml");
    std::fs::write(&file, "epochs = 3\n[params]\npoints = 24\n").unwrap();
    let Outcome::Config(text) =
        toy_params::cli(["toy", "config", "--config", file.to_str().unwrap()]).unwrap()
    else {
        panic!("config prints");
    };
    let config: toy_params::Config =
        delira::config::from_str(&text, delira::config::Format::Toml).unwrap();
    // The declared seed (5), learning rate (0.5) and jitter stay; the file's keys change.
    assert_eq!(
        (
            config.epochs,
            config.seed,
            config.params.points,
            config.params.jitter
        ),
        (3, 5, 24, 0.05)
    );
    assert_eq!(config.optimizer.learning_rate(), 0.5);

    std::fs::write(&file, "[optimizer.adam]\nlr = 0.25\n").unwrap();
    let Outcome::Config(text) =
        toy_params::cli(["toy", "config", "--config", file.to_str().unwrap()]).unwrap()
    else {
        panic!("config prints");
    };
    let config: toy_params::Config =
        delira::config::from_str(&text, delira::config::Format::Toml).unwrap();
    assert!(
        matches!(config.optimizer, delira::backend::OptimizerConfig::Adam(_)),
        "{text}"
    );
    assert_eq!((config.optimizer.learning_rate(), config.seed), (0.25, 5));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn params_reach_the_data_and_the_run_fingerprint() {
    let runs = scratch("params-run");
    let runs_arg = runs.to_str().unwrap();
    let train = |id: &str, points: &str| {
        let points = format!("params.points={points}");
        let Outcome::Trained { run, folds, .. } = toy_params::cli([
            "toy", "kfold", "--runs", runs_arg, "--run-id", id, "--set", &points,
        ])
        .unwrap() else {
            panic!("kfold trains");
        };
        assert_eq!(folds.len(), 4);
        run
    };
    // The data closure reads `config.params.points`: the split covers that many samples.
    let a = train("a", "24");
    let split = delira::data::split::Split::load(a.join("split.json")).unwrap();
    assert_eq!(split.n(), 24);
    for fold in split.folds() {
        assert_eq!(fold.test.len(), 6);
    }
    let b = train("b", "32");
    assert_eq!(
        delira::data::split::Split::load(b.join("split.json"))
            .unwrap()
            .n(),
        32
    );
    let fingerprint = |run: &std::path::Path| {
        delira::experiment::Manifest::load(&run.join("manifest.json"))
            .unwrap()
            .config_fingerprint
    };
    assert_ne!(fingerprint(&a), fingerprint(&b));
    let pinned = std::fs::read_to_string(b.join("config.toml")).unwrap();
    assert!(pinned.contains("[params]\npoints = 32\n"), "{pinned}");
    std::fs::remove_dir_all(&runs).unwrap();
}

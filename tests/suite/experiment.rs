//! The experiment runtime: run folders, overrides, the driver behind the command line, the
//! aggregation of folds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser as _;
use delira::data::split::{self, Split};
use delira::experiment::{
    Cli, Experiment, ExperimentError, FoldResult, Manifest, Outcome, RunDir, execute,
};
use serde::{Deserialize, Serialize};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("delira-experiment-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Loader {
    batch_size: usize,
    workers: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    epochs: u64,
    lr: f64,
    seed: u64,
    folds: usize,
    loader: Loader,
}

impl Default for Loader {
    fn default() -> Self {
        Self {
            batch_size: 4,
            workers: 2,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            epochs: 2,
            lr: 0.5,
            seed: 7,
            folds: 3,
            loader: Loader::default(),
        }
    }
}

/// A stand-in experiment on 12 samples whose "score" of a fold is the mean of its test indices
/// times the learning rate, so that every aggregated number is known by hand.
struct Toy;

impl Experiment for Toy {
    type Config = Settings;

    fn name(&self) -> &'static str {
        "toy"
    }

    fn declared(&self) -> Settings {
        Settings::default()
    }

    fn seed(&self, config: &Settings) -> u64 {
        config.seed
    }

    fn data(&self, _: &Settings) -> Result<(usize, String), ExperimentError> {
        Ok((12, "twelve".to_owned()))
    }

    fn split(&self, config: &Settings) -> Result<Split, ExperimentError> {
        Ok(split::kfold(12, config.folds, config.seed)?)
    }

    fn train_fold(
        &self,
        config: &Settings,
        split: &Split,
        fold: usize,
        dir: &Path,
        resume: bool,
        data_fingerprint: &str,
    ) -> Result<FoldResult, ExperimentError> {
        if data_fingerprint != "twelve" {
            return Err(ExperimentError::Fold {
                fold,
                message: format!("trained on data `{data_fingerprint}`, not `twelve`"),
            });
        }
        let test = &split.folds()[fold].test;
        let score = test.iter().sum::<usize>() as f64 / test.len() as f64 * config.lr;
        std::fs::write(
            dir.join("trained"),
            if resume { "resumed" } else { "fresh" },
        )
        .unwrap();
        let history = (0..config.epochs)
            .map(|e| (e, score / (e + 1) as f64))
            .collect();
        Ok(FoldResult {
            fold,
            metrics: BTreeMap::from([
                ("score".to_owned(), score),
                ("n".to_owned(), test.len() as f64),
            ]),
            history: BTreeMap::from([("train/loss".to_owned(), history)]),
            epochs: config.epochs,
            stopped: None,
        })
    }

    fn predict_fold(
        &self,
        _: &Settings,
        split: &Split,
        fold: usize,
        dir: &Path,
        data_fingerprint: &str,
    ) -> Result<(), ExperimentError> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("predicted"),
            format!("{:?} on {data_fingerprint}", split.folds()[fold].test),
        )
        .unwrap();
        Ok(())
    }
}

fn cli(runs: &Path, args: &[&str]) -> Cli {
    let runs = runs.to_str().unwrap();
    let mut all = vec!["toy", "--runs", runs];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap()
}

#[test]
fn kfold_writes_the_run_folder_and_aggregates_exactly() {
    let runs = scratch("kfold");
    let outcome = execute(
        &Toy,
        &cli(&runs, &["kfold", "--run-id", "r1", "--set", "lr=2"]),
    )
    .unwrap();
    let Outcome::Trained {
        run,
        folds,
        summary,
    } = outcome
    else {
        panic!("kfold trains");
    };
    assert_eq!(run, runs.join("toy/r1"));
    assert_eq!(folds.len(), 3);

    // The folds are the saved split's, and their test parts cover 0..12.
    let split = Split::load(run.join("split.json")).unwrap();
    assert_eq!(split, split::kfold(12, 3, 7).unwrap());
    let mut all: Vec<usize> = split.folds().iter().flat_map(|f| f.test.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..12).collect::<Vec<_>>());

    // Scores by hand from the split: mean test index × lr (2).
    let scores: Vec<f64> = split
        .folds()
        .iter()
        .map(|f| f.test.iter().sum::<usize>() as f64 / f.test.len() as f64 * 2.0)
        .collect();
    let mean = scores.iter().sum::<f64>() / 3.0;
    let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let summary = summary.unwrap();
    let stats = summary.stats("score").unwrap();
    assert_eq!((stats.n, stats.mean), (3, mean));
    assert_eq!(stats.sd, Some(sd));
    // Test indices sum to 66 over all folds of 4: the mean of the three means is 66 / 12 × 2.
    assert!((mean - 11.0).abs() < 1e-12);

    let csv = std::fs::read_to_string(run.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "fold,n,score");
    assert_eq!(lines[1], format!("0,4,{}", scores[0]));
    assert_eq!(lines[4], format!("mean,4,{mean}"));
    assert_eq!(lines[5], format!("sd,0,{sd}"));

    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(markdown.contains(&format!(
        "| mean ± sd | 4.0000 ± 0.0000 | {mean:.4} ± {sd:.4} |"
    )));
    assert!(markdown.contains("![train_loss](plots/train_loss.png)"));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<img src=\"plots/train_loss.png\">"));
    let png = std::fs::read(run.join("plots/train_loss.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // The configuration as run, overrides applied.
    let pinned: Settings = delira::config::from_path(run.join("config.toml")).unwrap();
    assert_eq!(
        pinned,
        Settings {
            lr: 2.0,
            ..Settings::default()
        }
    );

    let manifest = Manifest::load(&run.join("manifest.json")).unwrap();
    assert_eq!(manifest.experiment, "toy");
    assert_eq!(manifest.seed, 7);
    assert_eq!(manifest.data_fingerprint, "twelve");
    assert_eq!(
        manifest.config_fingerprint,
        delira::training::checkpoint::fingerprint_json(&pinned).unwrap()
    );
    assert_eq!(manifest.delira_version, env!("CARGO_PKG_VERSION"));
    assert!(
        manifest.rustc_version.starts_with("rustc 1."),
        "{}",
        manifest.rustc_version
    );
    // The revision of the tree the test runs in (40 hex digits in a clone, `unknown` elsewhere).
    assert_eq!(
        manifest.git_revision,
        delira::experiment::git_revision(Path::new("."))
    );
    assert_eq!(manifest.created.len(), "2026-12-04T19:22:44Z".len());
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn fold_jobs_share_a_run_and_resume_alone() {
    let runs = scratch("jobs");
    for fold in ["2", "0"] {
        execute(
            &Toy,
            &cli(&runs, &["train", "--fold", fold, "--run-id", "shared"]),
        )
        .unwrap();
    }
    let run = RunDir::open(&runs, "toy", Some("shared")).unwrap();
    assert_eq!(
        run.read_fold_results()
            .unwrap()
            .iter()
            .map(|r| r.fold)
            .collect::<Vec<_>>(),
        [0, 2]
    );
    assert!(!run.fold_dir(1).exists());

    // `resume` opens the newest run with its pinned configuration.
    execute(&Toy, &cli(&runs, &["resume", "--fold", "2"])).unwrap();
    assert_eq!(
        std::fs::read_to_string(run.fold_dir(2).join("trained")).unwrap(),
        "resumed"
    );
    assert_eq!(
        std::fs::read_to_string(run.fold_dir(0).join("trained")).unwrap(),
        "fresh"
    );

    let Outcome::Reported(summary) = execute(&Toy, &cli(&runs, &["report"])).unwrap() else {
        panic!("report reports");
    };
    assert_eq!(summary.folds().len(), 2);
    assert_eq!(summary.stats("score").unwrap().n, 2);

    let Outcome::Predicted { dir } =
        execute(&Toy, &cli(&runs, &["predict", "--fold", "1"])).unwrap()
    else {
        panic!("predict predicts");
    };
    let split = Split::load(run.split_path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("predicted")).unwrap(),
        format!("{:?} on twelve", split.folds()[1].test)
    );

    // A job with other settings is refused, naming what changed.
    let err = execute(
        &Toy,
        &cli(
            &runs,
            &[
                "train",
                "--fold",
                "1",
                "--run-id",
                "shared",
                "--set",
                "loader.workers=0",
            ],
        ),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ExperimentError::ConfigMismatch { changed, .. } if changed == &["loader.workers"])
    );
    assert!(
        err.to_string().contains("(changed: loader.workers)"),
        "{err}"
    );

    let err = execute(
        &Toy,
        &cli(&runs, &["train", "--fold", "3", "--run-id", "shared"]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "fold 3 does not exist; the split has 3 folds (0..=2)"
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn overrides_and_config_files_reach_the_typed_config() {
    let runs = scratch("config");
    std::fs::create_dir_all(&runs).unwrap();
    let file = runs.join("settings.yaml");
    std::fs::write(&file, "epochs: 9\nloader:\n  workers: 0\n").unwrap();
    let file_arg = file.to_str().unwrap();

    let Outcome::Config(text) = execute(
        &Toy,
        &cli(
            &runs,
            &[
                "config",
                "--config",
                file_arg,
                "--set",
                "loader.batch_size=16",
                "--set",
                "lr=1e-3",
            ],
        ),
    )
    .unwrap() else {
        panic!("config prints");
    };
    let settings: Settings = delira::config::from_str(&text, delira::config::Format::Toml).unwrap();
    assert_eq!(
        settings,
        Settings {
            epochs: 9,
            lr: 1e-3,
            loader: Loader {
                batch_size: 16,
                workers: 0
            },
            ..Settings::default()
        }
    );

    let err = execute(&Toy, &cli(&runs, &["config", "--set", "loader.size=3"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown configuration key `loader.size`; valid keys: epochs, folds, loader.batch_size, \
         loader.workers, lr, seed"
    );
    let err = execute(&Toy, &cli(&runs, &["config", "--set", "epochs=many"])).unwrap_err();
    let ExperimentError::BadValue {
        key,
        value,
        message,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((key.as_str(), value.as_str()), ("epochs", "many"));
    assert!(
        message.contains("invalid type: string \"many\""),
        "{message}"
    );
    let err = execute(&Toy, &cli(&runs, &["config", "--set", "loader=3"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`--set loader=3`: `loader` is a table; set one of its keys: loader.batch_size, loader.workers"
    );
    let err = execute(&Toy, &cli(&runs, &["config", "--set", "epochs"])).unwrap_err();
    assert!(matches!(err, ExperimentError::NotAnAssignment { .. }));

    std::fs::write(&file, "epochs: 9\nepoch: 3\n").unwrap();
    let err = execute(&Toy, &cli(&runs, &["config", "--config", file_arg])).unwrap_err();
    assert!(err.to_string().contains("key `epoch`"), "{err}");
    std::fs::remove_dir_all(&runs).unwrap();
}

#[test]
fn the_command_line_parses_every_command() {
    use delira::experiment::Command;
    let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
    assert_eq!(parse(&["x", "train"]).unwrap(), Command::Train { fold: 0 });
    assert_eq!(
        parse(&["x", "kfold"]).unwrap(),
        Command::Kfold { fold: None }
    );
    assert_eq!(
        parse(&["x", "kfold", "--fold", "1"]).unwrap(),
        Command::Kfold { fold: Some(1) }
    );
    assert_eq!(
        parse(&["x", "resume", "--fold", "3"]).unwrap(),
        Command::Resume { fold: 3 }
    );
    assert_eq!(
        parse(&["x", "predict"]).unwrap(),
        Command::Predict { fold: 0 }
    );
    assert_eq!(parse(&["x", "report"]).unwrap(), Command::Report);
    assert!(parse(&["x", "train", "--fold", "-1"]).is_err());
    assert!(parse(&["x", "fit"]).is_err());
    // Global options go before or after the command (clap keeps the values of one side only,
    // so all `--set`s belong on the same side).
    let before = Cli::try_parse_from(["x", "--set", "a=1", "--set", "b=2", "train"]).unwrap();
    assert_eq!(before.options.set, ["a=1", "b=2"]);
    let cli = Cli::try_parse_from(["x", "train", "--set", "b=2", "--config", "c.toml"]).unwrap();
    assert_eq!(cli.options.set, ["b=2"]);
    assert_eq!(cli.options.config, Some(PathBuf::from("c.toml")));
}

#[test]
fn a_report_needs_a_finished_fold() {
    let runs = scratch("empty");
    let run = RunDir::create(&runs, "toy", Some("none")).unwrap();
    let err = run.aggregate().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` holds no finished fold (no `fold-K/result.json`); train a fold first",
            run.path().display()
        )
    );
    // Without an id, two runs in the same second get distinct folders.
    let a = RunDir::create(&runs, "toy", None).unwrap();
    let b = RunDir::create(&runs, "toy", None).unwrap();
    assert_ne!(a.path(), b.path());
    std::fs::remove_dir_all(&runs).unwrap();
}

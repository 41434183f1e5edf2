//! The command line of an experiment and the driver behind it.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ExperimentError, FoldResult, Manifest, RunDir, Summary, apply_overrides};
use crate::data::split::Split;

/// The command line of an experiment: `train`, `kfold`, `resume`, `predict`, `report`,
/// `config`, with `--config FILE`, `--set key=value` and `--fold K`.
///
/// ```
/// use clap::Parser as _;
/// use delira::experiment::{Cli, Command};
///
/// let cli = Cli::try_parse_from(["brain", "train", "--fold", "2", "--set", "epochs=3"]).unwrap();
/// assert_eq!(cli.command, Command::Train { fold: 2 });
/// assert_eq!(cli.options.set, ["epochs=3"]);
/// assert_eq!(cli.options.runs, std::path::PathBuf::from("runs"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Parser)]
#[command(version, about = "Train, cross-validate and apply a delira experiment")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Settings shared by every command.
    #[command(flatten)]
    pub options: RunOptions,
}

/// Settings shared by every command.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct RunOptions {
    /// A configuration file (TOML, YAML or JSON); keys it leaves out keep their declared values
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Changes one setting after `--config`, e.g. `--set loader.batch_size=8`; repeatable (all
    /// on the same side of the command)
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The folder that holds the runs
    #[arg(long, global = true, value_name = "DIR", default_value = "runs")]
    pub runs: PathBuf,
    /// The run to make or join (default: a new UTC timestamp for `train` and `kfold`, the newest
    /// run for the other commands)
    #[arg(long, global = true, value_name = "ID")]
    pub run_id: Option<String>,
}

/// A command.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Trains one fold and tests it; a fold job of its own when given `--run-id`
    Train {
        /// The fold
        #[arg(long, value_name = "K", default_value_t = 0)]
        fold: usize,
    },
    /// Trains and tests every fold (or only `--fold K`), then writes the report
    Kfold {
        /// Only this fold
        #[arg(long, value_name = "K")]
        fold: Option<usize>,
    },
    /// Continues a fold from its newest checkpoint, then tests it
    Resume {
        /// The fold
        #[arg(long, value_name = "K", default_value_t = 0)]
        fold: usize,
    },
    /// Applies a fold's best (or newest) model to its test part; writes the metrics to
    /// `fold-K/test.json` and every output per sample under `fold-K/predictions/`
    Predict {
        /// The fold
        #[arg(long, value_name = "K", default_value_t = 0)]
        fold: usize,
    },
    /// Aggregates the finished folds of a run: `results.csv`, `report.md`, `report.html`
    Report,
    /// Prints the configuration (declared values, `--config` and `--set` applied) as TOML
    Config,
}

impl RunOptions {
    /// The configuration to run with: `declared`, with the settings of `--config FILE` in place
    /// of its own when given (keys the file leaves out keep their declared values; see
    /// [`merge_config_file`](super::merge_config_file)), then every `--set` in order.
    pub fn resolve<T: Serialize + DeserializeOwned>(
        &self,
        declared: T,
    ) -> Result<T, ExperimentError> {
        let base = match &self.config {
            Some(path) => super::merge_config_file(&declared, path)?,
            None => declared,
        };
        apply_overrides(&base, &self.set)
    }
}

/// What an experiment provides to the driver; `experiment!{}` implements it, and a hand-written
/// experiment can too.
pub trait Experiment {
    /// The typed configuration.
    type Config: Serialize + DeserializeOwned + Clone;

    /// The experiment's name (the folder under `--runs`).
    fn name(&self) -> &str;

    /// The declared configuration.
    fn declared(&self) -> Self::Config;

    /// The seed of a configuration.
    fn seed(&self, config: &Self::Config) -> u64;

    /// The number of samples and a fingerprint of the data (see
    /// [`Fingerprint`](super::Fingerprint)): every job of a run checks it against the run's
    /// manifest, and a fold's checkpoints carry it.
    fn data(&self, config: &Self::Config) -> Result<(usize, String), ExperimentError>;

    /// Makes the split of the data.
    fn split(&self, config: &Self::Config) -> Result<Split, ExperimentError>;

    /// Trains fold `fold` in `dir` (continuing from its newest checkpoint when `resume`) and
    /// tests it; `data_fingerprint` is what [`Experiment::data`] gave for this command.
    fn train_fold(
        &self,
        config: &Self::Config,
        split: &Split,
        fold: usize,
        dir: &Path,
        resume: bool,
        data_fingerprint: &str,
    ) -> Result<FoldResult, ExperimentError>;

    /// Applies the best (or newest) model of fold `fold` (in `dir`) to its test part, writing
    /// its metrics and predictions under `dir`; `data_fingerprint` is what
    /// [`Experiment::data`] gave for this command.
    fn predict_fold(
        &self,
        config: &Self::Config,
        split: &Split,
        fold: usize,
        dir: &Path,
        data_fingerprint: &str,
    ) -> Result<(), ExperimentError>;
}

/// What a command did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Folds trained (and tested), with the run's summary when a report was written.
    Trained {
        /// The run folder.
        run: PathBuf,
        /// The results of the folds trained by this command.
        folds: Vec<FoldResult>,
        /// The aggregate over every finished fold of the run, after `kfold` or `report`.
        summary: Option<Summary>,
    },
    /// Predictions written for a fold.
    Predicted {
        /// The fold's folder.
        dir: PathBuf,
    },
    /// The run's report.
    Reported(Summary),
    /// The resolved configuration, as TOML.
    Config(String),
}

/// Runs one command of `experiment`.
///
/// `train` and `kfold` make a new run (or join `--run-id`), pin its configuration, split and
/// manifest, then train; `resume`, `predict` and `report` work on an existing run (`--run-id`,
/// or the newest), with the configuration the run was started with (`--config`/`--set` must then
/// be absent or agree with it).
pub fn execute<E: Experiment>(experiment: &E, cli: &Cli) -> Result<Outcome, ExperimentError> {
    let options = &cli.options;
    let explicit = options.config.is_some() || !options.set.is_empty();
    let config = options.resolve(experiment.declared())?;
    run_command(experiment, config, explicit, cli)
}

/// [`execute`] with a configuration made in code (`--config` and `--set` of `cli` are not
/// read): a new run pins it, an existing run must have been started with the same.
pub fn execute_with<E: Experiment>(
    experiment: &E,
    config: E::Config,
    cli: &Cli,
) -> Result<Outcome, ExperimentError> {
    run_command(experiment, config, true, cli)
}

fn run_command<E: Experiment>(
    experiment: &E,
    config: E::Config,
    explicit: bool,
    cli: &Cli,
) -> Result<Outcome, ExperimentError> {
    let options = &cli.options;
    if cli.command == Command::Config {
        return Ok(Outcome::Config(as_toml(&config)?));
    }

    let run = match cli.command {
        Command::Train { .. } | Command::Kfold { .. } => {
            RunDir::create(&options.runs, experiment.name(), options.run_id.as_deref())?
        }
        _ => RunDir::open(&options.runs, experiment.name(), options.run_id.as_deref())?,
    };
    let config = if explicit || !run.config_path().is_file() {
        run.pin_config(&config)?;
        config
    } else {
        run.read_config()?
    };
    if cli.command == Command::Report {
        return Ok(Outcome::Reported(run.aggregate()?));
    }

    let (split, data_fingerprint) = prepare(experiment, &config, &run)?;
    let check = |fold: usize| {
        if fold < split.k() {
            Ok(fold)
        } else {
            Err(ExperimentError::NoSuchFold {
                fold,
                folds: split.k(),
            })
        }
    };
    let train = |fold: usize, resume: bool| -> Result<FoldResult, ExperimentError> {
        let _span = crate::logging::fold_span(fold, split.k()).entered();
        let dir = run.fold_dir(check(fold)?);
        std::fs::create_dir_all(&dir).map_err(ExperimentError::io(&dir))?;
        let result =
            experiment.train_fold(&config, &split, fold, &dir, resume, &data_fingerprint)?;
        run.write_fold_result(&result)?;
        Ok(result)
    };

    let (folds, summary) = match cli.command {
        Command::Train { fold } => (vec![train(fold, false)?], None),
        Command::Resume { fold } => (vec![train(fold, true)?], None),
        Command::Kfold { fold: Some(fold) } => (vec![train(fold, false)?], Some(run.aggregate()?)),
        Command::Kfold { fold: None } => {
            let folds = (0..split.k())
                .map(|k| train(k, false))
                .collect::<Result<Vec<_>, _>>()?;
            (folds, Some(run.aggregate()?))
        }
        Command::Predict { fold } => {
            let dir = run.fold_dir(check(fold)?);
            experiment.predict_fold(&config, &split, fold, &dir, &data_fingerprint)?;
            return Ok(Outcome::Predicted { dir });
        }
        // Both returned above; answering again keeps the match exhaustive without a panic path.
        Command::Report => return Ok(Outcome::Reported(run.aggregate()?)),
        Command::Config => return Ok(Outcome::Config(as_toml(&config)?)),
    };
    Ok(Outcome::Trained {
        run: run.path().to_owned(),
        folds,
        summary,
    })
}

fn as_toml<T: Serialize>(config: &T) -> Result<String, ExperimentError> {
    Ok(crate::config::to_string(
        config,
        crate::config::Format::Toml,
    )?)
}

/// Pins the manifest and the split of a run; refuses data other than the run's. Returns the
/// split and the data fingerprint.
fn prepare<E: Experiment>(
    experiment: &E,
    config: &E::Config,
    run: &RunDir,
) -> Result<(Split, String), ExperimentError> {
    let (n, data_fingerprint) = experiment.data(config)?;
    let config_fingerprint =
        crate::training::checkpoint::fingerprint_json(config).map_err(|e| {
            ExperimentError::Damaged {
                path: run.config_path(),
                message: e.to_string(),
            }
        })?;
    let manifest = Manifest::new(
        experiment.name(),
        experiment.seed(config),
        &config_fingerprint,
        &data_fingerprint,
        Path::new("."),
    );
    let pinned = run.pin_manifest(manifest)?;
    if pinned.data_fingerprint != data_fingerprint {
        return Err(ExperimentError::DataChanged {
            run: run.path().to_owned(),
            pinned: pinned.data_fingerprint,
            current: data_fingerprint,
        });
    }
    let _span = crate::logging::experiment_span(experiment.name(), pinned.seed).entered();
    let split = run.pin_split(n, || experiment.split(config))?;
    Ok((split, data_fingerprint))
}

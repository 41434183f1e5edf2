//! The experiment runtime: one folder per run, the overrides of a typed configuration, the
//! aggregation of per-fold results and the command line of an experiment.
//!
//! `delira::experiment!{}` generates the glue on top of this module; everything here works
//! without it (and without the `torch` feature).
//!
//! A run lives in `<runs>/<name>/<id>/`, where `id` is a UTC timestamp (`20261204T192244Z`) or a
//! name given on the command line:
//!
//! ```text
//! runs/brain_tissue/20261204T192244Z/
//!   config.toml      the full configuration, overrides applied
//!   split.json       the folds (reused by every later job on this run)
//!   manifest.json    seed, crate and compiler versions, git revision, fingerprints
//!   fold-0/          the trainer's run folder: checkpoints/, best/, metrics.csv, ...
//!     result.json    the fold's final metrics and its learning curves
//!     test.json      `predict`: the metrics on the fold's test part
//!     predictions/   `predict`: `<index>.safetensors` per test sample (every network output),
//!                    and whatever files the experiment's own prediction hook writes
//!   results.csv      per-fold table, then mean and sample standard deviation
//!   report.md        the same as Markdown, with the learning-curve plots
//!   report.html      the same as HTML
//! ```
//!
//! Every fold is a job of its own: `train --fold 2 --run-id X` on another machine writes
//! `fold-2/` of run `X` after checking that its configuration equals the run's `config.toml`,
//! and `report --run-id X` aggregates whatever folds have finished.
//!
//! ```
//! use delira::experiment::{FoldResult, RunDir};
//! use std::collections::BTreeMap;
//!
//! let base = std::env::temp_dir().join(format!("delira-doc-run-{}", std::process::id()));
//! let run = RunDir::create(&base, "demo", Some("first")).unwrap();
//! assert_eq!(run.path(), base.join("demo").join("first"));
//! assert_eq!(run.fold_dir(1), base.join("demo/first/fold-1"));
//!
//! for (fold, dice) in [(0, 0.80), (1, 0.90)] {
//!     let result = FoldResult::new(fold, BTreeMap::from([("dice".to_owned(), dice)]));
//!     run.write_fold_result(&result).unwrap();
//! }
//! let summary = run.aggregate().unwrap();
//! let dice = summary.stats("dice").unwrap();
//! assert!((dice.mean - 0.85).abs() < 1e-12);
//! assert!((dice.sd.unwrap() - 0.07071067811865474).abs() < 1e-12); // sample sd (n - 1), as statistics.stdev
//! assert!(base.join("demo/first/report.md").is_file());
//! # std::fs::remove_dir_all(&base).unwrap();
//! ```

pub mod checks;
mod cli;
mod fingerprint;
mod git;
#[doc(hidden)]
pub mod glue;
mod manifest;
mod overrides;
mod report;
mod run;
mod train;

pub use cli::{Cli, Command, Experiment, Outcome, RunOptions, execute, execute_with};
pub use fingerprint::Fingerprint;
pub use git::git_revision;
pub use manifest::Manifest;
pub use overrides::{apply_overrides, config_keys, merge_config_file, parse_assignment};
pub use report::{FoldResult, MetricStats, Summary};
pub use run::{RunDir, run_id_now};
pub use train::{FoldJob, LoaderSettings, Settings, SinkKind, Transform};

use std::path::PathBuf;

/// The folder of a fold's folder that `predict` writes the test part's predictions into.
pub const PREDICTIONS_DIR: &str = "predictions";

/// Why an experiment could not be set up, run or reported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// A file or folder of the run could not be read or written.
    #[error("cannot access `{path}`")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the run holds something else than expected.
    #[error("`{path}` is damaged: {message}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `--set` names a key that the configuration does not have.
    #[error("unknown configuration key `{key}`; valid keys: {}", .valid.join(", "))]
    UnknownKey {
        /// The key as given.
        key: String,
        /// Every key the configuration has, dotted.
        valid: Vec<String>,
    },
    /// `--set` was not of the form `key=value`.
    #[error(
        "`--set {given}` is not an assignment; write `--set key=value`, e.g. `--set epochs=10`"
    )]
    NotAnAssignment {
        /// The argument as given.
        given: String,
    },
    /// The value of a `--set` does not fit its key.
    #[error("`--set {key}={value}`: {message}")]
    BadValue {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// Why it does not fit.
        message: String,
    },
    /// A configuration could not be read, written or converted.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The split could not be made, saved or loaded.
    #[error(transparent)]
    Split(#[from] crate::data::split::SplitError),
    /// A plot or a log could not be written.
    #[error(transparent)]
    Logging(#[from] crate::logging::LoggingError),
    /// A job's configuration differs from the one its run was started with.
    #[error(
        "the configuration differs from `{path}` (changed: {}); start a new run or pass the same settings",
        .changed.join(", ")
    )]
    ConfigMismatch {
        /// The run's `config.toml`.
        path: PathBuf,
        /// The dotted keys whose values differ.
        changed: Vec<String>,
    },
    /// A job of a run found other data than the run began with.
    #[error(
        "the data changed since run `{run}` began: its fingerprint was {pinned} and is now \
         {current}; start a new run, or restore the data the run was made from"
    )]
    DataChanged {
        /// The run folder.
        run: PathBuf,
        /// The fingerprint in the run's `manifest.json`.
        pinned: String,
        /// The fingerprint of the data now.
        current: String,
    },
    /// A fold number beyond the split.
    #[error("fold {fold} does not exist; the split has {folds} folds (0..={})", .folds.saturating_sub(1))]
    NoSuchFold {
        /// The fold asked for.
        fold: usize,
        /// The number of folds.
        folds: usize,
    },
    /// A report was asked for a run that has no finished fold.
    #[error("`{path}` holds no finished fold (no `fold-K/result.json`); train a fold first")]
    NoResults {
        /// The run folder.
        path: PathBuf,
    },
    /// A declared part of the experiment (`data`, `model`, `test`) failed.
    #[error("`{what}`: {message}")]
    Declared {
        /// The declaration's key.
        what: &'static str,
        /// Its error.
        message: String,
    },
    /// The experiment itself failed (data, model or training), with the fold it failed in.
    #[error("fold {fold}: {message}")]
    Fold {
        /// The fold.
        fold: usize,
        /// What went wrong.
        message: String,
    },
}

impl ExperimentError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

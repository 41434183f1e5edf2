//! The run manifest: what a run needs to be reproduced.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ExperimentError;

/// What a run was made from: `manifest.json` in the run folder.
///
/// ```
/// use delira::experiment::Manifest;
///
/// let manifest = Manifest::new("demo", 42, "cafe", "f00d", std::path::Path::new("."));
/// assert_eq!(manifest.seed, 42);
/// assert_eq!(manifest.delira_version, env!("CARGO_PKG_VERSION"));
/// assert!(manifest.rustc_version.starts_with("rustc ") || manifest.rustc_version == "unknown");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The experiment's name.
    pub experiment: String,
    /// The run's seed.
    pub seed: u64,
    /// When the run folder was made, UTC, RFC 3339 (`2026-12-04T19:22:44Z`).
    pub created: String,
    /// The version of the `delira` crate.
    pub delira_version: String,
    /// The compiler that built it (`rustc --version`), or `unknown`.
    pub rustc_version: String,
    /// The git commit of the working tree the run started in, or `unknown`.
    pub git_revision: String,
    /// SHA-256 of the configuration (see [`crate::training::checkpoint::fingerprint_json`]).
    pub config_fingerprint: String,
    /// A fingerprint of the data (see [`Fingerprint`](super::Fingerprint)).
    pub data_fingerprint: String,
    /// The command line that created the run.
    pub command_line: Vec<String>,
}

impl Manifest {
    /// A manifest for a run started now, with the git revision of the tree holding `source_dir`.
    pub fn new(
        experiment: &str,
        seed: u64,
        config_fingerprint: &str,
        data_fingerprint: &str,
        source_dir: &Path,
    ) -> Self {
        Self {
            experiment: experiment.to_owned(),
            seed,
            created: super::run::rfc3339(super::run::unix_now()),
            delira_version: env!("CARGO_PKG_VERSION").to_owned(),
            rustc_version: env!("DELIRA_RUSTC_VERSION").to_owned(),
            git_revision: super::git_revision(source_dir),
            config_fingerprint: config_fingerprint.to_owned(),
            data_fingerprint: data_fingerprint.to_owned(),
            command_line: std::env::args().collect(),
        }
    }

    /// Reads `manifest.json`.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(ExperimentError::io(path))?;
        serde_json::from_str(&text).map_err(|e| ExperimentError::Damaged {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Writes `manifest.json` (atomically).
    pub fn save(&self, path: &Path) -> Result<(), ExperimentError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| ExperimentError::Damaged {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        text.push('\n');
        crate::io::write_atomically(path, text.as_bytes()).map_err(ExperimentError::io(path))
    }
}

//! The run manifest: what a run needs to be reproduced.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// A fingerprint of the data (see [`Fingerprint`]).
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

/// A SHA-256 fingerprint of a dataset, fed with whatever identifies it: names, sizes, files.
///
/// Every part is length-prefixed, so `("ab", "c")` and `("a", "bc")` differ.
///
/// ```
/// use delira::experiment::Fingerprint;
///
/// let a = Fingerprint::new().text("patches").number(115).finish();
/// let b = Fingerprint::new().text("patches").number(116).finish();
/// assert_ne!(a, b);
/// assert_eq!(a.len(), 64);
/// assert_eq!(
///     Fingerprint::new().text("ab").text("c").finish() == Fingerprint::new().text("a").text("bc").finish(),
///     false
/// );
/// ```
#[derive(Clone, Debug, Default)]
pub struct Fingerprint {
    hasher: Sha256,
}

impl Fingerprint {
    /// An empty fingerprint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a piece of text.
    #[must_use]
    pub fn text(mut self, text: &str) -> Self {
        self.bytes_in(text.as_bytes());
        self
    }

    /// Adds a number.
    #[must_use]
    pub fn number(mut self, value: u64) -> Self {
        self.hasher.update(value.to_le_bytes());
        self
    }

    /// Adds a file: its name and its whole content.
    pub fn file(mut self, path: &Path) -> Result<Self, ExperimentError> {
        let bytes = std::fs::read(path).map_err(ExperimentError::io(path))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        self.bytes_in(name.as_bytes());
        self.bytes_in(&bytes);
        Ok(self)
    }

    fn bytes_in(&mut self, bytes: &[u8]) {
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// The fingerprint as 64 lowercase hexadecimal digits.
    pub fn finish(self) -> String {
        let digest = self.hasher.finalize();
        digest.iter().fold(String::with_capacity(64), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
    }
}

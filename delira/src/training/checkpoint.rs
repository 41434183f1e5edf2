//! Checkpoint files: what they hold, how they are written and read, and which ones to keep.
//!
//! A checkpoint is a folder `epoch-00005-step-000000120/` under the run's checkpoint root with
//! two files:
//!
//! - `tensors.safetensors`: the network's whole state (weights and optimizer state) in the
//!   safetensors format, data only;
//! - `manifest.json`: a [`Manifest`] (counters, best metric, schedule and callback states,
//!   sampler position, random-stream states, logger step, fingerprints) and the SHA-256 of the
//!   tensor file, wrapped with the SHA-256 of those two.
//!
//! [`CheckpointWriter`] writes the folder under a temporary name, syncs both files and the
//! folder, renames it into place and syncs the root, so a crash leaves either the complete
//! checkpoint or none (and never damages an older one). Reading verifies both checksums and
//! names the damaged file. [`CheckpointPolicy`] only *decides* which checkpoints to write and
//! which to delete; the writer does all file work.
//!
//! ```
//! use delira::training::checkpoint::{Checkpoint, CheckpointWriter, Manifest};
//!
//! let root = std::env::temp_dir().join(format!("delira-doc-checkpoint-{}", std::process::id()));
//! let writer = CheckpointWriter::new(&root);
//! let manifest = Manifest { epoch: 2, step: 30, ..Manifest::default() };
//! // In a run, the tensors come from `Network::export_state()` in the safetensors form.
//! let tensors = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView<'_>)>::new(), None).unwrap();
//! let written = writer.write(&Checkpoint { manifest, tensors }).unwrap();
//! assert!(written.ends_with("epoch-00002-step-000000030"));
//!
//! let back = Checkpoint::read(&written).unwrap();
//! assert_eq!(back.manifest.step, 30);
//! # std::fs::remove_dir_all(&root).unwrap();
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::monitor::Mode;
use super::schedule::ScheduleState;

/// The tensor file's name inside a checkpoint folder.
pub const TENSORS_FILE: &str = "tensors.safetensors";
/// The manifest's name inside a checkpoint folder.
pub const MANIFEST_FILE: &str = "manifest.json";
const FORMAT: &str = "delira-checkpoint";
const VERSION: u32 = 1;
const PARTIAL_SUFFIX: &str = ".partial";

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file operation failed.
    #[error("checkpoint file `{path}`: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is not what was written.
    #[error("checkpoint file `{path}` is damaged: {problem}")]
    Damaged {
        /// The damaged file.
        path: PathBuf,
        /// What does not match.
        problem: String,
    },
    /// The newest checkpoint is damaged and falling back was not allowed.
    #[error(
        "the newest checkpoint `{newest}` is damaged ({problem}); resume from the previous one \
         by allowing the fallback, or delete it"
    )]
    NewestDamaged {
        /// The damaged checkpoint folder.
        newest: PathBuf,
        /// Its error.
        problem: String,
    },
    /// There is no (intact) checkpoint under the root.
    #[error("no intact checkpoint under `{root}`")]
    NoneFound {
        /// The checkpoint root.
        root: PathBuf,
    },
    /// The manifest could not be encoded.
    #[error("cannot encode the checkpoint manifest: {0}")]
    Encode(String),
}

/// The best value of the monitored metric and when it was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BestMetric {
    /// The metric's name, e.g. `val_dice`.
    pub metric: String,
    /// Whether smaller or larger is better.
    pub mode: Mode,
    /// The best value (may be infinite).
    #[serde(with = "json_float")]
    pub value: f64,
    /// The epoch that reached it.
    pub epoch: u64,
}

/// Everything besides the tensors that a resumed run needs to continue exactly.
///
/// Non-finite metric values (NaN, ±infinity) are stored as the strings `"NaN"`, `"inf"` and
/// `"-inf"`, which JSON numbers cannot express.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The epoch in progress or just finished, counted from 0.
    pub epoch: u64,
    /// Optimizer steps taken since the start of training.
    pub step: u64,
    /// Batches of `epoch` already trained (the sampler position); equal to the number of
    /// batches per epoch when the epoch is complete.
    pub batch_in_epoch: u64,
    /// Whether `epoch` was completed (training, validation and callbacks).
    pub epoch_complete: bool,
    /// The metrics of the last completed epoch.
    #[serde(with = "json_float_map")]
    pub metrics: BTreeMap<String, f64>,
    /// The best monitored value so far.
    pub best: Option<BestMetric>,
    /// The learning-rate schedule's counters.
    pub schedule: Option<ScheduleState>,
    /// Each callback's state, by callback name.
    pub callbacks: BTreeMap<String, Value>,
    /// Random-stream states by purpose (`delira::random::Stream::state()`).
    pub random_streams: BTreeMap<String, [u64; 4]>,
    /// The next step number of the metric logger.
    pub logger_step: u64,
    /// A fingerprint of the experiment's configuration (see [`fingerprint_json`]).
    pub config_fingerprint: String,
    /// A fingerprint of the data (file list, split).
    pub data_fingerprint: String,
    /// Anything else the trainer wants to keep.
    pub extra: BTreeMap<String, Value>,
}

/// A checkpoint in memory: the manifest and the tensor file's bytes (safetensors).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Counters and states.
    pub manifest: Manifest,
    /// The network state in the safetensors format.
    pub tensors: Vec<u8>,
}

/// The checksummed part of the manifest file: the tensor file's checksum travels inside it, so
/// damage to that checksum is damage to the manifest.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    tensors_sha256: String,
    manifest: Manifest,
}

#[derive(Serialize)]
struct Envelope<'a> {
    format: &'a str,
    version: u32,
    body_sha256: String,
    body: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParsedEnvelope<'a> {
    format: String,
    version: u32,
    body_sha256: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

impl Checkpoint {
    /// The folder name of a checkpoint at `epoch` and `step`.
    pub fn folder_name(epoch: u64, step: u64) -> String {
        format!("epoch-{epoch:05}-step-{step:09}")
    }

    /// Reads and verifies the checkpoint in `folder`.
    pub fn read(folder: &Path) -> Result<Self, CheckpointError> {
        let manifest_path = folder.join(MANIFEST_FILE);
        let tensors_path = folder.join(TENSORS_FILE);
        let manifest_bytes = read_file(&manifest_path)?;
        let tensors = read_file(&tensors_path)?;
        let damaged = |path: &Path, problem: String| CheckpointError::Damaged {
            path: path.to_owned(),
            problem,
        };

        let envelope: ParsedEnvelope<'_> = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| damaged(&manifest_path, format!("not a checkpoint manifest: {e}")))?;
        if envelope.format != FORMAT || envelope.version != VERSION {
            return Err(damaged(
                &manifest_path,
                format!(
                    "format `{}` version {} is not `{FORMAT}` version {VERSION}",
                    envelope.format, envelope.version
                ),
            ));
        }
        let body_hash = sha256_hex(envelope.body.get().as_bytes());
        if body_hash != envelope.body_sha256 {
            return Err(damaged(
                &manifest_path,
                format!(
                    "body checksum {body_hash} differs from the recorded {}",
                    envelope.body_sha256
                ),
            ));
        }
        let body: Body = serde_json::from_str(envelope.body.get()).map_err(|e| {
            damaged(
                &manifest_path,
                format!("body does not describe a checkpoint: {e}"),
            )
        })?;
        let tensors_hash = sha256_hex(&tensors);
        if tensors_hash != body.tensors_sha256 {
            return Err(damaged(
                &tensors_path,
                format!(
                    "checksum {tensors_hash} differs from the recorded {} ({} bytes read)",
                    body.tensors_sha256,
                    tensors.len()
                ),
            ));
        }
        let manifest = body.manifest;
        Ok(Self { manifest, tensors })
    }

    fn encode_manifest(&self) -> Result<Vec<u8>, CheckpointError> {
        let encode = |e: serde_json::Error| CheckpointError::Encode(e.to_string());
        let body = Body {
            tensors_sha256: sha256_hex(&self.tensors),
            manifest: self.manifest.clone(),
        };
        let body = RawValue::from_string(serde_json::to_string_pretty(&body).map_err(encode)?)
            .map_err(encode)?;
        let envelope = Envelope {
            format: FORMAT,
            version: VERSION,
            body_sha256: sha256_hex(body.get().as_bytes()),
            body: &body,
        };
        let mut bytes = serde_json::to_vec(&envelope).map_err(encode)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The SHA-256 of `bytes`, as 64 lowercase hexadecimal digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().fold(String::with_capacity(64), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// A fingerprint of any serialisable value (its compact JSON, hashed with SHA-256).
///
/// JSON objects from `serde_json::Value` and structs serialise in a fixed order, so equal
/// configurations give equal fingerprints.
///
/// ```
/// use delira::training::checkpoint::fingerprint_json;
/// let a = fingerprint_json(&serde_json::json!({"lr": 0.1, "epochs": 3})).unwrap();
/// let b = fingerprint_json(&serde_json::json!({"epochs": 3, "lr": 0.1})).unwrap();
/// assert_eq!(a, b);
/// assert_ne!(a, fingerprint_json(&serde_json::json!({"lr": 0.2, "epochs": 3})).unwrap());
/// ```
pub fn fingerprint_json<T: Serialize + ?Sized>(value: &T) -> Result<String, CheckpointError> {
    let value = serde_json::to_value(value).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    let bytes = serde_json::to_vec(&value).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    Ok(sha256_hex(&bytes))
}

/// A checkpoint found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// The checkpoint folder.
    pub path: PathBuf,
    /// Its epoch (from the folder name).
    pub epoch: u64,
    /// Its step (from the folder name).
    pub step: u64,
}

/// Which checkpoint to resume from when the newest one is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Report the damage as an error (the default: a damaged file is never skipped silently).
    #[default]
    Refuse,
    /// Use the newest intact checkpoint, logging a warning for each damaged one skipped.
    Previous,
}

/// The one place that writes, lists and deletes checkpoint folders under a root.
#[derive(Debug, Clone)]
pub struct CheckpointWriter {
    root: PathBuf,
}

impl CheckpointWriter {
    /// A writer for checkpoints under `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The checkpoint root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `checkpoint` atomically and returns its folder.
    ///
    /// A folder of the same name is replaced (only after the new one is complete).
    pub fn write(&self, checkpoint: &Checkpoint) -> Result<PathBuf, CheckpointError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CheckpointError::Io { path, source }
        };
        let name = Checkpoint::folder_name(checkpoint.manifest.epoch, checkpoint.manifest.step);
        let target = self.root.join(&name);
        let partial = self.root.join(format!("{name}{PARTIAL_SUFFIX}"));
        let manifest = checkpoint.encode_manifest()?;

        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        fs::create_dir(&partial).map_err(io(&partial))?;
        write_synced(&partial.join(TENSORS_FILE), &checkpoint.tensors)?;
        write_synced(&partial.join(MANIFEST_FILE), &manifest)?;
        sync_dir(&partial)?;

        if target.exists() {
            // A rename cannot replace a non-empty folder; move the old one aside first.
            let old = self.root.join(format!("{name}.old"));
            if old.exists() {
                fs::remove_dir_all(&old).map_err(io(&old))?;
            }
            fs::rename(&target, &old).map_err(io(&target))?;
            fs::rename(&partial, &target).map_err(io(&partial))?;
            fs::remove_dir_all(&old).map_err(io(&old))?;
        } else {
            fs::rename(&partial, &target).map_err(io(&partial))?;
        }
        sync_dir(&self.root)?;
        tracing::debug!(path = %target.display(), "checkpoint written");
        Ok(target)
    }

    /// Deletes the checkpoint folders named (as returned by [`Checkpoint::folder_name`]).
    pub fn delete(&self, names: &[String]) -> Result<(), CheckpointError> {
        for name in names {
            let path = self.root.join(name);
            fs::remove_dir_all(&path).map_err(|source| CheckpointError::Io { path, source })?;
        }
        if !names.is_empty() {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// The complete checkpoint folders under the root, oldest first (by step, then epoch).
    /// Folders left by an interrupted write and unrelated files are ignored.
    pub fn list(&self) -> Result<Vec<CheckpointEntry>, CheckpointError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CheckpointError::Io {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| CheckpointError::Io {
                path: self.root.clone(),
                source,
            })?;
            let name = entry.file_name();
            if let Some((epoch, step)) = name.to_str().and_then(parse_folder_name) {
                found.push(CheckpointEntry {
                    path: entry.path(),
                    epoch,
                    step,
                });
            }
        }
        found.sort_by_key(|e| (e.step, e.epoch));
        Ok(found)
    }

    /// The newest checkpoint folder, if any.
    pub fn latest(&self) -> Result<Option<CheckpointEntry>, CheckpointError> {
        Ok(self.list()?.pop())
    }

    /// The checkpoint before the newest one, if any.
    pub fn previous(&self) -> Result<Option<CheckpointEntry>, CheckpointError> {
        let mut list = self.list()?;
        list.pop();
        Ok(list.pop())
    }

    /// Reads the newest checkpoint. When it is damaged, [`Fallback::Refuse`] returns
    /// [`CheckpointError::NewestDamaged`]; [`Fallback::Previous`] tries older ones in turn.
    pub fn read_latest(
        &self,
        fallback: Fallback,
    ) -> Result<(CheckpointEntry, Checkpoint), CheckpointError> {
        let list = self.list()?;
        for (age, entry) in list.iter().rev().enumerate() {
            match Checkpoint::read(&entry.path) {
                Ok(checkpoint) => return Ok((entry.clone(), checkpoint)),
                Err(error) => {
                    tracing::warn!(path = %entry.path.display(), %error, "damaged checkpoint");
                    if age == 0 && fallback == Fallback::Refuse {
                        return Err(CheckpointError::NewestDamaged {
                            newest: entry.path.clone(),
                            problem: error.to_string(),
                        });
                    }
                }
            }
        }
        Err(CheckpointError::NoneFound {
            root: self.root.clone(),
        })
    }
}

fn parse_folder_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("epoch-")?;
    let (epoch, step) = rest.split_once("-step-")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(epoch) || !digits(step) {
        return None;
    }
    Some((epoch.parse().ok()?, step.parse().ok()?))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

fn sync_dir(path: &Path) -> Result<(), CheckpointError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| CheckpointError::Io {
            path: path.to_owned(),
            source,
        })
}

/// When to write checkpoints and which to keep. It only decides; [`CheckpointWriter`] acts.
///
/// - A checkpoint is written at the end of every `every_epochs`-th epoch, at the last epoch,
///   when the monitored metric improved and `keep_best` is set, and every `every_steps` optimizer
///   steps when that is set (for resuming long epochs).
/// - Kept are the `keep_last` newest checkpoints and, with `keep_best`, the one with the best
///   monitored value (the earliest among equals); all others are deleted.
///
/// ```
/// use delira::training::Mode;
/// use delira::training::checkpoint::{CheckpointPolicy, Kept};
///
/// let policy = CheckpointPolicy { every_epochs: 2, every_steps: None, keep_last: 1, keep_best: true };
/// assert!(policy.write_at_epoch_end(1, 10, false));
/// assert!(!policy.write_at_epoch_end(2, 10, false));
/// assert!(policy.write_at_epoch_end(2, 10, true)); // improved
///
/// let kept = [
///     Kept { name: "a".into(), step: 10, metric: Some(0.9) },
///     Kept { name: "b".into(), step: 20, metric: Some(0.5) },
///     Kept { name: "c".into(), step: 30, metric: Some(0.7) },
/// ];
/// assert_eq!(policy.to_delete(&kept, Mode::Max), ["b"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointPolicy {
    /// Write at the end of every n-th epoch (1 = every epoch).
    pub every_epochs: u64,
    /// Also write every n optimizer steps, inside epochs.
    pub every_steps: Option<u64>,
    /// How many of the newest checkpoints to keep (at least 1 is always kept).
    pub keep_last: usize,
    /// Keep the checkpoint with the best monitored value, and write one when it improves.
    pub keep_best: bool,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_epochs: 1,
            every_steps: None,
            keep_last: 2,
            keep_best: true,
        }
    }
}

/// A checkpoint as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// Its folder name.
    pub name: String,
    /// Its step (orders checkpoints by age).
    pub step: u64,
    /// Its monitored value, when it was written at an epoch end with validation.
    pub metric: Option<f64>,
}

impl CheckpointPolicy {
    /// Whether to write a checkpoint at the end of `epoch` (of `epochs`), given whether the
    /// monitored metric improved in it.
    pub fn write_at_epoch_end(&self, epoch: u64, epochs: u64, improved: bool) -> bool {
        let every = self.every_epochs.max(1);
        (epoch + 1).is_multiple_of(every) || epoch + 1 >= epochs || (self.keep_best && improved)
    }

    /// Whether to write a checkpoint after optimizer step `step` (counted from 1) inside an
    /// epoch.
    pub fn write_at_step(&self, step: u64) -> bool {
        self.every_steps
            .is_some_and(|n| n > 0 && step.is_multiple_of(n))
    }

    /// The names of the checkpoints to delete, given all existing ones (in any order).
    pub fn to_delete(&self, existing: &[Kept], mode: Mode) -> Vec<String> {
        let mut by_age: Vec<&Kept> = existing.iter().collect();
        by_age.sort_by_key(|k| k.step);
        let newest_first = by_age.iter().rev();
        let mut keep: Vec<&str> = newest_first
            .take(self.keep_last.max(1))
            .map(|k| k.name.as_str())
            .collect();

        if self.keep_best {
            let mut best: Option<(&Kept, f64)> = None;
            for kept in &by_age {
                let Some(value) = kept.metric.filter(|v| !v.is_nan()) else {
                    continue;
                };
                let better = best.is_none_or(|(_, b)| match mode {
                    Mode::Min => value < b,
                    Mode::Max => value > b,
                });
                if better {
                    best = Some((kept, value));
                }
            }
            if let Some((kept, _)) = best {
                keep.push(kept.name.as_str());
            }
        }
        by_age
            .iter()
            .filter(|k| !keep.contains(&k.name.as_str()))
            .map(|k| k.name.clone())
            .collect()
    }
}

/// JSON for an `f64` that may be NaN or infinite.
mod json_float {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(serde::Serialize, Deserialize)]
    #[serde(untagged)]
    pub(super) enum Repr {
        Number(f64),
        Text(String),
    }

    pub(super) fn to_repr(value: f64) -> Repr {
        if value.is_finite() {
            Repr::Number(value)
        } else if value.is_nan() {
            Repr::Text("NaN".into())
        } else if value > 0.0 {
            Repr::Text("inf".into())
        } else {
            Repr::Text("-inf".into())
        }
    }

    pub(super) fn from_repr<E: serde::de::Error>(repr: Repr) -> Result<f64, E> {
        match repr {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!("`{other}` is not a number"))),
            },
        }
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub(super) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&to_repr(*value), serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        from_repr(Repr::deserialize(deserializer)?)
    }
}

/// JSON for a map of `f64` that may be NaN or infinite.
pub(crate) mod json_float_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::json_float::{Repr, from_repr, to_repr};

    pub(crate) fn serialize<S: Serializer>(
        map: &BTreeMap<String, f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(map.iter().map(|(k, v)| (k, to_repr(*v))))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, f64>, D::Error> {
        BTreeMap::<String, Repr>::deserialize(deserializer)?
            .into_iter()
            .map(|(k, v)| Ok((k, from_repr(v)?)))
            .collect()
    }
}

//! Fingerprints of data: what a run's manifest pins, so that a later job of the run notices
//! when the data changed under it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::ArrayD;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::ExperimentError;
use crate::data::{Dataset, Sample, Value};

/// What [`Fingerprint::dataset`] hashes first: a tag that changes whenever the layout below does.
const SAMPLES_TAG: &str = "delira.samples.v1";

/// Bytes read or converted at a time when hashing files and arrays.
const CHUNK: usize = 1 << 18;

/// A SHA-256 fingerprint of a dataset, fed with whatever identifies it: its samples, its files,
/// names and sizes.
///
/// Every part is length-prefixed, so `("ab", "c")` and `("a", "bc")` differ, and every number is
/// hashed as 8 little-endian bytes, so a fingerprint is the same on every platform.
///
/// ```
/// use delira::experiment::Fingerprint;
///
/// let a = Fingerprint::new().text("patches").number(115).finish();
/// let b = Fingerprint::new().text("patches").number(116).finish();
/// assert_ne!(a, b);
/// assert_eq!(a.len(), 64);
/// assert_ne!(
///     Fingerprint::new().text("ab").text("c").finish(),
///     Fingerprint::new().text("a").text("bc").finish(),
/// );
/// ```
///
/// # The fingerprint of a dataset
///
/// [`Fingerprint::dataset`] reads every sample and hashes its content, so that changing one value
/// of one sample changes the fingerprint. The bytes it hashes are, in this order (`u64` are 8
/// little-endian bytes, `str` a `u64` byte count followed by the UTF-8 bytes):
///
/// - the tag `str "delira.samples.v1"` and the number of samples, `u64`;
/// - per sample, in index order, the 32-byte SHA-256 digest of its fields (sample order matters);
///
/// where the digest of a sample hashes the number of fields, `u64`, then each field in the order
/// of their names (so the order in which a [`Record`](crate::data::Record) was assembled does
/// not matter): its name `str`; its type `str` (`f32`, `i64` or `text`); its number of axes and
/// each axis length, `u64` each; its content as a `u64` byte count followed by the elements in
/// logical (row-major) order as little-endian bytes, or the UTF-8 bytes of a text.
///
/// ```
/// use delira::data::{FnDataset, Record};
/// use delira::experiment::Fingerprint;
/// use ndarray::{ArrayD, IxDyn};
///
/// let ramp = |shift: f32| {
///     FnDataset::new(3, move |i| {
///         let values = ArrayD::from_shape_fn(IxDyn(&[2, 2]), |ix| (i * 4 + ix[0] * 2 + ix[1]) as f32);
///         Ok(Record::new().with("image", values.mapv(|v| if i == 2 && v == 11.0 { v + shift } else { v })))
///     })
/// };
/// let same = Fingerprint::new().dataset(&ramp(0.0), false)?.finish();
/// let changed = Fingerprint::new().dataset(&ramp(0.5), false)?.finish();
/// assert_eq!(same, Fingerprint::new().dataset(&ramp(0.0), false)?.finish());
/// assert_ne!(same, changed); // one value of one sample changed
/// # Ok::<(), delira::experiment::ExperimentError>(())
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

    /// Adds a piece of binary data.
    #[must_use]
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        self.bytes_in(bytes);
        self
    }

    /// Adds the digest of one sample's fields (see [above](Fingerprint#the-fingerprint-of-a-dataset)).
    #[must_use]
    pub fn sample<S: Sample>(mut self, sample: S) -> Self {
        self.hasher.update(sample_digest(sample));
        self
    }

    /// Adds every sample of `data`, in index order (see
    /// [above](Fingerprint#the-fingerprint-of-a-dataset)).
    ///
    /// Samples are read on rayon's threads; the work runs in a `data_fingerprint` span, is
    /// reported by an `info` event with its duration, and draws a progress bar on a terminal when
    /// `progress` is set. Reading the whole dataset once per command can take long for large
    /// data: `experiment!{}` then takes a `fingerprint:` of the source files instead.
    pub fn dataset<D>(mut self, data: &D, progress: bool) -> Result<Self, ExperimentError>
    where
        D: Dataset + ?Sized,
        D::Item: Sample,
    {
        let n = data.len();
        let _span = tracing::info_span!("data_fingerprint", samples = n).entered();
        let started = Instant::now();
        let bar = if progress {
            progress_bar(n)
        } else {
            ProgressBar::hidden()
        };

        let digests = (0..n)
            .into_par_iter()
            .map(|index| {
                let sample = data.get(index).map_err(|e| ExperimentError::Declared {
                    what: "data",
                    message: format!("sample {index} cannot be read for the data fingerprint: {e}"),
                })?;
                let digest = sample_digest(sample);
                bar.inc(1);
                tracing::trace!(index, "sample fingerprinted");
                Ok(digest)
            })
            .collect::<Result<Vec<[u8; 32]>, ExperimentError>>();
        bar.finish_and_clear();

        self = self.text(SAMPLES_TAG).number(n as u64);
        for digest in digests? {
            self.hasher.update(digest);
        }
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(samples = n, seconds, "data fingerprinted");
        Ok(self)
    }

    /// Adds a file: its name (not its folder, so that moving the data keeps the fingerprint) and
    /// its whole content, read in chunks.
    pub fn file(mut self, path: impl AsRef<Path>) -> Result<Self, ExperimentError> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        self.bytes_in(name.as_bytes());
        self.content_in(path)?;
        Ok(self)
    }

    /// Adds files in the order given, each as [`Fingerprint::file`] does.
    pub fn files<P: AsRef<Path>>(
        mut self,
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Self, ExperimentError> {
        for path in paths {
            self = self.file(path)?;
        }
        Ok(self)
    }

    /// Adds every file under `dir`, recursively (symbolic links followed), in the order of their
    /// paths relative to `dir`: each file's relative path, with `/` between folders on every
    /// platform, and its whole content.
    ///
    /// ```
    /// use delira::experiment::Fingerprint;
    ///
    /// let dir = std::env::temp_dir().join(format!("delira-doc-folder-{}", std::process::id()));
    /// std::fs::create_dir_all(dir.join("b"))?;
    /// std::fs::write(dir.join("a.txt"), "one")?;
    /// std::fs::write(dir.join("b/c.txt"), "two")?;
    /// let expected = Fingerprint::new().text("a.txt").bytes(b"one").text("b/c.txt").bytes(b"two");
    /// assert_eq!(Fingerprint::new().folder(&dir)?.finish(), expected.finish());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn folder(mut self, dir: impl AsRef<Path>) -> Result<Self, ExperimentError> {
        let dir = dir.as_ref();
        let mut files = Vec::new();
        collect_files(dir, "", &mut files)?;
        files.sort();
        for (relative, path) in files {
            self.bytes_in(relative.as_bytes());
            self.content_in(&path)?;
        }
        Ok(self)
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

    fn bytes_in(&mut self, bytes: &[u8]) {
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// A file's length and content, as [`Fingerprint::bytes`] would add them, without holding
    /// the whole file in memory.
    fn content_in(&mut self, path: &Path) -> Result<(), ExperimentError> {
        let mut file = std::fs::File::open(path).map_err(ExperimentError::io(path))?;
        let len = file.metadata().map_err(ExperimentError::io(path))?.len();
        self.hasher.update(len.to_le_bytes());
        let mut buffer = vec![0_u8; CHUNK];
        let mut read = 0_u64;
        loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ExperimentError::io(path)(e)),
            };
            self.hasher.update(&buffer[..n]);
            read += n as u64;
        }
        if read == len {
            Ok(())
        } else {
            Err(ExperimentError::Damaged {
                path: path.to_owned(),
                message: format!(
                    "it changed while being read for the data fingerprint ({len} bytes before, \
                     {read} read)"
                ),
            })
        }
    }

    /// An array's byte count and its elements in logical order, little-endian.
    fn elements<T, const N: usize>(&mut self, array: &ArrayD<T>, le: fn(T) -> [u8; N])
    where
        T: bytemuck::Pod,
    {
        self.hasher.update(((array.len() * N) as u64).to_le_bytes());
        if cfg!(target_endian = "little")
            && let Some(slice) = array.as_slice()
        {
            self.hasher.update(bytemuck::cast_slice::<T, u8>(slice));
            return;
        }
        let mut buffer = Vec::with_capacity(CHUNK);
        for &value in array {
            buffer.extend_from_slice(&le(value));
            if buffer.len() >= CHUNK {
                self.hasher.update(&buffer);
                buffer.clear();
            }
        }
        self.hasher.update(&buffer);
    }
}

/// The SHA-256 of one sample's fields, in the order of their names.
fn sample_digest<S: Sample>(sample: S) -> [u8; 32] {
    let mut fields = sample.into_fields();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let mut part = Fingerprint::new().number(fields.len() as u64);
    for (name, value) in &fields {
        part = part.text(name).text(value.kind());
        let shape = value.shape();
        part = part.number(shape.len() as u64);
        for &axis in shape {
            part = part.number(axis as u64);
        }
        match value {
            Value::F32(array) => part.elements(array, f32::to_le_bytes),
            Value::I64(array) => part.elements(array, i64::to_le_bytes),
            Value::Text(text) => part.bytes_in(text.as_bytes()),
        }
    }
    part.hasher.finalize().into()
}

fn progress_bar(n: usize) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "data fingerprint {bar:30} {pos}/{len} samples ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Every file under `dir`, with its path relative to the root (`prefix` is `dir`'s own).
fn collect_files(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<(String, PathBuf)>,
) -> Result<(), ExperimentError> {
    let entries = std::fs::read_dir(dir).map_err(ExperimentError::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(ExperimentError::io(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let metadata = std::fs::metadata(&path).map_err(ExperimentError::io(&path))?;
        if metadata.is_dir() {
            collect_files(&path, &relative, files)?;
        } else {
            files.push((relative, path));
        }
    }
    Ok(())
}

//! Text sinks: CSV and JSON lines, scalars only.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ndarray::ArrayView3;

use super::{LoggingError, MetricSink};

fn open_append(path: &Path) -> Result<(BufWriter<File>, bool), LoggingError> {
    let io = |source| LoggingError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    let empty = file.metadata().map_err(io)?.len() == 0;
    Ok((BufWriter::new(file), empty))
}

/// Scalars as CSV rows `step,tag,value`, appended to one file (a header is written when the file
/// is new, so a resumed run continues the same file). Images and histograms are not stored.
///
/// Values are written in Rust's shortest round-trip form, so reading them back gives the exact
/// `f64`; tags containing commas or quotes are quoted.
///
/// ```
/// use delira::logging::{CsvSink, MetricSink};
///
/// let path = std::env::temp_dir().join(format!("delira-doc-{}.csv", std::process::id()));
/// let mut sink = CsvSink::create(&path).unwrap();
/// sink.scalar("val/dice", 3, 0.1 + 0.2).unwrap();
/// sink.flush().unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "step,tag,value\n3,val/dice,0.30000000000000004\n");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub struct CsvSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl CsvSink {
    /// Opens `path` for appending, creating it (and its folder) when missing.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, LoggingError> {
        let path = path.as_ref().to_owned();
        let (mut out, empty) = open_append(&path)?;
        if empty {
            out.write_all(b"step,tag,value\n")
                .map_err(|source| LoggingError::Io {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(Self { path, out })
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

impl MetricSink for CsvSink {
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LoggingError> {
        writeln!(self.out, "{step},{},{value}", csv_field(tag)).map_err(|source| LoggingError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn image(&mut self, _: &str, _: u64, _: ArrayView3<'_, u8>) -> Result<(), LoggingError> {
        Ok(())
    }

    fn histogram(&mut self, _: &str, _: u64, _: &[f64]) -> Result<(), LoggingError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LoggingError> {
        self.out.flush().map_err(|source| LoggingError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Scalars as JSON lines `{"step":3,"tag":"loss","value":0.5}`, appended to one file.
/// Non-finite values are written as the strings `"NaN"`, `"inf"`, `"-inf"`. Images and
/// histograms are not stored.
///
/// ```
/// use delira::logging::{JsonLinesSink, MetricSink};
///
/// let path = std::env::temp_dir().join(format!("delira-doc-{}.jsonl", std::process::id()));
/// let mut sink = JsonLinesSink::create(&path).unwrap();
/// sink.scalar("loss", 1, 0.5).unwrap();
/// sink.scalar("loss", 2, f64::NAN).unwrap();
/// sink.flush().unwrap();
/// assert_eq!(
///     std::fs::read_to_string(&path).unwrap(),
///     "{\"step\":1,\"tag\":\"loss\",\"value\":0.5}\n{\"step\":2,\"tag\":\"loss\",\"value\":\"NaN\"}\n"
/// );
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub struct JsonLinesSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonLinesSink {
    /// Opens `path` for appending, creating it (and its folder) when missing.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, LoggingError> {
        let path = path.as_ref().to_owned();
        let (out, _) = open_append(&path)?;
        Ok(Self { path, out })
    }
}

impl MetricSink for JsonLinesSink {
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LoggingError> {
        let value = if value.is_finite() {
            serde_json::json!(value)
        } else if value.is_nan() {
            serde_json::json!("NaN")
        } else if value > 0.0 {
            serde_json::json!("inf")
        } else {
            serde_json::json!("-inf")
        };
        let line = serde_json::json!({"step": step, "tag": tag, "value": value});
        writeln!(self.out, "{line}").map_err(|source| LoggingError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn image(&mut self, _: &str, _: u64, _: ArrayView3<'_, u8>) -> Result<(), LoggingError> {
        Ok(())
    }

    fn histogram(&mut self, _: &str, _: u64, _: &[f64]) -> Result<(), LoggingError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LoggingError> {
        self.out.flush().map_err(|source| LoggingError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

//! TensorBoard event files, written without TensorFlow.
//!
//! An event file is a sequence of `TFRecord`s — `length: u64 LE`, `masked CRC32C of the length`,
//! `data`, `masked CRC32C of the data` — each holding one `tensorflow.Event` protocol buffer.
//! The first event names the file version (`brain.Event:2`); every later one carries a
//! `Summary` with one value: a `simple_value` scalar (32-bit float, as TensorBoard stores it), a
//! PNG-encoded image, or a histogram with bucket limits and counts. The few protocol-buffer
//! fields needed are encoded by hand below.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ndarray::ArrayView3;

use super::{LoggingError, MetricSink};

/// Writes one TensorBoard event file.
///
/// ```
/// use delira::logging::{MetricSink, TensorBoardWriter};
///
/// let dir = std::env::temp_dir().join(format!("delira-doc-tb-{}", std::process::id()));
/// let mut writer = TensorBoardWriter::create(&dir).unwrap();
/// writer.scalar("train/loss", 0, 0.75).unwrap();
/// writer.flush().unwrap();
/// let name = writer.path().file_name().unwrap().to_str().unwrap().to_owned();
/// assert!(name.starts_with("events.out.tfevents."));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct TensorBoardWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl std::fmt::Debug for TensorBoardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorBoardWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The number of equal-width buckets of a histogram.
const HISTOGRAM_BUCKETS: usize = 30;

impl TensorBoardWriter {
    /// Creates a new event file in `dir` (created if needed), named as TensorBoard expects
    /// (`events.out.tfevents.<seconds>.<host>`), and writes the version record.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, LoggingError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| LoggingError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let now = wall_time();
        // Seconds and process id keep two writers of one directory apart.
        let path = dir.join(format!(
            "events.out.tfevents.{}.delira.{}",
            now as u64,
            std::process::id()
        ));
        let file = File::create(&path).map_err(|source| LoggingError::Io {
            path: path.clone(),
            source,
        })?;
        let mut writer = Self {
            path,
            out: BufWriter::new(file),
        };

        let mut event = Vec::new();
        put_double(&mut event, 1, now);
        put_bytes(&mut event, 3, b"brain.Event:2");
        writer.record(&event)?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn summary(&mut self, step: u64, value: &[u8]) -> Result<(), LoggingError> {
        let mut summary = Vec::new();
        put_bytes(&mut summary, 1, value);
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        put_varint_field(&mut event, 2, step);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    fn record(&mut self, data: &[u8]) -> Result<(), LoggingError> {
        let length = (data.len() as u64).to_le_bytes();
        let io = |source| LoggingError::Io {
            path: self.path.clone(),
            source,
        };
        let mut framed = Vec::with_capacity(data.len() + 16);
        framed.extend_from_slice(&length);
        framed.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
        framed.extend_from_slice(data);
        framed.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.out.write_all(&framed).map_err(io)
    }
}

impl MetricSink for TensorBoardWriter {
    fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), LoggingError> {
        let mut value_msg = Vec::new();
        put_bytes(&mut value_msg, 1, tag.as_bytes());
        put_key(&mut value_msg, 2, 5);
        value_msg.extend_from_slice(&(value as f32).to_le_bytes());
        self.summary(step, &value_msg)
    }

    fn image(
        &mut self,
        tag: &str,
        step: u64,
        image: ArrayView3<'_, u8>,
    ) -> Result<(), LoggingError> {
        let (height, width, channels) = image.dim();
        let png = encode_png(tag, &image)?;
        let mut image_msg = Vec::new();
        put_varint_field(&mut image_msg, 1, height as u64);
        put_varint_field(&mut image_msg, 2, width as u64);
        put_varint_field(&mut image_msg, 3, channels as u64);
        put_bytes(&mut image_msg, 4, &png);

        let mut value_msg = Vec::new();
        put_bytes(&mut value_msg, 1, tag.as_bytes());
        put_bytes(&mut value_msg, 4, &image_msg);
        self.summary(step, &value_msg)
    }

    fn histogram(&mut self, tag: &str, step: u64, values: &[f64]) -> Result<(), LoggingError> {
        let histogram = Histogram::of(values);
        let mut histo = Vec::new();
        put_double(&mut histo, 1, histogram.min);
        put_double(&mut histo, 2, histogram.max);
        put_double(&mut histo, 3, histogram.count as f64);
        put_double(&mut histo, 4, histogram.sum);
        put_double(&mut histo, 5, histogram.sum_squares);
        put_packed_doubles(&mut histo, 6, &histogram.limits);
        put_packed_doubles(&mut histo, 7, &histogram.counts);

        let mut value_msg = Vec::new();
        put_bytes(&mut value_msg, 1, tag.as_bytes());
        put_bytes(&mut value_msg, 5, &histo);
        self.summary(step, &value_msg)
    }

    fn flush(&mut self) -> Result<(), LoggingError> {
        self.out.flush().map_err(|source| LoggingError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for TensorBoardWriter {
    fn drop(&mut self) {
        if let Err(error) = self.out.flush() {
            tracing::warn!(path = %self.path.display(), %error, "could not flush the event file");
        }
    }
}

/// Equal-width buckets between the smallest and largest finite value; each limit is the right
/// edge of its bucket, the last one the maximum.
struct Histogram {
    min: f64,
    max: f64,
    count: usize,
    sum: f64,
    sum_squares: f64,
    limits: Vec<f64>,
    counts: Vec<f64>,
}

impl Histogram {
    fn of(values: &[f64]) -> Self {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return Self {
                min: 0.0,
                max: 0.0,
                count: 0,
                sum: 0.0,
                sum_squares: 0.0,
                limits: vec![0.0],
                counts: vec![0.0],
            };
        }
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let buckets = if max > min { HISTOGRAM_BUCKETS } else { 1 };
        let width = (max - min) / buckets as f64;
        let mut limits: Vec<f64> = (1..=buckets).map(|i| min + width * i as f64).collect();
        if let Some(last) = limits.last_mut() {
            *last = max;
        }
        let mut counts = vec![0.0; buckets];
        for &v in &finite {
            let index = if width > 0.0 {
                (((v - min) / width) as usize).min(buckets - 1)
            } else {
                0
            };
            counts[index] += 1.0;
        }
        Self {
            min,
            max,
            count: finite.len(),
            sum: finite.iter().sum(),
            sum_squares: finite.iter().map(|v| v * v).sum(),
            limits,
            counts,
        }
    }
}

pub(super) fn encode_png(tag: &str, image: &ArrayView3<'_, u8>) -> Result<Vec<u8>, LoggingError> {
    let (height, width, channels) = image.dim();
    let color = match channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        _ => {
            return Err(LoggingError::ImageShape {
                tag: tag.to_owned(),
                shape: image.shape().to_vec(),
            });
        }
    };
    let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(LoggingError::ImageShape {
            tag: tag.to_owned(),
            shape: image.shape().to_vec(),
        });
    };
    if w == 0 || h == 0 {
        return Err(LoggingError::ImageShape {
            tag: tag.to_owned(),
            shape: image.shape().to_vec(),
        });
    }
    let pixels: Vec<u8> = image.iter().copied().collect();
    let encode = |e: png::EncodingError| LoggingError::Encode {
        what: tag.to_owned(),
        message: e.to_string(),
    };
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, w, h);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(encode)?;
        writer.write_image_data(&pixels).map_err(encode)?;
        writer.finish().map_err(encode)?;
    }
    Ok(bytes)
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_key(out, field, 0);
    put_varint(out, value);
}

fn put_double(out: &mut Vec<u8>, field: u32, value: f64) {
    put_key(out, field, 1);
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_packed_doubles(out: &mut Vec<u8>, field: u32, values: &[f64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    put_bytes(out, field, &bytes);
}

/// CRC-32C (Castagnoli) of `data`, as `TFRecord` framing uses it.
///
/// ```
/// assert_eq!(delira::logging::crc32c(b"123456789"), 0xE306_9283);
/// ```
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = crc32c_table();
    let mut crc = !0_u32;
    for &byte in data {
        crc = TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0_u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// The masked CRC-32C that `TFRecord` stores: rotated right by 15 bits plus a constant, so that a
/// CRC of data containing CRCs stays well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

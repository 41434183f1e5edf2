//! Getting the header and the voxel bytes out of `.nii`, `.nii.gz` and `.hdr`/`.img` files,
//! never allocating more than the files can fill.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::header::{Header, NIFTI2_HEADER_SIZE, detect};
use crate::io::IoError;

/// The most bytes one compressed byte can inflate to: deflate's limit is 1032:1; the slack covers
/// the gzip framing of tiny files.
const MAX_INFLATE_RATIO: u64 = 1032;
const INFLATE_SLACK: u64 = 1 << 16;

/// A header and the bytes of its voxels, still in the file's byte order.
pub(crate) struct Raw {
    pub header: Header,
    /// The data file's (inflated) content; the voxels are `bytes[start..start + len]`.
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl Raw {
    pub fn voxels(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }
}

pub(crate) fn format_error(path: &Path, problem: impl Into<String>) -> IoError {
    IoError::Format {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, IoError> {
    std::fs::read(path).map_err(|source| IoError::File {
        path: path.to_path_buf(),
        source,
    })
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The header and image files of a `.hdr`/`.img` pair (optionally gzipped), or `None` for a
/// single file. The pair's extensions keep the case of the given one (`.HDR` pairs with `.IMG`).
fn pair_of(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let name = path.file_name()?.to_str()?;
    let (base, gz) = match name
        .len()
        .checked_sub(3)
        .and_then(|i| Some((i, name.get(i..)?)))
    {
        Some((i, tail)) if tail.eq_ignore_ascii_case(".gz") => (&name[..i], tail),
        _ => (name, ""),
    };
    let at = base.len().checked_sub(4)?;
    let ext = base.get(at..)?;
    if !(ext.eq_ignore_ascii_case(".hdr") || ext.eq_ignore_ascii_case(".img")) {
        return None;
    }
    let upper = ext.chars().any(|c| c.is_ascii_uppercase());
    let with = |e: &str| {
        let e = if upper {
            e.to_ascii_uppercase()
        } else {
            e.to_owned()
        };
        path.with_file_name(format!("{}{e}{gz}", &base[..at]))
    };
    Some((with(".hdr"), with(".img")))
}

/// Reads the header and voxel bytes of a NIfTI file.
pub(crate) fn read_raw(path: &Path) -> Result<Raw, IoError> {
    match pair_of(path) {
        Some((header_path, image_path)) => read_pair(path, &header_path, &image_path),
        None => read_single(path),
    }
}

fn read_single(path: &Path) -> Result<Raw, IoError> {
    let file = read_file(path)?;
    let gzip = is_gzip(&file);
    let head = if gzip {
        inflate_prefix(&file, NIFTI2_HEADER_SIZE).map_err(|p| format_error(path, p))?
    } else {
        file[..file.len().min(NIFTI2_HEADER_SIZE)].to_vec()
    };
    let mut header = Header::parse(&head).map_err(|p| format_error(path, p))?;

    // The standard puts a single file's data at 352 or later; nibabel reads an offset of 0 (an
    // old writers' habit) as "right after the header".
    let minimum = header.size() as u64 + 4;
    if header.vox_offset < minimum {
        header.vox_offset = minimum;
    }
    let (start, len) = data_extent(path, &header)?;
    let bytes = if gzip {
        inflate_exact(&file, start + len).map_err(|p| format_error(path, p))?
    } else {
        check_length(path, &header, file.len(), start, len)?;
        file
    };
    header.parse_extensions(&bytes[..start]);
    Ok(Raw {
        header,
        bytes,
        start,
        len,
    })
}

fn read_pair(path: &Path, header_path: &Path, image_path: &Path) -> Result<Raw, IoError> {
    let head = read_file(header_path)?;
    let head = if is_gzip(&head) {
        inflate_all(&head).map_err(|p| format_error(header_path, p))?
    } else {
        head
    };
    let mut header = Header::parse(&head).map_err(|p| format_error(header_path, p))?;
    header.parse_extensions(&head);

    let (start, len) = data_extent(path, &header)?;
    let image = read_file(image_path)?;
    let bytes = if is_gzip(&image) {
        inflate_exact(&image, start + len).map_err(|p| format_error(image_path, p))?
    } else {
        check_length(image_path, &header, image.len(), start, len)?;
        image
    };
    Ok(Raw {
        header,
        bytes,
        start,
        len,
    })
}

/// The offset and length of the voxel data, as `usize`, or an error when they cannot be
/// addressed on this machine.
fn data_extent(path: &Path, header: &Header) -> Result<(usize, usize), IoError> {
    let (_, bytes) = header.data_size().map_err(|p| format_error(path, p))?;
    let end = header.vox_offset.checked_add(bytes);
    match (
        usize::try_from(header.vox_offset),
        usize::try_from(bytes),
        end,
    ) {
        (Ok(start), Ok(len), Some(end)) if usize::try_from(end).is_ok() => Ok((start, len)),
        _ => Err(format_error(
            path,
            format!(
                "dimensions {:?} of {} at offset {} need {bytes} bytes, more than this machine \
                 can address",
                &header.dim[1..=header.dim[0].clamp(1, 7) as usize],
                header.datatype.name(),
                header.vox_offset
            ),
        )),
    }
}

fn check_length(
    path: &Path,
    header: &Header,
    file_len: usize,
    start: usize,
    len: usize,
) -> Result<(), IoError> {
    if start.saturating_add(len) <= file_len {
        return Ok(());
    }
    Err(format_error(
        path,
        format!(
            "data truncated: dimensions {:?} of {} need {len} bytes from offset {start}, but \
             the file has {file_len} bytes",
            &header.dim[1..=header.dim[0].clamp(1, 7) as usize],
            header.datatype.name()
        ),
    ))
}

/// Up to `want` bytes from the start of a gzip stream (fewer when it is shorter).
fn inflate_prefix(compressed: &[u8], want: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(want);
    MultiGzDecoder::new(compressed)
        .take(want as u64)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt gzip data at the start of the file: {e}"))?;
    // The header's first bytes tell whether this is NIfTI at all; a clearer message than a
    // parse failure further on.
    detect(&out)?;
    Ok(out)
}

/// The whole content of a gzip stream; the buffer grows only as data actually inflates.
fn inflate_all(compressed: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    MultiGzDecoder::new(compressed)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt gzip data after {} inflated bytes: {e}", out.len()))?;
    Ok(out)
}

/// Exactly the first `total` inflated bytes of a gzip stream.
///
/// `total` comes from the header, so it is first checked against what the compressed bytes could
/// possibly inflate to. The fast path inflates in one call with libdeflate (the fastest inflater
/// measured); a stream with several members, or one that holds more than `total` bytes, or a
/// damaged one, goes through a streaming decoder that also names the problem.
pub(crate) fn inflate_exact(compressed: &[u8], total: usize) -> Result<Vec<u8>, String> {
    let limit = (compressed.len() as u64)
        .saturating_mul(MAX_INFLATE_RATIO)
        .saturating_add(INFLATE_SLACK);
    if total as u64 > limit {
        return Err(format!(
            "the header announces {total} bytes, more than {} gzip bytes can inflate to; the \
             dimensions are corrupt or the file is truncated",
            compressed.len()
        ));
    }

    let mut out = vec![0u8; total];
    let mut inflater = libdeflater::Decompressor::new();
    if inflater.gzip_decompress(compressed, &mut out) == Ok(total) {
        return Ok(out);
    }

    let mut decoder = MultiGzDecoder::new(compressed);
    let mut filled = 0;
    while filled < total {
        match decoder.read(&mut out[filled..]) {
            Ok(0) => {
                return Err(format!(
                    "data truncated: the file inflates to {filled} bytes, the header needs {total}"
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(format!(
                    "gzip data truncated: the stream ends after {filled} of {total} inflated \
                     bytes ({e})"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "corrupt gzip data after {filled} of {total} inflated bytes: {e}"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_recognised_with_their_case_and_compression() {
        let pair = |p: &str| {
            pair_of(Path::new(p)).map(|(h, i)| (h.display().to_string(), i.display().to_string()))
        };
        assert_eq!(pair("a/b.hdr"), Some(("a/b.hdr".into(), "a/b.img".into())));
        assert_eq!(pair("a/b.img"), Some(("a/b.hdr".into(), "a/b.img".into())));
        assert_eq!(pair("b.HDR"), Some(("b.HDR".into(), "b.IMG".into())));
        assert_eq!(
            pair("b.img.gz"),
            Some(("b.hdr.gz".into(), "b.img.gz".into()))
        );
        assert_eq!(pair("b.nii.gz"), None);
        assert_eq!(pair("b.nii"), None);
    }

    #[test]
    fn inflation_beyond_the_deflate_limit_is_refused_before_allocating() {
        let problem = inflate_exact(&[0x1f, 0x8b, 8, 0], usize::MAX / 2).unwrap_err();
        assert!(
            problem.contains("more than 4 gzip bytes can inflate to"),
            "{problem}"
        );
    }
}

//! Getting the header and the voxel bytes out of `.nii`, `.nii.gz` and `.hdr`/`.img` files,
//! never allocating more than the files can fill.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::header::{Header, NIFTI2_HEADER_SIZE, detect};
use crate::io::IoError;

/// The most bytes one compressed byte can inflate to: deflate's limit is 1032:1; the slack covers
/// the gzip framing of tiny files.
const MAX_INFLATE_RATIO: u64 = 1032;
const INFLATE_SLACK: u64 = 1 << 16;

/// An opened NIfTI image: the header (extensions included), checked against the size of the
/// data file, and the means to copy its voxel bytes (in the file's byte order) into a buffer.
pub(crate) struct Opened {
    pub header: Header,
    /// The file that holds the voxels (the `.img` of a pair), named in errors.
    data_path: PathBuf,
    content: Content,
    /// Where the voxels start in the (inflated) data file: `vox_offset`.
    start: usize,
    /// The number of voxel bytes.
    len: usize,
}

enum Content {
    /// An uncompressed file, read only when the voxels are asked for.
    Plain(File),
    /// A whole gzip file, inflated when the voxels are asked for.
    Gzip(Vec<u8>),
}

impl Opened {
    /// The number of voxel bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The size of the buffer [`Opened::fill_tail`] needs: the voxel bytes, plus for a gzip
    /// stream the bytes before them (a one-shot inflater writes the whole stream).
    pub fn room(&self) -> usize {
        match self.content {
            Content::Plain(_) => self.len,
            Content::Gzip(_) => self.start + self.len,
        }
    }

    /// Writes the voxel bytes into the last [`Opened::len`] bytes of `buffer`, whose length must
    /// be at least [`Opened::room`]; the bytes before them may be overwritten too.
    pub fn fill_tail(&self, buffer: &mut [u8]) -> Result<(), IoError> {
        let room = self.room();
        let tail = buffer.len() - room;
        let target = &mut buffer[tail..];
        match &self.content {
            Content::Plain(file) => read_at(file, self.start as u64, target).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    format_error(
                        &self.data_path,
                        "data truncated: the file shrank while being read",
                    )
                } else {
                    IoError::File {
                        path: self.data_path.clone(),
                        source: e,
                    }
                }
            }),
            Content::Gzip(compressed) => {
                inflate_into(compressed, target).map_err(|p| format_error(&self.data_path, p))
            }
        }
    }

    /// The voxel bytes in a buffer of their own.
    pub fn voxel_bytes(&self) -> Result<Vec<u8>, IoError> {
        let mut buffer = zeroed(self.room());
        self.fill_tail(&mut buffer)?;
        buffer.drain(..buffer.len() - self.len);
        Ok(buffer)
    }
}

pub(crate) fn format_error(path: &Path, problem: impl Into<String>) -> IoError {
    IoError::Format {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// A zeroed buffer of `len` values for voxels about to be written.
///
/// On Linux a large buffer asks for transparent huge pages: filling fresh memory page by page
/// costs about as much as inflating it, and 2 MiB pages halve that (measured: 128 MiB in 65-75 ms
/// of CPU with 4 KiB pages, 29-43 ms with huge pages).
pub(crate) fn zeroed<T: bytemuck::Pod>(len: usize) -> Vec<T> {
    let mut values = vec![T::zeroed(); len];
    #[cfg(target_os = "linux")]
    advise_huge_pages(bytemuck::cast_slice_mut(&mut values));
    values
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(buffer: &mut [u8]) {
    const PAGE: usize = 4096;
    if buffer.len() < 8 << 20 {
        return;
    }
    let start = buffer.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(PAGE);
    let len = (start + buffer.len() - aligned) / PAGE * PAGE;
    // SAFETY: `[aligned, aligned + len)` lies inside `buffer`, which this function borrows
    // mutably. MADV_HUGEPAGE is advice about how the kernel backs those pages: it neither reads
    // nor changes their content (still zero, as the caller allocated them), and its failure
    // leaves everything as it was, so the result is ignored.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

fn read_at(mut file: &File, offset: u64, target: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(target)
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

/// Opens a NIfTI file: reads and checks its header; the voxels stay in the file.
pub(crate) fn open(path: &Path) -> Result<Opened, IoError> {
    match pair_of(path) {
        Some((header_path, image_path)) => open_pair(path, &header_path, &image_path),
        None => open_single(path),
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    |source| IoError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Up to `limit` bytes from the start of `file`.
fn read_prefix(file: &File, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut reader = file;
    reader.seek(SeekFrom::Start(0))?;
    reader.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

fn open_single(path: &Path) -> Result<Opened, IoError> {
    let mut file = File::open(path).map_err(file_error(path))?;
    let mut magic = [0u8; 2];
    let gzip = file.read(&mut magic).map_err(file_error(path))? == 2 && is_gzip(&magic);
    let compressed = if gzip {
        let mut all = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(file_error(path))?;
        file.read_to_end(&mut all).map_err(file_error(path))?;
        Some(all)
    } else {
        None
    };
    let head = match &compressed {
        Some(all) => {
            inflate_prefix(all, NIFTI2_HEADER_SIZE as u64).map_err(|p| format_error(path, p))?
        }
        None => read_prefix(&file, NIFTI2_HEADER_SIZE as u64).map_err(file_error(path))?,
    };
    detect(&head).map_err(|p| format_error(path, p))?;
    let mut header = Header::parse(&head).map_err(|p| format_error(path, p))?;

    // The standard puts a single file's data at 352 or later; nibabel reads an offset of 0 (an
    // old writers' habit) as "right after the header".
    let minimum = header.size() as u64 + 4;
    if header.vox_offset < minimum {
        header.vox_offset = minimum;
    }
    let (start, len) = data_extent(path, &header)?;
    let content = if let Some(all) = compressed {
        check_inflatable(all.len(), start + len).map_err(|p| format_error(path, p))?;
        let prefix = inflate_prefix(&all, start as u64).map_err(|p| format_error(path, p))?;
        header.parse_extensions(&prefix);
        Content::Gzip(all)
    } else {
        let size = file.metadata().map_err(file_error(path))?.len();
        check_length(path, &header, size, start, len)?;
        header.parse_extensions(&read_prefix(&file, start as u64).map_err(file_error(path))?);
        Content::Plain(file)
    };
    Ok(Opened {
        header,
        data_path: path.to_path_buf(),
        content,
        start,
        len,
    })
}

fn open_pair(path: &Path, header_path: &Path, image_path: &Path) -> Result<Opened, IoError> {
    let head = std::fs::read(header_path).map_err(file_error(header_path))?;
    let head = if is_gzip(&head) {
        inflate_all(&head).map_err(|p| format_error(header_path, p))?
    } else {
        head
    };
    detect(&head).map_err(|p| format_error(header_path, p))?;
    let mut header = Header::parse(&head).map_err(|p| format_error(header_path, p))?;
    header.parse_extensions(&head);

    let (start, len) = data_extent(path, &header)?;
    let mut image = File::open(image_path).map_err(file_error(image_path))?;
    let mut magic = [0u8; 2];
    let gzip = image.read(&mut magic).map_err(file_error(image_path))? == 2 && is_gzip(&magic);
    let content = if gzip {
        let mut all = Vec::new();
        image
            .seek(SeekFrom::Start(0))
            .map_err(file_error(image_path))?;
        image
            .read_to_end(&mut all)
            .map_err(file_error(image_path))?;
        check_inflatable(all.len(), start + len).map_err(|p| format_error(image_path, p))?;
        Content::Gzip(all)
    } else {
        let size = image.metadata().map_err(file_error(image_path))?.len();
        check_length(image_path, &header, size, start, len)?;
        Content::Plain(image)
    };
    Ok(Opened {
        header,
        data_path: image_path.to_path_buf(),
        content,
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
    file_len: u64,
    start: usize,
    len: usize,
) -> Result<(), IoError> {
    if (start as u64).saturating_add(len as u64) <= file_len {
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

/// Up to `want` bytes from the start of a gzip stream (fewer when it is shorter); the buffer
/// grows only as data actually inflates.
fn inflate_prefix(compressed: &[u8], want: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    MultiGzDecoder::new(compressed)
        .take(want)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt gzip data after {} inflated bytes: {e}", out.len()))?;
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

/// Whether `compressed` gzip bytes can inflate to `total` bytes at all; checked before any
/// buffer of `total` bytes is allocated.
fn check_inflatable(compressed: usize, total: usize) -> Result<(), String> {
    let limit = (compressed as u64)
        .saturating_mul(MAX_INFLATE_RATIO)
        .saturating_add(INFLATE_SLACK);
    if total as u64 > limit {
        return Err(format!(
            "the header announces {total} bytes, more than {compressed} gzip bytes can inflate \
             to; the dimensions are corrupt or the file is truncated"
        ));
    }
    Ok(())
}

/// Fills `out` with the first `out.len()` inflated bytes of a gzip stream.
///
/// The fast path inflates in one call with libdeflate (the fastest inflater measured, see
/// `benches/nifti.rs`); a stream with several members, or one that holds more bytes than
/// `out`, or a damaged one, goes through a streaming decoder that also names the problem.
fn inflate_into(compressed: &[u8], out: &mut [u8]) -> Result<(), String> {
    let total = out.len();
    let mut inflater = libdeflater::Decompressor::new();
    if inflater.gzip_decompress(compressed, out) == Ok(total) {
        return Ok(());
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
    Ok(())
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
    fn inflation_beyond_the_deflate_limit_is_refused() {
        let problem = check_inflatable(4, usize::MAX / 2).unwrap_err();
        assert!(
            problem.contains("more than 4 gzip bytes can inflate to"),
            "{problem}"
        );
        assert!(check_inflatable(4, 4000).is_ok());
    }
}

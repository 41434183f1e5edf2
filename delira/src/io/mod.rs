//! Reading and writing medical images.
//!
//! [`Volume`] holds image data together with its position in physical space; [`LabelMap`] holds
//! integer labels on such a grid. [`load_volume`], [`load_labels`], [`save_volume`] and
//! [`save_labels`] read and write them as NIfTI files; [`nifti`] has the details and a raw reader.

mod atomic;
pub mod nifti;
mod volume;

pub use atomic::write_atomically;
pub use nifti::{load_labels, load_volume, save_labels, save_volume};
pub use volume::{Affine, LabelMap, Volume};

use std::path::PathBuf;

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The operating system refused an operation on a file.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file's content is not what its format requires.
    #[error("{path}: {problem}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the values found.
        problem: String,
    },
}

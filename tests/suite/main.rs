//! The integration-test suite of delira: one binary, one module per area.

mod augment;
mod loader;
mod nifti;
mod split;
mod wrappers;

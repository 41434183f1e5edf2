//! The integration-test suite of delira: one binary, one module per area.

mod config;
mod derive;
mod inference;
mod loader;
mod nifti;
mod split;
mod ui;
mod wrappers;

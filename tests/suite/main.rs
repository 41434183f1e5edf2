//! The integration-test suite of delira: one binary, one module per area.

mod backend;
mod config;
mod derive;
mod loader;
mod nifti;
mod split;
#[cfg(feature = "torch")]
mod torch_backend;
#[cfg(feature = "torch")]
mod torch_models;
mod ui;
mod wrappers;

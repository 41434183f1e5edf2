//! The integration-test suite of delira: one binary, one module per area.

mod backend;
#[cfg(feature = "torch")]
mod torch_backend;
#[cfg(feature = "torch")]
mod torch_models;

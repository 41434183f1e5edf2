//! The integration-test suite of delira: one binary, one module per area.
mod augment;

//! The integration-test suite of delira: one binary, one module per area.

mod config;
mod derive;
mod loader;
mod ui;
mod wrappers;

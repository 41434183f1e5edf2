//! The integration-test suite of delira: one binary, one module per area.

mod derive;
mod loader;
mod ui;
mod wrappers;

//! The integration-test suite of delira: one binary, one module per area.

mod augment;
mod backend;
mod config;
mod derive;
mod experiment;
mod experiment_fingerprint;
mod experiment_macro;
mod experiment_predict;
mod inference;
mod loader;
mod logging_plots;
mod logging_sinks;
mod nifti;
mod split;
#[cfg(feature = "torch")]
mod torch_backend;
#[cfg(feature = "torch")]
mod torch_model_macro;
#[cfg(feature = "torch")]
mod torch_models;
mod training_callbacks;
mod training_checkpoint;
mod training_metrics;
mod training_resume;
mod training_schedule;
mod training_trainer;
mod ui;
mod wrappers;

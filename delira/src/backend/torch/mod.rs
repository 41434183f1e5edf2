//! PyTorch through `tch` (cargo feature `torch`).
//!
//! The pieces a [`Network`](super::Network) is made of, written over tensors we own so that their
//! whole state can be exported: [`Optimizer`] (SGD with momentum/Nesterov/weight decay, Adam,
//! AdamW, with PyTorch's update formulas), [`Loss`] (all of [`LossConfig`](super::LossConfig)),
//! the conversions between batch fields and tensors, and [`TorchNetwork`], which joins a model
//! written with `tch::nn` to them and implements the step-level trait.
//!
//! libtorch is provisioned by `scripts/provision-libtorch`; `.cargo/config.toml` points `tch` at
//! it, so `cargo test --features torch` needs nothing exported.

mod convert;
mod declared;
pub mod layers;
mod loss;
mod network;
mod optim;

pub use convert::{f32_tensor, i64_tensor, tensor_to_f32, tensor_to_i64};
pub use declared::{DeclaredModel, LayerInfo, ModelSummary, SummaryLayer, SummaryVariable};
pub use loss::{Loss, LossValue};
pub use network::{Fields, TorchModel, TorchNetwork, import_var_store_state, var_store_state};
pub use optim::Optimizer;
/// The `tch` crate this backend is built on, for models written against it.
pub use tch;

use super::{BackendError, Device};

/// The `tch` device for `device`; CUDA devices must exist on this machine and in this build.
pub fn tch_device(device: Device) -> Result<tch::Device, BackendError> {
    match device {
        Device::Cpu => Ok(tch::Device::Cpu),
        Device::Cuda(index) => {
            let count = if tch::Cuda::is_available() {
                tch::Cuda::device_count().max(0) as usize
            } else {
                0
            };
            if index < count {
                Ok(tch::Device::Cuda(index))
            } else {
                Err(BackendError::Device {
                    device,
                    reason: format!(
                        "this machine and libtorch build see {count} CUDA devices; use the CPU or \
                         a CUDA build of libtorch"
                    ),
                })
            }
        }
    }
}

/// The delira device of a `tch` device.
#[must_use]
pub fn delira_device(device: tch::Device) -> Device {
    match device {
        tch::Device::Cuda(index) => Device::Cuda(index),
        _ => Device::Cpu,
    }
}

/// The best device available: the first CUDA device if there is one, otherwise the CPU.
#[must_use]
pub fn best_device() -> Device {
    delira_device(tch::Device::cuda_if_available())
}

/// Wraps a `tch` error with what was being done.
pub(crate) fn native(operation: &str) -> impl FnOnce(tch::TchError) -> BackendError + '_ {
    move |e| BackendError::Native {
        operation: operation.to_owned(),
        message: e.to_string(),
    }
}

//! Batch fields to tensors and back, with one copy each way.

use ndarray::{ArrayD, IxDyn};
use tch::{Kind, Tensor};

use super::native;
use crate::backend::BackendError;

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

fn from_array<T: tch::kind::Element + Clone>(
    array: &ArrayD<T>,
    device: tch::Device,
) -> Result<Tensor, BackendError> {
    // Borrows a C-ordered array as is; only another layout is copied into C order first.
    let standard = array.as_standard_layout();
    let values = standard
        .as_slice()
        .unwrap_or_else(|| unreachable!("a standard-layout array is contiguous"));
    Tensor::f_from_slice(values)
        .and_then(|t| t.f_view(dims(array.shape()).as_slice()))
        .and_then(|t| t.f_to_device(device))
        .map_err(native("copying an array into a tensor"))
}

/// A float tensor on `device` holding `array` (one copy; on CUDA, one more to the device).
pub fn f32_tensor(array: &ArrayD<f32>, device: tch::Device) -> Result<Tensor, BackendError> {
    from_array(array, device)
}

/// An integer tensor on `device` holding `array`.
pub fn i64_tensor(array: &ArrayD<i64>, device: tch::Device) -> Result<Tensor, BackendError> {
    from_array(array, device)
}

fn to_array<T: tch::kind::Element + Default + Clone>(
    tensor: &Tensor,
    kind: Kind,
) -> Result<ArrayD<T>, BackendError> {
    let host = tensor
        .detach()
        .f_to_kind(kind)
        .and_then(|t| t.f_to_device(tch::Device::Cpu))
        .and_then(|t| t.f_contiguous())
        .map_err(native("copying a tensor to the host"))?;
    let shape: Vec<usize> = host.size().iter().map(|&d| d as usize).collect();
    let numel = host.numel();
    let mut values = vec![T::default(); numel];
    host.f_copy_data(&mut values, numel)
        .map_err(native("copying a tensor to the host"))?;
    ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| BackendError::Native {
        operation: "copying a tensor to the host".to_owned(),
        message: e.to_string(),
    })
}

/// The tensor's values as an `f32` array of its shape (converted from any kind).
pub fn tensor_to_f32(tensor: &Tensor) -> Result<ArrayD<f32>, BackendError> {
    to_array(tensor, Kind::Float)
}

/// The tensor's values as an `i64` array of its shape (converted from any kind).
pub fn tensor_to_i64(tensor: &Tensor) -> Result<ArrayD<i64>, BackendError> {
    to_array(tensor, Kind::Int64)
}

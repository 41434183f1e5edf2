//! A backend network as a predictor.

use ndarray::{ArrayD, ArrayViewD};

use super::{InferenceError, Predict};
use crate::backend::Network;
use crate::data::{Batch, Record};

/// A [`Network`] seen as a [`Predict`]: the input goes into a [`Batch`] under the network's input
/// field name, the network runs its [`eval_step`](Network::eval_step) (evaluation mode, no
/// update), and the prediction of the given name is the output.
///
/// ```
/// use delira::backend::{BackendError, Device, Network, State, StepOutput};
/// use delira::data::Batch;
/// use delira::inference::{NetworkPredictor, Predict};
/// use ndarray::{ArrayD, IxDyn};
///
/// /// A stand-in network: `logits` = 2 × `image`.
/// struct Double;
///
/// impl Network for Double {
///     fn train_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
///         self.eval_step(batch)
///     }
///     fn eval_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
///         let mut out = StepOutput::default();
///         let image = batch.f32("image").expect("the example's batch has an image");
///         out.predictions.insert("logits".to_owned(), image.mapv(|v| 2.0 * v));
///         Ok(out)
///     }
///     fn learning_rate(&self) -> f64 { 0.0 }
///     fn set_learning_rate(&mut self, _: f64) {}
///     fn export_state(&self) -> Result<State, BackendError> { Ok(State::new()) }
///     fn import_state(&mut self, _: &State) -> Result<(), BackendError> { Ok(()) }
///     fn parameter_count(&self) -> usize { 0 }
///     fn device(&self) -> Device { Device::Cpu }
/// }
///
/// let mut network = Double;
/// let mut predictor = NetworkPredictor::new(&mut network, "image", "logits");
/// let out = predictor.predict(ArrayD::from_elem(IxDyn(&[2, 1, 3, 3]), 1.5_f32).view())?;
/// assert_eq!(out, ArrayD::from_elem(IxDyn(&[2, 1, 3, 3]), 3.0_f32));
/// assert!(NetworkPredictor::new(&mut network, "image", "probabilities")
///     .predict(ArrayD::zeros(IxDyn(&[1, 1, 2, 2])).view())
///     .is_err());
/// # Ok::<(), delira::inference::InferenceError>(())
/// ```
pub struct NetworkPredictor<'a, N: ?Sized> {
    network: &'a mut N,
    input: String,
    output: String,
}

impl<'a, N: Network + ?Sized> NetworkPredictor<'a, N> {
    /// Predicts with `network`, feeding the field `input` and reading the prediction `output`.
    pub fn new(network: &'a mut N, input: impl Into<String>, output: impl Into<String>) -> Self {
        Self {
            network,
            input: input.into(),
            output: output.into(),
        }
    }
}

impl<N: Network + ?Sized> Predict for NetworkPredictor<'_, N> {
    fn predict(&mut self, input: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>, InferenceError> {
        let records = input
            .outer_iter()
            .map(|item| Record::new().with(self.input.as_str(), item.to_owned()));
        let batch = Batch::collate(records).map_err(|e| InferenceError::Network(Box::new(e)))?;
        let mut step = self
            .network
            .eval_step(&batch)
            .map_err(|e| InferenceError::Network(Box::new(e)))?;
        match step.predictions.remove(&self.output) {
            Some(prediction) => Ok(prediction),
            None => Err(InferenceError::Network(
                format!(
                    "the eval step returned no prediction `{}`; it returned {:?}",
                    self.output,
                    step.predictions.keys().collect::<Vec<_>>()
                )
                .into(),
            )),
        }
    }
}

//! DCGAN (Radford et al. 2016): a generator and a discriminator of 2D images, trained with two
//! optimizers in one step.

use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};
use typed_builder::TypedBuilder;

use crate::backend::torch::{
    Optimizer, f32_tensor, import_var_store_state, native, tch_device, tensor_to_f32,
    var_store_state,
};
use crate::backend::{
    BackendError, Device, Network, OptimizerConfig, State, StepOutput, TOTAL_LOSS,
};
use crate::data::{Batch, BatchField};
use crate::random::StreamKey;

/// The shape of a [`Dcgan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct DcganConfig {
    /// Length of the latent vector.
    #[builder(default = 64)]
    #[serde(default = "latent")]
    pub latent: i64,
    /// Image channels.
    #[builder(default = 1)]
    #[serde(default = "one")]
    pub channels: i64,
    /// Image side: a power of two, at least 8.
    #[builder(default = 32)]
    #[serde(default = "side")]
    pub size: i64,
    /// Feature maps of the generator's last and the discriminator's first layer.
    #[builder(default = 16)]
    #[serde(default = "features")]
    pub features: i64,
    /// The seed of the latent vectors (each step draws from its own stream).
    #[builder(default)]
    #[serde(default)]
    pub seed: u64,
}

fn latent() -> i64 {
    64
}

fn one() -> i64 {
    1
}

fn side() -> i64 {
    32
}

fn features() -> i64 {
    16
}

impl DcganConfig {
    /// Checks that the shape can be built.
    pub fn validate(&self) -> Result<(), BackendError> {
        if self.size < 8 || self.size.count_ones() != 1 {
            return Err(BackendError::Config {
                what: "dcgan",
                problem: format!("size {} must be a power of two, at least 8", self.size),
            });
        }
        if self.latent < 1 || self.channels < 1 || self.features < 1 {
            return Err(BackendError::Config {
                what: "dcgan",
                problem: format!(
                    "latent {}, channels {} and features {} must be positive",
                    self.latent, self.channels, self.features
                ),
            });
        }
        Ok(())
    }

    /// Up- (or down-) sampling layers between 4×4 and the image size.
    fn levels(&self) -> usize {
        (self.size.trailing_zeros() - 2) as usize
    }
}

fn transposed(
    p: nn::Path<'_>,
    input: i64,
    output: i64,
    stride: i64,
    padding: i64,
) -> nn::ConvTranspose2D {
    let config = nn::ConvTransposeConfig {
        stride,
        padding,
        bias: false,
        ..Default::default()
    };
    nn::conv_transpose2d(p, input, output, 4, config)
}

fn strided(p: nn::Path<'_>, input: i64, output: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, input, output, 4, config)
}

/// Latent `[N, latent]` to images `[N, channels, size, size]` in `(-1, 1)`.
#[derive(Debug)]
pub struct Generator {
    layers: Vec<(nn::ConvTranspose2D, Option<nn::BatchNorm>)>,
}

impl Generator {
    /// Creates the variables under `p`: `<i>.conv.weight`, `<i>.norm.*`.
    pub fn new(p: &nn::Path<'_>, c: &DcganConfig) -> Self {
        let levels = c.levels();
        let mut layers = Vec::new();
        let mut channels = c.features << (levels - 1);
        layers.push((
            transposed(p / 0 / "conv", c.latent, channels, 1, 0),
            Some(nn::batch_norm2d(
                p / 0 / "norm",
                channels,
                nn::BatchNormConfig::default(),
            )),
        ));
        for i in 1..levels {
            let output = channels / 2;
            layers.push((
                transposed(p / i / "conv", channels, output, 2, 1),
                Some(nn::batch_norm2d(
                    p / i / "norm",
                    output,
                    nn::BatchNormConfig::default(),
                )),
            ));
            channels = output;
        }
        layers.push((
            transposed(p / levels / "conv", channels, c.channels, 2, 1),
            None,
        ));
        Self { layers }
    }

    /// Images for the latent vectors `z`.
    pub fn forward(&self, z: &Tensor, train: bool) -> Tensor {
        let size = z.size();
        let mut x = z.view([size[0], size[1], 1, 1]);
        for (conv, norm) in &self.layers {
            x = nn::Module::forward(conv, &x);
            x = match norm {
                Some(n) => nn::ModuleT::forward_t(n, &x, train).relu(),
                None => x.tanh(),
            };
        }
        x
    }
}

/// Images to one logit each (real versus generated).
#[derive(Debug)]
pub struct Discriminator {
    layers: Vec<(nn::Conv2D, Option<nn::BatchNorm>)>,
    head: nn::Conv2D,
}

impl Discriminator {
    /// Creates the variables under `p`: `<i>.conv.weight`, `<i>.norm.*`, `head.weight`.
    pub fn new(p: &nn::Path<'_>, c: &DcganConfig) -> Self {
        let mut layers = Vec::new();
        let mut channels = c.channels;
        for i in 0..c.levels() {
            let output = c.features << i;
            let norm = (i > 0)
                .then(|| nn::batch_norm2d(p / i / "norm", output, nn::BatchNormConfig::default()));
            layers.push((strided(p / i / "conv", channels, output, 2, 1), norm));
            channels = output;
        }
        let head = strided(p / "head", channels, 1, 1, 0);
        Self { layers, head }
    }

    /// One logit per image, shape `[N]`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for (conv, norm) in &self.layers {
            x = nn::Module::forward(conv, &x);
            if let Some(n) = norm {
                x = nn::ModuleT::forward_t(n, &x, train);
            }
            x = x.relu() - (-&x).relu() * 0.2;
        }
        nn::Module::forward(&self.head, &x).flatten(0, -1)
    }
}

/// A DCGAN as a [`Network`]: each train step updates the discriminator on the real images of the
/// batch field `image` and on generated ones, then the generator, each with its own optimizer.
///
/// Losses: `discriminator`, `generator` and their sum under [`TOTAL_LOSS`]; predictions: `fake`
/// (the generated images). The latent vectors of step `k` come from the random stream
/// `(seed, epoch 0, sample k, "latent")`, so a resumed run draws the same ones. State names:
/// `generator.*`, `discriminator.*`, `optimizer_g.*`, `optimizer_d.*`, `gan.step`.
#[derive(Debug)]
pub struct Dcgan {
    config: DcganConfig,
    g_vars: nn::VarStore,
    d_vars: nn::VarStore,
    generator: Generator,
    discriminator: Discriminator,
    optimizer_g: Optimizer,
    optimizer_d: Optimizer,
    step: i64,
}

impl Dcgan {
    /// Builds both networks on `device`, each with an optimizer of `optimizer`'s kind.
    pub fn new(
        device: Device,
        config: DcganConfig,
        optimizer: &OptimizerConfig,
    ) -> Result<Self, BackendError> {
        config.validate()?;
        let device = tch_device(device)?;
        let g_vars = nn::VarStore::new(device);
        let d_vars = nn::VarStore::new(device);
        let generator = Generator::new(&g_vars.root(), &config);
        let discriminator = Discriminator::new(&d_vars.root(), &config);
        Ok(Self {
            optimizer_g: Optimizer::for_var_store(optimizer.clone(), &g_vars)?,
            optimizer_d: Optimizer::for_var_store(optimizer.clone(), &d_vars)?,
            config,
            g_vars,
            d_vars,
            generator,
            discriminator,
            step: 0,
        })
    }

    /// The generator.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Latent vectors for `n` images, drawn from the stream of step `step`.
    fn latent(&self, n: usize, step: i64) -> Result<Tensor, BackendError> {
        let mut stream = StreamKey::new(self.config.seed)
            .sample(step as u64)
            .purpose("latent")
            .stream();
        let values =
            ndarray::ArrayD::from_shape_simple_fn(vec![n, self.config.latent as usize], || {
                stream.normal() as f32
            });
        f32_tensor(&values, self.g_vars.device())
    }

    fn real(&self, batch: &Batch) -> Result<Tensor, BackendError> {
        let c = &self.config;
        let expected = [c.channels as usize, c.size as usize, c.size as usize];
        match batch.get("image") {
            Some(BatchField::F32(a)) if a.ndim() == 4 && a.shape()[1..] == expected => {
                f32_tensor(a, self.d_vars.device())
            }
            Some(BatchField::F32(a)) => Err(BackendError::Shape {
                field: "image".to_owned(),
                found: a.shape().to_vec(),
                expected: format!(
                    "the DCGAN needs images of shape [batch, {}, {}, {}]",
                    c.channels, c.size, c.size
                ),
            }),
            Some(_) => Err(BackendError::FieldKind {
                field: "image".to_owned(),
                expected: "f32",
                found: "i64 or text",
            }),
            None => Err(BackendError::MissingField {
                field: "image".to_owned(),
                available: batch.names().map(str::to_owned).collect(),
            }),
        }
    }

    /// `(discriminator loss, generator loss, fakes)` without any update.
    fn losses(&self, real: &Tensor, z: &Tensor, train: bool) -> (Tensor, Tensor, Tensor) {
        let fake = self.generator.forward(z, train);
        let real_logits = self.discriminator.forward(real, train);
        let fake_logits = self.discriminator.forward(&fake.detach(), train);
        let d_loss = bce(&real_logits, 1.0) + bce(&fake_logits, 0.0);
        let g_loss = bce(&self.discriminator.forward(&fake, train), 1.0);
        (d_loss, g_loss, fake)
    }
}

/// Binary cross-entropy of logits against a constant label, mean over the batch.
fn bce(logits: &Tensor, label: f64) -> Tensor {
    // -[y log σ(x) + (1 - y) log(1 - σ(x))] = (1 - y) x + softplus(-x)
    (logits * (1.0 - label) + (-logits).softplus()).mean(None)
}

fn scalar(t: &Tensor) -> Result<f64, BackendError> {
    t.f_double_value(&[])
        .map_err(native("reading a loss value"))
}

impl Network for Dcgan {
    fn train_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        let real = self.real(batch)?;
        let z = self.latent(batch.len(), self.step)?;
        self.step += 1;

        // Discriminator: real images towards 1, generated ones towards 0.
        let fake = self.generator.forward(&z, true);
        let d_loss = bce(&self.discriminator.forward(&real, true), 1.0)
            + bce(&self.discriminator.forward(&fake.detach(), true), 0.0);
        self.optimizer_d.zero_grad();
        d_loss
            .f_backward()
            .map_err(native("the discriminator's backward pass"))?;
        self.optimizer_d.step()?;

        // Generator: its images towards 1, through the updated discriminator.
        let g_loss = bce(&self.discriminator.forward(&fake, true), 1.0);
        self.optimizer_g.zero_grad();
        g_loss
            .f_backward()
            .map_err(native("the generator's backward pass"))?;
        self.optimizer_g.step()?;

        let (d, g) = (scalar(&d_loss)?, scalar(&g_loss)?);
        let mut out = StepOutput::default();
        out.losses.insert("discriminator".to_owned(), d);
        out.losses.insert("generator".to_owned(), g);
        out.losses.insert(TOTAL_LOSS.to_owned(), d + g);
        out.predictions
            .insert("fake".to_owned(), tensor_to_f32(&fake)?);
        Ok(out)
    }

    fn eval_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        let _guard = tch::no_grad_guard();
        let real = self.real(batch)?;
        // Evaluation always uses the latent vectors of "step" -1: the same fakes every time.
        let z = self.latent(batch.len(), -1)?;
        let (d_loss, g_loss, fake) = self.losses(&real, &z, false);
        let (d, g) = (scalar(&d_loss)?, scalar(&g_loss)?);
        let mut out = StepOutput::default();
        out.losses.insert("discriminator".to_owned(), d);
        out.losses.insert("generator".to_owned(), g);
        out.losses.insert(TOTAL_LOSS.to_owned(), d + g);
        out.predictions
            .insert("fake".to_owned(), tensor_to_f32(&fake)?);
        Ok(out)
    }

    fn learning_rate(&self) -> f64 {
        self.optimizer_g.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.optimizer_g.set_learning_rate(lr);
        self.optimizer_d.set_learning_rate(lr);
    }

    fn export_state(&self) -> Result<State, BackendError> {
        let mut state = State::new();
        state.extend_prefixed("generator.", var_store_state(&self.g_vars)?);
        state.extend_prefixed("discriminator.", var_store_state(&self.d_vars)?);
        state.extend_prefixed("optimizer_g.", self.optimizer_g.export_state()?);
        state.extend_prefixed("optimizer_d.", self.optimizer_d.export_state()?);
        state.insert("gan.step", ndarray::arr0(self.step).into_dyn());
        Ok(state)
    }

    fn import_state(&mut self, state: &State) -> Result<(), BackendError> {
        self.export_state()?.check(state)?;
        import_var_store_state(&self.g_vars, &state.with_prefix("generator."))?;
        import_var_store_state(&self.d_vars, &state.with_prefix("discriminator."))?;
        self.optimizer_g
            .import_state(&state.with_prefix("optimizer_g."))?;
        self.optimizer_d
            .import_state(&state.with_prefix("optimizer_d."))?;
        if let Some(step) = state.i64("gan.step") {
            self.step = step.sum();
        }
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        let g: usize = self
            .g_vars
            .trainable_variables()
            .iter()
            .map(Tensor::numel)
            .sum();
        let d: usize = self
            .d_vars
            .trainable_variables()
            .iter()
            .map(Tensor::numel)
            .sum();
        g + d
    }

    fn device(&self) -> Device {
        crate::backend::torch::delira_device(self.g_vars.device())
    }
}

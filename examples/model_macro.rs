//! A 3D U-Net declared with `#[delira::model(backend = "torch")]`, trained for a few steps on
//! 32³ patches of the MNI template (T1 in, grey/white matter and CSF labels out, at 2 mm).
//!
//! Prints the model's summary (layers, variable shapes, parameter counts) and the loss of each
//! step.
//!
//! ```sh
//! scripts/provision-data && scripts/provision-libtorch
//! cargo run --release --features torch --example model_macro            # 40 steps
//! cargo run --release --features torch --example model_macro -- 100 DIR # 100 steps, MNI in DIR
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use delira::backend::torch::TorchModel;
use delira::backend::torch::tch::{self, Tensor, nn, nn::Module, nn::ModuleT};
use delira::backend::{AdamConfig, Device, DiceCeConfig, Network};
use delira::data::{Batch, Record};
use delira::io;
use ndarray::{Array3, Axis, Ix3, s};

const PATCH: usize = 32;
const SEED: i64 = 42;

/// The U-Net's shape.
pub struct Spec {
    /// Channels of the input image.
    pub in_channels: i64,
    /// One output channel per class.
    pub classes: i64,
    /// Channels of the first level; each level below doubles them.
    pub base: i64,
}

/// Two 3×3×3 convolutions, each with an instance normalisation and a ReLU: a sub-module written
/// by hand, declared in the model with `module(...)`.
#[derive(Debug)]
pub struct DoubleConv {
    a: nn::Conv3D,
    a_norm: nn::GroupNorm,
    b: nn::Conv3D,
    b_norm: nn::GroupNorm,
}

impl DoubleConv {
    /// The block's variables under `p`.
    pub fn new(p: &nn::Path<'_>, input: i64, output: i64) -> Self {
        let conv = nn::ConvConfig {
            padding: 1,
            bias: false,
            ..Default::default()
        };
        Self {
            a: nn::conv3d(p / "a", input, output, 3, conv),
            a_norm: nn::group_norm(p / "a_norm", output, output, nn::GroupNormConfig::default()),
            b: nn::conv3d(p / "b", output, output, 3, conv),
            b_norm: nn::group_norm(p / "b_norm", output, output, nn::GroupNormConfig::default()),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.a_norm.forward(&self.a.forward(x)).relu();
        self.b_norm.forward(&self.b.forward(&x)).relu()
    }
}

/// Three levels: 32³ → 16³ → 8³ and back, with skip connections.
#[delira::model(backend = "torch", config = Spec, input = "image", target = "label", output = "logits")]
#[derive(Debug)]
pub struct BrainUNet {
    #[layer(module(DoubleConv::new(path, config.in_channels, config.base)))]
    enc0: DoubleConv,
    #[layer(module(DoubleConv::new(path, config.base, 2 * config.base)))]
    enc1: DoubleConv,
    #[layer(module(DoubleConv::new(path, 2 * config.base, 4 * config.base)))]
    bottom: DoubleConv,
    #[layer(conv_transpose3d(4 * config.base, 2 * config.base, 2, stride = 2))]
    up1: nn::ConvTranspose3D,
    #[layer(module(DoubleConv::new(path, 4 * config.base, 2 * config.base)))]
    dec1: DoubleConv,
    #[layer(conv_transpose3d(2 * config.base, config.base, 2, stride = 2))]
    up0: nn::ConvTranspose3D,
    #[layer(conv3d(2 * config.base, config.base, 3, padding = 1))]
    dec0: nn::Conv3D,
    #[layer(batch_norm3d(config.base))]
    dec0_norm: nn::BatchNorm,
    #[layer(conv3d(config.base, config.classes, 1))]
    head: nn::Conv3D,
}

fn pool(x: &Tensor) -> Tensor {
    x.max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false)
}

impl TorchModel for BrainUNet {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let s0 = self.enc0.forward(x);
        let s1 = self.enc1.forward(&pool(&s0));
        let low = self.bottom.forward(&pool(&s1));
        let x = self
            .dec1
            .forward(&Tensor::cat(&[&s1, &self.up1.forward(&low)], 1));
        let x = Tensor::cat(&[&s0, &self.up0.forward(&x)], 1);
        let x = self
            .dec0_norm
            .forward_t(&self.dec0.forward(&x), train)
            .relu();
        self.head.forward(&x)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map_or(Ok(40), |a| a.parse())?;
    let dir = args
        .next()
        .map_or_else(|| PathBuf::from("data/mni"), PathBuf::from);
    tch::set_num_threads(1);
    tch::manual_seed(SEED);

    let spec = Spec {
        in_channels: 1,
        classes: 4,
        base: 8,
    };
    let optimizer = AdamConfig::builder().lr(0.01).build();
    let mut net = BrainUNet::network(&spec, Device::Cpu, optimizer, DiceCeConfig::default())?;
    println!("{}\n", net.summary());

    let batches = mni_batches(&dir)?;
    println!(
        "{} batches of 2 patches of {PATCH}³ from {}",
        batches.len(),
        dir.display()
    );
    let started = Instant::now();
    for step in 0..steps {
        let out = net.train_step(&batches[step % batches.len()])?;
        let loss = out.loss().ok_or("the step computed no loss")?;
        println!(
            "step {step:>3}  loss {loss:.4}  (dice {:.4}, cross-entropy {:.4})",
            out.losses.get("dice").copied().unwrap_or(f64::NAN),
            out.losses.get("cross_entropy").copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "{steps} steps in {:.1} s on one thread",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Four batches of two 32³ patches around the centre of the brain, T1 scaled by its 99th
/// percentile inside the brain; labels 0 (outside), 1 (CSF and other), 2 (GM), 3 (WM).
fn mni_batches(dir: &Path) -> Result<Vec<Batch>, Box<dyn Error>> {
    let read = |name: &str| -> Result<Array3<f32>, Box<dyn Error>> {
        let path = dir.join(format!(
            "mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
        ));
        let volume = io::load_volume(&path)
            .map_err(|e| format!("{e}; run `scripts/provision-data` to fetch the MNI template"))?;
        let data = volume
            .data()
            .index_axis(Axis(0), 0)
            .into_dimensionality::<Ix3>()?;
        let (x, y, z) = data.dim();
        let mut half = Array3::<f32>::zeros((x / 2, y / 2, z / 2));
        for ((i, j, k), v) in data.indexed_iter() {
            if let Some(cell) = half.get_mut((i / 2, j / 2, k / 2)) {
                *cell += v / 8.0;
            }
        }
        Ok(half)
    };
    let (t1, gm, wm) = (read("t1")?, read("gm")?, read("wm")?);
    let labels = Array3::from_shape_fn(t1.raw_dim(), |v| {
        if t1[v] <= 0.0 {
            return 0_i64;
        }
        let other = (255.0 - gm[v] - wm[v]).max(0.0);
        if gm[v] >= wm[v] && gm[v] >= other {
            2
        } else if wm[v] > gm[v] && wm[v] >= other {
            3
        } else {
            1
        }
    });
    let mut inside: Vec<f32> = t1
        .iter()
        .zip(&labels)
        .filter(|&(_, &l)| l > 0)
        .map(|(&v, _)| v)
        .collect();
    inside.sort_unstable_by(f32::total_cmp);
    let scale = inside
        .get(((inside.len().max(1) - 1) as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(1.0)
        .max(f32::EPSILON);
    let t1 = t1.mapv(|v| (v / scale).clamp(0.0, 1.5));

    let corners = [
        [17, 30, 20],
        [17, 50, 40],
        [33, 30, 40],
        [33, 50, 20],
        [26, 40, 30],
        [40, 40, 30],
        [20, 60, 30],
        [36, 24, 30],
    ];
    let mut batches = Vec::new();
    for pair in corners.chunks(2) {
        let records = pair.iter().map(|&[x, y, z]| {
            let window = s![x..x + PATCH, y..y + PATCH, z..z + PATCH];
            Record::new()
                .with(
                    "image",
                    t1.slice(window).insert_axis(Axis(0)).to_owned().into_dyn(),
                )
                .with("label", labels.slice(window).to_owned().into_dyn())
        });
        batches.push(Batch::collate(records)?);
    }
    Ok(batches)
}

//! `#[delira::model(backend = "torch")]`: a model declared with the macro against the same network
//! written by hand with `tch::nn` (names, counts, initial values and outputs equal), its summary,
//! its state round-trip, and a 3D U-Net declared with the macro training on the real MNI template.

use std::path::Path;

use delira::backend::torch::tch::{self, Tensor, nn, nn::Module, nn::ModuleT};
use delira::backend::torch::{TorchModel, TorchNetwork};
use delira::backend::{
    AdamConfig, Device, DiceCeConfig, LossConfig, Network, OptimizerConfig, SgdConfig, State,
};
use delira::data::{Batch, Record};
use ndarray::{Array3, ArrayD, Axis, Ix3, s};

/// The shape of the test U-Net.
#[derive(Clone, Debug)]
pub struct Spec {
    pub in_channels: i64,
    pub classes: i64,
    pub base: usize,
}

/// A user sub-module: two convolutions, each followed by a group normalisation and a ReLU.
#[derive(Debug)]
pub struct DoubleConv {
    first: nn::Conv3D,
    first_norm: nn::GroupNorm,
    second: nn::Conv3D,
    second_norm: nn::GroupNorm,
}

impl DoubleConv {
    pub fn new(p: &nn::Path<'_>, input: usize, output: usize) -> Self {
        let (i, o) = (input as i64, output as i64);
        let conv = nn::ConvConfig {
            padding: 1,
            bias: false,
            ..Default::default()
        };
        Self {
            first: nn::conv3d(p / "first", i, o, 3, conv),
            first_norm: nn::group_norm(p / "first_norm", 2, o, nn::GroupNormConfig::default()),
            second: nn::conv3d(p / "second", o, o, 3, conv),
            second_norm: nn::group_norm(p / "second_norm", 2, o, nn::GroupNormConfig::default()),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.first_norm.forward(&self.first.forward(x)).relu();
        self.second_norm.forward(&self.second.forward(&x)).relu()
    }
}

/// A two-level 3D U-Net declared with the macro.
#[delira::model(
    backend = "torch",
    config = Spec,
    input = "image",
    target = "label",
    output = "logits"
)]
#[derive(Debug)]
pub struct MacroUNet {
    #[layer(conv3d(config.in_channels, config.base, 3, padding = 1, bias = false))]
    enc: nn::Conv3D,
    #[layer(instance_norm(config.base, affine = true))]
    enc_norm: nn::GroupNorm,
    #[layer(module(DoubleConv::new(path, config.base, 2 * config.base)))]
    down: DoubleConv,
    #[layer(conv_transpose3d(2 * config.base, config.base, 2, stride = 2))]
    up: nn::ConvTranspose3D,
    #[layer(conv3d(2 * config.base, config.base, 3, padding = 1))]
    dec: nn::Conv3D,
    #[layer(batch_norm3d(config.base, momentum = 0.1))]
    dec_norm: nn::BatchNorm,
    #[layer(conv3d(config.base, config.classes, 1))]
    head: nn::Conv3D,
}

/// The wiring, shared by the declared and the hand-written network.
macro_rules! unet_forward {
    ($net:expr, $x:expr, $train:expr) => {{
        let net = $net;
        let skip = net.enc_norm.forward(&net.enc.forward($x)).relu();
        let low =
            net.down
                .forward(&skip.max_pool3d([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], false));
        let up = net.up.forward(&low);
        let joined = Tensor::cat(&[&skip, &up], 1);
        let x = net
            .dec_norm
            .forward_t(&net.dec.forward(&joined), $train)
            .relu();
        net.head.forward(&x)
    }};
}

impl TorchModel for MacroUNet {
    fn forward(&self, input: &Tensor, train: bool) -> Tensor {
        unet_forward!(self, input, train)
    }
}

/// The same network written by hand with `tch::nn`.
#[derive(Debug)]
struct HandUNet {
    enc: nn::Conv3D,
    enc_norm: nn::GroupNorm,
    down: DoubleConv,
    up: nn::ConvTranspose3D,
    dec: nn::Conv3D,
    dec_norm: nn::BatchNorm,
    head: nn::Conv3D,
}

impl HandUNet {
    fn new(p: &nn::Path<'_>, spec: &Spec) -> Self {
        let base = spec.base as i64;
        let padded = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        Self {
            enc: nn::conv3d(
                p / "enc",
                spec.in_channels,
                base,
                3,
                nn::ConvConfig {
                    bias: false,
                    ..padded
                },
            ),
            enc_norm: nn::group_norm(p / "enc_norm", base, base, nn::GroupNormConfig::default()),
            down: DoubleConv::new(&(p / "down"), spec.base, 2 * spec.base),
            up: nn::conv_transpose3d(
                p / "up",
                2 * base,
                base,
                2,
                nn::ConvTransposeConfig {
                    stride: 2,
                    ..Default::default()
                },
            ),
            dec: nn::conv3d(p / "dec", 2 * base, base, 3, padded),
            dec_norm: nn::batch_norm3d(p / "dec_norm", base, nn::BatchNormConfig::default()),
            head: nn::conv3d(p / "head", base, spec.classes, 1, nn::ConvConfig::default()),
        }
    }
}

impl TorchModel for HandUNet {
    fn forward(&self, input: &Tensor, train: bool) -> Tensor {
        unet_forward!(self, input, train)
    }
}

const SPEC: Spec = Spec {
    in_channels: 1,
    classes: 4,
    base: 4,
};

fn adam(lr: f64) -> OptimizerConfig {
    AdamConfig::builder().lr(lr).build().into()
}

fn dice_ce() -> LossConfig {
    DiceCeConfig::default().into()
}

/// The declared network, its variables drawn from `seed`.
fn declared(seed: i64, optimizer: OptimizerConfig) -> TorchNetwork<MacroUNet> {
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    MacroUNet::network(&SPEC, Device::Cpu, optimizer, dice_ce()).unwrap()
}

/// Two 16³ images with a bright block of class 2 and a dim one of class 1.
fn blocks() -> Batch {
    let samples = (0..2).map(|i| {
        let mut image = ArrayD::<f32>::zeros(vec![1, 16, 16, 16]);
        let mut label = ArrayD::<i64>::zeros(vec![16, 16, 16]);
        for ((_, x, y, z), v) in image
            .view_mut()
            .into_dimensionality::<ndarray::Ix4>()
            .unwrap()
            .indexed_iter_mut()
        {
            let class = if (2 + i..9 + i).contains(&x) && (3..10).contains(&y) {
                2
            } else {
                i64::from((10..14).contains(&z))
            };
            *v = class as f32 * 0.5 + ((x * 7 + y * 3 + z) % 5) as f32 * 0.02;
            label[[x, y, z]] = class;
        }
        Record::new().with("image", image).with("label", label)
    });
    Batch::collate(samples).unwrap()
}

#[test]
fn torch_declared_names_and_counts_equal_the_hand_written_network() {
    let net = declared(7, adam(1e-3));
    tch::manual_seed(7);
    let hand = TorchNetwork::new(
        Device::Cpu,
        |p| Ok(HandUNet::new(p, &SPEC)),
        adam(1e-3),
        dice_ce(),
    )
    .unwrap();

    // enc 4·1·27 = 108, enc_norm 4 + 4, down 4·8·27 + 16 + 8·8·27 + 16 = 2624,
    // up 8·4·8 + 4 = 260, dec 4·8·27 + 4 = 868, dec_norm 4 + 4, head 4·4 + 4 = 20.
    assert_eq!(net.parameter_count(), 3896);
    assert_eq!(hand.parameter_count(), 3896);

    let (a, b) = (net.export_state().unwrap(), hand.export_state().unwrap());
    let names: Vec<&str> = a.names().collect();
    assert_eq!(names, b.names().collect::<Vec<_>>());
    let model: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("model."))
        .collect();
    assert_eq!(
        model,
        [
            "model.dec.bias",
            "model.dec.weight",
            "model.dec_norm.bias",
            "model.dec_norm.running_mean",
            "model.dec_norm.running_var",
            "model.dec_norm.weight",
            "model.down.first.weight",
            "model.down.first_norm.bias",
            "model.down.first_norm.weight",
            "model.down.second.weight",
            "model.down.second_norm.bias",
            "model.down.second_norm.weight",
            "model.enc.weight",
            "model.enc_norm.bias",
            "model.enc_norm.weight",
            "model.head.bias",
            "model.head.weight",
            "model.up.bias",
            "model.up.weight",
        ]
    );
    // Built in the same order from the same seed: the same initial values, bit for bit.
    assert_eq!(a, b);
    assert_eq!(a.f32("model.up.weight").unwrap().shape(), [8, 4, 2, 2, 2]);
}

#[test]
fn torch_declared_forward_matches_the_hand_written_network() {
    let mut net = declared(3, adam(1e-3));
    tch::manual_seed(3);
    let mut hand = TorchNetwork::new(
        Device::Cpu,
        |p| Ok(HandUNet::new(p, &SPEC)),
        adam(1e-3),
        dice_ce(),
    )
    .unwrap();
    let batch = blocks();
    let out = net.eval_step(&batch).unwrap();
    assert_eq!(
        out.prediction("logits").unwrap().shape(),
        [2, 4, 16, 16, 16]
    );
    assert_eq!(out, hand.eval_step(&batch).unwrap());
    // One training step each: the same losses and the same weights after the update.
    assert_eq!(
        net.train_step(&batch).unwrap(),
        hand.train_step(&batch).unwrap()
    );
    assert_eq!(net.export_state().unwrap(), hand.export_state().unwrap());
}

#[test]
fn torch_declared_fields_come_from_the_attribute() {
    let net = declared(1, adam(1e-3));
    assert_eq!(net.fields().input, "image");
    assert_eq!(net.fields().target, "label");
    assert_eq!(net.fields().output, "logits");

    let batch =
        Batch::collate([Record::new().with("t1", ArrayD::<f32>::zeros(vec![1, 8, 8, 8]))]).unwrap();
    let mut net = net;
    let error = net.eval_step(&batch).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the batch has no field `image`; it holds [\"t1\"]"
    );
}

#[test]
fn torch_declared_summary_lists_every_layer() {
    let net = declared(1, adam(1e-3));
    let summary = net.summary();
    assert_eq!(summary.parameter_count(), 3896);
    assert_eq!(summary.buffer_count(), 8);
    assert_eq!(
        summary.to_string(),
        "\
MacroUNet
layer     kind               variable            shape            count
enc       conv3d             weight              [4, 1, 3, 3, 3]    108
enc_norm  instance_norm      bias                [4]                  4
                             weight              [4]                  4
down      module DoubleConv  first.weight        [8, 4, 3, 3, 3]    864
                             first_norm.bias     [8]                  8
                             first_norm.weight   [8]                  8
                             second.weight       [8, 8, 3, 3, 3]   1728
                             second_norm.bias    [8]                  8
                             second_norm.weight  [8]                  8
up        conv_transpose3d   bias                [4]                  4
                             weight              [8, 4, 2, 2, 2]    256
dec       conv3d             bias                [4]                  4
                             weight              [4, 8, 3, 3, 3]    864
dec_norm  batch_norm3d       bias                [4]                  4
                             running_mean        [4]                (4)
                             running_var         [4]                (4)
                             weight              [4]                  4
head      conv3d             bias                [4]                  4
                             weight              [4, 4, 1, 1, 1]     16
3896 trainable parameters in 7 layers; 8 values in buffers (in parentheses), not trained"
    );
}

#[test]
fn torch_declared_state_round_trip_is_exact() {
    let optimizer: OptimizerConfig = SgdConfig::builder().lr(0.05).momentum(0.9).build().into();
    let batch = blocks();
    let mut original = declared(11, optimizer.clone());
    for _ in 0..2 {
        original.train_step(&batch).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("delira-model-macro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unet.safetensors");
    original.export_state().unwrap().save(&path).unwrap();

    let mut restored = declared(12, optimizer);
    assert_ne!(
        restored.export_state().unwrap(),
        original.export_state().unwrap()
    );
    restored.import_state(&State::load(&path).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        original.eval_step(&batch).unwrap(),
        restored.eval_step(&batch).unwrap()
    );
    assert_eq!(
        original.train_step(&batch).unwrap(),
        restored.train_step(&batch).unwrap()
    );
    assert_eq!(
        original.export_state().unwrap(),
        restored.export_state().unwrap()
    );
}

#[test]
fn torch_declared_arguments_are_checked_when_built() {
    tch::set_num_threads(1);
    let spec = Spec {
        base: 0,
        ..SPEC.clone()
    };
    let error = MacroUNet::network(&spec, Device::Cpu, adam(1e-3), dice_ce()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "layer `enc` (`conv3d`): `out_channels` is 0; use a positive number"
    );
    let spec = Spec {
        in_channels: -2,
        ..SPEC.clone()
    };
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let error = MacroUNet::new(&vs.root(), &spec).unwrap_err();
    assert_eq!(
        error.to_string(),
        "layer `enc` (`conv3d`): `in_channels` is -2; use a positive number"
    );
}

/// A model without configuration, with the other layer kinds.
#[delira::model(
    backend = "torch",
    input = "tokens",
    target = "class",
    output = "scores"
)]
pub struct Tagger {
    #[layer(embedding(10, 6, padding_idx = 0))]
    embed: nn::Embedding,
    #[layer(conv1d(6, 6, 3, padding = 1, padding_mode = "reflect", groups = 2))]
    conv: nn::Conv1D,
    #[layer(batch_norm1d(6, affine = false))]
    norm: nn::BatchNorm,
    #[layer(group_norm(3, 6, eps = 1e-3))]
    group: nn::GroupNorm,
    #[layer(linear(6, 3, bias = false))]
    out: nn::Linear,
    #[layer(conv2d(1, 2, 3, stride = 2, dilation = 1))]
    image: nn::Conv2D,
    #[layer(conv_transpose2d(2, 1, 3, stride = 2, output_padding = 1))]
    image_up: nn::ConvTranspose2D,
}

impl TorchModel for Tagger {
    fn forward(&self, input: &Tensor, train: bool) -> Tensor {
        // [N, L] indices -> [N, 6, L] -> pooled over L -> [N, 3].
        let x = self.embed.forward(input).transpose(1, 2);
        let x = self.norm.forward_t(&self.conv.forward(&x), train);
        let x = self.group.forward(&x).mean_dim(2, false, tch::Kind::Float);
        self.out.forward(&x)
    }
}

#[test]
fn torch_declared_layer_kinds_without_a_config() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let tagger = Tagger::new(&vs.root()).unwrap();
    // embed 60, conv 6·3·3 + 6 = 60, norm none, group 12, out 18, image 18 + 2,
    // image_up 2·1·9 + 1 = 19.
    let count: i64 = vs
        .trainable_variables()
        .iter()
        .map(Tensor::numel)
        .sum::<usize>() as i64;
    assert_eq!(count, 60 + 60 + 12 + 18 + 20 + 19);
    assert_eq!(tagger.conv.ws.size(), [6, 3, 3]);
    assert_eq!(tagger.image.ws.size(), [2, 1, 3, 3]);
    assert_eq!(tagger.image_up.ws.size(), [2, 1, 3, 3]);
    let tokens = Tensor::from_slice(&[0_i64, 3, 4, 9, 1, 2]).view([2, 3]);
    assert_eq!(tagger.forward(&tokens, false).size(), [2, 3]);
    // The padding index's vector is all zeros (it is its own first row) only if it is never
    // trained: tch initialises it like every other row, so just check it exists.
    assert_eq!(tagger.embed.ws.size(), [10, 6]);
    let net = TorchNetwork::<Tagger>::declared(Device::Cpu, &(), adam(1e-3), dice_ce()).unwrap();
    assert_eq!(net.fields().input, "tokens");
    assert_eq!(net.fields().target, "class");
    assert_eq!(net.fields().output, "scores");
}

// --- The MNI template: a 3D U-Net declared with the macro learns brain tissue. ---

const MNI: &str = "data/mni";
const PATCH: usize = 32;

/// The template at 2 mm: T1 scaled by its 99th percentile inside the brain, and labels 0
/// (outside), 1 (CSF and other), 2 (grey matter), 3 (white matter), as in `examples/pipeline.rs`.
fn mni_template() -> (Array3<f32>, Array3<i64>) {
    let read = |name: &str| {
        let path = Path::new(MNI).join(format!(
            "mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
        ));
        let volume = delira::io::load_volume(&path).unwrap();
        let data = volume
            .data()
            .index_axis(Axis(0), 0)
            .into_dimensionality::<Ix3>()
            .unwrap()
            .to_owned();
        let (x, y, z) = data.dim();
        let mut half = Array3::<f32>::zeros((x / 2, y / 2, z / 2));
        for ((i, j, k), v) in data.indexed_iter() {
            if let Some(cell) = half.get_mut((i / 2, j / 2, k / 2)) {
                *cell += v / 8.0;
            }
        }
        half
    };
    let (t1, gm, wm) = (read("t1"), read("gm"), read("wm"));
    let labels = Array3::from_shape_fn(t1.raw_dim(), |v| {
        if t1[v] <= 0.0 {
            return 0;
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
    let scale = inside[((inside.len() - 1) as f64 * 0.99) as usize];
    (t1.mapv(|v| (v / scale).clamp(0.0, 1.5)), labels)
}

#[test]
fn torch_declared_unet_learns_brain_tissue_on_mni_patches() {
    let (t1, labels) = mni_template();
    assert_eq!(t1.dim(), (98, 116, 94));
    // Eight 32³ patches around the centre of the brain (every one holds all four labels).
    let corners: Vec<[usize; 3]> = [(17, 26), (33, 42)]
        .into_iter()
        .flat_map(|(x0, x1)| [[x0, 30, 20], [x0, 50, 40], [x1, 30, 40], [x1, 50, 20]])
        .collect();
    let batches: Vec<Batch> = corners
        .chunks(2)
        .map(|pair| {
            Batch::collate(pair.iter().map(|&[x, y, z]| {
                let window = s![x..x + PATCH, y..y + PATCH, z..z + PATCH];
                Record::new()
                    .with(
                        "image",
                        t1.slice(window).insert_axis(Axis(0)).to_owned().into_dyn(),
                    )
                    .with("label", labels.slice(window).to_owned().into_dyn())
            }))
            .unwrap()
        })
        .collect();
    for batch in &batches {
        let l = batch.i64("label").unwrap();
        for class in 0..4 {
            assert!(
                l.iter().any(|&v| v == class),
                "a patch pair lacks label {class}"
            );
        }
    }

    let spec = Spec {
        in_channels: 1,
        classes: 4,
        base: 8,
    };
    tch::set_num_threads(1);
    tch::manual_seed(42);
    let mut net = MacroUNet::network(&spec, Device::Cpu, adam(0.01), dice_ce()).unwrap();
    let steps = 48;
    let losses: Vec<f64> = (0..steps)
        .map(|step| {
            net.train_step(&batches[step % batches.len()])
                .unwrap()
                .loss()
                .unwrap()
        })
        .collect();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&losses[..8]), mean(&losses[steps - 8..]));
    eprintln!("MNI losses: {losses:.3?}");
    assert!(
        last < 0.5 * first,
        "the loss fell only from {first:.3} (mean of the first 8 steps) to {last:.3} (last 8): \
         {losses:.3?}"
    );
}

/// Layers named like the generated code's bindings.
#[delira::model(backend = "torch", config = Spec)]
pub struct Shadowing {
    #[layer(linear(config.in_channels, config.base))]
    config: nn::Linear,
    #[layer(linear(config.base, config.classes, bias = false))]
    r#type: nn::Linear,
}

impl TorchModel for Shadowing {
    fn forward(&self, input: &Tensor, _train: bool) -> Tensor {
        self.r#type.forward(&self.config.forward(input))
    }
}

#[test]
fn torch_declared_layer_names_do_not_hide_the_configuration() {
    tch::set_num_threads(1);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Shadowing::new(&vs.root(), &SPEC).unwrap();
    let mut names: Vec<(String, Vec<i64>)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("config.bias".to_owned(), vec![4]),
            ("config.weight".to_owned(), vec![4, 1]),
            ("type.weight".to_owned(), vec![4, 4]),
        ]
    );
    assert_eq!(
        model
            .forward(&Tensor::ones([2, 1], tch::kind::FLOAT_CPU), false)
            .size(),
        [2, 4]
    );
}

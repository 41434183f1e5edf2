//! The PyTorch backend: optimizer numerics, losses and their gradients, state round trips.

use delira::backend::torch::tch::{self, Device as TchDevice, Kind, Tensor};
use delira::backend::torch::{Loss, Optimizer, f32_tensor, tch_device, tensor_to_f32};
use delira::backend::{
    AdamConfig, AdamWConfig, BceWithLogitsConfig, CrossEntropyConfig, Device, DiceCeConfig,
    DiceConfig, FocalConfig, LossConfig, OptimizerConfig, SgdConfig,
};
use ndarray::ArrayD;

fn single_thread() {
    delira::backend::torch::tch::set_num_threads(1);
}

// ---------------------------------------------------------------------------------------------
// Optimizers: several steps against the PyTorch formulas evaluated by hand in f64.

/// Runs `steps` updates of a 3-element parameter whose loss is `0.5 * Σ c_i p_i²` (so the
/// gradient is `c ⊙ p`, changing every step).
fn run_optimizer(config: OptimizerConfig, steps: usize) -> Vec<Vec<f64>> {
    single_thread();
    let start = [1.0_f32, -2.0, 0.5];
    let curvature = Tensor::from_slice(&[1.0_f32, 0.5, 3.0]);
    let p = Tensor::from_slice(&start).set_requires_grad(true);
    let mut optimizer = Optimizer::new(config, vec![("p".to_owned(), p.shallow_clone())]).unwrap();
    let mut trajectory = Vec::new();
    for _ in 0..steps {
        optimizer.zero_grad();
        let loss = (&p * &p * &curvature).sum(Kind::Float) * 0.5;
        loss.backward();
        optimizer.step().unwrap();
        let values = tensor_to_f32(&p).unwrap();
        trajectory.push(values.iter().map(|&v| f64::from(v)).collect());
    }
    trajectory
}

const CURVATURE: [f64; 3] = [1.0, 0.5, 3.0];
const START: [f64; 3] = [1.0, -2.0, 0.5];

/// `torch.optim.SGD` as documented, in f64.
fn sgd_by_hand(
    lr: f64,
    momentum: f64,
    dampening: f64,
    wd: f64,
    nesterov: bool,
    steps: usize,
) -> Vec<Vec<f64>> {
    let mut p = START.to_vec();
    let mut buf = [0.0; 3];
    let mut out = Vec::new();
    for t in 1..=steps {
        for i in 0..3 {
            let mut g = CURVATURE[i] * p[i] + wd * p[i];
            if momentum != 0.0 {
                buf[i] = if t == 1 {
                    g
                } else {
                    momentum * buf[i] + (1.0 - dampening) * g
                };
                g = if nesterov {
                    g + momentum * buf[i]
                } else {
                    buf[i]
                };
            }
            p[i] -= lr * g;
        }
        out.push(p.clone());
    }
    out
}

/// `torch.optim.Adam` / `AdamW` as documented, in f64.
fn adam_by_hand(
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    wd: f64,
    decoupled: bool,
    amsgrad: bool,
    steps: usize,
) -> Vec<Vec<f64>> {
    let mut p = START.to_vec();
    let (mut m, mut v, mut vmax) = (vec![0.0_f64; 3], vec![0.0_f64; 3], vec![0.0_f64; 3]);
    let mut out = Vec::new();
    for t in 1..=steps {
        for i in 0..3 {
            let mut g = CURVATURE[i] * p[i];
            if decoupled {
                p[i] *= 1.0 - lr * wd;
            } else {
                g += wd * p[i];
            }
            m[i] = betas.0 * m[i] + (1.0 - betas.0) * g;
            v[i] = betas.1 * v[i] + (1.0 - betas.1) * g * g;
            vmax[i] = vmax[i].max(v[i]);
            let m_hat = m[i] / (1.0 - betas.0.powi(t as i32));
            let second = if amsgrad { vmax[i] } else { v[i] };
            let v_hat = second / (1.0 - betas.1.powi(t as i32));
            p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        out.push(p.clone());
    }
    out
}

#[track_caller]
fn assert_trajectories(found: &[Vec<f64>], expected: &[Vec<f64>]) {
    assert_eq!(found.len(), expected.len());
    for (step, (f, e)) in found.iter().zip(expected).enumerate() {
        for (a, b) in f.iter().zip(e) {
            assert!(
                (a - b).abs() <= 2e-6 * b.abs().max(1.0),
                "step {}: {f:?} != {e:?}",
                step + 1
            );
        }
    }
}

#[test]
fn sgd_steps_follow_pytorch() {
    let plain = SgdConfig::builder().lr(0.1).build();
    assert_trajectories(
        &run_optimizer(plain.into(), 4),
        &sgd_by_hand(0.1, 0.0, 0.0, 0.0, false, 4),
    );
    // First step by hand: p - lr * c p = [0.9, -1.9, 0.35].
    let first = run_optimizer(SgdConfig::builder().lr(0.1).build().into(), 1);
    assert_trajectories(&first, &[vec![0.9, -1.9, 0.35]]);

    let momentum = SgdConfig::builder()
        .lr(0.05)
        .momentum(0.9)
        .dampening(0.1)
        .weight_decay(0.01)
        .build();
    assert_trajectories(
        &run_optimizer(momentum.into(), 5),
        &sgd_by_hand(0.05, 0.9, 0.1, 0.01, false, 5),
    );

    let nesterov = SgdConfig::builder()
        .lr(0.05)
        .momentum(0.8)
        .nesterov(true)
        .weight_decay(0.1)
        .build();
    assert_trajectories(
        &run_optimizer(nesterov.into(), 5),
        &sgd_by_hand(0.05, 0.8, 0.0, 0.1, true, 5),
    );
}

#[test]
fn adam_and_adamw_steps_follow_pytorch() {
    // The first Adam step moves every coordinate by lr (up to eps): m̂ = g, v̂ = g².
    let first = run_optimizer(AdamConfig::builder().lr(0.1).build().into(), 1);
    assert_trajectories(&first, &[vec![0.9, -1.9, 0.4]]);

    let adam = AdamConfig::builder()
        .lr(0.05)
        .betas((0.8, 0.99))
        .eps(1e-6)
        .weight_decay(0.1)
        .build();
    assert_trajectories(
        &run_optimizer(adam.into(), 6),
        &adam_by_hand(0.05, (0.8, 0.99), 1e-6, 0.1, false, false, 6),
    );
    let amsgrad = AdamConfig::builder().lr(0.05).amsgrad(true).build();
    assert_trajectories(
        &run_optimizer(amsgrad.into(), 6),
        &adam_by_hand(0.05, (0.9, 0.999), 1e-8, 0.0, false, true, 6),
    );
    let adamw = AdamWConfig::builder().lr(0.05).weight_decay(0.5).build();
    assert_trajectories(
        &run_optimizer(adamw.into(), 6),
        &adam_by_hand(0.05, (0.9, 0.999), 1e-8, 0.5, true, false, 6),
    );
}

#[test]
fn optimizer_state_export_and_import_continue_exactly() {
    single_thread();
    let config: OptimizerConfig = AdamConfig::builder().lr(0.05).amsgrad(true).build().into();
    let make = || {
        let p = Tensor::from_slice(&[1.0_f32, -2.0, 0.5]).set_requires_grad(true);
        let opt =
            Optimizer::new(config.clone(), vec![("w".to_owned(), p.shallow_clone())]).unwrap();
        (p, opt)
    };
    let step = |p: &Tensor, opt: &mut Optimizer| {
        opt.zero_grad();
        (p * p * p).sum(Kind::Float).backward();
        opt.step().unwrap();
    };
    let (p, mut opt) = make();
    for _ in 0..3 {
        step(&p, &mut opt);
    }
    let state = opt.export_state().unwrap();
    assert_eq!(
        state.names().collect::<Vec<_>>(),
        [
            "exp_avg.w",
            "exp_avg_sq.w",
            "lr",
            "max_exp_avg_sq.w",
            "step"
        ]
    );
    assert_eq!(state.i64("step").unwrap().sum(), 3);

    let (q, mut resumed) = make();
    tch::no_grad(|| q.shallow_clone().copy_(&p));
    resumed.import_state(&state).unwrap();
    step(&p, &mut opt);
    step(&q, &mut resumed);
    assert_eq!(tensor_to_f32(&p).unwrap(), tensor_to_f32(&q).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Losses: values by hand, gradients against central finite differences (in f64).

fn loss_value(config: LossConfig, prediction: &Tensor, target: &Tensor) -> f64 {
    Loss::new(config)
        .unwrap()
        .compute(prediction, target)
        .unwrap()
        .total
        .double_value(&[])
}

fn log_softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    row.iter().map(|x| x - lse).collect()
}

#[test]
fn cross_entropy_weights_classes_and_ignores_an_index() {
    single_thread();
    let rows = [[1.0, 2.0, 3.0], [1.0, 0.0, -1.0], [0.5, 0.5, 0.5]];
    let logits = Tensor::from_slice(&rows.concat()).view([3, 3]);
    let target = Tensor::from_slice(&[2_i64, 0, -100]);
    let config = CrossEntropyConfig::builder()
        .weights(vec![2.0, 1.0, 0.5])
        .ignore_index(-100)
        .build();
    // Mean weighted by the kept samples' class weights: (0.5·nll₀ + 2·nll₁) / 2.5.
    let expected = (0.5 * -log_softmax(&rows[0])[2] + 2.0 * -log_softmax(&rows[1])[0]) / 2.5;
    let found = loss_value(config.into(), &logits, &target);
    assert!((found - expected).abs() < 1e-12, "{found} != {expected}");

    let err = Loss::new(LossConfig::CrossEntropy(CrossEntropyConfig::default()))
        .unwrap()
        .compute(&logits, &Tensor::from_slice(&[2_i64, 0, 3]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the target holds class 3 but the prediction has 3 classes (0 to 2); check the label map \
         or the network's number of classes"
    );
}

#[test]
fn simple_losses_have_their_textbook_values() {
    single_thread();
    let x = Tensor::from_slice(&[0.0_f64, 2.0, -1.0]);
    let y = Tensor::from_slice(&[1.0_f64, 0.0, 1.0]);
    assert!((loss_value(LossConfig::Mse, &x, &y) - (1.0 + 4.0 + 4.0) / 3.0).abs() < 1e-12);
    assert!((loss_value(LossConfig::L1, &x, &y) - 5.0 / 3.0).abs() < 1e-12);
    // BCE: -[y log σ(x) + (1-y) log(1-σ(x))], with pos_weight 3 on the positive term.
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let bce =
        (3.0 * -sigmoid(0.0).ln() - (1.0 - sigmoid(2.0)).ln() + 3.0 * -sigmoid(-1.0).ln()) / 3.0;
    let config = BceWithLogitsConfig::builder().pos_weight(3.0).build();
    assert!((loss_value(config.into(), &x, &y) - bce).abs() < 1e-12);

    let err = Loss::new(LossConfig::Mse)
        .unwrap()
        .compute(&x, &Tensor::from_slice(&[1.0_f64, 0.0]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`target` has shape [2]; the loss needs the prediction's shape [3]"
    );
}

#[test]
fn dice_and_focal_match_their_definitions() {
    single_thread();
    // Two classes, four voxels, batch of one.
    let logits_rows = [[2.0, -1.0, 0.0, 1.0], [0.0, 1.0, 0.0, -1.0]];
    let logits = Tensor::from_slice(&logits_rows.concat()).view([1, 2, 4]);
    let target = Tensor::from_slice(&[0_i64, 1, 1, 0]).view([1, 4]);
    let probs: Vec<[f64; 2]> = (0..4)
        .map(|v| {
            let l = log_softmax(&[logits_rows[0][v], logits_rows[1][v]]);
            [l[0].exp(), l[1].exp()]
        })
        .collect();
    let truth = [0_usize, 1, 1, 0];
    let smooth = 0.5;
    let dice_of = |c: usize| {
        let inter: f64 = (0..4).filter(|&v| truth[v] == c).map(|v| probs[v][c]).sum();
        let sum_p: f64 = (0..4).map(|v| probs[v][c]).sum();
        (2.0 * inter + smooth) / (sum_p + 2.0 + smooth)
    };
    let dice = 1.0 - f64::midpoint(dice_of(0), dice_of(1));
    let config = DiceConfig::builder().smooth(smooth).build();
    assert!((loss_value(config.into(), &logits, &target) - dice).abs() < 1e-12);
    let foreground = DiceConfig::builder()
        .smooth(smooth)
        .include_background(false)
        .build();
    assert!((loss_value(foreground.into(), &logits, &target) - (1.0 - dice_of(1))).abs() < 1e-12);

    let ce: f64 = (0..4).map(|v| -probs[v][truth[v]].ln()).sum::<f64>() / 4.0;
    let dice_ce = DiceCeConfig::builder()
        .smooth(smooth)
        .dice_weight(0.25)
        .build();
    let value = Loss::new(dice_ce.into())
        .unwrap()
        .compute(&logits, &target)
        .unwrap();
    assert!((value.total.double_value(&[]) - (0.25 * dice + ce)).abs() < 1e-12);
    let terms: Vec<_> = value
        .terms
        .iter()
        .map(|(n, t)| (*n, t.double_value(&[])))
        .collect();
    assert!((terms[0].1 - dice).abs() < 1e-12 && terms[0].0 == "dice");
    assert!((terms[1].1 - ce).abs() < 1e-12 && terms[1].0 == "cross_entropy");

    let alpha = [0.25, 0.75];
    let focal: f64 = (0..4)
        .map(|v| {
            let pt = probs[v][truth[v]];
            -alpha[truth[v]] * (1.0 - pt).powi(2) * pt.ln()
        })
        .sum::<f64>()
        / 4.0;
    let config = FocalConfig::builder().alpha(alpha.to_vec()).build();
    assert!((loss_value(config.into(), &logits, &target) - focal).abs() < 1e-12);
}

/// Compares the analytic gradient of a loss with central differences, element by element.
fn check_gradient(config: &LossConfig, prediction: &[f64], shape: &[i64], target: &Tensor) {
    single_thread();
    let loss = Loss::new(config.clone()).unwrap();
    let x = Tensor::from_slice(prediction)
        .view(shape)
        .set_requires_grad(true);
    loss.compute(&x, target).unwrap().total.backward();
    let analytic: Vec<f64> = Vec::try_from(x.grad().flatten(0, -1)).unwrap();
    let h = 1e-6;
    for i in 0..prediction.len() {
        let at = |delta: f64| {
            let mut moved = prediction.to_vec();
            moved[i] += delta;
            loss_value(
                config.clone(),
                &Tensor::from_slice(&moved).view(shape),
                target,
            )
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        assert!(
            (numeric - analytic[i]).abs() < 1e-6 * numeric.abs().max(1.0),
            "{}: element {i}: analytic {} vs numeric {numeric}",
            config.name(),
            analytic[i]
        );
    }
}

#[test]
fn loss_gradients_match_finite_differences() {
    let logits: Vec<f64> = (0..24)
        .map(|i| (f64::from(i * 7 % 11) - 5.0) * 0.37)
        .collect();
    let classes = Tensor::from_slice(&[0_i64, 2, 1, 1, 2, 0, 0, 1]).view([2, 4]);
    let shape = [2, 3, 4];
    check_gradient(
        &CrossEntropyConfig::builder()
            .weights(vec![1.0, 0.5, 2.0])
            .ignore_index(1)
            .build()
            .into(),
        &logits,
        &shape,
        &classes,
    );
    check_gradient(
        &DiceConfig::builder().smooth(1.0).build().into(),
        &logits,
        &shape,
        &classes,
    );
    check_gradient(&DiceCeConfig::default().into(), &logits, &shape, &classes);
    check_gradient(
        &FocalConfig::builder()
            .gamma(1.5)
            .alpha(vec![0.2, 0.3, 0.5])
            .build()
            .into(),
        &logits,
        &shape,
        &classes,
    );
    let values = Tensor::from_slice(&(0..24).map(|i| f64::from(i % 3) * 0.4).collect::<Vec<_>>())
        .view(shape);
    let binary =
        Tensor::from_slice(&(0..24).map(|i| f64::from(i % 2)).collect::<Vec<_>>()).view(shape);
    check_gradient(&LossConfig::Mse, &logits, &shape, &values);
    check_gradient(&LossConfig::L1, &logits, &shape, &values);
    check_gradient(
        &BceWithLogitsConfig::builder()
            .pos_weight(2.0)
            .build()
            .into(),
        &logits,
        &shape,
        &binary,
    );
}

// ---------------------------------------------------------------------------------------------
// Conversions and devices.

#[test]
fn arrays_become_tensors_and_back_in_any_layout() {
    single_thread();
    let a = ArrayD::from_shape_vec(vec![2, 3], vec![1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let transposed = a.t().to_owned().into_dyn();
    let view = a.clone().reversed_axes();
    let t = f32_tensor(&view, TchDevice::Cpu).unwrap();
    assert_eq!(t.size(), [3, 2]);
    assert_eq!(tensor_to_f32(&t).unwrap(), transposed);
    assert_eq!(
        tensor_to_f32(&f32_tensor(&a, TchDevice::Cpu).unwrap()).unwrap(),
        a
    );
}

#[test]
fn an_absent_cuda_device_is_an_error() {
    let err = tch_device(Device::Cuda(64)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("device cuda:64 is not available; this machine"),
        "{err}"
    );
    assert_eq!(tch_device(Device::Cpu).unwrap(), TchDevice::Cpu);
}

//! Reference networks on the PyTorch backend, driven through the step-level `Network` trait.

use delira::backend::torch::{TorchNetwork, tch};
use delira::backend::{
    AdamConfig, BackendError, Device, DiceCeConfig, Network, OptimizerConfig, SgdConfig, State,
};
use delira::data::{Batch, Record};
use delira::models::torch::{Norm, UNet, UNetConfig};
use ndarray::ArrayD;

fn tiny(norm: Norm) -> UNetConfig {
    UNetConfig::builder()
        .in_channels(1)
        .classes(2)
        .depth(2)
        .base(2)
        .norm(norm)
        .build()
}

fn network(config: &UNetConfig, optimizer: OptimizerConfig) -> TorchNetwork<UNet> {
    tch::set_num_threads(1);
    TorchNetwork::new(
        Device::Cpu,
        |p| UNet::new(p, config),
        optimizer,
        DiceCeConfig::default().into(),
    )
    .unwrap()
}

/// Two 8³ images, each with a bright cube whose voxels are class 1.
fn cubes() -> Batch {
    let samples = (0..2).map(|i| {
        let mut image = ArrayD::<f32>::zeros(vec![1, 8, 8, 8]);
        let mut label = ArrayD::<i64>::zeros(vec![8, 8, 8]);
        for x in 1 + i..5 + i {
            for y in 2..6 {
                for z in i..4 + i {
                    image[[0, x, y, z]] = 1.0;
                    label[[x, y, z]] = 1;
                }
            }
        }
        // Some structured noise, so the task is not a pure threshold of zeros.
        for (n, v) in image.iter_mut().enumerate() {
            *v += ((n * 37 % 17) as f32 - 8.0) * 0.02;
        }
        Record::new().with("image", image).with("label", label)
    });
    Batch::collate(samples).unwrap()
}

#[test]
fn unet_parameters_are_counted_and_named_stably() {
    let net = network(&tiny(Norm::Instance), AdamConfig::default().into());
    // enc0 54+4+108+4, enc1 216+8+432+8, up 64+2, dec0 216+4+108+4, head 4+2.
    assert_eq!(net.parameter_count(), 1238);
    let state = net.export_state().unwrap();
    let model: Vec<_> = state.names().filter(|n| n.starts_with("model.")).collect();
    assert_eq!(
        model,
        [
            "model.decoder.0.0.conv.weight",
            "model.decoder.0.0.norm.bias",
            "model.decoder.0.0.norm.weight",
            "model.decoder.0.1.conv.weight",
            "model.decoder.0.1.norm.bias",
            "model.decoder.0.1.norm.weight",
            "model.encoder.0.0.conv.weight",
            "model.encoder.0.0.norm.bias",
            "model.encoder.0.0.norm.weight",
            "model.encoder.0.1.conv.weight",
            "model.encoder.0.1.norm.bias",
            "model.encoder.0.1.norm.weight",
            "model.encoder.1.0.conv.weight",
            "model.encoder.1.0.norm.bias",
            "model.encoder.1.0.norm.weight",
            "model.encoder.1.1.conv.weight",
            "model.encoder.1.1.norm.bias",
            "model.encoder.1.1.norm.weight",
            "model.head.bias",
            "model.head.weight",
            "model.up.0.bias",
            "model.up.0.weight",
        ]
    );
    assert_eq!(
        state.f32("model.up.0.weight").unwrap().shape(),
        [4, 2, 2, 2, 2]
    );
    assert_eq!(state.i64("optimizer.step").unwrap().sum(), 0);
}

#[test]
fn a_3d_unet_learns_a_cube() {
    let mut net = network(
        &tiny(Norm::Instance),
        AdamConfig::builder().lr(0.02).build().into(),
    );
    let batch = cubes();
    let losses: Vec<f64> = (0..40)
        .map(|_| net.train_step(&batch).unwrap().loss().unwrap())
        .collect();
    assert!(
        losses[39] < 0.5 * losses[0],
        "the loss fell only from {} to {}",
        losses[0],
        losses[39]
    );

    let out = net.eval_step(&batch).unwrap();
    let logits = out.prediction("logits").unwrap();
    assert_eq!(logits.shape(), [2, 2, 8, 8, 8]);
    assert!(out.losses.contains_key("dice") && out.losses.contains_key("cross_entropy"));
    assert_eq!(
        net.export_state()
            .unwrap()
            .i64("optimizer.step")
            .unwrap()
            .sum(),
        40
    );
}

#[test]
fn the_state_round_trip_is_exact() {
    let config = tiny(Norm::Batch);
    let optimizer: OptimizerConfig = SgdConfig::builder()
        .lr(0.05)
        .momentum(0.9)
        .nesterov(true)
        .build()
        .into();
    let batch = cubes();
    let mut original = network(&config, optimizer.clone());
    for _ in 0..2 {
        original.train_step(&batch).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("delira-torch-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unet.safetensors");
    original.export_state().unwrap().save(&path).unwrap();

    let mut restored = network(&config, optimizer);
    restored.import_state(&State::load(&path).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // Identical predictions (batch norm uses the restored running statistics in eval mode)...
    assert_eq!(
        original.eval_step(&batch).unwrap(),
        restored.eval_step(&batch).unwrap()
    );
    // ... and the step after a reload equals the step without one.
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
fn a_state_of_another_network_is_refused_whole() {
    let mut net = network(&tiny(Norm::Instance), AdamConfig::default().into());
    let before = net.export_state().unwrap();
    let mut wrong = before.clone();
    wrong.remove("model.head.bias");
    wrong.insert(
        "model.head.weight",
        ArrayD::<f32>::zeros(vec![3, 2, 1, 1, 1]),
    );
    wrong.insert("model.extra.weight", ArrayD::<f32>::zeros(vec![1]));
    wrong.insert(
        "model.encoder.0.0.conv.weight",
        ArrayD::<f32>::ones(vec![2, 1, 3, 3, 3]),
    );

    let BackendError::State(mismatch) = net.import_state(&wrong).unwrap_err() else {
        panic!("expected a state mismatch");
    };
    assert_eq!(mismatch.missing, ["model.head.bias"]);
    assert_eq!(mismatch.unexpected, ["model.extra.weight"]);
    assert_eq!(mismatch.mismatched.len(), 1);
    assert_eq!(mismatch.mismatched[0].name, "model.head.weight");
    assert_eq!(mismatch.mismatched[0].expected.0, [2, 2, 1, 1, 1]);
    // Nothing changed, not even the entries that would have fitted.
    assert_eq!(net.export_state().unwrap(), before);
}

#[test]
fn bad_batches_are_errors_that_name_the_field() {
    let mut net = network(&tiny(Norm::None), AdamConfig::default().into());
    let batch =
        Batch::collate([Record::new().with("image", ArrayD::<f32>::zeros(vec![1, 4, 4, 4]))])
            .unwrap();
    assert_eq!(
        net.train_step(&batch).unwrap_err().to_string(),
        "the batch has no field `label`; it holds [\"image\"]"
    );
    let two_channels = Batch::collate([Record::new()
        .with("image", ArrayD::<f32>::zeros(vec![2, 4, 4, 4]))
        .with("label", ArrayD::<i64>::zeros(vec![4, 4, 4]))])
    .unwrap();
    let err = net.train_step(&two_channels).unwrap_err().to_string();
    assert!(
        err.starts_with("the forward pass on `image` of shape [1, 2, 4, 4, 4] failed"),
        "{err}"
    );
    assert_eq!(net.learning_rate(), 1e-3);
    net.set_learning_rate(0.5);
    assert_eq!(net.learning_rate(), 0.5);
    assert_eq!(net.device(), Device::Cpu);
}

#[test]
fn a_residual_classifier_counts_its_parameters_and_learns() {
    use delira::models::torch::{ResNetClassifier, ResNetConfig};
    tch::set_num_threads(1);
    let config = ResNetConfig::builder()
        .spatial_dims(2)
        .in_channels(1)
        .classes(2)
        .widths(vec![4, 8])
        .norm(Norm::Batch)
        .build();
    let mut net = TorchNetwork::new(
        Device::Cpu,
        |p| ResNetClassifier::new(p, &config),
        AdamConfig::builder().lr(0.02).build().into(),
        delira::backend::CrossEntropyConfig::default().into(),
    )
    .unwrap();
    // stem 36+8; stage 0: 144+8+144+8; stage 1: 288+16+576+16 + shortcut 32+16; head 16+2.
    assert_eq!(net.parameter_count(), 1310);

    // Class 1: a bright left half; class 0: a bright right half.
    let samples = (0_i32..4).map(|i| {
        let class = i % 2;
        let image = ArrayD::from_shape_fn(vec![1, 8, 8], |ix| {
            let left = ix[2] < 4;
            if left == (class == 1) { 1.0_f32 } else { 0.0 }
        });
        Record::new()
            .with("image", image)
            .with("label", ndarray::arr0(i64::from(class)).into_dyn())
    });
    let batch = Batch::collate(samples).unwrap();
    let losses: Vec<f64> = (0..30)
        .map(|_| net.train_step(&batch).unwrap().loss().unwrap())
        .collect();
    assert!(losses[29] < 0.5 * losses[0], "{losses:?}");
    assert_eq!(
        net.eval_step(&batch)
            .unwrap()
            .prediction("logits")
            .unwrap()
            .shape(),
        [4, 2]
    );
}

#[test]
fn a_dcgan_steps_both_optimizers_and_resumes_exactly() {
    use delira::models::torch::{Dcgan, DcganConfig};
    tch::set_num_threads(1);
    let config = DcganConfig::builder()
        .latent(8)
        .size(8)
        .features(4)
        .seed(3)
        .build();
    let optimizer: OptimizerConfig = AdamConfig::builder()
        .lr(2e-4)
        .betas((0.5, 0.999))
        .build()
        .into();
    let images = (0..3).map(|i| {
        let image =
            ArrayD::from_shape_fn(vec![1, 8, 8], |ix| ((ix[1] + ix[2] + i) % 3) as f32 - 1.0);
        Record::new().with("image", image)
    });
    let batch = Batch::collate(images).unwrap();

    let mut gan = Dcgan::new(Device::Cpu, config.clone(), &optimizer).unwrap();
    // Generator: convT 8→4 (4×4) 512 + batch norm 8, convT 4→1 64. Discriminator: conv 1→4
    // 64, head 4→1 64.
    assert_eq!(gan.parameter_count(), 512 + 8 + 64 + 64 + 64);
    let before = gan.export_state().unwrap();
    let out = gan.train_step(&batch).unwrap();
    assert_eq!(out.prediction("fake").unwrap().shape(), [3, 1, 8, 8]);
    let (d, g) = (out.losses["discriminator"], out.losses["generator"]);
    assert_eq!(out.loss().unwrap(), d + g);
    let after = gan.export_state().unwrap();
    // Both optimizers made one step and changed their own network.
    assert_eq!(after.i64("optimizer_g.step").unwrap().sum(), 1);
    assert_eq!(after.i64("optimizer_d.step").unwrap().sum(), 1);
    assert_ne!(
        after.get("generator.0.conv.weight"),
        before.get("generator.0.conv.weight")
    );
    assert_ne!(
        after.get("discriminator.head.weight"),
        before.get("discriminator.head.weight")
    );

    let mut resumed = Dcgan::new(Device::Cpu, config, &optimizer).unwrap();
    resumed.import_state(&after).unwrap();
    assert_eq!(
        gan.train_step(&batch).unwrap(),
        resumed.train_step(&batch).unwrap()
    );
    assert_eq!(gan.export_state().unwrap(), resumed.export_state().unwrap());
}

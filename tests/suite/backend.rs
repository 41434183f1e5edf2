//! The backend-agnostic parts of `delira::backend`: configurations, states, mismatch reports.

use delira::backend::{
    AdamConfig, AdamWConfig, BackendError, BackendKind, CrossEntropyConfig, Device, LossConfig,
    OptimizerConfig, SgdConfig, State, StateArray,
};
use ndarray::ArrayD;

#[test]
fn optimizer_configs_take_pytorch_defaults_and_reject_unknown_keys() {
    let adamw: OptimizerConfig = serde_json::from_str(r#"{"adamw": {"lr": 0.01}}"#).unwrap();
    assert_eq!(
        adamw,
        OptimizerConfig::AdamW(AdamWConfig {
            lr: 0.01,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            amsgrad: false,
        })
    );
    let sgd: OptimizerConfig =
        serde_json::from_str(r#"{"sgd": {"lr": 0.1, "momentum": 0.9, "nesterov": true}}"#).unwrap();
    assert_eq!(
        sgd,
        SgdConfig::builder()
            .lr(0.1)
            .momentum(0.9)
            .nesterov(true)
            .build()
            .into()
    );

    let unknown = serde_json::from_str::<OptimizerConfig>(r#"{"adam": {"learning_rate": 0.1}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("unknown field `learning_rate`"),
        "{unknown}"
    );
    let unknown = serde_json::from_str::<OptimizerConfig>(r#"{"rmsprop": {}}"#)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown variant `rmsprop`"), "{unknown}");
}

#[test]
fn optimizer_configs_are_validated_like_pytorch() {
    let nesterov = OptimizerConfig::from(SgdConfig::builder().nesterov(true).build());
    let message = nesterov.validate().unwrap_err().to_string();
    assert_eq!(
        message,
        "invalid sgd configuration: nesterov needs a positive momentum and zero dampening, got \
         momentum 0 and dampening 0"
    );
    let beta = OptimizerConfig::from(AdamConfig::builder().betas((0.9, 1.0)).build());
    assert!(
        beta.validate()
            .unwrap_err()
            .to_string()
            .contains("beta 1 must lie in [0, 1)")
    );
    assert!(
        OptimizerConfig::from(AdamConfig::default())
            .validate()
            .is_ok()
    );
}

#[test]
fn loss_configs_round_trip_and_check_class_weights() {
    let loss: LossConfig = serde_json::from_str(r#""mse""#).unwrap();
    assert_eq!(loss, LossConfig::Mse);
    let ce = LossConfig::from(
        CrossEntropyConfig::builder()
            .weights(vec![1.0, 2.0])
            .ignore_index(255)
            .build(),
    );
    let json = serde_json::to_string(&ce).unwrap();
    assert_eq!(
        json,
        r#"{"cross_entropy":{"weights":[1.0,2.0],"ignore_index":255}}"#
    );
    assert_eq!(serde_json::from_str::<LossConfig>(&json).unwrap(), ce);
    assert_eq!(
        ce.validate(Some(3)).unwrap_err().to_string(),
        "invalid cross_entropy configuration: 2 class weights given for 3 classes; give one \
         weight per class"
    );
    assert!(serde_json::from_str::<LossConfig>(r#"{"dice": {"smoth": 1}}"#).is_err());
}

fn sample_state() -> State {
    let mut state = State::new();
    state.insert(
        "conv.weight",
        ArrayD::from_shape_vec(
            vec![2, 3],
            vec![0.5_f32, -1.0, 2.25, f32::MIN_POSITIVE, 0.0, 7.0],
        )
        .unwrap(),
    );
    state.insert("optimizer.lr", ndarray::arr0(1e-3_f64).into_dyn());
    state.insert("optimizer.step", ndarray::arr0(12_i64).into_dyn());
    state
}

#[test]
fn states_round_trip_through_safetensors_files_bit_for_bit() {
    let dir = std::env::temp_dir().join(format!("delira-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.safetensors");
    let state = sample_state();
    state.save(&path).unwrap();
    let back = State::load(&path).unwrap();
    assert_eq!(back, state);
    assert_eq!(
        back.names().collect::<Vec<_>>(),
        ["conv.weight", "optimizer.lr", "optimizer.step"]
    );
    assert!(!dir.join("state.safetensors.partial").exists());

    std::fs::write(&path, b"not a state").unwrap();
    let err = State::load(&path).unwrap_err();
    assert!(matches!(err, BackendError::Format { .. }), "{err}");
    assert!(err.to_string().contains("state.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_state_check_names_missing_unexpected_and_misshaped_entries() {
    let expected = sample_state();
    let mut incoming = sample_state();
    incoming.remove("optimizer.step");
    incoming.insert("conv.weight", ArrayD::<f32>::zeros(vec![3, 2]));
    incoming.insert("conv.bias", ArrayD::<f32>::zeros(vec![2]));
    incoming.insert("optimizer.lr", ndarray::arr0(1_i64).into_dyn());

    let mismatch = expected.check(&incoming).unwrap_err();
    assert_eq!(mismatch.missing, ["optimizer.step"]);
    assert_eq!(mismatch.unexpected, ["conv.bias"]);
    let names: Vec<_> = mismatch
        .mismatched
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["conv.weight", "optimizer.lr"]);
    assert_eq!(mismatch.mismatched[0].expected, (vec![2, 3], "f32"));
    assert_eq!(mismatch.mismatched[0].found, (vec![3, 2], "f32"));
    assert_eq!(
        mismatch.to_string(),
        "the state does not fit the network; missing entries [\"optimizer.step\"]; unexpected \
         entries [\"conv.bias\"]; `conv.weight` is f32 [3, 2] but the network has f32 [2, 3]; \
         `optimizer.lr` is i64 [] but the network has f64 []; was it saved from a network of \
         another architecture or configuration?"
    );
    assert!(expected.check(&sample_state()).is_ok());
}

#[test]
fn prefixes_split_and_join_states() {
    let mut whole = State::new();
    whole.extend_prefixed("model.", sample_state());
    assert_eq!(whole.len(), 3);
    assert!(matches!(
        whole.get("model.optimizer.step"),
        Some(StateArray::I64(_))
    ));
    assert_eq!(whole.with_prefix("model."), sample_state());
}

#[test]
fn devices_print_like_pytorch_and_backends_name_their_feature() {
    assert_eq!(Device::Cpu.to_string(), "cpu");
    assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    assert!(!BackendKind::Tensorflow.is_enabled());
    assert_eq!(
        BackendKind::Tensorflow.require().unwrap_err().to_string(),
        "the `tensorflow` backend is not compiled in; enable the cargo feature `tensorflow`"
    );
    assert_eq!(
        BackendKind::Torch.require().is_ok(),
        cfg!(feature = "torch")
    );
}

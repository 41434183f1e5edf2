//! Learning-rate schedules against PyTorch's update rules.
//!
//! The curves marked "reference" come from `scripts/reference/schedules.py`, which re-writes
//! the recursive `get_lr()` rules of `torch.optim.lr_scheduler` (PyTorch itself is not installed
//! here); the Rust schedules use the closed forms, so the two are checked against each other to
//! 1e-12. Step, multi-step and exponential values are hand-computed.

use delira::training::Mode;
use delira::training::schedule::{Schedule, ScheduleConfig, ScheduleError, ThresholdMode};

// Pasted verbatim from the script's output.
#[rustfmt::skip]
#[allow(clippy::unreadable_literal)]
mod reference {
    pub const COSINE: [f64; 20] = [0.1, 0.09509795896116975, 0.08136274519200731, 0.061514786230837566, 0.03948521376916245, 0.019637254807992697, 0.005902041038830259, 0.001, 0.005902041038830253, 0.019637254807992683, 0.03948521376916243, 0.061514786230837525, 0.08136274519200731, 0.09509795896116978, 0.10000000000000002, 0.09509795896116978, 0.08136274519200734, 0.06151478623083755, 0.03948521376916246, 0.019637254807992707];
    pub const WARM_RESTARTS: [f64; 16] = [0.1, 0.0775, 0.032500000000000015, 0.1, 0.09397114317029975, 0.0775, 0.05500000000000001, 0.032500000000000015, 0.01602885682970026, 0.1, 0.09846666218300808, 0.09397114317029975, 0.08681980515339464, 0.0775, 0.06664685702961344, 0.05500000000000001];
    pub const ONE_CYCLE: [f64; 21] = [0.020000000000000018, 0.06583592135001265, 0.18583592135001265, 0.3341640786499874, 0.45416407864998737, 0.5, 0.49373200311754367, 0.47524231600673683, 0.445458088785525, 0.40587282697488153, 0.3584715008956504, 0.30563101096814466, 0.250001, 0.19437098903185537, 0.14153049910434962, 0.09412917302511849, 0.05454391121447502, 0.024759683993263143, 0.006269996882456277, 2e-06, 0.006269996882456277];
    pub const ONE_CYCLE_THREE_PHASE: [f64; 21] = [0.020000000000000018, 0.06583592135001265, 0.18583592135001265, 0.3341640786499874, 0.45416407864998737, 0.5, 0.45416407864998737, 0.3341640786499874, 0.18583592135001262, 0.06583592135001264, 0.02, 0.019396986515238298, 0.01766067838674666, 0.015000500000000002, 0.01173730812849164, 0.008264691871508365, 0.005001500000000003, 0.00234132161325334, 0.0006050134847617028, 2e-06, 0.0006050134847617018];
    pub const WARMUP_THEN_COSINE: [f64; 12] = [0.05, 0.08750000000000001, 0.12500000000000003, 0.16250000000000003, 0.2, 0.1866025403784439, 0.15000000000000002, 0.1, 0.050000000000000024, 0.01339745962155613, 0.0, 0.01339745962155613];
    pub const PLATEAU_MIN_REL: [f64; 12] = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25];
    pub const PLATEAU_MAX_ABS: [f64; 9] = [1.0, 1.0, 1.0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.09];
}

fn epoch_curve(schedule: &mut Schedule, epochs: usize, metrics: Option<&[f64]>) -> Vec<f64> {
    let mut lrs = vec![schedule.lr()];
    for epoch in 0..epochs - 1 {
        let monitored = metrics.map(|m| m[epoch]);
        lrs.push(schedule.step_epoch(monitored).unwrap());
    }
    lrs
}

fn assert_curve(actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= 1e-12, "step {i}: {a} != {e}");
    }
}

#[test]
fn step_multi_step_and_exponential_are_hand_computed() {
    let step = ScheduleConfig::Step {
        step_size: 3,
        gamma: 0.5,
    };
    let curve = epoch_curve(&mut Schedule::new(step, 0.8).unwrap(), 8, None);
    assert_eq!(curve, [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2]);

    let multi = ScheduleConfig::MultiStep {
        milestones: vec![2, 5],
        gamma: 0.1,
    };
    let curve = epoch_curve(&mut Schedule::new(multi, 1.0).unwrap(), 7, None);
    assert_curve(&curve, &[1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01]);

    let exponential = ScheduleConfig::Exponential { gamma: 0.9 };
    let curve = epoch_curve(&mut Schedule::new(exponential, 2.0).unwrap(), 4, None);
    assert_curve(&curve, &[2.0, 1.8, 1.62, 1.458]);
}

#[test]
fn cosine_annealing_matches_the_recursive_rule_past_t_max() {
    let config = ScheduleConfig::CosineAnnealing {
        t_max: 7,
        eta_min: 0.001,
    };
    let curve = epoch_curve(&mut Schedule::new(config, 0.1).unwrap(), 20, None);
    assert_curve(&curve, &reference::COSINE);
}

#[test]
fn warm_restarts_with_growing_periods_match_the_reference() {
    let config = ScheduleConfig::CosineWarmRestarts {
        t_0: 3,
        t_mult: 2,
        eta_min: 0.01,
    };
    let curve = epoch_curve(&mut Schedule::new(config, 0.1).unwrap(), 16, None);
    assert_curve(&curve, &reference::WARM_RESTARTS);
}

fn one_cycle(three_phase: bool) -> ScheduleConfig {
    let json = format!(
        r#"{{"kind": "one_cycle", "max_lr": 0.5, "total_steps": 20, "three_phase": {three_phase}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

#[test]
fn one_cycle_steps_per_iteration_with_pytorch_defaults() {
    for (three_phase, expected) in [
        (false, &reference::ONE_CYCLE[..]),
        (true, &reference::ONE_CYCLE_THREE_PHASE[..]),
    ] {
        let mut schedule = Schedule::new(one_cycle(three_phase), 0.0).unwrap();
        assert!(schedule.per_iteration());
        let mut curve = vec![schedule.lr()];
        for _ in 0..20 {
            curve.push(schedule.step_iteration().unwrap());
            // Epoch ends do not move a per-iteration schedule.
            assert_eq!(schedule.step_epoch(None).unwrap(), *curve.last().unwrap());
        }
        assert_curve(&curve, expected);
        assert_eq!(
            schedule.step_iteration().unwrap_err(),
            ScheduleError::PastEnd {
                steps: 21,
                total_steps: 20
            }
        );
    }
}

#[test]
fn linear_warmup_hands_over_to_a_fresh_schedule() {
    let config: ScheduleConfig = serde_json::from_str(
        r#"{"kind": "linear_warmup", "start_factor": 0.25, "epochs": 4,
            "then": {"kind": "cosine_annealing", "t_max": 6}}"#,
    )
    .unwrap();
    let curve = epoch_curve(&mut Schedule::new(config, 0.2).unwrap(), 12, None);
    assert_curve(&curve, &reference::WARMUP_THEN_COSINE);
}

#[test]
fn linear_warmup_alone_keeps_the_end_factor() {
    let config = ScheduleConfig::LinearWarmup {
        start_factor: 0.5,
        end_factor: 1.0,
        epochs: 2,
        then: None,
    };
    let curve = epoch_curve(&mut Schedule::new(config, 0.4).unwrap(), 5, None);
    assert_curve(&curve, &[0.2, 0.3, 0.4, 0.4, 0.4]);
}

fn plateau(
    mode: Mode,
    factor: f64,
    patience: u64,
    threshold: f64,
    threshold_mode: ThresholdMode,
    cooldown: u64,
    min_lr: f64,
) -> ScheduleConfig {
    ScheduleConfig::ReduceOnPlateau {
        mode,
        factor,
        patience,
        threshold,
        threshold_mode,
        cooldown,
        min_lr,
        eps: 1e-8,
    }
}

/// The learning rate *after* each epoch's step, as the reference lists it.
fn plateau_curve(schedule: &mut Schedule, metrics: &[f64]) -> Vec<f64> {
    metrics
        .iter()
        .map(|&m| schedule.step_epoch(Some(m)).unwrap())
        .collect()
}

#[test]
fn reduce_on_plateau_follows_pytorch() {
    let metrics = [
        5.0, 4.0, 4.0, 4.0, 3.9999, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0,
    ];
    let config = plateau(Mode::Min, 0.5, 2, 1e-4, ThresholdMode::Rel, 1, 0.1);
    let curve = plateau_curve(&mut Schedule::new(config, 1.0).unwrap(), &metrics);
    assert_eq!(curve, reference::PLATEAU_MIN_REL);

    let metrics = [-2.0, -1.0, -0.95, -0.9, -1.0, -0.85, -0.5, -0.5, -0.5];
    let config = plateau(Mode::Max, 0.3, 1, 0.1, ThresholdMode::Abs, 0, 0.05);
    let curve = plateau_curve(&mut Schedule::new(config, 1.0).unwrap(), &metrics);
    assert_curve(&curve, &reference::PLATEAU_MAX_ABS);

    let mut schedule = Schedule::new(
        plateau(Mode::Min, 0.5, 0, 0.0, ThresholdMode::Abs, 0, 0.0),
        1.0,
    )
    .unwrap();
    assert_eq!(
        schedule.step_epoch(None).unwrap_err(),
        ScheduleError::MissingMetric { epoch: 0 }
    );
}

/// Runs `epochs` epochs, saving the state through JSON after `split` of them into a fresh
/// schedule, and checks that the two curves agree exactly.
fn assert_resumes_exactly(config: &ScheduleConfig, metrics: &[f64], split: usize) {
    let mut straight = Schedule::new(config.clone(), 0.3).unwrap();
    let expected = plateau_curve(&mut straight, metrics);

    let mut first = Schedule::new(config.clone(), 0.3).unwrap();
    let mut curve = plateau_curve(&mut first, &metrics[..split]);
    let json = serde_json::to_string(&first.state()).unwrap();
    let mut resumed = Schedule::new(config.clone(), 0.3).unwrap();
    resumed
        .load_state(serde_json::from_str(&json).unwrap())
        .unwrap();
    assert_eq!(resumed.lr(), first.lr());
    curve.extend(plateau_curve(&mut resumed, &metrics[split..]));
    assert_eq!(curve, expected, "{config:?}");
}

#[test]
fn every_schedule_resumes_exactly_from_its_state() {
    let metrics = [3.0, 2.0, 2.5, 2.5, 2.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5];
    let configs = [
        ScheduleConfig::Step {
            step_size: 2,
            gamma: 0.5,
        },
        ScheduleConfig::CosineWarmRestarts {
            t_0: 2,
            t_mult: 3,
            eta_min: 0.0,
        },
        ScheduleConfig::LinearWarmup {
            start_factor: 0.1,
            end_factor: 1.0,
            epochs: 3,
            then: Some(Box::new(plateau(
                Mode::Min,
                0.5,
                1,
                0.0,
                ThresholdMode::Abs,
                1,
                0.0,
            ))),
        },
        plateau(Mode::Min, 0.5, 1, 1e-4, ThresholdMode::Rel, 2, 0.01),
    ];
    for config in &configs {
        for split in [1, 4, 7] {
            assert_resumes_exactly(config, &metrics, split);
        }
    }
    let mut cosine = Schedule::new(
        ScheduleConfig::CosineAnnealing {
            t_max: 3,
            eta_min: 0.0,
        },
        1.0,
    )
    .unwrap();
    let wrong = Schedule::new(ScheduleConfig::Constant, 1.0)
        .unwrap()
        .state();
    assert!(matches!(
        cosine.load_state(wrong),
        Err(ScheduleError::StateMismatch { .. })
    ));
}

#[test]
fn configs_reject_unknown_keys_and_invalid_values() {
    let unknown =
        serde_json::from_str::<ScheduleConfig>(r#"{"kind": "step", "step_size": 2, "gama": 0.5}"#);
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `gama`")
    );

    let defaults: ScheduleConfig =
        serde_json::from_str(r#"{"kind": "reduce_on_plateau"}"#).unwrap();
    assert_eq!(
        defaults,
        plateau(Mode::Min, 0.1, 10, 1e-4, ThresholdMode::Rel, 0, 0.0)
    );

    let error = Schedule::new(
        ScheduleConfig::Step {
            step_size: 0,
            gamma: 0.1,
        },
        0.1,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "schedule `step`: `step_size` = 0 is invalid; must be greater than 0"
    );
    let error = Schedule::new(
        ScheduleConfig::MultiStep {
            milestones: vec![3, 3],
            gamma: 0.1,
        },
        0.1,
    )
    .unwrap_err();
    assert!(matches!(
        error,
        ScheduleError::Invalid {
            key: "milestones",
            ..
        }
    ));
    let nested = ScheduleConfig::LinearWarmup {
        start_factor: 0.5,
        end_factor: 1.0,
        epochs: 2,
        then: Some(Box::new(one_cycle(false))),
    };
    assert!(matches!(
        Schedule::new(nested, 0.1),
        Err(ScheduleError::Invalid { key: "then", .. })
    ));
}

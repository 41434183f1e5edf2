//! Callbacks: early stopping's exact stop epoch, state round trips, the scheduler callback, a
//! user callback.

use std::collections::BTreeMap;

use delira::training::callbacks::{
    Callback, CallbackContext, CallbackError, CallbackList, EarlyStopping, EarlyStoppingConfig,
    Hook, LrScheduler,
};
use delira::training::schedule::{Schedule, ScheduleConfig};
use delira::training::{BestTracker, Mode};

fn stopper(mode: Mode, patience: u64, min_delta: f64) -> EarlyStopping {
    EarlyStopping::new(EarlyStoppingConfig {
        monitor: "val".into(),
        mode,
        patience,
        min_delta,
    })
}

/// Feeds `values` as one epoch each; returns the epoch at whose end a stop was requested.
fn stop_epoch(callbacks: &mut CallbackList, values: &[f64], first_epoch: u64) -> Option<u64> {
    for (i, &value) in values.iter().enumerate() {
        let metrics = BTreeMap::from([("val".to_owned(), value)]);
        let mut ctx = CallbackContext::new(first_epoch + i as u64, 0, &metrics, 1.0);
        callbacks.run(Hook::EpochEnd, &mut ctx).unwrap();
        if ctx.stop_requested().is_some() {
            return Some(first_epoch + i as u64);
        }
    }
    None
}

fn list(callback: impl Callback + 'static) -> CallbackList {
    let mut list = CallbackList::default();
    list.push(Box::new(callback)).unwrap();
    list
}

#[test]
fn early_stopping_stops_after_exactly_patience_epochs() {
    // Best at epoch 2 (0.5); epochs 3, 4, 5 do not improve by more than 0.01 (0.495 is too
    // little); with patience 3 the stop comes at the end of epoch 5.
    let values = [1.0, 0.8, 0.5, 0.495, 0.6, 0.5, 0.1];
    let mut callbacks = list(stopper(Mode::Min, 3, 0.01));
    assert_eq!(stop_epoch(&mut callbacks, &values, 0), Some(5));

    // Without min_delta, 0.495 improves at epoch 3; epochs 4 and 5 do not, and epoch 6 improves
    // again before the patience runs out: no stop.
    let mut callbacks = list(stopper(Mode::Min, 3, 0.0));
    assert_eq!(stop_epoch(&mut callbacks, &values, 0), None);

    // Patience 1 stops at the first epoch without improvement.
    let mut callbacks = list(stopper(Mode::Min, 1, 0.0));
    assert_eq!(stop_epoch(&mut callbacks, &[3.0, 2.0, 2.0], 0), Some(2));
}

#[test]
fn any_first_value_is_the_best_negative_or_infinite() {
    let mut callbacks = list(stopper(Mode::Max, 2, 0.0));
    assert_eq!(
        stop_epoch(&mut callbacks, &[-7.0, -6.0, -6.5, -8.0], 0),
        Some(3)
    );

    let mut tracker = BestTracker::new(Mode::Min, 0.0);
    assert!(tracker.update(f64::INFINITY));
    assert!(tracker.update(1e300));
    assert!(!tracker.update(f64::NAN));
    assert_eq!(tracker.best(), Some(1e300));
}

#[test]
fn early_stopping_resumes_from_its_state() {
    let values = [1.0, 0.5, 0.7, 0.6, 0.8, 0.9];
    let mut straight = list(stopper(Mode::Min, 3, 0.0));
    assert_eq!(stop_epoch(&mut straight, &values, 0), Some(4));

    let mut first = list(stopper(Mode::Min, 3, 0.0));
    assert_eq!(stop_epoch(&mut first, &values[..3], 0), None);
    let saved = serde_json::to_string(&first.states()).unwrap();
    let mut resumed = list(stopper(Mode::Min, 3, 0.0));
    resumed
        .load_states(serde_json::from_str(&saved).unwrap())
        .unwrap();
    assert_eq!(stop_epoch(&mut resumed, &values[3..], 3), Some(4));
}

#[test]
fn a_missing_monitored_metric_is_an_error_that_lists_the_others() {
    let mut callbacks = list(stopper(Mode::Min, 3, 0.0));
    let metrics = BTreeMap::from([("loss".to_owned(), 1.0)]);
    let mut ctx = CallbackContext::new(4, 10, &metrics, 1.0);
    let error = callbacks.run(Hook::EpochEnd, &mut ctx).unwrap_err();
    assert_eq!(
        error.to_string(),
        "callback `early_stopping` monitors `val`, which epoch 4 did not report; available: [\"loss\"]"
    );
}

#[test]
fn callback_states_must_all_be_present_and_names_unique() {
    let mut callbacks = list(stopper(Mode::Min, 3, 0.0));
    assert!(matches!(
        callbacks.push(Box::new(stopper(Mode::Max, 1, 0.0))),
        Err(CallbackError::DuplicateName(name)) if name == "early_stopping"
    ));
    assert!(matches!(
        callbacks.load_states(BTreeMap::new()),
        Err(CallbackError::State { .. })
    ));
    let garbage = BTreeMap::from([("early_stopping".to_owned(), serde_json::json!({"x": 1}))]);
    assert!(matches!(
        callbacks.load_states(garbage),
        Err(CallbackError::State { .. })
    ));
}

#[test]
fn the_scheduler_callback_sets_the_rate_per_iteration_or_per_epoch() {
    let one_cycle: ScheduleConfig =
        serde_json::from_str(r#"{"kind": "one_cycle", "max_lr": 1.0, "total_steps": 10}"#).unwrap();
    let reference = Schedule::new(one_cycle.clone(), 0.0).unwrap();
    let mut callbacks = list(LrScheduler::new(
        Schedule::new(one_cycle, 0.0).unwrap(),
        None,
    ));
    let metrics = BTreeMap::new();

    let mut ctx = CallbackContext::new(0, 0, &metrics, 0.0);
    callbacks.run(Hook::TrainBegin, &mut ctx).unwrap();
    assert_eq!(ctx.requested_lr(), Some(reference.lr()));
    let mut expected = reference.clone();
    for step in 1..=4 {
        let mut ctx = CallbackContext::new(0, step, &metrics, 0.0);
        callbacks.run(Hook::IterationEnd, &mut ctx).unwrap();
        assert_eq!(ctx.requested_lr(), Some(expected.step_iteration().unwrap()));
    }
    // A per-iteration schedule leaves the epoch end alone.
    let mut ctx = CallbackContext::new(0, 4, &metrics, 0.5);
    callbacks.run(Hook::EpochEnd, &mut ctx).unwrap();
    assert_eq!(ctx.requested_lr(), None);

    let plateau: ScheduleConfig =
        serde_json::from_str(r#"{"kind": "reduce_on_plateau", "patience": 0, "factor": 0.5}"#)
            .unwrap();
    let mut callbacks = list(LrScheduler::new(
        Schedule::new(plateau, 1.0).unwrap(),
        Some("val".into()),
    ));
    let mut lrs = Vec::new();
    for value in [1.0, 1.0, 0.5, 0.7] {
        let metrics = BTreeMap::from([("val".to_owned(), value)]);
        let mut ctx = CallbackContext::new(0, 0, &metrics, 1.0);
        callbacks.run(Hook::EpochEnd, &mut ctx).unwrap();
        lrs.push(ctx.lr());
    }
    assert_eq!(lrs, [1.0, 0.5, 0.5, 0.25]);
}

/// A user callback that records the hooks it sees and halves the rate at epoch ends.
#[derive(Default)]
struct Recorder {
    seen: Vec<String>,
}

impl Callback for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn on_train_begin(&mut self, _: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        self.seen.push("train_begin".into());
        Ok(())
    }
    fn on_epoch_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        self.seen.push(format!("epoch_end {}", ctx.epoch));
        ctx.set_lr(ctx.lr() / 2.0);
        Ok(())
    }
    fn on_iteration_begin(&mut self, ctx: &mut CallbackContext<'_>) -> Result<(), CallbackError> {
        self.seen.push(format!("iteration_begin {}", ctx.step));
        Ok(())
    }
    fn state(&self) -> serde_json::Value {
        serde_json::json!(self.seen)
    }
    fn load_state(&mut self, state: serde_json::Value) -> Result<(), CallbackError> {
        self.seen = serde_json::from_value(state).map_err(|e| CallbackError::Other {
            callback: "recorder".into(),
            message: e.to_string(),
        })?;
        Ok(())
    }
}

#[test]
fn user_callbacks_see_their_hooks_in_order_and_later_callbacks_see_earlier_changes() {
    let mut callbacks = CallbackList::default();
    callbacks.push(Box::new(Recorder::default())).unwrap();
    callbacks
        .push(Box::new(stopper(Mode::Min, 1, 0.0)))
        .unwrap();
    assert_eq!(
        format!("{callbacks:?}"),
        r#"["recorder", "early_stopping"]"#
    );
    let metrics = BTreeMap::from([("val".to_owned(), 2.0)]);
    for (hook, step) in [
        (Hook::TrainBegin, 0),
        (Hook::IterationBegin, 1),
        (Hook::EpochEnd, 1),
    ] {
        let mut ctx = CallbackContext::new(0, step, &metrics, 0.8);
        callbacks.run(hook, &mut ctx).unwrap();
        if hook == Hook::EpochEnd {
            assert_eq!(ctx.lr(), 0.4);
        }
    }
    let states = callbacks.states();
    assert_eq!(
        states["recorder"],
        serde_json::json!(["train_begin", "iteration_begin 1", "epoch_end 0"])
    );
}

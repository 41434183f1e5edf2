//! Checkpoint files: exact round trip, damage detection, discovery, and policy decisions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use delira::random::StreamKey;
use delira::training::Mode;
use delira::training::checkpoint::{
    BestMetric, Checkpoint, CheckpointError, CheckpointPolicy, CheckpointWriter, Fallback, Kept,
    MANIFEST_FILE, Manifest, TENSORS_FILE, fingerprint_json,
};
use delira::training::schedule::{Schedule, ScheduleConfig};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("delira-checkpoint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn checkpoint(epoch: u64, step: u64) -> Checkpoint {
    let mut stream = StreamKey::new(9).epoch(epoch).purpose("tensors").stream();
    let tensors: Vec<u8> = (0..300).map(|_| stream.below(256) as u8).collect();
    let mut schedule = Schedule::new(
        ScheduleConfig::CosineAnnealing {
            t_max: 5,
            eta_min: 0.0,
        },
        0.1,
    )
    .unwrap();
    schedule.step_epoch(None).unwrap();
    let manifest = Manifest {
        epoch,
        step,
        batch_in_epoch: 3,
        epoch_complete: false,
        metrics: BTreeMap::from([
            ("loss".to_owned(), 0.1 + 0.2),
            ("val_dice".to_owned(), f64::NAN),
            ("val_hd95".to_owned(), f64::INFINITY),
            ("tiny".to_owned(), 5e-324),
        ]),
        best: Some(BestMetric {
            metric: "val_loss".into(),
            mode: Mode::Min,
            value: f64::INFINITY,
            epoch: 0,
        }),
        schedule: Some(schedule.state()),
        callbacks: BTreeMap::from([("early_stopping".to_owned(), serde_json::json!({"wait": 2}))]),
        random_streams: BTreeMap::from([("sampler".to_owned(), [u64::MAX, 1, 2, 1 << 63])]),
        logger_step: 41,
        config_fingerprint: fingerprint_json(&serde_json::json!({"lr": 0.1})).unwrap(),
        data_fingerprint: "subjects-1-2-3".into(),
        extra: BTreeMap::new(),
    };
    Checkpoint { manifest, tensors }
}

/// Compares manifests treating NaN as equal to NaN.
fn assert_same(a: &Checkpoint, b: &Checkpoint) {
    assert_eq!(a.tensors, b.tensors);
    let bits = |c: &Checkpoint| -> Vec<(String, u64)> {
        c.manifest
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), v.to_bits()))
            .collect()
    };
    assert_eq!(bits(a), bits(b));
    let mut a = a.manifest.clone();
    let mut b = b.manifest.clone();
    a.metrics.clear();
    b.metrics.clear();
    assert_eq!(a, b);
}

#[test]
fn a_checkpoint_round_trips_exactly() {
    let root = scratch("round-trip");
    let writer = CheckpointWriter::new(&root);
    let original = checkpoint(4, 120);
    let folder = writer.write(&original).unwrap();
    assert_eq!(folder, root.join("epoch-00004-step-000000120"));
    let back = Checkpoint::read(&folder).unwrap();
    assert_same(&original, &back);
    assert_eq!(
        back.manifest.metrics["loss"].to_bits(),
        (0.1_f64 + 0.2).to_bits()
    );

    // Writing the same checkpoint name again replaces it completely.
    let mut changed = original.clone();
    changed.manifest.logger_step = 99;
    writer.write(&changed).unwrap();
    assert_eq!(Checkpoint::read(&folder).unwrap().manifest.logger_step, 99);
    assert_eq!(writer.list().unwrap().len(), 1);
    std::fs::remove_dir_all(&root).unwrap();
}

fn expect_damaged(folder: &Path, file: &str) {
    match Checkpoint::read(folder) {
        Err(CheckpointError::Damaged { path, .. }) => assert_eq!(path, folder.join(file)),
        other => panic!("expected damage in {file}, got {other:?}"),
    }
}

#[test]
fn every_flipped_byte_is_detected_and_the_file_named() {
    let root = scratch("flip");
    let folder = CheckpointWriter::new(&root)
        .write(&checkpoint(1, 10))
        .unwrap();
    for file in [MANIFEST_FILE, TENSORS_FILE] {
        let path = folder.join(file);
        let intact = std::fs::read(&path).unwrap();
        for position in 0..intact.len() {
            let mut damaged = intact.clone();
            damaged[position] ^= 0x01;
            std::fs::write(&path, &damaged).unwrap();
            expect_damaged(&folder, file);
        }
        std::fs::write(&path, &intact).unwrap();
        assert!(Checkpoint::read(&folder).is_ok());
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn truncated_and_missing_files_are_reported() {
    let root = scratch("truncate");
    let folder = CheckpointWriter::new(&root)
        .write(&checkpoint(1, 10))
        .unwrap();
    for file in [MANIFEST_FILE, TENSORS_FILE] {
        let path = folder.join(file);
        let intact = std::fs::read(&path).unwrap();
        std::fs::write(&path, &intact[..intact.len() / 2]).unwrap();
        expect_damaged(&folder, file);
        let message = Checkpoint::read(&folder).unwrap_err().to_string();
        assert!(
            message.contains(file) && message.contains("is damaged"),
            "{message}"
        );
        std::fs::write(&path, &intact).unwrap();
    }
    std::fs::remove_file(folder.join(TENSORS_FILE)).unwrap();
    match Checkpoint::read(&folder) {
        Err(CheckpointError::Io { path, .. }) => assert_eq!(path, folder.join(TENSORS_FILE)),
        other => panic!("expected an i/o error, got {other:?}"),
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn latest_and_previous_are_found_and_damage_needs_consent_to_fall_back() {
    let root = scratch("discover");
    let writer = CheckpointWriter::new(&root);
    assert_eq!(writer.latest().unwrap(), None);
    for (epoch, step) in [(0, 10), (1, 20), (1, 25), (2, 30)] {
        writer.write(&checkpoint(epoch, step)).unwrap();
    }
    // Leftovers of an interrupted write and unrelated entries are not checkpoints.
    std::fs::create_dir_all(root.join("epoch-00003-step-000000040.partial")).unwrap();
    std::fs::write(root.join("notes.txt"), "x").unwrap();

    let steps: Vec<u64> = writer.list().unwrap().iter().map(|e| e.step).collect();
    assert_eq!(steps, [10, 20, 25, 30]);
    assert_eq!(writer.latest().unwrap().unwrap().step, 30);
    assert_eq!(writer.previous().unwrap().unwrap().step, 25);

    let newest = writer.latest().unwrap().unwrap().path;
    std::fs::write(newest.join(TENSORS_FILE), b"garbage").unwrap();
    match writer.read_latest(Fallback::Refuse) {
        Err(CheckpointError::NewestDamaged {
            newest: path,
            problem,
        }) => {
            assert_eq!(path, newest);
            assert!(problem.contains(TENSORS_FILE), "{problem}");
        }
        other => panic!("expected NewestDamaged, got {other:?}"),
    }
    let (entry, used) = writer.read_latest(Fallback::Previous).unwrap();
    assert_eq!((entry.epoch, entry.step), (1, 25));
    assert_same(&used, &checkpoint(1, 25));

    writer
        .delete(&["epoch-00000-step-000000010".to_owned()])
        .unwrap();
    assert_eq!(writer.list().unwrap().first().unwrap().step, 20);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_policy_decides_writes_exactly() {
    let policy = CheckpointPolicy {
        every_epochs: 3,
        every_steps: Some(50),
        keep_last: 2,
        keep_best: false,
    };
    let writes: Vec<u64> = (0..10)
        .filter(|&e| policy.write_at_epoch_end(e, 10, false))
        .collect();
    // Every third epoch (2, 5, 8) and the last one (9).
    assert_eq!(writes, [2, 5, 8, 9]);
    assert!(!policy.write_at_epoch_end(0, 10, true)); // improvement does not matter without keep_best
    let steps: Vec<u64> = (1..=160).filter(|&s| policy.write_at_step(s)).collect();
    assert_eq!(steps, [50, 100, 150]);

    let best = CheckpointPolicy {
        keep_best: true,
        every_steps: None,
        ..policy
    };
    assert!(best.write_at_epoch_end(0, 10, true));
    assert!(!best.write_at_step(50));
}

fn kept(name: &str, step: u64, metric: Option<f64>) -> Kept {
    Kept {
        name: name.into(),
        step,
        metric,
    }
}

#[test]
fn the_policy_decides_deletions_exactly() {
    // Given out of order on purpose.
    let existing = [
        kept("e3", 40, Some(0.30)),
        kept("e0", 10, Some(0.50)),
        kept("e1", 20, Some(0.20)),
        kept("s25", 25, None),
        kept("e2", 30, Some(f64::NAN)),
        kept("e4", 50, Some(0.20)),
    ];
    let last_two = CheckpointPolicy {
        every_epochs: 1,
        every_steps: None,
        keep_last: 2,
        keep_best: false,
    };
    assert_eq!(
        last_two.to_delete(&existing, Mode::Min),
        ["e0", "e1", "s25", "e2"]
    );

    let with_best = CheckpointPolicy {
        keep_best: true,
        ..last_two.clone()
    };
    // Min: 0.20 at e1 and e4; the earlier one (e1) is the best. NaN never is.
    assert_eq!(
        with_best.to_delete(&existing, Mode::Min),
        ["e0", "s25", "e2"]
    );
    // Max: 0.50 at e0.
    assert_eq!(
        with_best.to_delete(&existing, Mode::Max),
        ["e1", "s25", "e2"]
    );

    // keep_last 0 still keeps the newest, which a resume needs.
    let none = CheckpointPolicy {
        keep_last: 0,
        ..last_two
    };
    assert_eq!(none.to_delete(&existing, Mode::Min).len(), 5);
    assert!(none.to_delete(&[], Mode::Min).is_empty());
}

#[test]
fn policy_configs_reject_unknown_keys() {
    let error = serde_json::from_str::<CheckpointPolicy>(
        r#"{"every_epochs": 1, "every_steps": null, "keep_last": 2, "keep_best": true, "keep_worst": true}"#,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("unknown field `keep_worst`"),
        "{error}"
    );
}

//! Splits and samplers: exact folds and orders for fixed seeds, invariants over many seeds and
//! sizes, statistics of the random samplers, and the errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use delira::data::split::{
    self, HoldoutConfig, KFoldConfig, Split, SplitConfig, SplitError, SplitKind, SplitTargets,
    ValidationConfig, ValidationSize,
};
use delira::data::{
    BatchSampler, ClassBalancedSampler, IndexSampler, RandomSampler, Sampler, SamplerConfig,
    SamplerError, SamplerKind, WeightedSampler,
};
use delira::random::StreamKey;

/// A scratch directory for this test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("delira-split-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Random labels in `0..classes` for `n` samples (from a stream unrelated to the split's).
fn random_codes(n: usize, classes: u64, seed: u64) -> Vec<u64> {
    let mut s = StreamKey::new(seed).purpose("test-labels").stream();
    (0..n).map(|_| s.below(classes)).collect()
}

/// Checks the invariants every split must hold, independently of `Split::validate`.
fn assert_partition(split: &Split) {
    let n = split.n();
    let all: BTreeSet<usize> = (0..n).collect();
    let mut tested = Vec::new();
    for (f, fold) in split.folds().iter().enumerate() {
        for part in [&fold.train, &fold.validation, &fold.test] {
            assert!(
                part.windows(2).all(|w| w[0] < w[1]),
                "fold {f}: part not sorted"
            );
        }
        let train: BTreeSet<usize> = fold.train.iter().copied().collect();
        let val: BTreeSet<usize> = fold.validation.iter().copied().collect();
        let test: BTreeSet<usize> = fold.test.iter().copied().collect();
        assert!(train.is_disjoint(&test), "fold {f}: train and test overlap");
        assert!(
            train.is_disjoint(&val),
            "fold {f}: train and validation overlap"
        );
        assert!(
            val.is_disjoint(&test),
            "fold {f}: validation and test overlap"
        );
        let union: BTreeSet<usize> = train.union(&val).chain(&test).copied().collect();
        assert_eq!(union, all, "fold {f}: parts do not cover 0..n");
        assert!(!fold.train.is_empty() && !fold.test.is_empty());
        tested.extend_from_slice(&fold.test);
    }
    if split.kind() == SplitKind::KFold {
        tested.sort_unstable();
        assert_eq!(
            tested,
            all.into_iter().collect::<Vec<_>>(),
            "test folds are no partition"
        );
    }
}

fn count_by<L: Ord + Clone>(indices: &[usize], labels: &[L]) -> BTreeMap<L, usize> {
    let mut counts = BTreeMap::new();
    for &i in indices {
        *counts.entry(labels[i].clone()).or_insert(0) += 1;
    }
    counts
}

fn tests_of(split: &Split) -> Vec<Vec<usize>> {
    split.folds().iter().map(|f| f.test.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Exact folds.

#[test]
fn unshuffled_kfold_cuts_contiguous_runs_first_ones_longer() {
    let split = KFoldConfig::builder()
        .k(4)
        .shuffle(false)
        .build()
        .split(&SplitTargets::new(10));
    let split = split.unwrap();
    assert_eq!(
        tests_of(&split),
        [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7], vec![8, 9]]
    );
    assert_eq!(split.folds()[2].train, [0, 1, 2, 3, 4, 5, 8, 9]);
    assert!(split.folds().iter().all(|f| f.validation.is_empty()));
}

#[test]
fn shuffled_kfold_cuts_the_split_stream_permutation() {
    // The documented algorithm, written out: permute 0..n with the split stream, cut into runs.
    let (n, k, seed) = (11, 3, 42);
    let order = StreamKey::new(seed)
        .purpose("split")
        .stream()
        .permutation(n);
    let mut expected = vec![
        order[0..4].to_vec(),
        order[4..8].to_vec(),
        order[8..11].to_vec(),
    ];
    for t in &mut expected {
        t.sort_unstable();
    }
    let split = split::kfold(n, k, seed).unwrap();
    assert_eq!(tests_of(&split), expected);
    assert_eq!((split.seed(), split.n(), split.k()), (seed, n, k));
}

#[test]
fn golden_kfold_seed_42() {
    // Pins the folds of existing experiments: a change here changes their folds.
    let split = split::kfold(10, 3, 42).unwrap();
    assert_eq!(tests_of(&split), GOLDEN_KFOLD_10_3_42);
}

const GOLDEN_KFOLD_10_3_42: [&[usize]; 3] = [&[1, 2, 3, 7], &[0, 5, 6], &[4, 8, 9]];

#[test]
fn unshuffled_stratified_kfold_matches_scikit_learn() {
    // StratifiedKFold(n_splits=3).split(X, y) for this y, computed by hand from scikit-learn's
    // rule: round robin over the labels sorted by class (classes in order of first appearance)
    // gives per-class counts per fold
    // (class 0: 1/1/1, class 1: 3/2/2, class 2: 1/1/1); each class fills folds 0, 1, 2 in
    // blocks, in dataset order.
    let y = [0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 2, 2, 2];
    let targets = SplitTargets::new(y.len()).with_labels(&y).unwrap();
    let config = KFoldConfig::builder()
        .k(3)
        .shuffle(false)
        .stratify(true)
        .build();
    let split = config.split(&targets).unwrap();
    assert_eq!(
        tests_of(&split),
        [vec![0, 1, 3, 4, 10], vec![2, 5, 7, 11], vec![6, 8, 9, 12]]
    );
}

#[test]
fn unshuffled_folds_match_scikit_learn_reference_file() {
    // Folds computed by scikit-learn (KFold, StratifiedKFold, GroupKFold, StratifiedGroupKFold,
    // all unshuffled) for
    // random inputs; regenerate with scripts/reference/sklearn_splits.py.
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("reference/sklearn_splits.json")).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    let ints = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let mut seen = BTreeMap::new();
    for (c, case) in cases.iter().enumerate() {
        let k = case["k"].as_u64().unwrap() as usize;
        let config = KFoldConfig::builder().k(k).shuffle(false);
        let kind = case["kind"].as_str().unwrap();
        let split = match kind {
            "k_fold" => {
                let n = case["n"].as_u64().unwrap() as usize;
                config.build().split(&SplitTargets::new(n))
            }
            "stratified" => {
                let labels = ints(&case["labels"]);
                let targets = SplitTargets::new(labels.len())
                    .with_labels(&labels)
                    .unwrap();
                KFoldConfig {
                    stratify: true,
                    ..config.build()
                }
                .split(&targets)
            }
            "grouped" => {
                let groups = ints(&case["groups"]);
                let targets = SplitTargets::new(groups.len())
                    .with_groups(&groups)
                    .unwrap();
                KFoldConfig {
                    group: true,
                    ..config.build()
                }
                .split(&targets)
            }
            "stratified_grouped" => {
                let labels = ints(&case["labels"]);
                let targets = SplitTargets::new(labels.len())
                    .with_labels(&labels)
                    .unwrap()
                    .with_groups(&ints(&case["groups"]))
                    .unwrap();
                let config = KFoldConfig {
                    stratify: true,
                    group: true,
                    ..config.build()
                };
                config.split(&targets)
            }
            other => panic!("unknown case kind {other}"),
        };
        let expected: Vec<Vec<usize>> = case["test"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| ints(t).into_iter().map(|i| i as usize).collect())
            .collect();
        assert_eq!(tests_of(&split.unwrap()), expected, "case {c} ({kind})");
        *seen.entry(kind).or_insert(0) += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([
            ("grouped", 12),
            ("k_fold", 4),
            ("stratified", 12),
            ("stratified_grouped", 12)
        ])
    );
}

#[test]
fn golden_stratified_kfold_seed_7() {
    let labels = ["a", "b", "a", "a", "b", "c", "c", "a", "b", "c", "a", "b"];
    let split = split::stratified_kfold(&labels, 3, 7).unwrap();
    assert_eq!(tests_of(&split), GOLDEN_STRATIFIED_12_3_7);
}

const GOLDEN_STRATIFIED_12_3_7: [&[usize]; 3] = [&[0, 5, 7, 11], &[2, 4, 6, 10], &[1, 3, 8, 9]];

#[test]
fn unshuffled_group_kfold_balances_largest_groups_first() {
    // Sizes c:3, e:2, a:2, d:1, b:1 (equal sizes larger id first, as scikit-learn).
    // c -> fold 0 (3), e -> fold 1 (2), a -> fold 1 (4), d -> fold 0 (4),
    // b -> fold 0 (tie, lower fold; 5).
    let groups = ["a", "a", "b", "c", "c", "c", "d", "e", "e"];
    let targets = SplitTargets::new(groups.len())
        .with_groups(&groups)
        .unwrap();
    let config = KFoldConfig::builder()
        .k(2)
        .shuffle(false)
        .group(true)
        .build();
    let split = config.split(&targets).unwrap();
    assert_eq!(tests_of(&split), [vec![2, 3, 4, 5, 6], vec![0, 1, 7, 8]]);
}

#[test]
fn golden_group_kfold_seed_3() {
    let groups = [1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 7, 8];
    let split = split::group_kfold(&groups, 3, 3).unwrap();
    assert_eq!(tests_of(&split), GOLDEN_GROUP_13_3_3);
}

const GOLDEN_GROUP_13_3_3: [&[usize]; 3] = [&[2, 8, 9, 10, 11], &[0, 1, 3, 4], &[5, 6, 7, 12]];

#[test]
fn golden_holdout_seed_5() {
    let split = split::holdout(10, 0.3, 5).unwrap();
    let order = StreamKey::new(5).purpose("split").stream().permutation(10);
    let mut expected = order[..3].to_vec();
    expected.sort_unstable();
    assert_eq!(split.folds()[0].test, expected);
    assert_eq!(split.folds()[0].test, GOLDEN_HOLDOUT_10_03_5);
    assert_eq!(split.kind(), SplitKind::Holdout);
    assert_eq!(split.k(), 1);
}

const GOLDEN_HOLDOUT_10_03_5: [usize; 3] = [0, 3, 7];

#[test]
fn stratified_holdout_takes_each_class_share() {
    // 20 % of 20 samples = 4: class a (10) gives 2, b (6) gives 1.2 -> 1, c (4) gives 0.8 -> 0;
    // the one left goes to the largest remainder, c (0.8 > 0.2).
    let mut labels = vec!["a"; 10];
    labels.extend(["b"; 6]);
    labels.extend(["c"; 4]);
    let targets = SplitTargets::new(20).with_labels(&labels).unwrap();
    for seed in 0..20 {
        let split = HoldoutConfig::builder().seed(seed).stratify(true).build();
        let split = split.split(&targets).unwrap();
        let counts = count_by(&split.folds()[0].test, &labels);
        assert_eq!(
            counts,
            BTreeMap::from([("a", 2), ("b", 1), ("c", 1)]),
            "seed {seed}"
        );
        assert_partition(&split);
    }
}

#[test]
fn grouped_holdout_keeps_groups_whole() {
    let groups: Vec<u64> = (0..40).map(|i| i / 3).collect(); // 14 groups, the last of 1
    let targets = SplitTargets::new(40).with_groups(&groups).unwrap();
    for seed in 0..30 {
        let config = HoldoutConfig::builder()
            .test_fraction(0.25)
            .seed(seed)
            .group(true)
            .build();
        let split = config.split(&targets).unwrap();
        targets
            .check_groups(&split)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        // At least ceil(0.25 * 40) = 10 samples, and at most one group (3 samples) more.
        let test = split.folds()[0].test.len();
        assert!((10..13).contains(&test), "seed {seed}: {test}");
        assert_partition(&split);
    }
}

// ---------------------------------------------------------------------------------------------
// Invariants over many seeds and sizes.

#[test]
fn kfold_partitions_for_many_seeds_and_sizes() {
    for n in [2, 3, 7, 10, 31, 100] {
        for k in 2..=n.min(7) {
            for seed in 0..10 {
                let split = split::kfold(n, k, seed).unwrap();
                assert_partition(&split);
                let sizes: Vec<usize> = split.folds().iter().map(|f| f.test.len()).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1, "n {n} k {k}: {sizes:?}");
                assert_eq!(
                    split,
                    split::kfold(n, k, seed).unwrap(),
                    "not deterministic"
                );
            }
        }
    }
}

#[test]
fn stratified_kfold_balances_every_class_like_scikit_learn() {
    // scikit-learn's StratifiedKFold guarantees: per class, test counts differ by at most one
    // between folds, and so do the fold sizes.
    for seed in 0..40 {
        let n = 30 + (seed as usize * 7) % 70;
        let labels = random_codes(n, 3, seed);
        let smallest = count_by(&(0..n).collect::<Vec<_>>(), &labels)
            .into_values()
            .min();
        for k in 2..=smallest.unwrap().min(6) {
            let split = split::stratified_kfold(&labels, k, seed).unwrap();
            assert_partition(&split);
            let sizes: Vec<usize> = split.folds().iter().map(|f| f.test.len()).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            for class in 0..3 {
                let counts: Vec<usize> = split
                    .folds()
                    .iter()
                    .map(|f| f.test.iter().filter(|&&i| labels[i] == class).count())
                    .collect();
                let spread = counts.iter().max().unwrap() - counts.iter().min().unwrap();
                assert!(spread <= 1, "seed {seed} k {k} class {class}: {counts:?}");
            }
        }
    }
}

#[test]
fn group_kfold_never_puts_a_group_in_two_folds() {
    for seed in 0..40 {
        let n = 20 + seed as usize * 3;
        let groups = random_codes(n, 9, seed + 1000);
        let targets = SplitTargets::new(n).with_groups(&groups).unwrap();
        let distinct = targets.num_groups().unwrap();
        for k in 2..=distinct.min(5) {
            let config = KFoldConfig::builder().k(k).seed(seed).group(true).build();
            let split = config.split(&targets).unwrap();
            assert_partition(&split);
            targets
                .check_groups(&split)
                .unwrap_or_else(|e| panic!("seed {seed} k {k}: {e}"));
        }
    }
}

#[test]
fn stratified_group_kfold_keeps_groups_whole_and_classes_spread() {
    for seed in 0..30 {
        let n = 60 + seed as usize;
        let groups = random_codes(n, 15, seed + 2000);
        // Each group mostly of one class, as diagnoses are per patient.
        let noise = random_codes(n, 10, seed + 3000);
        let labels: Vec<u64> = (0..n)
            .map(|i| {
                if noise[i] < 7 {
                    groups[i] % 3
                } else {
                    noise[i] % 3
                }
            })
            .collect();
        let targets = SplitTargets::new(n)
            .with_labels(&labels)
            .unwrap()
            .with_groups(&groups)
            .unwrap();
        let config = KFoldConfig::builder()
            .k(3)
            .seed(seed)
            .stratify(true)
            .group(true)
            .build();
        let split = match config.split(&targets) {
            Err(SplitError::ClassTooSmall { .. }) => continue,
            other => other.unwrap(),
        };
        assert_partition(&split);
        targets
            .check_groups(&split)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        // Every class reaches every test fold.
        for fold in split.folds() {
            assert_eq!(count_by(&fold.test, &labels).len(), 3, "seed {seed}");
        }
        assert_eq!(config.split(&targets).unwrap(), split);
    }
}

#[test]
fn group_check_names_the_group_and_where_it_was_split() {
    let groups = ["p1", "p1", "p2", "p2", "p3", "p3"];
    let targets = SplitTargets::new(6).with_groups(&groups).unwrap();
    // Unshuffled plain 3-fold tests 0..2, 2..4, 4..6: whole groups, so no violation.
    let plain = KFoldConfig::builder().k(3).shuffle(false).build();
    targets
        .check_groups(&plain.split(&SplitTargets::new(6)).unwrap())
        .unwrap();
    // Unshuffled 2-fold tests 0..3 and 3..6: p2 is in fold 0 train (3) and fold 0 test (2);
    // train is looked at first.
    let halves = KFoldConfig::builder().k(2).shuffle(false).build();
    let err = targets
        .check_groups(&halves.split(&SplitTargets::new(6)).unwrap())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "group \"p2\" is in both fold 0 train and fold 0 test"
    );
    let err = targets
        .check_groups(&split::kfold(5, 2, 0).unwrap())
        .unwrap_err();
    assert!(matches!(
        err,
        SplitError::TargetsMismatch {
            split: 5,
            targets: 6
        }
    ));
}

#[test]
fn seeds_change_shuffled_folds_but_not_unshuffled_ones() {
    assert_ne!(
        split::kfold(50, 5, 1).unwrap().folds(),
        split::kfold(50, 5, 2).unwrap().folds()
    );
    let plain = |seed| {
        let config = KFoldConfig::builder()
            .k(5)
            .shuffle(false)
            .seed(seed)
            .build();
        config.split(&SplitTargets::new(50)).unwrap()
    };
    assert_eq!(plain(1).folds(), plain(2).folds());
}

// ---------------------------------------------------------------------------------------------
// Inner validation.

#[test]
fn stratified_validation_returns_dataset_indices_of_the_training_part() {
    // Fold 0 tests 0..10 and trains on 10..30, of which 10..15 are "a" and 15..30 are "b". A
    // validation part given as positions within the training part (0..20) instead of dataset
    // indices would overlap the test part and get the class counts wrong.
    let labels: Vec<&str> = (0..30).map(|i| if i < 15 { "a" } else { "b" }).collect();
    let targets = SplitTargets::new(30).with_labels(&labels).unwrap();
    let validation = ValidationConfig::builder()
        .size(ValidationSize::Count(4))
        .stratify(true);
    let config = KFoldConfig::builder()
        .k(3)
        .shuffle(false)
        .validation(validation.build())
        .build();
    let split = config.split(&targets).unwrap();
    assert_partition(&split);

    let fold = &split.folds()[0];
    assert_eq!(fold.test, (0..10).collect::<Vec<_>>());
    assert!(fold.validation.iter().all(|&i| i >= 10));
    // Of 4, "a" gets 4 * 5 / 20 = 1 and "b" gets 4 * 15 / 20 = 3.
    assert_eq!(
        count_by(&fold.validation, &labels),
        BTreeMap::from([("a", 1), ("b", 3)])
    );
    // Fold 2 trains on 0..20: 15 "a" and 5 "b", so "a" gets 3 and "b" gets 1.
    let fold = &split.folds()[2];
    assert!(fold.validation.iter().all(|&i| i < 20));
    assert_eq!(
        count_by(&fold.validation, &labels),
        BTreeMap::from([("a", 3), ("b", 1)])
    );
}

#[test]
fn grouped_validation_keeps_groups_whole_across_train_validation_and_test() {
    let groups: Vec<u64> = (0..60).map(|i| (i * 7) % 20).collect(); // 20 groups of 3, interleaved
    let targets = SplitTargets::new(60).with_groups(&groups).unwrap();
    for seed in 0..20 {
        let config = KFoldConfig::builder()
            .k(4)
            .seed(seed)
            .group(true)
            .validation(ValidationConfig::builder().group(true).build())
            .build();
        let split = config.split(&targets).unwrap();
        assert_partition(&split);
        targets
            .check_groups(&split)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for fold in split.folds() {
            // 45 training samples, 20 % rounded up is 9: three whole groups.
            assert_eq!(fold.validation.len(), 9, "seed {seed}");
        }
    }
}

#[test]
fn validation_fraction_is_taken_from_each_training_part() {
    let validation = ValidationConfig::builder()
        .size(ValidationSize::Fraction(0.25))
        .build();
    let config = KFoldConfig::builder()
        .k(5)
        .seed(9)
        .validation(validation)
        .build();
    let split = config.split(&SplitTargets::new(50)).unwrap();
    assert_partition(&split);
    for fold in split.folds() {
        assert_eq!(
            (fold.train.len(), fold.validation.len(), fold.test.len()),
            (30, 10, 10)
        );
    }
    // The validation parts of different folds are drawn from different streams.
    assert_ne!(split.folds()[0].validation, split.folds()[1].validation);
}

#[test]
fn holdout_with_validation_splits_three_ways() {
    let config = HoldoutConfig::builder()
        .test_fraction(0.2)
        .seed(4)
        .validation(
            ValidationConfig::builder()
                .size(ValidationSize::Count(8))
                .build(),
        )
        .build();
    let split = config.split(&SplitTargets::new(50)).unwrap();
    assert_partition(&split);
    let fold = &split.folds()[0];
    assert_eq!(
        (fold.train.len(), fold.validation.len(), fold.test.len()),
        (32, 8, 10)
    );
}

// ---------------------------------------------------------------------------------------------
// Saving and loading.

#[test]
fn saved_splits_load_back_identically() {
    let scratch = Scratch::new("roundtrip");
    let labels = random_codes(40, 2, 5);
    let targets = SplitTargets::new(40).with_labels(&labels).unwrap();
    let config = KFoldConfig::builder()
        .k(4)
        .seed(11)
        .stratify(true)
        .validation(ValidationConfig::builder().stratify(true).build())
        .build();
    let split = config.split(&targets).unwrap();
    let path = scratch.0.join("folds.json");
    split.save(&path).unwrap();
    let loaded = Split::load(&path).unwrap();
    assert_eq!(loaded, split);
    assert_eq!(loaded.config(), &SplitConfig::KFold(config));
    assert!(!scratch.0.join("folds.json.tmp").exists());
}

/// Saves a valid split, edits its JSON, and returns the error of loading it back.
fn load_edited(name: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let scratch = Scratch::new(name);
    let path = scratch.0.join("folds.json");
    split::kfold(6, 3, 0).unwrap().save(&path).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, json.to_string()).unwrap();
    let message = Split::load(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    message
}

#[test]
fn loading_rejects_broken_invariants_naming_fold_and_index() {
    let message = load_edited("range", |j| j["folds"][1]["test"][0] = 6.into());
    assert!(
        message.ends_with("fold 1: index 6 is out of range for 6 samples"),
        "{message}"
    );

    let message = load_edited("overlap", |j| {
        let t = j["folds"][2]["test"][0].clone();
        j["folds"][2]["train"]
            .as_array_mut()
            .unwrap()
            .push(t.clone());
    });
    assert!(message.contains("fold 2: index") && message.contains("in both train and test"));

    let message = load_edited("uncovered", |j| {
        j["folds"][0]["train"].as_array_mut().unwrap().pop();
    });
    assert!(
        message.contains("fold 0: index") && message.contains("in none of"),
        "{message}"
    );

    // Fold 0 tests one more index, taken from its training part and tested by another fold.
    let message = load_edited("twice", |j| {
        let moved = j["folds"][1]["test"][0].clone();
        let train = j["folds"][0]["train"].as_array_mut().unwrap();
        train.retain(|v| *v != moved);
        j["folds"][0]["test"].as_array_mut().unwrap().push(moved);
    });
    assert!(
        message.contains("in the test part of both fold 0 and fold 1"),
        "{message}"
    );

    let message = load_edited("count", |j| j["config"]["k"] = 4.into());
    assert!(
        message.contains("asks for 4 folds but the split has 3"),
        "{message}"
    );

    let message = load_edited("unknown", |j| j["folds"][0]["extra"] = 1.into());
    assert!(message.contains("is not a valid split"), "{message}");
}

#[test]
fn loading_a_missing_or_garbled_file_names_it() {
    let scratch = Scratch::new("missing");
    let path = scratch.0.join("absent.json");
    let err = Split::load(&path).unwrap_err();
    assert!(matches!(err, SplitError::File { action: "read", .. }));
    assert!(err.to_string().contains("absent.json"));

    let path = scratch.0.join("no-such-dir").join("folds.json");
    let err = split::kfold(4, 2, 0).unwrap().save(&path).unwrap_err();
    assert!(matches!(
        err,
        SplitError::File {
            action: "write",
            ..
        }
    ));
    assert!(err.to_string().starts_with("cannot write split file "));
    assert!(err.to_string().ends_with("folds.json"));

    let path = scratch.0.join("garbled.json");
    std::fs::write(&path, "{\"version\": 1, \"folds\": [").unwrap();
    let err = Split::load(&path).unwrap_err();
    assert!(matches!(err, SplitError::Json { .. }));
    assert!(err.to_string().contains("garbled.json"));
}

// ---------------------------------------------------------------------------------------------
// Configuration.

#[test]
fn configurations_round_trip_with_documented_defaults() {
    let config: SplitConfig = serde_json::from_str(r#"{"kind": "holdout"}"#).unwrap();
    assert_eq!(
        config,
        SplitConfig::Holdout(HoldoutConfig {
            test_fraction: 0.2,
            seed: 0,
            stratify: false,
            group: false,
            validation: None,
        })
    );
    let config: SplitConfig = serde_json::from_str(r#"{"kind": "k_fold"}"#).unwrap();
    assert_eq!(config, SplitConfig::default());
    assert_eq!(
        config,
        SplitConfig::KFold(KFoldConfig {
            k: 5,
            shuffle: true,
            seed: 0,
            stratify: false,
            group: false,
            validation: None,
        })
    );

    let config = SplitConfig::from(
        KFoldConfig::builder()
            .k(3)
            .group(true)
            .validation(
                ValidationConfig::builder()
                    .size(ValidationSize::Count(2))
                    .build(),
            )
            .build(),
    );
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<SplitConfig>(&json).unwrap(), config);

    for bad in [
        r#"{"kind": "holdout", "test_size": 0.3}"#,
        r#"{"kind": "k_fold", "validation": {"fraction": 0.1}}"#,
        r#"{"kind": "leave_one_out"}"#,
    ] {
        assert!(serde_json::from_str::<SplitConfig>(bad).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Split errors.

#[test]
fn split_errors_name_the_values_that_matter() {
    let err = split::kfold(3, 4, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot split 3 samples into 4 folds; use at most 3 folds"
    );
    assert!(matches!(
        split::kfold(3, 1, 0),
        Err(SplitError::TooFewFolds { k: 1 })
    ));

    let err = split::group_kfold(&["p1", "p1", "p2", "p2"], 3, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot split 2 groups into 3 folds; use at most 2 folds"
    );

    let labels = ["common", "common", "common", "rare", "rare", "common"];
    let err = split::stratified_kfold(&labels, 3, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "class \"rare\" has 2 samples, fewer than the 3 folds; use at most 2 folds or merge the class"
    );

    for value in [0.0, 1.0, -0.5, f64::NAN] {
        let err = split::holdout(10, value, 0).unwrap_err();
        assert!(matches!(err, SplitError::BadFraction { what: "test", .. }));
        assert!(err.to_string().ends_with(&format!("got {value}")));
    }
    let err = split::holdout(1, 0.5, 0).unwrap_err();
    assert!(
        matches!(err, SplitError::EmptyPart { size: 1, n: 1, .. }),
        "{err}"
    );

    let err = SplitTargets::new(5).with_labels(&[0, 1, 0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "labels has 3 entries but there are 5 samples; give one per sample"
    );
    let err = SplitTargets::new(5).with_groups(&[0; 6]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("groups has 6 entries but there are 5 samples")
    );

    let stratified = KFoldConfig::builder().k(2).stratify(true).build();
    let err = stratified.split(&SplitTargets::new(4)).unwrap_err();
    assert!(matches!(
        err,
        SplitError::MissingTargets {
            needed: "labels",
            ..
        }
    ));
    let targets = SplitTargets::new(4)
        .with_labels(&[0, 1, 0, 1])
        .unwrap()
        .with_groups(&[0, 0, 1, 1])
        .unwrap();
    let both = HoldoutConfig::builder().stratify(true).group(true).build();
    let err = both.split(&targets).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a test part cannot be stratified and grouped at once (only k-fold can); set only one of \
         `stratify` and `group`"
    );
    let both = ValidationConfig::builder()
        .stratify(true)
        .group(true)
        .build();
    let err = KFoldConfig::builder()
        .k(2)
        .validation(both)
        .build()
        .split(&targets)
        .unwrap_err();
    assert!(matches!(
        err,
        SplitError::StratifiedAndGrouped { part: "validation" }
    ));

    let too_big = ValidationConfig::builder()
        .size(ValidationSize::Count(8))
        .build();
    let config = KFoldConfig::builder().k(5).validation(too_big).build();
    let err = config.split(&SplitTargets::new(10)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a validation part of 8 out of 8 samples leaves a part empty; choose a size between 1 and 7"
    );
}

// ---------------------------------------------------------------------------------------------
// Samplers.

#[test]
fn random_sampler_is_the_sampler_stream_shuffle_of_the_indices() {
    let indices: Vec<usize> = (100..110).collect();
    let sampler = RandomSampler::new(indices.clone(), 42);
    for epoch in 0..3 {
        let mut expected = indices.clone();
        StreamKey::new(42)
            .epoch(epoch)
            .purpose("sampler")
            .stream()
            .shuffle(&mut expected);
        assert_eq!(sampler.epoch_indices(epoch), expected);
    }
    assert_eq!(sampler.epoch_indices(0), GOLDEN_RANDOM_42_EPOCH_0);
    assert_ne!(sampler.epoch_indices(0), sampler.epoch_indices(1));
}

const GOLDEN_RANDOM_42_EPOCH_0: [usize; 10] = [104, 101, 107, 100, 102, 105, 109, 103, 108, 106];

#[test]
fn random_sampler_gives_permutations_and_every_order_position_is_uniform() {
    let sampler = RandomSampler::new((0..5).collect(), 3);
    let mut first = [0u32; 5];
    for epoch in 0..5000 {
        let mut order = sampler.epoch_indices(epoch);
        first[order[0]] += 1;
        order.sort_unstable();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }
    // Each index leads 1000 ± 4.5 standard deviations (sd = sqrt(5000 * 0.2 * 0.8) = 28).
    assert!(first.iter().all(|&c| (875..1125).contains(&c)), "{first:?}");
}

#[test]
fn random_sampler_with_replacement_draws_uniformly() {
    let sampler = RandomSampler::with_replacement(vec![3, 5, 8, 13], 40_000, 1);
    assert_eq!(sampler.len(), 40_000);
    let draws = sampler.epoch_indices(2);
    let counts = count_by(&(0..draws.len()).collect::<Vec<_>>(), &draws);
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), [3, 5, 8, 13]);
    // 10 000 each, sd 87.
    assert!(
        counts.values().all(|&c| (9_600..10_400).contains(&c)),
        "{counts:?}"
    );
    assert_eq!(draws[..8], GOLDEN_REPLACEMENT_1_EPOCH_2);
    assert!(
        RandomSampler::with_replacement(Vec::new(), 5, 0)
            .epoch_indices(0)
            .is_empty()
    );
}

const GOLDEN_REPLACEMENT_1_EPOCH_2: [usize; 8] = [3, 13, 8, 3, 13, 8, 8, 13];

#[test]
fn weighted_sampler_frequencies_follow_the_weights() {
    // Weights per dataset sample; sample 4 is not among the indices, sample 0 weighs nothing.
    let weights = [0.0, 10.0, 20.0, 30.0, 1000.0, 40.0];
    let sampler = WeightedSampler::new(&[0, 1, 2, 3, 5], &weights, 100_000, 9).unwrap();
    let draws = sampler.epoch_indices(0);
    let mut counts = [0usize; 6];
    for &i in &draws {
        counts[i] += 1;
    }
    assert_eq!((counts[0], counts[4]), (0, 0));
    for (i, expected) in [(1, 0.1), (2, 0.2), (3, 0.3), (5, 0.4)] {
        let freq = counts[i] as f64 / 100_000.0;
        // sd <= 0.0016; 0.008 is five of them.
        assert!((freq - expected).abs() < 0.008, "index {i}: {freq}");
    }
    assert_eq!(draws, sampler.epoch_indices(0));
    assert_ne!(draws, sampler.epoch_indices(1));
    assert_eq!(draws[..8], GOLDEN_WEIGHTED_9_EPOCH_0);
}

const GOLDEN_WEIGHTED_9_EPOCH_0: [usize; 8] = [1, 3, 2, 5, 3, 5, 3, 3];

#[test]
fn weighted_sampler_errors_name_index_and_value() {
    let err = WeightedSampler::new(&[0, 1, 2], &[1.0, -0.5, 1.0], 10, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "weight 1 is -0.5; weights must be finite and non-negative"
    );
    let err = WeightedSampler::new(&[0, 1], &[f64::NAN, 1.0], 10, 0).unwrap_err();
    assert!(
        matches!(err, SamplerError::BadWeight { index: 0, .. }),
        "{err}"
    );
    let err = WeightedSampler::new(&[0, 1], &[1.0, f64::INFINITY], 10, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "weight 1 is inf; weights must be finite and non-negative"
    );
    let err = WeightedSampler::new(&[0, 2], &[0.0, 5.0, 0.0], 10, 0).unwrap_err();
    assert!(matches!(err, SamplerError::AllZero { count: 2 }), "{err}");
    let err = WeightedSampler::new(&[], &[1.0], 10, 0).unwrap_err();
    assert!(matches!(err, SamplerError::Empty));
    let err = WeightedSampler::new(&[0, 3], &[1.0, 1.0], 10, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "index 3 has no weights: only 2 were given; give one per dataset sample"
    );
    let err = WeightedSampler::new(&[0, 1], &[f64::MAX, f64::MAX], 10, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the weights of the 2 sampled indices sum to infinity; scale them down"
    );
}

#[test]
fn class_balanced_sampler_makes_every_class_equally_likely() {
    // 90 of class 0, 9 of class 1, 1 of class 2; only the training indices of a split are used.
    let labels: Vec<u8> = (0..100)
        .map(|i| {
            if i < 90 {
                0
            } else if i < 99 {
                1
            } else {
                2
            }
        })
        .collect();
    let split = split::stratified_kfold(&labels[..99], 3, 1).unwrap();
    let mut train = split.folds()[0].train.clone();
    train.push(99);
    let sampler = ClassBalancedSampler::new(&train, &labels, 60_000, 5).unwrap();
    assert_eq!(sampler.num_classes(), 3);
    let draws = sampler.epoch_indices(0);
    assert!(draws.iter().all(|i| train.contains(i)));
    let mut counts = [0usize; 3];
    for &i in &draws {
        counts[labels[i] as usize] += 1;
    }
    // 20 000 each, sd 115.
    assert!(
        counts.iter().all(|&c| (19_400..20_600).contains(&c)),
        "{counts:?}"
    );
    // Within class 1 (6 training samples), each is drawn about 20 000 / 6 times.
    let ones: Vec<usize> = train.iter().copied().filter(|&i| labels[i] == 1).collect();
    for i in ones.iter().copied() {
        let c = draws.iter().filter(|&&d| d == i).count();
        assert!((3_000..3_700).contains(&c), "index {i}: {c}");
    }
    assert_eq!(draws[..8], GOLDEN_BALANCED_5_EPOCH_0);
}

const GOLDEN_BALANCED_5_EPOCH_0: [usize; 8] = [99, 92, 99, 7, 40, 93, 99, 58];

#[test]
fn class_balanced_sampler_errors() {
    let err = ClassBalancedSampler::new(&[0, 4], &["a", "b"], 5, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "index 4 has no labels: only 2 were given; give one per dataset sample"
    );
    assert!(matches!(
        ClassBalancedSampler::new::<u8>(&[], &[], 5, 0),
        Err(SamplerError::Empty)
    ));
}

#[test]
fn batches_of_seven_from_six_hundred_samples() {
    let sampler = RandomSampler::new((0..600).collect(), 8);
    let batches = BatchSampler::new(sampler.clone(), 7, false);
    let epoch = batches.epoch_batches(3);
    assert_eq!((batches.num_batches(), epoch.len()), (86, 86));
    assert_eq!(epoch.last().unwrap().len(), 5);
    assert!(epoch[..85].iter().all(|b| b.len() == 7));
    assert_eq!(epoch.concat(), sampler.epoch_indices(3));

    let dropping = BatchSampler::new(sampler.clone(), 7, true);
    let epoch = dropping.epoch_batches(3);
    assert_eq!((dropping.num_batches(), epoch.len()), (85, 85));
    assert!(epoch.iter().all(|b| b.len() == 7));
    assert_eq!(epoch.concat(), sampler.epoch_indices(3)[..595]);
}

#[test]
fn sampler_config_builds_each_kind() {
    let labels = ["x", "y", "y", "y"];
    let weights = [0.0, 1.0, 1.0, 0.0];
    let indices = vec![3, 1, 2, 0];
    let build = |kind, draws: Option<usize>| {
        let config = SamplerConfig {
            kind,
            seed: 2,
            draws,
        };
        config
            .build(indices.clone(), Some(&weights), Some(&labels))
            .unwrap()
    };
    assert_eq!(
        build(SamplerKind::Sequential, None).epoch_indices(4),
        [3, 1, 2, 0]
    );
    assert_eq!(
        build(SamplerKind::Random, None).epoch_indices(4),
        RandomSampler::new(indices.clone(), 2).epoch_indices(4)
    );
    let with_replacement = build(SamplerKind::RandomWithReplacement, Some(9));
    assert_eq!(
        with_replacement.epoch_indices(4),
        RandomSampler::with_replacement(indices.clone(), 9, 2).epoch_indices(4)
    );
    let weighted = build(SamplerKind::Weighted, None);
    assert_eq!(weighted.len(), 4);
    assert!(weighted.epoch_indices(0).iter().all(|i| [1, 2].contains(i)));
    let balanced = build(SamplerKind::ClassBalanced, Some(100));
    assert_eq!(
        balanced.epoch_indices(1),
        ClassBalancedSampler::new(&indices, &labels, 100, 2)
            .unwrap()
            .epoch_indices(1)
    );

    let config = SamplerConfig::builder().kind(SamplerKind::Weighted).build();
    let err = config
        .build(indices.clone(), None, None::<&[u8]>)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "the weighted sampler needs weights; pass them to `SamplerConfig::build`"
    );

    let json = r#"{"kind": "random_with_replacement", "seed": 4, "draws": 12}"#;
    let config: SamplerConfig = serde_json::from_str(json).unwrap();
    assert_eq!(
        config,
        SamplerConfig::builder()
            .kind(SamplerKind::RandomWithReplacement)
            .seed(4)
            .draws(12)
            .build()
    );
    assert_eq!(
        serde_json::from_str::<SamplerConfig>(&serde_json::to_string(&config).unwrap()).unwrap(),
        config
    );
    assert_eq!(
        serde_json::from_str::<SamplerConfig>("{}").unwrap(),
        SamplerConfig::default()
    );
    assert_eq!(SamplerConfig::default().kind, SamplerKind::Random);
    assert!(serde_json::from_str::<SamplerConfig>(r#"{"kind": "shuffled"}"#).is_err());
}

#[test]
fn index_sampler_keeps_order() {
    let sampler = IndexSampler::new(vec![7, 3, 5]);
    assert_eq!(sampler.epoch_indices(0), sampler.epoch_indices(9));
    assert_eq!(sampler.len(), 3);
}

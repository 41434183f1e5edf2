//! Splits: which dataset indices train, validate and test, fold by fold.
//!
//! A [`Split`] lists one or more [`Fold`]s, each with sorted `train`, `validation` (possibly empty)
//! and `test` indices of the dataset. It is made from a configuration — [`HoldoutConfig`] or
//! [`KFoldConfig`], together [`SplitConfig`] — and the per-sample [`SplitTargets`] (the number of
//! samples, and class labels or group ids when the split is stratified or grouped):
//!
//! - **holdout**: one fold whose test part is a fraction of the data;
//! - **k-fold**: `k` folds whose test parts are disjoint and together cover the data;
//! - **stratified**: every class is spread as evenly as possible; in k-fold, per class, test
//!   counts differ by at most one between folds (unshuffled, the folds are exactly those of
//!   scikit-learn's `StratifiedKFold`);
//! - **grouped**: no group (a patient, a scanner) is in two parts — greedy balancing by group
//!   size for k-fold, like scikit-learn's `GroupKFold`; k-fold can be stratified and grouped at
//!   once, like `StratifiedGroupKFold`;
//! - **inner validation**: each fold's training part gives up a validation part, stratified or
//!   grouped when asked.
//!
//! Every split is a pure function of its configuration and targets: all random draws come from
//! [`StreamKey::new(seed).purpose("split")`](StreamKey). The algorithms are part of delira's
//! contract — changing one changes the folds of existing experiments — so golden tests pin them.
//! A split can be saved to JSON and loaded back, so that later runs reuse exactly the same folds.
//!
//! ```
//! use delira::data::split;
//!
//! // Ten samples of two classes, stratified into 5 folds.
//! let labels = ["a", "a", "a", "a", "a", "b", "b", "b", "b", "b"];
//! let folds = split::stratified_kfold(&labels, 5, 42).unwrap();
//! assert_eq!(folds.k(), 5);
//! for fold in folds.folds() {
//!     // Each test part holds one sample of each class.
//!     assert_eq!(fold.test.len(), 2);
//!     assert_eq!(labels[fold.test[0]], "a");
//!     assert_eq!(labels[fold.test[1]], "b");
//!     assert_eq!(fold.train.len(), 8);
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use typed_builder::TypedBuilder;

use crate::random::{Stream, StreamKey};

/// The version of the JSON layout written by [`Split::save`].
const FORMAT_VERSION: u32 = 1;

/// What can go wrong when making, saving or loading a split.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// `k` is below 2.
    #[error("a k-fold split needs at least 2 folds, got {k}")]
    TooFewFolds {
        /// The requested number of folds.
        k: usize,
    },
    /// More folds than samples.
    #[error("cannot split {n} samples into {k} folds; {}", fold_hint(*n, "samples"))]
    MoreFoldsThanSamples {
        /// The requested number of folds.
        k: usize,
        /// The number of samples.
        n: usize,
    },
    /// More folds than groups.
    #[error("cannot split {groups} groups into {k} folds; {}", fold_hint(*groups, "groups"))]
    MoreFoldsThanGroups {
        /// The requested number of folds.
        k: usize,
        /// The number of distinct groups.
        groups: usize,
    },
    /// A class has fewer samples than there are folds.
    #[error(
        "class {class} has {count} sample{}, fewer than the {k} folds; {}",
        if *count == 1 { "" } else { "s" },
        class_hint(*count)
    )]
    ClassTooSmall {
        /// The class, as its `Debug` form.
        class: String,
        /// Its number of samples.
        count: usize,
        /// The requested number of folds.
        k: usize,
    },
    /// A fraction outside `(0, 1)`.
    #[error("the {what} fraction must lie strictly between 0 and 1, got {value}")]
    BadFraction {
        /// Which fraction (`test`, `validation`).
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// A part would be empty, or would take every sample.
    #[error(
        "a {what} part of {size} out of {n} samples leaves a part empty; {}",
        part_size_hint(*n)
    )]
    EmptyPart {
        /// Which part is being split off (`test`, `validation`).
        what: &'static str,
        /// Its size in samples.
        size: usize,
        /// The number of samples being split.
        n: usize,
    },
    /// Labels or groups of another length than the number of samples.
    #[error("{what} has {len} entries but there are {n} samples; give one per sample")]
    LengthMismatch {
        /// `labels` or `groups`.
        what: &'static str,
        /// The number of entries given.
        len: usize,
        /// The number of samples.
        n: usize,
    },
    /// Stratification or grouping was asked for without the labels or groups.
    #[error("the split is {what} but no {needed} were given; add them to the `SplitTargets`")]
    MissingTargets {
        /// `stratified` or `grouped`.
        what: &'static str,
        /// `labels` or `groups`.
        needed: &'static str,
    },
    /// A holdout or validation part both stratified and grouped.
    #[error(
        "a {part} part cannot be stratified and grouped at once (only k-fold can); set only one \
         of `stratify` and `group`"
    )]
    StratifiedAndGrouped {
        /// `test` or `validation`.
        part: &'static str,
    },
    /// An index is at least the number of samples.
    #[error("fold {fold}: index {index} is out of range for {n} samples")]
    IndexOutOfRange {
        /// The fold.
        fold: usize,
        /// The bad index.
        index: usize,
        /// The number of samples.
        n: usize,
    },
    /// An index appears twice within one fold.
    #[error("fold {fold}: index {index} {}", overlap_place(first, second))]
    Overlap {
        /// The fold.
        fold: usize,
        /// The repeated index.
        index: usize,
        /// The part it was first seen in.
        first: &'static str,
        /// The part it was seen in again.
        second: &'static str,
    },
    /// An index appears in no part of a fold.
    #[error("fold {fold}: index {index} is in none of train, validation and test")]
    Uncovered {
        /// The fold.
        fold: usize,
        /// The missing index.
        index: usize,
    },
    /// An index is tested in two folds of a k-fold split.
    #[error("index {index} is in the test part of both fold {first} and fold {second}")]
    TestedTwice {
        /// The index.
        index: usize,
        /// The first fold that tests it.
        first: usize,
        /// The second fold that tests it.
        second: usize,
    },
    /// An index is tested in no fold of a k-fold split.
    #[error("index {index} is in the test part of no fold")]
    NeverTested {
        /// The index.
        index: usize,
    },
    /// A group is spread over two parts of a fold, or tested in two folds.
    #[error("group {group} is in both {first} and {second}")]
    GroupSplit {
        /// The group, as its `Debug` form.
        group: String,
        /// Where it was seen first, such as `fold 0 train`.
        first: String,
        /// Where it was seen again.
        second: String,
    },
    /// A split checked against targets for another number of samples.
    #[error(
        "the split covers {split} samples but the targets describe {targets}; check them against the split they made"
    )]
    TargetsMismatch {
        /// Samples in the split.
        split: usize,
        /// Samples in the targets.
        targets: usize,
    },
    /// The number of folds disagrees with the configuration.
    #[error("the configuration asks for {expected} folds but the split has {actual}")]
    FoldCount {
        /// Folds the configuration asks for.
        expected: usize,
        /// Folds present.
        actual: usize,
    },
    /// The JSON layout version is not one this delira reads.
    #[error(
        "split format version {found} is not supported; this delira reads version {FORMAT_VERSION}"
    )]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// Reading or writing a split file failed.
    #[error("cannot {action} split file {}: {error}", path.display())]
    File {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// A split file is not valid JSON of the expected layout.
    #[error("split file {} is not a valid split: {error}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The JSON error (in the message, so not also a `source`).
        error: serde_json::Error,
    },
    /// A split file parses but breaks an invariant.
    #[error("split file {}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The broken invariant.
        problem: Box<SplitError>,
    },
}

fn fold_hint(available: usize, what: &str) -> String {
    if available < 2 {
        format!("k-fold needs at least 2 {what}")
    } else {
        format!("use at most {available} folds")
    }
}

fn class_hint(count: usize) -> String {
    if count < 2 {
        "merge the class with another or leave it out".to_owned()
    } else {
        format!("use at most {count} folds or merge the class")
    }
}

fn overlap_place(first: &str, second: &str) -> String {
    if first == second {
        format!("appears twice in {first}")
    } else {
        format!("appears in both {first} and {second}")
    }
}

fn part_size_hint(n: usize) -> String {
    if n < 2 {
        "splitting needs at least 2 samples".to_owned()
    } else {
        format!("choose a size between 1 and {}", n - 1)
    }
}

/// The per-sample information a split may use: the number of samples, and optionally a class
/// label and a group id per sample.
///
/// Labels and groups may be of any ordered type; they are reduced to their rank among the
/// distinct values (so the split depends only on their order, never on hashing), and their
/// `Debug` form is kept for error messages.
///
/// ```
/// use delira::data::split::SplitTargets;
///
/// let targets = SplitTargets::new(4)
///     .with_labels(&[1, 0, 1, 1])
///     .unwrap()
///     .with_groups(&["p1", "p1", "p2", "p3"])
///     .unwrap();
/// assert_eq!(targets.len(), 4);
/// assert_eq!(targets.num_classes(), Some(2));
/// assert_eq!(targets.num_groups(), Some(3));
/// assert!(SplitTargets::new(4).with_labels(&[1, 2]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitTargets {
    n: usize,
    labels: Option<Codes>,
    groups: Option<Codes>,
}

/// Values reduced to ranks: `codes[i]` is the rank of sample `i`'s value, `names[r]` the `Debug`
/// form of the value of rank `r`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Codes {
    codes: Vec<usize>,
    names: Vec<String>,
}

impl Codes {
    fn new<T: Ord + Debug>(values: &[T]) -> Self {
        let mut rank: BTreeMap<&T, usize> = values.iter().map(|v| (v, 0)).collect();
        let mut names = Vec::with_capacity(rank.len());
        for (r, (value, slot)) in rank.iter_mut().enumerate() {
            *slot = r;
            names.push(format!("{value:?}"));
        }
        let codes = values.iter().map(|v| rank[v]).collect();
        Self { codes, names }
    }

    /// The codes of the samples at `positions`, renumbered densely in the same order.
    fn restrict(&self, positions: &[usize]) -> Self {
        let mut used = vec![false; self.names.len()];
        for &p in positions {
            used[self.codes[p]] = true;
        }
        let mut new_code = vec![usize::MAX; self.names.len()];
        let mut names = Vec::new();
        for (code, _) in used.iter().enumerate().filter(|(_, u)| **u) {
            new_code[code] = names.len();
            names.push(self.names[code].clone());
        }
        let codes = positions.iter().map(|&p| new_code[self.codes[p]]).collect();
        Self { codes, names }
    }

    /// The members of each code, in increasing sample order.
    fn members(&self) -> Vec<Vec<usize>> {
        let mut members = vec![Vec::new(); self.names.len()];
        for (i, &c) in self.codes.iter().enumerate() {
            members[c].push(i);
        }
        members
    }
}

impl SplitTargets {
    /// Targets for `n` samples, without labels or groups.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            labels: None,
            groups: None,
        }
    }

    /// Adds one class label per sample, for stratified splits.
    pub fn with_labels<L: Ord + Debug>(mut self, labels: &[L]) -> Result<Self, SplitError> {
        self.check_len("labels", labels.len())?;
        self.labels = Some(Codes::new(labels));
        Ok(self)
    }

    /// Adds one group id per sample, for grouped splits.
    pub fn with_groups<G: Ord + Debug>(mut self, groups: &[G]) -> Result<Self, SplitError> {
        self.check_len("groups", groups.len())?;
        self.groups = Some(Codes::new(groups));
        Ok(self)
    }

    fn check_len(&self, what: &'static str, len: usize) -> Result<(), SplitError> {
        if len == self.n {
            Ok(())
        } else {
            Err(SplitError::LengthMismatch {
                what,
                len,
                n: self.n,
            })
        }
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The number of distinct labels, if labels were given.
    pub fn num_classes(&self) -> Option<usize> {
        self.labels.as_ref().map(|c| c.names.len())
    }

    /// The number of distinct groups, if groups were given.
    pub fn num_groups(&self) -> Option<usize> {
        self.groups.as_ref().map(|c| c.names.len())
    }

    /// The targets of the samples at `positions`, in that order.
    fn restrict(&self, positions: &[usize]) -> Self {
        Self {
            n: positions.len(),
            labels: self.labels.as_ref().map(|c| c.restrict(positions)),
            groups: self.groups.as_ref().map(|c| c.restrict(positions)),
        }
    }

    fn labels_for(&self, what: &'static str) -> Result<&Codes, SplitError> {
        self.labels.as_ref().ok_or(SplitError::MissingTargets {
            what,
            needed: "labels",
        })
    }

    fn groups_for(&self, what: &'static str) -> Result<&Codes, SplitError> {
        self.groups.as_ref().ok_or(SplitError::MissingTargets {
            what,
            needed: "groups",
        })
    }

    /// Checks that `split` keeps every group whole: no group in two parts of a fold. (As each
    /// fold covers all samples, a group tested in two folds is also in two parts of each of
    /// them.) Succeeds when the targets have no groups.
    ///
    /// ```
    /// use delira::data::split::{self, SplitTargets};
    ///
    /// let patients = [1, 1, 2, 2, 3, 3];
    /// let targets = SplitTargets::new(6).with_groups(&patients).unwrap();
    /// assert!(targets.check_groups(&split::group_kfold(&patients, 3, 0).unwrap()).is_ok());
    /// let err = targets.check_groups(&split::kfold(6, 3, 0).unwrap()).unwrap_err();
    /// assert!(err.to_string().starts_with("group "));
    /// ```
    pub fn check_groups(&self, split: &Split) -> Result<(), SplitError> {
        if split.n != self.n {
            return Err(SplitError::TargetsMismatch {
                split: split.n,
                targets: self.n,
            });
        }
        let Some(groups) = &self.groups else {
            return Ok(());
        };
        for (f, fold) in split.folds.iter().enumerate() {
            // The part (0..3 = train, validation, test) each group was seen in, in this fold.
            let mut part_of: Vec<Option<usize>> = vec![None; groups.names.len()];
            for (p, part) in [&fold.train, &fold.validation, &fold.test]
                .into_iter()
                .enumerate()
            {
                for &index in part {
                    let &g = groups.codes.get(index).ok_or(SplitError::IndexOutOfRange {
                        fold: f,
                        index,
                        n: self.n,
                    })?;
                    match part_of[g] {
                        Some(first) if first != p => {
                            return Err(group_split(groups, g, f, first, p));
                        }
                        _ => part_of[g] = Some(p),
                    }
                }
            }
        }
        Ok(())
    }
}

fn group_split(groups: &Codes, g: usize, fold: usize, first: usize, second: usize) -> SplitError {
    const PARTS: [&str; 3] = ["train", "validation", "test"];
    SplitError::GroupSplit {
        group: groups.names[g].clone(),
        first: format!("fold {fold} {}", PARTS[first]),
        second: format!("fold {fold} {}", PARTS[second]),
    }
}

/// The size of an inner validation part.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationSize {
    /// A fraction of the fold's training part, rounded up (`{"fraction": 0.2}`).
    Fraction(f64),
    /// A number of samples (`{"count": 10}`); with grouping, groups are added until at least
    /// this many samples are reached.
    Count(usize),
}

impl Default for ValidationSize {
    fn default() -> Self {
        Self::Fraction(0.2)
    }
}

/// An inner validation part drawn from each fold's training part.
///
/// Defaults: 20 % of the training part, neither stratified nor grouped.
///
/// ```
/// use delira::data::split::{ValidationConfig, ValidationSize};
///
/// let config = ValidationConfig::builder().size(ValidationSize::Count(3)).stratify(true).build();
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(json, r#"{"size":{"count":3},"stratify":true,"group":false}"#);
/// assert!(serde_json::from_str::<ValidationConfig>(r#"{"sise":{"count":3}}"#).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// How large the validation part is (default: a fraction of 0.2).
    #[builder(default)]
    #[serde(default)]
    pub size: ValidationSize,
    /// Whether the validation part keeps the class proportions of the training part (needs labels).
    #[builder(default)]
    #[serde(default)]
    pub stratify: bool,
    /// Whether groups stay whole between training and validation (needs groups).
    #[builder(default)]
    #[serde(default)]
    pub group: bool,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// A single train/test split (with an optional validation part).
///
/// Defaults: a test fraction of 0.2, seed 0, neither stratified nor grouped, no validation part.
/// The test part has `ceil(test_fraction * n)` samples; stratified, each class gives its share
/// (largest remainders, ties to the smaller class label); grouped, whole groups in random order
/// are added until the test part reaches that size.
///
/// ```
/// use delira::data::split::{HoldoutConfig, SplitTargets};
///
/// let config = HoldoutConfig::builder().test_fraction(0.25).seed(7).build();
/// let split = config.split(&SplitTargets::new(10)).unwrap();
/// assert_eq!(split.folds()[0].test.len(), 3);
/// assert_eq!(split.folds()[0].train.len(), 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct HoldoutConfig {
    /// The fraction of samples in the test part, in `(0, 1)` (default 0.2).
    #[builder(default = 0.2)]
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// The seed of the split (default 0).
    #[builder(default)]
    #[serde(default)]
    pub seed: u64,
    /// Whether to keep class proportions (needs labels).
    #[builder(default)]
    #[serde(default)]
    pub stratify: bool,
    /// Whether to keep groups whole (needs groups).
    #[builder(default)]
    #[serde(default)]
    pub group: bool,
    /// An inner validation part of the training part (default none).
    #[builder(default, setter(strip_option))]
    #[serde(default)]
    pub validation: Option<ValidationConfig>,
}

fn default_test_fraction() -> f64 {
    0.2
}

fn default_k() -> usize {
    5
}

fn default_true() -> bool {
    true
}

/// A k-fold cross-validation split.
///
/// Defaults: 5 folds, shuffled with seed 0, neither stratified nor grouped, no validation part.
/// Plain k-fold cuts the (shuffled) order into `k` contiguous test parts, the first `n % k` one
/// sample larger. Stratified k-fold gives each class's samples to the folds in turn, exactly as
/// scikit-learn's `StratifiedKFold` when unshuffled. Grouped k-fold puts groups, largest first, into the fold
/// with the fewest samples so far (ties to the lower fold); groups of equal size come in random
/// order when shuffled, else larger group id first — unshuffled, exactly scikit-learn's
/// `GroupKFold`. (scikit-learn's shuffled `GroupKFold` does not balance sizes; delira's does.)
/// Stratified and grouped at once follows scikit-learn's `StratifiedGroupKFold` heuristic:
/// groups with the most uneven class counts first, each into the fold that keeps the class
/// proportions most even — groups stay whole, class balance is approximate.
///
/// ```
/// use delira::data::split::{KFoldConfig, SplitTargets};
///
/// let config = KFoldConfig::builder().k(3).shuffle(false).build();
/// let split = config.split(&SplitTargets::new(7)).unwrap();
/// let tests: Vec<_> = split.folds().iter().map(|f| f.test.clone()).collect();
/// assert_eq!(tests, [vec![0, 1, 2], vec![3, 4], vec![5, 6]]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, TypedBuilder)]
#[serde(deny_unknown_fields)]
pub struct KFoldConfig {
    /// The number of folds, at least 2 (default 5).
    #[builder(default = 5)]
    #[serde(default = "default_k")]
    pub k: usize,
    /// Whether to shuffle before assigning folds (default true).
    #[builder(default = true)]
    #[serde(default = "default_true")]
    pub shuffle: bool,
    /// The seed of the split (default 0); also seeds the validation parts when not shuffling.
    #[builder(default)]
    #[serde(default)]
    pub seed: u64,
    /// Whether to keep class proportions (needs labels).
    #[builder(default)]
    #[serde(default)]
    pub stratify: bool,
    /// Whether to keep groups whole (needs groups).
    #[builder(default)]
    #[serde(default)]
    pub group: bool,
    /// An inner validation part of each fold's training part (default none).
    #[builder(default, setter(strip_option))]
    #[serde(default)]
    pub validation: Option<ValidationConfig>,
}

/// Any split configuration, tagged by `kind` in serialised form.
///
/// ```
/// use delira::data::split::{SplitConfig, SplitTargets};
///
/// let config: SplitConfig = serde_json::from_str(r#"{"kind": "k_fold", "k": 4, "seed": 1}"#).unwrap();
/// let split = config.split(&SplitTargets::new(8)).unwrap();
/// assert_eq!(split.k(), 4);
/// assert!(serde_json::from_str::<SplitConfig>(r#"{"kind": "k_fold", "folds": 4}"#).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitConfig {
    /// One train/test split.
    Holdout(HoldoutConfig),
    /// K-fold cross-validation.
    KFold(KFoldConfig),
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self::KFold(KFoldConfig::builder().build())
    }
}

impl From<HoldoutConfig> for SplitConfig {
    fn from(config: HoldoutConfig) -> Self {
        Self::Holdout(config)
    }
}

impl From<KFoldConfig> for SplitConfig {
    fn from(config: KFoldConfig) -> Self {
        Self::KFold(config)
    }
}

/// The kind of a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SplitKind {
    /// One train/test split.
    Holdout,
    /// K-fold cross-validation.
    KFold,
}

/// The indices of one fold; each list is sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fold {
    /// Indices to train on.
    pub train: Vec<usize>,
    /// Indices to validate on during training (possibly empty).
    pub validation: Vec<usize>,
    /// Indices to test on after training.
    pub test: Vec<usize>,
}

/// A complete split: its configuration, the number of samples, and the folds.
///
/// Holds the invariants: every index is below `n`; within a fold, train, validation and test are
/// disjoint and cover `0..n`; for k-fold, the test parts are disjoint and cover `0..n`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    version: u32,
    config: SplitConfig,
    n: usize,
    folds: Vec<Fold>,
}

impl Split {
    /// A split from folds made elsewhere (another tool's fold file, say), checked against the
    /// invariants listed on [`Split`]; `config` records how they were made (for k-fold, its `k`
    /// must equal the number of folds).
    ///
    /// ```
    /// use delira::data::split::{Fold, HoldoutConfig, Split};
    ///
    /// let fold = Fold { train: vec![0, 2], validation: vec![], test: vec![1] };
    /// let config = HoldoutConfig::builder().build().into();
    /// assert_eq!(Split::new(config, 3, vec![fold.clone()]).unwrap().k(), 1);
    /// let err = Split::new(config, 4, vec![fold]).unwrap_err();
    /// assert_eq!(err.to_string(), "fold 0: index 3 is in none of train, validation and test");
    /// ```
    pub fn new(config: SplitConfig, n: usize, folds: Vec<Fold>) -> Result<Self, SplitError> {
        let mut split = Self {
            version: FORMAT_VERSION,
            config,
            n,
            folds,
        };
        split.sort_parts();
        split.validate()?;
        Ok(split)
    }

    /// Sorts every part of every fold: a fold lists sets of indices, so order carries nothing,
    /// and sorted lists are what the rest of delira (and the JSON file) promise.
    fn sort_parts(&mut self) {
        for fold in &mut self.folds {
            fold.train.sort_unstable();
            fold.validation.sort_unstable();
            fold.test.sort_unstable();
        }
    }

    /// The configuration that made this split.
    pub fn config(&self) -> &SplitConfig {
        &self.config
    }

    /// Holdout or k-fold.
    pub fn kind(&self) -> SplitKind {
        match self.config {
            SplitConfig::Holdout(_) => SplitKind::Holdout,
            SplitConfig::KFold(_) => SplitKind::KFold,
        }
    }

    /// The seed of the split.
    pub fn seed(&self) -> u64 {
        match self.config {
            SplitConfig::Holdout(c) => c.seed,
            SplitConfig::KFold(c) => c.seed,
        }
    }

    /// The number of samples split.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The number of folds (1 for holdout).
    pub fn k(&self) -> usize {
        self.folds.len()
    }

    /// The folds.
    pub fn folds(&self) -> &[Fold] {
        &self.folds
    }

    /// Checks the invariants listed on [`Split`].
    pub fn validate(&self) -> Result<(), SplitError> {
        if self.version != FORMAT_VERSION {
            return Err(SplitError::Version {
                found: self.version,
            });
        }
        let expected = match self.config {
            SplitConfig::Holdout(_) => 1,
            SplitConfig::KFold(c) => c.k,
        };
        if self.folds.len() != expected {
            return Err(SplitError::FoldCount {
                expected,
                actual: self.folds.len(),
            });
        }
        for (f, fold) in self.folds.iter().enumerate() {
            check_fold(f, fold, self.n)?;
        }
        if self.kind() == SplitKind::KFold {
            check_tests_partition(&self.folds, self.n)?;
        }
        Ok(())
    }

    /// Writes the split as JSON to `path` through [`crate::io::write_atomically`], so an existing
    /// file is never left half-written.
    ///
    /// ```
    /// use delira::data::split::{self, Split};
    ///
    /// let dir = std::env::temp_dir().join(format!("delira-split-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("folds.json");
    /// let folds = split::kfold(20, 4, 3).unwrap();
    /// folds.save(&path).unwrap();
    /// assert_eq!(Split::load(&path).unwrap(), folds);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SplitError> {
        let path = path.as_ref();
        let write_error = |error| SplitError::File {
            action: "write",
            path: path.to_path_buf(),
            error,
        };
        let json = serde_json::to_string_pretty(self).map_err(|error| SplitError::Json {
            path: path.to_path_buf(),
            error,
        })?;
        crate::io::write_atomically(path, (json + "\n").as_bytes()).map_err(write_error)?;
        tracing::debug!(path = %path.display(), folds = self.k(), "split saved");
        Ok(())
    }

    /// Reads a split written by [`Split::save`] and checks its invariants.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SplitError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| SplitError::File {
            action: "read",
            path: path.to_path_buf(),
            error,
        })?;
        let mut split: Self = serde_json::from_str(&text).map_err(|error| SplitError::Json {
            path: path.to_path_buf(),
            error,
        })?;
        split.sort_parts();
        split.validate().map_err(|problem| SplitError::Invalid {
            path: path.to_path_buf(),
            problem: Box::new(problem),
        })?;
        Ok(split)
    }
}

fn check_fold(f: usize, fold: &Fold, n: usize) -> Result<(), SplitError> {
    let mut seen: Vec<Option<&'static str>> = vec![None; n];
    let parts = [
        ("train", &fold.train),
        ("validation", &fold.validation),
        ("test", &fold.test),
    ];
    for (name, part) in parts {
        for &index in part {
            let Some(slot) = seen.get_mut(index) else {
                return Err(SplitError::IndexOutOfRange { fold: f, index, n });
            };
            if let Some(first) = *slot {
                return Err(SplitError::Overlap {
                    fold: f,
                    index,
                    first,
                    second: name,
                });
            }
            *slot = Some(name);
        }
    }
    match seen.iter().position(Option::is_none) {
        Some(index) => Err(SplitError::Uncovered { fold: f, index }),
        None => Ok(()),
    }
}

fn check_tests_partition(folds: &[Fold], n: usize) -> Result<(), SplitError> {
    let mut tested_in = vec![None; n];
    for (f, fold) in folds.iter().enumerate() {
        for &index in &fold.test {
            // Indices were range-checked fold by fold before.
            if let Some(first) = tested_in[index] {
                return Err(SplitError::TestedTwice {
                    index,
                    first,
                    second: f,
                });
            }
            tested_in[index] = Some(f);
        }
    }
    match tested_in.iter().position(Option::is_none) {
        Some(index) => Err(SplitError::NeverTested { index }),
        None => Ok(()),
    }
}

/// A shuffled holdout split of `n` samples with a test fraction.
///
/// ```
/// let split = delira::data::split::holdout(10, 0.3, 1).unwrap();
/// let fold = &split.folds()[0];
/// assert_eq!((fold.train.len(), fold.test.len()), (7, 3));
/// assert!(delira::data::split::holdout(10, 1.5, 1).is_err());
/// ```
pub fn holdout(n: usize, test_fraction: f64, seed: u64) -> Result<Split, SplitError> {
    HoldoutConfig::builder()
        .test_fraction(test_fraction)
        .seed(seed)
        .build()
        .split(&SplitTargets::new(n))
}

/// A shuffled k-fold split of `n` samples.
///
/// ```
/// let split = delira::data::split::kfold(10, 3, 5).unwrap();
/// let sizes: Vec<usize> = split.folds().iter().map(|f| f.test.len()).collect();
/// assert_eq!(sizes, [4, 3, 3]);
/// assert!(delira::data::split::kfold(2, 3, 5).is_err());
/// ```
pub fn kfold(n: usize, k: usize, seed: u64) -> Result<Split, SplitError> {
    KFoldConfig::builder()
        .k(k)
        .seed(seed)
        .build()
        .split(&SplitTargets::new(n))
}

/// A shuffled stratified k-fold split, one label per sample.
pub fn stratified_kfold<L: Ord + Debug>(
    labels: &[L],
    k: usize,
    seed: u64,
) -> Result<Split, SplitError> {
    let targets = SplitTargets::new(labels.len()).with_labels(labels)?;
    KFoldConfig::builder()
        .k(k)
        .seed(seed)
        .stratify(true)
        .build()
        .split(&targets)
}

/// A grouped k-fold split, one group id per sample; group ties are broken by the seed.
///
/// ```
/// let patients = ["p1", "p1", "p2", "p3", "p3", "p3", "p4"];
/// let split = delira::data::split::group_kfold(&patients, 2, 0).unwrap();
/// // p3 (3 samples) goes first, then p1 (2), then p2 and p4 fill the lighter fold.
/// let sizes: Vec<usize> = split.folds().iter().map(|f| f.test.len()).collect();
/// assert_eq!(sizes.iter().sum::<usize>(), 7);
/// assert!(sizes.contains(&3) && sizes.contains(&4));
/// ```
pub fn group_kfold<G: Ord + Debug>(groups: &[G], k: usize, seed: u64) -> Result<Split, SplitError> {
    let targets = SplitTargets::new(groups.len()).with_groups(groups)?;
    KFoldConfig::builder()
        .k(k)
        .seed(seed)
        .group(true)
        .build()
        .split(&targets)
}

/// How samples are kept together or balanced when a part is split off.
#[derive(Clone, Copy)]
enum Mode {
    Plain,
    Stratified,
    Grouped,
    StratifiedGrouped,
}

fn mode(stratify: bool, group: bool) -> Mode {
    match (stratify, group) {
        (false, false) => Mode::Plain,
        (true, false) => Mode::Stratified,
        (false, true) => Mode::Grouped,
        (true, true) => Mode::StratifiedGrouped,
    }
}

fn split_stream(seed: u64) -> Stream {
    StreamKey::new(seed).purpose("split").stream()
}

fn validation_stream(seed: u64, fold: usize) -> Stream {
    StreamKey::new(seed)
        .purpose("split")
        .child(fold as u64)
        .stream()
}

impl SplitConfig {
    /// Splits the samples described by `targets`.
    pub fn split(&self, targets: &SplitTargets) -> Result<Split, SplitError> {
        match self {
            Self::Holdout(c) => c.split(targets),
            Self::KFold(c) => c.split(targets),
        }
    }
}

impl HoldoutConfig {
    /// Splits the samples described by `targets`.
    pub fn split(&self, targets: &SplitTargets) -> Result<Split, SplitError> {
        let n = targets.len();
        let size = fraction_size("test", self.test_fraction, n)?;
        let mode = mode(self.stratify, self.group);
        let mut stream = split_stream(self.seed);
        let test = pick_part(targets, mode, size, "test", &mut stream)?;

        let fold = complement_fold(n, test);
        let folds = with_validation(vec![fold], targets, self.validation, self.seed)?;
        finish(SplitConfig::Holdout(*self), n, folds)
    }
}

impl KFoldConfig {
    /// Splits the samples described by `targets`.
    pub fn split(&self, targets: &SplitTargets) -> Result<Split, SplitError> {
        let (n, k) = (targets.len(), self.k);
        if k < 2 {
            return Err(SplitError::TooFewFolds { k });
        }
        if self.group
            && let Some(groups) = targets.num_groups()
            && k > groups
        {
            // Named before the sample count: fewer groups than folds is the binding limit.
            return Err(SplitError::MoreFoldsThanGroups { k, groups });
        }
        if k > n {
            return Err(SplitError::MoreFoldsThanSamples { k, n });
        }
        let mut stream = self.shuffle.then(|| split_stream(self.seed));
        let assignment = match mode(self.stratify, self.group) {
            Mode::Plain => plain_folds(n, k, stream.as_mut()),
            Mode::Stratified => {
                stratified_folds(targets.labels_for("stratified")?, k, stream.as_mut())?
            }
            Mode::Grouped => grouped_folds(targets.groups_for("grouped")?, k, stream.as_mut())?,
            Mode::StratifiedGrouped => stratified_grouped_folds(
                targets.labels_for("stratified")?,
                targets.groups_for("grouped")?,
                k,
                stream.as_mut(),
            )?,
        };

        let mut tests = vec![Vec::new(); k];
        for (i, &f) in assignment.iter().enumerate() {
            tests[f].push(i);
        }
        let folds = tests.into_iter().map(|t| complement_fold(n, t)).collect();
        let folds = with_validation(folds, targets, self.validation, self.seed)?;
        finish(SplitConfig::KFold(*self), n, folds)
    }
}

fn finish(config: SplitConfig, n: usize, folds: Vec<Fold>) -> Result<Split, SplitError> {
    // Validating is cheap insurance that every construction above keeps the invariants.
    let split = Split::new(config, n, folds)?;
    tracing::debug!(kind = ?split.kind(), n, k = split.k(), "split made");
    Ok(split)
}

/// A fold testing the sorted `test` and training on every other index.
fn complement_fold(n: usize, mut test: Vec<usize>) -> Fold {
    test.sort_unstable();
    let mut in_test = vec![false; n];
    for &i in &test {
        in_test[i] = true;
    }
    let train = (0..n).filter(|&i| !in_test[i]).collect();
    Fold {
        train,
        validation: Vec::new(),
        test,
    }
}

/// `ceil(fraction * n)`, checked to leave both parts non-empty.
fn fraction_size(what: &'static str, fraction: f64, n: usize) -> Result<usize, SplitError> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(SplitError::BadFraction {
            what,
            value: fraction,
        });
    }
    let size = (fraction * n as f64).ceil() as usize;
    check_part_size(what, size, n)?;
    Ok(size)
}

fn check_part_size(what: &'static str, size: usize, n: usize) -> Result<(), SplitError> {
    if size == 0 || size >= n {
        Err(SplitError::EmptyPart { what, size, n })
    } else {
        Ok(())
    }
}

/// Positions (in `0..targets.len()`) of a part of about `size` samples.
fn pick_part(
    targets: &SplitTargets,
    mode: Mode,
    size: usize,
    what: &'static str,
    stream: &mut Stream,
) -> Result<Vec<usize>, SplitError> {
    let n = targets.len();
    let part = match mode {
        Mode::Plain => {
            let mut order = stream.permutation(n);
            order.truncate(size);
            order
        }
        Mode::Stratified => stratified_part(targets.labels_for("stratified")?, size, stream),
        Mode::Grouped => grouped_part(targets.groups_for("grouped")?, size, stream),
        Mode::StratifiedGrouped => return Err(SplitError::StratifiedAndGrouped { part: what }),
    };
    check_part_size(what, part.len(), n)?;
    Ok(part)
}

/// Each class gives its share of `size` (largest remainders, ties to the lower class), drawn
/// at random among its members.
fn stratified_part(labels: &Codes, size: usize, stream: &mut Stream) -> Vec<usize> {
    let members = labels.members();
    let n = labels.codes.len();
    let mut quota: Vec<usize> = members.iter().map(|m| m.len() * size / n).collect();
    let mut order: Vec<usize> = (0..members.len()).collect();
    // Remainders compared exactly as numerators over n.
    order.sort_by_key(|&c| std::cmp::Reverse(members[c].len() * size % n));
    let missing = size - quota.iter().sum::<usize>();
    for &c in order.iter().take(missing) {
        quota[c] += 1;
    }

    let mut part = Vec::with_capacity(size);
    for (mut m, q) in members.into_iter().zip(quota) {
        stream.shuffle(&mut m);
        part.extend_from_slice(&m[..q]);
    }
    part
}

/// Whole groups, in random order, until the part holds at least `size` samples.
fn grouped_part(groups: &Codes, size: usize, stream: &mut Stream) -> Vec<usize> {
    let mut members = groups.members();
    stream.shuffle(&mut members);
    let mut part = Vec::with_capacity(size);
    for m in members {
        if part.len() >= size {
            break;
        }
        part.extend(m);
    }
    part
}

/// Fold of each sample: the (shuffled) order cut into `k` contiguous runs, the first `n % k`
/// one longer.
fn plain_folds(n: usize, k: usize, stream: Option<&mut Stream>) -> Vec<usize> {
    let order = match stream {
        Some(s) => s.permutation(n),
        None => (0..n).collect(),
    };
    let mut fold_of = vec![0; n];
    let mut start = 0;
    for f in 0..k {
        let len = n / k + usize::from(f < n % k);
        for &i in &order[start..start + len] {
            fold_of[i] = f;
        }
        start += len;
    }
    fold_of
}

/// Fold of each sample, stratified: with the samples sorted by class (classes in order of first
/// appearance, as scikit-learn), sample `j` of that order counts towards fold `j % k`; each class
/// gives its members (shuffled or in dataset order) to folds 0, 1, ... in blocks of those counts.
fn stratified_folds(
    labels: &Codes,
    k: usize,
    mut stream: Option<&mut Stream>,
) -> Result<Vec<usize>, SplitError> {
    let mut members = labels.members();
    check_class_sizes(labels, &members, k)?;

    // Every class has a member, so each list has a first element.
    members.sort_by_key(|m| m[0]);
    let mut fold_of = vec![0; labels.codes.len()];
    let mut offset = 0;
    for mut m in members {
        if let Some(s) = stream.as_deref_mut() {
            s.shuffle(&mut m);
        }
        let mut next = 0;
        for f in 0..k {
            // How many of positions offset..offset+len are congruent to f modulo k.
            let count = count_congruent(offset, offset + m.len(), f, k);
            for &i in &m[next..next + count] {
                fold_of[i] = f;
            }
            next += count;
        }
        offset += m.len();
    }
    Ok(fold_of)
}

fn check_class_sizes(labels: &Codes, members: &[Vec<usize>], k: usize) -> Result<(), SplitError> {
    match members.iter().enumerate().find(|(_, m)| m.len() < k) {
        Some((c, m)) => Err(SplitError::ClassTooSmall {
            class: labels.names[c].clone(),
            count: m.len(),
            k,
        }),
        None => Ok(()),
    }
}

/// `#{ j in start..end : j % k == r }`.
fn count_congruent(start: usize, end: usize, r: usize, k: usize) -> usize {
    let below = |x: usize| x / k + usize::from(x % k > r);
    below(end) - below(start)
}

/// Fold of each sample, grouped: groups by decreasing size (ties in random order when shuffled,
/// else larger group id first) each go to the fold with the fewest samples so far (ties to the lower fold).
fn grouped_folds(
    groups: &Codes,
    k: usize,
    stream: Option<&mut Stream>,
) -> Result<Vec<usize>, SplitError> {
    let mut members = groups.members();
    if k > members.len() {
        return Err(SplitError::MoreFoldsThanGroups {
            k,
            groups: members.len(),
        });
    }
    match stream {
        Some(s) => s.shuffle(&mut members),
        // Equal sizes then go larger id first, as in scikit-learn's `GroupKFold`.
        None => members.reverse(),
    }
    members.sort_by_key(|m| std::cmp::Reverse(m.len()));

    let mut fold_of = vec![0; groups.codes.len()];
    let mut load = vec![0usize; k];
    for m in members {
        let f = (0..k).min_by_key(|&f| load[f]).unwrap_or(0);
        load[f] += m.len();
        for i in m {
            fold_of[i] = f;
        }
    }
    Ok(fold_of)
}

/// Fold of each sample, stratified and grouped, with scikit-learn's `StratifiedGroupKFold`
/// heuristic: groups, most uneven class counts first (population standard deviation over the
/// classes; ties in random order when shuffled, else by group id), each go to the fold that
/// leaves the class proportions per fold most even — the smallest mean over classes of the
/// standard deviation over folds of (fold count / class count) — preferring, among folds within
/// `numpy.isclose` of the best so far, the one with fewer samples.
fn stratified_grouped_folds(
    labels: &Codes,
    groups: &Codes,
    k: usize,
    stream: Option<&mut Stream>,
) -> Result<Vec<usize>, SplitError> {
    let class_members = labels.members();
    check_class_sizes(labels, &class_members, k)?;
    let (num_groups, num_classes) = (groups.names.len(), labels.names.len());
    if k > num_groups {
        return Err(SplitError::MoreFoldsThanGroups {
            k,
            groups: num_groups,
        });
    }
    let totals: Vec<f64> = class_members.iter().map(|m| m.len() as f64).collect();
    let mut per_group = vec![vec![0.0; num_classes]; num_groups];
    for (&g, &c) in groups.codes.iter().zip(&labels.codes) {
        per_group[g][c] += 1.0;
    }

    let mut order: Vec<usize> = (0..num_groups).collect();
    if let Some(s) = stream {
        s.shuffle(&mut order);
    }
    let unevenness: Vec<f64> = per_group.iter().map(|v| population_std(v)).collect();
    order.sort_by(|&a, &b| unevenness[b].total_cmp(&unevenness[a]));

    let mut per_fold = vec![vec![0.0; num_classes]; k];
    let mut fold_of_group = vec![0; num_groups];
    for g in order {
        let best = most_even_fold(&per_fold, &totals, &per_group[g]);
        for (count, add) in per_fold[best].iter_mut().zip(&per_group[g]) {
            *count += add;
        }
        fold_of_group[g] = best;
    }
    Ok(groups.codes.iter().map(|&g| fold_of_group[g]).collect())
}

/// The fold that, given `group`, leaves the class proportions most even (see
/// [`stratified_grouped_folds`]).
fn most_even_fold(per_fold: &[Vec<f64>], totals: &[f64], group: &[f64]) -> usize {
    let k = per_fold.len();
    let (mut best, mut best_eval, mut best_samples) = (0, f64::INFINITY, f64::INFINITY);
    let mut column = vec![0.0; k];
    for f in 0..k {
        let mut eval = 0.0;
        for (c, &total) in totals.iter().enumerate() {
            for (j, fold) in per_fold.iter().enumerate() {
                let added = if j == f { group[c] } else { 0.0 };
                column[j] = (fold[c] + added) / total;
            }
            eval += population_std(&column);
        }
        let eval = eval / totals.len() as f64;
        let samples: f64 = per_fold[f].iter().sum();
        // numpy.isclose(eval, best_eval) with its default tolerances.
        let close = (eval - best_eval).abs() <= 1e-8 + 1e-5 * best_eval.abs();
        if eval < best_eval || (close && samples < best_samples) {
            (best, best_eval, best_samples) = (f, eval, samples);
        }
    }
    best
}

/// `sqrt(mean((x - mean(x))²))`, summed left to right.
fn population_std(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (squares / n).sqrt()
}

/// Moves a validation part out of each fold's training part.
fn with_validation(
    mut folds: Vec<Fold>,
    targets: &SplitTargets,
    config: Option<ValidationConfig>,
    seed: u64,
) -> Result<Vec<Fold>, SplitError> {
    let Some(config) = config else {
        return Ok(folds);
    };
    let mode = mode(config.stratify, config.group);
    for (f, fold) in folds.iter_mut().enumerate() {
        let inner = targets.restrict(&fold.train);
        let size = match config.size {
            ValidationSize::Fraction(x) => fraction_size("validation", x, inner.len())?,
            ValidationSize::Count(c) => {
                check_part_size("validation", c, inner.len())?;
                c
            }
        };
        let mut stream = validation_stream(seed, f);
        let positions = pick_part(&inner, mode, size, "validation", &mut stream)?;

        // Positions index the training part; map them back to dataset indices.
        let mut is_validation = vec![false; fold.train.len()];
        for &p in &positions {
            is_validation[p] = true;
        }
        let (mut train, mut validation) = (Vec::new(), Vec::new());
        for (&index, &in_validation) in fold.train.iter().zip(&is_validation) {
            if in_validation {
                validation.push(index);
            } else {
                train.push(index);
            }
        }
        fold.train = train;
        fold.validation = validation;
    }
    Ok(folds)
}
